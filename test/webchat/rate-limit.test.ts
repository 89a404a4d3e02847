import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../adapters/webchat/rate-limit.ts';

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
});
