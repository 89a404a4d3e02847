/**
 * The lease loop with a real SQLite store: a lease a commit took for this instance starts at once,
 * even while the conversation's previous run here is still returning (it used to be given back
 * and wait for the next poll: a one-second stall in the closed-loop bench on Redis).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaseLoop } from '../../src/delivery/lease-loop.ts';
import { silentLogger } from '../../src/log.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { Lease, Store } from '../../src/store/store.ts';
import { conversationFixture } from '../support/conversations.ts';
import { waitFor } from '../support/harness.ts';

let dir: string;
let store: Store;
let loop: LeaseLoop | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lease-loop-'));
  store = await openSqliteStore(join(dir, 'store.sqlite'));
});

afterEach(async () => {
  await loop?.stop(1000);
  loop = undefined;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Commits one more work item for `dest`, leasing it in the same write (as the bridge's committer does). */
async function commitWork(id: string, dest: string): Promise<Lease[]> {
  const current = await store.getConversation(id);
  const conversation = current ?? { ...conversationFixture({ id }), messages: [], version: 0 };
  const { claimed } = await store.commitClaiming({
    conversation,
    expectedVersion: current?.version ?? 0,
    appended: [],
    work: [{ to: [dest], payload: { kind: 'turn' } }],
    claim: { destinations: [dest], leaseMs: 30_000 },
  });
  return claimed;
}

describe('the lease loop', () => {
  it('a lease adopted while the conversation’s last run is returning starts right after it, not at the next poll', async () => {
    const started: number[] = [];
    let finishTail!: () => void;
    const tail = new Promise<void>((resolve) => (finishTail = resolve));
    const leases = new LeaseLoop({
      store,
      destination: 'll-agent',
      logger: silentLogger(),
      leaseMs: 30_000,
      // A stall would wait this long: far beyond the test's patience.
      pollMs: 60_000,
      backoff: { initialMs: 20, maxMs: 100, factor: 2, jitter: 0 },
      async work(lease) {
        const item = lease.pending!.items.at(-1)!;
        started.push(item.seq);
        expect(await store.work.finish(lease, item.seq)).toBe(true);
        // The first run has given its lease back but is still returning.
        if (started.length === 1) await tail;
      },
    });
    loop = leases;
    leases.start();
    try {
      const [first] = await commitWork('ll-1', 'll-agent');
      expect(leases.adopt(first!)).toBe(true);
      await waitFor(() => started.length === 1, { what: 'the first run' });

      // New work, leased by its commit while the first run is still in the loop's hands.
      await waitFor(async () => (await store.work.pending('ll-agent', 'll-1')).items.length === 0, { what: 'the first lease given back' });
      const [second] = await commitWork('ll-1', 'll-agent');
      expect(second).toBeDefined();
      expect(leases.adopt(second!)).toBe(true);
      expect(started).toEqual([1]);
    } finally {
      finishTail();
    }
    await waitFor(() => started.length === 2, { timeoutMs: 2000, what: 'the second run, at once' });
    expect(started).toEqual([1, 2]);
  });
});
