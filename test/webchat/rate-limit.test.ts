import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../adapters/webchat/rate-limit.ts';

/** The plain token bucket the limiter must answer like: tokens refilled continuously, capped at the burst. */
class ReferenceBucket {
  private tokens: number;
  private at: number;
  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }
  take(now: number): { ok: true } | { ok: false; retryAfterMs: number } {
    const perMs = this.perMinute / 60_000;
    this.tokens = Math.min(this.burst, this.tokens + Math.max(0, now - this.at) * perMs);
    this.at = now;
    if (this.tokens >= 1 - 1e-9) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil((1 - this.tokens) / perMs) };
  }
}

describe('rate limit', () => {
  it('allows a burst, refuses the next with a wait time, and recovers as time passes', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 6, burst: 3, now: () => now });
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')].every((r) => r.ok)).toBe(true);
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterMs: 10_000 });
    expect(limiter.take('b').ok).toBe(true); // another conversation is not affected
    now += 10_000;
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(false);
  });

  it('forgets idle keys without changing the answer', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 60, burst: 1, now: () => now, idleMs: 1000 });
    limiter.take('a');
    now += 5000;
    expect(limiter.take('a').ok).toBe(true);
  });

  it('answers as a token bucket does, for any pattern of takes', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (const [perMinute, burst] of [
      [6, 3],
      [20, 5],
      [120, 30],
      [7, 1],
    ] as const) {
      let now = 1_700_000_000_000;
      let refused = 0;
      const limiter = new RateLimiter({ perMinute, burst, now: () => now, idleMs: 5000 });
      const references = new Map<string, ReferenceBucket>();
      for (let i = 0; i < 3000; i++) {
        now += Math.floor(random() * (20_000 / perMinute));
        const key = `k${Math.floor(random() * 4)}`;
        const reference = references.get(key) ?? new ReferenceBucket(perMinute, burst, now);
        references.set(key, reference);
        const expected = reference.take(now);
        const got = limiter.take(key);
        refused += got.ok ? 0 : 1;
        expect(got.ok, `take ${i} (${perMinute}/min, burst ${burst})`).toBe(expected.ok);
        if (!got.ok && !expected.ok) expect(Math.abs(got.retryAfterMs - expected.retryAfterMs)).toBeLessThanOrEqual(1);
      }
      // Both answers were exercised, many times.
      expect(refused).toBeGreaterThan(100);
      expect(refused).toBeLessThan(2700);
    }
  });

  it('a key whose bucket is full again is forgotten soon, with no sweep needed', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 60, burst: 5, now: () => now });
    for (let i = 0; i < 1000; i++) limiter.take(`visitor-${i}`);
    expect(limiter.size).toBe(1000);
    now += 1000; // one token back: every bucket is full again
    // Each take forgets up to two full buckets, the least recently used first.
    for (let i = 0; i < 600; i++) limiter.take(`later-${i}`);
    expect(limiter.size).toBe(600);
    now += 1000;
    for (let i = 0; i < 300; i++) limiter.take(`last-${i}`);
    expect(limiter.size).toBe(300);
  });

  it('a bucket kept by its caller (one per socket) follows the same rule', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 6, burst: 3, now: () => now });
    let bucket: number | undefined;
    for (let i = 0; i < 3; i++) {
      const next = limiter.takeFrom(bucket);
      expect(next).toBeTypeOf('number');
      bucket = next;
    }
    expect(limiter.takeFrom(bucket)).toBeUndefined();
    now += 10_000;
    expect(limiter.takeFrom(bucket)).toBeTypeOf('number');
    expect(limiter.size).toBe(0); // nothing is kept for it
  });
});
