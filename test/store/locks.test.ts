/**
 * Redis locks against a real redis-server, with a holder that is a real process killed with -9:
 * its lock blocks others only until the TTL runs out, while a live holder keeps its lock by renewing.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LockTimeoutError } from '../../src/errors.ts';
import { connectRedis } from '../../src/store/keyv-store.ts';
import { RedisLocks } from '../../src/store/locks.ts';
import { startRedis, type RedisProcess } from '../support/redis-process.ts';

let redis: RedisProcess;
let client: Awaited<ReturnType<typeof connectRedis>>;
beforeAll(async () => {
  redis = await startRedis({ durable: false });
  client = await connectRedis(redis.url);
});
afterAll(async () => {
  await client?.quit();
  await redis?.stop();
});

/** A process that takes `key` and holds it (renewing) until it is killed. Resolves once it holds it. */
async function holderProcess(key: string, ttlMs: number) {
  const code = `
    import { connectRedis } from './src/store/keyv-store.ts';
    import { RedisLocks } from './src/store/locks.ts';
    const client = await connectRedis(${JSON.stringify(redis.url)});
    const locks = new RedisLocks(client, { prefix: 'test:', ttlMs: ${ttlMs} });
    await locks.withLock(${JSON.stringify(key)}, () => { console.log('holding'); return new Promise(() => {}); });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => String(d).includes('holding') && resolve());
    child.once('exit', (code) => reject(new Error(`holder exited early (${code})`)));
  });
  return child;
}

it('a live holder keeps its lock past the TTL by renewing; once it is killed -9, the lock frees itself within one TTL', { timeout: 30_000 }, async () => {
  const ttlMs = 600;
  const holder = await holderProcess('session:a', ttlMs);
  const locks = new RedisLocks(client, { prefix: 'test:', ttlMs, waitMs: 3 * ttlMs });
  // Alive for five TTLs: renewals keep the waiter out.
  await expect(locks.withLock('session:a', async () => 'taken')).rejects.toBeInstanceOf(LockTimeoutError);

  holder.kill('SIGKILL');
  const killedAt = Date.now();
  await new Promise((r) => holder.once('exit', r));
  const waiter = new RedisLocks(client, { prefix: 'test:', ttlMs, waitMs: 10 * ttlMs });
  await expect(waiter.withLock('session:a', async () => 'taken')).resolves.toBe('taken');
  const waited = Date.now() - killedAt;
  // The last renewal was at most a third of the TTL before the kill.
  expect(waited).toBeGreaterThanOrEqual(ttlMs / 2);
  expect(await client.sendCommand(['EXISTS', 'test:session:a'])).toBe(0); // released after use
});
