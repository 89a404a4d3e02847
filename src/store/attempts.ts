/**
 * Attempt records: written before a destination acts on items, so a retry (in this process or
 * another, after a crash) knows the effect may already have happened and looks before acting again.
 * One record covers a run of items (`seq`..`upTo`), so a batch begins with one write, not one per
 * item. `count` is the first item's; each later item in the run was attempted at most once before.
 * A failed attempt narrows the record to its own item (the run stopped there), so the items after
 * it are not looked up for nothing on the retry.
 */
import type { Cursor } from './store.ts';

export type Attempt = NonNullable<Cursor['attempt']>;

/** The last item the record covers. */
export function attemptEnd(attempt: Attempt): number {
  return attempt.upTo ?? attempt.seq;
}

/** Whether the record says an attempt on `seq` may have begun. */
export function covers(attempt: Attempt | undefined, seq: number): boolean {
  return attempt !== undefined && attempt.seq <= seq && seq <= attemptEnd(attempt);
}

/**
 * The record for attempts beginning on items `seq`..`upTo`. When the last record covered `seq`,
 * this is a retry: `seq` counts on, and the record keeps covering what the last one did (those
 * items may have been attempted) but no more. Otherwise every item in the run is a first attempt.
 */
export function beginAttempts(previous: Attempt | undefined, seq: number, upTo: number, now: number): Attempt {
  if (previous && covers(previous, seq)) {
    const end = attemptEnd(previous);
    return { seq, count: seq === previous.seq ? previous.count + 1 : 2, since: previous.since, ...(end > seq ? { upTo: end } : {}) };
  }
  return { seq, count: 1, since: now, ...(upTo > seq ? { upTo } : {}) };
}

/** The attempt on item `seq` as the record covering it tells it. */
export function attemptOn(record: Attempt, seq: number): Attempt {
  return { seq, count: seq === record.seq ? record.count : Math.min(record.count, 2), since: record.since };
}

/**
 * What stays recorded after `attempt` failed (the run stops there): the failed item with its count,
 * and the later items only if `record` inherited them from an earlier run (they may have happened).
 */
export function afterFailure(attempt: Attempt, record: Attempt | undefined): Attempt {
  const inherited = record && record.count > 1 && attemptEnd(record) > attempt.seq ? attemptEnd(record) : undefined;
  return { seq: attempt.seq, count: attempt.count, since: attempt.since, ...(inherited ? { upTo: inherited } : {}) };
}
