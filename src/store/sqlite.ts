/**
 * The embedded, durable default: one SQLite file in WAL mode, for one instance.
 *
 * - Every write runs in a transaction on one writer connection. Commits that arrive while a
 *   transaction is open wait and then go together in the next one (group commit), each inside its
 *   own savepoint, so one failing commit does not undo its neighbours and one fsync serves many.
 * - Reads use a second connection and see the last committed state, never a half-done transaction.
 * - The driver (`sqlite3`) runs statements, and so the fsync, on libuv's thread pool: the event
 *   loop keeps serving other conversations meanwhile.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sqlite3 from 'sqlite3';
import { DuplicateInboundError, LeaseLostError, StoreUnavailableError, VersionConflictError } from '../errors.ts';
import type { Conversation, Message } from '../model.ts';
import { InProcessLocks } from './locks.ts';
import type { ChangeNotice, Commit, Cursor, KeyValue, Lease, Store, WorkItem, WorkQueue } from './store.ts';

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
CREATE TABLE IF NOT EXISTS inbound (key TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS adapter_data (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
`;

const DAY = 24 * 60 * 60 * 1000;

/** A promise face on one sqlite3 connection. */
class Connection {
  constructor(readonly db: sqlite3.Database) {}

  static open(path: string, mode: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(path, mode, (err) => (err ? reject(err) : resolve(new Connection(db))));
    });
  }

  run(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    return new Promise((resolve, reject) =>
      this.db.run(sql, params, function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(err);
        else resolve({ changes: this.changes });
      }),
    );
  }

  get<T>(sql: string, params: unknown[] = []): Promise<T | undefined> {
    return new Promise((resolve, reject) => this.db.get(sql, params, (err, row) => (err ? reject(err) : resolve(row as T | undefined))));
  }

  all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return new Promise((resolve, reject) => this.db.all(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[]))));
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.db.exec(sql, (err) => (err ? reject(err) : resolve())));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.db.close(() => resolve()));
  }
}

/** One piece of work for the writer: runs inside the shared transaction, in its own savepoint. */
interface WriteJob {
  run(tx: Connection): Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** Serializes writes on the writer connection and groups those that queue up into one transaction. */
class GroupWriter {
  private queue: WriteJob[] = [];
  private running = false;

  constructor(private readonly tx: Connection) {}

  write<T>(run: (tx: Connection) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, 256);
      const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
      try {
        await this.tx.run('BEGIN IMMEDIATE');
        for (const job of batch) {
          await this.tx.run('SAVEPOINT job');
          try {
            outcomes.push({ ok: true, value: await job.run(this.tx) });
            await this.tx.run('RELEASE job');
          } catch (err) {
            await this.tx.run('ROLLBACK TO job');
            await this.tx.run('RELEASE job');
            outcomes.push({ ok: false, err });
          }
        }
        await this.tx.run('COMMIT');
      } catch (err) {
        await this.tx.run('ROLLBACK').catch(() => {});
        const failure = unavailable('write', err);
        for (const job of batch) job.reject(failure);
        continue;
      }
      batch.forEach((job, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) job.resolve(outcome.value);
        else job.reject(outcome.err);
      });
    }
    this.running = false;
  }
}

function unavailable(what: string, err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`Store (sqlite) unavailable: could not ${what}: ${(err as Error).message}`, err);
}

interface WorkStateRow {
  due_at: number | null;
  lease_token: string | null;
  last_seq: number;
  done: number;
  attempt: string | null;
}

class SqliteWork implements WorkQueue {
  constructor(
    private readonly writer: GroupWriter,
    private readonly reader: Connection,
    private readonly now: () => number,
  ) {}

  lease(destination: string, options: { limit: number; leaseMs: number }): Promise<Lease[]> {
    return this.writer.write(async (tx) => {
      const now = this.now();
      const rows = await tx.all<{ conversation_id: string }>(
        'SELECT conversation_id FROM work_state WHERE destination = ? AND due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?',
        [destination, now, options.limit],
      );
      const leases: Lease[] = [];
      for (const row of rows) {
        const token = randomBytes(12).toString('hex');
        await tx.run('UPDATE work_state SET due_at = ?, lease_token = ? WHERE destination = ? AND conversation_id = ?', [now + options.leaseMs, token, destination, row.conversation_id]);
        leases.push({ destination, conversationId: row.conversation_id, token });
      }
      return leases;
    });
  }

  async renew(lease: Lease, leaseMs: number): Promise<boolean> {
    const { changes } = await this.writer.write((tx) =>
      tx.run('UPDATE work_state SET due_at = ? WHERE destination = ? AND conversation_id = ? AND lease_token = ?', [this.now() + leaseMs, lease.destination, lease.conversationId, lease.token]),
    );
    return changes > 0;
  }

  async pending(destination: string, conversationId: string, limit = 100): Promise<{ cursor: Cursor; items: WorkItem[] }> {
    try {
      const state = await this.reader.get<WorkStateRow>('SELECT * FROM work_state WHERE destination = ? AND conversation_id = ?', [destination, conversationId]);
      const cursor = toCursor(state);
      if (!state || state.last_seq <= cursor.done) return { cursor, items: [] };
      const rows = await this.reader.all<{ body: string }>('SELECT body FROM work_log WHERE conversation_id = ? AND seq > ? AND seq <= ? ORDER BY seq', [conversationId, cursor.done, state.last_seq]);
      const items = rows.map((r) => JSON.parse(r.body) as WorkItem).filter((item) => item.to.includes(destination));
      return { cursor, items: items.slice(0, limit) };
    } catch (err) {
      throw unavailable(`read ${destination} work`, err);
    }
  }

  begin(lease: Lease, seq: number): Promise<Cursor> {
    return this.writer.write(async (tx) => {
      const state = await this.held(tx, lease);
      const cursor = toCursor(state);
      const attempt = cursor.attempt?.seq === seq ? { ...cursor.attempt, count: cursor.attempt.count + 1 } : { seq, count: 1, since: this.now() };
      await tx.run('UPDATE work_state SET attempt = ? WHERE destination = ? AND conversation_id = ?', [JSON.stringify(attempt), lease.destination, lease.conversationId]);
      return { done: cursor.done, attempt };
    });
  }

  async advance(lease: Lease, seq: number): Promise<void> {
    await this.writer.write(async (tx) => {
      await this.held(tx, lease);
      await advanceCursor(tx, lease, seq);
    });
  }

  async release(lease: Lease, retryAt?: number): Promise<void> {
    await this.writer.write(async (tx) => {
      const state = await tx.get<WorkStateRow>('SELECT * FROM work_state WHERE destination = ? AND conversation_id = ?', [lease.destination, lease.conversationId]);
      if (!state || state.lease_token !== lease.token) return; // lost meanwhile: the new holder owns it
      const due = state.last_seq > state.done ? (retryAt ?? this.now()) : null;
      await tx.run('UPDATE work_state SET due_at = ?, lease_token = NULL WHERE destination = ? AND conversation_id = ?', [due, lease.destination, lease.conversationId]);
    });
  }

  finish(lease: Lease, done?: number, retryAt?: number): Promise<boolean> {
    return this.writer.write(async (tx) => {
      const state = await this.held(tx, lease);
      if (done !== undefined) await advanceCursor(tx, lease, done);
      const left = state.last_seq > Math.max(state.done, done ?? 0);
      if (left && retryAt === undefined) return false;
      await tx.run('UPDATE work_state SET due_at = ?, lease_token = NULL WHERE destination = ? AND conversation_id = ?', [left ? retryAt : null, lease.destination, lease.conversationId]);
      return true;
    });
  }

  async backlog(destination: string): Promise<{ due: number; oldest?: number }> {
    try {
      const row = await this.reader.get<{ due: number; oldest: number | null }>(
        'SELECT COUNT(*) AS due, MIN(due_at) AS oldest FROM work_state WHERE destination = ? AND due_at IS NOT NULL AND due_at <= ?',
        [destination, this.now()],
      );
      return { due: row?.due ?? 0, ...(row?.oldest != null ? { oldest: row.oldest } : {}) };
    } catch (err) {
      throw unavailable(`read the ${destination} backlog`, err);
    }
  }

  async nextDue(destination: string): Promise<number | undefined> {
    try {
      const row = await this.reader.get<{ due: number | null }>('SELECT MIN(due_at) AS due FROM work_state WHERE destination = ? AND due_at IS NOT NULL', [destination]);
      return row?.due ?? undefined;
    } catch (err) {
      throw unavailable(`read ${destination} due work`, err);
    }
  }

  async wake(destination: string, conversationIds: string[]): Promise<void> {
    await this.writer.write(async (tx) => {
      const now = this.now();
      for (const id of conversationIds) {
        await tx.run('UPDATE work_state SET due_at = ? WHERE destination = ? AND conversation_id = ? AND last_seq > done AND lease_token IS NULL', [now, destination, id]);
      }
    });
  }

  /** The lease's row, or LeaseLostError when another worker holds it now. */
  private async held(tx: Connection, lease: Lease): Promise<WorkStateRow> {
    const state = await tx.get<WorkStateRow>('SELECT * FROM work_state WHERE destination = ? AND conversation_id = ?', [lease.destination, lease.conversationId]);
    if (!state || state.lease_token !== lease.token) throw new LeaseLostError(lease.destination, lease.conversationId);
    return state;
  }
}

function toCursor(state: WorkStateRow | undefined): Cursor {
  if (!state) return { done: 0 };
  return { done: state.done, ...(state.attempt ? { attempt: JSON.parse(state.attempt) as Cursor['attempt'] } : {}) };
}

async function advanceCursor(tx: Connection, lease: Lease, seq: number): Promise<void> {
  await tx.run(
    `UPDATE work_state SET done = MAX(done, ?1),
       attempt = CASE WHEN attempt IS NOT NULL AND json_extract(attempt, '$.seq') <= ?1 THEN NULL ELSE attempt END
     WHERE destination = ?2 AND conversation_id = ?3`,
    [seq, lease.destination, lease.conversationId],
  );
}

export class SqliteStore implements Store {
  readonly backend = 'sqlite';
  readonly work: WorkQueue;
  private readonly writer: GroupWriter;
  private readonly changes = new EventEmitter();
  private readonly locks = new InProcessLocks();
  private cleanup?: () => void;

  private constructor(
    private readonly tx: Connection,
    private readonly reader: Connection,
    private readonly now: () => number,
  ) {
    this.writer = new GroupWriter(tx);
    this.work = new SqliteWork(this.writer, reader, now);
    this.changes.setMaxListeners(0);
  }

  static async open(path: string, options: { now?: () => number } = {}): Promise<SqliteStore> {
    // A throwaway store is a temporary file: two connections must see one database.
    const throwaway = path === ':memory:' ? mkdtempSync(join(tmpdir(), 'bridge-store-')) : undefined;
    const file = throwaway ? join(throwaway, 'bridge.sqlite') : path;
    mkdirSync(dirname(file), { recursive: true });
    const mode = sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE;
    let tx: Connection | undefined;
    try {
      tx = await Connection.open(file, mode);
      await tx.exec('PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;');
      await tx.exec(SCHEMA);
      const reader = await Connection.open(file, mode);
      await reader.exec('PRAGMA busy_timeout = 5000;');
      const store = new SqliteStore(tx, reader, options.now ?? Date.now);
      if (throwaway) store.cleanup = () => rmSync(throwaway, { recursive: true, force: true });
      return store;
    } catch (err) {
      await tx?.close();
      throw unavailable(`open ${path}`, err);
    }
  }

  async getConversation(id: string): Promise<Conversation | undefined> {
    try {
      const row = await this.reader.get<{ version: number; header: string }>('SELECT version, header FROM conversations WHERE id = ?', [id]);
      if (!row) return undefined;
      const messages = await this.reader.all<{ body: string }>('SELECT body FROM messages WHERE conversation_id = ? ORDER BY seq', [id]);
      return { ...(JSON.parse(row.header) as Omit<Conversation, 'messages' | 'version'>), messages: messages.map((m) => JSON.parse(m.body) as Message), version: row.version };
    } catch (err) {
      throw unavailable('read conversation', err);
    }
  }

  async commit(commit: Commit): Promise<number> {
    const { conversation: c } = commit;
    const notice: ChangeNotice = { conversationId: c.id, version: commit.expectedVersion + 1, ownershipVersion: c.ownershipVersion, destinations: [] };
    await this.writer.write(async (tx) => {
      const now = this.now();
      const row = await tx.get<{ version: number }>('SELECT version FROM conversations WHERE id = ?', [c.id]);
      if ((row?.version ?? 0) !== commit.expectedVersion) throw new VersionConflictError(c.id, commit.expectedVersion, row?.version);
      if (commit.inbound) {
        const seen = await tx.get<{ conversation_id: string }>('SELECT conversation_id FROM inbound WHERE key = ? AND expires_at > ?', [commit.inbound.key, now]);
        if (seen) throw new DuplicateInboundError(commit.inbound.key, seen.conversation_id);
        await tx.run('INSERT OR REPLACE INTO inbound (key, conversation_id, expires_at) VALUES (?, ?, ?)', [commit.inbound.key, c.id, now + commit.inbound.ttlMs]);
      }
      if (commit.cursor) {
        const lease = commit.cursor.lease;
        const state = await tx.get<{ lease_token: string | null }>('SELECT lease_token FROM work_state WHERE destination = ? AND conversation_id = ?', [lease.destination, lease.conversationId]);
        if (state?.lease_token !== lease.token) throw new LeaseLostError(lease.destination, lease.conversationId);
        await advanceCursor(tx, lease, commit.cursor.seq);
      }
      const { messages, version: _version, ...header } = c;
      await tx.run('INSERT OR REPLACE INTO conversations (id, version, header) VALUES (?, ?, ?)', [c.id, commit.expectedVersion + 1, JSON.stringify(header)]);
      if (commit.appended.length > 0) {
        const first = messages.length - commit.appended.length;
        for (const [i, message] of commit.appended.entries()) {
          await tx.run('INSERT INTO messages (conversation_id, seq, body) VALUES (?, ?, ?)', [c.id, first + i + 1, JSON.stringify(message)]);
        }
      }
      if (commit.work?.length) {
        const last = await tx.get<{ seq: number | null }>('SELECT MAX(seq) AS seq FROM work_log WHERE conversation_id = ?', [c.id]);
        let seq = last?.seq ?? 0;
        const lastFor = new Map<string, number>();
        for (const work of commit.work) {
          seq += 1;
          const item: WorkItem = { seq, to: work.to, payload: work.payload, at: now };
          await tx.run('INSERT INTO work_log (conversation_id, seq, body) VALUES (?, ?, ?)', [c.id, seq, JSON.stringify(item)]);
          for (const destination of work.to) lastFor.set(destination, seq);
        }
        for (const [destination, lastSeq] of lastFor) {
          await tx.run(
            `INSERT INTO work_state (destination, conversation_id, due_at, last_seq) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (destination, conversation_id) DO UPDATE SET last_seq = ?4, due_at = COALESCE(due_at, ?3)`,
            [destination, c.id, now, lastSeq],
          );
        }
        notice.destinations = [...lastFor.keys()];
      }
      if (commit.schedule) {
        const { destination, at } = commit.schedule;
        await tx.run(
          `INSERT INTO work_state (destination, conversation_id, due_at) VALUES (?1, ?2, ?3)
           ON CONFLICT (destination, conversation_id) DO UPDATE SET due_at = ?3`,
          [destination, c.id, at],
        );
        notice.destinations = [...new Set([...notice.destinations, destination])];
      }
      for (const write of commit.indexes ?? []) {
        switch (write.op) {
          case 'set':
            await tx.run('INSERT OR REPLACE INTO index_values (key, value, expires_at) VALUES (?, ?, ?)', [write.key, write.value, write.ttlMs ? now + write.ttlMs : null]);
            break;
          case 'delete':
            await tx.run('DELETE FROM index_values WHERE key = ?', [write.key]);
            break;
          case 'add':
            await tx.run('INSERT OR IGNORE INTO index_members (key, member) VALUES (?, ?)', [write.key, write.member]);
            break;
          case 'remove':
            await tx.run('DELETE FROM index_members WHERE key = ? AND member = ?', [write.key, write.member]);
            break;
        }
      }
    });
    this.changes.emit('change', notice);
    return notice.version;
  }

  async indexValue(key: string): Promise<string | undefined> {
    try {
      const row = await this.reader.get<{ value: string }>('SELECT value FROM index_values WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)', [key, this.now()]);
      return row?.value;
    } catch (err) {
      throw unavailable('read index', err);
    }
  }

  async indexMembers(key: string): Promise<string[]> {
    try {
      const rows = await this.reader.all<{ member: string }>('SELECT member FROM index_members WHERE key = ? ORDER BY member', [key]);
      return rows.map((r) => r.member);
    } catch (err) {
      throw unavailable('read index', err);
    }
  }

  async inboundSeen(key: string): Promise<string | undefined> {
    try {
      const row = await this.reader.get<{ conversation_id: string }>('SELECT conversation_id FROM inbound WHERE key = ? AND expires_at > ?', [key, this.now()]);
      return row?.conversation_id;
    } catch (err) {
      throw unavailable('read inbound marks', err);
    }
  }

  onChange(listener: (notice: ChangeNotice) => void): () => void {
    this.changes.on('change', listener);
    return () => this.changes.off('change', listener);
  }

  // Adapters' own data lives in the same file and goes through the same writer, so no second
  // connection ever waits on the first for the write lock.

  /** One instance serves a SQLite file, so an in-process lock is store-wide. */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.withLock(key, fn);
  }

  async once(key: string, ttlMs = DAY): Promise<boolean> {
    const { changes } = await this.writer.write(async (tx) => {
      const now = this.now();
      await tx.run('DELETE FROM adapter_data WHERE key = ? AND expires_at <= ?', [`once:${key}`, now]);
      return tx.run('INSERT OR IGNORE INTO adapter_data (key, value, expires_at) VALUES (?, ?, ?)', [`once:${key}`, '1', now + ttlMs]);
    });
    return changes > 0;
  }

  async forget(key: string): Promise<void> {
    await this.writer.write((tx) => tx.run('DELETE FROM adapter_data WHERE key = ?', [`once:${key}`]));
  }

  increment(counter: string): Promise<number> {
    return this.writer.write(async (tx) => {
      await tx.run('INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1', [counter]);
      const row = await tx.get<{ value: number }>('SELECT value FROM counters WHERE name = ?', [counter]);
      return row!.value;
    });
  }

  kv(namespace: string): KeyValue {
    const prefix = `kv:${namespace}:`;
    return {
      get: async <T>(key: string) => {
        try {
          const row = await this.reader.get<{ value: string }>('SELECT value FROM adapter_data WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)', [prefix + key, this.now()]);
          return row ? (JSON.parse(row.value) as T) : undefined;
        } catch (err) {
          throw unavailable(`read ${namespace}`, err);
        }
      },
      set: async <T>(key: string, value: T, ttlMs?: number) => {
        await this.writer.write((tx) => tx.run('INSERT OR REPLACE INTO adapter_data (key, value, expires_at) VALUES (?, ?, ?)', [prefix + key, JSON.stringify(value), ttlMs ? this.now() + ttlMs : null]));
      },
      delete: async (key: string) => {
        await this.writer.write((tx) => tx.run('DELETE FROM adapter_data WHERE key = ?', [prefix + key]));
      },
    };
  }

  async close(): Promise<void> {
    this.changes.removeAllListeners();
    await this.reader.close();
    await this.tx.close();
    this.cleanup?.();
  }
}

/** Opens (creating if needed) the SQLite store at `path` (`:memory:` for a throwaway one). */
export function openSqliteStore(path: string, options: { now?: () => number } = {}): Promise<SqliteStore> {
  return SqliteStore.open(path, options);
}
