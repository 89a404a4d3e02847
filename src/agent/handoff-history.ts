/**
 * Agent-to-agent handoffs in the conversation's one history. A handoff is a history entry with
 * reason `agent_handoff` (ownership stays `agent`, its version unchanged) carrying
 * `agent_handoff: { from, to, input?, pinned? }`, plus an internal activity line in the thread.
 * Which agent holds the conversation is read back from those entries, so it is committed with
 * the answer that follows the handoff and survives restarts without any other state.
 *
 * `recordAgentHandoffs` is the engine hook (called by agent-turns.ts in the answer's commit);
 * `routeConversation` is an operator's pick (the `/route` command, manual mode).
 */
import { BridgeError, InvalidTransitionError } from '../errors.ts';
import type { Actor, Conversation, HistoryEntry, Message, Operator } from '../model.ts';
import type { ChangeSink } from '../engine/commit.ts';
import type { AgentTurnResult } from './agent.ts';

export const AGENT_HANDOFF = 'agent_handoff';

/** What a handoff entry carries beyond the usual history fields. */
export interface AgentHandoffDetail {
  from: string;
  to: string;
  /** The handoff tool's typed input (validated against its schema), for the receiving agent. */
  input?: Record<string, unknown>;
  /** An operator pinned this agent: no routing or transfers until someone picks again. */
  pinned?: boolean;
  /** Index of the first transcript message the receiving agent was asked to answer (where "since the handoff" starts). */
  since?: number;
}

export type AgentHandoffEntry = HistoryEntry & { agent_handoff: AgentHandoffDetail };

/** One handoff decided during an agent turn (not yet committed). */
export interface AgentHandoff {
  from: string;
  to: string;
  reason?: string;
  input?: Record<string, unknown>;
  /** See `AgentHandoffDetail.since`. */
  since?: number;
  at: string;
  /** `agent`: a transfer tool; `router`: the route_conversation router. */
  via: 'agent' | 'router';
}

/** An agent turn's result when several agents are configured: who answered and the hops on the way. */
export type MultiAgentTurnResult = AgentTurnResult & { agent?: string; handoffs?: AgentHandoff[] };

export function isAgentHandoff(entry: HistoryEntry): entry is AgentHandoffEntry {
  return entry.reason === AGENT_HANDOFF && typeof (entry as AgentHandoffEntry).agent_handoff?.to === 'string';
}

/** The last handoff entry, if any. */
export function lastHandoff(c: Pick<Conversation, 'history'>): AgentHandoffEntry | undefined {
  for (let i = c.history.length - 1; i >= 0; i--) if (isAgentHandoff(c.history[i]!)) return c.history[i] as AgentHandoffEntry;
  return undefined;
}

/** The agent that holds the conversation: the last handoff's target, else `defaultAgent`. */
export function currentAgent(c: Pick<Conversation, 'history'>, defaultAgent: string): string {
  return lastHandoff(c)?.agent_handoff.to ?? defaultAgent;
}

/** Index of the first message nobody has answered yet: after the last public agent or operator message. */
export function unansweredFrom(messages: readonly Message[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.visibility === 'public' && (m.author.role === 'agent' || m.author.role === 'operator')) return i + 1;
  }
  return 0;
}

/** Every agent that handled the conversation so far, in order of first involvement. */
export function agentsInvolved(c: Pick<Conversation, 'history'>, defaultAgent?: string): string[] {
  const names = c.history.filter(isAgentHandoff).flatMap((h) => [h.agent_handoff.from, h.agent_handoff.to]);
  return [...new Set(defaultAgent && names.length === 0 ? [defaultAgent] : names)];
}

/** What `rules` must offer (the engine's Rules class does). */
interface AppendRules {
  appendSystem(c: Conversation, sink: ChangeSink, fields: Pick<Message, 'text' | 'visibility'> & Partial<Message>): Message;
}

/** Where this change's own output starts, taken at the start of the change. */
export interface ChangeMark {
  messages: number;
  history: number;
  effects: number;
}

export function markChange(c: Conversation, sink: ChangeSink): ChangeMark {
  return { messages: c.messages.length, history: c.history.length, effects: sink.effects.length };
}

/** The activity line in the thread: "triage handed the conversation to billing: double charge". */
function handoffLine(h: AgentHandoff): string {
  const why = h.reason ? `: ${h.reason}` : '.';
  return h.via === 'router' ? `The router moved the conversation from ${h.from} to ${h.to}${why}` : `${h.from} handed the conversation to ${h.to}${why}`;
}

/**
 * The engine hook, run at the end of an agent turn's commit (only when the turn's output is kept).
 * Puts the turn's handoffs BEFORE what the turn added: history entries and activity lines, so the
 * thread and the webhooks read triage -> billing, then billing's answer. Names the answer's author
 * after the agent that gave it, and tells the briefing which agent escalated and who was involved.
 */
export function recordAgentHandoffs(c: Conversation, sink: ChangeSink, rules: AppendRules, result: AgentTurnResult, mark: ChangeMark): void {
  const { agent, handoffs = [] } = result as MultiAgentTurnResult;
  if (!agent && handoffs.length === 0) return;
  const turnMessages = c.messages.splice(mark.messages);
  const turnHistory = c.history.splice(mark.history);
  const turnEffects = sink.effects.splice(mark.effects);
  // Transcript times never go backwards: each line falls between what came before and the turn's own messages.
  let floor = c.messages.at(-1)?.at ?? '';
  const ceiling = turnMessages[0]?.at;
  for (const h of handoffs) {
    const by: Actor = { kind: 'agent' };
    let at = h.at < floor ? floor : h.at;
    if (ceiling && at > ceiling) at = ceiling < floor ? floor : ceiling;
    floor = at;
    const entry: AgentHandoffEntry = {
      from: c.state,
      to: c.state,
      reason: AGENT_HANDOFF,
      by,
      at,
      ...(h.reason ? { note: h.reason } : {}),
      agent_handoff: { from: h.from, to: h.to, ...(h.input ? { input: h.input } : {}), ...(h.since !== undefined ? { since: h.since } : {}) },
    };
    c.history.push(entry);
    sink.effects.push({ kind: 'ownership', change: entry });
    const line = rules.appendSystem(c, sink, { text: handoffLine(h), visibility: 'internal' });
    // Appended before the turn's own messages, whose times may be earlier than the clock now.
    line.at = at;
  }
  for (const m of turnMessages) if (agent && m.author.role === 'agent') m.author = { ...m.author, name: agent };
  c.messages.push(...turnMessages);
  c.history.push(...turnHistory);
  sink.effects.push(...turnEffects);
  if (c.briefing && turnHistory.some((h) => h.reason === 'escalate') && agent) {
    // Read by workspaces' briefing cards (HandoffEnvelope gains `agent` and `agents`).
    Object.assign(c.briefing, { agent, agents: agentsInvolved(c, agent) });
  }
}

// ---- an operator's pick --------------------------------------------------------------------

export interface RouteInput {
  conversationId: string;
  operator: Operator;
  /** The agent to hand the conversation to. */
  agent: string;
  note?: string;
  /** true: this agent keeps it (no router, no transfers) until someone picks again. */
  pin?: boolean;
  idempotencyKey?: string;
}

export interface RouteDeps {
  committer: { change<R>(id: string, change: (c: Conversation, sink: ChangeSink) => R, options?: { inbound?: { key: string; ttlMs: number } }): Promise<{ conversation: Conversation; result: R }> };
  rules: AppendRules;
  /** Configured agent names and the default one (the multi-agent configuration). */
  agents: { names: readonly string[]; defaultAgent: string };
  now: () => Date;
}

/**
 * An operator picks the agent (manual mode, or overriding the router): one `agent_handoff` entry
 * by the operator and an activity line. If the customer is waiting on an answer and the agent
 * holds the conversation, the new agent answers now.
 */
export async function routeConversation(deps: RouteDeps, input: RouteInput): Promise<Conversation> {
  if (!deps.agents.names.includes(input.agent)) {
    throw new BridgeError('unknown_agent', `No agent named "${input.agent}" (agents: ${deps.agents.names.join(', ')}).`);
  }
  const { conversation } = await deps.committer.change(
    input.conversationId,
    (c, sink) => {
      if (c.state === 'closed') throw new InvalidTransitionError('route', c.state);
      const from = currentAgent(c, deps.agents.defaultAgent);
      const at = deps.now().toISOString();
      const entry: AgentHandoffEntry = {
        from: c.state,
        to: c.state,
        reason: AGENT_HANDOFF,
        by: { kind: 'operator', operator: input.operator },
        at,
        ...(input.note ? { note: input.note } : {}),
        agent_handoff: { from, to: input.agent, ...(input.pin ? { pinned: true } : {}), since: unansweredFrom(c.messages) },
      };
      c.history.push(entry);
      sink.effects.push({ kind: 'ownership', change: entry });
      const pinned = input.pin ? ' and pinned it' : '';
      deps.rules.appendSystem(c, sink, { text: `${input.operator.name} handed the conversation from ${from} to ${input.agent}${pinned}${input.note ? `: ${input.note}` : '.'}`, visibility: 'internal' });
      const lastPublic = c.messages.filter((m) => m.visibility === 'public' && !m.notice).at(-1);
      if (c.state === 'agent' && lastPublic?.author.role === 'customer') sink.effects.push({ kind: 'turn' });
    },
    input.idempotencyKey ? { inbound: { key: `command:${input.idempotencyKey}`, ttlMs: 24 * 60 * 60 * 1000 } } : {},
  );
  return conversation;
}
