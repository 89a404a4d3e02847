/**
 * An operator's thread reply while the store is down (a real redis-server, stopped and started
 * again with its append-only file): Slack must not get a 200 for a reply that was not recorded.
 * It gets a 5xx, so it delivers the event again; the operator is told privately; and the retry
 * after the store is back is recorded exactly once. A slash command meanwhile says it failed.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { openRedisStore } from '../../src/store/redis.ts';
import { startRedis, type RedisProcess } from '../support/redis-process.ts';
import { waitFor } from '../support/harness.ts';
import { DANA, startSlackFixture, type SlackFixture } from './fixture.ts';

describe('an operator reply while the store is unavailable', () => {
  let redis: RedisProcess | undefined;
  let f: SlackFixture | undefined;
  afterEach(async () => {
    await redis?.start().catch(() => {});
    await f?.close();
    await redis?.stop();
  });

  it('is answered 5xx and the operator told privately; the retry after recovery is recorded once', async () => {
    redis = await startRedis({ durable: true });
    const store = await openRedisStore(redis.url, { namespace: `slack-outage-${randomUUID().slice(0, 8)}` });
    f = await startSlackFixture({ store });
    const conversation = await f.customerSays('I want to talk to a human about my invoice');
    await f.settle();
    expect(await f.click(conversation.id, DANA.userId, 'briefing_claim')).toBe(200);
    await f.settle();
    const root = await f.root(conversation.id);

    await redis.stop();
    const event = f.emulator.postAsUser({ channel: root.channel, user: DANA.userId, text: 'Your invoice is corrected.', thread_ts: root.ts });
    const first = await f.events.event(event);
    expect(first.status).toBeGreaterThanOrEqual(500);
    const told = () => f!.emulator.ephemerals.filter((e) => e.user === DANA.userId && e.text.includes('could not be recorded yet'));
    expect(told()).toHaveLength(1);
    expect(told()[0]!.thread_ts).toBe(root.ts);
    // Slack's immediate retry fails the same way; the operator is not told twice.
    const second = await f.events.event(event, { eventId: first.eventId, retryNum: 1 });
    expect(second.status).toBeGreaterThanOrEqual(500);
    expect(told()).toHaveLength(1);
    // A slash command meanwhile is answered with what happened, not left hanging.
    const command = await f.events.command(f.emulator.slashCommand({ command: '/return', text: `${conversation.ticket} done`, user: DANA.userId, channel: root.channel }));
    expect(command.status).toBe(200);
    await waitFor(() => f!.emulator.responsesFor(DANA.userId).some((r) => String(r.text).includes('could not do that right now')), { what: 'the answer to /return' });

    await redis.start();
    await waitFor(async () => (await f!.bridge.getConversation(conversation.id).catch(() => undefined)) !== undefined, { timeoutMs: 15_000, intervalMs: 100, what: 'the store to come back' });
    // Slack's next retry gets through, and a late duplicate of it is recognised.
    const retry = await f.events.event(event, { eventId: first.eventId, retryNum: 2 });
    expect(retry.status).toBe(200);
    const late = await f.events.event(event, { eventId: first.eventId, retryNum: 3 });
    expect(late.status).toBe(200);
    await f.settle();

    const stored = (await f.bridge.getConversation(conversation.id))!;
    expect(stored.messages.filter((m) => m.text === 'Your invoice is corrected.')).toHaveLength(1);
    expect(f.customer.texts(conversation.id).filter((t) => t === 'Your invoice is corrected.')).toHaveLength(1);
  });
});
