/**
 * Pacing for Teams: a per-thread sliding-window limiter that keeps the bot under Teams' published
 * per-thread limits, and how long to stay away after a 429. A short pacing wait is slept inline
 * (the thread's next message is due within a second or two); a long one becomes `RetryLaterError`,
 * so the delivery worker holds only this conversation and nothing sleeps for minutes.
 */
import { RetryLaterError } from '../../src/delivery/outcome.ts';

/** Teams' per-bot, per-thread limits: [window in ms, most requests in it]. */
export const TEAMS_THREAD_LIMITS: ReadonlyArray<readonly [number, number]> = [
  [1_000, 7],
  [2_000, 8],
  [30_000, 60],
  [3_600_000, 1_800],
];

/** Longest pacing wait slept inline; anything longer is handed back to the delivery worker. */
export const MAX_INLINE_PACE_MS = 3_000;

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
 * How long to stay away after a 429: the server's Retry-After (never sooner) plus a little jitter,
 * or, without one (Teams may omit it), a jittered wait between `minMs` and three times it.
 */
export function throttledDelay(retryAfterMs: number | undefined, minMs: number, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return Math.round(retryAfterMs + random() * Math.min(250, retryAfterMs / 10));
  return Math.round(minMs + random() * 2 * minMs);
}

/**
 * Per-thread request history in this process (the delivery worker's lease means one instance
 * sends for a conversation at a time). Windows are widened by `marginMs` because Teams counts
 * arrivals, and requests take time to arrive.
 */
export class ThreadPacer {
  private readonly sent = new Map<string, number[]>();
  private readonly limits: ReadonlyArray<readonly [number, number]>;
  constructor(
    limits: ReadonlyArray<readonly [number, number]> = TEAMS_THREAD_LIMITS,
    private readonly now: () => number = Date.now,
    marginMs = 150,
    private readonly maxInlineMs = MAX_INLINE_PACE_MS,
  ) {
    this.limits = limits.map(([windowMs, max]) => [windowMs + marginMs, max] as const);
  }

  /**
   * Reserves a slot for `thread`, sleeping first if the wait is short. Throws `RetryLaterError`
   * (nothing reserved) when the thread must wait longer than `maxInlineMs`.
   */
  async reserve(thread: string): Promise<void> {
    for (;;) {
      const history = this.recent(thread);
      const delay = delayUntilAllowed(history, this.now(), this.limits);
      if (delay <= 0) {
        history.push(this.now());
        this.sent.set(thread, history);
        return;
      }
      if (delay > this.maxInlineMs) throw new RetryLaterError(delay, `Teams' per-thread limit: this thread may post again in ${delay} ms.`);
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
