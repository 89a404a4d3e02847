/** Several agents, one turn at a time, against the loopback Chat Completions emulator. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AgentTurnInput } from '../../src/agent/agent.ts';
import { createDemoShop } from '../../src/agent/demo-data.ts';
import { AGENT_HANDOFF, type AgentHandoffEntry } from '../../src/agent/handoff-history.ts';
import { multiAgentConfigFromFile, validateMultiAgentConfig, type MultiAgentConfig } from '../../src/agent/multi-agent-config.ts';
import { MultiAgent, multiAgentFromEnv, nestedSummary } from '../../src/agent/multi-agent.ts';
import { demoTools } from '../../src/agent/tools.ts';
import { ConfigError } from '../../src/errors.ts';
import type { Conversation, Message } from '../../src/model.ts';
import { DEFAULT_POLICY } from '../../src/policy.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { conversationFixture } from '../support/conversations.ts';

const TOOLS = demoTools(createDemoShop());

function config(overrides: Partial<MultiAgentConfig> = {}): MultiAgentConfig {
  return {
    mode: 'handoffs',
    defaultAgent: 'triage',
    agents: [
      {
        name: 'triage',
        description: 'Greets the customer and finds who should help',
        instructions: 'Find out what the customer needs. Billing questions go to billing.',
        tools: ['lookup_order'],
        handoffs: [
          {
            to: 'billing',
            description: 'Charges, refunds, invoices.',
            input: z.object({ reason: z.string().min(1).describe('Why billing should take it'), order_id: z.string().regex(/^A\d{4}$/).optional().describe('The order, if known') }),
            inputFilter: 'since_last_handoff',
          },
          { to: 'shipping', inputFilter: 'nested_summary', isEnabled: ({ conversation }) => conversation.queue !== 'billing' },
        ],
      },
      { name: 'billing', description: 'Charges and refunds', instructions: 'You handle charges and refunds.', model: 'billing-model', tools: ['check_refund_eligibility', 'issue_refund'], handoffs: [{ to: 'triage' }] },
      { name: 'shipping', instructions: 'You handle deliveries.', tools: ['lookup_order'], handoffs: [{ to: 'triage' }] },
    ],
    ...overrides,
  };
}

function message(role: Message['author']['role'], text: string, i: number, extra: Partial<Message> = {}): Message {
  return { id: `msg_${i}`, at: `2025-01-01T00:00:0${i}.000Z`, author: { role, ...(role === 'agent' ? { name: 'triage' } : {}) }, text, visibility: 'public', ...extra };
}

function turn(conversation: Conversation, signal = new AbortController().signal): AgentTurnInput {
  return { conversation, policy: DEFAULT_POLICY, signal, authorize: async () => {} };
}

const toolNames = (body: { tools?: Array<{ function: { name: string } }> }) => (body.tools ?? []).map((t) => t.function.name).sort();
const systemOf = (body: { messages: Array<{ role: string; content?: unknown }> }) => String(body.messages[0]!.content);

describe('several agents', () => {
  let model: ChatEmulator;
  beforeEach(async () => {
    model = await startChatEmulator();
  });
  afterEach(async () => {
    await model.close();
  });
  const agents = (c: MultiAgentConfig = config()) => new MultiAgent(c, { apiKey: 'sk-test', baseURL: model.baseURL, tools: TOOLS, maxRetries: 0, brandName: 'Acme' });

  it('triage hands off with typed input; billing answers in the same turn, seeing only what it was handed', async () => {
    const conversation = conversationFixture({
      messages: [message('customer', 'Hi', 1), message('agent', 'Hello! How can I help?', 2), message('customer', 'I was charged twice for A1001', 3)],
    });
    model.enqueue(chat.call('transfer_to_billing', { reason: 'Double charge', order_id: 'A1001' }), chat.reply('I see two charges on A1001; one is being reversed.'));
    const result = await agents().respond(turn(conversation));

    expect(result).toMatchObject({ kind: 'reply', text: 'I see two charges on A1001; one is being reversed.', agent: 'billing' });
    expect(result.handoffs).toEqual([{ from: 'triage', to: 'billing', reason: 'Double charge', input: { reason: 'Double charge', order_id: 'A1001' }, since: 2, at: expect.any(String), via: 'agent' }]);
    const [first, second] = model.requests.map((r) => r.body);
    // Triage: its own tools, a transfer per enabled handoff, and the person.
    expect(toolNames(first!)).toEqual(['escalate_to_human', 'lookup_order', 'transfer_to_billing', 'transfer_to_shipping']);
    const transfer = first!.tools!.find((t) => t.function.name === 'transfer_to_billing')!.function;
    expect(transfer.description).toBe('Charges, refunds, invoices.');
    expect(transfer.parameters).toMatchObject({ type: 'object', required: ['reason'], properties: { reason: { type: 'string' }, order_id: { type: 'string', pattern: '^A\\d{4}$' } } });
    expect(systemOf(first!)).toContain('You are the "triage" agent.');
    // Billing: its model, its tools, the handoff in its instructions, the transcript since the handoff.
    expect(second!.model).toBe('billing-model');
    expect(toolNames(second!)).toEqual(['check_refund_eligibility', 'escalate_to_human', 'issue_refund', 'transfer_to_triage']);
    expect(systemOf(second!)).toContain('You handle charges and refunds.');
    expect(systemOf(second!)).toContain('You took this conversation over from triage: Double charge. Details: {"reason":"Double charge","order_id":"A1001"}.');
    expect(second!.messages.slice(1)).toEqual([{ role: 'user', content: 'I was charged twice for A1001' }]);
  });

  it('a transfer whose input does not fit its schema is refused to the model, which corrects it', async () => {
    const conversation = conversationFixture({ messages: [message('customer', 'refund please', 1)] });
    model.enqueue(chat.call('transfer_to_billing', { reason: 'refund', order_id: 'order one' }), chat.call('transfer_to_billing', { reason: 'refund' }), chat.reply('Billing here.'));
    const result = await agents().respond(turn(conversation));
    expect(result).toMatchObject({ kind: 'reply', agent: 'billing', handoffs: [{ from: 'triage', to: 'billing', input: { reason: 'refund' } }] });
    const refusal = model.requests[1]!.body.messages.find((m) => m.role === 'tool');
    expect(String(refusal?.content)).toMatch(/^Error: the arguments for transfer_to_billing do not match its schema \(order_id:/);
  });

  it('a handoff is offered only while its is_enabled condition holds', async () => {
    model.enqueue(chat.reply('Hello'));
    await agents().respond(turn(conversationFixture({ queue: 'billing', messages: [message('customer', 'hi', 1)] })));
    expect(toolNames(model.lastRequest())).not.toContain('transfer_to_shipping');
  });

  it('nested_summary collapses the earlier transcript into one message for the receiving agent', async () => {
    const conversation = conversationFixture({
      messages: [message('customer', 'Where is A1003?', 1), message('agent', 'Let me check.', 2), message('customer', 'It is late!', 3)],
    });
    model.enqueue(chat.call('transfer_to_shipping', { reason: 'late parcel' }), chat.reply('It arrives tomorrow.'));
    await agents().respond(turn(conversation));
    const body = model.requests[1]!.body;
    expect(systemOf(body)).toContain('collapsed into one message');
    expect(systemOf(body)).toContain('- Customer: Where is A1003?\n- triage (agent): Let me check.');
    expect(body.messages.slice(1)).toEqual([{ role: 'user', content: 'It is late!' }]);
  });

  it('after a committed handoff the agent holding the conversation answers, with the filter of the edge that brought it', async () => {
    const handoff: AgentHandoffEntry = { from: 'agent', to: 'agent', reason: AGENT_HANDOFF, by: { kind: 'agent' }, at: '2025-01-01T00:00:03.500Z', note: 'Double charge', agent_handoff: { from: 'triage', to: 'billing', since: 2 } };
    const conversation = conversationFixture({
      history: [handoff],
      messages: [message('customer', 'hi', 1), message('agent', 'Hello!', 2), message('customer', 'charged twice', 3), message('agent', 'Billing here, reversing it.', 4, { author: { role: 'agent', name: 'billing' } }), message('customer', 'thanks, when?', 5)],
    });
    model.enqueue(chat.reply('Within 3 days.'));
    const result = await agents().respond(turn(conversation));
    expect(result).toMatchObject({ agent: 'billing', handoffs: [] });
    expect(model.lastRequest().model).toBe('billing-model');
    expect(model.lastRequest().messages.slice(1)).toEqual([
      { role: 'user', content: 'charged twice' },
      { role: 'assistant', content: 'Billing here, reversing it.' },
      { role: 'user', content: 'thanks, when?' },
    ]);
  });

  it('router mode: route_conversation picks the agent first (forced tool call), and the agents get no transfer tools', async () => {
    model.enqueue(chat.call('route_conversation', { target: 'billing', reason: 'a refund question' }), chat.reply('Billing: refund is on its way.'));
    const result = await agents(config({ mode: 'router' })).respond(turn(conversationFixture({ messages: [message('customer', 'where is my refund?', 1)] })));
    expect(result).toMatchObject({ agent: 'billing', handoffs: [{ from: 'triage', to: 'billing', reason: 'a refund question', via: 'router' }] });
    const router = model.requests[0]!.body;
    expect(router.tool_choice).toEqual({ type: 'function', function: { name: 'route_conversation' } });
    expect(router.tools![0]!.function.parameters).toMatchObject({ properties: { target: { enum: ['triage', 'billing', 'shipping'] } } });
    expect(toolNames(model.requests[1]!.body)).toEqual(['check_refund_eligibility', 'escalate_to_human', 'issue_refund']);
  });

  it('router mode: a router that fails or answers nonsense leaves the current agent to answer', async () => {
    model.enqueue({ status: 500 }, chat.reply('Triage here.'), chat.call('route_conversation', { target: 'nobody' }), chat.reply('Triage again.'));
    const a = agents(config({ mode: 'router' }));
    expect(await a.respond(turn(conversationFixture({ messages: [message('customer', 'hi', 1)] })))).toMatchObject({ agent: 'triage', handoffs: [], text: 'Triage here.' });
    expect(await a.respond(turn(conversationFixture({ messages: [message('customer', 'hi', 1)] })))).toMatchObject({ agent: 'triage', handoffs: [], text: 'Triage again.' });
  });

  it("manual mode, or a pinned agent: no transfers and no router; the operator's pick answers", async () => {
    const picked: AgentHandoffEntry = { from: 'agent', to: 'agent', reason: AGENT_HANDOFF, by: { kind: 'operator', operator: { id: 'test:dana', name: 'Dana', workspace: 'test' } }, at: '2025-01-01T00:00:02.000Z', agent_handoff: { from: 'triage', to: 'shipping', pinned: true, since: 1 } };
    const conversation = conversationFixture({ history: [picked], messages: [message('customer', 'parcel?', 1)] });
    model.enqueue(chat.reply('Shipping here.'), chat.reply('Shipping again.'));
    expect(await agents(config({ mode: 'manual' })).respond(turn(conversation))).toMatchObject({ agent: 'shipping', handoffs: [] });
    expect(toolNames(model.lastRequest())).toEqual(['escalate_to_human', 'lookup_order']);
    expect(await agents(config({ mode: 'router' })).respond(turn(conversation))).toMatchObject({ agent: 'shipping', handoffs: [] });
    expect(model.requests).toHaveLength(2); // pinned: no router call
  });

  it('agents that keep handing the conversation around stop, and a person is asked', async () => {
    model.respondWith((body) => (toolNames(body).includes('transfer_to_billing') ? chat.call('transfer_to_billing', { reason: 'yours' }) : chat.call('transfer_to_triage', { reason: 'no, yours' })));
    const result = await agents(config({ maxHandoffsPerTurn: 2 })).respond(turn(conversationFixture({ messages: [message('customer', 'help', 1)] })));
    // After 2 hops no transfer tool is offered; the third model call must answer (here: it cannot, it asks a person).
    expect(result.handoffs!.map((h) => `${h.from}>${h.to}`)).toEqual(['triage>billing', 'billing>triage']);
    expect(result).toMatchObject({ kind: 'escalate', agent: 'triage' });
  });

  it('a person asked for by any agent gets the usual envelope', async () => {
    model.enqueue(chat.call('transfer_to_billing', { reason: 'refund' }), chat.call('escalate_to_human', { reason: 'Refund over my limit', summary: 'Customer wants 270 back on A1002.', intent: 'refund', pendingQuestion: 'Approve 270?' }));
    const result = await agents().respond(turn(conversationFixture({ messages: [message('customer', 'refund A1002 please', 1)] })));
    expect(result).toMatchObject({ kind: 'escalate', trigger: 'agent_tool', agent: 'billing', request: { pendingQuestion: 'Approve 270?' }, handoffs: [{ from: 'triage', to: 'billing' }] });
  });

  it('an aborted turn (a person took over) stops whichever agent is running', async () => {
    const controller = new AbortController();
    model.enqueue(chat.call('transfer_to_billing', { reason: 'refund' }), { ...chat.reply('too late'), delayMs: 30_000 });
    const running = agents().respond(turn(conversationFixture({ messages: [message('customer', 'refund', 1)] }), controller.signal));
    await model.waitForRequests(2);
    controller.abort(new Error('ownership changed'));
    await expect(running).rejects.toThrow('ownership changed');
    await model.waitForAbort(1);
  });
});

describe('several agents: configuration', () => {
  it('a file (YAML) defines agents, typed handoff input and declarative is_enabled conditions', () => {
    const c = multiAgentConfigFromFile({
      mode: 'handoffs',
      default: 'triage',
      agents: [
        { name: 'triage', instructions: 'Route.', handoffs: [{ to: 'billing', filter: 'nested_summary', input: { reason: { type: 'string' }, amount: { type: 'number', optional: true } }, enabledWhen: { queues: ['billing'], maxHandoffs: 2 } }] },
        { name: 'billing', instructions: 'Money.', tools: ['issue_refund'] },
      ],
    });
    validateMultiAgentConfig(c, TOOLS);
    const h = c.agents[0]!.handoffs![0]!;
    expect(h.inputFilter).toBe('nested_summary');
    expect(h.input!.safeParse({ reason: 'x', amount: 5 }).success).toBe(true);
    expect(h.input!.safeParse({ amount: 5 }).success).toBe(false);
    const cond = (queue: string, handoffs: number) => h.isEnabled!({ conversation: conversationFixture({ queue }), from: 'triage', to: 'billing', handoffs });
    expect([cond('billing', 0), cond('general', 0), cond('billing', 2)]).toEqual([true, false, false]);
  });

  it.each([
    [{ default: 'triage', agents: [{ name: 'Triage', instructions: 'x' }] }, /agent name "Triage" must be/],
    [{ default: 'triage', agents: [{ name: 'triage', instructions: 'x', handoffs: [{ to: 'billing' }] }] }, /hands off to "billing", which is not defined/],
    [{ default: 'nobody', agents: [{ name: 'triage', instructions: 'x' }] }, /the default agent "nobody" is not defined/],
    [{ default: 'triage', agents: [{ name: 'triage', instructions: 'x', tools: ['teleport'] }] }, /no tool named "teleport"/],
    [{ default: 'triage', agents: [{ name: 'triage', instructions: 'x', handoffs: [{ to: 'triage' }] }] }, /cannot hand off to itself/],
    [{ default: 'triage', agents: [] }, /^AGENTS_FILE: agents: /],
  ])('refuses a wrong configuration in one line: %j', (raw, message) => {
    expect(() => validateMultiAgentConfig(multiAgentConfigFromFile(raw), TOOLS, 'AGENTS_FILE')).toThrow(message);
  });

  it('AGENTS_FILE turns several agents on; unset, the single agent stays', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agents-'));
    try {
      const file = join(dir, 'agents.yaml');
      writeFileSync(file, ['mode: router', 'default: triage', 'agents:', '  - name: triage', '    instructions: Route.', '  - name: billing', '    instructions: Money.'].join('\n'));
      expect(multiAgentFromEnv({}, { tools: TOOLS })).toBeUndefined();
      expect(() => multiAgentFromEnv({ AGENTS_FILE: file }, { tools: TOOLS })).toThrow(ConfigError);
      const agent = multiAgentFromEnv({ AGENTS_FILE: file, OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'http://127.0.0.1:1/v1' }, { tools: TOOLS })!;
      expect(agent.agents).toEqual({ names: ['triage', 'billing'], defaultAgent: 'triage' });
      expect(() => multiAgentFromEnv({ AGENTS_FILE: join(dir, 'missing.yaml'), OPENAI_API_KEY: 'sk-x' }, { tools: TOOLS })).toThrow(/^AGENTS_FILE: expected a readable YAML or JSON file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the nested summary keeps the newest part of a long transcript', () => {
    const long = Array.from({ length: 400 }, (_, i) => message('customer', `message number ${i} ${'x'.repeat(20)}`, i % 10));
    const text = nestedSummary(long);
    expect(text.length).toBeLessThanOrEqual(6000);
    expect(text.startsWith('…')).toBe(true);
    expect(text).toContain('message number 399');
  });
});
