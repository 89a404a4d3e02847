/**
 * The agent contract the bridge calls. An agent takes the conversation (transcript, including any
 * hand-back context) and returns either a reply or an escalation. It never talks to the customer
 * itself: the bridge decides whether its output may be delivered (the mute invariant).
 */
import type { z } from 'zod';
import type { ActionTakenSchema, EscalateToolArgs } from '../envelope.ts';
import type { Conversation } from '../model.ts';
import type { Policy, ToolClass } from '../policy.ts';

export type ActionTaken = z.output<typeof ActionTakenSchema>;

export interface AgentTurnInput {
  conversation: Conversation;
  policy: Policy;
  /** Aborted when ownership changes mid-turn; implementations pass it to their HTTP calls. */
  signal: AbortSignal;
  /**
   * Call before running any tool. Throws (and aborts the turn) when the conversation has left the
   * agent; reserves `approvalId` in a commit, so the approval is used up even if the turn is dropped.
   */
  authorize(call: { tool: string; args: unknown; approvalId?: string }): Promise<void>;
}

export type AgentTurnResult =
  | { kind: 'reply'; text: string; actionsTaken: ActionTaken[] }
  | {
      kind: 'escalate';
      /** Which trigger fired: `agent_tool`, `irreversible_tool`, `refund_threshold`, `tool_error`. */
      trigger: string;
      /** The agent's own briefing (from its `escalate_to_human` call), when it wrote one. */
      request?: Partial<EscalateToolArgs>;
      reason: string;
      actionsTaken: ActionTaken[];
    };

export interface Agent {
  readonly name: string;
  respond(input: AgentTurnInput): Promise<AgentTurnResult>;
}

/** A business tool the agent may call. Its class (read/write/irreversible) comes from the policy. */
export interface AgentTool<Args = unknown> {
  name: string;
  description: string;
  /** zod schema of the arguments; the JSON Schema sent to the model is derived from it. */
  parameters: z.ZodType<Args>;
  run(args: Args, context: { conversation: Conversation; signal: AbortSignal }): Promise<unknown>;
}

export type { ToolClass };
