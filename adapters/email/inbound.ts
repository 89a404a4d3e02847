/**
 * Reads one parsed inbound email into what the channel needs to route it, pure: who wrote, who
 * the customer is and where our replies go, whether the relay authenticated the sender, which
 * conversation it may belong to (Message-IDs, reply tokens, ticket in the subject), whether a
 * machine sent it, and the customer's new text with quotes and signature cut.
 *
 * Reply-To (a decision, see SECURITY.md, Email): replies go to From, unless Reply-To is in
 * From's own domain, or From is one of `replyToTrusted` (your contact form), whose Reply-To names
 * the customer. Any other Reply-To is kept for the operators to see, never mailed.
 */
import type { AddressObject, ParsedMail } from 'mailparser';
import { dmarcVerdict, type AuthTrust, type SenderAuth } from './auth-results.ts';
import { detectAutomated, headerMap, type AutomatedVerdict } from './autoreply.ts';
import { stripReply } from './quotes.ts';
import { matchRecipient, normalizeMessageId, parseAddress, parseMessageIdList, rawMessageKey, ticketFromSubject } from './threading.ts';

/** At most this many Message-IDs and reply tokens are looked up per inbound email. */
const MAX_LOOKUPS = 50;
/** Only the start of a body is read for the customer's words (they are clipped far shorter anyway). */
const MAX_SCAN_CHARS = 64_000;

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
  /** The real sender: the From header's first address. */
  from?: MailParty;
  /** Who the customer is: From, or for a trusted contact form the person its Reply-To names. */
  customer?: MailParty;
  /** Whether `customer` came from From or from a trusted form's Reply-To. */
  identity?: 'from' | 'reply-to';
  /** Where our replies go: From, a Reply-To in From's domain, or a trusted form's Reply-To. */
  replyAddress?: MailParty;
  /** A Reply-To we do not mail (another domain than From's): shown to the operators only. */
  ignoredReplyTo?: string;
  /** The receiving relay's DMARC verdict on From's domain. */
  auth: SenderAuth;
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
  /** The SMTP client's IP address, when known. */
  remoteAddress?: string;
}

/** How to read a mail: our address, whose Authentication-Results to believe, whose Reply-To to use. */
export interface InboundPolicy {
  ownAddress: string;
  /** Without it no Authentication-Results header is believed: every sender is unverified. */
  trust?: AuthTrust;
  /** From addresses (`forms@acme.com`) or domains (`@forms.acme.com`) whose Reply-To is the customer. */
  replyToTrusted?: readonly string[];
}

/** Whether `address` is listed (an exact address, or `@domain`). */
export function listed(address: string, list: readonly string[] | undefined): boolean {
  const lower = address.toLowerCase();
  const domain = lower.slice(lower.lastIndexOf('@'));
  return (list ?? []).some((entry) => {
    const e = entry.trim().toLowerCase();
    return e === lower || (e.startsWith('@') && e === domain);
  });
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

/**
 * Turns a parsed email plus its SMTP envelope into an InboundMail. `raw` is the message, hashed
 * for the key of a mail without Message-ID, or `{ digest }` when the hash was already taken.
 */
export function readInbound(parsed: ParsedInbound, envelope: SmtpEnvelope, raw: Buffer | string | { digest: string }, policyOrAddress: InboundPolicy | string): InboundMail {
  const policy: InboundPolicy = typeof policyOrAddress === 'string' ? { ownAddress: policyOrAddress } : policyOrAddress;
  const ownAddress = policy.ownAddress;
  const messageId = parsed.messageId ? normalizeMessageId(parsed.messageId) : undefined;
  const from = firstParty(parsed.from);
  const replyTo = firstParty(parsed.replyTo);
  const headers = headerMap(parsed.headerLines ?? []);
  // A Reply-To pointing back at us (some clients do that on forwards) is no address for the customer.
  const otherReplyTo = replyTo && !matchRecipient(replyTo.address, ownAddress).ours && replyTo.address !== from?.address ? replyTo : undefined;
  const fromDomain = from ? parseAddress(from.address)?.domain : undefined;
  let customer = from;
  let identity: InboundMail['identity'] = from ? 'from' : undefined;
  let replyAddress = from;
  let ignoredReplyTo: string | undefined;
  if (otherReplyTo) {
    if (from && listed(from.address, policy.replyToTrusted)) {
      customer = replyAddress = otherReplyTo;
      identity = 'reply-to';
    } else if (fromDomain && parseAddress(otherReplyTo.address)?.domain === fromDomain) {
      replyAddress = from?.name && !otherReplyTo.name ? { ...otherReplyTo, name: from.name } : otherReplyTo;
    } else {
      ignoredReplyTo = otherReplyTo.address;
    }
  }
  const auth = dmarcVerdict(headers, fromDomain, policy.trust ?? { authservIds: [], relayTrusted: false });

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
  const stripped = stripReply((parsed.text ?? '').slice(0, MAX_SCAN_CHARS));
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
    key: messageId ?? (typeof raw === 'object' && 'digest' in raw ? raw.digest : rawMessageKey(raw)),
    ...(from ? { from } : {}),
    ...(customer ? { customer } : {}),
    ...(identity ? { identity } : {}),
    ...(replyAddress ? { replyAddress } : {}),
    ...(ignoredReplyTo ? { ignoredReplyTo } : {}),
    auth,
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
  // Control characters are dropped here as the bridge would, so a body of only those falls back too.
  // eslint-disable-next-line no-control-regex
  const clean = (s: string | undefined) => (s ?? '').replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '').trim();
  const words = clean(mail.text) || clean(subject);
  return [words, note].filter(Boolean).join('\n\n') || '(empty email)';
}
