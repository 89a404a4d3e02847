/**
 * The embedded, durable default: one SQLite file in WAL mode, for one instance, on the synchronous
 * driver `better-sqlite3`.
 *
 * - One connection, on the main thread. Every statement is prepared once, when the store opens,
 *   and reused.
 * - Reads run at once and synchronously (a WAL read is a few microseconds): they see the last
 *   committed state, never a half-done transaction, because a write transaction never stays open
 *   across a turn of the event loop.
 * - Writes are group-committed. Every write asked for during one turn of the event loop (every
 *   `commit`, lease, cursor move, adapter write) is queued, and a turn later the queue runs as
 *   ONE transaction (BEGIN IMMEDIATE ... COMMIT), so one fsync serves every conversation in the
 *   batch. One failing write does not undo its neighbours: each write checks before it changes
 *   anything, so a refusal (conflict, duplicate, lost lease) leaves nothing behind; any other
 *   failure rolls the transaction back and the batch runs again with each write in its own
 *   savepoint. A write's promise settles only after the COMMIT, so what it resolves is durable.
 * - Durability: `synchronous=FULL` by default: the WAL is fsynced at every COMMIT, so a committed
 *   change survives a process crash, an OS crash and a power loss. One exception: a batch made only
 *   of work bookkeeping (leases, cursor moves, releases: `LIGHT`) is committed without the fsync;
 *   a process crash keeps it, and a power cut can only make work run again, which delivery allows.
 *   The next synced COMMIT makes it durable too (the WAL is append-only). A workspace's attempt
 *   record (`Patience`) is synced too, but may wait up to 5 ms to share another batch's fsync.
 *   `synchronous: 'normal'` (an option of `openSqliteStore`) fsyncs only at checkpoints: a commit
 *   still survives a process crash, but an OS crash or a power loss can lose the last commits.
 *   Only the default is safe.
 * - The cost of a synchronous driver: the event loop is blocked while a batch runs, fsync
 *   included. We accept that. Measured on the 2-core VM of docs/bench.md: a COMMIT's fsync takes
 *   0.02 ms when there is nothing to flush and 1-8 ms when there is (0.55 ms p50, 0.7-1.1 ms on
 *   average under load); a batch carries ~18 writes in the in-process bench, and the whole write
 *   side (statements and fsync) was 23% of the main thread in the end-to-end bench at ~350 msg/s.
 *   A WAL checkpoint (every 1000 pages, ~4 MB of WAL) blocks for a few ms more. The driver this
 *   replaced (`sqlite3`) ran statements on libuv's thread pool but prepared and finalized a
 *   statement on every call and fought the fsyncing thread for the connection's mutex: 11-28 ms
 *   of CPU per message end to end, against ~3 ms now.
 *   We also tried keeping the fsync off the event loop (`synchronous=NORMAL` plus our own
 *   fdatasync of the WAL on the thread pool, each result held until it was durable): it cut the
 *   blocked time but gave no throughput in either bench, and, tried again once the agent's turn
 *   started with the customer's commit, no latency with one customer either (the main thread's
 *   CPU, not the fsync, sets the pace), so the simpler FULL stays. A writer in a
 *   worker thread was tried too (docs/bench.md), twice: on two busy cores it took CPU from the
 *   event loop and added thread wake-ups, for no more throughput and a slower single customer,
 *   so writes stay here. Tried again with whole batches handed over and merged in the thread: at
 *   20 customers the same throughput (+3%) for about 15% more CPU per message; with one, 8% less.
 * - If another process holds the file's write lock, BEGIN waits up to `busy_timeout` (5 s) with
 *   the event loop blocked. One instance serves a file, so this only happens when someone writes
 *   to it by hand; read-only connections (a backup, the tests) never block the writer in WAL mode.
 * - Expiry: reads ignore an expired inbound mark, index value or adapter value; a sweep deletes
 *   them (Redis expires its keys itself). Every `sweepIntervalMs` (60 s) a pass walks the three
 *   tables in key order, from where the last pass stopped to their end, `sweepBatch` (500) keys per
 *   table a step. Each step is one light write of the group writer (it shares a batch's
 *   transaction; losing it only means sweeping again), and the event loop turns between steps.
 *   Measured on a 2-core VM: a step blocks ~0.3 ms deleting 500 rows and ~0.1-0.15 ms looking at
 *   500 live ones; 100k expired rows go in 200 steps, ~100 ms in all (three of those steps take
 *   ~12 ms: the WAL checkpoints the deletes bring); a pass over 1M live rows costs ~0.2 s.
 *   Walking the primary key needs no index on `expires_at`, which would cost every message one more
 *   B-tree write, and block the first open of an existing file while it is built.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DuplicateInboundError, LeaseLostError, StoreUnavailableError, VersionConflictError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Conversation, Message } from '../model.ts';
import { InProcessLocks } from './locks.ts';
import { beginAttempts } from './attempts.ts';
import { PatientWrites } from './patience.ts';
import { commitHeader, type ChangeNotice, type Commit, type CommitResult, type Cursor, type KeyValue, type Lease, type Patience, type Store, type StoreWriteStats, type WorkItem, type WorkQueue } from './store.ts';

/**
 * The on-disk format. Files written by earlier versions open as they are: the one column added
 * since the first release (`inbound.message_id`) is added when such a file opens.
 * A work item's body is the `WorkItem` JSON; items written before `version` existed read as version 0.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, version INTEGER NOT NULL, header TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS work_log (conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS work_state (
  destination TEXT NOT NULL, conversation_id TEXT NOT NULL,
  due_at INTEGER, lease_token TEXT, last_seq INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0, attempt TEXT,
  PRIMARY KEY (destination, conversation_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS work_due ON work_state (destination, due_at) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS index_values (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_members (key TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (key, member)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbound (key TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, expires_at INTEGER NOT NULL, message_id TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS adapter_data (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
`;

const DAY = 24 * 60 * 60 * 1000;
/** Writes per transaction; more wait for the next turn of the event loop. */
const MAX_BATCH = 256;
/** Items a lease comes with when the caller does not say. */
const LEASE_ITEMS = 50;
/** Work log rows read at a time while looking for a destination's items. */
const PENDING_CHUNK = 64;
/** The tables whose rows expire (`expires_at`; NULL: never). */
const SWEPT = ['inbound', 'index_values', 'adapter_data'] as const;
const SWEEP_INTERVAL_MS = 60_000;
const SWEEP_BATCH = 500;

function unavailable(what: string, err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`Store (sqlite) unavailable: could not ${what}: ${(err as Error).message}`, err);
}

/** A driver failure (I/O, disk full, closed connection) is the store being unavailable; the port's own errors pass as they are. */
function asStoreError(what: string, err: unknown): unknown {
  return err instanceof Database.SqliteError || (err instanceof TypeError && /database connection is not open/.test(err.message)) ? unavailable(what, err) : err;
}

const count = (n: number) => Math.max(0, Math.floor(n));

interface WorkStateRow {
  due_at: number | null;
  lease_token: string | null;
  last_seq: number;
  done: number;
  attempt: string | null;
}

/** Every statement the store runs, prepared once. */
function prepare(db: Database.Database) {
  const one = <P extends unknown[], R>(sql: string) => db.prepare<P, R>(sql);
  return {
    // transaction control
    begin: one<[], unknown>('BEGIN IMMEDIATE'),
    commit: one<[], unknown>('COMMIT'),
    rollback: one<[], unknown>('ROLLBACK'),
    savepoint: one<[], unknown>('SAVEPOINT job'),
    release: one<[], unknown>('RELEASE job'),
    rollbackTo: one<[], unknown>('ROLLBACK TO job'),
    // conversations
    conversation: one<[string], { version: number; header: string }>('SELECT version, header FROM conversations WHERE id = ?'),
    version: one<[string], number>('SELECT version FROM conversations WHERE id = ?').pluck(),
    messages: one<[string], string>('SELECT body FROM messages WHERE conversation_id = ? ORDER BY seq').pluck(),
    messagesAfter: one<[string, number], string>('SELECT body FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq').pluck(),
    // Compare-and-set in the write itself: no row changed means another version is there.
    createConversation: one<[string, string], unknown>('INSERT INTO conversations (id, version, header) VALUES (?, 1, ?) ON CONFLICT (id) DO NOTHING'),
    updateConversation: one<[number, string, string, number], unknown>('UPDATE conversations SET version = ?, header = ? WHERE id = ? AND version = ?'),
    addMessage: one<[string, number, string], unknown>('INSERT INTO messages (conversation_id, seq, body) VALUES (?, ?, ?)'),
    // inbound marks
    inbound: one<[string, number], string>('SELECT conversation_id FROM inbound WHERE key = ? AND expires_at > ?').pluck(),
    inboundMessage: one<[string, number], string | null>('SELECT message_id FROM inbound WHERE key = ? AND expires_at > ?').pluck(),
    putInbound: one<[string, string, number, string | null], unknown>('INSERT OR REPLACE INTO inbound (key, conversation_id, expires_at, message_id) VALUES (?, ?, ?, ?)'),
    // work
    lastWork: one<[string], number | null>('SELECT MAX(seq) FROM work_log WHERE conversation_id = ?').pluck(),
    addWork: one<[string, number, string], unknown>('INSERT INTO work_log (conversation_id, seq, body) VALUES (?, ?, ?)'),
    // No bound LIMIT anywhere: SQLite plans with a bound LIMIT's value, so it prepares such a
    // statement again at every run (about 4 times the cost of this query).
    workItems: one<[string, number, number], string>(`SELECT body FROM work_log WHERE conversation_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ${PENDING_CHUNK}`).pluck(),
    state: one<[string, string], WorkStateRow>('SELECT due_at, lease_token, last_seq, done, attempt FROM work_state WHERE destination = ? AND conversation_id = ?'),
    // A destination with nothing pending is done with everything before its first new item (the
    // items between were for others), so reading its work starts there and not at an old cursor.
    // Returns the row as written, so a claim in the same commit need not read it again.
    workDue: one<[{ destination: string; id: string; now: number; first: number; last: number }], WorkStateRow>(
      `INSERT INTO work_state (destination, conversation_id, due_at, last_seq, done) VALUES (@destination, @id, @now, @last, @first - 1)
       ON CONFLICT (destination, conversation_id) DO UPDATE SET last_seq = @last, due_at = COALESCE(due_at, @now),
         done = CASE WHEN done >= last_seq THEN MAX(done, @first - 1) ELSE done END,
         attempt = CASE WHEN done >= last_seq THEN NULL ELSE attempt END
       RETURNING due_at, lease_token, last_seq, done, attempt`,
    ),
    schedule: one<[{ destination: string; id: string; at: number | null }], unknown>(
      `INSERT INTO work_state (destination, conversation_id, due_at) VALUES (@destination, @id, @at)
       ON CONFLICT (destination, conversation_id) DO UPDATE SET due_at = @at`,
    ),
    // Read with `iterate` and left after the rows wanted (no bound LIMIT, see workItems).
    dueNow: one<[string, number], string>('SELECT conversation_id FROM work_state WHERE destination = ? AND due_at IS NOT NULL AND due_at <= ? ORDER BY due_at').pluck(),
    setLease: one<[number, string, string, string], unknown>('UPDATE work_state SET due_at = ?, lease_token = ? WHERE destination = ? AND conversation_id = ?'),
    renew: one<[number, string, string, string], unknown>('UPDATE work_state SET due_at = ? WHERE destination = ? AND conversation_id = ? AND lease_token = ?'),
    setAttempt: one<[string, string, string], unknown>('UPDATE work_state SET attempt = ? WHERE destination = ? AND conversation_id = ?'),
    advance: one<[{ seq: number; destination: string; id: string }], unknown>(
      `UPDATE work_state SET done = MAX(done, @seq),
         attempt = CASE WHEN attempt IS NOT NULL AND COALESCE(json_extract(attempt, '$.upTo'), json_extract(attempt, '$.seq')) <= @seq THEN NULL ELSE attempt END
       WHERE destination = @destination AND conversation_id = @id`,
    ),
    unlease: one<[number | null, string, string], unknown>('UPDATE work_state SET due_at = ?, lease_token = NULL WHERE destination = ? AND conversation_id = ?'),
    unleaseIfDone: one<[string, string], unknown>('UPDATE work_state SET due_at = NULL, lease_token = NULL WHERE destination = ? AND conversation_id = ? AND last_seq <= done'),
    wake: one<[number, string, string], unknown>('UPDATE work_state SET due_at = ? WHERE destination = ? AND conversation_id = ? AND last_seq > done AND lease_token IS NULL'),
    backlog: one<[string, number], { due: number; oldest: number | null }>(
      'SELECT COUNT(*) AS due, MIN(due_at) AS oldest FROM work_state WHERE destination = ? AND due_at IS NOT NULL AND due_at <= ?',
    ),
    nextDue: one<[string], number | null>('SELECT MIN(due_at) FROM work_state WHERE destination = ? AND due_at IS NOT NULL').pluck(),
    // indexes
    indexValue: one<[string, number], string>('SELECT value FROM index_values WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)').pluck(),
    indexMembers: one<[string], string>('SELECT member FROM index_members WHERE key = ? ORDER BY member').pluck(),
    setIndex: one<[string, string, number | null], unknown>('INSERT OR REPLACE INTO index_values (key, value, expires_at) VALUES (?, ?, ?)'),
    deleteIndex: one<[string], unknown>('DELETE FROM index_values WHERE key = ?'),
    addMember: one<[string, string], unknown>('INSERT OR IGNORE INTO index_members (key, member) VALUES (?, ?)'),
    removeMember: one<[string, string], unknown>('DELETE FROM index_members WHERE key = ? AND member = ?'),
    // adapters' data
    data: one<[string, number], string>('SELECT value FROM adapter_data WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)').pluck(),
    putData: one<[string, string, number | null], unknown>('INSERT OR REPLACE INTO adapter_data (key, value, expires_at) VALUES (?, ?, ?)'),
    deleteData: one<[string], unknown>('DELETE FROM adapter_data WHERE key = ?'),
    expireData: one<[string, number], unknown>('DELETE FROM adapter_data WHERE key = ? AND expires_at <= ?'),
    addData: one<[string, string, number | null], unknown>('INSERT OR IGNORE INTO adapter_data (key, value, expires_at) VALUES (?, ?, ?)'),
    increment: one<[string], number>('INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value').pluck(),
    // expiry sweep, per table of SWEPT: the key `batch` rows on from a cursor (the next step's
    // start; none at the table's end), and the expired rows from the cursor up to it. Both are
    // range searches on the primary key, so a step reads at most `batch` rows.
    sweep: SWEPT.map((table) => ({
      next: one<[string, number], string>(`SELECT key FROM ${table} WHERE key >= ? ORDER BY key LIMIT 1 OFFSET ?`).pluck(),
      range: one<[string, string, number], unknown>(`DELETE FROM ${table} WHERE key >= ? AND key < ? AND expires_at <= ?`),
      tail: one<[string, number], unknown>(`DELETE FROM ${table} WHERE key >= ? AND expires_at <= ?`),
    })),
  };
}

type Statements = ReturnType<typeof prepare>;

/** How a write is committed: with an fsync (`durable`), and whether it may wait for the next batch (`patient`). */
interface WriteOptions {
  durable: boolean;
  patient?: boolean;
}
/**
 * Work bookkeeping whose loss in a power cut only makes work run again, which delivery already
 * allows (at least once; a destination that must look before repeating records its attempt with a
 * durable `begin`): leases, renewals, cursor moves, releases, wake-ups. A batch of only these is
 * committed without an fsync; a process crash still keeps them (the WAL is in the OS's cache).
 */
const LIGHT: WriteOptions = { durable: false };
const DURABLE: WriteOptions = { durable: true };
/**
 * A durable write that may wait for the next batch, at most PATIENCE_MS (`Patience`): a workspace's
 * attempt record then shares the fsync of a commit on the customer's path instead of blocking the
 * event loop with one of its own (one customer at a time: 3.2–3.6 fsyncs per message became
 * 2.2). It waits only while other writes come (one in the last PATIENCE_MS): with none, it goes
 * at once.
 */
const PATIENT: WriteOptions = { durable: true, patient: true };
const durableWrite = (options?: Patience) => (options?.patient ? PATIENT : DURABLE);

/** One write waiting for the next batch. */
interface WriteJob {
  what: string;
  /** false: losing this write in a power cut only makes work run again (see `LIGHT`). */
  durable: boolean;
  run(): unknown;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * Group commit: writes asked for in one turn of the event loop run together in one transaction,
 * each in its own savepoint, a turn later (two `setImmediate`s). Each settles after the COMMIT, so
 * once it is durable.
 */
class GroupWriter {
  /** Transactions committed, and the writes they carried (for tests and the bench). */
  readonly stats: StoreWriteStats = { transactions: 0, writes: 0, unsynced: 0 };
  private queue: WriteJob[] = [];
  private scheduled = false;
  private closed = false;

  /** Statements that switch the fsync off for a batch of light writes only, and back on. */
  private readonly light?: { off: Database.Statement; on: Database.Statement };
  /** Patient writes wait here (not scheduled) for the next write that does not wait. */
  private readonly patience = new PatientWrites();

  constructor(
    private readonly db: Database.Database,
    private readonly s: Statements,
    fsyncEveryCommit: boolean,
  ) {
    if (fsyncEveryCommit) this.light = { off: db.prepare('PRAGMA synchronous = NORMAL'), on: db.prepare('PRAGMA synchronous = FULL') };
  }

  write<T>(what: string, run: () => T): Promise<T>;
  write<T>(what: string, options: WriteOptions, run: () => T): Promise<T>;
  write<T>(what: string, a: WriteOptions | (() => T), b?: () => T): Promise<T> {
    const [options, run] = typeof a === 'function' ? [DURABLE, a] : [a, b!];
    if (this.closed) return Promise.reject(unavailable(what, new Error('the store is closed')));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ what, durable: options.durable, run, resolve: resolve as (value: unknown) => void, reject });
      if (!options.patient) this.patience.impatient();
      else if (this.scheduled || this.patience.wait(this.schedule)) return;
      this.schedule();
    });
  }

  /** The queue runs on the next turn. */
  private readonly schedule = (): void => {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.yieldThenFlush);
  };

  /**
   * The batch waits one more turn: a commit blocks the event loop through its fsync, so the
   * requests this turn started go on the wire first (undici writes a request on a kept-alive
   * socket from its own `setImmediate`), and their answers are on the way meanwhile.
   */
  private readonly yieldThenFlush = (): void => {
    setImmediate(this.flush);
  };

  /** Runs everything queued now (the store is closing), then takes no more. */
  close(): void {
    while (this.queue.length > 0) this.flush();
    this.patience.forget();
    this.closed = true;
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    // Whatever is queued goes now, patient writes included.
    this.patience.forget();
    if (this.queue.length === 0) return;
    const batch = this.queue.length <= MAX_BATCH ? this.queue : this.queue.slice(0, MAX_BATCH);
    this.queue = this.queue.length <= MAX_BATCH ? [] : this.queue.slice(MAX_BATCH);
    if (this.queue.length > 0) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    this.runBatch(batch);
  };

  private runBatch(batch: WriteJob[]): void {
    // Optimistic first: no savepoints. Every write checks before it changes anything, so the
    // port's own refusals (conflict, duplicate, lost lease) leave nothing to undo; any other
    // failure undoes the whole transaction and the batch runs again, each write in a savepoint.
    const fast = this.runTransaction(batch, false);
    const outcomes = fast === 'retry' ? this.runTransaction(batch, true) : fast;
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i]!;
      if (outcome.ok) batch[i]!.resolve(outcome.value);
      else batch[i]!.reject(outcome.err);
    }
  }

  /**
   * One transaction. With `savepoints`, a write that fails is undone alone; without, a failure
   * other than the port's own refusals rolls everything back and answers 'retry'.
   */
  private runTransaction(batch: WriteJob[], savepoints: true): Outcome[];
  private runTransaction(batch: WriteJob[], savepoints: false): Outcome[] | 'retry';
  private runTransaction(batch: WriteJob[], savepoints: boolean): Outcome[] | 'retry' {
    const { s, db } = this;
    const outcomes: Outcome[] = [];
    // A batch of light writes only is committed without its fsync. The WAL is append-only, so the
    // next durable commit's fsync makes these durable too, in order.
    const skipFsync = this.light !== undefined && !batch.some((job) => job.durable);
    try {
      if (skipFsync) this.light!.off.run();
      s.begin.run();
      for (const job of batch) {
        if (savepoints) s.savepoint.run();
        try {
          const value = job.run();
          if (savepoints) s.release.run();
          outcomes.push({ ok: true, value });
        } catch (err) {
          if (!savepoints && !isRefusal(err)) {
            this.rollback(skipFsync);
            return 'retry';
          }
          // A failure SQLite answers by rolling back the whole transaction (I/O error, disk
          // full) takes the batch with it; anything else undoes only this write.
          if (!db.inTransaction) throw err;
          if (savepoints) {
            s.rollbackTo.run();
            s.release.run();
          }
          outcomes.push({ ok: false, err: asStoreError(job.what, err) });
        }
      }
      s.commit.run();
      if (skipFsync) this.light!.on.run();
      this.stats.transactions += 1;
      if (skipFsync) this.stats.unsynced += 1;
      this.stats.writes += batch.length;
      return outcomes;
    } catch (err) {
      this.rollback(skipFsync);
      return batch.map((job) => ({ ok: false, err: unavailable(job.what, err) }));
    }
  }

  /** Undoes the open transaction, if any; nothing of the batch was written. */
  private rollback(skipFsync: boolean): void {
    const { s, db } = this;
    if (db.open && db.inTransaction) {
      try {
        s.rollback.run();
      } catch {
        // The transaction is gone either way.
      }
    }
    if (skipFsync && db.open) {
      try {
        this.light!.on.run();
      } catch {
        // The connection is failing; the next batch reports it.
      }
    }
  }
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

/** The port's own refusals: each write throws them before it changes anything. */
function isRefusal(err: unknown): boolean {
  return err instanceof VersionConflictError || err instanceof DuplicateInboundError || err instanceof LeaseLostError;
}

/** Up to `limit` rows of a query, stopping it there (the connection is free again after). */
function firstRows<T>(rows: IterableIterator<T>, limit: number): T[] {
  const out: T[] = [];
  if (limit <= 0) {
    rows.return?.();
    return out;
  }
  for (const row of rows) {
    out.push(row);
    if (out.length >= limit) break;
  }
  return out;
}

/** Runs a read at once, synchronously, turning a driver failure into `StoreUnavailableError`. */
function read<T>(what: string, run: () => T): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (err) {
    return Promise.reject(unavailable(what, err));
  }
}

function toCursor(state: WorkStateRow | undefined): Cursor {
  if (!state) return { done: 0 };
  return { done: state.done, ...(state.attempt ? { attempt: JSON.parse(state.attempt) as Cursor['attempt'] } : {}) };
}

function toItem(body: string): WorkItem {
  const item = JSON.parse(body) as WorkItem;
  item.version ??= 0; // written before items carried the version
  return item;
}

class SqliteWork implements WorkQueue {
  private readonly tokenBase = randomBytes(9).toString('base64url');
  private tokens = 0;

  constructor(
    private readonly s: Statements,
    private readonly writer: GroupWriter,
    private readonly now: () => number,
  ) {}

  lease(destination: string, options: { limit: number; leaseMs: number; items?: number; begin?: boolean } & Patience): Promise<Lease[]> {
    // An attempt record must be durable before the attempt: then this write is synced.
    return this.writer.write(`lease ${destination} work`, options.begin ? durableWrite(options) : LIGHT, () => {
      const now = this.now();
      const leases: Lease[] = [];
      for (const conversationId of firstRows(this.s.dueNow.iterate(destination, now), count(options.limit))) {
        const token = `${this.tokenBase}.${(this.tokens += 1).toString(36)}`; // unique: random per store, counted per lease
        this.s.setLease.run(now + options.leaseMs, token, destination, conversationId);
        leases.push({ destination, conversationId, token, pending: this.pendingBegun(destination, conversationId, options.items ?? LEASE_ITEMS, options.begin === true, now) });
      }
      return leases;
    });
  }

  renew(lease: Lease, leaseMs: number): Promise<boolean> {
    return this.writer.write(`renew a ${lease.destination} lease`, LIGHT, () => this.s.renew.run(this.now() + leaseMs, lease.destination, lease.conversationId, lease.token).changes > 0);
  }

  pending(destination: string, conversationId: string, limit = 100): Promise<{ cursor: Cursor; items: WorkItem[] }> {
    return read(`read ${destination} work`, () => this.readPending(destination, conversationId, limit));
  }

  begin(lease: Lease, seq: number, done?: number, upTo?: number, options?: Patience): Promise<Cursor> {
    return this.writer.write(`begin ${lease.destination} work`, durableWrite(options), () => {
      let state = this.held(lease);
      if (done !== undefined) {
        this.s.advance.run({ seq: done, destination: lease.destination, id: lease.conversationId });
        state = this.s.state.get(lease.destination, lease.conversationId)!;
      }
      return this.recordAttempt(lease.destination, lease.conversationId, toCursor(state), seq, this.now(), upTo);
    });
  }

  advance(lease: Lease, seq: number): Promise<void> {
    return this.writer.write(`advance ${lease.destination} work`, LIGHT, () => {
      this.held(lease);
      this.s.advance.run({ seq, destination: lease.destination, id: lease.conversationId });
    });
  }

  release(lease: Lease, retryAt?: number): Promise<void> {
    return this.writer.write(`release a ${lease.destination} lease`, LIGHT, () => {
      const state = this.s.state.get(lease.destination, lease.conversationId);
      if (!state || state.lease_token !== lease.token) return; // lost meanwhile: the new holder owns it
      const due = state.last_seq > state.done ? (retryAt ?? this.now()) : null;
      this.s.unlease.run(due, lease.destination, lease.conversationId);
    });
  }

  finish(lease: Lease, done?: number, retryAt?: number, failed?: NonNullable<Cursor['attempt']>): Promise<boolean> {
    return this.writer.write(`finish ${lease.destination} work`, LIGHT, () => {
      const state = this.held(lease);
      if (done !== undefined) this.s.advance.run({ seq: done, destination: lease.destination, id: lease.conversationId });
      // Light too: losing it leaves the wider record, which only makes a retry look first.
      if (failed) this.s.setAttempt.run(JSON.stringify(failed), lease.destination, lease.conversationId);
      const left = state.last_seq > Math.max(state.done, done ?? 0);
      if (left && retryAt === undefined) return false;
      this.s.unlease.run(left ? retryAt! : null, lease.destination, lease.conversationId);
      return true;
    });
  }

  async next(lease: Lease, done: number | undefined, options: { items: number; begin: boolean } & Patience): Promise<NonNullable<Lease['pending']> | undefined> {
    // Two steps, so that giving the lease back stays a light write and only a begin is synced.
    if (await this.finish(lease, done)) return undefined;
    const items = Math.max(1, Math.floor(options.items));
    if (!options.begin) {
      const { destination, conversationId, token } = lease;
      const pending = await read(`read ${destination} work`, () => {
        const state = this.s.state.get(destination, conversationId);
        return state?.lease_token === token ? this.readPending(destination, conversationId, items, state) : undefined;
      });
      if (!pending) throw new LeaseLostError(destination, conversationId);
      return pending;
    }
    return this.writer.write(`begin ${lease.destination} work`, durableWrite(options), () => this.pendingBegun(lease.destination, lease.conversationId, items, true, this.now(), this.held(lease)));
  }

  backlog(destination: string): Promise<{ due: number; oldest?: number }> {
    return read(`read the ${destination} backlog`, () => {
      const row = this.s.backlog.get(destination, this.now());
      return { due: row?.due ?? 0, ...(row?.oldest != null ? { oldest: row.oldest } : {}) };
    });
  }

  nextDue(destination: string): Promise<number | undefined> {
    return read(`read ${destination} due work`, () => this.s.nextDue.get(destination) ?? undefined);
  }

  wake(destination: string, conversationIds: string[]): Promise<void> {
    return this.writer.write(`wake ${destination} work`, LIGHT, () => {
      const now = this.now();
      for (const id of conversationIds) this.s.wake.run(now, destination, id);
    });
  }

  /**
   * Inside a commit's write: leases `claim.destinations` whose work for the conversation is due now
   * (not leased by a live worker, whose due time is its lease's expiry, nor waiting out a backoff).
   * `rows`: the work rows the commit just wrote, as they are now (others are read).
   */
  claim(conversationId: string, claim: NonNullable<Commit['claim']>, now: number, written: WorkItem[], rows: ReadonlyMap<string, WorkStateRow>): Lease[] {
    const leases: Lease[] = [];
    for (const destination of claim.destinations) {
      const state = rows.get(destination) ?? this.s.state.get(destination, conversationId);
      if (!state || state.due_at === null || state.due_at > now || state.last_seq <= state.done) continue;
      const token = `${this.tokenBase}.${(this.tokens += 1).toString(36)}`;
      this.s.setLease.run(now + claim.leaseMs, token, destination, conversationId);
      leases.push({ destination, conversationId, token, pending: this.pendingBegun(destination, conversationId, claim.items ?? LEASE_ITEMS, claim.begin?.includes(destination) ?? false, now, state, written) });
    }
    return leases;
  }

  /** `readPending`, and when `begin` is set, attempts recorded on the batch's items in one record (inside the caller's write). */
  private pendingBegun(destination: string, conversationId: string, limit: number, begin: boolean, now: number, state?: WorkStateRow, written?: WorkItem[]): NonNullable<Lease['pending']> {
    const pending = state && written ? this.pendingFrom(destination, state, written, limit) ?? this.readPending(destination, conversationId, limit, state) : this.readPending(destination, conversationId, limit, state);
    const first = pending.items[0];
    if (!begin || !first) return pending;
    return { cursor: this.recordAttempt(destination, conversationId, pending.cursor, first.seq, now, pending.items.at(-1)!.seq), items: pending.items, begun: true };
  }

  /** Attempts on `seq`..`upTo` begin (`src/store/attempts.ts`). Returns the new cursor. */
  private recordAttempt(destination: string, conversationId: string, cursor: Cursor, seq: number, now: number, upTo = seq): Cursor {
    const attempt = beginAttempts(cursor.attempt, seq, upTo, now);
    this.s.setAttempt.run(JSON.stringify(attempt), destination, conversationId);
    return { done: cursor.done, attempt };
  }

  /** The cursor and up to `limit` items after it addressed to `destination` (`state`: its row, when the caller just read it). */
  private readPending(destination: string, conversationId: string, limit: number, state = this.s.state.get(destination, conversationId)): { cursor: Cursor; items: WorkItem[] } {
    const cursor = toCursor(state);
    const items: WorkItem[] = [];
    if (!state || limit <= 0) return { cursor, items };
    // The log in chunks, filtered here (cheaper than json_each in SQL); usually one chunk.
    for (let after = cursor.done; after < state.last_seq; ) {
      const bodies = this.s.workItems.all(conversationId, after, state.last_seq);
      for (const body of bodies) {
        const item = toItem(body);
        after = item.seq;
        if (item.to.includes(destination)) {
          items.push(item);
          if (items.length >= limit) return { cursor, items };
        }
      }
      if (bodies.length < PENDING_CHUNK) break;
    }
    return { cursor, items };
  }

  /**
   * The pending items straight from the ones a commit just wrote, when nothing older is left after
   * the cursor (the usual case): no log read, no JSON parse. Undefined when older items remain.
   */
  private pendingFrom(destination: string, state: WorkStateRow, written: WorkItem[], limit: number): { cursor: Cursor; items: WorkItem[] } | undefined {
    if (written.length === 0 || state.done < written[0]!.seq - 1) return undefined;
    const items: WorkItem[] = [];
    for (const item of written) {
      if (items.length >= limit) break;
      if (item.seq > state.done && item.to.includes(destination)) items.push(item);
    }
    return { cursor: toCursor(state), items };
  }

  /** The lease's row, or LeaseLostError when another worker holds it now. */
  private held(lease: Lease): WorkStateRow {
    const state = this.s.state.get(lease.destination, lease.conversationId);
    if (!state || state.lease_token !== lease.token) throw new LeaseLostError(lease.destination, lease.conversationId);
    return state;
  }
}

export interface SqliteStoreOptions {
  now?: () => number;
  /**
   * `full` (default): every commit is fsynced and survives a power loss. `normal`: fsync only at
   * WAL checkpoints; a commit survives a crash of the process but not of the OS or the power.
   */
  synchronous?: 'full' | 'normal';
  /** Milliseconds between sweeps of expired rows (default 60 s; 0: no timer, only `sweepExpired`). */
  sweepIntervalMs?: number;
  /** Keys a sweep step looks at per table, so at most the rows it deletes there (default 500). */
  sweepBatch?: number;
  /** Where a failed sweep is reported (default: a logger of the store's own, made on first use). */
  logger?: Pick<Logger, 'warn'>;
}

export class SqliteStore implements Store {
  readonly backend = 'sqlite';
  readonly work: SqliteWork;
  private readonly s: Statements;
  private readonly writer: GroupWriter;
  private closing?: Promise<void>;
  private readonly changes = new EventEmitter();
  private readonly locks = new InProcessLocks();
  /** Per table of SWEPT, the first key the sweep has not looked at yet ('': the table's start). */
  private readonly sweepFrom: string[] = SWEPT.map(() => '');
  /** The last sweep step: steps run one after another, each from where the previous one stopped. */
  private sweeping: Promise<unknown> = Promise.resolve();
  private sweepTimer?: NodeJS.Timeout;

  private constructor(
    private readonly db: Database.Database,
    private readonly now: () => number,
    fsyncEveryCommit: boolean,
    private readonly sweep: { intervalMs: number; batch: number; logger?: Pick<Logger, 'warn'> },
  ) {
    this.s = prepare(db);
    this.writer = new GroupWriter(db, this.s, fsyncEveryCommit);
    this.work = new SqliteWork(this.s, this.writer, now);
    this.changes.setMaxListeners(0);
    this.armSweep();
  }

  static async open(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
    let db: Database.Database | undefined;
    try {
      // `:memory:` is a throwaway store: one connection serves reads and writes, so no file is needed.
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      db = new Database(path, { timeout: 5000 });
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.exec(SCHEMA);
      // Files made before inbound marks kept their message.
      if (!(db.pragma('table_info(inbound)') as Array<{ name: string }>).some((column) => column.name === 'message_id')) db.exec('ALTER TABLE inbound ADD COLUMN message_id TEXT');
      const sweep = {
        intervalMs: count(options.sweepIntervalMs ?? SWEEP_INTERVAL_MS),
        batch: Math.max(1, count(options.sweepBatch ?? SWEEP_BATCH)),
        ...(options.logger ? { logger: options.logger } : {}),
      };
      return new SqliteStore(db, options.now ?? Date.now, options.synchronous !== 'normal' && path !== ':memory:', sweep);
    } catch (err) {
      db?.close();
      throw unavailable(`open ${path}`, err);
    }
  }

  getConversation(id: string): Promise<Conversation | undefined> {
    return read('read conversation', () => {
      const row = this.s.conversation.get(id);
      return row && this.toConversation(row, this.s.messages.all(id));
    });
  }

  getConversationSince(id: string, version: number, messageCount: number): Promise<Conversation | 'unchanged' | undefined> {
    return read('read conversation', () => {
      const stored = this.s.version.get(id);
      if (stored === undefined) return undefined;
      if (stored === version) return 'unchanged';
      const row = this.s.conversation.get(id)!;
      return this.toConversation(row, this.s.messagesAfter.all(id, count(messageCount)));
    });
  }

  async commit(commit: Commit): Promise<number> {
    return (await this.commitClaiming(commit)).version;
  }

  async commitClaiming(commit: Commit): Promise<CommitResult> {
    const { conversation: c } = commit;
    const version = commit.expectedVersion + 1;
    const json = commitHeader(commit);
    // The write returns what it did, and changes nothing outside the store: a batch may run it twice.
    const { destinations, claimed, released } = await this.writer.write(`commit conversation ${c.id}`, () => {
      const { s } = this;
      const now = this.now();
      // Every check first. The version's is the first write's own (compare-and-set): when it
      // refuses, nothing was written.
      if (commit.inbound) {
        const seen = s.inbound.get(commit.inbound.key, now);
        if (seen !== undefined) throw new DuplicateInboundError(commit.inbound.key, seen);
      }
      if (commit.cursor) {
        const { lease } = commit.cursor;
        if (s.state.get(lease.destination, lease.conversationId)?.lease_token !== lease.token) throw new LeaseLostError(lease.destination, lease.conversationId);
      }
      const { messages } = c;
      const put = commit.expectedVersion === 0 ? s.createConversation.run(c.id, json) : s.updateConversation.run(version, json, c.id, commit.expectedVersion);
      if (put.changes === 0) throw new VersionConflictError(c.id, commit.expectedVersion, s.version.get(c.id));
      // Then the other writes.
      if (commit.inbound) s.putInbound.run(commit.inbound.key, c.id, now + commit.inbound.ttlMs, commit.inbound.message ?? null);
      if (commit.cursor) {
        const { lease, seq } = commit.cursor;
        s.advance.run({ seq, destination: lease.destination, id: lease.conversationId });
      }
      const first = messages.length - commit.appended.length;
      for (let i = 0; i < commit.appended.length; i++) s.addMessage.run(c.id, first + i + 1, JSON.stringify(commit.appended[i]));
      const destinations: string[] = [];
      const written: WorkItem[] = [];
      /** The work rows this commit wrote, as written, for its claim. */
      const rows = new Map<string, WorkStateRow>();
      if (commit.work?.length) {
        let seq = s.lastWork.get(c.id) ?? 0;
        const firstFor = new Map<string, number>();
        const lastFor = new Map<string, number>();
        for (const work of commit.work) {
          seq += 1;
          const item: WorkItem = { seq, to: work.to, payload: work.payload, at: now, version };
          s.addWork.run(c.id, seq, JSON.stringify(item));
          written.push(item);
          for (const destination of work.to) {
            if (!firstFor.has(destination)) firstFor.set(destination, seq);
            lastFor.set(destination, seq);
          }
        }
        for (const [destination, last] of lastFor) rows.set(destination, s.workDue.get({ destination, id: c.id, now, first: firstFor.get(destination)!, last })!);
        destinations.push(...lastFor.keys());
      }
      if (commit.schedule) {
        const { destination, at } = commit.schedule;
        s.schedule.run({ destination, id: c.id, at });
        rows.delete(destination);
        if (!destinations.includes(destination)) destinations.push(destination);
      }
      for (const write of commit.indexes ?? []) {
        switch (write.op) {
          case 'set':
            s.setIndex.run(write.key, write.value, write.ttlMs ? now + write.ttlMs : null);
            break;
          case 'delete':
            s.deleteIndex.run(write.key);
            break;
          case 'add':
            s.addMember.run(write.key, write.member);
            break;
          case 'remove':
            s.removeMember.run(write.key, write.member);
            break;
        }
      }
      // The cursor's worker is done if nothing is left for it: its lease goes back in this write.
      let released = false;
      if (commit.cursor?.release) {
        const { lease } = commit.cursor;
        released = s.unleaseIfDone.run(lease.destination, lease.conversationId).changes > 0;
        if (released) rows.delete(lease.destination);
      }
      return { destinations, claimed: commit.claim ? this.work.claim(c.id, commit.claim, now, written, rows) : [], released };
    });
    const notice: ChangeNotice = { conversationId: c.id, version, ownershipVersion: c.ownershipVersion, destinations };
    // Nobody else need look for what this commit leased, nor for an announced destination's (none).
    const announced = commit.announce?.filter((d) => !destinations.includes(d)) ?? [];
    if (announced.length) destinations.push(...announced);
    if (claimed.length || announced.length) notice.leased = [...claimed.map((l) => l.destination), ...announced];
    this.changes.emit('change', notice);
    return released ? { version, claimed, released } : { version, claimed };
  }

  indexValue(key: string): Promise<string | undefined> {
    return read('read index', () => this.s.indexValue.get(key, this.now()));
  }

  indexMembers(key: string): Promise<string[]> {
    return read('read index', () => this.s.indexMembers.all(key));
  }

  inboundSeen(key: string): Promise<string | undefined> {
    return read('read inbound marks', () => this.s.inbound.get(key, this.now()));
  }

  inboundMessage(key: string): Promise<string | undefined> {
    return read('read inbound marks', () => this.s.inboundMessage.get(key, this.now()) ?? undefined);
  }

  /** Transactions committed since the store opened, and the writes they carried: writes / transactions is the group-commit factor. */
  get stats(): StoreWriteStats {
    return { ...this.writer.stats };
  }

  onChange(listener: (notice: ChangeNotice) => void): () => void {
    this.changes.on('change', listener);
    return () => this.changes.off('change', listener);
  }

  // Adapters' own data lives in the same file and goes through the same group writer.

  /** One instance serves a SQLite file, so an in-process lock is store-wide. */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.withLock(key, fn);
  }

  once(key: string, ttlMs = DAY): Promise<boolean> {
    return this.writer.write('record an idempotency key', () => {
      const now = this.now();
      this.s.expireData.run(`once:${key}`, now);
      return this.s.addData.run(`once:${key}`, '1', now + ttlMs).changes > 0;
    });
  }

  async forget(key: string): Promise<void> {
    await this.writer.write('forget an idempotency key', () => this.s.deleteData.run(`once:${key}`));
  }

  increment(counter: string): Promise<number> {
    return this.writer.write(`increment ${counter}`, () => this.s.increment.get(counter)!);
  }

  kv(namespace: string): KeyValue {
    const prefix = `kv:${namespace}:`;
    return {
      get: <T>(key: string) =>
        read(`read ${namespace}`, () => {
          const value = this.s.data.get(prefix + key, this.now());
          return value === undefined ? undefined : (JSON.parse(value) as T);
        }),
      set: async <T>(key: string, value: T, ttlMs?: number) => {
        await this.writer.write(`write ${namespace}`, () => this.s.putData.run(prefix + key, JSON.stringify(value), ttlMs ? this.now() + ttlMs : null));
      },
      delete: async (key: string) => {
        await this.writer.write(`write ${namespace}`, () => this.s.deleteData.run(prefix + key));
      },
    };
  }

  /**
   * One sweep step: in each of inbound, index_values and adapter_data, the next `sweepBatch` keys
   * from where the last step stopped (wrapping round at the end) are looked at and the expired ones
   * deleted. Resolves with the rows deleted. The timer runs these; expiry is judged by the store's
   * clock (`now`), the one reads use, so nothing a read could still return is deleted.
   */
  async sweepExpired(): Promise<number> {
    return (await this.sweepStep(SWEPT.map((_, i) => i))).removed;
  }

  /** A sweep step over `tables` (indexes into SWEPT); `finished`: those it took to their end. */
  private sweepStep(tables: number[]): Promise<{ removed: number; finished: number[] }> {
    // Light: losing a sweep in a power cut only brings back rows that reads ignore anyway.
    const write = () =>
      this.writer.write('sweep expired rows', LIGHT, () => {
        const now = this.now();
        let removed = 0;
        const ends = tables.map((t) => {
          const { next, range, tail } = this.s.sweep[t]!;
          const from = this.sweepFrom[t]!;
          const end = next.get(from, this.sweep.batch);
          // `expires_at <= now` is checked by the DELETE itself, so a row rewritten with a later
          // expiry since it was last seen (or earlier in this batch) stays. NULL never matches.
          removed += (end === undefined ? tail.run(from, now) : range.run(from, end, now)).changes;
          return end;
        });
        return { removed, ends };
      });
    const step = this.sweeping.then(write).then(({ removed, ends }) => {
      // The cursors move only once the step is committed: a batch may run its writes twice.
      const finished: number[] = [];
      tables.forEach((t, i) => {
        this.sweepFrom[t] = ends[i] ?? '';
        if (ends[i] === undefined) finished.push(t);
      });
      return { removed, finished };
    });
    this.sweeping = step.catch(() => undefined);
    return step;
  }

  /** The next pass, `sweepIntervalMs` from now. The timer never keeps the process alive. */
  private armSweep(): void {
    if (this.sweep.intervalMs === 0 || this.closing) return;
    this.sweepTimer = setTimeout(() => void this.sweepPass(), this.sweep.intervalMs).unref();
  }

  /**
   * One pass: steps until every table has been walked to its end, so a key waits at most two
   * intervals (plus a pass). The event loop turns between steps (each waits for its batch's
   * COMMIT), so other writes interleave with a long pass.
   */
  private async sweepPass(): Promise<void> {
    this.sweepTimer = undefined;
    let left = SWEPT.map((_, i) => i);
    try {
      while (left.length > 0 && !this.closing) {
        const { finished } = await this.sweepStep(left);
        left = left.filter((t) => !finished.includes(t));
      }
    } catch (err) {
      // Disk full, a lock held past busy_timeout...: the step was rolled back alone (the group
      // writer's savepoints), its rows stay, and the next pass tries the same keys again.
      if (!this.closing) (this.sweep.logger ??= createLogger().child({ component: 'sqlite-store' })).warn({ err }, 'sweeping expired rows failed; the next sweep tries again');
    }
    this.armSweep();
  }

  /** Writes what is queued, then closes the file. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.sweepTimer);
      this.writer.close();
      this.changes.removeAllListeners();
      this.db.close();
    })();
    return this.closing;
  }

  private toConversation(row: { version: number; header: string }, bodies: string[]): Conversation {
    const messages = bodies.map((body) => JSON.parse(body) as Message);
    return { ...(JSON.parse(row.header) as Omit<Conversation, 'messages' | 'version'>), messages, version: row.version };
  }
}

/** Opens (creating if needed) the SQLite store at `path` (`:memory:` for a throwaway one). */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
  return SqliteStore.open(path, options);
}
