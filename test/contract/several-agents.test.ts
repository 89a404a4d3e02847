/**
 * Several agents through the real workspace adapters (Slack, Teams, the console), on the loopback
 * Chat Completions emulator: triage -> billing -> a person -> triage. Each platform shows every hop
 * in its thread, names the agents on the briefing, never shows a card number, lets the owner reveal
 * one privately (logged), and lets an operator pick the agent its own way.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_HANDOFF, isAgentHandoff } from '../../src/agent/handoff-history.ts';
import type { Bridge } from '../../src/bridge.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { emulatedAgents } from '../support/agents.ts';
import { waitFor } from '../support/harness.ts';
import type { MemoryChannel } from '../support/memory-ports.ts';
import { ConsoleDriver } from './console-driver.ts';
import type { ContractOperator, WorkspaceDriver } from './driver.ts';
import { SlackDriver } from './slack-driver.ts';
import { TeamsDriver } from './teams-driver.ts';

const platforms: Array<[string, () => WorkspaceDriver]> = [
  ['Slack', () => new SlackDriver()],
  ['Teams', () => new TeamsDriver()],
  ['the console', () => new ConsoleDriver()],
];

const DANA: ContractOperator = { userId: 'U0DANA', name: 'Dana' };

const CARD = '4242 4242 4242 4242';

describe.each(platforms)('several agents on %s', (_name, makeDriver) => {
  let driver: WorkspaceDriver;
  let bridge: Bridge;
  let customer: MemoryChannel;
  let model: ChatEmulator;
  afterEach(async () => {
    await driver?.stop();
    await model?.close();
  });

  async function settle() {
    await bridge.idle();
    await driver.settle();
    await bridge.idle();
  }

  it('triage -> billing -> a person -> triage: every hop in the thread, agents on the briefing, no card number, reveal and route', async () => {
    model = await startChatEmulator();
    driver = makeDriver();
    ({ bridge, customer } = await driver.start(emulatedAgents(model.baseURL)));
    const ana = { id: 'visitor-1', name: 'Ana' };

    // 1. Triage hands the double charge to billing, which checks and answers in the same turn.
    model.enqueue(
      chat.call('transfer_to_billing', { reason: 'Double charge on A1002', order_id: 'A1002' }),
      chat.call('check_refund_eligibility', { order_id: 'A1002' }),
      chat.reply('Order A1002 can be refunded (270 EUR). Shall I refund it?'),
    );
    const first = await bridge.customerMessage({ origin: customer.origin, customer: ana, text: `I was charged twice on my card ${CARD} for order A1002. Refund please?` });
    const id = first.conversation.id;
    const cardMessageId = first.message!.id;
    await settle();
    expect(customer.texts(id)).toEqual(['Order A1002 can be refunded (270 EUR). Shall I refund it?']);

    // 2. Billing tries the refund; the policy stops it; a person is asked.
    model.enqueue(chat.call('issue_refund', { order_id: 'A1002', amount: 270, reason: 'double charge' }));
    await bridge.customerMessage({ conversationId: id, origin: customer.origin, customer: ana, text: 'Yes, all of it please.' });
    await settle();
    expect((await bridge.getConversation(id))!.state).toBe('waiting');

    // The thread shows the hop as an activity line before billing's answer, and never the card number.
    const thread = await driver.threadTexts(id);
    const hop = thread.findIndex((t) => t.includes('triage handed the conversation to billing: Double charge on A1002'));
    const answer = thread.findIndex((t) => t.includes('Order A1002 can be refunded'));
    expect(hop).toBeGreaterThanOrEqual(0);
    expect(answer).toBeGreaterThan(hop);
    expect(thread.some((t) => t.includes('•••• 4242'))).toBe(true);
    // The briefing names the agent that escalated and every agent involved.
    const cards = (await driver.briefingCards(id)).join('\n');
    expect(cards).toContain('billing');
    expect(cards).toContain('triage');
    const everything = [...thread, cards, await driver.rootCard(id)].join('\n');
    expect(everything).not.toContain(CARD);
    expect(everything).not.toContain('4242424242424242');

    // 3. Dana claims and reveals the card number: privately, logged in the history, still masked in the thread.
    await driver.clickClaim(id, DANA);
    await settle();
    await driver.clickReveal(id, DANA, cardMessageId);
    await settle();
    await waitFor(async () => (await driver.privateTexts(DANA)).some((t) => t.includes(CARD)), { what: 'the revealed original, privately' });
    const afterReveal = (await bridge.getConversation(id))!;
    expect(afterReveal.messages.some((m) => m.visibility === 'internal' && /Dana revealed/.test(m.text))).toBe(true);
    expect((await driver.threadTexts(id)).join('\n')).not.toContain(CARD);

    // 4. Dana hands it back (billing answers the open question) and picks triage (pinned) with a note:
    // an operator hop in the history and the thread.
    model.enqueue(chat.reply('The refund of 270 EUR is done.'));
    await driver.returnWithNote(id, DANA, 'Refund of 270 issued by hand.');
    await settle();
    await driver.routeToAgent(id, DANA, 'triage', { note: 'billing is done here', pin: true });
    await settle();
    const c = (await bridge.getConversation(id))!;
    expect(c.history.map((h) => h.reason)).toEqual([AGENT_HANDOFF, 'escalate', 'claim', 'reveal', 'return', AGENT_HANDOFF]);
    expect(c.history.filter(isAgentHandoff).at(-1)).toMatchObject({ by: { kind: 'operator', operator: { name: 'Dana' } }, note: 'billing is done here', agent_handoff: { from: 'billing', to: 'triage', pinned: true } });
    await waitFor(async () => (await driver.threadTexts(id)).some((t) => t.includes('Dana handed the conversation from billing to triage and pinned it: billing is done here')), { what: 'the route activity line' });

    // 5. Triage answers the next question.
    model.enqueue(chat.reply('Anything else I can help with?'));
    await bridge.customerMessage({ conversationId: id, origin: customer.origin, customer: ana, text: 'Thanks! That is all.' });
    await settle();
    expect(model.lastRequest().model).toBe('gpt-4o-mini');
    expect(customer.texts(id).at(-1)).toBe('Anything else I can help with?');

    // An unknown agent is refused with the list, privately.
    await driver.routeToAgent(id, DANA, 'legal');
    await settle();
    await waitFor(async () => (await driver.privateTexts(DANA)).some((t) => t.includes('legal') && t.includes('triage')), { what: 'unknown agent refused' });
  });
});
