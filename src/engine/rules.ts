/**
 * The conversation rules as changes to a conversation in memory: ownership transitions with the
 * transcript lines, customer notices and work that go with them, escalations, hand-back context.
 * No I/O: `Committer` runs these inside a change and commits what they leave in the sink.
 */
import { newMessageId } from '../ids.ts';
import type { EscalateToolArgs } from '../envelope.ts';
import { UnknownOptionError } from '../errors.ts';
import type { Actor, Conversation, Decision, HandbackContext, HistoryEntry, Message, NoticeKind, Operator, Timer, TimerName } from '../model.ts';
import { transition, type OwnershipCommand } from '../ownership.ts';
import type { Policy } from '../policy.ts';
import { buildEnvelope, type EscalationCause } from '../summarizer.ts';
import type { ChangeSink } from './commit.ts';
import { approvalFor } from './approvals.ts';
import { parseDuration } from './hours.ts';

/** Whether a person can answer a conversation now; when not, why, and when one can (if known). */
export type Availability = (c: Conversation, at: Date) => { open: true } | { open: false; why: 'hours' | 'no_workspace' | 'off_duty'; until?: Date; timeZone?: string };

const ALWAYS_OPEN: Availability = () => ({ open: true });
const LADDER: TimerName[] = ['remind', 'managers', 'fallback'];
const OWNER: TimerName[] = ['owner_nudge', 'owner_release'];

const CUSTOMER_NOTICES: Partial<Record<NoticeKind, (c: Conversation, by?: Operator) => string>> = {
  escalated: (c) => `I'm connecting you with a person from our team. Your ticket reference is ${c.ticket}; they'll reply right here.`,
  joined: (_c, by) => `${by?.name ?? 'A person'} from our team has joined the conversation.`,
  returned: () => `You're back with the assistant. Our team has shared what they found, so there's no need to repeat yourself.`,
  released: () => `A person from our team will be with you shortly.`,
  transferred: (_c, by) => `${by?.name ?? 'Another person'} from our team is now helping you.`,
  closed: (c) => `This conversation (${c.ticket}) is now closed. Reply any time to reopen it.`,
};

/** "Mon 09:00 CET" in the desk's time zone. */
function opening(until: Date, timeZone = 'UTC'): string {
  return new Intl.DateTimeFormat('en-US', { weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone, timeZoneName: 'short' }).format(until);
}

function minutes(ms: number): string {
  const m = Math.round(ms / 60_000);
  return m < 1 ? 'under a minute' : m === 1 ? '1 min' : `${m} min`;
}

/** How many escalations a conversation has had: the current briefing is the n-th. */
export function escalationCount(c: Conversation): number {
  return c.history.filter((h) => h.reason === 'escalate').length;
}

export class Rules {
  private readonly durations: Record<'remind' | 'managers' | 'fallback' | 'ownerSilent' | 'ownerRelease' | 'sticky' | 'stickyFirstChance', number>;

  constructor(
    private readonly policy: Policy,
    private readonly now: () => Date,
    private readonly availability: Availability = ALWAYS_OPEN,
  ) {
    const e = policy.escalation;
    this.durations = {
      remind: parseDuration(e.remindAfter, 'escalation.remindAfter'),
      managers: parseDuration(e.managersAfter, 'escalation.managersAfter'),
      fallback: parseDuration(e.fallbackAfter, 'escalation.fallbackAfter'),
      ownerSilent: parseDuration(e.ownerSilentAfter, 'escalation.ownerSilentAfter'),
      ownerRelease: parseDuration(e.ownerReleaseAfter, 'escalation.ownerReleaseAfter'),
      sticky: parseDuration(e.stickyFor, 'escalation.stickyFor'),
      stickyFirstChance: parseDuration(e.stickyFirstChance, 'escalation.stickyFirstChance'),
    };
  }

  /** Appends a transcript message, keeping it ordered even if the clock steps back. */
  append(c: Conversation, fields: Omit<Message, 'id' | 'at'>): Message {
    const last = c.messages.at(-1)?.at;
    let at = this.now().toISOString();
    if (last && at < last) at = last;
    const message: Message = { id: newMessageId(), at, ...fields };
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
        this.clearTimers(c, LADDER);
        delete c.offeredTo;
        // Sticky routing: this customer's next escalation is offered to this operator first.
        c.previousOperator = { ...command.operator, at: entry.at };
        if (this.durations.sticky > 0) sink.indexes.push({ op: 'set', key: `sticky:${c.origin}:${c.customer.id}`, value: JSON.stringify(c.previousOperator), ttlMs: this.durations.sticky });
        this.appendSystem(c, sink, {
          text: `${command.operator.name} ${entry.reason === 'take_over' ? 'took over from the agent' : 'claimed the conversation'}.`,
          visibility: 'internal',
        });
        this.noticeCustomer(c, sink, 'joined', command.operator);
        break;
      case 'release':
        this.clearTimers(c, OWNER);
        this.startLadder(c);
        this.appendSystem(c, sink, { text: `${command.operator.name} released the conversation back to the queue.`, visibility: 'internal' });
        this.noticeCustomer(c, sink, 'released');
        break;
      case 'expire':
        this.clearTimers(c, OWNER);
        this.startLadder(c);
        this.appendSystem(c, sink, { text: `Back in the queue: ${command.reason}.`, visibility: 'internal' });
        this.noticeCustomer(c, sink, 'released');
        break;
      case 'fallback':
        this.clearTimers(c, [...LADDER, ...OWNER]);
        this.fallBack(c, command.reason, entry.at, sink);
        break;
      case 'requeue': {
        // A new escalation in the other queue's channel: fresh card there, the old one superseded.
        const from = c.queue;
        c.queue = command.queue;
        const why = `Moved from the ${from} queue by ${command.operator.name}${command.note ? `: ${command.note}` : ''}`;
        if (c.briefing) c.briefing = { ...c.briefing, queue: command.queue, reason: why.slice(0, 300), trigger: 'transfer' };
        this.clearTimers(c, OWNER);
        this.appendSystem(c, sink, { text: `${command.operator.name} moved ${c.ticket} to the ${command.queue} queue${command.note ? `: ${command.note}` : '.'}`, visibility: 'internal' });
        if (entry.from === 'human') this.noticeCustomer(c, sink, 'released');
        sink.effects.push({ kind: 'briefing', escalation: escalationCount(c) });
        this.startLadder(c);
        break;
      }
      case 'transfer':
        this.appendSystem(c, sink, { text: `${command.operator.name} transferred the conversation to ${command.to.name}.`, visibility: 'internal' });
        this.noticeCustomer(c, sink, 'transferred', command.to);
        break;
      case 'decide': {
        this.clearTimers(c, [...LADDER, ...OWNER]);
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
        this.clearTimers(c, [...LADDER, ...OWNER]);
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
        this.clearTimers(c, [...LADDER, ...OWNER, 'hours_open']);
        delete c.pendingEscalation;
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

  /**
   * Agent (or anyone) -> waiting, with a fresh briefing, the customer told, the card posted and the
   * ladder (remind, managers, fallback) started. When nobody can answer now (outside hours, no
   * workspace, queue off duty) the customer is never promised a person: the escalation stays
   * pending, the customer is told when one will answer, and the agent keeps helping.
   */
  escalate(c: Conversation, cause: EscalationCause, by: Actor, sink: ChangeSink, request?: Partial<EscalateToolArgs>): void {
    const at = this.now();
    const briefing = buildEnvelope(c, cause, this.policy, request);
    const available = this.availability({ ...c, queue: briefing.queue || c.queue }, at);
    if (!available.open) {
      if (c.pendingEscalation) {
        // Already pending: the customer knows when a person can answer; the agent keeps helping.
        if (by.kind !== 'agent' && c.state === 'agent') sink.effects.push({ kind: 'turn' });
        return;
      }
      c.briefing = briefing;
      if (briefing.queue) c.queue = briefing.queue;
      c.pendingEscalation = { trigger: cause.trigger, reason: cause.reason, at: at.toISOString() };
      const when = available.until ? `; raised at ${opening(available.until, available.timeZone)}` : '; raised as soon as a workspace runs';
      this.appendSystem(c, sink, { text: `Escalation pending (${cause.trigger}): ${cause.reason}. Nobody can answer now (${available.why})${when}.`, visibility: 'internal' });
      const text = available.until
        ? `Our team is offline right now; a person can reply from ${opening(available.until, available.timeZone)}. Until then I'll keep helping you here. Your ticket reference is ${c.ticket}.`
        : `No one from our team can join right now. I'll keep helping you here, and a person will follow up in this conversation as soon as one is available. Your ticket reference is ${c.ticket}.`;
      const message = this.appendSystem(c, sink, { text, visibility: 'public', notice: 'deferred' });
      sink.effects.push({ kind: 'deliver', message });
      if (available.until) this.setTimer(c, { name: 'hours_open', at: available.until.toISOString() });
      // The customer's message still deserves an answer; an agent that escalated itself is not asked again.
      if (by.kind !== 'agent' && c.state === 'agent') sink.effects.push({ kind: 'turn' });
      return;
    }
    delete c.pendingEscalation;
    this.clearTimers(c, ['hours_open']);
    this.apply(c, { type: 'escalate', by, trigger: cause.trigger, reason: cause.reason }, sink);
    c.briefing = briefing;
    if (c.briefing.queue) c.queue = c.briefing.queue;
    this.offerToPrevious(c, at);
    this.appendSystem(c, sink, { text: `Escalated (${cause.trigger}): ${cause.reason}`, visibility: 'internal' });
    this.noticeCustomer(c, sink, 'escalated');
    sink.effects.push({ kind: 'briefing', escalation: escalationCount(c) });
    this.startLadder(c);
  }

  /** A customer who comes back is offered first to the operator who helped them last, for a short while. */
  private offerToPrevious(c: Conversation, at: Date): void {
    const previous = c.previousOperator;
    if (!previous || at.getTime() - Date.parse(previous.at) > this.durations.sticky || this.durations.stickyFirstChance <= 0) return;
    const until = new Date(at.getTime() + this.durations.stickyFirstChance).toISOString();
    const { at: _at, ...operator } = previous;
    c.offeredTo = { operator, until };
    if (c.briefing) {
      const line = `Offered first to ${operator.name}, who helped this customer before (until ${until.slice(11, 16)} UTC)`;
      c.briefing = { ...c.briefing, constraints: [line, ...c.briefing.constraints].slice(0, 10) };
    }
  }

  /** A pending escalation goes to a person now, if one can answer. True when it did. */
  raisePending(c: Conversation, sink: ChangeSink): boolean {
    const pending = c.pendingEscalation;
    if (!pending || c.state !== 'agent' || !this.availability(c, this.now()).open) return false;
    this.escalate(c, { trigger: pending.trigger, reason: pending.reason }, { kind: 'system' }, sink);
    return true;
  }

  // ---- timers ------------------------------------------------------------------------------

  /** The customer wrote while a person holds the conversation: the owner's silence clock starts (once). */
  customerWaitsOnOwner(c: Conversation): void {
    if (c.state !== 'human' || (c.timers ?? []).some((t) => t.name === 'owner_nudge' || t.name === 'owner_release')) return;
    const now = this.now().getTime();
    if (this.durations.ownerSilent > 0) this.setTimer(c, { name: 'owner_nudge', at: new Date(now + this.durations.ownerSilent).toISOString() });
    if (this.durations.ownerRelease > 0) this.setTimer(c, { name: 'owner_release', at: new Date(now + this.durations.ownerRelease).toISOString() });
  }

  /** The owner answered the customer: the silence clock stops. */
  ownerAnswered(c: Conversation): void {
    this.clearTimers(c, OWNER);
  }

  /** Fires every timer that is due, if what it was set for still holds. Each fires once: the commit is compare-and-set. */
  fireTimers(c: Conversation, sink: ChangeSink): void {
    const now = this.now();
    const due = (c.timers ?? []).filter((t) => Date.parse(t.at) <= now.getTime());
    if (due.length === 0) return;
    c.timers = (c.timers ?? []).filter((t) => !due.includes(t));
    const escalation = escalationCount(c);
    const waited = (since: string | undefined) => minutes(now.getTime() - Date.parse(since ?? now.toISOString()));
    const escalatedAt = [...c.history].reverse().find((h) => h.reason === 'escalate' || h.reason === 'release' || h.reason === 'expire')?.at;
    for (const timer of due.sort((a, b) => a.at.localeCompare(b.at))) {
      const current = timer.escalation === undefined || timer.escalation === escalation;
      switch (timer.name) {
        case 'remind':
          if (c.state !== 'waiting' || !current) break;
          this.record(c, 'remind', `Unclaimed for ${waited(escalatedAt)}`);
          this.appendSystem(c, sink, { text: `Reminder: ${c.ticket} has waited ${waited(escalatedAt)} for a person (${c.queue} queue).`, visibility: 'internal', notice: 'reminder' });
          break;
        case 'managers':
          if (c.state !== 'waiting' || !current) break;
          this.record(c, 'managers', `Unclaimed for ${waited(escalatedAt)}`);
          this.appendSystem(c, sink, { text: `Escalated to the managers: unclaimed for ${waited(escalatedAt)}.`, visibility: 'internal', notice: 'managers' });
          sink.effects.push({ kind: 'managers', escalation });
          break;
        case 'fallback':
          if (c.state !== 'waiting' || !current) break;
          this.apply(c, { type: 'fallback', reason: `Unclaimed for ${waited(escalatedAt)}` }, sink);
          this.afterOwnershipChange(c, { type: 'fallback', reason: `Unclaimed for ${waited(escalatedAt)}` }, c.history.at(-1)!, sink);
          break;
        case 'owner_nudge':
          if (c.state !== 'human' || !c.owner) break;
          this.record(c, 'nudge', 'The customer is waiting for the owner');
          this.appendSystem(c, sink, { text: `${c.owner.name} was nudged privately: the customer has waited ${minutes(this.durations.ownerSilent)} for a reply.`, visibility: 'internal' });
          sink.effects.push({ kind: 'notify', operator: c.owner, text: `${c.ticket}: the customer has waited ${minutes(this.durations.ownerSilent)} for your reply.` });
          break;
        case 'owner_release': {
          if (c.state !== 'human' || !c.owner) break;
          const reason = `${c.owner.name} did not answer the customer for ${minutes(this.durations.ownerRelease)}`;
          this.apply(c, { type: 'expire', reason }, sink);
          this.afterOwnershipChange(c, { type: 'expire', reason }, c.history.at(-1)!, sink);
          break;
        }
        case 'hours_open':
          if (!this.raisePending(c, sink) && c.pendingEscalation && c.state === 'agent') {
            // Still nobody (an on-call switch, no workspace yet): try again at the next opening.
            const available = this.availability(c, now);
            if (!available.open && available.until) this.setTimer(c, { name: 'hours_open', at: available.until.toISOString() });
          }
          break;
      }
    }
  }

  /** The earliest pending timer, epoch ms, or null. */
  static nextTimer(c: Conversation): number | null {
    const times = (c.timers ?? []).map((t) => Date.parse(t.at));
    return times.length ? Math.min(...times) : null;
  }

  /** Nobody claimed in time: the customer hears the truth, and the agent or email takes it from here. */
  private fallBack(c: Conversation, reason: string, at: string, sink: ChangeSink): void {
    const email = c.customer.email;
    if (this.policy.escalation.fallback === 'email' && email && c.origin !== 'email') {
      this.appendSystem(c, sink, { text: `Fallback: ${reason}. The conversation continues by email to ${email}.`, visibility: 'internal' });
      const message = this.appendSystem(c, sink, {
        text: `I'm sorry: no one from our team is free right now. We'll answer by email at ${email}; your ticket reference is ${c.ticket}.`,
        visibility: 'public',
        notice: 'fallback',
      });
      sink.effects.push({ kind: 'deliver', message });
      c.origin = 'email';
    } else {
      const message = this.appendSystem(c, sink, {
        text: `I'm sorry: no one from our team is free right now. I'll keep helping you here, and your ticket ${c.ticket} stays open for our team.`,
        visibility: 'public',
        notice: 'fallback',
      });
      sink.effects.push({ kind: 'deliver', message });
    }
    c.agentTurns = 0;
    const handback: HandbackContext = { kind: 'fallback', at, note: reason, humanStretch: [] };
    this.appendSystem(c, sink, { text: `Fallback: ${reason}. The agent resumes knowing nobody is available.`, visibility: 'internal', handback });
    // A customer still waiting on an answer gets one from the agent now.
    const lastPublic = c.messages.filter((m) => m.visibility === 'public' && !m.notice).at(-1);
    if (c.state === 'agent' && c.origin !== 'email' && lastPublic?.author.role === 'customer') sink.effects.push({ kind: 'turn' });
  }

  /** A step of the ladder in the handoff history (ownership unchanged). */
  private record(c: Conversation, reason: string, note: string): void {
    c.history.push({ from: c.state, to: c.state, reason, by: { kind: 'system' }, at: this.now().toISOString(), note });
  }

  private startLadder(c: Conversation): void {
    const now = this.now().getTime();
    const escalation = escalationCount(c);
    this.clearTimers(c, LADDER);
    // A duration of 0 turns that step off.
    if (this.durations.remind > 0) this.setTimer(c, { name: 'remind', at: new Date(now + this.durations.remind).toISOString(), escalation });
    if (this.durations.managers > 0) this.setTimer(c, { name: 'managers', at: new Date(now + this.durations.managers).toISOString(), escalation });
    if (this.durations.fallback > 0) this.setTimer(c, { name: 'fallback', at: new Date(now + this.durations.fallback).toISOString(), escalation });
  }

  private setTimer(c: Conversation, timer: Timer): void {
    c.timers = [...(c.timers ?? []).filter((t) => t.name !== timer.name), timer];
  }

  private clearTimers(c: Conversation, names: TimerName[]): void {
    if (c.timers?.some((t) => names.includes(t.name))) c.timers = c.timers.filter((t) => !names.includes(t.name));
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
