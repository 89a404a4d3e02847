/**
 * One Chat Completions call (`POST {baseURL}/chat/completions`), with the OpenAI SDK's retry rules
 * and error types, without its per-request pipeline.
 *
 * The SDK builds and checks a web `Headers` twice per request, wraps the call in several promise
 * layers, makes an AbortController and a timer, and formats a debug line whether or not it logs.
 * On the end-to-end bench at 20 customers, leaving that out cut the bridge's CPU per message by
 * about 15% (docs/bench.md, eleventh session). The request body is already JSON
 * (request-body.ts), so a call here is the headers built once, one request on the kept-alive
 * transport, and a parse of a 2xx answer.
 *
 * What stays the SDK's (the `openai` package): the request and answer types, and the errors. A
 * failed call throws the SDK's own classes: `APIError.generate` for an error status (so a 401 is an
 * `AuthenticationError`), `APIConnectionError`, `APIConnectionTimeoutError`. Retries follow the
 * SDK's rules (`shouldRetry`, `retryRequest`): `x-should-retry` first, then 408, 409, 429 and 5xx,
 * and connection failures; the wait is `retry-after-ms`, else `Retry-After` (seconds or a date),
 * else 0.5 s doubling up to 8 s, less up to 25% jitter. One difference: a server's wait is capped
 * at 60 s, so a Retry-After of an hour cannot hold a customer's turn.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import type { ChatCompletion } from 'openai/resources/chat/completions';
import { parseRetryAfter } from '../delivery/backoff.ts';
import { OutboundHttp, isIdleTimeout, type OutboundAnswer } from '../outbound-http.ts';

export interface ChatCompletionsOptions {
  apiKey: string;
  /** An OpenAI-compatible endpoint. Default: OpenAI's. */
  baseURL?: string;
  /** Sent as `OpenAI-Organization` / `OpenAI-Project`; default `OPENAI_ORG_ID` / `OPENAI_PROJECT_ID`, as the SDK does. */
  organization?: string;
  project?: string;
  /** An attempt with no answer (or no more of it) for this long fails as a timeout. Default 30 s. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 2. */
  maxRetries?: number;
}

export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
/** Largest answer read: a chat completion is far smaller. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
/** Who is calling, for the server's logs. */
const USER_AGENT = 'handoff-bridge (OpenAI-compatible Chat Completions)';
/** The longest wait a server may ask for before a retry. */
const MAX_SERVER_WAIT_MS = 60_000;

/** One transport per process, so every agent (and every turn) reuses the same connections. */
let shared: OutboundHttp | undefined;

export class ChatCompletions {
  private readonly origin: string;
  private readonly path: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;

  constructor(
    options: ChatCompletionsOptions,
    private readonly http: OutboundHttp = (shared ??= new OutboundHttp({ connectionsPerOrigin: 256, maxAnswerBytes: MAX_ANSWER_BYTES })),
  ) {
    const url = new URL(`${(options.baseURL ?? DEFAULT_BASE_URL).replace(/\/+$/, '')}/chat/completions`);
    this.origin = url.origin;
    this.path = url.pathname + url.search;
    const organization = options.organization ?? process.env.OPENAI_ORG_ID;
    const project = options.project ?? process.env.OPENAI_PROJECT_ID;
    this.headers = {
      authorization: `Bearer ${options.apiKey}`,
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': USER_AGENT,
      ...(organization ? { 'openai-organization': organization } : {}),
      ...(project ? { 'openai-project': project } : {}),
    };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetries = Math.max(0, Math.floor(options.maxRetries ?? 2));
  }

  /**
   * Sends `body` (a Chat Completions request as JSON) and returns the completion. Rejects with the
   * signal's reason once it aborts, also during a wait between attempts.
   */
  async create(body: string, signal: AbortSignal): Promise<ChatCompletion> {
    for (let retries = 0; ; retries++) {
      const retriesLeft = retries < this.maxRetries;
      let answer: OutboundAnswer;
      try {
        answer = await this.http.send(this.origin, this.path, { method: 'POST', headers: this.headers, body, signal, idleTimeoutMs: this.timeoutMs });
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        if (!retriesLeft) throw isIdleTimeout(err) ? new OpenAI.APIConnectionTimeoutError() : new OpenAI.APIConnectionError({ cause: err as Error });
        await sleep(backoffMs(retries), undefined, { signal });
        continue;
      }
      const { status } = answer;
      const text = answer.body.toString('utf8');
      if (status >= 200 && status < 300) {
        try {
          return JSON.parse(text) as ChatCompletion;
        } catch {
          throw new OpenAI.APIError(status, undefined, `the answer is not JSON: ${text.slice(0, 200)}`, webHeaders(answer.headers));
        }
      }
      const headers = webHeaders(answer.headers);
      if (retriesLeft && shouldRetry(status, headers)) {
        await sleep(retryDelayMs(headers, retries), undefined, { signal });
        continue;
      }
      const json = parseJson(text);
      throw OpenAI.APIError.generate(status, json, json === undefined ? text || undefined : undefined, headers);
    }
  }
}

/** The SDK's rule: the server's `x-should-retry` first, then timeouts, lock timeouts, rate limits and server errors. */
export function shouldRetry(status: number, headers: Headers): boolean {
  const said = headers.get('x-should-retry');
  if (said === 'true') return true;
  if (said === 'false') return false;
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** How long to wait before retry `retries + 1`: the server's `retry-after-ms` or `Retry-After`, else the backoff. */
export function retryDelayMs(headers: Headers, retries: number, now = Date.now()): number {
  const ms = parseFloat(headers.get('retry-after-ms') ?? '');
  const wait = Number.isNaN(ms) ? parseRetryAfter(headers.get('retry-after'), now) : ms;
  return wait === undefined ? backoffMs(retries) : Math.min(Math.max(0, wait), MAX_SERVER_WAIT_MS);
}

/** 0.5 s doubling per retry up to 8 s, less up to 25% jitter (the SDK's default). */
export function backoffMs(retries: number, random = Math.random()): number {
  return Math.min(0.5 * 2 ** retries, 8) * (1 - random * 0.25) * 1000;
}

function parseJson(text: string): object | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The SDK's errors carry a web `Headers`; only a failed call builds one. */
function webHeaders(raw: OutboundAnswer['headers']): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.set(name, value);
  }
  return headers;
}
