/**
 * Outbound SMTP through nodemailer: one transport for `SMTP_URL`, the mapping from our
 * OutboundMail to nodemailer's message options, and how a failed send is classified.
 */
import nodemailer, { type NodemailerError, type SendMailOptions } from 'nodemailer';
import type { OutboundMail } from './compose.ts';

/** A failed send: `temporary` is retried by the delivery worker; `permanent` never will be accepted. */
export type SendFailure = 'temporary' | 'permanent';

export interface MailTransport {
  send(mail: OutboundMail): Promise<void>;
  close(): void;
}

/**
 * A nodemailer transport for `smtpUrl`. Timeouts are short enough that an unreachable server is
 * noticed and retried later instead of holding the conversation for nodemailer's default 2 minutes.
 * Query parameters in the URL (`?pool=true`, `?requireTLS=true`) are honoured by nodemailer.
 */
export function createMailTransport(smtpUrl: string): MailTransport {
  const transport = nodemailer.createTransport({
    url: smtpUrl,
    connectionTimeout: 20_000,
    greetingTimeout: 20_000,
    socketTimeout: 60_000,
    // Our content never names files or URLs to embed; refuse it outright if it ever does.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return {
    async send(mail) {
      await transport.sendMail(toNodemailer(mail));
    },
    close() {
      transport.close();
    },
  };
}

/** Our OutboundMail as nodemailer message options. */
export function toNodemailer(mail: OutboundMail): SendMailOptions {
  return {
    messageId: mail.messageId,
    from: { name: mail.from.name, address: mail.from.address },
    to: mail.to.name ? { name: mail.to.name, address: mail.to.address } : mail.to.address,
    replyTo: mail.replyTo,
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    ...(mail.inReplyTo ? { inReplyTo: mail.inReplyTo } : {}),
    ...(mail.references.length ? { references: mail.references } : {}),
    headers: mail.headers,
    // Bounces go to the bare support address, where the inbound server recognizes and drops them.
    envelope: { from: mail.from.address, to: [mail.to.address] },
  };
}

/**
 * What a failed send means:
 * - `permanent`: the server refused this recipient or this content for good (5xx on RCPT TO /
 *   DATA, message too large): retrying would get the same answer.
 * - `temporary`: everything else. A 4xx or 503 (greylisting, a full mailbox, "try later"), and a
 *   server that cannot be used right now (down, timeout, TLS, refused login, a 5xx on our own
 *   sender, which is our configuration, not this email): the conversation retries with backoff.
 */
export function classifySendError(err: unknown): SendFailure {
  const e = (err ?? {}) as NodemailerError;
  const code = e.code ?? '';
  const command = (e.command ?? '').toUpperCase();
  const status = e.responseCode;
  if (code === 'EAUTH' || command.startsWith('AUTH')) return 'temporary';
  if (typeof status === 'number') {
    if (status >= 500 && status !== 503) {
      if (command.startsWith('RCPT') || command === 'DATA') return 'permanent';
      if (command.startsWith('MAIL') && (status === 552 || code === 'EMESSAGE')) return 'permanent';
    }
    return 'temporary';
  }
  if (code === 'EENVELOPE' || code === 'EMESSAGE') return 'permanent';
  return 'temporary';
}

/** A failed send in one line: nodemailer's message and the server's response, if any. */
export function describeSendError(err: unknown): string {
  if (err instanceof Error) {
    const response = (err as { response?: unknown }).response;
    return typeof response === 'string' && response && !err.message.includes(response) ? `${err.message} (${response})` : err.message;
  }
  return String(err);
}
