/**
 * Keeps the Home tab of operators who opened it recently in step with the queue. Opening the tab
 * (or Refresh) records the user in the store (kv `home:viewers`, so the instance whose worker sees
 * the change refreshes them). A queue change schedules one round after `debounceMs`; changes
 * meanwhile join it, and rounds start at least `minIntervalMs` apart. A round builds the view once
 * and publishes it to at most `maxViewers` users, most recent first, skipping anyone who already
 * has that exact view. A 429 or an outage ends the round (the next change tries again); a refusal
 * for one user skips that user. Bounded: one timer, one round in flight, one pending.
 */
import type { Logger } from '../../src/log.ts';
import type { KeyValue } from '../../src/store/store.ts';
import { RetryLaterError } from '../../src/delivery/outcome.ts';
import { SlackRefusedError, SlackUnavailableError } from './api.ts';

export interface LiveHomeOptions {
  /** Wait after the first change for more before publishing (ms). */
  debounceMs: number;
  /** Least time between the starts of two rounds (ms). */
  minIntervalMs: number;
  /** How long after opening the tab a user keeps getting live refreshes (ms). */
  recentMs: number;
  /** Most users refreshed per round (views.publish is rate-limited per workspace). */
  maxViewers: number;
}

/** About 80 publishes a minute at most: within views.publish's Tier 4 (100+ per minute). */
export const LIVE_HOME_DEFAULTS: LiveHomeOptions = { debounceMs: 2000, minIntervalMs: 15_000, recentMs: 15 * 60_000, maxViewers: 20 };

const VIEWERS_KEY = 'home:viewers';

/** Most views remembered to skip unchanged publishes (a bound; forgetting only costs a publish). */
const MAX_REMEMBERED = 1000;

/** A viewer recorded more recently than this is not written again when they reopen the tab. */
const REWRITE_AFTER_MS = 60_000;

type Viewers = Record<string, number>;

export interface LiveHomeDeps {
  kv: KeyValue;
  /** The Home view as it is now (built once per round). */
  view(): Promise<Record<string, unknown>>;
  /** views.publish for one user; throws what SlackApi throws. */
  publish(user: string, view: Record<string, unknown>): Promise<void>;
  logger: Logger;
  now?: () => number;
}

export class LiveHome {
  private readonly options: LiveHomeOptions;
  private readonly now: () => number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  /** A change arrived while a round ran: another round follows it. */
  private dirty = false;
  private lastRoundAt = 0;
  private stopped = false;
  /** The view each user was last given (JSON), to skip a publish that changes nothing. */
  private readonly shown = new Map<string, string>();

  constructor(
    private readonly deps: LiveHomeDeps,
    options: Partial<LiveHomeOptions> = {},
  ) {
    this.options = { ...LIVE_HOME_DEFAULTS, ...options };
    this.now = deps.now ?? Date.now;
  }

  /** `user` opened the tab (or pressed Refresh) and was given `view`. */
  async opened(user: string, view: Record<string, unknown>): Promise<void> {
    this.remember(user, view);
    try {
      const now = this.now();
      const stored = this.recent(await this.deps.kv.get<Viewers>(VIEWERS_KEY), now);
      // Recorded a moment ago already: no write.
      if ((stored[user] ?? 0) > now - REWRITE_AFTER_MS) return;
      await this.deps.kv.set(VIEWERS_KEY, this.trim({ ...stored, [user]: now }), this.options.recentMs);
    } catch (err) {
      this.deps.logger.warn({ user, err: (err as Error)?.message }, 'could not record a home tab viewer');
    }
  }

  /** The queue changed: schedule a round (never throws, never waits). */
  changed(): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.timer) return;
    const wait = Math.max(this.options.debounceMs, this.lastRoundAt + this.options.minIntervalMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.round().finally(() => {
        this.running = undefined;
        if (this.dirty) {
          this.dirty = false;
          this.changed();
        }
      });
    }, wait);
    this.timer.unref?.();
  }

  /** Resolves when no round is running (a scheduled one may still come). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Rounds may run (again, after `stop`). */
  start(): void {
    this.stopped = false;
  }

  /** No more rounds; waits for one in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = false;
    await this.running;
  }

  private async round(): Promise<void> {
    this.lastRoundAt = this.now();
    try {
      const viewers = Object.entries(this.recent(await this.deps.kv.get<Viewers>(VIEWERS_KEY), this.lastRoundAt))
        .sort((a, b) => b[1] - a[1])
        .slice(0, this.options.maxViewers)
        .map(([user]) => user);
      if (viewers.length === 0) return;
      const view = await this.deps.view();
      const json = JSON.stringify(view);
      for (const user of viewers) {
        if (this.stopped) return;
        if (this.shown.get(user) === json) continue;
        try {
          await this.deps.publish(user, view);
          this.remember(user, view, json);
        } catch (err) {
          if (!(err instanceof SlackRefusedError)) throw err;
          this.deps.logger.warn({ user, err: err.code }, 'slack refused a live home tab refresh');
        }
      }
    } catch (err) {
      const level = err instanceof RetryLaterError || err instanceof SlackUnavailableError ? 'info' : 'warn';
      this.deps.logger[level]({ err: (err as Error)?.message }, 'live home tab refresh stopped; the next change tries again');
    }
  }

  private remember(user: string, view: Record<string, unknown>, json = JSON.stringify(view)): void {
    if (this.shown.size >= MAX_REMEMBERED && !this.shown.has(user)) this.shown.clear();
    this.shown.set(user, json);
  }

  /** Viewers who opened the tab within `recentMs`, from whatever the store holds. */
  private recent(stored: unknown, now: number): Viewers {
    const out: Viewers = {};
    if (!stored || typeof stored !== 'object' || Array.isArray(stored)) return out;
    for (const [user, at] of Object.entries(stored as Record<string, unknown>)) {
      if (typeof at === 'number' && at > now - this.options.recentMs) out[user] = at;
    }
    return out;
  }

  /** The `maxViewers` most recent. */
  private trim(viewers: Viewers): Viewers {
    return Object.fromEntries(Object.entries(viewers).sort((a, b) => b[1] - a[1]).slice(0, this.options.maxViewers));
  }
}
