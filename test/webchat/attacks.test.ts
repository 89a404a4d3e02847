/**
 * The web chat attacks of issue 9, each against the running web chat: a long-lived bearer token
 * that could be replayed, a token holder pushing the customer out with more sockets, tokens that
 * outlive a closed conversation, a verified user's token usable without their identity, and
 * sessions that cost a conversation and a ticket number before anyone wrote a word.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { identityHash } from '../../adapters/webchat/index.ts';
import { DANA, waitFor } from '../support/harness.ts';
import { IDENTITY_SECRET, isError, startWebChat, type VisitorSocket, type WebChatRig } from './support.ts';

let rig: WebChatRig;
afterEach(async () => {
  await rig?.close();
});

/** Longer than the 30 s during which a just-replaced token still works (tabs racing on one token). */
const PAST_GRACE_MS = 31_000;

/** Waits until the socket was refused (an error frame and a close) and returns the close code. */
async function refused(socket: VisitorSocket): Promise<{ code: string; close: number }> {
  const error = await socket.next(isError, 'a refusal');
  const closed = await socket.closedWith();
  return { code: error.code, close: closed.code };
}

describe('web chat sessions cannot be used by someone else', () => {
  it('opening a session stores nothing and takes no ticket number; the first message takes the first', async () => {
    rig = await startWebChat({ config: { identitySecret: IDENTITY_SECRET, sessionsPerMinute: 1000 } });
    await rig.bridge.idle();
    const before = await rig.snapshot();
    for (let i = 0; i < 25; i++) await rig.session({ name: `Visitor ${i}` });
    await rig.session({ userId: 'user-1', userHash: identityHash('user-1', IDENTITY_SECRET) });
    // A hello on a session that has not written anything stores nothing either.
    const { token } = await rig.session();
    const socket = await rig.connect(token);
    await socket.ready();
    await rig.bridge.idle();
    expect(await rig.snapshot()).toBe(before);

    socket.say('Hello, anyone there?', 'first');
    await socket.message((f) => f.clientId === 'first', 'confirmation');
    const conversation = (await rig.bridge.getConversation(socket.conversationId()!))!;
    expect(conversation.ticket).toBe('HB-1001');
    expect(conversation.messages[0]?.text).toBe('Hello, anyone there?');
  });

  it('a token is good for a day, not a month', async () => {
    rig = await startWebChat({ config: { tokenTtlMs: undefined } });
    const { socket, token } = await rig.started('My order number is 1042');
    socket.close();
    rig.advance(25 * 3600_000);
    const late = await rig.connect(token);
    expect(await refused(late)).toEqual({ code: 'invalid_token', close: 4001 });
    expect(late.messages()).toEqual([]);
  });

  it('a token that has been used cannot be replayed to read the transcript', async () => {
    rig = await startWebChat();
    const session = await rig.session();
    const first = await rig.connect(session.token);
    await first.ready();
    first.say('My card ends in 4242', 'card');
    await first.message((f) => f.clientId === 'card', 'confirmation');
    const used = first.token() ?? session.token;
    first.close();
    // The customer comes back: the hello spends `used` and gets the next token.
    const back = await rig.connect(used);
    await back.ready();

    rig.advance(PAST_GRACE_MS);
    for (const stolen of [used, session.token]) {
      const thief = await rig.connect(stolen);
      expect(await refused(thief)).toEqual({ code: 'invalid_token', close: 4001 });
      expect(thief.messages()).toEqual([]);
    }
    // The customer is still connected and resumes with what they hold.
    expect(back.closed).toBeUndefined();
    back.close();
    const again = await rig.connect(back.token()!);
    await again.ready();
    expect(again.messages().map((m) => m.text)).toContain('My card ends in 4242');
  });

  it('a stolen token cannot disconnect the customer, however many sockets it opens', async () => {
    rig = await startWebChat();
    const { socket: customer, conversationId, token } = await rig.started('I want to talk to a human');
    await customer.message((f) => f.notice === 'escalated', 'escalation notice');
    // The thief copied the customer's current token and opens twelve sockets with it.
    const thieves: VisitorSocket[] = [];
    for (let i = 0; i < 12; i++) thieves.push(await rig.connect(token));
    await waitFor(() => thieves.every((t) => t.frames.some((f) => f.type === 'ready') || t.closed), { what: 'every thief socket answered' });
    expect(customer.closed).toBeUndefined();
    // One hello per token, plus the few a just-replaced token gets while tabs race: never twelve.
    expect(thieves.filter((t) => !t.closed).length).toBeLessThanOrEqual(5);

    await rig.bridge.claim({ conversationId, operator: DANA });
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Dana here, still with you.' });
    await customer.message((f) => f.text === 'Dana here, still with you.', 'the operator reply on the customer socket');
    expect(customer.closed).toBeUndefined();
  });

  it('a full conversation refuses the newcomer instead of dropping a socket that is already open', async () => {
    rig = await startWebChat();
    const { socket: oldest } = await rig.started();
    let latest = oldest;
    const tabs: VisitorSocket[] = [oldest];
    for (let i = 1; i < 11; i++) {
      latest = await rig.connect(latest.token()!);
      tabs.push(latest);
      await waitFor(() => latest.frames.some((f) => f.type === 'ready' || f.type === 'error'), { what: `tab ${i} answered` });
    }
    expect(await refused(tabs[10]!)).toEqual({ code: 'too_many_windows', close: 4009 });
    expect(tabs.slice(0, 10).every((t) => t.closed === undefined)).toBe(true);
  });

  it('closing the conversation revokes its sessions: the socket ends after the notice, and no token resumes it', async () => {
    rig = await startWebChat();
    const { socket, conversationId, token } = await rig.started('Thanks, that is all');
    await rig.bridge.idle();
    await rig.bridge.close({ conversationId });
    const notice = await socket.message((f) => f.notice === 'closed', 'the closed notice');
    expect((await socket.closedWith()).code).toBe(4010);
    expect(notice.text).toContain('start a new one');

    const again = await rig.connect(socket.token() ?? token);
    expect(await refused(again)).toEqual({ code: 'conversation_closed', close: 4010 });
    expect(again.messages()).toEqual([]);
    // Writing again is a new conversation with a new ticket; the closed one stays closed.
    const next = await rig.started('One more question');
    expect(next.conversationId).not.toBe(conversationId);
    expect((await rig.bridge.getConversation(conversationId))!.state).toBe('closed');
  });

  it("a verified user's token works only with that user's proof of identity", async () => {
    rig = await startWebChat({ config: { identitySecret: IDENTITY_SECRET } });
    const ada = { userId: 'user-42', userHash: identityHash('user-42', IDENTITY_SECRET) };
    const { socket, token } = await rig.started('Change my delivery address', ada);
    socket.close();
    const bare = await rig.connect(token);
    expect(await refused(bare)).toEqual({ code: 'invalid_token', close: 4001 });
    const otherUser = await rig.connect(token, undefined, { userId: 'user-43', userHash: identityHash('user-43', IDENTITY_SECRET) });
    expect(await refused(otherUser)).toEqual({ code: 'invalid_token', close: 4001 });
    const forged = await rig.connect(token, undefined, { userId: 'user-42', userHash: identityHash('user-42', 'not-the-identity-secret') });
    expect(await refused(forged)).toEqual({ code: 'invalid_token', close: 4001 });
    expect([bare, otherUser, forged].flatMap((t) => t.messages())).toEqual([]);

    const owner = await rig.connect(token, undefined, ada);
    await owner.ready();
    expect(owner.messages().map((m) => m.text)).toContain('Change my delivery address');
  });

  it('two tabs writing their first message at the same moment make one conversation', async () => {
    rig = await startWebChat();
    const { token } = await rig.session();
    const tabA = await rig.connect(token);
    await tabA.ready();
    const tabB = await rig.connect(token);
    await tabB.ready();
    tabA.say('from tab A', 'a');
    tabB.say('from tab B', 'b');
    await tabA.message((f) => f.clientId === 'a', 'confirmation in tab A');
    await tabB.message((f) => f.clientId === 'b', 'confirmation in tab B');
    expect(tabA.conversationId()).toBeDefined();
    await waitFor(() => tabB.messages().some((m) => m.text === 'from tab A'), { what: "tab A's message in tab B" });
    await rig.bridge.idle();
    const conversation = (await rig.bridge.getConversation(tabA.conversationId()!))!;
    expect(conversation.messages.filter((m) => m.author.role === 'customer').map((m) => m.text).sort()).toEqual(['from tab A', 'from tab B']);
    expect(await rig.bridge.findByTicket('HB-1002')).toBeUndefined();
  });
});
