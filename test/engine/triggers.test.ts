/**
 * Deterministic escalation triggers: "asks for a person" in four languages (and the near-misses
 * that must not fire), compliance words as whole words, repetition, the turn cap, and which one
 * wins when several fire.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Conversation, Message } from '../../src/model.ts';
import { DEFAULT_POLICY, PolicySchema } from '../../src/policy.ts';
import { asksForPerson, complianceWords, evaluateCustomerTriggers, normalize, normalizeUnicode, similarity } from '../../src/triggers.ts';
import { createTestBridge, DANA, waitFor, type TestBridge } from '../support/harness.ts';
import { conversationFixture } from '../support/conversations.ts';

let seq = 0;
function msg(role: Message['author']['role'], text: string, extra: Partial<Message> = {}): Message {
  seq++;
  return { id: `msg_${seq}`, at: new Date(Date.UTC(2025, 0, 1, 0, 0, seq)).toISOString(), author: { role }, text, visibility: 'public', ...extra };
}

function conversation(messages: Message[], extra: Partial<Conversation> = {}): Conversation {
  return conversationFixture({ id: 'conv_t', ticket: 'HB-1001', messages, ...extra });
}

/** A customer/agent exchange ending with the customer's `last` message. */
function chat(customerTexts: string[], extra: Partial<Conversation> = {}): Conversation {
  const messages: Message[] = [];
  customerTexts.forEach((text, i) => {
    messages.push(msg('customer', text));
    if (i < customerTexts.length - 1) messages.push(msg('agent', 'Here is what I found.'));
  });
  return conversation(messages, extra);
}

const handback = (): Message =>
  msg('system', 'Dana returned the conversation to the agent.', {
    visibility: 'internal',
    handback: { kind: 'return', by: DANA, at: '2025-01-01T00:00:00.000Z', humanStretch: [] },
  });

describe('normalize', () => {
  it('lower-cases, strips accents and punctuation, keeps what ids and amounts need', () => {
    expect(normalize('¿Puedo hablar con una PERSONA?')).toBe('puedo hablar con una persona');
    expect(normalize('Ich möchte mit einem Menschen sprechen!!')).toBe('ich mochte mit einem menschen sprechen');
    expect(normalize('  Order A-1001,   $1,250.50 → jane@example.com  ')).toBe('order a-1001 $1 250.50 jane@example.com');
    expect(normalize('I’m sure')).toBe("i'm sure");
    expect(normalize('')).toBe('');
  });

  it('takes a shortcut for ASCII text with exactly the result of the full path', () => {
    expect(normalize('  Order A-1001,   $1,250.50 : jane@example.com\t\n')).toBe('order a-1001 $1 250.50 jane@example.com');
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary-ascii', maxLength: 120 }), fc.string({ maxLength: 120 }), fc.string({ unit: 'binary', maxLength: 60 })), (text) => {
        expect(normalize(text)).toBe(normalizeUnicode(text));
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('asksForPerson', () => {
  const ASKS: Record<string, string[]> = {
    English: [
      'Can I talk to a human?',
      'I want to speak with a real person',
      'HUMAN PLEASE!!!',
      'human',
      'Agent!',
      'agent please',
      'Representative, please.',
      'operator',
      'real person',
      'Let me talk to someone',
      'can i speak to somebody please',
      'Connect me to an agent',
      'put me through to a manager',
      'Transfer me to customer service',
      'I want to talk to customer support',
      "I'd like to talk to a person about my order",
      'I need a human',
      'get me a supervisor now',
      'Give me a representative',
      'Is there a live agent?',
      'real human please',
      'Speak to a representative',
      'Let me speak to your supervisor',
      'Can I chat with a human being?',
      'talk to a real one',
      'Are you a bot? I want a human',
      'are you a bot or a human?',
      'Is this a person or a bot?',
      'Please escalate this',
      'stop the bot',
      'Please have someone call me',
      'No, I want a human',
      'This is not working, I want to talk to a human',
      'Why can’t I talk to a human??',
      'i want to talk to a human about my invoice',
    ],
    Spanish: [
      'Quiero hablar con una persona',
      '¿Puedo hablar con un humano?',
      'puedo hablar con un humano',
      'QUIERO HABLAR CON UN AGENTE',
      'necesito un asesor',
      'Pásame con una persona, por favor',
      'pasame con una persona por favor',
      'Me comunica con un operador?',
      'quiero una persona real',
      'Hablar con alguien, por favor',
      'Quisiera hablar con un representante',
      'Necesito hablar con una persona humana',
    ],
    French: [
      'Je veux parler à un humain',
      'je veux parler a un humain',
      'Puis-je parler à une personne ?',
      'Je voudrais parler à un conseiller',
      'JE VOUDRAIS PARLER À UN CONSEILLER !',
      'Un vrai humain svp',
      'je veux un conseiller',
      "Je souhaite parler à quelqu'un",
      'Je souhaite parler à quelqu’un',
      'Passez-moi un conseiller',
      "Un conseiller humain s'il vous plaît",
      'Je veux parler à une vraie personne',
      "J'aimerais parler avec un conseiller",
    ],
    German: [
      'Ich möchte mit einem Menschen sprechen',
      'ich moechte mit einem menschen sprechen',
      'ICH MÖCHTE MIT EINEM MENSCHEN SPRECHEN!',
      'Kann ich mit einem Mitarbeiter sprechen?',
      'ich möchte mit einem mitarbeiter reden',
      'Verbinden Sie mich mit einem Berater',
      'Echten Menschen bitte',
      'Ich will einen Menschen',
      'Bitte mit einem echten Mitarbeiter verbinden',
      'Menschlicher Mitarbeiter bitte',
      'Kann ich bitte mit jemandem sprechen?',
    ],
  };

  for (const [language, phrasings] of Object.entries(ASKS)) {
    it(`recognises ${phrasings.length} ${language} ways of asking for a person`, () => {
      const missed = phrasings.filter((p) => !asksForPerson(p));
      expect(missed).toEqual([]);
    });
  }

  /**
   * Near-misses that must NOT fire. Decisions worth recording:
   * - "Personne ne m'a répondu" ("nobody answered me") and "Je ne veux parler à personne" ("I want to
   *   talk to nobody"): French "personne" without an article means "nobody", so it is not a request.
   *   Asking needs "une personne", "quelqu'un", "un conseiller"... The frustration is left to the
   *   repetition and turn-cap triggers and to sentiment.
   * - Negated requests ("I don't want to talk to a human") do not fire; "No, I want a human" does,
   *   because each clause is judged on its own.
   * - The customer describing themselves ("I'm a real person") is not asking for one.
   */
  const NEAR_MISSES = [
    "I'm a real person",
    'I am a real human being',
    'I’m a real person, not a bot',
    'the human resources department sent me',
    'Can I talk to human resources?',
    'my agent number is 5',
    'talk to you later',
    'speak soon',
    'chat with you tomorrow',
    "I'll talk to my wife about it",
    'I talked to my manager about the invoice',
    'I need to talk to my travel agent first',
    'My travel agent booked this',
    'the agent was rude',
    'human error on your side',
    'Thanks, you are very human-like',
    'people say you are great',
    'The person at the door took the parcel',
    'Tell the delivery person to leave it at the door',
    "Can you help me get a person's package back?",
    'I want a personal discount',
    "I don't want to talk to a human",
    'I do not need a person, just the tracking link',
    'no need to talk to a human, thanks',
    'Personne ne m’a répondu',
    "Personne ne m'a répondu",
    'personne n’est venu',
    'Je ne veux parler à personne',
    'je ne veux pas parler à un humain',
    'Je suis une vraie personne',
    'No quiero hablar con una persona',
    'no quiero hablar con nadie',
    'Soy una persona real',
    'Hablé con una persona ayer',
    'Ich will nicht mit einem Menschen sprechen',
    'Ich bin ein echter Mensch',
    'Der Mitarbeiter war unfreundlich',
    'Mit freundlichen Grüßen, ein Mensch',
    'Where is my order A-1001?',
    'I need a receipt',
    'put me on the mailing list',
    '',
    '   ',
    '?!',
  ];

  it(`does not fire on ${NEAR_MISSES.length} near-misses`, () => {
    const fired = NEAR_MISSES.filter((p) => asksForPerson(p));
    expect(fired).toEqual([]);
  });

  it('takes extra phrases from the policy, as whole words, in any language', () => {
    expect(asksForPerson('Voglio parlare con un operatore', ['parlare con un operatore'])).toBe(true);
    expect(asksForPerson('VOGLIO PARLARE CON UN OPERATORE!', ['parlare con un operatore'])).toBe(true);
    expect(asksForPerson('Chcę rozmawiać z konsultantem', ['konsultantem'])).toBe(true);
    // Whole words only: the phrase "persona" is not in "personal".
    expect(asksForPerson('I want a personal discount', ['persona'])).toBe(false);
    // A phrase that normalizes to nothing never matches (it used to match every message).
    expect(asksForPerson('Where is my order?', ['??', '!!'])).toBe(false);
    expect(asksForPerson('Where is my order?', [])).toBe(false);
  });

  it('stays fast on hostile input', () => {
    const inputs = ['talk '.repeat(2000), 'a'.repeat(20_000), 'mit einem '.repeat(1000), '¿'.repeat(10_000), 'x, '.repeat(5000)];
    const started = performance.now();
    for (const input of inputs) asksForPerson(input, ['some phrase']);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('complianceWords', () => {
  const words = DEFAULT_POLICY.compliance.words;

  it('matches whole words only: "sue" is not in "issue" or "pursue"', () => {
    expect(complianceWords('I have an issue with my order', words)).toEqual([]);
    expect(complianceWords('I will pursue this', words)).toEqual([]);
    expect(complianceWords('Suez canal delays?', words)).toEqual([]);
    expect(complianceWords('I will sue you', words)).toEqual(['sue']);
    expect(complianceWords('I will SUE!!!', words)).toEqual(['sue']);
    expect(complianceWords('sue.', words)).toEqual(['sue']);
  });

  it('finds multi-word terms, several words, accents and hyphens', () => {
    expect(complianceWords('Was there a data breach?', words)).toEqual(['data breach']);
    expect(complianceWords('Was there a DATA-BREACH?', words)).toEqual(['data breach']);
    expect(complianceWords('My lawyer says this is fraud, GDPR applies', words)).toEqual(['lawyer', 'gdpr', 'fraud']);
    expect(complianceWords('Je vais voir mon avocat', ['avocat'])).toEqual(['avocat']);
    // Accent-insensitive both ways: the policy word keeps its spelling in the result.
    expect(complianceWords('Ich gehe zum Anwalt', ['Anwält'])).toEqual(['Anwält']);
    expect(complianceWords('Ich gehe zum ANWÄLT', ['anwalt'])).toEqual(['anwalt']);
    expect(complianceWords('Ich gehe zur Anwältin', ['Anwältin'])).toEqual(['Anwältin']);
    expect(complianceWords('demande à la CNIL', ['cnil'])).toEqual(['cnil']);
  });

  it('does not match inflections it was not given, nor parts of words', () => {
    expect(complianceWords('I am suing you', words)).toEqual([]);
    expect(complianceWords('lawyers', words)).toEqual([]);
    expect(complianceWords('antifraud team', words)).toEqual([]);
  });

  it('ignores empty or punctuation-only words', () => {
    expect(complianceWords('anything at all', ['', '--', '!!'])).toEqual([]);
  });
});

describe('similarity', () => {
  it('is 1 for the same question however it is typed, and ignores trailing punctuation', () => {
    expect(similarity('Where is my order A-1001?', 'WHERE IS MY ORDER A-1001??')).toBe(1);
    expect(similarity('When will I get my refund?', 'Still no refund. When will I get it?')).toBe(1);
    expect(similarity('How do I reset my password?', 'password reset how?')).toBe(1);
  });

  it('is low for different questions and 0 without content words', () => {
    expect(similarity('Where is my order A-1001?', 'Where is my order A-1002?')).toBeLessThan(0.6);
    expect(similarity('Where is my order A-1001?', 'Can I change the address on order A-1001?')).toBeLessThan(0.6);
    expect(similarity('hello', 'hello')).toBe(0);
    expect(similarity('', 'anything')).toBe(0);
  });
});

describe('evaluateCustomerTriggers', () => {
  const policy = DEFAULT_POLICY;

  it('fires nothing on an ordinary message, or when the last message is not the customer', () => {
    expect(evaluateCustomerTriggers(chat(['Where is my order A-1001?']), policy)).toBeUndefined();
    expect(evaluateCustomerTriggers(conversation([]), policy)).toBeUndefined();
    expect(evaluateCustomerTriggers(conversation([msg('customer', 'I want a human'), msg('agent', 'Sure')]), policy)).toBeUndefined();
  });

  it('explicit request: normal priority', () => {
    expect(evaluateCustomerTriggers(chat(['Hi', 'I want to talk to a human']), policy)).toEqual({
      trigger: 'explicit_request',
      reason: 'The customer asked for a person',
      priority: 'normal',
    });
  });

  it('explicit request from a policy phrase', () => {
    const custom = PolicySchema.parse({ explicitRequest: { extraPhrases: ['parlare con un operatore'] } });
    expect(evaluateCustomerTriggers(chat(['Posso parlare con un operatore?']), custom)?.trigger).toBe('explicit_request');
    expect(evaluateCustomerTriggers(chat(['Posso parlare con un operatore?']), policy)).toBeUndefined();
  });

  it('compliance: high priority, names the words', () => {
    expect(evaluateCustomerTriggers(chat(['My lawyer will hear about this, GDPR!']), policy)).toEqual({
      trigger: 'compliance',
      reason: 'Compliance-sensitive words: lawyer, gdpr',
      priority: 'high',
    });
    expect(evaluateCustomerTriggers(chat(['I have an issue I want to pursue']), policy)).toBeUndefined();
  });

  describe('repetition', () => {
    it('fires the third time the same question is asked, rephrased, with high priority', () => {
      const texts = ['Where is my order A-1001?', "where's my order A-1001", 'Order A-1001 — where is it??'];
      expect(evaluateCustomerTriggers(chat(texts.slice(0, 2)), policy)).toBeUndefined();
      expect(evaluateCustomerTriggers(chat(texts), policy)).toEqual({
        trigger: 'repetition',
        reason: 'The customer asked the same thing 3 times',
        priority: 'high',
      });
      expect(evaluateCustomerTriggers(chat(['When will I get my refund?', 'when do I get my refund', 'Still no refund. When will I get it?']), policy)?.trigger).toBe('repetition');
    });

    it('counts only the same question, not other messages in between', () => {
      const texts = ['Where is my order A-1001?', 'Can I change the delivery address?', 'where is my order A-1001', 'What are your opening hours?', 'WHERE IS MY ORDER A-1001'];
      expect(evaluateCustomerTriggers(chat(texts.slice(0, 4)), policy)).toBeUndefined();
      expect(evaluateCustomerTriggers(chat(texts), policy)?.trigger).toBe('repetition');
    });

    it('does not count different questions that share words', () => {
      expect(evaluateCustomerTriggers(chat(['Where is my order A-1001?', 'Where is my order A-1002?', 'Where is my order A-1003?']), policy)).toBeUndefined();
    });

    it('does not count acknowledgements: "thanks" three times is not a loop', () => {
      expect(evaluateCustomerTriggers(chat(['thanks', 'Thanks!', 'thanks']), policy)).toBeUndefined();
      expect(evaluateCustomerTriggers(chat(['ok', 'ok', 'ok']), policy)).toBeUndefined();
      expect(evaluateCustomerTriggers(chat(['ok thanks', 'great, thanks', 'perfect thank you']), policy)).toBeUndefined();
    });

    it('is reset by a hand-back: the count starts again when control comes back to the agent', () => {
      const q = 'Where is my order A-1001?';
      const messages = [msg('customer', q), msg('agent', 'Checking.'), msg('customer', q), handback(), msg('customer', q)];
      expect(evaluateCustomerTriggers(conversation(messages), policy)).toBeUndefined();
      messages.push(msg('agent', 'It ships tomorrow.'), msg('customer', q));
      expect(evaluateCustomerTriggers(conversation(messages), policy)).toBeUndefined();
      messages.push(msg('agent', 'As I said, tomorrow.'), msg('customer', q));
      expect(evaluateCustomerTriggers(conversation(messages), policy)?.trigger).toBe('repetition');
    });

    it('is reset by a reopen', () => {
      const q = 'Where is my order A-1001?';
      const messages = [msg('customer', q), msg('customer', q), msg('system', 'Reopened by the customer.', { visibility: 'internal', notice: 'reopened' }), msg('customer', q)];
      expect(evaluateCustomerTriggers(conversation(messages), policy)).toBeUndefined();
    });

    it('follows the policy threshold', () => {
      const two = PolicySchema.parse({ behaviour: { repeatThreshold: 2 } });
      expect(evaluateCustomerTriggers(chat(['Where is my order?', 'where is my order']), two)?.trigger).toBe('repetition');
      const five = PolicySchema.parse({ behaviour: { repeatThreshold: 5 } });
      expect(evaluateCustomerTriggers(chat(Array(4).fill('Where is my order?')), five)).toBeUndefined();
      expect(evaluateCustomerTriggers(chat(Array(5).fill('Where is my order?')), five)?.reason).toBe('The customer asked the same thing 5 times');
    });
  });

  describe('turn cap', () => {
    it('fires once the agent has taken turnCap turns, with normal priority', () => {
      const capped = PolicySchema.parse({ behaviour: { turnCap: 4 } });
      expect(evaluateCustomerTriggers(chat(['Hello'], { agentTurns: 3 }), capped)).toBeUndefined();
      expect(evaluateCustomerTriggers(chat(['Hello'], { agentTurns: 4 }), capped)).toEqual({ trigger: 'turn_cap', reason: '4 agent turns without resolution', priority: 'normal' });
      expect(evaluateCustomerTriggers(chat(['Hello'], { agentTurns: 11 }), policy)).toBeUndefined();
      expect(evaluateCustomerTriggers(chat(['Hello'], { agentTurns: 12 }), policy)?.trigger).toBe('turn_cap');
    });
  });

  describe('precedence: compliance > explicit request > repetition > turn cap', () => {
    const capped = PolicySchema.parse({ ...DEFAULT_POLICY, behaviour: { repeatThreshold: 3, turnCap: 1, toolErrorLimit: 1 } });

    it('compliance beats an explicit request (and everything else)', () => {
      const c = chat(['Get me a human, my lawyer is waiting', 'Get me a human, my lawyer is waiting', 'Get me a human, my lawyer is waiting'], { agentTurns: 50 });
      expect(evaluateCustomerTriggers(c, capped)).toMatchObject({ trigger: 'compliance', priority: 'high' });
    });

    it('an explicit request beats repetition and the turn cap', () => {
      const c = chat(['I want a human', 'I want a human', 'I want a human'], { agentTurns: 50 });
      expect(evaluateCustomerTriggers(c, capped)).toMatchObject({ trigger: 'explicit_request', priority: 'normal' });
    });

    it('repetition beats the turn cap', () => {
      const c = chat(['Where is my order?', 'Where is my order?', 'Where is my order?'], { agentTurns: 50 });
      expect(evaluateCustomerTriggers(c, capped)).toMatchObject({ trigger: 'repetition', priority: 'high' });
    });

    it('the turn cap fires alone', () => {
      expect(evaluateCustomerTriggers(chat(['And another thing'], { agentTurns: 1 }), capped)).toMatchObject({ trigger: 'turn_cap' });
    });
  });
});

describe('triggers through the bridge', () => {
  let tb: TestBridge | undefined;
  afterEach(async () => {
    await tb?.close();
    tb = undefined;
  });

  it('the third same question escalates; after a hand-back the count starts again', async () => {
    tb = await createTestBridge();
    const { bridge } = tb;
    const say = async (conversationId: string | undefined, text: string) => {
      const r = await bridge.customerMessage({ ...(conversationId ? { conversationId } : {}), origin: 'api', customer: { id: 'c1' }, text });
      await bridge.idle();
      return r.conversation;
    };
    let c = await say(undefined, 'Where is my order A-1001?');
    c = await say(c.id, 'where is my order A-1001');
    expect(c.state).toBe('agent');
    c = await say(c.id, 'WHERE IS MY ORDER A-1001??');
    expect(c.state).toBe('waiting');
    expect(c.history.at(-1)).toMatchObject({ reason: 'escalate', trigger: 'repetition' });
    expect(c.briefing).toMatchObject({ trigger: 'repetition', priority: 'high' });

    await bridge.returnToAgent({ conversationId: c.id, operator: DANA, note: 'It ships tomorrow.' });
    await bridge.idle();
    c = await say(c.id, 'Where is my order A-1001?');
    c = await say(c.id, 'where is my order A-1001?');
    expect(c.state).toBe('agent');
    c = await say(c.id, 'where is my order A-1001?!');
    expect(c.state).toBe('waiting');
    await waitFor(() => bridge.getConversation(c.id).then((x) => x?.state === 'waiting'));
  });

  it('escalates an explicit request in Spanish before the agent answers', async () => {
    tb = await createTestBridge();
    const { conversation: c } = await tb.bridge.customerMessage({ origin: 'api', customer: { id: 'c2' }, text: '¿Puedo hablar con una persona?' });
    expect(c.state).toBe('waiting');
    expect(c.briefing).toMatchObject({ trigger: 'explicit_request' });
    await tb.bridge.idle();
    const after = await tb.bridge.getConversation(c.id);
    expect(after?.messages.filter((m) => m.author.role === 'agent')).toEqual([]);
  });
});
