/**
 * Deterministic escalation triggers, checked on every customer message before the agent runs.
 * Model self-confidence is miscalibrated, so these come first; the agent's own
 * `escalate_to_human` tool and the tool gate (policy.ts) come on top.
 */
import type { Priority } from './envelope.ts';
import type { Conversation, Message } from './model.ts';
import type { Policy } from './policy.ts';
import { RecentMap } from './recent-map.ts';

export interface TriggerHit {
  trigger: 'explicit_request' | 'compliance' | 'repetition' | 'turn_cap';
  reason: string;
  priority: Priority;
}

const ASCII = /^[\x00-\x7f]*$/;

/** Lower-case, accents removed, punctuation to spaces: "¿Puedo hablar con una PERSONA?" -> "puedo hablar con una persona". */
export function normalize(text: string): string {
  // Most messages are ASCII, which has no accents to decompose: the same result, twice as fast.
  if (ASCII.test(text)) return text.toLowerCase().replace(/[^a-z0-9@.$'-]+/g, ' ').trim();
  return normalizeUnicode(text);
}

/** `normalize` for any text. */
export function normalizeUnicode(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .replace(/[\u2018\u2019\u02BC\u2032]/g, "'") // typographic apostrophes: "I’m" is "I'm"
    .toLowerCase()
    .replace(/[^\p{L}\p{N}@.$€£'-]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

// Who a customer may ask for. "person" in French needs an article: "parler à une personne" asks for
// someone, "(ne) parler à personne" means "talk to nobody".
const EN_WHO = String.raw`(?:human(?! resources)|person|people|agent|representative|rep|someone|somebody|operator|staff|manager|supervisor|real one|customer (?:service|support|care)|support (?:team|staff|agent))(?!'s)`;
const ES_WHO = String.raw`(?:humano|persona|agente|asesor|asesora|operador|operadora|alguien|representante|encargado|encargada)`;
const FR_WHO = String.raw`(?:humain|une (?:vraie )?personne|vraie personne|conseiller|conseillere|agent|quelqu'un|quelqu un|operateur|operatrice|responsable)`;
const DE_WHO = String.raw`(?:menschen|mensch|mitarbeiter|mitarbeiterin|berater|beraterin|person|kundenberater|sachbearbeiter|ansprechpartner|jemandem|jemand)`;

// Phrasings of "let me talk to a person", matched on normalized text (no accents), one clause at a time.
const PERSON_REQUEST_PATTERNS: RegExp[] = [
  // English. "talk to my (travel) agent" is about the customer's own people, not ours.
  new RegExp(String.raw`\b(?:talk|speak|chat|connect me|put me through|transfer me|get me through)\b(?:(?!\bmy\b).){0,20}\b${EN_WHO}\b`),
  /\b(human|live|real)\s+(agent|person|human|being|support|help|representative|operator)\b/,
  /\b(get|want|need|give)\s+(me\s+)?(a|an|to)?\s*(human|person|manager|supervisor|representative)\b(?!'s)/,
  /\b(have|get) (someone|somebody|a person|a human|an agent) (to )?(call|contact|phone|ring|email) me\b/,
  /^\s*(human|agent|operator|representative|person|real person)( please| pls| now)?\s*[!.]*$/,
  /\b(are you|is this|am i talking to|am i chatting with) (a )?(bot|robot|machine)\b.*\b(human|person)\b/,
  /\b(are you|is this|am i talking to|am i chatting with) (a )?(real )?(human|person)( being)? or (a )?(bot|robot|machine|ai)\b/,
  /\bescalate (this|me|it)\b/,
  /\bstop (the )?bot\b/,
  // Spanish
  new RegExp(String.raw`\b(?:hablar|comunicarme|conversar|pasame|paseme|pasenme|comunicame|comuniqueme|comunica|comunique|transfiereme|transfierame|conectame|conecteme)\b.{0,20}\b${ES_WHO}\b`),
  /\b(persona|agente|asesor|asesora) (real|humano|humana)\b/,
  /\b(quiero|necesito|quisiera)\s+(un|una|a)?\s*(humano|persona|agente|asesor|asesora)\b/,
  // French
  new RegExp(String.raw`\b(?:parler|discuter|passez-moi|passe-moi|passez moi|passe moi|transferez-moi|mettez-moi en relation avec|mettez moi en relation avec)\b.{0,20}\b${FR_WHO}\b`),
  /\b(vrai|vraie) (humain|personne|conseiller|conseillere)\b/,
  /\b(conseiller|conseillere|agent) humain\b/,
  /\b(je veux|je voudrais|je souhaite|je souhaiterais|j'aimerais)\s+(parler\s+(a|avec)\s+)?(un|une)\s+(vrai |vraie )?(humain|personne|conseiller|conseillere|agent|operateur)\b/,
  // German
  new RegExp(String.raw`\b(?:mit|einen|einem|eine|einer)\b.{0,25}\b${DE_WHO}\b.{0,20}\b(?:sprechen|reden|verbinden|chatten)\b`),
  /\b(echten|echter|echte|realen) (menschen|mensch|mitarbeiter|person)\b/,
  /\bmenschliche[nrms]? (mitarbeiter|mitarbeiterin|berater|beraterin|support|ansprechpartner)\b/,
  /\b(verbinden sie mich|ich will|ich mochte|ich moechte)\b.{0,30}\b(menschen|mitarbeiter|berater|jemandem)\b/,
];

/** "I don't want to talk to a human", "no quiero hablar con un agente", "ich will nicht mit einem Menschen sprechen". */
const NEGATED = /(?:^|\s)(not|don't|dont|doesn't|doesnt|didn't|didnt|no need|no quiero|no necesito|no deseo|ne veux|veux pas|voudrais pas|souhaite pas|pas besoin|nicht|kein|keine|keinen|keinem)(?=\s|$)/;
/** "I'm a real person", "soy una persona real", "je suis une vraie personne", "ich bin ein echter Mensch". */
const SELF_DESCRIPTION = /(?:^|\s)(i'm|im|i m|i am|we're|we are|i was|soy|somos|je suis|nous sommes|ich bin|wir sind)(\s+(just|only|also))?(\s+(a|an|un|una|une|ein|eine))?\s*$/;

/** Does this one clause ask for a person? A match counts unless it is negated or describes the customer. */
function clauseAsksForPerson(clause: string): boolean {
  for (const re of PERSON_REQUEST_PATTERNS) {
    const m = re.exec(clause);
    if (!m) continue;
    const before = clause.slice(0, m.index).trim();
    const window = `${before.split(' ').slice(-3).join(' ')} ${m[0]}`;
    if (NEGATED.test(window) || SELF_DESCRIPTION.test(before)) continue;
    return true;
  }
  return false;
}

/**
 * True when the text asks for a person (English, Spanish, French, German, plus policy phrases).
 * Each clause (split at sentence punctuation and commas) is judged alone, so "No, I want a human"
 * asks and "I don't want to talk to a human" does not. Policy phrases match as whole words.
 */
export function asksForPerson(text: string, extraPhrases: readonly string[] = []): boolean {
  return personAsked(text, extraPhrases.length > 0 ? normalize(text) : '', extraPhrases);
}

/** `asksForPerson` with the whole text already normalized. */
function personAsked(text: string, normalized: string, extraPhrases: readonly string[]): boolean {
  const clauses = text.split(/[.,;:!?¿¡\n]+/).map(normalize).filter((c) => c.length > 0);
  if (clauses.some(clauseAsksForPerson)) return true;
  return extraPhrases.length > 0 && containsWords(normalized, extraPhrases).length > 0;
}

/** The compliance words present in the text (whole words, case- and accent-insensitive; "data-breach" is "data breach"). */
export function complianceWords(text: string, words: readonly string[]): string[] {
  return containsWords(normalize(text), words);
}

/** The phrases that occur in normalized text as whole words; a phrase that normalizes to nothing never matches. */
function containsWords(normalizedText: string, phrases: readonly string[]): string[] {
  const n = ` ${unhyphen(normalizedText)} `;
  return phrasePatterns(phrases).flatMap(({ phrase, pattern }) => (pattern?.test(n) ? [phrase] : []));
}

/** Each policy phrase compiled once per phrase list (the policy's lists live as long as the process). */
const compiledPhrases = new WeakMap<readonly string[], Array<{ phrase: string; pattern: RegExp | undefined }>>();

function phrasePatterns(phrases: readonly string[]): Array<{ phrase: string; pattern: RegExp | undefined }> {
  let compiled = compiledPhrases.get(phrases);
  if (!compiled) {
    compiled = phrases.map((phrase) => {
      const nw = unhyphen(normalize(phrase));
      return { phrase, pattern: nw.length > 0 ? new RegExp(`(^|[^\\p{L}\\p{N}])${escapeRegExp(nw)}([^\\p{L}\\p{N}]|$)`, 'u') : undefined };
    });
    compiledPhrases.set(phrases, compiled);
  }
  return compiled;
}

function unhyphen(s: string): string {
  return s.replace(/-+/g, ' ').replace(/\s+/g, ' ').trim();
}

const STOP_WORDS = new Set(
  'a an the i my me you your is are was be to of and or for on in at it this that do does did can could would will please hi hello hey ok so again still just yes no what why how when where'.split(
    ' ',
  ),
);

function wordsOf(text: string, normalized = normalize(text)): ReadonlySet<string> {
  // normalize() keeps "." "'" "-" for ids and amounts; at a word's edges they are punctuation ("refund." is "refund").
  const words = normalized
    .split(' ')
    .map((w) => w.replace(/^[.'-]+|[.'-]+$/g, ''));
  return new Set(words.filter((w) => w.length > 1 && !STOP_WORDS.has(w)));
}

/** Recent texts' content words, for texts compared without a stored message (`similarity`: the offline agent's questions). */
const contentWordsSeen = new RecentMap<string, ReadonlySet<string>>(2_000);

function contentWords(text: string): ReadonlySet<string> {
  const seen = contentWordsSeen.get(text);
  if (seen) return seen;
  const set = wordsOf(text);
  if (text.length <= 2_000) contentWordsSeen.set(text, set);
  return set;
}

/**
 * Stored messages' content words, by message (the cache shares frozen messages between turns).
 * Bounded, first in first out: a look is one map read, and a message dropped is only worked out again.
 */
const messageWords = new RecentMap<Message, ReadonlySet<string>>(4_000);

function contentWordsOf(message: Message, normalized?: string): ReadonlySet<string> {
  let words = messageWords.peek(message);
  if (!words) messageWords.set(message, (words = wordsOf(message.text, normalized)));
  return words;
}

/** Acknowledgements: saying "thanks" three times is not asking the same question three times. */
const PLEASANTRIES = new Set('thanks thank thx ty ok okay kk great perfect cool nice fine sure alright good bye goodbye cheers got it understood noted'.split(' '));

function isPleasantry(words: ReadonlySet<string>): boolean {
  for (const w of words) if (!PLEASANTRIES.has(w)) return false;
  return true;
}

/** Jaccard similarity of content words; 1 = same question. */
export function similarity(a: string, b: string): number {
  return wordSimilarity(contentWords(a), contentWords(b));
}

function wordSimilarity(wa: ReadonlySet<string>, wb: ReadonlySet<string>): number {
  if (wa.size === 0 || wb.size === 0) return 0;
  let common = 0;
  for (const w of wa) if (wb.has(w)) common++;
  return common / (wa.size + wb.size - common);
}

/** Customer messages since control last came back to the agent (a hand-back resets the count). */
function customerMessagesSinceHandback(messages: readonly Message[]): Message[] {
  const out: Message[] = [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.handback || m.notice === 'reopened') break;
    if (m.author.role === 'customer') out.unshift(m);
  }
  return out;
}

/**
 * Checks the deterministic triggers against a conversation whose last message is the new
 * customer message. Returns the first that fires, or undefined, in this order of precedence:
 * 1. `compliance` (high priority): compliance words in the message;
 * 2. `explicit_request` (normal): the customer asks for a person;
 * 3. `repetition` (high): the same question `repeatThreshold` times since control last came back
 *    to the agent (a hand-back or a reopen resets the count; acknowledgements like "thanks" never count);
 * 4. `turn_cap` (normal): `turnCap` agent turns without resolution.
 */
export function evaluateCustomerTriggers(conversation: Conversation, policy: Policy): TriggerHit | undefined {
  const last = conversation.messages.at(-1);
  if (!last || last.author.role !== 'customer') return undefined;
  const text = last.text;
  const normalized = normalize(text);

  const compliance = containsWords(normalized, policy.compliance.words);
  if (compliance.length > 0) {
    return { trigger: 'compliance', reason: `Compliance-sensitive words: ${compliance.join(', ')}`, priority: 'high' };
  }
  if (personAsked(text, normalized, policy.explicitRequest.extraPhrases)) {
    return { trigger: 'explicit_request', reason: 'The customer asked for a person', priority: 'normal' };
  }
  const earlier = customerMessagesSinceHandback(conversation.messages).slice(0, -1);
  const words = contentWordsOf(last, normalized);
  const sameQuestion = isPleasantry(words) ? 1 : earlier.filter((m) => wordSimilarity(contentWordsOf(m), words) >= 0.6).length + 1;
  if (sameQuestion >= policy.behaviour.repeatThreshold) {
    return { trigger: 'repetition', reason: `The customer asked the same thing ${sameQuestion} times`, priority: 'high' };
  }
  if (conversation.agentTurns >= policy.behaviour.turnCap) {
    return { trigger: 'turn_cap', reason: `${conversation.agentTurns} agent turns without resolution`, priority: 'normal' };
  }
  return undefined;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
