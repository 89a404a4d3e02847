/**
 * Ownership in words, shared by the thread root, the briefing and the thread's activity lines.
 * Output is escaped mrkdwn (names and notes are untrusted).
 */
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
    default:
      return `${who}: ${escapeMrkdwn(change.reason)} (${change.from} → ${change.to})${note}`;
  }
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
