/**
 * Several agents inside a real bridge, scripted on the loopback Chat Completions emulator:
 * triage -> billing -> a person -> billing, with every hop in the history and the thread.
 *
 * The engine hook (`recordAgentHandoffs` in agent-turns.ts) is applied here around the bridge's
 * committer until agent-turns.ts calls it itself; once it does, the test uses the real wiring.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AgentTurnInput } from '../../src/agent/agent.ts';
import { createDemoShop } from '../../src/agent/demo-data.ts';
import { AGENT_HANDOFF, isAgentHandoff, markChange, recordAgentHandoffs, routeConversation, type MultiAgentTurnResult } from '../../src/agent/handoff-history.ts';
import type { MultiAgentConfig } from '../../src/agent/multi-agent-config.ts';
import { MultiAgent } from '../../src/agent/multi-agent.ts';
import { demoTools } from '../../src/agent/tools.ts';
import type { Bridge } from '../../src/bridge.ts';
import type { Committer } from '../../src/engine/commit.ts';
import { Redactor, redactedWorkspace } from '../../src/engine/redact.ts';
import type { Rules } from '../../src/engine/rules.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { createTestBridge, DANA, type TestBridge } from '../support/harness.ts';
import { MemoryChannel, MemoryWorkspace } from '../support/memory-ports.ts';

const CONFIG: MultiAgentConfig = {
  mode: 'handoffs',
  defaultAgent: 'triage',
  agents: [
    {
      name: 'triage',
      description: 'First contact',
      instructions: 'Find out what the customer needs and hand billing questions to billing.',
      tools: ['lookup_order'],
      handoffs: [
        { to: 'billing', description: 'Charges and refunds.', inputFilter: 'since_last_handoff', input: z.object({ reason: z.string().min(1), order_id: z.string().optional() }) },
        { to: 'shipping', inputFilter: 'nested_summary' },
      ],
    },
    { name: 'billing', description: 'Charges and refunds', instructions: 'You handle charges and refunds.', model: 'billing-model', tools: ['check_refund_eligibility', 'issue_refund'], handoffs: [{ to: 'triage' }] },
    { name: 'shipping', instructions: 'You handle deliveries.', model: 'shipping-model', tools: ['lookup_order'] },
  ],
};

const engineWired = readFileSync(new URL('../../src/engine/agent-turns.ts', import.meta.url), 'utf8').includes('recordAgentHandoffs(');

/** What agent-turns.ts does once wired: the turn's hops are committed with its answer. */
function applyHookUntilWired(bridge: Bridge, agent: MultiAgent): void {
  if (engineWired) return;
  const inner = bridge as unknown as { committer: Committer; rules: Rules };
  const results = new Map<string, MultiAgentTurnResult>();
  const respond = agent.respond.bind(agent);
  agent.respond = async (input: AgentTurnInput) => {
    const result = await respond(input);
    results.set(input.conversation.id, result);
    return result;
  };
  const change = inner.committer.change.bind(inner.committer);
  inner.committer.change = ((id, fn, options) =>
    change(
      id,
      (c, sink) => {
        const mark = markChange(c, sink);
        const out = fn(c, sink);
        const result = options?.cursor ? results.get(id) : undefined;
        // As in agent-turns.ts: only when the turn's output is kept (a dropped turn adds nothing).
        if (result && (c.messages.length > mark.messages || c.history.length > mark.history)) recordAgentHandoffs(c, sink, inner.rules, result, mark);
        return out;
      },
      options,
    )) as Committer['change'];
}

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
    agent = new MultiAgent(CONFIG, { apiKey: 'sk-test', baseURL: model.baseURL, tools: demoTools(createDemoShop()), maxRetries: 0, brandName: 'Acme' });
    t = await createTestBridge({ agent, channels: [channel], workspaces: [redactedWorkspace(workspace, new Redactor())] });
    applyHookUntilWired(t.bridge, agent);
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
