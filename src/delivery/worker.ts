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
import { conversationLogger, type Logger } from '../log.ts';
import type { Conversation } from '../model.ts';
import { afterFailure, attemptOn, covers } from '../store/attempts.ts';
import type { Cursor, Lease, Patience, Store, WorkItem } from '../store/store.ts';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.ts';
import { LeaseLoop } from './lease-loop.ts';
import { PermanentDeliveryError, RetryLaterError } from './outcome.ts';

/** What a destination knows while it does one item. */
export interface WorkContext {
  /** The conversation as committed when this batch was read (at least as new as the item). Read-only: it may be frozen and shared. */
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
   * destination already moved the cursor in its own commit, and `'finished'` that the commit also
   * gave the lease back, nothing being left (the run ends). Throw `RetryLaterError`,
   * `PermanentDeliveryError`, or anything else for "transient, retry with backoff".
   */
  handle(item: WorkItem, context: WorkContext): Promise<void | 'committed' | 'finished'>;
  /**
   * Whether each attempt at this item is recorded before it starts (default true). Only a
   * destination whose repeat is harmless without looking (a web chat frame, an agent turn that
   * commits its own cursor) says no, and saves two writes per item.
   */
  recordsAttempts?(item: WorkItem, conversation: Conversation): boolean;
  /**
   * Off the customer's path (a workspace): each batch starts a turn of the event loop later, and its
   * attempt records may wait a few ms to share the fsync of another write (`Patience`), so they do
   * not block the event loop on their own.
   */
  readonly patient?: boolean;
  /** Called once when an item has failed `stuckAfter` times in a row (tell people; keep retrying), and when it was refused for good. */
  stuck?(item: WorkItem, context: WorkContext, error: unknown): Promise<void>;
}

/** Items read at a time, after the batch a lease brought. */
const BATCH_ITEMS = 50;

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
  private readonly leaseMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly stuckAfter: number;
  private readonly loop: LeaseLoop;
  /** How this destination's attempt records are written (`Destination.patient`). */
  private readonly patience: Patience;

  constructor(options: WorkerOptions) {
    this.store = options.store;
    this.destination = options.destination;
    this.name = options.destination.name;
    this.logger = options.logger.child({ destination: this.name });
    this.leaseMs = options.leaseMs ?? 30_000;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.stuckAfter = options.stuckAfter ?? 5;
    this.patience = options.destination.patient ? { patient: true } : {};
    this.loop = new LeaseLoop({
      store: this.store,
      destination: this.name,
      logger: this.logger,
      leaseMs: this.leaseMs,
      backoff: this.backoff,
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.pollMs ? { pollMs: options.pollMs } : {}),
      begin: options.destination.recordsAttempts === undefined,
      ...this.patience,
      work: (lease, controller) => this.drain(lease, controller),
    });
  }

  start(): void {
    this.loop.start();
  }

  /** Stops leasing, lets the items in progress finish (up to `graceMs`), then abandons the rest to lease expiry. */
  stop(graceMs = 10_000): Promise<void> {
    return this.loop.stop(graceMs);
  }

  /** Whether this worker has a free slot for a lease a commit takes on its behalf. */
  get canAdopt(): boolean {
    return this.loop.canAdopt;
  }

  /** Starts on a lease a commit took for this worker; false when it cannot now (give it back). */
  adopt(lease: Lease): boolean {
    return this.loop.adopt(lease);
  }

  get leaseDurationMs(): number {
    return this.leaseMs;
  }

  /** A destination that records every attempt has its first one recorded by the lease itself. */
  get beginsOnLease(): boolean {
    return this.destination.recordsAttempts === undefined;
  }

  /** Look for due work now (new work was committed, or a destination came back). */
  wake(): void {
    this.loop.wake();
  }

  /** Resolves when nothing is due or in progress for this destination (retries waiting on a backoff count as due). */
  idle(): Promise<void> {
    return this.loop.idle({ includeLater: true });
  }

  private get running(): boolean {
    return this.loop.running;
  }

  /** Does the conversation's due work in order until it is done, fails, or the lease is lost. */
  private async drain(lease: Lease, controller: AbortController): Promise<void> {
    try {
      // The lease came with its first batch; later batches are read after each one is done.
      let prefetched = lease.pending;
      for (;;) {
        // Off the customer's path: start a turn of the event loop later, so what the same commit
        // brought for the customer (the agent's turn, the web chat frames) goes out first.
        if (this.destination.patient) await nextTurn();
        if (controller.signal.aborted) return;
        const batch: NonNullable<Lease['pending']> = prefetched ?? (await this.store.work.pending(this.name, lease.conversationId, BATCH_ITEMS));
        const { cursor, items, begun } = batch;
        prefetched = undefined;
        if (items.length === 0 || !this.running) {
          // Nothing addressed to us (or stopping): give the lease back, due now if work remains.
          prefetched = await this.goOn(lease, undefined);
          if (!prefetched) return;
          continue;
        }
        // Destinations only read the conversation: the cache may hand over its shared, frozen copy.
        let conversation = await this.store.getConversation(lease.conversationId, { atLeast: neededVersion(items), readOnly: true });
        if (!conversation) {
          this.logger.error({ conversationId: lease.conversationId }, 'work for a conversation that does not exist; skipping it');
          await this.store.work.advance(lease, items.at(-1)!.seq);
          continue;
        }
        // Done but not yet written: items whose repeat is harmless are marked done together, at the end.
        let unwritten: number | undefined;
        // The attempt record written for this batch (by its lease, or by `begin` below): one covers many items.
        let recorded = begun ? cursor.attempt : undefined;
        for (let i = 0; i < items.length; i++) {
          if (controller.signal.aborted) return;
          if (!this.running) break;
          const item = items[i]!;
          const records = this.destination.recordsAttempts?.(item, conversation) ?? true;
          let attempt: NonNullable<Cursor['attempt']>;
          if (!records) {
            const previous = covers(cursor.attempt, item.seq) ? cursor.attempt : undefined;
            attempt = { seq: item.seq, count: (previous?.count ?? 0) + 1, since: previous?.since ?? Date.now() };
          } else {
            if (!recorded || !covers(recorded, item.seq)) {
              // Recorded for the rest of the batch; the item before is marked done in the same write.
              recorded = (await this.store.work.begin(lease, item.seq, unwritten, items.at(-1)!.seq, this.patience)).attempt!;
              unwritten = undefined;
            }
            attempt = attemptOn(recorded, item.seq);
          }
          const context: WorkContext = { conversation, attempt, lease, later: items.slice(i + 1), signal: controller.signal };
          const outcome = await this.attempt(item, context);
          if (outcome === 'lost' || outcome === 'finished') return;
          if (outcome !== 'done' && outcome !== 'committed') {
            // Failed: keep what was done, remember the attempt (for the backoff), come back at retryAt.
            await this.store.work.finish(lease, unwritten, outcome.retryAt, afterFailure(attempt, records ? recorded : undefined));
            this.loop.dueAt(outcome.retryAt);
            return;
          }
          if (outcome === 'committed') {
            // The destination moved the cursor itself and changed the conversation: later items see the new state.
            unwritten = undefined;
            conversation = (await this.store.getConversation(lease.conversationId, { atLeast: conversation.version + 1, readOnly: true })) ?? conversation;
          } else {
            // Written with the next item's attempt record (which replaces this one's), or at the end.
            unwritten = item.seq;
          }
        }
        prefetched = await this.goOn(lease, unwritten);
        if (!prefetched) return;
      }
    } catch (err) {
      if (err instanceof LeaseLostError) return;
      // The store failed between items: the lease expires and the work is picked up again.
      this.logger.warn({ conversationId: lease.conversationId, err: String(err) }, 'work interrupted by a store error; it will resume');
      const retryAt = Date.now() + backoffDelay(1, this.backoff);
      await this.store.work.release(lease, retryAt).catch(() => {});
      this.loop.dueAt(retryAt);
    }
  }

  /**
   * The end of a batch: marks `done` and gives the lease back when nothing is left (or when
   * stopping, due now), else answers the next batch, its first attempt recorded in the same write.
   */
  private async goOn(lease: Lease, done: number | undefined): Promise<NonNullable<Lease['pending']> | undefined> {
    if (!this.running) {
      await this.store.work.finish(lease, done, Date.now());
      return undefined;
    }
    return this.store.work.next(lease, done, { items: BATCH_ITEMS, begin: this.beginsOnLease, ...this.patience });
  }

  /** One attempt at one item: `done`, `committed`, `finished`, `lost`, or when to retry. */
  private async attempt(item: WorkItem, context: WorkContext): Promise<'done' | 'committed' | 'finished' | 'lost' | { retryAt: number }> {
    const { conversation, attempt } = context;
    const log = conversationLogger(this.logger, conversation);
    try {
      const result = await this.destination.handle(item, context);
      if (attempt.count > 1) log.info({ seq: item.seq, kind: item.payload.kind, attempts: attempt.count }, 'delivered after retrying');
      return result === 'committed' || result === 'finished' ? result : 'done';
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

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The version a batch needs: its newest item's (unknown for items written before items carried one). */
function neededVersion(items: WorkItem[]): number | undefined {
  let needed = 0;
  for (const item of items) {
    if (!item.version) return undefined;
    needed = Math.max(needed, item.version);
  }
  return needed;
}

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
