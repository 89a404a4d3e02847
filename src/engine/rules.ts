/**
 * The conversation rules as changes to a conversation in memory: ownership transitions with the
 * transcript lines, customer notices and work that go with them, escalations, hand-back context.
 * No I/O: `Committer` runs these inside a change and commits what they leave in the sink.
 */
import { randomUUID } from 'node:crypto';
import type { EscalateToolArgs } from '../envelope.ts';
import { UnknownOptionError } from '../errors.ts';
import type { Actor, Conversation, Decision, HandbackContext, HistoryEntry, Message, NoticeKind, Operator } from '../model.ts';
import { transition, type OwnershipCommand } from '../ownership.ts';
import type { Policy } from '../policy.ts';
import { buildEnvelope, type EscalationCause } from '../summarizer.ts';
import type { ChangeSink } from './commit.ts';
import { approvalFor } from './approvals.ts';

const CUSTOMER_NOTICES: Partial<Record<NoticeKind, (c: Conversation, by?: Operator) => string>> = {
  escalated: (c) => `I'm connecting you with a person from our team. Your ticket reference is ${c.ticket}; they'll reply right here.`,
  joined: (_c, by) => `${by?.name ?? 'A person'} from our team has joined the conversation.`,
  returned: () => `You're back with the assistant. Our team has shared what they found, so there's no need to repeat yourself.`,
  released: () => `A person from our team will be with you shortly.`,
  transferred: (_c, by) => `${by?.name ?? 'Another person'} from our team is now helping you.`,
  closed: (c) => `This conversation (${c.ticket}) is now closed. Reply any time to reopen it.`,
};

/** How many escalations a conversation has had: the current briefing is the n-th. */
export function escalationCount(c: Conversation): number {
  return c.history.filter((h) => h.reason === 'escalate').length;
}

export class Rules {
  constructor(
    private readonly policy: Policy,
    private readonly now: () => Date,
  ) {}

  /** Appends a transcript message, keeping it ordered even if the clock steps back. */
  append(c: Conversation, fields: Omit<Message, 'id' | 'at'>): Message {
    const last = c.messages.at(-1)?.at;
    let at = this.now().toISOString();
    if (last && at < last) at = last;
    const message: Message = { id: `msg_${randomUUID().replace(/-/g, '').slice(0, 20)}`, at, ...fields };
    c.messages.push(message);
    return message;
  }

  /** A system line in the transcript, mirrored to the workspaces. */
  appendSystem(c: Conversation, sink: ChangeSink, fields: Pick<Message, 'text' | 'visibility'> & Partial<Message>): Message {
    const message = this.append(c, { author: { role: 'system' }, ...fields });
    sink.effects.push({ kind: 'mirror', message });
    return message;
  }

  noticeCustomer(c: Conversation, sink: ChangeSink, notice: NoticeKind, by?: Operator): void {
    const text = CUSTOMER_NOTICES[notice]?.(c, by);
    if (!text) return;
    const message = this.appendSystem(c, sink, { text, visibility: 'public', notice });
    sink.effects.push({ kind: 'deliver', message });
  }

  /** Applies a transition to the conversation or throws its typed error; keeps the held-by index in step. */
  apply(c: Conversation, command: OwnershipCommand, sink: ChangeSink): HistoryEntry {
    const result = transition(c, command, this.now().toISOString());
    if (!result.ok) {
      if ('holder' in result.error && !('ticket' in result.error && result.error.ticket)) Object.assign(result.error, { ticket: c.ticket });
      throw result.error;
    }
    const before = c.owner;
    c.state = result.next.state;
    c.ownershipVersion = result.next.ownershipVersion;
    if (result.next.owner) c.owner = result.next.owner;
    else delete c.owner;
    if (before?.id !== c.owner?.id) {
      if (before) sink.indexes.push({ op: 'remove', key: `held:${before.id}`, member: c.id });
      if (c.owner) sink.indexes.push({ op: 'add', key: `held:${c.owner.id}`, member: c.id });
    }
    c.history.push(result.entry);
    sink.effects.push({ kind: 'ownership', change: result.entry });
    return result.entry;
  }

  /** Transcript messages, hand-back context, decisions and agent work that go with each transition. */
  afterOwnershipChange(c: Conversation, command: OwnershipCommand, entry: HistoryEntry, sink: ChangeSink): void {
    const at = entry.at;
    switch (command.type) {
      case 'claim':
      case 'take_over':
        this.appendSystem(c, sink, {
          text: `${command.operator.name} ${entry.reason === 'take_over' ? 'took over from the agent' : 'claimed the conversation'}.`,
          visibility: 'internal',
        });
        this.noticeCustomer(c, sink, 'joined', command.operator);
        break;
      case 'release':
        this.appendSystem(c, sink, { text: `${command.operator.name} released the conversation back to the queue.`, visibility: 'internal' });
        this.noticeCustomer(c, sink, 'released');
        break;
      case 'transfer':
        this.appendSystem(c, sink, { text: `${command.operator.name} transferred the conversation to ${command.to.name}.`, visibility: 'internal' });
        this.noticeCustomer(c, sink, 'transferred', command.to);
        break;
      case 'decide': {
        const option = c.briefing?.options.find((o) => o.id === command.optionId);
        if (!option) throw new UnknownOptionError(command.optionId, c.briefing?.options.map((o) => o.id) ?? []);
        const decision: Decision = { optionId: option.id, label: option.label, by: command.operator, at, ...(command.note ? { note: command.note } : {}) };
        c.decisions.push(decision);
        // A refund approved before the call existed is bound to the amount the operator saw.
        const amount = option.approvesArgs === undefined ? c.briefing?.entities.amounts[0]?.value : undefined;
        const approval = approvalFor(option, escalationCount(c), command.operator, at, amount);
        if (approval) c.approvals.push(approval);
        c.agentTurns = 0;
        const handback = this.handbackContext(c, 'decision', command.operator, at, command.note, decision);
        this.appendSystem(c, sink, { text: `${command.operator.name} decided: ${option.label}${command.note ? ` (${command.note})` : ''}.`, visibility: 'internal', handback });
        this.noticeCustomer(c, sink, 'returned');
        // The decision goes back to the agent as an explicit input: it answers now.
        sink.effects.push({ kind: 'turn' });
        break;
      }
      case 'return': {
        c.agentTurns = 0;
        const handback = this.handbackContext(c, 'return', command.operator, at, command.note);
        this.appendSystem(c, sink, {
          text: `${command.operator.name} returned the conversation to the agent${command.note ? `. Note: ${command.note}` : '.'}`,
          visibility: 'internal',
          handback,
        });
        this.noticeCustomer(c, sink, 'returned');
        // If the customer is waiting on an answer, the agent gives it now, with the note in context.
        const lastPublic = c.messages.filter((m) => m.visibility === 'public' && !m.notice).at(-1);
        if (lastPublic?.author.role === 'customer') sink.effects.push({ kind: 'turn' });
        break;
      }
      case 'close':
        this.appendSystem(c, sink, {
          text: `Closed by ${command.by.kind === 'operator' ? command.by.operator.name : command.by.kind}${command.note ? `: ${command.note}` : '.'}`,
          visibility: 'internal',
        });
        this.noticeCustomer(c, sink, 'closed');
        break;
      case 'escalate':
      case 'reopen':
        break;
    }
  }

  /** Agent (or anyone) -> waiting, with a fresh briefing, the customer told, and the card posted. */
  escalate(c: Conversation, cause: EscalationCause, by: Actor, sink: ChangeSink, request?: Partial<EscalateToolArgs>): void {
    this.apply(c, { type: 'escalate', by, trigger: cause.trigger, reason: cause.reason }, sink);
    c.briefing = buildEnvelope(c, cause, this.policy, request);
    if (c.briefing.queue) c.queue = c.briefing.queue;
    this.appendSystem(c, sink, { text: `Escalated (${cause.trigger}): ${cause.reason}`, visibility: 'internal' });
    this.noticeCustomer(c, sink, 'escalated');
    sink.effects.push({ kind: 'briefing', escalation: escalationCount(c) });
  }

  /** The one structured message the agent gets when control comes back. */
  handbackContext(c: Conversation, kind: HandbackContext['kind'], by: Operator, at: string, note?: string, decision?: Decision): HandbackContext {
    // The human stretch starts when the agent last lost control.
    const lostControl = [...c.history].reverse().find((h) => h.from === 'agent' && (h.to === 'waiting' || h.to === 'human'));
    const since = lostControl?.at ?? c.createdAt;
    const humanStretch = c.messages
      .filter((m) => m.visibility === 'public' && !m.notice && m.at >= since && (m.author.role === 'customer' || m.author.role === 'operator'))
      .map((m) => ({ role: m.author.role, ...(m.author.name ? { name: m.author.name } : {}), text: m.text, at: m.at }));
    return { kind, by, at, ...(note ? { note } : {}), ...(decision ? { decision } : {}), humanStretch };
  }
}
