/**
 * A crash with Slack posts still queued: the transcript (durable) has messages the thread never got.
 * The next process heals the thread on its next mirror: every missing message appears, in
 * transcript order, none twice, and nothing typed in Slack is posted back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.ts';
import type { Bridge } from '../../src/bridge.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import { openSqliteStore } from '../../src/store/keyv-store.ts';
import { createSlackWorkspace, type SlackWorkspace } from '../../adapters/slack/index.ts';
import { SlackApiEmulator } from '../emulators/slack-api.ts';
import { MemoryChannel } from '../support/memory-ports.ts';
import { createTestBridge, waitFor, type TestBridge } from '../support/harness.ts';
import { CHANNEL, DANA, SIGNING_SECRET, startSlackFixture } from './fixture.ts';

/** Answers every customer message with `echo: <text>`, at once. */
const echoAgent: Agent = {
  name: 'Echo',
  async respond({ conversation }) {
    const last = conversation.messages.filter((m) => m.author.role === 'customer').at(-1);
    return { kind: 'reply', text: `echo: ${last?.text ?? ''}`, actionsTaken: [] };
  },
};

interface Instance {
  test: TestBridge;
  bridge: Bridge;
  slack: SlackWorkspace;
  http: HttpServer;
}

describe('Slack thread healing after a crash', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });

  /** One process: a bridge and a Slack workspace on the SQLite file at `path`. */
  async function startInstance(emulator: SlackApiEmulator, path: string, stopGraceMs: number): Promise<Instance> {
    const test = await createTestBridge({ channels: [new MemoryChannel('webchat')], agent: echoAgent, store: await openSqliteStore(path) });
    const http = new HttpServer(silentLogger());
    await http.listen(0, '127.0.0.1');
    const slack = createSlackWorkspace({
      bridge: test.bridge,
      http,
      logger: silentLogger(),
      config: { botToken: emulator.botToken, signingSecret: SIGNING_SECRET, channelId: CHANNEL, apiUrl: emulator.url },
      retry: { backoffMs: () => 20 },
      stopGraceMs,
    });
    test.bridge.addWorkspace(slack);
    await slack.start();
    return { test, bridge: test.bridge, slack, http };
  }

  it('posts every message a crash left unposted, in transcript order and once, on the next mirror after a restart', async () => {
    const emulator = await new SlackApiEmulator().start();
    cleanups.push(() => emulator.stop());
    emulator.addUser({ id: DANA.userId, name: 'dana', displayName: DANA.name, realName: 'Dana Scully' });
    emulator.addChannel(CHANNEL, 'support');
    const dir = mkdtempSync(join(tmpdir(), 'slack-heal-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'bridge.sqlite');
    const customer = { origin: 'webchat' as const, customer: { id: 'visitor-1', name: 'Ann Lee' } };

    // The first process: the thread opens and mirrors normally.
    const first = await startInstance(emulator, path, 0);
    let firstClosed = false;
    cleanups.push(async () => {
      if (firstClosed) return;
      await first.slack.stop();
      await first.http.close();
      await first.test.close();
    });
    const { conversation } = await first.bridge.customerMessage({ ...customer, text: 'hello' });
    await waitFor(async () => (await first.bridge.getConversation(conversation.id))!.messages.at(-1)?.text === 'echo: hello', { what: 'the first reply' });
    await first.bridge.idle();
    await first.slack.settle();
    const root = (await first.slack.directory.thread(conversation.id))!;
    const postedKeys = () =>
      emulator
        .replies(root.channel, root.ts)
        .map((m) => String(m.metadata?.event_payload.key ?? ''))
        .filter((key) => key.startsWith('msg:'));
    expect(postedKeys()).toHaveLength(2);

    // Slack rate-limits the thread for a long time; more of the conversation happens meanwhile.
    emulator.fault({ method: 'chat.postMessage', when: (args) => args.thread_ts === root.ts, times: 1, kind: 'rate_limit', retryAfterSeconds: 60 });
    await first.bridge.customerMessage({ ...customer, conversationId: conversation.id, text: 'first while limited' });
    await waitFor(() => emulator.callsOf('chat.postMessage').some((c) => c.status === 429), { what: 'the 429' });
    await first.bridge.internalNote({ conversationId: conversation.id, text: 'The email channel reported a bounce.' });
    // Typed in Slack by an operator: the bridge never mirrors it back to Slack, so healing must not either.
    await first.bridge.operatorMessage({
      conversationId: conversation.id,
      operator: { id: `slack:${DANA.userId}`, name: DANA.name, workspace: 'slack' },
      text: 'a note typed in the Slack thread',
      internal: true,
      source: { workspace: 'slack', externalId: '1700000000.000100' },
    });
    await first.bridge.customerMessage({ ...customer, conversationId: conversation.id, text: 'second while limited' });
    await waitFor(async () => (await first.bridge.getConversation(conversation.id))!.messages.at(-1)?.text === 'echo: second while limited', { what: 'the last reply' });

    // The crash: the queued posts are abandoned, never drained.
    await first.slack.stop();
    await first.bridge.idle();
    await first.http.close();
    await first.test.close();
    firstClosed = true;
    // The store has the whole conversation; the thread stopped at the first two messages.
    const store = await openSqliteStore(path);
    const stranded = (await store.getConversation(conversation.id))!;
    await store.close();
    expect(stranded.messages.length).toBeGreaterThan(5);
    expect(postedKeys()).toHaveLength(2);

    // A new process on the same store and the same Slack; Slack is healthy again.
    emulator.clearFaults();
    const second = await startInstance(emulator, path, 2000);
    cleanups.push(async () => {
      await second.slack.stop();
      await second.http.close();
      await second.test.close();
    });
    await second.bridge.customerMessage({ ...customer, conversationId: conversation.id, text: 'are you still there?' });
    await waitFor(async () => (await second.bridge.getConversation(conversation.id))!.messages.at(-1)?.text === 'echo: are you still there?', { what: 'the reply after the restart' });
    for (let i = 0; i < 3; i++) {
      await second.bridge.idle();
      await second.slack.settle();
    }

    const transcript = (await second.bridge.getConversation(conversation.id))!.messages;
    const expected = transcript.filter((m) => m.source?.workspace !== 'slack').map((m) => `msg:${m.id}`);
    expect(expected).toHaveLength(transcript.length - 1);
    // Every message the bridge would have mirrored is in the thread exactly once, in transcript order.
    expect(postedKeys()).toEqual(expected);
    const texts = emulator.replies(root.channel, root.ts).map((m) => m.text);
    expect(texts.some((t) => t.includes('a note typed in the Slack thread'))).toBe(false);
    expect(texts.findIndex((t) => t.includes('first while limited'))).toBeLessThan(texts.findIndex((t) => t.includes('second while limited')));
    // The thread's completeness is recorded, so the next mirror looks at new messages only.
    expect(await second.slack.directory.mirroredUpTo(conversation.id, transcript)).toBe(transcript.length - 1);
    // One thread, one root.
    expect(emulator.messages.filter((m) => m.channel === CHANNEL && !m.thread_ts)).toHaveLength(1);
  });

  it('looks again, instead of posting twice, for a message whose post could not be checked', async () => {
    const f = await startSlackFixture();
    cleanups.push(() => f.close());
    const conversation = await f.customerSays('hello');
    await f.settle();
    // Slack takes the post but the answer is lost, and the thread cannot be read to check.
    f.emulator.fault({ method: 'chat.postMessage', times: 1, kind: 'lost_answer' });
    f.emulator.fault({ method: 'conversations.replies', times: 5, kind: 'server_error' });
    await f.customerSays('lost and unverifiable', conversation.id);
    await f.settle();
    await f.customerSays('the next message', conversation.id);
    await f.settle();

    const root = await f.root(conversation.id);
    const keys = f.emulator.replies(root.channel, root.ts).map((m) => String(m.metadata?.event_payload.key ?? ''));
    const transcript = (await f.bridge.getConversation(conversation.id))!.messages;
    expect(keys).toEqual(transcript.map((m) => `msg:${m.id}`));
    expect(f.emulator.messages.filter((m) => m.text.includes('lost and unverifiable'))).toHaveLength(1);
    // The healing checked the thread again (and found the post) rather than trusting or repeating it.
    expect(f.emulator.callsOf('conversations.replies').length).toBeGreaterThan(5);
  });
});
