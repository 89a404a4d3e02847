import { afterEach, describe, expect, it } from 'vitest';
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import { cardOf, buttonTitles, visibleText } from '../emulators/bot-connector.ts';
import { TEAMS_TEST_CHANNEL, TeamsDriver } from '../contract/teams-driver.ts';
import { ScriptedAgent } from '../support/harness.ts';

const customer = { id: 'cust-7', name: 'Grace Hopper', email: 'grace@example.com' };
const ALICE = { userId: '29:alice-mri', name: 'Alice Ops' };
const BOB = { userId: '29:bob-mri', name: 'Bob Ops' };

/** An agent that answers politely, escalates with options on "refund", and shows what it was told on return. */
function scriptedAgent(): ScriptedAgent {
  return new ScriptedAgent(({ conversation }): AgentTurnResult => {
    const messages = conversation.messages;
    const lastCustomer = messages.findLastIndex((m) => m.author.role === 'customer');
    const lastHandback = messages.findLastIndex((m) => m.handback);
    const last = messages[lastCustomer]?.text ?? '';
    if (lastHandback > lastCustomer) {
      const handback = messages[lastHandback]!.handback!;
      return { kind: 'reply', text: `Picking up from my colleague: ${handback.note ?? handback.decision?.label ?? 'done'}`, actionsTaken: [] };
    }
    if (/refund/i.test(last)) {
      return {
        kind: 'escalate',
        trigger: 'agent_tool',
        reason: 'Refund over the limit',
        actionsTaken: [{ tool: 'lookup_order', input: { id: 'A-1' }, output: { total: 420 }, ok: true }],
        request: {
          summary: 'Grace wants a refund of 420 USD for order A-1, over the 100 USD limit.',
          pendingQuestion: 'Approve the refund or offer credit?',
          options: [
            { id: 'approve_refund', label: 'Approve refund', risk: 'high', tradeoffs: 'Cannot be undone' },
            { id: 'offer_credit', label: 'Offer credit', risk: 'low' },
          ],
        },
      };
    }
    return { kind: 'reply', text: `You said: ${last}`, actionsTaken: [] };
  });
}

describe('Teams as an operator workspace', () => {
  let driver: TeamsDriver;
  afterEach(() => driver?.stop());

  async function boot(agent = scriptedAgent()) {
    driver = new TeamsDriver();
    return driver.start(agent);
  }

  async function escalated() {
    const { bridge, customer: channel } = await boot();
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'I need a refund for order A-1 please' });
    await driver.settle();
    return { bridge, channel, id: conversation.id };
  }

  it('opens one thread per conversation in the channel, with a root card naming customer, origin and ticket', async () => {
    const { bridge } = await boot();
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'Hello there' });
    await driver.settle();

    const roots = driver.emulator.roots(TEAMS_TEST_CHANNEL);
    expect(roots).toHaveLength(1);
    const root = visibleText(roots[0]!.activity);
    expect(root).toContain(`${conversation.ticket} · Grace Hopper via API`);
    expect(root).toContain('grace@example.com');
    expect(root).toContain('With the AI agent');
    // Created proactively through the Bot Connector, with the channel in channelData.
    const create = driver.emulator.requests.find((r) => r.method === 'POST' && r.path === '/v3/conversations');
    expect(create?.body).toMatchObject({ isGroup: true, channelData: { channel: { id: TEAMS_TEST_CHANNEL } } });

    const texts = await driver.threadTexts(conversation.id);
    expect(texts[0]).toContain('Grace Hopper (customer)');
    expect(texts[0]).toContain('Hello there');
    expect(texts.at(-1)).toContain('You said: Hello there');
    // Replies go to `<channel>;messageid=<root>`.
    const replies = driver.emulator.requests.filter((r) => r.method === 'POST' && r.path.includes(';messageid='));
    expect(replies.every((r) => r.path.includes(`${TEAMS_TEST_CHANNEL};messageid=${roots[0]!.id}`))).toBe(true);
  });

  it('posts the briefing as an Adaptive Card 1.5 with Claim, one button per option, Return and Close', async () => {
    const { id } = await escalated();
    const [card] = (await driver.briefingCards(id)).map((c) => JSON.parse(c));
    expect(card).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    expect(buttonTitles(card)).toEqual(expect.arrayContaining(['Claim', 'Approve refund', 'Offer credit', 'Return to agent', 'Close']));
    const text = visibleText({ attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: card }] });
    expect(text).toContain('Grace wants a refund of 420 USD');
    expect(text).toContain('Approve the refund or offer credit?');
    expect(text).toContain('lookup_order');
    expect(text).toContain('Waiting for a person');
    // Universal Actions with a Submit fallback for older clients.
    const claim = card.actions.find((a: { title: string }) => a.title === 'Claim');
    expect(claim).toMatchObject({ type: 'Action.Execute', verb: 'claim', data: { conversationId: id, action: 'claim' }, fallback: { type: 'Action.Submit' } });
    expect(card.refresh.action).toMatchObject({ type: 'Action.Execute', verb: 'refresh' });
  });

  it('gives the conversation to the first claimer and tells the second, privately, who holds it', async () => {
    const { bridge, id } = await escalated();
    const [briefing] = await driver.briefingMessages(id);
    const [first, second] = await Promise.all([
      driver.emulator.clickButton({ cardActivityId: briefing!.id, from: { id: ALICE.userId, name: ALICE.name }, title: 'Claim' }),
      driver.emulator.clickButton({ cardActivityId: briefing!.id, from: { id: BOB.userId, name: BOB.name }, title: 'Claim' }),
    ]);
    await driver.settle();
    expect([first.status, second.status]).toEqual([200, 200]);
    const conversation = (await bridge.getConversation(id))!;
    expect(conversation.state).toBe('human');
    const winner = conversation.owner!.name === ALICE.name ? ALICE : BOB;
    const loser = winner === ALICE ? BOB : ALICE;
    expect(await driver.privateTexts(loser)).toEqual([expect.stringContaining(`already held by ${winner.name}`)]);
    expect(await driver.privateTexts(winner)).toEqual([]);
    // The winner's own view says so; the base card, for everyone, names the holder.
    const winnerResult = winner === ALICE ? first : second;
    expect(JSON.stringify(winnerResult.body)).toContain('You hold this conversation');
    const base = JSON.parse((await driver.briefingCards(id))[0]!);
    expect(visibleText({ attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: base }] })).toContain(`Held by ${winner.name}`);
    expect(base.refresh.userIds).toEqual([winner.userId]);
    expect(await driver.rootCard(id)).toContain(winner.name);
  });

  it("relays the owner's replies to the customer and keeps everyone else's as internal notes", async () => {
    const { bridge, channel, id } = await escalated();
    await driver.clickClaim(id, ALICE);
    await driver.replyInThread(id, ALICE, 'Hi Grace, I am looking at order A-1 now.');
    await driver.replyInThread(id, BOB, 'FYI she asked last week too');
    await driver.replyInThread(id, ALICE, '// checking the payment provider');
    await driver.settle();

    const seen = channel.texts(id).join('\n');
    expect(seen).toContain('Hi Grace, I am looking at order A-1 now.');
    expect(seen).not.toContain('FYI she asked');
    expect(seen).not.toContain('payment provider');
    const transcript = (await bridge.getConversation(id))!.messages;
    expect(transcript.find((m) => m.text === 'FYI she asked last week too')).toMatchObject({ visibility: 'internal', author: { id: `teams:${BOB.userId}` } });
    expect(transcript.find((m) => m.text === 'checking the payment provider')).toMatchObject({ visibility: 'internal' });
    // Bob is told privately why the customer did not get it.
    expect((await driver.privateTexts(BOB)).join('\n')).toContain('Alice Ops holds');
    // Operator messages typed in Teams are not echoed back into the thread.
    expect((await driver.threadTexts(id)).join('\n')).not.toContain('I am looking at order A-1 now');
  });

  it('hands back with a note through the @mention return command, and the agent resumes with it', async () => {
    const { bridge, channel, id } = await escalated();
    await driver.clickClaim(id, ALICE);
    await driver.returnWithNote(id, ALICE, 'Refund approved by finance, tell her 3-5 days');
    await driver.settle();
    const conversation = (await bridge.getConversation(id))!;
    expect(conversation.state).toBe('agent');
    expect(conversation.history.at(-1)).toMatchObject({ reason: 'return', note: 'Refund approved by finance, tell her 3-5 days' });
    expect(channel.texts(id).at(-1)).toContain('Picking up from my colleague: Refund approved by finance');
    expect(await driver.rootCard(id)).toContain('With the AI agent');
  });

  it('accepts the typed forms of return and close without a mention, but not ordinary prose', async () => {
    const { bridge, channel, id } = await escalated();
    await driver.clickClaim(id, ALICE);
    await driver.replyInThread(id, ALICE, 'Return the parcel to our warehouse, please.');
    await driver.settle();
    expect((await bridge.getConversation(id))!.state).toBe('human');
    expect(channel.texts(id)).toContain('Return the parcel to our warehouse, please.');

    await driver.replyInThread(id, ALICE, 'return: parcel label sent');
    await driver.settle();
    expect((await bridge.getConversation(id))!.history.at(-1)).toMatchObject({ reason: 'return', note: 'parcel label sent' });

    await driver.replyInThread(id, ALICE, 'close');
    await driver.settle();
    expect((await bridge.getConversation(id))!.state).toBe('closed');
  });

  it('tells a non-owner privately that only the holder can return the conversation', async () => {
    const { bridge, id } = await escalated();
    await driver.clickClaim(id, ALICE);
    await driver.returnWithNote(id, BOB, 'I think we are done');
    await driver.settle();
    expect((await bridge.getConversation(id))!.state).toBe('human');
    expect((await driver.privateTexts(BOB)).join('\n')).toContain('Only Alice Ops');
  });

  it("decides an option from the card without taking over; the card shows the decision to everyone", async () => {
    const { bridge, channel, id } = await escalated();
    await driver.clickOption(id, BOB, 'offer_credit');
    await driver.settle();
    const conversation = (await bridge.getConversation(id))!;
    expect(conversation.state).toBe('agent');
    expect(conversation.decisions).toEqual([expect.objectContaining({ optionId: 'offer_credit', by: expect.objectContaining({ name: BOB.name }) })]);
    expect(channel.texts(id).at(-1)).toContain('Picking up from my colleague: Offer credit');
    const card = (await driver.briefingCards(id))[0]!;
    expect(card).toContain('Bob Ops chose \\"Offer credit\\"');
    expect(buttonTitles(JSON.parse(card))).toEqual(['Take over']);
  });

  it('returns with a note typed into the card and refreshes the card in place', async () => {
    const { bridge, id } = await escalated();
    await driver.clickClaim(id, ALICE);
    await driver.settle();
    const [briefing] = await driver.briefingMessages(id);
    const result = await driver.emulator.clickButton({
      cardActivityId: briefing!.id,
      from: { id: ALICE.userId, name: ALICE.name },
      title: 'Return to agent',
      inputs: { note: 'Credit issued, 20 USD' },
    });
    await driver.settle();
    expect(result.body).toMatchObject({ statusCode: 200, type: 'application/vnd.microsoft.card.adaptive' });
    expect((await bridge.getConversation(id))!.history.at(-1)).toMatchObject({ reason: 'return', note: 'Credit issued, 20 USD' });
    // Edited in place: the same activity, a new version, for everyone.
    const updated = driver.emulator.messages.get(briefing!.id)!;
    expect(updated.versions.length).toBeGreaterThan(1);
    expect(visibleText(updated.activity)).toContain('returned the conversation to the agent: Credit issued, 20 USD');
  });

  it('mentions the operator in the thread when Teams will not open a private chat with them', async () => {
    const { id } = await escalated();
    driver.emulator.noPersonalApp.add(BOB.userId);
    await driver.clickClaim(id, ALICE);
    await driver.replyInThread(id, BOB, 'Can I help?');
    await driver.settle();
    const mention = driver.emulator.replies(await driver.threadId(id), { fromBot: true }).find((m) => Array.isArray(m.activity.entities));
    expect(mention?.activity.entities).toEqual([expect.objectContaining({ type: 'mention', mentioned: { id: BOB.userId, name: BOB.name } })]);
    expect(visibleText(mention!.activity)).toContain('Bob Ops ℹ️ Alice Ops holds');
  });

  it('acts once on a retried card click and answers the retry with the current card', async () => {
    const { bridge, id } = await escalated();
    const [briefing] = await driver.briefingMessages(id);
    const first = await driver.emulator.clickButton({ cardActivityId: briefing!.id, from: { id: ALICE.userId, name: ALICE.name }, title: 'Claim', id: 'f:retried-invoke' });
    // Teams resends the very same invoke (same id, same payload) when the answer was slow.
    const again = await driver.emulator.invoke({
      conversationId: await driver.threadId(id),
      cardActivityId: briefing!.id,
      from: { id: ALICE.userId, name: ALICE.name },
      verb: 'claim',
      data: { handoff: 1, conversationId: id, action: 'claim' },
      id: 'f:retried-invoke',
    });
    await driver.settle();
    expect(again.body).toMatchObject({ statusCode: 200, type: 'application/vnd.microsoft.card.adaptive' });
    expect(JSON.stringify(again.body)).not.toContain('already held');
    expect(JSON.stringify(first.body)).toContain('You hold this conversation');
    expect((await bridge.getConversation(id))!.history.filter((h) => h.reason === 'claim')).toHaveLength(1);
  });

  it('refuses a card action aimed at a conversation from another thread', async () => {
    const { bridge, id } = await escalated();
    const other = await bridge.customerMessage({ origin: 'api', customer, text: 'A second refund please' });
    await driver.settle();
    const [briefing] = await driver.briefingMessages(id);
    const result = await driver.emulator.invoke({
      conversationId: await driver.threadId(id),
      cardActivityId: briefing!.id,
      from: { id: BOB.userId, name: BOB.name },
      verb: 'claim',
      data: { handoff: 1, conversationId: other.conversation.id, action: 'claim' },
    });
    expect(result.body).toMatchObject({ statusCode: 403, type: 'application/vnd.microsoft.error' });
    expect((await bridge.getConversation(other.conversation.id))!.state).toBe('waiting');
  });

  it('tells a typed claim on a held conversation, privately, who holds it', async () => {
    const { id } = await escalated();
    await driver.clickClaim(id, ALICE);
    await driver.replyInThread(id, BOB, 'claim');
    await driver.settle();
    expect((await driver.privateTexts(BOB)).join('\n')).toContain('already held by Alice Ops');
  });

  it('supersedes the earlier briefing on a new escalation: its buttons go, and a stale click changes nothing', async () => {
    const { bridge, id } = await escalated();
    const [first] = await driver.briefingMessages(id);
    expect(buttonTitles(cardOf(first!.activity))).toContain('Claim');
    await driver.clickOption(id, ALICE, 'offer_credit');
    await driver.settle();
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'Actually I still want the refund' });
    await driver.settle();

    const briefings = await driver.briefingMessages(id);
    expect(briefings).toHaveLength(2);
    expect(buttonTitles(cardOf(briefings[0]!.activity))).toEqual([]);
    expect(visibleText(briefings[0]!.activity)).toContain('A newer briefing replaced this one');
    expect(buttonTitles(cardOf(briefings[1]!.activity))).toContain('Claim');

    const stale = await driver.emulator.invoke({
      conversationId: await driver.threadId(id),
      cardActivityId: briefings[0]!.id,
      from: { id: BOB.userId, name: BOB.name },
      verb: 'claim',
      data: { handoff: 1, conversationId: id, action: 'claim' },
    });
    await driver.settle();
    expect(JSON.stringify(stale.body)).toContain('A newer briefing replaced this one');
    expect((await bridge.getConversation(id))!.state).toBe('waiting');
  });

  it('handles the Action.Submit fallback of older clients like the invoke', async () => {
    const { bridge, id } = await escalated();
    const [briefing] = await driver.briefingMessages(id);
    const res = await driver.emulator.submitFallback({ cardActivityId: briefing!.id, from: { id: ALICE.userId, name: ALICE.name }, title: 'Claim' });
    await driver.settle();
    expect(res.status).toBe(200);
    expect((await bridge.getConversation(id))!.owner?.name).toBe(ALICE.name);
  });

  it('takes a retried activity (same id, Teams retrying a slow bot) into account once', async () => {
    const { bridge, channel, id } = await escalated();
    await driver.clickClaim(id, ALICE);
    const threadId = await driver.threadId(id);
    const from = { id: ALICE.userId, name: ALICE.name };
    await driver.emulator.channelMessage({ threadId, from, text: 'Only once please', id: '1800000000001' });
    await driver.emulator.channelMessage({ threadId, from, text: 'Only once please', id: '1800000000001' });
    await driver.settle();
    expect(channel.texts(id).filter((t) => t === 'Only once please')).toHaveLength(1);
    expect((await bridge.getConversation(id))!.messages.filter((m) => m.text === 'Only once please')).toHaveLength(1);
  });

  it('acts once on a retried typed command, whether the retry comes after the first or alongside it', async () => {
    const { bridge, id } = await escalated();
    await driver.clickClaim(id, ALICE);
    const threadId = await driver.threadId(id);
    const from = { id: ALICE.userId, name: ALICE.name };
    // The bridge records `teams:<activity id>` with the command's commit: the retry changes nothing.
    await driver.emulator.channelMessage({ threadId, from, text: 'return: refund approved', id: '1800000000011' });
    await driver.emulator.channelMessage({ threadId, from, text: 'return: refund approved', id: '1800000000011' });
    await driver.settle();
    await driver.emulator.channelMessage({ threadId, from, text: 'takeover', id: '1800000000013' });
    await Promise.all([1, 2].map(() => driver.emulator.channelMessage({ threadId, from, text: 'close', id: '1800000000012' })));
    await driver.settle();
    const history = (await bridge.getConversation(id))!.history;
    expect(history.filter((h) => h.reason === 'return')).toHaveLength(1);
    expect(history.filter((h) => h.reason === 'close')).toHaveLength(1);
    // Neither retry was refused as a second command (no private "you do not hold it").
    expect(await driver.privateTexts(ALICE)).not.toContainEqual(expect.stringMatching(/not|already/i));
    expect(await bridge.store.kv('teams').get(`handled:${threadId}:1800000000011`)).toBeUndefined();
  });

  it('keeps two messages that share an id in different threads (Teams ids are unique per conversation only)', async () => {
    const { bridge, id } = await escalated();
    const other = (await bridge.customerMessage({ origin: 'api', customer, text: 'Another refund please' })).conversation.id;
    await driver.settle();
    const from = { id: ALICE.userId, name: ALICE.name };
    for (const conversationId of [id, other]) {
      await driver.emulator.channelMessage({ threadId: await driver.threadId(conversationId), from, text: '// same id, other thread', id: '1800000000021' });
      await driver.emulator.channelMessage({ threadId: await driver.threadId(conversationId), from, text: 'claim', id: '1800000000022' });
    }
    await driver.settle();
    for (const conversationId of [id, other]) {
      const conversation = (await bridge.getConversation(conversationId))!;
      expect(conversation.messages.filter((m) => m.text === 'same id, other thread')).toHaveLength(1);
      expect(conversation.owner?.id).toBe(`teams:${ALICE.userId}`);
    }
  });

  it("ignores the bot's own messages and posts outside the bridge's threads", async () => {
    const { bridge, id } = await escalated();
    const threadId = await driver.threadId(id);
    const before = (await bridge.getConversation(id))!.messages.length;
    await driver.emulator.channelMessage({ threadId, from: { id: driver.emulator.bot.id, name: 'Handoff Bridge' }, text: 'echo' });
    await driver.emulator.channelMessage({ threadId: `${TEAMS_TEST_CHANNEL};messageid=1234`, from: { id: ALICE.userId, name: ALICE.name }, text: 'unrelated chatter' });
    await driver.settle();
    expect((await bridge.getConversation(id))!.messages.length).toBe(before);
  });

  it('relays files attached in Teams to the customer as links', async () => {
    const { bridge, id } = await escalated();
    await driver.clickClaim(id, ALICE);
    await driver.emulator.channelMessage({
      threadId: await driver.threadId(id),
      from: { id: ALICE.userId, name: ALICE.name },
      text: 'Here is your label',
      attachments: [
        { contentType: 'reference', contentUrl: 'https://contoso.sharepoint.com/sites/ops/Shared%20Documents/label.pdf', name: 'label.pdf' },
        { contentType: 'text/html', content: '<p>Here is your label</p>' },
      ],
    });
    await driver.settle();
    const message = (await bridge.getConversation(id))!.messages.find((m) => m.text === 'Here is your label');
    expect(message).toMatchObject({ visibility: 'public', attachments: [{ name: 'label.pdf', url: 'https://contoso.sharepoint.com/sites/ops/Shared%20Documents/label.pdf' }] });
  });

  it('escapes what customers write, so they cannot disguise links or mention people', async () => {
    const { bridge } = await boot();
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'Click [here](https://evil.example) <at>Alice Ops</at> **now**' });
    await driver.settle();
    const threadId = await driver.threadId(conversation.id);
    const reply = driver.emulator.replies(threadId, { fromBot: true })[0]!;
    const raw = String(reply.activity.text);
    expect(raw).not.toContain('<at>');
    expect(raw).not.toContain('](');
    expect(raw).not.toContain('**');
    expect(reply.activity.entities).toBeUndefined();
    expect(visibleText(reply.activity)).toContain('Click [here](https://evil.example) <at>Alice Ops</at> **now**');
  });

  it('answers 503 once stopped, so Teams retries instead of losing activities', async () => {
    const { id } = await escalated();
    await driver.workspace.stop();
    const res = await driver.emulator.channelMessage({ threadId: await driver.threadId(id), from: { id: ALICE.userId, name: ALICE.name }, text: 'hello?' });
    expect(res.status).toBe(503);
  });
});

describe('card of a huge briefing', () => {
  let driver: TeamsDriver;
  afterEach(() => driver?.stop());

  it('stays within the Teams message limit and is still accepted', async () => {
    driver = new TeamsDriver();
    const huge = 'x'.repeat(1200);
    const agent = new ScriptedAgent(() => ({
      kind: 'escalate',
      trigger: 'agent_tool',
      reason: 'r'.repeat(300),
      actionsTaken: Array.from({ length: 20 }, (_, i) => ({ tool: `tool_${i}`, input: { blob: huge }, output: { blob: huge }, ok: i % 2 === 0 })),
      request: {
        summary: huge,
        pendingQuestion: 'q'.repeat(500),
        constraints: Array.from({ length: 10 }, () => 'c'.repeat(300)),
        options: Array.from({ length: 5 }, (_, i) => ({ id: `opt_${i}`, label: 'L'.repeat(75), tradeoffs: 't'.repeat(500), risk: 'high' as const })),
      },
    }));
    const { bridge } = await driver.start(agent);
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'help '.repeat(200) });
    await driver.settle();
    const [message] = await driver.briefingMessages(conversation.id);
    expect(message).toBeDefined();
    expect(JSON.stringify(cardOf(message!.activity)).length * 2).toBeLessThanOrEqual(28_000);
    expect(buttonTitles(cardOf(message!.activity))).toContain('Claim');
  });
});
