/**
 * The Slack cards are pure: same conversation in, same blocks out. They escape everything that came
 * from outside and fit Block Kit's limits by truncating, whatever the input.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HandoffEnvelopeSchema, type HandoffEnvelopeInput } from '../../src/envelope.ts';
import type { Conversation, Message } from '../../src/model.ts';
import { briefingButtonValue, briefingCard, briefingFallbacks, parseBriefingButtonValue, shareBudget, supersededBriefingCard } from '../../cards/slack/briefing.ts';
import { blockKitViolations, blocksTextLength, LIMITS } from '../../cards/slack/limits.ts';
import { escalationNumber } from '../../cards/slack/status.ts';
import { escalationCount } from '../../src/engine/rules.ts';
import { noteModal, parseNoteModalMetadata, parsePickerValue, pickerMessage } from '../../cards/slack/operator.ts';
import { escapeMrkdwn, fit, mrkdwn, plain, slackToPlain } from '../../cards/slack/text.ts';
import { threadMessage, threadRoot } from '../../cards/slack/thread.ts';
import { conversationFixture } from '../support/conversations.ts';
import { filler, maximalEnvelope } from './envelopes.ts';

const DANA = { id: 'slack:UDANA', name: 'Dana', workspace: 'slack' };

function conversation(overrides: Partial<Conversation> = {}, envelope: Partial<HandoffEnvelopeInput> = {}): Conversation {
  return conversationFixture({
    id: 'conv_123',
    customer: { id: 'v1', name: 'Ann Lee', email: 'ann@example.com' },
    queue: 'billing',
    state: 'waiting',
    ownershipVersion: 1,
    history: [{ from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at: '2025-01-01T10:00:00.000Z', trigger: 'refund_threshold', note: 'Over limit' }],
    briefing: HandoffEnvelopeSchema.parse({
      reason: 'Refund of 250 USD is over the 100 USD limit',
      trigger: 'refund_threshold',
      priority: 'high',
      summary: 'Ann wants a refund for order A-1001 which arrived broken.',
      intent: 'Refund for a broken order',
      entities: { ids: ['A-1001'], amounts: [{ value: 250, currency: 'USD' }], dates: ['2025-01-01'], emails: ['ann@example.com'] },
      constraints: ['Refunds over 100 USD need approval'],
      sentiment: 'frustrated',
      actionsTaken: [{ tool: 'lookup_order', input: { order_id: 'A-1001' }, output: { status: 'delivered' } }],
      pendingQuestion: 'Approve the 250 USD refund?',
      options: [
        { id: 'approve_refund', label: 'Approve refund of 250 USD', risk: 'high', tradeoffs: 'Cannot be undone.' },
        { id: 'offer_credit', label: 'Offer store credit', risk: 'low' },
      ],
      queue: 'billing',
      ticket: 'HB-1042',
      ...envelope,
    }),
    createdAt: '2025-01-01T09:59:00.000Z',
    updatedAt: '2025-01-01T10:00:00.000Z',
    ...overrides,
  });
}

const actionIds = (card: { blocks?: unknown[] }) =>
  (card.blocks ?? []).flatMap((b: any) => (b.type === 'actions' ? b.elements : [])).map((e: any) => e.action_id as string);

const HOSTILE = '<!channel> <!here> <@U123> <http://evil.example|bank.com> @everyone &amp; \u202Emoc.knab\u202C `x` *y* \u0000';

describe('text for Slack', () => {
  it('escapes mentions, broadcasts and disguised links so they show as typed', () => {
    const out = escapeMrkdwn(HOSTILE);
    expect(out).not.toMatch(/<|>/);
    expect(out).toContain('&lt;!channel&gt;');
    expect(out).toContain('&lt;http://evil.example|bank.com&gt;');
    expect(out).toContain('&amp;amp;');
    expect(out).not.toMatch(/@everyone/);
    expect(out).not.toMatch(/[\u202E\u202C\u0000]/);
  });

  it('truncates without splitting an entity or a surrogate pair', () => {
    expect(fit('abcdef', 4)).toBe('abc…');
    expect(fit('ab&amp;cd', 5)).toBe('ab…');
    expect(fit('ab&amp;cd', 8)).toBe('ab&amp;…');
    expect(fit('ab😀cd', 4)).toBe('ab…');
    expect(fit('short', 10)).toBe('short');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), fc.integer({ min: 1, max: 200 }), (raw, max) => {
        const out = mrkdwn(raw, max);
        expect(out.length).toBeLessThanOrEqual(max);
        expect(out).not.toMatch(/[<>]/);
        expect(out).not.toMatch(/&(?!amp;|lt;|gt;)/);
        expect(out).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
      }),
    );
  });

  it('keeps plain text literal but harmless, and never empty', () => {
    expect(plain('', 10)).toBe('-');
    expect(plain('a\n b', 10)).toBe('a b');
    expect(plain('<!channel> @here', 40)).not.toMatch(/<!|@here/);
  });

  it("turns an operator's Slack markup into plain text for the customer", () => {
    const names: Record<string, string> = { U1: 'Sam' };
    expect(slackToPlain('Ask <@U1> or <@U2|dana>, see <https://help.example/a|the guide> &amp; <https://x.example> &lt;3', (id) => names[id])).toBe(
      'Ask @Sam or @dana, see the guide (https://help.example/a) & https://x.example <3',
    );
    expect(slackToPlain('<mailto:a@b.example|a@b.example> in <#C1|general> <!here>')).toBe('a@b.example in #general @here');
  });
});

describe('the briefing card', () => {
  it('shows the case, options, a confirmation on the high-risk option, Claim, Return and Close while waiting', () => {
    const card = briefingCard(conversation());
    expect(blockKitViolations(card)).toEqual([]);
    expect(actionIds(card)).toEqual(['briefing_claim', 'briefing_option:approve_refund', 'briefing_option:offer_credit', 'briefing_return', 'briefing_close']);
    const json = JSON.stringify(card);
    for (const part of ['HB-1042', 'Refund for a broken order', 'lookup_order', 'Approve the 250 USD refund?', 'A-1001', 'frustrated', 'High priority', 'Refunds over 100 USD need approval']) expect(json).toContain(part);
    const approve = (card.blocks as any[]).flatMap((b) => b.elements ?? []).find((e: any) => e.action_id === 'briefing_option:approve_refund');
    expect(approve.confirm).toBeDefined();
    const credit = (card.blocks as any[]).flatMap((b) => b.elements ?? []).find((e: any) => e.action_id === 'briefing_option:offer_credit');
    expect(credit.confirm).toBeUndefined();
  });

  it('shows who claimed it and offers Return and Close to the owner', () => {
    const c = conversation({
      state: 'human',
      owner: DANA,
      history: [...conversation().history, { from: 'waiting', to: 'human', reason: 'claim', by: { kind: 'operator', operator: DANA }, at: '2025-01-01T10:01:00.000Z' }],
    });
    const card = briefingCard(c);
    expect(JSON.stringify(card)).toContain('*Dana* claimed the conversation');
    expect(actionIds(card)).toEqual(['briefing_return', 'briefing_close']);
  });

  it('shows who decided what once an option is chosen', () => {
    const c = conversation({
      state: 'agent',
      decisions: [{ optionId: 'offer_credit', label: 'Offer store credit', by: DANA, at: '2025-01-01T10:02:00.000Z' }],
      history: [...conversation().history, { from: 'waiting', to: 'agent', reason: 'decide', by: { kind: 'operator', operator: DANA }, at: '2025-01-01T10:02:00.000Z', optionId: 'offer_credit' }],
    });
    const card = briefingCard(c);
    expect(JSON.stringify(card)).toContain('*Dana* chose *Offer store credit*');
    expect(actionIds(card)).toEqual(['briefing_takeover']);
    expect(actionIds(briefingCard({ ...c, state: 'closed' }))).toEqual([]);
  });

  it('escapes hostile names and envelope text', () => {
    const card = briefingCard(
      conversation({ customer: { id: 'x', name: HOSTILE } }, { summary: HOSTILE, intent: HOSTILE, pendingQuestion: HOSTILE, reason: HOSTILE, constraints: [HOSTILE], entities: { ids: [HOSTILE.slice(0, 100)], amounts: [], dates: [], emails: [] } }),
    );
    const json = JSON.stringify(card);
    expect(json).not.toMatch(/<!(channel|here)|<@U|<http/);
    expect(blockKitViolations(card)).toEqual([]);
  });

  it('fits Block Kit limits whatever the envelope holds (truncates, never fails)', () => {
    const long = (n: number) => fc.string({ minLength: 0, maxLength: n });
    fc.assert(
      fc.property(
        fc.record({
          name: long(2000),
          summary: fc.string({ minLength: 1, maxLength: 1200 }),
          intent: fc.string({ minLength: 1, maxLength: 200 }),
          question: fc.string({ minLength: 1, maxLength: 500 }),
          label: fc.string({ minLength: 1, maxLength: 75 }),
          ticket: fc.string({ maxLength: 40 }),
          owner: long(500),
          note: long(3000),
        }),
        (r) => {
          const base = conversation(
            { customer: { id: 'x', name: r.name.padEnd(1, 'x') }, state: 'human', owner: { ...DANA, name: r.owner || 'x' } },
            {
              summary: r.summary.replace(/&/g, '&&&&&') || 's',
              intent: r.intent,
              pendingQuestion: r.question,
              ticket: r.ticket,
              options: Array.from({ length: 5 }, (_, i) => ({ id: `o${i}`, label: r.label, risk: 'high' as const, tradeoffs: r.note.slice(0, 500) })),
              constraints: Array.from({ length: 10 }, () => r.note.slice(0, 300).replace(/./g, '<')),
              actionsTaken: Array.from({ length: 20 }, () => ({ tool: 'x'.repeat(100), input: r.note, output: r.note, ok: false })),
            },
          );
          base.decisions = Array.from({ length: 30 }, (_, i) => ({ optionId: `o${i % 5}`, label: r.label, by: { ...DANA, name: r.owner || 'x' }, at: '2025-01-01T11:00:00.000Z', note: r.note }));
          base.history.push(...Array.from({ length: 30 }, () => ({ from: 'waiting' as const, to: 'human' as const, reason: 'claim', by: { kind: 'operator' as const, operator: DANA }, at: '2025-01-01T11:00:00.000Z', note: r.note })));
          for (const state of ['waiting', 'human', 'agent', 'closed'] as const) {
            const card = briefingCard({ ...base, state });
            expect(blockKitViolations(card)).toEqual([]);
          }
          expect(blockKitViolations(threadRoot(base))).toEqual([]);
          expect(blockKitViolations(supersededBriefingCard(base))).toEqual([]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('drops duplicate option ids instead of sending a card Slack would refuse', () => {
    const card = briefingCard(conversation({}, { options: [{ id: 'a', label: 'A' }, { id: 'a', label: 'A again' }] }));
    expect(actionIds(card).filter((id) => id === 'briefing_option:a')).toHaveLength(1);
  });

  it('checks its own limits: the checker catches what Slack would refuse', () => {
    const tooMany = { text: 'x', blocks: Array.from({ length: 51 }, () => ({ type: 'divider' })) };
    expect(blockKitViolations(tooMany)).not.toEqual([]);
    expect(blockKitViolations({ text: 'x', blocks: [{ type: 'header', text: { type: 'plain_text', text: 'x'.repeat(151) } }] })).not.toEqual([]);
    expect(blockKitViolations({ text: 'x', blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'x'.repeat(3001) } }] })).not.toEqual([]);
    expect(blockKitViolations({ text: 'x', blocks: [{ type: 'section', fields: Array.from({ length: 11 }, () => ({ type: 'mrkdwn', text: 'x' })) }] })).not.toEqual([]);
    expect(
      blockKitViolations({ text: 'x', blocks: [{ type: 'actions', elements: [{ type: 'button', action_id: 'a'.repeat(256), text: { type: 'plain_text', text: 'x'.repeat(76) }, value: 'v'.repeat(2001) }] }] }),
    ).toHaveLength(3);
    expect(LIMITS.blocksPerMessage).toBe(50);
  });
});

describe('the briefing as one message', () => {
  const operator = { id: 'slack:U1', name: filler(200, 'Dana & '), workspace: 'slack' };
  /** The largest briefing there can be: maximal envelope, a long customer name, a long history of notes. */
  function maximal(): Conversation {
    return conversationFixture({
      customer: { id: 'v1', name: filler(2000), email: filler(300, 'a&b@example.com') },
      state: 'waiting',
      briefing: maximalEnvelope(),
      history: [
        { from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at: '2025-01-01T10:00:00.000Z', trigger: 'agent_tool', note: filler(2000) },
        ...Array.from({ length: 10 }, () => ({ from: 'waiting' as const, to: 'human' as const, reason: 'claim', by: { kind: 'operator' as const, operator }, at: '2025-01-01T11:00:00.000Z', note: filler(2000) })),
      ],
      decisions: Array.from({ length: 10 }, () => ({ optionId: 'option_1', label: filler(75), by: operator, at: '2025-01-01T11:00:00.000Z', note: filler(2000) })),
    });
  }

  it('keeps the text of all blocks of a maximal briefing within the budget, in every state', () => {
    for (const state of ['waiting', 'human', 'agent', 'closed'] as const) {
      const card = briefingCard({ ...maximal(), state, ...(state === 'human' ? { owner: operator } : {}) });
      // Each element alone is within its limit; together they would be over 20,000 characters uncut.
      expect(blockKitViolations(card)).toEqual([]);
      expect(blocksTextLength(card.blocks)).toBeLessThanOrEqual(LIMITS.messageBlocksText);
      expect(blocksTextLength(card.blocks)).toBeGreaterThan(LIMITS.messageBlocksText - 500); // cut to the budget, not far below it
    }
  });

  it('shortens the longest parts first and keeps the short ones whole', () => {
    const card = briefingCard(maximal());
    const json = JSON.stringify(card);
    expect(json).toContain('Pending question');
    expect(json).toContain('What the agent tried');
    // Short parts survive whole; every option still has its button.
    expect(json).toContain('*Channel*\\nwebchat');
    expect(actionIds(card).filter((id) => id.startsWith('briefing_option:'))).toHaveLength(5);
    expect(shareBudget([100, 5000, 3000], 4000)).toBe(1950);
    expect(shareBudget([100, 200], 4000)).toBe(Number.POSITIVE_INFINITY);
    expect(shareBudget([5000, 5000], 0)).toBe(0);
  });

  it('has smaller fallbacks that keep the ticket, the reason, the pending question and Claim', () => {
    const c = conversation();
    const [compact, textOnly] = briefingFallbacks(c);
    expect(blockKitViolations(compact!)).toEqual([]);
    expect(actionIds(compact!)).toEqual(['briefing_claim', 'briefing_return', 'briefing_close']);
    for (const message of [compact!, textOnly!]) {
      const json = JSON.stringify(message);
      for (const part of ['HB-1042', 'Refund of 250 USD is over the 100 USD limit', 'Approve the 250 USD refund?', 'full briefing']) expect(json).toContain(part);
    }
    expect(textOnly!.blocks).toBeUndefined();
    expect(blocksTextLength(briefingFallbacks(maximal())[0]!.blocks)).toBeLessThan(3000);
  });

  it('puts the escalation in every button, so a click on an older card is recognised', () => {
    const c = conversation();
    const values = (briefingCard(c).blocks as any[]).flatMap((b) => (b.type === 'actions' ? b.elements : [])).map((e: any) => e.value as string);
    expect(new Set(values)).toEqual(new Set([briefingButtonValue('conv_123', 1)]));
    expect(parseBriefingButtonValue(values[0])).toEqual({ conversationId: 'conv_123', escalation: 1 });
    expect(parseBriefingButtonValue('conv_123')).toEqual({ conversationId: 'conv_123' }); // a card from before buttons carried it
    expect(parseBriefingButtonValue(undefined)).toBeUndefined();
    // The cards count escalations as the engine does.
    const twice = conversation({ history: [...c.history, { ...c.history[0]! }] });
    expect(escalationNumber(twice)).toBe(escalationCount(twice));
    expect(escalationNumber(c)).toBe(escalationCount(c));
  });
});

describe('the thread', () => {
  const msg = (m: Partial<Message>): Message => ({ id: 'msg_1', at: '2025-01-01T10:00:00.000Z', author: { role: 'customer', name: 'Ann' }, text: 'hi', visibility: 'public', ...m });

  it('names the customer, origin, ticket and current owner on the root', () => {
    const root = JSON.stringify(threadRoot(conversation({ state: 'human', owner: DANA })));
    for (const part of ['HB-1042', 'Ann Lee', 'web chat', 'Dana', 'billing']) expect(root).toContain(part);
    expect(JSON.stringify(threadRoot(conversation({ state: 'agent' })))).toContain('AI agent');
  });

  it('labels each message by author and marks internal notes', () => {
    expect(threadMessage(msg({})).text).toBe(':bust_in_silhouette: *Ann* (customer)\nhi');
    expect(threadMessage(msg({ author: { role: 'agent', name: 'offline' }, text: 'answer' })).text).toContain('*offline* (agent)');
    expect(threadMessage(msg({ author: { role: 'operator', name: 'Dana' }, text: 'x', source: { workspace: 'teams' } })).text).toContain('*Dana* (operator, teams)');
    expect(threadMessage(msg({ author: { role: 'operator', name: 'Sam' }, visibility: 'internal' })).text).toContain(':memo: *Internal note* · Sam');
    expect(threadMessage(msg({ author: { role: 'system' }, notice: 'joined', text: 'Dana joined' })).text).toContain('*Customer was told:* Dana joined');
    expect(threadMessage(msg({ author: { role: 'system' }, visibility: 'internal', text: 'Dana claimed the conversation.' })).text).toBe(':information_source: Dana claimed the conversation.');
  });

  it('escapes customer text and lists attachments without making them disguised links', () => {
    const text = threadMessage(msg({ text: HOSTILE, attachments: [{ name: '<http://evil|invoice.pdf>', url: 'https://files.example/a.pdf' }] })).text;
    expect(text).not.toMatch(/<!|<@|<http/);
    expect(text).toContain(':paperclip: &lt;http://evil|invoice.pdf&gt;: https://files.example/a.pdf');
  });

  it('cuts very long text with a note instead of failing', () => {
    const text = threadMessage(msg({ text: 'x'.repeat(50_000) })).text;
    expect(text.length).toBeLessThanOrEqual(LIMITS.messageText);
    expect(text).toContain('cut to fit Slack');
  });
});

describe('operator prompts', () => {
  it('builds the note modal within view limits and round-trips its metadata', () => {
    const view = noteModal('return', conversation(), { conversationId: 'conv_123', channel: 'C1', threadTs: '1.2' });
    expect(view.title.text.length).toBeLessThanOrEqual(24);
    expect(blockKitViolations(view, 'view')).toEqual([]);
    expect(parseNoteModalMetadata(view.private_metadata)).toEqual({ conversationId: 'conv_123', channel: 'C1', threadTs: '1.2' });
    expect(parseNoteModalMetadata('not json')).toBeUndefined();
    expect(parseNoteModalMetadata('{"conversationId":""}')).toBeUndefined();
  });

  it('builds a picker for many held conversations within limits', () => {
    const many = Array.from({ length: 60 }, (_, i) => conversation({ id: `conv_${i}`, ticket: `HB-${i}`, customer: { id: 'x', name: HOSTILE } }));
    const picker = pickerMessage('return', many, 'pick1');
    expect(blockKitViolations(picker)).toEqual([]);
    expect(JSON.stringify(picker)).not.toMatch(/<!channel/);
    expect(parsePickerValue('conv_1|pick1')).toEqual({ conversationId: 'conv_1', pickId: 'pick1' });
    expect(parsePickerValue('garbage')).toBeUndefined();
  });
});
