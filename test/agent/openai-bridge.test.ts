import { StaleBriefingError } from '../../src/errors.ts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDemoShop, type DemoShop } from '../../src/agent/demo-data.ts';
import { OpenAIAgent } from '../../src/agent/openai-agent.ts';
import { demoTools } from '../../src/agent/tools.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { createTestBridge, DANA, type TestBridge } from '../support/harness.ts';
import { MemoryChannel, MemoryWorkspace } from '../support/memory-ports.ts';

const customer = { id: 'visitor-7', name: 'Ana Souza', email: 'ana@example.com' };

describe('the OpenAI agent inside the bridge', () => {
  let model: ChatEmulator;
  let shop: DemoShop;
  let t: TestBridge;
  let channel: MemoryChannel;
  let workspace: MemoryWorkspace;

  beforeEach(async () => {
    model = await startChatEmulator();
    shop = createDemoShop();
    channel = new MemoryChannel('webchat');
    workspace = new MemoryWorkspace('test');
    const agent = new OpenAIAgent({ apiKey: 'sk-test', baseURL: model.baseURL, tools: demoTools(shop), maxRetries: 0, brandName: 'Acme' });
    t = await createTestBridge({ agent, channels: [channel], workspaces: [workspace] });
  });
  afterEach(async () => {
    await t.close();
    await model.close();
  });

  it("escalates through its tool, and after the return its next request carries the operator's note", async () => {
    const { bridge } = t;
    model.enqueue(
      chat.call('escalate_to_human', {
        reason: 'Damaged monitor; customer wants a replacement, which I cannot arrange',
        summary: 'Ana received a broken 27" monitor (order A1002, delivered 5 days ago) and wants a replacement.',
        intent: 'Replacement for a broken monitor',
        pendingQuestion: 'Can we ship a replacement monitor?',
        sentiment: 'frustrated',
      }),
    );
    const first = await bridge.customerMessage({ origin: 'webchat', customer, text: 'My monitor from order A1002 arrived with a cracked screen. Can you send a new one?' });
    const id = first.conversation.id;
    await bridge.idle();

    let c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('waiting');
    expect(c.briefing).toMatchObject({ trigger: 'agent_tool', pendingQuestion: 'Can we ship a replacement monitor?', summary: expect.stringContaining('order A1002') });
    expect(workspace.briefings.map((b) => b.conversationId)).toEqual([id]);

    await bridge.claim({ conversationId: id, operator: DANA });
    await bridge.operatorMessage({ conversationId: id, operator: DANA, text: 'Hi Ana, Dana here. A replacement is on its way as order A1006.' });
    const note = 'Replacement shipped as order A1006, arriving in 3 days. No refund needed.';
    await bridge.returnToAgent({ conversationId: id, operator: DANA, note });
    await bridge.idle();
    expect(model.requests).toHaveLength(1); // the agent stayed silent while Dana held it

    model.enqueue(chat.reply('Your replacement (order A1006) should arrive in about 3 days.'));
    await bridge.customerMessage({ conversationId: id, origin: 'webchat', customer, text: 'Thank you! When will it arrive?' });
    await bridge.idle();

    expect(model.requests).toHaveLength(2);
    const sent = JSON.stringify(model.lastRequest().messages);
    expect(sent).toContain(`Operator's note: ${note}`);
    expect(sent).toContain('[Dana, support team] Hi Ana, Dana here. A replacement is on its way as order A1006.');
    expect(model.lastRequest().messages.at(-1)).toEqual({ role: 'user', content: 'Thank you! When will it arrive?' });
    expect(channel.texts(id).at(-1)).toBe('Your replacement (order A1006) should arrive in about 3 days.');
    c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('agent');
  });

  it('an operator taking over mid-answer cancels the model request, and nothing the agent wrote reaches the customer', async () => {
    const { bridge } = t;
    model.enqueue({ ...chat.reply('An answer nobody should see.'), delayMs: 60_000 });
    const first = await bridge.customerMessage({ origin: 'webchat', customer, text: 'Where is my order A1003?' });
    const id = first.conversation.id;
    await model.waitForRequests(1);

    await bridge.takeOver({ conversationId: id, operator: DANA });
    await model.waitForAbort(0);
    await bridge.idle();

    const c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('human');
    expect(channel.texts(id).join('\n')).not.toContain('An answer nobody should see.');
    expect(c.messages.filter((m) => m.author.role === 'agent')).toEqual([]);
  });

  it('asks a person to approve a large refund, then issues it once the operator approves from the card', async () => {
    const { bridge } = t;
    model.enqueue(chat.call('issue_refund', { order_id: 'A1002', amount: 270, reason: 'cracked screen' }));
    const first = await bridge.customerMessage({ origin: 'webchat', customer, text: 'My monitor from order A1002 arrived cracked. Please refund the 270 USD.' });
    const id = first.conversation.id;
    await bridge.idle();

    let c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('waiting');
    expect(c.briefing?.trigger).toBe('refund_threshold');
    const approve = c.briefing?.options.find((o) => o.approvesTool === 'issue_refund');
    expect(approve).toBeDefined();
    expect(shop.findOrder('A1002')!.refunds).toEqual([]);

    // The approval covers the call the card showed: the agent makes exactly that call.
    model.enqueue(
      chat.call('issue_refund', { order_id: 'A1002', amount: 270, reason: 'cracked screen' }),
      chat.reply('Your refund of 270 USD has been issued.'),
    );
    await bridge.decide({ conversationId: id, operator: DANA, optionId: approve!.id, escalation: 1 });
    await bridge.idle();

    expect(JSON.stringify(model.requests[1]!.body.messages)).toContain(`Decision: ${approve!.label} [${approve!.id}], chosen by Dana`);
    expect(shop.findOrder('A1002')!.refunds).toMatchObject([{ amount: 270 }]);
    c = (await bridge.getConversation(id))!;
    // Used up, recorded, and shown in the thread.
    expect(c.approvals).toMatchObject([{ tool: 'issue_refund', escalation: 1, by: DANA }]);
    expect(c.approvals[0]!.usedAt).toBeDefined();
    expect(c.messages.some((m) => m.text === "The agent used Dana's approval to run issue_refund.")).toBe(true)
    expect(channel.texts(id).at(-1)).toBe('Your refund of 270 USD has been issued.');
  });

  it('an approval cannot be reused, stretched to another amount, or given by a stale card', async () => {
    const { bridge } = t;
    model.enqueue(chat.call('issue_refund', { order_id: 'A1002', amount: 270, reason: 'cracked screen' }));
    const { conversation } = await bridge.customerMessage({ origin: 'webchat', customer, text: 'Refund my 270 USD for A1002 please.' });
    await bridge.idle();
    const approve = (await bridge.getConversation(conversation.id))!.briefing!.options.find((o) => o.approvesTool === 'issue_refund')!;
    // A card from another escalation cannot approve this one.
    await expect(bridge.decide({ conversationId: conversation.id, operator: DANA, optionId: approve.id, escalation: 7 })).rejects.toBeInstanceOf(StaleBriefingError);

    // Approved for 270 on A1002; the model tries 2700, then the same order twice.
    model.enqueue(chat.call('issue_refund', { order_id: 'A1002', amount: 2700, reason: 'cracked screen' }));
    await bridge.decide({ conversationId: conversation.id, operator: DANA, optionId: approve.id, escalation: 1 });
    await bridge.idle();
    let c = (await bridge.getConversation(conversation.id))!;
    expect(shop.findOrder('A1002')!.refunds).toEqual([]);
    expect(c.state).toBe('waiting'); // asked a person again, for the new amount
    expect(c.approvals[0]!.usedAt).toBeUndefined();

    // Declining the 2700 lets the agent go on; the 270 it was approved for runs once, a repeat asks again.
    const refund270 = { order_id: 'A1002', amount: 270, reason: 'cracked screen' };
    model.enqueue(chat.call('issue_refund', refund270), chat.call('issue_refund', refund270));
    await bridge.decide({ conversationId: conversation.id, operator: DANA, optionId: 'decline', escalation: 2 });
    await bridge.idle();
    c = (await bridge.getConversation(conversation.id))!;
    expect(shop.findOrder('A1002')!.refunds).toMatchObject([{ amount: 270 }]);
    expect(c.approvals.filter((a) => a.usedAt)).toHaveLength(1);
    expect(c.state).toBe('waiting');
  });
});
