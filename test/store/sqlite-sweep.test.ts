/**
 * The SQLite store deletes what has expired (Redis expires its own keys): inbound marks, index values
 * and adapter values past their TTL go, in bounded steps through the group writer, judged by the
 * store's own clock; nothing a read could still return is ever deleted.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { StoreUnavailableError } from '../../src/errors.ts';
import type { Message } from '../../src/model.ts';
import { openSqliteStore, type SqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite.ts';
import type { Commit } from '../../src/store/store.ts';
import { conversationFixture } from '../support/conversations.ts';

const dir = mkdtempSync(join(tmpdir(), 'sqlite-sweep-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

let n = 0;
const place = () => join(dir, `s${n++}.sqlite`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HOUR = 60 * 60 * 1000;
const T0 = Date.UTC(2026, 0, 1);

async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A store on a fresh file whose clock the test moves; no sweep timer unless asked for. */
async function openAt(path: string, options: SqliteStoreOptions = {}): Promise<{ store: SqliteStore; clock: { now: number } }> {
  const clock = { now: T0 };
  const store = await openSqliteStore(path, { now: () => clock.now, sweepIntervalMs: 0, ...options });
  return { store, clock };
}

/** What is on disk, seen from a second connection (WAL: it sees every committed batch). */
function onDisk<T>(path: string, look: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return look(db);
  } finally {
    db.close();
  }
}
const keys = (path: string, table: string) => onDisk(path, (db) => db.prepare(`SELECT key FROM ${table} ORDER BY key`).pluck().all() as string[]);
const rows = (path: string, table: string) => onDisk(path, (db) => db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get() as number);

function message(id: string): Message {
  return { id, at: '2026-01-01T00:00:01.000Z', author: { role: 'customer' }, text: `text ${id}`, visibility: 'public' };
}

/** A new conversation with one message, committed with whatever else `extra` says. */
function create(store: SqliteStore, id: string, extra: Partial<Commit> = {}): Promise<number> {
  const first = message(`${id}_m1`);
  return store.commit({ conversation: conversationFixture({ id, ticket: `HB-${id}`, messages: [first] }), expectedVersion: 0, appended: [first], ...extra });
}

/** `count` index values `<prefix><5 digits>` with a TTL, in one commit. */
function indexValues(store: SqliteStore, id: string, prefix: string, count: number, ttlMs?: number): Promise<number> {
  const indexes = Array.from({ length: count }, (_, i) => ({ op: 'set' as const, key: `${prefix}${String(i).padStart(5, '0')}`, value: `v${i}`, ...(ttlMs ? { ttlMs } : {}) }));
  return create(store, id, { indexes });
}

describe('sweeping expired rows (sqlite)', () => {
  it('deletes expired rows from inbound, index_values and adapter_data; unexpired and never-expiring rows stay readable', async () => {
    const path = place();
    const { store, clock } = await openAt(path);
    try {
      await create(store, 'c_old', {
        inbound: { key: 'in-old', ttlMs: 1000 },
        indexes: [
          { op: 'set', key: 'idx-old', value: 'a', ttlMs: 1000 },
          { op: 'set', key: 'idx-edge', value: 'b', ttlMs: 10_000 }, // expires exactly at the sweep's now
          { op: 'set', key: 'idx-after-edge', value: 'c', ttlMs: 10_001 },
          { op: 'set', key: 'idx-forever', value: 'd' },
          { op: 'add', key: 'members', member: 'm1' },
        ],
      });
      await create(store, 'c_new', { inbound: { key: 'in-new', ttlMs: HOUR }, indexes: [{ op: 'set', key: 'idx-new', value: 'e', ttlMs: HOUR }] });
      const kv = store.kv('a');
      await Promise.all([kv.set('old', 1, 1000), kv.set('new', 2, HOUR), kv.set('forever', 3), store.once('o-old', 1000), store.once('o-new', HOUR)]);

      clock.now = T0 + 10_000;
      // A read at this instant already ignores exactly what the sweep is about to delete.
      expect(await store.indexValue('idx-edge')).toBeUndefined();
      expect(await store.indexValue('idx-after-edge')).toBe('c');

      expect(await store.sweepExpired()).toBe(5);
      expect(keys(path, 'inbound')).toEqual(['in-new']);
      expect(keys(path, 'index_values')).toEqual(['idx-after-edge', 'idx-forever', 'idx-new']);
      expect(keys(path, 'adapter_data')).toEqual(['kv:a:forever', 'kv:a:new', 'once:o-new']);

      expect(await store.inboundSeen('in-new')).toBe('c_new');
      expect(await store.inboundSeen('in-old')).toBeUndefined();
      expect(await store.indexValue('idx-after-edge')).toBe('c');
      expect(await store.indexValue('idx-forever')).toBe('d');
      expect(await store.indexValue('idx-new')).toBe('e');
      expect(await store.indexMembers('members')).toEqual(['m1']);
      expect(await kv.get('new')).toBe(2);
      expect(await kv.get('forever')).toBe(3);
      expect(await store.once('o-new')).toBe(false); // still remembered
      expect(await store.once('o-old')).toBe(true); // forgotten, as it was before the sweep
      expect((await store.getConversation('c_old'))?.messages.map((m) => m.id)).toEqual(['c_old_m1']);

      expect(await store.sweepExpired()).toBe(0);
      // Much later, only the never-expiring rows and what was written since (`o-old`, a day) are left.
      clock.now = T0 + 2 * HOUR;
      expect(await store.sweepExpired()).toBe(5);
      expect(keys(path, 'inbound')).toEqual([]);
      expect(keys(path, 'index_values')).toEqual(['idx-forever']);
      expect(keys(path, 'adapter_data')).toEqual(['kv:a:forever', 'once:o-old']);
    } finally {
      await store.close();
    }
  });

  it('a step deletes at most sweepBatch rows per table, in key order from where the last stopped; repeated steps finish the job', async () => {
    const path = place();
    const { store, clock } = await openAt(path, { sweepBatch: 500 });
    try {
      await indexValues(store, 'c_bulk', 'msg:', 2000, 1000);
      // adapter_data: 2000 expired values with 400 live ones among them.
      const kv = store.kv('b');
      await Promise.all(Array.from({ length: 2400 }, (_, i) => kv.set(String(i).padStart(5, '0'), i, i % 6 === 5 ? HOUR : 1000)));
      expect(rows(path, 'adapter_data')).toBe(2400);
      clock.now = T0 + 5000;

      const removed: number[] = [];
      const left: number[][] = [];
      for (let step = 0; step < 10; step++) {
        removed.push(await store.sweepExpired());
        left.push([rows(path, 'index_values'), rows(path, 'adapter_data')]);
      }
      // index_values: every row expired, so 500 a step. adapter_data: a step looks at 500 keys,
      // 5 in 6 of them expired; the fifth step reaches the end, then the walk starts over.
      expect(left.map(([index]) => index)).toEqual([1500, 1000, 500, 0, 0, 0, 0, 0, 0, 0]);
      const data = left.map(([, d]) => d);
      expect(data.slice(0, 5)).toEqual([1983, 1566, 1150, 733, 400]);
      expect(data.slice(5)).toEqual([400, 400, 400, 400, 400]);
      expect(removed.slice(0, 5)).toEqual([917, 917, 916, 917, 333]);
      expect(removed.slice(5)).toEqual([0, 0, 0, 0, 0]);
      expect(await kv.get('00005')).toBe(5);
      expect(await kv.get('02399')).toBe(2399);
    } finally {
      await store.close();
    }
  });

  it('the timer sweeps by itself every sweepIntervalMs, never holds the process open, and close stops it', async () => {
    const INTERVAL = 23; // unusual, to tell the store's timers from anyone else's
    const realSetTimeout = globalThis.setTimeout;
    const armed: { timer: NodeJS.Timeout; fired: boolean }[] = [];
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      if (ms !== INTERVAL) return realSetTimeout(fn, ms, ...args);
      const entry = { timer: undefined as unknown as NodeJS.Timeout, fired: false };
      entry.timer = realSetTimeout(() => {
        entry.fired = true;
        fn(...args);
      }, ms);
      armed.push(entry);
      return entry.timer;
    }) as unknown as typeof setTimeout);
    const cleared = vi.spyOn(globalThis, 'clearTimeout');

    const path = place();
    const { store, clock } = await openAt(path, { sweepIntervalMs: INTERVAL, sweepBatch: 100 });
    try {
      await indexValues(store, 'c_t1', 'old:', 1000, 1000); // ten steps of 100: one pass, many steps
      await store.kv('t').set('forever', 1);
      clock.now = T0 + 5000;
      await waitFor(() => rows(path, 'index_values') === 0, 'the first sweep');
      // And again later: every pass arms the next.
      await Promise.all([indexValues(store, 'c_t2', 'later:', 50, 1000), store.kv('t').set('later', 2, 1000)]);
      clock.now = T0 + 10_000;
      await waitFor(() => rows(path, 'index_values') === 0 && rows(path, 'adapter_data') === 1, 'the next sweep');
      expect(await store.kv('t').get('forever')).toBe(1);
    } finally {
      await store.close();
    }
    expect(armed.length).toBeGreaterThanOrEqual(2);
    expect(armed.every(({ timer }) => !timer.hasRef())).toBe(true);
    // Each timer armed either fired or was cleared by close, and none is armed after close.
    const wasCleared = (timer: NodeJS.Timeout) => cleared.mock.calls.some(([t]) => t === timer);
    expect(armed.filter(({ timer, fired }) => !fired && !wasCleared(timer))).toEqual([]);
    const armedAtClose = armed.length;
    await sleep(INTERVAL * 5);
    expect(armed.length).toBe(armedAtClose);
    await expect(store.sweepExpired()).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('a process that leaves a store open, its sweep timer armed, still exits by itself', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const script = join(dir, 'left-open.mts');
    writeFileSync(
      script,
      `import { openSqliteStore } from ${JSON.stringify(pathToFileURL(join(root, 'src/store/sqlite.ts')).href)};
const store = await openSqliteStore(${JSON.stringify(place())}, { sweepIntervalMs: 10 });
await store.kv('x').set('k', 1, 1);
await new Promise((resolve) => setTimeout(resolve, 100)); // several passes
process.stdout.write(String(await store.kv('x').get('k')));
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(killer);
    expect({ code, out }).toEqual({ code: 0, out: 'undefined' });
  });

  it('commits interleaved with sweeps, in the same batches, land whole; a key written again with a new TTL is kept', async () => {
    const path = place();
    const { store, clock } = await openAt(path, { sweepBatch: 50 });
    try {
      const kv = store.kv('d');
      const key = (i: number) => `k${String(i).padStart(4, '0')}`;
      await Promise.all(Array.from({ length: 2000 }, (_, i) => kv.set(key(i), i, 1000)));
      await indexValues(store, 'c_seed', 'inbound-message:', 1000, 1000);
      clock.now = T0 + 5000;
      const expired = () => onDisk(path, (db) => ['inbound', 'index_values', 'adapter_data'].map((t) => db.prepare(`SELECT COUNT(*) FROM ${t} WHERE expires_at <= ?`).pluck().get(clock.now) as number));

      const results: PromiseSettledResult<unknown>[] = [];
      for (let round = 0; round < 20; round++) {
        const turn: Promise<unknown>[] = [];
        for (let i = 0; i < 5; i++) {
          const id = `c_${round}_${i}`;
          turn.push(
            create(store, id, {
              inbound: { key: `in-${id}`, ttlMs: HOUR },
              indexes: [{ op: 'set', key: `inbound-message:x-${id}`, value: `${id}_m1`, ttlMs: HOUR }],
              work: [{ to: ['slack'], payload: { kind: 'mirror', messageId: `${id}_m1` } }],
            }),
          );
        }
        // Two expired keys in the window this turn's first sweep step walks (100 keys a round),
        // written again with a new TTL in the same batch: one before the step, one after it.
        turn.push(kv.set(key(round * 100 + 1), -1, HOUR));
        turn.push(store.sweepExpired());
        turn.push(Promise.resolve().then(() => Promise.resolve()).then(() => kv.set(key(round * 100 + 2), -2, HOUR)));
        turn.push(store.sweepExpired()); // runs once the first is committed: steps go one at a time
        results.push(...(await Promise.allSettled(turn)));
      }
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      for (let step = 0; step < 200 && expired().some((left) => left > 0); step++) await store.sweepExpired();
      expect(expired()).toEqual([0, 0, 0]);

      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 5; i++) {
          const id = `c_${round}_${i}`;
          expect((await store.getConversation(id))?.messages.map((m) => m.id)).toEqual([`${id}_m1`]);
          expect(await store.inboundSeen(`in-${id}`)).toBe(id);
          expect(await store.indexValue(`inbound-message:x-${id}`)).toBe(`${id}_m1`);
        }
        expect(await kv.get(key(round * 100 + 1))).toBe(-1);
        expect(await kv.get(key(round * 100 + 2))).toBe(-2);
      }
      expect((await store.work.lease('slack', { limit: 200, leaseMs: 1000 })).length).toBe(100);
      expect(rows(path, 'adapter_data')).toBe(40);
      expect(rows(path, 'index_values')).toBe(100);
      expect(rows(path, 'inbound')).toBe(100);
      expect(onDisk(path, (db) => db.prepare('PRAGMA integrity_check').pluck().get())).toBe('ok');
    } finally {
      await store.close();
    }
  });

  it('a sweep that fails is undone alone, logged, and tried again by the next pass; the writes beside it land', async () => {
    const path = place();
    const warn = vi.fn();
    const { store, clock } = await openAt(path, { logger: { warn } });
    const raw = new Database(path);
    try {
      await Promise.all([store.kv('f').set('old', 1, 1000), indexValues(store, 'c_f', 'old:', 10, 1000)]);
      clock.now = T0 + 5000;
      // Deleting from adapter_data fails the way a full disk would fail the statement.
      raw.exec("CREATE TRIGGER no_sweep BEFORE DELETE ON adapter_data BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
      const [sweep, commit] = await Promise.allSettled([store.sweepExpired(), create(store, 'c_beside', { inbound: { key: 'in-beside', ttlMs: HOUR } })]);
      expect(sweep.status).toBe('rejected');
      expect((sweep as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
      expect(commit).toEqual({ status: 'fulfilled', value: 1 });
      expect(await store.inboundSeen('in-beside')).toBe('c_beside');
      // The whole step was undone, index_values included.
      expect([rows(path, 'index_values'), rows(path, 'adapter_data')]).toEqual([10, 1]);
    } finally {
      await store.close();
    }

    // The same through the timer: the failure is logged, the process goes on, the next pass retries.
    const { store: timed, clock: clock2 } = await openAt(path, { sweepIntervalMs: 10, logger: { warn } });
    try {
      clock2.now = T0 + 5000;
      await waitFor(() => warn.mock.calls.length >= 2, 'two failed passes logged');
      expect(warn.mock.calls[0]![1]).toMatch(/sweeping expired rows failed/);
      expect(warn.mock.calls[0]![0].err).toBeInstanceOf(StoreUnavailableError);
      expect(rows(path, 'adapter_data')).toBe(1);
      expect(await timed.kv('f').get('old')).toBeUndefined(); // expired all the same
      raw.exec('DROP TRIGGER no_sweep');
      await waitFor(() => rows(path, 'adapter_data') === 0 && rows(path, 'index_values') === 0, 'a pass after the fault');
    } finally {
      await timed.close();
      raw.close();
    }
  });
});
