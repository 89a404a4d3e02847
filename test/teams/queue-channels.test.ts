/**
 * Queue channels (`TEAMS_QUEUE_CHANNELS`) and transfers, through the real adapter on the loopback
 * Bot Connector: a conversation's thread stays in the channel it opened in, so a transfer to a
 * queue with another channel also posts a copy of the briefing there, as a thread of its own. The
 * copy is posted once (a retry after a lost answer at most twice), its buttons act on the
 * conversation, it is redrawn on ownership changes and superseded by later escalations, and replies
 * under it reach the conversation. Thread records stored before copies were kept still work.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TeamsState, type ThreadRecord } from '../../adapters/teams/state.ts';
import type { Bridge } from '../../src/bridge.ts';
import { buttonTitles, cardOf, visibleText, type TeamsMessage, type TeamsUser } from '../emulators/bot-connector.ts';
import { TEAMS_TEST_CHANNEL, TeamsDriver } from '../contract/teams-driver.ts';
import { optionsAgent } from './options-agent.ts';

const ACCOUNTS_CHANNEL = '19:accounts-channel@thread.tacv2';
const BILLING_CHANNEL = '19:billing-channel@thread.tacv2';
const GENERAL_CHANNEL = '19:general-channel@thread.tacv2';
const customer = { id: 'cust-21', name: 'Katherine Johnson' };
const ALICE = { userId: '29:alice-mri', name: 'Alice Ops' };
const BOB = { userId: '29:bob-mri', name: 'Bob Ops' };
const as = (o: { userId: string; name: string }): TeamsUser => ({ id: o.userId, name: o.name });

/** Escalates with two options on "parcel" (words like "refund" would route to the billing queue from the start). */
const refundAgent = () => optionsAgent(/\bparcel\b/i, 'Wants a refund of 420 USD');

describe('Teams queue channels and transfers', () => {
  let driver: TeamsDriver;
  afterEach(async () => {
    driver?.emulator?.clearFaults();
    await driver?.stop();
  });

  /** A conversation escalated in the default queue (`general`), its thread in the operators' channel, held by Alice. */
  async function held(queueChannels: Record<string, string> = { accounts: ACCOUNTS_CHANNEL, billing: BILLING_CHANNEL }) {
    driver = new TeamsDriver({ config: { queueChannels } });
    const { bridge } = await driver.start(refundAgent());
    return { bridge, id: await driver.heldConversation(customer, 'My parcel for order A-7 never came', ALICE) };
  }

  const transfer = async (id: string, who: typeof ALICE, queue: string) => driver.say(await driver.threadId(id), who, `transfer: ${queue} needs their team`);

  /** Briefing copies: roots the bot started in `channel` that carry a briefing card. */
  const copiesIn = (channel: string): TeamsMessage[] => driver.emulator.roots(channel).filter((m) => cardOf(m.activity)?.refresh);
  const stored = async (bridge: Bridge, id: string) => (await new TeamsState(bridge.store.kv('teams')).thread(id))!;
  const conversationCreates = (channel: string) =>
    driver.emulator.requests.filter((r) => r.method === 'POST' && r.path === '/v3/conversations' && JSON.stringify(r.body).includes(`"channel":{"id":"${channel}"}`));

  it("posts the new briefing as a new thread in the queue's channel after a transfer, once; a recorded retry posts nothing", async () => {
    const { bridge, id } = await held();
    await transfer(id, ALICE, 'accounts');

    const c = (await bridge.getConversation(id))!;
    expect(c).toMatchObject({ state: 'waiting', queue: 'accounts' });
    // The thread stays where it opened and gets the new briefing too.
    expect(driver.emulator.roots(TEAMS_TEST_CHANNEL)).toHaveLength(1);
    const briefings = await driver.briefingMessages(id);
    expect(briefings).toHaveLength(2);
    expect(buttonTitles(cardOf(briefings[1]!.activity))).toContain('Claim');
    // The copy: one new thread in the accounts channel, started through the Bot Connector.
    const [copy, ...more] = copiesIn(ACCOUNTS_CHANNEL);
    expect(more).toEqual([]);
    expect(copy!.conversationId).toBe(`${ACCOUNTS_CHANNEL};messageid=${copy!.id}`);
    expect(conversationCreates(ACCOUNTS_CHANNEL)).toHaveLength(1);
    expect(conversationCreates(ACCOUNTS_CHANNEL)[0]!.body).toMatchObject({ isGroup: true, channelData: { channel: { id: ACCOUNTS_CHANNEL } } });
    expect(visibleText(copy!.activity)).toContain('Queue: accounts');
    expect(visibleText(copy!.activity)).toContain('Waiting for a person');
    expect(buttonTitles(cardOf(copy!.activity))).toEqual(expect.arrayContaining(['Claim', 'Approve refund', 'Offer credit']));
    expect(driver.emulator.roots(BILLING_CHANNEL)).toEqual([]);

    const record = await stored(bridge, id);
    expect(record.channelId).toBe(TEAMS_TEST_CHANNEL);
    expect(record.queueCopies).toEqual([
      expect.objectContaining({ activityId: copy!.id, escalation: 2, queue: 'accounts', channelId: ACCOUNTS_CHANNEL, threadId: copy!.conversationId }),
    ]);

    // The delivery worker repeating the item (its outcome was unknown) finds both recorded.
    const before = driver.emulator.requests.length;
    await driver.workspace.postBriefing(c, { key: `${id}:retry`, count: 2, since: Date.now() - 1000 });
    expect(driver.emulator.requests.length).toBe(before);
    expect(copiesIn(ACCOUNTS_CHANNEL)).toHaveLength(1);
    expect(await driver.briefingMessages(id)).toHaveLength(2);
  });

  it('posts the copy again after a lost answer (it may show twice), never a third time, and the thread briefing once', async () => {
    const { bridge, id } = await held();
    driver.emulator.fail({ dropAnswer: true, method: 'POST', pathIncludes: '/v3/conversations', bodyIncludes: ACCOUNTS_CHANNEL });
    await transfer(id, ALICE, 'accounts');

    expect(conversationCreates(ACCOUNTS_CHANNEL).map((r) => r.status)).toEqual([0, 201]);
    // Teams cannot be asked whether the first one arrived: it shows twice, the second one recorded.
    const copies = copiesIn(ACCOUNTS_CHANNEL);
    expect(copies).toHaveLength(2);
    expect((await stored(bridge, id)).queueCopies?.map((c) => c.activityId)).toEqual([copies[1]!.id]);
    expect(await driver.briefingMessages(id)).toHaveLength(2);
  });

  it("posts no copy when the new queue's channel is the thread's, or the queue has no channel of its own", async () => {
    const { bridge, id } = await held({ accounts: TEAMS_TEST_CHANNEL });
    await transfer(id, ALICE, 'accounts');
    await driver.clickClaim(id, BOB);
    await driver.settle();
    await transfer(id, BOB, 'billing');

    expect((await bridge.getConversation(id))!).toMatchObject({ state: 'waiting', queue: 'billing' });
    expect(await driver.briefingMessages(id)).toHaveLength(3);
    // Only the conversation's own thread was ever started.
    expect(driver.emulator.roots()).toHaveLength(1);
    expect((await stored(bridge, id)).queueCopies).toBeUndefined();
  });

  it("posts the copy in the default channel when a thread that opened in its queue's channel moves to a queue without one", async () => {
    const { id } = await held({ general: GENERAL_CHANNEL });
    expect(driver.emulator.roots(GENERAL_CHANNEL)).toHaveLength(1);
    await transfer(id, ALICE, 'billing');
    const copies = copiesIn(TEAMS_TEST_CHANNEL);
    expect(copies).toHaveLength(1);
    expect(visibleText(copies[0]!.activity)).toContain('Queue: billing');
  });

  it('claims the conversation from the Claim button on the copy, and both cards then show who holds it', async () => {
    const { bridge, id } = await held();
    await transfer(id, ALICE, 'accounts');
    const [copy] = copiesIn(ACCOUNTS_CHANNEL);

    const result = await driver.emulator.clickButton({ cardActivityId: copy!.id, from: as(BOB), title: 'Claim' });
    await driver.settle();
    expect(result.body).toMatchObject({ statusCode: 200, type: 'application/vnd.microsoft.card.adaptive' });
    expect(JSON.stringify(result.body)).toContain('You hold this conversation');
    const c = (await bridge.getConversation(id))!;
    expect(c).toMatchObject({ state: 'human', owner: { id: `teams:${BOB.userId}` } });

    // Both the thread's latest briefing and the copy were edited in place, for everyone.
    const latest = (await driver.briefingMessages(id)).at(-1)!;
    const copyNow = driver.emulator.messages.get(copy!.id)!;
    expect(copyNow.versions.length).toBeGreaterThan(1);
    for (const card of [latest, copyNow]) {
      expect(visibleText(card.activity)).toContain('Held by Bob Ops');
      expect(buttonTitles(cardOf(card.activity))).not.toContain('Claim');
      expect((cardOf(card.activity)!.refresh as { userIds: string[] }).userIds).toEqual([BOB.userId]);
    }
    expect(await driver.rootCard(id)).toContain('Bob Ops');

    // A late claim from the copy (a client that had not redrawn it yet) is told privately who holds it.
    const late = await driver.emulator.invoke({
      conversationId: copy!.conversationId,
      cardActivityId: copy!.id,
      from: as(ALICE),
      verb: 'claim',
      data: { handoff: 1, conversationId: id, action: 'claim' },
    });
    await driver.settle();
    expect(late.body).toMatchObject({ statusCode: 200 });
    expect(driver.emulator.privateTexts(ALICE.userId).join('\n')).toContain('already held by Bob Ops');
    expect((await bridge.getConversation(id))!.owner?.name).toBe(BOB.name);
  });

  it('decides an option from the copy without taking over; both cards show the decision', async () => {
    const { bridge, id } = await held();
    await transfer(id, ALICE, 'accounts');
    const [copy] = copiesIn(ACCOUNTS_CHANNEL);
    const result = await driver.emulator.clickButton({ cardActivityId: copy!.id, from: as(BOB), title: 'Offer credit' });
    await driver.settle();
    expect(result.body).toMatchObject({ statusCode: 200, type: 'application/vnd.microsoft.card.adaptive' });
    const c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('agent');
    expect(c.decisions).toEqual([expect.objectContaining({ optionId: 'offer_credit', by: expect.objectContaining({ name: BOB.name }) })]);
    for (const card of [driver.emulator.messages.get(copy!.id)!, (await driver.briefingMessages(id)).at(-1)!]) {
      expect(visibleText(card.activity)).toContain('Bob Ops chose "Offer credit"');
      expect(buttonTitles(cardOf(card.activity))).toEqual(['Take over']);
    }
  });

  it('refuses a card action on the copy aimed at another conversation', async () => {
    const { bridge, id } = await held();
    const other = await bridge.customerMessage({ origin: 'api', customer: { id: 'cust-22' }, text: 'Another parcel is missing too' });
    await driver.settle();
    await transfer(id, ALICE, 'accounts');
    const [copy] = copiesIn(ACCOUNTS_CHANNEL);
    const result = await driver.emulator.invoke({
      conversationId: copy!.conversationId,
      cardActivityId: copy!.id,
      from: as(BOB),
      verb: 'claim',
      data: { handoff: 1, conversationId: other.conversation.id, action: 'claim' },
    });
    expect(result.body).toMatchObject({ statusCode: 403, type: 'application/vnd.microsoft.error' });
    expect((await bridge.getConversation(other.conversation.id))!.state).toBe('waiting');
  });

  it('supersedes the copy when the conversation moves on: its buttons go, and a click on it changes nothing', async () => {
    const { bridge, id } = await held();
    await transfer(id, ALICE, 'accounts');
    const [accounts] = copiesIn(ACCOUNTS_CHANNEL);
    await driver.emulator.clickButton({ cardActivityId: accounts!.id, from: as(BOB), title: 'Claim' });
    await driver.settle();
    await transfer(id, BOB, 'billing');

    const [billing] = copiesIn(BILLING_CHANNEL);
    expect(buttonTitles(cardOf(billing!.activity))).toContain('Claim');
    const old = driver.emulator.messages.get(accounts!.id)!;
    expect(buttonTitles(cardOf(old.activity))).toEqual([]);
    expect(visibleText(old.activity)).toContain('A newer briefing replaced this one');
    expect((await stored(bridge, id)).queueCopies?.map((c) => [c.queue, c.superseded ?? false])).toEqual([
      ['accounts', true],
      ['billing', false],
    ]);

    const stale = await driver.emulator.invoke({
      conversationId: accounts!.conversationId,
      cardActivityId: accounts!.id,
      from: as(ALICE),
      verb: 'claim',
      data: { handoff: 1, conversationId: id, action: 'claim' },
    });
    await driver.settle();
    expect(JSON.stringify(stale.body)).toContain('A newer briefing replaced this one');
    expect((await bridge.getConversation(id))!).toMatchObject({ state: 'waiting', queue: 'billing' });

    // Moved back to a queue in the thread's own channel: no new copy, and the billing one is superseded too.
    await driver.clickClaim(id, ALICE);
    await driver.settle();
    await transfer(id, ALICE, 'general');
    expect(driver.emulator.roots()).toHaveLength(3);
    expect(buttonTitles(cardOf(driver.emulator.messages.get(billing!.id)!.activity))).toEqual([]);
    expect(buttonTitles(cardOf((await driver.briefingMessages(id)).at(-1)!.activity))).toContain('Claim');
  });

  it("relays a reply under the copy like one in the thread: the owner's reaches the customer and shows in the thread", async () => {
    const { bridge, id } = await held();
    await transfer(id, ALICE, 'accounts');
    const [copy] = copiesIn(ACCOUNTS_CHANNEL);
    await driver.emulator.clickButton({ cardActivityId: copy!.id, from: as(BOB), title: 'Claim' });
    await driver.settle();

    await driver.say(copy!.conversationId, BOB, 'Hi Katherine, accounts here: the refund is on its way.');
    await driver.say(copy!.conversationId, ALICE, 'FYI she called too');
    expect(driver.customer.texts(id)).toContain('Hi Katherine, accounts here: the refund is on its way.');
    expect(driver.customer.texts(id).join('\n')).not.toContain('she called too');
    const thread = (await driver.threadTexts(id)).join('\n');
    expect(thread).toContain('Hi Katherine, accounts here: the refund is on its way.');
    expect(thread).toContain('FYI she called too');
    expect((await bridge.getConversation(id))!.messages.find((m) => m.text === 'FYI she called too')).toMatchObject({ visibility: 'internal' });
    // Nothing is echoed under the copy itself.
    expect(driver.emulator.replies(copy!.conversationId, { fromBot: true })).toEqual([]);

    // Typed commands work there too.
    await driver.say(copy!.conversationId, BOB, 'close');
    expect((await bridge.getConversation(id))!.state).toBe('closed');
  });

  it("says so in the thread when the queue's channel refuses the copy (card and text), and carries on", async () => {
    const { bridge, id } = await held();
    driver.emulator.fail({ status: 404, times: 2, method: 'POST', pathIncludes: '/v3/conversations', bodyIncludes: ACCOUNTS_CHANNEL });
    await transfer(id, ALICE, 'accounts');
    expect(copiesIn(ACCOUNTS_CHANNEL)).toEqual([]);
    expect(conversationCreates(ACCOUNTS_CHANNEL).map((r) => r.status)).toEqual([404, 404]);
    const texts = await driver.threadTexts(id);
    expect(texts.filter((t) => t.includes("could not be posted in the accounts queue's channel"))).toHaveLength(1);
    expect(await driver.briefingMessages(id)).toHaveLength(2);
    expect((await bridge.getConversation(id))!.state).toBe('waiting');
  });

  it('keeps working with thread records stored before copies were kept (no queueCopies field)', async () => {
    const { bridge, id } = await held();
    const state = new TeamsState(bridge.store.kv('teams'));
    const current = (await state.thread(id))!;
    // Exactly what an earlier version stored.
    const old: ThreadRecord = {
      conversationId: current.conversationId,
      channelId: current.channelId,
      serviceUrl: current.serviceUrl,
      threadId: current.threadId,
      rootActivityId: current.rootActivityId,
      briefings: current.briefings.map(({ activityId, postedAt, escalation }) => ({ activityId, postedAt, ...(escalation ? { escalation } : {}) })),
    };
    await bridge.store.kv('teams').set(`thread:${id}`, JSON.parse(JSON.stringify(old)));
    expect('queueCopies' in (await state.thread(id))!).toBe(false);

    // An ownership change refreshes the cards; a transfer posts the copy and supersedes the old briefing.
    await driver.replyInThread(id, ALICE, 'return: checked');
    await driver.settle();
    expect(await driver.rootCard(id)).toContain('With the AI agent');
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'The parcel is still missing' });
    await driver.settle();
    await driver.clickClaim(id, ALICE);
    await driver.settle();
    await transfer(id, ALICE, 'accounts');
    expect(copiesIn(ACCOUNTS_CHANNEL)).toHaveLength(1);
    const briefings = await driver.briefingMessages(id);
    expect(briefings).toHaveLength(3);
    expect(briefings.slice(0, -1).map((b) => buttonTitles(cardOf(b.activity)))).toEqual([[], []]);
    expect((await state.thread(id))!.queueCopies).toHaveLength(1);
  });
});
