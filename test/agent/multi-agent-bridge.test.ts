/**
 * Several agents inside a real bridge, scripted on the loopback Chat Completions emulator:
 * triage -> billing -> a person -> billing, with every hop in the history and the thread.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AGENT_HANDOFF, isAgentHandoff, routeConversation } from '../../src/agent/handoff-history.ts';
import type { MultiAgent } from '../../src/agent/multi-agent.ts';
import type { Committer } from '../../src/engine/commit.ts';
import { Redactor, redactedWorkspace } from '../../src/engine/redact.ts';
import type { Rules } from '../../src/engine/rules.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { emulatedAgents } from '../support/agents.ts';
import { createTestBridge, DANA, type TestBridge } from '../support/harness.ts';
import { MemoryChannel, MemoryWorkspace } from '../support/memory-ports.ts';

describe('several agents in the bridge', () => {
  let model: ChatEmulator;
  let t: TestBridge;
  let channel: MemoryChannel;
  let workspace: MemoryWorkspace;
  let agent: MultiAgent;

  beforeEach(async () => {
    model = await startChatEmulator();
    channel = new MemoryChannel('webchat');
    workspace = new MemoryWorkspace('test');
    agent = emulatedAgents(model.baseURL);
    t = await createTestBridge({ agent, channels: [channel], workspaces: [redactedWorkspace(workspace, new Redactor())] });
  });
  afterEach(async () => {
    await t.close();
    await model.close();
  });

  it('triage -> billing -> a person -> billing: each hop in the history and the thread, the briefing names the agents', async () => {
    const { bridge } = t;
    const customer = { id: 'visitor-1', name: 'Ana' };

    // 1. Triage hands the double charge to billing, which checks and answers in the same turn.
    model.enqueue(
      chat.call('transfer_to_billing', { reason: 'Double charge on A1002', order_id: 'A1002' }),
      chat.call('check_refund_eligibility', { order_id: 'A1002' }),
      chat.reply('Order A1002 can be refunded (270 EUR). Shall I refund it?'),
    );
    const first = await bridge.customerMessage({ origin: 'webchat', customer, text: 'I was charged twice on my card 4242 4242 4242 4242 for order A1002. Refund please?' });
    const id = first.conversation.id;
    await bridge.idle();
    expect(model.requests.map((r) => r.body.model)).toEqual(['gpt-4o-mini', 'billing-model', 'billing-model']);
    // The agent keeps the original; the workspace never sees it.
    expect(JSON.stringify(model.requests[0]!.body.messages)).toContain('4242 4242 4242 4242');
    expect(channel.texts(id)).toEqual(['Order A1002 can be refunded (270 EUR). Shall I refund it?']);

    // 2. Billing tries the refund; the policy stops it; a person is asked, with billing's name on the briefing.
    model.enqueue(chat.call('issue_refund', { order_id: 'A1002', amount: 270, reason: 'double charge' }));
    await bridge.customerMessage({ conversationId: id, origin: 'webchat', customer, text: 'Yes, all of it please.' });
    await bridge.idle();
    let c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('waiting');
    expect(c.briefing).toMatchObject({ trigger: 'refund_threshold', agent: 'billing', agents: ['triage', 'billing'] });
    expect(workspace.briefings.at(-1)!.conversation.briefing).toMatchObject({ agent: 'billing', agents: ['triage', 'billing'] });

    // 3. Dana takes it, answers, hands it back. No agent speaks meanwhile.
    await bridge.claim({ conversationId: id, operator: DANA });
    await bridge.operatorMessage({ conversationId: id, operator: DANA, text: 'Hi Ana, Dana here: the 270 EUR refund on A1002 is approved and on its way.' });
    await bridge.returnToAgent({ conversationId: id, operator: DANA, note: 'Refund of 270 issued by hand; nothing left to do.' });
    await bridge.idle();
    expect(model.requests).toHaveLength(4);

    // 4. Billing, still holding the conversation, answers the follow-up with Dana's note in view.
    model.enqueue(chat.reply('You will see the 270 EUR within 3-5 business days.'));
    await bridge.customerMessage({ conversationId: id, origin: 'webchat', customer, text: 'Thanks! When will I see it?' });
    await bridge.idle();
    const last = model.lastRequest();
    expect(last.model).toBe('billing-model');
    expect(JSON.stringify(last.messages)).toContain("Operator's note: Refund of 270 issued by hand; nothing left to do.");
    expect(String(last.messages[0]!.content)).toContain('You took this conversation over from triage: Double charge on A1002.');

    c = (await bridge.getConversation(id))!;
    // One history: the agent hop, the escalation, the person, the return.
    expect(c.history.map((h) => h.reason)).toEqual([AGENT_HANDOFF, 'escalate', 'claim', 'return']);
    const hop = c.history.find(isAgentHandoff)!;
    expect(hop).toMatchObject({ from: 'agent', to: 'agent', by: { kind: 'agent' }, note: 'Double charge on A1002', agent_handoff: { from: 'triage', to: 'billing', input: { reason: 'Double charge on A1002', order_id: 'A1002' } } });
    expect(c.ownershipVersion).toBe(3); // the agent hop is not an ownership change
    // The thread shows the hop before billing's first words, and every agent message under its agent's name.
    const thread = workspace.mirrored.filter((m) => m.conversationId === id).map((m) => `${m.message.author.name ?? m.message.author.role}: ${m.message.text}`);
    expect(thread.slice(0, 3)).toEqual([
      'Ana: I was charged twice on my card [card •••• 4242] for order A1002. Refund please?',
      'system: triage handed the conversation to billing: Double charge on A1002',
      'billing: Order A1002 can be refunded (270 EUR). Shall I refund it?',
    ]);
    expect(thread.at(-1)).toBe('billing: You will see the 270 EUR within 3-5 business days.');
    expect(thread.join('\n')).not.toContain('4242 4242');
    // Transcript times never go backwards.
    const times = c.messages.map((m) => m.at);
    expect([...times].sort()).toEqual(times);
  });

  it('an operator picks the agent (manual routing): logged as a hop by the operator, and the picked agent answers', async () => {
    const { bridge, store } = t;
    const inner = bridge as unknown as { committer: Committer; rules: Rules };
    const deps = { committer: inner.committer, rules: inner.rules, agents: agent.agents, now: () => new Date() };
    model.enqueue({ ...chat.reply('(triage, too slow)'), delayMs: 200 });
    const { conversation } = await bridge.customerMessage({ origin: 'webchat', customer: { id: 'v2' }, text: 'My parcel A1003 is late' });
    await model.waitForRequests(1);
    // The operator moves it to shipping while triage is still thinking: triage's turn is superseded.
    model.enqueue(chat.reply('Shipping here: A1003 arrives tomorrow.'));
    await routeConversation(deps, { conversationId: conversation.id, operator: DANA, agent: 'shipping', note: 'parcel question', pin: true });
    await bridge.idle();
    const c = (await store.getConversation(conversation.id))!;
    const hop = c.history.find(isAgentHandoff)!;
    expect(hop).toMatchObject({ by: { kind: 'operator', operator: DANA }, note: 'parcel question', agent_handoff: { from: 'triage', to: 'shipping', pinned: true } });
    expect(channel.texts(conversation.id)).toEqual(['Shipping here: A1003 arrives tomorrow.']);
    expect(model.lastRequest().model).toBe('shipping-model');
    expect(workspace.mirrored.map((m) => m.message.text)).toContain('Dana handed the conversation from triage to shipping and pinned it: parcel question');
    await expect(routeConversation(deps, { conversationId: conversation.id, operator: DANA, agent: 'legal' })).rejects.toThrow('No agent named "legal"');
  });
});
