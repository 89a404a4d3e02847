/**
 * The inbox: one row per conversation, and the order operators work in: waiting first (urgent,
 * then longest wait), then held (the viewer's own, then those whose customer is waiting on a reply),
 * then the agent's, then closed. Pure and browser-safe: the console's page sorts and times rows
 * with these same functions.
 */
import { AGENT_HANDOFF } from '../../src/agent/handoff-history.ts';
import type { Conversation, Customer, HistoryEntry, Message } from '../../src/model.ts';
import type { InboxRow, PersonView, Priority, Sla } from './types.ts';

const PREVIEW_CHARS = 160;

/** The customer as operators see them: name, else email, else a short visitor label. */
export function customerName(customer: Customer): string {
  if (customer.name?.trim()) return customer.name.trim();
  if (customer.email) return customer.email;
  const anon = /^anon:(.{4})/.exec(customer.id);
  if (anon) return `Visitor ${anon[1]}`;
  return customer.id.replace(/^user:/, '');
}

export function personView(operator: { id: string; name: string; workspace: string }): PersonView {
  return { id: operator.id, name: operator.name, workspace: operator.workspace };
}

/** Who wrote a message, as the thread labels it. */
export function authorName(message: Message, conversation: Conversation): string {
  switch (message.author.role) {
    case 'customer':
      return customerName(conversation.customer);
    case 'agent':
      return 'AI agent';
    case 'operator':
      return message.author.name ?? 'Operator';
    case 'system':
      return 'Bridge';
  }
}

/** False for history entries that leave ownership as it was (a reveal, an agent-to-agent hop). */
export function changesOwnership(entry: HistoryEntry): boolean {
  return entry.reason !== 'reveal' && entry.reason !== AGENT_HANDOFF;
}

/** The inbox row for a conversation. */
export function inboxRow(conversation: Conversation): InboxRow {
  const c = conversation;
  const lastPublic = findLast(c.messages, (m) => m.visibility === 'public' && !m.notice && m.author.role !== 'system');
  const lastChange = c.history.filter(changesOwnership).at(-1);
  const sinceState = lastChange && lastChange.to === c.state ? lastChange.at : undefined;
  const briefingLive = (c.state === 'waiting' || c.state === 'human') && c.briefing;
  const row: InboxRow = {
    id: c.id,
    ticket: c.ticket,
    version: c.version,
    state: c.state,
    customer: customerName(c.customer),
    origin: c.origin,
    queue: c.briefing?.queue || c.queue,
    awaitingReply: c.state === 'human' && lastPublic?.author.role === 'customer',
    lastActivityAt: c.messages.at(-1)?.at ?? c.updatedAt,
    messageCount: c.messages.length,
  };
  if (c.subject) row.subject = c.subject;
  if (briefingLive) {
    row.intent = c.briefing!.intent;
    row.priority = c.briefing!.priority;
  }
  if (lastPublic) row.preview = { who: authorName(lastPublic, c), text: clip(oneLine(lastPublic.text) || attachmentsText(lastPublic), PREVIEW_CHARS) };
  if (c.state === 'human' && c.owner) row.owner = personView(c.owner);
  if (c.state === 'waiting') row.waitingSince = sinceState ?? c.updatedAt;
  if (c.state === 'human') row.heldSince = sinceState ?? c.updatedAt;
  return row;
}

/** Waiting time against the target: amber from half of it, red past it. */
export function slaLevel(waitMs: number, slaMs: number): Sla {
  if (waitMs >= slaMs) return 'late';
  if (waitMs >= slaMs / 2) return 'warn';
  return 'ok';
}

/** `42s`, `3m 05s`, `1h 12m`, `2d 4h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

const PRIORITY_RANK: Record<Priority, number> = { urgent: 0, high: 1, normal: 2, low: 3 };
const STATE_RANK: Record<InboxRow['state'], number> = { waiting: 0, human: 1, agent: 2, closed: 3 };

/** The inbox order; `viewerId` puts the viewer's own conversations first among the held ones. */
export function sortInbox(rows: readonly InboxRow[], viewerId?: string): InboxRow[] {
  return [...rows].sort((a, b) => {
    if (a.state !== b.state) return STATE_RANK[a.state] - STATE_RANK[b.state];
    switch (a.state) {
      case 'waiting':
        return (
          PRIORITY_RANK[a.priority ?? 'normal'] - PRIORITY_RANK[b.priority ?? 'normal'] ||
          compare(a.waitingSince ?? a.lastActivityAt, b.waitingSince ?? b.lastActivityAt) ||
          compare(a.ticket, b.ticket)
        );
      case 'human': {
        const mine = Number(b.owner?.id === viewerId) - Number(a.owner?.id === viewerId);
        return mine || Number(b.awaitingReply) - Number(a.awaitingReply) || compare(b.lastActivityAt, a.lastActivityAt) || compare(a.ticket, b.ticket);
      }
      default:
        return compare(b.lastActivityAt, a.lastActivityAt) || compare(a.ticket, b.ticket);
    }
  });
}

/** Counts for the header strip: how many wait, the longest wait, how many are held and with the agent. */
export function inboxCounts(rows: readonly InboxRow[], now: number): { waiting: number; longestWaitMs: number; held: number; agent: number; closed: number } {
  let waiting = 0;
  let longestWaitMs = 0;
  let held = 0;
  let agent = 0;
  let closed = 0;
  for (const row of rows) {
    if (row.state === 'waiting') {
      waiting++;
      longestWaitMs = Math.max(longestWaitMs, now - Date.parse(row.waitingSince ?? row.lastActivityAt));
    } else if (row.state === 'human') held++;
    else if (row.state === 'agent') agent++;
    else closed++;
  }
  return { waiting, longestWaitMs, held, agent, closed };
}

/** Rows matching a filter text (ticket, customer, queue, owner, intent, preview), case-insensitive. */
export function filterInbox(rows: readonly InboxRow[], text: string): InboxRow[] {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...rows];
  return rows.filter((row) => {
    const hay = [row.ticket, row.customer, row.queue, row.owner?.name, row.intent, row.subject, row.preview?.text, row.state].join(' ').toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function attachmentsText(message: Message): string {
  const files = message.attachments ?? [];
  return files.length ? `📎 ${files.map((f) => f.name).join(', ')}` : '';
}

export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function findLast<T>(items: readonly T[], match: (item: T) => boolean): T | undefined {
  for (let i = items.length - 1; i >= 0; i--) if (match(items[i]!)) return items[i];
  return undefined;
}
