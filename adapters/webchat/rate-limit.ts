/**
 * A token bucket per key: a burst of `burst` messages, refilled at `perMinute`. Pure apart from the
 * injected clock, so tests move time instead of sleeping.
 */
export interface RateLimitOptions {
  perMinute: number;
  burst: number;
  now: () => number;
  /** Buckets idle this long are forgotten (they would be full again anyway). */
  idleMs?: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private lastSweep: number;

  constructor(private readonly options: RateLimitOptions) {
    this.lastSweep = options.now();
  }

  /** Takes one token for `key`: `ok` when allowed, else how long until the next one. */
  take(key: string): { ok: true } | { ok: false; retryAfterMs: number } {
    const now = this.options.now();
    this.sweep(now);
    const { perMinute, burst } = this.options;
    const perMs = perMinute / 60_000;
    const bucket = this.buckets.get(key) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + Math.max(0, now - bucket.at) * perMs);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil((1 - bucket.tokens) / perMs) };
  }

  private sweep(now: number): void {
    const idleMs = this.options.idleMs ?? 10 * 60_000;
    if (now - this.lastSweep < idleMs) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) if (now - bucket.at > idleMs) this.buckets.delete(key);
  }
}
