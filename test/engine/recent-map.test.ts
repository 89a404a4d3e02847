import { describe, expect, it } from 'vitest';
import { RecentMap } from '../../src/recent-map.ts';

describe('RecentMap', () => {
  it('keeps at most its limit, dropping the entry used longest ago', () => {
    const m = new RecentMap<string, number>(2);
    m.set('a', 1).set('b', 2);
    expect(m.get('a')).toBe(1); // a is now the most recent
    m.set('c', 3);
    expect([m.peek('a'), m.peek('b'), m.peek('c')]).toEqual([1, undefined, 3]);
    expect(m.size).toBe(2);
  });

  it('a peek does not count as a use; setting again does', () => {
    const m = new RecentMap<string, number>(2);
    m.set('a', 1).set('b', 2);
    m.peek('a');
    m.set('c', 3);
    expect(m.peek('a')).toBeUndefined();
    m.set('b', 20).set('d', 4);
    expect([m.peek('b'), m.peek('c'), m.peek('d')]).toEqual([20, undefined, 4]);
  });
});
