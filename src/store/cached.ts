/**
 * A per-instance cache of conversations in front of a store, checked by version on every read.
 *
 * A read asks the store only "still version v?" and, when not, fetches just the messages after the
 * ones held (messages are append-only). So an exchange, which reads its conversation several
 * times (commit, agent turn, each destination), parses the transcript once instead of each time.
 * Commits made here refresh the entry at once.
 *
 * A caller that says which version it needs (`atLeast`) is answered from the cache without asking
 * the store when the entry is that new: a worker needs its items' version; a compare-and-set
 * commit needs any version, because a stale read only costs it a conflict and a fresh re-read.
 * Every other read is checked against the store, so several instances stay exactly as correct as
 * without the cache.
 *
 * Cached messages are frozen: they are shared by every copy handed out (each caller gets its own
 * header), so code that tried to change a message in place would fail loudly, not corrupt others.
 * A read-only reader (a delivery worker) gets the entry's one frozen view, header included: no copy.
 *
 * The change feed of a conversation this cache is committing is held until the cache has taken the
 * commit, so a listener that reads at once (the web chat's catch-up) is answered from the cache.
 */
import { deepFreeze } from '../deep-freeze.ts';
import { RecentMap } from '../recent-map.ts';
import type { Conversation, Message } from '../model.ts';
import { commitHeader, headerJson, type ChangeNotice, type Commit, type CommitResult, type KeyValue, type ReadOptions, type Store, type StoreWriteStats, type WorkQueue } from './store.ts';

/** Conversations kept per instance (least recently used are dropped first). */
export const DEFAULT_CACHE_SIZE = 1_000;

type Header = Omit<Conversation, 'messages' | 'version'>;

interface Entry {
  version: number;
  /**
   * The header as JSON (`headerJson`): each copy handed out is parsed from it (cheaper than a
   * structured clone). A commit's own (`Commit.header`, made by the committer) is kept as it is.
   */
  header: string;
  messages: readonly Message[];
}

/** Frozen views kept, for the conversations being worked on (idle conversations keep only their JSON). */
const VIEWS = 128;

export class CachedStore implements Store {
  private readonly entries: RecentMap<string, Entry>;
  /** Read-only views by conversation (at most VIEWS). */
  private readonly views = new RecentMap<string, Conversation>(VIEWS);
  private readonly listeners = new Set<(notice: ChangeNotice) => void>();
  private unsubscribeInner?: () => void;
  /** Conversations with a commit in flight here, and the notices heard for them meanwhile. */
  private readonly committing = new Map<string, { commits: number; held: ChangeNotice[] }>();
  readonly backend: string;
  readonly work: WorkQueue;

  constructor(
    readonly inner: Store,
    maxEntries = DEFAULT_CACHE_SIZE,
  ) {
    this.entries = new RecentMap(maxEntries);
    this.backend = inner.backend;
    this.work = inner.work;
  }

  /** `inner` behind a cache of `maxEntries` conversations, or `inner` itself when that is 0. */
  static wrap(inner: Store, maxEntries = DEFAULT_CACHE_SIZE): Store {
    return maxEntries > 0 ? new CachedStore(inner, maxEntries) : inner;
  }

  get size(): number {
    return this.entries.size;
  }

  get stats(): StoreWriteStats | undefined {
    return this.inner.stats;
  }

  async getConversation(id: string, options?: ReadOptions): Promise<Conversation | undefined> {
    const held = this.entries.peek(id);
    const hand = options?.readOnly ? (entry: Entry) => this.view(id, entry) : copy;
    if (held && options?.atLeast !== undefined && options.atLeast > 0 && held.version >= options.atLeast) return hand(held);
    if (!held) {
      const read = await this.inner.getConversation(id);
      return read && hand(this.remember(id, read.version, headerJson(read), [], read.messages));
    }
    const read = await this.inner.getConversationSince(id, held.version, held.messages.length);
    if (read === undefined) {
      this.entries.delete(id);
      return undefined;
    }
    if (read === 'unchanged') {
      this.entries.set(id, held); // now the most recently used
      return hand(held);
    }
    return hand(this.remember(id, read.version, headerJson(read), held.messages, read.messages));
  }

  async commit(commit: Commit): Promise<number> {
    return (await this.commitClaiming(commit)).version;
  }

  async commitClaiming(commit: Commit): Promise<CommitResult> {
    const id = commit.conversation.id;
    const inFlight = this.committing.get(id) ?? { commits: 0, held: [] };
    inFlight.commits += 1;
    this.committing.set(id, inFlight);
    try {
      const result = await this.inner.commitClaiming(commit);
      this.take(commit, result.version, commitHeader(commit));
      return result;
    } finally {
      if (--inFlight.commits === 0) {
        this.committing.delete(id);
        for (const notice of inFlight.held) this.tell(notice);
      }
    }
  }

  /** The entry follows a commit made here. */
  private take(commit: Commit, version: number, header: string): void {
    const id = commit.conversation.id;
    const held = this.entries.peek(id);
    // The entry follows the commit only when it was the version this commit replaced.
    const base = held && held.version === commit.expectedVersion ? held.messages : commit.expectedVersion === 0 ? [] : undefined;
    if (base && base.length + commit.appended.length === commit.conversation.messages.length) {
      this.remember(id, version, header, base, commit.appended);
    } else {
      this.entries.delete(id);
    }
  }

  getConversationSince(id: string, version: number, messageCount: number): Promise<Conversation | 'unchanged' | undefined> {
    return this.inner.getConversationSince(id, version, messageCount);
  }

  indexValue(key: string): Promise<string | undefined> {
    return this.inner.indexValue(key);
  }

  indexMembers(key: string): Promise<string[]> {
    return this.inner.indexMembers(key);
  }

  inboundSeen(key: string): Promise<string | undefined> {
    return this.inner.inboundSeen(key);
  }

  inboundMessage(key: string): Promise<string | undefined> {
    return this.inner.inboundMessage(key);
  }

  onChange(listener: (notice: ChangeNotice) => void): () => void {
    // Wrapped: the same function added twice is two subscriptions, each removed by its own unsubscribe.
    const entry = (notice: ChangeNotice) => listener(notice);
    this.listeners.add(entry);
    this.unsubscribeInner ??= this.inner.onChange((notice) => this.heard(notice));
    return () => void this.listeners.delete(entry);
  }

  private heard(notice: ChangeNotice): void {
    const inFlight = this.committing.get(notice.conversationId);
    if (inFlight) inFlight.held.push(notice);
    else this.tell(notice);
  }

  private tell(notice: ChangeNotice): void {
    for (const listener of this.listeners) listener(notice);
  }

  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.inner.withLock(key, fn);
  }

  once(key: string, ttlMs?: number): Promise<boolean> {
    return this.inner.once(key, ttlMs);
  }

  forget(key: string): Promise<void> {
    return this.inner.forget(key);
  }

  increment(counter: string): Promise<number> {
    return this.inner.increment(counter);
  }

  kv(namespace: string): KeyValue {
    return this.inner.kv(namespace);
  }

  close(): Promise<void> {
    this.unsubscribeInner?.();
    this.unsubscribeInner = undefined;
    this.entries.clear();
    this.views.clear();
    return this.inner.close();
  }

  /** Drops one conversation (or all) from the cache: the next read fetches it whole. */
  evict(id?: string): void {
    if (id === undefined) {
      this.entries.clear();
      this.views.clear();
    } else {
      this.entries.delete(id);
      this.views.delete(id);
    }
  }

  /** The entry's shared conversation, frozen throughout: a reader that tried to change it would fail loudly. */
  private view(id: string, entry: Entry): Conversation {
    const kept = this.views.get(id);
    if (kept && kept.version === entry.version) return kept;
    const view = deepFreeze(withBody(JSON.parse(entry.header) as Header, entry.version, entry.messages as Message[]));
    this.views.set(id, view);
    return view;
  }

  private remember(id: string, version: number, header: string, held: readonly Message[], added: readonly Message[]): Entry {
    const entry: Entry = { version, header, messages: added.length === 0 ? held : Object.freeze([...held, ...added.map(deepFreeze)]) };
    this.entries.set(id, entry);
    return entry;
  }

}

/** The caller's own header and message list; the messages themselves are shared and frozen. */
function copy(entry: Entry): Conversation {
  return withBody(JSON.parse(entry.header) as Header, entry.version, entry.messages.slice());
}

/** A freshly parsed header made whole in place (a spread into a new object cost more than the parse). */
function withBody(header: Header, version: number, messages: Message[]): Conversation {
  const conversation = header as Conversation;
  conversation.version = version;
  conversation.messages = messages;
  return conversation;
}
