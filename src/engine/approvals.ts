/**
 * Approvals are records. An operator's decision approves one call: the tool, the arguments it
 * was shown (by hash), and the escalation it answered. The agent reserves the approval in a
 * commit before the tool runs, so it is used up even if the turn is dropped afterwards.
 */
import { createHash } from 'node:crypto';
import type { BriefingOption } from '../envelope.ts';
import type { Approval, Conversation, Operator } from '../model.ts';
import type { Policy } from '../policy.ts';

/** A stable hash of tool arguments: key order does not matter, values do. */
export function argumentsHash(args: unknown): string {
  return createHash('sha256').update(canonicalJson(args)).digest('hex').slice(0, 32);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The approval a picked option grants, if it approves a tool. */
export function approvalFor(option: BriefingOption, escalation: number, by: Operator, at: string, amount?: number): Approval | undefined {
  if (!option.approvesTool) return undefined;
  return {
    id: `apr_${escalation}_${option.id}`.slice(0, 80),
    tool: option.approvesTool,
    ...(option.approvesArgs !== undefined ? { argsHash: argumentsHash(option.approvesArgs), args: option.approvesArgs } : {}),
    ...(option.approvesArgs === undefined && amount !== undefined ? { amount } : {}),
    escalation,
    by,
    at,
  };
}

/**
 * The unused approval that covers exactly this call, if any. An approval bound to arguments
 * covers only those arguments; one granted before the call existed (a refund asked for in chat)
 * covers only the amount the operator saw.
 */
export function findApproval(c: Pick<Conversation, 'approvals'>, policy: Policy, call: { tool: string; args: unknown }): Approval | undefined {
  return c.approvals.find((a) => {
    if (a.usedAt || a.tool !== call.tool) return false;
    if (a.argsHash) return a.argsHash === argumentsHash(call.args);
    if (a.amount !== undefined) {
      const args = call.args !== null && typeof call.args === 'object' ? (call.args as Record<string, unknown>) : {};
      return Number(args[policy.refund.amountArg]) === a.amount;
    }
    return false; // an approval bound to nothing approves nothing
  });
}
