/**
 * Boots the whole Slack side for a test: the loopback Slack Web API emulator, a real bridge
 * (SQLite in a temp dir, or the store the test brings), the shared HTTP server with the Slack workspace mounted, a recording
 * customer channel, and a client that sends signed Slack requests to `/slack/events`.
 * The workspace is wired as src/app.ts wires it: it reads the bridge through `redactedPort`.
 */
export { countingStore } from '../support/counting-store.ts';
import type { Agent } from '../../src/agent/agent.ts';
import type { SlackConfig } from '../../adapters/slack/config.ts';
import type { LiveHomeOptions } from '../../adapters/slack/home-live.ts';
import type { Policy } from '../../src/policy.ts';
import { redactedPort } from '../../src/engine/redact.ts';
import type { Bridge } from '../../src/bridge.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import type { Conversation } from '../../src/model.ts';
import { createSlackWorkspace, type SlackWorkspace } from '../../adapters/slack/index.ts';
import type { BriefingCopy } from '../../adapters/slack/directory.ts';
import type { PostedRef } from '../../adapters/slack/api.ts';
import type { Store } from '../../src/store/store.ts';
import { SlackApiEmulator, SlackEventsClient, type StoredMessage } from '../emulators/slack-api.ts';
import { MemoryChannel } from '../support/memory-ports.ts';
import { createTestBridge, waitFor, type TestBridge } from '../support/harness.ts';

export const SIGNING_SECRET = '3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c';
export const CHANNEL = 'CSUPPORT01';
export const BILLING_CHANNEL = 'CBILLING01';
export const MANAGERS_CHANNEL = 'CMANAGERS1';

export const DANA = { userId: 'UDANA0001', name: 'Dana' };
export const SAM = { userId: 'USAM00001', name: 'Sam' };

export interface SlackFixture {
  emulator: SlackApiEmulator;
  bridge: Bridge;
  test: TestBridge;
  customer: MemoryChannel;
  slack: SlackWorkspace;
  events: SlackEventsClient;
  http: HttpServer;
  port: number;
  /** Waits until the bridge has no work left and no Slack request is in flight. */
  settle(): Promise<void>;
  /** The conversation's thread root in Slack. */
  root(conversationId: string): Promise<PostedRef>;
  /** Briefing copies (current escalation first in order of posting). */
  briefings(conversationId: string): Promise<BriefingCopy[]>;
  /** Texts of the thread's replies the app posted (root excluded). */
  threadTexts(conversationId: string): Promise<string[]>;
  /** A customer writes in (web chat). */
  customerSays(text: string, conversationId?: string): Promise<Conversation>;
  /** An operator replies in the conversation's thread (a real signed message event). */
  reply(conversationId: string, user: string, text: string, extra?: { files?: any[] }): Promise<void>;
  /** An operator clicks a button on the conversation's current briefing (thread copy). */
  click(conversationId: string, user: string, actionId: string | RegExp, options?: { stale?: boolean }): Promise<number>;
  /** The Slack message that mirrors one transcript message (found by its post key, `msg:<id>`). */
  mirrored(messageId: string): StoredMessage | undefined;
  /** An operator clicks Reveal on the message mirroring `messageId`; Slack's answer status. */
  clickReveal(messageId: string, user: string): Promise<number>;
  /** An operator types a slash command (e.g. `/route`) in the support channel; Slack's answer status. */
  command(user: string, command: string, text: string): Promise<number>;
  close(): Promise<void>;
}

export interface SlackFixtureOptions {
  agent?: Agent;
  queueChannels?: Record<string, string>;
  publicUrl?: boolean;
  store?: Store;
  policy?: Policy;
  /** More Slack settings (managers' channel, on-call groups...). */
  config?: Partial<SlackConfig>;
  /** User groups the emulated workspace has (checked at start when on-call groups are configured). */
  userGroups?: Array<{ id: string; handle: string }>;
  /** Live Home tab refreshes (the adapter's defaults unless set; `false`: off). */
  liveHome?: Partial<LiveHomeOptions> | false;
}

export async function startSlackFixture(options: SlackFixtureOptions = {}): Promise<SlackFixture> {
  const emulator = await new SlackApiEmulator().start();
  emulator.addUser({ id: DANA.userId, name: 'dana', displayName: DANA.name, realName: 'Dana Scully' });
  emulator.addUser({ id: SAM.userId, name: 'sam', displayName: SAM.name, realName: 'Sam Vimes' });
  emulator.addChannel(CHANNEL, 'support');
  emulator.addChannel(BILLING_CHANNEL, 'billing');
  emulator.addChannel(MANAGERS_CHANNEL, 'support-managers');
  for (const group of options.userGroups ?? []) emulator.addUserGroup(group);
  const customer = new MemoryChannel('webchat');
  const test = await createTestBridge({
    channels: [customer],
    ...(options.agent ? { agent: options.agent } : {}),
    ...(options.store ? { store: options.store } : {}),
    ...(options.policy ? { policy: options.policy } : {}),
  });
  const bridge = test.bridge;
  const http = new HttpServer(silentLogger());
  const port = await http.listen(0, '127.0.0.1');
  const slack = createSlackWorkspace({
    bridge: redactedPort(bridge, bridge.redactor),
    http,
    logger: silentLogger(),
    config: {
      botToken: emulator.botToken,
      signingSecret: SIGNING_SECRET,
      channelId: CHANNEL,
      apiUrl: emulator.url,
      ...(options.queueChannels ? { queueChannels: options.queueChannels } : {}),
      ...options.config,
    },
    ...(options.publicUrl ? { publicUrl: `http://127.0.0.1:${port}` } : {}),
    ...(options.liveHome !== undefined ? { liveHome: options.liveHome } : {}),
  });
  bridge.addWorkspace(slack);
  await slack.start();
  http.setReady(true);
  const events = new SlackEventsClient(`http://127.0.0.1:${port}/slack/events`, SIGNING_SECRET, emulator.teamId);

  const settle = async () => {
    for (let i = 0; i < 4; i++) {
      await bridge.idle();
      await slack.settle();
    }
  };
  const root = (conversationId: string) => waitFor(() => slack.directory.thread(conversationId), { what: `thread of ${conversationId}` });
  const briefings = (conversationId: string) => slack.directory.briefings(conversationId);
  const fixture: SlackFixture = {
    emulator,
    bridge,
    test,
    customer,
    slack,
    events,
    http,
    port,
    settle,
    root,
    briefings,
    async threadTexts(conversationId) {
      const r = await root(conversationId);
      return emulator.replies(r.channel, r.ts).filter((m: StoredMessage) => m.bot_id).map((m) => m.versions.at(-1)!.text);
    },
    async customerSays(text, conversationId) {
      const { conversation } = await bridge.customerMessage({
        ...(conversationId ? { conversationId } : {}),
        origin: 'webchat',
        customer: { id: 'visitor-1', name: 'Ann Lee', email: 'ann@example.com' },
        text,
      });
      return conversation;
    },
    async reply(conversationId, user, text, extra = {}) {
      const r = await root(conversationId);
      const event = emulator.postAsUser({ channel: r.channel, user, text, thread_ts: r.ts, ...(extra.files ? { files: extra.files } : {}) });
      const answer = await events.event(event);
      if (answer.status !== 200) throw new Error(`slack event answered ${answer.status}`);
    },
    async click(conversationId, user, actionId, clickOptions = {}) {
      const copy = (await briefings(conversationId)).filter((b) => !b.superseded && b.place === 'thread').at(-1);
      if (!copy) throw new Error(`no briefing for ${conversationId}`);
      const answer = await events.interaction(emulator.blockActionPayload({ channel: copy.channel, ts: copy.ts, actionId, user, ...clickOptions }));
      return answer.status;
    },
    mirrored(messageId) {
      return emulator.messages.find((m) => m.metadata?.event_payload?.key === `msg:${messageId}`);
    },
    async clickReveal(messageId, user) {
      const message = fixture.mirrored(messageId);
      if (!message) throw new Error(`message ${messageId} is not mirrored in Slack`);
      const answer = await events.interaction(emulator.blockActionPayload({ channel: message.channel, ts: message.ts, actionId: 'thread_reveal', user }));
      return answer.status;
    },
    async command(user, command, text) {
      const answer = await events.command(emulator.slashCommand({ command, text, user, channel: CHANNEL }));
      return answer.status;
    },
    async close() {
      await settle();
      await slack.stop();
      await http.close();
      await test.close();
      await emulator.stop();
    },
  };
  return fixture;
}

