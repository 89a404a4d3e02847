/**
 * Session records: which token generation of a session is current, and which conversation the
 * session has. A record is written at the session's first message (or, for a verified user who
 * comes back to an open conversation, at its first hello); before that a session is only a signed
 * token and the bridge stores nothing for it.
 *
 * Rotation: each hello moves the session to the next generation and hands the new token to that
 * socket. The generation just replaced stays good for a short grace (two tabs that read the same
 * token, a ready frame lost with the network); after that it is refused. A refused token never
 * touches the sockets already open, so a stolen token cannot push the customer out.
 */
import type { KeyValue, Store } from '../../src/store/store.ts';
import type { SessionClaims } from './token.ts';

export interface SessionRecord {
  visitorId: string;
  /** Absent while the first message is being stored (or if that attempt died before it committed). */
  conversationId?: string;
  /** The message that created the conversation: its resend maps to the same idempotency key. */
  firstClientId?: string;
  /** The current generation. */
  generation: number;
  /** When `generation` was issued by a rotation. */
  rotatedAt: number;
  /** Hellos accepted with the previous generation since then. */
  graceUses: number;
}

/** How long the generation just replaced is still accepted. */
export const ROTATION_GRACE_MS = 30_000;
/** How many hellos the replaced generation may make during the grace (tabs racing on one token). */
export const MAX_GRACE_USES = 4;

/** What a hello with a valid signature may do. */
export type Admission =
  /** The session has no conversation yet: nothing to write. */
  | { kind: 'pending' }
  /** Write `record` and give the socket a token for `record.generation`. */
  | { kind: 'admit'; conversationId: string; record: SessionRecord }
  | { kind: 'refuse'; reason: 'unknown_session' | 'replayed' | 'mismatch' };

/** Decides a hello from the token's claims and the stored record. Pure. */
export function admit(claims: SessionClaims, record: SessionRecord | undefined, now: number): Admission {
  if (!record || record.conversationId === undefined) {
    if (record && record.visitorId !== claims.visitorId) return { kind: 'refuse', reason: 'mismatch' };
    // A generation above 0 exists only once a record does: this one expired or never was.
    if (claims.generation > 0) return { kind: 'refuse', reason: 'unknown_session' };
    if (claims.conversationId === undefined) return { kind: 'pending' };
    return { kind: 'admit', conversationId: claims.conversationId, record: { visitorId: claims.visitorId, generation: 1, rotatedAt: now, graceUses: 0 } };
  }
  if (record.visitorId !== claims.visitorId) return { kind: 'refuse', reason: 'mismatch' };
  if (claims.conversationId !== undefined && claims.conversationId !== record.conversationId) return { kind: 'refuse', reason: 'mismatch' };
  const conversationId = record.conversationId;
  if (claims.generation === record.generation) {
    return { kind: 'admit', conversationId, record: { ...record, generation: record.generation + 1, rotatedAt: now, graceUses: 0 } };
  }
  const justReplaced = claims.generation === record.generation - 1 && now - record.rotatedAt <= ROTATION_GRACE_MS && record.graceUses < MAX_GRACE_USES;
  if (justReplaced) return { kind: 'admit', conversationId, record: { ...record, graceUses: record.graceUses + 1 } };
  return { kind: 'refuse', reason: 'replayed' };
}

/** Session records in the web chat's kv area, with the store-wide lock that serialises a session. */
export class Sessions {
  constructor(
    private readonly kv: KeyValue,
    private readonly store: Pick<Store, 'withLock'>,
    /** Records outlive every token they issued. */
    private readonly recordTtlMs: number,
  ) {}

  get(sessionId: string): Promise<SessionRecord | undefined> {
    return this.kv.get<SessionRecord>(`session:${sessionId}`);
  }

  put(sessionId: string, record: SessionRecord): Promise<void> {
    return this.kv.set(`session:${sessionId}`, record, this.recordTtlMs);
  }

  /** Runs `fn` holding the session's lock (and first the user's, for a verified visitor). */
  withLock<T>(claims: SessionClaims, fn: () => Promise<T>, options: { user?: string } = {}): Promise<T> {
    const session = () => this.store.withLock(`webchat:session:${claims.sessionId}`, fn);
    return options.user === undefined ? session() : this.store.withLock(`webchat:user:${options.user}`, session);
  }

  /** The conversation a verified user last had. */
  userConversation(userId: string): Promise<string | undefined> {
    return this.kv.get<string>(`user:${userId}`);
  }

  setUserConversation(userId: string, conversationId: string): Promise<void> {
    return this.kv.set(`user:${userId}`, conversationId);
  }
}
