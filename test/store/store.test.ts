/**
 * One store contract, two backends: the embedded SQLite default and a real redis-server.
 * Every test reads as something the product relies on: a commit is all or nothing, a stale
 * writer loses, work reaches each destination once per lease, and nothing is lost on restart.
 */
import { conversationFixture } from '../support/conversations.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuplicateInboundError, LeaseLostError, StoreUnavailableError, VersionConflictError } from '../../src/errors.ts';
import type { Conversation, Message } from '../../src/model.ts';
import { openRedisStore } from '../../src/store/redis.ts';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { ChangeNotice, Commit, Store, WorkPayload } from '../../src/store/store.ts';
import { startRedis } from '../support/redis-process.ts';

const REDIS_URL = process.env.REDIS_URL;
const dir = mkdtempSync(join(tmpdir(), 'store-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const unique = (prefix: string) => `${prefix}${process.pid}_${Date.now()}_${n++}`;

interface Backend {
  name: string;
  /** A fresh, empty place to keep a store (a file, a namespace). */
  place(): string;
  open(place: string): Promise<Store>;
  /** Two stores opened on the same place see each other's changes. */
  sharedAcrossInstances: boolean;
}

const backends: Backend[] = [
  { name: 'sqlite', place: () => join(dir, `${unique('s')}.sqlite`), open: (path) => openSqliteStore(path), sharedAcrossInstances: false },
  { name: 'redis', place: () => unique('t'), open: (namespace) => openRedisStore(REDIS_URL!, { namespace }), sharedAcrossInstances: true },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 5000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(10);
  }
}

function conversation(id: string, overrides: Partial<Conversation> = {}): Conversation {
  return conversationFixture({ id, ticket: `HB-${id}`, customer: { id: 'visitor-1', name: 'Ada' }, ...overrides });
}

function message(id: string, text: string, role: Message['author']['role'] = 'customer'): Message {
  return { id, at: '2025-01-01T00:00:01.000Z', author: { role }, text, visibility: 'public' };
}

const mirror = (messageId: string): WorkPayload => ({ kind: 'mirror', messageId });
const deliver = (messageId: string): WorkPayload => ({ kind: 'deliver', messageId });

/** Applies a change the way the engine does: read, change, commit from the version read. */
async function change(store: Store, id: string, edit: Omit<Commit, 'conversation' | 'expectedVersion' | 'appended'> & { say?: Message[]; patch?: Partial<Conversation> } = {}): Promise<number> {
  const current = (await store.getConversation(id))!;
  const { say = [], patch = {}, ...rest } = edit;
  return store.commit({ ...rest, conversation: { ...current, ...patch, messages: [...current.messages, ...say] }, expectedVersion: current.version, appended: say });
}

/** Creates a conversation whose first message is work for the named destinations. */
async function open(store: Store, id: string, to: string[] = [], text = 'Hello'): Promise<Conversation> {
  const first = message(`${id}_m1`, text);
  const c = conversation(id, { messages: [first] });
  await store.commit({ conversation: c, expectedVersion: 0, appended: [first], work: to.length ? [{ to, payload: mirror(first.id) }] : [] });
  return (await store.getConversation(id))!;
}

it('a real redis-server is available to the suite', () => {
  expect(REDIS_URL, 'redis-server must be installed (apt-get install redis-server) or REDIS_URL set').toBeTruthy();
});

describe.each(backends)('store on $name', (backend) => {
  let store: Store;
  beforeAll(async () => {
    store = await backend.open(backend.place());
    return () => store.close();
  });

  describe('conversations', () => {
    it('keeps a new conversation and reads it back, with version 1', async () => {
      const first = message('m1', 'Where is my order?');
      const c = conversation('c_create', { subject: 'Order', messages: [first], channelData: { webchat: { session: 's1' } } });
      expect(await store.commit({ conversation: c, expectedVersion: 0, appended: [first] })).toBe(1);
      expect(await store.getConversation('c_create')).toEqual({ ...c, version: 1 });
      expect(await store.getConversation('c_missing')).toBeUndefined();
    });

    it('a commit from a stale version is refused and writes nothing at all', async () => {
      await open(store, 'c_stale', ['slack']);
      const [lease] = await store.work.lease('slack', { limit: 10, leaseMs: 60_000 });
      await store.work.advance(lease!, 1);
      await store.work.release(lease!);
      const stale = (await store.getConversation('c_stale'))!; // version 1
      await change(store, 'c_stale', { patch: { state: 'waiting' } }); // version 2: someone else won

      const late = message('late', 'written from an old read');
      const attempt = store.commit({
        conversation: { ...stale, state: 'human', messages: [...stale.messages, late] },
        expectedVersion: stale.version,
        appended: [late],
        work: [{ to: ['slack'], payload: mirror(late.id) }],
        indexes: [
          { op: 'set', key: 'ticket:stale', value: 'c_stale' },
          { op: 'add', key: 'held:stale', member: 'c_stale' },
        ],
        inbound: { key: 'evt-stale', ttlMs: 60_000 },
      });
      await expect(attempt).rejects.toSatisfy((e) => e instanceof VersionConflictError && e.expected === 1 && e.actual === 2);

      const stored = (await store.getConversation('c_stale'))!;
      expect(stored.version).toBe(2);
      expect(stored.state).toBe('waiting');
      expect(stored.messages.map((m) => m.id)).toEqual(['c_stale_m1']);
      expect((await store.work.pending('slack', 'c_stale')).items).toEqual([]);
      expect(await store.work.lease('slack', { limit: 10, leaseMs: 60_000 })).toEqual([]);
      expect(await store.indexValue('ticket:stale')).toBeUndefined();
      expect(await store.indexMembers('held:stale')).toEqual([]);
      expect(await store.inboundSeen('evt-stale')).toBeUndefined();
    });

    it('creating a conversation that already exists, or updating one that does not, is a conflict', async () => {
      await open(store, 'c_exists');
      await expect(store.commit({ conversation: conversation('c_exists'), expectedVersion: 0, appended: [] })).rejects.toSatisfy(
        (e) => e instanceof VersionConflictError && e.actual === 1,
      );
      await expect(store.commit({ conversation: conversation('c_never'), expectedVersion: 3, appended: [] })).rejects.toSatisfy(
        (e) => e instanceof VersionConflictError && e.actual === undefined,
      );
      expect(await store.getConversation('c_never')).toBeUndefined();
    });

    it('of 50 writers committing from the same version, exactly one wins', async () => {
      const read = await open(store, 'c_race');
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) => {
          const said = message(`race_${i}`, `writer ${i}`);
          return store.commit({
            conversation: { ...read, agentTurns: i, messages: [...read.messages, said] },
            expectedVersion: read.version,
            appended: [said],
            work: [{ to: ['race'], payload: deliver(said.id) }],
          });
        }),
      );
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(winners).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(VersionConflictError);
      const stored = (await store.getConversation('c_race'))!;
      expect(stored.version).toBe(2);
      expect(stored.agentTurns).toBe(winners[0]);
      expect(stored.messages.map((m) => m.text)).toEqual(['Hello', `writer ${winners[0]}`]);
      expect((await store.work.pending('race', 'c_race')).items.map((w) => w.payload)).toEqual([deliver(`race_${winners[0]}`)]);
    });

    it('a repeated inbound event is refused, naming the conversation it first landed in', async () => {
      const first = message('in1', 'hi');
      await store.commit({ conversation: conversation('c_in_a', { messages: [first] }), expectedVersion: 0, appended: [first], inbound: { key: 'slack:Ev1', ttlMs: 60_000 } });
      expect(await store.inboundSeen('slack:Ev1')).toBe('c_in_a');
      await expect(
        store.commit({ conversation: conversation('c_in_b', { messages: [first] }), expectedVersion: 0, appended: [first], inbound: { key: 'slack:Ev1', ttlMs: 60_000 } }),
      ).rejects.toSatisfy((e) => e instanceof DuplicateInboundError && e.conversationId === 'c_in_a' && e.key === 'slack:Ev1');
      expect(await store.getConversation('c_in_b')).toBeUndefined();
      await expect(change(store, 'c_in_a', { say: [message('in2', 'again')], inbound: { key: 'slack:Ev1', ttlMs: 60_000 } })).rejects.toBeInstanceOf(DuplicateInboundError);
      expect((await store.getConversation('c_in_a'))!.messages.map((m) => m.id)).toEqual(['in1']);
    });

    it('an inbound mark keeps the message its commit stored, for the answer to a resend', async () => {
      const first = message('c_inm_m1', 'Hello');
      await store.commit({ conversation: conversation('c_inm', { messages: [first] }), expectedVersion: 0, appended: [first], inbound: { key: 'web:s1:c1', ttlMs: 60_000, message: first.id } });
      expect(await store.inboundSeen('web:s1:c1')).toBe('c_inm');
      expect(await store.inboundMessage('web:s1:c1')).toBe(first.id);
      await expect(store.commit({ conversation: conversation('c_inm2', { messages: [first] }), expectedVersion: 0, appended: [first], inbound: { key: 'web:s1:c1', ttlMs: 60_000, message: 'other' } })).rejects.toSatisfy(
        (e) => e instanceof DuplicateInboundError && e.conversationId === 'c_inm',
      );
      // A mark without one, and no mark at all.
      await store.commit({ conversation: conversation('c_inm3'), expectedVersion: 0, appended: [], inbound: { key: 'web:s1:c2', ttlMs: 60_000 } });
      expect(await store.inboundSeen('web:s1:c2')).toBe('c_inm3');
      expect(await store.inboundMessage('web:s1:c2')).toBeUndefined();
      expect(await store.inboundMessage('web:s1:none')).toBeUndefined();
    });

    it('an inbound key is forgotten after its time to live', async () => {
      await open(store, 'c_in_ttl');
      await change(store, 'c_in_ttl', { inbound: { key: 'frame-1', ttlMs: 40 } });
      await sleep(120);
      expect(await store.inboundSeen('frame-1')).toBeUndefined();
      expect(await change(store, 'c_in_ttl', { inbound: { key: 'frame-1', ttlMs: 40 } })).toBe(3);
    });

    it('appended messages are kept in order, and earlier messages are never rewritten', async () => {
      await open(store, 'c_msgs', [], 'first');
      const read = (await store.getConversation('c_msgs'))!;
      const second = message('m2', 'second', 'agent');
      const third = message('m3', 'third', 'operator');
      const tampered = { ...read.messages[0]!, text: 'rewritten' };
      await store.commit({
        conversation: { ...read, state: 'human', messages: [tampered, second, third] },
        expectedVersion: read.version,
        appended: [second, third],
      });
      await change(store, 'c_msgs', { say: [message('m4', 'fourth')] });
      const stored = (await store.getConversation('c_msgs'))!;
      expect(stored.messages.map((m) => m.text)).toEqual(['first', 'second', 'third', 'fourth']);
      expect(stored.messages[1]).toEqual(second);
      expect(stored.state).toBe('human');
      expect(stored.version).toBe(3);
    });

    it('commits in flight together are independent: the one refused leaves its neighbours written', async () => {
      const [a, b] = await Promise.all([open(store, 'c_batch_a'), open(store, 'c_batch_b')]);
      const said = (id: string) => message(`${id}_m2`, `more for ${id}`);
      const results = await Promise.allSettled([
        store.commit({ conversation: { ...a, messages: [...a.messages, said('a')] }, expectedVersion: a.version, appended: [said('a')], work: [{ to: ['batch'], payload: mirror('a_m2') }] }),
        store.commit({ conversation: { ...b, messages: [...b.messages, said('b')] }, expectedVersion: b.version + 1, appended: [said('b')], work: [{ to: ['batch'], payload: mirror('b_m2') }] }),
        store.commit({ conversation: conversation('c_batch_c'), expectedVersion: 0, appended: [], inbound: { key: 'batch-evt', ttlMs: 60_000 } }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(VersionConflictError);
      expect((await store.getConversation('c_batch_a'))!.messages.map((m) => m.id)).toEqual(['c_batch_a_m1', 'a_m2']);
      expect((await store.getConversation('c_batch_b'))!.messages.map((m) => m.id)).toEqual(['c_batch_b_m1']);
      expect((await store.getConversation('c_batch_c'))?.version).toBe(1);
      expect(await store.inboundSeen('batch-evt')).toBe('c_batch_c');
      expect((await store.work.pending('batch', 'c_batch_a')).items.map((w) => w.payload)).toEqual([mirror('a_m2')]);
      expect((await store.work.pending('batch', 'c_batch_b')).items).toEqual([]);
    });

    it('a re-read since a version held: unchanged, gone, or only the messages after those held', async () => {
      const held = await open(store, 'c_since'); // version 1, one message
      expect(await store.getConversationSince('c_since', held.version, held.messages.length)).toBe('unchanged');
      expect(await store.getConversationSince('c_since_never', 1, 1)).toBeUndefined();
      expect(await store.getConversationSince('c_since_never', 0, 0)).toBeUndefined();

      await change(store, 'c_since', { say: [message('since2', 'two'), message('since3', 'three', 'agent')], patch: { state: 'waiting' } });
      const full = (await store.getConversation('c_since'))!;
      expect(await store.getConversationSince('c_since', held.version, held.messages.length)).toEqual({ ...full, messages: full.messages.slice(1) });
      // The caller may hold fewer messages than its version had: it gets everything after them.
      expect(await store.getConversationSince('c_since', held.version, 0)).toEqual(full);

      // A change without messages: the new state, and no messages.
      await change(store, 'c_since', { patch: { agentTurns: 3 } });
      const latest = (await store.getConversation('c_since'))!;
      expect(await store.getConversationSince('c_since', full.version, full.messages.length)).toEqual({ ...latest, messages: [] });
      expect(await store.getConversationSince('c_since', latest.version, latest.messages.length)).toBe('unchanged');
    });

    it('indexes written with a commit can be read: values, expiring values and sets', async () => {
      await open(store, 'c_idx');
      await change(store, 'c_idx', {
        indexes: [
          { op: 'set', key: 'ticket:HB-1', value: 'c_idx' },
          { op: 'set', key: 'email:short', value: 'c_idx', ttlMs: 400 },
          { op: 'add', key: 'held:dana', member: 'c_idx' },
          { op: 'add', key: 'held:dana', member: 'c_other' },
          { op: 'add', key: 'held:dana', member: 'c_idx' },
        ],
      });
      expect(await store.indexValue('ticket:HB-1')).toBe('c_idx');
      expect(await store.indexValue('email:short')).toBe('c_idx');
      expect((await store.indexMembers('held:dana')).sort()).toEqual(['c_idx', 'c_other']);
      await sleep(500);
      expect(await store.indexValue('email:short')).toBeUndefined();

      await change(store, 'c_idx', {
        indexes: [
          { op: 'delete', key: 'ticket:HB-1' },
          { op: 'remove', key: 'held:dana', member: 'c_idx' },
          { op: 'remove', key: 'held:sam', member: 'c_idx' },
        ],
      });
      expect(await store.indexValue('ticket:HB-1')).toBeUndefined();
      expect(await store.indexMembers('held:dana')).toEqual(['c_other']);
      expect(await store.indexMembers('held:nobody')).toEqual([]);
    });
  });

  describe('work', () => {
    it('a lease takes at most its limit of conversations, the longest due first, and the rest stay due', async () => {
      for (const id of ['lim_a', 'lim_b', 'lim_c']) {
        await open(store, id, ['lim-slack']);
        await sleep(2); // due one after the other
      }
      const first = await store.work.lease('lim-slack', { limit: 2, leaseMs: 60_000 });
      expect(first.map((l) => l.conversationId)).toEqual(['lim_a', 'lim_b']);
      expect(first.map((l) => l.pending?.items.map((i) => i.seq))).toEqual([[1], [1]]);
      // The store goes on answering reads and writes, and the third is still there to lease.
      await open(store, 'lim_d');
      const rest = await store.work.lease('lim-slack', { limit: 5, leaseMs: 60_000 });
      expect(rest.map((l) => l.conversationId)).toEqual(['lim_c']);
      expect(await store.work.lease('lim-slack', { limit: 5, leaseMs: 60_000 })).toEqual([]);
    });

    it('a commit may lease its own new work: only what is due now, with its first batch, and the notice says so', async () => {
      const seen: ChangeNotice[] = [];
      const stop = store.onChange((n) => seen.push(n));
      try {
        const first = message('cl_m1', 'Hello');
        const made = await store.commitClaiming({
          conversation: conversation('cl', { messages: [first] }),
          expectedVersion: 0,
          appended: [first],
          work: [{ to: ['cl-agent', 'cl-slack'], payload: mirror(first.id) }],
          claim: { destinations: ['cl-agent', 'cl-idle'], leaseMs: 5_000 },
        });
        expect(made.version).toBe(1);
        expect(made.claimed).toHaveLength(1); // cl-idle has no work
        const [lease] = made.claimed;
        expect(lease).toMatchObject({ destination: 'cl-agent', conversationId: 'cl', pending: { cursor: { done: 0 }, items: [{ seq: 1, version: 1, payload: mirror(first.id) }] } });
        // Leased: not handed out again; the other destination is due as usual.
        expect(await store.work.lease('cl-agent', { limit: 10, leaseMs: 1000 })).toEqual([]);
        expect((await store.work.lease('cl-slack', { limit: 10, leaseMs: 1000 })).map((l) => l.conversationId)).toEqual(['cl']);
        await waitFor(() => seen.find((n) => n.conversationId === 'cl'), 'the notice');
        expect(seen.find((n) => n.conversationId === 'cl')).toMatchObject({ destinations: expect.arrayContaining(['cl-agent', 'cl-slack']), leased: ['cl-agent'] });

        // A live lease is never taken by a commit; nor is work waiting out a backoff.
        const held = await store.commitClaiming({ conversation: { ...conversation('cl'), messages: [first] }, expectedVersion: 1, appended: [], work: [{ to: ['cl-agent'], payload: { kind: 'turn' } }], claim: { destinations: ['cl-agent'], leaseMs: 5_000 } });
        expect(held.claimed).toEqual([]);
        expect(await store.work.finish(lease!, 1, Date.now() + 60_000)).toBe(true); // work left: due again in a minute
        const backing = await store.commitClaiming({ conversation: { ...conversation('cl'), messages: [first] }, expectedVersion: 2, appended: [], work: [{ to: ['cl-agent'], payload: { kind: 'turn' } }], claim: { destinations: ['cl-agent'], leaseMs: 5_000 } });
        expect(backing.claimed).toEqual([]);
      } finally {
        stop();
      }
    });

    it('begin can mark the item before done in the same write', async () => {
      await open(store, 'bd', ['bd-slack']);
      const current = (await store.getConversation('bd'))!;
      await store.commit({ conversation: current, expectedVersion: current.version, appended: [], work: [{ to: ['bd-slack'], payload: mirror('m2') }, { to: ['bd-slack'], payload: mirror('m3') }] });
      const [lease] = await store.work.lease('bd-slack', { limit: 1, leaseMs: 5_000 });
      expect((await store.work.begin(lease!, 1)).attempt).toMatchObject({ seq: 1, count: 1 });
      // Item 1 went out: item 2's attempt record and item 1's "done" are one write.
      const cursor = await store.work.begin(lease!, 2, 1);
      expect(cursor).toMatchObject({ done: 1, attempt: { seq: 2, count: 1 } });
      expect((await store.work.pending('bd-slack', 'bd')).cursor).toMatchObject({ done: 1, attempt: { seq: 2, count: 1 } });
      // A second attempt on the same item counts on; a lost lease changes nothing.
      expect((await store.work.begin(lease!, 2, 1)).attempt).toMatchObject({ seq: 2, count: 2 });
      await expect(store.work.begin({ ...lease!, token: 'not-ours' }, 3, 2)).rejects.toBeInstanceOf(LeaseLostError);
      expect((await store.work.pending('bd-slack', 'bd')).cursor.done).toBe(1);
    });

    it('a lease (or a commit that leases) can record the attempt on its first item in the same write', async () => {
      await open(store, 'bg', ['bg-slack']);
      const [lease] = await store.work.lease('bg-slack', { limit: 1, leaseMs: 5_000, begin: true });
      expect(lease!.pending).toMatchObject({ begun: true, cursor: { done: 0, attempt: { seq: 1, count: 1 } } });
      expect((await store.work.pending('bg-slack', 'bg')).cursor.attempt).toMatchObject({ seq: 1, count: 1 });
      // It failed: the next lease's record counts a second attempt, since the first.
      expect(await store.work.finish(lease!, undefined, Date.now())).toBe(true);
      const [again] = await store.work.lease('bg-slack', { limit: 1, leaseMs: 5_000, begin: true });
      expect(again!.pending!.cursor.attempt).toMatchObject({ seq: 1, count: 2, since: lease!.pending!.cursor.attempt!.since });
      expect(await store.work.finish(again!, 1)).toBe(true);

      const current = (await store.getConversation('bg'))!;
      const m = message('bg_m2', 'more');
      const made = await store.commitClaiming({
        conversation: { ...current, messages: [...current.messages, m] },
        expectedVersion: current.version,
        appended: [m],
        work: [{ to: ['bg-slack', 'bg-customer'], payload: mirror(m.id) }],
        claim: { destinations: ['bg-slack', 'bg-customer'], leaseMs: 5_000, begin: ['bg-slack'] },
      });
      const bySlack = made.claimed.find((l) => l.destination === 'bg-slack')!;
      const byCustomer = made.claimed.find((l) => l.destination === 'bg-customer')!;
      expect(bySlack.pending).toMatchObject({ begun: true, cursor: { done: 1, attempt: { seq: 2, count: 1 } } });
      expect(byCustomer.pending!.begun).toBeUndefined();
      expect(byCustomer.pending!.cursor.attempt).toBeUndefined();
    });

    it("a lease's record covers its whole batch; moving past part of it keeps it, past all of it clears it; a failure narrows it", async () => {
      await open(store, 'rg', ['rg-slack']);
      await change(store, 'rg', { say: [message('rg2', 'two')], work: [{ to: ['rg-other'], payload: mirror('rg2') }, { to: ['rg-slack'], payload: mirror('rg2') }] });
      await change(store, 'rg', { say: [message('rg3', 'three')], work: [{ to: ['rg-slack'], payload: mirror('rg3') }] });
      const [lease] = await store.work.lease('rg-slack', { limit: 1, leaseMs: 5_000, begin: true });
      expect(lease!.pending!.items.map((i) => i.seq)).toEqual([1, 3, 4]);
      const since = lease!.pending!.cursor.attempt!.since;
      expect(lease!.pending!.cursor.attempt).toEqual({ seq: 1, count: 1, since, upTo: 4 });
      // Item 1 done, item 3 failed: the record keeps item 3 alone, with its count.
      expect(await store.work.finish(lease!, 1, Date.now(), { seq: 3, count: 1, since })).toBe(true);
      expect((await store.work.pending('rg-slack', 'rg')).cursor).toEqual({ done: 1, attempt: { seq: 3, count: 1, since } });
      // The retry counts on for item 3 only; item 4 is recorded afresh when it comes.
      const [again] = await store.work.lease('rg-slack', { limit: 1, leaseMs: 5_000, begin: true });
      expect(again!.pending!.cursor.attempt).toEqual({ seq: 3, count: 2, since });
      await change(store, 'rg', { say: [message('rg5', 'five')], work: [{ to: ['rg-slack'], payload: mirror('rg5') }] });
      const fresh = await store.work.begin(again!, 4, 3, 5);
      expect(fresh).toMatchObject({ done: 3, attempt: { seq: 4, count: 1, upTo: 5 } });
      // Past 4 the record stays for 5; past 5 it is gone.
      await store.work.advance(again!, 4);
      expect((await store.work.pending('rg-slack', 'rg')).cursor.attempt).toMatchObject({ seq: 4, upTo: 5 });
      expect(await store.work.finish(again!, 5)).toBe(true);
      expect((await store.work.pending('rg-slack', 'rg')).cursor).toEqual({ done: 5 });
    });

    it('a commit that leases work older than its own hands over the older items first', async () => {
      await open(store, 'ol', ['ol-slack']);
      const current = (await store.getConversation('ol'))!;
      const m = message('ol_m2', 'more');
      const made = await store.commitClaiming({
        conversation: { ...current, messages: [...current.messages, m] },
        expectedVersion: current.version,
        appended: [m],
        work: [
          { to: ['ol-customer'], payload: mirror('for someone else') },
          { to: ['ol-slack'], payload: mirror(m.id) },
        ],
        claim: { destinations: ['ol-slack'], leaseMs: 5_000 },
      });
      expect(made.claimed).toHaveLength(1);
      expect(made.claimed[0]!.pending!.cursor).toEqual({ done: 0 });
      expect(made.claimed[0]!.pending!.items.map((i) => i.seq)).toEqual([1, 3]);
      // Once the older item is done, a commit's lease carries only its own items.
      expect(await store.work.finish(made.claimed[0]!, 3)).toBe(true);
      const again = (await store.getConversation('ol'))!;
      const next = await store.commitClaiming({
        conversation: again,
        expectedVersion: again.version,
        appended: [],
        work: [{ to: ['ol-slack', 'ol-customer'], payload: mirror('m3') }],
        claim: { destinations: ['ol-slack'], leaseMs: 5_000 },
      });
      expect(next.claimed[0]!.pending).toEqual({ cursor: { done: 3 }, items: [expect.objectContaining({ seq: 4, to: ['ol-slack', 'ol-customer'], version: again.version + 1 })] });
    });

    it('a commit that leases for a destination with nothing pending hands over its new items only, past the ones for others', async () => {
      await open(store, 'sk', ['sk-slack']);
      const [lease] = await store.work.lease('sk-slack', { limit: 1, leaseMs: 5_000 });
      expect(await store.work.finish(lease!, 1)).toBe(true);
      const current = (await store.getConversation('sk'))!;
      await store.commit({ conversation: current, expectedVersion: current.version, appended: [], work: [{ to: ['sk-agent'], payload: mirror('others') }, { to: ['sk-agent'], payload: mirror('more') }] });
      const again = (await store.getConversation('sk'))!;
      const made = await store.commitClaiming({
        conversation: again,
        expectedVersion: again.version,
        appended: [],
        work: [{ to: ['sk-agent'], payload: mirror('theirs') }, { to: ['sk-slack'], payload: mirror('mine') }, { to: ['sk-slack', 'sk-agent'], payload: mirror('both') }],
        claim: { destinations: ['sk-slack'], leaseMs: 5_000 },
      });
      expect(made.claimed[0]!.pending!.items.map((i) => i.seq)).toEqual([5, 6]);
      // What the lease brought is what its worker would read: nothing skipped for it, nothing of others'.
      expect(made.claimed[0]!.pending).toEqual(await store.work.pending('sk-slack', 'sk', 50));
      expect((await store.work.pending('sk-agent', 'sk', 50)).items.map((i) => i.seq)).toEqual([2, 3, 4, 6]);
    });

    // Each test uses its own destination names, so the due sets do not mix.
    it('a commit makes the destinations it names due now, and no others', async () => {
      const before = Date.now();
      await open(store, 'w_due', ['slack-due', 'customer-due']);
      const after = Date.now();
      for (const destination of ['slack-due', 'customer-due']) {
        const due = await store.work.nextDue(destination);
        expect(due).toBeGreaterThanOrEqual(before - 50);
        expect(due).toBeLessThanOrEqual(after + 50);
      }
      expect(await store.work.nextDue('teams-due')).toBeUndefined();
      expect(await store.work.lease('teams-due', { limit: 10, leaseMs: 60_000 })).toEqual([]);
      const leases = await store.work.lease('slack-due', { limit: 10, leaseMs: 60_000 });
      expect(leases.map((l) => [l.destination, l.conversationId])).toEqual([['slack-due', 'w_due']]);
      const { items } = await store.work.pending('slack-due', 'w_due');
      expect(items).toHaveLength(1);
      expect(items[0]!.at).toBeGreaterThanOrEqual(before - 50);
      expect(items[0]!.at).toBeLessThanOrEqual(after + 50);
    });

    it('two workers leasing at once: the conversation goes to one of them, and nobody else until it expires', async () => {
      await open(store, 'w_race', ['race-lease']);
      const [a, b] = await Promise.all([
        store.work.lease('race-lease', { limit: 10, leaseMs: 60_000 }),
        store.work.lease('race-lease', { limit: 10, leaseMs: 60_000 }),
      ]);
      expect([...a!, ...b!].map((l) => l.conversationId)).toEqual(['w_race']);
      expect(await store.work.lease('race-lease', { limit: 10, leaseMs: 60_000 })).toEqual([]);
      // A leased conversation counts as due when its lease runs out.
      expect(await store.work.nextDue('race-lease')).toBeGreaterThan(Date.now() + 50_000);
    });

    it('a lease that expires goes to another worker, and the first worker is told it lost it', async () => {
      await open(store, 'w_expire', ['expire']);
      const [first] = await store.work.lease('expire', { limit: 1, leaseMs: 150 });
      expect(await store.work.lease('expire', { limit: 1, leaseMs: 150 })).toEqual([]);
      await sleep(250);
      const [second] = await store.work.lease('expire', { limit: 1, leaseMs: 60_000 });
      expect(second?.conversationId).toBe('w_expire');
      expect(second!.token).not.toBe(first!.token);

      await expect(store.work.advance(first!, 1)).rejects.toSatisfy((e) => e instanceof LeaseLostError && e.destination === 'expire' && e.conversationId === 'w_expire');
      await expect(store.work.begin(first!, 1)).rejects.toBeInstanceOf(LeaseLostError);
      expect(await store.work.renew(first!, 60_000)).toBe(false);
      await store.work.release(first!, Date.now() + 1); // a lost lease's release changes nothing
      expect((await store.work.pending('expire', 'w_expire')).cursor.done).toBe(0);
      expect(await store.work.lease('expire', { limit: 1, leaseMs: 60_000 })).toEqual([]);

      expect(await store.work.renew(second!, 60_000)).toBe(true);
      await store.work.advance(second!, 1);
      expect((await store.work.pending('expire', 'w_expire')).cursor.done).toBe(1);
    });

    it('renewing a lease keeps other workers out past its first expiry', async () => {
      await open(store, 'w_renew', ['renew']);
      const [lease] = await store.work.lease('renew', { limit: 1, leaseMs: 150 });
      await sleep(80);
      expect(await store.work.renew(lease!, 60_000)).toBe(true);
      await sleep(150);
      expect(await store.work.lease('renew', { limit: 1, leaseMs: 60_000 })).toEqual([]);
      await store.work.advance(lease!, 1);
    });

    it('pending lists only the items addressed to the destination, oldest first', async () => {
      const m1 = message('p1', 'one');
      const m2 = message('p2', 'two', 'agent');
      await store.commit({
        conversation: conversation('w_pending', { messages: [m1, m2] }),
        expectedVersion: 0,
        appended: [m1, m2],
        work: [
          { to: ['slack-p', 'teams-p'], payload: mirror('p1') },
          { to: ['customer-p'], payload: deliver('p2') },
          { to: ['slack-p'], payload: mirror('p2') },
        ],
      });
      await change(store, 'w_pending', { work: [{ to: ['teams-p'], payload: { kind: 'ownership', change: { from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at: 'now' } } }, { to: ['slack-p'], payload: { kind: 'turn' } }] });

      const slack = await store.work.pending('slack-p', 'w_pending');
      expect(slack.cursor).toEqual({ done: 0 });
      expect(slack.items.map((w) => [w.seq, w.payload])).toEqual([[1, mirror('p1')], [3, mirror('p2')], [5, { kind: 'turn' }]]);
      expect(slack.items[0]!.to).toEqual(['slack-p', 'teams-p']);
      expect((await store.work.pending('teams-p', 'w_pending')).items.map((w) => w.seq)).toEqual([1, 4]);
      expect((await store.work.pending('customer-p', 'w_pending')).items.map((w) => w.seq)).toEqual([2]);
      expect((await store.work.pending('slack-p', 'w_pending', 2)).items.map((w) => w.seq)).toEqual([1, 3]);
      expect((await store.work.pending('nobody', 'w_pending')).items).toEqual([]);

      const [lease] = await store.work.lease('slack-p', { limit: 1, leaseMs: 60_000 });
      await store.work.advance(lease!, 3);
      const after = await store.work.pending('slack-p', 'w_pending');
      expect(after.cursor.done).toBe(3);
      expect(after.items.map((w) => w.seq)).toEqual([5]);
    });

    it('a lease comes with its cursor and the first items after it, as pending reads them', async () => {
      const m1 = message('lp1', 'one');
      await store.commit({
        conversation: conversation('w_lease_p', { messages: [m1] }),
        expectedVersion: 0,
        appended: [m1],
        work: [
          { to: ['lp-slack'], payload: mirror('lp1') },
          { to: ['lp-customer'], payload: deliver('lp1') },
          { to: ['lp-slack', 'lp-customer'], payload: { kind: 'turn' } },
          { to: ['lp-slack'], payload: mirror('lp4') },
        ],
      });
      const [first] = await store.work.lease('lp-slack', { limit: 1, leaseMs: 60_000, items: 2 });
      expect(first!.conversationId).toBe('w_lease_p');
      expect(first!.pending).toEqual({ cursor: { done: 0 }, items: (await store.work.pending('lp-slack', 'w_lease_p', 2)).items });
      expect(first!.pending!.items.map((w) => [w.seq, w.payload])).toEqual([[1, mirror('lp1')], [3, { kind: 'turn' }]]);

      // Progress shows in the next lease: the cursor moved, the attempt under way, the items after it.
      await store.work.advance(first!, 1);
      const attempt = await store.work.begin(first!, 3);
      await store.work.release(first!);
      const [second] = await store.work.lease('lp-slack', { limit: 1, leaseMs: 60_000 });
      expect(second!.pending).toEqual(await store.work.pending('lp-slack', 'w_lease_p', 50));
      expect(second!.pending!.cursor).toEqual(attempt);
      expect(second!.pending!.items.map((w) => w.seq)).toEqual([3, 4]);
      await store.work.finish(second!, 4);

      // Each conversation leased in one call comes with its own.
      const [c1] = await store.work.lease('lp-customer', { limit: 5, leaseMs: 60_000 });
      expect(c1!.pending!.items.map((w) => w.seq)).toEqual([2, 3]);
    });

    it('a lease brings at most 50 items unless told otherwise, and several leases each their own', async () => {
      const many = Array.from({ length: 60 }, (_, i) => ({ to: ['lp-many'], payload: mirror(`many${i}`) }));
      await store.commit({ conversation: conversation('w_many'), expectedVersion: 0, appended: [], work: many });
      await store.commit({ conversation: conversation('w_few'), expectedVersion: 0, appended: [], work: many.slice(0, 3) });
      const leases = await store.work.lease('lp-many', { limit: 10, leaseMs: 60_000 });
      const by = new Map(leases.map((l) => [l.conversationId, l]));
      expect([...by.keys()].sort()).toEqual(['w_few', 'w_many']);
      expect(by.get('w_many')!.pending!.items.map((w) => w.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(by.get('w_few')!.pending!.items.map((w) => w.seq)).toEqual([1, 2, 3]);
      for (const lease of leases) await store.work.release(lease);
      const [big] = (await store.work.lease('lp-many', { limit: 10, leaseMs: 60_000, items: 100 })).filter((l) => l.conversationId === 'w_many');
      expect(big!.pending!.items).toHaveLength(60);
    });

    it('pending skips the items addressed to others however many lie between', async () => {
      const mixed = Array.from({ length: 300 }, (_, i) => ({ to: [i % 3 === 2 ? 'mix-b' : 'mix-a'], payload: mirror(`mix${i}`) }));
      await store.commit({ conversation: conversation('w_mixed'), expectedVersion: 0, appended: [], work: mixed });
      const b = Array.from({ length: 100 }, (_, i) => 3 * (i + 1));
      expect((await store.work.pending('mix-b', 'w_mixed', 500)).items.map((w) => w.seq)).toEqual(b);
      expect((await store.work.pending('mix-b', 'w_mixed', 70)).items.map((w) => w.seq)).toEqual(b.slice(0, 70));
      const [lease] = await store.work.lease('mix-b', { limit: 1, leaseMs: 60_000, items: 1000 });
      expect(lease!.pending!.items.map((w) => w.seq)).toEqual(b);
      await store.work.advance(lease!, 150);
      expect((await store.work.pending('mix-b', 'w_mixed', 10)).items.map((w) => w.seq)).toEqual(b.slice(50, 60));
    });

    it('each work item carries the conversation version its commit made', async () => {
      await open(store, 'w_version', ['ver']); // version 1: item 1
      await change(store, 'w_version', { patch: { state: 'waiting' } }); // version 2: no work
      await change(store, 'w_version', { work: [{ to: ['ver'], payload: mirror('a') }, { to: ['ver-other'], payload: mirror('b') }] }); // version 3: items 2, 3
      const [lease] = await store.work.lease('ver', { limit: 1, leaseMs: 60_000 });
      expect(lease!.pending!.items.map((w) => [w.seq, w.version])).toEqual([[1, 1], [2, 3]]);
      expect((await store.work.pending('ver-other', 'w_version')).items.map((w) => [w.seq, w.version])).toEqual([[3, 3]]);

      // An answer committed with the worker's cursor: its work carries the version it made.
      await change(store, 'w_version', { say: [message('ver-answer', 'done', 'agent')], work: [{ to: ['ver-customer'], payload: deliver('ver-answer') }], cursor: { lease: lease!, seq: 2 } });
      expect((await store.work.pending('ver-customer', 'w_version')).items).toEqual([{ seq: 4, to: ['ver-customer'], payload: deliver('ver-answer'), at: expect.any(Number), version: 4 }]);
    });

    it('begin counts attempts on one item and remembers when the first began; advance clears it', async () => {
      await open(store, 'w_begin', ['begin']);
      await change(store, 'w_begin', { work: [{ to: ['begin'], payload: mirror('x') }] });
      const [lease] = await store.work.lease('begin', { limit: 1, leaseMs: 60_000 });
      const before = Date.now();
      const first = await store.work.begin(lease!, 1);
      expect(first.done).toBe(0);
      expect(first.attempt).toMatchObject({ seq: 1, count: 1 });
      expect(first.attempt!.since).toBeGreaterThanOrEqual(before - 50);
      await sleep(20);
      const second = await store.work.begin(lease!, 1);
      expect(second).toEqual({ done: 0, attempt: { seq: 1, count: 2, since: first.attempt!.since } });
      expect((await store.work.pending('begin', 'w_begin')).cursor).toEqual(second);

      await store.work.advance(lease!, 1);
      const next = await store.work.begin(lease!, 2);
      expect(next).toMatchObject({ done: 1, attempt: { seq: 2, count: 1 } });
      await store.work.advance(lease!, 2);
      expect((await store.work.pending('begin', 'w_begin')).cursor).toEqual({ done: 2 });
    });

    it('a worker that finishes everything and releases leaves nothing due', async () => {
      await open(store, 'w_done', ['done']);
      const [lease] = await store.work.lease('done', { limit: 1, leaseMs: 60_000 });
      const { items } = await store.work.pending('done', 'w_done');
      await store.work.advance(lease!, items.at(-1)!.seq);
      await store.work.release(lease!);
      expect(await store.work.nextDue('done')).toBeUndefined();
      expect(await store.work.lease('done', { limit: 1, leaseMs: 60_000 })).toEqual([]);
      // The cursor never goes back.
      expect((await store.work.pending('done', 'w_done')).cursor.done).toBe(1);
    });

    it('a release with work left keeps it due: now, or at the retry time given', async () => {
      await open(store, 'w_retry', ['retry']);
      const [lease] = await store.work.lease('retry', { limit: 1, leaseMs: 60_000 });
      const retryAt = Date.now() + 60_000;
      await store.work.release(lease!, retryAt);
      expect(await store.work.nextDue('retry')).toBe(retryAt);
      expect(await store.work.lease('retry', { limit: 1, leaseMs: 60_000 })).toEqual([]);

      // An operator's "retry now".
      await store.work.wake('retry', ['w_retry']);
      expect(await store.work.nextDue('retry')).toBeLessThanOrEqual(Date.now());
      const [again] = await store.work.lease('retry', { limit: 1, leaseMs: 60_000 });
      expect(again?.conversationId).toBe('w_retry');
      await store.work.release(again!);
      expect(await store.work.nextDue('retry')).toBeLessThanOrEqual(Date.now());
      expect((await store.work.lease('retry', { limit: 1, leaseMs: 60_000 })).map((l) => l.conversationId)).toEqual(['w_retry']);
    });

    it('a commit that lands while a worker holds the lease lets no second worker in, and is due after release', async () => {
      await open(store, 'w_busy', ['busy']);
      const [worker] = await store.work.lease('busy', { limit: 1, leaseMs: 60_000 });
      const seen = (await store.work.pending('busy', 'w_busy')).items.map((w) => w.seq);
      await change(store, 'w_busy', { say: [message('busy2', 'are you there?')], work: [{ to: ['busy'], payload: mirror('busy2') }] });
      expect(await store.work.lease('busy', { limit: 1, leaseMs: 60_000 })).toEqual([]);

      await store.work.advance(worker!, seen.at(-1)!);
      await store.work.release(worker!);
      expect(await store.work.nextDue('busy')).toBeLessThanOrEqual(Date.now());
      const [next] = await store.work.lease('busy', { limit: 1, leaseMs: 60_000 });
      expect(next?.conversationId).toBe('w_busy');
      expect((await store.work.pending('busy', 'w_busy')).items.map((w) => w.payload)).toEqual([mirror('busy2')]);
    });

    it('next marks the batch done and answers the next one with the lease kept, or gives the lease back when nothing is left', async () => {
      await open(store, 'w_next', ['nx']);
      const [lease] = await store.work.lease('nx', { limit: 1, leaseMs: 60_000, begin: true });
      expect(lease!.pending!.items.map((i) => i.seq)).toEqual([1]);
      // Work committed while the lease is held: next hands it over, its first attempt recorded.
      await change(store, 'w_next', { say: [message('nx2', 'more')], work: [{ to: ['other-nx'], payload: mirror('nx2') }, { to: ['nx'], payload: mirror('nx2') }] });
      const batch = await store.work.next(lease!, 1, { items: 50, begin: true });
      expect(batch!.items.map((i) => i.seq)).toEqual([3]);
      expect(batch!.begun).toBe(true);
      expect(batch!.cursor.attempt).toMatchObject({ seq: 3, count: 1 });
      expect(await store.work.lease('nx', { limit: 1, leaseMs: 60_000 })).toEqual([]);
      // Without begin: the batch only.
      await change(store, 'w_next', { say: [message('nx3', 'and more')], work: [{ to: ['nx'], payload: mirror('nx3') }] });
      const plain = await store.work.next(lease!, 3, { items: 50, begin: false });
      expect(plain!.items.map((i) => i.seq)).toEqual([4]);
      expect(plain!.begun).toBeFalsy();
      expect(plain!.cursor.attempt).toBeUndefined();
      // Nothing left: the lease goes back and nothing is due.
      expect(await store.work.next(lease!, 4, { items: 50, begin: true })).toBeUndefined();
      expect(await store.work.nextDue('nx')).toBeUndefined();
      await expect(store.work.next(lease!, 4, { items: 50, begin: true })).rejects.toBeInstanceOf(LeaseLostError);
    });

    it('a commit that moves a worker cursor succeeds only while that worker holds the lease', async () => {
      await open(store, 'w_cursor', ['agent-c']);
      const [lost] = await store.work.lease('agent-c', { limit: 1, leaseMs: 100 });
      await sleep(200);
      const [current] = await store.work.lease('agent-c', { limit: 1, leaseMs: 60_000 });
      expect(current?.conversationId).toBe('w_cursor');

      const answer = message('answer', 'Here is your answer', 'agent');
      const attempt = change(store, 'w_cursor', {
        say: [answer],
        work: [{ to: ['customer-c'], payload: deliver('answer') }],
        indexes: [{ op: 'set', key: 'answered:w_cursor', value: 'yes' }],
        inbound: { key: 'turn-1', ttlMs: 60_000 },
        cursor: { lease: lost!, seq: 1 },
      });
      await expect(attempt).rejects.toSatisfy((e) => e instanceof LeaseLostError && e.conversationId === 'w_cursor');
      const stored = (await store.getConversation('w_cursor'))!;
      expect(stored.version).toBe(1);
      expect(stored.messages.map((m) => m.id)).toEqual(['w_cursor_m1']);
      expect(await store.work.nextDue('customer-c')).toBeUndefined();
      expect(await store.indexValue('answered:w_cursor')).toBeUndefined();
      expect(await store.inboundSeen('turn-1')).toBeUndefined();
      expect((await store.work.pending('agent-c', 'w_cursor')).cursor.done).toBe(0);

      expect(await change(store, 'w_cursor', { say: [answer], work: [{ to: ['customer-c'], payload: deliver('answer') }], cursor: { lease: current!, seq: 1 } })).toBe(2);
      expect((await store.work.pending('agent-c', 'w_cursor')).cursor.done).toBe(1);
      expect((await store.work.pending('customer-c', 'w_cursor')).items.map((w) => w.seq)).toEqual([2]);
      await store.work.release(current!);
      expect(await store.work.nextDue('agent-c')).toBeUndefined();
    });
    it('a commit that moves a worker cursor can give its lease back in the same write, only when nothing is left', async () => {
      await open(store, 'w_rel', ['agent-r']);
      const [lease] = await store.work.lease('agent-r', { limit: 1, leaseMs: 60_000 });
      // Something is left after the cursor: the lease stays, and the worker finishes as usual.
      await change(store, 'w_rel', { say: [message('rel2', 'and another thing')], work: [{ to: ['agent-r'], payload: mirror('rel2') }] });
      let current = (await store.getConversation('w_rel'))!;
      const kept = await store.commitClaiming({ conversation: current, expectedVersion: current.version, appended: [], cursor: { lease: lease!, seq: 1, release: true } });
      expect(kept.released).toBeUndefined();
      expect(await store.work.lease('agent-r', { limit: 1, leaseMs: 60_000 })).toEqual([]);
      // The last item answered: the lease goes back with the commit, and nothing is due.
      current = (await store.getConversation('w_rel'))!;
      const answer = message('rel-answer', 'Done', 'agent');
      const made = await store.commitClaiming({
        conversation: { ...current, messages: [...current.messages, answer] },
        expectedVersion: current.version,
        appended: [answer],
        work: [{ to: ['customer-r'], payload: deliver(answer.id) }],
        cursor: { lease: lease!, seq: 2, release: true },
      });
      expect(made.released).toBe(true);
      expect(await store.work.nextDue('agent-r')).toBeUndefined();
      expect(await store.work.pending('agent-r', 'w_rel')).toMatchObject({ items: [] });
      await expect(store.work.finish(lease!)).rejects.toBeInstanceOf(LeaseLostError);
      // New work after it is leased afresh, by anyone.
      await change(store, 'w_rel', { say: [message('rel3', 'thanks')], work: [{ to: ['agent-r'], payload: mirror('rel3') }] });
      expect((await store.work.lease('agent-r', { limit: 1, leaseMs: 60_000 })).map((l) => l.conversationId)).toEqual(['w_rel']);
    });
  });

  describe('change notices', () => {
    it('tells listeners what changed, and stops after unsubscribe', async () => {
      const seen: ChangeNotice[] = [];
      const other: ChangeNotice[] = [];
      const stop = store.onChange((n) => seen.push(n));
      store.onChange((n) => other.push(n));
      await open(store, 'n_same');
      await change(store, 'n_same', { patch: { ownershipVersion: 4 }, work: [{ to: ['slack-n', 'teams-n'], payload: mirror('x') }, { to: ['slack-n'], payload: mirror('y') }] });
      await waitFor(() => seen.some((n) => n.conversationId === 'n_same' && n.version === 2), 'the second notice');
      const notice = seen.find((n) => n.conversationId === 'n_same' && n.version === 2)!;
      expect(notice.ownershipVersion).toBe(4);
      expect([...notice.destinations].sort()).toEqual(['slack-n', 'teams-n']);

      stop();
      await change(store, 'n_same');
      await waitFor(() => other.some((n) => n.conversationId === 'n_same' && n.version === 3), 'the third notice');
      expect(seen.some((n) => n.version === 3)).toBe(false);
    });

    it('name an announced destination (a live view) with no work for it, listed as nobody need look', async () => {
      const place = backend.place();
      const [a, b] = backend.sharedAcrossInstances ? await Promise.all([backend.open(place), backend.open(place)]) : [store, store];
      const stops: Array<() => void> = [];
      try {
        const here: ChangeNotice[] = [];
        const there: ChangeNotice[] = [];
        stops.push(a.onChange((n) => here.push(n)), b.onChange((n) => there.push(n)));
        await open(a, 'n_live');
        await change(a, 'n_live', { work: [{ to: ['slack-live'], payload: mirror('x') }], announce: ['customer-live'] });
        for (const [seen, where] of [[here, 'here'], [there, 'on the other instance']] as const) {
          const notice = await waitFor(() => seen.find((n) => n.conversationId === 'n_live' && n.version === 2), `the notice ${where}`);
          expect([...notice.destinations].sort()).toEqual(['customer-live', 'slack-live']);
          expect(notice.leased).toEqual(['customer-live']);
        }
        expect(await a.work.lease('customer-live', { limit: 10, leaseMs: 1000 })).toEqual([]);
        expect((await a.work.pending('customer-live', 'n_live')).items).toEqual([]);
        expect((await a.work.lease('slack-live', { limit: 10, leaseMs: 1000 })).map((l) => l.conversationId)).toEqual(['n_live']);
      } finally {
        for (const stop of stops) stop();
        if (a !== store) await Promise.all([a.close(), b.close()]);
      }
    });

    it.runIf(backend.sharedAcrossInstances)('reach another instance sharing the store', async () => {
      const place = backend.place();
      const [a, b] = await Promise.all([backend.open(place), backend.open(place)]);
      try {
        const seen: ChangeNotice[] = [];
        b.onChange((n) => seen.push(n));
        await open(a, 'n_cross', ['slack']);
        await waitFor(() => seen.find((n) => n.conversationId === 'n_cross'), 'a notice on the other instance');
        expect(seen[0]).toEqual({ conversationId: 'n_cross', version: 1, ownershipVersion: 0, destinations: ['slack'] });
        expect((await b.getConversation('n_cross'))?.version).toBe(1);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });

  it('conversations, indexes and work survive closing and reopening the store', async () => {
    const place = backend.place();
    const first = await backend.open(place);
    await open(first, 'r_keep', ['slack', 'customer'], 'Still here?');
    await change(first, 'r_keep', { patch: { state: 'waiting' }, indexes: [{ op: 'set', key: 'ticket:HB-9', value: 'r_keep' }, { op: 'add', key: 'queue:general', member: 'r_keep' }], inbound: { key: 'e1', ttlMs: 60_000 } });
    const [lease] = await first.work.lease('slack', { limit: 1, leaseMs: 60_000 });
    await first.work.advance(lease!, 1);
    await first.work.release(lease!);
    await first.close();

    const second = await backend.open(place);
    try {
      const c = (await second.getConversation('r_keep'))!;
      expect(c.version).toBe(2);
      expect(c.state).toBe('waiting');
      expect(c.messages.map((m) => m.text)).toEqual(['Still here?']);
      expect(await second.indexValue('ticket:HB-9')).toBe('r_keep');
      expect(await second.indexMembers('queue:general')).toEqual(['r_keep']);
      expect(await second.inboundSeen('e1')).toBe('r_keep');
      expect(await second.work.nextDue('slack')).toBeUndefined();
      expect((await second.work.lease('customer', { limit: 1, leaseMs: 60_000 })).map((l) => l.conversationId)).toEqual(['r_keep']);
      expect((await second.work.pending('customer', 'r_keep')).items.map((w) => w.payload)).toEqual([mirror('r_keep_m1')]);
      expect((await second.work.pending('slack', 'r_keep')).cursor.done).toBe(1);
      expect(await change(second, 'r_keep')).toBe(3);
    } finally {
      await second.close();
    }
  });

  describe("adapters' own data", () => {
    it('serializes work under one lock and lets other keys run', async () => {
      const order: string[] = [];
      const slow = store.withLock('k1', async () => {
        order.push('a-start');
        await sleep(50);
        order.push('a-end');
      });
      const queued = store.withLock('k1', async () => void order.push('b'));
      const other = store.withLock('k2', async () => void order.push('other'));
      await Promise.all([slow, queued, other]);
      expect(order.indexOf('b')).toBeGreaterThan(order.indexOf('a-end'));
      expect(order.indexOf('other')).toBeLessThan(order.indexOf('a-end'));
    });

    it('releases the lock when the work throws', async () => {
      await expect(store.withLock('k3', async () => { throw new Error('boom'); })).rejects.toThrow('boom');
      await expect(store.withLock('k3', async () => 'ok')).resolves.toBe('ok');
    });

    it('takes an idempotency key once, and again after it is forgotten or expires', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, () => store.once('evt-1')));
      expect(results.filter(Boolean)).toHaveLength(1);
      await store.forget('evt-1');
      expect(await store.once('evt-1')).toBe(true);
      expect(await store.once('evt-short', 30)).toBe(true);
      await sleep(80);
      expect(await store.once('evt-short', 30)).toBe(true);
    });

    it('counts tickets without gaps or repeats under concurrency', async () => {
      const values = await Promise.all(Array.from({ length: 50 }, () => store.increment('tickets-test')));
      expect(new Set(values).size).toBe(50);
      expect(Math.max(...values) - Math.min(...values)).toBe(49);
    });

    it('gives adapters their own namespaced area with TTL', async () => {
      const a = store.kv('slack');
      const b = store.kv('teams');
      await a.set('thread', { ts: '1.2' });
      expect(await a.get('thread')).toEqual({ ts: '1.2' });
      expect(await b.get('thread')).toBeUndefined();
      await a.set('short', 1, 30);
      await sleep(80);
      expect(await a.get('short')).toBeUndefined();
      await a.delete('thread');
      expect(await a.get('thread')).toBeUndefined();
    });
  });
});

describe('the sqlite store', () => {
  it('group-commits: the writes asked for in one turn share one transaction, and each settles after it', async () => {
    const store = await openSqliteStore(join(dir, `${unique('g')}.sqlite`));
    try {
      await open(store, 'g_seed');
      const before = store.stats;
      const settled: string[] = [];
      const writes = [
        ...Array.from({ length: 10 }, (_, i) => store.commit({ conversation: conversation(`g_${i}`), expectedVersion: 0, appended: [], work: [{ to: ['g'], payload: mirror(`g${i}`) }] })),
        store.commit({ conversation: conversation('g_seed'), expectedVersion: 0, appended: [] }), // refused: its neighbours still land
        store.work.lease('g-none', { limit: 1, leaseMs: 1000 }),
        store.increment('g-counter'),
        store.kv('g').set('k', 1),
      ].map((p, i) => p.then(() => settled.push(`ok ${i}`), () => settled.push(`refused ${i}`)));
      expect(settled).toEqual([]);
      await Promise.all(writes);
      expect(store.stats).toEqual({ transactions: before.transactions + 1, writes: before.writes + 14, unsynced: before.unsynced });
      expect(settled.filter((s) => s.startsWith('refused'))).toEqual(['refused 10']);
      expect((await store.work.lease('g', { limit: 20, leaseMs: 1000 })).length).toBe(10);
      // The next turn is the next transaction.
      await store.increment('g-counter');
      expect(store.stats.transactions).toBe(before.transactions + 3);
    } finally {
      await store.close();
    }
  });

  it('a write that fails half-way (not a refusal) is undone alone: the batch runs again in savepoints and its neighbours land', async () => {
    const store = await openSqliteStore(join(dir, `${unique('h')}.sqlite`));
    try {
      const before = store.stats;
      // The header and the inbound mark are written before the message, which cannot be serialised.
      const broken = { ...conversation('h_broken'), messages: [{ id: 'm1', bad: 1n } as unknown as Message] };
      const results = await Promise.allSettled([
        store.commit({ conversation: conversation('h_a'), expectedVersion: 0, appended: [], work: [{ to: ['h'], payload: mirror('a') }] }),
        store.commit({ conversation: broken, expectedVersion: 0, appended: broken.messages, inbound: { key: 'h-in', ttlMs: 60_000 } }),
        store.commit({ conversation: conversation('h_b'), expectedVersion: 0, appended: [], work: [{ to: ['h'], payload: mirror('b') }] }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(((results[1] as PromiseRejectedResult).reason as Error).message).toMatch(/BigInt/);
      expect(await store.getConversation('h_broken')).toBeUndefined();
      expect(await store.inboundSeen('h-in')).toBeUndefined();
      expect((await store.getConversation('h_a'))?.version).toBe(1);
      expect((await store.work.lease('h', { limit: 5, leaseMs: 1000 })).map((l) => l.conversationId).sort()).toEqual(['h_a', 'h_b']);
      // The first try was rolled back; only the second counts.
      expect(store.stats.transactions).toBe(before.transactions + 2);
    } finally {
      await store.close();
    }
  });

  it('work bookkeeping alone skips the fsync; beside a commit or an attempt record it is synced with them', async () => {
    const place = join(dir, `${unique('l')}.sqlite`);
    const store = await openSqliteStore(place);
    try {
      await open(store, 'l_conv', ['l']);
      const before = store.stats;
      const [lease] = await store.work.lease('l', { limit: 1, leaseMs: 1000 }); // light alone: no fsync
      expect(store.stats.unsynced).toBe(before.unsynced + 1);
      await store.work.begin(lease!, 1); // an attempt record is durable before the side effect
      expect(store.stats.unsynced).toBe(before.unsynced + 1);
      await Promise.all([store.work.finish(lease!, 1), open(store, 'l_other')]); // shares a synced batch
      expect(store.stats.unsynced).toBe(before.unsynced + 1);
      await store.work.wake('l', ['l_conv']);
      expect(store.stats.unsynced).toBe(before.unsynced + 2);
    } finally {
      await store.close();
    }
    // Written all the same: a process that stops keeps every committed write.
    const again = await openSqliteStore(place);
    try {
      expect((await again.work.pending('l', 'l_conv')).cursor.done).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('a patient attempt record waits for the next write while writes come, and shares its fsync; else it goes alone; either way it is durable when it resolves', async () => {
    const place = join(dir, `${unique('p')}.sqlite`);
    const store = await openSqliteStore(place);
    try {
      await open(store, 'p_conv', ['p']);
      const [lease] = await store.work.lease('p', { limit: 1, leaseMs: 1000 });
      let before = store.stats;
      // Beside a commit asked for a moment later: one transaction, one fsync.
      const begun = store.work.begin(lease!, 1, undefined, undefined, { patient: true });
      await new Promise((r) => setImmediate(r));
      expect(store.stats.transactions).toBe(before.transactions); // still waiting
      await Promise.all([begun, open(store, 'p_other')]);
      expect(store.stats).toEqual({ transactions: before.transactions + 1, writes: before.writes + 2, unsynced: before.unsynced });
      expect((await begun).attempt).toMatchObject({ seq: 1, count: 1 });
      // Alone: it goes by itself, synced.
      before = store.stats;
      const next = await Promise.race([store.work.next(lease!, 1, { items: 10, begin: true, patient: true }), sleep(1000).then(() => 'timed out' as const)]);
      expect(next).toBeUndefined(); // nothing left: the lease went back (a light write, not patient)
      await store.commit({ conversation: { ...conversation('p_conv'), version: 1 }, expectedVersion: 1, appended: [], work: [{ to: ['p'], payload: mirror('p2') }] });
      const [lease2] = await store.work.lease('p', { limit: 1, leaseMs: 1000 });
      before = store.stats;
      const alone = await Promise.race([store.work.begin(lease2!, 2, undefined, undefined, { patient: true }), sleep(1000).then(() => 'timed out' as const)]);
      expect(alone).not.toBe('timed out');
      expect(store.stats).toEqual({ transactions: before.transactions + 1, writes: before.writes + 1, unsynced: before.unsynced });
      // Nothing else written lately: nothing to wait for, so it goes a turn later, as any write does.
      await sleep(30);
      before = store.stats;
      const idle = store.work.begin(lease2!, 2, undefined, undefined, { patient: true });
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      expect(store.stats.transactions).toBe(before.transactions + 1);
      await idle;
    } finally {
      await store.close();
    }
    const reopened = await openSqliteStore(place);
    try {
      // Begun twice above: the second counts on.
      expect((await reopened.work.pending('p', 'p_conv')).cursor.attempt).toMatchObject({ seq: 2, count: 2 });
    } finally {
      await reopened.close();
    }
  });

  it('close writes what is queued first, and refuses writes after', async () => {
    const place = join(dir, `${unique('q')}.sqlite`);
    const store = await openSqliteStore(place);
    const queued = store.commit({ conversation: conversation('q_last'), expectedVersion: 0, appended: [] });
    await store.close();
    await expect(queued).resolves.toBe(1);
    await expect(store.commit({ conversation: conversation('q_after'), expectedVersion: 0, appended: [] })).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.getConversation('q_last')).rejects.toBeInstanceOf(StoreUnavailableError);
    const again = await openSqliteStore(place);
    try {
      expect((await again.getConversation('q_last'))?.version).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('a file written before work items carried a version opens as it is; those items read as version 0', async () => {
    const place = join(dir, `${unique('old')}.sqlite`);
    const first = await openSqliteStore(place);
    await open(first, 'old_conv', ['old-slack']);
    await first.close();
    const raw = new Database(place);
    raw.prepare("UPDATE work_log SET body = json_remove(body, '$.version')").run();
    raw.close();

    const store = await openSqliteStore(place);
    try {
      const [lease] = await store.work.lease('old-slack', { limit: 1, leaseMs: 60_000 });
      expect(lease!.pending!.items).toEqual([{ seq: 1, to: ['old-slack'], payload: mirror('old_conv_m1'), at: expect.any(Number), version: 0 }]);
      await change(store, 'old_conv', { work: [{ to: ['old-slack'], payload: mirror('new') }] });
      expect((await store.work.pending('old-slack', 'old_conv')).items.map((w) => w.version)).toEqual([0, 2]);
    } finally {
      await store.close();
    }
  });
});

describe('the redis store', () => {
  it('an instance hears its own commit once (when it returns), another instance once (through the channel)', async () => {
    const namespace = unique('echo');
    const [a, b] = await Promise.all([openRedisStore(REDIS_URL!, { namespace }), openRedisStore(REDIS_URL!, { namespace })]);
    const heardByA: ChangeNotice[] = [];
    const heardByB: ChangeNotice[] = [];
    a.onChange((n) => heardByA.push(n));
    b.onChange((n) => heardByB.push(n));
    try {
      await open(a, 'echo_1', ['echo-slack']);
      await change(a, 'echo_1', { work: [{ to: ['echo-slack'], payload: mirror('x') }] });
      await waitFor(() => heardByB.filter((n) => n.conversationId === 'echo_1').length === 2, 'both notices at the other instance');
      await sleep(200); // the channel's copies of a's own notices have come back to a by now
      expect(heardByA.filter((n) => n.conversationId === 'echo_1').map((n) => n.version)).toEqual([1, 2]);
      expect(heardByB.filter((n) => n.conversationId === 'echo_1').map((n) => n.version)).toEqual([1, 2]);
      expect(heardByA.every((n) => !('from' in n))).toBe(true);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("a patient write waits while writes come and goes right behind the next one (one socket write, so one turn of Redis's event loop and one fsync); alone, it goes by itself", async () => {
    const store = await openRedisStore(REDIS_URL!, { namespace: unique('patience') });
    const commitNow = (id: string) => store.commit({ conversation: conversation(id), expectedVersion: 0, appended: [] });
    /**
     * Which of a write and a commit asked for a turn after it Redis ran first (replies come in
     * order). With `after`, a commit is sent just before the write, so writes are coming: that one
     * is not awaited first, since its round trip can outlast PATIENCE_MS on a busy machine.
     */
    const race = async (write: () => Promise<unknown>, id: string, after?: string) => {
      const order: string[] = [];
      const before = after === undefined ? undefined : commitNow(after);
      const written = write().then(() => order.push('write'));
      await new Promise((r) => setImmediate(r)); // sent by now, were it not held
      await Promise.all([written, before, commitNow(id).then(() => order.push('commit'))]);
      return order;
    };
    try {
      await open(store, 'w_conv', ['ws']);
      const [lease] = await store.work.lease('ws', { limit: 1, leaseMs: 5000 });
      // Writes are coming (a commit just now): an attempt record waits for the next one.
      expect(await race(() => store.work.begin(lease!, 1, undefined, undefined, { patient: true }), 'w_b', 'w_a')).toEqual(['commit', 'write']);
      expect((await store.work.pending('ws', 'w_conv')).cursor.attempt).toMatchObject({ seq: 1, count: 1 });
      // So does a worker's end of batch.
      expect(await race(() => store.work.next(lease!, undefined, { items: 10, begin: true, patient: true }), 'w_d', 'w_c')).toEqual(['commit', 'write']);
      // Nothing else comes: it goes by itself within PATIENCE_MS.
      await commitNow('w_e');
      const alone = await Promise.race([store.work.begin(lease!, 1, undefined, undefined, { patient: true }), sleep(1000).then(() => 'timed out' as const)]);
      expect(alone).not.toBe('timed out');
      // A write that is not patient goes at once, ahead of the commit.
      await commitNow('w_f');
      expect(await race(() => store.work.begin(lease!, 1), 'w_g')).toEqual(['write', 'commit']);
      expect((await store.work.pending('ws', 'w_conv')).cursor.attempt).toMatchObject({ seq: 1, count: 4 });
    } finally {
      await store.close();
    }
  });
});

describe('outages', () => {
  it('an unreachable Redis fails start-up with a clear error', async () => {
    await expect(openRedisStore('redis://127.0.0.1:1')).rejects.toSatisfy(
      (e) => e instanceof StoreUnavailableError && /cannot connect to redis:\/\/127\.0\.0\.1:1/.test(e.message),
    );
  });

  it('while Redis is down commits fail with StoreUnavailableError; after it is back, nothing is lost and notices flow again', { timeout: 60_000 }, async () => {
    const server = await startRedis({ durable: true });
    const store = await openRedisStore(server.url, { namespace: 'outage', lockWaitMs: 1000 });
    const notices: ChangeNotice[] = [];
    store.onChange((n) => notices.push(n));
    try {
      await open(store, 'o_conv', ['slack']);
      await waitFor(() => notices.length === 1, 'the first notice');
      const read = (await store.getConversation('o_conv'))!;
      await server.stop();

      const said = message('o_m2', 'hello?');
      const during = { conversation: { ...read, messages: [...read.messages, said] }, expectedVersion: read.version, appended: [said], work: [{ to: ['slack'], payload: mirror(said.id) }], inbound: { key: 'o-evt', ttlMs: 60_000 } };
      await expect(store.commit(during)).rejects.toSatisfy((e) => e instanceof StoreUnavailableError && /could not commit conversation o_conv/.test(e.message));
      await expect(store.getConversation('o_conv')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.work.lease('slack', { limit: 1, leaseMs: 1000 })).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.work.nextDue('slack')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.indexValue('x')).rejects.toBeInstanceOf(StoreUnavailableError);

      await server.start();
      // The client reconnects by itself; what was stored before the outage is intact.
      const back = await waitFor(() => store.getConversation('o_conv').catch(() => undefined), 'reconnect', 15_000);
      expect(back).toEqual(read);
      // The same change, retried, lands once (the scripts are sent again to the restarted server).
      expect(await store.commit(during)).toBe(2);
      await expect(store.commit(during)).rejects.toBeInstanceOf(VersionConflictError);
      expect((await store.getConversation('o_conv'))!.messages.map((m) => m.id)).toEqual(['o_conv_m1', 'o_m2']);
      // The subscription comes back with the connection (a notice published before the
      // subscriber is back is missed: notices are hints, the due sets are the truth).
      await waitFor(async () => (await change(store, 'o_conv'), notices.some((n) => n.version > 2)), 'a notice after the restart', 15_000);
      const [lease] = await store.work.lease('slack', { limit: 1, leaseMs: 60_000 });
      expect((await store.work.pending('slack', lease!.conversationId)).items.map((w) => w.seq)).toEqual([1, 2]);
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('an unusable SQLite path fails start-up naming the path', async () => {
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    await expect(openSqliteStore(join(file, 'bridge.sqlite'))).rejects.toThrow(/not-a-folder/);
  });
});
