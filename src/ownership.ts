/**
 * The ownership state machine: the only place that decides who may speak to the customer.
 * A pure function from (ownership, command) to the next ownership plus its history entry, or a
 * typed error. No I/O; the bridge applies the result under the conversation's lock.
 */
import { AlreadyClaimedError, BridgeError, InvalidTransitionError, NotOwnerError } from './errors.ts';
import type { Actor, HistoryEntry, Operator, OwnershipState } from './model.ts';

export interface Ownership {
  state: OwnershipState;
  owner?: Operator;
  ownershipVersion: number;
}

export type OwnershipCommand =
  | { type: 'escalate'; by: Actor; trigger: string; reason: string }
  | { type: 'claim'; operator: Operator }
  | { type: 'take_over'; operator: Operator }
  | { type: 'release'; operator: Operator }
  | { type: 'transfer'; operator: Operator; to: Operator }
  | { type: 'decide'; operator: Operator; optionId: string; note?: string }
  | { type: 'return'; operator: Operator; note?: string }
  | { type: 'close'; by: Actor; note?: string }
  | { type: 'reopen'; by: Actor }
  /** Move the escalation to another queue: a new escalation there (`escalate` in the history, trigger `transfer`). */
  | { type: 'requeue'; operator: Operator; queue: string; note?: string }
  /** Nobody claimed in time: the escalation falls back to the agent (the customer is told). */
  | { type: 'fallback'; reason: string }
  /** The owner kept the customer waiting too long: back to the queue. */
  | { type: 'expire'; reason: string };

export type TransitionResult =
  | { ok: true; next: Ownership; entry: HistoryEntry }
  | { ok: false; error: BridgeError };

/** Applies one command. `at` is passed in so the function stays pure. */
export function transition(current: Ownership, command: OwnershipCommand, at: string): TransitionResult {
  const { state, owner } = current;
  const fail = (error: BridgeError): TransitionResult => ({ ok: false, error });
  const move = (to: OwnershipState, by: Actor, extra: Partial<HistoryEntry> = {}, newOwner?: Operator): TransitionResult => ({
    ok: true,
    next: { state: to, ownershipVersion: current.ownershipVersion + 1, ...(newOwner ? { owner: newOwner } : {}) },
    entry: { from: state, to, reason: command.type, by, at, ...extra },
  });
  const isOwner = (operator: Operator) => owner?.id === operator.id;

  switch (command.type) {
    case 'escalate':
      if (state !== 'agent') return fail(new InvalidTransitionError('escalate', state));
      return move('waiting', command.by, { trigger: command.trigger, note: command.reason });

    case 'claim':
    case 'take_over': {
      const by: Actor = { kind: 'operator', operator: command.operator };
      if (state === 'human') return fail(new AlreadyClaimedError(owner!));
      if (state === 'closed') return fail(new InvalidTransitionError(command.type === 'claim' ? 'claim' : 'take over', state));
      // A claim on a conversation back with the agent is a proactive take-over.
      const reason = state === 'agent' ? 'take_over' : 'claim';
      const result = move('human', by, {}, command.operator);
      if (result.ok) result.entry.reason = reason;
      return result;
    }

    case 'release':
      if (state !== 'human') return fail(new InvalidTransitionError('release', state));
      if (!isOwner(command.operator)) return fail(new NotOwnerError(command.operator, owner, 'release'));
      return move('waiting', { kind: 'operator', operator: command.operator });

    case 'transfer':
      if (state !== 'human') return fail(new InvalidTransitionError('transfer', state));
      if (!isOwner(command.operator)) return fail(new NotOwnerError(command.operator, owner, 'transfer'));
      if (command.to.id === command.operator.id) return fail(new InvalidTransitionError('transfer', state, 'You already hold this conversation.'));
      return move('human', { kind: 'operator', operator: command.operator }, { to_operator: command.to }, command.to);

    case 'decide':
      if (state === 'human' && !isOwner(command.operator)) return fail(new NotOwnerError(command.operator, owner, 'decide on'));
      if (state !== 'waiting' && state !== 'human')
        return fail(new InvalidTransitionError('decide', state, state === 'agent' ? 'This briefing was already handled: the conversation is back with the agent.' : undefined));
      return move('agent', { kind: 'operator', operator: command.operator }, { optionId: command.optionId, ...(command.note ? { note: command.note } : {}) });

    case 'return':
      if (state === 'human' && !isOwner(command.operator)) return fail(new NotOwnerError(command.operator, owner, 'return'));
      // An unclaimed escalation may be sent back too ("the agent can handle this").
      if (state !== 'human' && state !== 'waiting') return fail(new InvalidTransitionError('return', state));
      return move('agent', { kind: 'operator', operator: command.operator }, command.note ? { note: command.note } : {});

    case 'close':
      if (state === 'closed') return fail(new InvalidTransitionError('close', state));
      if (state === 'human' && command.by.kind === 'operator' && !isOwner(command.by.operator))
        return fail(new NotOwnerError(command.by.operator, owner, 'close'));
      return move('closed', command.by, command.note ? { note: command.note } : {});

    case 'reopen':
      if (state !== 'closed') return fail(new InvalidTransitionError('reopen', state));
      return move('agent', command.by);

    case 'requeue': {
      if (state === 'human' && !isOwner(command.operator)) return fail(new NotOwnerError(command.operator, owner, 'move'));
      if (state !== 'waiting' && state !== 'human') return fail(new InvalidTransitionError('move', state));
      const result = move('waiting', { kind: 'operator', operator: command.operator }, { trigger: 'transfer', note: `to ${command.queue}${command.note ? `: ${command.note}` : ''}` });
      if (result.ok) result.entry.reason = 'escalate';
      return result;
    }

    case 'fallback':
      if (state !== 'waiting') return fail(new InvalidTransitionError('fall back', state));
      return move('agent', { kind: 'system' }, { note: command.reason });

    case 'expire':
      if (state !== 'human') return fail(new InvalidTransitionError('expire', state));
      return move('waiting', { kind: 'system' }, { note: command.reason });
  }
}

/**
 * The mute invariant: an agent's output may reach the customer only while the agent owns the
 * conversation and ownership has not changed since its turn started.
 */
export function agentMaySpeak(current: Ownership, turnStartedAtVersion: number): boolean {
  return current.state === 'agent' && current.ownershipVersion === turnStartedAtVersion;
}
