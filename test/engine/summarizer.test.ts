/**
 * The offline summarizer: entities, sentiment, intent, options by trigger, and the promise that
 * buildEnvelope always returns a schema-valid envelope, whatever the transcript, the cause or the
 * agent's own (partial, possibly broken) briefing hold.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HandoffEnvelopeSchema, OptionSchema, type EscalateToolArgs, type HandoffEnvelope, type Priority } from '../../src/envelope.ts';
import type { Conversation, Message } from '../../src/model.ts';
import { DEFAULT_POLICY, PolicySchema } from '../../src/policy.ts';
import { buildEnvelope, clip, defaultOptions, estimateSentiment, extractEntities, type EscalationCause } from '../../src/summarizer.ts';
import { conversationFixture } from '../support/conversations.ts';

let seq = 0;
function msg(role: Message['author']['role'], text: string, extra: Partial<Message> = {}): Message {
  seq++;
  return { id: `msg_${seq}`, at: new Date(Date.UTC(2025, 0, 1, 0, 0, seq % 1000)).toISOString(), author: { role }, text, visibility: 'public', ...extra };
}

function conversation(messages: Message[], extra: Partial<Conversation> = {}): Conversation {
  return conversationFixture({ id: 'conv_s', customer: { id: 'v1', name: 'Ana' }, messages, ...extra });
}

const customerSays = (...texts: string[]) => conversation(texts.map((t) => msg('customer', t)));
const EXPLICIT: EscalationCause = { trigger: 'explicit_request', reason: 'The customer asked for a person', priority: 'normal' };
const entities = (text: string) => extractEntities([text]);

describe('extractEntities', () => {
  describe('ids', () => {
    const cases: Array<[string, string[]]> = [
      ['My order A-1001 has not arrived', ['A-1001']],
      ['Ticket #12345 please', ['12345']],
      ['see #98765', ['98765']],
      ['ORD-77 is missing', ['ORD-77']],
      ['ord-77 and ORD77', ['ord-77', 'ORD77']],
      ['invoice INV-2024-0042 is wrong', ['INV-2024-0042']],
      ['my order number is 123456', ['123456']],
      ['Order no. 55555', ['55555']],
      ['case 12345', ['12345']],
      ['order A1002 arrived broken', ['A1002']],
      ['order #A-1001', ['A-1001']],
      ['acct-778899 locked', ['acct-778899']],
      ['A-1001 and a-1001 and A-1001 again', ['A-1001']],
      ['A-1001, B-2002 and CX-30003', ['A-1001', 'B-2002', 'CX-30003']],
    ];
    for (const [text, ids] of cases) it(`${JSON.stringify(text)} -> ${JSON.stringify(ids)}`, () => expect(entities(text).ids).toEqual(ids));

    it('words that only look like id keywords are not ids', () => {
      for (const text of ['What is my order status?', 'I ordered a subscription on my account as a customer, invoice attached', 'case closed', 'accept it', 'my order is late', 'version 2.0', 'call 555-12']) {
        expect(entities(text).ids, text).toEqual([]);
      }
    });

    it('ids inside email addresses are not ids', () => {
      expect(entities('write to ord-12345@example.com')).toMatchObject({ ids: [], emails: ['ord-12345@example.com'] });
    });
  });

  describe('amounts', () => {
    const cases: Array<[string, Array<{ value: number; currency?: string; raw: string }>]> = [
      ['refund $1,250.50 now', [{ value: 1250.5, currency: 'USD', raw: '$1,250.50' }]],
      ['It cost 120 EUR', [{ value: 120, currency: 'EUR', raw: '120 EUR' }]],
      ['€50 was charged', [{ value: 50, currency: 'EUR', raw: '€50' }]],
      ['I paid 1.250,50 € yesterday', [{ value: 1250.5, currency: 'EUR', raw: '1.250,50 €' }]],
      ['50€ twice', [{ value: 50, currency: 'EUR', raw: '50€' }]],
      ['£3.5 and 20 dollars', [{ value: 3.5, currency: 'GBP', raw: '£3.5' }, { value: 20, currency: 'USD', raw: '20 dollars' }]],
      ['100 euros', [{ value: 100, currency: 'EUR', raw: '100 euros' }]],
      ['Paid 1,000,000 EUR', [{ value: 1_000_000, currency: 'EUR', raw: '1,000,000 EUR' }]],
      ['$0.99', [{ value: 0.99, currency: 'USD', raw: '$0.99' }]],
      ['$ 20', [{ value: 20, currency: 'USD', raw: '$ 20' }]],
      ['12.5 usd', [{ value: 12.5, currency: 'USD', raw: '12.5 usd' }]],
      ['charged $5 and $5 again', [{ value: 5, currency: 'USD', raw: '$5' }]],
    ];
    for (const [text, amounts] of cases) it(`${JSON.stringify(text)}`, () => expect(entities(text).amounts).toEqual(amounts));

    it('numbers without a currency are not amounts', () => {
      for (const text of ['20%', 'version 2.0', 'about 3 pm', 'order A-1001', '3 items']) expect(entities(text).amounts, text).toEqual([]);
    });
  });

  describe('dates', () => {
    it('finds ISO, numeric, written and relative dates', () => {
      expect(entities('on 2024-03-05 and 3/5/2024 and March 5th, 2024 and 5 March 2024').dates).toEqual(['2024-03-05', '3/5/2024', 'March 5th, 2024', '5 March 2024']);
      expect(entities('ordered yesterday, due today, maybe tomorrow').dates).toEqual(['yesterday', 'today', 'tomorrow']);
      expect(entities('since last week').dates).toEqual(['last week']);
      expect(entities('delivered 12.03.2024').dates).toEqual(['12.03.2024']);
      expect(entities('Dec. 24 or jan 3rd').dates).toEqual(['Dec. 24', 'jan 3rd']);
      expect(entities('in May 2024').dates).toEqual(['May 2024']);
    });

    it('month-like words are not dates', () => {
      for (const text of ['May I help?', 'the market 5 blocks away', 'decimal 3', 'mayhem 2 times', 'junk 12']) expect(entities(text).dates, text).toEqual([]);
    });
  });

  describe('emails', () => {
    it('finds and lower-cases addresses, once each', () => {
      expect(entities('email Jane.Doe+x@Example.co.uk or jane.doe+x@example.co.uk, cc bob@shop.io.').emails).toEqual(['jane.doe+x@example.co.uk', 'bob@shop.io']);
      expect(entities('not@an-email').emails).toEqual([]);
    });
  });

  it('gathers across messages, at most 20 of each', () => {
    const many = Array.from({ length: 30 }, (_, i) => `order A-${1000 + i} for $${i + 1} on 2024-01-${String((i % 28) + 1).padStart(2, '0')} u${i}@x.io`);
    const e = extractEntities(many);
    expect(e.ids).toHaveLength(20);
    expect(e.amounts).toHaveLength(20);
    expect(e.dates).toHaveLength(20);
    expect(e.emails).toHaveLength(20);
    expect(e.ids[0]).toBe('A-1000');
  });

  it('is fast and within the schema limits on hostile text', () => {
    const hostile = ['a'.repeat(8000), 'a.'.repeat(4000), '1'.repeat(8000), '$1' + ',000'.repeat(2000), 'x'.repeat(500) + '@' + 'y'.repeat(500) + '.com', '#'.repeat(8000), 'ord-'.repeat(2000)];
    const started = performance.now();
    for (const text of hostile) {
      const e = extractEntities([text]);
      expect(HandoffEnvelopeSchema.shape.entities.safeParse(e).success, text.slice(0, 20)).toBe(true);
    }
    expect(performance.now() - started).toBeLessThan(1500);
  });
});

describe('estimateSentiment', () => {
  it('angry on strong words, or shouting with frustration', () => {
    expect(estimateSentiment(['This is ridiculous'])).toBe('angry');
    expect(estimateSentiment(['I will sue you'])).toBe('angry');
    expect(estimateSentiment(['WHY IS THIS STILL NOT FIXED'])).toBe('angry');
  });

  it('frustrated on repetition words, or on shouting alone', () => {
    expect(estimateSentiment(['I already told you my order number'])).toBe('frustrated');
    expect(estimateSentiment(['Still waiting for my parcel'])).toBe('frustrated');
    expect(estimateSentiment(['hello!!'])).toBe('frustrated');
    expect(estimateSentiment(['PLEASE ANSWER ME'])).toBe('frustrated');
  });

  it('positive on thanks, neutral otherwise', () => {
    expect(estimateSentiment(['Thanks, that is great'])).toBe('positive');
    expect(estimateSentiment(['Where is my order A-1001?'])).toBe('neutral');
    expect(estimateSentiment([])).toBe('neutral');
    // "sue" is a whole word: an "issue" is not a threat.
    expect(estimateSentiment(['I have an issue with my invoice'])).toBe('neutral');
  });

  it('reads only the last three messages', () => {
    expect(estimateSentiment(['This is ridiculous', 'ok', 'ok', 'ok'])).toBe('neutral');
    expect(estimateSentiment(['ok', 'ok', 'This is ridiculous'])).toBe('angry');
  });
});

describe('intent', () => {
  const intentOf = (...texts: string[]) => buildEnvelope(customerSays(...texts), EXPLICIT, DEFAULT_POLICY).intent;
  const cases: Array<[string, string]> = [
    ['I want my money back', 'Get a refund'],
    ['Quiero un reembolso', 'Get a refund'],
    ['Je veux être remboursé', 'Get a refund'],
    ['Bitte um Rückerstattung', 'Get a refund'],
    ['Please cancel my subscription', 'Cancel an order or subscription'],
    ['Ich möchte kündigen', 'Cancel an order or subscription'],
    ['Where is my parcel?', 'Find out where an order is'],
    ['¿Dónde está mi envío?', 'Find out where an order is'],
    ['Ma livraison est en retard', 'Find out where an order is'],
    ['I was charged twice', 'Sort out a billing problem'],
    ['I am locked out of my account', 'Get back into their account'],
    ['The monitor arrived broken', 'Report a faulty product'],
    ['Please change the delivery address', 'Find out where an order is'],
    ['Can you change the address?', 'Change order details'],
  ];
  for (const [text, intent] of cases) it(`${JSON.stringify(text)} -> ${intent}`, () => expect(intentOf(text)).toBe(intent));

  it('falls back to the first message with text, on one line and clipped', () => {
    expect(intentOf('Something\n\nunusual   happened', 'hello')).toBe('Something unusual happened');
    expect(intentOf('x'.repeat(500))).toHaveLength(120);
    expect(intentOf('   ', 'Something unusual')).toBe('Something unusual');
    expect(buildEnvelope(conversation([]), EXPLICIT, DEFAULT_POLICY).intent).toBe('Unclear');
  });
});

describe('defaultOptions by trigger', () => {
  const e = extractEntities(['Please refund $250 for order A-1001']);

  it('refund_threshold: approve (approves the refund tool once), store credit, decline', () => {
    const options = defaultOptions({ trigger: 'refund_threshold', reason: 'Refund of 250 USD is over the 100 USD policy limit' }, e, DEFAULT_POLICY);
    expect(options.map((o) => o.id)).toEqual(['approve_refund', 'offer_credit', 'decline_refund']);
    expect(options[0]).toMatchObject({ label: 'Approve refund of 250 USD', risk: 'high', approvesTool: 'issue_refund' });
    expect(options[0]!.tradeoffs).toContain('100 USD');
    expect(options.slice(1).every((o) => o.approvesTool === undefined)).toBe(true);
    expect(defaultOptions({ trigger: 'refund_threshold', reason: 'r' }, extractEntities(['no amount']), DEFAULT_POLICY)[0]!.label).toBe('Approve refund of the refund');
  });

  it('irreversible_tool: approve names the tool from the reason, decline', () => {
    const options = defaultOptions({ trigger: 'irreversible_tool', reason: "cancel_subscription cannot be undone and needs a person's approval" }, e, DEFAULT_POLICY);
    expect(options).toEqual([
      { id: 'approve_action', label: 'Approve cancel_subscription', risk: 'high', tradeoffs: 'Cannot be undone.', approvesTool: 'cancel_subscription' },
      { id: 'decline_action', label: 'Decline', risk: 'low', tradeoffs: 'The agent explains it cannot do this.' },
    ]);
  });

  it('repetition, turn_cap, tool_error: let the agent try again', () => {
    for (const trigger of ['repetition', 'turn_cap', 'tool_error']) {
      expect(defaultOptions({ trigger, reason: 'r' }, e, DEFAULT_POLICY).map((o) => o.id)).toEqual(['agent_retry']);
    }
  });

  it('explicit requests, compliance and anything else: no options (a person must take it)', () => {
    for (const trigger of ['explicit_request', 'compliance', 'agent_tool', 'whatever']) expect(defaultOptions({ trigger, reason: 'r' }, e, DEFAULT_POLICY)).toEqual([]);
  });

  it('every default option is schema-valid', () => {
    for (const trigger of ['refund_threshold', 'irreversible_tool', 'repetition', 'turn_cap', 'tool_error']) {
      for (const o of defaultOptions({ trigger, reason: `${'w'.repeat(300)} cannot be undone` }, e, DEFAULT_POLICY)) {
        expect(OptionSchema.safeParse(o).success).toBe(true);
      }
    }
  });
});

describe('buildEnvelope', () => {
  it('fills every field from the transcript alone', () => {
    const c = conversation([
      msg('customer', 'Hi, my monitor from order A-1002 arrived broken.'),
      msg('agent', 'Let me look.', { actions: [{ tool: 'lookup_order', input: { order_id: 'A-1002' }, output: { total: 270 }, ok: true }] }),
      msg('customer', 'I already told you, it is broken. Can I get a refund of $270?'),
    ]);
    const e = buildEnvelope(c, { trigger: 'refund_threshold', reason: 'Refund of 270 USD is over the 100 USD policy limit.' }, DEFAULT_POLICY);
    expect(HandoffEnvelopeSchema.parse(e)).toEqual(e);
    expect(e).toMatchObject({
      trigger: 'refund_threshold',
      reason: 'Refund of 270 USD is over the 100 USD policy limit.',
      priority: 'normal',
      intent: 'Get a refund',
      sentiment: 'frustrated',
      pendingQuestion: 'Can I get a refund of $270?',
      queue: 'general',
      ticket: 'HB-1042',
      entities: { ids: ['A-1002'], amounts: [{ value: 270, currency: 'USD', raw: '$270' }], dates: [], emails: [] },
      constraints: ["Refunds over 100 USD need a person's approval"],
      actionsTaken: [{ tool: 'lookup_order', input: { order_id: 'A-1002' }, output: { total: 270 }, ok: true }],
    });
    expect(e.summary).toBe(
      'Ana (webchat) wants to: get a refund. Last message: "I already told you, it is broken. Can I get a refund of $270?". The agent already tried: lookup_order. Escalated because: Refund of 270 USD is over the 100 USD policy limit.',
    );
    expect(e.options.map((o) => o.id)).toEqual(['approve_refund', 'offer_credit', 'decline_refund']);
  });

  it('marks compliance escalations and angry customers', () => {
    const e = buildEnvelope(customerSays('This is a scam, my lawyer will call'), { trigger: 'compliance', reason: 'Compliance-sensitive words: lawyer' }, DEFAULT_POLICY);
    expect(e.constraints).toContain('Compliance-sensitive: do not admit liability; follow the legal-escalation playbook');
    expect(e.sentiment).toBe('angry');
    // No priority in the cause: an angry customer is high priority.
    expect(e.priority).toBe('high');
  });

  it('without a question asks how to answer the last message; without any text asks how to help', () => {
    expect(buildEnvelope(customerSays('My parcel is late'), EXPLICIT, DEFAULT_POLICY).pendingQuestion).toBe('How should we answer: "My parcel is late"');
    const attachmentOnly = conversation([msg('customer', '', { attachments: [{ name: 'photo.jpg', url: 'https://x/photo.jpg' }] })]);
    const e = buildEnvelope(attachmentOnly, EXPLICIT, DEFAULT_POLICY);
    expect(e.pendingQuestion).toBe('How should we help this customer?');
    expect(e.intent).toBe('Unclear');
  });

  it('an attachment-only first message does not break the briefing (it used to throw)', () => {
    const c = conversation([msg('customer', '', { attachments: [{ name: 'a.png', url: 'https://x/a.png' }] }), msg('customer', 'I want a human')]);
    const e = buildEnvelope(c, EXPLICIT, DEFAULT_POLICY);
    expect(e.intent).toBe('I want a human');
  });

  it('uses the customer email, then "The customer", when there is no name', () => {
    expect(buildEnvelope(conversation([msg('customer', 'hi')], { customer: { id: 'x', email: 'bo@x.io' } }), EXPLICIT, DEFAULT_POLICY).summary).toMatch(/^bo@x\.io \(webchat\)/);
    expect(buildEnvelope(conversation([msg('customer', 'hi')], { customer: { id: 'x', name: '' } }), EXPLICIT, DEFAULT_POLICY).summary).toMatch(/^The customer \(webchat\)/);
  });

  it('routes the queue from the text when the conversation has none', () => {
    expect(buildEnvelope(conversation([msg('customer', 'my invoice is wrong')], { queue: '' }), EXPLICIT, DEFAULT_POLICY).queue).toBe('billing');
  });

  it('keeps a hostile cause within the schema', () => {
    const e = buildEnvelope(customerSays('hi'), { trigger: 'x'.repeat(100), reason: '' }, DEFAULT_POLICY);
    expect(e.trigger).toHaveLength(60);
    expect(e.reason.length).toBeGreaterThan(0);
    expect(buildEnvelope(customerSays('hi'), { trigger: '', reason: '   ' }, DEFAULT_POLICY)).toMatchObject({ trigger: 'unknown', reason: 'Escalated (unknown)' });
  });

  describe("the agent's partial request", () => {
    const c = conversation([msg('customer', 'My order A-1001 for $250 is broken, refund please?')]);
    const cause: EscalationCause = { trigger: 'agent_tool', reason: 'The agent escalated' };

    it('wins field by field; the offline draft fills the gaps', () => {
      const request: Partial<EscalateToolArgs> = { summary: 'Ana wants a refund for a broken order.', intent: 'Refund a broken order', sentiment: 'frustrated', queue: 'returns' };
      const draft = buildEnvelope(c, cause, DEFAULT_POLICY);
      const e = buildEnvelope(c, cause, DEFAULT_POLICY, request);
      expect(e).toMatchObject(request);
      expect(e.pendingQuestion).toBe(draft.pendingQuestion);
      expect(e.entities).toEqual(draft.entities);
      expect(e.reason).toBe('The agent escalated');
    });

    it('cannot change the trigger or the ticket', () => {
      const e = buildEnvelope(c, cause, DEFAULT_POLICY, { trigger: 'nothing', ticket: 'HB-9999' } as Partial<EscalateToolArgs>);
      expect(e).toMatchObject({ trigger: 'agent_tool', ticket: 'HB-1042' });
    });

    it('merges entities list by list', () => {
      const e = buildEnvelope(c, cause, DEFAULT_POLICY, { entities: { ids: ['A-1001', 'SKU-9'], amounts: [], dates: ['2025-01-01'], emails: [] } });
      expect(e.entities).toEqual({ ids: ['A-1001', 'SKU-9'], amounts: [{ value: 250, currency: 'USD', raw: '$250' }], dates: ['2025-01-01'], emails: [] });
    });

    it('ignores empty fields, and replaces invalid ones with the draft instead of failing', () => {
      const draft = buildEnvelope(c, cause, DEFAULT_POLICY);
      const e = buildEnvelope(c, cause, DEFAULT_POLICY, {
        summary: '',
        intent: 42 as unknown as string,
        options: [{ id: 'not valid!', label: '' }] as never,
        constraints: [],
        sentiment: 'ecstatic' as never,
        entities: { ids: [7] } as never,
      });
      expect(e.summary).toBe(draft.summary);
      expect(e.intent).toBe(draft.intent);
      expect(e.options).toEqual(draft.options);
      expect(e.sentiment).toBe(draft.sentiment);
      expect(e.entities).toEqual(draft.entities);
    });

    it('clips over-long fields rather than rejecting them', () => {
      const e = buildEnvelope(c, cause, DEFAULT_POLICY, { summary: 's'.repeat(5000), pendingQuestion: 'q'.repeat(900), constraints: Array(30).fill('c'.repeat(400)) });
      expect(e.summary).toHaveLength(1200);
      expect(e.summary.endsWith('…')).toBe(true);
      expect(e.pendingQuestion).toHaveLength(500);
      expect(e.constraints).toHaveLength(10);
    });

    const RANKS: Priority[] = ['low', 'normal', 'high', 'urgent'];
    for (const drafted of ['normal', 'high'] as const) {
      for (const asked of RANKS) {
        const expected = RANKS.indexOf(asked) > RANKS.indexOf(drafted) ? asked : drafted;
        it(`priority: draft ${drafted}, agent asks ${asked} -> ${expected} (raise yes, lower never)`, () => {
          expect(buildEnvelope(c, { ...cause, priority: drafted }, DEFAULT_POLICY, { priority: asked }).priority).toBe(expected);
        });
      }
    }

    it('an invalid priority does not lower or break it', () => {
      expect(buildEnvelope(c, { ...cause, priority: 'high' }, DEFAULT_POLICY, { priority: 'whenever' as never }).priority).toBe('high');
    });
  });
});

describe('buildEnvelope always returns a schema-valid envelope (property)', () => {
  const HOSTILE_SNIPPETS = [
    '',
    ' ',
    '\n\n\t',
    '<script>alert(1)</script>',
    '<b>bold</b> &amp; <a href="javascript:x">link</a>',
    '**bold** _it_ `code` ```block``` > quote\n- list\n# Heading',
    '<!channel> <@U123> *everyone*',
    '😀👍🏽🇫🇷👨‍👩‍👧‍👦',
    '\u0000\u0007\u001b[31mred\u001b[0m',
    '\uD800 lone surrogate',
    'ؑمرحبا، أريد التحدث إلى شخص',
    '我要退款 订单 A-1001',
    'I want to talk to a human',
    'refund $1,250.50 for ORD-77 on 2024-03-05, email me@x.io',
    '?'.repeat(600),
    'lawyer '.repeat(100),
  ];
  const text = fc.oneof(
    { weight: 3, arbitrary: fc.string({ maxLength: 300 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 200 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_SNIPPETS) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', '1', '$1,', '#', 'x@', 'A-1', '😀', '. ', '?'), fc.integer({ min: 100, max: 20_000 })).map(([s, n]) => s.repeat(Math.ceil(n / s.length))) },
    { weight: 2, arbitrary: fc.array(fc.constantFrom(...HOSTILE_SNIPPETS, 'order', 'A-1001', '€50', '?', 'thanks'), { maxLength: 12 }).map((parts) => parts.join(' ')) },
  );
  const role = fc.constantFrom<Message['author']['role']>('customer', 'customer', 'customer', 'agent', 'operator', 'system');
  const action = fc.record({ tool: fc.oneof(fc.constantFrom('lookup_order', 'issue_refund'), fc.string({ maxLength: 200 })), input: fc.jsonValue({ maxDepth: 2 }), output: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }), ok: fc.boolean() });
  const message = fc.record({ role, text, actions: fc.option(fc.array(action, { maxLength: 30 }), { nil: undefined }) });
  const cause: fc.Arbitrary<EscalationCause> = fc.record(
    {
      trigger: fc.oneof(fc.constantFrom('explicit_request', 'compliance', 'refund_threshold', 'irreversible_tool', 'repetition', 'turn_cap', 'tool_error', 'agent_tool', ''), fc.string({ maxLength: 120 })),
      reason: text,
      priority: fc.constantFrom<Priority>('low', 'normal', 'high', 'urgent'),
    },
    { requiredKeys: ['trigger', 'reason'] },
  );
  const request = fc.option(
    fc.record(
      {
        reason: fc.oneof(text, fc.anything()),
        summary: fc.oneof(text, fc.anything()),
        intent: fc.oneof(text, fc.anything()),
        pendingQuestion: text,
        priority: fc.oneof(fc.constantFrom('low', 'normal', 'high', 'urgent'), fc.string()),
        sentiment: fc.oneof(fc.constantFrom('positive', 'neutral', 'frustrated', 'angry'), fc.string()),
        constraints: fc.array(fc.oneof(text, fc.anything()), { maxLength: 15 }),
        queue: text,
        entities: fc.oneof(fc.anything(), fc.record({ ids: fc.array(text, { maxLength: 25 }), emails: fc.array(fc.emailAddress(), { maxLength: 3 }) }, { requiredKeys: [] })),
        options: fc.array(
          fc.record({ id: fc.oneof(fc.constantFrom('approve', 'Approve_Refund', 'bad id!'), fc.string()), label: text, risk: fc.constantFrom('low', 'medium', 'high', 'extreme'), approvesTool: fc.string({ maxLength: 150 }) }, { requiredKeys: ['id', 'label'] }),
          { maxLength: 8 },
        ),
        actionsTaken: fc.array(action, { maxLength: 25 }),
      },
      { requiredKeys: [] },
    ),
    { nil: undefined },
  );
  const customer = fc.record({ id: fc.string(), name: fc.option(text, { nil: undefined }), email: fc.option(text, { nil: undefined }) }, { requiredKeys: ['id'] });
  const origin = fc.constantFrom<Conversation['origin']>('webchat', 'email', 'api');

  it('whatever the transcript, cause and request', () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 12 }), cause, request, customer, origin, fc.string({ maxLength: 80 }), fc.string({ maxLength: 80 }), (messages, c, req, cust, org, queue, ticket) => {
        const conv = conversation(
          messages.map((m) => msg(m.role, m.text, m.actions ? { actions: m.actions } : {})),
          { customer: cust, origin: org, queue, ticket },
        );
        let envelope: HandoffEnvelope | undefined;
        expect(() => (envelope = buildEnvelope(conv, c, DEFAULT_POLICY, req as Partial<EscalateToolArgs> | undefined))).not.toThrow();
        const parsed = HandoffEnvelopeSchema.safeParse(envelope);
        if (!parsed.success) throw new Error(JSON.stringify(parsed.error.issues.slice(0, 3)));
        expect(parsed.data).toEqual(envelope);
        // It survives the trip through any store.
        expect(HandoffEnvelopeSchema.safeParse(JSON.parse(JSON.stringify(envelope))).success).toBe(true);
        // The bridge's trigger and ticket always win.
        expect(envelope!.ticket).toBe(clip(ticket, 40));
        if (c.priority && typeof req?.priority === 'string') {
          const ranks = ['low', 'normal', 'high', 'urgent'];
          expect(ranks.indexOf(envelope!.priority)).toBeGreaterThanOrEqual(ranks.indexOf(c.priority));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('with any valid policy', () => {
    const policy = fc.record({
      threshold: fc.double({ min: 0, max: 1e9, noNaN: true }),
      currency: fc.string({ maxLength: 20 }),
      tools: fc.array(fc.string({ maxLength: 150 }), { maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.array(fc.tuple(role, text), { maxLength: 6 }), cause, policy, (messages, c, p) => {
        const pol = PolicySchema.parse({ refund: { threshold: p.threshold, currency: p.currency, tools: p.tools } });
        const envelope = buildEnvelope(conversation(messages.map(([r, t]) => msg(r, t))), c, pol);
        expect(HandoffEnvelopeSchema.safeParse(envelope).success).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});

describe('clip', () => {
  it('keeps short text, cuts long text to the limit with an ellipsis, never halves an emoji', () => {
    expect(clip('short', 10)).toBe('short');
    expect(clip('abcdef', 4)).toBe('abc…');
    const cut = clip('ab😀cd', 4);
    expect(cut).toBe('ab…');
    expect(cut.length).toBeLessThanOrEqual(4);
    expect(clip('😀😀😀', 3)).toBe('😀…');
  });
});
