/**
 * The Slack directory keeps the thread roots it read or recorded: a root is recorded once and never
 * replaced, so a mirror does not read the store for it again. An unknown thread is always asked
 * for: another instance may open it at any moment.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SlackDirectory } from '../../adapters/slack/directory.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { KeyValue, Store } from '../../src/store/store.ts';

let store: Store;
beforeEach(async () => {
  store = await openSqliteStore(':memory:');
});
afterEach(() => store.close());

/** The store's own key-value space, with its reads counted on the way through. */
function countedKv(): { kv: KeyValue; reads: () => number } {
  const kv = store.kv('slack');
  let reads = 0;
  const counted: KeyValue = Object.create(kv);
  counted.get = (key) => {
    reads += 1;
    return kv.get(key);
  };
  return { kv: counted, reads: () => reads };
}

describe('SlackDirectory thread roots', () => {
  it('the instance that opened the thread answers from memory', async () => {
    const { kv, reads } = countedKv();
    const directory = new SlackDirectory(kv);
    await directory.setThread('conv_a', { channel: 'C1', ts: '1.000001' });
    expect(await directory.thread('conv_a')).toEqual({ channel: 'C1', ts: '1.000001' });
    expect(await directory.thread('conv_a')).toEqual({ channel: 'C1', ts: '1.000001' });
    expect(reads()).toBe(0);
    // Replies in the thread are recognised through the store, by any instance.
    expect(await new SlackDirectory(store.kv('slack')).conversationAt('C1', '1.000001')).toBe('conv_a');
  });

  it('another instance reads the root once, then keeps it', async () => {
    await new SlackDirectory(store.kv('slack')).setThread('conv_b', { channel: 'C1', ts: '2.000001' });
    const { kv, reads } = countedKv();
    const other = new SlackDirectory(kv);
    for (let i = 0; i < 3; i++) expect(await other.thread('conv_b')).toEqual({ channel: 'C1', ts: '2.000001' });
    expect(reads()).toBe(1);
  });

  it('a thread not opened yet is asked for every time, so one opened elsewhere is seen at once', async () => {
    const { kv, reads } = countedKv();
    const directory = new SlackDirectory(kv);
    expect(await directory.thread('conv_c')).toBeUndefined();
    await new SlackDirectory(store.kv('slack')).setThread('conv_c', { channel: 'C2', ts: '3.000001' });
    expect(await directory.thread('conv_c')).toEqual({ channel: 'C2', ts: '3.000001' });
    expect(reads()).toBe(2);
  });
});
