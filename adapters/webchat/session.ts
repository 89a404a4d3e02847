/**
 * POST /webchat/session: gives a visitor a signed session token. It stores nothing and takes no
 * ticket number: the visitor's first message creates the conversation (socket.ts). With
 * `{ userId, userHash }` from the host site (hex HMAC-SHA256(identitySecret, userId)) the visitor is
 * a verified user, and comes back to their open conversation from any device.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { BridgePort } from '../../src/ports.ts';
import { readBody } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import type { ResolvedWebChatConfig } from './config.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { Sessions } from './sessions.ts';
import { signSessionToken, verifyIdentity, type SessionClaims } from './token.ts';

const SessionRequestSchema = z.object({
  userId: z.string().trim().min(1).max(200).optional(),
  userHash: z.string().trim().max(256).optional(),
  name: z.string().trim().min(1).max(100).optional(),
  email: z.email().max(320).optional(),
});

/** What the widget gets back. */
export interface SessionResponse {
  token: string;
  /** Only when the session resumes a verified user's open conversation. */
  conversationId?: string;
  maxMessageChars: number;
}

export interface SessionContext {
  bridge: BridgePort;
  config: ResolvedWebChatConfig;
  /** New sessions per client address. */
  sessionLimiter: RateLimiter;
  /** Read only here: verified user id -> their conversation id. */
  sessions: Sessions;
  logger: Logger;
  isStopping(): boolean;
}

/** Handles POST /webchat/session. */
export async function handleSessionRequest(req: IncomingMessage, res: ServerResponse, context: SessionContext): Promise<void> {
  const { config } = context;
  const cors = corsHeaders(req, config);
  if (!cors) return reply(res, 403, {}, { code: 'origin_not_allowed', message: 'This site may not embed the chat (WEBCHAT_ALLOWED_ORIGINS).' });
  if (context.isStopping()) return reply(res, 503, { ...cors, 'retry-after': '5' }, { code: 'unavailable', message: 'The chat is restarting; try again in a few seconds.' });

  const allowed = context.sessionLimiter.take(clientAddress(req, config));
  if (!allowed.ok) {
    const seconds = Math.max(1, Math.ceil(allowed.retryAfterMs / 1000));
    return reply(res, 429, { ...cors, 'retry-after': String(seconds) }, { code: 'rate_limited', message: `Too many new chats from this address; try again in ${seconds} s.` });
  }

  let body: unknown;
  try {
    const raw = await readBody(req, 4096);
    body = raw.length ? JSON.parse(raw.toString('utf8')) : {};
  } catch (err) {
    const status = (err as { status?: number }).status === 413 ? 413 : 400;
    return reply(res, status, cors, { code: 'bad_request', message: 'Send a JSON object of at most 4 KB: { userId?, userHash?, name?, email? }.' });
  }
  const parsed = SessionRequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return reply(res, 400, cors, { code: 'bad_request', message: `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}` });
  }
  const input = parsed.data;

  let verifiedUser: string | undefined;
  if (input.userId !== undefined) {
    if (!config.identitySecret) {
      return reply(res, 400, cors, { code: 'identity_not_configured', message: 'A userId was sent, but this bridge has no WEBCHAT_IDENTITY_SECRET to verify it.' });
    }
    if (!input.userHash || !verifyIdentity(input.userId, input.userHash, config.identitySecret)) {
      context.logger.warn({ userId: input.userId }, 'web chat identity hash rejected');
      return reply(res, 401, cors, { code: 'identity_rejected', message: 'userHash does not match userId: compute hex HMAC-SHA256(identity secret, userId) on your server.' });
    }
    verifiedUser = input.userId;
  } else if (config.requireIdentity) {
    return reply(res, 401, cors, { code: 'identity_required', message: 'This chat is for signed-in users: pass userId and userHash.' });
  }

  const claims: SessionClaims = {
    sessionId: randomBytes(16).toString('base64url'),
    generation: 0,
    visitorId: verifiedUser !== undefined ? `user:${verifiedUser}` : `anon:${randomBytes(12).toString('base64url')}`,
    verified: verifiedUser !== undefined,
    issuedAt: config.clock(),
  };
  if (input.name) claims.name = input.name;
  // An email is only trusted when the host site vouched for the user; operators act on it.
  if (input.email && verifiedUser !== undefined) claims.email = input.email;
  if (verifiedUser !== undefined) {
    const conversationId = await openUserConversation(verifiedUser, claims.visitorId, context).catch((err: unknown) => {
      context.logger.error({ err }, 'web chat could not look up a verified user');
      return null;
    });
    if (conversationId === null) return reply(res, 503, { ...cors, 'retry-after': '5' }, { code: 'unavailable', message: 'The chat is briefly unavailable; try again in a few seconds.' });
    if (conversationId) claims.conversationId = conversationId;
  }
  const response: SessionResponse = { token: signSessionToken(claims, config.sessionSecret), maxMessageChars: config.maxMessageChars };
  if (claims.conversationId) response.conversationId = claims.conversationId;
  res.writeHead(200, { ...cors, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(response));
}

/** Answers the CORS preflight for POST /webchat/session. */
export function handleSessionPreflight(req: IncomingMessage, res: ServerResponse, config: ResolvedWebChatConfig): void {
  const cors = corsHeaders(req, config);
  if (!cors) return void res.writeHead(403).end();
  res
    .writeHead(204, { ...cors, 'access-control-allow-methods': 'POST, OPTIONS', 'access-control-allow-headers': 'content-type', 'access-control-max-age': '600' })
    .end();
}

/**
 * True when the request's Origin may use the chat. No Origin header means a same-origin request or
 * a non-browser client; the bridge's own pages (same host, or PUBLIC_URL) are always allowed.
 */
export function originAllowed(req: IncomingMessage, config: ResolvedWebChatConfig): boolean {
  const origin = req.headers.origin;
  if (!config.allowedOrigins || !origin) return true;
  const normalized = origin.replace(/\/+$/, '').toLowerCase();
  if (config.allowedOrigins.includes(normalized)) return true;
  if (config.publicUrl !== undefined && new URL(config.publicUrl).origin.toLowerCase() === normalized) return true;
  const host = req.headers.host?.toLowerCase();
  return host !== undefined && (normalized === `http://${host}` || normalized === `https://${host}`);
}

/** The visitor's address, for per-address limits. Behind a proxy, the first X-Forwarded-For hop. */
export function clientAddress(req: IncomingMessage, config: ResolvedWebChatConfig): string {
  if (config.trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/** A verified user's open conversation, which every device of theirs resumes; a closed one is done. Reads only. */
async function openUserConversation(userId: string, visitorId: string, context: SessionContext): Promise<string | undefined> {
  const known = await context.sessions.userConversation(userId);
  if (!known) return undefined;
  const conversation = await context.bridge.getConversation(known);
  return conversation && conversation.customer.id === visitorId && conversation.state !== 'closed' ? conversation.id : undefined;
}

function corsHeaders(req: IncomingMessage, config: ResolvedWebChatConfig): Record<string, string> | undefined {
  const origin = req.headers.origin;
  if (!originAllowed(req, config)) return undefined;
  // No cookies are involved (the token travels in the body), so a wildcard is safe when any site may embed.
  if (!config.allowedOrigins) return { 'access-control-allow-origin': '*' };
  return origin ? { 'access-control-allow-origin': origin, vary: 'Origin' } : {};
}

function reply(res: ServerResponse, status: number, headers: Record<string, string>, error: { code: string; message: string }): void {
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify({ error }));
}
