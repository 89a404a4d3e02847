/**
 * Real SMTP for the email tests: a sink (smtp-server on loopback) that plays the outbound mail
 * provider and can go down or refuse mail, a nodemailer client that plays the customer's mail
 * server, fixtures of real-shaped replies, and a bridge with the email channel wired in.
 */
import { readFileSync } from 'node:fs';
import { simpleParser, type ParsedMail } from 'mailparser';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { createEmailChannel, type EmailBridge as EmailBridgePort, type EmailChannel, type EmailChannelConfig, type EmailCustomerMessage } from '../../adapters/email/index.ts';
import type { Agent } from '../../src/agent/agent.ts';
import type { Bridge, BridgeOptions } from '../../src/bridge.ts';
import { silentLogger } from '../../src/log.ts';
import type { CustomerChannel } from '../../src/ports.ts';
import type { Store } from '../../src/store/store.ts';
import { createTestBridge, waitFor, type TestBridge } from '../support/harness.ts';

export const SUPPORT = 'support@acme.test';

/** The authserv-id the tests configure as the trusted receiving relay. */
export const RELAY_ID = 'mx.acme.test';

/** An `Authentication-Results` header line as our relay (or an impostor) writes it. */
export function authResults(dmarc: 'pass' | 'fail' | 'none', fromDomain: string, authservId = RELAY_ID): string {
  return `Authentication-Results: ${authservId};\r\n dkim=${dmarc === 'pass' ? 'pass' : 'none'} header.d=${fromDomain};\r\n spf=${dmarc === 'pass' ? 'pass' : 'fail'} (sender IP is 192.0.2.7) smtp.mailfrom=${fromDomain};\r\n dmarc=${dmarc} (p=REJECT sp=REJECT dis=NONE) header.from=${fromDomain}`;
}

/** A fixture from test/email/fixtures with `{{NAME}}` placeholders filled in. */
export function fixture(name: string, vars: Record<string, string> = {}): string {
  const text = readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
  return text.replace(/\{\{([A-Z_]+)\}\}/g, (_m, key: string) => vars[key] ?? '');
}

export interface ReceivedMail {
  mailFrom: string;
  rcptTo: string[];
  raw: string;
  parsed: ParsedMail;
  /** Unfolded header lines by lowercase name. */
  header(name: string): string | undefined;
}

/**
 * The outbound mail provider: a real SMTP server on 127.0.0.1 that records every accepted
 * message. It can be stopped and restarted on the same port (an outage) and told to refuse
 * the next messages with a given status.
 */
export class SmtpSink {
  readonly received: ReceivedMail[] = [];
  private server?: SMTPServer;
  private refusals: Array<{ code: number; message: string; at: 'rcpt' | 'data' }> = [];
  port = 0;

  async start(): Promise<number> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      onRcptTo: (_address, _session, callback) => {
        const refusal = this.refusals[0];
        if (refusal?.at === 'rcpt') {
          this.refusals.shift();
          return callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
        }
        callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const refusal = this.refusals[0];
          if (refusal?.at === 'data') {
            this.refusals.shift();
            return callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
          }
          const raw = Buffer.concat(chunks).toString('utf8');
          simpleParser(raw).then(
            (parsed) => {
              const lines = parsed.headerLines;
              this.received.push({
                mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                rcptTo: session.envelope.rcptTo.map((r) => r.address),
                raw,
                parsed,
                header: (name) => {
                  const line = lines.find((l) => l.key === name.toLowerCase())?.line;
                  return line?.slice(line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
                },
              });
              callback();
            },
            (err: Error) => callback(err),
          );
        });
      },
    });
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.server.address() as { port: number }).port;
    this.server = server;
    return this.port;
  }

  /** Goes down: new connections are refused until start() again. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Refuses the next message with `code` (at RCPT TO or after DATA). */
  refuseNext(code: number, message: string, at: 'rcpt' | 'data' = 'data'): void {
    this.refusals.push({ code, message, at });
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  /** Mail sent to one customer address, in arrival order. */
  to(address: string): ReceivedMail[] {
    return this.received.filter((m) => m.rcptTo.includes(address));
  }
}

/** The customer's mail server: a nodemailer client delivering into our inbound SMTP port. */
export async function sendToInbound(port: number, message: SendMailOptions): Promise<{ response: string; messageId: string }> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    const info = await client.sendMail(message);
    return { response: info.response, messageId: info.messageId };
  } finally {
    client.close();
  }
}

/** Delivers many messages over one connection (a mail server sending a batch). Each result is the reply or the refusal. */
export async function sendManyToInbound(port: number, messages: SendMailOptions[]): Promise<Array<{ response?: string; error?: { responseCode?: number; message: string } }>> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: true, maxConnections: 1, maxMessages: Infinity });
  try {
    const results: Array<{ response?: string; error?: { responseCode?: number; message: string } }> = [];
    for (const message of messages) {
      try {
        results.push({ response: (await client.sendMail(message)).response });
      } catch (err) {
        results.push({ error: err as { responseCode?: number; message: string } });
      }
    }
    return results;
  } finally {
    client.close();
  }
}

/** Delivers a raw message (a fixture) with an explicit envelope. `from: ''` is the null sender `<>`. */
export function sendRawToInbound(port: number, envelope: { from: string; to: string[] }, raw: string) {
  return sendToInbound(port, { envelope: { from: envelope.from || false, to: envelope.to } as never, raw });
}

export interface EmailBridge {
  bridge: Bridge;
  store: Store;
  email: EmailChannel;
  sink: SmtpSink;
  config: EmailChannelConfig;
  /** The test bridge's temp dir (holds the SQLite file). */
  dir: string;
  close(): Promise<void>;
}

/**
 * A bridge (offline agent unless given) with the email channel sending into a fresh sink. The
 * harness gives the delivery workers quick retries (20 ms doubling to 500 ms).
 */
export async function startEmailBridge(
  opts: {
    agent?: Agent;
    config?: Partial<EmailChannelConfig>;
    store?: Store;
    sink?: SmtpSink;
    /** Other customer channels in the same bridge (web chat, API). */
    channels?: CustomerChannel[];
    bridgeOptions?: Partial<BridgeOptions>;
    /** What the channel sees of the bridge (a recording wrapper, see `recordCustomerMessages`). */
    wrapBridge?: (bridge: Bridge) => EmailBridgePort;
  } = {},
): Promise<EmailBridge> {
  const sink = opts.sink ?? new SmtpSink();
  if (!opts.sink) await sink.start();
  // The bridge starts its workers at once, and the email channel needs the bridge to be built:
  // this stand-in is registered first, so work left in the store by an earlier run waits for it.
  let ready!: (channel: EmailChannel) => void;
  const channel = new Promise<EmailChannel>((resolve) => (ready = resolve));
  const emailSlot: CustomerChannel = { origin: 'email', deliver: async (c, m, attempt) => (await channel).deliver(c, m, attempt) };
  const test: TestBridge = await createTestBridge({
    ...(opts.agent ? { agent: opts.agent } : {}),
    ...(opts.store ? { store: opts.store } : {}),
    channels: [emailSlot, ...(opts.channels ?? [])],
    ...(opts.bridgeOptions ? { bridgeOptions: opts.bridgeOptions } : {}),
  });
  const config: EmailChannelConfig = {
    inboundPort: 0,
    inboundHost: '127.0.0.1',
    address: SUPPORT,
    smtpUrl: sink.url,
    brandName: 'Acme Support',
    ...opts.config,
  };
  const email = createEmailChannel({ bridge: opts.wrapBridge ? opts.wrapBridge(test.bridge) : test.bridge, logger: silentLogger(), config });
  ready(email);
  await email.start();
  return {
    bridge: test.bridge,
    store: test.store,
    email,
    sink,
    config,
    dir: test.dir,
    async close() {
      await test.bridge.idle();
      await email.stop();
      if (!opts.sink) await sink.stop();
      await test.close();
    },
  };
}

/**
 * The real bridge, with every customerMessage call the channel makes recorded: how the tests see
 * what the channel asked of the engine (`autoReply: false`) before the engine honours it.
 */
export function recordCustomerMessages(calls: EmailCustomerMessage[]): (bridge: Bridge) => EmailBridgePort {
  return (bridge) => ({
    store: bridge.store,
    maxMessageChars: bridge.maxMessageChars,
    internalNote: (input) => bridge.internalNote(input),
    getConversation: (id) => bridge.getConversation(id),
    findByTicket: (ticket) => bridge.findByTicket(ticket),
    updateChannelData: (id, channel, data) => bridge.updateChannelData(id, channel, data),
    customerMessage: (input) => {
      calls.push(input);
      return bridge.customerMessage(input);
    },
  });
}

/** Waits until the sink holds `count` messages for `address`. */
export function waitForMail(sink: SmtpSink, address: string, count: number, what = `${count} email(s) to ${address}`): Promise<ReceivedMail[]> {
  return waitFor(() => (sink.to(address).length >= count ? sink.to(address) : undefined), { what, timeoutMs: 10_000 });
}

/** The ticket our inbound server named in its 250 reply ("250 OK: opened HB-1001"). */
export function ticketIn(response: string): string {
  const match = response.match(/\b([A-Z]+-\d+)\b/);
  if (!match) throw new Error(`no ticket in SMTP reply "${response}"`);
  return match[1]!;
}
