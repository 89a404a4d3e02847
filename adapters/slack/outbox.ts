/**
 * Outbound delivery to Slack's Web API: per-thread order, 429 Retry-After honoured on that thread
 * only, and every message posted at most once.
 *
 * - `Lanes` runs each conversation's Slack work one after another; conversations do not wait for
 *   each other, so a thread sleeping on a Retry-After stalls nobody else.
 * - `SlackSender.call` retries one call: after `Retry-After` on 429, with backoff on 5xx/network
 *   errors. The WebClient itself is configured not to retry, so nothing pauses globally.
 * - `SlackSender.postOnce` records each posted message's ts under an idempotency key (the bridge
 *   message id) before reporting success; a later attempt with the same key returns the recorded ts.
 *   A 429 or a refused call means "not posted": retry. A timeout, reset or 5xx after the request was
 *   sent is ambiguous: every post carries the key in its message metadata, so before retrying we look
 *   for it in the thread (conversations.replies) or channel (conversations.history) and adopt it if
 *   it is there. If that lookup is impossible we log and do not post again: a missing mirror line
 *   is recoverable from the transcript, a duplicate customer message in Slack is confusing. The key
 *   is then marked uncertain, so a later `postOnce` with it (the thread healing itself) looks again
 *   before posting.
 */
import type { webApi } from '@slack/bolt';
import type { Logger } from '../../src/log.ts';
import type { KeyValue } from '../../src/store/store.ts';

/** Where a posted message lives. */
export interface PostedRef {
  channel: string;
  ts: string;
}

/** The chat.postMessage arguments the bridge uses. */
export interface PostArgs {
  channel: string;
  text: string;
  blocks?: unknown[];
  thread_ts?: string;
  reply_broadcast?: boolean;
}

/** Metadata event type that marks the bridge's own posts (and carries their idempotency key). */
export const POST_METADATA_TYPE = 'handoff_bridge_post';

/** Per-key serial execution. */
export class Lanes {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after everything queued before it on `lane`, whatever their outcome. */
  run<T>(lane: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(lane) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(lane, tail);
    void tail.finally(() => {
      if (this.tails.get(lane) === tail) this.tails.delete(lane);
    });
    return result;
  }

  /** Resolves when every lane is empty. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.allSettled([...this.tails.values()]);
  }
}

/** A post whose outcome could not be checked: a later `postOnce` with its key looks again before posting. */
interface UncertainPost {
  uncertainSince: number;
}

/** Slack may or may not have taken a post, and would not say; it was not sent again, to avoid a duplicate. */
export class PostOutcomeUnknownError extends Error {
  constructor(readonly key: string) {
    super(`Slack may or may not have posted ${key}; not retried to avoid a duplicate.`);
  }
}

/** The send was abandoned because the workspace is stopping. */
export class SenderStoppedError extends Error {
  constructor() {
    super('The Slack workspace is stopping; the call was abandoned.');
  }
}

export interface SlackSenderOptions {
  client: webApi.WebClient;
  kv: KeyValue;
  logger: Logger;
  /** Attempts on 5xx / network failures before giving up (429s don't count: Slack said when to come back). */
  maxAttempts?: number;
  /** Most 429s one call sits through before giving up. */
  maxRateLimitWaits?: number;
  /** Longest Retry-After honoured; beyond it the call fails (and says so). */
  maxRetryAfterSeconds?: number;
  /** Backoff before the n-th retry of a failed (not rate-limited) call. */
  backoffMs?: (attempt: number) => number;
}

type Failure =
  | { kind: 'rate_limited'; retryAfterSeconds: number }
  | { kind: 'transient'; ambiguous: boolean }
  | { kind: 'permanent' };

/** Platform errors that say "try again later" rather than "this request is wrong". */
const TRANSIENT_PLATFORM_ERRORS = new Set(['ratelimited', 'internal_error', 'fatal_error', 'service_unavailable', 'request_timeout']);

/** Sorts a WebClient error into what to do next. */
export function classifyFailure(err: unknown): Failure {
  const e = err as { code?: string; retryAfter?: number; statusCode?: number; data?: { error?: string } };
  switch (e.code) {
    case 'slack_webapi_rate_limited_error':
      return { kind: 'rate_limited', retryAfterSeconds: Number.isFinite(e.retryAfter) ? Math.max(0, e.retryAfter!) : 1 };
    case 'slack_webapi_http_error':
      // Slack only uses 200 and 429 meaningfully; a 5xx may or may not have been processed.
      return (e.statusCode ?? 500) >= 500 ? { kind: 'transient', ambiguous: true } : { kind: 'permanent' };
    case 'slack_webapi_request_error':
      return { kind: 'transient', ambiguous: true };
    case 'slack_webapi_platform_error':
      return TRANSIENT_PLATFORM_ERRORS.has(e.data?.error ?? '') ? { kind: 'transient', ambiguous: e.data?.error !== 'ratelimited' } : { kind: 'permanent' };
    default:
      return { kind: 'permanent' };
  }
}

export class SlackSender {
  private readonly maxAttempts: number;
  private readonly maxRateLimitWaits: number;
  private readonly maxRetryAfterSeconds: number;
  private readonly backoffMs: (attempt: number) => number;
  private readonly stopping = new AbortController();

  constructor(private readonly options: SlackSenderOptions) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.maxRateLimitWaits = options.maxRateLimitWaits ?? 30;
    this.maxRetryAfterSeconds = options.maxRetryAfterSeconds ?? 900;
    this.backoffMs = options.backoffMs ?? ((attempt) => Math.min(30_000, 500 * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5));
  }

  /** Abandons every wait in progress (shutdown after the grace period). */
  abort(): void {
    this.stopping.abort();
  }

  /**
   * One Web API call (not a post: use `postOnce`), retried after Retry-After on 429 and with
   * backoff on transient failures. Throws the last error when retrying is pointless.
   */
  async call<T = Record<string, unknown>>(method: string, args: Record<string, unknown>): Promise<T> {
    let attempts = 0;
    let rateLimitWaits = 0;
    for (;;) {
      this.throwIfStopping();
      try {
        return (await this.options.client.apiCall(method, args)) as T;
      } catch (err) {
        const failure = classifyFailure(err);
        if (failure.kind === 'rate_limited') {
          rateLimitWaits += 1;
          await this.waitRateLimit(method, failure.retryAfterSeconds, rateLimitWaits, err);
          continue;
        }
        attempts += 1;
        if (failure.kind === 'permanent' || attempts >= this.maxAttempts) throw err;
        this.options.logger.warn({ method, attempt: attempts, err: describe(err) }, 'slack call failed; retrying');
        await this.sleep(this.backoffMs(attempts));
      }
    }
  }

  /**
   * Posts a message exactly once per `key`: a repeat returns the first post's ts, a lost answer is
   * looked up before any retry. The ts is recorded before this resolves.
   */
  async postOnce(key: string, args: PostArgs): Promise<PostedRef> {
    const recordKey = `posted:${key}`;
    const recorded = await this.options.kv.get<PostedRef | UncertainPost>(recordKey);
    if (recorded && 'ts' in recorded) return recorded;
    const body = { ...args, metadata: { event_type: POST_METADATA_TYPE, event_payload: { key } } };
    let attempts = 0;
    let rateLimitWaits = 0;
    // An earlier attempt (maybe in an earlier process) could not tell whether Slack took it: look before posting.
    let ambiguousSince: number | undefined = recorded?.uncertainSince;
    for (;;) {
      this.throwIfStopping();
      if (ambiguousSince !== undefined) {
        const found = await this.findPosted(key, args, ambiguousSince);
        if (found === 'unknown') {
          await this.options.kv.set(recordKey, { uncertainSince: ambiguousSince } satisfies UncertainPost);
          this.options.logger.error({ key, channel: args.channel }, 'slack post outcome unknown and cannot be checked; not posting again to avoid a duplicate');
          throw new PostOutcomeUnknownError(key);
        }
        if (found) {
          await this.options.kv.set(recordKey, found);
          return found;
        }
      }
      const sentAt = Date.now() / 1000 - 2;
      try {
        const result = (await this.options.client.apiCall('chat.postMessage', body)) as { channel?: string; ts?: string };
        if (!result.ts) throw Object.assign(new Error('chat.postMessage answered without a ts'), { code: 'slack_webapi_request_error' });
        const ref = { channel: result.channel ?? args.channel, ts: result.ts };
        await this.options.kv.set(recordKey, ref);
        return ref;
      } catch (err) {
        const failure = classifyFailure(err);
        if (failure.kind === 'rate_limited') {
          // A 429 means Slack did not take the message.
          rateLimitWaits += 1;
          await this.waitRateLimit('chat.postMessage', failure.retryAfterSeconds, rateLimitWaits, err);
          continue;
        }
        attempts += 1;
        if (failure.kind === 'permanent' || attempts >= this.maxAttempts) throw err;
        if (failure.ambiguous) ambiguousSince = Math.min(ambiguousSince ?? Infinity, sentAt);
        this.options.logger.warn({ key, attempt: attempts, err: describe(err) }, 'slack post failed; checking and retrying');
        await this.sleep(this.backoffMs(attempts));
      }
    }
  }

  /** Looks for our post with `key` among messages since `since` (seconds). `unknown` if Slack will not say. */
  private async findPosted(key: string, args: PostArgs, since: number): Promise<PostedRef | undefined | 'unknown'> {
    const oldest = Math.max(0, since).toFixed(6);
    type Found = { messages?: Array<{ ts?: string; metadata?: { event_type?: string; event_payload?: { key?: unknown } } }> };
    try {
      const result = args.thread_ts
        ? await this.call<Found>('conversations.replies', { channel: args.channel, ts: args.thread_ts, oldest, include_all_metadata: true, limit: 200 })
        : await this.call<Found>('conversations.history', { channel: args.channel, oldest, include_all_metadata: true, limit: 200 });
      const match = result.messages?.find((m) => m.metadata?.event_type === POST_METADATA_TYPE && m.metadata.event_payload?.key === key);
      return match?.ts ? { channel: args.channel, ts: match.ts } : undefined;
    } catch (err) {
      if (err instanceof SenderStoppedError) throw err;
      this.options.logger.warn({ key, err: describe(err) }, 'could not check whether slack took a post');
      return 'unknown';
    }
  }

  private async waitRateLimit(method: string, retryAfterSeconds: number, waits: number, err: unknown): Promise<void> {
    if (waits > this.maxRateLimitWaits || retryAfterSeconds > this.maxRetryAfterSeconds) throw err;
    this.options.logger.info({ method, retryAfterSeconds }, 'slack rate limit: waiting on this thread only');
    await this.sleep(retryAfterSeconds * 1000);
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.stopping.signal;
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new SenderStoppedError());
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(new SenderStoppedError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private throwIfStopping(): void {
    if (this.stopping.signal.aborted) throw new SenderStoppedError();
  }
}

/** A loggable summary of a WebClient error (never its request body). */
export function describe(err: unknown): Record<string, unknown> {
  const e = err as { code?: string; message?: string; statusCode?: number; retryAfter?: number; data?: { error?: string } };
  return { code: e.code, message: e.message, status: e.statusCode, retryAfter: e.retryAfter, error: e.data?.error };
}
