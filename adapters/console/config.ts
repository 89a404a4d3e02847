/**
 * Console settings: who may sign in (and as what), the sign-in token, the response target, and the
 * environment variables they come from. A bad value stops start-up with a ConfigError naming the
 * variable and what it expects.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../../src/errors.ts';

/** `operator` acts on conversations; `manager` sees everything and acts on nothing. */
export type ConsoleRole = 'operator' | 'manager';

/** A person who signs in to the console. Their bridge operator id is `console:<id>`. */
export interface ConsoleOperator {
  /** Short id: letters, digits, `.`, `_`, `-` (e.g. `dana`). */
  id: string;
  /** Shown to colleagues, and to customers when this person joins a conversation. */
  name: string;
  role: ConsoleRole;
  /** A personal sign-in token (at least 16 characters): `/console?token=<token>` signs this person in. */
  token?: string;
}

export interface ConsoleConfig {
  /** Who may sign in. Default: one operator, `operator` ("Operator"). */
  operators?: ConsoleOperator[];
  /** A shared sign-in token (CONSOLE_TOKEN): `/console?token=<token>` signs in (and asks who you are when several people are configured). */
  token?: string;
  /** The bridge's public base URL; its origin is accepted for actions and sockets. Default: the request's own host. */
  publicUrl?: string;
  /** Shown in the console's header. Default "Support". */
  brandName?: string;
  /** A conversation waiting longer than this is late (red), from half of it amber. Default 5 minutes. */
  slaMs?: number;
  /** How long a sign-in lasts. Default 7 days. */
  sessionTtlMs?: number;
  /** How long a one-time sign-in link works if unused. Default 24 hours. */
  signInLinkTtlMs?: number;
  /** Closed conversations kept in the inbox (the most recent). Default 200. */
  closedKept?: number;
  /** Take the client address and protocol from X-Forwarded-* (behind a proxy). Default false. */
  trustProxy?: boolean;
  /** Other workspaces running beside the console (shown to operators). */
  otherWorkspaces?: string[];
  /** Clock for sessions and links (tests move it). Default Date.now. */
  clock?: () => number;
}

export type ResolvedConsoleConfig = Required<Omit<ConsoleConfig, 'token' | 'publicUrl'>> & Pick<ConsoleConfig, 'token' | 'publicUrl'>;

/** The one operator when nobody is configured. */
export const DEFAULT_OPERATOR: ConsoleOperator = { id: 'operator', name: 'Operator', role: 'operator' };

const ID = /^[A-Za-z0-9._-]{1,64}$/;

const OperatorSchema = z.object({
  id: z.string().regex(ID, 'letters, digits, ".", "_" or "-", at most 64'),
  name: z.string().trim().min(1).max(80),
  role: z.enum(['operator', 'manager']).default('operator'),
  token: z.string().min(16, 'at least 16 characters').max(256).optional(),
});
const OperatorsFileSchema = z.union([z.array(OperatorSchema), z.object({ operators: z.array(OperatorSchema) })]);

/** Applies defaults and checks values. */
export function resolveConsoleConfig(config: ConsoleConfig): ResolvedConsoleConfig {
  const operators = config.operators?.length ? config.operators : [DEFAULT_OPERATOR];
  const seen = new Set<string>();
  for (const operator of operators) {
    const parsed = OperatorSchema.safeParse(operator);
    if (!parsed.success) throw new ConfigError('CONSOLE_OPERATORS', `operator "${operator.id}": ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
    if (seen.has(operator.id.toLowerCase())) throw new ConfigError('CONSOLE_OPERATORS', `operator id "${operator.id}" appears twice`);
    seen.add(operator.id.toLowerCase());
  }
  const tokens = operators.map((o) => o.token).filter((t): t is string => !!t);
  if (new Set(tokens).size !== tokens.length) throw new ConfigError('CONSOLE_OPERATORS_FILE', 'two operators share a sign-in token');
  if (config.token !== undefined && config.token.length < 16) throw new ConfigError('CONSOLE_TOKEN', 'a random token of at least 16 characters (e.g. `openssl rand -hex 24`)');
  if (config.token !== undefined && tokens.includes(config.token)) throw new ConfigError('CONSOLE_TOKEN', 'must differ from every personal token');
  const publicUrl = config.publicUrl?.replace(/\/+$/, '');
  if (publicUrl !== undefined && !/^https?:\/\/[^/\s]+(\/\S*)?$/i.test(publicUrl)) throw new ConfigError('PUBLIC_URL', 'an absolute http(s) URL such as https://support.example.com');
  const positive = (value: number | undefined, fallback: number, variable: string): number => {
    const v = value ?? fallback;
    if (!Number.isFinite(v) || v <= 0) throw new ConfigError(variable, 'a positive number');
    return v;
  };
  return {
    operators: operators.map((o) => ({ ...o, name: o.name.trim(), role: o.role ?? 'operator' })),
    token: config.token,
    publicUrl,
    brandName: config.brandName?.trim() || 'Support',
    slaMs: positive(config.slaMs, 5 * 60_000, 'CONSOLE_SLA_MINUTES'),
    sessionTtlMs: positive(config.sessionTtlMs, 7 * 24 * 3600_000, 'CONSOLE_SESSION_HOURS'),
    signInLinkTtlMs: positive(config.signInLinkTtlMs, 24 * 3600_000, 'signInLinkTtlMs'),
    closedKept: Math.floor(positive(config.closedKept, 200, 'closedKept')),
    trustProxy: config.trustProxy ?? false,
    otherWorkspaces: config.otherWorkspaces ?? [],
    clock: config.clock ?? Date.now,
  };
}

/**
 * Reads the console's settings from the environment, or undefined when the console is off. It runs
 * when CONSOLE_ENABLED is true, and by default when no other workspace (Slack, Teams) runs, so a
 * bridge with nothing configured still has somewhere for operators to work.
 */
export function consoleConfigFromEnv(env: Record<string, string | undefined>, options: { otherWorkspaces: string[] }): ConsoleConfig | undefined {
  const enabled = flag(env, 'CONSOLE_ENABLED');
  if (enabled === false) return undefined;
  if (enabled === undefined && options.otherWorkspaces.length > 0) return undefined;
  if (env.CONSOLE_OPERATORS?.trim() && env.CONSOLE_OPERATORS_FILE?.trim()) {
    throw new ConfigError('CONSOLE_OPERATORS', 'set CONSOLE_OPERATORS or CONSOLE_OPERATORS_FILE, not both');
  }
  const operators = env.CONSOLE_OPERATORS_FILE?.trim()
    ? readOperatorsFile(env.CONSOLE_OPERATORS_FILE.trim())
    : env.CONSOLE_OPERATORS?.trim()
      ? parseOperators(env.CONSOLE_OPERATORS)
      : undefined;
  const number = (name: string): number | undefined => {
    const raw = env[name]?.trim();
    if (!raw) return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new ConfigError(name, `a positive number (got "${raw}")`);
    return value;
  };
  const sla = number('CONSOLE_SLA_MINUTES');
  const hours = number('CONSOLE_SESSION_HOURS');
  const config: ConsoleConfig = {
    ...(operators ? { operators } : {}),
    ...(env.CONSOLE_TOKEN?.trim() ? { token: env.CONSOLE_TOKEN.trim() } : {}),
    ...(env.PUBLIC_URL?.trim() ? { publicUrl: env.PUBLIC_URL.trim() } : {}),
    ...(env.BRAND_NAME?.trim() ? { brandName: env.BRAND_NAME.trim() } : {}),
    ...(sla ? { slaMs: sla * 60_000 } : {}),
    ...(hours ? { sessionTtlMs: hours * 3600_000 } : {}),
    ...(flag(env, 'TRUST_PROXY') ? { trustProxy: true } : {}),
    otherWorkspaces: options.otherWorkspaces,
  };
  resolveConsoleConfig(config); // fail at start-up, naming the variable
  return config;
}

/**
 * `dana:Dana Scully,sam:Sam,lee:Lee Chen:manager`: comma-separated `id:Name`, with an optional
 * `:manager` or `:operator` at the end.
 */
export function parseOperators(raw: string): ConsoleOperator[] {
  const operators: ConsoleOperator[] = [];
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const colon = part.indexOf(':');
    if (colon <= 0 || colon === part.length - 1) throw new ConfigError('CONSOLE_OPERATORS', `expected id:Name pairs separated by commas, like dana:Dana Scully,lee:Lee Chen:manager (got "${part}")`);
    const id = part.slice(0, colon).trim();
    let name = part.slice(colon + 1).trim();
    let role: ConsoleRole = 'operator';
    const roleMatch = /:(operator|manager)$/i.exec(name);
    if (roleMatch) {
      role = roleMatch[1]!.toLowerCase() as ConsoleRole;
      name = name.slice(0, roleMatch.index).trim();
    }
    if (!ID.test(id)) throw new ConfigError('CONSOLE_OPERATORS', `operator id "${id}" may only use letters, digits, ".", "_" and "-"`);
    if (!name) throw new ConfigError('CONSOLE_OPERATORS', `operator "${id}" has no name`);
    operators.push({ id, name, role });
  }
  return operators;
}

/** `[{ "id": "dana", "name": "Dana Scully", "role": "operator", "token": "..." }]` (or `{ "operators": [...] }`). */
export function readOperatorsFile(path: string): ConsoleOperator[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError('CONSOLE_OPERATORS_FILE', `expected a readable JSON file at ${path} (${(err as Error).message.split('\n')[0]})`);
  }
  const parsed = OperatorsFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError('CONSOLE_OPERATORS_FILE', `${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}; expected [{ "id": "dana", "name": "Dana Scully", "role": "operator" }]`);
  }
  const list = Array.isArray(parsed.data) ? parsed.data : parsed.data.operators;
  return list.map((o) => ({ id: o.id, name: o.name, role: o.role, ...(o.token ? { token: o.token } : {}) }));
}

function flag(env: Record<string, string | undefined>, name: string): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return undefined;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `true or false (got "${env[name]}")`);
}
