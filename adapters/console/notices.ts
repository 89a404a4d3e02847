/**
 * Private notices for one person ("Dana holds HB-1042, so your reply was kept as an internal
 * note", a managers' alert, the daily digest). Kept briefly in the store per operator, so a socket
 * on another instance gets them too, and numbered, so each socket shows each notice once. A notice
 * delivered again (a retry after an unknown outcome) is recorded once: by its delivery key when it
 * has one, else by its text within a short window.
 */
import { randomUUID } from 'node:crypto';
import type { KeyValue } from '../../src/store/store.ts';

export interface StoredNotice {
  seq: number;
  id: string;
  /** The delivery's idempotency key, when it came from the delivery core. */
  key?: string;
  text: string;
  at: string;
  conversationId?: string;
  ticket?: string;
}

const KEEP = 20;
const TTL_MS = 24 * 3600_000;
/** The same text about the same conversation within this window is one notice. */
const REPEAT_WINDOW_MS = 60_000;

export class NoticeBox {
  constructor(
    private readonly kv: KeyValue,
    private readonly withLock: <T>(key: string, fn: () => Promise<T>) => Promise<T>,
    private readonly increment: (counter: string) => Promise<number>,
    private readonly clock: () => number,
  ) {}

  /** Records a notice for `operatorId`; undefined when it repeats one just recorded. */
  async add(operatorId: string, notice: { text: string; conversationId?: string; ticket?: string }, key?: string): Promise<StoredNotice | undefined> {
    return this.withLock(`console:notices:${operatorId}`, async () => {
      const list = (await this.kv.get<StoredNotice[]>(listKey(operatorId))) ?? [];
      const now = this.clock();
      const repeat = key
        ? list.find((n) => n.key === key)
        : list.find((n) => n.text === notice.text && n.conversationId === notice.conversationId && now - Date.parse(n.at) < REPEAT_WINDOW_MS);
      if (repeat) return undefined;
      const stored: StoredNotice = {
        seq: await this.increment('console:notices'),
        id: randomUUID(),
        ...(key ? { key } : {}),
        text: notice.text,
        at: new Date(now).toISOString(),
        ...(notice.conversationId ? { conversationId: notice.conversationId } : {}),
        ...(notice.ticket ? { ticket: notice.ticket } : {}),
      };
      await this.kv.set(listKey(operatorId), [...list, stored].slice(-KEEP), TTL_MS);
      return stored;
    });
  }

  /** Notices for `operatorId` after `seq`, oldest first. */
  async since(operatorId: string, seq: number): Promise<StoredNotice[]> {
    const list = (await this.kv.get<StoredNotice[]>(listKey(operatorId))) ?? [];
    return list.filter((n) => n.seq > seq);
  }

  /** The newest notice number for `operatorId` (0 if none): a new socket starts after it. */
  async latest(operatorId: string): Promise<number> {
    const list = (await this.kv.get<StoredNotice[]>(listKey(operatorId))) ?? [];
    return list.at(-1)?.seq ?? 0;
  }
}

function listKey(operatorId: string): string {
  return `notices:${operatorId}`;
}
