/**
 * Outbound HTTP on the delivery path (the Slack Web API client, the Chat Completions transport):
 * undici's dispatcher on kept-alive connections, each answer read whole up to a size limit.
 *
 * node:http's client spent about twice the CPU per request (docs/bench.md, ninth session), and a
 * mirrored message makes three requests. Callers shape the errors in their platform's terms.
 */
import { Agent, errors, type Dispatcher } from 'undici';

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

export class OutboundHttp {
  private dispatcher?: Agent;

  constructor(private readonly options: { connectionsPerOrigin: number; maxAnswerBytes: number }) {}

  /**
   * One request to `origin` + `path`; rejects on a connection failure, a timeout, an abort or an
   * answer over the limit. A dispatch handler collects the answer: undici's `request` wraps each
   * answer in a stream first, which cost about a fifth more CPU per request.
   */
  send(origin: string, path: string, request: OutboundRequest): Promise<OutboundAnswer> {
    const timeouts = request.idleTimeoutMs === undefined ? {} : { headersTimeout: request.idleTimeoutMs, bodyTimeout: request.idleTimeoutMs };
    this.dispatcher ??= new Agent({ connections: this.options.connectionsPerOrigin, maxResponseSize: this.options.maxAnswerBytes });
    const dispatcher = this.dispatcher;
    return new Promise<OutboundAnswer>((resolve, reject) => {
      const { signal } = request;
      const chunks: Buffer[] = [];
      let status = 0;
      let headers: OutboundAnswer['headers'] = {};
      let controller: Dispatcher.DispatchController | undefined;
      const onAbort = () => controller?.abort(signal!.reason);
      const done = () => signal?.removeEventListener('abort', onAbort);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(started) {
          controller = started;
          if (signal?.aborted) started.abort(signal.reason);
        },
        onResponseStart(_controller, statusCode, answered) {
          // Called again for the final answer after any 1xx (103 Early Hints): the last one counts.
          status = statusCode;
          headers = answered as OutboundAnswer['headers'];
        },
        onResponseData(_controller, chunk) {
          chunks.push(chunk);
        },
        onResponseEnd() {
          done();
          resolve({ status, headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
        },
        onResponseError(_controller, err) {
          done();
          reject(err);
        },
      };
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      dispatcher.dispatch({ origin, path, method: request.method as 'POST', headers: request.headers, body: request.body, ...timeouts }, handler);
    });
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
