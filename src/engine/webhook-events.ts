/**
 * The webhook events: a stable JSON schema (zod here; `docs/webhooks.schema.json` is derived from
 * it) and the pure mapping from committed work items to events. Every event is built from a
 * redacted copy of the conversation, so no card number or IBAN leaves through a webhook.
 *
 * Body: `{ type, id, ticket, conversation_id, at, data }`. `id` is the work item's key
 * (conversation id and work-log seq): the same for every retry, so a receiver dedupes on it.
 */
import { z } from 'zod';
import type { Actor, Conversation, HistoryEntry, Message, Operator } from '../model.ts';
import type { WorkItem } from '../store/store.ts';
import type { Redactor } from './redact.ts';

export const WEBHOOK_EVENT_TYPES = [
  'conversation.escalated',
  'conversation.claimed',
  'conversation.returned',
  'conversation.released',
  'conversation.transferred',
  'conversation.closed',
  'conversation.reopened',
  'handoff.agent',
  'message.created',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

const State = z.enum(['agent', 'waiting', 'human', 'closed']);

const OperatorRef = z.object({
  id: z.string().describe('Namespaced by workspace, e.g. slack:U123'),
  name: z.string(),
  workspace: z.string(),
});

const ActorRef = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('customer') }),
    z.object({ kind: z.literal('agent') }),
    z.object({ kind: z.literal('system') }),
    z.object({ kind: z.literal('operator'), operator: OperatorRef }),
  ])
  .describe('Who did it');

const Note = z.string().optional().describe('Free text from the operator or the system (redacted)');

const base = <T extends WebhookEventType, D extends z.ZodType>(type: T, data: D) =>
  z.object({
    type: z.literal(type),
    id: z.string().describe('Stable per event, the same on every retry: dedupe on it'),
    ticket: z.string().describe('e.g. HB-1042'),
    conversation_id: z.string(),
    at: z.string().describe('When it happened (ISO 8601)'),
    data,
  });

export const ConversationEscalatedSchema = base(
  'conversation.escalated',
  z.object({
    state: State,
    escalation: z.number().int().min(1).describe('The n-th escalation of this conversation'),
    trigger: z.string().describe('explicit_request, refund_threshold, compliance, agent_tool, ...'),
    reason: z.string(),
    by: ActorRef,
    queue: z.string(),
    origin: z.enum(['webchat', 'email', 'api']),
    customer: z.object({ id: z.string(), name: z.string().optional(), email: z.string().optional() }),
    agent: z.string().optional().describe('The agent that escalated (several agents configured only)'),
    agents: z.array(z.string()).optional().describe('Every agent involved so far (several agents configured only)'),
    briefing: z
      .object({
        priority: z.enum(['low', 'normal', 'high', 'urgent']),
        summary: z.string(),
        intent: z.string(),
        pending_question: z.string(),
        sentiment: z.enum(['positive', 'neutral', 'frustrated', 'angry']),
        options: z.array(z.object({ id: z.string(), label: z.string(), risk: z.enum(['low', 'medium', 'high']) })),
      })
      .optional()
      .describe("The briefing (redacted); absent when a later escalation replaced it before delivery"),
  }),
);

export const ConversationClaimedSchema = base(
  'conversation.claimed',
  z.object({
    state: State,
    operator: OperatorRef,
    take_over: z.boolean().describe('True when the operator took it from the agent without an escalation'),
  }),
);

export const ConversationReturnedSchema = base(
  'conversation.returned',
  z.object({
    state: State,
    how: z.enum(['return', 'decision', 'fallback']).describe('return: handed back; decision: an option was picked on the briefing; fallback: nobody claimed in time'),
    by: ActorRef,
    note: Note,
    decision: z.object({ option_id: z.string(), label: z.string().optional() }).optional(),
  }),
);

export const ConversationReleasedSchema = base(
  'conversation.released',
  z.object({
    state: State,
    how: z.enum(['release', 'expire']).describe('release: the owner put it back in the queue; expire: the owner did not answer in time'),
    by: ActorRef,
    note: Note,
  }),
);

export const ConversationTransferredSchema = base(
  'conversation.transferred',
  z.object({ state: State, from_operator: OperatorRef.optional(), to_operator: OperatorRef }),
);

export const ConversationClosedSchema = base('conversation.closed', z.object({ state: State, by: ActorRef, note: Note }));

export const ConversationReopenedSchema = base('conversation.reopened', z.object({ state: State, by: ActorRef }));

export const HandoffAgentSchema = base(
  'handoff.agent',
  z.object({
    from_agent: z.string(),
    to_agent: z.string(),
    by: ActorRef,
    reason: z.string().optional().describe('Why the conversation moved to the other agent (redacted)'),
  }),
);

export const MessageCreatedSchema = base(
  'message.created',
  z.object({
    message: z.object({
      id: z.string(),
      at: z.string(),
      role: z.enum(['customer', 'agent', 'operator', 'system']),
      author_name: z.string().optional(),
      text: z.string().describe('Redacted: card numbers, IBANs and identity numbers are masked, e.g. [card •••• 4242]'),
      visibility: z.enum(['public', 'internal']).describe('internal: notes and activity lines the customer never saw'),
      notice: z.string().optional().describe('Set on status notices (escalated, joined, closed, ...)'),
      attachments: z.array(z.object({ name: z.string(), content_type: z.string().optional(), size: z.number().optional() })),
    }),
  }),
);

export const WebhookEventSchema = z
  .discriminatedUnion('type', [
    ConversationEscalatedSchema,
    ConversationClaimedSchema,
    ConversationReturnedSchema,
    ConversationReleasedSchema,
    ConversationTransferredSchema,
    ConversationClosedSchema,
    ConversationReopenedSchema,
    HandoffAgentSchema,
    MessageCreatedSchema,
  ])
  .describe('One webhook delivery body');

export type WebhookEvent = z.output<typeof WebhookEventSchema>;

/** The JSON Schema of a delivery body (checked in as docs/webhooks.schema.json). */
export function webhookJsonSchema(): Record<string, unknown> {
  // `input`: no additionalProperties: false, so fields added later do not break receivers that validate.
  const schema = z.toJSONSchema(WebhookEventSchema, { io: 'input', unrepresentable: 'throw' }) as Record<string, unknown>;
  return { ...schema, $id: 'https://handoff-bridge.dev/schemas/webhooks.schema.json', title: 'Handoff bridge webhook event' };
}

// ---- mapping -------------------------------------------------------------------------------

/** A history entry of an agent-to-agent handoff (reason `agent_handoff`, see src/agent/handoff-history.ts). */
type AgentHandoffEntry = HistoryEntry & { agent_handoff?: { from: string; to: string } };

/** The stable id of the event for one work item: a receiver dedupes on it. */
export function webhookEventId(conversationId: string, seq: number): string {
  return `${conversationId}:${seq}`;
}

function actor(by: Actor): z.output<typeof ActorRef> {
  return by.kind === 'operator' ? { kind: 'operator', operator: operator(by.operator) } : { kind: by.kind };
}

function operator(o: Operator): z.output<typeof OperatorRef> {
  return { id: o.id, name: o.name, workspace: o.workspace };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** Which agents handled the conversation up to `upTo` (history index), from the handoff entries. */
function agentsUpTo(history: HistoryEntry[], upTo: number): { agent?: string; agents?: string[] } {
  const handoffs = history
    .slice(0, upTo + 1)
    .flatMap((h) => ((h as AgentHandoffEntry).agent_handoff && h.reason === 'agent_handoff' ? [(h as AgentHandoffEntry).agent_handoff!] : []));
  if (handoffs.length === 0) return {};
  return { agent: handoffs.at(-1)!.to, agents: [...new Set(handoffs.flatMap((h) => [h.from, h.to]))] };
}

function findEntry(c: Conversation, change: HistoryEntry): number {
  for (let i = c.history.length - 1; i >= 0; i--) {
    const h = c.history[i]!;
    if (h.at === change.at && h.reason === change.reason && h.from === change.from && h.to === change.to) return i;
  }
  return -1;
}

function messageData(m: Message): z.output<typeof MessageCreatedSchema>['data']['message'] {
  return {
    id: m.id,
    at: m.at,
    role: m.author.role,
    ...optional('author_name', m.author.name),
    text: m.text,
    visibility: m.visibility,
    ...optional('notice', m.notice),
    attachments: (m.attachments ?? []).map((a) => ({ name: a.name, ...optional('content_type', a.contentType), ...optional('size', a.size) })),
  };
}

/**
 * The event for one work item, or undefined when the item means nothing to a webhook (a briefing
 * card, a private notice). `conversation` is the conversation as the worker read it; it is
 * redacted here, so callers pass the original.
 */
export function toWebhookEvent(item: WorkItem, original: Conversation, redactor: Redactor): WebhookEvent | undefined {
  const c = redactor.conversation(original);
  const head = { id: webhookEventId(c.id, item.seq), ticket: c.ticket, conversation_id: c.id };
  const payload = item.payload;
  if (payload.kind === 'mirror') {
    const message = c.messages.find((m) => m.id === payload.messageId);
    if (!message) return undefined;
    return { type: 'message.created', ...head, at: message.at, data: { message: messageData(message) } };
  }
  if (payload.kind !== 'ownership') return undefined;
  const change = redactor.entry(payload.change) as AgentHandoffEntry;
  const at = change.at;
  const by = actor(change.by);
  const note = optional('note', change.note);
  switch (change.reason) {
    case 'escalate': {
      const index = findEntry(c, change);
      const escalation = c.history.slice(0, index < 0 ? c.history.length : index + 1).filter((h) => h.reason === 'escalate').length;
      const latest = escalation === c.history.filter((h) => h.reason === 'escalate').length;
      const b = latest ? c.briefing : undefined;
      return {
        type: 'conversation.escalated',
        ...head,
        at,
        data: {
          state: change.to,
          escalation: Math.max(1, escalation),
          trigger: change.trigger ?? 'unknown',
          reason: change.note ?? b?.reason ?? '',
          by,
          queue: b?.queue || c.queue,
          origin: c.origin,
          customer: { id: c.customer.id, ...optional('name', c.customer.name), ...optional('email', c.customer.email) },
          ...agentsUpTo(c.history, index < 0 ? c.history.length - 1 : index),
          ...(b
            ? {
                briefing: {
                  priority: b.priority,
                  summary: b.summary,
                  intent: b.intent,
                  pending_question: b.pendingQuestion,
                  sentiment: b.sentiment,
                  options: b.options.map((o) => ({ id: o.id, label: o.label, risk: o.risk })),
                },
              }
            : {}),
        },
      };
    }
    case 'claim':
    case 'take_over':
      if (change.by.kind !== 'operator') return undefined;
      return { type: 'conversation.claimed', ...head, at, data: { state: change.to, operator: operator(change.by.operator), take_over: change.reason === 'take_over' } };
    case 'return':
    case 'decide':
    case 'fallback': {
      const decision = change.reason === 'decide' && change.optionId ? c.decisions.find((d) => d.optionId === change.optionId && d.at === change.at) : undefined;
      return {
        type: 'conversation.returned',
        ...head,
        at,
        data: {
          state: change.to,
          how: change.reason === 'decide' ? 'decision' : change.reason,
          by,
          ...note,
          ...(change.reason === 'decide' && change.optionId ? { decision: { option_id: change.optionId, ...optional('label', decision?.label) } } : {}),
        },
      };
    }
    case 'release':
    case 'expire':
      return { type: 'conversation.released', ...head, at, data: { state: change.to, how: change.reason, by, ...note } };
    case 'transfer':
      if (!change.to_operator) return undefined;
      return {
        type: 'conversation.transferred',
        ...head,
        at,
        data: { state: change.to, ...(change.by.kind === 'operator' ? { from_operator: operator(change.by.operator) } : {}), to_operator: operator(change.to_operator) },
      };
    case 'close':
      return { type: 'conversation.closed', ...head, at, data: { state: change.to, by, ...note } };
    case 'reopen':
      return { type: 'conversation.reopened', ...head, at, data: { state: change.to, by } };
    case 'agent_handoff':
      if (!change.agent_handoff) return undefined;
      return { type: 'handoff.agent', ...head, at, data: { from_agent: change.agent_handoff.from, to_agent: change.agent_handoff.to, by, ...optional('reason', change.note) } };
    default:
      return undefined;
  }
}
