/**
 * Teams workspace configuration: Bot Framework credentials, the operators' channel, and where
 * proactive messages go. Read from the environment by `teamsConfigFromEnv`; every problem names
 * the variable to fix. Bot Framework authentication is required: without `MICROSOFT_APP_ID` the
 * bridge does not start, unless `TEAMS_ALLOW_UNAUTHENTICATED=true` and `HOST` is a loopback address.
 */
import { ConfigError } from '../../src/errors.ts';

export type TeamsAppType = 'MultiTenant' | 'SingleTenant' | 'UserAssignedMSI';

export interface TeamsConfig {
  /** Azure Bot app id. Required unless `allowUnauthenticated`. */
  appId: string;
  appPassword: string;
  tenantId: string;
  appType: TeamsAppType;
  /** Channel id (`19:...@thread.tacv2`) where each conversation opens its thread. */
  channelId: string;
  /** Bot Connector base URL for proactive sends (region-specific in Teams). */
  serviceUrl: string;
  /**
   * No app id and no Bot Framework authentication: local development only. The endpoint then
   * takes requests only from this machine, and never uses the `serviceUrl` they carry.
   * `teamsConfigFromEnv` sets it only when `HOST` is a loopback address.
   */
  allowUnauthenticated?: boolean;
  /** Queue → channel id, for queues that have their own channel. */
  queueChannels?: Record<string, string>;
  /** Channel id where unclaimed escalations and the daily digest go (`TEAMS_MANAGERS_CHANNEL_ID`). */
  managersChannelId?: string;
  /** Queue → the Teams tag a reminder mentions (`TEAMS_ONCALL_TAGS`); `*` for any other queue. */
  oncallTags?: Record<string, OncallTag>;
  /**
   * Where inbound tokens' signing keys are published. Defaults to Microsoft's; tests point it at
   * the loopback emulator, sovereign clouds at theirs.
   */
  openIdMetadataUrl?: string;
  /** One Bot Connector request may take this long before it counts as failed (and is retried). */
  requestTimeoutMs?: number;
  /** After a 429 without Retry-After, the thread waits between this and three times it (default 1000 ms). */
  throttleBackoffMs?: number;
  /** Per-thread pacing windows ([window ms, most requests]); Teams' published limits by default. */
  threadLimits?: ReadonlyArray<readonly [number, number]>;
}

/** A Teams tag: its id (Graph's teamworkTag id) and the name shown in the mention. */
export interface OncallTag {
  id: string;
  name: string;
}

/** Tag ids as Graph gives them (base64), with some room. */
const TAG_ID = /^[A-Za-z0-9+/=_.-]{1,512}$/;

/** The public Teams Bot Connector endpoint; Teams sends the region-specific one on each activity. */
export const DEFAULT_TEAMS_SERVICE_URL = 'https://smba.trafficmanager.net/teams/';

/**
 * Hosts of Microsoft's Teams Bot Connector: the public cloud (`/teams/`, `/amer/`, `/emea/`... by
 * region), GCC, GCC High and DoD. An activity's `serviceUrl` elsewhere is never called.
 */
export const TEAMS_SERVICE_HOSTS: readonly string[] = [
  'smba.trafficmanager.net',
  'smba.infra.gcc.teams.microsoft.com',
  'smba.infra.gov.teams.microsoft.us',
  'smba.infra.dod.teams.microsoft.us',
];

/** Addresses `HOST` may have for `TEAMS_ALLOW_UNAUTHENTICATED` to be honoured. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

const APP_TYPES: Record<string, TeamsAppType> = {
  multitenant: 'MultiTenant',
  singletenant: 'SingleTenant',
  userassignedmsi: 'UserAssignedMSI',
};

/**
 * Reads the Teams settings from the environment. Returns undefined when Teams is not configured
 * (no `TEAMS_CHANNEL_ID`), so main.ts can run Slack-only.
 */
export function teamsConfigFromEnv(env: NodeJS.ProcessEnv = process.env): TeamsConfig | undefined {
  const channelId = env.TEAMS_CHANNEL_ID?.trim();
  if (!channelId) return undefined;
  const appId = env.MICROSOFT_APP_ID?.trim() ?? '';
  const appPassword = env.MICROSOFT_APP_PASSWORD?.trim() ?? '';
  const tenantId = env.MICROSOFT_APP_TENANT_ID?.trim() ?? '';
  const rawType = env.MICROSOFT_APP_TYPE?.trim() || 'MultiTenant';
  const appType = APP_TYPES[rawType.toLowerCase()];
  if (!appType) throw new ConfigError('MICROSOFT_APP_TYPE', `expected MultiTenant, SingleTenant or UserAssignedMSI, got "${rawType}"`);
  const serviceUrl = env.TEAMS_SERVICE_URL?.trim() || DEFAULT_TEAMS_SERVICE_URL;
  const rawAllow = env.TEAMS_ALLOW_UNAUTHENTICATED?.trim().toLowerCase() ?? '';
  if (!['', 'true', 'false'].includes(rawAllow)) throw new ConfigError('TEAMS_ALLOW_UNAUTHENTICATED', `expected true or false, got "${env.TEAMS_ALLOW_UNAUTHENTICATED}"`);
  // With an app id, authentication is on and the opt-out has nothing to turn off.
  const allowUnauthenticated = rawAllow === 'true' && !appId;
  const config: TeamsConfig = {
    appId,
    appPassword,
    tenantId,
    appType,
    channelId,
    serviceUrl,
    ...(env.TEAMS_QUEUE_CHANNELS?.trim() ? { queueChannels: parseQueueChannels(env.TEAMS_QUEUE_CHANNELS) } : {}),
    ...(env.TEAMS_MANAGERS_CHANNEL_ID?.trim() ? { managersChannelId: env.TEAMS_MANAGERS_CHANNEL_ID.trim() } : {}),
    ...(env.TEAMS_ONCALL_TAGS?.trim() ? { oncallTags: parseOncallTags(env.TEAMS_ONCALL_TAGS) } : {}),
    ...(allowUnauthenticated ? { allowUnauthenticated } : {}),
  };
  validateTeamsConfig(config);
  if (allowUnauthenticated) {
    const host = env.HOST?.trim() || '0.0.0.0';
    if (!isLoopbackHost(host)) {
      throw new ConfigError(
        'TEAMS_ALLOW_UNAUTHENTICATED',
        `honoured only when HOST is a loopback address (127.0.0.1, ::1 or localhost), but HOST is "${host}"; set MICROSOFT_APP_ID instead`,
      );
    }
  }
  return config;
}

/** `127.0.0.1`, `::1` or `localhost`: the only `HOST` values that keep the server off the network. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1'));
}

/** Checks a config object (from env or code) and throws `ConfigError` naming the variable. */
export function validateTeamsConfig(config: TeamsConfig): void {
  if (!/^19:.+/.test(config.channelId)) {
    throw new ConfigError('TEAMS_CHANNEL_ID', `expected a Teams channel id like 19:abc...@thread.tacv2, got "${config.channelId}"`);
  }
  for (const [queue, channel] of Object.entries(config.queueChannels ?? {})) {
    if (!/^19:.+/.test(channel)) throw new ConfigError('TEAMS_QUEUE_CHANNELS', `queue "${queue}" maps to "${channel}", which is not a Teams channel id (19:...)`);
  }
  if (config.managersChannelId !== undefined && !/^19:.+/.test(config.managersChannelId)) {
    throw new ConfigError('TEAMS_MANAGERS_CHANNEL_ID', `expected a Teams channel id like 19:abc...@thread.tacv2, got "${config.managersChannelId}"`);
  }
  for (const [queue, tag] of Object.entries(config.oncallTags ?? {})) {
    if (!TAG_ID.test(tag.id)) throw new ConfigError('TEAMS_ONCALL_TAGS', `queue "${queue}" has "${tag.id}", which is not a Teams tag id (as Graph lists it under /teams/<team id>/tags)`);
    if (!tag.name.trim()) throw new ConfigError('TEAMS_ONCALL_TAGS', `queue "${queue}" has an empty tag name`);
  }
  let url: URL;
  try {
    url = new URL(config.serviceUrl);
  } catch {
    throw new ConfigError('TEAMS_SERVICE_URL', `expected an https URL, got "${config.serviceUrl}"`);
  }
  // The bot's token goes with every request: plain http only to this machine (a local emulator).
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackAddress(url.hostname))) {
    throw new ConfigError('TEAMS_SERVICE_URL', `expected an https URL (http only on this machine), got "${config.serviceUrl}"`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ConfigError('TEAMS_SERVICE_URL', `expected a plain base URL (no credentials, query or fragment), got "${config.serviceUrl}"`);
  }
  if (!config.appId) {
    if (config.allowUnauthenticated) return; // local development on loopback (checked by the caller)
    throw new ConfigError(
      'MICROSOFT_APP_ID',
      "required when TEAMS_CHANNEL_ID is set (the Azure Bot's app id: without it anyone could post to /api/messages); for local development only, TEAMS_ALLOW_UNAUTHENTICATED=true with HOST=127.0.0.1",
    );
  }
  if (config.appType === 'UserAssignedMSI') {
    if (!config.tenantId) throw new ConfigError('MICROSOFT_APP_TENANT_ID', 'required when MICROSOFT_APP_TYPE is UserAssignedMSI');
    if (config.appPassword) throw new ConfigError('MICROSOFT_APP_PASSWORD', 'must be empty when MICROSOFT_APP_TYPE is UserAssignedMSI');
    return;
  }
  if (!config.appPassword) throw new ConfigError('MICROSOFT_APP_PASSWORD', `required when MICROSOFT_APP_ID is set (the Azure Bot's client secret)`);
  if (config.appType === 'SingleTenant' && !config.tenantId) {
    throw new ConfigError('MICROSOFT_APP_TENANT_ID', 'required when MICROSOFT_APP_TYPE is SingleTenant');
  }
}

/**
 * The activity's service URL if the bridge may call it: https on one of Microsoft's Teams hosts,
 * or the configured service URL's own origin. Anything else (another host, a port, credentials in
 * the URL) is undefined.
 */
export function trustedServiceUrl(config: Pick<TeamsConfig, 'serviceUrl'>, raw: unknown): string | undefined {
  if (typeof raw !== 'string' || !raw || raw.length > 2048) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.username || url.password || url.search || url.hash) return undefined;
  const microsoft = url.protocol === 'https:' && url.port === '' && TEAMS_SERVICE_HOSTS.includes(url.hostname.toLowerCase());
  let configured = false;
  try {
    configured = url.origin === new URL(config.serviceUrl).origin;
  } catch {
    // an invalid configured URL matches nothing
  }
  return microsoft || configured ? url.toString() : undefined;
}

/** A literal loopback address or `localhost` (IPv4 127/8, IPv6 ::1, IPv4-mapped 127/8). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return a === 'localhost' || a === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/** `billing=19:a@thread.tacv2,accounts=19:b@thread.tacv2` → { billing: ..., accounts: ... }. */
export function parseQueueChannels(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) throw new ConfigError('TEAMS_QUEUE_CHANNELS', `expected queue=channelId pairs separated by commas, got "${pair}"`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

/**
 * `general:<tag id>,billing:<tag id>:Billing on-call` → { general: { id, name: 'general on-call' }, billing: {...} }.
 * The name is what the mention shows (default `<queue> on-call`); `*` stands for any other queue.
 * Separated by `:` only, since tag ids end in `=`.
 */
export function parseOncallTags(raw: string): Record<string, OncallTag> {
  const out: Record<string, OncallTag> = {};
  for (const entry of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const first = entry.indexOf(':');
    const second = first < 0 ? -1 : entry.indexOf(':', first + 1);
    const queue = first > 0 ? entry.slice(0, first).trim() : '';
    const id = (second < 0 ? entry.slice(first + 1) : entry.slice(first + 1, second)).trim();
    const name = second < 0 ? '' : entry.slice(second + 1).replace(/\s+/g, ' ').trim();
    if (!queue || !id || first < 0) throw new ConfigError('TEAMS_ONCALL_TAGS', `expected queue:tagId[:name] entries separated by commas (general:<tag id>,billing:<tag id>:Billing on-call), got "${entry}"`);
    if (!TAG_ID.test(id)) throw new ConfigError('TEAMS_ONCALL_TAGS', `"${id}" (queue "${queue}") is not a Teams tag id (as Graph lists it under /teams/<team id>/tags)`);
    out[queue] = { id, name: name || (queue === '*' ? 'on-call' : `${queue} on-call`) };
  }
  return out;
}

/** The tag a reminder for `queue` mentions: the queue's own, else the `*` one. */
export function oncallTagFor(config: Pick<TeamsConfig, 'oncallTags'>, queue: string): OncallTag | undefined {
  return config.oncallTags?.[queue] ?? config.oncallTags?.['*'];
}

/** The channel a conversation's thread opens in: its queue's channel, else the default. */
export function channelForQueue(config: Pick<TeamsConfig, 'channelId' | 'queueChannels'>, queue: string): string {
  return config.queueChannels?.[queue] ?? config.channelId;
}
