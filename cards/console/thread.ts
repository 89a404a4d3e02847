/**
 * The console's thread for one conversation, as one viewer sees it: the transcript with who spoke
 * and what stayed internal, the handoff history in words, the current briefing with its options,
 * and what the viewer may do. Pure: same conversation and viewer in, same view out.
 */
import { isAgentHandoff, lastHandoff } from '../../src/agent/handoff-history.ts';
import type { Actor, Conversation, HistoryEntry, Message } from '../../src/model.ts';
import { authorName, changesOwnership, customerName, inboxRow } from './inbox.ts';
import type { BriefingView, EntryKind, HistoryItem, Permissions, ThreadEntry, ThreadView } from './types.ts';

/** Who is looking: their operator id (`console:dana`) and role. */
export interface Viewer {
  id: string;
  role: 'operator' | 'manager';
}

const NOTHING: Permissions = {
  claim: false,
  takeOver: false,
  decide: false,
  replyToCustomer: false,
  note: false,
  returnToAgent: false,
  release: false,
  transfer: false,
  close: false,
  reveal: false,
  route: false,
};

/** What the viewer may do now. Mirrors the ownership rules; the bridge still has the last word. */
export function permissions(c: Conversation, viewer: Viewer): Permissions {
  if (viewer.role !== 'operator') return NOTHING;
  const mine = c.state === 'human' && c.owner?.id === viewer.id;
  const hasOptions = (c.briefing?.options.length ?? 0) > 0;
  return {
    claim: c.state === 'waiting',
    takeOver: c.state === 'agent',
    decide: hasOptions && (c.state === 'waiting' || mine),
    replyToCustomer: mine,
    note: true,
    returnToAgent: c.state === 'waiting' || mine,
    release: mine,
    transfer: mine,
    close: c.state !== 'closed' && (c.state !== 'human' || mine),
    reveal: mine,
    route: c.state !== 'closed',
  };
}

/** Why the viewer's text would stay internal (empty when it reaches the customer). */
export function replyHint(c: Conversation, viewer: Viewer): string {
  if (viewer.role !== 'operator') return 'Read-only: managers can watch every conversation but not act on it.';
  switch (c.state) {
    case 'human':
      return c.owner?.id === viewer.id ? '' : `${c.owner?.name ?? 'Another operator'} holds ${c.ticket}: what you write stays an internal note.`;
    case 'waiting':
      return `Nobody has claimed ${c.ticket} yet: claim it to answer the customer. What you write now stays an internal note.`;
    case 'agent':
      return `The AI agent is answering ${c.ticket}: take it over to answer yourself. What you write now stays an internal note.`;
    case 'closed':
      return `${c.ticket} is closed: notes stay internal. The customer reopens it by writing again.`;
  }
}

export function threadView(c: Conversation, viewer: Viewer): ThreadView {
  const handoff = lastHandoff(c);
  return {
    row: inboxRow(c),
    customer: { name: customerName(c.customer), id: c.customer.id, ...(c.customer.email ? { email: c.customer.email } : {}), origin: c.origin },
    createdAt: c.createdAt,
    entries: c.messages.map((m) => threadEntry(m, c)),
    history: c.history.map(historyItem),
    ...(c.briefing ? { briefing: briefingView(c)! } : {}),
    ...(handoff ? { agent: { name: handoff.agent_handoff.to, pinned: handoff.agent_handoff.pinned === true } } : {}),
    can: permissions(c, viewer),
    replyHint: replyHint(c, viewer),
  };
}

export function threadEntry(m: Message, c: Conversation): ThreadEntry {
  // With several agents (the history has a hop) each answer names its agent.
  const agentName = m.author.role === 'agent' && m.author.name && c.history.some(isAgentHandoff) ? m.author.name : undefined;
  const author = agentName ? `${authorName(m, c)} · ${agentName}` : authorName(m, c);
  const entry: ThreadEntry = { id: m.id, at: m.at, kind: entryKind(m), author, text: m.text, visibility: m.visibility };
  if (m.masked) entry.masked = m.masked;
  if (m.source && m.source.workspace !== 'console') entry.via = m.source.workspace;
  if (m.attachments?.length) entry.attachments = m.attachments.map((a) => ({ name: a.name, ...(/^https?:\/\//i.test(a.url) ? { url: a.url } : {}) }));
  if (m.actions?.length) entry.tools = m.actions.map((a) => ({ tool: a.tool, ok: a.ok }));
  return entry;
}

function entryKind(m: Message): EntryKind {
  switch (m.author.role) {
    case 'customer':
      return 'customer';
    case 'agent':
      return 'agent';
    case 'operator':
      return m.visibility === 'public' ? 'operator' : 'note';
    case 'system':
      // Public system text went to the customer; internal system text is the bridge's record.
      return m.visibility === 'public' ? 'notice' : 'event';
  }
}

function actorName(actor: Actor): string {
  switch (actor.kind) {
    case 'operator':
      return actor.operator.name;
    case 'agent':
      return 'The AI agent';
    case 'customer':
      return 'The customer';
    case 'system':
      return 'The bridge';
  }
}

/** One ownership change in words, e.g. "Dana returned the conversation to the agent: check the invoice". */
export function describeChange(change: HistoryEntry): string {
  const who = actorName(change.by);
  const note = change.note ? `: ${change.note.replace(/\s+/g, ' ').trim()}` : '';
  if (isAgentHandoff(change)) {
    const hop = change.agent_handoff;
    if (change.by.kind === 'operator') return `${who} handed the conversation from ${hop.from} to ${hop.to}${hop.pinned ? ' and pinned it' : ''}${note}`;
    return `${hop.from} handed the conversation to ${hop.to}${note}`;
  }
  switch (change.reason) {
    case 'reveal':
      // The note is "<kinds and last 4> in <message id>": the id means nothing to a person.
      return `${who} revealed ${(change.note ?? 'masked values').replace(/ in \S+$/, '')}`;
    case 'escalate':
      return `Escalated${change.trigger ? ` (${change.trigger})` : ''}${note}`;
    case 'claim':
      return `${who} claimed the conversation${note}`;
    case 'take_over':
      return `${who} took over from the agent${note}`;
    case 'decide':
      return `${who} decided${change.optionId ? ` ${change.optionId}` : ''}; the agent continues${note}`;
    case 'return':
      return `${who} returned the conversation to the agent${note}`;
    case 'release':
      return `${who} released the conversation; it is waiting for a person again${note}`;
    case 'transfer':
      return `${who} transferred the conversation${change.to_operator ? ` to ${change.to_operator.name}` : ''}${note}`;
    case 'close':
      return `${who} closed the conversation${note}`;
    case 'reopen':
      return `The conversation reopened with the agent${note}`;
    case 'expire':
      return `Back in the queue${note}`;
    case 'fallback':
      return `Nobody claimed it in time; back with the agent${note}`;
    default:
      return `${who}: ${change.from} → ${change.to}${note}`;
  }
}

function historyItem(change: HistoryEntry): HistoryItem {
  return { at: change.at, reason: change.reason, from: change.from, to: change.to, text: describeChange(change) };
}

/** How many escalations the conversation has had: the current briefing is the n-th. */
export function escalationNumber(c: Conversation): number {
  return c.history.filter((h) => h.reason === 'escalate').length;
}

/** Where the current escalation stands, in a few words. */
export function briefingStatus(c: Conversation): string {
  let start = -1;
  for (let i = c.history.length - 1; i >= 0; i--) {
    if (c.history[i]!.reason === 'escalate') {
      start = i;
      break;
    }
  }
  // Reveals and agent hops leave ownership where it was.
  const latest = c.history.slice(start + 1).filter(changesOwnership).at(-1);
  if (!latest) return c.state === 'waiting' ? 'Waiting for a person' : describeState(c);
  const who = actorName(latest.by);
  switch (latest.reason) {
    case 'claim':
      return `Claimed by ${who}`;
    case 'take_over':
      return `Taken over by ${who}`;
    case 'transfer':
      return `Transferred to ${latest.to_operator?.name ?? c.owner?.name ?? 'another operator'} by ${who}`;
    case 'release':
      return `Released by ${who}; waiting for a person`;
    case 'decide': {
      const decision = c.decisions.findLast((d) => d.optionId === latest.optionId);
      return `${who} decided: ${decision?.label ?? latest.optionId ?? 'an option'}. Back with the agent.`;
    }
    case 'return':
      return `Returned to the agent by ${who}${latest.note ? `: ${latest.note}` : ''}`;
    case 'close':
      return `Closed by ${who}`;
    case 'reopen':
      return 'Reopened with the agent';
    case 'expire':
      return 'Back in the queue: waiting for a person';
    case 'fallback':
      return 'Nobody claimed it in time; back with the agent';
    default:
      return describeState(c);
  }
}

function describeState(c: Conversation): string {
  switch (c.state) {
    case 'waiting':
      return 'Waiting for a person';
    case 'human':
      return `Held by ${c.owner?.name ?? 'an operator'}`;
    case 'agent':
      return 'With the agent';
    case 'closed':
      return 'Closed';
  }
}

export function briefingView(c: Conversation): BriefingView | undefined {
  const b = c.briefing;
  if (!b) return undefined;
  const escalation = escalationNumber(c);
  // The decision taken on this escalation, if any (decisions made on earlier briefings do not count).
  let escalatedAt = '';
  for (const h of c.history) if (h.reason === 'escalate') escalatedAt = h.at;
  const decided = c.decisions.findLast((d) => d.at >= escalatedAt);
  const entities: BriefingView['entities'] = [];
  if (b.entities.ids.length) entities.push({ label: 'Ids', values: b.entities.ids });
  if (b.entities.amounts.length) entities.push({ label: 'Amounts', values: b.entities.amounts.map((a) => a.raw ?? `${a.value}${a.currency ? ` ${a.currency}` : ''}`) });
  if (b.entities.dates.length) entities.push({ label: 'Dates', values: b.entities.dates });
  if (b.entities.emails.length) entities.push({ label: 'Emails', values: b.entities.emails });
  return {
    escalation,
    ticket: b.ticket || c.ticket,
    intent: b.intent,
    reason: b.reason,
    trigger: b.trigger,
    priority: b.priority,
    sentiment: b.sentiment,
    summary: b.summary,
    pendingQuestion: b.pendingQuestion,
    queue: b.queue || c.queue,
    entities,
    constraints: b.constraints,
    actionsTaken: b.actionsTaken.map((a) => ({ tool: a.tool, ok: a.ok })),
    options: b.options.map((o) => ({ id: o.id, label: o.label, risk: o.risk, ...(o.tradeoffs ? { tradeoffs: o.tradeoffs } : {}), chosen: decided?.optionId === o.id })),
    status: briefingStatus(c),
    open: c.state === 'waiting' || c.state === 'human',
    ...(b.agent ? { agent: b.agent } : {}),
    ...(b.agents?.length ? { agents: [...b.agents] } : {}),
  };
}

/** The briefing's agents in a line, e.g. "Escalated by billing · agents: triage → billing"; empty with one agent. */
export function agentsLine(b: Pick<BriefingView, 'agent' | 'agents'>): string {
  const parts: string[] = [];
  if (b.agent) parts.push(`Escalated by ${b.agent}`);
  if (b.agents && b.agents.length > 1) parts.push(`agents: ${b.agents.join(' → ')}`);
  return parts.join(' · ');
}
