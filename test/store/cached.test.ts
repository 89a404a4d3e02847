/**
 * The per-instance conversation cache (src/store/cached.ts) on a real redis-server, with a second
 * store on the same namespace standing for another instance: a read is checked against the store
 * unless the caller says which version it needs, messages are fetched only once, and a cached
 * message cannot be changed in place.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Committer } from '../../src/engine/commit.ts';
import { silentLogger } from '../../src/log.ts';
import type { Conversation, Message } from '../../src/model.ts';
import { CachedStore } from '../../src/store/cached.ts';
import { openRedisStore, type RedisStore } from '../../src/store/redis.ts';
import type { Store } from '../../src/store/store.ts';
import { conversationFixture } from '../support/conversations.ts';
import { waitFor } from '../support/harness.ts';

const REDIS_URL = process.env.REDIS_URL!;
let n = 0;
const namespace = () => `cache${process.pid}_${Date.now()}_${n++}`;

function message(id: string, text: string): Message {
  return { id, at: '2025-01-01T00:00:01.000Z', author: { role: 'customer' }, text, visibility: 'public' };
}

/** Counts what reaches the store behind the cache. */
function counted(store: Store) {
  const calls = { full: 0, since: 0, sinceUnchanged: 0 };
  const wrapped = Object.create(store) as Store;
  wrapped.getConversation = async (id) => {
    calls.full++;
    return store.getConversation(id);
  };
  wrapped.getConversationSince = async (id, version, count) => {
    calls.since++;
    const read = await store.getConversationSince(id, version, count);
    if (read === 'unchanged') calls.sinceUnchanged++;
    return read;
  };
  wrapped.commit = (c) => store.commit(c);
  return { store: wrapped, calls };
}

async function say(store: Store, id: string, m: Message): Promise<number> {
  const current = (await store.getConversation(id))!;
  return store.commit({ conversation: { ...current, messages: [...current.messages, m] }, expectedVersion: current.version, appended: [m] });
}

describe('conversation cache', () => {
  const opened: RedisStore[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  async function twoInstances() {
    const ns = namespace();
    const here = await openRedisStore(REDIS_URL, { namespace: ns });
    const there = await openRedisStore(REDIS_URL, { namespace: ns });
    opened.push(here, there);
    const { store, calls } = counted(here);
    return { cache: new CachedStore(store, 10), calls, there };
  }

  async function create(store: Store, id: string, text = 'Hello'): Promise<Conversation> {
    const first = message(`${id}_m1`, text);
    await store.commit({ conversation: conversationFixture({ id, ticket: `HB-${id}`, messages: [first] }), expectedVersion: 0, appended: [first] });
    return (await store.getConversation(id))!;
  }

  it('reads the transcript once; later reads only ask whether the version moved', async () => {
    const { cache, calls } = await twoInstances();
    await create(cache, 'c1');
    expect((await cache.getConversation('c1'))!.messages.map((m) => m.text)).toEqual(['Hello']);
    await cache.getConversation('c1');
    expect(calls).toEqual({ full: 0, since: 3, sinceUnchanged: 3 }); // the commit filled the cache; create() read once too
  });

  it("sees another instance's commit: only the new messages are fetched", async () => {
    const { cache, calls, there } = await twoInstances();
    await create(cache, 'c2');
    await say(there, 'c2', message('c2_m2', 'from the other instance'));
    const read = (await cache.getConversation('c2'))!;
    expect(read.version).toBe(2);
    expect(read.messages.map((m) => m.text)).toEqual(['Hello', 'from the other instance']);
    expect(calls.full).toBe(0);
    expect(calls.since - calls.sinceUnchanged).toBe(1);
  });

  it('answers from the cache when the caller needs no newer version, and a commit from a stale copy conflicts and retries', async () => {
    const { cache, calls, there } = await twoInstances();
    await create(cache, 'c3');
    await say(there, 'c3', message('c3_m2', 'elsewhere'));
    const before = calls.since;
    const stale = (await cache.getConversation('c3', { atLeast: 1 }))!;
    expect(stale.version).toBe(1); // not asked: the caller accepted any version
    expect(calls.since).toBe(before);
    expect((await cache.getConversation('c3', { atLeast: 2 }))!.version).toBe(2); // too old for this caller: asked

    // The committer starts from the cache and, on conflict, from the store: nothing is lost.
    await say(there, 'c3', message('c3_m3', 'elsewhere again'));
    const committer = new Committer(cache, { workspaces: () => [] }, () => new Date(), silentLogger());
    const { conversation } = await committer.change('c3', (c) => {
      c.messages.push(message('c3_m4', 'here'));
    });
    expect(conversation.version).toBe(4);
    expect((await there.getConversation('c3'))!.messages.map((m) => m.text)).toEqual(['Hello', 'elsewhere', 'elsewhere again', 'here']);
  });

  it("tells the change feed of its own commit only once it holds that commit: a listener that reads at once is answered from the cache; another instance's commits are told as before", async () => {
    const { cache, calls, there } = await twoInstances();
    await create(cache, 'c7');
    const heard: Array<{ version: number; read: Promise<Conversation | undefined> }> = [];
    const unsubscribe = cache.onChange((notice) => {
      if (notice.conversationId === 'c7') heard.push({ version: notice.version, read: cache.getConversation('c7', { atLeast: notice.version, readOnly: true }) });
    });
    const before = { ...calls };
    await say(cache, 'c7', message('c7_m2', 'here'));
    expect(heard.map((h) => h.version)).toEqual([2]);
    expect((await heard[0]!.read)!.messages.map((m) => m.text)).toEqual(['Hello', 'here']);
    expect(calls.since - before.since).toBe(1); // say()'s own read; the listener's came from the cache
    expect(calls.full).toBe(before.full);

    await say(there, 'c7', message('c7_m3', 'elsewhere'));
    await waitFor(() => heard.length === 2, { what: "the other instance's commit to be heard" });
    expect((await heard[1]!.read)!.messages.map((m) => m.text)).toEqual(['Hello', 'here', 'elsewhere']);

    // A commit that fails still lets through what was heard meanwhile, and an unsubscribed listener hears nothing more.
    const stale = (await cache.getConversation('c7'))!;
    await expect(cache.commit({ conversation: stale, expectedVersion: 1, appended: [] })).rejects.toThrow();
    unsubscribe();
    await say(cache, 'c7', message('c7_m4', 'unheard'));
    expect(heard).toHaveLength(2);
  });

  it('hands out copies: a caller may change its header, but not a cached message', async () => {
    const { cache } = await twoInstances();
    await create(cache, 'c4');
    const first = (await cache.getConversation('c4'))!;
    first.state = 'closed';
    first.messages.push(message('x', 'not committed'));
    expect(() => {
      (first.messages[0] as { text: string }).text = 'edited';
    }).toThrow(TypeError);
    const again = (await cache.getConversation('c4'))!;
    expect(again.state).toBe('agent');
    expect(again.messages.map((m) => m.text)).toEqual(['Hello']);
  });

  it('gives read-only readers one frozen view per version; copies stay their own, and a commit makes a new view', async () => {
    const { cache, there } = await twoInstances();
    await create(cache, 'c5');
    const view = (await cache.getConversation('c5', { atLeast: 1, readOnly: true }))!;
    expect(await cache.getConversation('c5', { readOnly: true })).toBe(view); // checked, unchanged: the same object
    expect(() => {
      view.state = 'closed';
    }).toThrow(TypeError);
    expect(() => view.messages.push(message('x', 'not committed'))).toThrow(TypeError);
    expect(() => {
      view.customer.name = 'edited';
    }).toThrow(TypeError);
    const copy = (await cache.getConversation('c5'))!;
    copy.state = 'closed';
    expect(view.state).toBe('agent');

    await say(there, 'c5', message('c5_m2', 'later'));
    const next = (await cache.getConversation('c5', { readOnly: true }))!;
    expect(next).not.toBe(view);
    expect(next.messages.map((m) => m.text)).toEqual(['Hello', 'later']);
    expect(view.messages.map((m) => m.text)).toEqual(['Hello']); // the old view is untouched
  });

  it('keeps at most its size, dropping the least recently used', async () => {
    const { cache, calls } = await twoInstances();
    for (let i = 0; i < 12; i++) await create(cache, `lru${i}`);
    expect(cache.size).toBe(10);
    const full = calls.full;
    await cache.getConversation('lru0'); // dropped: read whole
    expect(calls.full).toBe(full + 1);
    await cache.getConversation('lru11'); // kept
    expect(calls.full).toBe(full + 1);
  });
});
