/**
 * The store port. Two backends implement it: SQLite (embedded, durable, one instance) and Redis
 * (several instances). The engine writes a conversation only through `commit`: one atomic write
 * of the new state (compare-and-set on its version), the appended messages, the index entries,
 * the inbound idempotency mark and the work the change implies. Workers drain that work through
 * `work` (leases, cursors); `changes` tells every instance that a conversation changed.
 */
import type { Conversation, HistoryEntry, Message, Operator } from '../model.ts';

/** A namespaced key-value area for one adapter's own data (thread ids, sessions, profiles). */
export interface KeyValue {
  get<T>(key: string): Promise<T | undefined>;
  set<T>(key: string, value: T, ttlMs?: number): Promise<void>;
  delete(key: string): Promise<void>;
}

/**
 * One unit of work a commit implies for some destinations. Work carries ids, not copies: the
 * worker reads the conversation as it is when the work runs, so cards show the latest state.
 */
export type WorkPayload =
  /** Show a transcript message in a workspace thread. */
  | { kind: 'mirror'; messageId: string }
  /** Send a public transcript message to the customer. */
  | { kind: 'deliver'; messageId: string }
  /** Ownership changed: refresh the thread root and the briefing cards. */
  | { kind: 'ownership'; change: HistoryEntry }
  /** A new escalation (the n-th of this conversation): post its briefing. */
  | { kind: 'briefing'; escalation: number }
  /** The escalation waited too long unclaimed: show it in the managers' channel. */
  | { kind: 'managers'; escalation: number }
  /** Tell one operator something privately. */
  | { kind: 'notify'; operator: Operator; text: string }
  /** The agent owes the customer an answer. */
  | { kind: 'turn' };

/** Work as stored: its place in the conversation's work log and who it is for. */
export interface WorkItem {
  /** 1-based position in the conversation's work log. */
  seq: number;
  /** Destination names (`customer`, `agent`, `slack`, `teams`, ...). */
  to: string[];
  payload: WorkPayload;
  /** When the commit that created it happened (epoch ms). */
  at: number;
  /** The conversation's version after that commit: a worker reads at least this version. */
  version: number;
}

/** A change to one index, written in the same commit. */
export type IndexWrite =
  | { op: 'set'; key: string; value: string; ttlMs?: number }
  | { op: 'delete'; key: string }
  | { op: 'add'; key: string; member: string }
  | { op: 'remove'; key: string; member: string };

/** Everything one change writes, atomically. */
/** What a commit did besides writing: the leases it took for this instance, and whether it gave the cursor's lease back. */
export interface CommitResult {
  version: number;
  claimed: Lease[];
  released?: boolean;
}

export interface Commit {
  /** The conversation after the change; `version` is still the one that was read. */
  conversation: Conversation;
  /** The version read before the change (0 for a conversation that does not exist yet). */
  expectedVersion: number;
  /** Messages this change appended (the tail of `conversation.messages`); earlier messages never change. */
  appended: Message[];
  /**
   * `conversation` without its messages and version, as JSON (`headerJson`), when the caller has
   * made it already: the store writes it as is instead of serializing the conversation again.
   */
  header?: string;
  /** New work, in order; each destination named becomes due now (unless it already is, or is leased). */
  work?: Array<Omit<WorkItem, 'seq' | 'at' | 'version'>>;
  indexes?: IndexWrite[];
  /**
   * Inbound idempotency: the commit fails with `DuplicateInboundError` if this key was already
   * committed. `message`: the message the key stored, kept with the mark so a resend is answered with it.
   */
  inbound?: { key: string; ttlMs: number; message?: string };
  /**
   * A worker's cursor moving in the same commit (an agent turn's answer and its `turn` work).
   * `release`: also give the lease back when nothing is left for its destination after `seq`, so
   * the worker needs no write of its own to finish (`commitClaiming` says whether it did).
   */
  cursor?: { lease: Lease; seq: number; release?: boolean };
  /**
   * When the conversation is next due for `destination` regardless of work items: the earliest of
   * its timers (epoch ms), or null for none. Written as is (no compare): firing is made safe by the
   * compare-and-set of the commit that fires, not by the schedule.
   */
  schedule?: { destination: string; at: number | null };
  /**
   * Lease, in the same write, this conversation's work for these destinations (this instance's
   * workers with a free slot), so they start at once instead of waiting for the change feed and a
   * `lease` call. A destination is leased only when work is left after its cursor and nobody
   * holds a live lease on it; it is then left out of the change notice.
   */
  claim?: { destinations: string[]; leaseMs: number; items?: number; begin?: string[] };
  /**
   * Destinations named in the change notice although this commit gives them no work (listed in its
   * `leased` too, so no worker looks): a live view that catches up from the feed. Web chat is one,
   * and instances of versions before it look for `customer` in a notice to catch their sockets up.
   */
  announce?: string[];
}

/** A worker's exclusive, expiring right to run one conversation's work for one destination. */
export interface Lease {
  destination: string;
  conversationId: string;
  token: string;
  /**
   * Set by `lease`: the cursor and the first items after it addressed to this destination, read in
   * the same step as the lease (so a worker needs no `pending` call for its first batch).
   */
  pending?: { cursor: Cursor; items: WorkItem[]; begun?: boolean };
}

/** How far a destination got in one conversation's work log. */
export interface Cursor {
  /** Every item up to this seq is done (0: nothing yet). */
  done: number;
  /**
   * The items being attempted, if any (`seq`..`upTo`; `upTo` absent: `seq` alone): written before
   * the attempts, so a retry knows they may have happened. `count`: attempts on `seq` so far.
   */
  attempt?: { seq: number; count: number; since: number; upTo?: number };
}

/** Told to every instance after a commit. */
export interface ChangeNotice {
  conversationId: string;
  version: number;
  ownershipVersion: number;
  /** Destinations that got new work. */
  destinations: string[];
  /** Those of them nobody else need look for: leased by the committing instance in the same commit, or announced with no work. */
  leased?: string[];
}

/**
 * `patient`: the write is for a destination off the customer's path (a workspace), so the store may
 * hold it up to PATIENCE_MS, while other writes are coming, to share the fsync of the next one:
 * SQLite's group commit takes it into that write's transaction; Redis sends it right behind that
 * write, so both run in one turn of Redis's event loop, under one AOF fsync. It is still durable
 * before the call resolves.
 */
export interface Patience {
  patient?: boolean;
}

/** The longest a patient write waits for another write to share its fsync. */
export const PATIENCE_MS = 5;

export interface WorkQueue {
  /**
   * Leases up to `limit` conversations whose work for `destination` is due now. A leased
   * conversation is not handed out again until `leaseMs` passes or the lease is released. Each
   * lease comes with `pending` (its cursor and up to `items` items after it, default 50). `begin`
   * (and `Commit.claim.begin`): also record an attempt on the first item, as `begin` would, in the
   * same write (`pending.begun`), for a destination that records every attempt.
   */
  lease(destination: string, options: { limit: number; leaseMs: number; items?: number; begin?: boolean } & Patience): Promise<Lease[]>;
  /** Extends a lease; false if it was lost (expired and taken by another worker). */
  renew(lease: Lease, leaseMs: number): Promise<boolean>;
  /** The destination's cursor and the items after it that are addressed to it, oldest first. */
  pending(destination: string, conversationId: string, limit?: number): Promise<{ cursor: Cursor; items: WorkItem[] }>;
  /**
   * Records that attempts on items `seq`..`upTo` (default `seq` alone) start, before their side
   * effects (`src/store/attempts.ts`). `done`: first marks every item up to it done, in the same
   * write (the item before, finished just now). Throws `LeaseLostError`.
   */
  begin(lease: Lease, seq: number, done?: number, upTo?: number, options?: Patience): Promise<Cursor>;
  /** Marks every item up to `seq` done. Throws `LeaseLostError`. */
  advance(lease: Lease, seq: number): Promise<void>;
  /**
   * Gives the lease back. If items remain after the cursor, the conversation stays due: at
   * `retryAt` (epoch ms) when given, else now. Otherwise it leaves the destination's due set.
   */
  release(lease: Lease, retryAt?: number): Promise<void>;
  /**
   * One write at the end of a batch: moves the cursor to `done` (when given), then gives the lease
   * back if nothing is left after the cursor, or if `retryAt` is given (due again then). `failed`:
   * the attempt record after a failure (`afterFailure` in src/store/attempts.ts), what the retry
   * counts from. Returns false when work remains and the lease is kept. Throws `LeaseLostError` if
   * the lease was lost.
   */
  finish(lease: Lease, done?: number, retryAt?: number, failed?: NonNullable<Cursor['attempt']>): Promise<boolean>;
  /**
   * `finish` for a worker that goes on while work remains: moves the cursor to `done` (when given);
   * if nothing is left, gives the lease back and answers undefined; else keeps the lease and answers
   * the next batch (up to `items` items), with an attempt recorded on its first item when `begin`,
   * as a lease's. One script on Redis where `finish`, `pending` and `begin` were three.
   */
  next(lease: Lease, done: number | undefined, options: { items: number; begin: boolean } & Patience): Promise<NonNullable<Lease['pending']> | undefined>;
  /** How many conversations have work due now for `destination`, and since when the oldest waits (epoch ms). */
  backlog(destination: string): Promise<{ due: number; oldest?: number }>;
  /** Epoch ms of the earliest due conversation for `destination` (leased ones count at expiry). */
  nextDue(destination: string): Promise<number | undefined>;
  /** Makes every conversation with work after its cursor due now (a destination that was added, or an operator's "retry now"). */
  wake(destination: string, conversationIds: string[]): Promise<void>;
}

export interface ReadOptions {
  atLeast?: number;
  readOnly?: boolean;
}

/** What a store's writes cost since it opened: transactions, the writes they carried, and those committed without an fsync. */
export interface StoreWriteStats {
  transactions: number;
  writes: number;
  unsynced: number;
}

export interface Store {
  /** `sqlite` or `redis`. */
  readonly backend: string;
  /** SQLite's group writer counts its transactions (writes / transactions is the group-commit factor); Redis leaves it out. */
  readonly stats?: StoreWriteStats;
  /**
   * The conversation with its full transcript, or undefined. `atLeast`: the caller needs no newer
   * version than this (a work item's, or any for a compare-and-set commit that retries on
   * conflict), so a per-instance cache may answer without asking the store. `readOnly`: the caller
   * never changes what it gets, so a cache may hand out one frozen copy to every such reader.
   */
  getConversation(id: string, options?: ReadOptions): Promise<Conversation | undefined>;
  /**
   * A cheap re-read for a caller that holds `version` with its first `messageCount` messages:
   * 'unchanged' when the stored version is still `version`, undefined when the conversation is
   * gone, else the conversation whose `messages` are only those after the first `messageCount`
   * (messages are append-only, so the caller's are still right).
   */
  getConversationSince(id: string, version: number, messageCount: number): Promise<Conversation | 'unchanged' | undefined>;
  /**
   * Writes one change atomically. Throws `VersionConflictError` when the stored version is not
   * `expectedVersion` (nothing written), `DuplicateInboundError` when `inbound.key` was seen
   * (nothing written), `StoreUnavailableError` when the backend failed (nothing written, or the
   * outcome is unknown: a retry from a fresh read is always safe). Returns the new version.
   */
  commit(commit: Commit): Promise<number>;
  /** `commit`, also returning the leases `commit.claim` took (each with `pending`), and whether `commit.cursor.release` gave its lease back. */
  commitClaiming(commit: Commit): Promise<CommitResult>;
  /** Reads an index value written by a commit (`ticket:HB-1042` → conversation id). */
  indexValue(key: string): Promise<string | undefined>;
  /** Members of an index set (`held:<operator id>` → conversation ids). */
  indexMembers(key: string): Promise<string[]>;
  /** The conversation an inbound key was committed with, if it was. */
  inboundSeen(key: string): Promise<string | undefined>;
  /** The message an inbound key stored, when its commit said which (`Commit.inbound.message`). */
  inboundMessage(key: string): Promise<string | undefined>;
  readonly work: WorkQueue;
  /** Publishes after every commit, to every instance sharing the store. Returns the unsubscribe. */
  onChange(listener: (notice: ChangeNotice) => void): () => void;
  /**
   * Runs `fn` while holding an exclusive lock on `key` across every process sharing this store.
   * For adapters' own bookkeeping; conversation safety never rests on it.
   */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** True the first time `key` is seen within `ttlMs`; false for a repeat. */
  once(key: string, ttlMs?: number): Promise<boolean>;
  forget(key: string): Promise<void>;
  /** Monotonic counter, for ticket numbers. */
  increment(counter: string): Promise<number>;
  /** An adapter's own namespaced area. */
  kv(namespace: string): KeyValue;
  close(): Promise<void>;
}

/** A conversation's header (everything but its messages and version) as the stores write it. */
export function headerJson(conversation: Conversation): string {
  const { messages: _messages, version: _version, ...header } = conversation;
  return JSON.stringify(header);
}

/** The commit's header JSON: the one the committer made (`Commit.header`), else made here. */
export function commitHeader(commit: Commit): string {
  return commit.header ?? headerJson(commit.conversation);
}
