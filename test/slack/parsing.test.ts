/**
 * The pure parts of the Slack adapter: request signatures, which message events are operator
 * replies, `/return` text, files, configuration from the environment, and error classification.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { slackConfigFromEnv, normalizeApiUrl } from '../../adapters/slack/config.ts';
import { SlackRefusedError, SlackUnavailableError, translateError } from '../../adapters/slack/api.ts';
import { RetryLaterError } from '../../src/delivery/outcome.ts';
import { filesToAttachments, mentionedUsers, parseHandBackText, threadReplyOf } from '../../adapters/slack/parse.ts';
import { parseSlackBody } from '../../adapters/slack/receiver.ts';
import { signSlackBody, verifySlackSignature } from '../../adapters/slack/signature.ts';

const SECRET = '8f742231b10e8888abcd99b1a1c2d3e4';

describe('request signatures', () => {
  const now = 1_700_000_000_000;
  const ts = String(now / 1000);
  const body = 'token=x&command=%2Freturn';

  it("accepts Slack's signature (the documented example shape)", () => {
    const signature = signSlackBody(SECRET, ts, body);
    expect(signature).toMatch(/^v0=[0-9a-f]{64}$/);
    expect(verifySlackSignature({ signingSecret: SECRET, body, timestamp: ts, signature, nowMs: now })).toEqual({ ok: true });
  });

  it('rejects a changed body, another secret, a stale or future timestamp and missing headers', () => {
    const signature = signSlackBody(SECRET, ts, body);
    expect(verifySlackSignature({ signingSecret: SECRET, body: body + 'x', timestamp: ts, signature, nowMs: now })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(verifySlackSignature({ signingSecret: 'other', body, timestamp: ts, signature, nowMs: now })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(verifySlackSignature({ signingSecret: SECRET, body, timestamp: ts, signature, nowMs: now + 301_000 })).toEqual({ ok: false, reason: 'stale' });
    expect(verifySlackSignature({ signingSecret: SECRET, body, timestamp: ts, signature, nowMs: now - 301_000 })).toEqual({ ok: false, reason: 'stale' });
    expect(verifySlackSignature({ signingSecret: SECRET, body, timestamp: 'abc', signature, nowMs: now })).toEqual({ ok: false, reason: 'stale' });
    expect(verifySlackSignature({ signingSecret: SECRET, body, timestamp: undefined, signature, nowMs: now })).toEqual({ ok: false, reason: 'missing_headers' });
    expect(verifySlackSignature({ signingSecret: SECRET, body, timestamp: ts, signature: 'v0=short', nowMs: now })).toEqual({ ok: false, reason: 'bad_signature' });
  });
});

describe('reading Slack requests', () => {
  it('parses JSON events, payload= forms and slash command forms', () => {
    expect(parseSlackBody('{"type":"event_callback","event":{"type":"message"}}', 'application/json')).toEqual({ type: 'event_callback', event: { type: 'message' } });
    expect(parseSlackBody(new URLSearchParams({ payload: '{"type":"block_actions"}' }).toString(), 'application/x-www-form-urlencoded')).toEqual({ type: 'block_actions' });
    expect(parseSlackBody('command=%2Freturn&text=HB-1%20ok', 'application/x-www-form-urlencoded')).toEqual({ command: '/return', text: 'HB-1 ok' });
  });

  it('refuses a body that is not an object, or that Bolt could not route', () => {
    const form = (payload: string) => new URLSearchParams({ payload }).toString();
    for (const [raw, type] of [
      ['null', 'application/json'],
      ['[]', 'application/json'],
      ['"x"', 'application/json'],
      ['5', 'application/json'],
      ['{', 'application/json'],
      [form('null'), 'application/x-www-form-urlencoded'],
      [form('[1]'), 'application/x-www-form-urlencoded'],
      ['{"type":"event_callback"}', 'application/json'],
      ['{"type":"event_callback","event":null}', 'application/json'],
      ['{"type":"event_callback","event":{"channel":"C1"}}', 'application/json'],
      [form('{"type":"block_actions","actions":null}'), 'application/x-www-form-urlencoded'],
      [form('{"type":"block_actions","actions":[]}'), 'application/x-www-form-urlencoded'],
      [form('{"type":"view_submission"}'), 'application/x-www-form-urlencoded'],
      [form('{"type":"block_actions","user":5,"actions":[{}]}'), 'application/x-www-form-urlencoded'],
    ] as const) {
      expect(() => parseSlackBody(raw, type), raw).toThrow();
    }
  });

  it('takes only human replies inside a thread', () => {
    const base = { type: 'message', channel: 'C1', user: 'U1', text: 'hi', ts: '2.0', thread_ts: '1.0' };
    expect(threadReplyOf(base)).toEqual({ reply: { channel: 'C1', threadTs: '1.0', ts: '2.0', user: 'U1', text: 'hi', files: [] } });
    expect(threadReplyOf({ ...base, subtype: 'file_share', files: [{ id: 'F1' }] })).toMatchObject({ reply: { files: [{ id: 'F1' }] } });
    for (const subtype of ['message_changed', 'message_deleted', 'thread_broadcast', 'channel_join', 'bot_message', 'message_replied', 'group_join']) {
      expect(threadReplyOf({ ...base, subtype })).toHaveProperty('ignore');
    }
    expect(threadReplyOf({ ...base, bot_id: 'B1' })).toHaveProperty('ignore');
    expect(threadReplyOf({ ...base, thread_ts: undefined })).toHaveProperty('ignore');
    expect(threadReplyOf({ ...base, thread_ts: '2.0' })).toHaveProperty('ignore');
    expect(threadReplyOf({ ...base, user: undefined })).toHaveProperty('ignore');
  });

  it('reads an optional ticket and a note after /return', () => {
    expect(parseHandBackText('')).toEqual({});
    expect(parseHandBackText('  refund approved  ')).toEqual({ note: 'refund approved' });
    expect(parseHandBackText('hb-1042 refund approved')).toEqual({ ticket: 'HB-1042', note: 'refund approved' });
    expect(parseHandBackText('HB-1042: done')).toEqual({ ticket: 'HB-1042', note: 'done' });
    expect(parseHandBackText('HB-1042')).toEqual({ ticket: 'HB-1042' });
  });

  it('lists mentioned users and turns files into attachments', () => {
    expect(mentionedUsers('hi <@U1> and <@W2|sam> and <@U1>')).toEqual(['U1', 'W2']);
    const files = [
      { id: 'F1', name: 'a.pdf', mimetype: 'application/pdf', size: 3, url_private: 'https://files.slack.com/a', permalink: 'https://x.slack.com/files/a' },
      { id: 'F2', mode: 'tombstone' },
      { id: 'F3', title: 'b', permalink_public: 'https://slack-files.com/b' },
    ];
    expect(filesToAttachments(files)).toEqual([
      { name: 'a.pdf', url: 'https://x.slack.com/files/a', contentType: 'application/pdf', size: 3 },
      { name: 'b', url: 'https://slack-files.com/b' },
    ]);
    expect(filesToAttachments(files, (f) => `https://bridge/${f.id}`).map((a) => a.url)).toEqual(['https://bridge/F1', 'https://bridge/F3']);
  });
});

describe('Slack configuration', () => {
  const env = { SLACK_BOT_TOKEN: 'xoxb-1-2-abc', SLACK_SIGNING_SECRET: SECRET, SLACK_CHANNEL_ID: 'C0123456789' };

  it('reads the environment, HTTP mode without an app token', () => {
    expect(slackConfigFromEnv(env)).toEqual({ botToken: 'xoxb-1-2-abc', signingSecret: SECRET, channelId: 'C0123456789' });
    expect(slackConfigFromEnv({ ...env, SLACK_APP_TOKEN: 'xapp-1-A', SLACK_API_URL: 'http://127.0.0.1:9/api', SLACK_QUEUE_CHANNELS: 'billing=C0BILLING1, accounts=G0ACCOUNT1' })).toMatchObject({
      appToken: 'xapp-1-A',
      apiUrl: 'http://127.0.0.1:9/api',
      queueChannels: { billing: 'C0BILLING1', accounts: 'G0ACCOUNT1' },
    });
    expect(normalizeApiUrl('http://127.0.0.1:9/api')).toBe('http://127.0.0.1:9/api/');
    expect(normalizeApiUrl(undefined)).toBe('https://slack.com/api/');
  });

  it('names the variable to fix', () => {
    const error = (overrides: Record<string, string | undefined>) => {
      try {
        slackConfigFromEnv({ ...env, ...overrides });
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('expected a ConfigError');
    };
    expect(error({ SLACK_BOT_TOKEN: undefined }).variable).toBe('SLACK_BOT_TOKEN');
    expect(error({ SLACK_BOT_TOKEN: 'xoxp-user' }).message).toContain('xoxb-');
    expect(error({ SLACK_SIGNING_SECRET: '' }).variable).toBe('SLACK_SIGNING_SECRET');
    expect(error({ SLACK_CHANNEL_ID: '#support' }).message).toContain('channel id');
    expect(error({ SLACK_APP_TOKEN: 'xoxb-wrong' }).variable).toBe('SLACK_APP_TOKEN');
    expect(error({ SLACK_API_URL: 'slack.com' }).variable).toBe('SLACK_API_URL');
    expect(error({ SLACK_QUEUE_CHANNELS: 'billing' }).variable).toBe('SLACK_QUEUE_CHANNELS');
    expect(error({ SLACK_MANAGERS_CHANNEL_ID: '#managers' }).variable).toBe('SLACK_MANAGERS_CHANNEL_ID');
    expect(error({ SLACK_ONCALL_GROUPS: 'general:U0123ABCD' }).message).toBe(
      'SLACK_ONCALL_GROUPS: expected queue=userGroupId pairs separated by commas (general:S0123ABCD,billing:S0456EFGH; * for any queue), got "general:U0123ABCD"',
    );
    // One line, and a secret is never echoed whole.
    const secret = error({ SLACK_SIGNING_SECRET: 'not-hex-but-very-secret' });
    expect(secret.message).not.toContain('very-secret');
    expect(secret.message).not.toContain('\n');
  });

  it('needs no signing secret in Socket Mode, and reads the managers channel and on-call groups', () => {
    const socket = slackConfigFromEnv({ ...env, SLACK_SIGNING_SECRET: undefined, SLACK_APP_TOKEN: 'xapp-1-A' });
    expect(socket.signingSecret).toBeUndefined();
    expect(socket.appToken).toBe('xapp-1-A');
    expect(slackConfigFromEnv({ ...env, SLACK_MANAGERS_CHANNEL_ID: 'C0MANAGERS', SLACK_ONCALL_GROUPS: 'general:S0123ABCD, billing=S0456EFGH, *:S0ALLQUEUE' })).toMatchObject({
      managersChannelId: 'C0MANAGERS',
      oncallGroups: { general: 'S0123ABCD', billing: 'S0456EFGH', '*': 'S0ALLQUEUE' },
    });
  });
});

describe('what a failed Slack call means', () => {
  it('a 429 waits for Retry-After, an outage or a setup problem is retried, a refusal is final', () => {
    const rateLimited = translateError('chat.postMessage', { code: 'slack_webapi_rate_limited_error', retryAfter: 7 });
    expect(rateLimited).toBeInstanceOf(RetryLaterError);
    expect((rateLimited as RetryLaterError).retryAfterMs).toBe(7000);
    expect(translateError('chat.postMessage', { code: 'slack_webapi_http_error', statusCode: 503 })).toBeInstanceOf(SlackUnavailableError);
    expect(translateError('chat.postMessage', { code: 'slack_webapi_request_error', message: 'socket hang up' })).toBeInstanceOf(SlackUnavailableError);
    expect(translateError('chat.postMessage', { code: 'slack_webapi_platform_error', data: { error: 'internal_error' } })).toBeInstanceOf(SlackUnavailableError);
    // An admin can fix these (invite the bot, renew the token): the thread waits for it.
    expect(translateError('chat.postMessage', { code: 'slack_webapi_platform_error', data: { error: 'not_in_channel' } })).toBeInstanceOf(SlackUnavailableError);
    expect(translateError('chat.postMessage', { code: 'slack_webapi_platform_error', data: { error: 'invalid_auth' } })).toBeInstanceOf(SlackUnavailableError);
    const refused = translateError('chat.postMessage', { code: 'slack_webapi_platform_error', data: { error: 'msg_blocks_too_long' } });
    expect(refused).toBeInstanceOf(SlackRefusedError);
    expect((refused as SlackRefusedError).code).toBe('msg_blocks_too_long');
    expect(translateError('chat.update', { code: 'slack_webapi_http_error', statusCode: 400 })).toBeInstanceOf(SlackRefusedError);
    expect(translateError('chat.postMessage', new Error('boom'))).toBeInstanceOf(SlackUnavailableError);
  });
});
