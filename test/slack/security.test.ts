/**
 * The Slack receiver under attack (issue 9, item 5). Each case failed on the code before it:
 * - a correctly signed request no listener handles (unknown action_id, unknown command, an event
 *   without an `event`) was never answered, over HTTP or Socket Mode;
 * - a signed body that is not an object (`null`, `[]`, `"x"`) got a 500;
 * - Socket Mode refused to start without SLACK_SIGNING_SECRET, which it never uses;
 * - a bot token Slack rejects ended start-up with a stack trace instead of one line.
 * Rejected inputs write nothing to the store.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { slackConfigFromEnv, type SlackConfig } from '../../adapters/slack/config.ts';
import { createSlackWorkspace, type SlackWorkspace } from '../../adapters/slack/index.ts';
import { BridgeError, ConfigError } from '../../src/errors.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import { SlackApiEmulator, type SlackReply } from '../emulators/slack-api.ts';
import { MemoryChannel } from '../support/memory-ports.ts';
import { createTestBridge, waitFor, type TestBridge } from '../support/harness.ts';
import { CHANNEL, countingStore, DANA, SIGNING_SECRET, startSlackFixture, type SlackFixture } from './fixture.ts';

const root = new URL('../..', import.meta.url).pathname;

/** Resolves with the reply and how long it took, or fails once Slack would have given up (3 s). */
async function timed(send: () => Promise<SlackReply>): Promise<SlackReply & { ms: number }> {
  const started = Date.now();
  const reply = await Promise.race([send(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('not answered within 3 s')), 3000))]);
  return { ...reply, ms: Date.now() - started };
}

describe('the Slack receiver over HTTP', () => {
  let f: SlackFixture;
  let writes: () => number;
  let dir: string;
  afterEach(async () => {
    await f?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function boot() {
    dir = mkdtempSync(join(tmpdir(), 'slack-security-'));
    const counting = countingStore(await openSqliteStore(join(dir, 'bridge.sqlite')));
    writes = counting.writes;
    f = await startSlackFixture({ store: counting.store });
    // A conversation waiting with a briefing, so attacks have something to aim at.
    const conversation = await f.customerSays('I want to talk to a human');
    await f.settle();
    return conversation;
  }

  it('answers every correctly signed request within 3 s, whether or not a listener handles it', async () => {
    const conversation = await boot();
    const copy = (await f.briefings(conversation.id))[0]!;
    const before = writes();
    const snapshot = JSON.stringify(await f.bridge.getConversation(conversation.id));
    const click = f.emulator.blockActionPayload({ channel: copy.channel, ts: copy.ts, actionId: 'briefing_claim', user: DANA.userId });
    const cases: Array<[string, () => Promise<SlackReply>]> = [
      ['an unknown action_id', () => f.events.interaction({ ...click, actions: [{ ...click.actions[0], action_id: 'no_such_action' }] })],
      ['an unknown command', () => f.events.command(f.emulator.slashCommand({ command: '/no-such-command', text: 'HB-1001', user: DANA.userId, channel: CHANNEL }))],
      ['an event callback with no event', () => f.events.send(JSON.stringify({ type: 'event_callback', event_id: 'Ev1', team_id: f.emulator.teamId }), 'application/json')],
      ['an event callback whose event is null', () => f.events.send(JSON.stringify({ type: 'event_callback', event_id: 'Ev2', event: null }), 'application/json')],
      ['an event no listener takes', () => f.events.event({ type: 'reaction_added', user: DANA.userId, reaction: 'eyes', item: { type: 'message', channel: CHANNEL, ts: copy.ts } })],
      ['an interaction of an unknown type', () => f.events.interaction({ type: 'no_such_type', user: { id: DANA.userId } })],
      ['a shortcut with an unknown callback', () => f.events.interaction({ type: 'shortcut', callback_id: 'nope', user: { id: DANA.userId }, trigger_id: '1.2.3' })],
      ['a view submission without a view', () => f.events.interaction({ type: 'view_submission', user: { id: DANA.userId } })],
      ['block actions that are not a list', () => f.events.interaction({ type: 'block_actions', user: { id: DANA.userId }, actions: null })],
      ['a claim click without a user', () => f.events.interaction({ ...click, user: undefined })],
    ];
    for (const [what, send] of cases) {
      const reply = await timed(send);
      expect([200, 400], `${what}: ${reply.status}`).toContain(reply.status);
      // Not the deadline's fallback answer: nothing waits for a listener that never comes.
      expect(reply.ms, what).toBeLessThan(1000);
    }
    await f.settle();
    expect(writes()).toBe(before);
    expect(JSON.stringify(await f.bridge.getConversation(conversation.id))).toBe(snapshot);
  });

  it('answers a signed body that is not an object with 400, never 500, and writes nothing', async () => {
    await boot();
    const before = writes();
    const form = (payload: string) => new URLSearchParams({ payload }).toString();
    for (const [body, type] of [
      ['null', 'application/json'],
      ['[]', 'application/json'],
      ['[{"type":"event_callback"}]', 'application/json'],
      ['"event_callback"', 'application/json'],
      ['42', 'application/json'],
      ['true', 'application/json'],
      ['{"type":', 'application/json'],
      [form('null'), 'application/x-www-form-urlencoded'],
      [form('[1,2]'), 'application/x-www-form-urlencoded'],
      [form('"block_actions"'), 'application/x-www-form-urlencoded'],
      [form('not json'), 'application/x-www-form-urlencoded'],
    ] as const) {
      const reply = await timed(() => f.events.send(body, type));
      expect(reply.status, body).toBe(400);
    }
    await f.settle();
    expect(writes()).toBe(before);
  });
});

describe('Slack in Socket Mode', () => {
  let emulator: SlackApiEmulator | undefined;
  let test: TestBridge | undefined;
  let slack: SlackWorkspace | undefined;
  let http: HttpServer | undefined;
  afterEach(async () => {
    await slack?.stop();
    await http?.close();
    await test?.close();
    await emulator?.stop();
    slack = http = test = emulator = undefined;
  });

  async function boot(config: SlackConfig) {
    test = await createTestBridge({ channels: [new MemoryChannel('webchat')] });
    http = new HttpServer(silentLogger());
    slack = createSlackWorkspace({ bridge: test.bridge, http, logger: silentLogger(), config });
    test.bridge.addWorkspace(slack);
    await slack.start();
    await emulator!.socketConnected();
    return { bridge: test.bridge, slack };
  }

  it('runs without SLACK_SIGNING_SECRET, and acks envelopes no listener handles', async () => {
    emulator = await new SlackApiEmulator().start();
    emulator.addUser({ id: DANA.userId, name: 'dana', displayName: DANA.name });
    const config = slackConfigFromEnv({ SLACK_BOT_TOKEN: emulator.botToken, SLACK_APP_TOKEN: emulator.appToken, SLACK_CHANNEL_ID: CHANNEL, SLACK_API_URL: emulator.url });
    expect(config.signingSecret).toBeUndefined();
    const { bridge, slack } = await boot(config);
    expect(slack.mode).toBe('socket');

    const { conversation } = await bridge.customerMessage({ origin: 'webchat', customer: { id: 'v1', name: 'Ann' }, text: 'I want to talk to a human' });
    await bridge.idle();
    const copy = (await slack.directory.briefings(conversation.id))[0]!;
    const click = emulator.blockActionPayload({ channel: copy.channel, ts: copy.ts, actionId: 'briefing_claim', user: DANA.userId });
    // Each is acked (socketSend rejects after 3 s without an ack).
    await emulator.socketSend('interactive', { ...click, actions: [{ ...click.actions[0], action_id: 'no_such_action' }] });
    await emulator.socketSend('slash_commands', emulator.slashCommand({ command: '/no-such-command', text: '', user: DANA.userId, channel: CHANNEL }));
    await emulator.socketSend('events_api', { type: 'event_callback', event_id: 'EvS1', team_id: emulator.teamId });
    await emulator.socketSend('interactive', null as never);
    expect((await bridge.getConversation(conversation.id))!.state).toBe('waiting');

    // And a real click still works.
    await emulator.socketSend('interactive', click);
    await waitFor(async () => (await bridge.getConversation(conversation.id))?.state === 'human', { what: 'claim over the socket' });
  });
});

describe('starting with a token Slack rejects', () => {
  let emulator: SlackApiEmulator | undefined;
  let test: TestBridge | undefined;
  let http: HttpServer | undefined;
  afterEach(async () => {
    await http?.close();
    await test?.close();
    await emulator?.stop();
    http = test = emulator = undefined;
  });

  async function startWith(config: Partial<SlackConfig>): Promise<unknown> {
    emulator ??= await new SlackApiEmulator().start();
    test ??= await createTestBridge();
    http ??= new HttpServer(silentLogger());
    const slack = createSlackWorkspace({
      bridge: test.bridge,
      http,
      logger: silentLogger(),
      config: { botToken: emulator.botToken, signingSecret: SIGNING_SECRET, channelId: CHANNEL, apiUrl: emulator.url, ...config },
    });
    try {
      await slack.start();
      await slack.stop();
      return undefined;
    } catch (err) {
      return err;
    }
  }

  it('is one configuration error naming the variable, not a stack trace', async () => {
    const bot = await startWith({ botToken: 'xoxb-revoked-or-mistyped' });
    expect(bot).toBeInstanceOf(ConfigError);
    expect((bot as ConfigError).variable).toBe('SLACK_BOT_TOKEN');
    expect((bot as Error).message).toMatch(/^SLACK_BOT_TOKEN: Slack rejected it \(invalid_auth\)/);
    expect((bot as Error).message).not.toContain('\n');

    const app = await startWith({ appToken: 'xapp-1-not-this-app', signingSecret: undefined });
    expect(app).toBeInstanceOf(ConfigError);
    expect((app as ConfigError).variable).toBe('SLACK_APP_TOKEN');

    // Slack out of reach: one line too.
    const away = await startWith({ apiUrl: 'http://127.0.0.1:9/api/' });
    expect(away).toBeInstanceOf(BridgeError);
    expect((away as Error).message).toMatch(/^Slack did not answer at http:\/\/127\.0\.0\.1:9\/api\//);
    expect((away as Error).message).not.toContain('\n');
  });

  it('npm start prints one line and exits 1', { timeout: 60_000 }, async () => {
    emulator = await new SlackApiEmulator().start();
    const dir = mkdtempSync(join(tmpdir(), 'slack-token-'));
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: root,
        env: {
          PATH: process.env.PATH,
          PORT: '0',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'silent',
          STORE_URL: join(dir, 'bridge.sqlite'),
          SLACK_BOT_TOKEN: 'xoxb-revoked-or-mistyped',
          SLACK_SIGNING_SECRET: SIGNING_SECRET,
          SLACK_CHANNEL_ID: CHANNEL,
          SLACK_API_URL: emulator.url,
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^Configuration error: SLACK_BOT_TOKEN: Slack rejected it \(invalid_auth\)/)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
