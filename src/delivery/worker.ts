/**
 * One worker kind for every destination (the customer's channel, each workspace, the agent).
 *
 * A worker leases conversations whose work for its destination is due, does that work in log
 * order, moves the destination's cursor after each item, and gives the lease back. Conversations
 * run in parallel (up to `concurrency`), so a thread held by a 429 or a slow server holds nobody
 * else, and destinations are separate workers, so the customer never waits on Slack.
 *
 * Delivery is at least once: before each attempt the cursor records it (`begin`), so a retry, in
 * this process or another after a crash, knows that the effect may already have happened and
 * can look before doing it again. A dead instance's leases expire and another instance goes on.
 */
import { LeaseLostError } from '../errors.ts';
import { conversationLogger, withConversationContext, type Logger } from '../log.ts';
import type { Conversation } from '../model.ts';
import type { Cursor, Lease, Store, WorkItem } from '../store/store.ts';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.ts';
import { PermanentDeliveryError, RetryLaterError } from './outcome.ts';

/** What a destination knows while it does one item. */
export interface WorkContext {
  /** The conversation as committed when this batch was read (at least as new as the item). */
  conversation: Conversation;
  /** This attempt: `count` > 1 means an earlier attempt may have had its effect. */
  attempt: NonNullable<Cursor['attempt']>;
  lease: Lease;
  /** Items after this one already waiting for the same destination. */
  later: WorkItem[];
  /** Aborted when the lease is lost or the worker stops. */
  signal: AbortSignal;
}

export interface Destination {
  /** Also the name work items are addressed to. */
  readonly name: string;
  /**
   * Does one item. Resolving means done (the worker moves the cursor); `'committed'` means the
   * destination already moved the cursor in its own commit. Throw `RetryLaterError`,
   * `PermanentDeliveryError`, or anything else for "transient, retry with backoff".
   */
  handle(item: WorkItem, context: WorkContext): Promise<void | 'committed'>;
  /**
   * Whether each attempt at this item is recorded before it starts (default true). Only a
   * destination whose repeat is harmless without looking (a web chat frame, an agent turn that
   * commits its own cursor) says no, and saves two writes per item.
   */
  recordsAttempts?(item: WorkItem, conversation: Conversation): boolean;
  /** Called once when an item has failed `stuckAfter` times in a row (tell people; keep retrying), and when it was refused for good. */
  stuck?(item: WorkItem, context: WorkContext, error: unknown): Promise<void>;
}

export interface WorkerOptions {
  store: Store;
  destination: Destination;
  logger: Logger;
  /** Conversations worked on at once. */
  concurrency?: number;
  /** How long a lease lasts without renewal; a dead instance's work is taken over after this. */
  leaseMs?: number;
  /** Longest idle sleep before looking for due work again (retries and expired leases are found this way). */
  pollMs?: number;
  backoff?: BackoffPolicy;
  /** Failures in a row after which `destination.stuck` is called. */
  stuckAfter?: number;
}

export class DeliveryWorker {
  readonly name: string;
  private readonly store: Store;
  private readonly destination: Destination;
  private readonly logger: Logger;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly stuckAfter: number;
  private readonly active = new Map<string, { drain: Promise<void>; controller: AbortController }>();
  private running = false;
  private loop?: Promise<void>;
  private wakeUp?: () => void;
  private dirty = false;
  private unsubscribe?: () => void;
  private idleWaiters: Array<() => void> = [];

  constructor(options: WorkerOptions) {
    this.store = options.store;
    this.destination = options.destination;
    this.name = options.destination.name;
    this.logger = options.logger.child({ destination: this.name });
    this.concurrency = options.concurrency ?? 16;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.stuckAfter = options.stuckAfter ?? 5;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.store.onChange((notice) => {
      if (notice.destinations.includes(this.name)) this.wake();
    });
    this.loop = this.run();
  }

  /** Stops leasing, lets the items in progress finish (up to `graceMs`), then abandons the rest to lease expiry. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unsubscribe?.();
    this.wake();
    await this.loop;
    const drains = [...this.active.values()];
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([Promise.allSettled(drains.map((d) => d.drain)), timer])) === 'timeout') {
      this.logger.warn({ conversations: drains.length }, 'work still in progress at shutdown; leaving it to lease expiry');
      for (const d of drains) d.controller.abort(new Error('worker stopping'));
      await Promise.allSettled(drains.map((d) => d.drain));
    }
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  /** Look for due work now (new work was committed, or a destination came back). */
  wake(): void {
    this.dirty = true;
    const wake = this.wakeUp;
    this.wakeUp = undefined;
    wake?.();
  }

  /** Resolves when nothing is due or in progress for this destination (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      if (!this.running) return;
      if (this.active.size === 0 && !this.dirty) {
        const due = await this.store.work.nextDue(this.name).catch(() => Date.now());
        if (due === undefined) return;
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
          const leases = await this.store.work.lease(this.name, { limit: free, leaseMs: this.leaseMs });
          leased = leases.length;
          for (const lease of leases) this.startDrain(lease);
        }
        if (leased === 0 && free > 0) {
          const due = await this.store.work.nextDue(this.name);
          if (due !== undefined) wait = Math.max(0, Math.min(this.pollMs, due - Date.now()));
        }
        failures = 0;
      } catch (err) {
        failures += 1;
        wait = backoffDelay(failures, this.backoff);
        this.logger[failures > 3 ? 'error' : 'warn']({ err: String(err), retryInMs: wait }, 'could not look for work; the store is unavailable');
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

  private startDrain(lease: Lease): void {
    const controller = new AbortController();
    const drain = this.drain(lease, controller).finally(() => {
      this.active.delete(lease.conversationId);
      this.wake(); // a slot is free
    });
    this.active.set(lease.conversationId, { drain, controller });
  }

  /** Does the conversation's due work in order until it is done, fails, or the lease is lost. */
  private async drain(lease: Lease, controller: AbortController): Promise<void> {
    const renew = setInterval(() => {
      this.store.work.renew(lease, this.leaseMs).then(
        (held) => held || controller.abort(new LeaseLostError(lease.destination, lease.conversationId)),
        () => {}, // a store blip: the next renewal tries again; the lease outlives a few misses
      );
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    renew.unref();
    try {
      for (;;) {
        if (controller.signal.aborted) return;
        const { cursor, items } = await this.store.work.pending(this.name, lease.conversationId, 50);
        if (items.length === 0 || !this.running) {
          // Nothing addressed to us (or stopping): give the lease back, due now if work remains.
          if (await this.store.work.finish(lease, undefined, this.running ? undefined : Date.now())) return;
          continue;
        }
        let conversation = await this.store.getConversation(lease.conversationId);
        if (!conversation) {
          this.logger.error({ conversationId: lease.conversationId }, 'work for a conversation that does not exist; skipping it');
          await this.store.work.advance(lease, items.at(-1)!.seq);
          continue;
        }
        // Done but not yet written: items whose repeat is harmless are marked done together, at the end.
        let unwritten: number | undefined;
        for (let i = 0; i < items.length; i++) {
          if (controller.signal.aborted) return;
          if (!this.running) break;
          const item = items[i]!;
          const records = this.destination.recordsAttempts?.(item, conversation) ?? true;
          const previous = cursor.attempt?.seq === item.seq ? cursor.attempt : undefined;
          const attempt = records ? (await this.store.work.begin(lease, item.seq)).attempt! : { seq: item.seq, count: (previous?.count ?? 0) + 1, since: previous?.since ?? Date.now() };
          const context: WorkContext = { conversation, attempt, lease, later: items.slice(i + 1), signal: controller.signal };
          const outcome = await this.attempt(item, context);
          if (outcome === 'lost') return;
          if (outcome !== 'done' && outcome !== 'committed') {
            // Failed: keep what was done, remember the attempt (for the backoff), come back at retryAt.
            if (!records) await this.store.work.begin(lease, item.seq);
            await this.store.work.finish(lease, unwritten, outcome.retryAt);
            return;
          }
          if (outcome === 'committed') {
            // The destination moved the cursor itself and changed the conversation: later items see the new state.
            unwritten = undefined;
            conversation = (await this.store.getConversation(lease.conversationId)) ?? conversation;
          } else if (records) {
            // The next item's attempt record replaces this one's: mark this done first.
            if (i < items.length - 1) await this.store.work.advance(lease, item.seq);
            else unwritten = item.seq;
          } else {
            unwritten = item.seq;
          }
        }
        if (await this.store.work.finish(lease, unwritten, this.running ? undefined : Date.now())) return;
      }
    } catch (err) {
      if (err instanceof LeaseLostError) return;
      // The store failed between items: the lease expires and the work is picked up again.
      this.logger.warn({ conversationId: lease.conversationId, err: String(err) }, 'work interrupted by a store error; it will resume');
      await this.store.work.release(lease, Date.now() + backoffDelay(1, this.backoff)).catch(() => {});
    } finally {
      clearInterval(renew);
    }
  }

  /** One attempt at one item: `done`, `committed`, `lost`, or when to retry. */
  private async attempt(item: WorkItem, context: WorkContext): Promise<'done' | 'committed' | 'lost' | { retryAt: number }> {
    const { conversation, attempt } = context;
    const log = conversationLogger(this.logger, conversation);
    try {
      const result = await withConversationContext(conversation, () => this.destination.handle(item, context));
      if (attempt.count > 1) log.info({ seq: item.seq, kind: item.payload.kind, attempts: attempt.count }, 'delivered after retrying');
      return result === 'committed' ? 'committed' : 'done';
    } catch (err) {
      if (err instanceof LeaseLostError || (context.signal.aborted && context.signal.reason instanceof LeaseLostError)) return 'lost';
      if (err instanceof PermanentDeliveryError) {
        log.error({ seq: item.seq, kind: item.payload.kind, err: err.message }, `${this.name} refused this for good; moving on`);
        // A refusal is no reason to stay silent: the destination tells people what did not arrive.
        await this.destination.stuck?.(item, context, err).catch((e: unknown) => log.error({ err: describeError(e) }, 'could not report refused work'));
        return 'done';
      }
      const retryInMs = err instanceof RetryLaterError ? err.retryAfterMs : backoffDelay(attempt.count, this.backoff);
      const fields = { seq: item.seq, kind: item.payload.kind, attempts: attempt.count, retryInMs, err: describeError(err) };
      if (attempt.count >= this.stuckAfter) log.error(fields, `${this.name} keeps failing; retrying`);
      else log.warn(fields, `${this.name} failed; retrying this conversation only`);
      if (attempt.count === this.stuckAfter && this.destination.stuck) {
        await this.destination.stuck(item, context, err).catch((e: unknown) => log.error({ err: describeError(e) }, 'could not report stuck work'));
      }
      return { retryAt: Date.now() + retryInMs };
    }
  }
}

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
