/**
 * The largest briefing input the schema allows: every string at its maximum, every list full, and
 * text that grows when escaped for mrkdwn (`&`, `<`, `>`). Cards built from it must still be
 * accepted by Slack.
 */
import { HandoffEnvelopeSchema, type EscalateToolArgs, type HandoffEnvelope } from '../../src/envelope.ts';

/** `n` characters of case-like text with characters that mrkdwn escaping lengthens. */
export function filler(n: number, seed = 'Refund <A-1001> & credit for Ann & co. '): string {
  return seed.repeat(Math.ceil(n / seed.length)).slice(0, n);
}

/** What an agent may ask for at most (the bridge fills in trigger and ticket). */
export function maximalRequest(): EscalateToolArgs {
  return {
    reason: filler(300),
    priority: 'urgent',
    summary: filler(1200),
    intent: filler(200),
    entities: {
      ids: Array.from({ length: 20 }, (_, i) => filler(200, `ORDER-${i}-&<>-`)),
      amounts: Array.from({ length: 20 }, (_, i) => ({ value: 1000 + i, currency: 'USD', raw: filler(100, `${1000 + i} USD & `) })),
      dates: Array.from({ length: 20 }, () => filler(100, '2025-01-01 & ')),
      emails: Array.from({ length: 20 }, (_, i) => filler(320, `ann${i}&co@example.com `)),
    },
    constraints: Array.from({ length: 10 }, () => filler(300)),
    sentiment: 'angry',
    actionsTaken: Array.from({ length: 20 }, (_, i) => ({ tool: filler(100, `lookup_${i}_`), input: { note: filler(2000) }, output: { result: filler(2000) }, ok: i % 2 === 0 })),
    pendingQuestion: filler(500),
    options: Array.from({ length: 5 }, (_, i) => ({ id: `option_${i}`, label: filler(75, `Option ${i} & `), tradeoffs: filler(500), risk: 'high' as const })),
    queue: 'general',
  };
}

/** The envelope as the schema makes it from `maximalRequest`. */
export function maximalEnvelope(ticket = 'HB-1042'): HandoffEnvelope {
  return HandoffEnvelopeSchema.parse({ ...maximalRequest(), trigger: 'agent_tool', ticket });
}
