/**
 * Timers as durable work. A conversation's timers live in its state; the store keeps it due at
 * its earliest timer (the commit writes that schedule). This worker leases due conversations and
 * fires what is due in one compare-and-set commit, so across instances and restarts each timer
 * fires exactly once, and one that came due while every instance was down fires on the next start.
 */
import { LeaseLoop } from '../delivery/lease-loop.ts';
import type { BackoffPolicy } from '../delivery/backoff.ts';
import { ConversationNotFoundError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/store.ts';
import { TIMERS, type Committer } from './commit.ts';
import type { Rules } from './rules.ts';

export interface TimerWorkerOptions {
  store: Store;
  committer: Committer;
  rules: Rules;
  logger: Logger;
  leaseMs: number;
  backoff: BackoffPolicy;
  pollMs?: number;
}

export class TimerWorker {
  private readonly loop: LeaseLoop;

  constructor(options: TimerWorkerOptions) {
    this.loop = new LeaseLoop({
      store: options.store,
      destination: TIMERS,
      logger: options.logger.child({ destination: TIMERS }),
      leaseMs: options.leaseMs,
      backoff: options.backoff,
      ...(options.pollMs ? { pollMs: options.pollMs } : {}),
      work: async (lease) => {
        try {
          // The commit rewrites the schedule: the next timer, or none (which also ends this lease).
          await options.committer.change(lease.conversationId, (c, sink) => options.rules.fireTimers(c, sink), { reschedule: true });
        } catch (err) {
          if (err instanceof ConversationNotFoundError) await options.store.work.finish(lease);
          else throw err; // the lease expires and the timers fire on the next try
        }
      },
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(graceMs: number): Promise<void> {
    return this.loop.stop(graceMs);
  }

  /** Resolves when no timer is due now (later ones do not count). */
  idle(): Promise<void> {
    return this.loop.idle({ includeLater: false });
  }
}
