/**
 * Slack's delivery rules: signed requests only, events handled once per event_id, the app's own
 * echoes ignored, and outbound posts kept in order through 429s, 5xx and lost answers, without
 * one rate-limited thread holding up another, and without ever posting a message twice.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/harness.ts';
import { CHANNEL, DANA, startSlackFixture, type SlackFixture } from './fixture.ts';

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

  it('relays a redelivered event_id once', async () => {
    const conversation = await heldByDana();
    const root = await f.root(conversation.id);
    const event = f.emulator.postAsUser({ channel: root.channel, user: DANA.userId, text: 'Your refund is on its way.', thread_ts: root.ts });
    const first = await f.events.event(event);
    const again = await f.events.event(event, { eventId: first.eventId, retryNum: 1 });
    // Even a redelivery that looked different (here: another ts) is the same event by its id.
    const third = await f.events.event({ ...event, ts: `${event.ts}9`, event_ts: `${event.ts}9` }, { eventId: first.eventId, retryNum: 2 });
    expect([first.status, again.status, third.status]).toEqual([200, 200, 200]);
    await f.settle();
    expect(f.customer.texts(conversation.id).filter((t) => t === 'Your refund is on its way.')).toHaveLength(1);
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

  /** Thread replies of a conversation, as posted (original text). */
  async function posted(conversationId: string): Promise<string[]> {
    const root = await f.root(conversationId);
    return f.emulator.replies(root.channel, root.ts).map((m) => m.versions[0]!.text);
  }

  it('loses and duplicates nothing through a 429 storm, and keeps each thread in order', async () => {
    const a = await f.customerSays('first conversation opens');
    const b = await f.customerSays('second conversation opens');
    await f.settle();
    f.emulator.fault({ method: 'chat.postMessage', times: 6, kind: 'rate_limit', retryAfterSeconds: 1 });
    f.emulator.fault({ method: 'chat.update', times: 2, kind: 'rate_limit', retryAfterSeconds: 1 });
    for (let i = 1; i <= 4; i++) {
      await f.customerSays(`a${i}`, a.id);
      await f.customerSays(`b${i}`, b.id);
    }
    await f.settle();
    expect(f.emulator.callsOf('chat.postMessage').filter((c) => c.status === 429).length).toBe(6);
    for (const [conversation, prefix] of [[a, 'a'], [b, 'b']] as const) {
      const stored = (await f.bridge.getConversation(conversation.id))!;
      const mirrored = await posted(conversation.id);
      // Every transcript message appears exactly once, in transcript order.
      expect(mirrored).toHaveLength(stored.messages.length);
      const customerLines = mirrored.filter((t) => t.includes('(customer)')).map((t) => t.split('\n')[1]);
      expect(customerLines).toEqual([`${prefix === 'a' ? 'first' : 'second'} conversation opens`, `${prefix}1`, `${prefix}2`, `${prefix}3`, `${prefix}4`]);
    }
    const keys = f.emulator.messages.filter((m) => m.metadata).map((m) => m.metadata!.event_payload.key);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('does not hold up other threads while one waits out a Retry-After', async () => {
    const slow = await f.customerSays('slow thread');
    const fast = await f.customerSays('fast thread');
    await f.settle();
    const slowRoot = await f.root(slow.id);
    f.emulator.fault({ method: 'chat.postMessage', when: (args) => args.thread_ts === slowRoot.ts, times: 1, kind: 'rate_limit', retryAfterSeconds: 2 });
    const slowDone = f.customerSays('slow follow-up', slow.id);
    await waitFor(() => f.emulator.callsOf('chat.postMessage').some((c) => c.status === 429), { what: 'the 429' });
    await f.customerSays('fast follow-up', fast.id);
    await slowDone;
    await f.settle();
    const order = f.emulator.messages.map((m) => m.text);
    const fastAt = order.findIndex((t) => t.includes('fast follow-up'));
    const slowAt = order.findIndex((t) => t.includes('slow follow-up'));
    expect(fastAt).toBeGreaterThan(-1);
    expect(slowAt).toBeGreaterThan(fastAt);
  });

  it('does not post twice when Slack took a message but the answer was lost', async () => {
    const conversation = await f.customerSays('hello there');
    await f.settle();
    f.emulator.fault({ method: 'chat.postMessage', times: 1, kind: 'lost_answer' });
    await f.customerSays('this answer gets lost', conversation.id);
    await f.settle();
    const lost = f.emulator.messages.filter((m) => m.text.includes('this answer gets lost'));
    expect(lost).toHaveLength(1);
    expect(f.emulator.callsOf('conversations.replies').length).toBeGreaterThan(0);
    // The thread carries on normally afterwards.
    await f.customerSays('and the next one', conversation.id);
    await f.settle();
    expect(f.emulator.messages.filter((m) => m.text.includes('and the next one'))).toHaveLength(1);
  });

  it('retries after a 500 and posts once', async () => {
    const conversation = await f.customerSays('hello');
    await f.settle();
    f.emulator.fault({ method: 'chat.postMessage', times: 2, kind: 'server_error' });
    await f.customerSays('after the outage', conversation.id);
    await f.settle();
    expect(f.emulator.messages.filter((m) => m.text.includes('after the outage'))).toHaveLength(1);
  });

  it('opens a thread once even if the root post answer is lost', async () => {
    f.emulator.fault({ method: 'chat.postMessage', when: (args) => !args.thread_ts, times: 1, kind: 'lost_answer' });
    const conversation = await f.customerSays('brand new conversation');
    await f.settle();
    const roots = f.emulator.messages.filter((m) => !m.thread_ts && m.channel === CHANNEL);
    expect(roots).toHaveLength(1);
    expect((await f.threadTexts(conversation.id))[0]).toContain('brand new conversation');
    expect(f.emulator.callsOf('conversations.history').length).toBeGreaterThan(0);
  });

});
