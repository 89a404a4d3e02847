/**
 * A small Slack Web API client for the delivery path: one HTTP POST per call on kept-alive
 * connections, encoded as Slack's own SDK encodes it (form fields; objects as JSON), with failures
 * shaped like the SDK's errors so `translateError` (api.ts) reads both the same way.
 *
 * The SDK's WebClient does much more per call (request queue, retries we turn off, rate-limit
 * bookkeeping, response warnings); on every mirrored message that cost more CPU than the bridge's
 * own work. Bolt still uses the WebClient for its listeners.
 */
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
  private readonly headers: Record<string, string>;
  /** Each method's URL path, worked out once (a URL parse per call showed in the profile). */
  private readonly paths = new Map<string, string>();

  constructor(private readonly options: { token: string; apiUrl: string; timeoutMs?: number }) {
    this.basePath = new URL(options.apiUrl.endsWith('/') ? options.apiUrl : `${options.apiUrl}/`);
    this.origin = this.basePath.origin;
    this.headers = { authorization: `Bearer ${options.token}`, 'content-type': 'application/x-www-form-urlencoded' };
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
      answer = await this.http.send(this.origin, path, { method: 'POST', headers: this.headers, body: encodeForm(args), idleTimeoutMs: timeoutMs });
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
      const seconds = Number(answer.headers['retry-after']);
      throw sdkError('slack_webapi_rate_limited_error', `A rate-limit has been reached for ${method}`, { retryAfter: Number.isFinite(seconds) ? seconds : 1 });
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
