/**
 * Email channel configuration: the typed config object with its defaults, and the reader that
 * builds it from environment variables for main.ts (each error names the variable to fix).
 */
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { ConfigError } from '../../src/errors.ts';
import { parseAddress } from './threading.ts';

export interface EmailChannelConfig {
  /** Port of the built-in inbound SMTP server (`SMTP_INBOUND_PORT`); 0 picks a free one. */
  inboundPort: number;
  /** Interface to listen on. Default `0.0.0.0`. */
  inboundHost?: string;
  /** The support address customers write to (`EMAIL_ADDRESS`), e.g. `support@acme.com`. */
  address: string;
  /** Outbound SMTP server as a URL (`SMTP_URL`), e.g. `smtps://user:pass@smtp.acme.com:465`. */
  smtpUrl: string;
  /** The name customers know us by, shown as "Dana via <brandName>". Default `Support`. */
  brandName?: string;
  /** Inbound mail larger than this is refused with 552. Default 10 MB. */
  maxMessageBytes?: number;
  /** Host name the inbound server greets with. Default: the address's domain. */
  serverName?: string;
  /** PEM key and certificate for STARTTLS on the inbound server (recommended on a public port). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /**
   * Authserv-ids of the receiving relay whose `Authentication-Results` we believe
   * (`EMAIL_AUTHSERV_ID`, e.g. `mx.google.com`). Without one every sender counts as unverified.
   */
  authservIds?: string[];
  /** IP addresses or CIDR ranges of that relay (`EMAIL_TRUSTED_RELAYS`); when set, mail from elsewhere is unverified. */
  trustedRelays?: string[];
  /** From addresses or `@domains` whose Reply-To names the customer: your contact forms (`EMAIL_TRUST_REPLY_TO`). */
  replyToTrusted?: string[];
  /**
   * New conversations that get automatic replies, per sender address and per sender domain, in
   * `windowMs` (`EMAIL_AUTO_REPLIES_PER_ADDRESS` default 5, `EMAIL_AUTO_REPLIES_PER_DOMAIN` default
   * 50, per hour). Over it a conversation is still opened and mirrored, with no automatic reply. 0: no limit.
   */
  autoReplyLimit?: { perAddress?: number; perDomain?: number; windowMs?: number };
  /** Inbound connections at once (`SMTP_INBOUND_MAX_CONNECTIONS`, default 100). */
  maxConnections?: number;
  /** Inbound connections at once from one IP (`SMTP_INBOUND_MAX_CONNECTIONS_PER_IP`, default 10). */
  maxConnectionsPerIp?: number;
  /** A connection that sends no `MAIL FROM` for this long is closed (`SMTP_INBOUND_PRE_MAIL_TIMEOUT_MS`, default 10000). */
  preMailTimeoutMs?: number;
  /** Messages over `spoolMemoryBytes` parsed at once (`EMAIL_PARSE_CONCURRENCY`, default 1); others wait on disk. */
  parseConcurrency?: number;
  /** Where messages over `spoolMemoryBytes` are kept while handled (`EMAIL_SPOOL_DIR`, default the OS temp dir). */
  spoolDir?: string;
  /** Default 256 KB. */
  spoolMemoryBytes?: number;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
export const DEFAULT_BRAND_NAME = 'Support';
export const DEFAULT_INBOUND_PORT = 2525;
export const DEFAULT_AUTO_REPLIES_PER_ADDRESS = 5;
export const DEFAULT_AUTO_REPLIES_PER_DOMAIN = 50;
export const AUTO_REPLY_WINDOW_MS = 60 * 60 * 1000;

/** The config with every default filled in and checked. */
export type ResolvedEmailConfig = Required<Omit<EmailChannelConfig, 'tls' | 'autoReplyLimit'>> & {
  tls?: EmailChannelConfig['tls'];
  autoReplyLimit: { perAddress: number; perDomain: number; windowMs: number };
};

function wholeNumber(value: number | undefined, fallback: number, variable: string, min: number): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < min) throw new ConfigError(variable, `expected a whole number of at least ${min}, got ${value}`);
  return n;
}

/** `1.2.3.4`, `2001:db8::1`, `10.0.0.0/8`, `2001:db8::/32`. */
function validRelay(entry: string): boolean {
  const [ip, prefix, extra] = entry.split('/');
  const family = isIP(ip ?? '');
  if (!family || extra !== undefined) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return /^\d+$/.test(prefix) && bits <= (family === 4 ? 32 : 128);
}

/** Fills defaults and validates; throws ConfigError naming the setting. */
export function resolveEmailConfig(config: EmailChannelConfig): ResolvedEmailConfig {
  const address = parseAddress(config.address);
  if (!address) throw new ConfigError('EMAIL_ADDRESS', `expected one email address like support@acme.com, got "${config.address}"`);
  if (address.local.includes('+')) {
    throw new ConfigError('EMAIL_ADDRESS', 'use the plain address without a +tag; reply tokens are added after a "+"');
  }
  if (!Number.isInteger(config.inboundPort) || config.inboundPort < 0 || config.inboundPort > 65535) {
    throw new ConfigError('SMTP_INBOUND_PORT', `expected a port number 0-65535, got ${config.inboundPort}`);
  }
  try {
    const url = new URL(config.smtpUrl);
    if (!['smtp:', 'smtps:'].includes(url.protocol)) throw new Error('protocol');
  } catch {
    throw new ConfigError('SMTP_URL', 'expected smtp://[user:pass@]host[:port] or smtps://... for the outbound mail server');
  }
  const maxMessageBytes = config.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1024) {
    throw new ConfigError('EMAIL_MAX_MESSAGE_BYTES', `expected a whole number of bytes of at least 1024, got ${maxMessageBytes}`);
  }
  const trustedRelays = (config.trustedRelays ?? []).map((r) => r.trim()).filter(Boolean);
  const badRelay = trustedRelays.find((r) => !validRelay(r));
  if (badRelay) throw new ConfigError('EMAIL_TRUSTED_RELAYS', `expected IP addresses or CIDR ranges (10.0.0.0/8), got "${badRelay}"`);
  const replyToTrusted = (config.replyToTrusted ?? []).map((r) => r.trim().toLowerCase()).filter(Boolean);
  const badSender = replyToTrusted.find((r) => !(r.startsWith('@') ? parseAddress(`x${r}`) : parseAddress(r)));
  if (badSender) throw new ConfigError('EMAIL_TRUST_REPLY_TO', `expected addresses (forms@acme.com) or domains (@forms.acme.com), got "${badSender}"`);
  const limit = config.autoReplyLimit ?? {};
  return {
    inboundPort: config.inboundPort,
    inboundHost: config.inboundHost ?? '0.0.0.0',
    address: `${address.local}@${address.domain}`,
    smtpUrl: config.smtpUrl,
    brandName: config.brandName?.trim() || DEFAULT_BRAND_NAME,
    maxMessageBytes,
    serverName: config.serverName ?? address.domain,
    ...(config.tls ? { tls: config.tls } : {}),
    authservIds: (config.authservIds ?? []).map((id) => id.trim().toLowerCase()).filter(Boolean),
    trustedRelays,
    replyToTrusted,
    autoReplyLimit: {
      perAddress: wholeNumber(limit.perAddress, DEFAULT_AUTO_REPLIES_PER_ADDRESS, 'EMAIL_AUTO_REPLIES_PER_ADDRESS', 0),
      perDomain: wholeNumber(limit.perDomain, DEFAULT_AUTO_REPLIES_PER_DOMAIN, 'EMAIL_AUTO_REPLIES_PER_DOMAIN', 0),
      windowMs: wholeNumber(limit.windowMs, AUTO_REPLY_WINDOW_MS, 'EMAIL_AUTO_REPLY_WINDOW_MS', 1),
    },
    maxConnections: wholeNumber(config.maxConnections, 100, 'SMTP_INBOUND_MAX_CONNECTIONS', 1),
    maxConnectionsPerIp: wholeNumber(config.maxConnectionsPerIp, 10, 'SMTP_INBOUND_MAX_CONNECTIONS_PER_IP', 1),
    preMailTimeoutMs: wholeNumber(config.preMailTimeoutMs, 10_000, 'SMTP_INBOUND_PRE_MAIL_TIMEOUT_MS', 1),
    parseConcurrency: wholeNumber(config.parseConcurrency, 1, 'EMAIL_PARSE_CONCURRENCY', 1),
    spoolDir: config.spoolDir?.trim() || tmpdir(),
    spoolMemoryBytes: wholeNumber(config.spoolMemoryBytes, 256 * 1024, 'EMAIL_SPOOL_MEMORY_BYTES', 0),
  };
}

/** A comma-separated list; undefined when unset or empty. */
function list(value: string | undefined): string[] | undefined {
  const items = value?.split(',').map((s) => s.trim()).filter(Boolean);
  return items?.length ? items : undefined;
}

/** A whole number from the environment; undefined when unset, NaN (refused later) when not a number. */
function num(value: string | undefined): number | undefined {
  return value?.trim() ? Number(value) : undefined;
}

/**
 * Reads the email channel's settings from the environment. Returns undefined when
 * `EMAIL_ADDRESS` is unset (the channel is off); throws ConfigError when it is set but the rest
 * is missing or wrong.
 *
 * `EMAIL_ADDRESS` (required to enable), `SMTP_URL` (required), `SMTP_INBOUND_PORT` (default 2525),
 * `SMTP_INBOUND_HOST` (default 0.0.0.0), `EMAIL_BRAND_NAME` (default "Support"),
 * `EMAIL_MAX_MESSAGE_BYTES` (default 10485760), `EMAIL_TLS_KEY` / `EMAIL_TLS_CERT` (PEM text, optional),
 * and the sender and abuse settings documented on `EmailChannelConfig` (docs/email.md lists them all).
 */
export function emailConfigFromEnv(env: Record<string, string | undefined>): EmailChannelConfig | undefined {
  const address = env.EMAIL_ADDRESS?.trim();
  if (!address) return undefined;
  const smtpUrl = env.SMTP_URL?.trim();
  if (!smtpUrl) throw new ConfigError('SMTP_URL', 'required when EMAIL_ADDRESS is set: the outbound mail server, e.g. smtp://user:pass@smtp.acme.com:587');
  const port = env.SMTP_INBOUND_PORT?.trim() ? Number(env.SMTP_INBOUND_PORT) : DEFAULT_INBOUND_PORT;
  const maxBytes = env.EMAIL_MAX_MESSAGE_BYTES?.trim() ? Number(env.EMAIL_MAX_MESSAGE_BYTES) : undefined;
  const key = env.EMAIL_TLS_KEY;
  const cert = env.EMAIL_TLS_CERT;
  if (Boolean(key) !== Boolean(cert)) {
    throw new ConfigError(key ? 'EMAIL_TLS_CERT' : 'EMAIL_TLS_KEY', 'set both EMAIL_TLS_KEY and EMAIL_TLS_CERT (PEM), or neither');
  }
  const config: EmailChannelConfig = {
    address,
    smtpUrl,
    inboundPort: port,
    ...(env.SMTP_INBOUND_HOST?.trim() ? { inboundHost: env.SMTP_INBOUND_HOST.trim() } : {}),
    ...(env.EMAIL_BRAND_NAME?.trim() ? { brandName: env.EMAIL_BRAND_NAME.trim() } : {}),
    ...(maxBytes !== undefined ? { maxMessageBytes: maxBytes } : {}),
    ...(key && cert ? { tls: { key, cert } } : {}),
  };
  const optional: Partial<EmailChannelConfig> = {
    authservIds: list(env.EMAIL_AUTHSERV_ID),
    trustedRelays: list(env.EMAIL_TRUSTED_RELAYS),
    replyToTrusted: list(env.EMAIL_TRUST_REPLY_TO),
    maxConnections: num(env.SMTP_INBOUND_MAX_CONNECTIONS),
    maxConnectionsPerIp: num(env.SMTP_INBOUND_MAX_CONNECTIONS_PER_IP),
    preMailTimeoutMs: num(env.SMTP_INBOUND_PRE_MAIL_TIMEOUT_MS),
    parseConcurrency: num(env.EMAIL_PARSE_CONCURRENCY),
    spoolDir: env.EMAIL_SPOOL_DIR?.trim() || undefined,
  };
  for (const [name, value] of Object.entries(optional)) if (value !== undefined) (config as unknown as Record<string, unknown>)[name] = value;
  const perAddress = num(env.EMAIL_AUTO_REPLIES_PER_ADDRESS);
  const perDomain = num(env.EMAIL_AUTO_REPLIES_PER_DOMAIN);
  if (perAddress !== undefined || perDomain !== undefined) {
    config.autoReplyLimit = { ...(perAddress !== undefined ? { perAddress } : {}), ...(perDomain !== undefined ? { perDomain } : {}) };
  }
  resolveEmailConfig(config);
  return config;
}
