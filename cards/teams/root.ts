/**
 * The thread's root card: which customer, from where, which ticket, and who holds the conversation
 * now. The bridge edits it in place on every ownership change, so the channel list stays current.
 */
import type { Conversation } from '../../src/model.ts';
import { CARD_SCHEMA, labelled, richText, textBlock, type AdaptiveCard, type CardElement } from './adaptive.ts';
import { customerLabel, originLabel, ownerRuns } from './status.ts';
import { oneLine } from './text.ts';

/** The root card for a conversation's thread. */
export function buildRootCard(conversation: Conversation): AdaptiveCard {
  const customer = conversation.customer;
  const body: CardElement[] = [
    richText([
      { text: `💬 ${conversation.ticket} · `, weight: 'bolder', size: 'medium' },
      { text: oneLine(customer.name ?? customer.email ?? customer.id, 120), weight: 'bolder', size: 'medium' },
      { text: ` via ${originLabel(conversation)}`, size: 'medium' },
    ]),
  ];
  if (customer.email && customer.email !== customer.name) body.push(labelled('Email', customer.email, 320));
  if (conversation.subject) body.push(labelled('Subject', oneLine(conversation.subject, 300), 300));
  body.push(richText([{ text: 'Owner: ', weight: 'bolder' }, ...ownerRuns(conversation)], { spacing: 'small' }));
  body.push(labelled('Queue', conversation.queue, 60));
  body.push(
    textBlock("Replies in this thread from the owner reach the customer; start with // for an internal note. Hand back with 'return: your note' (or @mention the bot: 'return your note'); 'close' closes.", {
      isSubtle: true,
      size: 'small',
      spacing: 'small',
    }),
  );
  return {
    type: 'AdaptiveCard',
    $schema: CARD_SCHEMA,
    version: '1.5',
    body,
    msteams: { width: 'Full' },
    fallbackText: `${conversation.ticket} · ${customerLabel(conversation)}`,
  };
}

/** Plain one-line summary of the root (notification preview and activity `summary`). */
export function rootSummary(conversation: Conversation): string {
  return oneLine(`${conversation.ticket} · ${customerLabel(conversation)} via ${originLabel(conversation)}`, 200);
}
