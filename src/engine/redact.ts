/**
 * PII kept out of the operators' channels. Pure functions: card numbers (Luhn-checked), IBANs
 * (mod-97 checked), national identity numbers (US SSN, UK NINO, Spanish DNI/NIE) and the policy's
 * own patterns are replaced by a labelled mask that keeps the last 4 characters, e.g.
 * `[card •••• 4242]`. Workspaces and webhooks get redacted COPIES; the customer and the agent keep
 * the originals (the stored conversation is never changed), and an owner can reveal a value
 * (`revealMessage`), which is logged in the history.
 *
 * Redaction is idempotent: a mask is never redacted again, and detection runs to a fixpoint, so
 * redacting redacted text changes nothing.
 */
import { z } from 'zod';
import { BridgeError, NotOwnerError } from '../errors.ts';
import type { HandoffEnvelope } from '../envelope.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../model.ts';
import type { BridgePort, Workspace } from '../ports.ts';
import type { ChangeSink } from './commit.ts';

// ---- policy --------------------------------------------------------------------------------

/** A mask label: letters, spaces, `_` and `-` only, so a mask can never hide digits in its label. */
const LABEL = /^[A-Za-z][A-Za-z _-]{0,39}$/;

const PatternSchema = z
  .object({
    /** Shown in the mask: `[passport •••• 1234]`. */
    name: z.string().regex(LABEL, 'a label of letters, spaces, "_" or "-" (no digits), up to 40 characters'),
    /** A JavaScript regular expression (no slashes); the whole match is masked, or only its group `(?<value>...)` if it has one. */
    regex: z.string().min(1),
    ignoreCase: z.boolean().default(false),
  })
  .superRefine((p, ctx) => {
    let re: RegExp;
    try {
      re = new RegExp(p.regex, 'g');
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['regex'], message: `not a valid regular expression (${(err as Error).message})` });
      return;
    }
    if (re.test('')) ctx.addIssue({ code: 'custom', path: ['regex'], message: 'matches the empty string' });
  });

/** The policy's `redaction` section (add to `PolicySchema` as `redaction: RedactionPolicySchema`). */
export const RedactionPolicySchema = z
  .object({
    /** On by default: workspaces and webhooks never see the values. */
    enabled: z.boolean().default(true),
    /** Extra patterns on top of the built-in detectors (cards, IBANs, SSN, NINO, DNI/NIE). */
    patterns: z.array(PatternSchema).max(50).default([]),
  })
  .default({ enabled: true, patterns: [] });

export type RedactionPolicy = z.input<typeof RedactionPolicySchema>;

export const DEFAULT_REDACTION: RedactionPolicy = { enabled: true, patterns: [] };

// ---- detection -----------------------------------------------------------------------------

/** One value found and masked. Offsets are in the ORIGINAL text. */
export interface RedactionSpan {
  start: number;
  end: number;
  /** `card`, `iban`, `ssn`, `nino`, `dni`, or a policy pattern's name. */
  kind: string;
  /** What replaced it in the redacted text. */
  mask: string;
  /** The characters the mask keeps (values of 8+ letters and digits only). */
  last4?: string;
}

export interface RedactedText {
  text: string;
  spans: RedactionSpan[];
}

interface Found {
  start: number;
  end: number;
}

interface Detector {
  kind: string;
  find(text: string): Found[];
}

/** Every mask this module writes; text matching it is left alone (idempotence). */
const MASK = /\[[A-Za-z][A-Za-z _-]{0,39} ••••(?: [0-9A-Za-z]{1,4})?\]/g;

/** Between the digits of a card number: spaces, dots and dashes, up to 3 in a row (not newlines). */
const SEP_CLASS = '[ \\t\\u00A0\\u2007\\u2009\\u202F.\\-\\u2010-\\u2015\\u2212]';
const DIGIT_RUN = new RegExp(`\\d(?:${SEP_CLASS}{0,3}\\d)*`, 'g');
const SEPARATORS = new RegExp(`${SEP_CLASS}+`, 'g');

/** The Luhn checksum over a string of digits. */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  for (let i = digits.length - 1, double = false; i >= 0; i--, double = !double) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/**
 * Card numbers: a run of 13-19 digits (separators allowed) that passes Luhn. In a longer run of
 * digit groups (a card next to other numbers), every window of whole groups that is a valid card
 * is masked; overlapping windows become one mask, so no part of a card is left beside a mask.
 */
const cardDetector: Detector = {
  kind: 'card',
  find(text) {
    const out: Found[] = [];
    for (const run of text.matchAll(DIGIT_RUN)) {
      const groups: Array<{ start: number; digits: string }> = [];
      let last = 0;
      for (const sep of run[0].matchAll(SEPARATORS)) {
        groups.push({ start: run.index + last, digits: run[0].slice(last, sep.index) });
        last = sep.index + sep[0].length;
      }
      groups.push({ start: run.index + last, digits: run[0].slice(last) });
      // Windows [i, j] of groups, merged while they overlap.
      let open: { i: number; j: number } | undefined;
      const close = () => {
        if (open) out.push({ start: groups[open.i]!.start, end: groups[open.j]!.start + groups[open.j]!.digits.length });
        open = undefined;
      };
      for (let i = 0; i < groups.length; i++) {
        if (open && i > open.j) close();
        let digits = '';
        for (let j = i; j < groups.length; j++) {
          digits += groups[j]!.digits;
          if (digits.length > 19) break;
          if (digits.length >= 13 && luhnValid(digits)) open = open ? { i: open.i, j: Math.max(open.j, j) } : { i, j };
        }
      }
      close();
    }
    return out;
  },
};

/** IBAN lengths by country (the SWIFT registry). Other letters are no IBAN: trying every length would find a false one in 1 of 5. */
const IBAN_LENGTHS: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28, CZ: 24,
  DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28,
  HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20,
  LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25,
  QA: 29, RO: 24, RS: 22, SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26,
  UA: 29, VA: 22, VG: 24, XK: 20, BI: 27, DJ: 27, FK: 18, HN: 28, MN: 20, NI: 28, OM: 23, RU: 33, SO: 23, YE: 30,
};

/** The ISO 13616 check: country and check digits moved to the end, letters as numbers, mod 97 = 1. */
export function ibanValid(iban: string): boolean {
  const s = iban.replace(/[\s-]/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(s)) return false;
  if (IBAN_LENGTHS[s.slice(0, 2)] !== s.length) return false;
  const moved = s.slice(4) + s.slice(0, 4);
  let rest = 0;
  for (const ch of moved) {
    const code = ch.charCodeAt(0);
    const value = code >= 65 ? code - 55 : code - 48;
    rest = value >= 10 ? (rest * 100 + value) % 97 : (rest * 10 + value) % 97;
  }
  return rest === 1;
}

const ALNUM = /[A-Za-z0-9]/;
const IBAN_START = /(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}/g;
const IBAN_SEP = /[ \u00A0-]/;

/** IBANs, printed in groups or not, upper or lower case; the length must fit the country. Every start is tried. */
const ibanDetector: Detector = {
  kind: 'iban',
  find(text) {
    const out: Found[] = [];
    IBAN_START.lastIndex = 0;
    for (let m = IBAN_START.exec(text); m; m = IBAN_START.exec(text)) {
      // The characters from here, each with where it ends in the text (single separators skipped).
      const chars: string[] = [];
      const ends: number[] = [];
      for (let i = m.index; i < text.length && chars.length < 34; ) {
        const ch = text[i]!;
        if (ALNUM.test(ch)) {
          chars.push(ch.toUpperCase());
          ends.push(i + 1);
          i++;
        } else if (IBAN_SEP.test(ch) && chars.length >= 4 && i + 1 < text.length && ALNUM.test(text[i + 1]!)) i++;
        else break;
      }
      const length = IBAN_LENGTHS[chars.slice(0, 2).join('')];
      const end = length !== undefined && chars.length >= length ? ends[length - 1]! : undefined;
      // Not running on into a longer word, and the checksum holds.
      if (end !== undefined && !(end < text.length && ALNUM.test(text[end]!)) && ibanValid(chars.slice(0, length).join(''))) {
        // Overlapping matches (a chance one over a real one) become one mask, so no part is left beside it.
        const last = out.at(-1);
        if (last && m.index < last.end) last.end = Math.max(last.end, end);
        else out.push({ start: m.index, end });
      }
      IBAN_START.lastIndex = m.index + 1;
    }
    return out;
  },
};

/** Regex detectors: the whole match, or only the named group `value` when the pattern has one. */
function regexDetector(kind: string, pattern: RegExp, check?: (value: string) => boolean): Detector {
  const flags = pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g';
  const re = new RegExp(pattern.source, flags.includes('d') ? flags : flags + 'd');
  return {
    kind,
    find(text) {
      const out: Found[] = [];
      re.lastIndex = 0;
      for (let m = re.exec(text); m; m = re.exec(text)) {
        if (m[0].length === 0) {
          re.lastIndex++;
          continue;
        }
        const [start, end] = m.indices?.groups?.value ?? m.indices![0]!;
        if (!check || check(text.slice(start, end))) out.push({ start, end });
      }
      return out;
    },
  };
}

/** US SSN: 123-45-6789 or 123 45 6789 (not 000, 666 or 9xx areas), or 9 digits after "SSN". */
/** Not part of a longer run of digits (the card detector's separators). */
const NOT_AFTER_DIGITS = `(?<!\\d)(?<!\\d${SEP_CLASS}{1,3})`;
const NOT_BEFORE_DIGITS = `(?!${SEP_CLASS}{0,3}\\d)`;
const ssnDetector = regexDetector('ssn', new RegExp(`${NOT_AFTER_DIGITS}(?!000|666|9\\d\\d)\\d{3}([ -])(?!00)\\d{2}\\1(?!0000)\\d{4}${NOT_BEFORE_DIGITS}`));
const ssnKeywordDetector = regexDetector('ssn', /\b(?:ssn|social security(?: number| no\.?)?)\s*(?:#|no\.?|number)?\s*[:=]?\s*(?<value>\d{9})(?!\d)/i);

/** UK National Insurance number: AB 12 34 56 C (valid prefixes only). */
const ninoDetector = regexDetector('nino', /(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])/i);

/** Spanish DNI (12345678Z) and NIE (X1234567L), with the check letter verified. */
const DNI_LETTERS = 'TRWAGMYFPDXBNJZSQVHLCKE';
const dniDetector = regexDetector('dni', new RegExp(`(?<![A-Za-z0-9])${NOT_AFTER_DIGITS}[XYZ0-9]\\d{7}[- ]?[A-Z](?![A-Za-z0-9])`, 'i'), (value) => {
  const v = value.replace(/[- ]/g, '').toUpperCase();
  const number = Number(v.slice(0, 8).replace('X', '0').replace('Y', '1').replace('Z', '2'));
  return DNI_LETTERS[number % 23] === v[8];
});

/** Order matters: specific formats first, so a card run never swallows an SSN next to it. */
const BUILT_IN: Detector[] = [ibanDetector, ssnDetector, ssnKeywordDetector, ninoDetector, dniDetector, cardDetector];

/** A mask for a value: the last 4 letters or digits are kept when the value has at least 8. */
function maskFor(kind: string, value: string): { mask: string; last4?: string } {
  const alnum = value.replace(/[^A-Za-z0-9]/g, '');
  if (alnum.length < 8) return { mask: `[${kind} ••••]` };
  const last4 = alnum.slice(-4).toUpperCase();
  return { mask: `[${kind} •••• ${last4}]`, last4 };
}

interface Piece {
  start: number;
  end: number;
  /** A mask written here, or an existing mask (left alone). */
  span?: RedactionSpan;
  fixed?: boolean;
}

// ---- the redactor --------------------------------------------------------------------------

/**
 * Redacts text, messages, history entries, briefings and conversations with one policy. Copies
 * are memoised per object, so redacting the same conversation for several work items is cheap.
 */
export class Redactor {
  readonly enabled: boolean;
  private readonly detectors: Detector[];
  private readonly conversations = new WeakMap<Conversation, Conversation>();
  private readonly messages = new WeakMap<Message, Message>();

  constructor(policy: RedactionPolicy = DEFAULT_REDACTION) {
    // Validated again here: a policy built in code gets the same checks as the policy file.
    const parsed = RedactionPolicySchema.parse(policy);
    this.enabled = parsed.enabled;
    const custom = parsed.patterns.map((p) => regexDetector(p.name, new RegExp(p.regex, p.ignoreCase ? 'gi' : 'g')));
    // The policy's patterns run after the built-ins, so they never split a card or an IBAN.
    this.detectors = [...BUILT_IN.slice(0, -1), ...custom, BUILT_IN.at(-1)!];
  }

  /** The text with every value masked, and where each was in the original. */
  redact(text: string): RedactedText {
    if (!this.enabled || !text) return { text, spans: [] };
    // Existing masks are kept as they are; detection runs in the text between them.
    let pieces: Piece[] = [];
    let at = 0;
    for (const m of text.matchAll(MASK)) {
      if (m.index > at) pieces.push({ start: at, end: m.index });
      pieces.push({ start: m.index, end: m.index + m[0].length, fixed: true });
      at = m.index + m[0].length;
    }
    if (at < text.length) pieces.push({ start: at, end: text.length });
    // Until nothing more is found: masking one value can leave a piece where another is found.
    for (let pass = 0; pass < 8; pass++) {
      let changed = false;
      for (const detector of this.detectors) {
        const next: Piece[] = [];
        for (const piece of pieces) {
          if (piece.span || piece.fixed) {
            next.push(piece);
            continue;
          }
          const found = detector.find(text.slice(piece.start, piece.end)).sort((a, b) => a.start - b.start);
          let cursor = piece.start;
          for (const f of found) {
            const start = piece.start + f.start;
            const end = piece.start + f.end;
            if (start < cursor) continue; // overlaps one already taken
            if (start > cursor) next.push({ start: cursor, end: start });
            next.push({ start, end, span: { start, end, kind: detector.kind, ...maskFor(detector.kind, text.slice(start, end)) } });
            cursor = end;
            changed = true;
          }
          if (cursor < piece.end) next.push({ start: cursor, end: piece.end });
        }
        pieces = next;
      }
      if (!changed) break;
    }
    const spans = pieces.flatMap((p) => (p.span ? [p.span] : []));
    if (spans.length === 0) return { text, spans };
    return { text: pieces.map((p) => (p.span ? p.span.mask : text.slice(p.start, p.end))).join(''), spans };
  }

  text(text: string): string {
    return this.redact(text).text;
  }

  /** Every string in a JSON-like value (tool inputs and outputs); keys are kept. */
  value<T>(value: T, depth = 0): T {
    if (!this.enabled) return value;
    if (typeof value === 'string') return this.text(value) as T;
    if (depth > 32 || value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((v) => this.value(v, depth + 1)) as T;
    if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.value(v, depth + 1)])) as T;
  }

  /** A copy of the message with its text, tool calls and hand-back redacted. Ids are kept. */
  message(message: Message): Message {
    if (!this.enabled) return message;
    const cached = this.messages.get(message);
    if (cached) return cached;
    const { text, spans } = this.redact(message.text);
    // Nothing to mask: the message itself (transcript messages are never edited in place), so a
    // cached conversation does not keep a second copy of each message alive.
    if (spans.length === 0 && !message.actions && !message.handback) {
      this.messages.set(message, message);
      return message;
    }
    const copy: Message = { ...message, text, ...(spans.length > 0 ? { masked: spans.length } : {}) };
    if (message.actions) copy.actions = message.actions.map((a) => ({ ...a, input: this.value(a.input), ...('output' in a ? { output: this.value(a.output) } : {}) }));
    if (message.handback) {
      const h = message.handback;
      copy.handback = {
        ...h,
        ...(h.note !== undefined ? { note: this.text(h.note) } : {}),
        ...(h.decision ? { decision: { ...h.decision, label: this.text(h.decision.label), ...(h.decision.note !== undefined ? { note: this.text(h.decision.note) } : {}) } } : {}),
        humanStretch: h.humanStretch.map((s) => ({ ...s, text: this.text(s.text) })),
      };
    }
    this.messages.set(message, copy);
    return copy;
  }

  /** A copy of a history entry with its note redacted. */
  entry(entry: HistoryEntry): HistoryEntry {
    if (!this.enabled || entry.note === undefined) return entry;
    return { ...entry, note: this.text(entry.note) };
  }

  briefing(briefing: HandoffEnvelope): HandoffEnvelope {
    if (!this.enabled) return briefing;
    const t = (s: string) => this.text(s);
    return {
      ...briefing,
      reason: t(briefing.reason),
      summary: t(briefing.summary),
      intent: t(briefing.intent),
      pendingQuestion: t(briefing.pendingQuestion),
      constraints: briefing.constraints.map(t),
      entities: {
        ...briefing.entities,
        ids: briefing.entities.ids.map(t),
        amounts: briefing.entities.amounts.map((a) => (a.raw !== undefined ? { ...a, raw: t(a.raw) } : a)),
        dates: briefing.entities.dates.map(t),
      },
      actionsTaken: briefing.actionsTaken.map((a) => ({ ...a, input: this.value(a.input), ...('output' in a ? { output: this.value(a.output) } : {}) })),
      options: briefing.options.map((o) => ({
        ...o,
        label: t(o.label),
        ...(o.tradeoffs !== undefined ? { tradeoffs: t(o.tradeoffs) } : {}),
        ...('approvesArgs' in o ? { approvesArgs: this.value(o.approvesArgs) } : {}),
      })),
    };
  }

  /**
   * A redacted copy of the conversation for a workspace or a webhook: every message, history
   * note, decision note, the briefing and the approvals. Ids, state, customer and channel data are
   * kept as they are.
   */
  conversation(conversation: Conversation): Conversation {
    if (!this.enabled) return conversation;
    const cached = this.conversations.get(conversation);
    if (cached) return cached;
    const copy: Conversation = {
      ...conversation,
      messages: conversation.messages.map((m) => this.message(m)),
      history: conversation.history.map((h) => this.entry(h)),
      decisions: conversation.decisions.map((d) => ({ ...d, label: this.text(d.label), ...(d.note !== undefined ? { note: this.text(d.note) } : {}) })),
      approvals: conversation.approvals.map((a) => ('args' in a ? { ...a, args: this.value(a.args) } : a)),
    };
    if (conversation.subject !== undefined) copy.subject = this.text(conversation.subject);
    if (conversation.briefing) copy.briefing = this.briefing(conversation.briefing);
    if (conversation.pendingEscalation) copy.pendingEscalation = { ...conversation.pendingEscalation, reason: this.text(conversation.pendingEscalation.reason) };
    this.conversations.set(conversation, copy);
    return copy;
  }
}

const defaultRedactor = new Redactor();

/** Redacts with the built-in detectors (or the given policy's). */
export function redactText(text: string, policy?: RedactionPolicy): RedactedText {
  return (policy ? new Redactor(policy) : defaultRedactor).redact(text);
}

/** A redacted copy of a message; the original is untouched. */
export function redactMessage(message: Message, redactor: Redactor = defaultRedactor): Message {
  return redactor.message(message);
}

/** A redacted copy of a conversation; the original is untouched. */
export function redactConversation(conversation: Conversation, redactor: Redactor = defaultRedactor): Conversation {
  return redactor.conversation(conversation);
}

// ---- what workspaces are given ------------------------------------------------------------

/**
 * A workspace that is only ever given redacted copies: the conversation, the message, the
 * ownership change and the private notice text. Name and optional methods are kept.
 */
export function redactedWorkspace(workspace: Workspace, redactor: Redactor): Workspace {
  if (!redactor.enabled) return workspace;
  const wrapped: Workspace = {
    name: workspace.name,
    mirror: (c, m, attempt) => workspace.mirror(redactor.conversation(c), redactor.message(m), attempt),
    postBriefing: (c, attempt) => workspace.postBriefing(redactor.conversation(c), attempt),
    ownershipChanged: (c, change, attempt) => workspace.ownershipChanged(redactor.conversation(c), redactor.entry(change), attempt),
    notifyOperator: (operator, text, c, attempt) => workspace.notifyOperator(operator, redactor.text(text), c && redactor.conversation(c), attempt),
  };
  if (workspace.postToManagers) wrapped.postToManagers = (c, attempt) => workspace.postToManagers!(redactor.conversation(c), attempt);
  if (workspace.postDigest) wrapped.postDigest = (digest) => workspace.postDigest!(digest);
  return wrapped;
}

// ---- workspace adapters' reads -------------------------------------------------------------

function isConversation(value: unknown): value is Conversation {
  return typeof value === 'object' && value !== null && Array.isArray((value as Conversation).messages) && Array.isArray((value as Conversation).history) && typeof (value as Conversation).ticket === 'string';
}

function isMessage(value: unknown): value is Message {
  return typeof value === 'object' && value !== null && typeof (value as Message).text === 'string' && typeof (value as Message).id === 'string' && typeof (value as Message).author === 'object';
}

/**
 * The bridge as a workspace adapter should see it: every conversation (and message) it reads or
 * gets back from a command is a redacted copy, including through `store.getConversation`.
 * `reveal` is passed through untouched (it is the one way to see an original).
 */
export function redactedPort<T extends BridgePort>(port: T, redactor: Redactor): T {
  if (!redactor.enabled) return port;
  const redactResult = (value: unknown): unknown => {
    if (isConversation(value)) return redactor.conversation(value);
    if (Array.isArray(value)) return value.map((v) => (isConversation(v) ? redactor.conversation(v) : v));
    if (typeof value === 'object' && value !== null && ('conversation' in value || 'message' in value)) {
      const record = value as { conversation?: unknown; message?: unknown };
      return {
        ...record,
        ...(isConversation(record.conversation) ? { conversation: redactor.conversation(record.conversation) } : {}),
        ...(isMessage(record.message) ? { message: redactor.message(record.message) } : {}),
      };
    }
    return value;
  };
  const wrap = (target: object, fn: (...args: unknown[]) => unknown) =>
    (...args: unknown[]) => {
      const result = fn.apply(target, args);
      return result instanceof Promise ? result.then(redactResult) : redactResult(result);
    };
  const store = new Proxy(port.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      return prop === 'getConversation' && typeof value === 'function' ? wrap(target, value as (...args: unknown[]) => unknown) : value;
    },
  });
  return new Proxy(port, {
    get(target, prop, receiver) {
      if (prop === 'store') return store;
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'reveal' || prop === 'constructor') return value;
      return wrap(target, value as (...args: unknown[]) => unknown);
    },
  });
}

// ---- reveal --------------------------------------------------------------------------------

export interface RevealInput {
  conversationId: string;
  operator: Operator;
  messageId: string;
  /** The platform's id for the click: a retry does not log the reveal twice. */
  idempotencyKey?: string;
}

export interface RevealResult {
  /** The original text, for this operator only (an ephemeral message, a private panel). */
  text: string;
  /** What was masked in it (offsets in `text`). */
  spans: RedactionSpan[];
}

/** What `revealMessage` needs from the engine (the Bridge has all of it). */
export interface RevealDeps {
  committer: { change<R>(id: string, change: (c: Conversation, sink: ChangeSink) => R, options?: { inbound?: { key: string; ttlMs: number } }): Promise<{ conversation: Conversation; result: R }>; require(id: string): Promise<Conversation> };
  rules: { appendSystem(c: Conversation, sink: ChangeSink, fields: Pick<Message, 'text' | 'visibility'> & Partial<Message>): Message };
  redactor: Redactor;
  now: () => Date;
  /** An inbound key already committed for this conversation (a repeated click). */
  seen?: (key: string) => Promise<string | undefined>;
}

/**
 * The owner reveals the masked values of one message. Only the operator holding the conversation
 * may; the reveal is logged in the handoff history (reason `reveal`, the kinds and last 4 in the
 * note, never the values) and as an internal line in the thread. The original text is returned to
 * the caller only; it is never written to the work log or any workspace.
 */
export async function revealMessage(deps: RevealDeps, input: RevealInput): Promise<RevealResult> {
  const current = await deps.committer.require(input.conversationId);
  const message = current.messages.find((m) => m.id === input.messageId);
  if (!message) throw new BridgeError('not_found', `No message ${input.messageId} in ${current.ticket}.`);
  if (current.state !== 'human' || current.owner?.id !== input.operator.id) throw new NotOwnerError(input.operator, current.owner, 'reveal values in');
  const { spans } = deps.redactor.redact(message.text);
  if (spans.length === 0) return { text: message.text, spans };
  const key = input.idempotencyKey ? `command:${input.idempotencyKey}` : undefined;
  if (key && deps.seen && (await deps.seen(key)) === input.conversationId) return { text: message.text, spans };
  const what = spans.map((s) => (s.last4 ? `${s.kind} •••• ${s.last4}` : s.kind)).join(', ');
  try {
    await deps.committer.change(
      input.conversationId,
      (c, sink) => {
        // Re-checked on the state being committed: ownership may have moved since the read.
        if (c.state !== 'human' || c.owner?.id !== input.operator.id) throw new NotOwnerError(input.operator, c.owner, 'reveal values in');
        c.history.push({ from: c.state, to: c.state, reason: 'reveal', by: { kind: 'operator', operator: input.operator }, at: deps.now().toISOString(), note: `${what} in ${message.id}` });
        deps.rules.appendSystem(c, sink, { text: `${input.operator.name} revealed ${what} from a ${message.author.role} message.`, visibility: 'internal' });
      },
      key ? { inbound: { key, ttlMs: 24 * 60 * 60 * 1000 } } : {},
    );
  } catch (err) {
    if ((err as BridgeError).code !== 'duplicate_inbound') throw err;
  }
  return { text: message.text, spans };
}
