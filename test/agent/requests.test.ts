/**
 * What the agent sends to the model, measured on the wire (the Chat Completions emulator records
 * every request body): the transcript window with its summary, the tools offered in each state, and
 * the request's size. Sizes are compared as ratios within the test, never as absolute figures.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AgentTool } from '../../src/agent/agent.ts';
import { DEFAULT_TRANSCRIPT_WINDOW } from '../../src/agent/context.ts';
import { createDemoShop } from '../../src/agent/demo-data.ts';
import { OpenAIAgent, openAIAgentFromEnv } from '../../src/agent/openai-agent.ts';
import { defineTool, demoTools } from '../../src/agent/tools.ts';
import { escalateToolJsonSchema } from '../../src/envelope.ts';
import { ConfigError } from '../../src/errors.ts';
import type { Approval, Conversation, Message } from '../../src/model.ts';
import { DEFAULT_POLICY } from '../../src/policy.ts';
import { chat, startChatEmulator, type ChatEmulator, type ChatRequestBody } from '../emulators/openai-chat.ts';
import { agentSays, conversationWith, customerSays, dana, handbackMessage, operatorSays } from './fixtures.ts';

let model: ChatEmulator;

beforeEach(async () => {
  model = await startChatEmulator();
});
afterEach(async () => {
  await model.close();
});

function agent(overrides: Partial<ConstructorParameters<typeof OpenAIAgent>[0]> = {}): OpenAIAgent {
  return new OpenAIAgent({ apiKey: 'sk-test', baseURL: model.baseURL, tools: demoTools(createDemoShop()), maxRetries: 0, brandName: 'Acme', ...overrides });
}

function turn(a: OpenAIAgent, conversation: Conversation) {
  return a.respond({ conversation, policy: DEFAULT_POLICY, signal: new AbortController().signal, authorize: async () => undefined });
}

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
const toolNames = (body: ChatRequestBody) => (body.tools ?? []).map((t) => t.function.name);

/** Customer questions and agent answers like the end-to-end bench's, `count` messages in all. */
function smallTalk(count: number): Message[] {
  const questions = ['Where is my order 10042? It was supposed to arrive yesterday.', 'Can I change the delivery address for order 10043?', 'How long does shipping to Lisbon usually take?', 'Is it possible to pay by bank transfer?'];
  return Array.from({ length: count }, (_, i) =>
    i % 2 === 0 ? customerSays(questions[(i / 2) % questions.length]!) : agentSays('Thanks for your message! Your order is on its way and should arrive within two days.'),
  );
}

describe('the transcript window, on the wire', () => {
  it('a 100-message conversation: the system message with a summary of the older part, the latest hand-back, the latest 19 to 24 messages', async () => {
    const note = 'Refund of 270 USD issued as goodwill. Do not offer anything else.';
    const messages = [
      customerSays('My monitor arrived broken, order A1002. Refund it!'),
      operatorSays('Hi Ana, Dana here. I have refunded your 270 USD.'),
      handbackMessage({ kind: 'return', by: dana, at: '2025-01-15T10:30:00.000Z', note, humanStretch: [{ role: 'operator', name: 'Dana', text: 'Hi Ana, Dana here. I have refunded your 270 USD.', at: '2025-01-15T10:25:00.000Z' }] }),
      ...smallTalk(96),
      customerSays('And when will I see the money?'),
    ];
    expect(messages).toHaveLength(100);
    model.respondWith(() => chat.reply('Within 5 business days.'));
    await turn(agent(), conversationWith(messages));
    const windowed = model.lastRequest();
    await turn(agent({ maxTranscriptMessages: 1000 }), conversationWith(messages));
    const whole = model.lastRequest();

    // 76 over the window of 24, rounded up to its quarter (6): 78 summarised (the hand-back among them is carried whole), 22 sent.
    expect(DEFAULT_TRANSCRIPT_WINDOW).toBe(24);
    expect(windowed.messages).toHaveLength(1 + 1 + 22);
    expect(windowed.messages.slice(2)).toEqual(whole.messages.slice(-22));
    expect(windowed.messages.at(-1)).toEqual({ role: 'user', content: 'And when will I see the money?' });
    // The hand-back binds the agent: it is sent whole even though it is older than the window.
    expect(windowed.messages[1]).toMatchObject({ role: 'system', content: expect.stringContaining(`Operator's note: ${note}`) });
    const system = String(windowed.messages[0]!.content);
    expect(system).toContain('Summary of the 77 earlier messages not shown');
    expect(system).toContain('- The customer first wrote: "My monitor arrived broken, order A1002. Refund it!"');
    expect(system).toContain('- The support team told the customer: Dana: "Hi Ana, Dana here. I have refunded your 270 USD."');
    // Same tools, a fraction of the transcript.
    expect(windowed.tools).toEqual(whole.tools);
    expect(bytes(windowed)).toBeLessThan(bytes(whole) * 0.65);
    console.info(`100-message conversation: ${bytes(whole)} bytes with the whole transcript, ${bytes(windowed)} with the window and summary`);
  });

  it('is configurable, also from AGENT_TRANSCRIPT_WINDOW', async () => {
    model.respondWith(() => chat.reply('ok'));
    const conversation = conversationWith(smallTalk(21));
    await turn(agent({ maxTranscriptMessages: 10 }), conversation);
    // 11 over, rounded up to the window's quarter (2): 12 summarised, 9 sent.
    expect(model.lastRequest().messages).toHaveLength(1 + 9);
    await turn(openAIAgentFromEnv({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: model.baseURL, AGENT_TRANSCRIPT_WINDOW: '6' })!, conversation);
    expect(model.lastRequest().messages).toHaveLength(1 + 6);
    expect(String(model.lastRequest().messages[0]!.content)).toContain('Summary of the 15 earlier messages not shown');
    expect(() => openAIAgentFromEnv({ OPENAI_API_KEY: 'sk-test', AGENT_TRANSCRIPT_WINDOW: '0' })).toThrow(ConfigError);
  });
});

describe('the tools offered in each state', () => {
  const ALL = ['lookup_order', 'check_refund_eligibility', 'issue_refund', 'update_shipping_address', 'escalate_to_human'];
  const approval = (overrides: Partial<Approval> = {}): Approval => ({ id: 'apr_1', tool: 'issue_refund', argsHash: 'x', escalation: 1, by: dana, at: '2026-01-01T00:00:00.000Z', ...overrides });
  const pending = { trigger: 'explicit_request', reason: 'Customer asked for a person', at: '2026-01-01T00:00:00.000Z' };

  it.each([
    ['the usual state', {}, ALL],
    ['an open approval', { approvals: [approval()] }, ALL],
    // Nobody can approve now, so an irreversible call could only end the turn in silence.
    ['an escalation pending (nobody can answer yet)', { pendingEscalation: pending }, ALL.filter((t) => t !== 'issue_refund')],
    ['an escalation pending, with an open approval for the refund', { pendingEscalation: pending, approvals: [approval()] }, ALL],
    ['an escalation pending, the approval used up', { pendingEscalation: pending, approvals: [approval({ usedAt: '2026-01-01T00:01:00.000Z' })] }, ALL.filter((t) => t !== 'issue_refund')],
  ] as Array<[string, Partial<Conversation>, string[]]>)('%s', async (_state, overrides, expected) => {
    model.enqueue(chat.reply('ok'));
    await turn(agent(), conversationWith([customerSays('Refund A1001 please')], overrides));
    expect(toolNames(model.lastRequest())).toEqual(expected);
  });

  it('on the last tool round of a turn only escalate_to_human is offered: a business call then could only escalate', async () => {
    model.enqueue(chat.call('lookup_order', { order_id: 'A1002' }), chat.reply('It was delivered.'));
    const result = await turn(agent({ maxToolRounds: 1 }), conversationWith([customerSays('Where is A1002?')]));
    expect(result).toMatchObject({ kind: 'reply', text: 'It was delivered.' });
    expect(model.requests.map((r) => toolNames(r.body))).toEqual([ALL, ['escalate_to_human']]);
  });

  it("leaves out a tool whose own precondition does not hold, and does not run it if the model calls it anyway", async () => {
    const runs: unknown[] = [];
    const resend: AgentTool = defineTool({
      name: 'resend_receipt',
      description: 'Email the receipt again.',
      parameters: z.object({ order_id: z.string() }),
      isEnabled: ({ conversation }) => conversation.customer.email !== undefined,
      async run(args) {
        runs.push(args);
        return 'sent';
      },
    });
    const a = agent({ tools: [resend] });

    model.enqueue(chat.reply('ok'));
    await turn(a, conversationWith([customerSays('Send my receipt')]));
    expect(toolNames(model.lastRequest())).toEqual(['resend_receipt', 'escalate_to_human']);

    const anonymous = conversationWith([customerSays('Send my receipt')], { customer: { id: 'visitor-9' } });
    model.enqueue(chat.call('resend_receipt', { order_id: 'A1001' }, 'call_r'), chat.reply('What is your email address?'));
    const result = await turn(a, anonymous);
    expect(model.requests.at(-2)!.body.tools?.map((t) => t.function.name)).toEqual(['escalate_to_human']);
    expect(model.lastRequest().messages.at(-1)).toEqual({ role: 'tool', tool_call_id: 'call_r', content: expect.stringContaining('resend_receipt is not available in this conversation now') });
    expect(result).toMatchObject({ kind: 'reply', text: 'What is your email address?', actionsTaken: [] });
    expect(runs).toEqual([]);
  });
});

describe('the size of a request', () => {
  it('a 20-message conversation: the tools and the prompt are smaller, the transcript is sent whole', async () => {
    const tools = demoTools(createDemoShop());
    model.enqueue(chat.reply('ok'));
    const conversation = conversationWith([...smallTalk(20), customerSays('And one more thing?')]);
    await turn(agent({ tools }), conversation);
    const sent = model.lastRequest();

    expect(sent.messages).toHaveLength(1 + 21);
    expect(String(sent.messages[0]!.content)).not.toContain('Summary of');
    // The tools as they were sent before: each zod schema in full, the briefing's full schema.
    const full = [
      ...tools.map((t) => {
        const { $schema: _, ...parameters } = z.toJSONSchema(t.parameters, { io: 'input', unrepresentable: 'any' });
        return { type: 'function', function: { name: t.name, description: t.description, parameters } };
      }),
      {
        type: 'function',
        function: {
          name: 'escalate_to_human',
          description:
            'Hand the conversation to a person on the support team, with a briefing they can act on in 30 seconds. Use it when the customer asks for a person, when you cannot resolve the request, or when a decision is above your authority.',
          parameters: escalateToolJsonSchema(),
        },
      },
    ];
    const before = { ...sent, tools: full };
    expect(bytes(sent.tools)).toBeLessThan(bytes(full) * 0.85);
    expect(bytes(sent)).toBeLessThan(bytes(before) * 0.9);
    console.info(`20-message conversation: tools ${bytes(full)} -> ${bytes(sent.tools)} bytes, request ${bytes(before)} -> ${bytes(sent)} bytes (transcript and prompt as sent now)`);
  });
});

describe('the headers of a request', () => {
  it('carry the key, the content type and the bridge as user agent; no SDK telemetry headers', async () => {
    model.enqueue(chat.reply('ok'));
    await turn(agent(), conversationWith([customerSays('Hello?')]));
    const headers = model.requests.at(-1)!.headers;
    expect(headers.authorization).toBe('Bearer sk-test');
    expect(headers['content-type']).toBe('application/json');
    expect(headers['user-agent']).toMatch(/^handoff-bridge /);
    expect(Object.keys(headers).filter((h) => h.startsWith('x-stainless'))).toEqual([]);
  });
});
