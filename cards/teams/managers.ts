/**
 * The managers' alert: a short card in the managers' channel for an escalation nobody claimed in
 * time (ticket, wait so far, reason, a link to the conversation's thread, Claim). The bridge edits it
 * on every ownership change, so it ends up saying who claimed it, or what happened instead.
 */
import type { Conversation } from '../../src/model.ts';
import { button, CARD_SCHEMA, labelled, openUrl, richText, type AdaptiveCard, type CardElement } from './adaptive.ts';
import { customerLabel, describeChange, endOfWait, escalationNumber, formatDuration, originLabel, ownerRuns, waitStartedAt } from './status.ts';
import type { TeamsText } from './message.ts';
import { clip, escapeAttribute, escapeMessageText, oneLine, safeUrl } from './text.ts';

export interface ManagersCardView {
  /** The escalation the alert was posted for (1 for the first). */
  escalation: number;
  /** Render time: the wait so far is measured up to it. */
  now: Date;
  /** Deep link to the conversation's thread, when known. */
  threadLink?: string;
  /** The viewing operator's id (`teams:<user id>`), for "You hold this conversation". */
  viewerId?: string;
  /** A line only this viewer sees, e.g. who won a claim race. */
  notice?: string;
}

/** The alert for `view.escalation`, as the conversation is now. */
export function buildManagersCard(conversation: Conversation, view: ManagersCardView): AdaptiveCard {
  const body: CardElement[] = [];
  if (view.notice) body.push({ type: 'Container', id: 'notice', style: 'warning', items: [richText([{ text: clip(view.notice, 300), weight: 'bolder' }])] });
  const current = view.escalation === escalationNumber(conversation);
  const actions: NonNullable<AdaptiveCard['actions']> = [];
  if (!current) {
    // A newer escalation has its own alert; this one stays as a pointer to the thread.
    body.push(richText([{ text: `🗂️ ${conversation.ticket}: `, weight: 'bolder' }, { text: 'this alert is from an earlier escalation; the thread has the latest.' }]));
  } else {
    const started = waitStartedAt(conversation);
    const ended = endOfWait(conversation);
    const waitedMs = started ? (ended ? Date.parse(ended.at) : view.now.getTime()) - Date.parse(started) : 0;
    const headline = ended
      ? `${describeChange(ended, 120)} · after ${formatDuration(waitedMs)}`
      : `⏳ ${conversation.ticket} has waited ${formatDuration(waitedMs)} for a person`;
    body.push(richText([{ text: headline, weight: 'bolder', size: 'medium', ...(ended ? {} : { color: 'warning' as const }) }]));
    body.push(labelled('Ticket', `${conversation.ticket} · ${conversation.queue} queue`, 200));
    const envelope = conversation.briefing;
    if (envelope) {
      body.push(labelled('Reason', `${oneLine(envelope.reason, 300)}${envelope.trigger ? ` (${envelope.trigger})` : ''}`, 400));
      body.push(labelled('Pending question', oneLine(envelope.pendingQuestion, 300), 300));
    }
    body.push(labelled('Customer', `${customerLabel(conversation)} via ${originLabel(conversation)}`, 300));
    body.push(richText([{ text: 'Now: ', weight: 'bolder' }, ...ownerRuns(conversation, view.viewerId)], { spacing: 'small' }));
    if (conversation.state === 'waiting') {
      actions.push(button('Claim', { handoff: 1, conversationId: conversation.id, action: 'claim' }, 'positive'));
    }
  }
  const link = view.threadLink ? openUrl('Open the thread', view.threadLink) : undefined;
  if (link) actions.push(link);
  return {
    type: 'AdaptiveCard',
    $schema: CARD_SCHEMA,
    version: '1.5',
    body,
    ...(actions.length ? { actions } : {}),
    msteams: { width: 'Full' },
    fallbackText: `${conversation.ticket}: unclaimed escalation. This card needs a newer Teams client.`,
  };
}

/**
 * The alert as a short text message, for when Teams refuses the card: ticket, wait, reason and the
 * link; claiming happens in the thread (typed `claim`), since a text message has no button.
 */
export function buildManagersFallbackText(conversation: Conversation, view: Pick<ManagersCardView, 'now' | 'threadLink'>): TeamsText {
  const started = waitStartedAt(conversation);
  const waited = formatDuration(started ? view.now.getTime() - Date.parse(started) : 0);
  const envelope = conversation.briefing;
  const lines = [`⏳ <b>${escapeMessageText(conversation.ticket)} has waited ${waited} for a person</b> · ${escapeMessageText(oneLine(conversation.queue, 60))} queue`];
  if (envelope) lines.push(`<b>Reason:</b> ${escapeMessageText(oneLine(envelope.reason, 300))}`);
  const link = safeUrl(view.threadLink);
  lines.push(
    link
      ? `<a href="${escapeAttribute(link)}">Open the thread</a> and type 'claim' there to take it.`
      : "Open the conversation's thread and type 'claim' there to take it.",
  );
  return { text: lines.join('<br>'), textFormat: 'xml', summary: managersSummary(conversation) };
}

/** Notification preview for the alert. */
export function managersSummary(conversation: Conversation): string {
  return oneLine(`${conversation.ticket} is waiting for a person (${conversation.queue} queue)`, 200);
}

/** What a deep link to a channel thread needs: the channel, the thread's root message, and what else is known. */
export interface ThreadLinkParts {
  channelId: string;
  /** The root message's id (Teams ids are the creation time in epoch ms). */
  rootMessageId: string;
  tenantId?: string;
  /** The team's Microsoft 365 group id. */
  groupId?: string;
}

/**
 * A deep link to a channel thread, in the format Teams documents for "navigate to channel
 * conversation": `https://teams.microsoft.com/l/message/<channelId>/<parentMessageId>?tenantId=...&groupId=...&parentMessageId=...&createdTime=...`.
 * Parameters the bridge does not know (group id, team and channel names) are left out.
 */
export function threadDeepLink(parts: ThreadLinkParts): string {
  const query = new URLSearchParams();
  if (parts.tenantId) query.set('tenantId', parts.tenantId);
  if (parts.groupId) query.set('groupId', parts.groupId);
  query.set('parentMessageId', parts.rootMessageId);
  query.set('createdTime', parts.rootMessageId);
  return `https://teams.microsoft.com/l/message/${encodeURIComponent(parts.channelId)}/${encodeURIComponent(parts.rootMessageId)}?${query.toString()}`;
}
