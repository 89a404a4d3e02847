/**
 * A post whose answer was lost is found by its metadata key and not posted twice. Slack may take a
 * post and the answer never arrive (timeout, reset), or a process may die between posting and
 * recording. The delivery core then tries the same work again with a higher attempt count, and the
 * adapter looks for the post's key before posting; if it cannot look, it waits and looks again
 * later, never posting blindly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../../src/model.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import { createSlackWorkspace } from '../../adapters/slack/index.ts';
import { SlackUnavailableError } from '../../adapters/slack/api.ts';
import { CHANNEL, SAM, SIGNING_SECRET, startSlackFixture, type SlackFixture } from './fixture.ts';

describe('a Slack post whose answer was lost', () => {
  let f: SlackFixture;
  afterEach(async () => {
    await f?.close();
  });

  /** chat.postMessage calls that carried `key` in their metadata. */
  function postsWithKey(key: string) {
    return f.emulator.callsOf('chat.postMessage').filter((c) => String(typeof c.args.metadata === 'string' ? c.args.metadata : JSON.stringify(c.args.metadata)).includes(`"${key}"`));
  }

  async function keyOf(conversationId: string, text: string): Promise<string> {
    const message = (await f.bridge.getConversation(conversationId))!.messages.find((m) => m.text === text);
    return `msg:${message!.id}`;
  }

  async function threadKeys(conversationId: string): Promise<string[]> {
    const root = await f.root(conversationId);
    return f.emulator.replies(root.channel, root.ts).filter((m) => m.bot_id).map((m) => String(m.metadata?.event_payload.key));
  }

  it('is found by its metadata key, even a few pages back in a busy thread, and not posted again', async () => {
    f = await startSlackFixture();
    const conversation = await f.customerSays('hello there');
    await f.settle();
    const root = await f.root(conversation.id);
    // Operators chat in the thread: more than one page of replies to search.
    for (let i = 0; i < 250; i++) f.emulator.postAsUser({ channel: root.channel, user: SAM.userId, text: `chatter ${i}`, thread_ts: root.ts });
    f.emulator.fault({ method: 'chat.postMessage', times: 1, kind: 'lost_answer' });
    await f.customerSays('this answer gets lost', conversation.id);
    await f.settle();

    const key = await keyOf(conversation.id, 'this answer gets lost');
    expect(postsWithKey(key).map((c) => c.status)).toEqual([0]); // posted once, its answer lost, never again
    expect(f.emulator.messages.filter((m) => m.text.includes('this answer gets lost'))).toHaveLength(1);
    const lookups = f.emulator.callsOf('conversations.replies');
    expect(lookups.length).toBeGreaterThanOrEqual(2); // paged through the thread
    expect(String(lookups[0]!.args.include_all_metadata)).toBe('true');
    // The thread carries on in order.
    await f.customerSays('and the next one', conversation.id);
    await f.settle();
    const transcript = (await f.bridge.getConversation(conversation.id))!.messages;
    expect(await threadKeys(conversation.id)).toEqual(transcript.map((m) => `msg:${m.id}`));
  });

  it('is never posted blindly when Slack cannot be asked: it asks again later', async () => {
    f = await startSlackFixture();
    const conversation = await f.customerSays('hello');
    await f.settle();
    f.emulator.fault({ method: 'chat.postMessage', times: 1, kind: 'lost_answer' });
    f.emulator.fault({ method: 'conversations.replies', times: 4, kind: 'server_error' });
    await f.customerSays('lost and unverifiable', conversation.id);
    await f.customerSays('the message after it', conversation.id);
    await f.settle();

    const key = await keyOf(conversation.id, 'lost and unverifiable');
    expect(postsWithKey(key)).toHaveLength(1);
    expect(f.emulator.callsOf('conversations.replies').map((c) => c.status)).toEqual([500, 500, 500, 500, 200]);
    // Nothing behind it was posted before it was settled: the thread stays in transcript order.
    const transcript = (await f.bridge.getConversation(conversation.id))!.messages;
    expect(await threadKeys(conversation.id)).toEqual(transcript.map((m) => `msg:${m.id}`));
  });

  it('opens a thread once even if the root post answer is lost', async () => {
    f = await startSlackFixture();
    f.emulator.fault({ method: 'chat.postMessage', when: (args) => !args.thread_ts, times: 1, kind: 'lost_answer' });
    const conversation = await f.customerSays('brand new conversation');
    await f.settle();
    expect(f.emulator.messages.filter((m) => !m.thread_ts && m.channel === CHANNEL)).toHaveLength(1);
    expect((await f.threadTexts(conversation.id))[0]).toContain('brand new conversation');
    expect(f.emulator.callsOf('conversations.history').length).toBeGreaterThan(0);
  });

  it('is found by another instance that takes the work over after the first one died', async () => {
    f = await startSlackFixture();
    const conversation = await f.customerSays('hello');
    await f.settle();
    const current = (await f.bridge.getConversation(conversation.id))!;
    const note: Message = { id: 'msg_takeover01', at: new Date().toISOString(), author: { role: 'system' }, text: 'posted by the first instance', visibility: 'internal' };
    const since = Date.now();

    // The first instance posts; Slack takes it, the answer is lost, and the instance dies.
    f.emulator.fault({ method: 'chat.postMessage', times: 1, kind: 'lost_answer' });
    await expect(f.slack.mirror(current, note, { key: 'work-1', count: 1, since })).rejects.toThrow();

    // Another instance, same store, same Slack: its attempt is the second.
    const http = new HttpServer(silentLogger());
    const second = createSlackWorkspace({
      bridge: f.bridge,
      http,
      logger: silentLogger(),
      config: { botToken: f.emulator.botToken, signingSecret: SIGNING_SECRET, channelId: CHANNEL, apiUrl: f.emulator.url },
    });
    // It cannot look yet: it does not post, it fails so the worker tries again later.
    f.emulator.fault({ method: 'conversations.replies', times: 1, kind: 'server_error' });
    await expect(second.mirror(current, note, { key: 'work-1', count: 2, since })).rejects.toBeInstanceOf(SlackUnavailableError);
    await second.mirror(current, note, { key: 'work-1', count: 3, since });
    expect(postsWithKey('msg:msg_takeover01')).toHaveLength(1);
    expect(f.emulator.messages.filter((m) => m.text.includes('posted by the first instance'))).toHaveLength(1);
    await http.close();
  });

  it('is posted without looking when the earlier attempt surely failed (a 429)', async () => {
    f = await startSlackFixture();
    const conversation = await f.customerSays('hello');
    await f.settle();
    const before = f.emulator.callsOf('conversations.replies').length;
    f.emulator.fault({ method: 'chat.postMessage', times: 1, kind: 'rate_limit', retryAfterSeconds: 1 });
    await f.customerSays('after a 429', conversation.id);
    await f.settle();
    expect(f.emulator.messages.filter((m) => m.text.includes('after a 429'))).toHaveLength(1);
    // A 429 means Slack did not take it: no conversations.replies call (rate-limited itself) was spent.
    expect(f.emulator.callsOf('conversations.replies').length).toBe(before);
  });
});
