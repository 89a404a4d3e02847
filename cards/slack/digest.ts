/**
 * The managers' daily digest as Block Kit: the escalation rate against its target band, median
 * time to claim, claims, unclaimed and fallback counts, top triggers and returns per operator.
 * Also the "today" figures of the Home tab. Pure functions of the engine's `Digest`.
 */
import type { types } from '@slack/bolt';
import type { Digest } from '../../src/engine/digest.ts';
import { LIMITS, type SlackMessage } from './limits.ts';
import { formatDuration } from './status.ts';
import { escapeMrkdwn, fit, mrkdwn } from './text.ts';

/** Most triggers and operators listed. */
const MAX_ROWS = 10;

const percent = (x: number) => `${(Math.round(x * 1000) / 10).toString()}%`;

/** The escalation rate in words, with where it sits against the target band. */
export function rateLine(d: Digest): string {
  const band = `${percent(d.target.low)}–${percent(d.target.high)}`;
  if (d.conversations === 0) return `No conversations yet (target escalation rate ${band}).`;
  const rate = `*${percent(d.escalationRate)}* (${d.escalations} of ${d.conversations} conversation${d.conversations === 1 ? '' : 's'})`;
  if (d.escalationRate > d.target.high) return `:arrow_up: Escalation rate ${rate}: above the ${band} target.`;
  if (d.escalationRate < d.target.low) return `:arrow_down: Escalation rate ${rate}: below the ${band} target.`;
  return `:white_check_mark: Escalation rate ${rate}: within the ${band} target.`;
}

/** The day's counts as section fields. */
export function digestFields(d: Digest): types.MrkdwnElement[] {
  const median = d.medianTimeToClaimSeconds === undefined ? '–' : formatDuration(d.medianTimeToClaimSeconds * 1000);
  return [
    ['Median time to claim', median],
    ['Claims', String(d.claims)],
    ['Unclaimed now', `${d.unclaimed}${d.unclaimed > 0 ? ' :hourglass_flowing_sand:' : ''}`],
    ['Fallbacks', String(d.fallbacks)],
  ].map(([label, value]) => ({ type: 'mrkdwn', text: fit(`*${label}*\n${value}`, LIMITS.fieldText) }));
}

/** `• name: count` lines, at most MAX_ROWS, or a dash. */
function rows(items: Array<{ label: string; count: number }>, none: string): string {
  if (items.length === 0) return `_${none}_`;
  const shown = items.slice(0, MAX_ROWS).map((i) => `• ${mrkdwn(i.label, 200)}: ${i.count}`);
  if (items.length > MAX_ROWS) shown.push(`_…and ${items.length - MAX_ROWS} more_`);
  return shown.join('\n');
}

/**
 * The digest message. `operatorName` turns an operator id (`slack:U123`) into a name; names are
 * written out, never mentioned, so the digest pings nobody.
 */
export function digestMessage(d: Digest, operatorName: (operatorId: string) => string = (id) => id): SlackMessage {
  const triggers = rows(d.topTriggers.map((t) => ({ label: t.trigger, count: t.count })), 'No escalations.');
  const returns = rows(d.returnsPerOperator.map((r) => ({ label: operatorName(r.operatorId), count: r.count })), 'No conversations handed back.');
  const blocks: types.KnownBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: fit(`Daily digest · ${d.date}`, LIMITS.headerText), emoji: false } },
    { type: 'section', text: { type: 'mrkdwn', text: fit(rateLine(d), LIMITS.sectionText) } },
    { type: 'section', fields: digestFields(d) },
    { type: 'section', text: { type: 'mrkdwn', text: fit(`*Top triggers*\n${triggers}`, LIMITS.sectionText) } },
    { type: 'section', text: { type: 'mrkdwn', text: fit(`*Returns to the agent, per operator*\n${returns}`, LIMITS.sectionText) } },
    { type: 'context', elements: [{ type: 'mrkdwn', text: `Figures for ${escapeMrkdwn(d.date)} (UTC day). "Unclaimed now" is the queue when the digest was made.` }] },
  ];
  const median = d.medianTimeToClaimSeconds === undefined ? 'no claims' : `median time to claim ${formatDuration(d.medianTimeToClaimSeconds * 1000)}`;
  const text = `Daily digest ${d.date}: escalation rate ${d.conversations ? percent(d.escalationRate) : 'n/a'} (target ${percent(d.target.low)}–${percent(d.target.high)}), ${median}, ${d.unclaimed} unclaimed, ${d.fallbacks} fallback${d.fallbacks === 1 ? '' : 's'}`;
  return { text: escapeMrkdwn(text), blocks };
}
