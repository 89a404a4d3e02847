/** How a failed send is classified, from errors of a real SMTP exchange with the loopback sink. */
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { classifySendError } from '../../adapters/email/transport.ts';
import { SUPPORT, SmtpSink } from './support.ts';

/** Sends one message through nodemailer to a sink told to misbehave, and returns the real error. */
async function errorFrom(setup: (sink: SmtpSink) => Promise<void> | void): Promise<unknown> {
  const sink = new SmtpSink();
  await sink.start();
  await setup(sink);
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: sink.port, ignoreTLS: true, connectionTimeout: 2000 });
  try {
    await client.sendMail({ from: SUPPORT, to: 'maria@example.net', subject: 'x', text: 'x' });
    return undefined;
  } catch (err) {
    return err;
  } finally {
    client.close();
    await sink.stop();
  }
}

describe('what a failed send means (errors from a real SMTP exchange)', () => {
  it('a server that is down is temporary: the conversation retries', async () => {
    expect(classifySendError(await errorFrom((sink) => sink.stop()))).toBe('temporary');
  });

  it('a temporary refusal (greylisting, 4xx) is temporary', async () => {
    expect(classifySendError(await errorFrom((sink) => sink.refuseNext(451, '4.7.1 greylisted')))).toBe('temporary');
    expect(classifySendError(await errorFrom((sink) => sink.refuseNext(452, '4.2.2 mailbox full', 'rcpt')))).toBe('temporary');
  });

  it('a refused recipient or refused content (5xx) is permanent', async () => {
    expect(classifySendError(await errorFrom((sink) => sink.refuseNext(550, '5.1.1 no such user', 'rcpt')))).toBe('permanent');
    expect(classifySendError(await errorFrom((sink) => sink.refuseNext(554, '5.7.1 rejected as spam')))).toBe('permanent');
  });

  it('a refused login is the configuration, not the email: temporary, retried until fixed', () => {
    expect(classifySendError(Object.assign(new Error('Invalid login'), { code: 'EAUTH', responseCode: 535, command: 'AUTH PLAIN' }))).toBe('temporary');
  });

  it('the server closing on us (421) is temporary', () => {
    expect(classifySendError(Object.assign(new Error('closing'), { code: 'EENVELOPE', responseCode: 421, command: 'MAIL FROM' }))).toBe('temporary');
  });
});
