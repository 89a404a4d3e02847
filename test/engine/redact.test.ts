import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Committer } from '../../src/engine/commit.ts';
import { Rules } from '../../src/engine/rules.ts';
import {
  luhnValid,
  redactConversation,
  redactedPort,
  redactedWorkspace,
  redactMessage,
  redactText,
  RedactionPolicySchema,
  Redactor,
  revealMessage,
} from '../../src/engine/redact.ts';
import { NotOwnerError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import type { Conversation, Message } from '../../src/model.ts';
import { DEFAULT_POLICY } from '../../src/policy.ts';
import { conversationFixture } from '../support/conversations.ts';
import { createTestBridge, DANA, SAM, type TestBridge } from '../support/harness.ts';
import { MemoryWorkspace } from '../support/memory-ports.ts';

// ---- generators and an independent oracle ------------------------------------------------------

/** Appends the Luhn check digit to a body of digits. */
function withCheckDigit(body: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(body + d)) return body + d;
  throw new Error('unreachable');
}

/** Luhn-valid card numbers of 13-19 digits. */
const cardDigits = fc
  .integer({ min: 13, max: 19 })
  .chain((n) => fc.array(fc.integer({ min: 0, max: 9 }), { minLength: n - 1, maxLength: n - 1 }))
  .map((ds) => withCheckDigit(ds.join('')));

const SEPARATORS = ['', '', '', ' ', '-', '.', ' - ', '  ', '\u00A0', '\u2013', '\t'];
/** The card with any separators between any of its digits. */
const formattedCard = cardDigits.chain((digits) =>
  fc.array(fc.constantFrom(...SEPARATORS), { minLength: digits.length - 1, maxLength: digits.length - 1 }).map((seps) => ({
    digits,
    text: [...digits].map((d, i) => d + (seps[i] ?? '')).join(''),
  })),
);

/** Surrounding text: words, punctuation, digits, newlines, fake masks. */
const filler = fc
  .array(fc.constantFrom('card', 'my', 'is', 'order', 'A1001', ' ', ' ', ', ', '.', '\n', '42', '7', '(', ')', ':', '-', '€12.50', '[card •••• 1234]', 'x'), { maxLength: 12 })
  .map((parts) => parts.join(''));
/** What keeps a card from being glued to other digits. */
const boundary = fc.constantFrom(' ', ', ', ': ', '(', ')', '\n', 'x', ' is ');

/** Independent of the implementation: every maximal run of digits with separators, digits only. */
function digitRuns(text: string): string[] {
  return [...text.matchAll(/\d(?:[ \t\u00A0\u2007\u2009\u202F.\-\u2010-\u2015\u2212]{0,3}\d)*/g)].map((m) => m[0].replace(/\D/g, ''));
}

function leaksCard(text: string): boolean {
  return digitRuns(text).some((run) => run.length >= 13 && run.length <= 19 && luhnValid(run));
}

const IBAN_COUNTRIES: Record<string, number> = { DE: 22, GB: 22, FR: 27, ES: 24, NL: 18, IT: 27, BE: 16, NO: 15, CH: 21, PL: 28 };
function mod97(s: string): number {
  let rest = 0;
  for (const ch of s) {
    const code = ch.charCodeAt(0);
    const v = code >= 65 ? code - 55 : code - 48;
    rest = v >= 10 ? (rest * 100 + v) % 97 : (rest * 10 + v) % 97;
  }
  return rest;
}
/** Valid IBANs: a country, a BBAN of the country's length, the check digits computed. */
const validIban = fc.constantFrom(...Object.keys(IBAN_COUNTRIES)).chain((country) =>
  fc
    .array(fc.constantFrom(...'0123456789012345678901234567890123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'), { minLength: IBAN_COUNTRIES[country]! - 4, maxLength: IBAN_COUNTRIES[country]! - 4 })
    .map((chars) => {
      const bban = chars.join('');
      const check = String(98 - mod97(bban + country + '00')).padStart(2, '0');
      return country + check + bban;
    }),
);

// ---- the properties --------------------------------------------------------------------------

describe('redaction properties', () => {
  it('no Luhn-valid card number (13-19 digits, any separators) survives, wherever it sits in the text', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(filler, boundary, formattedCard, boundary), { minLength: 1, maxLength: 3 }), filler, (parts, tail) => {
        const text = parts.map(([before, left, card, right]) => before + left + card.text + right).join('') + tail;
        const { text: out, spans } = redactText(text);
        expect(leaksCard(out)).toBe(false);
        for (const [, , card] of parts) {
          // Not even split across a run: no run of digits left contains the whole number.
          expect(digitRuns(out).some((run) => run.includes(card.digits))).toBe(false);
        }
        for (const span of spans) expect(out).toContain(span.mask);
      }),
      { numRuns: 1500 },
    );
  });

  it('no Luhn-valid run survives in arbitrary text made of digits and separators', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789 -.x\n'), maxLength: 120 }), (text) => {
        expect(leaksCard(redactText(text).text)).toBe(false);
      }),
      { numRuns: 1500 },
    );
  });

  it('no valid IBAN survives, grouped or not, in either case', () => {
    fc.assert(
      fc.property(filler, validIban, fc.boolean(), fc.boolean(), filler, (before, iban, grouped, lower, after) => {
        const printed = (grouped ? iban.replace(/(.{4})/g, '$1 ').trim() : iban)[lower ? 'toLowerCase' : 'toUpperCase']();
        const text = `${before} ${printed}, ${after}`;
        const out = redactText(text).text;
        expect(out.replace(/\s/g, '').toUpperCase()).not.toContain(iban);
        expect(out).toContain(`[iban •••• ${iban.slice(-4)}]`);
      }),
      { numRuns: 800 },
    );
  });

  it('is idempotent: redacting redacted text changes nothing', () => {
    const anything = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'0123456789 -.ABDEGNZxy[]•\n'), maxLength: 100 }),
      fc.tuple(filler, formattedCard, filler, validIban).map(([a, c, b, i]) => `${a} ${c.text} ${b} ${i} SSN 123-45-6789 AB 12 34 56 C`),
    );
    const custom = new Redactor({ patterns: [{ name: 'passport', regex: '[A-Z]\\d{6,8}' }, { name: 'ref', regex: 'ref-(?<value>\\d+)', ignoreCase: true }] });
    fc.assert(
      fc.property(anything, (text) => {
        for (const r of [new Redactor(), custom]) {
          const once = r.text(text);
          expect(r.text(once)).toBe(once);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('every digit of a card is inside a span, and the spans point into the original text', () => {
    fc.assert(
      fc.property(filler, formattedCard, filler, (a, card, b) => {
        const text = `${a} ${card.text} ${b}`;
        const { text: out, spans } = redactText(text);
        const start = a.length + 1;
        for (let i = start; i < start + card.text.length; i++) {
          if (/\d/.test(text[i]!)) expect(spans.some((s) => s.start <= i && i < s.end)).toBe(true);
        }
        for (const s of spans) expect(out).toContain(s.mask);
      }),
      { numRuns: 500 },
    );
  });

  it('redacted copies leave the originals untouched', () => {
    fc.assert(
      fc.property(formattedCard, validIban, (card, iban) => {
        const message: Message = {
          id: 'msg_1',
          at: '2025-01-01T00:00:00.000Z',
          author: { role: 'customer' },
          text: `card ${card.text} iban ${iban}`,
          visibility: 'public',
          actions: [{ tool: 'lookup', input: { card: card.digits }, output: { iban }, ok: true }],
        };
        const conversation = conversationFixture({ messages: [message], subject: `About ${card.digits}`, history: [{ from: 'human', to: 'agent', reason: 'return', by: { kind: 'system' }, at: message.at, note: `iban ${iban}` }] });
        const before = structuredClone(conversation);
        const copy = redactConversation(conversation);
        const single = redactMessage(message);
        expect(conversation).toEqual(before);
        expect(copy).not.toBe(conversation);
        expect(JSON.stringify(copy)).not.toContain(card.digits);
        expect(JSON.stringify(copy)).not.toContain(iban);
        expect(single.text).not.toContain(card.text);
        expect(single.id).toBe(message.id);
      }),
      { numRuns: 300 },
    );
  });
});

// ---- examples ------------------------------------------------------------------------------

describe('redaction examples', () => {
  it.each([
    ['my card is 4242 4242 4242 4242, exp 12/27', 'my card is [card •••• 4242], exp 12/27'],
    ['4111-1111-1111-1111', '[card •••• 1111]'],
    ['amex 3782 822463 10005.', 'amex [card •••• 0005].'],
    ['iban DE89 3704 0044 0532 0130 00 please', 'iban [iban •••• 3000] please'],
    ['GB82WEST12345698765432', '[iban •••• 5432]'],
    ['SSN 123-45-6789', 'SSN [ssn •••• 6789]'],
    ['my ssn: 123456789', 'my ssn: [ssn •••• 6789]'],
    ['NI number AB 12 34 56 C', 'NI number [nino •••• 456C]'],
    ['DNI 12345678Z, NIE X1234567L', 'DNI [dni •••• 678Z], NIE [dni •••• 567L]'],
  ])('%s', (input, expected) => {
    expect(redactText(input).text).toBe(expected);
  });

  it.each([
    'order A1001 for €1234.56',
    'call +1 (555) 123-4567',
    'tracking 1Z999AA10123456784',
    '4242 4242 4242 4241', // fails Luhn
    'DE88 3704 0044 0532 0130 00', // fails mod 97
    '000-12-3456 and 666-12-3456', // not SSN areas
    'DNI 12345678A', // wrong check letter
    'on 2025-01-15 at 10:30',
  ])('leaves %s alone', (input) => {
    expect(redactText(input).text).toBe(input);
  });

  it("applies the policy's own patterns, with a label and the last 4 of long values only", () => {
    const r = new Redactor({ patterns: [{ name: 'passport', regex: 'P\\d{8}' }, { name: 'pin', regex: 'PIN (?<value>\\d{4})', ignoreCase: true }] });
    expect(r.text('passport P12345678, pin 1234')).toBe('passport [passport •••• 5678], pin [pin ••••]');
  });

  it('is off when the policy says so', () => {
    const r = new Redactor({ enabled: false });
    expect(r.text('4242 4242 4242 4242')).toBe('4242 4242 4242 4242');
    const c = conversationFixture();
    expect(r.conversation(c)).toBe(c);
  });

  it('the policy schema refuses patterns that would misbehave, in one line', () => {
    const issue = (patterns: unknown) => {
      const r = RedactionPolicySchema.safeParse({ patterns });
      return r.success ? undefined : `${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message}`;
    };
    expect(issue([{ name: 'x', regex: '([' }])).toMatch(/^patterns\.0\.regex: not a valid regular expression/);
    expect(issue([{ name: 'x', regex: '\\d*' }])).toBe('patterns.0.regex: matches the empty string');
    expect(issue([{ name: 'id2', regex: 'x' }])).toMatch(/^patterns\.0\.name: a label/);
    expect(RedactionPolicySchema.parse(undefined)).toEqual({ enabled: true, patterns: [] });
  });

  it('redacts everything a workspace shows: briefing, tool calls, hand-back, notes, decisions', () => {
    const card = '4242424242424242';
    const conversation = conversationFixture({
      subject: `charge on ${card}`,
      messages: [
        {
          id: 'msg_a',
          at: '2025-01-01T00:00:00.000Z',
          author: { role: 'system' },
          text: 'returned',
          visibility: 'internal',
          handback: { kind: 'return', at: '2025-01-01T00:00:00.000Z', note: `refund to ${card}`, humanStretch: [{ role: 'customer', text: `it was ${card}`, at: '2025-01-01T00:00:00.000Z' }] },
        },
      ],
      briefing: {
        reason: `disputed charge on ${card}`,
        trigger: 'agent_tool',
        priority: 'normal',
        summary: `card ${card}`,
        intent: 'refund',
        entities: { ids: [card], amounts: [], dates: [], emails: [] },
        constraints: [],
        sentiment: 'neutral',
        actionsTaken: [{ tool: 'lookup_card', input: { number: card }, output: [{ last: card }], ok: true }],
        pendingQuestion: `refund ${card}?`,
        options: [{ id: 'ok', label: 'Approve', risk: 'low', approvesTool: 'refund', approvesArgs: { card } }],
        queue: 'billing',
        ticket: 'HB-1042',
      },
      decisions: [{ optionId: 'ok', label: 'Approve', by: DANA, at: '2025-01-01T00:00:00.000Z', note: card }],
      pendingEscalation: { trigger: 'x', reason: `card ${card}`, at: '2025-01-01T00:00:00.000Z' },
    });
    const copy = redactConversation(conversation);
    expect(JSON.stringify(copy)).not.toContain(card);
    expect(copy.briefing!.summary).toBe('card [card •••• 4242]');
    expect(copy.id).toBe(conversation.id);
    expect(copy.channelData).toBe(conversation.channelData);
    // Memoised: the same conversation object is redacted once.
    expect(redactConversation(conversation)).toBe(copy);
  });
});

// ---- through a bridge: what adapters read, and the owner's reveal ----------------------------

describe('redaction in a running bridge', () => {
  let t: TestBridge | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("a workspace adapter's view of the bridge is redacted; the original and the customer's side are not", async () => {
    const workspace = new MemoryWorkspace('test');
    t = await createTestBridge({ workspaces: [workspace] });
    const port = redactedPort(t.bridge, new Redactor());
    const first = await port.customerMessage({ origin: 'api', customer: { id: 'c1' }, text: 'I was charged twice on 4242 4242 4242 4242' });
    expect(first.message!.text).toBe('I was charged twice on [card •••• 4242]');
    expect(first.conversation.messages[0]!.text).toBe('I was charged twice on [card •••• 4242]');
    const id = first.conversation.id;
    expect((await port.getConversation(id))!.messages[0]!.text).toContain('[card •••• 4242]');
    expect((await port.store.getConversation(id))!.messages[0]!.text).toContain('[card •••• 4242]');
    expect((await port.findByTicket(first.conversation.ticket))!.messages[0]!.text).toContain('[card •••• 4242]');
    // The stored conversation (the agent's and the customer's) keeps the number.
    expect((await t.bridge.getConversation(id))!.messages[0]!.text).toBe('I was charged twice on 4242 4242 4242 4242');
    expect(port.maxMessageChars).toBe(t.bridge.maxMessageChars);
  });

  it('the owner reveals a value privately; it is logged in the history and the thread, never the value', async () => {
    const workspace = new MemoryWorkspace('test');
    // As bridge.ts wires it: the workspace destination is given redacted copies.
    t = await createTestBridge({ workspaces: [redactedWorkspace(workspace, new Redactor())] });
    const { bridge, store } = t;
    const now = () => new Date();
    const committer = new Committer(store, { workspaces: () => ['test'] }, now, silentLogger());
    const deps = { committer, rules: new Rules(DEFAULT_POLICY, now), redactor: new Redactor(), now, seen: (key: string) => store.inboundSeen(key) };

    const { conversation, message } = await bridge.customerMessage({ origin: 'api', customer: { id: 'c1' }, text: 'Refund to DE89 3704 0044 0532 0130 00 please, I want a human' });
    await bridge.idle();
    const id = conversation.id;
    await expect(revealMessage(deps, { conversationId: id, operator: DANA, messageId: message!.id })).rejects.toBeInstanceOf(NotOwnerError);
    await bridge.claim({ conversationId: id, operator: DANA });
    await expect(revealMessage(deps, { conversationId: id, operator: SAM, messageId: message!.id })).rejects.toBeInstanceOf(NotOwnerError);

    const revealed = await revealMessage(deps, { conversationId: id, operator: DANA, messageId: message!.id, idempotencyKey: 'click-1' });
    expect(revealed.text).toBe('Refund to DE89 3704 0044 0532 0130 00 please, I want a human');
    expect(revealed.spans).toMatchObject([{ kind: 'iban', last4: '3000' }]);
    // The same click again: the text again, logged once.
    await revealMessage(deps, { conversationId: id, operator: DANA, messageId: message!.id, idempotencyKey: 'click-1' });
    await bridge.idle();

    const c = (await bridge.getConversation(id)) as Conversation;
    const reveals = c.history.filter((h) => h.reason === 'reveal');
    expect(reveals).toHaveLength(1);
    expect(reveals[0]).toMatchObject({ from: 'human', to: 'human', by: { kind: 'operator', operator: DANA }, note: `iban •••• 3000 in ${message!.id}` });
    const line = workspace.mirrored.find((m) => m.message.text.includes('revealed'));
    expect(line?.message).toMatchObject({ text: 'Dana revealed iban •••• 3000 from a customer message.', visibility: 'internal' });
    expect(JSON.stringify(workspace.mirrored)).not.toContain('DE89');
  });
});
