/**
 * Messages read through the store cache are deeply frozen and shared, so their chat messages and
 * summary facts are derived once. These tests pin that the cache never changes what is sent, and
 * that a message that is not frozen (its owner may still change it) is never served stale.
 */
import { describe, expect, it } from 'vitest';
import { buildChatMessages, earlierSummary } from '../../src/agent/context.ts';
import type { ChatContextOptions } from '../../src/agent/context.ts';
import type { HandbackContext, Message } from '../../src/model.ts';
import { agentSays, conversationWith, customerSays, dana, handbackMessage, internalNote, notice, operatorSays } from './fixtures.ts';

/** What src/store/cached.ts does to every message it holds. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

const handback = (at: string, note: string): HandbackContext => ({
  kind: 'return',
  by: dana,
  at,
  note,
  humanStretch: [{ role: 'operator', name: 'Dana', text: 'Hi Ana, Dana here.', at }],
});

/** 60 messages of every kind, with entities repeated in other spellings across messages. */
function longTranscript(): Message[] {
  const messages: Message[] = [
    customerSays('My monitor arrived broken, order A1002. I paid $270 on 2025-01-10. Reach me at Ana.Souza@example.com.'),
    { ...agentSays('Let me look that up.'), id: 'msg_look', actions: [{ tool: 'lookup_order', input: { order_id: 'A1002' }, output: { status: 'delivered', total: 270 }, ok: true }] },
    { ...customerSays('Here is a photo'), attachments: [{ name: 'crack.jpg', contentType: 'image/jpeg', url: 'https://example.com/crack.jpg' }]},
    customerSays('It was order a1002, and $270 again; also invoice INV-2024-0042 for 120 EUR, ana.souza@example.com'),
    notice('A person will join shortly.'),
    internalNote('// VIP, be nice'),
    operatorSays('Hi Ana, Dana here. I have refunded your 270 USD.'),
    handbackMessage(handback('2025-01-15T10:20:00.000Z', 'Refund approved.')),
    { ...agentSays(''), actions: [{ tool: 'issue_refund', input: { order_id: 'A1002', amount: 270 }, output: 'gateway timeout', ok: false }] },
    handbackMessage(handback('2025-01-15T10:40:00.000Z', 'Replacement ships Monday.')),
  ];
  for (let i = 0; messages.length < 60; i += 1)
    messages.push(i % 2 === 0 ? customerSays(`Question ${i}: is order A${2000 + i} there by Jan ${1 + (i % 28)}? It was €${i}.`) : agentSays(`Answer ${i}: about three days.`));
  return messages;
}

describe('the chat messages of frozen (shared) messages are derived once', () => {
  const windows = [4, 24, 1000];
  const roles: ChatContextOptions['handbackRole'][] = ['system', 'developer', 'user'];

  it('sends exactly the same messages and summary for frozen messages as for plain ones, call after call', () => {
    for (const maxTranscriptMessages of windows) {
      for (const handbackRole of roles) {
        const options = { maxTranscriptMessages, handbackRole };
        const messages = longTranscript();
        const plain = buildChatMessages(conversationWith(messages), options);
        const frozen = conversationWith(deepFreeze(structuredClone(messages)));
        const first = buildChatMessages(frozen, options);
        const second = buildChatMessages(frozen, options);
        expect(JSON.stringify(first)).toBe(JSON.stringify(plain));
        expect(JSON.stringify(second)).toBe(JSON.stringify(plain));
        // The second call reused the first one's chat messages (the cache was hit).
        expect(second.slice(1)).toEqual(first.slice(1));
        second.slice(1).forEach((m, i) => expect(m).toBe(first[i + 1]));
      }
    }
    const older = longTranscript().slice(0, 40);
    expect(earlierSummary(deepFreeze(structuredClone(older)))).toBe(earlierSummary(older));
  });

  it('lists the entities as extractEntities would: first spelling wins, in order, across messages', () => {
    const frozen = deepFreeze(longTranscript());
    for (let i = 0; i < 2; i += 1) {
      const summary = earlierSummary(frozen.slice(0, 6));
      expect(summary).toContain(
        '- The customer mentioned: ids A1002, INV-2024-0042; amounts $270, 120 EUR; emails ana.souza@example.com; dates 2025-01-10.',
      );
    }
  });

  it('keeps a frozen message apart per hand-back role', () => {
    const frozen = conversationWith(deepFreeze(longTranscript()));
    const asSystem = buildChatMessages(frozen, { maxTranscriptMessages: 1000 });
    const asUser = buildChatMessages(frozen, { maxTranscriptMessages: 1000, handbackRole: 'user' });
    expect(asSystem.filter((m) => m.role === 'system')).toHaveLength(3);
    expect(asUser.filter((m) => typeof m.content === 'string' && m.content.startsWith('[Context from the support team'))).toHaveLength(2);
  });

  it('hands out shared chat messages nobody can change, so a cached one cannot be corrupted', () => {
    const chat = buildChatMessages(conversationWith(deepFreeze(longTranscript())), { maxTranscriptMessages: 1000 });
    expect(chat.slice(1).every((m) => Object.isFrozen(m))).toBe(true);
    expect(() => {
      (chat[1] as { content: string }).content = 'changed';
    }).toThrow(TypeError);
    chat.push({ role: 'user', content: "the array itself is the caller's own" });
  });

  it('reflects a change to a message that is not frozen (no stale cache)', () => {
    const messages = longTranscript();
    const conversation = conversationWith(messages);
    const before = buildChatMessages(conversation, { maxTranscriptMessages: 4 });
    const last = messages.at(-1)!;
    const opening = messages[0]!;
    expect(before.at(-1)!.content).toBe(last.text);
    expect(String(before[0]!.content)).toContain('ids A1002');

    last.text = 'Edited: the last line changed.';
    opening.text = 'Order B7777 for $15 please.';
    const after = buildChatMessages(conversation, { maxTranscriptMessages: 4 });
    expect(after.at(-1)!.content).toBe('Edited: the last line changed.');
    const system = String(after[0]!.content);
    expect(system).toContain('- The customer first wrote: "Order B7777 for $15 please."');
    expect(system).toContain('ids B7777, a1002, INV-2024-0042');
    expect(system).toContain('amounts $15, $270');
  });
});
