/**
 * The ports the bridge drives. Adapters (adapters/) implement them; the bridge knows nothing else
 * about Slack, Teams, SMTP or WebSockets.
 *
 * The bridge calls each port for one conversation in order (a per-conversation queue), after the
 * change is committed to the store. A port that throws is logged; the bridge's state is already
 * durable, so adapters own their own retries (outboxes, 429 back-off).
 */
import type { Conversation, HistoryEntry, Message, Operator, Origin } from './model.ts';

/** Delivers to the customer, in the channel the conversation came from. */
export interface CustomerChannel {
  readonly origin: Origin;
  /**
   * Deliver one public message: an agent reply, an operator reply (author.name is the operator's
   * display name) or a status notice (`message.notice` is set, author.role is `system`).
   */
  deliver(conversation: Conversation, message: Message): Promise<void>;
}

/** An operator workspace (Slack, Teams) that mirrors conversations into threads. */
export interface Workspace {
  /** Short name, also the prefix of its operators' ids: `slack`, `teams`. */
  readonly name: string;
  /**
   * Mirror one transcript message (customer, agent, operator, internal note, system notice)
   * into the conversation's thread, opening the thread on first use.
   */
  mirror(conversation: Conversation, message: Message): Promise<void>;
  /** A new escalation: post the briefing card built from `conversation.briefing`. */
  postBriefing(conversation: Conversation): Promise<void>;
  /** Ownership changed (claim, decide, return, close...): refresh the thread root and every briefing copy. */
  ownershipChanged(conversation: Conversation, change: HistoryEntry): Promise<void>;
  /** Tell one operator something privately (ephemeral on Slack, a 1:1 or targeted message on Teams). */
  notifyOperator(operator: Operator, text: string, conversation?: Conversation): Promise<void>;
}

/** Something with a lifecycle that main.ts starts and stops (adapters, servers). */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Finish in-flight work, then stop. */
  stop(): Promise<void>;
}
