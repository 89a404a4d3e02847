/**
 * Outbound calls to the Teams Bot Connector REST API (create a channel thread, post a reply, edit a
 * card), with the bot's token from botbuilder's credential factory. One request per call: retries
 * belong to the delivery worker, which knows the attempt count and holds only this conversation.
 *
 * Why not botbuilder's ConnectorClient: its pipeline (Azure core-rest-pipeline) silently re-POSTs a
 * message up to three times on a 5xx or a dropped connection, which duplicates messages in Teams
 * (the Bot Connector has no idempotency key) without the caller knowing. Here a failure says whether
 * the request was definitely not applied (`not_sent`: 4xx, connection refused) or may have been
 * (`unknown`: 5xx, reset, timeout), and a 429 is a `RetryLaterError` with Teams' Retry-After.
 */
import type { ConfigurationServiceClientCredentialFactory } from 'botbuilder';
import { RetryLaterError } from '../../src/delivery/outcome.ts';
import type { Logger } from '../../src/log.ts';
import { parseRetryAfter } from '../../src/delivery/backoff.ts';
import { ThreadPacer, throttledDelay } from './throttle.ts';

/** Public-cloud constants botbuilder uses for bot-to-channel tokens. */
const BOT_TO_CHANNEL_SCOPE = 'https://api.botframework.com';
const BOT_TO_CHANNEL_LOGIN = 'https://login.microsoftonline.com/botframework.com';

/** What a failed request means for the message it carried. */
export type Delivery = 'not_sent' | 'unknown';

/** A Bot Connector request that failed; `delivery` says whether it may have taken effect. */
export class BotConnectorError extends Error {
  constructor(
    message: string,
    readonly delivery: Delivery,
    readonly status?: number,
    readonly code?: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'BotConnectorError';
  }
}

/**
 * Statuses that are not about the request itself, so a retry can succeed: the bot's credentials or
 * membership (401, 403: fixed by an admin, then everything goes through), a timeout, a busy thread.
 */
const RETRYABLE_4XX = new Set([401, 403, 408, 412, 429]);

/** The code of a request refused here because its service URL is not one the bot may call. */
export const SERVICE_URL_REFUSED = 'service_url_refused';

/** Refused for good: a 4xx no retry will change (bad payload, too big, not found), or a service URL the bot may not call. */
export function isRefusal(err: unknown): err is BotConnectorError {
  if (!(err instanceof BotConnectorError)) return false;
  if (err.code === SERVICE_URL_REFUSED) return true;
  return err.status !== undefined && err.status >= 400 && err.status < 500 && !RETRYABLE_4XX.has(err.status);
}

/** A Bot Framework activity as we send it (loose: Teams accepts more fields than we use). */
export type OutgoingActivity = { type: string } & Record<string, unknown>;

export interface ConversationParameters {
  isGroup: boolean;
  bot?: { id: string; name?: string };
  members?: Array<{ id: string; name?: string }>;
  tenantId?: string;
  channelData?: Record<string, unknown>;
  activity?: OutgoingActivity;
}

export interface BotConnectorOptions {
  appId: string;
  credentials: Pick<ConfigurationServiceClientCredentialFactory, 'createCredentials'>;
  logger: Logger;
  timeoutMs?: number;
  /** After a 429 without Retry-After, stay away between this and three times it (default 1000 ms). */
  throttleBackoffMs?: number;
  pacer?: ThreadPacer;
  fetch?: typeof fetch;
  /** Service URLs the bot may call (and send its token to); others are refused before any request. */
  allowServiceUrl?: (url: string) => boolean;
}

/** Per call: aborted when the delivery worker lost its lease or is stopping. */
export interface RequestOptions {
  signal?: AbortSignal;
  /** Where the call's own lines (a 429) go: the conversation's logger, so they carry its id. */
  log?: Logger;
}

/** Connection errors that prove the request never reached the server. */
const NEVER_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

export class BotConnector {
  private readonly timeoutMs: number;
  private readonly throttleBackoffMs: number;
  private readonly pacer: ThreadPacer;
  private readonly fetch: typeof fetch;
  private credentials?: Promise<unknown>;

  constructor(private readonly options: BotConnectorOptions) {
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.throttleBackoffMs = options.throttleBackoffMs ?? 1_000;
    this.pacer = options.pacer ?? new ThreadPacer();
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  /** Starts a conversation: a new channel thread (`channelData.channel`) or a 1:1 chat (`members`). */
  async createConversation(serviceUrl: string, params: ConversationParameters, pacingKey: string, options: RequestOptions = {}): Promise<{ id: string; activityId?: string }> {
    const body = await this.request<{ id?: string; activityId?: string }>(serviceUrl, 'POST', '/v3/conversations', params, pacingKey, options);
    if (!body?.id) throw new BotConnectorError('Teams created the conversation but returned no id', 'unknown');
    return { id: body.id, ...(body.activityId ? { activityId: body.activityId } : {}) };
  }

  /** Posts an activity into a conversation (for a channel thread: `<channel>;messageid=<root>`). */
  async sendToConversation(serviceUrl: string, conversationId: string, activity: OutgoingActivity, options: RequestOptions = {}): Promise<{ id: string }> {
    const path = `/v3/conversations/${encodeURIComponent(conversationId)}/activities`;
    const body = await this.request<{ id?: string }>(serviceUrl, 'POST', path, activity, conversationId, options);
    return { id: body?.id ?? '' };
  }

  /** Replaces an activity the bot sent earlier (cards are edited in place). Idempotent. */
  async updateActivity(serviceUrl: string, conversationId: string, activityId: string, activity: OutgoingActivity, options: RequestOptions = {}): Promise<void> {
    const path = `/v3/conversations/${encodeURIComponent(conversationId)}/activities/${encodeURIComponent(activityId)}`;
    await this.request(serviceUrl, 'PUT', path, { ...activity, id: activityId }, conversationId, options);
  }

  /** One paced request. Throws `RetryLaterError` (429, or a long pacing wait) or `BotConnectorError`. */
  private async request<T>(serviceUrl: string, method: 'POST' | 'PUT', path: string, body: unknown, pacingKey: string, options: RequestOptions): Promise<T | undefined> {
    if (this.options.allowServiceUrl && !this.options.allowServiceUrl(serviceUrl)) {
      throw new BotConnectorError(`Refused to call ${serviceUrl}: not the configured Teams service URL or Microsoft's`, 'not_sent', undefined, SERVICE_URL_REFUSED);
    }
    const url = new URL(path.replace(/^\//, ''), serviceUrl.endsWith('/') ? serviceUrl : serviceUrl + '/').toString();
    await this.pacer.reserve(pacingKey);
    try {
      return await this.once<T>(method, url, body, options.signal);
    } catch (err) {
      if (!(err instanceof BotConnectorError) || err.status !== 429) throw err;
      const waitMs = throttledDelay(err.retryAfterMs, this.throttleBackoffMs);
      (options.log ?? this.options.logger).warn({ method, path, retryAfterMs: err.retryAfterMs, waitMs }, 'Teams throttled this thread (429); its work waits, nothing else does');
      throw new RetryLaterError(waitMs, `${err.message} (retry in ${waitMs} ms)`);
    }
  }

  private async once<T>(method: string, url: string, body: unknown, abort?: AbortSignal): Promise<T | undefined> {
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', accept: 'application/json' };
    const token = await this.token();
    if (token) headers.authorization = `Bearer ${token}`;
    let res: Response;
    try {
      const timeout = AbortSignal.timeout(this.timeoutMs);
      res = await this.fetch(url, { method, headers, body: JSON.stringify(body), signal: abort ? AbortSignal.any([abort, timeout]) : timeout });
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code;
      if (code && NEVER_CONNECTED.has(code)) throw new BotConnectorError(`Teams unreachable (${code})`, 'not_sent', undefined, code);
      const timedOut = (err as Error).name === 'TimeoutError';
      throw new BotConnectorError(timedOut ? `Teams did not answer within ${this.timeoutMs} ms` : `Teams connection failed: ${(err as Error).message}`, 'unknown', undefined, code ?? (timedOut ? 'timeout' : undefined));
    }
    const text = await res.text().catch(() => '');
    if (res.ok) return text ? (safeJson(text) as T) : undefined;
    const error = (safeJson(text) as { error?: { code?: string; message?: string } } | undefined)?.error;
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    const detail = `Teams answered ${res.status}${error?.code ? ` ${error.code}` : ''}${error?.message ? `: ${error.message}` : ''}`;
    // 4xx means Teams refused the request, so nothing was posted; 5xx may come after it was.
    const delivery: Delivery = res.status < 500 ? 'not_sent' : 'unknown';
    throw new BotConnectorError(detail, delivery, res.status, error?.code, retryAfterMs);
  }

  /** The bot's bearer token, or undefined when auth is disabled (empty app id). */
  private async token(): Promise<string | undefined> {
    if (!this.options.appId) return undefined;
    this.credentials ??= this.options.credentials.createCredentials(this.options.appId, BOT_TO_CHANNEL_SCOPE, BOT_TO_CHANNEL_LOGIN, true);
    try {
      const credentials = (await this.credentials) as { getToken?: (force?: boolean) => Promise<string> };
      if (typeof credentials.getToken !== 'function') throw new Error('the credential type cannot issue tokens');
      return await credentials.getToken();
    } catch (err) {
      this.credentials = undefined;
      throw new BotConnectorError(`Could not get a Bot Framework token for MICROSOFT_APP_ID ${this.options.appId}: ${(err as Error).message}`, 'not_sent');
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
