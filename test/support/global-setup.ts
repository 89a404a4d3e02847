/**
 * Starts a real redis-server on a free loopback port for the whole run, unless REDIS_URL is
 * already set (CI starts its own). Tests that need Redis read process.env.REDIS_URL.
 */
import { startRedis, type RedisProcess } from './redis-process.ts';

let redis: RedisProcess | undefined;

export async function setup(): Promise<void> {
  if (process.env.REDIS_URL) return;
  try {
    redis = await startRedis({ durable: false });
    process.env.REDIS_URL = redis.url;
  } catch {
    // No redis-server here: the Redis tests fail with an explanation.
  }
}

export async function teardown(): Promise<void> {
  await redis?.stop();
}
