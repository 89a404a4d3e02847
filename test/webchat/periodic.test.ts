import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Periodic } from '../../adapters/webchat/periodic.ts';

describe('periodic: one timer for many items on the same period', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs each item every period from when it was added, as a setInterval per item would', () => {
    const runs: Array<[string, number]> = [];
    const start = performance.now();
    const periodic = new Periodic<string>(1000, (item) => runs.push([item, Math.round(performance.now() - start)]));
    periodic.add('a');
    vi.advanceTimersByTime(300);
    periodic.add('b');
    vi.advanceTimersByTime(2500);
    expect(runs).toEqual([
      ['a', 1000],
      ['b', 1300],
      ['a', 2000],
      ['b', 2300],
    ]);
    // However many items, one timer.
    for (let i = 0; i < 100; i++) periodic.add(`x${i}`);
    expect(vi.getTimerCount()).toBe(1);
  });

  it('a deleted item stops; the last one gone leaves no timer; adding again starts afresh', () => {
    const runs: string[] = [];
    const periodic = new Periodic<string>(1000, (item) => runs.push(item));
    periodic.add('a');
    periodic.add('b');
    vi.advanceTimersByTime(1000);
    periodic.delete('a');
    vi.advanceTimersByTime(1000);
    expect(runs).toEqual(['a', 'b', 'b']);
    periodic.delete('b');
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(500);
    periodic.add('a');
    vi.advanceTimersByTime(999);
    expect(runs).toHaveLength(3);
    vi.advanceTimersByTime(1);
    expect(runs).toEqual(['a', 'b', 'b', 'a']);
    periodic.clear();
    vi.advanceTimersByTime(5000);
    expect(runs).toHaveLength(4);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an item deleted by an earlier item of the same round does not run; a throwing run does not stop the schedule', () => {
    const runs: string[] = [];
    const periodic = new Periodic<string>(1000, (item) => {
      runs.push(item);
      if (item === 'a') periodic.delete('b');
      if (item === 'c' && runs.length < 3) throw new Error('boom');
    });
    periodic.add('a');
    periodic.add('b');
    periodic.add('c');
    expect(() => vi.advanceTimersByTime(1000)).toThrow('boom');
    expect(runs).toEqual(['a', 'c']);
    vi.advanceTimersByTime(1000);
    expect(runs).toEqual(['a', 'c', 'a', 'c']);
    expect(periodic.size).toBe(2);
  });
});
