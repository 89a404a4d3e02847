/**
 * Issue 13 in Slack: masked values and the Reveal button, `/route` to pick the agent, and the
 * agents on the briefing. Real adapter, loopback Slack and Chat Completions emulators; the adapter
 * reads the bridge through `redactedPort`, as in src/app.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_HANDOFF, isAgentHandoff } from '../../src/agent/handoff-history.ts';
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import type { MultiAgentConfig } from '../../src/agent/multi-agent-config.ts';
import { emulatedAgents } from '../support/agents.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { ScriptedAgent, waitFor } from '../support/harness.ts';
import { CHANNEL, DANA, SAM, startSlackFixture, type SlackFixture } from './fixture.ts';

const CARD = '4242 4242 4242 4242';
const CARD_DIGITS = '4242424242424242';

/** Escalates on the customer's first message; acknowledges anything after. */
function escalatingAgent(): ScriptedAgent {
  return new ScriptedAgent(({ conversation }): AgentTurnResult =>
    conversation.history.length === 0
      ? { kind: 'escalate', trigger: 'explicit_request', reason: 'The customer asked for a person', request: { summary: 'Card charged twice.', pendingQuestion: 'Refund the double charge?', options: [] }, actionsTaken: [] }
      : { kind: 'reply', text: 'Noted.', actionsTaken: [] },
  );
}

const CONFIG: MultiAgentConfig = {
  mode: 'handoffs',
  defaultAgent: 'triage',
  agents: [
    { name: 'triage', instructions: 'Find out what the customer needs.', tools: ['lookup_order'], handoffs: [{ to: 'billing' }] },
    { name: 'billing', instructions: 'You handle charges and refunds.', model: 'billing-model', tools: ['check_refund_eligibility'], handoffs: [{ to: 'triage' }] },
  ],
};

/** Everything the adapter sent to Slack, and everything Slack stored. */
function everythingInSlack(f: SlackFixture): string {
  return JSON.stringify([f.emulator.calls.map((c) => c.args), f.emulator.messages, f.emulator.responses]);
}

describe('Reveal on a mirrored message with masked values', () => {
  let f: SlackFixture;
  afterEach(async () => {
    await f?.close();
  });

  async function escalated() {
    f = await startSlackFixture({ agent: escalatingAgent() });
    const first = await f.bridge.customerMessage({ origin: 'webchat', customer: { id: 'v1', name: 'Ann' }, text: `My card ${CARD} was charged twice.` });
    await f.settle();
    return { id: first.conversation.id, messageId: first.message!.id };
  }

  it('puts a Reveal button on that message only, and the card number nowhere in Slack', async () => {
    const { id, messageId } = await escalated();
    const root = await f.root(id);
    const mirrored = f.mirrored(messageId)!;
    expect(mirrored.text).toContain('[card •••• 4242]');
    expect(f.emulator.buttons(mirrored.channel, mirrored.ts)).toEqual(['thread_reveal']);
    // The blocks show the whole message (Slack shows blocks instead of text).
    expect(JSON.stringify(mirrored.blocks)).toContain('was charged twice');
    const others = f.emulator.replies(root.channel, root.ts).filter((m) => m !== mirrored && !m.reply_broadcast);
    expect(others.length).toBeGreaterThan(0);
    for (const m of others) expect(f.emulator.buttons(m.channel, m.ts)).not.toContain('thread_reveal');
    expect(everythingInSlack(f)).not.toContain(CARD);
    expect(everythingInSlack(f)).not.toContain(CARD_DIGITS);
  });

  it('gives the owner the original privately in the thread, logs it, and leaves the thread masked', async () => {
    const { id, messageId } = await escalated();
    expect(await f.click(id, DANA.userId, 'briefing_claim')).toBe(200);
    await f.settle();
    expect(await f.clickReveal(messageId, DANA.userId)).toBe(200);
    await f.settle();
    const root = await f.root(id);
    const revealed = await waitFor(() => f.emulator.ephemerals.find((e) => e.text.includes(CARD)), { what: 'the revealed original' });
    expect(revealed).toMatchObject({ user: DANA.userId, channel: root.channel, thread_ts: root.ts });
    expect(f.emulator.ephemerals.filter((e) => e.text.includes(CARD)).map((e) => e.user)).toEqual([DANA.userId]);
    // Only the ephemeral carried it: no post, update, response or Home tab.
    const elsewhere = JSON.stringify([f.emulator.calls.filter((c) => c.method !== 'chat.postEphemeral').map((c) => c.args), f.emulator.messages, f.emulator.responses]);
    expect(elsewhere).not.toContain(CARD);
    const c = (await f.bridge.getConversation(id))!;
    expect(c.history.at(-1)).toMatchObject({ reason: 'reveal', by: { kind: 'operator', operator: { name: 'Dana' } } });
    await waitFor(async () => (await f.threadTexts(id)).some((t) => t.includes('Dana revealed card •••• 4242 from a customer message.')), { what: 'the reveal line' });
  });

  it('tells anyone but the owner privately, and shows them nothing', async () => {
    const { id, messageId } = await escalated();
    // Nobody holds it yet.
    expect(await f.clickReveal(messageId, DANA.userId)).toBe(200);
    await f.settle();
    await waitFor(() => f.emulator.ephemerals.find((e) => e.user === DANA.userId && e.text.includes('Nobody holds this conversation')), { what: 'refusal while waiting' });
    // Dana holds it; Sam clicks.
    await f.click(id, DANA.userId, 'briefing_claim');
    await f.settle();
    expect(await f.clickReveal(messageId, SAM.userId)).toBe(200);
    await f.settle();
    await waitFor(() => f.emulator.ephemerals.find((e) => e.user === SAM.userId && e.text.includes('Only Dana, who holds this conversation')), { what: 'refusal for Sam' });
    expect(everythingInSlack(f)).not.toContain(CARD);
    expect((await f.bridge.getConversation(id))!.history.some((h) => h.reason === 'reveal')).toBe(false);
  });

  it('does nothing for a forged, unsigned or tampered click', async () => {
    const { id, messageId } = await escalated();
    await f.click(id, DANA.userId, 'briefing_claim');
    await f.settle();
    const mirrored = f.mirrored(messageId)!;
    const payload = f.emulator.blockActionPayload({ channel: mirrored.channel, ts: mirrored.ts, actionId: 'thread_reveal', user: DANA.userId });
    const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    const form = 'application/x-www-form-urlencoded';
    expect((await f.events.send(body, form, { signature: 'v0=' + '0'.repeat(64) })).status).toBe(401);
    expect((await f.events.send(body, form, { timestamp: Math.floor(Date.now() / 1000) - 3600 })).status).toBe(401);
    const unsigned = await fetch(`http://127.0.0.1:${f.port}/slack/events`, { method: 'POST', headers: { 'content-type': form }, body });
    expect(unsigned.status).toBe(401);
    // Signed, but pointing at a message of no conversation: told privately, nothing revealed.
    const tampered = { ...payload, actions: [{ ...payload.actions[0], value: `${id}|msg_nosuchmessage` }] };
    expect((await f.events.interaction(tampered)).status).toBe(200);
    await f.settle();
    await waitFor(() => f.emulator.ephemerals.find((e) => e.user === DANA.userId && e.text.includes('No message msg_nosuchmessage')), { what: 'tampered click refused' });
    expect(f.emulator.ephemerals.some((e) => e.text.includes(CARD))).toBe(false);
    expect((await f.bridge.getConversation(id))!.history.some((h) => h.reason === 'reveal')).toBe(false);
  });
});

describe('/route', () => {
  let f: SlackFixture;
  let model: ChatEmulator | undefined;
  afterEach(async () => {
    await f?.close();
    await model?.close();
    model = undefined;
  });

  async function withAgents() {
    model = await startChatEmulator();
    const agent = emulatedAgents(model.baseURL, CONFIG);
    f = await startSlackFixture({ agent });
    model.enqueue(chat.reply('Hello! How can I help?'));
    const conversation = await f.customerSays('Hi there');
    await f.settle();
    return conversation;
  }

  const answers = (user: string) => f.emulator.responsesFor(user).map((r) => String(r.text ?? ''));

  it('lets any operator pick the agent by ticket, pinned with a note; the thread shows the hop', async () => {
    const conversation = await withAgents();
    expect(await f.command(SAM.userId, '/route', `${conversation.ticket} billing --pin the customer asks about an invoice`)).toBe(200);
    await f.settle();
    await waitFor(() => answers(SAM.userId).find((t) => t.includes('now goes to the *billing* agent, pinned')), { what: 'the confirmation' });
    const c = (await f.bridge.getConversation(conversation.id))!;
    const hop = c.history.filter(isAgentHandoff).at(-1)!;
    expect(hop).toMatchObject({ reason: AGENT_HANDOFF, by: { kind: 'operator', operator: { name: 'Sam' } }, note: 'the customer asks about an invoice', agent_handoff: { from: 'triage', to: 'billing', pinned: true } });
    await waitFor(async () => (await f.threadTexts(conversation.id)).some((t) => t.includes('Sam handed the conversation from triage to billing and pinned it: the customer asks about an invoice')), { what: 'the hop in the thread' });
    // The next answer comes from billing.
    model!.enqueue(chat.reply('Billing here.'));
    await f.customerSays('About my invoice', conversation.id);
    await f.settle();
    expect(model!.lastRequest().model).toBe('billing-model');
  });

  it('refuses an unknown agent privately with the list, and changes nothing', async () => {
    const conversation = await withAgents();
    const before = (await f.bridge.getConversation(conversation.id))!.history.length;
    await f.command(DANA.userId, '/route', `${conversation.ticket} legal`);
    await f.settle();
    const refusal = await waitFor(() => answers(DANA.userId).find((t) => t.includes('legal')), { what: 'the refusal' });
    expect(refusal).toContain('triage, billing');
    expect((await f.bridge.getConversation(conversation.id))!.history).toHaveLength(before);
  });

  it('asks for the agent or the ticket when they are missing', async () => {
    const conversation = await withAgents();
    await f.command(DANA.userId, '/route', '');
    await f.command(DANA.userId, '/route', 'billing');
    await f.settle();
    const said = answers(DANA.userId);
    expect(said[0]).toContain('Name the agent');
    expect(said[0]).toContain('Agents: triage, billing');
    expect(said[1]).toContain('Name the ticket');
    await f.command(DANA.userId, '/route', 'HB-9999 billing');
    await f.settle();
    expect(answers(DANA.userId)[2]).toContain('No conversation with ticket *HB-9999*');
    expect((await f.bridge.getConversation(conversation.id))!.history.some(isAgentHandoff)).toBe(false);
  });

  it('says there is nothing to route to when one agent runs', async () => {
    f = await startSlackFixture({ agent: escalatingAgent() });
    const conversation = await f.customerSays('I want a person');
    await f.settle();
    await f.command(DANA.userId, '/route', `${conversation.ticket} billing`);
    await f.settle();
    expect(answers(DANA.userId)).toEqual([expect.stringContaining('One agent runs here')]);
  });

  it('gets 401 and routes nothing when the command is forged or unsigned', async () => {
    const conversation = await withAgents();
    const body = new URLSearchParams(f.emulator.slashCommand({ command: '/route', text: `${conversation.ticket} billing`, user: DANA.userId, channel: CHANNEL })).toString();
    const form = 'application/x-www-form-urlencoded';
    expect((await f.events.send(body, form, { signature: 'v0=' + 'f'.repeat(64) })).status).toBe(401);
    const unsigned = await fetch(`http://127.0.0.1:${f.port}/slack/events`, { method: 'POST', headers: { 'content-type': form }, body });
    expect(unsigned.status).toBe(401);
    await f.settle();
    expect((await f.bridge.getConversation(conversation.id))!.history.some(isAgentHandoff)).toBe(false);
    expect(f.emulator.responses).toHaveLength(0);
  });
});

describe('the briefing with several agents', () => {
  let f: SlackFixture;
  let model: ChatEmulator;
  afterEach(async () => {
    await f?.close();
    await model?.close();
  });

  it('names the agent that escalated and every agent involved', async () => {
    model = await startChatEmulator();
    const agent = emulatedAgents(model.baseURL, CONFIG);
    f = await startSlackFixture({ agent });
    model.enqueue(chat.call('transfer_to_billing', { reason: 'A charge' }), chat.call('escalate_to_human', { reason: 'Needs a person', summary: 'Wants a person.', intent: 'Talk to a person', pendingQuestion: 'Can someone call me?' }));
    const conversation = await f.customerSays('There is a charge on my statement I do not recognise');
    await f.settle();
    const copy = (await f.briefings(conversation.id)).find((b) => b.place === 'thread')!;
    const card = JSON.stringify(f.emulator.message(copy.channel, copy.ts)!.versions.at(-1)!.blocks);
    expect(card).toContain(':robot_face: Escalated by *billing* · agents: triage → billing');
  });
});
