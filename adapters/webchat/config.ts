/**
 * Web chat settings: defaults, validation, and the environment variables main.ts reads them from.
 * A bad value stops start-up with a ConfigError naming the variable and what it expects.
 */
import { ConfigError } from '../../src/errors.ts';

export interface WebChatConfig {
  /** Signs visitors' session tokens. At least 32 characters; rotating it signs everyone out. */
  sessionSecret: string;
  /** Shared with the host site, which sends `userHash = hex HMAC-SHA256(identitySecret, userId)`. */
  identitySecret?: string;
  /** Refuse sessions without a verified user (needs `identitySecret`). Default false. */
  requireIdentity?: boolean;
  /** The bridge's public base URL (https://support.example.com), used in the embed snippet. Default: from the request. */
  publicUrl?: string;
  /** Shown in the widget header and on status notices. Default "Support". */
  brandName?: string;
  /** What the customer sees as the AI agent's name. Default "Assistant". */
  assistantName?: string;
  /** Longest customer message, in characters. Default 2000. */
  maxMessageChars?: number;
  /** Customer messages per session (one browser, all its tabs) per minute, after a burst of `burst`. Default 20. */
  ratePerMinute?: number;
  /** Messages a customer may send back to back before the rate applies. Default 5. */
  burst?: number;
  /** New sessions per client address per minute. Default 30. */
  sessionsPerMinute?: number;
  /**
   * How long a session token is good for after it was issued. Every hello replaces the token (the
   * old one stops working), and an open socket gets a fresh one at half this age. Default 24 hours.
   */
  tokenTtlMs?: number;
  /** Origins (https://shop.example.com) allowed to embed the widget. Default: any. */
  allowedOrigins?: string[];
  /** Take the client address from X-Forwarded-For (behind a load balancer). Default false. */
  trustProxy?: boolean;
  /** A socket that has not said hello by then is closed. Default 10 s. */
  helloTimeoutMs?: number;
  /** Clock for tokens and rate limits (tests move it). Default Date.now. */
  clock?: () => number;
}

type Optional = 'identitySecret' | 'publicUrl' | 'allowedOrigins';
export type ResolvedWebChatConfig = Required<Omit<WebChatConfig, Optional>> & Pick<WebChatConfig, Optional>;

/** Applies defaults and checks values. */
export function resolveWebChatConfig(config: WebChatConfig): ResolvedWebChatConfig {
  if (typeof config.sessionSecret !== 'string' || config.sessionSecret.length < 32) {
    throw new ConfigError('WEBCHAT_SESSION_SECRET', 'a random secret of at least 32 characters (e.g. `openssl rand -hex 32`)');
  }
  if (config.identitySecret !== undefined && config.identitySecret.length < 16) {
    throw new ConfigError('WEBCHAT_IDENTITY_SECRET', 'at least 16 characters, the same secret the host site signs user ids with');
  }
  if (config.requireIdentity && !config.identitySecret) {
    throw new ConfigError('WEBCHAT_IDENTITY_SECRET', 'required when WEBCHAT_REQUIRE_IDENTITY is on');
  }
  const publicUrl = config.publicUrl?.replace(/\/+$/, '');
  if (publicUrl !== undefined && !/^https?:\/\/[^/\s]+(\/\S*)?$/i.test(publicUrl)) {
    throw new ConfigError('PUBLIC_URL', 'an absolute http(s) URL such as https://support.example.com');
  }
  const positive = (value: number | undefined, fallback: number, variable: string): number => {
    const v = value ?? fallback;
    if (!Number.isFinite(v) || v <= 0) throw new ConfigError(variable, 'a positive number');
    return v;
  };
  return {
    sessionSecret: config.sessionSecret,
    identitySecret: config.identitySecret,
    requireIdentity: config.requireIdentity ?? false,
    publicUrl,
    brandName: config.brandName?.trim() || 'Support',
    assistantName: config.assistantName?.trim() || 'Assistant',
    maxMessageChars: Math.floor(positive(config.maxMessageChars, 2000, 'WEBCHAT_MAX_MESSAGE_CHARS')),
    ratePerMinute: positive(config.ratePerMinute, 20, 'WEBCHAT_RATE_PER_MINUTE'),
    burst: Math.max(1, Math.floor(positive(config.burst, 5, 'WEBCHAT_BURST'))),
    sessionsPerMinute: positive(config.sessionsPerMinute, 30, 'WEBCHAT_SESSIONS_PER_MINUTE'),
    tokenTtlMs: positive(config.tokenTtlMs, 24 * 3600_000, 'WEBCHAT_TOKEN_TTL_MINUTES'),
    allowedOrigins: config.allowedOrigins?.map((o) => o.replace(/\/+$/, '').toLowerCase()),
    trustProxy: config.trustProxy ?? false,
    helloTimeoutMs: positive(config.helloTimeoutMs, 10_000, 'helloTimeoutMs'),
    clock: config.clock ?? Date.now,
  };
}

/**
 * Reads the web chat settings from the environment. Returns undefined when WEBCHAT_SESSION_SECRET
 * is unset, so main.ts can leave the web chat off.
 */
export function webChatConfigFromEnv(env: NodeJS.ProcessEnv = process.env): WebChatConfig | undefined {
  if (!env.WEBCHAT_SESSION_SECRET) return undefined;
  const number = (name: string): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new ConfigError(name, `a positive number (got "${raw}")`);
    return value;
  };
  const flag = (name: string): boolean | undefined => {
    const raw = env[name]?.trim().toLowerCase();
    if (!raw) return undefined;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    throw new ConfigError(name, `true or false (got "${env[name]}")`);
  };
  const minutes = number('WEBCHAT_TOKEN_TTL_MINUTES');
  const origins = env.WEBCHAT_ALLOWED_ORIGINS?.split(',').map((o) => o.trim()).filter(Boolean);
  for (const origin of origins ?? []) {
    if (!/^https?:\/\/[^/\s]+$/i.test(origin.replace(/\/+$/, ''))) {
      throw new ConfigError('WEBCHAT_ALLOWED_ORIGINS', `comma-separated origins like https://shop.example.com (got "${origin}")`);
    }
  }
  return {
    sessionSecret: env.WEBCHAT_SESSION_SECRET,
    identitySecret: env.WEBCHAT_IDENTITY_SECRET || undefined,
    requireIdentity: flag('WEBCHAT_REQUIRE_IDENTITY'),
    publicUrl: env.PUBLIC_URL || undefined,
    brandName: env.BRAND_NAME || undefined,
    assistantName: env.WEBCHAT_ASSISTANT_NAME || undefined,
    maxMessageChars: number('WEBCHAT_MAX_MESSAGE_CHARS'),
    ratePerMinute: number('WEBCHAT_RATE_PER_MINUTE'),
    burst: number('WEBCHAT_BURST'),
    allowedOrigins: origins?.length ? origins : undefined,
    trustProxy: flag('TRUST_PROXY'),
    tokenTtlMs: minutes === undefined ? undefined : minutes * 60_000,
  };
}
