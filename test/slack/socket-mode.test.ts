/**
 * Socket Mode: with SLACK_APP_TOKEN the app connects out over a WebSocket (no public URL) and
 * handles the same events, clicks and commands, acking each envelope.
 */
import { afterEach, describe, expect, it } from 'vitest';
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
  afterEach(async () => {
    await slack?.stop();
    await http?.close();
    await test?.close();
    await emulator?.stop();
  });

  it('connects without an HTTP endpoint and relays claims and thread replies', async () => {
    emulator = await new SlackApiEmulator().start();
    emulator.addUser({ id: DANA.userId, name: 'dana', displayName: DANA.name });
    const customer = new MemoryChannel('webchat');
    test = await createTestBridge({ channels: [customer] });
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

    const { conversation } = await test.bridge.customerMessage({ origin: 'webchat', customer: { id: 'v1', name: 'Ann' }, text: 'I want to talk to a human' });
    await test.bridge.idle();
    await slack.settle();
    const [briefing] = await slack.directory.briefings(conversation.id);
    const root = (await slack.directory.thread(conversation.id))!;

    await emulator.socketSend('interactive', emulator.blockActionPayload({ channel: briefing!.channel, ts: briefing!.ts, actionId: 'briefing_claim', user: DANA.userId }));
    await waitFor(async () => (await test.bridge.getConversation(conversation.id))?.state === 'human', { what: 'claim' });

    const reply = emulator.postAsUser({ channel: root.channel, user: DANA.userId, text: 'Hi Ann, Dana here.', thread_ts: root.ts });
    const envelope = { team_id: emulator.teamId, api_app_id: 'AEMULATED', event: reply, type: 'event_callback', event_id: 'EvSOCKET1', event_time: 1 };
    await emulator.socketSend('events_api', envelope);
    await emulator.socketSend('events_api', envelope, { retryAttempt: 1 });
    await waitFor(() => customer.texts(conversation.id).includes('Hi Ann, Dana here.'), { what: 'relayed reply' });
    await test.bridge.idle();
    await slack.settle();
    expect(customer.texts(conversation.id).filter((t) => t === 'Hi Ann, Dana here.')).toHaveLength(1);
  });
});
