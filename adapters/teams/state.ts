/**
 * What the Teams adapter remembers, in the store's `teams` area: each conversation's thread (root and
 * briefing activity ids), the reverse map from a Teams thread to the conversation, a ledger of every
 * outbound message (so nothing is posted twice), and operators' profiles for private messages.
 */
import type { KeyValue } from '../../src/store/store.ts';

/** A conversation's thread in a Teams channel. */
export interface ThreadRecord {
  conversationId: string;
  channelId: string;
  serviceUrl: string;
  /** `<channel id>;messageid=<root activity id>`: replies go here, thread messages arrive from here. */
  threadId: string;
  rootActivityId: string;
  /** Briefing cards posted in the thread, oldest first; only the last one has live buttons. */
  briefings: Array<{ activityId: string; postedAt: string }>;
}

/**
 * One outbound message. `sending` is written before the request and `sent` after, so a crash or an
 * ambiguous failure in between leaves `sending`/`uncertain`, and the message is not posted again.
 */
export interface SentRecord {
  state: 'sending' | 'sent' | 'uncertain';
  activityId?: string;
  at: string;
  error?: string;
}

/** A Teams user who acted in a thread; enough to open a 1:1 chat with them. */
export interface OperatorProfile {
  userId: string;
  name: string;
  aadObjectId?: string;
  tenantId?: string;
  serviceUrl?: string;
}

/** The bot's own account in Teams (`28:<app id>`), learned from inbound activities. */
export interface BotAccount {
  id: string;
  name?: string;
}

const LEDGER_TTL_MS = 90 * 24 * 3600 * 1000;

/** `19:x@thread.tacv2;messageid=123` → the same id, normalized for lookups. */
export function threadKey(conversationId: string): string | undefined {
  const match = /^(.+?);messageid=(\d+)/i.exec(conversationId.trim());
  return match ? `${match[1]};messageid=${match[2]}` : undefined;
}

/** The thread id for replies to a channel root: `<channel conversation id>;messageid=<root activity id>`. */
export function threadIdFor(channelConversationId: string, rootActivityId: string): string {
  const base = channelConversationId.split(';')[0]!;
  return `${base};messageid=${rootActivityId}`;
}

export class TeamsState {
  constructor(private readonly kv: KeyValue) {}

  thread(conversationId: string): Promise<ThreadRecord | undefined> {
    return this.kv.get<ThreadRecord>(`thread:${conversationId}`);
  }

  async saveThread(record: ThreadRecord): Promise<void> {
    await this.kv.set(`thread:${record.conversationId}`, record);
    const key = threadKey(record.threadId);
    if (key) await this.kv.set(`by-thread:${key}`, record.conversationId);
  }

  /** The conversation whose thread an inbound Teams conversation id belongs to. */
  async conversationForThread(teamsConversationId: string): Promise<string | undefined> {
    const key = threadKey(teamsConversationId);
    return key ? this.kv.get<string>(`by-thread:${key}`) : undefined;
  }

  sent(conversationId: string, key: string): Promise<SentRecord | undefined> {
    return this.kv.get<SentRecord>(`sent:${conversationId}:${key}`);
  }

  async markSent(conversationId: string, key: string, record: SentRecord): Promise<void> {
    await this.kv.set(`sent:${conversationId}:${key}`, record, LEDGER_TTL_MS);
  }

  async forgetSent(conversationId: string, key: string): Promise<void> {
    await this.kv.delete(`sent:${conversationId}:${key}`);
  }

  operator(userId: string): Promise<OperatorProfile | undefined> {
    return this.kv.get<OperatorProfile>(`operator:${userId}`);
  }

  async rememberOperator(profile: OperatorProfile): Promise<void> {
    const known = await this.operator(profile.userId);
    if (known && JSON.stringify(known) === JSON.stringify({ ...known, ...profile })) return;
    await this.kv.set(`operator:${profile.userId}`, { ...known, ...profile });
  }

  directChat(userId: string): Promise<string | undefined> {
    return this.kv.get<string>(`dm:${userId}`);
  }

  async saveDirectChat(userId: string, conversationId: string): Promise<void> {
    await this.kv.set(`dm:${userId}`, conversationId);
  }

  bot(): Promise<BotAccount | undefined> {
    return this.kv.get<BotAccount>('bot');
  }

  async rememberBot(account: BotAccount): Promise<void> {
    const known = await this.bot();
    if (known?.id === account.id && known.name === account.name) return;
    await this.kv.set('bot', account);
  }
}
