/**
 * The conversation model: what the bridge stores and what every port sees.
 * Plain data (JSON-safe) so it round-trips through any keyv backend.
 */
import type { HandoffEnvelope } from './envelope.ts';

/** Where the customer talks to us. */
export type Origin = 'webchat' | 'email' | 'api';

/** Who holds the conversation. See `ownership.ts` for the transitions. */
export type OwnershipState = 'agent' | 'waiting' | 'human' | 'closed';

/** A person acting from a workspace. `id` is namespaced by workspace, e.g. `slack:U123`, `teams:29:abc`. */
export interface Operator {
  id: string;
  name: string;
  /** Which workspace the operator acts from (`slack`, `teams`, `test`, ...). */
  workspace: string;
}

/** Who did something to a conversation. */
export type Actor =
  | { kind: 'customer' }
  | { kind: 'agent' }
  | { kind: 'system' }
  | { kind: 'operator'; operator: Operator };

export interface Customer {
  /** Stable id within the origin channel (webchat visitor id, email address, API user id). */
  id: string;
  name?: string;
  email?: string;
}

export type AuthorRole = 'customer' | 'agent' | 'operator' | 'system';

/** Status notices the customer sees as the handoff moves. */
export type NoticeKind =
  | 'escalated'
  | 'joined'
  | 'returned'
  | 'closed'
  | 'reopened'
  | 'transferred'
  | 'released'
  /** Outside hours or with no one to answer: when a person will, and that the agent keeps helping. */
  | 'deferred'
  /** Nobody claimed in time: the customer is told the truth and what happens next. */
  | 'fallback'
  /** Internal: an unclaimed escalation is still waiting (mentions the on-call group in the thread). */
  | 'reminder'
  /** Internal: the escalation went to the managers' channel. */
  | 'managers';

export interface Attachment {
  name: string;
  url: string;
  contentType?: string;
  size?: number;
}

export interface Message {
  /** Stable id (`msg_...`), unique across the store. */
  id: string;
  at: string;
  author: { role: AuthorRole; id?: string; name?: string };
  text: string;
  /** `internal` messages (operator notes, hand-back context) never reach the customer. */
  visibility: 'public' | 'internal';
  /** Set on system messages that are customer-facing status notices. */
  notice?: NoticeKind;
  attachments?: Attachment[];
  /** The agent context a return/decision produced: kept in the transcript so the agent sees it on its next turn. */
  handback?: HandbackContext;
  /** Tool calls the agent made for this turn (agent messages and escalation notices). */
  actions?: Array<{ tool: string; input: unknown; output?: unknown; ok: boolean }>;
  /** The workspace an operator message was typed in; that workspace does not get it mirrored back. */
  source?: MessageSource;
  /** Set only on a workspace's redacted copy: how many values were masked in `text` (the owner may reveal them). */
  masked?: number;
}

export interface MessageSource {
  workspace: string;
  /** False when it was typed elsewhere than the conversation's thread (a queue channel's copy): the thread still needs it. */
  inThread?: boolean;
  /** The platform's id for it (Slack ts, Teams activity id). */
  externalId?: string;
}

/** One ownership change, kept forever in the conversation's handoff history. */
export interface HistoryEntry {
  from: OwnershipState;
  to: OwnershipState;
  /** The command that caused it (`escalate`, `claim`, `return`, ...). */
  reason: string;
  by: Actor;
  at: string;
  /** Which trigger fired (escalations only). */
  trigger?: string;
  note?: string;
  optionId?: string;
  /** For transfers: who received it. */
  to_operator?: Operator;
  /** Agent-to-agent handoffs (reason `agent_handoff`, several agents configured): see src/agent/handoff-history.ts. */
  agent_handoff?: { from: string; to: string; input?: Record<string, unknown>; pinned?: boolean; since?: number };
}

/** An operator's pick among the briefing's options. */
export interface Decision {
  optionId: string;
  label: string;
  by: Operator;
  at: string;
  note?: string;
}

/** What a timer does when it fires (see `engine/timers.ts`). */
export type TimerName = 'remind' | 'managers' | 'fallback' | 'owner_nudge' | 'owner_release' | 'hours_open';

/** A durable timer: fires once at `at`, if what it was set for still holds. */
export interface Timer {
  name: TimerName;
  at: string;
  /** The escalation it belongs to (escalation timers). */
  escalation?: number;
}

/** One approved call: the tool, the arguments shown (by hash), and the escalation it answered. */
export interface Approval {
  id: string;
  tool: string;
  /** Hash of the exact arguments approved (see `argumentsHash`). */
  argsHash?: string;
  /** Those arguments, so the agent can call the tool with exactly them. */
  args?: unknown;
  /** For a refund approved before the call existed: the amount the operator saw. */
  amount?: number;
  /** Which escalation of the conversation it answered. */
  escalation: number;
  by: Operator;
  at: string;
  /** Set when a tool run reserved it; it never covers another call. */
  usedAt?: string;
}

/** The one structured message the agent gets when control comes back to it. */
export interface HandbackContext {
  /** `fallback`: nobody claimed the escalation in time; no person is available. */
  kind: 'return' | 'decision' | 'fallback';
  /** The operator who handed back (absent for a fallback). */
  by?: Operator;
  at: string;
  note?: string;
  decision?: Decision;
  /** What was said while a human held the conversation (customer and operator public messages). */
  humanStretch: Array<{ role: AuthorRole; name?: string; text: string; at: string }>;
}

export interface Conversation {
  id: string;
  /** Human-friendly ticket reference, e.g. `HB-1042`. */
  ticket: string;
  origin: Origin;
  customer: Customer;
  subject?: string;
  queue: string;
  state: OwnershipState;
  /** The operator holding it (state `human` only). */
  owner?: Operator;
  /** Bumped on every ownership change; agent turns carry the version they started from. */
  ownershipVersion: number;
  /** The store's version, bumped by every commit (0 before the first). Commits compare-and-set on it. */
  version: number;
  messages: Message[];
  history: HistoryEntry[];
  /** The current (or last) briefing. */
  briefing?: HandoffEnvelope;
  decisions: Decision[];
  /** Agent turns since control last came to the agent; drives the turn cap. */
  agentTurns: number;
  /** Calls an operator approved through a decision; each is used up by one tool run. */
  approvals: Approval[];
  /** Pending timers: the escalation ladder, owner silence, support hours opening. */
  timers?: Timer[];
  /**
   * An escalation that could not go to a person yet (outside support hours, or no workspace runs):
   * the agent keeps helping, and it is raised when someone can answer.
   */
  pendingEscalation?: { trigger: string; reason: string; at: string };
  /** The operator who last took this customer's conversation (sticky routing), and when. */
  previousOperator?: Operator & { at: string };
  /** The current escalation is offered first to this operator until then: others cannot claim it yet. */
  offeredTo?: { operator: Operator; until: string };
  /** Workspaces this conversation's thread was ever sent to, so one that comes online later catches up. */
  workspaces?: string[];
  createdAt: string;
  updatedAt: string;
  /** Channel-private data (email Message-IDs, webchat session, ...), keyed by channel name. */
  channelData: Record<string, unknown>;
}

export function publicMessages(conversation: Conversation): Message[] {
  return conversation.messages.filter((m) => m.visibility === 'public');
}

export function actorName(actor: Actor): string {
  return actor.kind === 'operator' ? actor.operator.name : actor.kind;
}
