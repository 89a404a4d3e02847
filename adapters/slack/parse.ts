/**
 * Reading what Slack sends: which message events are operator replies (and which are echoes to
 * ignore), shared files, and the text after `/return` and `/route`. Pure functions.
 */
import type { Attachment } from '../../src/model.ts';

/** A human reply inside a thread, the only message events the bridge acts on. */
export interface ThreadReply {
  channel: string;
  threadTs: string;
  ts: string;
  user: string;
  text: string;
  files: SlackFile[];
}

/** The parts of a Slack file object the bridge uses. */
export interface SlackFile {
  id?: string;
  name?: string;
  title?: string;
  mimetype?: string;
  size?: number;
  mode?: string;
  url_private?: string;
  url_private_download?: string;
  permalink?: string;
  permalink_public?: string;
}

/** Subtypes that are new human content; everything else (edits, deletes, broadcasts, joins, bots) is an echo or noise. */
const CONTENT_SUBTYPES = new Set([undefined, 'file_share']);

/**
 * The thread reply in a message event, or why it is not one. Ignores the app's own posts and any
 * bot, edits (`message_changed`), deletes, `thread_broadcast`, joins and top-level messages.
 */
export function threadReplyOf(event: Record<string, unknown>): { reply: ThreadReply } | { ignore: string } {
  if (event.type !== 'message') return { ignore: 'not a message' };
  const subtype = event.subtype as string | undefined;
  if (!CONTENT_SUBTYPES.has(subtype)) return { ignore: `subtype ${String(subtype)}` };
  if (event.bot_id || event.bot_profile || event.app_id) return { ignore: 'from a bot' };
  const text = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
  const [channel, ts, threadTs, user] = [text(event.channel), text(event.ts), text(event.thread_ts), text(event.user)];
  if (!channel || !ts || !user) return { ignore: 'incomplete' };
  if (!threadTs || threadTs === ts) return { ignore: 'not in a thread' };
  const files = Array.isArray(event.files) ? (event.files.filter((f) => typeof f === 'object' && f !== null && !Array.isArray(f)) as SlackFile[]) : [];
  return { reply: { channel, threadTs, ts, user, text: typeof event.text === 'string' ? event.text : '', files } };
}

/** Files that can be shown (not deleted, not hidden by plan limits). */
export function usableFiles(files: readonly SlackFile[]): SlackFile[] {
  const isText = (v: unknown) => typeof v === 'string' && v.length > 0;
  return files.filter((f) => f.mode !== 'tombstone' && f.mode !== 'hidden_by_limit' && (isText(f.url_private) || isText(f.permalink) || isText(f.permalink_public)));
}

/**
 * Files as attachments for the customer. `link(file)` supplies a URL the customer can open (the
 * bridge's signed file link); without it the public permalink or, as a last resort, Slack's own link.
 */
export function filesToAttachments(files: readonly SlackFile[], link?: (file: SlackFile) => string | undefined): Attachment[] {
  const text = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
  return usableFiles(files).map((f) => {
    const url = link?.(f) ?? text(f.permalink_public) ?? text(f.permalink) ?? f.url_private!;
    return {
      name: (text(f.name) ?? text(f.title) ?? 'file').slice(0, 200),
      url,
      ...(text(f.mimetype) ? { contentType: f.mimetype! } : {}),
      ...(typeof f.size === 'number' ? { size: f.size } : {}),
    };
  });
}

/** Ticket references look like `HB-1042`. */
const TICKET = /^\s*([A-Z][A-Z0-9]{0,9}-\d{1,9})\b[\s:,.-]*/i;

/** `/return [ticket] [note]`: an optional leading ticket reference, the rest is the note. */
export function parseHandBackText(text: unknown): { ticket?: string; note?: string } {
  const raw = (typeof text === 'string' ? text : '').trim();
  const match = TICKET.exec(raw);
  const ticket = match?.[1]?.toUpperCase();
  const note = (match ? raw.slice(match[0].length) : raw).trim();
  return { ...(ticket ? { ticket } : {}), ...(note ? { note } : {}) };
}

/** What `/route [HB-1042] <agent> [--pin] [note]` asks for. */
export interface RouteRequest {
  ticket?: string;
  agent?: string;
  pin: boolean;
  note?: string;
}

/**
 * `/route [ticket] <agent> [--pin] [note]`; `--pin` may also come before the agent. A first word
 * that is one of `agents` is the agent even if it looks like a ticket (an agent named `t-2`).
 */
export function parseRouteText(text: unknown, agents: readonly string[] = []): RouteRequest {
  let rest = (typeof text === 'string' ? text : '').trim();
  const word = () => /^(\S+)\s*/.exec(rest);
  let ticket: string | undefined;
  const first = word();
  if (first && !agents.includes(first[1]!) && /^[A-Z][A-Z0-9]{0,9}-\d{1,9}$/i.test(first[1]!)) {
    ticket = first[1]!.toUpperCase();
    rest = rest.slice(first[0].length);
  }
  let pin = false;
  let agent: string | undefined;
  // The agent and `--pin`, in either order, before the note.
  for (let i = 0; i < 2; i++) {
    const match = word();
    if (!match) break;
    if (match[1] === '--pin' && !pin) pin = true;
    else if (!agent && !match[1]!.startsWith('--')) agent = match[1];
    else break;
    rest = rest.slice(match[0].length);
  }
  const note = rest.trim();
  return { ...(ticket ? { ticket } : {}), ...(agent ? { agent } : {}), pin, ...(note ? { note } : {}) };
}

/** User ids mentioned as `<@U123>` or `<@U123|name>` in Slack text. */
export function mentionedUsers(text: string): string[] {
  return [...new Set([...text.matchAll(/<@([UW][A-Z0-9]+)(?:\|[^>]*)?>/g)].map((m) => m[1]!))];
}
