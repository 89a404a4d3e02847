/**
 * The outbound mail provider for the fault suite: a real SMTP server on loopback that records every
 * accepted email (Message-ID, recipients, body) with its arrival time. `stop()` is an outage: open
 * sessions are cut at once and new connections are refused until `start()` listens again on the
 * same port. (test/email/support.ts has a sink too; this one drops live sessions on stop and does
 * not pull in the email adapter, which may be mid-change while this suite runs.)
 */
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface SunkMail {
  at: number;
  to: string[];
  messageId: string;
  inReplyTo?: string;
  subject: string;
  text: string;
}

export class FaultSmtpSink {
  readonly received: SunkMail[] = [];
  port = 0;
  private server?: SMTPServer;

  get up(): boolean {
    return this.server !== undefined;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  async start(): Promise<number> {
    if (this.server) return this.port;
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      closeTimeout: 50,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          simpleParser(Buffer.concat(chunks)).then(
            (parsed) => {
              this.received.push({
                at: Date.now(),
                to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
                messageId: parsed.messageId ?? '',
                ...(typeof parsed.inReplyTo === 'string' ? { inReplyTo: parsed.inReplyTo } : {}),
                subject: parsed.subject ?? '',
                text: parsed.text ?? '',
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

  /** An outage: refuses new connections and cuts open sessions. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Emails to one address, in arrival order. */
  to(address: string): SunkMail[] {
    const a = address.toLowerCase();
    return this.received.filter((m) => m.to.includes(a));
  }
}
