/**
 * Email threading, pure: how a reply finds its conversation and how our replies land in the
 * customer's existing thread. Three signals, strongest first: Message-IDs (`In-Reply-To`,
 * `References`, RFC 5322 §3.6.4), a reply token in a plus-address (`support+<token>@acme.com`),
 * and the ticket reference in the subject (`[HB-1042]`).
 */
import { createHash, randomBytes } from 'node:crypto';

/** How many Message-IDs our `References` header carries: the thread root plus the most recent ones. */
export const MAX_REFERENCES = 20;

/** A parsed mailbox address. */
export interface MailAddress {
  local: string;
  domain: string;
}

/** Splits `local@domain`; undefined for anything that is not one plain address. */
export function parseAddress(address: string): MailAddress | undefined {
  const trimmed = address.trim().replace(/^<(.*)>$/, '$1');
  const at = trimmed.lastIndexOf('@');
  if (at <= 0 || at === trimmed.length - 1) return undefined;
  const local = trimmed.slice(0, at);
  const domain = trimmed.slice(at + 1);
  if (/[\s<>,;]/.test(local) || !/^[A-Za-z0-9.-]+$/.test(domain)) return undefined;
  return { local, domain: domain.toLowerCase() };
}

/** The domain our Message-IDs are minted under: the support address's own domain. */
export function messageIdDomain(address: string): string {
  const parsed = parseAddress(address);
  if (!parsed) throw new Error(`"${address}" is not an email address`);
  return parsed.domain;
}

/**
 * Canonical form of one Message-ID for lookups: angle brackets, no whitespace. The local part
 * stays case-sensitive (RFC 5322), the domain part is lowercased because some relays rewrite it.
 */
export function normalizeMessageId(id: string): string | undefined {
  const inner = id.trim().replace(/^<+/, '').replace(/>+$/, '').replace(/\s+/g, '');
  const at = inner.lastIndexOf('@');
  if (!inner || at <= 0 || at === inner.length - 1) return undefined;
  return `<${inner.slice(0, at)}@${inner.slice(at + 1).toLowerCase()}>`;
}

/**
 * Every Message-ID in a header value (`References` is a whitespace-separated list; mailparser
 * hands it as a string or an array). Order kept, duplicates and junk dropped.
 */
export function parseMessageIdList(value: string | string[] | undefined): string[] {
  if (!value) return [];
  const raw = Array.isArray(value) ? value.join(' ') : value;
  const found = raw.match(/<[^<>\s]+>|[^<>\s,]+@[^<>\s,]+/g) ?? [];
  const ids: string[] = [];
  for (const candidate of found) {
    const id = normalizeMessageId(candidate);
    if (id && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

/**
 * The Message-ID of one outbound message, derived from the bridge message id (unique across the
 * store), so every attempt to send it carries the same id and a resend is the same email.
 */
export function outboundMessageId(bridgeMessageId: string, domain: string): string {
  const safe = bridgeMessageId.replace(/[^A-Za-z0-9._-]/g, '_');
  return `<hb.${safe}@${domain.toLowerCase()}>`;
}

/** A key for inbound mail that has no Message-ID: the same raw message hashes the same. */
export function rawMessageKey(raw: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(raw).digest('hex');
}

/**
 * The headers that thread our next message after `thread` (the conversation's Message-IDs,
 * oldest first): `In-Reply-To` the latest, `References` the root plus the most recent ones.
 */
export function threadHeaders(thread: readonly string[]): { inReplyTo?: string; references: string[] } {
  const last = thread[thread.length - 1];
  if (!last) return { references: [] };
  const references =
    thread.length <= MAX_REFERENCES ? [...thread] : [thread[0]!, ...thread.slice(thread.length - (MAX_REFERENCES - 1))];
  return { inReplyTo: last, references };
}

/**
 * How many Message-IDs a thread record keeps: the root and the most recent ones, more than
 * `References` uses. Every id stays routable through its own lookup key; this only keeps the
 * record (read and written for every email) from growing with a long or flooded thread.
 */
export const MAX_THREAD_IDS = 100;

/** Appends Message-IDs to a thread, skipping ones it already holds; keeps the root and the latest. */
export function appendToThread(thread: readonly string[], ...ids: Array<string | undefined>): string[] {
  const next = [...thread];
  for (const id of ids) if (id && !next.includes(id)) next.push(id);
  return next.length <= MAX_THREAD_IDS ? next : [next[0]!, ...next.slice(next.length - (MAX_THREAD_IDS - 1))];
}

/** A fresh reply token: short, URL- and address-safe, unguessable (it lets mail join a conversation). */
export function newReplyToken(): string {
  // Hex: survives every mail system's case folding of local parts.
  return randomBytes(8).toString('hex');
}

/** `support@acme.com` + token -> `support+<token>@acme.com`. */
export function replyAddress(address: string, token: string): string {
  const parsed = parseAddress(address);
  if (!parsed) throw new Error(`"${address}" is not an email address`);
  const base = parsed.local.split('+')[0]!;
  return `${base}+${token}@${parsed.domain}`;
}

/**
 * Whether `recipient` is our support address or one of its plus-addressed forms, and which
 * token it carries. Local parts compare case-insensitively: every mainstream provider does.
 */
export function matchRecipient(
  recipient: string,
  address: string,
): { ours: false } | { ours: true; token?: string } {
  const ours = parseAddress(address);
  const theirs = parseAddress(recipient);
  if (!ours || !theirs || ours.domain !== theirs.domain) return { ours: false };
  const base = ours.local.split('+')[0]!.toLowerCase();
  const local = theirs.local.toLowerCase();
  if (local === base) return { ours: true };
  if (!local.startsWith(base + '+')) return { ours: false };
  const token = local.slice(base.length + 1);
  return token ? { ours: true, token } : { ours: true };
}

const TICKET_IN_SUBJECT = /\[\s*([A-Za-z][A-Za-z0-9]{0,9}-\d{1,10})\s*\]/;

/** The ticket reference in a subject (`Re: Refund [HB-1042]` -> `HB-1042`), uppercased. */
export function ticketFromSubject(subject: string | undefined): string | undefined {
  const match = subject?.match(TICKET_IN_SUBJECT);
  return match?.[1]?.toUpperCase();
}

/** Reply and forward prefixes, in the languages mail clients commonly write them. */
const SUBJECT_PREFIX = /^\s*(?:(?:re|aw|sv|vs|antw|antwort|ref|rif|r|res|odp|wg|fw|fwd|tr|rv|enc|doorst)\s*(?:\[\d+\])?\s*[:：]\s*)+/i;

/**
 * The conversation's subject as the customer first wrote it: no `Re:`/`Fwd:` prefixes, no ticket
 * tag, single spaces. Empty subjects come back as undefined.
 */
export function baseSubject(subject: string | undefined): string | undefined {
  if (!subject) return undefined;
  let s = subject.replace(/\s+/g, ' ').trim();
  for (let i = 0; i < 5; i++) {
    const before = s;
    s = s.replace(SUBJECT_PREFIX, '').replace(TICKET_IN_SUBJECT, ' ').replace(/\s+/g, ' ').trim();
    if (s === before) break;
  }
  return s || undefined;
}

/** The subject of our reply: `Re: <subject> [HB-1042]`, so clients thread it and the ticket travels along. */
export function replySubject(subject: string | undefined, ticket: string): string {
  const base = baseSubject(subject) ?? 'Your request';
  return `Re: ${base} [${ticket}]`;
}
