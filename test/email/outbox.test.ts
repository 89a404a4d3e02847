import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../adapters/email/outbox.ts';
import { classifySendError } from '../../adapters/email/transport.ts';
import { DEFAULT_RETRY } from '../../adapters/email/config.ts';
import { SUPPORT, SmtpSink } from './support.ts';
import nodemailer from 'nodemailer';

describe('retry timing', () => {
  const noJitter = { ...DEFAULT_RETRY, jitter: 0 };

  it('doubles from the first delay up to the cap', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, noJitter))).toEqual([2_000, 4_000, 8_000, 16_000]);
    expect(backoffDelay(30, noJitter)).toBe(300_000);
  });

  it('spreads retries by the jitter, never past the cap', () => {
    expect(backoffDelay(1, DEFAULT_RETRY, () => 0)).toBe(1_600);
    expect(backoffDelay(1, DEFAULT_RETRY, () => 1)).toBe(2_400);
    expect(backoffDelay(40, DEFAULT_RETRY, () => 1)).toBe(300_000);
  });
});

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

describe('what a failed send means for the outbox (errors from a real SMTP exchange)', () => {
  it('a server that is down pauses the whole outbox', async () => {
    expect(classifySendError(await errorFrom((sink) => sink.stop()))).toBe('transport');
  });

  it('a temporary refusal (greylisting, 4xx) retries that email', async () => {
    expect(classifySendError(await errorFrom((sink) => sink.refuseNext(451, '4.7.1 greylisted')))).toBe('message');
    expect(classifySendError(await errorFrom((sink) => sink.refuseNext(452, '4.2.2 mailbox full', 'rcpt')))).toBe('message');
  });

  it('a refused recipient or refused content (5xx) is permanent', async () => {
    expect(classifySendError(await errorFrom((sink) => sink.refuseNext(550, '5.1.1 no such user', 'rcpt')))).toBe('permanent');
    expect(classifySendError(await errorFrom((sink) => sink.refuseNext(554, '5.7.1 rejected as spam')))).toBe('permanent');
  });

  it('a refused login is the configuration, not the email: everything waits', () => {
    expect(classifySendError(Object.assign(new Error('Invalid login'), { code: 'EAUTH', responseCode: 535, command: 'AUTH PLAIN' }))).toBe('transport');
  });

  it('the server closing on us (421) waits for the server', () => {
    expect(classifySendError(Object.assign(new Error('closing'), { code: 'EENVELOPE', responseCode: 421, command: 'MAIL FROM' }))).toBe('transport');
  });
});
