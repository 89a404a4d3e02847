/**
 * Customers for the fault suite, behaving like the real clients:
 * - `WebChatCustomer` does what the widget does (adapters/webchat/widget/client.ts): a session over
 *   HTTP, a WebSocket with hello/lastSeenId, reconnects when the socket drops (to whichever
 *   instance is up), resends every unconfirmed message (same clientId) after `ready`, and retries a
 *   message the server answered `unavailable` or `rate_limited` (the visitor clicking Retry).
 * - `EmailCustomer` is the customer's mail server: nodemailer into an instance's inbound SMTP port,
 *   retrying on a refused connection or a 4xx on the other instance, with a fixed Message-ID per email.
 * Both keep what they sent (and whether it was accepted) and what they received, with times.
 */
import nodemailer from 'nodemailer';
import { WebSocket } from 'ws';
import type { ServerFrame, ServerMessageFrame } from '../../adapters/webchat/frames.ts';
import { route, type BridgeProcess } from './processes.ts';
import type { FaultSmtpSink, SunkMail } from './smtp-sink.ts';
import { sleep, until } from './util.ts';

/** One customer message as its sender saw it. */
export interface SentMessage {
  marker: string;
  text: string;
  firstSentAt: number;
  /** When the server confirmed it (web chat echo, SMTP 250); undefined = never accepted. */
  acceptedAt?: number;
  /** Attempts the client made (resends, MTA retries). */
  attempts: number;
  /** Error answers the client got before (or instead of) acceptance. */
  errors: string[];
}

/** A message frame as the visitor's socket received it. */
export interface ReceivedFrame {
  frame: ServerMessageFrame;
  at: number;
}

const GIVE_UP_MS = 120_000;

export class WebChatCustomer {
  readonly channel = 'webchat' as const;
  readonly sent: SentMessage[] = [];
  /** Every message frame received, in arrival order, repeats included. */
  readonly frames: ReceivedFrame[] = [];
  conversationId: string | undefined;
  /** Conversations the server made this visitor leave (a refused session starts a new one). */
  readonly abandoned: string[] = [];
  /** Sockets opened (1 + reconnects). */
  connects = 0;
  /** Error frames and refused sessions, by code. */
  readonly problems: Record<string, number> = {};
  private token: string | undefined;
  private ws: WebSocket | undefined;
  private ready = false;
  private closed = false;
  private lastSeenId: string | undefined;
  private readonly outbox = new Map<string, { text: string; record: SentMessage; resolve: () => void }>();
  private counter = 0;
  private attempt = 0;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly label: string,
    readonly name: string,
    private readonly instances: BridgeProcess[],
    private readonly preferred: number,
    /** Its own client address (X-Forwarded-For), so per-address session limits see separate visitors. */
    private readonly address: string,
  ) {}

  /** Opens a session (retrying while the bridge cannot) and connects. */
  async open(): Promise<void> {
    await this.newSession();
    this.connect();
    await until(() => this.ready, 60_000, 20);
  }

  /** POST /webchat/session until it answers: a token (the first message creates the conversation). */
  private async newSession(): Promise<void> {
    const deadline = Date.now() + GIVE_UP_MS;
    for (let attempt = 0; ; attempt++) {
      const instance = route(this.instances, this.preferred, attempt);
      try {
        const response = await fetch(`${instance.url}/webchat/session`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': this.address },
          body: JSON.stringify({ name: this.name }),
          signal: AbortSignal.timeout(10_000),
        });
        if (response.ok) {
          const session = (await response.json()) as { token: string; conversationId?: string };
          this.token = session.token;
          if (session.conversationId) this.conversationId = session.conversationId;
          return;
        }
        this.problem(`session_${response.status}`);
      } catch {
        this.problem('session_unreachable');
      }
      if (Date.now() > deadline) throw new Error(`${this.label}: no web chat session after ${GIVE_UP_MS} ms`);
      await sleep(500);
    }
  }

  /** Sends one message and resolves when the server confirmed it (or the customer gave up). */
  say(text: string, marker: string): Promise<SentMessage> {
    const clientId = `${this.label}-${++this.counter}`;
    const record: SentMessage = { marker, text, firstSentAt: Date.now(), attempts: 0, errors: [] };
    this.sent.push(record);
    return new Promise<SentMessage>((resolve) => {
      const giveUp = setTimeout(() => {
        this.outbox.delete(clientId);
        resolve(record);
      }, GIVE_UP_MS);
      this.outbox.set(clientId, {
        text,
        record,
        resolve: () => {
          clearTimeout(giveUp);
          resolve(record);
        },
      });
      this.transmit(clientId);
      void this.nudge(clientId);
    });
  }

  /** Message frames in the order the widget would show them (a repeat of an id is not shown again). */
  shown(): ReceivedFrame[] {
    const seen = new Set<string>();
    return this.frames.filter((f) => !seen.has(f.frame.id) && seen.add(f.frame.id));
  }

  /** Waits for the first agent message frame that arrives after `since` frames (no polling: timing is not disturbed). */
  agentReplyAfter(since: number, timeoutMs: number): Promise<ReceivedFrame | undefined> {
    const find = () => this.frames.slice(since).find((f) => f.frame.role === 'agent');
    const found = find();
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        resolve(undefined);
      }, timeoutMs);
      const check = () => {
        const frame = find();
        if (!frame) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(frame);
      };
      this.listeners.add(check);
    });
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }

  private connect(): void {
    if (this.closed || this.ws || !this.token) return;
    const instance = route(this.instances, this.preferred, this.attempt);
    const ws = new WebSocket(`${instance.url.replace('http', 'ws')}/webchat/ws`);
    this.ws = ws;
    this.connects += 1;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', token: this.token, ...(this.lastSeenId ? { lastSeenId: this.lastSeenId } : {}) })));
    ws.on('message', (data) => this.onFrame(JSON.parse(String(data)) as ServerFrame));
    ws.on('error', () => {});
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.ready = false;
      if (this.closed) return;
      this.attempt += 1;
      // The widget waits ~0.5-1 s before its first reconnect.
      const delay = 300 + Math.min(2000, 200 * this.attempt);
      if (code === 4001 || code === 4004) {
        // The server refused the session: the widget starts afresh (a new conversation), keeping unsent text.
        this.problem(`session_refused_${code}`);
        if (this.conversationId) this.abandoned.push(this.conversationId);
        this.conversationId = undefined;
        this.token = undefined;
        this.lastSeenId = undefined;
        setTimeout(() => void this.newSession().then(() => this.connect()), delay);
        return;
      }
      setTimeout(() => this.connect(), delay);
    });
  }

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'ready':
        this.keep(frame);
        this.ready = true;
        this.attempt = 0;
        for (const clientId of this.outbox.keys()) this.transmit(clientId);
        return;
      case 'token':
        this.keep(frame);
        return;
      case 'message': {
        this.frames.push({ frame, at: Date.now() });
        this.lastSeenId = frame.id;
        for (const listener of [...this.listeners]) listener();
        const pending = frame.clientId ? this.outbox.get(frame.clientId) : undefined;
        if (frame.clientId && pending) {
          this.outbox.delete(frame.clientId);
          pending.record.acceptedAt = Date.now();
          pending.resolve();
        }
        return;
      }
      case 'error': {
        this.problem(frame.code);
        const pending = frame.clientId ? this.outbox.get(frame.clientId) : undefined;
        if (!pending) return;
        pending.record.errors.push(frame.code);
        if (frame.code === 'unavailable' || frame.code === 'rate_limited') {
          // The visitor clicks Retry after a moment.
          setTimeout(() => this.transmit(frame.clientId!), 1000);
        } else {
          this.outbox.delete(frame.clientId!);
          pending.resolve();
        }
        return;
      }
      default:
        return;
    }
  }

  /** Each hello spends the token; the server hands over the next one (and the conversation, once it exists). */
  private keep(frame: { token?: string; conversationId?: string }): void {
    if (frame.token) this.token = frame.token;
    if (frame.conversationId) this.conversationId = frame.conversationId;
  }

  private transmit(clientId: string): void {
    const pending = this.outbox.get(clientId);
    if (!pending || !this.ready || this.ws?.readyState !== WebSocket.OPEN) return;
    pending.record.attempts += 1;
    this.ws.send(JSON.stringify({ type: 'message', text: pending.text, clientId }));
  }

  /** A message still unconfirmed after 10 s: the visitor reloads the page (reconnect, which resends). */
  private async nudge(clientId: string): Promise<void> {
    for (;;) {
      await sleep(10_000);
      if (!this.outbox.has(clientId) || this.closed) return;
      this.problem('reload');
      this.ws?.terminate();
    }
  }

  private problem(code: string): void {
    this.problems[code] = (this.problems[code] ?? 0) + 1;
  }
}

/** The customer's own mail server and mailbox. */
export class EmailCustomer {
  readonly channel = 'email' as const;
  readonly sent: Array<SentMessage & { messageId: string; response?: string }> = [];
  conversationId: string | undefined;
  ticket: string | undefined;
  readonly problems: Record<string, number> = {};
  private counter = 0;

  constructor(
    readonly label: string,
    readonly name: string,
    readonly address: string,
    private readonly supportAddress: string,
    private readonly instances: BridgeProcess[],
    private readonly preferred: number,
    private readonly sink: FaultSmtpSink,
  ) {}

  /** What reached this customer's mailbox, in arrival order. */
  mailbox(): SunkMail[] {
    return this.sink.to(this.address);
  }

  /** Emails in the order a mail client shows them (the same Message-ID twice is one email). */
  shown(): SunkMail[] {
    const seen = new Set<string>();
    return this.mailbox().filter((m) => !seen.has(m.messageId) && seen.add(m.messageId));
  }

  /**
   * Sends one email and resolves when an instance accepted it (250) or the sender gave up.
   * Follow-ups reply to the latest email the customer has (ours or the bridge's), as a mail client does.
   */
  async send(text: string, marker: string): Promise<SentMessage> {
    const n = ++this.counter;
    const messageId = `<${this.label}.${n}.${Date.now().toString(36)}@customer.test>`;
    const own = this.sent.map((s) => s.messageId);
    const theirs = this.mailbox().map((m) => m.messageId).filter(Boolean);
    const references = [...own, ...theirs].slice(-20);
    const record: SentMessage & { messageId: string; response?: string } = { marker, text, firstSentAt: Date.now(), attempts: 0, errors: [], messageId };
    this.sent.push(record);
    const subject = n === 1 ? `Question from ${this.name}` : `Re: Question from ${this.name}`;
    const deadline = Date.now() + GIVE_UP_MS;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const instance = route(this.instances, this.preferred, attempt);
      record.attempts += 1;
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: instance.smtpPort, secure: false, ignoreTLS: true, connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 20_000 });
      try {
        const info = await transport.sendMail({
          from: { name: this.name, address: this.address },
          to: this.supportAddress,
          subject,
          text,
          messageId,
          ...(references.length ? { inReplyTo: references.at(-1), references } : {}),
        });
        record.acceptedAt = Date.now();
        record.response = info.response;
        const ticket = /\b([A-Z]+-\d+)\b/.exec(info.response)?.[1];
        if (ticket) this.ticket ??= ticket;
        return record;
      } catch (err) {
        const e = err as { responseCode?: number; code?: string; message: string };
        const code = e.responseCode ? String(e.responseCode) : (e.code ?? 'error');
        record.errors.push(code);
        this.problems[code] = (this.problems[code] ?? 0) + 1;
        // A 5xx is final: the sender gets a bounce.
        if (e.responseCode !== undefined && e.responseCode >= 500) return record;
      } finally {
        transport.close();
      }
      await sleep(1000);
    }
    return record;
  }
}

export type Customer = WebChatCustomer | EmailCustomer;
