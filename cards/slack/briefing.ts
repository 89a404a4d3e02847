/**
 * The briefing card: everything an operator needs to understand an escalated case in 30 seconds,
 * with Claim, one button per option (high-risk ones ask for confirmation), Return and Close.
 * Same conversation in, same card out; every field is truncated to Block Kit limits, and the whole
 * message to a text budget Slack accepts. Buttons carry the escalation they belong to.
 */
import type { types } from '@slack/bolt';
import type { HandoffEnvelope, Priority, Sentiment } from '../../src/envelope.ts';
import type { Conversation } from '../../src/model.ts';
import { blocksTextLength, LIMITS, type SlackMessage } from './limits.ts';
import { describeChange, escalationNumber, ownerLabel, sinceLastEscalation } from './status.ts';
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

/** What a briefing button carries: the conversation, and which of its escalations the card shows. */
export interface BriefingButtonValue {
  conversationId: string;
  /** Absent on cards posted before buttons carried it. */
  escalation?: number;
}

/** `<conversation id>|<escalation>`: a click on an older card is recognised as stale. */
export function briefingButtonValue(conversationId: string, escalation: number): string {
  return fit(`${conversationId}|${escalation}`, LIMITS.buttonValue);
}

export function parseBriefingButtonValue(value: unknown): BriefingButtonValue | undefined {
  if (typeof value !== 'string' || !value) return undefined;
  const bar = value.lastIndexOf('|');
  if (bar < 0) return { conversationId: value };
  const escalation = Number(value.slice(bar + 1));
  const conversationId = value.slice(0, bar);
  if (!conversationId) return undefined;
  return Number.isInteger(escalation) && escalation > 0 ? { conversationId, escalation } : { conversationId };
}

/**
 * Builds the briefing for the conversation's current envelope and ownership. The text of all blocks
 * together stays within `LIMITS.messageBlocksText`: the longest parts are shortened first.
 */
export function briefingCard(conversation: Conversation): SlackMessage {
  const envelope = conversation.briefing;
  if (!envelope) return supersededBriefingCard(conversation, 'No briefing on this conversation.');
  const ticket = envelope.ticket || conversation.ticket;

  const header: types.HeaderBlock = {
    type: 'header',
    text: { type: 'plain_text', text: plain(`${ticket}: ${envelope.intent}`, LIMITS.headerText), emoji: false },
  };
  const buttons = briefingButtons(conversation, envelope, true);
  const actions: types.ActionsBlock | undefined = buttons.length > 0 ? { type: 'actions', block_id: 'briefing_actions', elements: buttons } : undefined;

  // The texts that share what the header and buttons leave of the budget, each within its own limit.
  const summary = fit(`${PRIORITY_ICON[envelope.priority]} *${capitalize(envelope.priority)} priority* · ${escapeMrkdwn(envelope.reason)}\n\n${escapeMrkdwn(envelope.summary)}`, LIMITS.sectionText);
  const fields = [
    ['Customer', customerText(conversation)],
    ['Channel', conversation.origin],
    ['Queue', envelope.queue || conversation.queue],
    ['Sentiment', `${SENTIMENT_ICON[envelope.sentiment]} ${envelope.sentiment}`],
    ['Intent', envelope.intent],
    ['Trigger', envelope.trigger],
  ].map(([label, value]) => fit(`*${label}*\n${escapeMrkdwn(value!)}`, LIMITS.fieldText));
  const entities = entitiesText(envelope);
  const details = entities ? fit(`*Details*\n${entities}`, LIMITS.sectionText) : undefined;
  const constraints = envelope.constraints.length > 0 ? fit(`*Constraints*\n${envelope.constraints.map((c) => `• ${escapeMrkdwn(c)}`).join('\n')}`, LIMITS.sectionText) : undefined;
  const agents = agentsLine(envelope);
  const tried = fit(`*What the agent tried*\n${actionsText(envelope)}`, LIMITS.sectionText);
  const pending = fit(`*Pending question*\n${quote(escapeMrkdwn(envelope.pendingQuestion))}`, LIMITS.sectionText);
  const optionsDetail = envelope.options
    .filter((o) => o.tradeoffs || o.risk !== 'low')
    .map((o) => `• *${escapeMrkdwn(o.label)}*${o.risk !== 'low' ? ` (${o.risk} risk)` : ''}${o.tradeoffs ? `: ${escapeMrkdwn(o.tradeoffs)}` : ''}`);
  const options = optionsDetail.length > 0 ? fit(`*Options*\n${optionsDetail.join('\n')}`, LIMITS.sectionText) : undefined;
  const status = fit(statusText(conversation), LIMITS.contextText);

  const shared = [summary, ...fields, agents, details, constraints, tried, pending, options, status].filter((p) => p !== undefined);
  const fixed = blocksTextLength([header, ...(actions ? [actions] : [])]);
  const cap = shareBudget(
    shared.map((p) => p.length),
    LIMITS.messageBlocksText - fixed,
  );
  const text = (p: string) => fit(p, cap);

  const blocks: types.KnownBlock[] = [header];
  blocks.push({ type: 'section', text: { type: 'mrkdwn', text: text(summary) } });
  blocks.push({ type: 'section', fields: fields.map((f) => ({ type: 'mrkdwn', text: text(f) })) });
  if (agents) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: text(agents) }] });
  for (const p of [details, constraints, tried, pending, options]) if (p) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: text(p) } });
  blocks.push({ type: 'divider' });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: text(status) }] });
  if (actions) blocks.push(actions);

  return { text: notificationText(conversation), blocks };
}

/**
 * Smaller briefings, for when Slack refuses the full card for good: first the essentials with the
 * Claim / Return / Close buttons (no options), then the same as text alone. Both say that the full
 * briefing is kept in the bridge.
 */
export function briefingFallbacks(conversation: Conversation): SlackMessage[] {
  const envelope = conversation.briefing;
  if (!envelope) return [];
  const ticket = envelope.ticket || conversation.ticket;
  const agents = agentsLine(envelope);
  const lines = [
    `:rotating_light: *${escapeMrkdwn(ticket)}* needs a person (${envelope.priority}) · ${mrkdwn(envelope.reason, 300)}`,
    ...(agents ? [agents] : []),
    `*Pending question*\n${quote(mrkdwn(envelope.pendingQuestion, 600))}`,
    `_The full briefing did not fit in Slack; it is kept with the conversation in the bridge._`,
  ];
  const buttons = briefingButtons(conversation, envelope, false);
  const compact: SlackMessage = {
    text: notificationText(conversation),
    blocks: [
      section(lines.join('\n')),
      { type: 'context', elements: [{ type: 'mrkdwn', text: fit(`*Owner:* ${ownerLabel(conversation)}`, LIMITS.contextText) }] },
      ...(buttons.length > 0 ? [{ type: 'actions', block_id: 'briefing_actions', elements: buttons } satisfies types.ActionsBlock] : []),
    ],
  };
  const textOnly: SlackMessage = { text: fit([...lines, `*Owner:* ${ownerLabel(conversation)}`].join('\n'), 3000) };
  return [compact, textOnly];
}

/** What replaces an earlier briefing once a newer one is posted: no buttons, so nobody acts on stale options. */
export function supersededBriefingCard(conversation: Conversation, why = 'A newer briefing replaced this one; use the latest.'): SlackMessage {
  const text = `${conversation.ticket}: ${why}`;
  return {
    text: escapeMrkdwn(text),
    blocks: [
      section(`:card_index_dividers: *${escapeMrkdwn(conversation.ticket)}*: ${escapeMrkdwn(why)}`),
      { type: 'context', elements: [{ type: 'mrkdwn', text: fit(`Now: ${ownerLabel(conversation)}`, LIMITS.contextText) }] },
    ],
  };
}

/** The buttons the briefing offers in the conversation's current state (`withOptions`: one per option too). */
function briefingButtons(conversation: Conversation, envelope: HandoffEnvelope, withOptions: boolean): types.Button[] {
  const buttons: types.Button[] = [];
  const value = briefingButtonValue(conversation.id, escalationNumber(conversation));
  if (conversation.state === 'waiting') {
    buttons.push(button(BRIEFING_ACTIONS.claim, 'Claim', value, 'primary'));
    // Duplicate action_ids make Slack refuse the whole message, so the first option with an id wins.
    const seen = new Set<string>();
    const options = withOptions ? envelope.options.filter((o) => !seen.has(o.id) && seen.add(o.id)) : [];
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

/**
 * Several agents: "Escalated by *billing* · agents: triage → billing". Undefined when the envelope
 * names no agent (one agent runs), so those cards are unchanged.
 */
export function agentsLine(envelope: Pick<HandoffEnvelope, 'agent' | 'agents'>): string | undefined {
  const involved = (envelope.agents ?? []).filter((a) => a.length > 0);
  const parts: string[] = [];
  if (envelope.agent) parts.push(`Escalated by *${escapeMrkdwn(envelope.agent)}*`);
  if (involved.length > 0 && !(involved.length === 1 && involved[0] === envelope.agent)) parts.push(`agents: ${involved.map(escapeMrkdwn).join(' → ')}`);
  if (parts.length === 0) return undefined;
  return fit(`:robot_face: ${parts.join(' · ')}`, LIMITS.contextText);
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

function notificationText(conversation: Conversation): string {
  const envelope = conversation.briefing!;
  const ticket = envelope.ticket || conversation.ticket;
  return escapeMrkdwn(fit(`${ticket} needs a person (${envelope.priority}): ${envelope.pendingQuestion.replace(/\s+/g, ' ')}`, 300));
}

/**
 * The largest length every part may keep so that all of them together fit in `budget`: parts
 * shorter than it stay whole, the longest are cut to it (the longest are shortened first).
 */
export function shareBudget(lengths: readonly number[], budget: number): number {
  const sorted = [...lengths].sort((a, b) => a - b);
  let remaining = Math.max(0, budget);
  for (let i = 0; i < sorted.length; i++) {
    const left = sorted.length - i;
    if (sorted[i]! * left > remaining) return Math.floor(remaining / left);
    remaining -= sorted[i]!;
  }
  return Number.POSITIVE_INFINITY;
}
