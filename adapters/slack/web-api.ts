/**
 * A small Slack Web API client for the delivery path: one HTTP POST per call on kept-alive
 * connections, encoded as Slack's own SDK encodes it (form fields; objects as JSON), with failures
 * shaped like the SDK's errors so `translateError` (api.ts) reads both the same way.
 *
 * The SDK's WebClient does much more per call (request queue, retries we turn off, rate-limit
 * bookkeeping, response warnings); on every mirrored message that cost more CPU than the bridge's
 * own work. Bolt still uses the WebClient for its listeners.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

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
  private readonly base: URL;
  /** Where every call goes; an IPv6 literal's host without its brackets, as node:http wants it. */
  private readonly target: { protocol: string; hostname: string; port: string };
  private readonly agent: HttpAgent;
  private readonly request: typeof httpRequest;
  /** Each method's URL path, worked out once (a URL parse per call showed in the profile). */
  private readonly paths = new Map<string, string>();

  constructor(private readonly options: { token: string; apiUrl: string; timeoutMs?: number }) {
    this.base = new URL(options.apiUrl.endsWith('/') ? options.apiUrl : `${options.apiUrl}/`);
    this.target = { protocol: this.base.protocol, hostname: this.base.hostname.replace(/^\[|\]$/g, ''), port: this.base.port };
    const https = this.base.protocol === 'https:';
    this.agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 64 }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
    this.request = https ? (httpsRequest as unknown as typeof httpRequest) : httpRequest;
  }

  apiCall(method: string, args: Record<string, unknown>): Promise<unknown> {
    const body = encodeForm(args);
    let path = this.paths.get(method);
    if (path === undefined) {
      const url = new URL(method, this.base);
      this.paths.set(method, (path = url.pathname + url.search));
    }
    return new Promise((resolve, reject) => {
      const req = this.request(
        {
          ...this.target,
          path,
          method: 'POST',
          agent: this.agent,
          timeout: this.options.timeoutMs ?? 15_000,
          headers: {
            authorization: `Bearer ${this.options.token}`,
            'content-type': 'application/x-www-form-urlencoded',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => this.answer(method, res).then(resolve, reject),
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.options.timeoutMs ?? 15_000} ms`)));
      req.on('error', (err) => reject(sdkError('slack_webapi_request_error', `A request error occurred: ${err.message}`)));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private async answer(method: string, res: IncomingMessage): Promise<unknown> {
    let chunks: Buffer[];
    try {
      chunks = await readBody(res);
    } catch (err) {
      throw sdkError('slack_webapi_request_error', `A request error occurred: ${(err as Error).message}`);
    }
    const status = res.statusCode ?? 0;
    if (status === 429) {
      const seconds = Number(res.headers['retry-after']);
      throw sdkError('slack_webapi_rate_limited_error', `A rate-limit has been reached for ${method}`, { retryAfter: Number.isFinite(seconds) ? seconds : 1 });
    }
    if (status !== 200) throw sdkError('slack_webapi_http_error', `An HTTP protocol error occurred: statusCode = ${status}`, { statusCode: status });
    let data: { ok?: boolean; error?: string };
    try {
      data = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { ok?: boolean; error?: string };
    } catch {
      throw sdkError('slack_webapi_request_error', `${method} answered with something that is not JSON`);
    }
    if (!data || data.ok !== true) throw sdkError('slack_webapi_platform_error', `An API error occurred: ${data?.error ?? 'unknown_error'}`, { data: { error: data?.error ?? 'unknown_error' } });
    return data;
  }
}

/** The answer's chunks, up to MAX_RESPONSE_BYTES (events, not an async iterator: a promise per chunk showed in the profile). */
function readBody(res: IncomingMessage): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        res.destroy();
        reject(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    res.once('end', () => resolve(chunks));
    res.once('error', reject);
    res.once('close', () => {
      if (!res.complete) reject(new Error('the answer was cut off'));
    });
  });
}
