/**
 * Slack's delivery rules: signed requests only; a thread reply recorded once per Slack message and
 * answered only once it is recorded; the app's own echoes ignored; and outbound posts, done by the
 * bridge's delivery workers, each in its thread once and in transcript order while Slack answers
 * 429, 500 or loses its answers, without one rate-limited thread holding up another.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/harness.ts';
import { CHANNEL, DANA, SAM, startSlackFixture, type SlackFixture } from './fixture.ts';

describe('Slack requests', () => {
  let f: SlackFixture;
  beforeEach(async () => {
    f = await startSlackFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  async function heldByDana() {
    const conversation = await f.customerSays('I want to talk to a human about my invoice');
    await f.settle();
    expect(await f.click(conversation.id, DANA.userId, 'briefing_claim')).toBe(200);
    await f.settle();
    return conversation;
  }

  it('rejects forged and stale signatures with 401 and changes nothing', async () => {
    const conversation = await heldByDana();
    const root = await f.root(conversation.id);
    const before = { calls: f.emulator.calls.length, seen: f.customer.texts(conversation.id).length };
    const event = f.emulator.postAsUser({ channel: root.channel, user: DANA.userId, text: 'forged hello', thread_ts: root.ts });
    const body = JSON.stringify({ type: 'event_callback', event_id: 'EvFORGED1', team_id: f.emulator.teamId, event });

    const forged = await f.events.send(body, 'application/json', { signature: 'v0=' + 'a'.repeat(64) });
    expect(forged.status).toBe(401);
    const wrongSecret = await f.events.send(body, 'application/json', { signature: 'v0=' + (await import('node:crypto')).createHmac('sha256', 'not-the-secret').update(`v0:${Math.floor(Date.now() / 1000)}:${body}`).digest('hex') });
    expect(wrongSecret.status).toBe(401);
    const stale = await f.events.send(body, 'application/json', { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 });
    expect(stale.status).toBe(401);
    const unsigned = await fetch(`http://127.0.0.1:${f.port}/slack/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(unsigned.status).toBe(401);
    const tamperedCommand = new URLSearchParams(f.emulator.slashCommand({ command: '/return', text: 'x', user: DANA.userId, channel: CHANNEL })).toString();
    const signedOther = await f.events.send(tamperedCommand, 'application/x-www-form-urlencoded', { signature: 'v0=' + '0'.repeat(64) });
    expect(signedOther.status).toBe(401);

    await f.settle();
    expect(f.customer.texts(conversation.id)).toHaveLength(before.seen);
    expect(f.emulator.calls.length).toBe(before.calls);
    expect((await f.bridge.getConversation(conversation.id))!.state).toBe('human');
  });

  it('answers the URL verification challenge', async () => {
    const answer = await f.events.send(JSON.stringify({ type: 'url_verification', challenge: 'c-123', token: 't' }), 'application/json');
    expect(answer.status).toBe(200);
    expect(answer.json()).toEqual({ challenge: 'c-123' });
  });

  it('answers an event only once the reply is recorded, and records a redelivery once', async () => {
    const conversation = await heldByDana();
    const root = await f.root(conversation.id);
    // Slack is slow to say who Sam is: the reply's commit waits for it, and so must the answer.
    f.emulator.fault({ method: 'users.info', times: 1, kind: 'delay', delayMs: 400 });
    const event = f.emulator.postAsUser({ channel: root.channel, user: SAM.userId, text: 'FYI the courier called.', thread_ts: root.ts });
    const first = await f.events.event(event);
    expect(first.status).toBe(200);
    const recorded = (await f.bridge.getConversation(conversation.id))!.messages.filter((m) => m.text === 'FYI the courier called.');
    expect(recorded).toHaveLength(1);

    const mine = f.emulator.postAsUser({ channel: root.channel, user: DANA.userId, text: 'Your refund is on its way.', thread_ts: root.ts });
    const once = await f.events.event(mine);
    const again = await f.events.event(mine, { eventId: once.eventId, retryNum: 1 });
    const third = await f.events.event(mine, { eventId: once.eventId, retryNum: 2 });
    expect([once.status, again.status, third.status]).toEqual([200, 200, 200]);
    await f.settle();
    expect(f.customer.texts(conversation.id).filter((t) => t === 'Your refund is on its way.')).toHaveLength(1);
    expect((await f.bridge.getConversation(conversation.id))!.messages.filter((m) => m.text === 'Your refund is on its way.')).toHaveLength(1);
  });

  it('relays the same Slack message once even under a new event_id', async () => {
    const conversation = await heldByDana();
    const root = await f.root(conversation.id);
    const event = f.emulator.postAsUser({ channel: root.channel, user: DANA.userId, text: 'Only once, please.', thread_ts: root.ts });
    await f.events.event(event);
    await f.events.event(event);
    await f.settle();
    expect(f.customer.texts(conversation.id).filter((t) => t === 'Only once, please.')).toHaveLength(1);
  });

  it("ignores the app's own messages, edits, deletes, broadcasts, joins and top-level chatter", async () => {
    const conversation = await heldByDana();
    const root = await f.root(conversation.id);
    const seen = f.customer.texts(conversation.id).length;
    const ownPost = f.emulator.replies(root.channel, root.ts).at(-1)!;
    const echoes = [
      f.emulator.echoEvent(ownPost),
      { type: 'message', subtype: 'message_changed', channel: root.channel, ts: '1.1', hidden: true, message: { type: 'message', user: DANA.userId, text: 'edited', ts: '1.0', thread_ts: root.ts }, previous_message: {} },
      { type: 'message', subtype: 'message_deleted', channel: root.channel, ts: '1.2', hidden: true, deleted_ts: '1.0', previous_message: { text: 'x', thread_ts: root.ts } },
      { type: 'message', subtype: 'thread_broadcast', channel: root.channel, user: DANA.userId, text: 'broadcast', ts: '1.3', thread_ts: root.ts },
      { type: 'message', subtype: 'channel_join', channel: root.channel, user: DANA.userId, text: '<@UDANA0001> has joined the channel', ts: '1.4' },
      { type: 'message', channel: root.channel, user: DANA.userId, text: 'top-level chat', ts: '1.5' },
      { type: 'message', channel: root.channel, user: DANA.userId, text: 'unknown thread', ts: '1.6', thread_ts: '1.0' },
      { type: 'message', channel: root.channel, bot_id: 'BOTHER', text: 'another bot', ts: '1.7', thread_ts: root.ts },
    ];
    for (const event of echoes) expect((await f.events.event(event)).status).toBe(200);
    await f.settle();
    expect(f.customer.texts(conversation.id)).toHaveLength(seen);
    const transcript = (await f.bridge.getConversation(conversation.id))!.messages;
    expect(transcript.filter((m) => m.author.role === 'operator')).toHaveLength(0);
  });

  it('escapes mention and link injection from the customer', async () => {
    const hostile = 'Hey <!channel> and <!here> <!everyone> <@UDANA0001> <#C123|general> click <https://evil.example/login|bank.com> @here @channel <!subteam^S123|@support>';
    const conversation = await f.customerSays(hostile);
    await f.customerSays('I want a human, now ' + hostile, conversation.id);
    await f.settle();
    const root = await f.root(conversation.id);
    const posted = f.emulator.messages.filter((m) => m.channel === root.channel && m.bot_id);
    expect(posted.length).toBeGreaterThan(3);
    for (const message of posted) {
      for (const version of message.versions) {
        const wire = JSON.stringify(version);
        expect(wire).not.toMatch(/<!(channel|here|everyone|subteam)/);
        expect(wire).not.toMatch(/<@U/);
        expect(wire).not.toMatch(/<#C/);
        expect(wire).not.toMatch(/<https?:/);
        expect(wire).not.toMatch(/(?<!\u2060)@(here|channel)\b/);
      }
    }
    expect((await f.threadTexts(conversation.id))[0]).toContain('&lt;!channel&gt;');
  });
});

describe('Slack outbound delivery', () => {
  let f: SlackFixture;
  beforeEach(async () => {
    f = await startSlackFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  /** Metadata keys of the app's posts in a conversation's thread, in thread order. */
  async function threadKeys(conversationId: string): Promise<string[]> {
    const root = await f.root(conversationId);
    return f.emulator
      .replies(root.channel, root.ts)
      .filter((m) => m.bot_id)
      .map((m) => String(m.metadata?.event_payload.key ?? ''));
  }

  /** What the thread must show: every transcript message except those typed in Slack, in order. */
  async function expectedKeys(conversationId: string): Promise<string[]> {
    const stored = (await f.bridge.getConversation(conversationId))!;
    return stored.messages.filter((m) => m.source?.workspace !== 'slack').map((m) => `msg:${m.id}`);
  }

  it('puts every message in its thread exactly once and in transcript order while Slack fails 20% of calls', { timeout: 60_000 }, async () => {
    const conversations = [];
    for (let k = 1; k <= 3; k++) {
      const conversation = await f.customerSays(`I want to talk to a human about order A-100${k}`);
      await f.settle();
      expect(await f.click(conversation.id, DANA.userId, 'briefing_claim')).toBe(200);
      conversations.push(conversation);
    }
    await f.settle();

    // From now on Slack answers a fifth of posts, updates and reads with a 429, a 500, or takes the
    // post and loses its answer.
    f.emulator.chaos({ rate: 0.2, seed: 20240611 });
    // And at least one of each, whatever the dice say.
    for (const kind of ['lost_answer', 'server_error', 'rate_limit'] as const) f.emulator.fault({ method: 'chat.postMessage', when: (args) => Boolean(args.thread_ts), times: 1, kind });
    for (let i = 1; i <= 10; i++) {
      for (const [k, conversation] of conversations.entries()) {
        await f.customerSays(`customer ${k} message ${i}`, conversation.id);
        await f.reply(conversation.id, DANA.userId, `operator ${k} reply ${i}`);
      }
    }
    await f.settle();
    f.emulator.clearFaults();
    await f.settle();

    for (const [k, conversation] of conversations.entries()) {
      // Every message the bridge mirrors is in the thread once, in transcript order (by metadata key).
      const keys = (await threadKeys(conversation.id)).filter((key) => key.startsWith('msg:'));
      expect(keys).toEqual(await expectedKeys(conversation.id));
      expect(keys.length).toBeGreaterThanOrEqual(11);
      // The 30 operator replies: each recorded once and delivered to the customer once, in order.
      const replies = Array.from({ length: 10 }, (_, i) => `operator ${k} reply ${i + 1}`);
      const stored = (await f.bridge.getConversation(conversation.id))!;
      expect(stored.messages.filter((m) => m.author.role === 'operator').map((m) => m.text)).toEqual(replies);
      expect(f.customer.texts(conversation.id).filter((t) => t.startsWith('operator '))).toEqual(replies);
      const customerLines = stored.messages.filter((m) => m.author.role === 'customer').map((m) => m.text);
      expect(customerLines.slice(1)).toEqual(Array.from({ length: 10 }, (_, i) => `customer ${k} message ${i + 1}`));
    }
    // One root per conversation, and no key posted twice anywhere.
    expect(f.emulator.messages.filter((m) => m.channel === CHANNEL && !m.thread_ts)).toHaveLength(3);
    const all = f.emulator.messages.filter((m) => m.metadata).map((m) => String(m.metadata!.event_payload.key));
    expect(new Set(all).size).toBe(all.length);
    // The faults happened.
    const failed = (status: number) => f.emulator.calls.filter((c) => c.status === status).length;
    expect(failed(429)).toBeGreaterThan(0);
    expect(failed(500)).toBeGreaterThan(0);
    expect(failed(0)).toBeGreaterThan(0); // posts taken whose answer was lost
    expect(f.emulator.callsOf('conversations.replies').filter((c) => c.status === 200).length).toBeGreaterThan(0); // and looked for
  });

  it('a 429 with Retry-After 3 s holds only its own thread', async () => {
    const slow = await f.customerSays('slow thread');
    const fast = await f.customerSays('fast thread');
    await f.settle();
    const slowRoot = await f.root(slow.id);
    f.emulator.fault({ method: 'chat.postMessage', when: (args) => args.thread_ts === slowRoot.ts, times: 1, kind: 'rate_limit', retryAfterSeconds: 3 });
    await f.customerSays('slow follow-up', slow.id);
    const limited = await waitFor(() => f.emulator.calls.find((c) => c.status === 429), { what: 'the 429' });
    await f.customerSays('fast follow-up', fast.id);
    const posted = (text: string) => f.emulator.calls.find((c) => c.method === 'chat.postMessage' && c.status === 200 && String(c.args.text).includes(text));
    const fastPost = await waitFor(() => posted('fast follow-up'), { what: 'the other thread' });
    expect(fastPost.at - limited.at).toBeLessThan(1000);
    await f.settle();
    const slowPost = posted('slow follow-up')!;
    expect(slowPost.at - limited.at).toBeGreaterThanOrEqual(2900);
    // Slack's Retry-After was honoured: nothing was sent to the limited thread meanwhile.
    const early = f.emulator.calls.filter((c) => c.method === 'chat.postMessage' && c.args.thread_ts === slowRoot.ts && c.at > limited.at && c.at < limited.at + 2900);
    expect(early).toHaveLength(0);
    for (const conversation of [slow, fast]) expect(await threadKeys(conversation.id)).toEqual(await expectedKeys(conversation.id));
  });

  it('retries after a 500 and posts once', async () => {
    const conversation = await f.customerSays('hello');
    await f.settle();
    f.emulator.fault({ method: 'chat.postMessage', times: 2, kind: 'server_error' });
    await f.customerSays('after the outage', conversation.id);
    await f.settle();
    expect(f.emulator.messages.filter((m) => m.text.includes('after the outage'))).toHaveLength(1);
    expect(await threadKeys(conversation.id)).toEqual(await expectedKeys(conversation.id));
  });
});
