import { afterEach, describe, expect, it } from 'vitest';
import { signSessionToken } from '../../adapters/webchat/token.ts';
import type { ChangeNotice } from '../../src/store/store.ts';
import { DANA, ScriptedAgent, waitFor, workLog } from '../support/harness.ts';
import { isError, isMessage, SESSION_SECRET, startWebChat, VisitorSocket, type WebChatRig } from './support.ts';

let rig: WebChatRig;
afterEach(async () => {
  await rig?.close();
});

/** Escalates (the customer asks for a person) and lets Dana claim it; returns the conversation id. */
async function takeOver(socket: VisitorSocket): Promise<string> {
  socket.say('I want to talk to a human');
  await socket.message((f) => f.notice === 'escalated', 'escalation notice');
  const conversationId = socket.conversationId()!;
  await rig.bridge.claim({ conversationId, operator: DANA });
  await socket.message((f) => f.notice === 'joined', 'joined notice');
  return conversationId;
}

/** A web chat with one visitor connected, whose conversation Dana has taken over. */
async function takenOver(): Promise<{ socket: VisitorSocket; conversationId: string }> {
  rig = await startWebChat();
  const { token } = await rig.session();
  const socket = await rig.connect(token);
  await socket.ready();
  return { socket, conversationId: await takeOver(socket) };
}

describe('web chat socket', () => {
  it('a visitor says hello, writes, and gets the assistant answer in the same conversation', async () => {
    rig = await startWebChat();
    const { token } = await rig.session();
    const socket = await rig.connect(token);
    // No conversation until the first message creates it; then the session has its first generation.
    expect(await socket.ready()).toEqual({ type: 'ready', token: expect.stringMatching(/^v2\./) });
    const clientId = socket.say('Where is my order?');
    const ack = await socket.message((f) => f.clientId === clientId, 'confirmation');
    expect(ack).toMatchObject({ role: 'customer', text: 'Where is my order?' });
    const conversationId = socket.conversationId()!;
    expect(socket.token()).not.toBe(token);
    const answer = await socket.message((f) => f.role === 'agent', 'assistant answer');
    expect(answer).toMatchObject({ name: 'Assistant', text: expect.stringContaining('Account > Orders') });
    const conversation = await rig.bridge.getConversation(conversationId);
    expect(conversation?.messages.map((m) => m.author.role)).toEqual(['customer', 'agent']);
    expect(rig.workspace.mirrored.map((m) => m.message.text)).toContain('Where is my order?');
  });

  it('the visitor sees the assistant typing while it works on an answer', async () => {
    let answer!: () => void;
    const thinking = new Promise<void>((resolve) => (answer = resolve));
    rig = await startWebChat({
      agent: new ScriptedAgent(async () => {
        await thinking;
        return { kind: 'reply', text: 'Here you go.', actionsTaken: [] };
      }),
    });
    const { token } = await rig.session();
    const socket = await rig.connect(token);
    await socket.ready();
    socket.say('Can you help?');
    expect(await socket.next((f) => f.type === 'typing', 'typing indicator')).toEqual({ type: 'typing', name: 'Assistant' });
    answer();
    await socket.message((f) => f.text === 'Here you go.', 'the answer');
  });

  it('the customer sees who speaks and each step of the handoff, with the ticket reference', async () => {
    const { socket, conversationId } = await takenOver();
    const ticket = (await rig.bridge.getConversation(conversationId))!.ticket;
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Hi, Dana here. Let me check that.' });
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: '// customer sounds upset, be gentle' });
    await rig.bridge.returnToAgent({ conversationId, operator: DANA, note: 'Refund approved' });
    await socket.message((f) => f.notice === 'returned', 'returned notice');
    await rig.bridge.idle();

    const seen = socket.messages().map((m) => ({ role: m.role, name: m.name, notice: m.notice, text: m.text }));
    expect(seen.find((m) => m.notice === 'escalated')?.text).toContain(ticket);
    expect(seen.find((m) => m.notice === 'joined')?.text).toContain('Dana');
    expect(seen).toContainEqual({ role: 'operator', name: 'Dana', notice: undefined, text: 'Hi, Dana here. Let me check that.' });
    // Internal notes stay in the operators' thread.
    expect(seen.some((m) => m.text.includes('be gentle'))).toBe(false);
    expect(seen.map((m) => m.notice ?? m.role)).toEqual(['customer', 'escalated', 'joined', 'operator', 'returned']);
  });

  it('a reconnect resumes the same conversation and replays only what was missed', async () => {
    const { socket: first, conversationId } = await takenOver();
    const lastSeen = first.messages().at(-1)!;
    first.close();
    await first.closedWith();
    await waitFor(() => rig.webchat.connectionCount() === 0, { what: 'server to notice the close' });

    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Your parcel left the warehouse today.' });
    await rig.bridge.idle();

    const second = await rig.connect(first.token()!, lastSeen.id);
    await second.ready();
    expect(second.messages().map((m) => m.text)).toEqual(['Your parcel left the warehouse today.']);
    // Live messages keep coming on the resumed socket.
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Anything else?' });
    await second.message((f) => f.text === 'Anything else?', 'live operator reply');
  });

  it('a reply committed while a reconnecting socket reads its replay is shown right after the replay', async () => {
    const { socket: first, conversationId } = await takenOver();
    first.close();
    await waitFor(() => rig.webchat.connectionCount() === 0, { what: 'server to notice the close' });

    // The hello reads the conversation twice: to check it, then (once the socket is registered)
    // for the replay. The replay's read is answered, then held back while Dana replies.
    const read = rig.bridge.getConversation.bind(rig.bridge);
    let reads = 0;
    let replayRead!: () => void;
    const replayReadDone = new Promise<void>((resolve) => (replayRead = resolve));
    let letReplayGo!: () => void;
    const replayGoes = new Promise<void>((resolve) => (letReplayGo = resolve));
    rig.bridge.getConversation = async (id: string) => {
      const conversation = await read(id);
      if (id === conversationId && ++reads === 2) {
        replayRead();
        await replayGoes;
      }
      return conversation;
    };
    const second = await rig.connect(first.token()!);
    await replayReadDone;
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Found it: it ships today.' });
    // The commit's catch-up runs a turn later (then reads the cache): let it find the socket mid-replay.
    await new Promise((resolve) => setTimeout(resolve, 50));
    letReplayGo();
    await second.ready();
    await second.message((f) => f.text === 'Found it: it ships today.', 'the reply committed during the replay');
    expect(second.messages().filter((m) => m.text === 'Found it: it ships today.')).toHaveLength(1);
  });

  it('web chat messages make no delivery work: every socket shows the transcript live from the change feed', async () => {
    rig = await startWebChat();
    const notices: ChangeNotice[] = [];
    rig.bridge.store.onChange((n) => notices.push(n));
    const { socket, conversationId } = await rig.started('Where is my order?');
    await socket.message((f) => f.role === 'agent', 'assistant answer');
    // The notice still names the customer (earlier versions catch their sockets up on it), as nobody's to look for.
    const answered = notices.find((n) => n.conversationId === conversationId && n.version === 2)!;
    expect(answered.destinations).toContain('customer');
    expect(answered.leased).toContain('customer');
    const other = await rig.connect(socket.token()!);
    await other.ready();
    await rig.bridge.claim({ conversationId, operator: DANA });
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Dana here: it ships today.' });
    for (const s of [socket, other]) await s.message((f) => f.text === 'Dana here: it ships today.', 'the operator reply on each socket');
    await rig.bridge.idle();
    const items = workLog(rig.dir, conversationId);
    expect(items.length).toBeGreaterThan(0); // the mirrors and the agent's turn
    expect(items.filter((item) => item.to.includes('customer'))).toEqual([]);
  });

  it("a reload rebuilds the whole window, including the visitor's own messages", async () => {
    rig = await startWebChat();
    const { token } = await rig.session();
    const first = await rig.connect(token);
    await first.ready();
    first.say('Where is my order?');
    await first.message((f) => f.role === 'agent', 'assistant answer');
    first.close();

    const reloaded = await rig.connect(first.token()!);
    await reloaded.ready();
    expect(reloaded.messages().map((m) => m.role)).toEqual(['customer', 'agent']);
    expect(reloaded.messages()[0]?.text).toBe('Where is my order?');
  });

  it('a message resent after a reconnect is stored once and confirmed again', async () => {
    rig = await startWebChat();
    const { token } = await rig.session();
    const first = await rig.connect(token);
    await first.ready();
    first.say('What are your opening hours?', 'c-resend-1');
    const ack = await first.message((f) => f.clientId === 'c-resend-1', 'first confirmation');
    const conversationId = first.conversationId()!;
    first.close();

    const second = await rig.connect(first.token()!, ack.id);
    await second.ready();
    second.say('What are your opening hours?', 'c-resend-1');
    const again = await second.message((f) => f.clientId === 'c-resend-1', 'second confirmation');
    expect(again.id).toBe(ack.id);
    await rig.bridge.idle();
    const customerMessages = (await rig.bridge.getConversation(conversationId))!.messages.filter((m) => m.author.role === 'customer');
    expect(customerMessages).toHaveLength(1);
  });

  it("an open socket keeps the widget's token fresh, so a long visit can still resume", async () => {
    rig = await startWebChat({ config: { tokenTtlMs: 2000 } });
    const { socket, token } = await rig.started();
    rig.advance(1500);
    const fresh = await socket.next((f) => f.type === 'token' && f.token !== token, 'a refreshed token');
    socket.close();
    rig.advance(1000);
    const old = await rig.connect(token);
    expect(await old.next(isError, 'refusal')).toMatchObject({ code: 'invalid_token', message: expect.stringContaining('expired') });
    const resumed = await rig.connect((fresh as { token: string }).token);
    await resumed.ready();
    expect(resumed.messages().map((m) => m.text)).toContain('Where is my order?');
  });

  it('every open tab gets operator replies, notices and the messages typed in the other tab', async () => {
    rig = await startWebChat();
    const { token } = await rig.session();
    const tabA = await rig.connect(token);
    await tabA.ready();
    // Tab B read the same token from storage before tab A's answer replaced it: the grace covers it.
    const tabB = await rig.connect(token);
    await tabB.ready();
    tabA.say('I want to talk to a human');
    await tabB.message((f) => f.role === 'customer' && f.text === 'I want to talk to a human', 'message typed in tab A');
    await tabB.message((f) => f.notice === 'escalated', 'escalation notice in tab B');
    const conversationId = tabA.conversationId()!;
    await rig.bridge.claim({ conversationId, operator: DANA });
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Hello from Dana' });
    for (const tab of [tabA, tabB]) await tab.message((f) => f.text === 'Hello from Dana', 'operator reply');
  });

  it('HTML and script in text travel as plain text, both ways', async () => {
    const { socket, conversationId } = await takenOver();
    const html = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
    const clientId = socket.say(html);
    expect(await socket.message((f) => f.clientId === clientId, 'confirmation')).toMatchObject({ text: html });
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: `<b>bold?</b> ${html}` });
    expect(await socket.message((f) => f.role === 'operator', 'operator reply')).toMatchObject({ text: `<b>bold?</b> ${html}` });
  });
});

describe('bad input gets a clear error frame and breaks nothing', () => {
  it('an invalid token gets an error frame and the socket is closed', async () => {
    rig = await startWebChat();
    const socket = await VisitorSocket.open(rig.wsUrl);
    socket.send({ type: 'hello', token: 'not-a-token' });
    expect(await socket.next(isError, 'error frame')).toMatchObject({ code: 'invalid_token' });
    expect((await socket.closedWith()).code).toBe(4001);
  });

  it("a tampered token (pointing at someone else's session) is refused", async () => {
    rig = await startWebChat();
    const victim = await rig.started();
    const attacker = await rig.session();
    const [version, payload, mac] = attacker.token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const victimClaims = JSON.parse(Buffer.from(victim.token.split('.')[1]!, 'base64url').toString());
    const tampered = `${version}.${Buffer.from(JSON.stringify({ ...claims, s: victimClaims.s, c: victim.conversationId, g: victimClaims.g })).toString('base64url')}.${mac}`;
    const socket = await rig.connect(tampered);
    expect(await socket.next(isError, 'error frame')).toMatchObject({ code: 'invalid_token' });
    expect((await socket.closedWith()).code).toBe(4001);
    expect(socket.messages()).toEqual([]);
  });

  it("a validly signed token for a conversation that is not the visitor's is refused", async () => {
    rig = await startWebChat();
    const victim = await rig.started();
    const token = signSessionToken({ sessionId: 'intruder-session', generation: 0, conversationId: victim.conversationId, visitorId: 'anon:intruder', verified: false, issuedAt: Date.now() }, SESSION_SECRET);
    const socket = await rig.connect(token);
    expect(await socket.next(isError, 'error frame')).toMatchObject({ code: 'conversation_not_found' });
    expect((await socket.closedWith()).code).toBe(4004);
  });

  it('an expired token asks the widget to start a new session', async () => {
    rig = await startWebChat({ config: { tokenTtlMs: 60_000 } });
    const { token } = await rig.session();
    rig.advance(120_000);
    const socket = await rig.connect(token);
    expect(await socket.next(isError, 'error frame')).toMatchObject({ code: 'invalid_token', message: expect.stringContaining('expired') });
  });

  it('malformed frames get an error each and the socket keeps working', async () => {
    rig = await startWebChat();
    const { token } = await rig.session();
    const socket = await VisitorSocket.open(rig.wsUrl);
    socket.send({ type: 'message', text: 'too early', clientId: 'c0' });
    expect(await socket.next(isError, 'hello_required')).toMatchObject({ code: 'hello_required', clientId: 'c0' });
    socket.send({ type: 'hello', token });
    await socket.ready();
    socket.send('this is not json');
    socket.send({ type: 'dance' });
    socket.send({ type: 'message', text: 42, clientId: 'c1' });
    socket.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    socket.send({ type: 'hello', token });
    await waitFor(() => socket.frames.filter(isError).length >= 6, { what: 'an error for each bad frame' });
    expect(socket.frames.filter(isError).map((f) => f.code)).toEqual([
      'hello_required',
      'malformed_frame',
      'malformed_frame',
      'malformed_frame',
      'malformed_frame',
      'already_started',
    ]);
    socket.say('What are your opening hours?');
    await socket.message((f) => f.role === 'agent', 'assistant answer after the junk');
  });

  it('an oversized message is refused with its length and the limit; the next one goes through', async () => {
    rig = await startWebChat({ config: { maxMessageChars: 200 } });
    const { token } = await rig.session();
    const socket = await rig.connect(token);
    await socket.ready();
    socket.say('x'.repeat(201), 'c-big');
    expect(await socket.next(isError, 'too long')).toEqual({
      type: 'error',
      code: 'message_too_long',
      message: 'Messages can be at most 200 characters (this one has 201).',
      clientId: 'c-big',
    });
    socket.say('Where is my order?');
    await socket.message((f) => f.role === 'agent', 'assistant answer');
    expect((await rig.bridge.getConversation(socket.conversationId()!))!.messages.some((m) => m.text.startsWith('xxx'))).toBe(false);
    expect(socket.closed).toBeUndefined();
  });

  it('a frame far over the payload limit closes only that socket', async () => {
    rig = await startWebChat({ config: { maxMessageChars: 100 } });
    const { token } = await rig.session();
    const socket = await rig.connect(token);
    await socket.ready();
    socket.say('y'.repeat(50_000));
    expect((await socket.closedWith()).code).toBe(1009);
    const again = await rig.connect(socket.token()!);
    await again.ready();
  });

  it('a flood hits the per-conversation rate limit, then the visitor can write again', async () => {
    rig = await startWebChat({ config: { ratePerMinute: 6, burst: 3 } });
    const { token } = await rig.session();
    const socket = await rig.connect(token);
    await socket.ready();
    for (let i = 0; i < 6; i++) socket.say(`message ${i}`, `flood-${i}`);
    await waitFor(() => socket.frames.filter((f) => (isMessage(f) && f.clientId) || isError(f)).length >= 6, { what: 'an answer per message' });
    const limited = socket.frames.filter(isError);
    expect(limited.map((f) => f.clientId)).toEqual(['flood-3', 'flood-4', 'flood-5']);
    expect(limited[0]).toMatchObject({ code: 'rate_limited', message: expect.stringMatching(/Try again in \d+ s/) });
    // A second tab shares the session's allowance.
    const tab = await rig.connect(socket.token()!);
    await tab.ready();
    tab.say('from the other tab', 'tab-1');
    expect(await tab.next(isError, 'limited in the other tab')).toMatchObject({ code: 'rate_limited', clientId: 'tab-1' });

    rig.advance(10_000);
    socket.say('I can write again', 'after');
    await socket.message((f) => f.clientId === 'after', 'confirmation after the wait');
    await rig.bridge.idle();
    const stored = (await rig.bridge.getConversation(socket.conversationId()!))!.messages.filter((m) => m.author.role === 'customer').map((m) => m.text);
    expect(stored).toEqual(['message 0', 'message 1', 'message 2', 'I can write again']);
  });

  it('stopping the bridge tells open widgets to come back later, and refuses new sessions meanwhile', async () => {
    rig = await startWebChat();
    const { token } = await rig.session();
    const socket = await rig.connect(token);
    await socket.ready();
    await rig.webchat.stop();
    expect((await socket.closedWith()).code).toBe(1001);
    const response = await fetch(`${rig.baseUrl}/webchat/session`, { method: 'POST', body: '{}' });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
  });

  it('a socket that never says hello is closed', async () => {
    rig = await startWebChat({ config: { helloTimeoutMs: 50 } });
    const socket = await VisitorSocket.open(rig.wsUrl);
    expect((await socket.closedWith()).code).toBe(4008);
  });
});
