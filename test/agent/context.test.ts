import { describe, expect, it } from 'vitest';
import { buildChatMessages, DEFAULT_TRANSCRIPT_WINDOW, defaultSystemPrompt, earlierSummary, formatHandback, windowStart } from '../../src/agent/context.ts';
import { deepFreeze } from '../../src/deep-freeze.ts';
import type { HandbackContext, Message } from '../../src/model.ts';
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
    expect(messages[0]!.content).toContain('You are the customer support assistant for Acme');
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

  it('keeps the latest hand-back whole even when it is older than the window', () => {
    const long = conversationWith([
      customerSays('first'),
      handbackMessage(returned),
      ...Array.from({ length: 10 }, (_, i) => customerSays(`later ${i}`)),
    ]);
    const messages = buildChatMessages(long, { maxTranscriptMessages: 4 });
    expect(messages).toHaveLength(1 + 1 + 4);
    expect(messages[0]!.content).toContain('Summary of the 7 earlier messages not shown');
    expect(messages[1]).toEqual({ role: 'system', content: formatHandback(returned) });
    expect(messages.slice(2).map((m) => m.content)).toEqual(['later 6', 'later 7', 'later 8', 'later 9']);
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

describe('the default system prompt', () => {
  it('states every rule once, tightly', () => {
    const prompt = defaultSystemPrompt('Acme');
    expect(prompt).toContain('customer support assistant for Acme, talking with one customer');
    expect(prompt).toContain("Be concise, friendly and concrete, in the customer's language.");
    expect(prompt).toContain('never invent order details, amounts or policies');
    expect(prompt).toMatch(/Call escalate_to_human when the customer asks for a person or is upset, or the request is beyond you or your authority\./);
    expect(prompt).toContain('a person gets the case in 30 seconds');
    expect(prompt).toContain('options they can pick without taking over');
    expect(prompt).toContain("Some tools need a person's approval; if a call is refused, escalate rather than retry it.");
    expect(prompt).toContain('"[<name>, support team]" were sent to the customer by a person on our team, not by you; never start yours with such a tag');
    expect(prompt.length).toBeLessThan(800);
  });
});

describe('the transcript window and the summary of what is older', () => {
  /** A long conversation: an opening, a tool call, an operator's reply and hand-back, then small talk. */
  function longConversation(total: number): { messages: Message[]; latest: HandbackContext } {
    const latest: HandbackContext = { ...returned, at: '2025-01-15T10:40:00.000Z', note: 'Second hand-back: the replacement ships Monday; do not refund again.' };
    const messages: Message[] = [
      customerSays('My monitor arrived broken, order A1002. I paid $270. Reach me at ana.souza@example.com.'),
      { ...agentSays('Let me look that up.'), id: 'msg_look', actions: [{ tool: 'lookup_order', input: { order_id: 'A1002' }, output: { status: 'delivered', total: 270 }, ok: true }] },
      internalNote('// VIP, be nice'),
      operatorSays('Hi Ana, Dana here. I have refunded your 270 USD.'),
      handbackMessage(returned),
      handbackMessage(latest),
    ];
    for (let i = 0; messages.length < total; i += 1) messages.push(i % 2 === 0 ? customerSays(`Question ${i}: does shipping to Lisbon take long?`) : agentSays(`Answer ${i}: about three days.`));
    return { messages, latest };
  }

  it('sends a conversation that fits the window whole, with no summary', () => {
    const messages = Array.from({ length: DEFAULT_TRANSCRIPT_WINDOW }, (_, i) => (i % 2 ? agentSays(`a${i}`) : customerSays(`c${i}`)));
    const chat = buildChatMessages(conversationWith(messages));
    expect(chat).toHaveLength(1 + DEFAULT_TRANSCRIPT_WINDOW);
    expect(chat[0]!.content).not.toContain('Summary of');
    expect(chat.slice(1).map((m) => m.content)).toEqual(messages.map((m) => m.text));
  });

  it('a 100-message conversation: the system message with the summary, the latest hand-back, then the latest 19 to 24 messages', () => {
    const { messages, latest } = longConversation(100);
    const approval = { id: 'apr_1', tool: 'issue_refund', argsHash: 'x', args: { order_id: 'A1002', amount: 30 }, escalation: 1, by: dana, at: '2026-01-01T00:00:00.000Z' };
    const chat = buildChatMessages(conversationWith(messages, { approvals: [approval] }));

    // 99 transcript messages (the internal note is not one): 75 over the window of 24, rounded up to
    // the window's quarter (6) is 78 summarised, the latest hand-back among them carried whole.
    expect(windowStart(99, DEFAULT_TRANSCRIPT_WINDOW)).toBe(78);
    expect(chat).toHaveLength(1 + 1 + 21);
    expect(chat.slice(2).map((m) => m.content)).toEqual(messages.slice(-21).map((m) => m.text));
    expect(chat[1]).toEqual({ role: 'system', content: formatHandback(latest) });
    const system = String(chat[0]!.content);
    // Case facts and approvals are there whatever the window.
    expect(system).toContain('Conversation HB-1042 with Ana Souza');
    expect(system).toContain('A person approved these calls for one use each, with exactly the arguments they were shown: issue_refund({"order_id":"A1002","amount":30}).');
    expect(system).toContain('Summary of the 77 earlier messages not shown');
    expect(system).toContain('- The customer first wrote: "My monitor arrived broken, order A1002. I paid $270. Reach me at ana.souza@example.com."');
    expect(system).toContain('- The customer mentioned: ids A1002; amounts $270; emails ana.souza@example.com.');
    expect(system).toContain('- Your tool calls: lookup_order({"order_id":"A1002"}) ok: {"status":"delivered","total":270}');
    expect(system).toContain('- The support team told the customer: Dana: "Hi Ana, Dana here. I have refunded your 270 USD."');
    expect(system).toContain('- Earlier, Dana handed the conversation back (2025-01-15T10:20:00.000Z): note "Refund of 270 USD approved as goodwill');
    expect(system).toMatch(/- Your last reply then: "Answer \d+: about three days\."/);
    expect(system).toMatch(/- The customer's last messages then: "Question \d+: .*"; "Question \d+: .*"/);
    expect(system).not.toContain('VIP'); // internal notes stay between operators
    // The summary stands for 77 messages in a small fraction of their size.
    const summary = system.slice(system.indexOf('Summary of'));
    const replaced = JSON.stringify(buildChatMessages(conversationWith(messages), { maxTranscriptMessages: 1000 }).slice(1, 78));
    expect(summary.length).toBeLessThan(replaced.length / 3);
  });

  it('moves the window\'s start a quarter of the window at a time, so each request begins as the one before until it moves', () => {
    const transcript: Message[] = [];
    let before: ReturnType<typeof buildChatMessages> | undefined;
    let moves = 0;
    for (let turn = 0; turn < 40; turn += 1) {
      transcript.push(deepFreeze(customerSays(`Question ${turn}: does shipping to Lisbon take long?`)));
      const chat = buildChatMessages(conversationWith(transcript.slice()));
      const whole = chat.length - 1; // after the system message
      // Never more than the window, never less than its last three quarters plus one.
      expect(whole).toBeLessThanOrEqual(DEFAULT_TRANSCRIPT_WINDOW);
      if (transcript.length > DEFAULT_TRANSCRIPT_WINDOW) expect(whole).toBeGreaterThanOrEqual(DEFAULT_TRANSCRIPT_WINDOW - 6 + 1);
      if (before) {
        // The agent's answer and the next question came since.
        if (JSON.stringify(chat.slice(0, before.length)) === JSON.stringify(before)) expect(chat).toHaveLength(before.length + 2);
        else moves += 1;
      }
      before = chat;
      transcript.push(deepFreeze(agentSays(`Answer ${turn}: about three days.`)));
    }
    // Requests at 1, 3, ..., 79 messages: the start moved at 25, 31, 37, ..., 79 (10 times); every other request extended the one before.
    expect(moves).toBe(10);
    expect([24, 25, 30, 31, 80].map((n) => windowStart(n, DEFAULT_TRANSCRIPT_WINDOW))).toEqual([0, 6, 6, 12, 60]);
    expect([1, 2, 3].map((n) => windowStart(n, 1))).toEqual([0, 1, 2]);
  });

  it('never splits a tool call from its result at the edge of the window', () => {
    const looked = { ...agentSays('It shipped.'), id: 'msg_edge', actions: [{ tool: 'lookup_order', input: { order_id: 'A1003' }, output: { status: 'shipped' }, ok: true }] };
    const chat = buildChatMessages(conversationWith([customerSays('one'), customerSays('Where is A1003?'), looked, customerSays('thanks')]), { maxTranscriptMessages: 2 });
    expect(chat.slice(1).map((m) => m.role)).toEqual(['assistant', 'tool', 'assistant', 'user']);
    expect(String(chat[0]!.content)).toContain('Summary of the 2 earlier messages not shown');
  });

  it('is deterministic and bounded, however long and wordy the older part is', () => {
    const wordy = Array.from({ length: 500 }, (_, i) =>
      i % 2 === 0
        ? customerSays(`Order A${1000 + i} for $${i}.00 is late. ${'Really late. '.repeat(100)}`)
        : { ...agentSays(`Looking. ${'Still looking. '.repeat(100)}`), actions: [{ tool: 'lookup_order', input: { order_id: `A${1000 + i}`, note: 'x'.repeat(500) }, output: { blob: 'y'.repeat(5000) }, ok: true }] },
    );
    const summary = earlierSummary(wordy);
    expect(summary).toBe(earlierSummary(wordy));
    expect(summary.length).toBeLessThanOrEqual(3000);
    expect(summary).toContain('(and 246 earlier)');
  });
});
