import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cardText, parseCardAction, type AdaptiveCard } from '../../cards/teams/adaptive.ts';
import { buildBriefingCard, buildBriefingFallbackText, buildSupersededBriefingCard, CARD_BUDGET_BYTES } from '../../cards/teams/briefing.ts';
import { formatMirroredMessage } from '../../cards/teams/message.ts';
import { buildRootCard } from '../../cards/teams/root.ts';
import { escapeMessageText, utf16Bytes } from '../../cards/teams/text.ts';
import { HandoffEnvelopeSchema, type HandoffEnvelopeInput } from '../../src/envelope.ts';
import type { Conversation, Message, Operator } from '../../src/model.ts';
import { conversationFixture } from '../support/conversations.ts';

const ALICE: Operator = { id: 'teams:29:alice', name: 'Alice Ops', workspace: 'teams' };
const SLACK_SAM: Operator = { id: 'slack:U1', name: 'Sam', workspace: 'slack' };

function envelope(input: Partial<HandoffEnvelopeInput> = {}) {
  return HandoffEnvelopeSchema.parse({
    reason: 'Refund over the limit',
    trigger: 'refund_threshold',
    priority: 'high',
    summary: 'Grace wants 420 USD back for order A-1.',
    intent: 'Refund',
    entities: { ids: ['A-1'], amounts: [{ value: 420, currency: 'USD' }], dates: [], emails: ['grace@example.com'] },
    sentiment: 'frustrated',
    actionsTaken: [{ tool: 'lookup_order', input: { id: 'A-1' }, output: { total: 420 }, ok: true }],
    pendingQuestion: 'Approve the refund?',
    options: [
      { id: 'approve_refund', label: 'Approve refund', risk: 'high', tradeoffs: 'Cannot be undone' },
      { id: 'offer_credit', label: 'Offer credit' },
    ],
    ticket: 'HB-1042',
    ...input,
  });
}

function conversation(overrides: Partial<Conversation> = {}): Conversation {
  const at = '2025-01-01T10:00:00.000Z';
  return conversationFixture({
    id: 'conv_1',
    customer: { id: 'c1', name: 'Grace Hopper', email: 'grace@example.com' },
    queue: 'billing',
    state: 'waiting',
    ownershipVersion: 1,
    history: [{ from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at, trigger: 'refund_threshold', note: 'Refund over the limit' }],
    briefing: envelope(),
    createdAt: at,
    updatedAt: at,
    ...overrides,
  });
}

function buttons(card: AdaptiveCard): Array<{ title: string; verb?: string; data: Record<string, unknown> }> {
  const out: Array<{ title: string; verb?: string; data: Record<string, unknown> }> = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (!n || typeof n !== 'object') return;
    const o = n as Record<string, unknown>;
    if (o.type === 'Action.Execute') out.push({ title: String(o.title), verb: o.verb as string, data: o.data as Record<string, unknown> });
    for (const k of ['body', 'items', 'actions']) if (k in o) walk(o[k]);
  };
  walk(card.body);
  walk(card.actions);
  return out;
}

/** Every TextBlock text on the card: the only places markdown is parsed. */
function markdownTexts(card: unknown): string[] {
  const out: string[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (!n || typeof n !== 'object') return;
    const o = n as Record<string, unknown>;
    if (o.type === 'TextBlock') out.push(String(o.text));
    for (const k of Object.keys(o)) walk(o[k]);
  };
  walk(card);
  return out;
}

describe('the Teams briefing card', () => {
  it('offers Claim, one button per option, Return and Close while waiting', () => {
    const card = buildBriefingCard(conversation());
    expect(card.version).toBe('1.5');
    expect(buttons(card).map((b) => [b.title, b.verb, b.data.optionId])).toEqual([
      ['Approve refund', 'option', 'approve_refund'],
      ['Offer credit', 'option', 'offer_credit'],
      ['Claim', 'claim', undefined],
      ['Return to agent', 'return', undefined],
      ['Close', 'close', undefined],
    ]);
    const text = cardText(card).join('\n');
    for (const part of ['HB-1042 needs a person · high priority', 'Grace wants 420 USD', 'Intent: Refund', 'Sentiment: 😕 frustrated', 'IDs: A-1', 'Amounts: 420 USD', 'lookup_order', 'Approve the refund?', 'Cannot be undone', 'Waiting for a person']) {
      expect(text).toContain(part);
    }
    expect(card.body.some((e) => e.type === 'Input.Text' && e.id === 'note')).toBe(true);
  });

  it('puts the escalation it briefs on each option button, so a stale card cannot decide a newer escalation', () => {
    const at = '2025-01-01T10:05:00.000Z';
    const second = conversation({
      history: [
        ...conversation().history,
        { from: 'waiting', to: 'agent', reason: 'decide', by: { kind: 'operator', operator: ALICE }, at, optionId: 'offer_credit' },
        { from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at, trigger: 'agent_tool' },
      ],
    });
    const options = (c: Conversation) => buttons(buildBriefingCard(c)).filter((b) => b.verb === 'option');
    expect(options(conversation()).map((b) => b.data.escalation)).toEqual([1, 1]);
    expect(options(second).map((b) => b.data.escalation)).toEqual([2, 2]);
    expect(buttons(buildBriefingCard(second)).find((b) => b.verb === 'claim')?.data.escalation).toBeUndefined();
  });

  it('has a text form for when Teams refuses the card: ticket, reason, pending question, options and how to act', () => {
    const { text, textFormat } = buildBriefingFallbackText(conversation({ briefing: envelope({ pendingQuestion: 'Approve <b>this</b>?' }) }));
    expect(textFormat).toBe('xml');
    for (const part of ['HB-1042 needs a person', 'Refund over the limit', 'Approve &lt;b&gt;this&lt;/b&gt;?', 'Approve refund', 'Offer credit', "type 'claim' here"]) expect(text).toContain(part);
    expect(text).not.toContain('<b>this</b>');
  });

  it('gives every Action.Execute an Action.Submit fallback with the same data', () => {
    const card = buildBriefingCard(conversation());
    const walk = (n: unknown): Array<Record<string, unknown>> =>
      Array.isArray(n) ? n.flatMap(walk) : n && typeof n === 'object' ? [n as Record<string, unknown>, ...Object.values(n).flatMap(walk)] : [];
    const executes = walk(card).filter((n) => n.type === 'Action.Execute' && n.verb !== 'refresh');
    expect(executes.length).toBe(5);
    for (const action of executes) expect(action.fallback).toEqual({ type: 'Action.Submit', title: action.title, data: action.data, ...(action.style ? { style: action.style } : {}) });
  });

  it('names the holder for everyone and tells the holder it is theirs', () => {
    const held = conversation({ state: 'human', owner: ALICE, history: [...conversation().history, { from: 'waiting', to: 'human', reason: 'claim', by: { kind: 'operator', operator: ALICE }, at: '2025-01-01T10:01:00.000Z' }] });
    expect(cardText(buildBriefingCard(held)).join('\n')).toContain('Held by Alice Ops');
    expect(cardText(buildBriefingCard(held, { viewerId: ALICE.id })).join('\n')).toContain('You hold this conversation');
    expect(cardText(buildBriefingCard(held)).join('\n')).toContain('Alice Ops claimed the conversation');
    expect(buttons(buildBriefingCard(held)).map((b) => b.title)).toEqual(['Return to agent', 'Close']);
    expect(buildBriefingCard(held, { refreshUserIds: ['29:alice'] }).refresh).toMatchObject({ action: { type: 'Action.Execute', verb: 'refresh' }, userIds: ['29:alice'] });
  });

  it('shows a private notice only on the card built for that viewer', () => {
    const card = buildBriefingCard(conversation(), { viewerId: 'teams:29:bob', notice: 'HB-1042 is already held by Alice Ops.' });
    expect(card.body[0]).toMatchObject({ id: 'notice' });
    expect(cardText(card)[0]).toBe('HB-1042 is already held by Alice Ops.');
    expect(JSON.stringify(buildBriefingCard(conversation()))).not.toContain('"notice"');
  });

  it('offers only Take over once back with the agent, and nothing once closed', () => {
    expect(buttons(buildBriefingCard(conversation({ state: 'agent' }))).map((b) => b.title)).toEqual(['Take over']);
    expect(buttons(buildBriefingCard(conversation({ state: 'closed' })))).toEqual([]);
  });

  it('shows decisions made on this briefing', () => {
    const c = conversation({ state: 'agent', decisions: [{ optionId: 'offer_credit', label: 'Offer credit', by: SLACK_SAM, at: '2025-01-01T10:02:00.000Z', note: 'she agreed' }] });
    expect(cardText(buildBriefingCard(c)).join('\n')).toContain('Sam chose "Offer credit": she agreed');
  });

  it('strips the buttons from a superseded briefing', () => {
    const card = buildSupersededBriefingCard(conversation());
    expect(buttons(card)).toEqual([]);
    expect(cardText(card).join('\n')).toContain('A newer briefing replaced this one');
  });

  it('keeps untrusted text out of markdown: names, summaries and notes only appear as literal TextRuns', () => {
    const hostile = '[click](https://evil.example) <at>Alice</at> **bold** ![x](https://evil.example/p.png)';
    const c = conversation({
      customer: { id: 'c', name: hostile, email: 'x@example.com' },
      subject: hostile,
      owner: { ...ALICE, name: hostile },
      state: 'human',
      briefing: envelope({ summary: hostile, reason: hostile, intent: hostile, pendingQuestion: hostile, constraints: [hostile] }),
    });
    for (const card of [buildBriefingCard(c), buildRootCard(c)]) {
      for (const text of markdownTexts(card)) expect(text).not.toContain('evil.example');
      expect(cardText(card).join('\n')).toContain(hostile);
    }
  });

  it('always fits the Teams size budget and keeps its buttons, whatever the envelope holds', () => {
    const text = (max: number) => fc.string({ unit: 'grapheme', maxLength: max });
    fc.assert(
      fc.property(
        fc.record({
          reason: text(300).map((s) => s || 'r'),
          summary: text(1200).map((s) => s || 's'),
          intent: text(200).map((s) => s || 'i'),
          pendingQuestion: text(500).map((s) => s || 'q'),
          constraints: fc.array(text(300), { maxLength: 10 }),
          blob: text(3000),
          optionLabel: text(75).map((s) => s || 'o'),
        }),
        (f) => {
          const c = conversation({
            customer: { id: 'c', name: f.intent, email: 'e@example.com' },
            briefing: envelope({
              reason: f.reason,
              summary: f.summary,
              intent: f.intent,
              pendingQuestion: f.pendingQuestion,
              constraints: f.constraints,
              entities: { ids: Array(20).fill(f.intent), amounts: [], dates: Array(20).fill(f.optionLabel), emails: [] },
              actionsTaken: Array.from({ length: 20 }, (_, i) => ({ tool: `t${i}`, input: { blob: f.blob }, output: f.blob, ok: false })),
              options: Array.from({ length: 5 }, (_, i) => ({ id: `o${i}`, label: f.optionLabel, tradeoffs: f.summary.slice(0, 500), risk: 'high' as const })),
            }),
          });
          const card = buildBriefingCard(c, { notice: f.summary, viewerId: 'teams:x', refreshUserIds: Array(80).fill('29:x') });
          expect(utf16Bytes(card)).toBeLessThanOrEqual(CARD_BUDGET_BYTES);
          expect(buttons(card).map((b) => b.verb)).toEqual(expect.arrayContaining(['claim', 'return', 'close', 'option']));
          expect(card.refresh!.userIds.length).toBeLessThanOrEqual(60);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('the Teams root card', () => {
  it('names customer, origin, ticket, owner and queue, and follows ownership', () => {
    const text = (c: Conversation) => cardText(buildRootCard(c)).join('\n');
    expect(text(conversation({ state: 'agent' }))).toContain('💬 HB-1042 · Grace Hopper via web chat');
    expect(text(conversation({ state: 'agent' }))).toContain('Owner: 🤖 With the AI agent');
    expect(text(conversation())).toContain('Waiting for a person');
    expect(text(conversation({ state: 'human', owner: ALICE }))).toContain('Held by Alice Ops');
    expect(text(conversation({ state: 'closed' }))).toContain('Closed');
    expect(text(conversation())).toContain('Queue: billing');
    expect(text(conversation())).toContain('Email: grace@example.com');
  });
});

describe('mirrored thread messages', () => {
  const message = (m: Partial<Message>): Message => ({ id: 'msg_1', at: '2025-01-01T10:00:00.000Z', author: { role: 'customer', name: 'Grace' }, text: 'hi', visibility: 'public', ...m });

  it('labels each message by its author and marks notes and customer notices', () => {
    expect(formatMirroredMessage(message({})).text).toBe('👤 <b>Grace</b> (customer)<br>hi');
    expect(formatMirroredMessage(message({ author: { role: 'agent', name: 'Assistant' } })).text).toContain('🤖 <b>Assistant</b> (agent)');
    expect(formatMirroredMessage(message({ author: { role: 'operator', name: 'Sam' }, source: { workspace: 'slack' } })).text).toContain('<b>Sam</b> (operator, slack)');
    expect(formatMirroredMessage(message({ author: { role: 'operator', name: 'Sam' }, visibility: 'internal' })).text).toContain('📝 <b>Internal note</b> · Sam');
    expect(formatMirroredMessage(message({ author: { role: 'system' }, notice: 'joined', text: 'Sam joined' })).text).toBe('📣 <i>Customer was told:</i> Sam joined');
    expect(formatMirroredMessage(message({ author: { role: 'system' }, visibility: 'internal', text: 'Sam claimed' })).text).toBe('ℹ️ Sam claimed');
  });

  it('escapes HTML, markdown and mentions, keeping line breaks', () => {
    const { text } = formatMirroredMessage(message({ text: '<script>x</script> [a](b) *c* _d_ `e` <at>Al</at>\nline 2 & #3' }));
    expect(text).not.toMatch(/<script|<at>|\[a\]|\*c\*|_d_|`e`/);
    expect(text).toContain('&lt;script&gt;');
    expect(text).toContain('<br>line 2 &amp; &#35;3');
  });

  it('links files only when they are http(s)', () => {
    const { text } = formatMirroredMessage(message({ attachments: [{ name: 'label.pdf', url: 'https://files.example/l.pdf?a=1&b=2' }, { name: 'evil', url: 'javascript:alert(1)' }] }));
    expect(text).toContain('📎 <a href="https://files.example/l.pdf?a=1&#38;b=2">label.pdf</a>');
    expect(text).not.toContain('href="javascript');
    expect(text).toContain('📎 evil (javascript:alert(1))');
  });

  it('cuts very long messages with a note instead of failing, measured after escaping', () => {
    for (const char of ['y', '*', '<', '😀']) {
      const { text } = formatMirroredMessage(message({ text: char.repeat(20_000) }));
      expect(text.length * 2).toBeLessThan(30_000);
      expect(text).toContain(`(${char.length * 20_000} characters; cut to fit Teams)`);
    }
    expect(formatMirroredMessage(message({ text: 'short *and* sweet' })).text).not.toContain('cut to fit');
  });

  it('escapes every markdown and HTML special character', () => {
    expect(escapeMessageText('a<b>&"[]*_`~\\|#')).toBe('a&lt;b&gt;&amp;&quot;&#91;&#93;&#42;&#95;&#96;&#126;&#92;&#124;&#35;');
  });
});

describe('card actions coming back from Teams', () => {
  it('reads an invoke value and a submit value alike, with the note input', () => {
    const data = { handoff: 1, conversationId: 'conv_1', action: 'option', optionId: 'offer_credit', note: '  she agreed  ' };
    expect(parseCardAction({ action: { type: 'Action.Execute', verb: 'option', data }, trigger: 'manual' })).toEqual({ conversationId: 'conv_1', action: 'option', optionId: 'offer_credit', note: 'she agreed' });
    expect(parseCardAction(data)).toEqual({ conversationId: 'conv_1', action: 'option', optionId: 'offer_credit', note: 'she agreed' });
    expect(parseCardAction({ ...data, escalation: 2 })).toMatchObject({ optionId: 'offer_credit', escalation: 2 });
  });

  it("ignores other apps' submits and malformed data", () => {
    expect(parseCardAction({ action: { data: { foo: 1 } } })).toBeUndefined();
    expect(parseCardAction({ handoff: 1, conversationId: 'c', action: 'option' })).toBeUndefined();
    expect(parseCardAction({ handoff: 1, conversationId: 'c', action: 'delete_everything' })).toBeUndefined();
    expect(parseCardAction('claim')).toBeUndefined();
    expect(parseCardAction({ handoff: 1, conversationId: 'c', action: 'option', optionId: 'x', escalation: '2' })).toBeUndefined();
  });
});
