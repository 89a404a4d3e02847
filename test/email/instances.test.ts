/**
 * Several bridge instances behind a load balancer share one Redis store, and so one outbox.
 * Needs redis-server (test/support/global-setup.ts starts one when it is installed).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openRedisStore } from '../../src/store/keyv-store.ts';
import { DANA } from '../support/harness.ts';
import { SUPPORT, SmtpSink, sendToInbound, startEmailBridge, ticketIn, waitForMail } from './support.ts';

const MARIA = 'maria.keller@example.net';
const redisUrl = process.env.REDIS_URL;

describe.skipIf(!redisUrl)('several instances sharing a Redis store', () => {
  it('each email goes out exactly once and in order, though two instances work the same outbox', async () => {
    const namespace = `email-${randomUUID()}`;
    const sink = new SmtpSink();
    await sink.start();
    const a = await startEmailBridge({ store: await openRedisStore(redisUrl!, { namespace }), sink, config: { sweepIntervalMs: 10 } });
    const b = await startEmailBridge({ store: await openRedisStore(redisUrl!, { namespace }), sink, config: { sweepIntervalMs: 10 } });
    try {
      const { response } = await sendToInbound(a.email.port, { from: MARIA, to: SUPPORT, subject: 'Lamp', text: 'My lamp arrived broken.' });
      const conversation = (await a.bridge.findByTicket(ticketIn(response)))!;
      await a.bridge.takeOver({ conversationId: conversation.id, operator: DANA });
      await a.bridge.idle();
      await waitForMail(sink, MARIA, 2);
      await a.email.whenSent();

      await sink.stop();
      const texts = Array.from({ length: 5 }, (_, i) => `Update ${i + 1} of 5.`);
      for (const text of texts) await a.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text });
      await a.bridge.idle();
      // Instance A stops taking work (a deploy); B's sweep finds what A left behind.
      await a.email.stop();
      await sink.start();
      await b.email.whenSent();

      const after = sink.to(MARIA).slice(2).map((m) => m.parsed.text!.split(/\n-- \n/)[0]!.trim());
      expect(after).toEqual(texts);
    } finally {
      await a.close();
      await b.close();
      await sink.stop();
    }
  });

  it('with both instances running, nothing is sent twice', async () => {
    const namespace = `email-${randomUUID()}`;
    const sink = new SmtpSink();
    await sink.start();
    const a = await startEmailBridge({ store: await openRedisStore(redisUrl!, { namespace }), sink, config: { sweepIntervalMs: 5 } });
    const b = await startEmailBridge({ store: await openRedisStore(redisUrl!, { namespace }), sink, config: { sweepIntervalMs: 5 } });
    try {
      const { response } = await sendToInbound(b.email.port, { from: MARIA, to: SUPPORT, subject: 'Lamp', text: 'My lamp arrived broken.' });
      const conversation = (await b.bridge.findByTicket(ticketIn(response)))!;
      await b.bridge.takeOver({ conversationId: conversation.id, operator: DANA });
      await b.bridge.idle();
      await b.email.whenSent();
      const before = sink.to(MARIA).length;

      await sink.stop();
      const texts = Array.from({ length: 6 }, (_, i) => `Note ${i + 1}.`);
      for (const text of texts) await b.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text });
      await b.bridge.idle();
      await sink.start();
      await Promise.all([a.email.whenSent(), b.email.whenSent()]);

      const after = sink.to(MARIA).slice(before);
      expect(after.map((m) => m.parsed.text!.split(/\n-- \n/)[0]!.trim())).toEqual(texts);
      expect(new Set(after.map((m) => m.parsed.messageId)).size).toBe(texts.length);
    } finally {
      await a.close();
      await b.close();
      await sink.stop();
    }
  });
});
