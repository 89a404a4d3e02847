/**
 * The inbox as this instance shows it: one row per listed conversation, re-read from the store
 * whenever the change feed says a conversation changed (a commit here or on any other instance: a
 * claim in Slack shows in the console at once). Reads are coalesced per conversation and rows only
 * move forward in version, so a slow read never replaces a newer row.
 */
import type { Logger } from '../../src/log.ts';
import type { Conversation } from '../../src/model.ts';
import { inboxRow } from '../../cards/console/inbox.ts';
import type { InboxRow } from '../../cards/console/types.ts';

export interface LiveInboxOptions {
  load(id: string): Promise<Conversation | undefined>;
  /** A conversation read at a newer version than shown: push its row and its open threads. */
  changed(conversation: Conversation, row: InboxRow): void;
  logger: Logger;
  /** Reads in flight at once. */
  concurrency?: number;
  /** Closed conversations kept (the most recent); older ones leave the inbox. */
  closedKept?: number;
}

export class LiveInbox {
  private readonly rows = new Map<string, InboxRow>();
  private readonly pending = new Set<string>();
  private readonly versions = new Map<string, number>();
  private draining: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: LiveInboxOptions) {}

  /** Rows with at least one message (an opened but silent web chat is not work for anyone). */
  list(): InboxRow[] {
    return [...this.rows.values()];
  }

  row(id: string): InboxRow | undefined {
    return this.rows.get(id);
  }

  /** The conversation may have changed: read it again (soon, once, however many notices came). */
  refresh(id: string): void {
    if (this.stopped) return;
    this.pending.add(id);
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
      if (this.pending.size > 0 && !this.retryTimer) this.refresh(this.pending.values().next().value!);
    });
  }

  /** A conversation already read (by a delivery worker or an action): use it if it is newer. */
  offer(conversation: Conversation): void {
    if (this.stopped) return;
    this.apply(conversation);
  }

  /** Knows this conversation (listed or seen on the change feed). */
  has(id: string): boolean {
    return this.versions.has(id);
  }

  /** Resolves when no read is pending (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.draining || (this.pending.size > 0 && !this.stopped)) {
      if (this.draining) await this.draining;
      else await new Promise((r) => setTimeout(r, 20));
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.pending.clear();
  }

  private async drain(): Promise<void> {
    const concurrency = this.options.concurrency ?? 8;
    while (this.pending.size > 0 && !this.stopped) {
      const batch = [...this.pending].slice(0, concurrency);
      for (const id of batch) this.pending.delete(id);
      const failed: string[] = [];
      await Promise.all(
        batch.map(async (id) => {
          try {
            const conversation = await this.options.load(id);
            if (conversation) this.apply(conversation);
          } catch (err) {
            failed.push(id);
            this.options.logger.warn({ conversationId: id, err: String(err) }, 'console could not read a conversation; trying again shortly');
          }
        }),
      );
      if (failed.length > 0) {
        // The store is failing: try those again in a second rather than spinning.
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          for (const id of failed) this.refresh(id);
        }, 1000);
        this.retryTimer.unref();
      }
    }
  }

  private apply(conversation: Conversation): void {
    const known = this.versions.get(conversation.id);
    if (known !== undefined && known >= conversation.version) return;
    this.versions.set(conversation.id, conversation.version);
    if (conversation.messages.length === 0) return;
    const row = inboxRow(conversation);
    this.rows.set(conversation.id, row);
    this.options.changed(conversation, row);
    if (row.state === 'closed') this.pruneClosed();
  }

  /** Past a margin over `closedKept`, forgets the oldest closed rows (the page keeps what it shows). */
  private pruneClosed(): void {
    const kept = this.options.closedKept ?? 200;
    const closed = [...this.rows.values()].filter((r) => r.state === 'closed');
    if (closed.length <= kept + Math.ceil(kept / 5)) return;
    closed.sort((a, b) => (a.lastActivityAt < b.lastActivityAt ? 1 : -1));
    for (const row of closed.slice(kept)) {
      this.rows.delete(row.id);
      this.versions.delete(row.id);
    }
  }
}
