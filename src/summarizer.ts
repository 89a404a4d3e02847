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

// Words that introduce an id: "order A-1001", "ORD-77", "invoice no. 55555", "case 12345".
const ID_KEYWORDS = String.raw`(?:ord|order|inv|invoice|acct|acc|account|cus|cust|customer|ticket|case|sub|subscription|ref|booking|rma)`;
/** An id always contains a digit, so "order status", "ordered" or "invoice" alone are not ids. */
const ID_PATTERN = new RegExp(
  [
    String.raw`#\s?(\d{3,12})\b`, // #12345
    String.raw`\b(${ID_KEYWORDS}[-_]?#?\d[a-z0-9]{0,15}(?:-[a-z0-9]{1,16}){0,3})\b`, // ORD-77, INV-2024-0042, ORD77
    String.raw`\b${ID_KEYWORDS}(?:\s(?:no\.?|nr\.?|num|number|id|ref))?(?:\s?(?:is|:))?\s?#?\s?((?:[a-z]{1,4}-?)?\d[a-z0-9]{2,15}(?:-[a-z0-9]{1,16}){0,3})\b`, // order number is 123456, order A1002
    String.raw`\b([A-Z]{1,5}-\d{3,10}(?:-\d{1,10}){0,3})\b`, // A-1001
  ].join('|'),
  'gi',
);
/** 1,250.50 / 1.250,50 / 120 / 0.99; at most six thousands groups, so a hostile digit run stays short. */
const NUMBER = String.raw`\d{1,3}(?:[,.]\d{3}){1,6}(?:[.,]\d{1,2})?|\d{1,15}(?:[.,]\d{1,2})?`;
const AMOUNT_PATTERN = new RegExp(
  [
    String.raw`([$€£])\s?(${NUMBER})`, // $1,250.50, €50
    String.raw`\b(${NUMBER})\s?(usd|eur|gbp|dollars?|euros?|pounds?)\b`, // 120 EUR, 20 dollars
    String.raw`\b(${NUMBER})\s?([€£$])`, // 1.250,50 €, 50€
  ].join('|'),
  'gi',
);
const MONTH = String.raw`(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)`;
const DATE_PATTERN = new RegExp(
  String.raw`\b(\d{4}-\d{2}-\d{2}|\d{1,2}\/\d{1,2}\/\d{2,4}|\d{1,2}\.\d{1,2}\.\d{4}|${MONTH}\.? \d{1,2}(?:st|nd|rd|th)?(?:,? \d{4})?|\d{1,2}(?:st|nd|rd|th)? (?:of )?${MONTH}\.?(?: \d{4})?|${MONTH} \d{4}|yesterday|today|tomorrow|last (?:week|month))\b`,
  'gi',
);
/** Bounded on both sides of the @, so a long run of word characters cannot make it quadratic. */
const EMAIL_PATTERN = /[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,6}/g;
const CURRENCY: Record<string, string> = { $: 'USD', '€': 'EUR', '£': 'GBP', usd: 'USD', eur: 'EUR', gbp: 'GBP', dollar: 'USD', dollars: 'USD', euro: 'EUR', euros: 'EUR', pound: 'GBP', pounds: 'GBP' };

/** "1,250.50" and "1.250,50" are 1250.5; "1,250" and "1.250" are 1250; "12.5" is 12.5. */
function parseAmount(text: string): number {
  const lastSep = Math.max(text.lastIndexOf('.'), text.lastIndexOf(','));
  if (lastSep < 0) return Number(text);
  const decimals = text.length - lastSep - 1;
  if (decimals === 3) return Number(text.replace(/[.,]/g, ''));
  return Number(`${text.slice(0, lastSep).replace(/[.,]/g, '')}.${text.slice(lastSep + 1)}`);
}

/** What one text mentions, in order and with repeats; `mergeEntities` de-duplicates across texts. */
export interface TextEntities {
  readonly ids: readonly string[];
  readonly amounts: readonly { value: number; currency?: string; raw: string }[];
  readonly dates: readonly string[];
  readonly emails: readonly string[];
}

/** Ids, amounts, dates and emails mentioned in one text (the regex work, done once per text). */
export function textEntities(text: string): TextEntities {
  const emails = Array.from(text.matchAll(EMAIL_PATTERN), (m) => m[0].toLowerCase());
  const withoutEmails = text.replace(EMAIL_PATTERN, ' ');
  const ids: string[] = [];
  for (const m of withoutEmails.matchAll(ID_PATTERN)) {
    const id = (m[1] ?? m[2] ?? m[3] ?? m[4] ?? '').trim();
    if (id) ids.push(id);
  }
  const amounts: Array<{ value: number; currency?: string; raw: string }> = [];
  for (const m of withoutEmails.matchAll(AMOUNT_PATTERN)) {
    const symbol = (m[1] ?? m[4] ?? m[6])?.toLowerCase();
    const value = parseAmount(m[2] ?? m[3] ?? m[5] ?? '');
    if (!Number.isFinite(value)) continue;
    const currency = symbol ? CURRENCY[symbol] : undefined;
    amounts.push({ value, raw: m[0].trim(), ...(currency ? { currency } : {}) });
  }
  const dates = Array.from(withoutEmails.matchAll(DATE_PATTERN), (m) => m[0]);
  return { ids, amounts, dates, emails };
}

/** The entities of several texts, in order: the first spelling of each id, amount and date wins. */
export function mergeEntities(parts: readonly TextEntities[]): Entities {
  const ids = new Map<string, string>();
  const amounts = new Map<string, { value: number; currency?: string; raw: string }>();
  const dates = new Map<string, string>();
  const emails = new Set<string>();
  for (const part of parts) {
    for (const e of part.emails) emails.add(e);
    for (const id of part.ids) if (!ids.has(id.toUpperCase())) ids.set(id.toUpperCase(), id);
    for (const a of part.amounts) if (!amounts.has(a.raw)) amounts.set(a.raw, a);
    for (const d of part.dates) if (!dates.has(d.toLowerCase())) dates.set(d.toLowerCase(), d);
  }
  // Clipped to the schema's limits so the envelope is valid whatever the customer wrote.
  return {
    ids: [...ids.values()].slice(0, 20).map((id) => clip(id, 200)),
    amounts: [...amounts.values()].slice(0, 20).map((a) => ({ ...a, raw: clip(a.raw, 100) })),
    dates: [...dates.values()].slice(0, 20).map((d) => clip(d, 100)),
    emails: [...emails].slice(0, 20).map((e) => clip(e, 320)),
  };
}

/** Ids, amounts, dates and emails mentioned in the texts. */
export function extractEntities(texts: readonly string[]): Entities {
  return mergeEntities(texts.map(textEntities));
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
  [/\b(refund|money back|reembolso|rembours\w*|erstatt\w*|ruckerstatt\w*)\b/i, 'Get a refund'],
  [/\b(cancel\w*|cancela\w*|annul\w*|kundig\w*)\b/i, 'Cancel an order or subscription'],
  [/\b(where is|track\w*|deliver\w*|shipping|shipped|package|parcel|envio|livraison|lieferung)\b/i, 'Find out where an order is'],
  [/\b(charged twice|double charge|overcharg\w*|invoice|billing|payment)\b/i, 'Sort out a billing problem'],
  [/\b(password|log ?in|sign ?in|locked out|2fa|account)\b/i, 'Get back into their account'],
  [/\b(broken|damaged|defect\w*|not working|doesn't work)\b/i, 'Report a faulty product'],
  [/\b(address|change)\b/i, 'Change order details'],
];

function guessIntent(texts: readonly string[]): string {
  // Accents off, so "remboursé", "Rückerstattung" and "envío" match however they are typed.
  const all = texts.join(' ').normalize('NFD').replace(/\p{M}+/gu, '');
  for (const [re, intent] of INTENTS) if (re.test(all)) return intent;
  const first = texts.map(oneLine).find((t) => t.length > 0);
  return first ? clip(first, 120) : 'Unclear';
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function latestQuestion(customerTexts: readonly string[]): string | undefined {
  for (let i = customerTexts.length - 1; i >= 0; i--) {
    const t = customerTexts[i]!;
    // The last sentence with a question mark: "It is broken. Can I get a refund?" asks "Can I get a refund?".
    const q = t.split(/(?<=[.!?])\s+/).reverse().find((s) => s.includes('?'));
    if (q) return clip(q.trim(), 300);
  }
  return undefined;
}

/** Options an operator can pick without taking over, by what caused the escalation. */
export function defaultOptions(cause: EscalationCause, entities: Entities, policy: Policy): BriefingOption[] {
  const amount = entities.amounts[0];
  const amountText = amount ? `${amount.value} ${amount.currency ?? policy.refund.currency}` : 'the refund';
  const refundTool = policy.refund.tools[0];
  switch (cause.trigger) {
    case 'refund_threshold':
      return [
        {
          id: 'approve_refund',
          label: clip(`Approve refund of ${amountText}`, 75),
          risk: 'high',
          tradeoffs: clip(`Over the ${policy.refund.threshold} ${policy.refund.currency} limit; cannot be undone.`, 500),
          ...(refundTool && refundTool.length <= 100 ? { approvesTool: refundTool } : {}),
        },
        { id: 'offer_credit', label: 'Offer store credit instead', risk: 'low', tradeoffs: 'Keeps the revenue; the customer may refuse.' },
        { id: 'decline_refund', label: 'Decline the refund', risk: 'medium', tradeoffs: 'Policy-safe; risks an unhappy customer.' },
      ];
    case 'irreversible_tool': {
      // The gate's reason starts with the tool's name; a "name" too long for the schema is not one.
      const tool = /^(\w{1,100})\b/.exec(cause.reason)?.[1];
      return [
        { id: 'approve_action', label: clip(`Approve ${tool ?? 'the action'}`, 75), risk: 'high', tradeoffs: 'Cannot be undone.', ...(tool ? { approvesTool: tool } : {}) },
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
  // Attachment-only messages have no text; they say nothing about intent or the question.
  const customerTexts = conversation.messages.filter((m) => m.author.role === 'customer' && m.text.trim().length > 0).map((m) => m.text);
  const actions = conversation.messages.flatMap((m) => m.actions ?? []).slice(-20);
  const entities = extractEntities(customerTexts);
  const sentiment = estimateSentiment(customerTexts);
  const intent = guessIntent(customerTexts);
  const trigger = clip(oneLine(safeText(cause.trigger)), 60) || 'unknown';
  const reason = clip(safeText(cause.reason).trim(), 300) || `Escalated (${trigger})`;
  const who = oneLine(conversation.customer.name ?? '') || oneLine(conversation.customer.email ?? '') || 'The customer';
  const lastCustomer = customerTexts.at(-1);
  const summary =
    `${clip(who, 100)} (${conversation.origin}) wants to: ${intent.toLowerCase()}.` +
    (lastCustomer ? ` Last message: "${clip(oneLine(lastCustomer), 200)}".` : '') +
    describeActions(actions) +
    ` Escalated because: ${clip(oneLine(reason), 300).replace(/\.$/, '')}.`;
  const priority: Priority = cause.priority ?? (sentiment === 'angry' ? 'high' : 'normal');
  const constraints: string[] = [];
  if (entities.amounts.some((a) => a.value > policy.refund.threshold))
    constraints.push(`Refunds over ${policy.refund.threshold} ${policy.refund.currency} need a person's approval`);
  if (trigger === 'compliance') constraints.push('Compliance-sensitive: do not admit liability; follow the legal-escalation playbook');

  const draft = {
    reason,
    trigger,
    priority,
    summary,
    intent,
    entities,
    constraints,
    sentiment,
    actionsTaken: actions.map((a) => ({ tool: clip(safeText(a.tool), 100), input: a.input, output: a.output, ok: a.ok !== false })),
    pendingQuestion: latestQuestion(customerTexts) ?? (lastCustomer ? `How should we answer: "${clip(lastCustomer.trim(), 200)}"` : 'How should we help this customer?'),
    options: defaultOptions({ ...cause, trigger, reason }, entities, policy),
    queue: conversation.queue || routeQueue(policy, customerTexts.join(' ')),
    ticket: conversation.ticket,
  };
  // The agent's own briefing wins field by field (entities list by list); the offline draft fills the gaps.
  const asked = stripEmpty(request && typeof request === 'object' ? request : {});
  const merged: Record<string, unknown> = { ...draft, ...asked, trigger, ticket: conversation.ticket };
  if (asked.entities && typeof asked.entities === 'object' && !Array.isArray(asked.entities))
    merged.entities = { ...draft.entities, ...stripEmpty(asked.entities as Record<string, unknown>) };
  // It may raise the priority, never lower it.
  const askedRank = typeof asked.priority === 'string' ? priorityRank(asked.priority as Priority) : -1;
  merged.priority = askedRank > priorityRank(draft.priority) ? asked.priority : draft.priority;
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
  if (second.success) return second.data;
  const third = HandoffEnvelopeSchema.safeParse(clipStrings(draft));
  if (third.success) return third.data;
  // Unreachable while the draft is built within the schema's limits; never fail an escalation over a briefing.
  return HandoffEnvelopeSchema.parse({
    reason: 'Escalated',
    trigger: 'unknown',
    summary: 'The automatic summary could not be built; read the transcript.',
    intent: 'Unclear',
    pendingQuestion: 'How should we help this customer?',
    ticket: typeof draft.ticket === 'string' ? clip(draft.ticket, 40) : '',
  });
}

const LIMITS: Record<string, number> = { reason: 300, summary: 1200, intent: 200, pendingQuestion: 500, queue: 60, ticket: 40 };

function clipStrings(input: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...input };
  for (const [key, max] of Object.entries(LIMITS)) if (typeof out[key] === 'string') out[key] = clip(out[key] as string, max);
  if (Array.isArray(out.constraints))
    out.constraints = (out.constraints as unknown[])
      .filter((c): c is string => typeof c === 'string') // model output: anything else is noise
      .slice(0, 10)
      .map((c) => clip(c, 300));
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
  if (text.length <= max) return text;
  let end = Math.max(0, max - 1);
  // Never cut an emoji (a surrogate pair) in half.
  if (end > 0 && /[\uD800-\uDBFF]/.test(text.charAt(end - 1))) end -= 1;
  return text.slice(0, end) + '…';
}

/** Text from a value that should be a string but came from a model or a caller: never throws. */
function safeText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  try {
    return typeof value === 'object' ? JSON.stringify(value) ?? '' : String(value);
  } catch {
    return '';
  }
}
