/**
 * Where each conversation lives in Slack, kept in the store (`kv('slack')`) so any instance can
 * find it: the thread root, the briefing copies, and the reverse map from a Slack thread
 * (channel + thread_ts) back to the conversation.
 */
import type { KeyValue } from '../../src/store/store.ts';
import type { PostedRef } from './outbox.ts';

/** One posted copy of a briefing. */
export interface BriefingCopy extends PostedRef {
  /** Which escalation of the conversation it belongs to (1 for the first). */
  escalation: number;
  /** `thread`: inside the conversation's thread (broadcast to the channel); `queue`: top level in a queue channel. */
  place: 'thread' | 'queue';
  /** Replaced by a newer briefing; its buttons are gone. */
  superseded?: boolean;
}

/** How far a conversation's thread is known complete: every mirrorable transcript message up to `index` was posted. */
export interface MirrorMark {
  index: number;
  /** The id of the message at `index`, to check the mark against the transcript. */
  id: string;
}

export class SlackDirectory {
  constructor(private readonly kv: KeyValue) {}

  /** The conversation's thread root, if the thread was opened. */
  thread(conversationId: string): Promise<PostedRef | undefined> {
    return this.kv.get<PostedRef>(`thread:${conversationId}`);
  }

  async setThread(conversationId: string, root: PostedRef): Promise<void> {
    await this.kv.set(`thread:${conversationId}`, root);
    await this.link(root, conversationId);
  }

  briefings(conversationId: string): Promise<BriefingCopy[]> {
    return this.kv.get<BriefingCopy[]>(`briefings:${conversationId}`).then((list) => list ?? []);
  }

  /** Callers hold the conversation's Slack lane, so this read-modify-write does not race. */
  async setBriefings(conversationId: string, copies: BriefingCopy[]): Promise<void> {
    await this.kv.set(`briefings:${conversationId}`, copies);
  }

  /** The index in `messages` up to which the thread is known complete; -1 when nothing is known. */
  async mirroredUpTo(conversationId: string, messages: ReadonlyArray<{ id: string }>): Promise<number> {
    const mark = await this.kv.get<MirrorMark>(`mirrored:${conversationId}`);
    if (!mark) return -1;
    if (messages[mark.index]?.id === mark.id) return mark.index;
    // The transcript only grows, so this should not happen; find the message by id rather than trust the index.
    return messages.findIndex((m) => m.id === mark.id);
  }

  /** Callers hold the conversation's Slack lane. */
  async setMirroredUpTo(conversationId: string, mark: MirrorMark): Promise<void> {
    await this.kv.set(`mirrored:${conversationId}`, mark);
  }

  /** Replies under `message` (a root or a briefing copy) belong to `conversationId`. */
  link(message: PostedRef, conversationId: string): Promise<void> {
    return this.kv.set(`conv:${message.channel}:${message.ts}`, conversationId);
  }

  /** The conversation a Slack thread (or top-level message) belongs to. */
  conversationAt(channel: string, ts: string): Promise<string | undefined> {
    return this.kv.get<string>(`conv:${channel}:${ts}`);
  }
}
