/**
 * A Bolt receiver on the bridge's shared HTTP server: one route for Events API callbacks,
 * interactivity (`payload=` forms) and slash commands. It verifies the signature before anything
 * else (forged or stale: 401, nothing happens), answers Slack as soon as the listener acks, and
 * answers anyway before Slack's 3-second deadline if a listener forgets to.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App, Receiver, ReceiverEvent } from '@slack/bolt';
import { readBody, type HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import { verifySlackSignature } from './signature.ts';

export interface HttpReceiverOptions {
  http: HttpServer;
  signingSecret: string;
  logger: Logger;
  path?: string;
  /** Answer Slack with an empty 200 if no listener acked by then (Slack gives up at 3 s). */
  ackDeadlineMs?: number;
  /** Largest request body accepted. */
  bodyLimit?: number;
}

/** Parses a verified Slack request body by its content type. */
export function parseSlackBody(raw: string, contentType: string | undefined): Record<string, unknown> {
  if ((contentType ?? '').includes('application/json')) return JSON.parse(raw) as Record<string, unknown>;
  const form = new URLSearchParams(raw);
  const payload = form.get('payload');
  if (payload !== null) return JSON.parse(payload) as Record<string, unknown>;
  return Object.fromEntries(form.entries());
}

export class SlackHttpReceiver implements Receiver {
  private app?: App;
  private readonly path: string;
  private readonly ackDeadlineMs: number;
  private readonly bodyLimit: number;
  private readonly inFlight = new Set<Promise<void>>();
  private accepting = false;

  constructor(private readonly options: HttpReceiverOptions) {
    this.path = options.path ?? '/slack/events';
    this.ackDeadlineMs = options.ackDeadlineMs ?? 2500;
    this.bodyLimit = options.bodyLimit ?? 1_000_000;
    options.http.route('POST', this.path, (req, res) => this.handle(req, res));
  }

  init(app: App): void {
    this.app = app;
  }

  async start(): Promise<void> {
    this.accepting = true;
  }

  /** Stops taking requests (503, so Slack retries elsewhere or later) and waits for listeners in flight. */
  async stop(): Promise<void> {
    this.accepting = false;
    await this.idle();
  }

  /** Resolves when no listener is running. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const log = this.options.logger;
    let raw: Buffer;
    try {
      raw = await readBody(req, this.bodyLimit);
    } catch (err) {
      res.writeHead((err as { status?: number }).status ?? 400, { 'content-type': 'text/plain' }).end('bad request');
      return;
    }
    const verdict = verifySlackSignature({
      signingSecret: this.options.signingSecret,
      body: raw,
      timestamp: header(req, 'x-slack-request-timestamp'),
      signature: header(req, 'x-slack-signature'),
    });
    if (!verdict.ok) {
      log.warn({ reason: verdict.reason, path: this.path }, 'slack request rejected: signature check failed');
      res.writeHead(401, { 'content-type': 'text/plain' }).end('invalid signature');
      return;
    }
    let body: Record<string, unknown>;
    try {
      body = parseSlackBody(raw.toString('utf8'), header(req, 'content-type'));
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('unreadable body');
      return;
    }
    if (body.type === 'url_verification' && typeof body.challenge === 'string') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ challenge: body.challenge }));
      return;
    }
    if (body.ssl_check !== undefined) {
      res.writeHead(200).end();
      return;
    }
    if (!this.accepting || !this.app) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '5' }).end('starting or stopping');
      return;
    }

    let acked = false;
    const respond = (status: number, payload: unknown) => {
      if (res.headersSent) return;
      if (payload === undefined || payload === '') res.writeHead(status).end();
      else if (typeof payload === 'string') res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(payload);
      else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    };
    const deadline = setTimeout(() => {
      if (acked) return;
      acked = true;
      log.warn({ type: body.type }, 'slack request not acknowledged in time; answered with an empty 200');
      respond(200, undefined);
    }, this.ackDeadlineMs);
    const retryNum = Number(header(req, 'x-slack-retry-num'));
    const retryReason = header(req, 'x-slack-retry-reason');
    const event: ReceiverEvent = {
      body,
      ...(Number.isFinite(retryNum) && retryNum > 0 ? { retryNum } : {}),
      ...(retryReason ? { retryReason } : {}),
      ack: async (response?: unknown) => {
        if (acked) return;
        acked = true;
        clearTimeout(deadline);
        respond(200, response);
      },
    };
    const work = this.app
      .processEvent(event)
      .catch((err: unknown) => {
        log.error({ err, type: body.type }, 'slack listener failed');
        if (!acked) {
          acked = true;
          clearTimeout(deadline);
          respond(500, 'listener failed');
        }
      })
      .finally(() => clearTimeout(deadline));
    this.inFlight.add(work);
    // The response goes out at ack (or at the deadline); the listener's slow work continues here.
    void work.finally(() => this.inFlight.delete(work));
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
