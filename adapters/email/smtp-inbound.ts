/**
 * The built-in inbound SMTP server (smtp-server): accepts mail for the support address and its
 * plus-addressed forms, refuses everything else (550) and anything over the size limit (552),
 * and hands each accepted message to `onMail`. It answers 250 only after `onMail` resolved, so a
 * message is either in the bridge or refused with a reason the sending server reports back:
 * rejected, never silently lost. A failure in one session never takes the server down.
 */
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { ConfigError } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { SmtpEnvelope } from './inbound.ts';
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
  /** Handles one accepted message; resolve with a short text for the 250 reply. */
  onMail(input: { raw: Buffer; envelope: SmtpEnvelope }): Promise<string | void>;
}

/** A message may name at most this many of our addresses; more looks like abuse. */
const MAX_RECIPIENTS = 20;

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

export class InboundSmtpServer {
  private server?: SMTPServer;
  private boundPort?: number;

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
      maxClients: 100,
      closeTimeout: 10_000,
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
          (reply) => callback(null, reply),
          (err: unknown) => callback(err as Error),
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
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const { options } = this;
    const chunks: Buffer[] = [];
    let size = 0;
    // Keep reading past the limit (the client is still sending) but stop buffering.
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size <= options.maxMessageBytes) chunks.push(chunk);
    }
    if (stream.sizeExceeded || size > options.maxMessageBytes) {
      throw smtpError(552, `5.3.4 Message too big: the limit is ${options.maxMessageBytes} bytes`);
    }
    const envelope: SmtpEnvelope = {
      mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      rcptTo: session.envelope.rcptTo.map((r) => r.address),
    };
    try {
      const reply = await options.onMail({ raw: Buffer.concat(chunks), envelope });
      return reply || 'OK: message received';
    } catch (err) {
      if (err instanceof SmtpReplyError) throw smtpError(err.responseCode, err.message);
      options.logger.error({ err, from: envelope.mailFrom }, 'inbound email could not be handled; told the sender to retry');
      throw smtpError(451, '4.3.0 Temporary failure handling the message, please retry later');
    }
  }
}
