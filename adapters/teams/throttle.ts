/**
 * Pacing for Teams: a per-thread sliding-window limiter that keeps the bot under Teams' published
 * per-thread limits, and the back-off (exponential, jittered, honouring Retry-After) used when
 * Teams answers 429 anyway. The math is pure; only `ThreadPacer.wait` sleeps.
 */

/** Teams' per-bot, per-thread limits: [window in ms, most requests in it]. */
export const TEAMS_THREAD_LIMITS: ReadonlyArray<readonly [number, number]> = [
  [1_000, 7],
  [2_000, 8],
  [30_000, 60],
  [3_600_000, 1_800],
];

/**
 * How long to wait from `now` before one more request fits every window, given the times of
 * earlier requests (ascending). 0 when it may go now.
 */
export function delayUntilAllowed(sent: readonly number[], now: number, limits = TEAMS_THREAD_LIMITS): number {
  let wait = 0;
  for (const [windowMs, max] of limits) {
    const inWindow = sent.filter((t) => t > now - windowMs);
    if (inWindow.length >= max) {
      // The oldest request that must leave the window before one more fits.
      const oldest = inWindow[inWindow.length - max]!;
      wait = Math.max(wait, oldest + windowMs - now);
    }
  }
  return Math.max(0, wait);
}

/**
 * Back-off before retry number `attempt` (1-based): exponential from `baseMs` capped at `maxMs`,
 * with full jitter so parallel senders spread out, but never sooner than the server's Retry-After.
 */
export function backoffDelay(attempt: number, retryAfterMs: number | undefined, opts: { baseMs: number; maxMs: number }, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.round(ceiling / 2 + random() * (ceiling / 2));
  if (retryAfterMs === undefined) return jittered;
  // Retry-After is a floor; a little jitter on top keeps every throttled sender from returning at once.
  return Math.round(retryAfterMs + random() * Math.min(opts.baseMs, retryAfterMs / 2 + 1));
}

/** `Retry-After` as milliseconds: seconds or an HTTP date. Undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null | undefined, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/**
 * Per-thread request history in this process; waits until the next request fits Teams' limits.
 * Windows are widened by `marginMs` because Teams counts arrivals, and requests take time to arrive.
 */
export class ThreadPacer {
  private readonly sent = new Map<string, number[]>();
  private readonly limits: ReadonlyArray<readonly [number, number]>;
  constructor(
    limits: ReadonlyArray<readonly [number, number]> = TEAMS_THREAD_LIMITS,
    private readonly now: () => number = Date.now,
    marginMs = 150,
  ) {
    this.limits = limits.map(([windowMs, max]) => [windowMs + marginMs, max] as const);
  }

  /** Reserves a slot for `thread`, sleeping first if needed. */
  async wait(thread: string): Promise<void> {
    for (;;) {
      const history = this.recent(thread);
      const delay = delayUntilAllowed(history, this.now(), this.limits);
      if (delay <= 0) {
        history.push(this.now());
        this.sent.set(thread, history);
        return;
      }
      await sleep(delay);
    }
  }

  /** Requests still inside the longest window; quiet threads are forgotten. */
  private recent(thread: string): number[] {
    const longest = Math.max(...this.limits.map(([w]) => w));
    const cutoff = this.now() - longest;
    const history = (this.sent.get(thread) ?? []).filter((t) => t > cutoff);
    if (history.length === 0) this.sent.delete(thread);
    return history;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
