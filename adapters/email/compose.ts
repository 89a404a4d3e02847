/**
 * Builds the email for one bridge message, pure: who it shows as sender ("Dana via Acme
 * Support"), the threading headers that keep it in the customer's existing thread, the subject
 * with the ticket reference, and matching plain-text and HTML bodies.
 */
import type { Conversation, Message } from '../../src/model.ts';
import { replyAddress, replySubject, threadHeaders } from './threading.ts';

/** What the email channel remembers about one conversation's mail thread. */
export interface EmailThread {
  /** Where replies go: the customer's Reply-To, else their From. */
  customerAddress: string;
  customerName?: string;
  /** The subject as the customer first wrote it (no Re:, no ticket tag). */
  subject?: string;
  /** The plus-address token that routes replies to this conversation. */
  token: string;
  /** Every Message-ID of the thread, inbound and outbound, oldest first. */
  messageIds: string[];
}

/** One outbound email. */
export interface OutboundMail {
  messageId: string;
  from: { name: string; address: string };
  to: { name?: string; address: string };
  replyTo: string;
  subject: string;
  text: string;
  html: string;
  inReplyTo?: string;
  references: string[];
  headers: Record<string, string>;
}

export interface ComposeInput {
  conversation: Pick<Conversation, 'ticket'>;
  message: Pick<Message, 'author' | 'text' | 'notice' | 'attachments'>;
  thread: EmailThread;
  /** The Message-ID this email carries (derived from the transcript message id: every attempt uses the same). */
  messageId: string;
  /** Our support address. */
  address: string;
  /** The company name customers know us by ("Acme Support"). */
  brandName: string;
}

/** Who the customer sees as the sender: the operator by name, otherwise the brand. */
export function senderName(message: Pick<Message, 'author'>, brandName: string): string {
  const name = message.author.name?.trim();
  if (message.author.role === 'operator' && name) return `${name} via ${brandName}`;
  return brandName;
}

/** Builds the outbound email for one agent reply, operator reply or status notice. */
export function composeReply(input: ComposeInput): OutboundMail {
  const { conversation, message, thread, brandName } = input;
  const { inReplyTo, references } = threadHeaders(thread.messageIds);
  const signoff = message.author.role === 'operator' && message.author.name?.trim()
    ? `${message.author.name.trim()}, ${brandName}`
    : brandName;
  const footer = `Ticket ${conversation.ticket}. Reply to this email to continue the conversation.`;
  const attachments = message.attachments ?? [];
  const attachmentLines = attachments.map((a) => `Attachment: ${a.name} <${a.url}>`);
  const body = [message.text.trim(), ...(attachmentLines.length ? ['', ...attachmentLines] : [])].join('\n');

  const headers: Record<string, string> = {
    // Ask Exchange and friends not to answer us with out-of-office mail: our side of loop prevention.
    'X-Auto-Response-Suppress': 'OOF, AutoReply',
    'X-Loop': input.address.toLowerCase(),
    'X-Handoff-Ticket': conversation.ticket,
  };
  // RFC 3834 §5: what a machine wrote says so; an operator's reply is a person's mail.
  if (message.author.role === 'agent') headers['Auto-Submitted'] = 'auto-replied';
  if (message.author.role === 'system') headers['Auto-Submitted'] = 'auto-generated';

  return {
    messageId: input.messageId,
    from: { name: senderName(message, brandName), address: input.address },
    to: thread.customerName ? { name: thread.customerName, address: thread.customerAddress } : { address: thread.customerAddress },
    replyTo: replyAddress(input.address, thread.token),
    subject: replySubject(thread.subject, conversation.ticket),
    // "-- " is the standard signature delimiter: the customer's client greys it out, our quote stripper cuts it.
    text: `${body}\n\n-- \n${signoff}\n${footer}\n`,
    html: renderHtml(message.text.trim(), attachments, signoff, footer),
    ...(inReplyTo ? { inReplyTo } : {}),
    references,
    headers,
  };
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": '#39' }[c]};`);
}

/** Plain text to safe HTML: paragraphs on blank lines, line breaks kept, http(s) links clickable. */
export function textToHtml(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n{2,}/)
    .map((para) => para.trim())
    .filter(Boolean)
    .map((para) => `<p style="margin:0 0 12px 0">${para.split('\n').map(linkify).join('<br>')}</p>`)
    .join('\n');
}

function linkify(line: string): string {
  const parts = line.split(/(https?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]])/g);
  return parts
    .map((part, i) => (i % 2 === 1 ? `<a href="${escapeHtml(part)}">${escapeHtml(part)}</a>` : escapeHtml(part)))
    .join('');
}

function renderHtml(
  text: string,
  attachments: NonNullable<Message['attachments']>,
  signoff: string,
  footer: string,
): string {
  const main = textToHtml(text);
  const links = attachments.length
    ? `<ul style="margin:0 0 12px 0;padding-left:20px">${attachments
        .map((a) => `<li><a href="${escapeHtml(a.url)}">${escapeHtml(a.name)}</a></li>`)
        .join('')}</ul>`
    : '';
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"></head>',
    '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5;color:#111827">',
    main,
    links,
    `<p style="margin:24px 0 0 0;padding-top:8px;border-top:1px solid #e5e7eb;color:#6b7280;font-size:12px">${escapeHtml(signoff)}<br>${escapeHtml(footer)}</p>`,
    '</body></html>',
  ].join('\n');
}
