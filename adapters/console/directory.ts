/**
 * The conversations the console lists, kept in the store (`kv('console')`, key `conversations`)
 * because the bridge has no "list conversations": an entry per conversation the console was told
 * about (mirror, briefing, ownership), with its last known state. Every open conversation stays;
 * closed ones beyond the most recent `closedKept` are dropped. Rows themselves are always built
 * from the conversation as stored, never from this list.
 */
import type { Conversation, OwnershipState } from '../../src/model.ts';
import type { KeyValue } from '../../src/store/store.ts';

export interface DirectoryEntry {
  id: string;
  state: OwnershipState;
  /** Last change seen (ISO). */
  at: string;
}

const KEY = 'conversations';
const LOCK = 'console:conversations';

export class ConversationDirectory {
  /** What this instance last wrote or read per conversation, so unchanged states cost no write. */
  private readonly known = new Map<string, OwnershipState>();

  constructor(
    private readonly kv: KeyValue,
    private readonly withLock: <T>(key: string, fn: () => Promise<T>) => Promise<T>,
    private readonly closedKept: number,
  ) {}

  async list(): Promise<DirectoryEntry[]> {
    const entries = (await this.kv.get<DirectoryEntry[]>(KEY)) ?? [];
    for (const e of entries) this.known.set(e.id, e.state);
    return entries;
  }

  /** Records the conversation (or its new state). Safe to repeat. */
  async note(conversation: Conversation): Promise<void> {
    if (this.known.get(conversation.id) === conversation.state) return;
    await this.withLock(LOCK, async () => {
      const entries = (await this.kv.get<DirectoryEntry[]>(KEY)) ?? [];
      const at = conversation.updatedAt;
      const index = entries.findIndex((e) => e.id === conversation.id);
      if (index >= 0 && entries[index]!.state === conversation.state) return;
      const entry: DirectoryEntry = { id: conversation.id, state: conversation.state, at };
      if (index >= 0) entries[index] = entry;
      else entries.push(entry);
      await this.kv.set(KEY, prune(entries, this.closedKept));
    });
    this.known.set(conversation.id, conversation.state);
  }
}

/** Keeps every open conversation and the `closedKept` most recently closed. */
export function prune(entries: DirectoryEntry[], closedKept: number): DirectoryEntry[] {
  const closed = entries.filter((e) => e.state === 'closed').sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  const dropped = new Set(closed.slice(closedKept).map((e) => e.id));
  return dropped.size ? entries.filter((e) => !dropped.has(e.id)) : entries;
}
