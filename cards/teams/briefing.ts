/**
 * The Teams briefing card: everything an operator needs to understand an escalated case in 30
 * seconds (priority, summary, intent, entities, sentiment, what the agent tried, the pending
 * question, options), with Claim, one button per option, Return to agent (with a note) and Close.
 * Same conversation in, same card out. Long fields are cut until the card fits Teams' size limit;
 * the builder never fails.
 */
import type { HandoffEnvelope, Priority, Sentiment } from '../../src/envelope.ts';
import type { Conversation } from '../../src/model.ts';
import {
  button,
  CARD_SCHEMA,
  labelled,
  richText,
  textBlock,
  type AdaptiveCard,
  type CardAction,
  type CardActionData,
  type CardElement,
} from './adaptive.ts';
import type { TeamsText } from './message.ts';
import { agentsLine, customerLabel, describeChange, escalationNumber, lastEscalationAt, originLabel, ownerRuns, sinceLastEscalation } from './status.ts';
import { clip, compactJson, escapeMessageText, oneLine, utf16Bytes } from './text.ts';

/**
 * Largest card we send, as Teams counts it (UTF-16). Teams refuses messages over ~40 KB; the rest
 * of the budget is the activity envelope and headroom.
 */
export const CARD_BUDGET_BYTES = 28_000;

/** Teams shows per-user views to at most 60 users. */
export const MAX_REFRESH_USERS = 60;

/** Who is looking at the card. The base card (no viewer) is what everyone sees. */
export interface CardView {
  /** The viewing operator's id (`teams:<user id>`), for "You hold this conversation". */
  viewerId?: string;
  /** A line only this viewer sees, e.g. who won a claim race. */
  notice?: string;
  /** Teams user ids whose client fetches its own view automatically (the owner). */
  refreshUserIds?: string[];
}

const PRIORITY: Record<Priority, { icon: string; color?: 'attention' | 'warning' | 'accent' }> = {
  low: { icon: '⚪' },
  normal: { icon: '🔵', color: 'accent' },
  high: { icon: '🟠', color: 'warning' },
  urgent: { icon: '🔴', color: 'attention' },
};

const SENTIMENT: Record<Sentiment, string> = { positive: '🙂', neutral: '😐', frustrated: '😕', angry: '😠' };

/** Field limits at full size; smaller scales are tried until the card fits. */
const FULL = {
  reason: 300,
  summary: 1200,
  pending: 500,
  field: 200,
  entity: 120,
  entities: 20,
  constraint: 300,
  constraints: 10,
  actions: 20,
  actionInput: 240,
  actionOutput: 300,
  tradeoffs: 500,
  history: 8,
  note: 300,
};
type Limits = typeof FULL;
const SCALES = [1, 0.5, 0.25, 0.1];

/** The briefing for the conversation's current envelope and ownership, as seen by `view`. */
export function buildBriefingCard(conversation: Conversation, view: CardView = {}): AdaptiveCard {
  const envelope = conversation.briefing;
  if (!envelope) return buildSupersededBriefingCard(conversation, 'No briefing on this conversation.');
  for (const scale of SCALES) {
    const card = briefing(conversation, envelope, view, scaled(scale));
    if (utf16Bytes(card) <= CARD_BUDGET_BYTES) return card;
  }
  return minimalBriefing(conversation, envelope, view);
}

/** What an earlier briefing becomes once a newer one is posted: no buttons, so nobody acts on stale options. */
export function buildSupersededBriefingCard(conversation: Conversation, why = 'A newer briefing replaced this one; use the latest.'): AdaptiveCard {
  return card(
    [
      richText([{ text: `🗂️ ${conversation.ticket}: `, weight: 'bolder' }, { text: why }]),
      richText([{ text: 'Now: ' }, ...ownerRuns(conversation)], { isSubtle: true, spacing: 'small' }),
    ],
    [],
    conversation,
    {},
  );
}

function briefing(conversation: Conversation, envelope: HandoffEnvelope, view: CardView, l: Limits): AdaptiveCard {
  const ticket = envelope.ticket || conversation.ticket;
  const priority = PRIORITY[envelope.priority];
  const body: CardElement[] = [];
  if (view.notice) body.push(notice(view.notice));

  body.push(
    richText(
      [
        {
          text: `${priority.icon} ${ticket} needs a person · ${envelope.priority} priority`,
          weight: 'bolder',
          size: 'medium',
          ...(priority.color ? { color: priority.color } : {}),
        },
      ],
    ),
  );
  body.push(richText([{ text: clip(envelope.reason, l.reason), italic: true }], { spacing: 'small' }));
  const agents = agentsLine(envelope);
  if (agents) body.push(richText([{ text: `🤖 ${agents}`, isSubtle: true }], { spacing: 'small' }));
  body.push(richText([{ text: clip(envelope.summary, l.summary) }]));

  body.push(
    container([
      labelled('Customer', `${customerLabel(conversation)} via ${originLabel(conversation)}`, l.field),
      labelled('Intent', envelope.intent, l.field),
      labelled('Sentiment', `${SENTIMENT[envelope.sentiment]} ${envelope.sentiment}`, l.field),
      labelled('Queue', envelope.queue || conversation.queue, l.field),
      labelled('Trigger', envelope.trigger, l.field),
    ]),
  );

  const entities = entityLines(envelope, l);
  if (entities.length) body.push(section('Details', entities.map((line) => richText([{ text: line }], { spacing: 'none' }))));
  if (envelope.constraints.length) {
    body.push(section('Constraints', envelope.constraints.slice(0, l.constraints).map((c) => richText([{ text: `• ${oneLine(c, l.constraint)}` }], { spacing: 'none' }))));
  }
  body.push(section('What the agent tried', actionLines(envelope, l).map((line) => richText([{ text: line }], { spacing: 'none' }))));
  body.push({
    type: 'Container',
    style: 'emphasis',
    spacing: 'medium',
    items: [textBlock('**Pending question**', { spacing: 'none' }), richText([{ text: clip(envelope.pendingQuestion, l.pending) }])],
  });

  const options = uniqueOptions(envelope);
  const detailed = options.filter((o) => o.tradeoffs || o.risk !== 'low');
  if (detailed.length) {
    body.push(
      section(
        'Options',
        detailed.map((o) =>
          richText(
            [
              { text: `• ${oneLine(o.label, 75)}`, weight: 'bolder' },
              { text: o.risk !== 'low' ? ` (${o.risk} risk)` : '', ...(o.risk === 'high' ? { color: 'attention' as const } : {}) },
              { text: o.tradeoffs ? `: ${oneLine(o.tradeoffs, l.tradeoffs)}` : '' },
            ],
            { spacing: 'none' },
          ),
        ),
      ),
    );
  }

  body.push(statusSection(conversation, view, l));

  const { elements, actions } = controls(conversation, options);
  body.push(...elements);
  return card(body, actions, conversation, view);
}

/** Last resort when even the smallest scale is too big: the essentials and the buttons. */
function minimalBriefing(conversation: Conversation, envelope: HandoffEnvelope, view: CardView): AdaptiveCard {
  const body: CardElement[] = [];
  if (view.notice) body.push(notice(clip(view.notice, 200)));
  body.push(richText([{ text: `${envelope.ticket || conversation.ticket} needs a person · ${envelope.priority} priority`, weight: 'bolder' }]));
  body.push(richText([{ text: oneLine(envelope.pendingQuestion, 200) }]));
  const agents = agentsLine(envelope);
  if (agents) body.push(richText([{ text: `🤖 ${clip(agents, 200)}`, isSubtle: true }]));
  body.push(richText([{ text: 'The full briefing was too large for Teams; read the thread for details.', isSubtle: true }]));
  body.push(richText(ownerRuns(conversation, view.viewerId)));
  const { elements, actions } = controls(conversation, uniqueOptions(envelope).map((o) => ({ ...o, label: oneLine(o.label, 40) })));
  body.push(...elements);
  return card(body, actions, conversation, view);
}

/**
 * The briefing as a short text message, for when Teams refuses the card: ticket, reason, pending
 * question and options, and how to act without buttons (typed commands in the thread).
 */
export function buildBriefingFallbackText(conversation: Conversation): TeamsText {
  const envelope = conversation.briefing;
  const ticket = envelope?.ticket || conversation.ticket;
  const lines = [`🗂️ <b>${escapeMessageText(ticket)} needs a person</b>${envelope ? ` · ${envelope.priority} priority` : ''}`];
  if (envelope) {
    lines.push(`<b>Reason:</b> ${escapeMessageText(oneLine(envelope.reason, 300))}`);
    const agents = agentsLine(envelope);
    if (agents) lines.push(`🤖 ${escapeMessageText(agents)}`);
    lines.push(`<b>Pending question:</b> ${escapeMessageText(oneLine(envelope.pendingQuestion, 500))}`);
    const options = uniqueOptions(envelope).map((o) => escapeMessageText(oneLine(o.label, 75)));
    if (options.length) lines.push(`<b>Options:</b> ${options.join(' · ')}`);
  }
  lines.push("<i>Teams would not show the full briefing card. Open this thread for the conversation so far; type 'claim' here to take it, 'return: your note' to hand it back, or 'close'.</i>");
  return {
    text: lines.join('<br>'),
    textFormat: 'xml',
    summary: oneLine(`${ticket} needs a person${envelope ? `: ${envelope.pendingQuestion}` : ''}`, 200),
  };
}

/** Buttons (and the note box) for the conversation's current state. */
function controls(conversation: Conversation, options: HandoffEnvelope['options']): { elements: CardElement[]; actions: CardAction[] } {
  // A decision answers one escalation: the bridge refuses it once a newer one exists.
  const escalation = escalationNumber(conversation);
  const data = (action: CardActionData['action'], optionId?: string): CardActionData => ({
    handoff: 1,
    conversationId: conversation.id,
    action,
    ...(optionId ? { optionId, ...(escalation > 0 ? { escalation } : {}) } : {}),
  });
  const noteInput: CardElement = {
    type: 'Input.Text',
    id: 'note',
    label: 'Note for the agent (optional)',
    placeholder: 'What you found or decided; the agent continues from it',
    isMultiline: true,
    maxLength: 1000,
  };
  switch (conversation.state) {
    case 'waiting': {
      const elements: CardElement[] = [noteInput];
      if (options.length) {
        elements.push(textBlock('**Decide without taking over**', { spacing: 'medium' }));
        elements.push({
          type: 'ActionSet',
          actions: options.map((o) => button(o.label, data('option', o.id), o.risk === 'high' ? 'destructive' : 'default')),
        });
      }
      return {
        elements,
        actions: [button('Claim', data('claim'), 'positive'), button('Return to agent', data('return')), button('Close', data('close'))],
      };
    }
    case 'human':
      return { elements: [noteInput], actions: [button('Return to agent', data('return'), 'positive'), button('Close', data('close'))] };
    case 'agent':
      return { elements: [], actions: [button('Take over', data('takeover'))] };
    case 'closed':
      return { elements: [], actions: [] };
  }
}

function statusSection(conversation: Conversation, view: CardView, l: Limits): CardElement {
  const items: CardElement[] = [richText(ownerRuns(conversation, view.viewerId))];
  for (const change of sinceLastEscalation(conversation).slice(-l.history)) {
    items.push(richText([{ text: describeChange(change, l.note) }], { spacing: 'none', isSubtle: true }));
  }
  const since = lastEscalationAt(conversation);
  for (const d of conversation.decisions) {
    if (since && d.at < since) continue;
    items.push(
      richText([{ text: `✅ ${oneLine(d.by.name, 100)} chose "${oneLine(d.label, 75)}"${d.note ? `: ${oneLine(d.note, l.note)}` : ''}` }], {
        spacing: 'none',
      }),
    );
  }
  return { type: 'Container', separator: true, spacing: 'medium', items };
}

function entityLines(envelope: HandoffEnvelope, l: Limits): string[] {
  const e = envelope.entities;
  const list = (values: string[]) => values.slice(0, l.entities).map((v) => oneLine(v, l.entity)).join(', ');
  const lines: string[] = [];
  if (e.ids.length) lines.push(`IDs: ${list(e.ids)}`);
  if (e.amounts.length) lines.push(`Amounts: ${list(e.amounts.map((a) => a.raw ?? `${a.value}${a.currency ? ' ' + a.currency : ''}`))}`);
  if (e.dates.length) lines.push(`Dates: ${list(e.dates)}`);
  if (e.emails.length) lines.push(`Emails: ${list(e.emails)}`);
  return lines;
}

function actionLines(envelope: HandoffEnvelope, l: Limits): string[] {
  if (envelope.actionsTaken.length === 0) return ['Nothing yet.'];
  const shown = envelope.actionsTaken.slice(0, l.actions).map((a) => {
    const output = a.output === undefined ? '' : ` → ${compactJson(a.output, l.actionOutput)}`;
    return `${a.ok ? '✔️' : '❌'} ${oneLine(a.tool, 100)} ${compactJson(a.input, l.actionInput)}${output}`;
  });
  const hidden = envelope.actionsTaken.length - shown.length;
  return hidden > 0 ? [...shown, `… and ${hidden} more`] : shown;
}

/** Options with duplicate ids dropped (the first wins), at most five. */
function uniqueOptions(envelope: HandoffEnvelope): HandoffEnvelope['options'] {
  const seen = new Set<string>();
  return envelope.options.filter((o) => !seen.has(o.id) && seen.add(o.id)).slice(0, 5);
}

function notice(text: string): CardElement {
  return { type: 'Container', id: 'notice', style: 'warning', items: [richText([{ text, weight: 'bolder' }])] };
}

function section(title: string, items: CardElement[]): CardElement {
  return { type: 'Container', spacing: 'medium', items: [textBlock(`**${title}**`, { spacing: 'none' }), ...items] };
}

function container(items: CardElement[]): CardElement {
  return { type: 'Container', spacing: 'medium', items };
}

function card(body: CardElement[], actions: CardAction[], conversation: Conversation, view: CardView): AdaptiveCard {
  const userIds = (view.refreshUserIds ?? []).slice(0, MAX_REFRESH_USERS);
  return {
    type: 'AdaptiveCard',
    $schema: CARD_SCHEMA,
    version: '1.5',
    body,
    ...(actions.length ? { actions } : {}),
    // Universal Actions: listed users' clients fetch their own view (owner controls) whenever the base card changes.
    refresh: {
      action: { type: 'Action.Execute', title: 'Refresh', verb: 'refresh', data: { handoff: 1, conversationId: conversation.id, action: 'refresh' } },
      userIds,
    },
    msteams: { width: 'Full' },
    fallbackText: `${conversation.ticket}: this card needs a newer Teams client.`,
  };
}

function scaled(scale: number): Limits {
  const out = { ...FULL };
  for (const key of Object.keys(out) as Array<keyof Limits>) out[key] = Math.max(1, Math.floor(FULL[key] * scale));
  return out;
}
