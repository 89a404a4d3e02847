/**
 * A token bucket per key: a burst of `burst` messages, refilled at `perMinute`. Pure apart from the
 * injected clock, so tests move time instead of sleeping.
 *
 * A bucket is kept as one number, the time at which it would be full again (the generic cell rate
 * algorithm: the same answers as counting tokens). A bucket that is full again is the same as no
 * bucket, so it is forgotten: each take looks at the two least recently used keys and drops them if
 * they are full, and a sweep now and then catches the rest. An idle visitor soon costs nothing.
 */
export interface RateLimitOptions {
  perMinute: number;
  burst: number;
  now: () => number;
  /** How often buckets that are full again are forgotten (default a minute). */
  idleMs?: number;
}

export class RateLimiter {
  /** key -> when its bucket is full again. */
  private readonly fullAt = new Map<string, number>();
  /** Milliseconds one token takes to come back. */
  private readonly interval: number;
  /** How far ahead of now `fullAt` may be with a token still left. */
  private readonly tolerance: number;
  private lastSweep: number;

  constructor(private readonly options: RateLimitOptions) {
    this.interval = 60_000 / options.perMinute;
    this.tolerance = (options.burst - 1) * this.interval;
    this.lastSweep = options.now();
  }

  /** Takes one token for `key`: `ok` when allowed, else how long until the next one. */
  take(key: string): { ok: true } | { ok: false; retryAfterMs: number } {
    const now = this.options.now();
    this.sweep(now);
    const from = this.start(this.fullAt.get(key), now);
    const wait = from - now - this.tolerance;
    if (wait > 0) return { ok: false, retryAfterMs: Math.ceil(wait) };
    // Moved to the back: the map stays in order of last use, the keys most likely full at the front.
    this.fullAt.delete(key);
    this.fullAt.set(key, from + this.interval);
    this.forgetOldest(now);
    return { ok: true };
  }

  /** Keys remembered: buckets not yet known to be full again (for tests). */
  get size(): number {
    return this.fullAt.size;
  }

  /**
   * Takes one token from a bucket the caller keeps itself (one per socket, say: it goes with the
   * socket, with no key to forget). `bucket` is what the last call returned (undefined at first).
   * Returns the bucket's new value when allowed, undefined when refused.
   */
  takeFrom(bucket: number | undefined): number | undefined {
    const now = this.options.now();
    const from = this.start(bucket, now);
    return from - now > this.tolerance ? undefined : from + this.interval;
  }

  /** Where a bucket's next token is counted from: when it is full again, or now if it already is. */
  private start(fullAt: number | undefined, now: number): number {
    return fullAt === undefined || fullAt < now ? now : fullAt;
  }

  private forgetOldest(now: number): void {
    let looked = 0;
    for (const [key, fullAt] of this.fullAt) {
      if (fullAt > now || ++looked > 2) return;
      this.fullAt.delete(key);
    }
  }

  private sweep(now: number): void {
    const every = this.options.idleMs ?? 60_000;
    if (now - this.lastSweep < every) return;
    this.lastSweep = now;
    for (const [key, fullAt] of this.fullAt) if (fullAt <= now) this.fullAt.delete(key);
  }
}
