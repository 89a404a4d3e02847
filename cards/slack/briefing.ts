/**
 * The briefing card: everything an operator needs to understand an escalated case in 30 seconds,
 * with Claim, one button per option (high-risk ones ask for confirmation), Return and Close.
 * Same conversation in, same card out; every field is truncated to Block Kit limits, never rejected.
 */
import type { types } from '@slack/bolt';
import type { HandoffEnvelope, Priority, Sentiment } from '../../src/envelope.ts';
import type { Conversation } from '../../src/model.ts';
import { LIMITS, type SlackMessage } from './limits.ts';
import { describeChange, ownerLabel, sinceLastEscalation } from './status.ts';
import { escapeMrkdwn, fit, mrkdwn, plain, quote } from './text.ts';

/** action_ids on the briefing; option buttons are `OPTION_PREFIX + option.id`. */
export const BRIEFING_ACTIONS = {
  claim: 'briefing_claim',
  returnToAgent: 'briefing_return',
  close: 'briefing_close',
  takeOver: 'briefing_takeover',
  optionPrefix: 'briefing_option:',
} as const;

const PRIORITY_ICON: Record<Priority, string> = {
  low: ':white_circle:',
  normal: ':large_blue_circle:',
  high: ':large_orange_circle:',
  urgent: ':red_circle:',
};

const SENTIMENT_ICON: Record<Sentiment, string> = {
  positive: ':slightly_smiling_face:',
  neutral: ':neutral_face:',
  frustrated: ':confused:',
  angry: ':rage:',
};

/** Builds the briefing for the conversation's current envelope and ownership. */
export function briefingCard(conversation: Conversation): SlackMessage {
  const envelope = conversation.briefing;
  if (!envelope) return supersededBriefingCard(conversation, 'No briefing on this conversation.');
  const blocks: types.KnownBlock[] = [];
  const ticket = envelope.ticket || conversation.ticket;

  blocks.push({
    type: 'header',
    text: { type: 'plain_text', text: plain(`${ticket}: ${envelope.intent}`, LIMITS.headerText), emoji: false },
  });
  blocks.push({
    type: 'section',
    text: {
      type: 'mrkdwn',
      text: fit(`${PRIORITY_ICON[envelope.priority]} *${capitalize(envelope.priority)} priority* · ${escapeMrkdwn(envelope.reason)}\n\n${escapeMrkdwn(envelope.summary)}`, LIMITS.sectionText),
    },
  });
  blocks.push({
    type: 'section',
    fields: [
      field('Customer', customerText(conversation)),
      field('Channel', conversation.origin),
      field('Queue', envelope.queue || conversation.queue),
      field('Sentiment', `${SENTIMENT_ICON[envelope.sentiment]} ${envelope.sentiment}`),
      field('Intent', envelope.intent),
      field('Trigger', envelope.trigger),
    ],
  });

  const entities = entitiesText(envelope);
  if (entities) blocks.push(section(`*Details*\n${entities}`));
  if (envelope.constraints.length > 0) {
    blocks.push(section(`*Constraints*\n${envelope.constraints.map((c) => `• ${escapeMrkdwn(c)}`).join('\n')}`));
  }
  blocks.push(section(`*What the agent tried*\n${actionsText(envelope)}`));
  blocks.push(section(`*Pending question*\n${quote(escapeMrkdwn(envelope.pendingQuestion))}`));
  const optionsDetail = envelope.options
    .filter((o) => o.tradeoffs || o.risk !== 'low')
    .map((o) => `• *${escapeMrkdwn(o.label)}*${o.risk !== 'low' ? ` (${o.risk} risk)` : ''}${o.tradeoffs ? `: ${escapeMrkdwn(o.tradeoffs)}` : ''}`);
  if (optionsDetail.length > 0) blocks.push(section(`*Options*\n${optionsDetail.join('\n')}`));

  blocks.push({ type: 'divider' });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: fit(statusText(conversation), LIMITS.contextText) }] });
  const buttons = briefingButtons(conversation, envelope);
  if (buttons.length > 0) blocks.push({ type: 'actions', block_id: 'briefing_actions', elements: buttons });

  const text = fit(`${ticket} needs a person (${envelope.priority}): ${envelope.pendingQuestion.replace(/\s+/g, ' ')}`, 300);
  return { text: escapeMrkdwn(text), blocks };
}

/** What replaces an earlier briefing once a newer one is posted: no buttons, so nobody acts on stale options. */
export function supersededBriefingCard(conversation: Conversation, why = 'A newer briefing replaced this one; use the latest.'): SlackMessage {
  const text = `${conversation.ticket}: ${why}`;
  return {
    text: escapeMrkdwn(text),
    blocks: [
      section(`:card_index_dividers: *${escapeMrkdwn(conversation.ticket)}*: ${escapeMrkdwn(why)}`),
      { type: 'context', elements: [{ type: 'mrkdwn', text: `Now: ${ownerLabel(conversation)}` }] },
    ],
  };
}

/** The buttons the briefing offers in the conversation's current state. */
function briefingButtons(conversation: Conversation, envelope: HandoffEnvelope): types.Button[] {
  const buttons: types.Button[] = [];
  const value = fit(conversation.id, LIMITS.buttonValue);
  if (conversation.state === 'waiting') {
    buttons.push(button(BRIEFING_ACTIONS.claim, 'Claim', value, 'primary'));
    // Duplicate action_ids make Slack refuse the whole message, so the first option with an id wins.
    const seen = new Set<string>();
    const options = envelope.options.filter((o) => !seen.has(o.id) && seen.add(o.id));
    for (const option of options.slice(0, LIMITS.actionsElements - 3)) {
      const b = button(fit(BRIEFING_ACTIONS.optionPrefix + option.id, LIMITS.actionId), option.label, value);
      if (option.risk === 'high') {
        b.style = 'danger';
        b.confirm = {
          title: { type: 'plain_text', text: plain(`${option.label}?`, LIMITS.confirmTitle) },
          text: { type: 'mrkdwn', text: mrkdwn(option.tradeoffs?.trim() || `This is a high-risk choice for ${conversation.ticket}. The agent will act on it.`, LIMITS.confirmText) },
          confirm: { type: 'plain_text', text: plain(`Yes, ${option.label}`, LIMITS.confirmButton) },
          deny: { type: 'plain_text', text: 'Cancel' },
          style: 'danger',
        };
      }
      buttons.push(b);
    }
    // "The agent can handle this": send it back unclaimed, with a note.
    buttons.push(button(BRIEFING_ACTIONS.returnToAgent, 'Return to agent', value));
    buttons.push(button(BRIEFING_ACTIONS.close, 'Close', value));
  } else if (conversation.state === 'human') {
    buttons.push(button(BRIEFING_ACTIONS.returnToAgent, 'Return to agent', value, 'primary'));
    buttons.push(button(BRIEFING_ACTIONS.close, 'Close', value));
  } else if (conversation.state === 'agent') {
    buttons.push(button(BRIEFING_ACTIONS.takeOver, 'Take over', value));
  }
  return buttons;
}

/** Who holds it now, plus what happened to this briefing (claims, decisions, returns). */
function statusText(conversation: Conversation): string {
  const lines = [`*Owner:* ${ownerLabel(conversation)}`];
  const changes = sinceLastEscalation(conversation);
  for (const change of changes.slice(-6)) lines.push(describeChange(change, 300));
  const escalatedAt = [...conversation.history].reverse().find((h) => h.to === 'waiting')?.at;
  for (const decision of conversation.decisions) {
    if (escalatedAt && decision.at < escalatedAt) continue;
    lines.push(`:white_check_mark: *${escapeMrkdwn(decision.by.name)}* chose *${escapeMrkdwn(decision.label)}*${decision.note ? `: _${escapeMrkdwn(decision.note)}_` : ''}`);
  }
  return lines.join('\n');
}

function customerText(conversation: Conversation): string {
  const c = conversation.customer;
  const name = c.name ?? c.email ?? c.id;
  return c.email && c.email !== name ? `${name} (${c.email})` : name;
}

function entitiesText(envelope: HandoffEnvelope): string {
  const e = envelope.entities;
  const lines: string[] = [];
  const list = (values: string[]) => values.map((v) => `\`${escapeMrkdwn(v.replace(/`/g, "'"))}\``).join(', ');
  if (e.ids.length) lines.push(`IDs: ${list(e.ids)}`);
  if (e.amounts.length) lines.push(`Amounts: ${list(e.amounts.map((a) => a.raw ?? `${a.value}${a.currency ? ' ' + a.currency : ''}`))}`);
  if (e.dates.length) lines.push(`Dates: ${list(e.dates)}`);
  if (e.emails.length) lines.push(`Emails: ${list(e.emails)}`);
  return lines.join('\n');
}

function actionsText(envelope: HandoffEnvelope): string {
  if (envelope.actionsTaken.length === 0) return '_Nothing yet._';
  return envelope.actionsTaken
    .map((a) => {
      const input = compactJson(a.input, 160);
      const output = a.output === undefined ? '' : ` → ${compactJson(a.output, 200)}`;
      return `• ${a.ok ? ':white_check_mark:' : ':x:'} \`${escapeMrkdwn(a.tool)}\` ${escapeMrkdwn(input)}${escapeMrkdwn(output)}`;
    })
    .join('\n');
}

function compactJson(value: unknown, max: number): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  } catch {
    text = String(value);
  }
  return fit(text.replace(/\s+/g, ' '), max);
}

function field(label: string, value: string): types.MrkdwnElement {
  return { type: 'mrkdwn', text: fit(`*${label}*\n${escapeMrkdwn(value)}`, LIMITS.fieldText) };
}

function section(text: string): types.SectionBlock {
  return { type: 'section', text: { type: 'mrkdwn', text: fit(text, LIMITS.sectionText) } };
}

function button(actionId: string, label: string, value: string, style?: 'primary' | 'danger'): types.Button {
  const b: types.Button = { type: 'button', action_id: actionId, text: { type: 'plain_text', text: plain(label, LIMITS.buttonText), emoji: true }, value };
  if (style) b.style = style;
  return b;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
