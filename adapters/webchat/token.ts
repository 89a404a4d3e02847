/**
 * Web chat credentials, as pure functions: the signed session token a visitor's widget keeps, and
 * the host site's identity hash (HMAC-SHA256 of the user id, as Intercom and Chatwoot do it).
 * Every comparison is timing-safe, so a forger learns nothing from how fast we say no.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** What a session token vouches for. */
export interface SessionClaims {
  conversationId: string;
  /** The visitor (anonymous id or verified host-site user id); must match `conversation.customer.id`. */
  visitorId: string;
  /** Whether the host site proved the visitor's identity when the session was issued. */
  verified: boolean;
  /** Issued-at, ms since the epoch. */
  issuedAt: number;
}

/** Why a token was refused, for the error frame and the logs (never echoes the token). */
export type TokenProblem = 'malformed' | 'bad_signature' | 'expired';

const VERSION = 'v1';

/** Signs `claims` into `v1.<payload>.<mac>` (base64url), bound to `secret`. */
export function signSessionToken(claims: SessionClaims, secret: string): string {
  const payload = Buffer.from(
    JSON.stringify({ c: claims.conversationId, v: claims.visitorId, u: claims.verified ? 1 : 0, iat: claims.issuedAt }),
  ).toString('base64url');
  return `${VERSION}.${payload}.${mac(`${VERSION}.${payload}`, secret)}`;
}

/**
 * Checks a token's signature first (timing-safe), then its shape and age.
 * `maxAgeMs` bounds how long a widget may resume with the same token.
 */
export function verifySessionToken(
  token: unknown,
  secret: string,
  options: { now: number; maxAgeMs: number },
): { ok: true; claims: SessionClaims } | { ok: false; problem: TokenProblem } {
  if (typeof token !== 'string' || token.length > 2048) return { ok: false, problem: 'malformed' };
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

/** Constant-time string comparison; unequal lengths still cost one comparison. */
function safeEqual(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  if (a.length !== b.length) {
    timingSafeEqual(b, b);
    return false;
  }
  return timingSafeEqual(a, b);
}

function readClaims(raw: unknown): SessionClaims | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { c, v, u, iat } = raw as Record<string, unknown>;
  if (typeof c !== 'string' || !c || typeof v !== 'string' || !v || typeof iat !== 'number' || !Number.isFinite(iat)) {
    return undefined;
  }
  return { conversationId: c, visitorId: v, verified: u === 1, issuedAt: iat };
}
