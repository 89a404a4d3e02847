import { afterEach, describe, expect, it } from 'vitest';
import { AlreadyClaimedError, ConversationClosedError, InputError, InvalidTransitionError, NotOwnerError, UnknownOptionError } from '../../src/errors.ts';
import { createTestBridge, DANA, SAM, ScriptedAgent, waitFor, type TestBridge } from '../support/harness.ts';
import { MemoryChannel, MemoryWorkspace } from '../support/memory-ports.ts';

const customer = { id: 'cust-1', name: 'Ada Lovelace', email: 'ada@example.com' };

describe('a whole takeover through the bridge API', () => {
  let t: TestBridge;
  let channel: MemoryChannel;
  let workspace: MemoryWorkspace;
  afterEach(() => t?.close());

  async function boot(agent?: ScriptedAgent) {
    channel = new MemoryChannel('webchat');
    workspace = new MemoryWorkspace('test');
    t = await createTestBridge({ channels: [channel], workspaces: [workspace], ...(agent ? { agent } : {}) });
    return t.bridge;
  }

  it('answers from the FAQ, escalates on request, relays the owner, and resumes with the note', async () => {
    const bridge = await boot();
    const first = await bridge.customerMessage({ origin: 'webchat', customer, text: 'How do I reset my password?' });
    const id = first.conversation.id;
    expect(first.conversation.ticket).toMatch(/^HB-\d{4,}$/);
    await bridge.idle();
    expect(channel.texts(id).at(-1)).toContain('Forgot password');

    await bridge.customerMessage({ conversationId: id, origin: 'webchat', customer, text: 'This is not working, I want to talk to a human' });
    await bridge.idle();
    let c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('waiting');
    expect(c.history.at(-1)).toMatchObject({ from: 'agent', to: 'waiting', reason: 'escalate', trigger: 'explicit_request' });
    expect(c.briefing).toMatchObject({ trigger: 'explicit_request', ticket: c.ticket });
    expect(c.briefing!.summary.length).toBeGreaterThan(20);
    expect(workspace.briefings.map((b) => b.conversationId)).toEqual([id]);
    expect(channel.texts(id).at(-1)).toContain(c.ticket);

    await bridge.claim({ conversationId: id, operator: DANA });
    await expect(bridge.claim({ conversationId: id, operator: SAM })).rejects.toSatisfy(
      (e) => e instanceof AlreadyClaimedError && e.holder.name === 'Dana' && e.message.includes('Dana'),
    );
    await bridge.idle();
    expect(channel.texts(id).at(-1)).toBe('Dana from our team has joined the conversation.');

    const fromOwner = await bridge.operatorMessage({ conversationId: id, operator: DANA, text: 'Hi Ada, I reset your account. Try now?' });
    const fromOther = await bridge.operatorMessage({ conversationId: id, operator: SAM, text: 'FYI she called yesterday too' });
    const note = await bridge.operatorMessage({ conversationId: id, operator: DANA, text: '// checked the audit log' });
    expect([fromOwner.delivered, fromOther.delivered, note.delivered]).toEqual([true, false, false]);
    expect(note.message!.text).toBe('checked the audit log');
    await bridge.customerMessage({ conversationId: id, origin: 'webchat', customer, text: 'Yes it works now, thanks!' });
    await bridge.idle();
    const seen = channel.texts(id);
    expect(seen).toContain('Hi Ada, I reset your account. Try now?');
    expect(seen.join('\n')).not.toContain('FYI she called');
    expect(seen.join('\n')).not.toContain('audit log');
    expect(workspace.notices).toEqual([{ operator: SAM, text: expect.stringContaining('Dana holds') }]);
    // The agent stayed silent during the takeover.
    c = (await bridge.getConversation(id))!;
    const claimedAt = c.history.find((h) => h.reason === 'claim')!.at;
    expect(c.messages.filter((m) => m.author.role === 'agent' && m.at > claimedAt)).toEqual([]);

    await expect(bridge.returnToAgent({ conversationId: id, operator: SAM })).rejects.toBeInstanceOf(NotOwnerError);
    await bridge.returnToAgent({ conversationId: id, operator: DANA, note: 'Password reset done; account unlocked' });
    await bridge.idle();
    c = (await bridge.getConversation(id))!;
    expect(c.state).toBe('agent');
    const handback = c.messages.find((m) => m.handback)!.handback!;
    expect(handback).toMatchObject({ kind: 'return', note: 'Password reset done; account unlocked', by: DANA });
    expect(handback.humanStretch.map((m) => m.text)).toEqual(['Hi Ada, I reset your account. Try now?', 'Yes it works now, thanks!']);
    // The customer spoke last, so the agent answers right away, grounded in the note.
    expect(channel.texts(id).at(-1)).toContain('Password reset done; account unlocked');
    expect(c.history.map((h) => `${h.from}->${h.to}:${h.reason}`)).toEqual(['agent->waiting:escalate', 'waiting->human:claim', 'human->agent:return']);
  });

  it('an option decided without a takeover resumes the agent with the decision', async () => {
    const agent = new ScriptedAgent(({ conversation }) => {
      const handback = conversation.messages.findLast((m) => m.handback)?.handback;
      if (handback?.decision) return { kind: 'reply', text: `Decision received: ${handback.decision.label}`, actionsTaken: [] };
      return { kind: 'escalate', trigger: 'refund_threshold', reason: 'Refund of 250 USD is over the 100 USD policy limit', actionsTaken: [{ tool: 'lookup_order', input: { order_id: 'A-1001' }, output: { total: 250 }, ok: true }] };
    });
    const bridge = await boot(agent);
    const { conversation } = await bridge.customerMessage({ origin: 'webchat', customer, text: 'Please refund my order A-1001, $250' });
    await bridge.idle();
    let c = (await bridge.getConversation(conversation.id))!;
    expect(c.state).toBe('waiting');
    expect(c.briefing!.options.map((o) => o.id)).toEqual(['approve_refund', 'offer_credit', 'decline_refund']);
    expect(c.briefing!.actionsTaken[0]).toMatchObject({ tool: 'lookup_order' });
    expect(c.briefing!.entities.amounts[0]).toMatchObject({ value: 250, currency: 'USD' });

    await expect(bridge.decide({ conversationId: c.id, operator: SAM, optionId: 'nope' })).rejects.toBeInstanceOf(UnknownOptionError);
    await bridge.decide({ conversationId: c.id, operator: SAM, optionId: 'approve_refund' });
    await bridge.idle();
    c = (await bridge.getConversation(c.id))!;
    expect(c.state).toBe('agent');
    expect(c.decisions).toMatchObject([{ optionId: 'approve_refund', by: SAM }]);
    // The approval is a record: this tool, the amount the operator saw, this escalation; unused yet.
    expect(c.approvals).toMatchObject([{ tool: 'issue_refund', amount: 250, escalation: 1, by: SAM }]);
    expect(c.approvals[0]!.usedAt).toBeUndefined();
    expect(channel.texts(c.id).at(-1)).toBe('Decision received: Approve refund of 250 USD');
    await expect(bridge.decide({ conversationId: c.id, operator: SAM, optionId: 'approve_refund' })).rejects.toBeInstanceOf(InvalidTransitionError);
  });

  it('a closed conversation reopens to the agent on the next customer message', async () => {
    const bridge = await boot();
    const { conversation } = await bridge.customerMessage({ origin: 'webchat', customer, text: 'hello' });
    await bridge.idle();
    await bridge.close({ conversationId: conversation.id, operator: DANA });
    await bridge.idle();
    expect(channel.texts(conversation.id).at(-1)).toContain('closed');
    await bridge.customerMessage({ conversationId: conversation.id, origin: 'webchat', customer, text: 'What are your opening hours?' });
    await bridge.idle();
    const c = (await bridge.getConversation(conversation.id))!;
    expect(c.state).toBe('agent');
    expect(c.history.at(-1)).toMatchObject({ from: 'closed', to: 'agent', reason: 'reopen' });
    expect(channel.texts(c.id).at(-1)).toContain('Monday to Friday');
  });

  it('a redelivered customer message takes effect once', async () => {
    const bridge = await boot();
    const a = await bridge.customerMessage({ origin: 'webchat', customer, text: 'hello', idempotencyKey: 'evt-1' });
    const b = await bridge.customerMessage({ conversationId: a.conversation.id, origin: 'webchat', customer, text: 'hello', idempotencyKey: 'evt-1' });
    expect(b.duplicate).toBe(true);
    // The redelivery is told which message it stored, even beside another with the same text.
    expect(b.message?.id).toBe(a.message!.id);
    await bridge.customerMessage({ conversationId: a.conversation.id, origin: 'webchat', customer, text: 'hello', idempotencyKey: 'evt-2' });
    const again = await bridge.customerMessage({ conversationId: a.conversation.id, origin: 'webchat', customer, text: 'hello', idempotencyKey: 'evt-1' });
    expect(again.message?.id).toBe(a.message!.id);
    await bridge.idle();
    const c = (await bridge.getConversation(a.conversation.id))!;
    expect(c.messages.filter((m) => m.author.role === 'customer')).toHaveLength(2);
  });

  it('a redelivery whose mark was made before marks kept their message is answered from the index it wrote then', async () => {
    const bridge = await boot();
    const a = await bridge.customerMessage({ origin: 'webchat', customer, text: 'hello', idempotencyKey: 'evt-old' });
    await bridge.idle();
    // As an earlier version stored it: the mark without its message, the message in an index value.
    const c = (await t.store.getConversation(a.conversation.id))!;
    await t.store.commit({
      conversation: c,
      expectedVersion: c.version,
      appended: [],
      inbound: { key: 'customer:evt-older', ttlMs: 60_000 },
      indexes: [{ op: 'set', key: 'inbound-message:customer:evt-older', value: a.message!.id, ttlMs: 60_000 }],
    });
    const b = await bridge.customerMessage({ conversationId: a.conversation.id, origin: 'webchat', customer, text: 'hello', idempotencyKey: 'evt-older' });
    expect(b.duplicate).toBe(true);
    expect(b.message?.id).toBe(a.message!.id);
  });

  it('a redelivery after the conversation closed is still a redelivery, not a refusal', async () => {
    const bridge = await boot();
    const a = await bridge.customerMessage({ origin: 'webchat', customer, text: 'hello', idempotencyKey: 'evt-c1' });
    const b = await bridge.customerMessage({ conversationId: a.conversation.id, origin: 'webchat', customer, text: 'one more', idempotencyKey: 'evt-c2', reopen: false });
    await bridge.idle();
    await bridge.close({ conversationId: a.conversation.id, operator: DANA });
    const again = await bridge.customerMessage({ conversationId: a.conversation.id, origin: 'webchat', customer, text: 'one more', idempotencyKey: 'evt-c2', reopen: false });
    expect(again).toMatchObject({ duplicate: true, message: { id: b.message!.id } });
    // A new message is refused: the conversation stays closed.
    await expect(bridge.customerMessage({ conversationId: a.conversation.id, origin: 'webchat', customer, text: 'new', idempotencyKey: 'evt-c3', reopen: false })).rejects.toThrow(ConversationClosedError);
  });

  it('rejects empty and oversized text with a clear error and stores nothing', async () => {
    const bridge = await boot();
    await expect(bridge.customerMessage({ origin: 'webchat', customer, text: '   ' })).rejects.toThrow(InputError);
    await expect(bridge.customerMessage({ origin: 'webchat', customer, text: 'x'.repeat(8001) })).rejects.toThrow(/limit is 8000/);
    expect(channel.delivered).toEqual([]);
  });

  it('transfer and release move ownership and keep the held-by index right', async () => {
    const bridge = await boot();
    const { conversation } = await bridge.customerMessage({ origin: 'webchat', customer, text: 'agent please' });
    await bridge.claim({ conversationId: conversation.id, operator: DANA });
    expect((await bridge.conversationsHeldBy(DANA.id)).map((c) => c.id)).toEqual([conversation.id]);
    await bridge.transfer({ conversationId: conversation.id, operator: DANA, to: SAM });
    expect(await bridge.conversationsHeldBy(DANA.id)).toEqual([]);
    expect((await bridge.conversationsHeldBy(SAM.id)).map((c) => c.id)).toEqual([conversation.id]);
    await bridge.release({ conversationId: conversation.id, operator: SAM });
    await bridge.idle();
    expect(await bridge.conversationsHeldBy(SAM.id)).toEqual([]);
    expect((await bridge.getConversation(conversation.id))!.state).toBe('waiting');
    expect(channel.texts(conversation.id).slice(-2)).toEqual(['Sam from our team is now helping you.', 'A person from our team will be with you shortly.']);
    expect((await bridge.findByTicket(conversation.ticket.toLowerCase()))!.id).toBe(conversation.id);
  });

  it('an agent failure escalates instead of leaving the customer waiting', async () => {
    const bridge = await boot(new ScriptedAgent(() => { throw new Error('model unreachable'); }));
    const { conversation } = await bridge.customerMessage({ origin: 'webchat', customer, text: 'hello' });
    await waitFor(async () => (await bridge.getConversation(conversation.id))!.state === 'waiting');
    const c = (await bridge.getConversation(conversation.id))!;
    expect(c.briefing).toMatchObject({ trigger: 'agent_error' });
  });
});
