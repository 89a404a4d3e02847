/**
 * What the Redis scripts cost the server: commands per store call, counted by the server itself
 * (INFO commandstats counts the commands scripts make). A redis-server of its own, so other test
 * files running at the same time do not add to the counts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuplicateInboundError } from '../../src/errors.ts';
import type { Message } from '../../src/model.ts';
import { connectRedis } from '../../src/store/keyv-store.ts';
import { openRedisStore } from '../../src/store/redis.ts';
import type { Commit, Store } from '../../src/store/store.ts';
import { conversationFixture } from '../support/conversations.ts';
import { startRedis, type RedisProcess } from '../support/redis-process.ts';

let server: RedisProcess;
let admin: Awaited<ReturnType<typeof connectRedis>>;
let store: Store;

beforeAll(async () => {
  server = await startRedis({ durable: false });
  admin = await connectRedis(server.url);
  store = await openRedisStore(server.url, { namespace: 'cmds' });
});

afterAll(async () => {
  await store?.close();
  if (admin?.isOpen) await admin.close();
  await server?.stop();
});

/** Commands Redis ran during `fn`, by name. */
async function counted(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  await admin.sendCommand(['CONFIG', 'RESETSTAT']);
  await fn();
  const info = String(await admin.sendCommand(['INFO', 'commandstats']));
  const counts: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts[m[1]!] = Number(m[2]);
  delete counts.config;
  return counts;
}

const message = (id: string, text: string): Message => ({ id, at: '2025-01-01T00:00:01.000Z', author: { role: 'customer' }, text, visibility: 'public' });
const mirror = (messageId: string) => ({ kind: 'mirror' as const, messageId });

describe('redis scripts: commands per call', () => {
  it('a commit that claims its own new work reads each field once and nothing it just wrote', async () => {
    const first = message('c1_m1', 'Hello');
    const second = message('c1_m2', 'Anyone?');
    const commit: Commit = {
      conversation: conversationFixture({ id: 'c1', messages: [first, second] }),
      expectedVersion: 0,
      appended: [first, second],
      work: [
        { to: ['a', 'b'], payload: mirror(first.id) },
        { to: ['a'], payload: mirror(second.id) },
      ],
      inbound: { key: 'c1-in', ttlMs: 60_000 },
      claim: { destinations: ['a', 'b'], leaseMs: 30_000, begin: ['a'] },
    };
    let claimed: Awaited<ReturnType<Store['commitClaiming']>>['claimed'] = [];
    const counts = await counted(async () => ({ claimed } = await store.commitClaiming(commit)));
    expect(claimed.map((l) => [l.destination, l.pending?.items.map((i) => i.seq), l.pending?.begun ?? false])).toEqual([
      ['a', [1, 2], true],
      ['b', [1], false],
    ]);
    expect(counts).toMatchObject({ evalsha: 1, hget: 3, set: 1, time: 1, rpush: 2, llen: 1, publish: 1 });
    // The inbound key is checked and written by one SET NX.
    expect(counts.get ?? 0).toBe(0);
    // Due scores it just set and log items it just appended are not read back.
    expect(counts.zscore ?? 0).toBe(0);
    expect(counts.lrange ?? 0).toBe(0);
    // One due entry and one last seq per destination (2), the two leases (2) and the attempt record.
    expect(counts.zadd).toBe(4);
    expect(counts.hset).toBe(1 + 2 + 2 + 1);
  });

  /**
   * Conversation `id` gets an item for x and one for y; then (with x's item finished first when
   * `xDone`) a commit adds one for y and one for x and claims x. What the claim brought, and the
   * commands that commit cost.
   */
  async function claimAfter(id: string, xDone: boolean): Promise<{ claimed: Awaited<ReturnType<Store['commitClaiming']>>['claimed']; counts: Record<string, number> }> {
    const m1 = message(`${id}_m1`, 'one');
    const c = conversationFixture({ id, messages: [m1] });
    await store.commit({ conversation: c, expectedVersion: 0, appended: [m1], work: [{ to: ['x'], payload: mirror(m1.id) }, { to: ['y'], payload: mirror(m1.id) }] });
    if (xDone) {
      const [lease] = await store.work.lease('x', { limit: 1, leaseMs: 30_000 });
      expect(await store.work.finish(lease!, 1)).toBe(true);
    }
    const m2 = message(`${id}_m2`, 'two');
    const next: Commit = {
      conversation: { ...c, version: 1, messages: [m1, m2] },
      expectedVersion: 1,
      appended: [m2],
      work: [{ to: ['y'], payload: mirror(m2.id) }, { to: ['x'], payload: mirror(m2.id) }],
      claim: { destinations: ['x'], leaseMs: 30_000 },
    };
    let claimed: Awaited<ReturnType<Store['commitClaiming']>>['claimed'] = [];
    const counts = await counted(async () => ({ claimed } = await store.commitClaiming(next)));
    expect(claimed).toHaveLength(1);
    // The same batch `pending` reads from the log.
    expect(claimed[0]!.pending).toEqual(await store.work.pending('x', id, 50));
    return { claimed, counts };
  }

  it('a claim behind the new work reads the older items and serves the new ones as appended', async () => {
    const { claimed, counts } = await claimAfter('c2', false);
    expect(claimed[0]!.pending!.items.map((i) => i.seq)).toEqual([1, 4]);
    // Already due since the first commit: its score is read; only the older part of the log is.
    expect(counts).toMatchObject({ zscore: 1, lrange: 1, time: 1 });
  });

  it('a claim for a destination with nothing pending reads none of the log before its new item', async () => {
    const { claimed, counts } = await claimAfter('c9', true);
    // Item 2 (for y) lies between x's cursor and its new item: it is not read back to be skipped.
    expect(claimed[0]!.pending!.items.map((i) => i.seq)).toEqual([4]);
    expect(counts.lrange ?? 0).toBe(0);
  });

  it('a commit without work does not read the clock or the log', async () => {
    const m1 = message('c3_m1', 'quiet');
    const counts = await counted(() => store.commit({ conversation: conversationFixture({ id: 'c3', messages: [m1] }), expectedVersion: 0, appended: [m1] }));
    expect(counts).toMatchObject({ hget: 1, hset: 1, rpush: 1, publish: 1 });
    expect(counts.time ?? 0).toBe(0);
    expect(counts.llen ?? 0).toBe(0);
  });

  it('finish moves the cursor and reads each field once', async () => {
    const m1 = message('c4_m1', 'hi');
    await store.commit({ conversation: conversationFixture({ id: 'c4', messages: [m1] }), expectedVersion: 0, appended: [m1], work: [{ to: ['f'], payload: mirror(m1.id) }] });
    const [lease] = await store.work.lease('f', { limit: 1, leaseMs: 30_000, begin: true });
    expect(lease?.pending?.begun).toBe(true);
    let gaveBack: boolean | undefined;
    const counts = await counted(async () => (gaveBack = await store.work.finish(lease!, 1)));
    expect(gaveBack).toBe(true);
    // The lease, the cursor and the last seq: one HGET each.
    expect(counts).toMatchObject({ hget: 3, hset: 1, hdel: 1, zrem: 1 });
    expect(await store.work.pending('f', 'c4')).toEqual({ cursor: { done: 1 }, items: [] });
  });

  it('next with work left is one script: the cursor moves, the next batch comes back and its first attempt is recorded', async () => {
    const m1 = message('c10_m1', 'hi');
    const c = conversationFixture({ id: 'c10', messages: [m1] });
    await store.commit({ conversation: c, expectedVersion: 0, appended: [m1], work: [{ to: ['n'], payload: mirror(m1.id) }] });
    const [lease] = await store.work.lease('n', { limit: 1, leaseMs: 30_000, begin: true });
    const m2 = message('c10_m2', 'again');
    await store.commit({ conversation: { ...c, version: 1, messages: [m1, m2] }, expectedVersion: 1, appended: [m2], work: [{ to: ['n'], payload: mirror(m2.id) }] });
    let batch: Awaited<ReturnType<Store['work']['next']>>;
    const counts = await counted(async () => (batch = await store.work.next(lease!, 1, { items: 50, begin: true })));
    expect(batch!.items.map((i) => i.seq)).toEqual([2]);
    expect(batch!.cursor.attempt).toMatchObject({ seq: 2, count: 1 });
    expect(counts.evalsha).toBe(1);
    // The lease, cursor and last seq read once each; the cursor written when moved, then with the attempt.
    expect(counts).toMatchObject({ hget: 3, hset: 2, lrange: 1 });
  });

  it('a lease with its first batch reads the cursor and the last seq once', async () => {
    const m1 = message('c9_m1', 'hi');
    await store.commit({ conversation: conversationFixture({ id: 'c5', messages: [m1] }), expectedVersion: 0, appended: [m1], work: [{ to: ['g'], payload: mirror(m1.id) }] });
    const counts = await counted(() => store.work.lease('g', { limit: 1, leaseMs: 30_000, begin: true }));
    expect(counts).toMatchObject({ hget: 2, time: 1, lrange: 1 });
  });

  it('a seen inbound key refuses the commit before anything is written, whether or not the lease still holds', async () => {
    const m1 = message('c6_m1', 'hi');
    const c = conversationFixture({ id: 'c6', messages: [m1] });
    await store.commit({ conversation: c, expectedVersion: 0, appended: [m1], work: [{ to: ['h'], payload: mirror(m1.id) }], inbound: { key: 'c6-in', ttlMs: 60_000 } });
    const [lease] = await store.work.lease('h', { limit: 1, leaseMs: 30_000 });
    const answer = message('c6_m2', 'answer');
    const again = (token: string) =>
      store.commit({
        conversation: { ...c, version: 1, messages: [m1, answer] },
        expectedVersion: 1,
        appended: [answer],
        work: [{ to: ['i'], payload: mirror(answer.id) }],
        inbound: { key: 'c6-in', ttlMs: 60_000 },
        cursor: { lease: { ...lease!, token }, seq: 1 },
      });
    for (const token of [lease!.token, 'lost']) {
      await expect(again(token)).rejects.toSatisfy((e) => e instanceof DuplicateInboundError && e.conversationId === 'c6');
    }
    expect((await store.getConversation('c6'))!.messages.map((m) => m.id)).toEqual(['c6_m1']);
    expect(await store.work.pending('h', 'c6')).toMatchObject({ cursor: { done: 0 } });
    expect(await store.work.nextDue('i')).toBeUndefined();
    expect(await store.inboundSeen('c6-in')).toBe('c6');
  });

  it('a commit of more messages and items than one RPUSH takes keeps them all, in order', async () => {
    const said = Array.from({ length: 1201 }, (_, i) => message(`c7_m${i}`, `m${i}`));
    const work = Array.from({ length: 1203 }, (_, i) => ({ to: i % 2 ? ['odd'] : ['even'], payload: mirror(`c7_m${i}`) }));
    const { claimed } = await store.commitClaiming({
      conversation: conversationFixture({ id: 'c7', messages: said }),
      expectedVersion: 0,
      appended: said,
      work,
      claim: { destinations: ['odd'], leaseMs: 30_000, items: 3, begin: ['odd'] },
    });
    expect((await store.getConversation('c7'))!.messages.map((m) => m.id)).toEqual(said.map((m) => m.id));
    expect(claimed[0]!.pending).toMatchObject({ cursor: { done: 0, attempt: { seq: 2, count: 1 } }, begun: true });
    expect(claimed[0]!.pending!.items.map((i) => [i.seq, i.payload])).toEqual([2, 4, 6].map((seq) => [seq, mirror(`c7_m${seq - 1}`)]));
    const even = await store.work.pending('even', 'c7', 2000);
    expect(even.items.map((i) => i.seq)).toEqual(Array.from({ length: 602 }, (_, i) => 2 * i + 1));
  });

  it('the finishes of one turn go as one script call, each with its own outcome', async () => {
    const open = async (id: string, items: number) => {
      const said = Array.from({ length: items }, (_, i) => message(`${id}_m${i}`, `m${i}`));
      const { claimed } = await store.commitClaiming({
        conversation: conversationFixture({ id, messages: said }),
        expectedVersion: 0,
        appended: said,
        work: said.map((m) => ({ to: ['fin'], payload: mirror(m.id) })),
        claim: { destinations: ['fin'], leaseMs: 30_000 },
      });
      return claimed[0]!;
    };
    const [all, part, retry, lost] = [await open('f1', 1), await open('f2', 2), await open('f3', 2), await open('f4', 1)];
    let outcomes: unknown[] = [];
    const counts = await counted(async () => {
      outcomes = await Promise.allSettled([
        store.work.finish(all, 1), // all done: given back
        store.work.finish(part, 1), // one left: kept
        store.work.finish(retry, 1, Date.now() + 60_000), // one left, retry later: given back, due then
        store.work.finish({ ...lost, token: 'not-ours' }, 1), // lost
      ]);
    });
    expect(counts.evalsha ?? counts.eval).toBe(1);
    expect(outcomes.map((o) => (o as PromiseSettledResult<boolean>).status === 'fulfilled' ? (o as PromiseFulfilledResult<boolean>).value : (o as PromiseRejectedResult).reason.constructor.name)).toEqual([true, false, true, 'LeaseLostError']);
    expect(await store.work.pending('fin', 'f2')).toMatchObject({ cursor: { done: 1 } });
    expect(await store.work.pending('fin', 'f4')).toMatchObject({ cursor: { done: 0 } });
    // Nothing is due now: the kept and the lost leases wait out their expiry, the retry its time.
    expect(await store.work.nextDue('fin')).toBeGreaterThan(Date.now() + 25_000);
  });
});
