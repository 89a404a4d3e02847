/**
 * The offline summarizer: builds a complete handoff envelope from the transcript alone, so a
 * briefing is never empty even when a deterministic trigger fires without the model. When the
 * agent wrote its own briefing, its fields win and this fills the gaps.
 */
import {
  HandoffEnvelopeSchema,
  type BriefingOption,
  type EscalateToolArgs,
  type HandoffEnvelope,
  type Priority,
  type Sentiment,
} from './envelope.ts';
import type { Conversation, Message } from './model.ts';
import { routeQueue, type Policy } from './policy.ts';

export interface EscalationCause {
  trigger: string;
  reason: string;
  priority?: Priority;
}

type Entities = HandoffEnvelope['entities'];

const ID_PATTERN = /(?:#\s?(\d{3,12})|\b((?:ord|order|inv|invoice|acct|acc|cus|ticket|case|sub)[-_ ]?#?[a-z0-9]{3,16})\b|\b([A-Z]{1,4}-\d{3,10})\b)/gi;
const AMOUNT_PATTERN = /(?:([$€£])\s?(\d{1,3}(?:[,.]\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)|\b(\d+(?:[.,]\d{1,2})?)\s?(usd|eur|gbp|dollars?|euros?|pounds?)\b)/gi;
const DATE_PATTERN = /\b(\d{4}-\d{2}-\d{2}|\d{1,2}\/\d{1,2}\/\d{2,4}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?(?:,? \d{4})?|\d{1,2} (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*(?: \d{4})?|yesterday|today|last (?:week|month))\b/gi;
const EMAIL_PATTERN = /[\w.+-]+@[\w-]+(?:\.[\w-]+)+/g;
const CURRENCY: Record<string, string> = { $: 'USD', '€': 'EUR', '£': 'GBP', usd: 'USD', eur: 'EUR', gbp: 'GBP', dollar: 'USD', dollars: 'USD', euro: 'EUR', euros: 'EUR', pound: 'GBP', pounds: 'GBP' };

/** Ids, amounts, dates and emails mentioned in the texts. */
export function extractEntities(texts: readonly string[]): Entities {
  const ids = new Set<string>();
  const amounts = new Map<string, { value: number; currency?: string; raw: string }>();
  const dates = new Set<string>();
  const emails = new Set<string>();
  for (const text of texts) {
    for (const m of text.matchAll(EMAIL_PATTERN)) emails.add(m[0].toLowerCase());
    const withoutEmails = text.replace(EMAIL_PATTERN, ' ');
    for (const m of withoutEmails.matchAll(ID_PATTERN)) ids.add((m[1] ?? m[2] ?? m[3] ?? '').trim());
    for (const m of withoutEmails.matchAll(AMOUNT_PATTERN)) {
      const symbol = m[1] ?? m[4]?.toLowerCase();
      const number = (m[2] ?? m[3] ?? '').replace(/,(?=\d{3}\b)/g, '').replace(',', '.');
      const value = Number(number);
      if (!Number.isFinite(value)) continue;
      const currency = symbol ? CURRENCY[symbol] : undefined;
      amounts.set(m[0], { value, raw: m[0].trim(), ...(currency ? { currency } : {}) });
    }
    for (const m of withoutEmails.matchAll(DATE_PATTERN)) dates.add(m[0]);
  }
  ids.delete('');
  return { ids: [...ids].slice(0, 20), amounts: [...amounts.values()].slice(0, 20), dates: [...dates].slice(0, 20), emails: [...emails].slice(0, 20) };
}

const ANGRY = /\b(furious|ridiculous|unacceptable|scam|worst|disgusting|angry|outraged|lawyer|sue|terrible|useless)\b/i;
const FRUSTRATED = /\b(again|still|frustrat\w*|annoy\w*|waiting|already (told|asked|said)|not (working|helpful)|disappoint\w*|why (is|can't|won't)|third time|come on)\b/i;
const POSITIVE = /\b(thanks?|thank you|great|perfect|awesome|appreciate|love)\b/i;

/** A rough sentiment from the customer's recent messages. */
export function estimateSentiment(texts: readonly string[]): Sentiment {
  const recent = texts.slice(-3).join(' ');
  const shouting = (recent.match(/[A-Z]{4,}/g) ?? []).length >= 2 || /!{2,}/.test(recent);
  if (ANGRY.test(recent) || (shouting && FRUSTRATED.test(recent))) return 'angry';
  if (FRUSTRATED.test(recent) || shouting) return 'frustrated';
  if (POSITIVE.test(recent)) return 'positive';
  return 'neutral';
}

const INTENTS: Array<[RegExp, string]> = [
  [/\b(refund|money back|reembolso|rembourse\w*|erstatt\w*|rückerstatt\w*)\b/i, 'Get a refund'],
  [/\b(cancel\w*|cancela\w*|annul\w*|kündig\w*)\b/i, 'Cancel an order or subscription'],
  [/\b(where is|track\w*|deliver\w*|shipping|shipped|package|parcel|envío|livraison|lieferung)\b/i, 'Find out where an order is'],
  [/\b(charged twice|double charge|overcharg\w*|invoice|billing|payment)\b/i, 'Sort out a billing problem'],
  [/\b(password|log ?in|sign ?in|locked out|2fa|account)\b/i, 'Get back into their account'],
  [/\b(broken|damaged|defect\w*|not working|doesn't work)\b/i, 'Report a faulty product'],
  [/\b(address|change)\b/i, 'Change order details'],
];

function guessIntent(texts: readonly string[]): string {
  const all = texts.join(' ');
  for (const [re, intent] of INTENTS) if (re.test(all)) return intent;
  const first = texts[0] ?? 'Unclear';
  return clip(first.replace(/\s+/g, ' '), 120);
}

function latestQuestion(customerTexts: readonly string[]): string | undefined {
  for (let i = customerTexts.length - 1; i >= 0; i--) {
    const t = customerTexts[i]!;
    const q = t.split(/(?<=[?])\s+/).reverse().find((s) => s.includes('?'));
    if (q) return clip(q.trim(), 300);
  }
  return undefined;
}

/** Options an operator can pick without taking over, by what caused the escalation. */
export function defaultOptions(cause: EscalationCause, entities: Entities, policy: Policy): BriefingOption[] {
  const amount = entities.amounts[0];
  const amountText = amount ? `${amount.value} ${amount.currency ?? policy.refund.currency}` : 'the refund';
  switch (cause.trigger) {
    case 'refund_threshold':
      return [
        { id: 'approve_refund', label: `Approve refund of ${amountText}`.slice(0, 75), risk: 'high', tradeoffs: `Over the ${policy.refund.threshold} ${policy.refund.currency} limit; cannot be undone.`, approvesTool: policy.refund.tools[0] },
        { id: 'offer_credit', label: 'Offer store credit instead', risk: 'low', tradeoffs: 'Keeps the revenue; the customer may refuse.' },
        { id: 'decline_refund', label: 'Decline the refund', risk: 'medium', tradeoffs: 'Policy-safe; risks an unhappy customer.' },
      ];
    case 'irreversible_tool': {
      const tool = /^(\w+)/.exec(cause.reason)?.[1];
      return [
        { id: 'approve_action', label: `Approve ${tool ?? 'the action'}`.slice(0, 75), risk: 'high', tradeoffs: 'Cannot be undone.', ...(tool ? { approvesTool: tool } : {}) },
        { id: 'decline_action', label: 'Decline', risk: 'low', tradeoffs: 'The agent explains it cannot do this.' },
      ];
    }
    case 'repetition':
    case 'turn_cap':
    case 'tool_error':
      return [{ id: 'agent_retry', label: 'Let the agent try again', risk: 'low', tradeoffs: 'The customer may get the same answer.' }];
    default:
      return [];
  }
}

function describeActions(actions: NonNullable<Message['actions']>): string {
  if (actions.length === 0) return '';
  const names = [...new Set(actions.map((a) => a.tool + (a.ok ? '' : ' (failed)')))];
  return ` The agent already tried: ${names.join(', ')}.`;
}

/**
 * Builds the envelope. Every field is filled and the result always passes the schema
 * (long texts are clipped), whatever the transcript holds.
 */
export function buildEnvelope(conversation: Conversation, cause: EscalationCause, policy: Policy, request?: Partial<EscalateToolArgs>): HandoffEnvelope {
  const customerTexts = conversation.messages.filter((m) => m.author.role === 'customer').map((m) => m.text);
  const actions = conversation.messages.flatMap((m) => m.actions ?? []).slice(-20);
  const entities = extractEntities(customerTexts);
  const sentiment = estimateSentiment(customerTexts);
  const intent = guessIntent(customerTexts);
  const who = conversation.customer.name ?? conversation.customer.email ?? 'The customer';
  const lastCustomer = customerTexts.at(-1);
  const summary =
    `${who} (${conversation.origin}) wants to: ${intent.toLowerCase()}.` +
    (lastCustomer ? ` Last message: "${clip(lastCustomer.replace(/\s+/g, ' '), 200)}".` : '') +
    describeActions(actions) +
    ` Escalated because: ${cause.reason.replace(/\.$/, '')}.`;
  const priority: Priority = cause.priority ?? (sentiment === 'angry' ? 'high' : 'normal');
  const constraints: string[] = [];
  if (entities.amounts.some((a) => a.value > policy.refund.threshold))
    constraints.push(`Refunds over ${policy.refund.threshold} ${policy.refund.currency} need a person's approval`);
  if (cause.trigger === 'compliance') constraints.push('Compliance-sensitive: do not admit liability; follow the legal-escalation playbook');

  const draft = {
    reason: cause.reason,
    trigger: cause.trigger,
    priority,
    summary,
    intent,
    entities,
    constraints,
    sentiment,
    actionsTaken: actions.map((a) => ({ tool: a.tool, input: a.input, output: a.output, ok: a.ok })),
    pendingQuestion: latestQuestion(customerTexts) ?? (lastCustomer ? `How should we answer: "${clip(lastCustomer, 200)}"` : 'How should we help this customer?'),
    options: defaultOptions(cause, entities, policy),
    queue: conversation.queue || routeQueue(policy, customerTexts.join(' ')),
    ticket: conversation.ticket,
  };
  // The agent's own briefing wins field by field; the offline draft fills the gaps.
  const merged = { ...draft, ...stripEmpty(request ?? {}), trigger: cause.trigger, ticket: conversation.ticket };
  if (request?.priority && priorityRank(draft.priority) > priorityRank(request.priority)) merged.priority = draft.priority;
  return coerceEnvelope(merged, draft);
}

/** Parses with the schema; if the merged input is invalid anywhere, clips it, then falls back to the draft. */
function coerceEnvelope(merged: Record<string, unknown>, draft: Record<string, unknown>): HandoffEnvelope {
  const clipped = clipStrings(merged);
  const parsed = HandoffEnvelopeSchema.safeParse(clipped);
  if (parsed.success) return parsed.data;
  const fields = { ...clipped };
  for (const issue of parsed.error.issues) {
    const key = issue.path[0];
    if (typeof key === 'string') fields[key] = draft[key];
  }
  const second = HandoffEnvelopeSchema.safeParse(clipStrings(fields));
  return second.success ? second.data : HandoffEnvelopeSchema.parse(clipStrings(draft));
}

const LIMITS: Record<string, number> = { reason: 300, summary: 1200, intent: 200, pendingQuestion: 500, queue: 60, ticket: 40 };

function clipStrings(input: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...input };
  for (const [key, max] of Object.entries(LIMITS)) if (typeof out[key] === 'string') out[key] = clip(out[key] as string, max);
  if (Array.isArray(out.constraints)) out.constraints = (out.constraints as unknown[]).slice(0, 10).map((c) => clip(String(c), 300));
  if (Array.isArray(out.actionsTaken)) out.actionsTaken = (out.actionsTaken as unknown[]).slice(-20);
  if (Array.isArray(out.options)) out.options = (out.options as unknown[]).slice(0, 5);
  return out;
}

function stripEmpty(obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0)));
}

function priorityRank(p: Priority): number {
  return ['low', 'normal', 'high', 'urgent'].indexOf(p);
}

export function clip(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, Math.max(0, max - 1)) + '…';
}
