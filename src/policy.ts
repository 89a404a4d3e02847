/**
 * Escalation policy: a validated config file (JSON) with thresholds, compliance words,
 * tool classes and behavioural limits. Pure data plus pure checks; loading is the only I/O.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Approval } from './model.ts';
import { ConfigError } from './errors.ts';
import { parseSupportHours } from './engine/hours.ts';
import { RedactionPolicySchema } from './engine/redact.ts';

export const ToolClassSchema = z.enum(['read', 'write', 'irreversible']);
export type ToolClass = z.output<typeof ToolClassSchema>;

/** A duration: seconds, or `90s`, `10m`, `1h`, `2d`. */
const Duration = z.union([z.number().nonnegative(), z.string().regex(/^\s*\d+(\.\d+)?\s*[smhd]?\s*$/i, 'a duration such as 90s, 10m, 1h')]);

export const PolicySchema = z.object({
  /** Queue routing: first rule whose regex matches the customer's text wins. */
  queues: z
    .object({
      default: z.string().min(1).default('general'),
      rules: z.array(z.object({ match: z.string().min(1), queue: z.string().min(1) })).default([]),
    })
    .default({ default: 'general', rules: [] }),
  /** Extra phrases (any language) that count as asking for a person, on top of the built-in ones. */
  explicitRequest: z.object({ extraPhrases: z.array(z.string().min(2)).default([]) }).default({ extraPhrases: [] }),
  refund: z
    .object({
      /** Refunds above this amount need a person. */
      threshold: z.number().nonnegative().default(100),
      currency: z.string().default('USD'),
      /** Tools whose `amountArg` is a refund amount. */
      tools: z.array(z.string()).default(['issue_refund']),
      amountArg: z.string().default('amount'),
    })
    .default({ threshold: 100, currency: 'USD', tools: ['issue_refund'], amountArg: 'amount' }),
  compliance: z
    .object({ words: z.array(z.string().min(2)).default([]) })
    .default({ words: [] }),
  /** Tool classes; unknown tools count as `write`. Irreversible tools always ask a person first. */
  tools: z.record(z.string(), ToolClassSchema).default({}),
  behaviour: z
    .object({
      /** The same question this many times escalates. */
      repeatThreshold: z.number().int().min(2).default(3),
      /** Agent turns in a row without a person before escalating. */
      turnCap: z.number().int().min(1).default(12),
      /** Failed tool calls in one turn before escalating. */
      toolErrorLimit: z.number().int().min(1).default(1),
    })
    .default({ repeatThreshold: 3, turnCap: 12, toolErrorLimit: 1 }),
  /** What happens while an escalation waits for a person, and while a person keeps the customer waiting. */
  escalation: z
    .object({
      /** A reminder in the thread (mentioning the queue's on-call group) after this long unclaimed. */
      remindAfter: Duration.default('5m'),
      /** The escalation goes to the managers' channel after this long unclaimed. */
      managersAfter: Duration.default('15m'),
      /** The customer is told the truth and the fallback applies after this long unclaimed. */
      fallbackAfter: Duration.default('30m'),
      /** `agent`: the agent resumes knowing nobody is available; `email`: the conversation continues by email when the customer left an address. */
      fallback: z.enum(['agent', 'email']).default('agent'),
      /** The owner gets a private nudge when the customer has waited this long for their reply. */
      ownerSilentAfter: Duration.default('10m'),
      /** ...and the conversation goes back to the queue after this long. */
      ownerReleaseAfter: Duration.default('30m'),
      /** A customer who escalates again within this long is offered first to their previous operator... */
      stickyFor: Duration.default('7d'),
      /** ...who alone may claim it for this long. */
      stickyFirstChance: Duration.default('2m'),
    })
    .default({ remindAfter: '5m', managersAfter: '15m', fallbackAfter: '30m', fallback: 'agent', ownerSilentAfter: '10m', ownerReleaseAfter: '30m', stickyFor: '7d', stickyFirstChance: '2m' }),
  /** When people answer. Absent: always. */
  hours: z
    .object({
      /** e.g. "Mon-Fri 09:00-17:00 Europe/Berlin" (several ranges with ";"). */
      schedule: z.string().min(1),
      /** Local dates (YYYY-MM-DD) when nobody answers. */
      holidays: z.array(z.string()).default([]),
    })
    .optional(),
  /** Queues whose on-call switch is off: escalations there are deferred like outside hours. */
  offDuty: z.array(z.string()).default([]),
  /** PII masked before anything reaches a workspace or a webhook (on by default). */
  redaction: RedactionPolicySchema,
});

export type Policy = z.output<typeof PolicySchema>;

/** The policy used when no file is given: sensible defaults for a support desk. */
export const DEFAULT_POLICY: Policy = PolicySchema.parse({
  queues: {
    default: 'general',
    rules: [
      { match: '\\b(refund|invoice|charge[sd]?|billing|payment)\\b', queue: 'billing' },
      { match: '\\b(password|login|2fa|locked out|account)\\b', queue: 'accounts' },
    ],
  },
  compliance: { words: ['lawyer', 'attorney', 'lawsuit', 'sue', 'gdpr', 'chargeback', 'fraud', 'data breach', 'ombudsman', 'regulator'] },
  tools: { lookup_order: 'read', check_refund_eligibility: 'read', update_shipping_address: 'write', issue_refund: 'irreversible', cancel_subscription: 'irreversible' },
});

/** Reads and validates a policy file; a bad file stops start-up with one clear line. */
export function loadPolicy(path: string | undefined): Policy {
  if (!path) return DEFAULT_POLICY;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError('POLICY_FILE', `expected a readable JSON file at ${path} (${oneLine((err as Error).message)})`);
  }
  const parsed = PolicySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError('POLICY_FILE', `${path}: ${issue.path.join('.') || '(root)'}: ${oneLine(issue.message)}`);
  }
  if (parsed.data.hours) parseSupportHours(parsed.data.hours.schedule, parsed.data.hours.holidays, 'POLICY_FILE');
  for (const rule of parsed.data.queues.rules) {
    try {
      new RegExp(rule.match, 'i');
    } catch {
      throw new ConfigError('POLICY_FILE', `${path}: queues.rules: "${oneLine(rule.match)}" is not a valid regular expression`);
    }
  }
  return parsed.data;
}

/**
 * Environment overrides of the policy file: `ESCALATION_REMIND_AFTER`, `ESCALATION_MANAGERS_AFTER`,
 * `ESCALATION_FALLBACK_AFTER` (seconds or `90s`, `10m`, `1h`), `ESCALATION_FALLBACK` (agent | email),
 * `SUPPORT_HOURS` ("Mon-Fri 09:00-17:00 Europe/Berlin") with `SUPPORT_HOLIDAYS` (comma-separated dates),
 * `OFF_DUTY_QUEUES` (comma-separated queues whose on-call switch is off).
 */
export function applyPolicyEnv(policy: Policy, env: Record<string, string | undefined>): Policy {
  const escalation = { ...policy.escalation };
  const duration = (variable: string, key: 'remindAfter' | 'managersAfter' | 'fallbackAfter' | 'ownerSilentAfter' | 'ownerReleaseAfter' | 'stickyFor' | 'stickyFirstChance') => {
    const raw = env[variable]?.trim();
    if (!raw) return;
    if (!/^\d+(\.\d+)?\s*[smhd]?$/i.test(raw)) throw new ConfigError(variable, `a duration such as 90s, 10m or 1h, or seconds (got "${raw}")`);
    escalation[key] = raw;
  };
  duration('ESCALATION_REMIND_AFTER', 'remindAfter');
  duration('ESCALATION_MANAGERS_AFTER', 'managersAfter');
  duration('ESCALATION_FALLBACK_AFTER', 'fallbackAfter');
  duration('OWNER_SILENT_AFTER', 'ownerSilentAfter');
  duration('OWNER_RELEASE_AFTER', 'ownerReleaseAfter');
  duration('STICKY_FOR', 'stickyFor');
  duration('STICKY_FIRST_CHANCE', 'stickyFirstChance');
  const fallback = env.ESCALATION_FALLBACK?.trim();
  if (fallback) {
    if (fallback !== 'agent' && fallback !== 'email') throw new ConfigError('ESCALATION_FALLBACK', `agent or email (got "${fallback}")`);
    escalation.fallback = fallback;
  }
  const list = (raw: string | undefined) => raw?.split(',').map((x) => x.trim()).filter(Boolean);
  const schedule = env.SUPPORT_HOURS?.trim();
  const hours = schedule ? { schedule, holidays: list(env.SUPPORT_HOLIDAYS) ?? policy.hours?.holidays ?? [] } : policy.hours;
  const offDuty = list(env.OFF_DUTY_QUEUES) ?? policy.offDuty;
  return { ...policy, escalation, ...(hours ? { hours } : {}), offDuty };
}

/** Start-up errors are one line: JSON.parse quotes the file's text, newlines and all. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

export function toolClass(policy: Policy, tool: string): ToolClass {
  return policy.tools[tool] ?? 'write';
}

/** What the runtime may do with a tool call the model asked for; `approval` is the record the run uses up. */
export type ToolVerdict =
  | { allow: true; approval?: Approval }
  | { allow: false; trigger: 'irreversible_tool' | 'refund_threshold'; reason: string; amount?: number };

/**
 * Decides whether a tool call may run without a person. Irreversible tools need an operator's
 * approval of this very call, and refunds over the threshold too. `approval` is the unused
 * approval that covers exactly this call (see `findApproval`), if there is one.
 */
export function gateToolCall(policy: Policy, call: { tool: string; args: unknown }, approval: Approval | undefined): ToolVerdict {
  const approved = approval !== undefined && !approval.usedAt && approval.tool === call.tool;
  if (policy.refund.tools.includes(call.tool) && !approved) {
    const args = call.args !== null && typeof call.args === 'object' ? (call.args as Record<string, unknown>) : {};
    const raw = args[policy.refund.amountArg];
    const amount = typeof raw === 'number' || (typeof raw === 'string' && raw.trim() !== '') ? Number(raw) : NaN;
    if (!Number.isFinite(amount)) {
      // Fail closed: a refund whose amount cannot be read may be over the limit.
      return {
        allow: false,
        trigger: 'refund_threshold',
        reason: `Refund with no readable amount (${policy.refund.amountArg}); a person must check it against the ${policy.refund.threshold} ${policy.refund.currency} policy limit`,
      };
    }
    if (amount > policy.refund.threshold) {
      return {
        allow: false,
        trigger: 'refund_threshold',
        amount,
        reason: `Refund of ${amount} ${policy.refund.currency} is over the ${policy.refund.threshold} ${policy.refund.currency} policy limit`,
      };
    }
  }
  if (toolClass(policy, call.tool) === 'irreversible') {
    if (!approved) return { allow: false, trigger: 'irreversible_tool', reason: `${call.tool} cannot be undone and needs a person's approval` };
    return { allow: true, approval };
  }
  return approved && policy.refund.tools.includes(call.tool) ? { allow: true, approval } : { allow: true };
}

export function routeQueue(policy: Policy, text: string): string {
  for (const rule of policy.queues.rules) if (new RegExp(rule.match, 'i').test(text)) return rule.queue;
  return policy.queues.default;
}
