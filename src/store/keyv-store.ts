/**
 * The store on keyv. The backend-specific part is small: how to lock, how to claim an
 * idempotency key and how to count. `openStore(url)` picks SQLite (default) or Redis.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Keyv from 'keyv';
import KeyvSqlite from '@keyv/sqlite';
import KeyvRedis, { createClient } from '@keyv/redis';
import { ConfigError, StoreUnavailableError } from '../errors.ts';
import type { Conversation } from '../model.ts';
import { InProcessLocks, RedisLocks, type Locks, type RedisCommandClient } from './locks.ts';
import type { KeyValue, Store } from './store.ts';

/** What differs between backends besides get/set. */
interface Atomics {
  /** SET NX with TTL: true if this call created the key. */
  setIfAbsent(key: string, ttlMs: number): Promise<boolean>;
  increment(key: string): Promise<number>;
}

const DAY = 24 * 60 * 60 * 1000;

export class KeyvStore implements Store {
  constructor(
    readonly backend: string,
    private readonly keyv: Keyv,
    private readonly locks: Locks,
    private readonly atomics: Atomics,
    private readonly onClose: () => Promise<void>,
  ) {}

  async getConversation(id: string): Promise<Conversation | undefined> {
    return this.guard('read conversation', () => this.keyv.get<Conversation>(`conv:${id}`));
  }

  async saveConversation(conversation: Conversation): Promise<void> {
    await this.guard('save conversation', async () => {
      const ok = await this.keyv.set(`conv:${conversation.id}`, conversation);
      if (ok === false) throw new Error('the backend refused the write');
    });
  }

  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.withLock(key, fn);
  }

  once(key: string, ttlMs = DAY): Promise<boolean> {
    return this.guard('record idempotency key', () => this.atomics.setIfAbsent(`once:${key}`, ttlMs));
  }

  async forget(key: string): Promise<void> {
    await this.guard('forget idempotency key', () => this.keyv.delete(`once:${key}`));
  }

  increment(counter: string): Promise<number> {
    return this.guard('increment counter', () => this.atomics.increment(`counter:${counter}`));
  }

  kv(namespace: string): KeyValue {
    const prefix = `kv:${namespace}:`;
    return {
      get: <T>(key: string) => this.guard(`read ${namespace}`, () => this.keyv.get<T>(prefix + key)),
      set: async <T>(key: string, value: T, ttlMs?: number) => {
        await this.guard(`write ${namespace}`, async () => {
          const ok = await this.keyv.set(prefix + key, value, ttlMs);
          if (ok === false) throw new Error('the backend refused the write');
        });
      },
      delete: async (key: string) => {
        await this.guard(`delete ${namespace}`, () => this.keyv.delete(prefix + key));
      },
    };
  }

  async close(): Promise<void> {
    await this.onClose();
  }

  /** Turns backend failures into one typed error; nothing half-written is reported as done. */
  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      throw new StoreUnavailableError(`Store (${this.backend}) unavailable: could not ${what}: ${(err as Error).message}`, err);
    }
  }
}

/** The embedded, durable default: one SQLite file. Locks and counters are in-process (one instance). */
export async function openSqliteStore(path: string): Promise<KeyvStore> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const adapter = new KeyvSqlite({ uri: `sqlite://${path}`, busyTimeout: 5000 });
  const keyv = new Keyv({ store: adapter, namespace: 'bridge', throwOnErrors: true });
  keyv.on('error', () => {}); // surfaced through throwOnErrors instead
  const locks = new InProcessLocks();
  const atomics: Atomics = {
    // In-process lock makes read-then-write atomic for the single instance SQLite serves.
    setIfAbsent: (key, ttlMs) =>
      locks.withLock(`atomic:${key}`, async () => {
        if ((await keyv.get(key)) !== undefined) return false;
        await keyv.set(key, 1, ttlMs);
        return true;
      }),
    increment: (key) =>
      locks.withLock(`atomic:${key}`, async () => {
        const next = ((await keyv.get<number>(key)) ?? 0) + 1;
        await keyv.set(key, next);
        return next;
      }),
  };
  // Touch the database so a bad path fails at start-up, not on the first customer.
  await keyv.get('probe');
  return new KeyvStore('sqlite', keyv, locks, atomics, async () => {
    await keyv.disconnect();
  });
}

/** Redis, for several instances: locks are SET NX PX with a token-checked release. */
export async function openRedisStore(url: string, options: { lockTtlMs?: number; lockWaitMs?: number; namespace?: string } = {}): Promise<KeyvStore> {
  const namespace = options.namespace ?? 'bridge';
  let connected = false;
  const client = createClient({
    url,
    socket: {
      connectTimeout: 5000,
      // Before the first connection, give up quickly so start-up fails clearly; after it, keep reconnecting.
      reconnectStrategy: (retries: number, cause: Error) => (connected ? Math.min(100 * 2 ** retries, 3000) : retries >= 2 ? cause : 200),
    },
    // While Redis is unreachable, fail commands at once instead of queueing them forever.
    disableOfflineQueue: true,
  });
  client.on('error', () => {}); // reconnects on its own; failing commands surface as StoreUnavailableError
  try {
    await client.connect();
    connected = true;
  } catch (err) {
    throw new StoreUnavailableError(`Store (redis) unavailable: cannot connect to ${redactUrl(url)}: ${(err as Error).message}`, err);
  }
  const adapter = new KeyvRedis(client as never, { throwOnErrors: true, namespace });
  const keyv = new Keyv({ store: adapter, namespace, throwOnErrors: true, useKeyPrefix: false });
  keyv.on('error', () => {});
  const commands = client as unknown as RedisCommandClient;
  const prefix = (key: string) => `${namespace}::${key}`;
  const atomics: Atomics = {
    setIfAbsent: async (key, ttlMs) => (await commands.sendCommand(['SET', prefix(key), '1', 'NX', 'PX', String(Math.max(1, Math.round(ttlMs)))])) === 'OK',
    increment: async (key) => Number(await commands.sendCommand(['INCR', prefix(key)])),
  };
  const locks = new RedisLocks(commands, { prefix: `${namespace}::lock:`, ttlMs: options.lockTtlMs, waitMs: options.lockWaitMs });
  return new KeyvStore('redis', keyv, locks, atomics, async () => {
    if (client.isOpen) await client.quit().catch(() => client.destroy());
  });
}

/** `STORE_URL`: `redis://...` / `rediss://...`, `sqlite:///path/file.sqlite` or a plain path. */
export async function openStore(url: string): Promise<KeyvStore> {
  if (/^rediss?:\/\//.test(url)) return openRedisStore(url);
  if (url.startsWith('sqlite://')) return openSqliteStore(url.slice('sqlite://'.length) || ':memory:');
  if (/^[a-z]+:\/\//i.test(url)) throw new ConfigError('STORE_URL', `expected redis://..., sqlite://<path> or a file path, got ${redactUrl(url)}`);
  return openSqliteStore(url);
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
