/**
 * The pure parts of issue 13 in Slack: the Reveal button on a masked message, the agents on the
 * briefing, the history lines of agent hops and reveals, the private notices, and `/route` text.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRouteText } from '../../adapters/slack/parse.ts';
import { agentsLine, briefingCard, briefingFallbacks } from '../../cards/slack/briefing.ts';
import { blockKitViolations, blocksTextLength, LIMITS } from '../../cards/slack/limits.ts';
import { notices } from '../../cards/slack/operator.ts';
import { describeChange } from '../../cards/slack/status.ts';
import { splitMrkdwn } from '../../cards/slack/text.ts';
import { parseRevealButtonValue, revealButtonValue, THREAD_ACTIONS, threadMessage } from '../../cards/slack/thread.ts';
import { HandoffEnvelopeSchema } from '../../src/envelope.ts';
import type { Conversation, HistoryEntry, Message } from '../../src/model.ts';
import { conversationFixture } from '../support/conversations.ts';

const DANA = { id: 'slack:UDANA', name: 'Dana', workspace: 'slack' };

const masked = (text: string, extra: Partial<Message> = {}): Message => ({
  id: 'msg_card',
  at: '2026-11-30T10:00:00.000Z',
  author: { role: 'customer', name: 'Ann' },
  text,
  visibility: 'public',
  masked: 1,
  ...extra,
});

function waiting(envelope: Record<string, unknown> = {}): Conversation {
  return conversationFixture({
    id: 'conv_1',
    ticket: 'HB-1042',
    state: 'waiting',
    queue: 'billing',
    history: [{ from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at: '2026-11-30T10:00:00.000Z', trigger: 'refund_threshold' }],
    briefing: HandoffEnvelopeSchema.parse({ reason: 'Over the limit', trigger: 'refund_threshold', summary: 'Ann wants a refund.', intent: 'Refund', pendingQuestion: 'Approve?', queue: 'billing', ticket: 'HB-1042', ...envelope }),
  });
}

const buttons = (blocks: unknown[] | undefined) => (blocks ?? []).flatMap((b: any) => (b.type === 'actions' ? b.elements : [])) as any[];

describe('the Reveal button', () => {
  it('is on a message with masked values, carrying the conversation and the message', () => {
    const card = threadMessage(masked('My card [card •••• 4242] was charged twice.'), { conversationId: 'conv_1' });
    expect(card.text).toBe(':bust_in_silhouette: *Ann* (customer)\nMy card [card •••• 4242] was charged twice.');
    expect(buttons(card.blocks).map((b) => [b.action_id, b.text.text])).toEqual([[THREAD_ACTIONS.reveal, 'Reveal']]);
    expect(parseRevealButtonValue(buttons(card.blocks)[0].value)).toEqual({ conversationId: 'conv_1', messageId: 'msg_card' });
    // The blocks say what the text says (Slack shows the blocks).
    expect(JSON.stringify(card.blocks)).toContain('was charged twice');
    expect(blockKitViolations(card)).toEqual([]);
  });

  it('is not on a message without masked values, nor without the conversation', () => {
    expect(threadMessage(masked('hello', { masked: undefined }), { conversationId: 'conv_1' }).blocks).toBeUndefined();
    expect(threadMessage(masked('hello', { masked: 0 }), { conversationId: 'conv_1' }).blocks).toBeUndefined();
    expect(threadMessage(masked('hello')).blocks).toBeUndefined();
  });

  it('keeps a long or hostile message within Block Kit limits, escaped', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 20000 }), (raw) => {
        const card = threadMessage(masked(`<!channel> ${raw} &`), { conversationId: 'conv_1' });
        expect(blockKitViolations(card)).toEqual([]);
        expect(blocksTextLength(card.blocks)).toBeLessThanOrEqual(LIMITS.messageBlocksText);
        expect(JSON.stringify(card.blocks)).not.toContain('<!channel>');
        expect(buttons(card.blocks)).toHaveLength(1);
      }),
      { numRuns: 50 },
    );
    const long = threadMessage(masked('x'.repeat(15000)), { conversationId: 'conv_1' });
    expect(JSON.stringify(long.blocks)).toContain('cut to fit Slack');
  });

  it('reads back only well-formed values', () => {
    expect(parseRevealButtonValue(revealButtonValue('conv_1', 'msg_2'))).toEqual({ conversationId: 'conv_1', messageId: 'msg_2' });
    for (const bad of [undefined, 3, '', 'conv_1', '|msg', 'conv|', 'a|b|c']) expect(parseRevealButtonValue(bad)).toBeUndefined();
  });

  it('splits text into sections without cutting an entity or a surrogate pair', () => {
    expect(splitMrkdwn('', 10)).toEqual([]);
    expect(splitMrkdwn('short', 10)).toEqual(['short']);
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 500 }), fc.integer({ min: 8, max: 60 }), (raw, max) => {
        const escaped = raw.replace(/&/g, '&amp;').replace(/</g, '&lt;');
        const pieces = splitMrkdwn(escaped, max);
        for (const p of pieces) {
          expect(p.length).toBeLessThanOrEqual(max);
          expect(p).not.toMatch(/&(?!amp;|lt;)/);
          expect(p).not.toMatch(/[\uD800-\uDBFF]$/);
        }
        expect(pieces.join('').replace(/\s/g, '')).toBe(escaped.replace(/\s/g, ''));
      }),
    );
  });
});

describe('the agents on the briefing', () => {
  it('names the agent that escalated and every agent involved', () => {
    expect(agentsLine({ agent: 'billing', agents: ['triage', 'billing'] })).toBe(':robot_face: Escalated by *billing* · agents: triage → billing');
    expect(agentsLine({ agent: 'triage', agents: ['triage'] })).toBe(':robot_face: Escalated by *triage*');
    expect(agentsLine({ agents: ['triage', 'billing'] })).toBe(':robot_face: agents: triage → billing');
    expect(agentsLine({ agent: '<!here>*x*' })).not.toContain('<!here>');
  });

  it('shows them on the card and its smaller fallback; a single agent leaves the card as it was', () => {
    const card = briefingCard(waiting({ agent: 'billing', agents: ['triage', 'billing'] }));
    expect(blockKitViolations(card)).toEqual([]);
    expect(JSON.stringify(card.blocks)).toContain('Escalated by *billing* · agents: triage → billing');
    expect(JSON.stringify(briefingFallbacks(waiting({ agent: 'billing', agents: ['triage', 'billing'] }))[0])).toContain('agents: triage → billing');
    const single = briefingCard(waiting());
    expect(JSON.stringify(single)).not.toContain('Escalated by');
    expect(single.blocks!.length).toBe(card.blocks!.length - 1);
  });
});

describe('agent hops and reveals in words', () => {
  const base = { from: 'agent', to: 'agent', at: '2026-11-30T10:00:00.000Z' } as const;
  it('says who handed the conversation to which agent', () => {
    const byAgent = { ...base, reason: 'agent_handoff', by: { kind: 'agent' }, note: 'Double charge', agent_handoff: { from: 'triage', to: 'billing' } } as HistoryEntry;
    expect(describeChange(byAgent)).toBe(':twisted_rightwards_arrows: *triage* handed the conversation to *billing*: _Double charge_');
    const byOperator = { ...base, reason: 'agent_handoff', by: { kind: 'operator', operator: DANA }, agent_handoff: { from: 'billing', to: 'triage', pinned: true } } as HistoryEntry;
    expect(describeChange(byOperator)).toBe(':twisted_rightwards_arrows: *Dana* handed the conversation from *billing* to *triage* and pinned it');
    const reveal = { ...base, from: 'human', to: 'human', reason: 'reveal', by: { kind: 'operator', operator: DANA }, note: 'card •••• 4242 in msg_1' } as HistoryEntry;
    expect(describeChange(reveal)).toBe(':unlock: *Dana* revealed masked values: _card •••• 4242 in msg_1_');
  });
});

describe('private notices', () => {
  it('quotes the revealed original for its reader, escaped', () => {
    expect(notices.revealed('HB-1042', 'card 4242 4242 4242 4242\n<!channel>')).toBe(
      ":unlock: Only you see this; the reveal is logged in *HB-1042*'s history.\n&gt; card 4242 4242 4242 4242\n&gt; &lt;!channel&gt;",
    );
  });

  it('confirms a route and explains /route', () => {
    expect(notices.routed('HB-1042', 'billing', true)).toContain('*billing* agent, pinned');
    expect(notices.routeUsage(['triage', 'billing'])).toContain('Agents: triage, billing.');
    expect(notices.routeUsage([])).toContain('One agent runs here');
  });
});

describe('/route text', () => {
  it('reads an optional ticket, the agent, --pin in either place and the note', () => {
    expect(parseRouteText('HB-1042 billing --pin the invoice is wrong')).toEqual({ ticket: 'HB-1042', agent: 'billing', pin: true, note: 'the invoice is wrong' });
    expect(parseRouteText('hb-7 --pin billing')).toEqual({ ticket: 'HB-7', agent: 'billing', pin: true });
    expect(parseRouteText('billing  multi\nline note')).toEqual({ agent: 'billing', pin: false, note: 'multi\nline note' });
    expect(parseRouteText('billing note with --pin inside')).toEqual({ agent: 'billing', pin: false, note: 'note with --pin inside' });
    expect(parseRouteText('')).toEqual({ pin: false });
    expect(parseRouteText(undefined)).toEqual({ pin: false });
    expect(parseRouteText('--pin')).toEqual({ pin: true });
    expect(parseRouteText('HB-1042')).toEqual({ ticket: 'HB-1042', pin: false });
    expect(parseRouteText('--verbose billing')).toEqual({ pin: false, note: '--verbose billing' });
  });

  it('takes a first word that names an agent as the agent, even if it looks like a ticket', () => {
    expect(parseRouteText('t-2 why', ['triage', 't-2'])).toEqual({ agent: 't-2', pin: false, note: 'why' });
    expect(parseRouteText('t-2 why')).toEqual({ ticket: 'T-2', agent: 'why', pin: false });
  });
});
