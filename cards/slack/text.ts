/**
 * Text for Slack: escaping untrusted input into mrkdwn, fitting it into Block Kit limits, and turning
 * an operator's Slack markup back into plain text for the customer. Pure functions.
 */

/** Bidi overrides and isolates can make `moc.knab` read as `bank.com`; C0 controls have no business in a message. */
const HIDDEN_CONTROLS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\u202A-\u202E\u2066-\u2069]/g;

/** Word joiner: invisible, and it stops Slack reading `@channel` as a broadcast. */
const WORD_JOINER = '\u2060';

const ELLIPSIS = '…';

/**
 * Escapes untrusted text (customer, agent, display names) for a mrkdwn field.
 * `&`, `<`, `>` become entities, so `<!channel>`, `<@U123>` and `<http://evil|bank.com>` show as typed
 * and never ping or link; bare `@channel`/`@here`/`@everyone` get a word joiner for the same reason.
 */
export function escapeMrkdwn(raw: string): string {
  return stripHidden(raw)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/@(channel|here|everyone)\b/gi, `@${WORD_JOINER}$1`);
}

/** Removes invisible control characters that could disguise text. */
export function stripHidden(raw: string): string {
  return raw.replace(HIDDEN_CONTROLS, '');
}

/**
 * Shortens text to at most `max` UTF-16 units (Slack's count), ending with `…` when cut.
 * Never splits a surrogate pair or an HTML entity produced by `escapeMrkdwn`.
 */
export function fit(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 0) return '';
  if (max === 1) return ELLIPSIS;
  let end = max - 1;
  // Do not cut a surrogate pair in half.
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  // Do not cut an entity (`&amp;` is the longest we produce) in half.
  const amp = text.lastIndexOf('&', end - 1);
  if (amp !== -1 && end - amp < 5) {
    const semi = text.indexOf(';', amp);
    if (semi === -1 || semi >= end) end = amp;
  }
  return text.slice(0, end) + ELLIPSIS;
}

/**
 * Splits escaped mrkdwn into pieces of at most `max` (one per section block), preferring line
 * breaks, then spaces; never inside a surrogate pair or an entity. Empty text gives no piece.
 */
export function splitMrkdwn(text: string, max: number): string[] {
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > max) {
    let end = safeEnd(rest, max);
    const newline = rest.lastIndexOf('\n', end - 1);
    const space = rest.lastIndexOf(' ', end - 1);
    if (newline > max / 2) end = newline + 1;
    else if (space > max / 2) end = space + 1;
    pieces.push(rest.slice(0, end));
    rest = rest.slice(end);
  }
  if (rest.length > 0) pieces.push(rest);
  return pieces.filter((p) => p.trim().length > 0);
}

/** The largest cut at or before `max` that splits neither a surrogate pair nor an `&...;` entity. */
function safeEnd(text: string, max: number): number {
  let end = max;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  const amp = text.lastIndexOf('&', end - 1);
  if (amp > 0 && end - amp < 6) {
    const semi = text.indexOf(';', amp);
    if (semi === -1 || semi >= end) end = amp;
  }
  return end;
}

/** Untrusted text, escaped for mrkdwn and fitted to `max`. */
export function mrkdwn(raw: string, max: number): string {
  return fit(escapeMrkdwn(raw), max);
}

/**
 * Untrusted text for a `plain_text` object (headers, buttons, modal titles): Slack shows it literally,
 * so only hidden characters go; line breaks become spaces where a single line is expected.
 */
export function plain(raw: string, max: number, singleLine = true): string {
  let text = neutralizeMarkup(stripHidden(raw));
  if (singleLine) text = text.replace(/\s+/g, ' ').trim();
  const fitted = fit(text, max);
  // plain_text must not be empty.
  return fitted.length > 0 ? fitted : '-';
}

/**
 * Plain text is not parsed by Slack, but a word joiner after `<` and `@` keeps even a copy-pasted
 * `<!channel>` or `@here` from ever becoming one; it is invisible.
 */
function neutralizeMarkup(text: string): string {
  return text.replace(/<(?=[!@#]|[a-z][a-z0-9+.-]*:)/gi, `<${WORD_JOINER}`).replace(/@(channel|here|everyone)\b/gi, `@${WORD_JOINER}$1`);
}

/** Quotes escaped mrkdwn as a block quote, line by line. */
export function quote(escaped: string): string {
  return escaped
    .split('\n')
    .map((line) => `&gt; ${line}`)
    .join('\n');
}

/**
 * Turns an operator's Slack message into plain text for the customer: mentions become names,
 * links become `label (url)`, entities are decoded. `userName` resolves a Slack user id (falls back to the id).
 */
export function slackToPlain(text: string, userName: (userId: string) => string | undefined = () => undefined): string {
  const converted = text.replace(/<([^<>]*)>/g, (_all, inner: string) => {
    const bar = inner.indexOf('|');
    const target = bar === -1 ? inner : inner.slice(0, bar);
    const label = bar === -1 ? undefined : inner.slice(bar + 1);
    if (target.startsWith('@')) return '@' + (label ?? userName(target.slice(1)) ?? target.slice(1));
    if (target.startsWith('#')) return '#' + (label ?? target.slice(1));
    if (target.startsWith('!subteam^')) return label ?? '@team';
    if (target.startsWith('!date^')) return label ?? '';
    if (target.startsWith('!')) return '@' + (label ?? target.slice(1));
    if (target.startsWith('mailto:')) return label ?? target.slice('mailto:'.length);
    if (label === undefined || label === target || target.endsWith('//' + label) || target.endsWith('//' + label + '/')) return target;
    return `${label} (${target})`;
  });
  return decodeEntities(converted);
}

/** Decodes the three entities Slack encodes in message text. */
export function decodeEntities(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
