/**
 * Typed errors. Each carries what the caller needs to act on it
 * (who holds the claim, which variable is wrong), so adapters can show it as is.
 */
import type { Operator, OwnershipState } from './model.ts';

export class BridgeError extends Error {
  /** Machine-readable code for adapters and logs. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A command that the conversation's current state does not allow. */
export class InvalidTransitionError extends BridgeError {
  constructor(
    readonly command: string,
    readonly state: OwnershipState,
    detail?: string,
  ) {
    super('invalid_transition', detail ?? `Cannot ${command} a conversation that is ${describeState(state)}.`);
  }
}

/** A claim (or take-over) on a conversation another operator already holds. */
export class AlreadyClaimedError extends BridgeError {
  constructor(readonly holder: Operator, readonly ticket?: string) {
    super('already_claimed', `${ticket ? ticket + ' is' : 'This conversation is'} already held by ${holder.name}.`);
  }
}

/** An operator acting on a conversation someone else holds. */
export class NotOwnerError extends BridgeError {
  constructor(readonly operator: Operator, readonly holder: Operator | undefined, command: string) {
    super(
      'not_owner',
      holder
        ? `Only ${holder.name}, who holds this conversation, can ${command} it.`
        : `Nobody holds this conversation, so you cannot ${command} it.`,
    );
  }
}

export class UnknownOptionError extends BridgeError {
  constructor(readonly optionId: string, readonly known: string[]) {
    super('unknown_option', `No option "${optionId}" on this briefing (options: ${known.join(', ') || 'none'}).`);
  }
}

export class ConversationNotFoundError extends BridgeError {
  constructor(readonly conversationId: string) {
    super('not_found', `No conversation ${conversationId}.`);
  }
}

/** Input rejected at a boundary (oversized text, malformed payload). */
export class InputError extends BridgeError {
  constructor(message: string) {
    super('bad_input', message);
  }
}

/** The store could not be reached or refused a write; nothing was changed. */
export class StoreUnavailableError extends BridgeError {
  constructor(message: string, override readonly cause?: unknown) {
    super('store_unavailable', message);
  }
}

/** The lock on a conversation could not be taken in time (another instance holds it). */
export class LockTimeoutError extends BridgeError {
  constructor(readonly key: string) {
    super('lock_timeout', `Timed out waiting for the lock on ${key}; try again.`);
  }
}

/** A configuration value is missing or wrong; the message names the variable and what it expects. */
export class ConfigError extends BridgeError {
  constructor(readonly variable: string, expected: string) {
    super('config', `${variable}: ${expected}`);
  }
}

/** The model did something the runtime cannot use (bad tool arguments, empty answer). */
export class ModelBehaviorError extends BridgeError {
  constructor(message: string) {
    super('model_behavior', message);
  }
}

export function describeState(state: OwnershipState): string {
  switch (state) {
    case 'agent':
      return 'with the agent';
    case 'waiting':
      return 'waiting for a person';
    case 'human':
      return 'held by an operator';
    case 'closed':
      return 'closed';
  }
}

/** A commit lost a race: the conversation changed since it was read. Nothing was written; retry from a fresh read. */
export class VersionConflictError extends BridgeError {
  constructor(readonly conversationId: string, readonly expected: number, readonly actual: number | undefined) {
    super('version_conflict', `Conversation ${conversationId} changed meanwhile (expected version ${expected}, found ${actual ?? 'none'}).`);
  }
}

/** An inbound event, email or frame that was already committed. Nothing was written. */
export class DuplicateInboundError extends BridgeError {
  constructor(readonly key: string, readonly conversationId: string | undefined) {
    super('duplicate_inbound', `Already received (${key}).`);
  }
}

/** A worker's lease on a conversation's work expired and another worker took it; this worker must stop. */
export class LeaseLostError extends BridgeError {
  constructor(readonly destination: string, readonly conversationId: string) {
    super('lease_lost', `Lost the ${destination} lease on ${conversationId}; another worker has it.`);
  }
}

/** A button from an older briefing: the conversation escalated again since, so it decides nothing. */
export class StaleBriefingError extends BridgeError {
  constructor(readonly clicked: number, readonly current: number) {
    super('stale_briefing', `That card is from an earlier escalation (${clicked}); the current briefing is number ${current}. Use the newest card.`);
  }
}

/** A message to a conversation that is closed, from a channel where a closed conversation stays closed. */
export class ConversationClosedError extends BridgeError {
  constructor(readonly conversationId: string, readonly ticket: string) {
    super('conversation_closed', `${ticket} is closed.`);
  }
}

/** A claim on an escalation offered first to the operator who helped this customer before. */
export class OfferedToOtherError extends BridgeError {
  constructor(readonly holder: Operator, readonly until: string, readonly ticket: string) {
    super('offered_to_other', `${ticket} is offered first to ${holder.name}, who helped this customer before, until ${until.slice(11, 16)} UTC.`);
  }
}
