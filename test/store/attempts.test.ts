/**
 * Attempt records over runs of items (src/store/attempts.ts): a batch begins with one record, a
 * retry counts on from it, and nothing a run may have done is ever forgotten.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { afterFailure, attemptOn, beginAttempts, covers, type Attempt } from '../../src/store/attempts.ts';

describe('attempt records', () => {
  it('a fresh batch is one record whose items are all first attempts', () => {
    const record = beginAttempts(undefined, 5, 8, 1000);
    expect(record).toEqual({ seq: 5, count: 1, since: 1000, upTo: 8 });
    expect([5, 6, 7, 8].map((seq) => attemptOn(record, seq).count)).toEqual([1, 1, 1, 1]);
    expect(covers(record, 9)).toBe(false);
    // One item: no range.
    expect(beginAttempts(undefined, 5, 5, 1000)).toEqual({ seq: 5, count: 1, since: 1000 });
  });

  it('a retry counts on for the first item, covers what the last run may have done, and no more', () => {
    // A run recorded 5..8 and died (its done marks were not written yet): 6 and 7 may have happened.
    const crashed = beginAttempts(undefined, 5, 8, 1000);
    const retry = beginAttempts(crashed, 6, 12, 2000);
    expect(retry).toEqual({ seq: 6, count: 2, since: 1000, upTo: 8 });
    expect([6, 7, 8].map((seq) => attemptOn(retry, seq).count)).toEqual([2, 2, 2]);
    // 9..12 are not covered: the worker records them afresh when it gets there.
    expect(covers(retry, 9)).toBe(false);
    expect(beginAttempts(retry, 6, 12, 3000)).toMatchObject({ seq: 6, count: 3, since: 1000 });
  });

  it('after a failure only the failed item stays recorded, unless later ones came from an earlier run', () => {
    const fresh = beginAttempts(undefined, 5, 8, 1000);
    // 5 posted, 6 got a 429: 7 and 8 were never tried, so the retry does not look for them.
    const failed = afterFailure(attemptOn(fresh, 6), fresh);
    expect(failed).toEqual({ seq: 6, count: 1, since: 1000 });
    const retry = beginAttempts(failed, 6, 8, 2000);
    expect(retry).toEqual({ seq: 6, count: 2, since: 1000 });
    expect(covers(retry, 7)).toBe(false);
    // A retry record's later items may have happened in the crashed run: they stay covered.
    const inherited = beginAttempts(fresh, 5, 8, 2000);
    expect(afterFailure(attemptOn(inherited, 5), inherited)).toEqual({ seq: 5, count: 2, since: 1000, upTo: 8 });
  });

  it('whatever the runs, crashes and failures, an item a run may have acted on is covered when it is tried again', () => {
    // A model of one destination's worker over items 1..n: each run starts at the first item not
    // yet marked done, records its batch, acts on items in order, and ends by finishing (all done),
    // failing on one item (done up to the one before), or crashing (done marks not written).
    const step = fc.record({ batch: fc.integer({ min: 1, max: 5 }), acted: fc.integer({ min: 0, max: 5 }), end: fc.constantFrom('finish', 'fail', 'crash') });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 12 }), (runs) => {
        let done = 0;
        let record: Attempt | undefined;
        const mayHaveHappened = new Set<number>();
        for (const run of runs) {
          const first = done + 1;
          const last = first + run.batch - 1;
          // Advance clears a record that is entirely done.
          if (record && (record.upTo ?? record.seq) <= done) record = undefined;
          record = beginAttempts(record, first, last, 0);
          const acted = Math.min(run.acted, run.batch - 1);
          for (let seq = first; seq <= first + acted; seq++) {
            // The property: an item acted on before is seen as a repeat (count > 1) before it is acted on again.
            if (!covers(record, seq)) {
              // A new record in the batch marks the items before it done in the same write.
              done = seq - 1;
              for (const earlier of [...mayHaveHappened]) if (earlier <= done) mayHaveHappened.delete(earlier);
              record = beginAttempts(record?.seq !== undefined && (record.upTo ?? record.seq) <= done ? undefined : record, seq, last, 0);
            }
            if (mayHaveHappened.has(seq) && attemptOn(record, seq).count < 2) return false;
            mayHaveHappened.add(seq);
          }
          const stoppedAt = first + acted;
          if (run.end === 'finish') {
            done = stoppedAt;
            for (const seq of [...mayHaveHappened]) if (seq <= done) mayHaveHappened.delete(seq);
          } else if (run.end === 'fail') {
            done = stoppedAt - 1;
            for (const seq of [...mayHaveHappened]) if (seq <= done) mayHaveHappened.delete(seq);
            record = afterFailure(attemptOn(record, stoppedAt), record);
          }
          // crash: nothing written after the record.
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});
