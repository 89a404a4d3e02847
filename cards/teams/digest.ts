/**
 * The managers' daily digest as an Adaptive Card: the escalation rate against its target band, the
 * median time to claim, unclaimed and fallback counts, the top triggers and returns per operator.
 * Pure: the same digest (and names) in, the same card out.
 */
import type { Digest } from '../../src/engine/digest.ts';
import { CARD_SCHEMA, labelled, richText, textBlock, type AdaptiveCard, type CardElement } from './adaptive.ts';
import { formatDuration } from './status.ts';
import type { TeamsText } from './message.ts';
import { escapeMessageText, oneLine } from './text.ts';

/** Most lines listed under triggers and under returns. */
const MAX_ROWS = 10;

export interface DigestCardOptions {
  /** Display names by operator id (`teams:29:...`); others are shown by id. */
  operatorNames?: Record<string, string>;
}

/** "12.5%" */
export function percent(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10}%`;
}

/** Where the day's escalation rate sits against the target band, in words. */
export function rateVerdict(digest: Pick<Digest, 'conversations' | 'escalationRate' | 'target'>): { text: string; color?: 'good' | 'warning' | 'attention' } {
  const band = `${percent(digest.target.low)}–${percent(digest.target.high)} target`;
  if (digest.conversations === 0) return { text: `no conversations yet (${band})` };
  if (digest.escalationRate > digest.target.high) return { text: `⚠️ above the ${band}`, color: 'attention' };
  if (digest.escalationRate < digest.target.low) return { text: `ℹ️ below the ${band}`, color: 'warning' };
  return { text: `✅ within the ${band}`, color: 'good' };
}

/** The digest card for one day. */
export function buildDigestCard(digest: Digest, options: DigestCardOptions = {}): AdaptiveCard {
  const verdict = rateVerdict(digest);
  const body: CardElement[] = [
    richText([{ text: `📊 Handoff digest · ${digest.date} (UTC)`, weight: 'bolder', size: 'medium' }]),
    richText(
      [
        { text: 'Escalation rate: ', weight: 'bolder' },
        { text: `${percent(digest.escalationRate)} (${digest.escalations} of ${digest.conversations} conversations) · ` },
        { text: verdict.text, ...(verdict.color ? { color: verdict.color } : {}) },
      ],
      { spacing: 'small' },
    ),
    labelled(
      'Median time to claim',
      digest.medianTimeToClaimSeconds === undefined ? 'no claims yet' : `${formatDuration(digest.medianTimeToClaimSeconds * 1000)} (${count(digest.claims, 'claim')})`,
      200,
    ),
    labelled('Waiting unclaimed now', String(digest.unclaimed), 50),
    labelled('Fallbacks (nobody claimed in time)', String(digest.fallbacks), 50),
  ];
  body.push(section('Top triggers', digest.topTriggers.map((t) => `${oneLine(t.trigger, 80)}: ${t.count}`), 'No escalations.'));
  const names = options.operatorNames ?? {};
  body.push(
    section(
      'Returns to the agent, per operator',
      digest.returnsPerOperator.map((r) => `${operatorLabel(r.operatorId, names)}: ${r.count}`),
      'No returns.',
    ),
  );
  return {
    type: 'AdaptiveCard',
    $schema: CARD_SCHEMA,
    version: '1.5',
    body,
    msteams: { width: 'Full' },
    fallbackText: digestSummary(digest),
  };
}

/** The digest as a text message, for when Teams refuses the card. */
export function buildDigestText(digest: Digest, options: DigestCardOptions = {}): TeamsText {
  const names = options.operatorNames ?? {};
  const esc = (text: string) => escapeMessageText(text);
  const list = (items: string[]) => (items.length ? items.slice(0, MAX_ROWS).map(esc).join(' · ') : 'none');
  const lines = [
    `📊 <b>Handoff digest · ${esc(digest.date)} (UTC)</b>`,
    `<b>Escalation rate:</b> ${percent(digest.escalationRate)} (${digest.escalations} of ${digest.conversations} conversations) · ${esc(rateVerdict(digest).text)}`,
    `<b>Median time to claim:</b> ${digest.medianTimeToClaimSeconds === undefined ? 'no claims yet' : formatDuration(digest.medianTimeToClaimSeconds * 1000)}`,
    `<b>Waiting unclaimed now:</b> ${digest.unclaimed} · <b>Fallbacks:</b> ${digest.fallbacks}`,
    `<b>Top triggers:</b> ${list(digest.topTriggers.map((t) => `${oneLine(t.trigger, 80)}: ${t.count}`))}`,
    `<b>Returns per operator:</b> ${list(digest.returnsPerOperator.map((r) => `${operatorLabel(r.operatorId, names)}: ${r.count}`))}`,
  ];
  return { text: lines.join('<br>'), textFormat: 'xml', summary: digestSummary(digest) };
}

/** Notification preview for the digest. */
export function digestSummary(digest: Digest): string {
  return oneLine(`Handoff digest ${digest.date}: ${percent(digest.escalationRate)} escalated, ${digest.unclaimed} unclaimed, ${digest.fallbacks} fallbacks`, 200);
}

/** An operator's display name, or their id without the workspace prefix and the workspace. */
function operatorLabel(id: string, names: Record<string, string>): string {
  const name = names[id];
  if (name) return oneLine(name, 100);
  const colon = id.indexOf(':');
  return colon > 0 ? `${oneLine(id.slice(colon + 1), 100)} (${oneLine(id.slice(0, colon), 20)})` : oneLine(id, 100);
}

function section(title: string, lines: string[], empty: string): CardElement {
  const shown = lines.slice(0, MAX_ROWS);
  const hidden = lines.length - shown.length;
  const items = (shown.length ? shown : [empty]).map((line) => richText([{ text: shown.length ? `• ${line}` : line, isSubtle: !shown.length }], { spacing: 'none' }));
  if (hidden > 0) items.push(richText([{ text: `… and ${hidden} more`, isSubtle: true }], { spacing: 'none' }));
  return { type: 'Container', spacing: 'medium', items: [textBlock(`**${title}**`, { spacing: 'none' }), ...items] };
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
