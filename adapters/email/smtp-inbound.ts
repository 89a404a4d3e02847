/**
 * The built-in inbound SMTP server (smtp-server): accepts mail for the support address and its
 * plus-addressed forms, refuses everything else (550) and anything over the size limit (552),
 * and hands each accepted message to `onMail`. It answers 250 only after `onMail` resolved, so a
 * message is either in the bridge or refused with a reason the sending server reports back:
 * rejected, never silently lost. A failure in one session never takes the server down.
 *
 * Resources are bounded: a message is spooled to disk as it arrives once it is larger than
 * `spoolMemoryBytes`; one IP address holds at most `maxConnectionsPerIp` connections; a
 * connection that has not said `MAIL FROM` within `preMailTimeoutMs` (after connecting, or after
 * its last message) is closed with 421.
 */
import { tmpdir } from 'node:os';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { ConfigError } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { SmtpEnvelope } from './inbound.ts';
import { SpoolWriter, type SpooledMessage } from './spool.ts';
import { matchRecipient } from './threading.ts';

/** Throw from `onMail` to answer the sending server with this SMTP status (4xx: retry later, 5xx: bounce). */
export class SmtpReplyError extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'SmtpReplyError';
  }
}

export interface InboundServerOptions {
  port: number;
  host: string;
  /** Our support address; its plus forms are accepted too. */
  address: string;
  maxMessageBytes: number;
  /** Host name in the greeting. */
  serverName: string;
  tls?: { key: string | Buffer; cert: string | Buffer };
  logger: Logger;
  /** Connections at once, from everyone. Default 100. */
  maxConnections?: number;
  /** Connections at once from one IP address. Default 10. */
  maxConnectionsPerIp?: number;
  /** Addresses the per-IP limit does not apply to (your own relays). */
  ipLimitExempt?: (ip: string) => boolean;
  /** How long a connection may go without `MAIL FROM`. Default 10 s. */
  preMailTimeoutMs?: number;
  /** Where messages larger than `spoolMemoryBytes` are kept while they are handled. Default: the OS temp dir. */
  spoolDir?: string;
  /** Default 256 KB. */
  spoolMemoryBytes?: number;
  /** Handles one accepted message; resolve with a short text for the 250 reply. The message is disposed of afterwards. */
  onMail(input: { message: SpooledMessage; envelope: SmtpEnvelope }): Promise<string | void>;
}

/** A message may name at most this many of our addresses; more looks like abuse. */
const MAX_RECIPIENTS = 20;
export const DEFAULT_MAX_CONNECTIONS = 100;
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 10;
export const DEFAULT_PRE_MAIL_TIMEOUT_MS = 10_000;
export const DEFAULT_SPOOL_MEMORY_BYTES = 256 * 1024;

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

export class InboundSmtpServer {
  private server?: SMTPServer;
  private boundPort?: number;
  /** Open connections per remote IP (only those let in). */
  private readonly perIp = new Map<string, number>();
  /** Sessions let in, with the timer that closes them if no MAIL FROM comes. */
  private readonly sessions = new Map<string, { ip: string; idle?: NodeJS.Timeout }>();

  constructor(private readonly options: InboundServerOptions) {}

  /** The port it listens on (useful with port 0). */
  get port(): number {
    if (this.boundPort === undefined) throw new Error('inbound SMTP server is not listening');
    return this.boundPort;
  }

  async start(): Promise<number> {
    const { options } = this;
    const log = options.logger;
    const server = new SMTPServer({
      name: options.serverName,
      banner: 'handoff bridge ready',
      size: options.maxMessageBytes,
      rejectOversized: true,
      authOptional: true,
      // An MX takes mail from anyone and needs no login. STARTTLS only with a real certificate.
      disabledCommands: options.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
      ...(options.tls ? { key: options.tls.key, cert: options.tls.cert } : {}),
      logger: false,
      maxClients: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      closeTimeout: 10_000,
      // The client's host name is not used for anything; no DNS lookup per connection.
      disableReverseLookup: true,
      onConnect: (session, callback) => {
        const ip = session.remoteAddress;
        const open = this.perIp.get(ip) ?? 0;
        if (open >= (options.maxConnectionsPerIp ?? DEFAULT_MAX_CONNECTIONS_PER_IP) && !options.ipLimitExempt?.(ip)) {
          log.warn({ remote: ip, open }, 'refused a connection: too many from this address');
          return callback(smtpError(421, '4.7.0 Too many connections from your address, try again later'));
        }
        this.perIp.set(ip, open + 1);
        this.sessions.set(session.id, { ip });
        this.armIdle(session.id);
        callback();
      },
      onClose: (session) => {
        const entry = this.sessions.get(session.id);
        if (!entry) return;
        clearTimeout(entry.idle);
        this.sessions.delete(session.id);
        const left = (this.perIp.get(entry.ip) ?? 1) - 1;
        if (left > 0) this.perIp.set(entry.ip, left);
        else this.perIp.delete(entry.ip);
      },
      onMailFrom: (_address, session, callback) => {
        const entry = this.sessions.get(session.id);
        if (entry) clearTimeout(entry.idle);
        callback();
      },
      onRcptTo: (address, session, callback) => {
        if (!matchRecipient(address.address, options.address).ours) {
          log.info({ to: address.address, remote: session.remoteAddress }, 'refused mail for an address that is not ours');
          return callback(smtpError(550, `5.1.1 <${address.address}>: no such mailbox here; write to ${options.address}`));
        }
        if (session.envelope.rcptTo.length >= MAX_RECIPIENTS) {
          return callback(smtpError(452, '4.5.3 Too many recipients'));
        }
        callback();
      },
      onData: (stream, session, callback) => {
        this.receive(stream, session).then(
          (reply) => {
            this.armIdle(session.id);
            callback(null, reply);
          },
          (err: unknown) => {
            this.armIdle(session.id);
            callback(err as Error);
          },
        );
      },
    });
    // Socket-level trouble in one session (resets, TLS garbage) must not crash the process.
    server.on('error', (err) => log.warn({ err }, 'inbound SMTP connection error'));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(new ConfigError('SMTP_INBOUND_PORT', `the inbound SMTP server cannot listen on ${options.host}:${options.port} (${err.message})`));
      server.server.once('error', onError);
      server.listen(options.port, options.host, () => {
        server.server.off('error', onError);
        resolve();
      });
    });
    const bound = server.server.address();
    this.boundPort = typeof bound === 'object' && bound ? bound.port : options.port;
    log.info({ port: this.boundPort, address: options.address }, 'inbound SMTP server listening');
    return this.boundPort;
  }

  /** Stops accepting connections; sessions in progress get a few seconds to finish. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const entry of this.sessions.values()) clearTimeout(entry.idle);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** (Re)starts the wait for `MAIL FROM`; when it runs out the connection is closed with 421. */
  private armIdle(sessionId: string): void {
    const entry = this.sessions.get(sessionId);
    if (!entry) return;
    clearTimeout(entry.idle);
    entry.idle = setTimeout(() => {
      const connection = [...(this.server?.connections ?? [])].find((c) => c.id === sessionId);
      if (!connection) return;
      this.options.logger.info({ remote: entry.ip }, 'closed an SMTP connection that sent no MAIL FROM in time');
      connection.send(421, '4.4.2 Idle too long, closing connection');
    }, this.options.preMailTimeoutMs ?? DEFAULT_PRE_MAIL_TIMEOUT_MS);
    entry.idle.unref();
  }

  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const { options } = this;
    const spool = new SpoolWriter(options.spoolDir ?? tmpdir(), options.spoolMemoryBytes ?? DEFAULT_SPOOL_MEMORY_BYTES);
    let size = 0;
    let message: SpooledMessage | undefined;
    try {
      // Keep reading past the limit (the client is still sending) but stop keeping it.
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size <= options.maxMessageBytes) await spool.write(chunk);
      }
      if (stream.sizeExceeded || size > options.maxMessageBytes) {
        throw smtpError(552, `5.3.4 Message too big: the limit is ${options.maxMessageBytes} bytes`);
      }
      message = await spool.finish();
    } catch (err) {
      await spool.discard().catch(() => {});
      if ((err as { responseCode?: number }).responseCode) throw err;
      options.logger.error({ err, remote: session.remoteAddress }, 'inbound email could not be spooled; told the sender to retry');
      throw smtpError(451, '4.3.0 Temporary failure receiving the message, please retry later');
    }
    const envelope: SmtpEnvelope = {
      mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      rcptTo: session.envelope.rcptTo.map((r) => r.address),
      remoteAddress: session.remoteAddress,
    };
    try {
      const reply = await options.onMail({ message, envelope });
      return reply || 'OK: message received';
    } catch (err) {
      if (err instanceof SmtpReplyError) throw smtpError(err.responseCode, err.message);
      options.logger.error({ err, from: envelope.mailFrom }, 'inbound email could not be handled; told the sender to retry');
      throw smtpError(451, '4.3.0 Temporary failure handling the message, please retry later');
    } finally {
      await message.dispose().catch((err: unknown) => options.logger.warn({ err, file: message.where }, 'could not delete a spooled email'));
    }
  }
}
