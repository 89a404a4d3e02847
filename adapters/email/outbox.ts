/**
 * The durable outbox: every email the bridge asks for waits in `store.kv('email')` until the SMTP
 * server has accepted it, so an outage or a restart loses nothing.
 *
 * - One email per bridge message, ever: an entry is keyed by the bridge message id and marked
 *   sent only after the server accepted it. Its Message-ID is fixed when queued, so the one
 *   unavoidable duplicate (a crash between "accepted" and "marked sent") carries the same
 *   Message-ID and mail clients collapse it.
 * - Order per conversation: the queue is FIFO and a conversation whose head entry is waiting for
 *   a retry sends nothing after it; other conversations go on.
 * - Failures: a dead connection (server down, timeout, refused login) pauses the whole outbox
 *   with exponential back-off; a temporary refusal of one message (4xx) backs off that
 *   conversation; a permanent refusal (5xx on a recipient or the content) moves the entry to a
 *   dead letter (kept in the store, logged as an error) so it cannot block the conversation forever.
 */
import type { Logger } from '../../src/log.ts';
import type { KeyValue, Store } from '../../src/store/store.ts';
import type { OutboundMail } from './compose.ts';
import type { RetryConfig } from './config.ts';

/** One email waiting to be sent. */
export interface OutboxEntry {
  /** The bridge message id. */
  id: string;
  conversationId: string;
  mail: OutboundMail;
  enqueuedAt: string;
  attempts: number;
  /** Epoch ms before which it is not tried again. */
  nextAttemptAt: number;
  lastError?: string;
}

/** How a failed send is handled: pause everything, back off this conversation, or give up on this email. */
export type SendFailure = 'transport' | 'message' | 'permanent';

export interface OutboxOptions {
  kv: KeyValue;
  store: Store;
  send(mail: OutboundMail): Promise<void>;
  classify(err: unknown): SendFailure;
  retry: RetryConfig;
  logger: Logger;
  /**
   * How often an idle outbox looks at the queue anyway, for emails another instance sharing the
   * store queued and could not send (it crashed). Default 30 s.
   */
  sweepIntervalMs?: number;
  /** Called after the server accepted an email. Errors are logged, never retried. */
  onSent?(entry: OutboxEntry): Promise<void> | void;
  now?(): number;
  random?(): number;
}

const QUEUE = 'outbox:queue';
const QUEUE_LOCK = 'email:outbox:queue';
const SEND_LOCK = 'email:outbox:send';
/** How long "sent" markers are kept; the bridge never redelivers a message this late. */
const SENT_TTL_MS = 30 * 24 * 60 * 60 * 1000;
const DEFAULT_SWEEP_MS = 30_000;
/** After this many failed attempts on one email, failures are logged as errors, not warnings. */
const LOUD_AFTER_ATTEMPTS = 5;

/** Delay before retry number `attempt` (1-based): exponential, capped, with jitter. */
export function backoffDelay(attempt: number, retry: RetryConfig, random: () => number = Math.random): number {
  const base = Math.min(retry.maxDelayMs, retry.initialDelayMs * retry.factor ** Math.max(0, attempt - 1));
  const spread = base * retry.jitter * (random() * 2 - 1);
  return Math.max(1, Math.round(Math.min(retry.maxDelayMs, base + spread)));
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const response = (err as { response?: unknown }).response;
    return typeof response === 'string' && response ? `${err.message} (${response})` : err.message;
  }
  return String(err);
}

export class Outbox {
  private running = false;
  private loop?: Promise<void>;
  private dirty = false;
  /** A walk over the queue is under way (sends and their after-send bookkeeping). */
  private passing = false;
  private sleeper?: { resolve: () => void; timer?: NodeJS.Timeout };
  private pausedUntil = 0;
  private transportFailures = 0;
  private emptyWaiters: Array<() => void> = [];
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly options: OutboxOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /** Queues one email; false when this bridge message was already queued or sent. */
  async enqueue(entry: { id: string; conversationId: string; mail: OutboundMail }): Promise<boolean> {
    const { kv, store } = this.options;
    const added = await store.withLock(QUEUE_LOCK, async () => {
      if (await this.known(entry.id)) return false;
      const full: OutboxEntry = { ...entry, enqueuedAt: new Date(this.now()).toISOString(), attempts: 0, nextAttemptAt: 0 };
      await kv.set(`outbox:entry:${entry.id}`, full);
      const queue = (await kv.get<string[]>(QUEUE)) ?? [];
      queue.push(entry.id);
      await kv.set(QUEUE, queue);
      return true;
    });
    this.wake();
    return added;
  }

  /** True when this bridge message is queued, sent, or dead-lettered already. */
  async known(id: string): Promise<boolean> {
    const { kv } = this.options;
    for (const key of [`outbox:sent:${id}`, `outbox:entry:${id}`, `outbox:dead:${id}`]) {
      if ((await kv.get(key)) !== undefined) return true;
    }
    return false;
  }

  /** Emails still waiting (queued or backing off). */
  async pending(): Promise<OutboxEntry[]> {
    const queue = (await this.options.kv.get<string[]>(QUEUE)) ?? [];
    const entries = await Promise.all(queue.map((id) => this.options.kv.get<OutboxEntry>(`outbox:entry:${id}`)));
    return entries.filter((e): e is OutboxEntry => e !== undefined);
  }

  /** Emails the server refused for good, kept for inspection. */
  deadLetter(id: string): Promise<(OutboxEntry & { deadAt: string }) | undefined> {
    return this.options.kv.get(`outbox:dead:${id}`);
  }

  /** Resolves once nothing is waiting to be sent, or when the outbox stops. */
  async whenEmpty(): Promise<void> {
    for (;;) {
      // Register before looking, so a pass that empties the queue meanwhile still wakes us.
      const emptied = new Promise<void>((resolve) => this.emptyWaiters.push(resolve));
      if (!this.running || (!this.passing && (await this.pending()).length === 0)) return;
      await emptied;
    }
  }

  /** Try now instead of waiting out the back-off (an operator fixed the SMTP server, a test restarted it). */
  retryNow(): void {
    this.pausedUntil = 0;
    this.wake();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Lets the email being sent finish, then stops. Waiting emails stay in the store. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
    this.loop = undefined;
    for (const waiter of this.emptyWaiters.splice(0)) waiter();
  }

  private wake(): void {
    this.dirty = true;
    const sleeper = this.sleeper;
    if (sleeper) {
      clearTimeout(sleeper.timer);
      this.sleeper = undefined;
      sleeper.resolve();
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.dirty || !this.running) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const sleeper: { resolve: () => void; timer?: NodeJS.Timeout } = { resolve };
      sleeper.timer = setTimeout(() => {
        if (this.sleeper === sleeper) this.sleeper = undefined;
        resolve();
      }, ms);
      // A pending retry alone must not keep the process alive; stop() wakes the loop anyway.
      sleeper.timer.unref();
      this.sleeper = sleeper;
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      let wait: number | undefined;
      this.passing = true;
      try {
        wait = await this.pass();
      } catch (err) {
        // The store itself failed (not the SMTP server): keep the loop alive and try again.
        this.options.logger.error({ err }, 'email outbox pass failed; retrying');
        wait = this.options.retry.initialDelayMs;
      } finally {
        this.passing = false;
      }
      if (wait === undefined) for (const waiter of this.emptyWaiters.splice(0)) waiter();
      await this.sleep(wait ?? this.options.sweepIntervalMs ?? DEFAULT_SWEEP_MS);
    }
  }

  /** One walk over the queue. Returns ms until something is due, or undefined when it is empty. */
  private async pass(): Promise<number | undefined> {
    this.dirty = false;
    const { kv } = this.options;
    const queue = (await kv.get<string[]>(QUEUE)) ?? [];
    if (queue.length === 0) return undefined;
    const blocked = new Set<string>();
    let next = Infinity;
    for (const id of queue) {
      if (!this.running) return 0;
      const now = this.now();
      if (this.pausedUntil > now) return this.pausedUntil - now;
      const entry = await kv.get<OutboxEntry>(`outbox:entry:${id}`);
      if (!entry) {
        await this.removeFromQueue(id);
        continue;
      }
      if (blocked.has(entry.conversationId)) continue;
      if (entry.nextAttemptAt > now) {
        blocked.add(entry.conversationId);
        next = Math.min(next, entry.nextAttemptAt - now);
        continue;
      }
      const outcome = await this.attempt(id);
      if (outcome.sent) await this.afterSent(outcome.sent);
      if (outcome.wait !== undefined) {
        blocked.add(entry.conversationId);
        next = Math.min(next, outcome.wait);
      }
    }
    if (((await kv.get<string[]>(QUEUE)) ?? []).length === 0) return undefined;
    return Number.isFinite(next) ? next : this.options.retry.initialDelayMs;
  }

  /** Sends one entry: `wait` is set when it stays queued (ms until its retry), `sent` when it went out. */
  private attempt(id: string): Promise<{ wait?: number; sent?: OutboxEntry }> {
    const { kv, store, logger } = this.options;
    // One sender at a time across every instance sharing the store, so no email goes out twice.
    return store.withLock(SEND_LOCK, async () => {
      if (await kv.get(`outbox:sent:${id}`)) {
        await kv.delete(`outbox:entry:${id}`);
        await this.removeFromQueue(id);
        return {};
      }
      const entry = await kv.get<OutboxEntry>(`outbox:entry:${id}`);
      if (!entry) return {};
      const now = this.now();
      if (entry.nextAttemptAt > now) return { wait: entry.nextAttemptAt - now };
      const log = logger.child({ conversationId: entry.conversationId, messageId: entry.id, emailMessageId: entry.mail.messageId });

      try {
        await this.options.send(entry.mail);
      } catch (err) {
        return { wait: await this.failed(entry, err, log) };
      }

      this.transportFailures = 0;
      await kv.set(`outbox:sent:${id}`, { sentAt: new Date(this.now()).toISOString(), messageId: entry.mail.messageId }, SENT_TTL_MS);
      await kv.delete(`outbox:entry:${id}`);
      await this.removeFromQueue(id);
      log.info({ attempts: entry.attempts + 1, to: entry.mail.to.address }, 'email sent');
      return { sent: entry };
    });
  }

  /** Runs `onSent` outside the send lock, so it may take other locks freely. */
  private async afterSent(entry: OutboxEntry): Promise<void> {
    try {
      await this.options.onSent?.(entry);
    } catch (err) {
      this.options.logger.warn({ err, conversationId: entry.conversationId }, 'after-send bookkeeping failed (the email itself was sent)');
    }
  }

  private async failed(entry: OutboxEntry, err: unknown, log: Logger): Promise<number | undefined> {
    const { kv, retry } = this.options;
    const kind = this.options.classify(err);
    const error = describe(err);
    const attempts = entry.attempts + 1;

    if (kind === 'permanent') {
      await kv.set(`outbox:dead:${entry.id}`, { ...entry, attempts, lastError: error, deadAt: new Date(this.now()).toISOString() });
      await kv.delete(`outbox:entry:${entry.id}`);
      await this.removeFromQueue(entry.id);
      log.error({ err, to: entry.mail.to.address, attempts }, `email refused for good by the SMTP server, kept as dead letter outbox:dead:${entry.id}: ${error}`);
      return undefined;
    }

    let wait: number;
    if (kind === 'transport') {
      this.transportFailures++;
      wait = backoffDelay(this.transportFailures, retry, this.random);
      this.pausedUntil = this.now() + wait;
    } else {
      wait = backoffDelay(attempts, retry, this.random);
    }
    await kv.set(`outbox:entry:${entry.id}`, { ...entry, attempts, lastError: error, nextAttemptAt: this.now() + wait });
    const fields = { to: entry.mail.to.address, attempts, retryInMs: wait, failure: kind };
    const text = kind === 'transport'
      ? `SMTP server unreachable or refusing us, email waits in the outbox: ${error}`
      : `SMTP server deferred the email, will retry: ${error}`;
    if (attempts >= LOUD_AFTER_ATTEMPTS) log.error(fields, text);
    else log.warn(fields, text);
    return wait;
  }

  private removeFromQueue(id: string): Promise<void> {
    const { kv, store } = this.options;
    return store.withLock(QUEUE_LOCK, async () => {
      const queue = (await kv.get<string[]>(QUEUE)) ?? [];
      const next = queue.filter((q) => q !== id);
      if (next.length !== queue.length) await kv.set(QUEUE, next);
    });
  }
}
