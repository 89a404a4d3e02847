/**
 * The loop every worker kind shares: lease due conversations for one destination (up to
 * `concurrency` at once), hand each to `work`, and sleep until new work is committed (the change
 * feed), a slot frees, or the earliest due time comes (retries, timers, expired leases).
 */
import { LeaseLostError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Lease, Store } from '../store/store.ts';
import { backoffDelay, type BackoffPolicy } from './backoff.ts';

export interface LeaseLoopOptions {
  store: Store;
  destination: string;
  logger: Logger;
  leaseMs: number;
  backoff: BackoffPolicy;
  concurrency?: number;
  pollMs?: number;
  /** Record an attempt on each lease's first item in the lease's own write (destinations that record every attempt). */
  begin?: boolean;
  /** That record may wait a few ms to share another write's fsync (`Patience`). */
  patient?: boolean;
  /** Works on one leased conversation; the lease is renewed meanwhile and `controller` aborts if it is lost. */
  work(lease: Lease, controller: AbortController): Promise<void>;
}

export class LeaseLoop {
  running = false;
  private readonly concurrency: number;
  private readonly pollMs: number;
  private readonly active = new Map<string, { done: Promise<void>; controller: AbortController }>();
  private loop?: Promise<void>;
  private wakeUp?: () => void;
  private dirty = false;
  /** The last look filled every free slot: more may be due, so a freed slot looks again. */
  private saturated = false;
  private unsubscribe?: () => void;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: LeaseLoopOptions) {
    this.concurrency = options.concurrency ?? 16;
    this.pollMs = options.pollMs ?? 1_000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.options.store.onChange((notice) => {
      if (!notice.destinations.includes(this.options.destination) || notice.leased?.includes(this.options.destination)) return;
      // A run here holds that conversation: it takes the new work before it gives the lease back
      // (`finish`), and a look now would find the conversation leased. Look once the run ends, in
      // case it gave the lease back just before this commit.
      const running = this.active.get(notice.conversationId);
      if (running) void running.done.then(() => this.wake());
      else this.wake();
    });
    this.loop = this.run();
  }

  async stop(graceMs: number): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unsubscribe?.();
    this.wake();
    await this.loop;
    const active = [...this.active.values()];
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([Promise.allSettled(active.map((a) => a.done)), timer])) === 'timeout') {
      this.options.logger.warn({ conversations: active.length }, 'work still in progress at shutdown; leaving it to lease expiry');
      for (const a of active) a.controller.abort(new Error('worker stopping'));
      await Promise.allSettled(active.map((a) => a.done));
    }
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  /** Whether `adopt` would take a lease now. */
  get canAdopt(): boolean {
    return this.running && this.active.size < this.concurrency;
  }

  /**
   * Works on a lease taken elsewhere (a commit that leased its own new work for this worker).
   * False when this loop cannot take it now: the caller gives it back.
   */
  adopt(lease: Lease): boolean {
    if (!this.canAdopt) return false;
    const previous = this.active.get(lease.conversationId);
    if (!previous) {
      this.begin(lease);
      return true;
    }
    // Its last run here already gave the lease back (a commit could not have taken it otherwise)
    // and is returning: the new lease starts right after it, instead of waiting for a poll.
    void previous.done.then(() => this.begin(lease));
    return true;
  }

  /** Look again at `at` (epoch ms): work given back with a retry time. */
  dueAt(at: number): void {
    if (!this.running) return;
    setTimeout(() => this.wake(), Math.max(0, at - Date.now())).unref();
  }

  wake(): void {
    this.dirty = true;
    const wake = this.wakeUp;
    this.wakeUp = undefined;
    wake?.();
  }

  /** Resolves when nothing is in progress and nothing is due now (`includeLater`: nor at any later time). */
  async idle(options: { includeLater: boolean }): Promise<void> {
    for (;;) {
      if (!this.running) return;
      if (this.active.size === 0 && !this.dirty) {
        const due = await this.options.store.work.nextDue(this.options.destination).catch(() => Date.now());
        if (due === undefined || (!options.includeLater && due > Date.now())) return;
      }
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        setTimeout(resolve, 20).unref();
      });
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      this.dirty = false;
      let leased = 0;
      let wait = this.pollMs;
      const free = this.concurrency - this.active.size;
      try {
        if (free > 0) {
          const leases = await this.options.store.work.lease(this.options.destination, { limit: free, leaseMs: this.options.leaseMs, ...(this.options.begin ? { begin: true } : {}), patient: this.options.patient === true });
          leased = leases.length;
          this.saturated = leased > 0 && leased === free;
          for (const lease of leases) this.begin(lease);
        }
        if (leased === 0 && free > 0) {
          const due = await this.options.store.work.nextDue(this.options.destination);
          if (due !== undefined) wait = Math.max(0, Math.min(this.pollMs, due - Date.now()));
        }
        failures = 0;
      } catch (err) {
        failures += 1;
        wait = backoffDelay(failures, this.options.backoff);
        this.options.logger[failures > 3 ? 'error' : 'warn']({ err: String(err), retryInMs: wait }, 'could not look for work; the store is unavailable');
      }
      if (!this.running) break;
      if (leased > 0 && leased === free) continue; // maybe more due: look again once a slot frees
      if (this.dirty) continue;
      if (this.active.size === 0) for (const waiter of this.idleWaiters.splice(0)) waiter();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wakeUp = undefined;
          resolve();
        }, wait);
        timer.unref();
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Runs `work` on one lease, renewing it meanwhile; a lost lease aborts the work. */
  private begin(lease: Lease): void {
    const controller = new AbortController();
    const { store, leaseMs } = this.options;
    const renew = setInterval(() => {
      store.work.renew(lease, leaseMs).then(
        (held) => held || controller.abort(new LeaseLostError(lease.destination, lease.conversationId)),
        () => {}, // a store blip: the next renewal tries again; the lease outlives a few misses
      );
    }, Math.max(50, Math.floor(leaseMs / 3)));
    renew.unref();
    const done = this.options
      .work(lease, controller)
      .catch((err: unknown) => this.options.logger.error({ err: String(err), conversationId: lease.conversationId }, 'work failed unexpectedly'))
      .finally(() => {
        clearInterval(renew);
        this.active.delete(lease.conversationId);
        // A freed slot looks for more only when the last look may have left some; new work wakes
        // the loop through the change feed, and a retry through `dueAt`.
        if (this.saturated) this.wake();
      });
    this.active.set(lease.conversationId, { done, controller });
  }
}
