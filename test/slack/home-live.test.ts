/**
 * The Home tab follows the queue for operators who opened it recently: a queue change republishes
 * it, debounced, rate-bounded and only to recent viewers. The rules on a fake clock, then the real
 * adapter against the loopback Slack emulator.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LiveHome, type LiveHomeOptions } from '../../adapters/slack/home-live.ts';
import { RetryLaterError } from '../../src/delivery/outcome.ts';
import { silentLogger } from '../../src/log.ts';
import type { KeyValue } from '../../src/store/store.ts';
import { waitFor } from '../support/harness.ts';
import { DANA, SAM, startSlackFixture, type SlackFixture } from './fixture.ts';

function memoryKv(): KeyValue {
  const data = new Map<string, unknown>();
  return {
    get: async <T>(key: string) => structuredClone(data.get(key)) as T | undefined,
    set: async (key, value) => void data.set(key, structuredClone(value)),
    delete: async (key) => void data.delete(key),
  };
}

describe('live Home tab rounds', () => {
  let clock = 1_000_000;
  let view = { type: 'home', blocks: [{ n: 1 }] };
  const published: Array<{ user: string; view: unknown }> = [];
  let fail: ((user: string) => Error | undefined) | undefined;

  function live(options: Partial<LiveHomeOptions> = {}) {
    return new LiveHome(
      {
        kv: memoryKv(),
        view: async () => view,
        publish: async (user, v) => {
          const err = fail?.(user);
          if (err) throw err;
          published.push({ user, view: v });
        },
        logger: silentLogger(),
        now: () => clock,
      },
      { debounceMs: 1000, minIntervalMs: 10_000, recentMs: 60_000, maxViewers: 3, ...options },
    );
  }

  afterEach(() => {
    vi.useRealTimers();
    published.length = 0;
    fail = undefined;
    view = { type: 'home', blocks: [{ n: 1 }] };
  });

  async function advance(ms: number) {
    clock += ms;
    await vi.advanceTimersByTimeAsync(ms);
  }

  it('gathers changes into one round after the debounce, then waits the minimum interval', async () => {
    vi.useFakeTimers();
    const home = live();
    await home.opened('U1', { stale: true });
    for (let i = 0; i < 5; i++) home.changed();
    await advance(999);
    expect(published).toEqual([]);
    await advance(1);
    await home.idle();
    expect(published).toEqual([{ user: 'U1', view }]);
    // A change right after: the next round waits for the interval, not just the debounce.
    view = { type: 'home', blocks: [{ n: 2 }] };
    home.changed();
    await advance(5000);
    expect(published).toHaveLength(1);
    await advance(5000);
    await home.idle();
    expect(published.at(-1)).toEqual({ user: 'U1', view });
    await home.stop();
  });

  it('refreshes only recent viewers, the most recent first, at most maxViewers, and skips an unchanged view', async () => {
    vi.useFakeTimers();
    const home = live();
    await home.opened('OLD', {});
    clock += 61_000; // OLD opened over a minute ago
    for (const user of ['U1', 'U2', 'U3', 'U4']) {
      clock += 10;
      await home.opened(user, {});
    }
    await home.opened('SAME', view); // already has the current view
    home.changed();
    await advance(1000);
    await home.idle();
    // Three at most, most recent first: SAME (skipped: unchanged), U4, U3.
    expect(published.map((p) => p.user)).toEqual(['U4', 'U3']);
    await home.stop();
  });

  it('ends a round at a 429 and skips a user Slack refuses; nothing runs after stop', async () => {
    vi.useFakeTimers();
    const home = live({ maxViewers: 10 });
    for (const user of ['U1', 'U2', 'U3']) {
      clock += 10;
      await home.opened(user, {});
    }
    fail = (user) => (user === 'U2' ? new RetryLaterError(1000, 'rate limited') : undefined);
    home.changed();
    await advance(1000);
    await home.idle();
    expect(published.map((p) => p.user)).toEqual(['U3']);
    fail = undefined;
    home.changed();
    await home.stop();
    await advance(60_000);
    expect(published.map((p) => p.user)).toEqual(['U3']);
  });
});

describe('the Home tab in Slack', () => {
  let f: SlackFixture;
  afterEach(async () => {
    await f?.close();
  });

  it('follows the queue for someone who opened it, without their opening it again', async () => {
    f = await startSlackFixture({ liveHome: { debounceMs: 50, minIntervalMs: 0 } });
    const opened = await f.events.event({ type: 'app_home_opened', user: SAM.userId, channel: 'D0SAMHOME', tab: 'home', event_ts: '1.1' });
    expect(opened.status).toBe(200);
    await f.settle();
    expect(JSON.stringify(f.emulator.homeView(SAM.userId))).toContain('Waiting for a person (0)');

    const conversation = await f.customerSays('I want to talk to a human');
    await f.settle();
    await waitFor(() => JSON.stringify(f.emulator.homeView(SAM.userId)).includes('Waiting for a person (1)'), { what: 'the new escalation on the Home tab' });
    expect(JSON.stringify(f.emulator.homeView(SAM.userId))).toContain(`|${conversation.ticket}>`);

    await f.click(conversation.id, DANA.userId, 'briefing_claim');
    await f.settle();
    await waitFor(() => JSON.stringify(f.emulator.homeView(SAM.userId)).includes('Held by a person (1)'), { what: 'the claim on the Home tab' });
    // Dana never opened the tab: nothing is published for her.
    expect(f.emulator.homeViews.filter((v) => v.user === DANA.userId)).toEqual([]);
  });

  it('publishes nothing when nobody opened the tab', async () => {
    f = await startSlackFixture({ liveHome: { debounceMs: 20, minIntervalMs: 0 } });
    await f.customerSays('I want to talk to a human');
    await f.settle();
    await new Promise((r) => setTimeout(r, 200));
    expect(f.emulator.callsOf('views.publish')).toHaveLength(0);
  });

  it('publishes only on opening when turned off', async () => {
    f = await startSlackFixture({ liveHome: false });
    await f.events.event({ type: 'app_home_opened', user: SAM.userId, channel: 'D0SAMHOME', tab: 'home', event_ts: '1.1' });
    await f.settle();
    expect(f.emulator.callsOf('views.publish')).toHaveLength(1);
    await f.customerSays('I want to talk to a human');
    await f.settle();
    await new Promise((r) => setTimeout(r, 200));
    expect(f.emulator.callsOf('views.publish')).toHaveLength(1);
  });
});
