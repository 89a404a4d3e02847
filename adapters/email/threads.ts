/**
 * The email channel's own records in `store.kv('email')`: each conversation's mail thread
 * (authoritative; mirrored into `conversation.channelData.email` for everyone else to read) and
 * the lookups that route replies: Message-ID -> conversation, reply token -> conversation.
 */
import type { KeyValue, Store } from '../../src/store/store.ts';
import type { EmailThread } from './compose.ts';

export class EmailThreads {
  constructor(
    private readonly kv: KeyValue,
    private readonly store: Pick<Store, 'withLock'>,
  ) {}

  /** The conversation's mail thread, if the channel has seen it. */
  get(conversationId: string): Promise<EmailThread | undefined> {
    return this.kv.get<EmailThread>(`thread:${conversationId}`);
  }

  /**
   * Read-modify-write of one conversation's thread under a lock, so an inbound reply and an
   * outbound message recorded at the same moment cannot drop each other's Message-ID.
   */
  update(conversationId: string, change: (current: EmailThread | undefined) => EmailThread): Promise<EmailThread> {
    return this.store.withLock(`email:thread:${conversationId}`, async () => {
      const next = change(await this.get(conversationId));
      await this.kv.set(`thread:${conversationId}`, next);
      return next;
    });
  }

  conversationForMessageId(messageId: string): Promise<string | undefined> {
    return this.kv.get<string>(`mid:${messageId}`);
  }

  async rememberMessageIds(conversationId: string, messageIds: Iterable<string>): Promise<void> {
    for (const id of messageIds) await this.kv.set(`mid:${id}`, conversationId);
  }

  conversationForToken(token: string): Promise<string | undefined> {
    return this.kv.get<string>(`token:${token.toLowerCase()}`);
  }

  rememberToken(conversationId: string, token: string): Promise<void> {
    return this.kv.set(`token:${token.toLowerCase()}`, conversationId);
  }
}
