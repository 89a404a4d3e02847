/**
 * The web chat wire protocol: JSON frames over the WebSocket, validated with zod on the way in,
 * built from transcript messages on the way out. Pure; the socket code does the I/O.
 *
 * Client -> server: `hello` (first, once), `message`.
 * Server -> client: `ready` (after hello and replay, with the session's next token), `token` (a
 * replacement token to keep), `message`, `typing`, `error`.
 */
import { z } from 'zod';
import type { AuthorRole, Message, NoticeKind } from '../../src/model.ts';

export const HelloFrameSchema = z.object({
  type: z.literal('hello'),
  token: z.string().min(1).max(2048),
  /** The newest message id the widget already shows; the replay starts after it. */
  lastSeenId: z.string().min(1).max(200).optional(),
  /** A verified user's token works only with the host site's proof of that user, sent again here. */
  userId: z.string().min(1).max(200).optional(),
  userHash: z.string().min(1).max(256).optional(),
});

const CLIENT_ID = /^[A-Za-z0-9_.:-]+$/;

export const MessageFrameSchema = z.object({
  type: z.literal('message'),
  // Length is checked separately so an oversized text gets its own error code, not "malformed".
  text: z.string(),
  /** The widget's id for this message: the idempotency key that makes a resend after reconnect harmless. */
  clientId: z
    .string()
    .min(1)
    .max(100)
    .regex(CLIENT_ID, 'letters, digits, _ . : - only'),
});

export const ClientFrameSchema = z.discriminatedUnion('type', [HelloFrameSchema, MessageFrameSchema]);
export type ClientFrame = z.output<typeof ClientFrameSchema>;
export type HelloFrame = z.output<typeof HelloFrameSchema>;
export type MessageFrame = z.output<typeof MessageFrameSchema>;

/** Machine-readable reasons in error frames; the widget keys its behaviour on them. */
export type ErrorCode =
  | 'malformed_frame'
  | 'hello_required'
  | 'already_started'
  | 'invalid_token'
  | 'conversation_not_found'
  | 'conversation_closed'
  | 'too_many_windows'
  | 'empty_message'
  | 'message_too_long'
  | 'rate_limited'
  | 'unavailable';

export interface ServerMessageFrame {
  type: 'message';
  id: string;
  role: AuthorRole;
  /** Who speaks, as the customer should see it: the assistant, the operator's display name, the brand. */
  name: string;
  text: string;
  at: string;
  notice?: NoticeKind;
  /** Echoed on the sender's own message so the widget can settle its pending bubble. */
  clientId?: string;
  attachments?: Array<{ name: string; url: string }>;
}

export interface ServerErrorFrame {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The message this error is about, when it is about one. */
  clientId?: string;
}

export interface ServerReadyFrame {
  type: 'ready';
  /** The session's next token: the one the hello used is spent. Keep this one for the next hello. */
  token: string;
  /** Absent until the visitor's first message creates the conversation. */
  conversationId?: string;
}

/** A token to keep instead of the previous one (the conversation was just created, or a refresh). */
export interface ServerTokenFrame {
  type: 'token';
  token: string;
  conversationId?: string;
}

export interface ServerTypingFrame {
  type: 'typing';
  name: string;
}

export type ServerFrame = ServerMessageFrame | ServerErrorFrame | ServerReadyFrame | ServerTokenFrame | ServerTypingFrame;

/**
 * A customer's message frame, checked by hand against the rules of `MessageFrameSchema` (a fuzz
 * test holds the two equal): every exchange starts with one, and zod's generic checks cost more in
 * the running bridge than the rest of the frame's handling. Undefined for anything else, which
 * then goes through zod, errors included.
 */
export function wellFormedMessage(json: unknown): MessageFrame | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const { type, text, clientId } = json as Record<string, unknown>;
  if (type !== 'message' || typeof text !== 'string' || typeof clientId !== 'string') return undefined;
  if (clientId.length < 1 || clientId.length > 100 || !CLIENT_ID.test(clientId)) return undefined;
  return { type, text, clientId };
}

/** Parses one raw client frame; a failure comes back as the error frame to send. */
export function parseClientFrame(raw: string): { ok: true; frame: ClientFrame } | { ok: false; error: ServerErrorFrame } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, error: errorFrame('malformed_frame', 'Frames must be JSON objects.') };
  }
  const message = wellFormedMessage(json);
  if (message) return { ok: true, frame: message };
  const parsed = ClientFrameSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length ? issue.path.join('.') + ': ' : '';
    return {
      ok: false,
      error: errorFrame('malformed_frame', `Unrecognised frame (${where}${issue?.message ?? 'invalid'}). Expected {type:"hello"|"message", ...}.`),
    };
  }
  return { ok: true, frame: parsed.data };
}

/**
 * Cleans a customer's text for the transcript: unified newlines, no control characters, trimmed.
 * Returns the error frame to send when it is empty or longer than `maxChars` (counted in characters
 * as a person sees them, not UTF-16 units).
 */
export function normalizeCustomerText(
  text: string,
  maxChars: number,
  clientId?: string,
): { ok: true; text: string } | { ok: false; error: ServerErrorFrame } {
  const clean = text
    .replace(/\r\n?/g, '\n')
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '')
    .trim();
  if (!clean) return { ok: false, error: errorFrame('empty_message', 'The message is empty.', clientId) };
  const length = [...clean].length;
  if (length > maxChars) {
    return {
      ok: false,
      error: errorFrame('message_too_long', `Messages can be at most ${maxChars} characters (this one has ${length}).`, clientId),
    };
  }
  return { ok: true, text: clean };
}

/** Display names the customer sees for speakers whose message carries none. */
export interface SpeakerNames {
  assistant: string;
  brand: string;
}

/**
 * The customer-facing frame for one public transcript message. `ticket` words the closed notice:
 * on the web chat a closed conversation is over (its tokens are revoked), so writing again starts a new one.
 */
export function messageFrame(message: Message, names: SpeakerNames, clientId?: string, ticket?: string): ServerMessageFrame {
  const frame: ServerMessageFrame = {
    type: 'message',
    id: message.id,
    role: message.author.role,
    name: speakerName(message, names),
    text: message.notice === 'closed' ? closedNotice(ticket) : message.text,
    at: message.at,
  };
  if (message.notice) frame.notice = message.notice;
  if (clientId) frame.clientId = clientId;
  const attachments = (message.attachments ?? []).filter((a) => /^https?:\/\//i.test(a.url));
  if (attachments.length) frame.attachments = attachments.map((a) => ({ name: a.name, url: a.url }));
  return frame;
}

export function errorFrame(code: ErrorCode, message: string, clientId?: string): ServerErrorFrame {
  return clientId ? { type: 'error', code, message, clientId } : { type: 'error', code, message };
}

function closedNotice(ticket: string | undefined): string {
  return `This conversation${ticket ? ` (${ticket})` : ''} is now closed. Write again any time to start a new one.`;
}

function speakerName(message: Message, names: SpeakerNames): string {
  const given = message.author.name?.trim();
  switch (message.author.role) {
    case 'agent':
      // The bridge names agent messages after the implementation (`offline`, `openai`); customers see the brand's assistant.
      return names.assistant;
    case 'operator':
      return given || `${names.brand} team`;
    case 'customer':
      return given || 'You';
    case 'system':
      return names.brand;
  }
}
