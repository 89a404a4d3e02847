/**
 * Ownership in words, shared by the thread root, the briefing and the thread's activity lines.
 * Output is escaped mrkdwn (names and notes are untrusted).
 */
import { isAgentHandoff } from '../../src/agent/handoff-history.ts';
import type { Actor, Conversation, HistoryEntry } from '../../src/model.ts';
import { escapeMrkdwn, fit } from './text.ts';

/** Who the thread root names as the current owner. */
export function ownerLabel(conversation: Conversation): string {
  switch (conversation.state) {
    case 'agent':
      return ':robot_face: AI agent';
    case 'waiting':
      return ':hourglass_flowing_sand: Waiting for a person';
    case 'human':
      return `:raising_hand: ${conversation.owner ? `*${escapeMrkdwn(conversation.owner.name)}*` : 'an operator'}`;
    case 'closed':
      return ':lock: Closed';
  }
}

function actorText(actor: Actor): string {
  switch (actor.kind) {
    case 'operator':
      return `*${escapeMrkdwn(actor.operator.name)}*`;
    case 'agent':
      return 'The agent';
    case 'customer':
      return 'The customer';
    case 'system':
      return 'The bridge';
  }
}

/**
 * One line saying what happened, e.g. "*Dana* returned the conversation to the agent: _check the invoice_".
 * Used as the thread's activity record and on the briefing's status line.
 */
export function describeChange(change: HistoryEntry, maxNote = 1500): string {
  const who = actorText(change.by);
  const note = change.note ? `: _${fit(escapeMrkdwn(change.note.replace(/\s+/g, ' ').trim()), maxNote)}_` : '';
  switch (change.reason) {
    case 'escalate':
      return `:rotating_light: Escalated${change.trigger ? ` (${escapeMrkdwn(change.trigger)})` : ''}${note}`;
    case 'claim':
      return `:raising_hand: ${who} claimed the conversation${note}`;
    case 'take_over':
      return `:raising_hand: ${who} took over the conversation${note}`;
    case 'decide':
      return `:white_check_mark: ${who} decided${change.optionId ? ` \`${escapeMrkdwn(change.optionId)}\`` : ''}; the agent continues${note}`;
    case 'return':
      return `:leftwards_arrow_with_hook: ${who} returned the conversation to the agent${note}`;
    case 'release':
      return `:arrow_heading_up: ${who} released the conversation; it is waiting for a person again${note}`;
    case 'transfer':
      return `:twisted_rightwards_arrows: ${who} transferred the conversation${change.to_operator ? ` to *${escapeMrkdwn(change.to_operator.name)}*` : ''}${note}`;
    case 'close':
      return `:lock: ${who} closed the conversation${note}`;
    case 'reopen':
      return `:unlock: The conversation reopened with the agent${note}`;
    case 'remind':
      return `:alarm_clock: Reminder posted in the thread${note}`;
    case 'managers':
      return `:mega: Sent to the managers' channel${note}`;
    case 'fallback':
      return `:leftwards_arrow_with_hook: Nobody claimed it in time; the customer was told and the agent continues${note}`;
    case 'expire':
      return `:hourglass: Back in the queue${note}`;
    case 'nudge':
      return `:bell: The owner was reminded privately${note}`;
    case 'reveal':
      return `:unlock: ${who} revealed masked values${note}`;
    case 'agent_handoff': {
      if (!isAgentHandoff(change)) break;
      const { from, to, pinned } = change.agent_handoff;
      const by = change.by.kind === 'operator' ? `${who} handed` : `*${escapeMrkdwn(from)}* handed`;
      return `:twisted_rightwards_arrows: ${by} the conversation${change.by.kind === 'operator' ? ` from *${escapeMrkdwn(from)}*` : ''} to *${escapeMrkdwn(to)}*${pinned ? ' and pinned it' : ''}${note}`;
    }
  }
  return `${who}: ${escapeMrkdwn(change.reason)} (${change.from} → ${change.to})${note}`;
}

/** The history entries since the latest escalation (what happened to the current briefing). */
export function sinceLastEscalation(conversation: Conversation): HistoryEntry[] {
  let start = 0;
  conversation.history.forEach((entry, i) => {
    if (entry.to === 'waiting' && (entry.reason === 'escalate' || entry.reason === 'escalation' || entry.trigger !== undefined)) start = i + 1;
  });
  return conversation.history.slice(start);
}

/**
 * Which escalation of the conversation its current briefing is (1 for the first): the same count
 * as the engine's (`escalationCount`), so a button carrying it is checked against the right one.
 */
export function escalationNumber(conversation: Conversation): number {
  return conversation.history.filter((h) => h.reason === 'escalate').length;
}

/** A span of time as people say it: "under a minute", "1 min", "17 min", "2 h 5 min", "3 d 4 h". */
export function formatDuration(ms: number): string {
  const minutes = Math.floor(Math.max(0, ms) / 60_000);
  if (minutes < 1) return 'under a minute';
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/**
 * The conversation's latest wait for a person: when it started (an escalation, a release, an
 * expiry) and the change that ended it (a claim, a decision, a fallback...), if it ended.
 */
export function lastWait(conversation: Conversation): { start: HistoryEntry; end?: HistoryEntry } | undefined {
  const history = conversation.history;
  for (let i = history.length - 1; i >= 0; i--) {
    const entry = history[i]!;
    if (entry.to !== 'waiting' || entry.from === 'waiting') continue;
    const end = history.slice(i + 1).find((h) => h.from === 'waiting' && h.to !== 'waiting');
    return { start: entry, ...(end ? { end } : {}) };
  }
  return undefined;
}

/** Since when the current owner holds the conversation (the latest change that gave it to them). */
export function heldSince(conversation: Conversation): string | undefined {
  if (conversation.state !== 'human') return undefined;
  return [...conversation.history].reverse().find((h) => h.to === 'human')?.at;
}

/** A Slack date token that each reader sees in their own time zone, e.g. "Nov 30, 2026 14:03". */
export function slackTime(at: Date | string): string {
  const date = typeof at === 'string' ? new Date(at) : at;
  const fallback = date.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  return `<!date^${Math.floor(date.getTime() / 1000)}^{date_short_pretty} {time}|${fallback}>`;
}
