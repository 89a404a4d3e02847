/**
 * Deterministic escalation triggers, checked on every customer message before the agent runs.
 * Model self-confidence is miscalibrated, so these come first; the agent's own
 * `escalate_to_human` tool and the tool gate (policy.ts) come on top.
 */
import type { Priority } from './envelope.ts';
import type { Conversation, Message } from './model.ts';
import type { Policy } from './policy.ts';

export interface TriggerHit {
  trigger: 'explicit_request' | 'compliance' | 'repetition' | 'turn_cap';
  reason: string;
  priority: Priority;
}

/** Lower-case, accents removed, punctuation to spaces: "¿Puedo hablar con una PERSONA?" -> "puedo hablar con una persona". */
export function normalize(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}@.$€£'-]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

// Phrasings of "let me talk to a person", matched on normalized text (no accents).
const PERSON_REQUEST_PATTERNS: RegExp[] = [
  // English
  /\b(talk|speak|chat|connect me|put me through|transfer me)\b.{0,20}\b(human|person|people|agent|representative|rep|someone|somebody|operator|staff|manager|supervisor|real one)\b/,
  /\b(human|live|real)\s+(agent|person|being|support|help|representative|operator)\b/,
  /\b(get|want|need|give)\s+(me\s+)?(a|an|to)?\s*(human|person|manager|supervisor|representative)\b/,
  /^\s*(human|agent|operator|representative|person)( please| pls)?\s*[!.]*$/,
  /\b(are you|is this) (a )?(bot|robot|machine)\b.*\b(human|person)\b/,
  /\bescalate (this|me|it)\b/,
  /\bstop (the )?bot\b/,
  // Spanish
  /\b(hablar|comunicarme|conversar)\b.{0,20}\b(humano|persona|agente|asesor|operador|alguien|representante|encargado)\b/,
  /\b(persona|agente|asesor) (real|humano)\b/,
  /\b(quiero|necesito)\s+(un|una|a)?\s*(humano|persona|agente|asesor)\b/,
  // French
  /\b(parler|discuter)\b.{0,20}\b(humain|personne|conseiller|conseillere|agent|quelqu'un|quelqu un|operateur|responsable)\b/,
  /\b(vrai|vraie) (humain|personne|conseiller)\b/,
  /\b(conseiller|agent) humain\b/,
  /\bje veux (un|une) (humain|personne|conseiller)\b/,
  // German
  /\b(mit|einen|einem|eine|einer)\b.{0,25}\b(menschen|mensch|mitarbeiter|mitarbeiterin|berater|beraterin|person|kundenberater|sachbearbeiter)\b.{0,20}\b(sprechen|reden|verbinden|chatten)\b/,
  /\b(echten|echter|realen) (menschen|mensch|mitarbeiter|person)\b/,
  /\bmenschlichen? (mitarbeiter|berater|support)\b/,
  /\b(verbinden sie mich|ich will|ich mochte|ich moechte)\b.{0,30}\b(menschen|mitarbeiter|berater)\b/,
];

/** True when the text asks for a person (English, Spanish, French, German, plus policy phrases). */
export function asksForPerson(text: string, extraPhrases: readonly string[] = []): boolean {
  const n = normalize(text);
  if (PERSON_REQUEST_PATTERNS.some((re) => re.test(n))) return true;
  return extraPhrases.some((phrase) => n.includes(normalize(phrase)));
}

/** The compliance words present in the text (whole words, case- and accent-insensitive). */
export function complianceWords(text: string, words: readonly string[]): string[] {
  const n = ` ${normalize(text)} `;
  return words.filter((w) => {
    const nw = normalize(w);
    return nw.length > 0 && new RegExp(`(^|[^\\p{L}\\p{N}])${escapeRegExp(nw)}([^\\p{L}\\p{N}]|$)`, 'u').test(n);
  });
}

const STOP_WORDS = new Set(
  'a an the i my me you your is are was be to of and or for on in at it this that do does did can could would will please hi hello hey ok so again still just yes no what why how when where'.split(
    ' ',
  ),
);

function contentWords(text: string): Set<string> {
  return new Set(normalize(text).split(' ').filter((w) => w.length > 1 && !STOP_WORDS.has(w)));
}

/** Jaccard similarity of content words; 1 = same question. */
export function similarity(a: string, b: string): number {
  const wa = contentWords(a);
  const wb = contentWords(b);
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
 * customer message. Returns the first that fires, or undefined.
 */
export function evaluateCustomerTriggers(conversation: Conversation, policy: Policy): TriggerHit | undefined {
  const last = conversation.messages.at(-1);
  if (!last || last.author.role !== 'customer') return undefined;
  const text = last.text;

  const words = complianceWords(text, policy.compliance.words);
  if (words.length > 0) {
    return { trigger: 'compliance', reason: `Compliance-sensitive words: ${words.join(', ')}`, priority: 'high' };
  }
  if (asksForPerson(text, policy.explicitRequest.extraPhrases)) {
    return { trigger: 'explicit_request', reason: 'The customer asked for a person', priority: 'normal' };
  }
  const earlier = customerMessagesSinceHandback(conversation.messages).slice(0, -1);
  const sameQuestion = earlier.filter((m) => similarity(m.text, text) >= 0.6).length + 1;
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
