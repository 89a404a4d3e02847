/**
 * Adapters' own data on Redis, through keyv: namespaced keys, idempotency marks, counters and
 * locks. The conversation itself and its work are not here: `redis.ts` commits those with its own
 * scripts and composes this for the rest. (SQLite keeps adapter data in its own tables, on the
 * store's single writer, so no second connection contends for the write lock.)
 */
import Keyv from 'keyv';
import KeyvRedis, { createClient } from '@keyv/redis';
import { StoreUnavailableError } from '../errors.ts';
import { RedisLocks, type Locks, type RedisCommandClient } from './locks.ts';
import type { KeyValue, Store } from './store.ts';

/** The part of the store that keyv serves. */
export type AdapterDataPort = Pick<Store, 'withLock' | 'once' | 'forget' | 'increment' | 'kv'>;

/** What differs between backends besides get/set. */
interface Atomics {
  /** SET NX with TTL: true if this call created the key. */
  setIfAbsent(key: string, ttlMs: number): Promise<boolean>;
  increment(key: string): Promise<number>;
}

const DAY = 24 * 60 * 60 * 1000;

export class AdapterData implements AdapterDataPort {
  constructor(
    readonly backend: string,
    private readonly keyv: Keyv,
    private readonly locks: Locks,
    private readonly atomics: Atomics,
    private readonly onClose: () => Promise<void>,
  ) {}

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

/** Adapter data in Redis, on a connected node-redis client the caller owns (and closes). */
export function redisAdapterData(
  client: ReturnType<typeof createClient>,
  options: { namespace: string; lockTtlMs?: number | undefined; lockWaitMs?: number | undefined },
): AdapterData {
  const namespace = options.namespace;
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
  return new AdapterData('redis', keyv, locks, atomics, async () => {});
}

/** A node-redis client for the store: fails fast before the first connection, reconnects after it. */
export async function connectRedis(url: string): Promise<ReturnType<typeof createClient>> {
  let connected = false;
  const client = createClient({
    url,
    socket: {
      connectTimeout: 5000,
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
  return client as unknown as ReturnType<typeof createClient>;
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
