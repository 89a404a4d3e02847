import { describe, expect, it } from 'vitest';
import { channelForQueue, teamsConfigFromEnv } from '../../adapters/teams/config.ts';
import { attachmentsFromActivity, isFromBot, messageText, parseThreadCommand, type TeamsActivity } from '../../adapters/teams/inbound.ts';
import { threadIdFor, threadKey } from '../../adapters/teams/state.ts';
import { parseRetryAfter } from '../../src/delivery/backoff.ts';
import { delayUntilAllowed, TEAMS_THREAD_LIMITS, ThreadPacer, throttledDelay } from '../../adapters/teams/throttle.ts';
import { RetryLaterError } from '../../src/delivery/outcome.ts';
import { ConfigError } from '../../src/errors.ts';

const BOT = { id: '28:bot', name: 'Handoff Bridge' };

function activity(text: string, mentionBot = false): TeamsActivity {
  const mention = `<at>${BOT.name}</at>`;
  return {
    type: 'message',
    text: mentionBot ? `${mention} ${text}` : text,
    from: { id: '29:alice', name: 'Alice' },
    recipient: BOT,
    entities: mentionBot ? [{ type: 'mention', text: mention, mentioned: BOT }] : [],
  };
}

describe('reading thread messages', () => {
  it("strips the bot's own mention and says it was there; other mentions stay as names", () => {
    expect(messageText(activity('return all sorted', true))).toEqual({ text: 'return all sorted', mentionedBot: true });
    expect(messageText({ ...activity('ask <at>Bob</at> about it'), entities: [{ type: 'mention', text: '<at>Bob</at>', mentioned: { id: '29:bob' } }] })).toEqual({
      text: 'ask @Bob about it',
      mentionedBot: false,
    });
  });

  it.each([
    ['return', false, { kind: 'return' }],
    ['return: label sent', false, { kind: 'return', note: 'label sent' }],
    ['Return — label sent', false, { kind: 'return', note: 'label sent' }],
    ['/return label sent', false, { kind: 'return', note: 'label sent' }],
    ['return label sent', true, { kind: 'return', note: 'label sent' }],
    ['Return the parcel to our warehouse', false, { kind: 'message', text: 'Return the parcel to our warehouse' }],
    ['returning customer here', false, { kind: 'message', text: 'returning customer here' }],
    ['close', false, { kind: 'close' }],
    ['close: duplicate of HB-1', false, { kind: 'close', note: 'duplicate of HB-1' }],
    ['Close the app and retry', false, { kind: 'message', text: 'Close the app and retry' }],
    ['close duplicate', true, { kind: 'close', note: 'duplicate' }],
    ['claim', false, { kind: 'claim' }],
    ['take over', true, { kind: 'takeover' }],
    ['help', false, { kind: 'help' }],
    ['// internal', false, { kind: 'message', text: '// internal' }],
    ['route billing --pin billing is done here', true, { kind: 'route', agent: 'billing', pin: true, note: 'billing is done here' }],
    ['route --pin triage', true, { kind: 'route', agent: 'triage', pin: true }],
    ['route: billing: the invoice question', false, { kind: 'route', agent: 'billing', pin: false, note: 'the invoice question' }],
    ['/route triage', false, { kind: 'route', agent: 'triage', pin: false }],
    ['route', false, { kind: 'route', pin: false }],
    ['Route the parcel via DHL', false, { kind: 'message', text: 'Route the parcel via DHL' }],
    ['routed it already', true, { kind: 'message', text: 'routed it already' }],
    ['transfer: billing refund question', false, { kind: 'transfer', queue: 'billing', note: 'refund question' }],
    ['transfer billing', true, { kind: 'transfer', queue: 'billing' }],
    ['/transfer', false, { kind: 'transfer' }],
    ['Transfer the money by Friday', false, { kind: 'message', text: 'Transfer the money by Friday' }],
  ] as const)('%j (mention: %s) is %j', (text, mentioned, expected) => {
    expect(parseThreadCommand(text, mentioned)).toEqual(expected);
  });

  it("recognizes bots, including the bridge's own account", () => {
    expect(isFromBot({ from: { id: '28:other' } })).toBe(true);
    expect(isFromBot({ from: { id: '29:alice', role: 'bot' } })).toBe(true);
    expect(isFromBot({ from: { id: 'x' }, recipient: { id: 'x' } })).toBe(true);
    expect(isFromBot({ from: { id: '29:alice' }, recipient: BOT })).toBe(false);
  });

  it('turns file attachments into links and skips the HTML copy, cards and Teams-hosted inline images', () => {
    expect(
      attachmentsFromActivity({
        attachments: [
          { contentType: 'text/html', content: '<p>hi</p>' },
          { contentType: 'reference', contentUrl: 'https://contoso.sharepoint.com/a/b/report%20Q1.xlsx', name: 'report Q1.xlsx' },
          { contentType: 'application/vnd.microsoft.teams.file.download.info', name: 'photo.jpg', content: { downloadUrl: 'https://dl.example/photo.jpg?token=1' } },
          { contentType: 'image/png', contentUrl: 'https://us-api.asm.skype.com/v1/objects/0-x/views/imgo' },
          { contentType: 'application/vnd.microsoft.card.adaptive', content: {} },
          { contentType: 'reference', contentUrl: 'javascript:alert(1)', name: 'evil' },
        ],
      }),
    ).toEqual([
      { name: 'report Q1.xlsx', url: 'https://contoso.sharepoint.com/a/b/report%20Q1.xlsx' },
      { name: 'photo.jpg', url: 'https://dl.example/photo.jpg?token=1' },
    ]);
  });

  it('maps a channel thread id to the conversation it belongs to', () => {
    expect(threadIdFor('19:abc@thread.tacv2;messageid=1700000000001', '1700000000001')).toBe('19:abc@thread.tacv2;messageid=1700000000001');
    expect(threadKey('19:abc@thread.tacv2;messageid=1700000000001')).toBe('19:abc@thread.tacv2;messageid=1700000000001');
    expect(threadKey('19:abc@thread.tacv2')).toBeUndefined();
  });
});

describe('pacing and back-off', () => {
  it('lets a request go at once while every window has room', () => {
    expect(delayUntilAllowed([], 10_000)).toBe(0);
    expect(delayUntilAllowed([9_000, 9_500], 10_000)).toBe(0);
  });

  it("waits until the oldest request leaves a full window (7 per second, 8 per 2 s)", () => {
    const now = 10_000;
    const seven = [9_100, 9_200, 9_300, 9_400, 9_500, 9_600, 9_700];
    expect(delayUntilAllowed(seven, now, TEAMS_THREAD_LIMITS)).toBe(100);
    const eight = [8_100, ...seven];
    expect(delayUntilAllowed(eight, now, TEAMS_THREAD_LIMITS)).toBe(100);
  });

  it('after a 429 never comes back sooner than Retry-After; without one, waits a jittered 1-3 s', () => {
    expect(throttledDelay(3000, 1000, () => 0)).toBe(3000);
    expect(throttledDelay(3000, 1000, () => 1)).toBeGreaterThan(3000);
    expect(throttledDelay(3000, 1000, () => 1)).toBeLessThanOrEqual(3250);
    expect(throttledDelay(undefined, 1000, () => 0)).toBe(1000);
    expect(throttledDelay(undefined, 1000, () => 1)).toBe(3000);
  });

  it('sleeps a short pacing wait inline but hands a long one back to the delivery worker', async () => {
    let now = 100_000;
    const pacer = new ThreadPacer([[1_000, 2], [60_000, 3]], () => now, 0, 3_000);
    await pacer.reserve('t');
    await pacer.reserve('t');
    now += 1_000; // the 1 s window has room again; the minute window has one slot left
    await pacer.reserve('t');
    const error = await pacer.reserve('t').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryLaterError);
    expect((error as RetryLaterError).retryAfterMs).toBe(59_000);
    // Another thread is not held by this one's limit.
    await expect(pacer.reserve('other')).resolves.toBeUndefined();
  });

  it('reads Retry-After as seconds or as a date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(new Date(61_000).toUTCString(), 1_000)).toBe(60_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('Teams configuration from the environment', () => {
  const base = { TEAMS_CHANNEL_ID: '19:ops@thread.tacv2' };

  it('is off without TEAMS_CHANNEL_ID, so the bridge can run Slack-only', () => {
    expect(teamsConfigFromEnv({})).toBeUndefined();
  });

  it('reads the Bot Framework variables with sensible defaults', () => {
    expect(teamsConfigFromEnv({ ...base, MICROSOFT_APP_ID: 'app', MICROSOFT_APP_PASSWORD: 'pw', TEAMS_QUEUE_CHANNELS: 'billing=19:bill@thread.tacv2' })).toEqual({
      appId: 'app',
      appPassword: 'pw',
      tenantId: '',
      appType: 'MultiTenant',
      channelId: '19:ops@thread.tacv2',
      serviceUrl: 'https://smba.trafficmanager.net/teams/',
      queueChannels: { billing: '19:bill@thread.tacv2' },
    });
  });

  it.each([
    [{ TEAMS_CHANNEL_ID: 'general' }, 'TEAMS_CHANNEL_ID'],
    [{ ...base, MICROSOFT_APP_TYPE: 'Personal' }, 'MICROSOFT_APP_TYPE'],
    [{ ...base, MICROSOFT_APP_ID: 'app' }, 'MICROSOFT_APP_PASSWORD'],
    [{ ...base, MICROSOFT_APP_ID: 'app', MICROSOFT_APP_PASSWORD: 'pw', MICROSOFT_APP_TYPE: 'SingleTenant' }, 'MICROSOFT_APP_TENANT_ID'],
    [{ ...base, MICROSOFT_APP_ID: 'app', MICROSOFT_APP_TYPE: 'UserAssignedMSI' }, 'MICROSOFT_APP_TENANT_ID'],
    [{ ...base, TEAMS_SERVICE_URL: 'smba' }, 'TEAMS_SERVICE_URL'],
    [{ ...base, TEAMS_QUEUE_CHANNELS: 'billing' }, 'TEAMS_QUEUE_CHANNELS'],
  ])('names the variable to fix: %j → %s', (env, variable) => {
    expect(() => teamsConfigFromEnv(env)).toThrow(ConfigError);
    expect(() => teamsConfigFromEnv(env)).toThrow(variable);
  });

  it("opens a queue's threads in its own channel when it has one", () => {
    const config = { channelId: '19:ops@thread.tacv2', queueChannels: { billing: '19:bill@thread.tacv2' } };
    expect(channelForQueue(config, 'billing')).toBe('19:bill@thread.tacv2');
    expect(channelForQueue(config, 'general')).toBe('19:ops@thread.tacv2');
  });
});
