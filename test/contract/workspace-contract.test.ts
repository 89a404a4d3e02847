/**
 * One workspace contract, three workspaces: the same takeover scenarios run against Slack and Teams
 * (each through its real adapter and loopback platform emulator) and the built-in console (through
 * its HTTP API and live socket), so they cannot drift.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Bridge } from '../../src/bridge.ts';
import type { MemoryChannel } from '../support/memory-ports.ts';
import { ScriptedAgent, waitFor } from '../support/harness.ts';
import type { ContractOperator, WorkspaceDriver } from './driver.ts';
import { ConsoleDriver } from './console-driver.ts';
import { SlackDriver } from './slack-driver.ts';
import { TeamsDriver } from './teams-driver.ts';

const platforms: Array<[string, () => WorkspaceDriver]> = [
  ['Slack', () => new SlackDriver()],
  ['Teams', () => new TeamsDriver()],
  ['the console', () => new ConsoleDriver()],
];

const DANA: ContractOperator = { userId: 'U0DANA', name: 'Dana' };
const SAM: ContractOperator = { userId: 'U0SAM', name: 'Sam' };

/** Answers normally, escalates on request with a refund option, and quotes any hand-back note. */
function contractAgent() {
  return new ScriptedAgent(({ conversation }) => {
    const last = conversation.messages.findLast((m) => m.author.role === 'customer')!;
    const handback = conversation.messages.findLast((m) => m.handback)?.handback;
    const answeredSince = handback && conversation.messages.some((m) => m.author.role === 'agent' && m.at > handback.at);
    if (handback && !answeredSince) {
      const decided = handback.decision ? `Decision: ${handback.decision.label}.` : '';
      return { kind: 'reply', text: `Back with you. ${decided}${handback.note ? ` Note from ${handback.by?.name ?? 'the team'}: ${handback.note}` : ''}`.trim(), actionsTaken: [] };
    }
    if (/refund/i.test(last.text)) {
      return { kind: 'escalate', trigger: 'refund_threshold', reason: 'Refund of 250 USD is over the 100 USD policy limit', actionsTaken: [] };
    }
    return { kind: 'reply', text: `Agent answer to: ${last.text}`, actionsTaken: [] };
  });
}

describe.each(platforms)('workspace contract on %s', (_name, makeDriver) => {
  let driver: WorkspaceDriver;
  let bridge: Bridge;
  let customer: MemoryChannel;
  afterEach(() => driver?.stop());

  async function boot() {
    driver = makeDriver();
    ({ bridge, customer } = await driver.start(contractAgent()));
  }

  async function settle() {
    await bridge.idle();
    await driver.settle();
    await bridge.idle();
  }

  async function newConversation(text: string) {
    const { conversation } = await bridge.customerMessage({ origin: customer.origin, customer: { id: 'cust-1', name: 'Ada Lovelace' }, text });
    await settle();
    return conversation.id;
  }

  it('mirrors a conversation into one thread, labelled by author', async () => {
    await boot();
    const id = await newConversation('Where is my parcel?');
    const thread = await driver.threadTexts(id);
    expect(thread.some((t) => t.includes('Where is my parcel?'))).toBe(true);
    expect(thread.some((t) => t.includes('Agent answer to: Where is my parcel?'))).toBe(true);
    expect(await driver.rootCard(id)).toContain('Ada Lovelace');
  });

  it('escalation posts a briefing; two operators race to claim and exactly one wins', async () => {
    await boot();
    const id = await newConversation('I need a refund of $250 for order A-1001');
    const c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('waiting');
    const cards = await driver.briefingCards(id);
    expect(cards.length).toBeGreaterThan(0);
    expect(cards.join('\n')).toContain('Approve refund');

    await Promise.all([driver.clickClaim(id, DANA), driver.clickClaim(id, SAM)]);
    await settle();
    const after = (await bridge.getConversation(id))!;
    expect(after.state).toBe('human');
    const winner = after.owner!.name === 'Dana' ? DANA : SAM;
    const loser = winner === DANA ? SAM : DANA;
    expect(after.history.filter((h) => h.reason === 'claim')).toHaveLength(1);
    expect((await driver.privateTexts(loser)).join('\n')).toContain(winner.name);
    for (const card of await driver.briefingCards(id)) expect(card).toContain(winner.name);
    expect(await driver.rootCard(id)).toContain(winner.name);
    expect(customer.texts(id)).toContain(`${winner.name} from our team has joined the conversation.`);
  });

  it("relays the owner's replies to the customer; anyone else's stay internal", async () => {
    await boot();
    const id = await newConversation('refund please, $250');
    await driver.clickClaim(id, DANA);
    await settle();
    await driver.replyInThread(id, DANA, 'Hi Ada, Dana here. Looking into it.');
    await driver.replyInThread(id, SAM, 'Manager aside: approve if under 300');
    await driver.replyInThread(id, DANA, '// note to self: check the warehouse');
    await settle();
    await waitFor(() => customer.texts(id).includes('Hi Ada, Dana here. Looking into it.'), { what: 'owner reply delivered' });
    const seen = customer.texts(id).join('\n');
    expect(seen).not.toContain('Manager aside');
    expect(seen).not.toContain('warehouse');
    // The agent stayed silent during the takeover.
    await bridge.customerMessage({ conversationId: id, origin: customer.origin, customer: { id: 'cust-1' }, text: 'thanks, waiting' });
    await settle();
    expect(customer.texts(id).filter((t) => t.startsWith('Agent answer'))).toEqual([]);
    expect((await driver.threadTexts(id)).some((t) => t.includes('thanks, waiting'))).toBe(true);
  });

  it('return with a note hands back to the agent, which answers with the note in context', async () => {
    await boot();
    const id = await newConversation('refund of $250 please');
    await driver.clickClaim(id, DANA);
    await settle();
    await driver.returnWithNote(id, DANA, 'Refund approved as store credit');
    await settle();
    const c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('agent');
    expect(c.history.at(-1)).toMatchObject({ reason: 'return', note: 'Refund approved as store credit' });
    expect((await driver.threadTexts(id)).join('\n')).toContain('Refund approved as store credit');
    // The customer's question was still open, so the agent answers at once, grounded in the note.
    await waitFor(() => customer.texts(id).at(-1)?.includes('Note from Dana: Refund approved as store credit'), { what: 'agent answer with the note' });
    expect((await driver.threadTexts(id)).join('\n')).toContain('Note from Dana: Refund approved as store credit');
  });

  it('an option decided from the card resumes the agent with the decision, without a takeover', async () => {
    await boot();
    const id = await newConversation('refund of $250 please');
    await driver.clickOption(id, SAM, 'approve_refund');
    await settle();
    const c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('agent');
    expect(c.owner).toBeUndefined();
    expect(c.decisions[0]).toMatchObject({ optionId: 'approve_refund', by: { name: 'Sam' } });
    expect(customer.texts(id).at(-1)).toContain('Decision: Approve refund');
    expect((await driver.briefingCards(id)).join('\n')).toContain('Sam');
  });
});
