/**
 * Text safety for Teams. Anything a customer, the agent or an operator wrote is untrusted: in a card
 * it goes into a `TextRun` (Adaptive Cards never parse markdown there), in a plain message it is
 * HTML- and markdown-escaped, so nobody can disguise a link, inject a mention or break the layout.
 */

/** Control characters other than newline and tab, which no Teams surface should receive. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\u202A-\u202E\u2066-\u2069]/g;

/** Drops control and bidi-override characters and normalizes line endings. */
export function clean(text: string): string {
  return String(text ?? '').replace(/\r\n?/g, '\n').replace(CONTROL, '');
}

/** Cuts `text` to at most `max` characters (ellipsis included), never splitting a surrogate pair. */
export function clip(text: string, max: number): string {
  if (max <= 0) return '';
  if (text.length <= max) return text;
  let cut = text.slice(0, Math.max(0, max - 1));
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut + '…';
}

/** One line: whitespace runs (newlines included) collapse to a single space. */
export function oneLine(text: string, max: number): string {
  return clip(clean(text).replace(/\s+/g, ' ').trim(), max);
}

const ENTITY: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  // Markdown syntax characters become numeric entities: Teams shows the character, no parser sees syntax.
  '[': '&#91;',
  ']': '&#93;',
  '*': '&#42;',
  _: '&#95;',
  '`': '&#96;',
  '~': '&#126;',
  '\\': '&#92;',
  '|': '&#124;',
  '#': '&#35;',
};

/**
 * Escapes untrusted text for a Teams message sent with `textFormat: 'xml'`: HTML specials and
 * markdown syntax become entities and newlines become `<br>`, so the text shows exactly as typed.
 */
export function escapeMessageText(text: string): string {
  return clean(text)
    .replace(/[&<>"[\]*_`~\\|#]/g, (ch) => ENTITY[ch] ?? ch)
    .replace(/\n/g, '<br>');
}

/** Escapes a value for an HTML attribute (a link's `href`). */
export function escapeAttribute(text: string): string {
  return clean(text).replace(/[&<>"'`]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** An `http(s)` URL, or undefined for anything else (`javascript:`, `data:`, relative paths). */
export function safeUrl(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  try {
    const url = new URL(raw);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.toString() : undefined;
  } catch {
    return undefined;
  }
}

/** Payload size as Teams counts it: the message encoded as UTF-16, two bytes per code unit. */
export function utf16Bytes(value: unknown): number {
  return JSON.stringify(value).length * 2;
}

/** A compact one-line rendering of a tool input or output for the briefing. */
export function compactJson(value: unknown, max: number): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  } catch {
    text = String(value);
  }
  return oneLine(text, max);
}
