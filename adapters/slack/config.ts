/**
 * The Slack workspace's configuration, read from the environment with a zod schema. Every problem
 * is one `ConfigError` line naming the variable to fix; a secret is never echoed whole.
 */
import { z } from 'zod';
import { ConfigError } from '../../src/errors.ts';

/** What the Slack workspace needs. */
export interface SlackConfig {
  /** Bot token (`xoxb-...`): posts and updates messages, opens modals. */
  botToken: string;
  /** Verifies that HTTP requests come from Slack. Required in HTTP mode; Socket Mode does without. */
  signingSecret?: string;
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
  /** The managers' channel: unclaimed escalations that waited too long, and the daily digest. */
  managersChannelId?: string;
  /** Queue name -> user group id (`S...`) mentioned by reminders in that queue's threads; `*` for any queue. */
  oncallGroups?: Record<string, string>;
}

/** Slack's Web API base URL. */
export const DEFAULT_SLACK_API_URL = 'https://slack.com/api/';

const CHANNEL_ID = /^[CG][A-Z0-9]{5,}$/;
const USER_GROUP_ID = /^S[A-Z0-9]{5,}$/;

/** True when the environment asks for Slack at all (a bot token is set). */
export function slackConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.SLACK_BOT_TOKEN?.trim());
}

/** A value shown in an error: enough to recognise, never a whole secret. */
const shown = (value: string, secret: boolean) => (secret || value.length > 40 ? `"${value.slice(0, 6)}..."` : `"${value}"`);

/** An optional variable (empty counts as unset) that must pass `check` when set. */
function variable(expected: string, check: (v: string) => boolean, secret = false) {
  return z.preprocess(
    (v) => (typeof v === 'string' && v.trim() ? v.trim() : undefined),
    z
      .string()
      .optional()
      .superRefine((v, ctx) => {
        if (v !== undefined && !check(v)) ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${shown(v, secret)}` });
      }),
  );
}

/** `queue=id` (or `queue:id`) pairs separated by commas, each id passing `check`. */
function pairs(example: string, what: string, check: (v: string) => boolean) {
  return z.preprocess(
    (v) => (typeof v === 'string' && v.trim() ? v.trim() : undefined),
    z
      .string()
      .optional()
      .transform((raw, ctx) => {
        if (raw === undefined) return undefined;
        const map: Record<string, string> = {};
        for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
          const [queue, id, extra] = pair.split(/[=:]/).map((s) => s.trim());
          if (!queue || !id || extra !== undefined || !check(id)) {
            ctx.addIssue({ code: 'custom', message: `expected queue=${what} pairs separated by commas (${example}), got "${pair}"` });
            return z.NEVER;
          }
          map[queue] = id;
        }
        return map;
      }),
  );
}

const EXPECTED = {
  SLACK_BOT_TOKEN: 'the Bot User OAuth Token (xoxb-...) from the app\'s "OAuth & Permissions" page',
  SLACK_SIGNING_SECRET: 'the Signing Secret from the app\'s "Basic Information" page',
  SLACK_CHANNEL_ID: 'a channel id like C0123456789 (channel details, bottom of the "About" tab)',
} as const;

const SlackEnvSchema = z
  .object({
    SLACK_BOT_TOKEN: variable(EXPECTED.SLACK_BOT_TOKEN, (v) => v.startsWith('xoxb-'), true),
    SLACK_SIGNING_SECRET: variable(EXPECTED.SLACK_SIGNING_SECRET, (v) => /^[0-9a-f]{16,}$/i.test(v), true),
    SLACK_CHANNEL_ID: variable(EXPECTED.SLACK_CHANNEL_ID, (v) => CHANNEL_ID.test(v)),
    SLACK_APP_TOKEN: variable('an app-level token (xapp-...) with the connections:write scope, or leave it unset to use HTTP', (v) => v.startsWith('xapp-'), true),
    SLACK_API_URL: variable(`an http(s) URL like ${DEFAULT_SLACK_API_URL}`, (v) => /^https?:\/\//.test(v)),
    SLACK_QUEUE_CHANNELS: pairs('billing=C0123456789', 'channelId', (v) => CHANNEL_ID.test(v)),
    SLACK_MANAGERS_CHANNEL_ID: variable('the managers\' channel id like C0123456789', (v) => CHANNEL_ID.test(v)),
    SLACK_ONCALL_GROUPS: pairs('general:S0123ABCD,billing:S0456EFGH; * for any queue', 'userGroupId', (v) => USER_GROUP_ID.test(v)),
  })
  .superRefine((env, ctx) => {
    const required = (name: keyof typeof EXPECTED) => {
      if (env[name] === undefined) ctx.addIssue({ code: 'custom', path: [name], message: `required for Slack; ${EXPECTED[name]}` });
    };
    required('SLACK_BOT_TOKEN');
    // Socket Mode requests come over a connection opened with the app token: nothing to sign.
    if (!env.SLACK_APP_TOKEN) required('SLACK_SIGNING_SECRET');
    required('SLACK_CHANNEL_ID');
  });

/**
 * Reads SLACK_BOT_TOKEN, SLACK_CHANNEL_ID, SLACK_SIGNING_SECRET (HTTP mode), optional
 * SLACK_APP_TOKEN (Socket Mode), SLACK_API_URL, SLACK_QUEUE_CHANNELS (`billing=C123,accounts=C456`),
 * SLACK_MANAGERS_CHANNEL_ID and SLACK_ONCALL_GROUPS (`general:S0123,billing:S0456`).
 */
export function slackConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SlackConfig {
  const parsed = SlackEnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(String(issue.path[0]), issue.message);
  }
  const e = parsed.data;
  return {
    botToken: e.SLACK_BOT_TOKEN!,
    ...(e.SLACK_SIGNING_SECRET ? { signingSecret: e.SLACK_SIGNING_SECRET } : {}),
    channelId: e.SLACK_CHANNEL_ID!,
    ...(e.SLACK_APP_TOKEN ? { appToken: e.SLACK_APP_TOKEN } : {}),
    ...(e.SLACK_API_URL ? { apiUrl: e.SLACK_API_URL } : {}),
    ...(e.SLACK_QUEUE_CHANNELS ? { queueChannels: e.SLACK_QUEUE_CHANNELS } : {}),
    ...(e.SLACK_MANAGERS_CHANNEL_ID ? { managersChannelId: e.SLACK_MANAGERS_CHANNEL_ID } : {}),
    ...(e.SLACK_ONCALL_GROUPS ? { oncallGroups: e.SLACK_ONCALL_GROUPS } : {}),
  };
}

/** The on-call user group a reminder in `queue`'s thread mentions, if one is configured. */
export function oncallGroupFor(config: Pick<SlackConfig, 'oncallGroups'>, queue: string): string | undefined {
  return config.oncallGroups?.[queue] ?? config.oncallGroups?.['*'];
}

/** The API URL with the trailing slash the WebClient expects. */
export function normalizeApiUrl(apiUrl: string | undefined): string {
  const url = apiUrl ?? DEFAULT_SLACK_API_URL;
  return url.endsWith('/') ? url : url + '/';
}
