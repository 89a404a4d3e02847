/**
 * Teams workspace configuration: Bot Framework credentials, the operators' channel, and where
 * proactive messages go. Read from the environment by `teamsConfigFromEnv`; every problem names
 * the variable to fix.
 */
import { ConfigError } from '../../src/errors.ts';

export type TeamsAppType = 'MultiTenant' | 'SingleTenant' | 'UserAssignedMSI';

export interface TeamsConfig {
  /** Azure Bot app id. Empty disables Bot Framework auth (local and offline tests only). */
  appId: string;
  appPassword: string;
  tenantId: string;
  appType: TeamsAppType;
  /** Channel id (`19:...@thread.tacv2`) where each conversation opens its thread. */
  channelId: string;
  /** Bot Connector base URL for proactive sends (region-specific in Teams). */
  serviceUrl: string;
  /** Queue → channel id, for queues that have their own channel. */
  queueChannels?: Record<string, string>;
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

/** The public Teams Bot Connector endpoint; Teams sends the region-specific one on each activity. */
export const DEFAULT_TEAMS_SERVICE_URL = 'https://smba.trafficmanager.net/teams/';

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
  const config: TeamsConfig = {
    appId,
    appPassword,
    tenantId,
    appType,
    channelId,
    serviceUrl,
    ...(env.TEAMS_QUEUE_CHANNELS?.trim() ? { queueChannels: parseQueueChannels(env.TEAMS_QUEUE_CHANNELS) } : {}),
  };
  validateTeamsConfig(config);
  return config;
}

/** Checks a config object (from env or code) and throws `ConfigError` naming the variable. */
export function validateTeamsConfig(config: TeamsConfig): void {
  if (!/^19:.+/.test(config.channelId)) {
    throw new ConfigError('TEAMS_CHANNEL_ID', `expected a Teams channel id like 19:abc...@thread.tacv2, got "${config.channelId}"`);
  }
  for (const [queue, channel] of Object.entries(config.queueChannels ?? {})) {
    if (!/^19:.+/.test(channel)) throw new ConfigError('TEAMS_QUEUE_CHANNELS', `queue "${queue}" maps to "${channel}", which is not a Teams channel id (19:...)`);
  }
  try {
    const url = new URL(config.serviceUrl);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('protocol');
  } catch {
    throw new ConfigError('TEAMS_SERVICE_URL', `expected an http(s) URL, got "${config.serviceUrl}"`);
  }
  if (!config.appId) return; // auth disabled: local development and offline tests
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

/** The channel a conversation's thread opens in: its queue's channel, else the default. */
export function channelForQueue(config: Pick<TeamsConfig, 'channelId' | 'queueChannels'>, queue: string): string {
  return config.queueChannels?.[queue] ?? config.channelId;
}
