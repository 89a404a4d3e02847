import { describe, expect, it } from 'vitest';
import { buildChatMessages, formatHandback } from '../../src/agent/context.ts';
import type { HandbackContext } from '../../src/model.ts';
import { agentSays, conversationWith, customerSays, dana, handbackMessage, internalNote, notice, operatorSays } from './fixtures.ts';

const returned: HandbackContext = {
  kind: 'return',
  by: dana,
  at: '2025-01-15T10:20:00.000Z',
  note: 'Refund of 270 USD approved as goodwill; it is issued. Offer free shipping on the next order.',
  humanStretch: [
    { role: 'customer', name: 'Ana', text: 'Is anyone there?', at: '2025-01-15T10:12:00.000Z' },
    { role: 'operator', name: 'Dana', text: 'Hi Ana, Dana here. I have refunded your monitor.', at: '2025-01-15T10:15:00.000Z' },
  ],
};

describe('the hand-back message', () => {
  it('tells the agent who returned control, the note, and what was said meanwhile', () => {
    const text = formatHandback(returned);
    expect(text).toContain('returned to you by Dana at 2025-01-15T10:20:00.000Z');
    expect(text).toContain("Operator's note: Refund of 270 USD approved as goodwill");
    expect(text).toContain('What was said while a person handled the conversation:');
    expect(text).toContain('- Customer: Is anyone there?');
    expect(text).toContain('- Dana (operator): Hi Ana, Dana here. I have refunded your monitor.');
    expect(text).toMatch(/Continue from these facts, not your earlier plan/);
  });

  it('states the decision an operator took on a briefing option', () => {
    const text = formatHandback({
      kind: 'decision',
      by: dana,
      at: '2025-01-15T10:05:00.000Z',
      decision: { optionId: 'approve_issue_refund', label: 'Approve refund of 270 USD', by: dana, at: '2025-01-15T10:05:00.000Z', note: 'one-off' },
      humanStretch: [],
    });
    expect(text).toContain('Dana answered your escalation');
    expect(text).toContain('Decision: Approve refund of 270 USD [approve_issue_refund], chosen by Dana');
    expect(text).toContain('(note: one-off)');
    expect(text).toContain("Operator's note: (none)");
    expect(text).not.toContain('What was said');
  });

  it('says plainly when nothing was said during the takeover', () => {
    const text = formatHandback({ ...returned, note: undefined, humanStretch: [] });
    expect(text).toContain("Operator's note: (none)");
    expect(text).toContain('Nothing was said to the customer while a person handled the conversation.');
  });
});

describe('the chat messages built from a conversation', () => {
  const conversation = conversationWith([
    customerSays('My monitor arrived broken, order A1002.'),
    agentSays('Sorry to hear that! Let me check.'),
    notice('A person will join shortly (ticket HB-1042).'),
    internalNote('// this customer had two broken deliveries before'),
    customerSays('Is anyone there?'),
    operatorSays('Hi Ana, Dana here. I have refunded your monitor.'),
    handbackMessage(returned),
    customerSays('Thanks! Can you also change my address?'),
  ]);

  it('maps the transcript the customer saw, without internal notes or status notices', () => {
    const messages = buildChatMessages(conversation, { brandName: 'Acme' });
    expect(messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'system', 'user']);
    const all = JSON.stringify(messages);
    expect(all).not.toContain('two broken deliveries');
    expect(all).not.toContain('A person will join shortly');
    expect(messages[0]!.content).toContain('customer support assistant for Acme');
    expect(messages[0]!.content).toContain('Conversation HB-1042 with Ana Souza, ana@example.com, via webchat.');
  });

  it("tags an operator's public reply so the agent does not take it for its own words", () => {
    const messages = buildChatMessages(conversation);
    expect(messages[4]).toEqual({ role: 'assistant', content: '[Dana, support team] Hi Ana, Dana here. I have refunded your monitor.' });
  });

  it('puts the hand-back where it happened, as one structured message', () => {
    const messages = buildChatMessages(conversation);
    expect(messages[5]).toEqual({ role: 'system', content: formatHandback(returned) });
  });

  it('can send the hand-back as a user message for servers that accept only one system message', () => {
    const messages = buildChatMessages(conversation, { handbackRole: 'user' });
    expect(messages[5]!.role).toBe('user');
    expect(messages[5]!.content).toMatch(/^\[Context from the support team, not from the customer\]\n/);
  });

  it('lists tools a person approved, so the agent knows it may now use them', () => {
    const approval = { id: 'apr_1', tool: 'issue_refund', argsHash: 'x', escalation: 1, by: { id: 'test:dana', name: 'Dana', workspace: 'test' }, at: '2026-01-01T00:00:00.000Z' };
    const messages = buildChatMessages({ ...conversation, approvals: [approval, { ...approval, id: 'apr_0', tool: 'cancel_subscription', usedAt: '2026-01-01T00:00:01.000Z' }] });
    expect(messages[0]!.content).toContain('A person approved these calls for one use each, with exactly the arguments they were shown: issue_refund.');
  });

  it('keeps the latest hand-back even when the transcript is trimmed to fit', () => {
    const long = conversationWith([
      customerSays('first'),
      handbackMessage(returned),
      ...Array.from({ length: 10 }, (_, i) => customerSays(`later ${i}`)),
    ]);
    const messages = buildChatMessages(long, { maxTranscriptMessages: 4 });
    expect(messages).toHaveLength(1 + 1 + 4);
    expect(messages[0]!.content).toContain('(8 earlier messages are not shown.)');
    expect(messages[1]!.content).toContain("Operator's note: Refund of 270 USD");
    expect(messages.at(-1)!.content).toBe('later 9');
  });

  it('replays the tool calls of earlier turns, so the agent remembers what it already looked up', () => {
    const looked = conversationWith([
      customerSays('Where is A1003?'),
      { ...agentSays('It shipped yesterday.'), id: 'msg_a1', actions: [{ tool: 'lookup_order', input: { order_id: 'A1003' }, output: { status: 'shipped' }, ok: true }] },
      { ...agentSays('Tried before escalating: issue_refund'), id: 'msg_a2', visibility: 'internal', actions: [{ tool: 'check_refund_eligibility', input: { order_id: 'Z1' }, output: { error: 'No order' }, ok: false }] },
    ]);
    const messages = buildChatMessages(looked);
    expect(messages.slice(2)).toEqual([
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_msg_a1_0', type: 'function', function: { name: 'lookup_order', arguments: '{"order_id":"A1003"}' } }] },
      { role: 'tool', tool_call_id: 'call_msg_a1_0', content: '{"status":"shipped"}' },
      { role: 'assistant', content: 'It shipped yesterday.' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_msg_a2_0', type: 'function', function: { name: 'check_refund_eligibility', arguments: '{"order_id":"Z1"}' } }] },
      { role: 'tool', tool_call_id: 'call_msg_a2_0', content: 'Error: {"error":"No order"}' },
    ]);
  });

  it('mentions attachments the customer sent', () => {
    const withFile = conversationWith([
      { ...customerSays('Here is a photo'), attachments: [{ name: 'crack.jpg', url: 'https://files.example/crack.jpg', contentType: 'image/jpeg' }] },
    ]);
    expect(buildChatMessages(withFile)[1]!.content).toBe('Here is a photo\n[attachment: crack.jpg (image/jpeg)]');
  });
});
