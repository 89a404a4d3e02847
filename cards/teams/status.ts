/**
 * Ownership in words for the Teams root and briefing cards. Returns literal runs (names and notes
 * are untrusted), never markdown.
 */
import type { Actor, Conversation, HistoryEntry } from '../../src/model.ts';
import type { Run } from './adaptive.ts';
import { oneLine } from './text.ts';

const ORIGIN_LABEL: Record<string, string> = { webchat: 'web chat', email: 'email', api: 'API' };

export function originLabel(conversation: Conversation): string {
  return ORIGIN_LABEL[conversation.origin] ?? conversation.origin;
}

export function customerLabel(conversation: Conversation): string {
  const c = conversation.customer;
  const name = c.name ?? c.email ?? c.id;
  return c.email && c.email !== name ? `${name} <${c.email}>` : name;
}

/** Who holds the conversation, as runs. `viewerId` turns the holder into "You". */
export function ownerRuns(conversation: Conversation, viewerId?: string): Run[] {
  switch (conversation.state) {
    case 'agent':
      return [{ text: '🤖 With the AI agent' }];
    case 'waiting':
      return [{ text: '⏳ Waiting for a person', weight: 'bolder', color: 'warning' }];
    case 'human': {
      const owner = conversation.owner;
      if (owner && viewerId && owner.id === viewerId) return [{ text: '🙋 You hold this conversation', weight: 'bolder', color: 'good' }];
      return [{ text: '🙋 Held by ' }, { text: oneLine(owner?.name ?? 'an operator', 100), weight: 'bolder' }];
    }
    case 'closed':
      return [{ text: '🔒 Closed' }];
  }
}

function actorName(actor: Actor): string {
  switch (actor.kind) {
    case 'operator':
      return oneLine(actor.operator.name, 100);
    case 'agent':
      return 'The agent';
    case 'customer':
      return 'The customer';
    case 'system':
      return 'The bridge';
  }
}

/** One line saying what happened to the conversation, e.g. "Dana returned it to the agent: check the invoice". */
export function describeChange(change: HistoryEntry, maxNote = 300): string {
  const who = actorName(change.by);
  const note = change.note ? `: ${oneLine(change.note, maxNote)}` : '';
  switch (change.reason) {
    case 'escalate':
      return `🚨 Escalated${change.trigger ? ` (${change.trigger})` : ''}${note}`;
    case 'claim':
      return `🙋 ${who} claimed the conversation${note}`;
    case 'take_over':
      return `🙋 ${who} took over from the agent${note}`;
    case 'decide':
      return `✅ ${who} decided${change.optionId ? ` "${change.optionId}"` : ''}; the agent continues${note}`;
    case 'return':
      return `↩️ ${who} returned the conversation to the agent${note}`;
    case 'release':
      return `⤴️ ${who} released the conversation to the queue${note}`;
    case 'transfer':
      return `🔀 ${who} transferred the conversation${change.to_operator ? ` to ${oneLine(change.to_operator.name, 100)}` : ''}${note}`;
    case 'close':
      return `🔒 ${who} closed the conversation${note}`;
    case 'reopen':
      return `🔓 Reopened with the agent${note}`;
    case 'remind':
      return `⏰ Reminder${note}`;
    case 'managers':
      return `📋 Sent to the managers${note}`;
    case 'fallback':
      return `⌛ Fallback, nobody claimed it in time${note}`;
    case 'expire':
      return `⤴️ Back in the queue${note}`;
    case 'nudge':
      return `🔔 Owner nudged privately${note}`;
    case 'agent_handoff': {
      const hop = change.agent_handoff;
      if (!hop) break;
      const from = oneLine(hop.from, 60);
      const to = oneLine(hop.to, 60);
      if (change.by.kind === 'operator') return `🔀 ${who} handed the conversation from ${from} to ${to}${hop.pinned ? ' and pinned it' : ''}${note}`;
      return `🔀 ${from} handed the conversation to ${to}${note}`;
    }
    case 'reveal':
      // The note names kinds and last digits only (never the values).
      return `🔓 ${who} revealed masked values${note}`;
  }
  return `${who}: ${change.reason} (${change.from} → ${change.to})${note}`;
}

/** The briefing's agents line, e.g. "Escalated by billing · agents: triage → billing"; undefined with one agent. */
export function agentsLine(envelope: { agent?: string | undefined; agents?: string[] | undefined }): string | undefined {
  const by = envelope.agent ? oneLine(envelope.agent, 60) : '';
  const agents = (envelope.agents ?? []).map((a) => oneLine(a, 60)).filter(Boolean).slice(0, 20);
  const parts: string[] = [];
  if (by) parts.push(`Escalated by ${by}`);
  if (agents.length > 1 || (agents.length === 1 && agents[0] !== by)) parts.push(`agents: ${agents.join(' → ')}`);
  if (parts.length === 0) return undefined;
  const line = parts.join(' · ');
  return line.charAt(0).toUpperCase() + line.slice(1);
}

/** History since the latest escalation: what happened to the current briefing. */
export function sinceLastEscalation(conversation: Conversation): HistoryEntry[] {
  let start = 0;
  conversation.history.forEach((entry, i) => {
    if (entry.reason === 'escalate') start = i + 1;
  });
  return conversation.history.slice(start);
}

/** When the latest escalation happened (decisions before it belong to an older briefing). */
export function lastEscalationAt(conversation: Conversation): string | undefined {
  return [...conversation.history].reverse().find((h) => h.reason === 'escalate')?.at;
}

/** Which escalation the current briefing belongs to (1 for the first; 0 before any). */
export function escalationNumber(conversation: Conversation): number {
  return conversation.history.filter((h) => h.reason === 'escalate').length;
}

/** Reasons that put a conversation in the queue: the current wait for a person starts at the latest. */
const QUEUED = new Set(['escalate', 'release', 'expire']);

/** Index in the history of the change that started the current (or latest) wait for a person. */
function waitStart(conversation: Conversation): number {
  return conversation.history.findLastIndex((h) => QUEUED.has(h.reason) && h.to === 'waiting');
}

/** When the current (or latest) wait for a person started. */
export function waitStartedAt(conversation: Conversation): string | undefined {
  const i = waitStart(conversation);
  return i < 0 ? undefined : conversation.history[i]!.at;
}

/** The change that ended the latest wait (claim, fallback, return...), if the conversation is no longer waiting. */
export function endOfWait(conversation: Conversation): HistoryEntry | undefined {
  const i = waitStart(conversation);
  if (i < 0 || conversation.state === 'waiting') return undefined;
  return conversation.history.slice(i + 1).find((h) => h.from === 'waiting' && h.to !== 'waiting');
}

/** A duration for people: "45 s", "3 min 20 s", "2 h 5 min". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}
