/**
 * Email channel configuration: the typed config object with its defaults, and the reader that
 * builds it from environment variables for main.ts (each error names the variable to fix).
 */
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
}

export const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
export const DEFAULT_BRAND_NAME = 'Support';
export const DEFAULT_INBOUND_PORT = 2525;

/** The config with every default filled in and checked. */
export type ResolvedEmailConfig = Required<Omit<EmailChannelConfig, 'tls'>> & { tls?: EmailChannelConfig['tls'] };

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
  return {
    inboundPort: config.inboundPort,
    inboundHost: config.inboundHost ?? '0.0.0.0',
    address: `${address.local}@${address.domain}`,
    smtpUrl: config.smtpUrl,
    brandName: config.brandName?.trim() || DEFAULT_BRAND_NAME,
    maxMessageBytes,
    serverName: config.serverName ?? address.domain,
    ...(config.tls ? { tls: config.tls } : {}),
  };
}

/**
 * Reads the email channel's settings from the environment. Returns undefined when
 * `EMAIL_ADDRESS` is unset (the channel is off); throws ConfigError when it is set but the rest
 * is missing or wrong.
 *
 * `EMAIL_ADDRESS` (required to enable), `SMTP_URL` (required), `SMTP_INBOUND_PORT` (default 2525),
 * `SMTP_INBOUND_HOST` (default 0.0.0.0), `EMAIL_BRAND_NAME` (default "Support"),
 * `EMAIL_MAX_MESSAGE_BYTES` (default 10485760), `EMAIL_TLS_KEY` / `EMAIL_TLS_CERT` (PEM text, optional).
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
  resolveEmailConfig(config);
  return config;
}
