/**
 * The Slack workspace's configuration, and reading it from the environment with errors that name
 * the variable to fix.
 */
import { ConfigError } from '../../src/errors.ts';

/** What the Slack workspace needs. */
export interface SlackConfig {
  /** Bot token (`xoxb-...`): posts and updates messages, opens modals. */
  botToken: string;
  /** Verifies that HTTP requests come from Slack. */
  signingSecret: string;
  /** App-level token (`xapp-...`, scope `connections:write`). When set, Socket Mode is used instead of HTTP. */
  appToken?: string;
  /** Channel where conversation threads go (and briefings, unless the queue maps elsewhere). */
  channelId: string;
  /** Web API base URL; Slack's by default. Tests point it at a loopback emulator. */
  apiUrl?: string;
  /** Queue name -> channel id: threads and briefings of that queue go there instead of `channelId`. */
  queueChannels?: Record<string, string>;
  /** HTTP path for events, interactivity and slash commands (default `/slack/events`). */
  eventsPath?: string;
}

/** Slack's Web API base URL. */
export const DEFAULT_SLACK_API_URL = 'https://slack.com/api/';

/** True when the environment asks for Slack at all (a bot token is set). */
export function slackConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.SLACK_BOT_TOKEN?.trim());
}

/**
 * Reads SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_CHANNEL_ID, optional SLACK_APP_TOKEN,
 * SLACK_API_URL and SLACK_QUEUE_CHANNELS (`billing=C123,accounts=C456`).
 */
export function slackConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SlackConfig {
  const required = (name: string, expected: string, check: (v: string) => boolean): string => {
    const value = env[name]?.trim();
    if (!value) throw new ConfigError(name, `required for Slack; ${expected}`);
    if (!check(value)) throw new ConfigError(name, `expected ${expected}, got "${value.slice(0, 6)}..."`);
    return value;
  };
  const botToken = required('SLACK_BOT_TOKEN', 'the Bot User OAuth Token (xoxb-...) from the app\'s "OAuth & Permissions" page', (v) => v.startsWith('xoxb-'));
  const signingSecret = required('SLACK_SIGNING_SECRET', 'the Signing Secret from the app\'s "Basic Information" page', (v) => /^[0-9a-f]{16,}$/i.test(v));
  const channelId = required('SLACK_CHANNEL_ID', 'a channel id like C0123456789 (channel details, bottom of the "About" tab)', (v) => /^[CG][A-Z0-9]{5,}$/.test(v));
  const appToken = env.SLACK_APP_TOKEN?.trim();
  if (appToken && !appToken.startsWith('xapp-')) throw new ConfigError('SLACK_APP_TOKEN', 'expected an app-level token (xapp-...) with the connections:write scope, or leave it unset to use HTTP');
  const apiUrl = env.SLACK_API_URL?.trim();
  if (apiUrl && !/^https?:\/\//.test(apiUrl)) throw new ConfigError('SLACK_API_URL', `expected an http(s) URL like ${DEFAULT_SLACK_API_URL}`);
  return {
    botToken,
    signingSecret,
    channelId,
    ...(appToken ? { appToken } : {}),
    ...(apiUrl ? { apiUrl } : {}),
    ...parseQueueChannels(env.SLACK_QUEUE_CHANNELS),
  };
}

function parseQueueChannels(raw: string | undefined): { queueChannels?: Record<string, string> } {
  if (!raw?.trim()) return {};
  const queueChannels: Record<string, string> = {};
  for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [queue, channel] = pair.split('=').map((s) => s.trim());
    if (!queue || !channel || !/^[CG][A-Z0-9]{5,}$/.test(channel)) {
      throw new ConfigError('SLACK_QUEUE_CHANNELS', `expected queue=channelId pairs separated by commas (billing=C0123456789), got "${pair}"`);
    }
    queueChannels[queue] = channel;
  }
  return { queueChannels };
}

/** The API URL with the trailing slash the WebClient expects. */
export function normalizeApiUrl(apiUrl: string | undefined): string {
  const url = apiUrl ?? DEFAULT_SLACK_API_URL;
  return url.endsWith('/') ? url : url + '/';
}
