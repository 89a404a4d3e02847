/**
 * The bridge's own settings, from the environment (and `.env`), validated with zod. Channel and
 * workspace settings are read by each adapter's `*ConfigFromEnv`; a channel or workspace runs
 * when its key variable is set and non-empty.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

const CoreConfigSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000).describe('a TCP port number (0-65535)'),
  HOST: z.string().default('0.0.0.0').describe('an address to listen on'),
  STORE_URL: z.string().default('./data/bridge.sqlite').describe('a SQLite file path, sqlite://<path>, or redis://host:port'),
  SQLITE_SYNCHRONOUS: z.enum(['full', 'normal']).default('full').describe('full (default: a commit survives a power cut) or normal (faster; survives a process crash, a power cut can lose the last commits)'),
  POLICY_FILE: z.string().optional().describe('a path to a policy JSON file'),
  FAQ_FILE: z.string().default('config/faq.json').describe('a path to the offline agent FAQ JSON file'),
  TICKET_PREFIX: z.string().regex(/^[A-Z]{1,8}$/).default('HB').describe('1-8 capital letters, e.g. HB'),
  NOTE_PREFIX: z.string().min(1).max(8).default('//').describe('1-8 characters that mark an internal note'),
  MAX_MESSAGE_CHARS: z.coerce.number().int().min(100).max(100_000).default(8000).describe('a whole number from 100 to 100000'),
  AGENT_TIMEOUT_MS: z.coerce.number().int().min(1000).default(120_000).describe('milliseconds, at least 1000'),
  LOG_FORMAT: z.enum(['auto', 'json', 'text']).default('auto').describe('auto (a banner on a terminal, JSON lines otherwise), json or text'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('one of fatal, error, warn, info, debug, trace, silent'),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional().describe('the absolute http(s) URL the bridge is reached at, e.g. https://support.example.com'),
  DELIVERY_LEASE_MS: z.coerce.number().int().min(1000).default(30_000).describe('milliseconds, at least 1000: how long a crashed instance holds its work before another instance takes it over'),
  DELIVERY_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(32).describe('a whole number from 1 to 1000: conversations each destination works on at once'),
  CONVERSATION_CACHE_SIZE: z.coerce.number().int().min(0).max(1_000_000).default(1000).describe('a whole number from 0 to 1000000: conversations each instance keeps in its version-checked cache (0: none)'),
  DIGEST_AT: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/).default('17:30').describe('a time of day as HH:MM (in the support hours time zone, else UTC)'),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(25_000).describe('milliseconds to finish in-flight work on SIGTERM'),
});

export type CoreConfig = z.output<typeof CoreConfigSchema>;

/**
 * Loads `.env` (real environment variables win) and drops empty values, so `FOO=` counts as unset.
 */
export function loadEnvironment(envFile = '.env'): Record<string, string> {
  if (existsSync(envFile)) process.loadEnvFile(envFile);
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1].trim() !== ''));
}

/** Validates the core settings; the error names the first wrong variable and what it expects. */
export function parseCoreConfig(env: Record<string, string | undefined>): CoreConfig {
  const parsed = CoreConfigSchema.safeParse(env);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const variable = String(issue.path[0]);
  const expected = CoreConfigSchema.shape[variable as keyof typeof CoreConfigSchema.shape]?.description ?? issue.message;
  throw new ConfigError(variable, `expected ${expected}, got "${env[variable]}"`);
}
