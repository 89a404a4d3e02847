/**
 * The handoff envelope: everything an operator needs to understand a case in 30 seconds.
 * The zod schema is the source of truth; the agent tool's JSON Schema is derived from it.
 */
import { z } from 'zod';

export const PrioritySchema = z.enum(['low', 'normal', 'high', 'urgent']);
export const SentimentSchema = z.enum(['positive', 'neutral', 'frustrated', 'angry']);
export const RiskSchema = z.enum(['low', 'medium', 'high']);

export const EntitiesSchema = z
  .object({
    ids: z.array(z.string().max(200)).max(20).default([]).describe('Order, account, invoice or other ids the customer mentioned'),
    amounts: z
      .array(z.object({ value: z.number(), currency: z.string().max(8).optional(), raw: z.string().max(100).optional() }))
      .max(20)
      .default([])
      .describe('Money amounts mentioned'),
    dates: z.array(z.string().max(100)).max(20).default([]).describe('Dates mentioned, as written or ISO'),
    emails: z.array(z.string().max(320)).max(20).default([]).describe('Email addresses mentioned'),
  })
  .describe('Entities pulled from the conversation');

export const ActionTakenSchema = z.object({
  tool: z.string().max(100).describe('Tool name'),
  input: z.unknown().describe('Arguments the agent passed'),
  output: z.unknown().optional().describe('What the tool returned'),
  ok: z.boolean().default(true).describe('False when the tool failed'),
});

export const OptionSchema = z.object({
  id: z.string().min(1).max(60).regex(/^[A-Za-z0-9_-]+$/).describe('Stable id, e.g. approve_refund'),
  label: z.string().min(1).max(75).describe('Button label'),
  tradeoffs: z.string().max(500).optional().describe('What choosing it costs or risks'),
  risk: RiskSchema.default('low'),
  /** A tool this option authorises once (e.g. an irreversible refund). */
  approvesTool: z.string().max(100).optional().describe('Tool this option authorises once, if any'),
  /** The exact arguments approved: the call the agent was stopped on. Set by the runtime, never by the model. */
  approvesArgs: z.unknown().optional(),
});

export const HandoffEnvelopeSchema = z.object({
  reason: z.string().min(1).max(300).describe('Why a person is needed, one line'),
  trigger: z.string().min(1).max(60).describe('Which trigger fired: explicit_request, refund_threshold, compliance, irreversible_tool, repetition, turn_cap, tool_error, agent_tool'),
  priority: PrioritySchema.default('normal'),
  summary: z.string().min(1).max(1200).describe('2-3 sentences: who the customer is, what they want, where it stands'),
  intent: z.string().min(1).max(200).describe('What the customer wants, in a few words'),
  entities: EntitiesSchema.default({ ids: [], amounts: [], dates: [], emails: [] }),
  constraints: z.array(z.string().max(300)).max(10).default([]).describe('Policies or limits that apply'),
  sentiment: SentimentSchema.default('neutral'),
  actionsTaken: z.array(ActionTakenSchema).max(20).default([]).describe('Tool calls the agent already made'),
  pendingQuestion: z.string().min(1).max(500).describe('The question the person must answer'),
  options: z.array(OptionSchema).max(5).default([]).describe('Choices an operator can pick without taking over'),
  queue: z.string().min(1).max(60).default('general'),
  ticket: z.string().max(40).default(''),
  /** Several agents: the one that escalated, and every agent involved so far. Set by the bridge. */
  agent: z.string().max(60).optional(),
  agents: z.array(z.string().max(60)).max(20).optional(),
});

export type HandoffEnvelope = z.output<typeof HandoffEnvelopeSchema>;
export type HandoffEnvelopeInput = z.input<typeof HandoffEnvelopeSchema>;
export type BriefingOption = z.output<typeof OptionSchema>;
export type Priority = z.output<typeof PrioritySchema>;
export type Sentiment = z.output<typeof SentimentSchema>;

/** What the agent's `escalate_to_human` tool takes: the envelope minus what the bridge fills in. */
export const EscalateToolArgsSchema = HandoffEnvelopeSchema.omit({ trigger: true, ticket: true, agent: true, agents: true }).extend({
  queue: z.string().min(1).max(60).optional().describe('Queue to route to, if the agent knows better than the default'),
});
export type EscalateToolArgs = z.output<typeof EscalateToolArgsSchema>;

/** JSON Schema for the `escalate_to_human` tool, derived from the zod schema. */
export function escalateToolJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(EscalateToolArgsSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete schema.$schema;
  return schema;
}
