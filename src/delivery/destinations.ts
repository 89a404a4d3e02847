/**
 * The ports as destinations: work items become calls to the customer's channel and to each
 * workspace. The ports stay small (deliver, mirror, postBriefing, ...); the worker gives them
 * order, retries, leases, and the attempt count they need to avoid doing a thing twice.
 */
import { CUSTOMER } from '../engine/commit.ts';
import { escalationCount } from '../engine/rules.ts';
import type { Conversation, Message } from '../model.ts';
import type { CustomerChannel, DeliveryAttempt, Workspace } from '../ports.ts';
import type { WorkItem } from '../store/store.ts';
import type { Destination, WorkContext } from './worker.ts';

function attemptOf(context: WorkContext): DeliveryAttempt {
  return { key: `${context.conversation.id}:${context.attempt.seq}`, count: context.attempt.count, since: context.attempt.since, signal: context.signal };
}

function messageOf(conversation: Conversation, id: string): Message | undefined {
  for (let i = conversation.messages.length - 1; i >= 0; i--) if (conversation.messages[i]!.id === id) return conversation.messages[i];
  return undefined;
}

/**
 * The customer's side: each conversation's public messages go to the channel it came from. A live
 * channel (web chat) gets none from commits, only items stored by earlier versions.
 */
export class CustomerDestination implements Destination {
  readonly name = CUSTOMER;

  constructor(private readonly channels: () => CustomerChannel[]) {}

  /** A web chat frame shown twice is shown once (each socket remembers what it showed); email needs the record. */
  recordsAttempts(_item: WorkItem, conversation: Conversation): boolean {
    return conversation.origin !== 'webchat' && conversation.origin !== 'api';
  }

  async handle(item: WorkItem, context: WorkContext): Promise<void> {
    if (item.payload.kind !== 'deliver') return;
    const { conversation } = context;
    const message = messageOf(conversation, item.payload.messageId);
    // Internal text never reaches a customer, whatever asked for it.
    if (!message || message.visibility !== 'public') return;
    const channel = this.channels().find((ch) => ch.origin === conversation.origin);
    if (!channel) {
      if (conversation.origin === 'api') return; // API conversations are read over the API: nothing to push
      // The channel is off on this instance (or not started yet): the work waits for one that has it.
      throw new Error(`No ${conversation.origin} channel runs here to deliver to the customer.`);
    }
    await channel.deliver(conversation, message, attemptOf(context));
  }
}

/** One operator workspace (Slack, Teams): mirroring, briefings, card refreshes, private notices. */
export class WorkspaceDestination implements Destination {
  readonly name: string;
  /** Threads and cards are not on the customer's path: their attempt records share other writes' fsync. */
  readonly patient = true;

  constructor(
    private readonly workspace: Workspace,
    private readonly onStuck?: (conversation: Conversation, item: WorkItem, workspace: string) => Promise<void>,
  ) {
    this.name = workspace.name;
  }

  async handle(item: WorkItem, context: WorkContext): Promise<void> {
    const { conversation } = context;
    const attempt = attemptOf(context);
    const payload = item.payload;
    switch (payload.kind) {
      case 'mirror': {
        const message = messageOf(conversation, payload.messageId);
        if (message) await this.workspace.mirror(conversation, message, attempt);
        return;
      }
      case 'briefing':
        return this.workspace.postBriefing(conversation, attempt);
      case 'managers':
        // A newer escalation has its own ladder: this one's managers step is moot.
        if (payload.escalation !== escalationCount(conversation)) return;
        return this.workspace.postToManagers?.(conversation, attempt);
      case 'ownership':
        return this.workspace.ownershipChanged(conversation, payload.change, attempt);
      case 'notify':
        return this.workspace.notifyOperator(payload.operator, payload.text, conversation, attempt);
      default:
        return;
    }
  }

  /** A briefing that keeps failing must not leave the customer waiting on a promise nobody sees. */
  async stuck(item: WorkItem, context: WorkContext): Promise<void> {
    if (item.payload.kind === 'briefing' && this.onStuck) await this.onStuck(context.conversation, item, this.name);
  }
}
