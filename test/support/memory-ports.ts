/**
 * In-memory customer channel and workspace: they record what the bridge sent them,
 * so whole flows can be proven without any platform.
 */
import type { Conversation, HistoryEntry, Message, Operator, Origin } from '../../src/model.ts';
import type { CustomerChannel, Workspace } from '../../src/ports.ts';

export class MemoryChannel implements CustomerChannel {
  readonly delivered: Array<{ conversationId: string; message: Message; state: Conversation['state'] }> = [];
  constructor(readonly origin: Origin = 'api') {}
  async deliver(conversation: Conversation, message: Message): Promise<void> {
    this.delivered.push({ conversationId: conversation.id, message, state: conversation.state });
  }
  /** Texts the customer of one conversation saw, in order. */
  texts(conversationId: string): string[] {
    return this.delivered.filter((d) => d.conversationId === conversationId).map((d) => d.message.text);
  }
}

export class MemoryWorkspace implements Workspace {
  readonly mirrored: Array<{ conversationId: string; message: Message }> = [];
  readonly briefings: Array<{ conversationId: string; conversation: Conversation }> = [];
  readonly changes: Array<{ conversationId: string; change: HistoryEntry; state: Conversation['state'] }> = [];
  readonly notices: Array<{ operator: Operator; text: string }> = [];
  constructor(readonly name = 'test') {}
  async mirror(conversation: Conversation, message: Message): Promise<void> {
    this.mirrored.push({ conversationId: conversation.id, message });
  }
  async postBriefing(conversation: Conversation): Promise<void> {
    this.briefings.push({ conversationId: conversation.id, conversation });
  }
  async ownershipChanged(conversation: Conversation, change: HistoryEntry): Promise<void> {
    this.changes.push({ conversationId: conversation.id, change, state: conversation.state });
  }
  async notifyOperator(operator: Operator, text: string): Promise<void> {
    this.notices.push({ operator, text });
  }
}
