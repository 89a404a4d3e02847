/**
 * Who is signed in to the console. Sign-in is by a token in a link: a one-time link (minted at
 * start-up or by a colleague, used up on first use, on every instance), a personal token from the
 * operators file, or the shared CONSOLE_TOKEN (which then asks who you are). A sign-in becomes a
 * session: a random id in an HttpOnly, SameSite=Strict cookie, kept (hashed) in the store so every
 * instance knows it and signing out ends it everywhere. Each session has a CSRF token that every
 * action must echo in a header.
 */
import { safeEqual } from '../../src/safe-equal.ts';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Operator } from '../../src/model.ts';
import type { KeyValue } from '../../src/store/store.ts';
import type { ConsoleOperator, ResolvedConsoleConfig } from './config.ts';

export const COOKIE = 'hb_console';
export const CSRF_HEADER = 'x-console-csrf';

/** A signed-in person, as kept in the store. */
export interface StoredSession {
  operatorId: string;
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

export interface Session extends StoredSession {
  operator: ConsoleOperator;
  /** The cookie's value hashed: the store key, and a stable id for this session. */
  key: string;
}

/** What a token signs in as, before it is used. */
export type TokenGrant =
  | { kind: 'link'; operator: ConsoleOperator }
  | { kind: 'personal'; operator: ConsoleOperator }
  | { kind: 'shared'; operators: ConsoleOperator[] };

export type RedeemResult = { ok: true; operator: ConsoleOperator } | { ok: false; reason: 'invalid' | 'used' | 'choose' };

/** The bridge operator a console person acts as. */
export function bridgeOperator(operator: ConsoleOperator): Operator {
  return { id: `console:${operator.id}`, name: operator.name, workspace: 'console' };
}

export class ConsoleAuth {
  constructor(
    private readonly kv: KeyValue,
    private readonly once: (key: string, ttlMs: number) => Promise<boolean>,
    private readonly config: ResolvedConsoleConfig,
  ) {}

  get operators(): ConsoleOperator[] {
    return this.config.operators;
  }

  operator(id: string): ConsoleOperator | undefined {
    return this.config.operators.find((o) => o.id === id);
  }

  /** A one-time sign-in token for `operatorId`, valid for `signInLinkTtlMs` or until used. */
  async createSignInToken(operatorId: string): Promise<string> {
    if (!this.operator(operatorId)) throw new Error(`No console operator ${operatorId}`);
    const token = randomBytes(24).toString('base64url');
    const ttl = this.config.signInLinkTtlMs;
    await this.kv.set(`signin:${hash(token)}`, { operatorId, expiresAt: this.config.clock() + ttl }, ttl);
    return token;
  }

  /** What `token` would sign in as, without using it up. */
  async inspect(token: string | undefined): Promise<TokenGrant | undefined> {
    if (!token || token.length > 512) return undefined;
    if (this.config.token && safeEqual(token, this.config.token)) return { kind: 'shared', operators: this.config.operators };
    const personal = this.config.operators.find((o) => o.token && safeEqual(token, o.token));
    if (personal) return { kind: 'personal', operator: personal };
    const link = await this.kv.get<{ operatorId: string; expiresAt: number }>(`signin:${hash(token)}`);
    const operator = link && link.expiresAt > this.config.clock() ? this.operator(link.operatorId) : undefined;
    return operator ? { kind: 'link', operator } : undefined;
  }

  /**
   * Uses a token. A one-time link works exactly once, even when two instances see it at the same
   * moment; the shared token needs `chosen` when several people are configured.
   */
  async redeem(token: string | undefined, chosen?: string): Promise<RedeemResult> {
    const grant = await this.inspect(token);
    if (!grant) return { ok: false, reason: 'invalid' };
    if (grant.kind === 'personal') return { ok: true, operator: grant.operator };
    if (grant.kind === 'shared') {
      const operator = grant.operators.length === 1 ? grant.operators[0] : chosen ? this.operator(chosen) : undefined;
      return operator ? { ok: true, operator } : { ok: false, reason: 'choose' };
    }
    const key = hash(token!);
    if (!(await this.once(`console:signin-used:${key}`, this.config.signInLinkTtlMs))) return { ok: false, reason: 'used' };
    await this.kv.delete(`signin:${key}`);
    return { ok: true, operator: grant.operator };
  }

  /** Starts a session: returns the cookie value (never stored as is) and the session. */
  async createSession(operator: ConsoleOperator): Promise<{ cookie: string; session: Session }> {
    const cookie = randomBytes(32).toString('base64url');
    const now = this.config.clock();
    const stored: StoredSession = { operatorId: operator.id, csrf: randomBytes(24).toString('base64url'), createdAt: now, expiresAt: now + this.config.sessionTtlMs };
    const key = hash(cookie);
    await this.kv.set(`session:${key}`, stored, this.config.sessionTtlMs);
    return { cookie, session: { ...stored, operator, key } };
  }

  /** The session a request's cookie belongs to, if it is valid and its person is still configured. */
  async session(req: IncomingMessage): Promise<Session | undefined> {
    const cookie = readCookie(req, COOKIE);
    if (!cookie || cookie.length > 128) return undefined;
    return this.sessionByKey(hash(cookie));
  }

  async sessionByKey(key: string): Promise<Session | undefined> {
    const stored = await this.kv.get<StoredSession>(`session:${key}`);
    if (!stored || stored.expiresAt <= this.config.clock()) return undefined;
    const operator = this.operator(stored.operatorId);
    return operator ? { ...stored, operator, key } : undefined;
  }

  async endSession(session: Session): Promise<void> {
    await this.kv.delete(`session:${session.key}`);
  }

  /** The `Set-Cookie` value that stores a session (or, with no value, clears it). */
  cookieHeader(value: string | undefined, secure: boolean): string {
    const parts = [`${COOKIE}=${value ?? ''}`, 'Path=/console', 'HttpOnly', 'SameSite=Strict', `Max-Age=${value ? Math.floor(this.config.sessionTtlMs / 1000) : 0}`];
    if (secure) parts.push('Secure');
    return parts.join('; ');
  }
}

/** True when the request carries the session's CSRF token in its header. */
export function csrfOk(req: IncomingMessage, session: Session): boolean {
  const given = req.headers[CSRF_HEADER];
  return typeof given === 'string' && safeEqual(given, session.csrf);
}

/**
 * True when a browser request comes from the console's own origin (the request's host, or
 * PUBLIC_URL). A request without Origin is not from a browser page on another site.
 */
export function originOk(req: IncomingMessage, publicUrl: string | undefined): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  const normalized = origin.replace(/\/+$/, '').toLowerCase();
  if (publicUrl && new URL(publicUrl).origin.toLowerCase() === normalized) return true;
  const host = req.headers.host?.toLowerCase();
  return host !== undefined && (normalized === `http://${host}` || normalized === `https://${host}`);
}

export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function hash(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url');
}

