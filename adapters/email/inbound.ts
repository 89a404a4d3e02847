/**
 * Reads one parsed inbound email into what the channel needs to route it, pure: who wrote, where
 * our replies go, which conversation it may belong to (Message-IDs, reply tokens, ticket in the
 * subject), whether a machine sent it, and the customer's new text with quotes and signature cut.
 */
import type { AddressObject, ParsedMail } from 'mailparser';
import { detectAutomated, headerMap, type AutomatedVerdict } from './autoreply.ts';
import { stripReply } from './quotes.ts';
import { matchRecipient, normalizeMessageId, parseMessageIdList, rawMessageKey, ticketFromSubject } from './threading.ts';

/** At most this many Message-IDs and reply tokens are looked up per inbound email. */
const MAX_LOOKUPS = 50;

export interface MailParty {
  address: string;
  name?: string;
}

/** One inbound email, ready for routing. */
export interface InboundMail {
  /** Normalized Message-ID, when the mail has one. */
  messageId?: string;
  /** Idempotency key: the Message-ID, or a hash of the raw message when it has none. */
  key: string;
  from?: MailParty;
  /** Who our replies go to: Reply-To when given (contact forms, shared mailboxes), else From. */
  customer?: MailParty;
  subject?: string;
  /** Message-IDs this mail answers, most specific first: In-Reply-To, then References newest first. */
  refersTo: string[];
  /** Reply tokens from our plus-addresses it was sent to (envelope first, then To/Cc headers). */
  tokens: string[];
  /** Ticket reference found in the subject. */
  ticket?: string;
  /** What the customer wrote, quotes and signature removed. */
  text: string;
  /** Attachments we received but do not forward (names for the transcript). */
  attachments: Array<{ name: string; contentType: string; size: number }>;
  verdict: AutomatedVerdict;
}

export interface SmtpEnvelope {
  /** MAIL FROM: '' for the null reverse path. */
  mailFrom: string;
  rcptTo: string[];
}

function firstParty(value: AddressObject | AddressObject[] | undefined): MailParty | undefined {
  const objects = Array.isArray(value) ? value : value ? [value] : [];
  for (const object of objects) {
    for (const entry of object.value) {
      const address = entry.address?.trim().toLowerCase();
      if (address) return entry.name?.trim() ? { address, name: entry.name.trim() } : { address };
    }
  }
  return undefined;
}

function allAddresses(value: AddressObject | AddressObject[] | undefined): string[] {
  const objects = Array.isArray(value) ? value : value ? [value] : [];
  const out: string[] = [];
  for (const object of objects) {
    for (const entry of object.value) {
      if (entry.address) out.push(entry.address);
      for (const member of entry.group ?? []) if (member.address) out.push(member.address);
    }
  }
  return out;
}

/** The parts of a parsed mail this module reads (a mailparser `ParsedMail`). */
export type ParsedInbound = Pick<
  ParsedMail,
  'headerLines' | 'messageId' | 'inReplyTo' | 'references' | 'from' | 'replyTo' | 'to' | 'cc' | 'subject' | 'text' | 'attachments'
>;

/** Turns a parsed email plus its SMTP envelope into an InboundMail. */
export function readInbound(parsed: ParsedInbound, envelope: SmtpEnvelope, raw: Buffer | string, ownAddress: string): InboundMail {
  const messageId = parsed.messageId ? normalizeMessageId(parsed.messageId) : undefined;
  const from = firstParty(parsed.from);
  const replyTo = firstParty(parsed.replyTo);
  const headers = headerMap(parsed.headerLines ?? []);
  // A Reply-To pointing back at us (some clients do that on forwards) is no address for the customer.
  const usableReplyTo = replyTo && !matchRecipient(replyTo.address, ownAddress).ours ? replyTo : undefined;
  const customer = usableReplyTo ?? from;

  const inReplyTo = parseMessageIdList(parsed.inReplyTo);
  const references = parseMessageIdList(parsed.references).reverse();
  // Capped: each id is a store lookup, and a hostile message can carry thousands.
  const refersTo = [...new Set([...inReplyTo, ...references])].slice(0, MAX_LOOKUPS);

  const recipients = [
    ...envelope.rcptTo,
    ...allAddresses(parsed.to),
    ...allAddresses(parsed.cc),
    ...(headers['delivered-to'] ?? []),
    ...(headers['x-original-to'] ?? []),
  ];
  const tokens: string[] = [];
  for (const recipient of recipients) {
    const match = matchRecipient(recipient, ownAddress);
    if (match.ours && match.token && !tokens.includes(match.token)) tokens.push(match.token);
    if (tokens.length >= MAX_LOOKUPS) break;
  }

  const subject = parsed.subject?.trim() || undefined;
  const stripped = stripReply(parsed.text ?? '');
  const attachments = (parsed.attachments ?? [])
    // Images the HTML body embeds (logos in signatures) are not something the customer sent us.
    .filter((a) => !a.related)
    .map((a) => ({ name: a.filename ?? 'attachment', contentType: a.contentType, size: a.size }));

  const verdict = detectAutomated({
    headers,
    envelopeFrom: envelope.mailFrom,
    ...(from ? { from: from.address } : {}),
    ...(replyTo ? { replyTo: replyTo.address } : {}),
    ...(subject ? { subject } : {}),
    ownAddress,
  });
  const ticket = ticketFromSubject(subject);

  return {
    ...(messageId ? { messageId } : {}),
    key: messageId ?? rawMessageKey(raw),
    ...(from ? { from } : {}),
    ...(customer ? { customer } : {}),
    ...(subject ? { subject } : {}),
    refersTo,
    tokens,
    ...(ticket ? { ticket } : {}),
    text: stripped.text,
    attachments,
    verdict,
  };
}

/**
 * The transcript text for an inbound mail: the customer's words plus a line naming attachments we
 * did not forward. An empty body falls back to `subject` (people write "Refund please" as the
 * subject of an empty email), then to a placeholder, since the bridge refuses empty text.
 */
export function transcriptText(mail: Pick<InboundMail, 'text' | 'attachments'>, subject?: string): string {
  const names = mail.attachments.map((a) => a.name);
  const note = names.length ? `[Attachments received by email, not shown here: ${names.join(', ')}]` : '';
  const words = mail.text.trim() || subject?.trim() || '';
  return [words, note].filter(Boolean).join('\n\n') || '(empty email)';
}
