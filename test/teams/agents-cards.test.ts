/**
 * The pure Teams card builders for issue 13: the Reveal card under a mirrored message with masked
 * values, the private reveal message, the briefing's agents line, and history lines for agent
 * handoffs and reveals.
 */
import { describe, expect, it } from 'vitest';
import { cardText, parseCardAction } from '../../cards/teams/adaptive.ts';
import { buildBriefingCard, buildBriefingFallbackText } from '../../cards/teams/briefing.ts';
import { buildRevealCard, formatRevealedMessage } from '../../cards/teams/message.ts';
import { agentsLine, describeChange } from '../../cards/teams/status.ts';
import { HandoffEnvelopeSchema } from '../../src/envelope.ts';
import type { Conversation, HistoryEntry, Operator } from '../../src/model.ts';
import { conversationFixture } from '../support/conversations.ts';

const DANA: Operator = { id: 'teams:29:dana', name: 'Dana', workspace: 'teams' };
const at = '2025-01-01T10:00:00.000Z';

function escalated(agents: { agent?: string; agents?: string[] } = {}): Conversation {
  return conversationFixture({
    id: 'conv_1',
    state: 'waiting',
    ownershipVersion: 1,
    history: [{ from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at, trigger: 'refund_threshold' }],
    briefing: HandoffEnvelopeSchema.parse({ reason: 'Refund over the limit', trigger: 'refund_threshold', summary: 'Wants 270 back.', intent: 'Refund', pendingQuestion: 'Approve?', ticket: 'HB-1', ...agents }),
    createdAt: at,
    updatedAt: at,
  });
}

describe('the Reveal card', () => {
  it('is there only when the copy has masked values, with one Action.Submit naming the conversation and message', () => {
    expect(buildRevealCard('conv_1', { id: 'msg_1' })).toBeUndefined();
    expect(buildRevealCard('conv_1', { id: 'msg_1', masked: 0 })).toBeUndefined();
    const card = buildRevealCard('conv_1', { id: 'msg_1', masked: 2 })!;
    expect(card.actions).toEqual([{ type: 'Action.Submit', title: 'Reveal', data: { handoff: 1, conversationId: 'conv_1', action: 'reveal', messageId: 'msg_1' } }]);
    expect(cardText(card)).toEqual(['🔒 2 values are masked here. The owner can reveal them privately (logged).', '[Reveal]']);
    expect(cardText(buildRevealCard('conv_1', { id: 'msg_1', masked: 1 })!)[0]).toBe('🔒 1 value is masked here. The owner can reveal it privately (logged).');
  });

  it('parses back as a reveal action only with a message id', () => {
    expect(parseCardAction({ handoff: 1, conversationId: 'conv_1', action: 'reveal', messageId: 'msg_1' })).toEqual({ conversationId: 'conv_1', action: 'reveal', messageId: 'msg_1' });
    expect(parseCardAction({ handoff: 1, conversationId: 'conv_1', action: 'reveal' })).toBeUndefined();
    expect(parseCardAction({ handoff: 1, conversationId: 'conv_1', action: 'reveal', messageId: 'x'.repeat(101) })).toBeUndefined();
    // Other buttons never carry one through.
    expect(parseCardAction({ handoff: 1, conversationId: 'conv_1', action: 'claim', messageId: 'msg_1' })).toEqual({ conversationId: 'conv_1', action: 'claim' });
  });

  it('sends the original escaped, and keeps it out of the notification preview', () => {
    const out = formatRevealedMessage('HB-1', { author: { role: 'customer', name: 'Ana' } }, 'card 4242 4242 4242 4242 <b>*x*</b>');
    expect(out.text).toBe('🔓 <b>HB-1</b>, customer message (only you see this; the reveal is logged):<br>card 4242 4242 4242 4242 &lt;b&gt;&#42;x&#42;&lt;/b&gt;');
    expect(out.summary).toBe('HB-1: the customer message you revealed');
    expect(out.summary).not.toContain('4242');
  });
});

describe('the agents on a briefing', () => {
  it('names the agent that escalated and every agent involved, only when set', () => {
    expect(agentsLine({})).toBeUndefined();
    expect(agentsLine({ agent: 'billing', agents: ['triage', 'billing'] })).toBe('Escalated by billing · agents: triage → billing');
    expect(agentsLine({ agent: 'billing', agents: ['billing'] })).toBe('Escalated by billing');
    expect(agentsLine({ agents: ['triage', 'billing'] })).toBe('Agents: triage → billing');
  });

  it('shows the line on the card and the text fallback; a single agent leaves both unchanged', () => {
    const several = escalated({ agent: 'billing', agents: ['triage', 'billing'] });
    expect(cardText(buildBriefingCard(several))).toContain('🤖 Escalated by billing · agents: triage → billing');
    expect(buildBriefingFallbackText(several).text).toContain('🤖 Escalated by billing · agents: triage → billing');
    const single = escalated();
    expect(cardText(buildBriefingCard(single)).join('\n')).not.toContain('🤖');
    expect(buildBriefingFallbackText(single).text).not.toContain('🤖');
  });
});

describe('history lines', () => {
  const entry = (fields: Partial<HistoryEntry>): HistoryEntry => ({ from: 'agent', to: 'agent', reason: 'agent_handoff', by: { kind: 'agent' }, at, ...fields });

  it('says who handed the conversation to which agent, and that a value was revealed (never the value)', () => {
    expect(describeChange(entry({ note: 'Double charge', agent_handoff: { from: 'triage', to: 'billing' } }))).toBe('🔀 triage handed the conversation to billing: Double charge');
    expect(describeChange(entry({ by: { kind: 'operator', operator: DANA }, note: 'done', agent_handoff: { from: 'billing', to: 'triage', pinned: true } }))).toBe(
      '🔀 Dana handed the conversation from billing to triage and pinned it: done',
    );
    expect(describeChange(entry({ from: 'human', to: 'human', reason: 'reveal', by: { kind: 'operator', operator: DANA }, note: 'card •••• 4242 in msg_1' }))).toBe(
      '🔓 Dana revealed masked values: card •••• 4242 in msg_1',
    );
    // Anything unknown still reads as before.
    expect(describeChange(entry({ reason: 'something_new' }))).toBe('The agent: something_new (agent → agent)');
  });
});
