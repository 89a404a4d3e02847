/**
 * The reminder for an unclaimed escalation when the queue has an on-call Teams tag: a small card
 * whose first line mentions the tag, so everyone with it is notified. The mention uses the shape of
 * Microsoft's tag-mention sample: `<at>Name</at>` in a TextBlock and, under `msteams.entities`,
 * `{ type: 'mention', text: '<at>Name</at>', mentioned: { id: <tag id>, name, type: 'tag' } }`.
 * The reminder's own words go in a literal TextRun.
 */
import type { Message } from '../../src/model.ts';
import { CARD_SCHEMA, richText, textBlock, type AdaptiveCard } from './adaptive.ts';
import { oneLine } from './text.ts';

/** A Teams tag: its id (Graph's teamworkTag id) and the name the mention shows. */
export interface TeamsTag {
  id: string;
  name: string;
}

/** The tag's name as it can sit inside `<at>…</at>` in a TextBlock: no markup or markdown characters. */
export function mentionName(name: string): string {
  return oneLine(name.replace(/[<>&"'*_[\]`~#|\\]/g, ''), 100) || 'on-call';
}

/** The reminder card mentioning `tag`. */
export function buildReminderCard(message: Message, tag: TeamsTag): AdaptiveCard {
  const name = mentionName(tag.name);
  const at = `<at>${name}</at>`;
  return {
    type: 'AdaptiveCard',
    $schema: CARD_SCHEMA,
    version: '1.5',
    body: [textBlock(`⏰ ${at}`, { weight: 'bolder' }), richText([{ text: oneLine(message.text, 1000) }], { spacing: 'none' })],
    msteams: { width: 'Full', entities: [{ type: 'mention', text: at, mentioned: { id: tag.id, name, type: 'tag' } }] },
    fallbackText: `⏰ @${name} ${oneLine(message.text, 300)}`,
  };
}
