/**
 * Outages on either side of the email channel. The SMTP server going down holds only the email
 * conversations (each retried by the delivery worker, in order); a store outage makes the inbound
 * server answer 4xx, so the customer's mail server retries and nothing is lost or added twice.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openRedisStore } from '../../src/store/redis.ts';
import { DANA, waitFor } from '../support/harness.ts';
import { MemoryChannel } from '../support/memory-ports.ts';
import { startRedis } from '../support/redis-process.ts';
import { SUPPORT, sendToInbound, startEmailBridge, ticketIn, waitForMail, type ReceivedMail } from './support.ts';

const MARIA = 'maria.keller@example.net';

function bodyOf(mail: ReceivedMail): string {
  return mail.parsed.text!.split(/\n-- \n/)[0]!.trim();
}

describe('the SMTP server down for a while', () => {
  it('replies committed meanwhile go out once each, in order, when it is back; web chat is not held up', async () => {
    const webchat = new MemoryChannel('webchat');
    const env = await startEmailBridge({ channels: [webchat] });
    try {
      const { response } = await sendToInbound(env.email.port, { from: MARIA, to: SUPPORT, subject: 'Damaged lamp', text: 'My lamp arrived broken.' });
      const conversation = (await env.bridge.findByTicket(ticketIn(response)))!;
      await waitForMail(env.sink, MARIA, 1);
      await env.bridge.takeOver({ conversationId: conversation.id, operator: DANA });
      await env.bridge.idle();
      const before = env.sink.to(MARIA);

      await env.sink.stop();
      const downAt = Date.now();
      const texts = Array.from({ length: 6 }, (_, i) => `Update ${i + 1} of 6.`);
      for (const text of texts.slice(0, 3)) await env.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text });
      // The customer can still write in: inbound mail does not need the outbound server.
      const last = before.at(-1)!;
      const reply = await sendToInbound(env.email.port, { from: MARIA, to: SUPPORT, subject: `Re: ${last.parsed.subject}`, text: 'Any news?', inReplyTo: last.parsed.messageId! });
      expect(reply.response).toBe(`250 OK: added to ${conversation.ticket}`);
      for (const text of texts.slice(3)) await env.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text });

      // The worker keeps trying; after a few failures the operators are told in the thread.
      await waitFor(async () => {
        const c = await env.bridge.getConversation(conversation.id);
        return c?.messages.some((m) => m.visibility === 'internal' && m.text.startsWith(`The email to ${MARIA} has not gone out yet`));
      }, { what: 'the failing email noted in the thread' });

      // A web chat customer in the same bridge gets the agent's answer meanwhile, at once.
      const started = Date.now();
      const web = await env.bridge.customerMessage({ origin: 'webchat', customer: { id: 'web-visitor-1' }, text: 'Where is my order?' });
      await waitFor(() => webchat.texts(web.conversation.id).length > 0, { what: 'the web chat answer' });
      const webLatency = Date.now() - started;
      expect(webLatency).toBeLessThan(1_000);
      expect(env.sink.to(MARIA)).toHaveLength(before.length);

      // Down for a while longer, then back on the same port.
      await new Promise((r) => setTimeout(r, Math.max(0, 1_500 - (Date.now() - downAt))));
      await env.sink.start();
      await waitForMail(env.sink, MARIA, before.length + texts.length);
      await env.bridge.idle();

      const after = env.sink.to(MARIA).slice(before.length);
      expect(after.map(bodyOf)).toEqual(texts);
      const ids = after.map((m) => m.parsed.messageId);
      expect(new Set(ids).size).toBe(texts.length);
      // Still one thread: each email refers to the one before it.
      for (let i = 1; i < after.length; i++) expect(after[i]!.header('references')!.split(/\s+/)).toContain(ids[i - 1]);
    } finally {
      await env.close();
    }
  });
});

describe('the store down while a customer writes', () => {
  it('the inbound server answers 451, and the sending server\'s retry after recovery is taken once', async () => {
    const redis = await startRedis({ durable: true });
    const store = await openRedisStore(redis.url, { namespace: `email-${randomUUID()}` });
    const env = await startEmailBridge({ store });
    try {
      const { response } = await sendToInbound(env.email.port, { from: MARIA, to: SUPPORT, subject: 'Damaged lamp', text: 'My lamp arrived broken.' });
      const conversation = (await env.bridge.findByTicket(ticketIn(response)))!;
      const [ours] = await waitForMail(env.sink, MARIA, 1);
      await env.bridge.idle();

      const message = { from: MARIA, to: SUPPORT, subject: `Re: ${ours!.parsed.subject}`, text: 'Is there a faster shipping option?', messageId: '<outage.1@example.net>', inReplyTo: ours!.parsed.messageId! };
      await redis.stop();
      const refused = await sendToInbound(env.email.port, message).then(
        () => undefined,
        (err: { responseCode?: number; response?: string }) => err,
      );
      expect(refused?.responseCode).toBe(451);
      expect(refused?.response).toContain('4.3.0');

      await redis.start();
      await waitFor(() => store.getConversation(conversation.id).then(Boolean, () => false), { what: 'the store back', timeoutMs: 10_000 });
      // The customer's mail server retries (twice, say: its first retry's answer got lost).
      const first = await sendToInbound(env.email.port, message);
      const second = await sendToInbound(env.email.port, message);
      expect(first.response).toBe(`250 OK: added to ${conversation.ticket}`);
      expect(second.response).toBe(`250 OK: added to ${conversation.ticket}`);

      await env.bridge.idle();
      const c = (await env.bridge.getConversation(conversation.id))!;
      expect(c.messages.filter((m) => m.author.role === 'customer').map((m) => m.text)).toEqual(['My lamp arrived broken.', 'Is there a faster shipping option?']);
      // Answered once, by email, in the same thread.
      const mails = env.sink.to(MARIA);
      expect(mails).toHaveLength(2);
      expect(mails[1]!.parsed.inReplyTo).toBe('<outage.1@example.net>');
    } finally {
      await env.close();
      await redis.stop();
    }
  });
});
