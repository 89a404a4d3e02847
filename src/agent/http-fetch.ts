/**
 * A `fetch` for the OpenAI SDK on `OutboundHttp` (undici's dispatcher, kept-alive connections). The
 * SDK is unchanged (its retries, errors, parsing); only the transport is smaller: the built-in
 * fetch spends more CPU per chat completion than the rest of an agent turn. Answers are read whole
 * (no streaming is used), then handed over: a success as a `BufferedAnswer`, anything else as a
 * standard `Response`.
 */
import { OutboundHttp, type OutboundAnswer } from '../outbound-http.ts';

/** Largest answer read: a chat completion is far smaller. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export function keepAliveFetch(): Fetch {
  const http = new OutboundHttp({ connectionsPerOrigin: 256, maxAnswerBytes: MAX_RESPONSE_BYTES });
  return async (input, init = {}) => {
    // Anything this transport was not made for goes to the platform's fetch.
    if (input instanceof Request || (init.body != null && typeof init.body !== 'string')) return fetch(input, init);
    const url = new URL(String(input));
    const headers: Record<string, string> = {};
    // The SDK hands over a Headers it built and checked: read it as it is.
    (init.headers instanceof Headers ? init.headers : new Headers(init.headers)).forEach((value, key) => {
      headers[key] = value;
    });
    const signal = init.signal ?? undefined;
    let answer;
    try {
      answer = await http.send(url.origin, url.pathname + url.search, { method: init.method ?? 'GET', headers, body: init.body as string | undefined, signal });
    } catch (err) {
      // fetch's shape for a failed request (an abort, also one before it started, rejects with the
      // signal's reason): the SDK turns it into a connection error.
      throw signal?.aborted ? (signal.reason ?? err) : Object.assign(new TypeError('fetch failed'), { cause: err });
    }
    const { status, body } = answer;
    // A success is read as the SDK reads it (status, headers, json); anything else, which the SDK
    // retries or turns into an error, is a standard Response.
    if (status >= 200 && status < 300 && status !== 204) {
      return new BufferedAnswer(status, '', new AnswerHeaders(answer.headers) as unknown as Headers, url.href, body) as unknown as Response;
    }
    const responseHeaders = new Headers();
    for (const [key, value] of Object.entries(answer.headers)) {
      if (Array.isArray(value)) for (const v of value) responseHeaders.append(key, v);
      else if (value !== undefined) responseHeaders.set(key, value);
    }
    // A Response may not carry a body with these statuses.
    return new Response(status === 204 || status === 304 ? null : (body as unknown as BodyInit), { status, headers: responseHeaders });
  };
}

/**
 * A whole 2xx answer with the reading side of a `Response` (status, headers, text, json, ...). A web
 * `Response` builds a ReadableStream for its body, which cost more than the JSON parse of a chat
 * completion; this answer is already in memory, so it hands the bytes over as they are.
 */
class BufferedAnswer {
  readonly ok = true;
  readonly redirected = false;
  readonly type = 'basic';
  readonly body = null;
  private used = false;

  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly headers: Headers,
    readonly url: string,
    private readonly bytes: Buffer,
  ) {}

  get bodyUsed(): boolean {
    return this.used;
  }

  async text(): Promise<string> {
    return this.take().toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = this.take();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  clone(): BufferedAnswer {
    if (this.used) throw new TypeError('Response body is already used');
    return new BufferedAnswer(this.status, this.statusText, this.headers, this.url, this.bytes);
  }

  /** A body is read once, as with fetch. */
  private take(): Buffer {
    if (this.used) throw new TypeError('Response body is already used');
    this.used = true;
    return this.bytes;
  }
}

/** The reading side of `Headers` over the headers undici parsed (names already lower case). */
class AnswerHeaders {
  constructor(private readonly raw: OutboundAnswer['headers']) {}

  get(name: string): string | null {
    const value = this.raw[name.toLowerCase()];
    return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
  }

  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }

  *entries(): IterableIterator<[string, string]> {
    for (const name of Object.keys(this.raw).sort()) {
      const value = this.get(name);
      if (value !== null) yield [name, value];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [name] of this.entries()) yield name;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  forEach(fn: (value: string, name: string, headers: AnswerHeaders) => void): void {
    for (const [name, value] of this.entries()) fn(value, name, this);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

let shared: Fetch | undefined;

/**
 * The SDK's telemetry headers, left out (a null in `defaultHeaders` removes a header): the API does
 * not need them, and each one is built, checked, copied and logged on every request.
 */
export const WITHOUT_SDK_TELEMETRY: Record<string, null> = Object.fromEntries(
  ['X-Stainless-Lang', 'X-Stainless-Package-Version', 'X-Stainless-OS', 'X-Stainless-Arch', 'X-Stainless-Runtime', 'X-Stainless-Runtime-Version', 'X-Stainless-Retry-Count', 'X-Stainless-Timeout'].map((h) => [h, null]),
);

/** One transport per process, so every agent (and every turn) reuses the same connections. */
export function sharedKeepAliveFetch(): Fetch {
  return (shared ??= keepAliveFetch());
}
