/**
 * The ports the bridge drives. Adapters (adapters/) implement them; the bridge knows nothing else
 * about Slack, Teams, SMTP or WebSockets.
 *
 * Calls come from the delivery workers (src/delivery/): committed work, for one conversation in
 * order, at least once. A port that throws is retried later with backoff (only that conversation
 * waits); `RetryLaterError` sets the wait (a 429), `PermanentDeliveryError` skips the item. A port
 * makes a repeat harmless: when `attempt.count` > 1 an earlier attempt may have had its effect, so
 * it looks before doing it again (Slack metadata, a stable email Message-ID).
 */
import type { Conversation, HistoryEntry, Message, Operator, Origin } from './model.ts';

/** Which attempt at one work item this is. */
export interface DeliveryAttempt {
  /** Stable across every attempt at this item: a destination's idempotency key. */
  key: string;
  /** 1 for the first attempt; more means an earlier one may have happened without being recorded. */
  count: number;
  /** When the first attempt started (epoch ms): where to start looking for an earlier effect. */
  since: number;
  /** Aborted when this worker lost its lease or is stopping. */
  signal?: AbortSignal;
}

/** The first attempt, for callers outside the delivery workers (tests, direct calls). */
export const FIRST_ATTEMPT: DeliveryAttempt = { key: 'direct', count: 1, since: 0 };

/** Delivers to the customer, in the channel the conversation came from. */
export interface CustomerChannel {
  readonly origin: Origin;
  /**
   * A live view of the transcript (web chat): every instance running the channel shows its own
   * connections what each commit added, from the change feed, so commits make no delivery work
   * for its conversations. Otherwise each public message is a work item handed to `deliver`.
   */
  readonly live?: boolean;
  /**
   * Deliver one public message: an agent reply, an operator reply (author.name is the operator's
   * display name) or a status notice (`message.notice` is set, author.role is `system`).
   */
  deliver(conversation: Conversation, message: Message, attempt?: DeliveryAttempt): Promise<void>;
}

/** An operator workspace (Slack, Teams) that mirrors conversations into threads. */
export interface Workspace {
  /** Short name, also the prefix of its operators' ids: `slack`, `teams`. */
  readonly name: string;
  /**
   * Mirror one transcript message (customer, agent, operator, internal note, system notice)
   * into the conversation's thread, opening the thread on first use.
   */
  mirror(conversation: Conversation, message: Message, attempt?: DeliveryAttempt): Promise<void>;
  /** A new escalation: post the briefing card built from `conversation.briefing`. */
  postBriefing(conversation: Conversation, attempt?: DeliveryAttempt): Promise<void>;
  /** Ownership changed (claim, decide, return, close...): refresh the thread root and every briefing copy. */
  ownershipChanged(conversation: Conversation, change: HistoryEntry, attempt?: DeliveryAttempt): Promise<void>;
  /** An unclaimed escalation waited too long: a short card in the managers' channel (ticket, wait, reason, link, Claim). Optional: a workspace without a managers' channel leaves it out. */
  postToManagers?(conversation: Conversation, attempt?: DeliveryAttempt): Promise<void>;
  /** The managers' daily digest (escalation rate against the target, time to claim, fallbacks...). Optional. */
  postDigest?(digest: import('./engine/digest.ts').Digest): Promise<void>;
  /** Tell one operator something privately (ephemeral on Slack, a 1:1 or targeted message on Teams). */
  notifyOperator(operator: Operator, text: string, conversation?: Conversation, attempt?: DeliveryAttempt): Promise<void>;
}

/** Something with a lifecycle that main.ts starts and stops (adapters, servers). */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Finish in-flight work, then stop. */
  stop(): Promise<void>;
}

/**
 * The engine's inbound port: what adapters may ask of the bridge. Commands take the platform's id
 * for the request (`idempotencyKey`): it is recorded in the same commit as the change, so a
 * platform's retry after a crash goes through and a retry after the commit changes nothing. Adapters depend on this, never
 * on the `Bridge` class; `store` is narrowed to what adapters keep for themselves.
 */
export interface BridgePort {
  readonly logger: import('./log.ts').Logger;
  /** Adapters' own data (thread ids, sessions, profiles), locks and the change feed. */
  readonly store: Pick<import('./store/store.ts').Store, 'backend' | 'kv' | 'withLock' | 'once' | 'forget' | 'increment' | 'onChange' | 'getConversation'>;
  /** Longest text accepted from a customer or operator; channels shorten to fit. */
  readonly maxMessageChars: number;
  customerMessage(input: import('./bridge.ts').CustomerMessageInput): Promise<{ conversation: Conversation; message: Message | undefined; duplicate: boolean }>;
  operatorMessage(input: import('./bridge.ts').OperatorMessageInput): Promise<{ conversation: Conversation; message: Message | undefined; delivered: boolean; duplicate: boolean }>;
  internalNote(input: { conversationId: string; text: string }): Promise<Message>;
  claim(input: { conversationId: string; operator: Operator; idempotencyKey?: string }): Promise<Conversation>;
  takeOver(input: { conversationId: string; operator: Operator; idempotencyKey?: string }): Promise<Conversation>;
  decide(input: { conversationId: string; operator: Operator; optionId: string; note?: string; escalation?: number; idempotencyKey?: string }): Promise<Conversation>;
  returnToAgent(input: { conversationId: string; operator: Operator; note?: string; idempotencyKey?: string }): Promise<Conversation>;
  release(input: { conversationId: string; operator: Operator; idempotencyKey?: string }): Promise<Conversation>;
  transfer(input: { conversationId: string; operator: Operator; to: Operator; idempotencyKey?: string }): Promise<Conversation>;
  close(input: { conversationId: string; operator?: Operator; note?: string; idempotencyKey?: string }): Promise<Conversation>;
  /** Moves the conversation to another queue: a new escalation in that queue's channel (`/transfer <queue> [note]`). */
  transferQueue(input: { conversationId: string; operator: Operator; queue: string; note?: string; idempotencyKey?: string }): Promise<Conversation>;
  getConversation(id: string): Promise<Conversation | undefined>;
  findByTicket(ticket: string): Promise<Conversation | undefined>;
  conversationsHeldBy(operatorId: string): Promise<Conversation[]>;
  /** Every conversation now in `state` (the live queue: `waiting`, `human`), oldest change first. */
  conversationsIn(state: import('./model.ts').OwnershipState): Promise<Conversation[]>;
  /** The day's figures for the managers' view (UTC date, YYYY-MM-DD). */
  digest(date: string): Promise<import('./engine/digest.ts').Digest>;
  updateChannelData(conversationId: string, channel: string, data: Record<string, unknown>): Promise<Conversation>;
  /** The owner sees the masked values of one message: returned privately (never posted), logged in the history. */
  reveal(input: import('./engine/redact.ts').RevealInput): Promise<import('./engine/redact.ts').RevealResult>;
  /** The configured agents an operator may route to (several agents configured); empty when one agent runs. */
  agentNames(): readonly string[];
  /** An operator picks the agent that answers (several agents configured); `pin` keeps it there. */
  route(input: import('./agent/handoff-history.ts').RouteInput): Promise<Conversation>;
  openConversation(input: { origin: Origin; customer: import('./model.ts').Customer; subject?: string; channelData?: Record<string, unknown> }): Promise<Conversation>;
}
