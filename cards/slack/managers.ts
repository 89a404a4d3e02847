/**
 * The managers' card: an unclaimed escalation that waited too long, posted in the managers'
 * channel. Short: the ticket, the wait so far, the reason, a link to the thread, and Claim (the
 * briefing's own claim action, so it works from there too). It is refreshed on ownership changes:
 * who claimed it and after how long, or how the wait ended.
 */
import type { types } from '@slack/bolt';
import type { Conversation } from '../../src/model.ts';
import { BRIEFING_ACTIONS, briefingButtonValue } from './briefing.ts';
import { LIMITS, type SlackMessage } from './limits.ts';
import { escalationNumber, formatDuration, lastWait, ownerLabel, slackTime } from './status.ts';
import { escapeMrkdwn, fit, mrkdwn } from './text.ts';

export interface ManagersCardInput {
  conversation: Conversation;
  /** The escalation the card was posted for; a newer one makes it history (no button). */
  escalation: number;
  /** A link to the conversation's thread (chat.getPermalink, or built from the workspace URL). */
  threadLink?: string;
  /** The thread's channel, linked when there is no permalink. */
  threadChannel?: string;
  now: Date;
}

/** Safe to put inside `<...>` as a link target. */
function linkable(url: string | undefined): url is string {
  return url !== undefined && /^https?:\/\/[^\s<>|]+$/.test(url);
}

/** The card for the conversation as it is now. */
export function managersCard(input: ManagersCardInput): SlackMessage {
  const c = input.conversation;
  const current = input.escalation === escalationNumber(c);
  const ticket = escapeMrkdwn(c.ticket);
  const wait = lastWait(c);
  const waited = wait ? formatDuration((wait.end ? Date.parse(wait.end.at) : input.now.getTime()) - Date.parse(wait.start.at)) : undefined;

  // The line in the channel, and the same for notifications (plain words, escaped later).
  let headline: string;
  let plain: string;
  if (!current) {
    headline = `:card_index_dividers: *${ticket}*: a newer escalation replaced this one.`;
    plain = `${c.ticket}: a newer escalation replaced this one`;
  } else if (c.state === 'waiting') {
    headline = `:rotating_light: *${ticket}* has waited *${waited ?? 'a while'}* for a person and nobody has claimed it.`;
    plain = `${c.ticket} has waited ${waited ?? 'a while'} for a person`;
  } else if (wait?.end?.reason === 'claim' || wait?.end?.reason === 'take_over') {
    const name = wait.end.by.kind === 'operator' ? wait.end.by.operator.name : 'someone';
    headline = `:raising_hand: *${ticket}* was claimed by *${escapeMrkdwn(name)}* after ${waited}.`;
    plain = `${c.ticket} was claimed by ${name} after ${waited}`;
  } else if (wait?.end?.reason === 'fallback') {
    headline = `:leftwards_arrow_with_hook: *${ticket}*: nobody claimed it in ${waited}; the customer was told and the agent continues.`;
    plain = `${c.ticket}: nobody claimed it in ${waited}`;
  } else {
    headline = `:white_check_mark: *${ticket}* is no longer waiting${waited ? ` (waited ${waited})` : ''}.`;
    plain = `${c.ticket} is no longer waiting`;
  }

  const customer = c.customer.name ?? c.customer.email ?? c.customer.id;
  const briefing = c.briefing;
  const fields = [
    `*Customer*\n${mrkdwn(customer, 200)}`,
    `*Queue*\n${mrkdwn(briefing?.queue || c.queue, 100)}`,
    `*Reason*\n${mrkdwn(briefing?.reason ?? wait?.start.note ?? 'not given', 1000)}`,
    `*Trigger*\n${mrkdwn(briefing?.trigger ?? wait?.start.trigger ?? 'unknown', 100)}`,
  ].map((text) => ({ type: 'mrkdwn' as const, text: fit(text, LIMITS.fieldText) }));
  const thread = linkable(input.threadLink)
    ? `<${input.threadLink}|Open the thread>`
    : input.threadChannel && /^[CG][A-Z0-9]+$/.test(input.threadChannel)
      ? `Thread in <#${input.threadChannel}>`
      : 'Thread in the support channel';
  const context = `${thread} · *Now:* ${ownerLabel(c)} · as of ${slackTime(input.now)}`;

  const blocks: types.KnownBlock[] = [
    { type: 'section', text: { type: 'mrkdwn', text: fit(headline, LIMITS.sectionText) } },
    { type: 'section', fields },
    { type: 'context', elements: [{ type: 'mrkdwn', text: fit(context, LIMITS.contextText) }] },
  ];
  if (current && c.state === 'waiting') {
    blocks.push({
      type: 'actions',
      block_id: 'managers_actions',
      elements: [{ type: 'button', action_id: BRIEFING_ACTIONS.claim, text: { type: 'plain_text', text: 'Claim', emoji: true }, style: 'primary', value: briefingButtonValue(c.id, input.escalation) }],
    });
  }
  return { text: escapeMrkdwn(fit(plain, 300)), blocks };
}

/** The same as text alone, for when Slack refuses the card for its content. */
export function managersCardText(input: ManagersCardInput): SlackMessage {
  const card = managersCard(input);
  const lines = (card.blocks ?? []).flatMap((b) => {
    const block = b as { text?: { text?: string }; fields?: Array<{ text: string }>; elements?: Array<{ text?: unknown }> };
    if (block.text?.text) return [block.text.text];
    if (block.fields) return [block.fields.map((f) => f.text.replace('\n', ': ')).join(' · ')];
    return (block.elements ?? []).flatMap((e) => (typeof e.text === 'string' ? [e.text] : []));
  });
  return { text: fit(lines.join('\n'), 3000) };
}
