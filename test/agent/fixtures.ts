/**
 * Hand-built conversations for agent tests: a transcript is a list of short lines, so each test
 * shows exactly what the agent is given.
 */
import type { Conversation, HandbackContext, Message, Operator } from '../../src/model.ts';
import { conversationFixture } from '../support/conversations.ts';

export const dana: Operator = { id: 'slack:U0DANA', name: 'Dana', workspace: 'slack' };

let seq = 0;
const at = (minute: number) => new Date(Date.UTC(2025, 0, 15, 10, minute)).toISOString();

export function customerSays(text: string, minute = 0): Message {
  return { id: `msg_c${++seq}`, at: at(minute), author: { role: 'customer', id: 'ana@example.com', name: 'Ana' }, text, visibility: 'public' };
}

export function agentSays(text: string, minute = 0): Message {
  return { id: `msg_a${++seq}`, at: at(minute), author: { role: 'agent' }, text, visibility: 'public' };
}

export function operatorSays(text: string, operator: Operator = dana, minute = 0): Message {
  return { id: `msg_o${++seq}`, at: at(minute), author: { role: 'operator', id: operator.id, name: operator.name }, text, visibility: 'public' };
}

export function internalNote(text: string, operator: Operator = dana, minute = 0): Message {
  return { id: `msg_n${++seq}`, at: at(minute), author: { role: 'operator', id: operator.id, name: operator.name }, text, visibility: 'internal' };
}

export function notice(text: string, kind: Message['notice'] = 'escalated', minute = 0): Message {
  return { id: `msg_s${++seq}`, at: at(minute), author: { role: 'system' }, text, visibility: 'public', notice: kind };
}

/** The structured message the bridge writes when control comes back to the agent. */
export function handbackMessage(handback: HandbackContext): Message {
  return { id: `msg_h${++seq}`, at: handback.at, author: { role: 'system' }, text: 'Control returned to the agent.', visibility: 'internal', handback };
}

export function conversationWith(messages: Message[], overrides: Partial<Conversation> = {}): Conversation {
  return conversationFixture({
    id: 'conv_test1',
    customer: { id: 'visitor-1', name: 'Ana Souza', email: 'ana@example.com' },
    queue: 'billing',
    ownershipVersion: 1,
    messages,
    createdAt: at(0),
    updatedAt: at(0),
    ...overrides,
  });
}
