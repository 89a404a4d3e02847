/**
 * The store contract. Two backends implement it on keyv: SQLite (embedded, durable, one instance)
 * and Redis (several instances). Conversation updates are serialized with `withLock`; inbound
 * events take effect once through `once`.
 */
import type { Conversation } from '../model.ts';

/** A namespaced key-value area for one adapter's own data (thread ids, sessions, outboxes). */
export interface KeyValue {
  get<T>(key: string): Promise<T | undefined>;
  set<T>(key: string, value: T, ttlMs?: number): Promise<void>;
  delete(key: string): Promise<void>;
}

export interface Store {
  /** `sqlite` or `redis`. */
  readonly backend: string;
  getConversation(id: string): Promise<Conversation | undefined>;
  /** Callers hold the conversation's lock. */
  saveConversation(conversation: Conversation): Promise<void>;
  /**
   * Runs `fn` while holding an exclusive lock on `key` across every process sharing this store.
   * Throws `LockTimeoutError` if it cannot be taken in time.
   */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** True the first time `key` is seen within `ttlMs`; false for a repeat (idempotency). */
  once(key: string, ttlMs?: number): Promise<boolean>;
  /** Forget an idempotency key (when the work it guarded failed and may be retried). */
  forget(key: string): Promise<void>;
  /** Monotonic counter, for ticket numbers. */
  increment(counter: string): Promise<number>;
  /** An adapter's own namespaced area. */
  kv(namespace: string): KeyValue;
  close(): Promise<void>;
}
