/**
 * What the operator console shows, as plain JSON: the server builds these from conversations
 * (`inbox.ts`, `thread.ts`) and the browser renders them. Every string in them is text from a
 * person or the bridge, to be set as text, never parsed as HTML.
 */
import type { Origin, OwnershipState } from '../../src/model.ts';

export type Priority = 'low' | 'normal' | 'high' | 'urgent';

/** How a waiting conversation stands against the response target: on time, getting late, late. */
export type Sla = 'ok' | 'warn' | 'late';

/** A person who acts in a workspace, as the console names them. */
export interface PersonView {
  id: string;
  name: string;
  /** `console`, `slack`, `teams`, ... */
  workspace: string;
}

/** One line of the inbox. */
export interface InboxRow {
  id: string;
  ticket: string;
  /** The conversation's store version: a view older than the one shown is ignored. */
  version: number;
  state: OwnershipState;
  customer: string;
  origin: Origin;
  queue: string;
  subject?: string;
  /** The briefing's intent and priority while a person is needed or holds it. */
  intent?: string;
  priority?: Priority;
  /** The last thing said in public (customer, agent, operator). */
  preview?: { who: string; text: string };
  owner?: PersonView;
  /** When it started waiting for a person (state `waiting`). */
  waitingSince?: string;
  /** When its owner took it (state `human`). */
  heldSince?: string;
  /** The customer spoke last and nobody has answered yet (state `human`). */
  awaitingReply: boolean;
  lastActivityAt: string;
  messageCount: number;
}

/** What one viewer may do with a conversation right now (all false for managers). */
export interface Permissions {
  claim: boolean;
  /** `claim` on a conversation with the agent is a take-over. */
  takeOver: boolean;
  decide: boolean;
  /** Replies reach the customer (the viewer holds the conversation). */
  replyToCustomer: boolean;
  /** Internal notes (anyone who may act). */
  note: boolean;
  returnToAgent: boolean;
  release: boolean;
  transfer: boolean;
  close: boolean;
  /** See the masked values of a message (the owner only; logged). */
  reveal: boolean;
  /** Pick the agent that answers (any operator, while not closed; several agents configured). */
  route: boolean;
}

export type EntryKind = 'customer' | 'agent' | 'operator' | 'note' | 'notice' | 'event';

/** One transcript line in the thread. */
export interface ThreadEntry {
  id: string;
  at: string;
  kind: EntryKind;
  /** Who wrote it, as shown. */
  author: string;
  text: string;
  /** `internal` never reached the customer. */
  visibility: 'public' | 'internal';
  /** The workspace an operator typed it in, when not the console. */
  via?: string;
  attachments?: Array<{ name: string; url?: string }>;
  /** Tools the agent used for this turn. */
  tools?: Array<{ tool: string; ok: boolean }>;
  /** How many values were masked in `text` (the owner may reveal them). */
  masked?: number;
}

/** One ownership change, in words. */
export interface HistoryItem {
  at: string;
  reason: string;
  from: OwnershipState;
  to: OwnershipState;
  text: string;
}

export interface BriefingOptionView {
  id: string;
  label: string;
  risk: 'low' | 'medium' | 'high';
  tradeoffs?: string;
  /** This option was the decision taken on this briefing. */
  chosen: boolean;
}

/** The current escalation's briefing card. */
export interface BriefingView {
  /** Which escalation of the conversation this is (decisions carry it; an older card decides nothing). */
  escalation: number;
  ticket: string;
  intent: string;
  reason: string;
  trigger: string;
  priority: Priority;
  sentiment: string;
  summary: string;
  pendingQuestion: string;
  queue: string;
  entities: Array<{ label: string; values: string[] }>;
  constraints: string[];
  actionsTaken: Array<{ tool: string; ok: boolean }>;
  options: BriefingOptionView[];
  /** Where the case stands, e.g. "Waiting for a person", "Claimed by Dana". */
  status: string;
  /** Still waiting for a person or held: the card's buttons mean something. */
  open: boolean;
  /** Several agents: the one that escalated, and every agent involved, in order. */
  agent?: string;
  agents?: string[];
}

export interface ThreadView {
  row: InboxRow;
  customer: { name: string; id: string; email?: string; origin: Origin };
  createdAt: string;
  entries: ThreadEntry[];
  history: HistoryItem[];
  briefing?: BriefingView;
  /** The agent picked by the last agent-to-agent handoff (several agents configured). */
  agent?: { name: string; pinned: boolean };
  can: Permissions;
  /** Why the viewer's text would stay internal, when it would. */
  replyHint: string;
}

/** The signed-in person, as the browser sees them. */
export interface ViewerView {
  id: string;
  name: string;
  role: 'operator' | 'manager';
}

/** Settings the browser needs. */
export interface ConsoleSettings {
  brandName: string;
  /** Waiting longer than this is late (amber from half of it). */
  slaMs: number;
  notePrefix: string;
  maxMessageChars: number;
  /** Other console people, for transfers. */
  colleagues: Array<{ id: string; name: string; role: 'operator' | 'manager' }>;
  /** Other workspaces running beside the console (`slack`, `teams`). */
  workspaces: string[];
  /** The agents an operator may route to; empty when one agent runs. */
  agents: string[];
}

/** Frames the server pushes over the console's WebSocket. */
export type ServerFrame =
  | { type: 'hello'; me: ViewerView; inbox: InboxRow[]; serverTime: number }
  | { type: 'rows'; rows: InboxRow[] }
  | { type: 'thread'; view: ThreadView }
  | { type: 'gone'; conversationId: string }
  | { type: 'notice'; id: string; text: string; at: string; conversationId?: string; ticket?: string }
  | { type: 'signed-out'; reason: string };

/** Frames the browser sends: which conversation it shows. */
export type ClientFrame = { type: 'open'; conversationId: string | null };
