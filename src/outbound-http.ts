/**
 * Outbound HTTP on the delivery path (the Slack Web API client, the Chat Completions transport):
 * undici's dispatcher on kept-alive connections, each answer read whole up to a size limit.
 *
 * node:http's client spent about twice the CPU per request (docs/bench.md, ninth session), and a
 * mirrored message makes three requests. Callers shape the errors in their platform's terms.
 */
import type { Readable } from 'node:stream';
import { Agent, errors } from 'undici';

export interface OutboundAnswer {
  status: number;
  /** As undici parsed them: lower-case names, repeated headers as arrays. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface OutboundRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** No answer (or no more of it) for this long fails the request. Default: undici's (300 s). */
  idleTimeoutMs?: number;
}

/** The question a caller asks of a failure: did the answer stop coming? */
export function isIdleTimeout(err: unknown): boolean {
  return err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError;
}

/** Events, not an async iterator: a promise per chunk showed in the profile. */
function readWhole(body: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    body.on('data', (chunk: Buffer) => chunks.push(chunk));
    body.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    body.once('error', reject);
  });
}

export class OutboundHttp {
  private dispatcher?: Agent;

  constructor(private readonly options: { connectionsPerOrigin: number; maxAnswerBytes: number }) {}

  /** One request to `origin` + `path`; rejects on a connection failure, a timeout, an abort or an answer over the limit. */
  async send(origin: string, path: string, request: OutboundRequest): Promise<OutboundAnswer> {
    const timeouts = request.idleTimeoutMs === undefined ? {} : { headersTimeout: request.idleTimeoutMs, bodyTimeout: request.idleTimeoutMs };
    this.dispatcher ??= new Agent({ connections: this.options.connectionsPerOrigin, maxResponseSize: this.options.maxAnswerBytes });
    const answer = await this.dispatcher.request({
      origin,
      path,
      method: request.method as 'POST',
      headers: request.headers,
      body: request.body,
      signal: request.signal,
      ...timeouts,
    });
    return { status: answer.statusCode, headers: answer.headers, body: await readWhole(answer.body) };
  }

  /**
   * Ends every connection now; requests still waiting for an answer fail (the delivery worker
   * retries them). A later request opens new connections: a workspace that stops leaves its
   * outbound work to the bridge's workers, which may still be sending.
   */
  async close(): Promise<void> {
    const dispatcher = this.dispatcher;
    this.dispatcher = undefined;
    await dispatcher?.destroy();
  }
}
