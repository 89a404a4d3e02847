/**
 * A Bolt receiver on the bridge's shared HTTP server: one route for Events API callbacks,
 * interactivity (`payload=` forms) and slash commands. It verifies the signature before anything
 * else (forged or stale: 401, nothing happens), then the shape: a body that is not a JSON object,
 * or that Bolt cannot route, gets 400 and reaches no listener.
 *
 * Every signed request is answered before Slack's 3-second deadline, whether or not a listener
 * handles it:
 * - Events API callbacks are answered after the listener finished (Bolt's `processBeforeResponse`):
 *   200 once the event is committed, 500 if it could not be recorded or is still running at the
 *   deadline, so Slack delivers it again. A redelivery of a committed event is recognised by the bridge.
 * - Clicks, modals and commands are answered as soon as the listener acks (the work follows); with
 *   an empty 200 when no listener takes them, or before the deadline if a listener forgets to ack.
 *
 * `commitBeforeAck` gives a Socket Mode receiver the same rules.
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

/** Error code of a listener failure that Slack should retry (the event was not recorded). */
export const RETRY_REQUEST_CODE = 'slack_reply_not_recorded';

/** A signed body the app cannot read: answered 400. */
export class UnreadableBodyError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'UnreadableBodyError';
  }
}

/** A plain JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses a verified Slack request body by its content type; anything but a JSON object is refused. */
export function parseSlackBody(raw: string, contentType: string | undefined): Record<string, unknown> {
  let value: unknown;
  if ((contentType ?? '').includes('application/json')) value = JSON.parse(raw);
  else {
    const form = new URLSearchParams(raw);
    const payload = form.get('payload');
    value = payload !== null ? JSON.parse(payload) : Object.fromEntries(form.entries());
  }
  if (!isRecord(value)) throw new UnreadableBodyError(`the body is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}, not an object`);
  const problem = shapeProblem(value);
  if (problem) throw new UnreadableBodyError(problem);
  return value;
}

/**
 * Why Bolt could not route this body, for the shapes it reads before any listener: an event
 * callback needs an `event` object with a type, actions a non-empty list of objects, a view
 * action a view. Other oddities Bolt trips on are refused the same way when it rejects them.
 */
export function shapeProblem(body: Record<string, unknown>): string | undefined {
  if (body.type === 'event_callback' || body.event !== undefined) {
    if (!isRecord(body.event)) return 'an event callback without an event object';
    if (typeof body.event.type !== 'string') return 'an event without a type';
  }
  if (body.actions !== undefined && (!Array.isArray(body.actions) || body.actions.length === 0 || !body.actions.every(isRecord))) return 'actions is not a list of actions';
  if ((body.type === 'view_submission' || body.type === 'view_closed') && !isRecord(body.view)) return 'a view action without a view';
  if (body.command !== undefined && typeof body.command !== 'string') return 'command is not text';
  for (const key of ['user', 'channel', 'team', 'container', 'message'] as const) {
    if (body[key] !== undefined && body[key] !== null && typeof body[key] !== 'string' && !isRecord(body[key])) return `${key} is neither text nor an object`;
  }
  return undefined;
}

/** True for a listener failure after which Slack should deliver the request again. */
function retryable(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === RETRY_REQUEST_CODE;
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
    } catch (err) {
      log.warn({ reason: err instanceof UnreadableBodyError ? err.message : 'not JSON', path: this.path }, 'slack request refused: unreadable body');
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
      // Every listener is done: an event is answered now; a request nobody acked gets its empty 200.
      () => answer(200, beforeResponse ? ackPayload : undefined),
      (err: unknown) => {
        if (retryable(err)) {
          log.warn({ err: (err as Error)?.message ?? String(err), type: body.type }, 'slack request not recorded; answered 500 so Slack delivers it again');
          answer(500, 'not recorded yet');
        } else {
          // Listener errors are logged by the app's error handler; what reaches here is Bolt refusing the body.
          log.warn({ err: (err as Error)?.message ?? String(err), type: body.type }, 'slack request refused: bolt could not process its body');
          answer(400, 'unreadable request');
        }
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
 * Socket Mode with the HTTP receiver's rules. An `events_api` envelope is acked only after the
 * listener finished, and not at all when the event could not be recorded, so Slack delivers it
 * again. Clicks, modals and commands are acked when the listener acks, when no listener takes them,
 * or at the deadline. An envelope whose body is unreadable is acked and dropped: a redelivery would
 * be the same.
 */
export function commitBeforeAck(receiver: SocketModeReceiver, logger: Logger, ackDeadlineMs = 2500): void {
  type SlackEventArgs = { type: string; body: unknown; ack: (response?: unknown) => Promise<void>; retry_num?: number; retry_reason?: string };
  const client = receiver.client;
  // The socket client reads `payload.event.type` of an events_api envelope before anyone sees it:
  // an envelope without one would throw there, unacked. It is acked and dropped here instead.
  // (`send` and `onWebSocketMessage` are the client's own, not public API; test/slack/security.test.ts covers this.)
  const inner = client as unknown as { send(id: string): Promise<void>; onWebSocketMessage(data: unknown, isBinary: boolean): Promise<void> };
  client.removeAllListeners('ws_message');
  client.on('ws_message', (data: unknown, isBinary: boolean) => {
    let envelope: unknown;
    try {
      envelope = typeof data === 'string' ? JSON.parse(data) : undefined;
    } catch {
      envelope = undefined;
    }
    if (isRecord(envelope) && envelope.type === 'events_api' && !(isRecord(envelope.payload) && isRecord(envelope.payload.event) && typeof envelope.payload.event.type === 'string')) {
      logger.warn({ type: envelope.type }, 'slack envelope refused: an events_api envelope without an event');
      if (typeof envelope.envelope_id === 'string') void inner.send(envelope.envelope_id).catch(() => {});
      return;
    }
    inner.onWebSocketMessage(data, isBinary).catch((err: unknown) => logger.warn({ err: (err as Error)?.message ?? String(err) }, 'could not read a slack socket message'));
  });
  client.removeAllListeners('slack_event');
  client.on('slack_event', async (args: SlackEventArgs) => {
    const isEvent = args.type === 'events_api';
    let acked = false;
    let deadline: NodeJS.Timeout | undefined;
    const ack = async (response?: unknown) => {
      if (acked) return;
      acked = true;
      clearTimeout(deadline);
      await args.ack(response);
    };
    try {
      const body = args.body;
      const problem = isRecord(body) ? shapeProblem(body) : 'the body is not an object';
      if (problem) {
        logger.warn({ reason: problem, type: args.type }, 'slack envelope refused: unreadable body');
        return await ack();
      }
      const app = (receiver as unknown as { app?: App }).app;
      if (!app) return; // not started: unacked, Slack delivers it again
      if (!isEvent) deadline = setTimeout(() => void ack().catch(() => {}), ackDeadlineMs);
      let payload: unknown;
      try {
        await app.processEvent({
          body: body as Record<string, unknown>,
          ack: isEvent
            ? async (response?: unknown) => {
                payload = response;
              }
            : ack,
          ...(args.retry_num ? { retryNum: args.retry_num } : {}),
          ...(args.retry_reason ? { retryReason: args.retry_reason } : {}),
        });
      } catch (err) {
        if (retryable(err)) return; // not acked: Slack delivers it again
        logger.warn({ err: (err as Error)?.message ?? String(err), type: args.type }, 'slack envelope refused: bolt could not process its body');
      }
      await ack(isEvent ? payload : undefined);
    } catch (err) {
      logger.warn({ err: (err as Error)?.message ?? String(err), type: args.type }, 'could not ack a slack envelope');
    } finally {
      clearTimeout(deadline);
    }
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
