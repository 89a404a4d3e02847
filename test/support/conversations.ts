/**
 * A complete, valid conversation for tests of pure code (cards, triggers, summarizer, agent context).
 * Tests pass only what they are about as overrides.
 */
import type { Conversation } from '../../src/model.ts';

export function conversationFixture(overrides: Partial<Conversation> = {}): Conversation {
  const at = '2025-01-01T00:00:00.000Z';
  return {
    id: 'conv_test',
    ticket: 'HB-1042',
    origin: 'webchat',
    customer: { id: 'v1' },
    queue: 'general',
    state: 'agent',
    ownershipVersion: 0,
    messages: [],
    history: [],
    decisions: [],
    agentTurns: 0,
    approvals: [],
    version: 0,
    createdAt: at,
    updatedAt: at,
    channelData: {},
    ...overrides,
  };
}
