/**
 * One transcript message as a Teams thread reply: labelled by author, internal notes and customer
 * notices marked, files as links. Sent with `textFormat: 'xml'`; every untrusted character is
 * escaped, so a customer cannot disguise a link, mention someone or fake a label.
 */
import type { Attachment, Message } from '../../src/model.ts';
import { CARD_SCHEMA, richText, submitButton, type AdaptiveCard } from './adaptive.ts';
import { clip, escapeAttribute, escapeMessageText, oneLine, safeUrl } from './text.ts';

/**
 * Longest escaped text in one Teams message. Teams refuses messages over 40 KB counted as UTF-16,
 * and escaping can grow a text sixfold, so the limit applies after escaping.
 */
export const MAX_MESSAGE_CHARS = 14_000;

/** Labels of the internal lines the escalation ladder writes into the thread. */
const INTERNAL_NOTICE_LABEL: Record<string, string> = { reminder: '⏰', managers: '📋' };

/** A message activity body ready for the Bot Connector. */
export interface TeamsText {
  text: string;
  textFormat: 'xml';
  /** Plain preview for notifications. */
  summary: string;
}

/** The thread reply for one transcript message. */
export function formatMirroredMessage(message: Message): TeamsText {
  const name = message.author.name ? oneLine(message.author.name, 100) : undefined;
  let label: string;
  switch (message.author.role) {
    case 'customer':
      label = `👤 <b>${escapeMessageText(name ?? 'Customer')}</b> (customer)`;
      break;
    case 'agent':
      label = `🤖 <b>${escapeMessageText(name ?? 'AI agent')}</b> (agent)`;
      break;
    case 'operator':
      label = `🧑‍💼 <b>${escapeMessageText(name ?? 'Operator')}</b> (operator${message.source ? `, ${escapeMessageText(message.source.workspace)}` : ''})`;
      break;
    case 'system':
      // Public system messages are notices the customer saw; internal ones record who did what.
      label = message.visibility === 'public' ? '📣 <i>Customer was told:</i>' : (INTERNAL_NOTICE_LABEL[message.notice ?? ''] ?? 'ℹ️');
      break;
  }
  if (message.visibility === 'internal' && message.author.role !== 'system') {
    label = `📝 <b>Internal note</b> · ${escapeMessageText(name ?? message.author.role)}`;
  }
  const raw = message.text.trim();
  const files = (message.attachments ?? []).slice(0, 20).map(fileLine);
  const room = MAX_MESSAGE_CHARS - label.length - files.join('<br>').length - 100;
  const body = fitEscaped(raw, room);
  const separator = message.author.role === 'system' ? ' ' : '<br>';
  const head = [label, body].filter((p) => p.length > 0).join(separator);
  return {
    text: [head, ...files].join('<br>'),
    textFormat: 'xml',
    summary: oneLine(`${name ?? message.author.role}: ${raw}`, 200),
  };
}

/**
 * The small card under a mirrored message whose copy has masked values (`message.masked`): how many,
 * and a Reveal button (`Action.Submit`) carrying the conversation and message ids. Undefined when
 * nothing was masked.
 */
export function buildRevealCard(conversationId: string, message: Pick<Message, 'id' | 'masked'>): AdaptiveCard | undefined {
  const masked = message.masked ?? 0;
  if (masked <= 0) return undefined;
  return {
    type: 'AdaptiveCard',
    $schema: CARD_SCHEMA,
    version: '1.5',
    body: [richText([{ text: `🔒 ${masked === 1 ? '1 value is' : `${masked} values are`} masked here. The owner can reveal ${masked === 1 ? 'it' : 'them'} privately (logged).`, isSubtle: true }], { spacing: 'none' })],
    actions: [submitButton('Reveal', { handoff: 1, conversationId, action: 'reveal', messageId: message.id })],
  };
}

/**
 * The original of a masked message, for the owner's 1:1 chat with the bot only. The summary (shown
 * in notifications) leaves the original out.
 */
export function formatRevealedMessage(ticket: string, message: Pick<Message, 'author'> | undefined, original: string): TeamsText {
  const from = message ? `${message.author.role} message` : 'message';
  const label = `🔓 <b>${escapeMessageText(oneLine(ticket, 40))}</b>, ${escapeMessageText(from)} (only you see this; the reveal is logged):`;
  return { text: `${label}<br>${fitEscaped(original.trim(), MAX_MESSAGE_CHARS - label.length - 100)}`, textFormat: 'xml', summary: oneLine(`${ticket}: the ${from} you revealed`, 200) };
}

/** A plain line from the bridge (private notices to operators, fallbacks). */
export function formatBridgeLine(text: string): TeamsText {
  return { text: `ℹ️ ${fitEscaped(text.trim(), 8000)}`, textFormat: 'xml', summary: oneLine(text, 200) };
}

/** The escaped text, cut (with a note) until it fits `room` characters. */
function fitEscaped(raw: string, room: number): string {
  let escaped = escapeMessageText(raw);
  if (escaped.length <= room) return escaped;
  let keep = raw.length;
  while (escaped.length > room && keep > 0) {
    keep = Math.floor(keep * Math.min(0.95, room / escaped.length));
    escaped = escapeMessageText(clip(raw, keep));
  }
  return `${escaped}<br><i>(${raw.length} characters; cut to fit Teams)</i>`;
}

function fileLine(file: Attachment): string {
  const name = escapeMessageText(oneLine(file.name || 'file', 200));
  const url = safeUrl(file.url);
  // Only http(s) links become clickable; anything else is shown as text so it cannot run.
  return url ? `📎 <a href="${escapeAttribute(url)}">${name}</a>` : `📎 ${name} (${escapeMessageText(oneLine(file.url, 300))})`;
}
