/**
 * Socket Mode: with SLACK_APP_TOKEN the app connects out over a WebSocket (no public URL) and
 * handles the same events, clicks and commands, acking each envelope; an event only once the
 * reply it carries is recorded.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { openRedisStore } from '../../src/store/redis.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedis, type RedisProcess } from '../support/redis-process.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import { createSlackWorkspace, type SlackWorkspace } from '../../adapters/slack/index.ts';
import { SlackApiEmulator } from '../emulators/slack-api.ts';
import { MemoryChannel } from '../support/memory-ports.ts';
import { createTestBridge, waitFor, type TestBridge } from '../support/harness.ts';
import { CHANNEL, DANA, SIGNING_SECRET } from './fixture.ts';

describe('Slack over Socket Mode', () => {
  let emulator: SlackApiEmulator;
  let test: TestBridge;
  let slack: SlackWorkspace;
  let http: HttpServer;
  let redis: RedisProcess | undefined;
  let customer: MemoryChannel;
  afterEach(async () => {
    await redis?.start().catch(() => {});
    await slack?.stop();
    await http?.close();
    await test?.close();
    await emulator?.stop();
    await redis?.stop();
    redis = undefined;
  });

  async function boot(store?: Store) {
    emulator = await new SlackApiEmulator().start();
    emulator.addUser({ id: DANA.userId, name: 'dana', displayName: DANA.name });
    customer = new MemoryChannel('webchat');
    test = await createTestBridge({ channels: [customer], ...(store ? { store } : {}) });
    http = new HttpServer(silentLogger());
    slack = createSlackWorkspace({
      bridge: test.bridge,
      http,
      logger: silentLogger(),
      config: { botToken: emulator.botToken, signingSecret: SIGNING_SECRET, appToken: emulator.appToken, channelId: CHANNEL, apiUrl: emulator.url },
    });
    test.bridge.addWorkspace(slack);
    expect(slack.mode).toBe('socket');
    await slack.start();
    await emulator.socketConnected();
  }

  /** A conversation escalated and claimed by Dana over the socket; returns it with its thread root. */
  async function heldByDana() {
    const { conversation } = await test.bridge.customerMessage({ origin: 'webchat', customer: { id: 'v1', name: 'Ann' }, text: 'I want to talk to a human' });
    await test.bridge.idle();
    const [briefing] = await slack.directory.briefings(conversation.id);
    await emulator.socketSend('interactive', emulator.blockActionPayload({ channel: briefing!.channel, ts: briefing!.ts, actionId: 'briefing_claim', user: DANA.userId }));
    await waitFor(async () => (await test.bridge.getConversation(conversation.id))?.state === 'human', { what: 'claim' });
    await test.bridge.idle();
    return { conversation, root: (await slack.directory.thread(conversation.id))! };
  }

  it('connects without an HTTP endpoint and relays claims and thread replies', async () => {
    await boot();
    const { conversation, root } = await heldByDana();

    const reply = emulator.postAsUser({ channel: root.channel, user: DANA.userId, text: 'Hi Ann, Dana here.', thread_ts: root.ts });
    const envelope = { team_id: emulator.teamId, api_app_id: 'AEMULATED', event: reply, type: 'event_callback', event_id: 'EvSOCKET1', event_time: 1 };
    await emulator.socketSend('events_api', envelope);
    await emulator.socketSend('events_api', envelope, { retryAttempt: 1 });
    await waitFor(() => customer.texts(conversation.id).includes('Hi Ann, Dana here.'), { what: 'relayed reply' });
    await test.bridge.idle();
    await slack.settle();
    expect(customer.texts(conversation.id).filter((t) => t === 'Hi Ann, Dana here.')).toHaveLength(1);
  });

  it('does not ack an event whose reply could not be recorded, so Slack delivers it again', async () => {
    redis = await startRedis({ durable: true });
    await boot(await openRedisStore(redis.url, { namespace: `slack-socket-${randomUUID().slice(0, 8)}` }));
    const { conversation, root } = await heldByDana();

    await redis.stop();
    const reply = emulator.postAsUser({ channel: root.channel, user: DANA.userId, text: 'Recorded late, but recorded.', thread_ts: root.ts });
    const envelope = { team_id: emulator.teamId, api_app_id: 'AEMULATED', event: reply, type: 'event_callback', event_id: 'EvSOCKET2', event_time: 1 };
    await expect(emulator.socketSend('events_api', envelope, { timeoutMs: 1500 })).rejects.toThrow(/no ack/);
    expect(emulator.ephemerals.some((e) => e.user === DANA.userId && e.text.includes('could not be recorded yet'))).toBe(true);

    await redis.start();
    await waitFor(async () => (await test.bridge.getConversation(conversation.id).catch(() => undefined)) !== undefined, { timeoutMs: 15_000, intervalMs: 100, what: 'the store to come back' });
    await emulator.socketSend('events_api', envelope, { retryAttempt: 1 });
    await emulator.socketSend('events_api', envelope, { retryAttempt: 2 });
    await test.bridge.idle();
    expect(customer.texts(conversation.id).filter((t) => t === 'Recorded late, but recorded.')).toHaveLength(1);
  });
});
