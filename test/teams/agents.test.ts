/**
 * Teams and issue 13's adapter part, through the real adapter on the loopback Bot Connector (and,
 * for several agents, the loopback Chat Completions emulator): the Reveal button under a mirrored
 * message with masked values (the original only in the owner's 1:1 chat, refusals told privately,
 * forged or unsigned clicks get nothing), typed `route <agent>` and `transfer <queue>` in the thread.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TeamsState } from '../../adapters/teams/state.ts';
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import { AGENT_HANDOFF, isAgentHandoff } from '../../src/agent/handoff-history.ts';
import type { MultiAgentConfig } from '../../src/agent/multi-agent-config.ts';
import { MultiAgent } from '../../src/agent/multi-agent.ts';
import type { Bridge } from '../../src/bridge.ts';
import { buttonTitles, cardOf, visibleText, type TeamsMessage, type TeamsUser } from '../emulators/bot-connector.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { TEAMS_TEST_CHANNEL, TeamsDriver } from '../contract/teams-driver.ts';
import { ScriptedAgent } from '../support/harness.ts';

const CARD = '4242 4242 4242 4242';
const customer = { id: 'cust-13', name: 'Hedy Lamarr' };
const ALICE = { userId: '29:alice-mri', name: 'Alice Ops' };
const BOB = { userId: '29:bob-mri', name: 'Bob Ops' };
const as = (o: { userId: string; name: string }): TeamsUser => ({ id: o.userId, name: o.name });

/** Escalates when the customer asks for a refund; otherwise echoes. */
const refundAgent = () =>
  new ScriptedAgent(({ conversation }): AgentTurnResult => {
    const last = conversation.messages.filter((m) => m.author.role === 'customer').at(-1)?.text ?? '';
    if (/refund/i.test(last)) {
      return { kind: 'escalate', trigger: 'agent_tool', reason: 'Refund over the limit', actionsTaken: [], request: { summary: 'Wants a refund', pendingQuestion: 'Approve?', options: [] } };
    }
    return { kind: 'reply', text: 'Noted.', actionsTaken: [] };
  });

describe('Reveal in Teams', () => {
  let driver: TeamsDriver;
  afterEach(() => driver?.stop());

  /** A customer message with a card number, escalated; Alice holds it. */
  async function held() {
    driver = new TeamsDriver();
    const { bridge } = await driver.start(refundAgent());
    const first = await bridge.customerMessage({ origin: 'api', customer, text: `Refund please, card ${CARD} was charged twice` });
    await driver.settle();
    const id = first.conversation.id;
    await driver.clickClaim(id, ALICE);
    await driver.settle();
    return { bridge, id, messageId: first.message!.id };
  }

  const thread = async (id: string): Promise<TeamsMessage[]> => driver.emulator.replies(await driver.threadId(id), { fromBot: true });
  const everythingInThread = async (id: string) => (await thread(id)).flatMap((m) => m.versions.map((v) => JSON.stringify(v))).join('\n');
  const reveals = async (bridge: Bridge, id: string) => (await bridge.getConversation(id))!.history.filter((h) => h.reason === 'reveal');

  it('puts a Reveal button (Action.Submit) only under messages with masked values, and the thread never has the original', async () => {
    const { id, messageId } = await held();
    const withButton = (await thread(id)).filter((m) => buttonTitles(cardOf(m.activity)).includes('Reveal'));
    expect(withButton).toHaveLength(1);
    const text = visibleText(withButton[0]!.activity);
    expect(text).toContain('•••• 4242');
    expect(text).toContain('1 value is masked here');
    expect((cardOf(withButton[0]!.activity)!.actions as unknown[])[0]).toEqual({ type: 'Action.Submit', title: 'Reveal', data: { handoff: 1, conversationId: id, action: 'reveal', messageId } });
    expect(await everythingInThread(id)).not.toContain(CARD);
    expect(await everythingInThread(id)).not.toContain('4242424242424242');
  });

  it("sends the owner the original in their 1:1 chat only, logs it once however often Teams resends the click", async () => {
    const { bridge, id } = await held();
    const [button] = (await thread(id)).filter((m) => buttonTitles(cardOf(m.activity)).includes('Reveal'));
    for (let i = 0; i < 2; i++) {
      const res = await driver.emulator.clickSubmit({ cardActivityId: button!.id, from: as(ALICE), title: 'Reveal', id: 'submit-1' });
      expect(res.status).toBe(200);
      await driver.settle();
    }
    const dm = driver.emulator.directMessages(ALICE.userId).filter((t) => t.includes(CARD));
    expect(dm.length).toBeGreaterThanOrEqual(1);
    expect(dm[0]).toContain(`${(await bridge.getConversation(id))!.ticket}, customer message (only you see this; the reveal is logged)`);
    // The notification preview leaves the original out.
    const sent = driver.emulator.requests.filter((r) => JSON.stringify(r.body).includes(CARD));
    expect(sent.every((r) => !String((r.body as { summary?: string }).summary ?? '').includes('4242'))).toBe(true);
    expect(await reveals(bridge, id)).toHaveLength(1);
    expect((await bridge.getConversation(id))!.messages.some((m) => m.visibility === 'internal' && m.text === 'Alice Ops revealed card •••• 4242 from a customer message.')).toBe(true);
    // The briefing's history says it (without the value) once the card is next redrawn.
    await driver.emulator.channelMessage({ threadId: await driver.threadId(id), from: as(ALICE), text: 'close' });
    await driver.settle();
    const briefing = visibleText((await driver.briefingMessages(id)).at(-1)!.activity);
    expect(briefing).toContain('🔓 Alice Ops revealed masked values: card •••• 4242');
    expect(await everythingInThread(id)).not.toContain(CARD);
  });

  it('tells anyone but the owner privately why not, and reveals nothing to them', async () => {
    const { bridge, id, messageId } = await held();
    await driver.clickReveal(id, { userId: BOB.userId, name: BOB.name }, messageId);
    await driver.settle();
    const bob = driver.emulator.privateTexts(BOB.userId).join('\n');
    expect(bob).toContain('Only Alice Ops, who holds this conversation, can reveal values in it.');
    expect(bob).not.toContain(CARD);
    expect(await reveals(bridge, id)).toEqual([]);
  });

  it('answers an Action.Execute reveal invoke with a short private message, the original in the 1:1 chat', async () => {
    const { id, messageId } = await held();
    const [button] = (await thread(id)).filter((m) => buttonTitles(cardOf(m.activity)).includes('Reveal'));
    const result = await driver.emulator.invoke({
      conversationId: await driver.threadId(id),
      cardActivityId: button!.id,
      from: as(ALICE),
      verb: 'reveal',
      data: { handoff: 1, conversationId: id, action: 'reveal', messageId },
    });
    expect(result.body).toEqual({ statusCode: 200, type: 'application/vnd.microsoft.activity.message', value: 'Sent to you in your private chat with the bot.' });
    await driver.settle();
    expect(driver.emulator.directMessages(ALICE.userId).join('\n')).toContain(CARD);
  });

  it('never falls back to the thread: without a 1:1 chat the owner is told to add the app, without the value', async () => {
    const { bridge, id, messageId } = await held();
    driver.emulator.noPersonalApp.add(ALICE.userId);
    await driver.clickReveal(id, ALICE, messageId);
    await driver.settle();
    const texts = (await thread(id)).map((m) => visibleText(m.activity)).join('\n');
    expect(texts).toContain('I could not message you privately, so the original was not sent.');
    expect(await everythingInThread(id)).not.toContain(CARD);
    expect(await reveals(bridge, id)).toHaveLength(1);
  });

  it('ignores a Reveal click for another thread, and refuses a message id from another conversation', async () => {
    const { bridge, id, messageId } = await held();
    const other = await bridge.customerMessage({ origin: 'api', customer: { id: 'cust-14', name: 'Other' }, text: `refund, card ${CARD}` });
    await driver.settle();
    const otherId = other.conversation.id;
    // A submit naming conversation A, sent from B's thread: not B's card, nothing happens.
    const forged = await driver.emulator.channelMessage({ threadId: await driver.threadId(otherId), from: as(ALICE), text: '', value: { handoff: 1, conversationId: id, action: 'reveal', messageId } });
    expect(forged.status).toBe(200);
    // A's thread, A's id, but B's message: the bridge finds no such message in A.
    await driver.emulator.channelMessage({ threadId: await driver.threadId(id), from: as(ALICE), text: '', value: { handoff: 1, conversationId: id, action: 'reveal', messageId: other.message!.id } });
    await driver.settle();
    expect(driver.emulator.directMessages(ALICE.userId).join('\n')).not.toContain(CARD);
    expect(driver.emulator.privateTexts(ALICE.userId).join('\n')).toContain(`No message ${other.message!.id}`);
    expect(await reveals(bridge, id)).toEqual([]);
    expect(await reveals(bridge, otherId)).toEqual([]);
  });
});

describe('Reveal with Bot Framework authentication on', () => {
  let driver: TeamsDriver;
  const APP_ID = '00000000-0000-4000-8000-00000000b013';
  beforeEach(() => void vi.spyOn(console, 'error').mockImplementation(() => {}));
  afterEach(async () => {
    await driver?.stop();
    vi.restoreAllMocks();
  });

  it('gets nothing from an unsigned or wrongly signed click: 401, no reveal logged, no Teams call', async () => {
    // No delivery workers: nothing may reach the outbound side (it would need a token from Microsoft).
    driver = new TeamsDriver({ config: (emulator) => ({ appId: APP_ID, appPassword: 'not-a-real-secret', openIdMetadataUrl: emulator.openIdMetadataUrl }), bridge: { startWorkers: false } });
    const { bridge } = await driver.start(refundAgent());
    const { conversation, message } = await bridge.customerMessage({ origin: 'api', customer, text: `my card is ${CARD}` });
    const threadId = `${TEAMS_TEST_CHANNEL};messageid=1699999999999`;
    await new TeamsState(bridge.store.kv('teams')).saveThread({ conversationId: conversation.id, channelId: TEAMS_TEST_CHANNEL, serviceUrl: driver.emulator.serviceUrl, threadId, rootActivityId: '1699999999999', briefings: [] });
    await bridge.takeOver({ conversationId: conversation.id, operator: { id: `teams:${ALICE.userId}`, name: ALICE.name, workspace: 'teams' } });
    const click = (authorization?: string) =>
      driver.emulator.channelMessage({ threadId, from: as(ALICE), text: '', value: { handoff: 1, conversationId: conversation.id, action: 'reveal', messageId: message!.id }, ...(authorization ? { authorization } : {}) });
    expect((await click()).status).toBe(401);
    expect((await click(`Bearer ${driver.emulator.issueToken({ audience: APP_ID, wrongKey: true })}`)).status).toBe(401);
    expect((await click(`Bearer ${driver.emulator.issueToken({ audience: 'someone-else' })}`)).status).toBe(401);
    expect((await bridge.getConversation(conversation.id))!.history.some((h) => h.reason === 'reveal')).toBe(false);
    expect(driver.emulator.requests).toEqual([]);
  });
});

describe('typed route in a Teams thread', () => {
  let driver: TeamsDriver;
  let model: ChatEmulator | undefined;
  afterEach(async () => {
    await driver?.stop();
    await model?.close();
    model = undefined;
  });

  const CONFIG: MultiAgentConfig = {
    mode: 'handoffs',
    defaultAgent: 'triage',
    agents: [
      { name: 'triage', instructions: 'Route billing questions to billing.', handoffs: [{ to: 'billing' }] },
      { name: 'billing', instructions: 'You handle charges.', handoffs: [{ to: 'triage' }] },
    ],
  };

  async function withAgents() {
    model = await startChatEmulator();
    driver = new TeamsDriver();
    const { bridge } = await driver.start(new MultiAgent(CONFIG, { apiKey: 'sk-test', baseURL: model.baseURL, maxRetries: 0, brandName: 'Acme' }));
    model.enqueue(chat.reply('Hello! How can I help?'));
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'Hi' });
    await driver.settle();
    return { bridge, id: conversation.id };
  }

  const type = async (id: string, who: typeof ALICE, text: string, mentionBot = false) => driver.say(await driver.threadId(id), who, text, { mentionBot });

  it('lets any operator pick the agent, pinned, with a note: a history hop and an activity line in the thread', async () => {
    const { bridge, id } = await withAgents();
    await type(id, BOB, 'route Billing --pin asked about an invoice', true);
    const c = (await bridge.getConversation(id))!;
    expect(c.history.filter(isAgentHandoff).at(-1)).toMatchObject({
      reason: AGENT_HANDOFF,
      by: { kind: 'operator', operator: { id: `teams:${BOB.userId}`, name: BOB.name } },
      note: 'asked about an invoice',
      agent_handoff: { from: 'triage', to: 'billing', pinned: true },
    });
    expect((await driver.threadTexts(id)).some((t) => t.includes('Bob Ops handed the conversation from triage to billing and pinned it: asked about an invoice'))).toBe(true);
    // The unmistakable form works without an @mention; a plain sentence stays a message.
    await type(id, BOB, 'route: triage');
    expect((await bridge.getConversation(id))!.history.filter(isAgentHandoff).at(-1)?.agent_handoff).toMatchObject({ from: 'billing', to: 'triage' });
    await type(id, BOB, 'Route the parcel via DHL');
    expect((await bridge.getConversation(id))!.history.filter(isAgentHandoff)).toHaveLength(2);
    expect((await bridge.getConversation(id))!.messages.at(-1)).toMatchObject({ text: 'Route the parcel via DHL', visibility: 'internal' });
  });

  it('tells the operator privately, with the agents, when the agent is unknown or missing, and when the conversation is closed', async () => {
    const { bridge, id } = await withAgents();
    await type(id, ALICE, 'route legal', true);
    await type(id, ALICE, '/route');
    await bridge.close({ conversationId: id });
    await driver.settle();
    await type(id, ALICE, 'route billing', true);
    const told = driver.emulator.privateTexts(ALICE.userId).join('\n');
    expect(told).toContain('No agent named "legal" (agents: triage, billing).');
    expect(told).toContain("Name the agent: 'route <agent> [--pin] [note]' (agents: triage, billing).");
    expect(told).toContain('Cannot route a conversation that is');
    expect((await bridge.getConversation(id))!.history.filter(isAgentHandoff)).toEqual([]);
    // None of it went into the thread.
    expect((await driver.threadTexts(id)).join('\n')).not.toContain('legal');
  });

  it('with a single agent, says so privately', async () => {
    driver = new TeamsDriver();
    const { bridge } = await driver.start(refundAgent());
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'Hi' });
    await driver.settle();
    await type(conversation.id, ALICE, 'route billing', true);
    expect(driver.emulator.privateTexts(ALICE.userId).join('\n')).toContain('One agent runs here: there is no other agent to route to.');
  });
});

describe('typed transfer in a Teams thread', () => {
  let driver: TeamsDriver;
  afterEach(() => driver?.stop());

  async function held() {
    driver = new TeamsDriver();
    const { bridge } = await driver.start(refundAgent());
    return { bridge, id: await driver.heldConversation(customer, 'Refund please', ALICE) };
  }

  const type = async (id: string, who: typeof ALICE, text: string, mentionBot = false) => driver.say(await driver.threadId(id), who, text, { mentionBot });

  it('moves the conversation to another queue as a new escalation: a fresh briefing, the old one superseded', async () => {
    const { bridge, id } = await held();
    expect((await bridge.getConversation(id))!.queue).not.toBe('accounts');
    await type(id, ALICE, 'transfer: accounts refund question');
    const c = (await bridge.getConversation(id))!;
    expect(c).toMatchObject({ state: 'waiting', queue: 'accounts' });
    expect(c.history.at(-1)).toMatchObject({ reason: 'escalate', trigger: 'transfer', note: 'to accounts: refund question' });
    const briefings = await driver.briefingMessages(id);
    expect(briefings).toHaveLength(2);
    expect(buttonTitles(cardOf(briefings[0]!.activity))).toEqual([]);
    expect(buttonTitles(cardOf(briefings[1]!.activity))).toContain('Claim');
    expect(visibleText(briefings[1]!.activity)).toContain('Queue: accounts');
    expect((await driver.threadTexts(id)).some((t) => t.includes(`Alice Ops moved ${c.ticket} to the accounts queue: refund question`))).toBe(true);
  });

  it('tells the operator privately what is wrong: no queue, a bad name, not the owner', async () => {
    const { bridge, id } = await held();
    const queue = (await bridge.getConversation(id))!.queue;
    await type(id, ALICE, 'transfer', true);
    await type(id, ALICE, 'transfer: bad/queue');
    await type(id, BOB, 'transfer accounts', true);
    expect(driver.emulator.privateTexts(ALICE.userId).join('\n')).toContain("Name the queue: 'transfer billing why it moves'.");
    expect(driver.emulator.privateTexts(ALICE.userId).join('\n')).toContain('"bad/queue" is not a queue name');
    expect(driver.emulator.privateTexts(BOB.userId).join('\n')).toContain('Only Alice Ops, who holds this conversation, can move it.');
    expect((await bridge.getConversation(id))!).toMatchObject({ state: 'human', queue });
    // A reply that merely starts with the word still reaches the customer.
    await type(id, ALICE, 'Transfer the money by Friday and we are done');
    expect((await bridge.getConversation(id))!.messages.at(-1)).toMatchObject({ author: { role: 'operator' }, visibility: 'public', text: 'Transfer the money by Friday and we are done' });
  });
});
