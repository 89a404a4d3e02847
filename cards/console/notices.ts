/**
 * Words for what the console tells people outside a thread: the managers' alert when an escalation
 * waits too long, and the day's figures (the digest, and the managers' strip at the top).
 */
import type { Digest } from '../../src/engine/digest.ts';
import type { Conversation } from '../../src/model.ts';
import { customerName, formatDuration } from './inbox.ts';

/** "HB-1042 (Ada Lovelace) has waited 12m 03s for a person: Refund over the limit". */
export function managersAlert(c: Conversation, waited?: string): string {
  const reason = c.briefing?.reason ?? c.history.findLast((h) => h.reason === 'escalate')?.note ?? 'escalated';
  return `${c.ticket} (${customerName(c.customer)}) has waited${waited ? ` ${waited}` : ' too long'} for a person, unclaimed: ${reason}`;
}

/** One line of the day's figures, e.g. "42 conversations · 5 escalated (12%, target 10–15%) · median claim 1m 05s · 0 fallbacks". */
export function dayLine(d: Digest): string {
  const pct = (n: number) => `${Math.round(n * 100)}%`;
  const parts = [
    `${d.conversations} conversation${d.conversations === 1 ? '' : 's'}`,
    `${d.escalations} escalated (${pct(d.escalationRate)}, target ${pct(d.target.low)}–${pct(d.target.high)})`,
    d.medianTimeToClaimSeconds !== undefined ? `median claim ${formatDuration(d.medianTimeToClaimSeconds * 1000)}` : 'no claims yet',
    `${d.fallbacks} fallback${d.fallbacks === 1 ? '' : 's'}`,
  ];
  return parts.join(' · ');
}

/** The daily digest as a notice. */
export function digestText(d: Digest): string {
  const triggers = d.topTriggers.length ? ` Top triggers: ${d.topTriggers.map((t) => `${t.trigger.replace(/_/g, ' ')} (${t.count})`).join(', ')}.` : '';
  return `Digest for ${d.date}: ${dayLine(d)}; ${d.unclaimed} waiting now.${triggers}`;
}
