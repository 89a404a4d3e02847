/**
 * Everything one fault run needs, as real processes and servers on loopback: a redis-server with an
 * append-only file (stopped and started for real), the Slack Web API emulator behind the chaos
 * proxy, an SMTP sink for outbound mail, and two bridge instances (child processes) sharing the Redis.
 * The suite itself reads the store only to drive operators and to read transcripts when counting.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.ts';
import type { Store } from '../../src/store/store.ts';
import { SlackApiEmulator } from '../emulators/slack-api.ts';
import { freePort, startRedis, type RedisProcess } from '../support/redis-process.ts';
import { ChaosProxy } from './chaos-proxy.ts';
import { SlackSide, type SlackOperator } from './operators.ts';
import { BridgeProcess } from './processes.ts';
import { FaultSmtpSink } from './smtp-sink.ts';

export const SIGNING_SECRET = '5ca1ab1e0ddba11c0ffee0123456789a';
export const CHANNEL = 'CSUPPORT01';
export const SUPPORT_ADDRESS = 'support@acme.test';
export const DANA: SlackOperator = { userId: 'UDANA0001', name: 'Dana' };
export const SAM: SlackOperator = { userId: 'USAM00001', name: 'Sam' };

export interface RigOptions {
  /** Directory for logs (and the Redis append-only file lives in its own temp dir). */
  dir: string;
  seed: number;
  /** chat.postMessage answered 429/500 (half each) without forwarding. */
  chaosRate: number;
  /** chat.postMessage stored, then its answer dropped. */
  dropRate: number;
  /** DELIVERY_LEASE_MS for the instances: how long a killed instance's work waits for takeover. */
  leaseMs: number;
  /** Email channel on (inbound SMTP per instance, outbound to the sink). */
  email: boolean;
  logLevel?: string;
  /** More environment for the instances (escalation durations, managers' channel...). */
  env?: Record<string, string>;
}

export interface Rig {
  options: RigOptions;
  redis: RedisProcess;
  emulator: SlackApiEmulator;
  proxy: ChaosProxy;
  sink: FaultSmtpSink;
  instances: BridgeProcess[];
  slack: SlackSide;
  /** The suite's own connection to the store (reads only). */
  store: Store;
  close(): Promise<void>;
}

export async function startRig(options: RigOptions): Promise<Rig> {
  mkdirSync(options.dir, { recursive: true });
  const cleanups: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    const redis = await startRedis({ durable: true });
    cleanups.push(() => redis.stop());
    const emulator = await new SlackApiEmulator().start();
    cleanups.push(() => emulator.stop());
    emulator.addUser({ id: DANA.userId, name: 'dana', displayName: DANA.name, realName: 'Dana Scully' });
    emulator.addUser({ id: SAM.userId, name: 'sam', displayName: SAM.name, realName: 'Sam Vimes' });
    emulator.addChannel(CHANNEL, 'support');
    const proxy = await new ChaosProxy(emulator.origin, { seed: options.seed, rate: options.chaosRate, dropRate: options.dropRate, retryAfterSeconds: 1 }).start();
    cleanups.push(() => proxy.stop());
    const sink = new FaultSmtpSink();
    await sink.start();
    cleanups.push(() => sink.stop());

    const env: Record<string, string> = {
      HOST: '127.0.0.1',
      STORE_URL: redis.url,
      LOG_LEVEL: options.logLevel ?? 'info',
      BRAND_NAME: 'Northwind',
      DELIVERY_LEASE_MS: String(options.leaseMs),
      SHUTDOWN_GRACE_MS: '5000',
      SLACK_BOT_TOKEN: emulator.botToken,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_CHANNEL_ID: CHANNEL,
      SLACK_API_URL: proxy.url,
      // Many customers share 127.0.0.1: each sends its own X-Forwarded-For, and no visitor hits the message limit.
      TRUST_PROXY: 'true',
      WEBCHAT_RATE_PER_MINUTE: '600',
      WEBCHAT_BURST: '60',
      ...(options.email ? { EMAIL_ADDRESS: SUPPORT_ADDRESS, SMTP_URL: sink.url, SMTP_INBOUND_HOST: '127.0.0.1' } : {}),
      ...options.env,
    };
    const instances: BridgeProcess[] = [];
    for (const name of ['A', 'B']) {
      const instance = new BridgeProcess(name, await freePort(), await freePort(), env, join(options.dir, `instance-${name}.log`));
      instances.push(instance);
      cleanups.push(async () => {
        await instance.stop(10_000);
        await instance.close();
      });
    }
    await Promise.all(instances.map((i) => i.start()));
    const store = await openStore(redis.url);
    cleanups.push(() => store.close());
    return { options, redis, emulator, proxy, sink, instances, slack: new SlackSide(emulator, instances, SIGNING_SECRET), store, close };
  } catch (err) {
    await close();
    throw err;
  }
}
