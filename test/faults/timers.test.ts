/**
 * Durable timers through real processes: two instances on one Redis, an unclaimed escalation, and
 * the instance that committed it killed with -9 before any of its timers fired. The reminder, the
 * managers' step and the fallback still happen on time, once each.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { WebChatCustomer } from './customers.ts';
import { startRig, type Rig } from './rig.ts';

let rig: Rig | undefined;
afterAll(async () => rig?.close());

it('an unclaimed escalation reminds, reaches the managers and falls back once each, though its instance was killed', { timeout: 180_000 }, async () => {
  rig = await startRig({
    dir: mkdtempSync(join(tmpdir(), 'timers-')),
    seed: 7,
    chaosRate: 0,
    dropRate: 0,
    leaseMs: 2000,
    email: false,
    env: { ESCALATION_REMIND_AFTER: '4s', ESCALATION_MANAGERS_AFTER: '6s', ESCALATION_FALLBACK_AFTER: '8s', SLACK_MANAGERS_CHANNEL_ID: 'CMANAGERS1' },
  });
  rig.emulator.addChannel('CMANAGERS1', 'support-managers');
  const customer = new WebChatCustomer('t1', 'Ada', rig.instances, 0, '10.9.0.1');
  await customer.open();
  const asked = Date.now();
  await customer.say('I want to talk to a person', 'ask');
  const conversationId = await waitFor(() => customer.conversationId, 30_000);
  // The instance that took the message dies before any timer is due; it comes back later.
  await rig.instances[0]!.kill9();
  setTimeout(() => void rig!.instances[0]!.start(), 3000);

  const fellBackAt = await waitFor(async () => {
    const c = await rig!.store.getConversation(conversationId);
    return c?.history.some((h) => h.reason === 'fallback') ? Date.now() : undefined;
  }, 60_000);
  expect(fellBackAt - asked).toBeGreaterThanOrEqual(7500);
  // The visitor may still be reconnecting (a lock the killed instance held lasts up to its TTL).
  await waitFor(() => (customer.shown().some((f) => f.frame.text.includes('no one from our team is free')) ? true : undefined), 30_000);
  // Give a duplicate firing every chance to show up.
  await new Promise((r) => setTimeout(r, 4000));
  const c = (await rig.store.getConversation(conversationId))!;
  expect(c.history.map((h) => h.reason)).toEqual(['escalate', 'remind', 'managers', 'fallback']);
  expect(c.messages.filter((m) => m.notice === 'reminder')).toHaveLength(1);
  const fallbacks = customer.shown().filter((f) => f.frame.text.includes('no one from our team is free'));
  expect(fallbacks).toHaveLength(1);
  // The reminder is in the Slack thread once, and the managers' channel got one card.
  expect(rig.emulator.messages.filter((m) => m.text.includes('Reminder:') && m.text.includes(c.ticket))).toHaveLength(1);
  expect(rig.emulator.messages.filter((m) => m.channel === 'CMANAGERS1' && !m.thread_ts && m.text.includes(c.ticket))).toHaveLength(1);
  customer.close();
});

async function waitFor<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}
