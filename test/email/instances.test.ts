/**
 * Several bridge instances behind a load balancer share one Redis store: the delivery workers of
 * both lease the same conversations' work, so each email goes out once, in order, whichever
 * instance sends it. Needs redis-server (test/support/global-setup.ts starts one when installed).
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { BridgeOptions } from '../../src/bridge.ts';
import { openRedisStore } from '../../src/store/redis.ts';
import { DANA } from '../support/harness.ts';
import { SUPPORT, SmtpSink, sendToInbound, startEmailBridge, ticketIn, waitForMail, type ReceivedMail } from './support.ts';

const MARIA = 'maria.keller@example.net';
const redisUrl = process.env.REDIS_URL;
/** Short leases, so work a stopped instance held is taken over quickly. */
const delivery: Partial<BridgeOptions> = { delivery: { pollMs: 50, leaseMs: 1_000, backoff: { initialMs: 20, maxMs: 300, factor: 2, jitter: 0.2 } } };

function bodyOf(mail: ReceivedMail): string {
  return mail.parsed.text!.split(/\n-- \n/)[0]!.trim();
}

async function twoInstances(sink: SmtpSink) {
  const namespace = `email-${randomUUID()}`;
  const a = await startEmailBridge({ store: await openRedisStore(redisUrl!, { namespace }), sink, bridgeOptions: delivery });
  const b = await startEmailBridge({ store: await openRedisStore(redisUrl!, { namespace }), sink, bridgeOptions: delivery });
  return { a, b };
}

describe.skipIf(!redisUrl)('two instances sharing a Redis store', () => {
  it('with both instances running their workers, each email goes out once and in order', async () => {
    const sink = new SmtpSink();
    await sink.start();
    const { a, b } = await twoInstances(sink);
    try {
      // The customer's mail reaches instance B; the operator works on instance A.
      const { response } = await sendToInbound(b.email.port, { from: MARIA, to: SUPPORT, subject: 'Lamp', text: 'My lamp arrived broken.' });
      const conversation = (await a.bridge.findByTicket(ticketIn(response)))!;
      await waitForMail(sink, MARIA, 1);
      await a.bridge.takeOver({ conversationId: conversation.id, operator: DANA });
      await Promise.all([a.bridge.idle(), b.bridge.idle()]);
      const before = sink.to(MARIA).length;

      await sink.stop();
      const texts = Array.from({ length: 6 }, (_, i) => `Note ${i + 1}.`);
      for (const text of texts) await a.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text });
      await new Promise((r) => setTimeout(r, 300)); // both instances try, and fail, meanwhile
      await sink.start();
      await waitForMail(sink, MARIA, before + texts.length);
      await Promise.all([a.bridge.idle(), b.bridge.idle()]);

      const after = sink.to(MARIA).slice(before);
      expect(after.map(bodyOf)).toEqual(texts);
      expect(new Set(after.map((m) => m.parsed.messageId)).size).toBe(texts.length);
      // One thread, whichever instance sent each email.
      for (let i = 1; i < after.length; i++) expect(after[i]!.parsed.inReplyTo).toBe(after[i - 1]!.parsed.messageId);
    } finally {
      await a.close();
      await b.close();
      await sink.stop();
    }
  });

  it('an instance that stops (a deploy) leaves its emails to the other, which sends them once each', async () => {
    const sink = new SmtpSink();
    await sink.start();
    const { a, b } = await twoInstances(sink);
    try {
      const { response } = await sendToInbound(a.email.port, { from: MARIA, to: SUPPORT, subject: 'Lamp', text: 'My lamp arrived broken.' });
      const conversation = (await a.bridge.findByTicket(ticketIn(response)))!;
      await waitForMail(sink, MARIA, 1);
      await a.bridge.takeOver({ conversationId: conversation.id, operator: DANA });
      await Promise.all([a.bridge.idle(), b.bridge.idle()]);
      const before = sink.to(MARIA).length;

      await sink.stop();
      await b.bridge.stop(); // only A's workers run while the mail server is down
      const texts = Array.from({ length: 5 }, (_, i) => `Update ${i + 1} of 5.`);
      for (const text of texts) await a.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text });
      await new Promise((r) => setTimeout(r, 200));
      // A goes away; B comes back (a rolling deploy) and finds what A left.
      await a.bridge.stop();
      await a.email.stop();
      const c = await startEmailBridge({ store: b.store, sink, bridgeOptions: delivery });
      try {
        await sink.start();
        await waitForMail(sink, MARIA, before + texts.length);
        await c.bridge.idle();
        const after = sink.to(MARIA).slice(before);
        expect(after.map(bodyOf)).toEqual(texts);
        expect(new Set(after.map((m) => m.parsed.messageId)).size).toBe(texts.length);
      } finally {
        await c.bridge.stop();
        await c.email.stop();
        rmSync(c.dir, { recursive: true, force: true }); // the store is B's, closed with B
      }
    } finally {
      await a.close();
      await b.close();
      await sink.stop();
    }
  });
});
