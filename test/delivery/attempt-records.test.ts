/**
 * One attempt record per batch, end to end: a real SQLite store, real delivery workers. An
 * instance that dies mid-batch leaves every item it may have acted on looked up by the one that
 * takes over; a failure makes the retry look up only the item that failed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { RetryLaterError } from '../../src/delivery/outcome.ts';
import { DeliveryWorker, type Destination, type WorkContext } from '../../src/delivery/worker.ts';
import { silentLogger } from '../../src/log.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { Store, WorkItem } from '../../src/store/store.ts';
import { conversationFixture } from '../support/conversations.ts';
import { waitFor } from '../support/harness.ts';

let dir: string;
let store: Store;
const workers: DeliveryWorker[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'attempt-records-'));
  store = await openSqliteStore(join(dir, 'store.sqlite'));
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop(100)));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A conversation with `n` mirror items for `ws`, each after one for someone else. */
async function conversationWithItems(id: string, n: number): Promise<void> {
  const work = Array.from({ length: n }, (_, i) => [
    { to: ['other'], payload: { kind: 'mirror' as const, messageId: `other_${i}` } },
    { to: ['ws'], payload: { kind: 'mirror' as const, messageId: `m${i + 1}` } },
  ]).flat();
  await store.commit({ conversation: { ...conversationFixture({ id }), messages: [], version: 0 }, expectedVersion: 0, appended: [], work });
}

/** A destination that records what it was asked to do, and the attempt count it was told. */
function recording(behave: (item: WorkItem, context: WorkContext) => Promise<void> = async () => {}) {
  const seen: Array<{ item: string; count: number }> = [];
  const destination: Destination = {
    name: 'ws',
    async handle(item, context) {
      seen.push({ item: (item.payload as { messageId: string }).messageId, count: context.attempt.count });
      await behave(item, context);
    },
  };
  return { seen, destination };
}

/** A started worker; `dies`: never stopped (its process is gone, and a stop would wait on it forever). */
function worker(destination: Destination, on: Store = store, dies = false): DeliveryWorker {
  const w = new DeliveryWorker({ store: on, destination, logger: silentLogger(), leaseMs: 300, pollMs: 50, backoff: { initialMs: 20, maxMs: 100, factor: 2, jitter: 0 } });
  if (!dies) workers.push(w);
  w.start();
  return w;
}

/** The store as a process that dies: once `kill()` is called, no call it makes ever reaches the store. */
function mortal(real: Store): { store: Store; kill(): void } {
  let dead = false;
  const never = new Promise<never>(() => {});
  const work = new Proxy(real.work, {
    get: (target, key) => {
      const value = Reflect.get(target, key) as unknown;
      return typeof value === 'function' ? (...args: unknown[]) => (dead ? never : (value as (...a: unknown[]) => unknown).apply(target, args)) : value;
    },
  });
  return { store: new Proxy(real, { get: (target, key) => (key === 'work' ? work : Reflect.get(target, key)) }), kill: () => (dead = true) };
}

it('an instance that dies mid-batch: whoever takes over looks up every item it may have acted on, and finishes them all', async () => {
  await conversationWithItems('c_dies', 3);
  const first = mortal(store);
  // The first instance acts on m1, starts on m2 and dies there: nothing after it is written.
  const dying = recording(async (item) => {
    if ((item.payload as { messageId: string }).messageId === 'm2') {
      first.kill();
      await new Promise(() => {});
    }
  });
  worker(dying.destination, first.store, true);
  await waitFor(() => dying.seen.length === 2, { what: 'the first instance to reach m2' });
  expect(dying.seen).toEqual([
    { item: 'm1', count: 1 },
    { item: 'm2', count: 1 },
  ]);
  // Its lease expires; another instance takes the conversation over.
  const next = recording();
  worker(next.destination);
  await waitFor(async () => (await store.work.pending('ws', 'c_dies')).items.length === 0, { what: 'the work to be done', timeoutMs: 5000 });
  // m1 and m2 may have happened: they are repeats. m3 was in the dead run's record too.
  expect(next.seen).toEqual([
    { item: 'm1', count: 2 },
    { item: 'm2', count: 2 },
    { item: 'm3', count: 2 },
  ]);
});

it('a failure makes the retry look up only the item that failed, not the ones after it', async () => {
  await conversationWithItems('c_fails', 3);
  let failed = false;
  const flaky = recording(async (item) => {
    if ((item.payload as { messageId: string }).messageId === 'm2' && !failed) {
      failed = true;
      throw new RetryLaterError(30);
    }
  });
  worker(flaky.destination);
  await waitFor(async () => (await store.work.pending('ws', 'c_fails')).items.length === 0, { what: 'the work to be done', timeoutMs: 5000 });
  expect(flaky.seen).toEqual([
    { item: 'm1', count: 1 },
    { item: 'm2', count: 1 },
    { item: 'm2', count: 2 },
    { item: 'm3', count: 1 },
  ]);
});

it("a patient destination (a workspace) asks the store to let its attempt records share other writes' fsync; others do not", async () => {
  /** The store, noting the patience each lease, begin and next asked for. */
  const asked: Array<{ call: string; destination: string; patient: boolean }> = [];
  const noting = (real: Store): Store => {
    const work = new Proxy(real.work, {
      get: (target, key) => {
        const value = Reflect.get(target, key) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const call = String(key);
          const options = call === 'lease' ? args[1] : call === 'begin' ? args[4] : call === 'next' ? args[2] : undefined;
          const destination = call === 'lease' ? (args[0] as string) : (args[0] as { destination: string }).destination;
          if (call === 'lease' || call === 'begin' || call === 'next') asked.push({ call, destination, patient: (options as { patient?: boolean } | undefined)?.patient === true });
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    return new Proxy(real, { get: (target, key) => (key === 'work' ? work : Reflect.get(target, key)) });
  };
  await conversationWithItems('c_patient', 2);
  await store.commit({ conversation: { ...conversationFixture({ id: 'c_urgent' }), messages: [], version: 0 }, expectedVersion: 0, appended: [], work: [{ to: ['urgent'], payload: { kind: 'mirror', messageId: 'u1' } }] });
  const patient = recording();
  worker({ ...patient.destination, patient: true }, noting(store));
  const urgent: string[] = [];
  worker({ name: 'urgent', handle: async (item) => void urgent.push((item.payload as { messageId: string }).messageId) }, noting(store));
  await waitFor(() => patient.seen.length === 2 && urgent.length === 1, { what: 'both destinations to do their items' });
  await waitFor(async () => (await store.work.pending('ws', 'c_patient')).items.length === 0, { what: 'the ws cursor to move' });
  expect(patient.seen).toEqual([
    { item: 'm1', count: 1 },
    { item: 'm2', count: 1 },
  ]);
  const of = (destination: string) => asked.filter((a) => a.destination === destination);
  expect(of('ws').length).toBeGreaterThan(0);
  expect(of('ws').every((a) => a.patient)).toBe(true);
  expect(of('urgent').length).toBeGreaterThan(0);
  expect(of('urgent').some((a) => a.patient)).toBe(false);
});

it("a patient destination starts its batch a turn of the event loop later: work the same commit brought for the customer's side goes first", async () => {
  const order: string[] = [];
  const note = (name: string): Destination['handle'] => async () => void order.push(name);
  // The patient worker is started first, so without the turn it would be first to its work.
  worker({ name: 'ws', patient: true, handle: note('ws') });
  worker({ name: 'urgent', handle: note('urgent') });
  await new Promise((r) => setTimeout(r, 100)); // both loops idle, waiting for the change feed
  await store.commit({
    conversation: { ...conversationFixture({ id: 'c_both' }), messages: [], version: 0 },
    expectedVersion: 0,
    appended: [],
    work: [
      { to: ['ws'], payload: { kind: 'mirror', messageId: 'm1' } },
      { to: ['urgent'], payload: { kind: 'mirror', messageId: 'm1' } },
    ],
  });
  await waitFor(() => order.length === 2, { what: 'both destinations to do their item' });
  expect(order).toEqual(['urgent', 'ws']);
});
