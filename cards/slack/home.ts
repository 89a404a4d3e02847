/**
 * The app's Home tab: the live queue (waiting conversations with their wait, oldest first; held
 * ones with their owner and for how long) and today's figures. Published when someone opens the
 * tab or presses Refresh, and again as the queue changes for a while after. Untrusted text is escaped; the view stays within Block Kit's limits.
 */
import type { types } from '@slack/bolt';
import type { Digest } from '../../src/engine/digest.ts';
import type { Conversation } from '../../src/model.ts';
import { digestFields, rateLine } from './digest.ts';
import { LIMITS } from './limits.ts';
import { formatDuration, heldSince, lastWait } from './status.ts';
import { escapeMrkdwn, fit, mrkdwn } from './text.ts';

/** action_ids on the Home tab. */
export const HOME_ACTIONS = { refresh: 'home_refresh' } as const;

/** Most conversations listed per section (the rest are counted). */
export const HOME_LIST_LIMIT = 25;

/** Lines per section block (each section holds at most 3,000 characters). */
const LINES_PER_BLOCK = 8;

export interface HomeInput {
  waiting: Conversation[];
  held: Conversation[];
  digest?: Digest;
  now: Date;
  /** A link to a conversation's thread, if it has one. */
  threadLink?: (conversation: Conversation) => string | undefined;
}

/** When the conversation's current wait started (epoch ms). */
function waitingSince(c: Conversation): number {
  const start = lastWait(c)?.start.at ?? c.updatedAt;
  return Date.parse(start);
}

function ticketText(c: Conversation, link: string | undefined): string {
  const ticket = escapeMrkdwn(c.ticket);
  return link && /^https?:\/\/[^\s<>|]+$/.test(link) ? `*<${link}|${ticket}>*` : `*${ticket}*`;
}

function customer(c: Conversation): string {
  return mrkdwn(c.customer.name ?? c.customer.email ?? c.customer.id, 80);
}

/** Lines as section blocks of a few lines each. */
function sections(lines: string[]): types.SectionBlock[] {
  const blocks: types.SectionBlock[] = [];
  for (let i = 0; i < lines.length; i += LINES_PER_BLOCK) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: fit(lines.slice(i, i + LINES_PER_BLOCK).join('\n'), LIMITS.sectionText) } });
  }
  return blocks;
}

/** The Home tab view. */
export function homeView(input: HomeInput): types.HomeView {
  const now = input.now.getTime();
  const waiting = [...input.waiting].sort((a, b) => waitingSince(a) - waitingSince(b));
  const held = [...input.held].sort((a, b) => Date.parse(heldSince(a) ?? a.updatedAt) - Date.parse(heldSince(b) ?? b.updatedAt));

  const waitingLines = waiting.slice(0, HOME_LIST_LIMIT).map((c) => {
    const reason = c.briefing?.reason ? ` · ${mrkdwn(c.briefing.reason.replace(/\s+/g, ' '), 120)}` : '';
    return `:hourglass_flowing_sand: ${ticketText(c, input.threadLink?.(c))} · ${customer(c)} · ${mrkdwn(c.queue, 40)} · waiting *${formatDuration(now - waitingSince(c))}*${reason}`;
  });
  if (waiting.length > HOME_LIST_LIMIT) waitingLines.push(`_…and ${waiting.length - HOME_LIST_LIMIT} more waiting_`);
  const heldLines = held.slice(0, HOME_LIST_LIMIT).map((c) => {
    const since = heldSince(c);
    const owner = c.owner ? `*${escapeMrkdwn(c.owner.name)}*` : 'an operator';
    return `:raising_hand: ${ticketText(c, input.threadLink?.(c))} · ${customer(c)} · ${mrkdwn(c.queue, 40)} · held by ${owner}${since ? ` for ${formatDuration(now - Date.parse(since))}` : ''}`;
  });
  if (held.length > HOME_LIST_LIMIT) heldLines.push(`_…and ${held.length - HOME_LIST_LIMIT} more held_`);

  const blocks: types.KnownBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: 'Handoff queue', emoji: false } },
    {
      type: 'context',
      elements: [{ type: 'mrkdwn', text: `Updated ${input.now.toISOString().slice(11, 16)} UTC; it follows the queue for a while after you open it. Refresh for the latest.` }],
    },
    {
      type: 'actions',
      block_id: 'home_actions',
      elements: [{ type: 'button', action_id: HOME_ACTIONS.refresh, text: { type: 'plain_text', text: 'Refresh', emoji: true }, value: 'refresh' }],
    },
    { type: 'divider' },
    { type: 'section', text: { type: 'mrkdwn', text: `*Waiting for a person (${waiting.length})*${waiting.length ? ', oldest first' : ''}` } },
    ...(waitingLines.length ? sections(waitingLines) : [{ type: 'context', elements: [{ type: 'mrkdwn', text: '_Nobody is waiting._' }] } as types.ContextBlock]),
    { type: 'section', text: { type: 'mrkdwn', text: `*Held by a person (${held.length})*` } },
    ...(heldLines.length ? sections(heldLines) : [{ type: 'context', elements: [{ type: 'mrkdwn', text: '_Nobody holds a conversation._' }] } as types.ContextBlock]),
  ];
  if (input.digest) {
    const d = input.digest;
    const triggers = d.topTriggers.slice(0, 5).map((t) => `${mrkdwn(t.trigger, 60)} (${t.count})`).join(', ');
    blocks.push(
      { type: 'divider' },
      { type: 'section', text: { type: 'mrkdwn', text: `*Today* (${escapeMrkdwn(d.date)}, UTC)\n${rateLine(d)}` } },
      { type: 'section', fields: digestFields(d) },
      ...(triggers ? [{ type: 'context', elements: [{ type: 'mrkdwn', text: fit(`Top triggers: ${triggers}`, LIMITS.contextText) }] } as types.ContextBlock] : []),
    );
  }
  return { type: 'home', blocks: blocks.slice(0, LIMITS.blocksPerView) };
}
