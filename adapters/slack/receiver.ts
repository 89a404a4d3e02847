/**
 * A Bolt receiver on the bridge's shared HTTP server: one route for Events API callbacks,
 * interactivity (`payload=` forms) and slash commands. It verifies the signature before anything
 * else (forged or stale: 401, nothing happens).
 *
 * - Events API callbacks are answered after the listener finished (Bolt's `processBeforeResponse`):
 *   200 once the event is committed, 500 if it failed or is still running at the deadline, so
 *   Slack delivers it again. A redelivery of a committed event is recognised by the bridge.
 * - Clicks, modals and commands are answered as soon as the listener acks (the work follows), or
 *   with an empty 200 before Slack's 3-second deadline if a listener forgets to.
 *
 * `commitBeforeAck` gives a Socket Mode receiver the same rule for events.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App, Receiver, ReceiverEvent, SocketModeReceiver } from '@slack/bolt';
import { readBody, type HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import { verifySlackSignature } from './signature.ts';

export interface HttpReceiverOptions {
  http: HttpServer;
  signingSecret: string;
  logger: Logger;
  path?: string;
  /**
   * Slack gives up at 3 s. By then a click or command without an ack gets an empty 200; an event
   * still being processed gets a 500 (Slack retries it; the bridge recognises it if it landed).
   */
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

    // Events: the answer waits for the listener (the commit). Everything else: the answer is the ack.
    const beforeResponse = body.type === 'event_callback';
    let answered = false;
    let ackPayload: unknown;
    const answer = (status: number, payload: unknown) => {
      if (answered || res.headersSent) return;
      answered = true;
      clearTimeout(deadline);
      if (payload === undefined || payload === '') res.writeHead(status).end();
      else if (typeof payload === 'string') res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(payload);
      else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    };
    const deadline = setTimeout(() => {
      if (answered) return;
      if (beforeResponse) {
        log.warn({ type: body.type }, 'slack event still being processed at the deadline; answered 500 so Slack delivers it again');
        answer(500, 'still processing');
      } else {
        log.warn({ type: body.type }, 'slack request not acknowledged in time; answered with an empty 200');
        answer(200, undefined);
      }
    }, this.ackDeadlineMs);
    const retryNum = Number(header(req, 'x-slack-retry-num'));
    const retryReason = header(req, 'x-slack-retry-reason');
    const event: ReceiverEvent = {
      body,
      ...(Number.isFinite(retryNum) && retryNum > 0 ? { retryNum } : {}),
      ...(retryReason ? { retryReason } : {}),
      ack: async (response?: unknown) => {
        if (beforeResponse) ackPayload = response;
        else answer(200, response);
      },
    };
    const work = this.app.processEvent(event).then(
      () => {
        if (beforeResponse) answer(200, ackPayload);
      },
      (err: unknown) => {
        log.error({ err: (err as Error)?.message ?? String(err), type: body.type }, 'slack listener failed');
        answer(500, 'listener failed');
      },
    );
    this.inFlight.add(work);
    void work.finally(() => {
      clearTimeout(deadline);
      this.inFlight.delete(work);
    });
  }
}

/**
 * Socket Mode with the HTTP receiver's rule for events: an `events_api` envelope is acked only
 * after the listener finished without error, so an event that could not be committed is delivered
 * again by Slack. Other envelopes (clicks, commands) keep Bolt's handling: acked when the listener acks.
 */
export function commitBeforeAck(receiver: SocketModeReceiver): void {
  type SlackEventArgs = { type: string; body: Record<string, unknown>; ack: (response?: unknown) => Promise<void>; retry_num?: number; retry_reason?: string };
  const client = receiver.client;
  const bolts = client.listeners('slack_event') as Array<(args: SlackEventArgs) => Promise<void>>;
  client.removeAllListeners('slack_event');
  client.on('slack_event', async (args: SlackEventArgs) => {
    if (args.type !== 'events_api') {
      for (const listener of bolts) await listener(args);
      return;
    }
    const app = (receiver as unknown as { app?: App }).app;
    if (!app) return;
    let payload: unknown;
    try {
      await app.processEvent({
        body: args.body,
        ack: async (response?: unknown) => {
          payload = response;
        },
        ...(args.retry_num ? { retryNum: args.retry_num } : {}),
        ...(args.retry_reason ? { retryReason: args.retry_reason } : {}),
      });
    } catch {
      return; // not acked: Slack delivers the event again
    }
    await args.ack(payload);
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
