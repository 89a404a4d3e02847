/**
 * Where each conversation lives in Slack, kept in the store (`kv('slack')`) so any instance can
 * find it: the thread root, the briefing copies and managers' cards (for later `chat.update`s),
 * and the reverse map from a Slack thread (channel + thread_ts) back to the conversation. Plain
 * state, not a record of work: what was delivered is the delivery core's cursor.
 */
import { RecentMap } from '../../src/recent-map.ts';
import type { KeyValue } from '../../src/store/store.ts';
import type { PostedRef } from './api.ts';

/** One posted copy of a briefing. */
export interface BriefingCopy extends PostedRef {
  /** Which escalation of the conversation it belongs to (1 for the first). */
  escalation: number;
  /** `thread`: inside the conversation's thread (broadcast to the channel); `queue`: top level in a queue channel. */
  place: 'thread' | 'queue';
  /** Replaced by a newer briefing; its buttons are gone. */
  superseded?: boolean;
}

/** One posted managers' card. */
export interface ManagersCardRef extends PostedRef {
  /** Which escalation it was posted for. */
  escalation: number;
  /** Its metadata key (`managers:<conversation>:<escalation>`, `:<n>` for a later step of the same escalation). */
  key: string;
  /** The work item that posted it (the delivery attempt's key). */
  work: string;
  /** The thread link it shows. */
  threadLink?: string;
  /** A newer escalation replaced it: no longer refreshed. */
  done?: boolean;
}

/** Thread roots kept per instance, for the conversations mirrored lately. */
const ROOTS_KEPT = 256;

export class SlackDirectory {
  /**
   * Roots read or recorded lately, most recent last. A root is recorded once, when its thread
   * opens, and never replaced, so a kept copy stays right: each mirror skips a store read.
   */
  private readonly roots = new RecentMap<string, Readonly<PostedRef>>(ROOTS_KEPT);

  constructor(private readonly kv: KeyValue) {}

  /** The conversation's thread root, if the thread was opened. */
  async thread(conversationId: string): Promise<PostedRef | undefined> {
    const kept = this.roots.get(conversationId);
    if (kept) return kept;
    const root = await this.kv.get<PostedRef>(`thread:${conversationId}`);
    if (root) this.roots.set(conversationId, Object.freeze(root));
    return root;
  }

  /** Links the root first: once the thread is recorded, replies in it are always recognised. */
  async setThread(conversationId: string, root: PostedRef): Promise<void> {
    await this.link(root, conversationId);
    await this.kv.set(`thread:${conversationId}`, root);
    this.roots.set(conversationId, Object.freeze({ ...root }));
  }

  briefings(conversationId: string): Promise<BriefingCopy[]> {
    return this.kv.get<BriefingCopy[]>(`briefings:${conversationId}`).then((list) => list ?? []);
  }

  /** Written only by the delivery worker holding the conversation's `slack` lease, so this read-modify-write does not race. */
  async setBriefings(conversationId: string, copies: BriefingCopy[]): Promise<void> {
    await this.kv.set(`briefings:${conversationId}`, copies);
  }

  managersCards(conversationId: string): Promise<ManagersCardRef[]> {
    return this.kv.get<ManagersCardRef[]>(`managers:${conversationId}`).then((list) => list ?? []);
  }

  /** Written only by the delivery worker holding the conversation's `slack` lease, like the briefings. */
  async setManagersCards(conversationId: string, cards: ManagersCardRef[]): Promise<void> {
    await this.kv.set(`managers:${conversationId}`, cards);
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
