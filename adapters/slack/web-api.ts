/**
 * A small Slack Web API client for the delivery path: one HTTP POST per call on kept-alive
 * connections, with failures shaped like the SDK's errors so `translateError` (api.ts) reads both
 * the same way. The write methods that take messages and views get a JSON body, as Slack
 * recommends for them (arguments such as `blocks` are awkward in a form, and a form's escaping
 * makes the body larger); every other method gets form fields, as Slack's own SDK sends them.
 *
 * The SDK's WebClient does much more per call (request queue, retries we turn off, rate-limit
 * bookkeeping, response warnings); on every mirrored message that cost more CPU than the bridge's
 * own work. Bolt still uses the WebClient for its listeners.
 */
import { parseRetryAfter } from '../../src/delivery/backoff.ts';
import { isIdleTimeout, OutboundHttp, type OutboundAnswer } from '../../src/outbound-http.ts';

/** The one call SlackApi makes. */
export interface SlackCaller {
  apiCall(method: string, args: Record<string, unknown>): Promise<unknown>;
}

/** Largest answer read (Slack's pages of history are far below this). */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

type SdkLikeError = Error & { code: string; retryAfter?: number; statusCode?: number; data?: { error?: string } };

function sdkError(code: string, message: string, fields: Partial<SdkLikeError> = {}): SdkLikeError {
  return Object.assign(new Error(message), { code, ...fields }) as SdkLikeError;
}

/**
 * Methods Slack documents as taking `application/json` bodies (the token then has to be in the
 * Authorization header, where it always is here). Read methods take only forms.
 */
const JSON_METHODS = new Set(['chat.postMessage', 'chat.update', 'chat.postEphemeral', 'views.publish']);

/** Slack's form encoding: strings as they are, everything else as JSON. */
export function encodeForm(args: Record<string, unknown>): string {
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(args)) {
    if (value === undefined) continue;
    form.append(key, typeof value === 'string' ? value : JSON.stringify(value));
  }
  return form.toString();
}

export class SlackWebApiClient implements SlackCaller {
  private readonly origin: string;
  private readonly basePath: URL;
  private readonly http = new OutboundHttp({ connectionsPerOrigin: 64, maxAnswerBytes: MAX_RESPONSE_BYTES });
  private readonly formHeaders: Record<string, string>;
  private readonly jsonHeaders: Record<string, string>;
  /** Each method's URL path, worked out once (a URL parse per call showed in the profile). */
  private readonly paths = new Map<string, string>();

  constructor(private readonly options: { token: string; apiUrl: string; timeoutMs?: number }) {
    this.basePath = new URL(options.apiUrl.endsWith('/') ? options.apiUrl : `${options.apiUrl}/`);
    this.origin = this.basePath.origin;
    const authorization = `Bearer ${options.token}`;
    this.formHeaders = { authorization, 'content-type': 'application/x-www-form-urlencoded' };
    // Without the charset Slack answers with a `missing_charset` warning.
    this.jsonHeaders = { authorization, 'content-type': 'application/json; charset=utf-8' };
  }

  async apiCall(method: string, args: Record<string, unknown>): Promise<unknown> {
    let path = this.paths.get(method);
    if (path === undefined) {
      const url = new URL(method, this.basePath);
      this.paths.set(method, (path = url.pathname + url.search));
    }
    const timeoutMs = this.options.timeoutMs ?? 15_000;
    let answer: OutboundAnswer;
    try {
      const json = JSON_METHODS.has(method);
      const request = { method: 'POST', headers: json ? this.jsonHeaders : this.formHeaders, body: json ? JSON.stringify(args) : encodeForm(args), idleTimeoutMs: timeoutMs };
      answer = await this.http.send(this.origin, path, request);
    } catch (err) {
      const reason = isIdleTimeout(err) ? `no answer within ${timeoutMs} ms` : (err as Error).message;
      throw sdkError('slack_webapi_request_error', `A request error occurred: ${reason}`);
    }
    return this.read(method, answer);
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private read(method: string, answer: OutboundAnswer): unknown {
    const { status } = answer;
    if (status === 429) {
      const header = answer.headers['retry-after'];
      const waitMs = parseRetryAfter(Array.isArray(header) ? header[0] : header);
      // The SDK's field is in seconds; without a readable header, a second.
      throw sdkError('slack_webapi_rate_limited_error', `A rate-limit has been reached for ${method}`, { retryAfter: waitMs === undefined ? 1 : waitMs / 1000 });
    }
    if (status !== 200) throw sdkError('slack_webapi_http_error', `An HTTP protocol error occurred: statusCode = ${status}`, { statusCode: status });
    let data: { ok?: boolean; error?: string };
    try {
      data = JSON.parse(answer.body.toString('utf8')) as { ok?: boolean; error?: string };
    } catch {
      throw sdkError('slack_webapi_request_error', `${method} answered with something that is not JSON`);
    }
    if (!data || data.ok !== true) throw sdkError('slack_webapi_platform_error', `An API error occurred: ${data?.error ?? 'unknown_error'}`, { data: { error: data?.error ?? 'unknown_error' } });
    return data;
  }
}
