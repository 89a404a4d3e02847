/**
 * Locks that serialize updates to one conversation: an in-process mutex (SQLite, one instance)
 * and a Redis lock (SET NX PX + token-checked release) for several instances.
 */
import { randomBytes } from 'node:crypto';
import { LockTimeoutError, StoreUnavailableError } from '../errors.ts';

export interface Locks {
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

/** A FIFO mutex per key, held only while someone waits or works. */
export class InProcessLocks implements Locks {
  private readonly tails = new Map<string, Promise<void>>();

  async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** The slice of a node-redis client the lock needs. */
export interface RedisCommandClient {
  sendCommand(args: string[]): Promise<unknown>;
}

// Deletes the lock only if we still own it, so a lock that expired and was taken by
// another instance is never released by us.
const RELEASE_SCRIPT = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
// Extends the lock only if we still own it: long work (a slow SMTP send) keeps its lock alive.
const RENEW_SCRIPT = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * A lock left by a killed instance expires after this. Short, because a web chat visitor whose
 * instance died mid-message waits this long to reconnect; a holder's event loop would have to
 * stall for two thirds of it (a missed renewal) before another instance could enter.
 */
export const DEFAULT_LOCK_TTL_MS = 5_000;

export class RedisLocks implements Locks {
  private readonly local = new InProcessLocks();
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly waitMs: number;

  constructor(private readonly client: RedisCommandClient, options: { prefix: string; ttlMs?: number | undefined; waitMs?: number | undefined }) {
    this.prefix = options.prefix;
    // What a crashed holder costs everyone else: its lock blocks them this long. A live holder renews.
    this.ttlMs = options.ttlMs ?? DEFAULT_LOCK_TTL_MS;
    this.waitMs = options.waitMs ?? 10_000;
  }

  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    // Queue in-process first so one instance does not spin against itself.
    return this.local.withLock(key, async () => {
      const redisKey = this.prefix + key;
      const token = randomBytes(16).toString('hex');
      await this.acquire(redisKey, token, key);
      // Renew at a third of the TTL while the work runs; if this process dies, the lock expires.
      const renew = setInterval(() => {
        void this.client.sendCommand(['EVAL', RENEW_SCRIPT, '1', redisKey, token, String(this.ttlMs)]).catch(() => {});
      }, Math.max(10, Math.floor(this.ttlMs / 3)));
      renew.unref();
      try {
        return await fn();
      } finally {
        clearInterval(renew);
        await this.client.sendCommand(['EVAL', RELEASE_SCRIPT, '1', redisKey, token]).catch(() => {
          // Unreachable Redis: the lock expires on its own after ttlMs.
        });
      }
    });
  }

  private async acquire(redisKey: string, token: string, key: string): Promise<void> {
    const deadline = Date.now() + this.waitMs;
    let delay = 2;
    for (;;) {
      let reply: unknown;
      try {
        reply = await this.client.sendCommand(['SET', redisKey, token, 'NX', 'PX', String(this.ttlMs)]);
      } catch (err) {
        throw new StoreUnavailableError(`Store (redis) unavailable: could not lock ${key}: ${(err as Error).message}`, err);
      }
      if (reply === 'OK') return;
      if (Date.now() >= deadline) throw new LockTimeoutError(key);
      await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
      delay = Math.min(delay * 2, 40);
    }
  }
}
