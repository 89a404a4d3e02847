/**
 * What the workspace contract suite needs from a platform, so the same scenarios run against
 * Slack, Teams and the console and they cannot drift. Each driver boots the real adapter (against
 * its loopback platform emulator, or the console's own HTTP and WebSocket) and acts as the platform
 * would (signed events, button clicks, invokes, the console page's API calls).
 */
import type { Bridge } from '../../src/bridge.ts';
import type { Agent } from '../../src/agent/agent.ts';
import type { MemoryChannel } from '../support/memory-ports.ts';

export interface ContractOperator {
  /** Platform user id (Slack `U...`, Teams `29:...`, the console's configured id). */
  userId: string;
  name: string;
}

export interface WorkspaceDriver {
  readonly name: 'slack' | 'teams' | 'console';
  /**
   * Boots emulator + bridge (with `agent`) + adapter, wired as src/app.ts wires it: the adapter gets
   * `redactedPort(bridge, bridge.redactor)`, so it reads conversations only as redacted copies.
   * `customer` records what the customer saw.
   */
  start(agent: Agent): Promise<{ bridge: Bridge; customer: MemoryChannel }>;
  stop(): Promise<void>;
  /** Texts of every message the adapter posted into the conversation's thread (root excluded), in order. */
  threadTexts(conversationId: string): Promise<string[]>;
  /** Latest rendering of every briefing card for the conversation, serialized as JSON text. */
  briefingCards(conversationId: string): Promise<string[]>;
  /** Latest rendering of the thread root, serialized as JSON text. */
  rootCard(conversationId: string): Promise<string>;
  /** Click Claim on the briefing as `operator`; resolves once the platform request was answered. */
  clickClaim(conversationId: string, operator: ContractOperator): Promise<void>;
  /** Click an option button on the briefing. */
  clickOption(conversationId: string, operator: ContractOperator, optionId: string): Promise<void>;
  /** Post a reply in the conversation's thread as `operator`. */
  replyInThread(conversationId: string, operator: ContractOperator, text: string): Promise<void>;
  /** Hand the conversation back with a note, the platform's usual way (Slack `/return`, Teams `return` command, the console's Return dialog). */
  returnWithNote(conversationId: string, operator: ContractOperator, note: string): Promise<void>;
  /**
   * Reveal the masked values of one mirrored message as `operator`, the platform's way: the Reveal
   * button on that message in the thread (Slack block action, Teams Action.Submit, the console's
   * Reveal action). The original comes back privately (see `privateTexts`), never into the thread.
   */
  clickReveal(conversationId: string, operator: ContractOperator, messageId: string): Promise<void>;
  /**
   * Pick the agent that answers, the platform's way: Slack `/route <agent> [--pin] [note]` in the
   * thread's channel, Teams `route <agent> [--pin] [note]` typed in the thread, the console's Route action.
   */
  routeToAgent(conversationId: string, operator: ContractOperator, agent: string, options?: { note?: string; pin?: boolean }): Promise<void>;
  /** Texts told privately to an operator (ephemeral / targeted messages). */
  privateTexts(operator: ContractOperator): Promise<string[]>;
  /** Resolves when the adapter has nothing queued for the platform. */
  settle(): Promise<void>;
}
