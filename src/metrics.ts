/**
 * Prometheus metrics (prom-client), served at GET /metrics. Counters and histograms count what
 * this instance committed (Prometheus sums instances); the work gauges read the store when scraped,
 * so every instance reports the same backlog.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Observation } from './engine/stats.ts';
import type { Store, StoreWriteStats } from './store/store.ts';

const WAIT_BUCKETS = [5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

export class BridgeMetrics {
  readonly registry = new Registry();
  private readonly conversations = new Counter({ name: 'handoff_conversations_total', help: 'Conversations started.', registers: [this.registry] });
  private readonly escalations = new Counter({ name: 'handoff_escalations_total', help: 'Escalations to a person, by trigger.', labelNames: ['trigger'], registers: [this.registry] });
  private readonly deferred = new Counter({ name: 'handoff_deferred_escalations_total', help: 'Escalations held because nobody could answer (outside hours, no workspace, off duty), by trigger.', labelNames: ['trigger'], registers: [this.registry] });
  private readonly fallbacks = new Counter({ name: 'handoff_fallbacks_total', help: 'Escalations nobody claimed in time.', registers: [this.registry] });
  private readonly timeToClaim = new Histogram({ name: 'handoff_time_to_claim_seconds', help: 'From escalation (or back to the queue) to claim.', buckets: WAIT_BUCKETS, registers: [this.registry] });
  private readonly firstReply = new Histogram({ name: 'handoff_time_to_first_human_reply_seconds', help: "From a person taking the conversation to their first reply to the customer.", buckets: WAIT_BUCKETS, registers: [this.registry] });
  private readonly handleTime = new Histogram({ name: 'handoff_handle_time_seconds', help: 'From a person taking the conversation to handing it back, deciding or closing.', labelNames: ['how'], buckets: WAIT_BUCKETS, registers: [this.registry] });
  private readonly earlyTurns = new Counter({ name: 'handoff_agent_early_turns_total', help: "Agent turns started while the customer's message was being stored, by outcome: taken by the worker, or discarded (a model call wasted).", labelNames: ['outcome'], registers: [this.registry] });

  constructor(store: Store, destinations: () => string[]) {
    collectDefaultMetrics({ register: this.registry, prefix: 'handoff_process_' });
    const pending = new Gauge({ name: 'handoff_work_pending', help: 'Conversations with work due now, by destination.', labelNames: ['destination'], registers: [this.registry] });
    const lag = new Gauge({ name: 'handoff_delivery_lag_seconds', help: 'How long the oldest due work has waited, by destination (0 when none).', labelNames: ['destination'], registers: [this.registry] });
    // Read the backlog when scraped: one query per destination.
    const backlog = async () => {
      for (const destination of destinations()) {
        const backlog = await store.work.backlog(destination).catch(() => undefined);
        if (!backlog) continue;
        pending.set({ destination }, backlog.due);
        lag.set({ destination }, backlog.oldest === undefined ? 0 : Math.max(0, (Date.now() - backlog.oldest) / 1000));
      }
    };
    const writes = store.stats ? this.writeCounters(store) : undefined;
    this.collect = async () => {
      await backlog();
      writes?.();
    };
  }

  /**
   * SQLite's group commit, read when scraped: transactions by whether they were fsynced, and the
   * writes they carried (writes / transactions is how many writes share a transaction).
   */
  private writeCounters(store: Store): () => void {
    const transactions = new Counter({ name: 'handoff_store_transactions_total', help: 'Store transactions committed (SQLite), by whether the commit was fsynced.', labelNames: ['fsync'], registers: [this.registry] });
    const writes = new Counter({ name: 'handoff_store_writes_total', help: 'Writes the store transactions carried (SQLite group commit).', registers: [this.registry] });
    const seen: StoreWriteStats = { transactions: 0, writes: 0, unsynced: 0 };
    return () => {
      const now = store.stats;
      if (!now) return;
      transactions.inc({ fsync: 'yes' }, now.transactions - now.unsynced - (seen.transactions - seen.unsynced));
      transactions.inc({ fsync: 'no' }, now.unsynced - seen.unsynced);
      writes.inc(now.writes - seen.writes);
      Object.assign(seen, now);
    };
  }

  /** An agent turn started early was taken, or discarded. */
  earlyTurn(outcome: 'taken' | 'discarded'): void {
    this.earlyTurns.inc({ outcome });
  }

  /** Refreshes the gauges and counters that read the store. */
  readonly collect: () => Promise<void>;

  /** Records what one successful commit meant. */
  record(observations: Observation[]): void {
    for (const o of observations) {
      switch (o.kind) {
        case 'conversation':
          this.conversations.inc();
          break;
        case 'escalation':
          this.escalations.inc({ trigger: o.trigger });
          break;
        case 'deferred':
          this.deferred.inc({ trigger: o.trigger });
          break;
        case 'claim':
          this.timeToClaim.observe(o.seconds);
          break;
        case 'first_reply':
          this.firstReply.observe(o.seconds);
          break;
        case 'handled':
          this.handleTime.observe({ how: o.how }, o.seconds);
          break;
        case 'fallback':
          this.fallbacks.inc();
          break;
        case 'return':
          break;
      }
    }
  }

  /** The Prometheus text exposition. */
  async text(): Promise<{ contentType: string; body: string }> {
    await this.collect();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
