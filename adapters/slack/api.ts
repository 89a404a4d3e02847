/**
 * Slack's Web API as the delivery core needs it: one attempt per call, and every failure turned
 * into what the worker should do next.
 *
 * - A 429 becomes `RetryLaterError` with Slack's Retry-After: only this conversation waits; nothing
 *   sleeps here and the WebClient never pauses or retries on its own.
 * - A 5xx, a network error, a lost answer, or a setup problem an admin can fix (token, channel
 *   membership) becomes `SlackUnavailableError`: transient, the worker retries with backoff.
 * - Anything else Slack refuses becomes `SlackRefusedError`: the same request will never work.
 *
 * `post` makes a post safe to repeat: each post carries its key in message metadata, and when an
 * earlier attempt at the work may have posted (`attempt.count` > 1) it first looks for that key in
 * the thread or channel and adopts what it finds. If it cannot look, it throws and the worker tries
 * again later: it never posts blindly after an uncertain outcome.
 */
import type { SlackCaller } from './web-api.ts';
import { RetryLaterError } from '../../src/delivery/outcome.ts';
import type { Logger } from '../../src/log.ts';
import type { DeliveryAttempt } from '../../src/ports.ts';

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

/** Metadata event type that marks the bridge's own posts (and carries their key). */
export const POST_METADATA_TYPE = 'handoff_bridge_post';

/** How far before the first attempt a look for an earlier post starts (clock skew between us and Slack). */
const LOOKBACK_SECONDS = 10;

/** Most pages read when looking for an earlier post. */
const MAX_LOOKUP_PAGES = 50;

/** Slack refused a request for good: sending it again will not change the answer. */
export class SlackRefusedError extends Error {
  constructor(
    readonly method: string,
    /** Slack's error code (`msg_blocks_too_long`, `message_not_found`...), or `http_<status>`. */
    readonly code: string,
  ) {
    super(`Slack refused ${method}: ${code}`);
    this.name = 'SlackRefusedError';
  }
}

/** Slack could not be reached, failed, or is not set up yet: the same request may work later. */
export class SlackUnavailableError extends Error {
  constructor(
    readonly method: string,
    readonly detail: string,
    /** `setup`: an admin has to fix something (token, scope, channel membership) before it can work. */
    readonly reason: 'outage' | 'setup' = 'outage',
  ) {
    super(`Slack ${method} failed: ${detail}`);
    this.name = 'SlackUnavailableError';
  }
}

/** Refusals caused by the message's own content: a smaller message may be accepted. */
export const CONTENT_REFUSALS = new Set(['msg_blocks_too_long', 'invalid_blocks', 'invalid_blocks_format', 'msg_too_long', 'too_many_blocks']);

/** Platform errors that say "try again later" rather than "this request is wrong". */
const TRANSIENT_ERRORS = new Set(['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout']);

/** Slack's answers to a token it does not accept. */
export const TOKEN_REJECTED = new Set(['not_authed', 'invalid_auth', 'account_inactive', 'token_revoked', 'token_expired', 'not_allowed_token_type']);

/** Setup problems an admin fixes (token, scopes, the bot not in the channel): retried until they are. */
const SETUP_ERRORS = new Set([
  'not_authed',
  'invalid_auth',
  'account_inactive',
  'token_revoked',
  'token_expired',
  'no_permission',
  'missing_scope',
  'not_in_channel',
  'channel_not_found',
  'is_archived',
  'team_access_not_granted',
  'org_login_required',
  'ekm_access_denied',
  'access_denied',
]);

/** Turns a WebClient error into `RetryLaterError`, `SlackUnavailableError` or `SlackRefusedError`. */
export function translateError(method: string, err: unknown): Error {
  const e = err as { code?: string; retryAfter?: number; statusCode?: number; data?: { error?: string }; message?: string };
  switch (e.code) {
    case 'slack_webapi_rate_limited_error': {
      const seconds = Number.isFinite(e.retryAfter) ? Math.max(0, e.retryAfter!) : 1;
      return new RetryLaterError(seconds * 1000, `Slack rate-limited ${method}; retry after ${seconds} s`);
    }
    case 'slack_webapi_http_error':
      // Slack uses 200 and 429; a 5xx may or may not have been processed.
      return (e.statusCode ?? 500) >= 500 ? new SlackUnavailableError(method, `HTTP ${e.statusCode ?? 500}`) : new SlackRefusedError(method, `http_${e.statusCode}`);
    case 'slack_webapi_request_error':
      return new SlackUnavailableError(method, e.message ?? 'request failed');
    case 'slack_webapi_platform_error': {
      const code = e.data?.error ?? 'unknown_error';
      if (code === 'ratelimited') return new RetryLaterError(1000, `Slack rate-limited ${method}`);
      if (TRANSIENT_ERRORS.has(code)) return new SlackUnavailableError(method, code);
      if (SETUP_ERRORS.has(code)) return new SlackUnavailableError(method, code, 'setup');
      return new SlackRefusedError(method, code);
    }
    default:
      return new SlackUnavailableError(method, e.message ?? String(err));
  }
}

export class SlackApi {
  /**
   * Posts known absent from Slack: this process's last post of the key, in attempt `count` at the
   * work `work`, surely failed (a 429 or a refusal) and nothing with the key was there before it.
   * The next attempt at the same work need not look again. Memory only: another process looks.
   */
  private readonly knownAbsent = new Map<string, { work: string; count: number }>();

  constructor(
    private readonly client: SlackCaller,
    private readonly logger: Logger,
  ) {}

  /** One Web API call, one attempt. Throws what `translateError` makes of a failure. */
  async call<T = Record<string, unknown>>(method: string, args: Record<string, unknown>): Promise<T> {
    try {
      return (await this.client.apiCall(method, args)) as T;
    } catch (err) {
      throw translateError(method, err);
    }
  }

  /**
   * Posts a message carrying `key` in its metadata. When an earlier attempt at the same work may
   * have posted it (`attempt.count` > 1), looks for the key first and returns what it finds.
   */
  async post(key: string, args: PostArgs, attempt: DeliveryAttempt, log: Logger = this.logger): Promise<PostedRef> {
    const absent = this.knownAbsent.get(key);
    const surelyAbsent = absent !== undefined && absent.work === attempt.key && absent.count >= attempt.count - 1;
    if (attempt.count > 1 && !surelyAbsent) {
      const found = await this.find(key, args, attempt.since);
      if (found) {
        this.knownAbsent.delete(key);
        log.info({ key, ts: found.ts }, 'found an earlier post of this message in slack; not posting it again');
        return found;
      }
    }
    this.knownAbsent.delete(key);
    let result: { channel?: string; ts?: string };
    try {
      result = await this.call('chat.postMessage', { ...args, metadata: { event_type: POST_METADATA_TYPE, event_payload: { key } } });
    } catch (err) {
      // Slack surely did not post it: the next attempt need not look.
      if (err instanceof RetryLaterError || err instanceof SlackRefusedError) this.remember(key, attempt);
      throw err;
    }
    if (!result.ts) throw new SlackUnavailableError('chat.postMessage', 'answered without a ts');
    return { channel: result.channel ?? args.channel, ts: result.ts };
  }

  /**
   * Our post with `key` among the thread's replies (or the channel's top-level messages) since
   * `sinceMs` less a margin. Throws if Slack will not say: the caller must not post blindly.
   */
  async find(key: string, args: PostArgs, sinceMs: number): Promise<PostedRef | undefined> {
    const oldest = Math.max(0, sinceMs / 1000 - LOOKBACK_SECONDS).toFixed(6);
    const method = args.thread_ts ? 'conversations.replies' : 'conversations.history';
    type Page = {
      messages?: Array<{ ts?: string; metadata?: { event_type?: string; event_payload?: { key?: unknown } } }>;
      has_more?: boolean;
      response_metadata?: { next_cursor?: string };
    };
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LOOKUP_PAGES; page++) {
      const result = await this.call<Page>(method, {
        channel: args.channel,
        ...(args.thread_ts ? { ts: args.thread_ts } : {}),
        oldest,
        include_all_metadata: true,
        limit: 200,
        ...(cursor ? { cursor } : {}),
      });
      const match = result.messages?.find((m) => m.metadata?.event_type === POST_METADATA_TYPE && m.metadata.event_payload?.key === key);
      if (match?.ts) return { channel: args.channel, ts: match.ts };
      cursor = result.response_metadata?.next_cursor || undefined;
      if (!cursor) return undefined;
    }
    throw new SlackUnavailableError(method, `more than ${MAX_LOOKUP_PAGES} pages to search for ${key}`);
  }

  private remember(key: string, attempt: DeliveryAttempt): void {
    if (this.knownAbsent.size >= 10_000) this.knownAbsent.clear(); // a bound; forgetting only costs a look
    this.knownAbsent.set(key, { work: attempt.key, count: attempt.count });
  }
}

/** A loggable summary of an error (never a request body). */
export function describe(err: unknown): Record<string, unknown> {
  const e = err as { name?: string; code?: string; message?: string; statusCode?: number; retryAfter?: number; data?: { error?: string } };
  return { name: e.name, code: e.code, message: e.message, status: e.statusCode, retryAfter: e.retryAfter, error: e.data?.error };
}
