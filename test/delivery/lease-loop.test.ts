/**
 * The lease loop with a real SQLite store: a lease a commit took for this instance starts at once,
 * even while the conversation's previous run here is still returning (it used to be given back
 * and wait for the next poll: a one-second stall in the closed-loop bench on Redis). New work for
 * a conversation a run here holds is that run's to take: the loop does not look for it meanwhile
 * (a look would find the conversation leased), only once the run ends.
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

/** Commits one more work item for `dest`, leasing it in the same write (as the bridge's committer does) unless `claim` is false. */
async function commitWork(id: string, dest: string, claim = true): Promise<Lease[]> {
  const current = await store.getConversation(id);
  const conversation = current ?? { ...conversationFixture({ id }), messages: [], version: 0 };
  const { claimed } = await store.commitClaiming({
    conversation,
    expectedVersion: current?.version ?? 0,
    appended: [],
    work: [{ to: [dest], payload: { kind: 'turn' } }],
    ...(claim ? { claim: { destinations: [dest], leaseMs: 30_000 } } : {}),
  });
  return claimed;
}

/** Counts the loop's own looks for work (the real store's `lease`, counted on the way through). */
function countLooks(): { readonly looks: number } {
  const counter = { looks: 0 };
  const lease = store.work.lease.bind(store.work);
  store.work.lease = (...args) => {
    counter.looks += 1;
    return lease(...args);
  };
  return counter;
}

/** Works like a delivery worker: every pending item in turn, until `finish` gives the lease back. */
async function drainAll(lease: Lease, seen: number[], during?: (seq: number) => Promise<void>): Promise<void> {
  let batch = lease.pending ?? (await store.work.pending(lease.destination, lease.conversationId));
  for (;;) {
    for (const item of batch.items) {
      seen.push(item.seq);
      await during?.(item.seq);
    }
    if (await store.work.finish(lease, batch.items.at(-1)?.seq)) return;
    batch = await store.work.pending(lease.destination, lease.conversationId);
  }
}

const quietLoop = (work: (lease: Lease) => Promise<void>) =>
  new LeaseLoop({
    store,
    destination: 'll-agent',
    logger: silentLogger(),
    leaseMs: 30_000,
    // A missed look would wait this long: far beyond the test's patience.
    pollMs: 60_000,
    backoff: { initialMs: 20, maxMs: 100, factor: 2, jitter: 0 },
    work,
  });

describe('the lease loop', () => {
  it('a lease adopted while the conversation’s last run is returning starts right after it, not at the next poll', async () => {
    const started: number[] = [];
    let finishTail!: () => void;
    const tail = new Promise<void>((resolve) => (finishTail = resolve));
    const leases = quietLoop(async (lease) => {
      const item = lease.pending!.items.at(-1)!;
      started.push(item.seq);
      expect(await store.work.finish(lease, item.seq)).toBe(true);
      // The first run has given its lease back but is still returning.
      if (started.length === 1) await tail;
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

  it('new work for a conversation a run here holds goes to that run; the loop does not look for it meanwhile', async () => {
    const seen: number[] = [];
    let looksDuringRun: number | undefined;
    const leases = quietLoop((lease) =>
      drainAll(lease, seen, async (seq) => {
        // While the first item is worked on, another instance commits more (its commit leases nothing for us).
        if (seq === 1) await commitWork('ll-2', 'll-agent', false);
        if (seq === 2) {
          await new Promise((r) => setTimeout(r, 50)); // time enough for a look the notice would have set off
          looksDuringRun = counter.looks;
        }
      }),
    );
    loop = leases;
    leases.start(); // its first look happens here
    const counter = countLooks();
    const [first] = await commitWork('ll-2', 'll-agent');
    expect(leases.adopt(first!)).toBe(true);
    await waitFor(() => looksDuringRun !== undefined, { timeoutMs: 2000, what: 'both items, by the one run' });
    expect(seen).toEqual([1, 2]);
    expect(looksDuringRun).toBe(0);
    await leases.idle({ includeLater: false });
    // One look, once the run ended (in case it had given the lease back just before).
    expect(counter.looks).toBe(1);
  });

  it('work committed just after the run gave its lease back (and before it ended) starts when the run ends, not at the next poll', async () => {
    const seen: number[] = [];
    let finishTail!: () => void;
    const tail = new Promise<void>((resolve) => (finishTail = resolve));
    const leases = quietLoop(async (lease) => {
      await drainAll(lease, seen);
      if (seen.length === 1) await tail; // the lease is given back; the run is still returning
    });
    loop = leases;
    leases.start();
    const [first] = await commitWork('ll-3', 'll-agent');
    expect(leases.adopt(first!)).toBe(true);
    await waitFor(async () => seen.length === 1 && (await store.work.pending('ll-agent', 'll-3')).items.length === 0, { what: 'the first lease given back' });
    await commitWork('ll-3', 'll-agent', false);
    expect(seen).toEqual([1]);
    finishTail();
    await waitFor(() => seen.length === 2, { timeoutMs: 2000, what: 'the new work, as soon as the run ended' });
    expect(seen).toEqual([1, 2]);
  });
});
