import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * SQLite (3.4x and later) plans a query with the value bound to its LIMIT, so a statement with
 * `LIMIT ?` is prepared again every time it runs: about four times the cost of the query itself,
 * on statements the delivery workers run for every batch. The store's statements keep their
 * LIMIT a constant and stop an open-ended read early instead (`firstRows`).
 */
describe('the SQLite store statements', () => {
  const source = readFileSync(new URL('../../src/store/sqlite.ts', import.meta.url), 'utf8');

  it('bind no LIMIT', () => {
    const bound = source.split('\n').filter((line) => /\bLIMIT\s+(\?|[@:$]\w)/i.test(line));
    expect(bound).toEqual([]);
  });
});
