/**
 * The offline default agent: answers from a small FAQ file and leaves escalation to the
 * deterministic triggers. It runs when no OpenAI key is set, so the bridge works end to end
 * without any model.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import type { HandbackContext, Message } from '../model.ts';
import { similarity } from '../triggers.ts';
import type { Agent, AgentTurnInput, AgentTurnResult } from './agent.ts';

export const FaqSchema = z.array(z.object({ questions: z.array(z.string().min(1)).min(1), answer: z.string().min(1) })).min(1);
export type Faq = z.output<typeof FaqSchema>;

export function loadFaq(path: string): Faq {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError('FAQ_FILE', `expected a readable JSON file at ${path} (${(err as Error).message})`);
  }
  const parsed = FaqSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError('FAQ_FILE', `${path}: expected [{ "questions": [..], "answer": ".." }] (${parsed.error.issues[0]?.message})`);
  return parsed.data;
}

const FALLBACK =
  "I'm not sure I can answer that one. I can help with orders, returns, refunds and your account, or you can ask for a person and I'll connect you.";

export class OfflineAgent implements Agent {
  readonly name = 'offline';
  constructor(private readonly faq: Faq, private readonly threshold = 0.2) {}

  async respond({ conversation }: AgentTurnInput): Promise<AgentTurnResult> {
    const handback = pendingHandback(conversation.messages);
    const question = [...conversation.messages].reverse().find((m) => m.author.role === 'customer');
    const answer = question ? this.answer(question.text) : undefined;
    const parts: string[] = [];
    if (handback) parts.push(acknowledge(handback));
    if (answer && !(handback && question && question.at < handback.at)) parts.push(answer);
    if (parts.length === 0) parts.push(FALLBACK);
    return { kind: 'reply', text: parts.join('\n\n'), actionsTaken: [] };
  }

  /** The best FAQ answer for a question, if any is close enough. */
  answer(text: string): string | undefined {
    let best: { score: number; answer: string } | undefined;
    for (const entry of this.faq) {
      for (const q of entry.questions) {
        const score = similarity(text, q);
        if (score > (best?.score ?? 0)) best = { score, answer: entry.answer };
      }
    }
    return best && best.score >= this.threshold ? best.answer : undefined;
  }
}

/** The hand-back the agent has not spoken after yet, if any. */
function pendingHandback(messages: readonly Message[]): HandbackContext | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.author.role === 'agent') return undefined;
    if (m.handback) return m.handback;
  }
  return undefined;
}

function acknowledge(handback: HandbackContext): string {
  const by = handback.by?.name ?? 'our team';
  if (handback.kind === 'fallback') return `I'm still here and happy to keep helping in the meantime. What else can I do for you?`;
  if (handback.decision) {
    const note = handback.decision.note ? ` ${handback.decision.note}` : '';
    return `Good news: our team reviewed your request. ${by} decided: ${handback.decision.label}.${note}`;
  }
  return handback.note ? `Picking up where ${by} left off: ${handback.note}` : `Thanks for your patience. I'm back to help with anything else.`;
}
