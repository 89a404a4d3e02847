/**
 * One store suite, two backends: the embedded SQLite default and a real redis-server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge.ts';
import { AlreadyClaimedError, StoreUnavailableError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import type { Operator } from '../../src/model.ts';
import { openRedisStore, openSqliteStore, openStore } from '../../src/store/keyv-store.ts';
import type { Store } from '../../src/store/store.ts';
import { offlineAgent, waitFor } from '../support/harness.ts';
import { startRedis } from '../support/redis-process.ts';

const REDIS_URL = process.env.REDIS_URL;
const dir = mkdtempSync(join(tmpdir(), 'store-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const backends: Array<[string, () => Promise<Store>]> = [
  ['sqlite', () => openSqliteStore(join(dir, `s${n++}.sqlite`))],
  ['redis', () => openRedisStore(REDIS_URL!, { namespace: `t${Date.now()}_${n++}` })],
];

it('a real redis-server is available to the suite', () => {
  expect(REDIS_URL, 'redis-server must be installed (apt-get install redis-server) or REDIS_URL set').toBeTruthy();
});

describe.each(backends)('store on %s', (_name, open) => {
  let store: Store;
  beforeAll(async () => {
    store = await open();
    return () => store.close();
  });

  it('keeps a conversation and reads it back unchanged', async () => {
    const bridge = new Bridge({ store, agent: offlineAgent(), logger: silentLogger() });
    const c = await bridge.openConversation({ origin: 'api', customer: { id: 'c' } });
    expect(await store.getConversation(c.id)).toEqual(c);
    expect(await store.getConversation('conv_missing')).toBeUndefined();
  });

  it('serializes work under one lock and lets other keys run', async () => {
    const order: string[] = [];
    const slow = store.withLock('k1', async () => {
      order.push('a-start');
      await new Promise((r) => setTimeout(r, 50));
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
    await new Promise((r) => setTimeout(r, 80));
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
    await new Promise((r) => setTimeout(r, 80));
    expect(await a.get('short')).toBeUndefined();
    await a.delete('thread');
    expect(await a.get('thread')).toBeUndefined();
  });

  it('two operators claiming at once yield exactly one owner', async () => {
    const bridge = new Bridge({ store, agent: offlineAgent(), logger: silentLogger() });
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want to talk to a human' });
    const ops: Operator[] = ['Dana', 'Sam'].map((name) => ({ id: `test:${name}`, name, workspace: 'test' }));
    const results = await Promise.allSettled(ops.map((operator) => bridge.claim({ conversationId: conversation.id, operator })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(loser.reason).toBeInstanceOf(AlreadyClaimedError);
    await bridge.idle();
  });
});

describe('claim races across instances sharing Redis', () => {
  it('100 runs of 100 concurrent claimers from 4 bridge instances: exactly one owner every time', { timeout: 180_000 }, async () => {
    const namespace = `race${Date.now()}`;
    // Four bridges, each with its own Redis connection, as four processes behind a load balancer would be.
    const stores = await Promise.all(Array.from({ length: 4 }, () => openRedisStore(REDIS_URL!, { namespace })));
    const bridges = stores.map((store) => new Bridge({ store, agent: offlineAgent(), logger: silentLogger() }));
    try {
      for (let run = 0; run < 100; run++) {
        const { conversation } = await bridges[0]!.customerMessage({ origin: 'api', customer: { id: `c${run}` }, text: 'let me speak to a person' });
        const claims = Array.from({ length: 100 }, (_, i) =>
          bridges[i % 4]!.claim({ conversationId: conversation.id, operator: { id: `test:op${i}`, name: `Op ${i}`, workspace: 'test' } }),
        );
        const results = await Promise.allSettled(claims);
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        expect(winners, `run ${run}`).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(AlreadyClaimedError);
        const stored = (await bridges[3]!.getConversation(conversation.id))!;
        expect(stored.owner?.id).toBe(`test:op${winners[0]}`);
        expect(stored.history.filter((h) => h.reason === 'claim')).toHaveLength(1);
      }
    } finally {
      await Promise.all(bridges.map((b) => b.idle()));
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});

describe('durability of the SQLite default', () => {
  it('a conversation and its ownership survive a restart', async () => {
    const path = join(dir, 'restart.sqlite');
    const first = await openStore(path);
    const bridge = new Bridge({ store: first, agent: offlineAgent(), logger: silentLogger() });
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer: { id: 'c', name: 'Ada' }, text: 'I need a human please' });
    await bridge.claim({ conversationId: conversation.id, operator: { id: 'test:dana', name: 'Dana', workspace: 'test' } });
    await bridge.operatorMessage({ conversationId: conversation.id, operator: { id: 'test:dana', name: 'Dana', workspace: 'test' }, text: 'On it' });
    await bridge.idle();
    await first.close();

    const second = await openStore(`sqlite://${path}`);
    const restarted = new Bridge({ store: second, agent: offlineAgent(), logger: silentLogger() });
    const c = (await restarted.getConversation(conversation.id))!;
    expect(c.state).toBe('human');
    expect(c.owner?.name).toBe('Dana');
    expect(c.messages.map((m) => m.text)).toContain('On it');
    expect(c.history.map((h) => h.reason)).toEqual(['escalate', 'claim']);
    expect((await restarted.conversationsHeldBy('test:dana')).map((x) => x.id)).toEqual([conversation.id]);
    expect((await restarted.findByTicket(conversation.ticket))?.id).toBe(conversation.id);
    // Ticket numbers continue rather than restart.
    const next = await restarted.openConversation({ origin: 'api', customer: { id: 'd' } });
    expect(Number(next.ticket.split('-')[1])).toBeGreaterThan(Number(conversation.ticket.split('-')[1]));
    await second.close();
  });
});

describe('outages', () => {
  it('an unreachable Redis fails start-up with a clear error', async () => {
    await expect(openRedisStore('redis://127.0.0.1:1')).rejects.toSatisfy(
      (e) => e instanceof StoreUnavailableError && /cannot connect to redis:\/\/127\.0\.0\.1:1/.test(e.message),
    );
  });

  it('a Redis outage fails commands with StoreUnavailableError, loses nothing stored, and recovers', { timeout: 60_000 }, async () => {
    const server = await startRedis();
    const store = await openRedisStore(server.url, { lockWaitMs: 1000 });
    try {
      const bridge = new Bridge({ store, agent: offlineAgent(), logger: silentLogger() });
      const { conversation } = await bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want a human' });
      await bridge.idle();
      await server.stop();
      const dana = { id: 'test:dana', name: 'Dana', workspace: 'test' };
      await expect(bridge.claim({ conversationId: conversation.id, operator: dana })).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(bridge.customerMessage({ conversationId: conversation.id, origin: 'api', customer: { id: 'c' }, text: 'hello?', idempotencyKey: 'm1' })).rejects.toBeInstanceOf(StoreUnavailableError);
      await server.start();
      // The client reconnects by itself; the stored conversation is intact and the retried message lands once.
      await waitFor(async () => (await store.getConversation(conversation.id).catch(() => undefined))?.state === 'waiting', { timeoutMs: 15_000, what: 'reconnect' });
      await bridge.customerMessage({ conversationId: conversation.id, origin: 'api', customer: { id: 'c' }, text: 'hello?', idempotencyKey: 'm1' });
      const claimed = await bridge.claim({ conversationId: conversation.id, operator: dana });
      expect(claimed.owner?.name).toBe('Dana');
      expect(claimed.messages.filter((m) => m.text === 'hello?')).toHaveLength(1);
      await bridge.idle();
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('an unusable SQLite path fails start-up naming the path', async () => {
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    await expect(openStore(join(file, 'bridge.sqlite'))).rejects.toThrow(/not-a-folder/);
  });

  it('an unknown STORE_URL scheme is a configuration error naming the variable', async () => {
    await expect(openStore('postgres://x')).rejects.toThrow(/STORE_URL/);
  });
});
