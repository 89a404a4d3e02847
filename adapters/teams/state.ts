/**
 * What the Teams adapter remembers, in the store's `teams` area: each conversation's thread (root and
 * briefing activity ids, and the briefing copies posted in other queues' channels), the reverse maps
 * from a Teams thread (or a copy's own thread) to the conversation, the activity id
 * each mirrored message got, the managers' alerts and digests posted, and operators' profiles for
 * private messages. Plain state: what is
 * still to be sent lives in the delivery core's work log, and which inbound activities were acted
 * on is recorded by the bridge with each change (idempotency keys), not here.
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
  briefings: BriefingRecord[];
  /**
   * Copies of briefings posted in the channel of the queue they are for, when that is not this
   * thread's channel (after a transfer), oldest first. Absent on records from before copies were kept.
   */
  queueCopies?: QueueCopyRecord[];
}

/** One briefing posted in the thread, recorded right after Teams accepted it. */
export interface BriefingRecord {
  activityId: string;
  postedAt: string;
  /** Which escalation it briefs (1 for the first). Absent on records from before it was kept. */
  escalation?: number;
  /** The short text message posted because Teams refused the card: there is no card to edit. */
  fallback?: boolean;
  /** Its buttons were removed because a newer briefing replaced it. */
  superseded?: boolean;
}

/**
 * A copy of a briefing posted as a thread of its own in its queue's channel (the conversation's
 * thread lives in another channel), recorded right after Teams accepted it. Its buttons act on the
 * conversation; only the current escalation's copy has live ones.
 */
export interface QueueCopyRecord extends BriefingRecord {
  escalation: number;
  queue: string;
  channelId: string;
  /** `<queue channel>;messageid=<activity id>`: the copy's own thread, where clicks on it come from. */
  threadId: string;
  serviceUrl: string;
}

/** A Teams user who acted in a thread; enough to open a 1:1 chat with them. */
export interface OperatorProfile {
  userId: string;
  name: string;
  aadObjectId?: string;
  tenantId?: string;
  /** Only from an authenticated activity, and only a Teams service URL (see `trustedServiceUrl`). */
  serviceUrl?: string;
}

/** The bot's own account in Teams (`28:<app id>`), learned from inbound activities. */
export interface BotAccount {
  id: string;
  name?: string;
}

/** One managers' alert (a thread of its own in the managers' channel), recorded right after Teams accepted it. */
export interface ManagersAlertRecord {
  conversationId: string;
  /** The escalation it alerts about (1 for the first): one alert per escalation. */
  escalation: number;
  /** The alert card's activity id (the root of its thread). */
  activityId: string;
  /** `<managers channel>;messageid=<activity id>`: where clicks on it come from. */
  threadId: string;
  serviceUrl: string;
  postedAt: string;
  /** Nothing on it changes any more: an earlier escalation's alert, or a text alert (no card to edit). */
  final?: boolean;
}

/** The daily digest posted for one date. */
export interface DigestRecord {
  activityId: string;
  threadId: string;
  postedAt: string;
}

/** What the bot's activities say about where it works (for deep links). */
export interface TeamInfo {
  tenantId?: string;
  /** Channel id → its team's Microsoft 365 group id (`channelData.team.aadGroupId`). */
  groups?: Record<string, string>;
}

/** Alerts kept per conversation: older ones are final and never edited again. */
const MAX_ALERTS = 10;

/** How long a digest's record is kept: only a second post of the same day reads it. */
const DIGEST_TTL_MS = 30 * 24 * 3600 * 1000;

/** How long a mirrored message's activity id is kept: only a retry of its delivery reads it. */
const POSTED_TTL_MS = 30 * 24 * 3600 * 1000;

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

  /** Clicks and replies on a briefing copy (its own thread in a queue channel) belong to `conversationId`. */
  async linkQueueCopy(copy: Pick<QueueCopyRecord, 'threadId' | 'escalation'>, conversationId: string): Promise<void> {
    const key = threadKey(copy.threadId);
    if (key) await this.kv.set(`by-copy:${key}`, { conversationId, escalation: copy.escalation });
  }

  /** The conversation (and escalation) whose briefing copy an inbound Teams conversation id is the thread of. */
  async queueCopyFor(teamsConversationId: string): Promise<{ conversationId: string; escalation: number } | undefined> {
    const key = threadKey(teamsConversationId);
    return key ? this.kv.get<{ conversationId: string; escalation: number }>(`by-copy:${key}`) : undefined;
  }

  /** The Teams activity id a message got when it was mirrored, if that was recorded. */
  posted(conversationId: string, key: string): Promise<string | undefined> {
    return this.kv.get<string>(`posted:${conversationId}:${key}`);
  }

  async recordPosted(conversationId: string, key: string, activityId: string): Promise<void> {
    await this.kv.set(`posted:${conversationId}:${key}`, activityId, POSTED_TTL_MS);
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

  /** The managers' alerts posted for a conversation, oldest first. */
  async managersAlerts(conversationId: string): Promise<ManagersAlertRecord[]> {
    return (await this.kv.get<ManagersAlertRecord[]>(`managers:${conversationId}`)) ?? [];
  }

  /** Records a posted alert (and where clicks on it come from). */
  async recordManagersAlert(record: ManagersAlertRecord): Promise<void> {
    const key = threadKey(record.threadId);
    if (key) await this.kv.set(`by-managers:${key}`, { conversationId: record.conversationId, escalation: record.escalation });
    const known = (await this.managersAlerts(record.conversationId)).filter((r) => r.escalation !== record.escalation);
    await this.kv.set(`managers:${record.conversationId}`, [...known, record].slice(-MAX_ALERTS));
  }

  /** Marks alerts as final (shown as an earlier escalation's). */
  async finalizeManagersAlerts(conversationId: string, activityIds: Set<string>): Promise<void> {
    const records = await this.managersAlerts(conversationId);
    await this.kv.set(`managers:${conversationId}`, records.map((r) => (activityIds.has(r.activityId) ? { ...r, final: true } : r)));
  }

  /** The conversation (and escalation) whose alert an inbound Teams conversation id is the thread of. */
  async managersAlertFor(teamsConversationId: string): Promise<{ conversationId: string; escalation: number } | undefined> {
    const key = threadKey(teamsConversationId);
    return key ? this.kv.get<{ conversationId: string; escalation: number }>(`by-managers:${key}`) : undefined;
  }

  digest(date: string): Promise<DigestRecord | undefined> {
    return this.kv.get<DigestRecord>(`digest:${date}`);
  }

  async recordDigest(date: string, record: DigestRecord): Promise<void> {
    await this.kv.set(`digest:${date}`, record, DIGEST_TTL_MS);
  }

  team(): Promise<TeamInfo | undefined> {
    return this.kv.get<TeamInfo>('team');
  }

  async rememberTeam(info: { tenantId?: string; channelId?: string; groupId?: string }): Promise<void> {
    const known = await this.team();
    const merged: TeamInfo = {
      ...known,
      ...(info.tenantId ? { tenantId: info.tenantId } : {}),
      ...(info.channelId && info.groupId ? { groups: { ...known?.groups, [info.channelId]: info.groupId } } : {}),
    };
    if (known && JSON.stringify(known) === JSON.stringify(merged)) return;
    await this.kv.set('team', merged);
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
