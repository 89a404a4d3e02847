/**
 * Web chat credentials, as pure functions: the signed session token a visitor's widget keeps, and
 * the host site's identity hash (HMAC-SHA256 of the user id, as Intercom and Chatwoot do it).
 * Every comparison is timing-safe, so a forger learns nothing from how fast we say no.
 *
 * A token names a session and one generation of it. The signature proves the bridge issued it; the
 * session record (sessions.ts) says which generation is current, so a used token stops working.
 */
import { safeEqual } from '../../src/safe-equal.ts';
import { createHmac } from 'node:crypto';

/** What a session token vouches for. */
export interface SessionClaims {
  /** The session: one browser's chat, across its tabs and reloads. Random, 128 bits. */
  sessionId: string;
  /** 0 until the session has a conversation; each hello moves the session to the next one. */
  generation: number;
  /** The visitor (`anon:…` or `user:<verified user id>`); becomes `conversation.customer.id`. */
  visitorId: string;
  /** The host site proved the visitor's identity when the session was issued. */
  verified: boolean;
  /** The conversation, when the session started with one (a verified user's open conversation). */
  conversationId?: string;
  /** The name the visitor gave, for the conversation their first message creates. */
  name?: string;
  /** Only for verified users: the host site vouched for it. */
  email?: string;
  /** Issued-at, ms since the epoch. */
  issuedAt: number;
}

/** Why a token was refused, for the error frame and the logs (never echoes the token). */
export type TokenProblem = 'malformed' | 'bad_signature' | 'expired';

const VERSION = 'v2';
const MAX_TOKEN_LENGTH = 2048;

/** Signs `claims` into `v2.<payload>.<mac>` (base64url), bound to `secret`. */
export function signSessionToken(claims: SessionClaims, secret: string): string {
  const body: Record<string, unknown> = { s: claims.sessionId, g: claims.generation, v: claims.visitorId, u: claims.verified ? 1 : 0, iat: claims.issuedAt };
  if (claims.conversationId) body.c = claims.conversationId;
  if (claims.name) body.n = claims.name;
  if (claims.email) body.e = claims.email;
  const payload = Buffer.from(JSON.stringify(body)).toString('base64url');
  return `${VERSION}.${payload}.${mac(`${VERSION}.${payload}`, secret)}`;
}

/**
 * Checks a token's signature first (timing-safe), then its shape and age. A token is good for
 * `maxAgeMs` after it was issued; the session record decides whether it is still current.
 */
export function verifySessionToken(
  token: unknown,
  secret: string,
  options: { now: number; maxAgeMs: number },
): { ok: true; claims: SessionClaims } | { ok: false; problem: TokenProblem } {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return { ok: false, problem: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== VERSION) return { ok: false, problem: 'malformed' };
  const [version, payload, signature] = parts as [string, string, string];
  if (!safeEqual(signature, mac(`${version}.${payload}`, secret))) return { ok: false, problem: 'bad_signature' };
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, problem: 'malformed' };
  }
  const claims = readClaims(raw);
  if (!claims) return { ok: false, problem: 'malformed' };
  // A token from the future (clock skew between instances) is tolerated for a minute.
  if (claims.issuedAt > options.now + 60_000 || options.now - claims.issuedAt > options.maxAgeMs) {
    return { ok: false, problem: 'expired' };
  }
  return { ok: true, claims };
}

/** The verified user id inside a verified visitor id (`user:42` -> `42`). */
export function verifiedUserId(claims: SessionClaims): string | undefined {
  return claims.verified && claims.visitorId.startsWith('user:') ? claims.visitorId.slice(5) : undefined;
}

/** The hash a host site computes on its server: hex HMAC-SHA256(identitySecret, userId). */
export function identityHash(userId: string, identitySecret: string): string {
  return createHmac('sha256', identitySecret).update(userId, 'utf8').digest('hex');
}

/** True when `userHash` is the host site's HMAC of `userId` (hex, any case). */
export function verifyIdentity(userId: string, userHash: string, identitySecret: string): boolean {
  return safeEqual(userHash.toLowerCase(), identityHash(userId, identitySecret));
}

function mac(data: string, secret: string): string {
  return createHmac('sha256', secret).update(data, 'utf8').digest('base64url');
}


const optionalString = (value: unknown): value is string | undefined => value === undefined || (typeof value === 'string' && value.length > 0);

function readClaims(raw: unknown): SessionClaims | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const { s, g, v, u, c, n, e, iat } = raw as Record<string, unknown>;
  if (typeof s !== 'string' || !s || typeof v !== 'string' || !v) return undefined;
  if (!Number.isSafeInteger(g) || (g as number) < 0 || typeof iat !== 'number' || !Number.isFinite(iat)) return undefined;
  if (!optionalString(c) || !optionalString(n) || !optionalString(e)) return undefined;
  const verified = u === 1;
  // The two kinds of visitor id cannot be confused: only a verified token names a user.
  if (verified !== v.startsWith('user:') || (!verified && e !== undefined)) return undefined;
  const claims: SessionClaims = { sessionId: s, generation: g as number, visitorId: v, verified, issuedAt: iat };
  if (c !== undefined) claims.conversationId = c;
  if (n !== undefined) claims.name = n;
  if (e !== undefined) claims.email = e;
  return claims;
}
