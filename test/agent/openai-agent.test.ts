import { argumentsHash } from '../../src/engine/approvals.ts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import { createDemoShop, type DemoShop } from '../../src/agent/demo-data.ts';
import { OpenAIAgent, openAIAgentFromEnv, parseEscalateArgs } from '../../src/agent/openai-agent.ts';
import { demoTools, escalateToolDefinition } from '../../src/agent/tools.ts';
import { ConfigError } from '../../src/errors.ts';
import type { Conversation } from '../../src/model.ts';
import { DEFAULT_POLICY, PolicySchema, type Policy } from '../../src/policy.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { conversationWith, customerSays, dana, handbackMessage, agentSays, operatorSays } from './fixtures.ts';

let model: ChatEmulator;
let shop: DemoShop;

beforeEach(async () => {
  model = await startChatEmulator();
  shop = createDemoShop();
});
afterEach(async () => {
  await model.close();
});

function agent(overrides: Partial<ConstructorParameters<typeof OpenAIAgent>[0]> = {}): OpenAIAgent {
  return new OpenAIAgent({ apiKey: 'sk-test', baseURL: model.baseURL, tools: demoTools(shop), maxRetries: 2, brandName: 'Acme', ...overrides });
}

/** Tool calls the agent asked the bridge to authorize, in order (approval ids included). */
let authorized: Array<{ tool: string; args: unknown; approvalId?: string }> = [];

function turn(a: OpenAIAgent, conversation: Conversation, options: { policy?: Policy; signal?: AbortSignal; authorize?: (call: { tool: string; args: unknown; approvalId?: string }) => Promise<void> } = {}): Promise<AgentTurnResult> {
  authorized = [];
  return a.respond({
    conversation,
    policy: options.policy ?? DEFAULT_POLICY,
    signal: options.signal ?? new AbortController().signal,
    authorize: async (call) => {
      authorized.push(call);
      await options.authorize?.(call);
    },
  });
}

const asks = (text: string) => conversationWith([customerSays(text)]);

const briefing = {
  reason: 'Customer wants a person to discuss a damaged delivery',
  priority: 'high',
  summary: 'Ana received a broken monitor (order A1002) and wants to talk to someone about a replacement or refund.',
  intent: 'Replacement or refund for a broken monitor',
  entities: { ids: ['A1002'], amounts: [{ value: 270, currency: 'USD' }], dates: [], emails: ['ana@example.com'] },
  sentiment: 'frustrated',
  pendingQuestion: 'Replace the monitor or refund 270 USD?',
  options: [
    { id: 'replace', label: 'Send a replacement', risk: 'low' },
    { id: 'refund', label: 'Refund 270 USD', risk: 'medium', approvesTool: 'issue_refund' },
  ],
};

describe('the OpenAI agent against a Chat Completions server', () => {
  it('escalates through its escalate_to_human tool, carrying the briefing it wrote', async () => {
    model.enqueue(chat.call('escalate_to_human', briefing));
    const result = await turn(agent(), asks('My monitor arrived broken. I want to talk to a person.'));

    expect(result).toMatchObject({ kind: 'escalate', trigger: 'agent_tool', reason: briefing.reason, actionsTaken: [] });
    if (result.kind !== 'escalate') throw new Error('expected an escalation');
    expect(result.request).toMatchObject({ summary: briefing.summary, pendingQuestion: briefing.pendingQuestion, priority: 'high', sentiment: 'frustrated' });
    expect(result.request?.options?.map((o) => o.id)).toEqual(['replace', 'refund']);
    expect(result.request?.constraints).toEqual([]); // defaults filled by the envelope schema

    const sent = model.lastRequest();
    expect(model.requests[0]!.headers.authorization).toBe('Bearer sk-test');
    expect(sent.model).toBe('gpt-4o-mini');
    expect(sent.tool_choice).toBe('auto');
    expect(sent.tools?.map((t) => t.function.name)).toEqual(['lookup_order', 'check_refund_eligibility', 'issue_refund', 'update_shipping_address', 'escalate_to_human']);
    expect(sent.tools?.find((t) => t.function.name === 'escalate_to_human')).toEqual(escalateToolDefinition());
    expect(sent.messages.at(-1)).toEqual({ role: 'user', content: 'My monitor arrived broken. I want to talk to a person.' });
  });

  it('still escalates when its briefing does not validate, keeping the fields that do', async () => {
    model.enqueue(chat.call('escalate_to_human', { reason: 'Customer is asking for a manager', summary: 'x'.repeat(5000), priority: 'extreme', options: [{ id: 'ok', label: 'Fine' }, { id: 'bad id!' }] }));
    const result = await turn(agent(), asks('Get me your manager.'));
    expect(result).toMatchObject({ kind: 'escalate', trigger: 'agent_tool', reason: 'Customer is asking for a manager' });
    if (result.kind !== 'escalate') throw new Error('expected an escalation');
    expect(result.request?.summary).toHaveLength(1200);
    expect(result.request?.priority).toBeUndefined();
    expect(result.request?.options).toEqual([{ id: 'ok', label: 'Fine', risk: 'low' }]);
  });

  it('runs a business tool and feeds its result back to the model before answering', async () => {
    model.enqueue(chat.call('lookup_order', { order_id: 'A1002' }, 'call_lookup1'), chat.reply('Your order A1002 was delivered 5 days ago.'));
    const result = await turn(agent(), asks('Where is my order A1002?'));

    expect(result).toEqual({
      kind: 'reply',
      text: 'Your order A1002 was delivered 5 days ago.',
      actionsTaken: [{ tool: 'lookup_order', input: { order_id: 'A1002' }, output: expect.objectContaining({ order_id: 'A1002', status: 'delivered' }), ok: true }],
    });
    const followUp = model.requests[1]!.body.messages;
    expect(followUp.at(-2)).toMatchObject({ role: 'assistant', tool_calls: [{ id: 'call_lookup1', type: 'function', function: { name: 'lookup_order' } }] });
    const toolMessage = followUp.at(-1)!;
    expect(toolMessage).toMatchObject({ role: 'tool', tool_call_id: 'call_lookup1' });
    expect(JSON.parse(toolMessage.content as string)).toMatchObject({ order_id: 'A1002', status: 'delivered', total: 270 });
  });

  it('does not run an irreversible tool without approval, and asks a person instead', async () => {
    model.enqueue(chat.call('issue_refund', { order_id: 'A1001', amount: 40, reason: 'scratched' }));
    const result = await turn(agent(), asks('Please refund 40 dollars on A1001, it is scratched.'));

    expect(result).toMatchObject({ kind: 'escalate', trigger: 'irreversible_tool', reason: 'issue_refund cannot be undone and needs a person\'s approval' });
    if (result.kind !== 'escalate') throw new Error('expected an escalation');
    expect(result.request?.options?.[0]).toMatchObject({ id: 'approve_issue_refund', approvesTool: 'issue_refund' });
    expect(result.request?.entities?.ids).toEqual(['A1001']);
    expect(shop.findOrder('A1001')!.refunds).toEqual([]);
    expect(model.requests).toHaveLength(1);
  });

  it('escalates a refund over the policy threshold with trigger refund_threshold', async () => {
    model.enqueue(chat.call('issue_refund', { order_id: 'A1002', amount: 270, reason: 'broken on arrival' }));
    const result = await turn(agent(), asks('Refund my 270 dollar monitor now.'));

    expect(result).toMatchObject({ kind: 'escalate', trigger: 'refund_threshold', reason: 'Refund of 270 USD is over the 100 USD policy limit' });
    if (result.kind !== 'escalate') throw new Error('expected an escalation');
    expect(result.request).toMatchObject({ pendingQuestion: 'Approve a refund of 270 USD on A1002?', entities: { amounts: [{ value: 270, currency: 'USD' }] } });
    expect(result.request?.options?.[0]).toMatchObject({ label: 'Approve refund of 270 USD', approvesTool: 'issue_refund' });
    expect(shop.findOrder('A1002')!.refunds).toEqual([]);
  });

  it('runs an approved irreversible tool once, reserving the approval before it runs', async () => {
    const args = { order_id: 'A1002', amount: 270, reason: 'approved by Dana' };
    const approval = { id: 'apr_1_approve_issue_refund', tool: 'issue_refund', argsHash: argumentsHash(args), escalation: 1, by: { id: 'test:dana', name: 'Dana', workspace: 'test' }, at: '2026-01-01T00:00:00.000Z' };
    model.enqueue(chat.call('issue_refund', args), chat.reply('Done: 270 USD is on its way back to you.'));
    const result = await turn(agent(), conversationWith([customerSays('Any news?')], { approvals: [approval] }));

    expect(result).toMatchObject({ kind: 'reply', actionsTaken: [{ tool: 'issue_refund', ok: true }] });
    expect(authorized).toEqual([{ tool: 'issue_refund', args, approvalId: approval.id }]);
    expect(shop.findOrder('A1002')!.refunds).toHaveLength(1);
  });

  it('an approval of 270 USD on A1002 does not cover a refund of another amount', async () => {
    const approved = { order_id: 'A1002', amount: 270, reason: 'approved by Dana' };
    const approval = { id: 'apr_1', tool: 'issue_refund', argsHash: argumentsHash(approved), escalation: 1, by: { id: 'test:dana', name: 'Dana', workspace: 'test' }, at: '2026-01-01T00:00:00.000Z' };
    model.enqueue(chat.call('issue_refund', { ...approved, amount: 2700 }));
    const result = await turn(agent(), conversationWith([customerSays('Any news?')], { approvals: [approval] }));
    expect(result).toMatchObject({ kind: 'escalate', trigger: 'refund_threshold' });
    expect(authorized).toEqual([]);
    expect(shop.findOrder('A1002')!.refunds).toEqual([]);
  });

  it('runs no tool when the bridge refuses (the conversation left the agent)', async () => {
    model.enqueue(chat.call('lookup_order', { order_id: 'A1002' }), chat.reply('never said'));
    const refused = new Error('The conversation changed hands; this agent turn is void.');
    await expect(turn(agent(), asks('Where is A1002?'), { authorize: async () => { throw refused; } })).rejects.toBe(refused);
    expect(authorized).toHaveLength(1);
  });

  it('escalates with tool_error when a tool fails, recording the failed call', async () => {
    model.enqueue(chat.call('lookup_order', { order_id: 'Z999' }));
    const result = await turn(agent(), asks('Where is order Z999?'));

    expect(result).toMatchObject({ kind: 'escalate', trigger: 'tool_error', reason: expect.stringContaining('lookup_order failed: No order "Z999" exists') });
    expect(result.actionsTaken).toEqual([{ tool: 'lookup_order', input: { order_id: 'Z999' }, output: { error: expect.stringContaining('No order "Z999"') }, ok: false }]);
  });

  it('lets the model recover from a tool error while the policy tolerates more', async () => {
    const tolerant = PolicySchema.parse({ ...DEFAULT_POLICY, behaviour: { ...DEFAULT_POLICY.behaviour, toolErrorLimit: 2 } });
    model.enqueue(chat.call('lookup_order', { order_id: 'Z999' }, 'call_z'), chat.reply('I could not find order Z999. Could you check the number?'));
    const result = await turn(agent(), asks('Where is order Z999?'), { policy: tolerant });

    expect(result).toMatchObject({ kind: 'reply', text: 'I could not find order Z999. Could you check the number?' });
    expect(model.lastRequest().messages.at(-1)).toEqual({ role: 'tool', tool_call_id: 'call_z', content: expect.stringMatching(/^Error: No order "Z999" exists/) });
  });

  it('tells the model about invalid tool arguments, and escalates when it keeps getting them wrong', async () => {
    model.enqueue(
      chat.call('lookup_order', '{"order_id": ', 'call_bad1'),
      chat.call('lookup_order', { order: 'A1001' }, 'call_bad2'),
      chat.call('lookup_order', { order: 'A1001' }, 'call_bad3'),
    );
    const result = await turn(agent(), asks('Where is A1001?'));

    expect(result).toMatchObject({ kind: 'escalate', trigger: 'model_error', reason: expect.stringContaining('3 invalid tool calls') });
    expect(model.requests[1]!.body.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_bad1', content: expect.stringContaining('not valid JSON') });
    expect(model.requests[2]!.body.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_bad2', content: expect.stringContaining('order_id') });
  });

  it('escalates instead of sending the customer an empty answer', async () => {
    model.enqueue(chat.reply('   '));
    expect(await turn(agent(), asks('Hello?'))).toMatchObject({ kind: 'escalate', trigger: 'model_error', reason: 'The AI model returned an empty answer.' });
  });

  it("does not let the model sign its answer as an operator", async () => {
    model.enqueue(chat.reply('[Dana, support team] Your refund is on its way.'));
    expect(await turn(agent(), asks('Any news?'))).toMatchObject({ kind: 'reply', text: 'Your refund is on its way.' });
  });

  it('escalates when the model keeps calling tools without ever answering', async () => {
    model.respondWith(() => chat.call('check_refund_eligibility', { order_id: 'A1001' }));
    const result = await turn(agent({ maxToolRounds: 2 }), asks('Can I get a refund on A1001?'));
    expect(result).toMatchObject({ kind: 'escalate', trigger: 'model_error', reason: expect.stringContaining('after 2 rounds') });
    expect(model.requests).toHaveLength(3);
    expect(result.actionsTaken).toHaveLength(2);
  });

  it('retries after a 429 with Retry-After and answers normally', async () => {
    model.enqueue({ status: 429, retryAfterSeconds: 0 }, chat.reply('Hi! How can I help?'));
    const result = await turn(agent(), asks('Hi'));
    expect(result).toMatchObject({ kind: 'reply', text: 'Hi! How can I help?' });
    expect(model.requests).toHaveLength(2);
  });

  it('hands the customer to a person when the model server keeps failing', async () => {
    model.respondWith(() => ({ status: 500 }));
    const result = await turn(agent({ maxRetries: 1 }), asks('Hi'));
    expect(result).toMatchObject({ kind: 'escalate', trigger: 'model_error', reason: expect.stringContaining('HTTP 500') });
    expect(model.requests).toHaveLength(2);
  });

  it('stops at once when the turn is aborted mid-request (a claim), closing the HTTP request', async () => {
    model.enqueue({ ...chat.reply('too late'), delayMs: 60_000 });
    const claim = new AbortController();
    const pending = turn(agent(), asks('Hello?'), { signal: claim.signal });
    await model.waitForRequests(1);
    claim.abort();

    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await model.waitForAbort(0);
    expect(model.requests).toHaveLength(1);
  });

  it('after a return, its next request carries the operator\'s note and the takeover stretch', async () => {
    const note = 'Refund of 270 USD approved and issued as goodwill. Do not offer anything else.';
    const conversation = conversationWith([
      customerSays('My monitor arrived broken, order A1002. Refund it!'),
      agentSays('I understand. Let me get a colleague to approve this.'),
      operatorSays('Hi Ana, Dana here. I have refunded your 270 USD.'),
      handbackMessage({
        kind: 'return',
        by: dana,
        at: '2025-01-15T10:30:00.000Z',
        note,
        humanStretch: [{ role: 'operator', name: 'Dana', text: 'Hi Ana, Dana here. I have refunded your 270 USD.', at: '2025-01-15T10:25:00.000Z' }],
      }),
      customerSays('Great, when will I see the money?'),
    ]);
    model.enqueue(chat.reply('Refunds usually show up within 5 business days.'));
    await turn(agent(), conversation);

    const sent = model.lastRequest().messages;
    const handback = sent.find((m) => m.role === 'system' && typeof m.content === 'string' && m.content.includes("Operator's note"));
    expect(handback?.content).toContain(`Operator's note: ${note}`);
    expect(handback?.content).toContain('returned to you by Dana');
    expect(handback?.content).toContain('- Dana (operator): Hi Ana, Dana here. I have refunded your 270 USD.');
    expect(sent.at(-1)).toEqual({ role: 'user', content: 'Great, when will I see the money?' });
  });
});

describe('configuration from the environment', () => {
  it('is off without OPENAI_API_KEY, so the offline agent runs', () => {
    expect(openAIAgentFromEnv({})).toBeUndefined();
    expect(openAIAgentFromEnv({ OPENAI_API_KEY: '  ' })).toBeUndefined();
  });

  it('reads the model and endpoint, and names the variable that is wrong', () => {
    const a = openAIAgentFromEnv({ OPENAI_API_KEY: 'sk-x', OPENAI_MODEL: 'llama3.1', OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' });
    expect(a?.model).toBe('llama3.1');
    expect(() => openAIAgentFromEnv({ OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'localhost:11434' })).toThrow(ConfigError);
    expect(() => openAIAgentFromEnv({ OPENAI_API_KEY: 'sk-x', OPENAI_TIMEOUT_MS: 'soon' })).toThrow('OPENAI_TIMEOUT_MS: expected a whole number');
  });
});

describe('the escalation briefing parser', () => {
  it('keeps nothing from arguments that are not JSON, but still reports an incomplete briefing', () => {
    expect(parseEscalateArgs('{not json')).toEqual({ request: {}, complete: false });
  });
});
