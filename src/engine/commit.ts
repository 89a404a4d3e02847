/**
 * Changing a conversation: read it, apply a pure change, and commit the new state together with
 * the work it implies, compare-and-set on the version read. A writer that lost a race gets a
 * conflict and runs its change again on a fresh read; nothing is ever overwritten blindly.
 * An in-process queue per conversation only saves this instance from racing itself.
 */
import { ConversationNotFoundError, VersionConflictError } from '../errors.ts';
import type { Conversation, HistoryEntry, Message, Operator, Origin } from '../model.ts';
import { conversationLogger, type Logger } from '../log.ts';
import { InProcessLocks } from '../store/locks.ts';
import { headerJson, type Commit, type IndexWrite, type Lease, type Store, type WorkPayload } from '../store/store.ts';
import { WEBHOOKS } from '../delivery/webhooks.ts';
import { Rules } from './rules.ts';
import { dayIndexes, observe, type Observation } from './stats.ts';

/** The destination name of the customer's channel (whichever channel the conversation came from). */
export const CUSTOMER = 'customer';
/** The destination name of agent turns. */
export const AGENT = 'agent';
/** The destination name of timers: the conversation is due at its earliest timer. */
export const TIMERS = 'timers';

/** What one change asks for, collected while it is applied; turned into work items at commit. */
export type Effect =
  /** `only`: just these workspaces (one that comes online catches up); default every workspace but the message's own. */
  | { kind: 'mirror'; message: Message; only?: string[] }
  | { kind: 'deliver'; message: Message }
  | { kind: 'ownership'; change: HistoryEntry }
  | { kind: 'briefing'; escalation: number; only?: string[] }
  | { kind: 'managers'; escalation: number }
  | { kind: 'notify'; operator: Operator; text: string }
  | { kind: 'turn' };

/** Collects a change's effects and index writes. */
export interface ChangeSink {
  effects: Effect[];
  indexes: IndexWrite[];
  /** The message the change's inbound key stored: kept with the key's mark (`ChangeOptions.inbound`). */
  inboundMessage?: string;
}

export interface ChangeOptions {
  /** A conversation not stored yet, which this commit creates. */
  fresh?: Conversation;
  /** Inbound idempotency key recorded with the change. */
  inbound?: { key: string; ttlMs: number };
  /** A worker's cursor moved by the same commit; `release`: its lease goes back too if nothing is left. */
  cursor?: { lease: Lease; seq: number; release?: boolean };
  /** Rewrite the timers' schedule even if the timers look unchanged (the timer worker's own commits). */
  reschedule?: boolean;
}

/** Maps effects to the destinations that exist in this process's configuration. */
export interface Routing {
  /** Workspace names, e.g. `['slack', 'teams']`. */
  workspaces(): string[];
  /** Whether signed webhooks run (`WEBHOOK_URL`): ownership changes and transcript messages are also work for them. */
  webhooks?(): boolean;
  /** Whether the customer's side of this origin needs no delivery work: a live view (`CustomerChannel.live`), or API conversations read over the API. */
  live?(origin: Origin): boolean;
  /** Told what each successful commit meant (metrics). */
  observed?(observations: Observation[]): void;
  /** Destinations whose workers here can start on new work at once: the commit leases it for them. */
  claimable?(): { destinations: string[]; leaseMs: number; begin: string[] };
  /** The leases a commit took for this instance's workers. */
  claimed?(leases: Lease[]): void;
  /**
   * A commit that leases an agent turn here is about to be written as `version`: the turn may start
   * now (`AgentTurns.speculate`). The answer is told how the commit settled.
   */
  turnAhead?(conversation: Conversation, version: number): ((settled: { claimed: Lease[] } | undefined) => void) | undefined;
}

export class Committer {
  private readonly local = new InProcessLocks();

  constructor(
    private readonly store: Store,
    private readonly routing: Routing,
    private readonly now: () => Date,
    private readonly logger: Logger,
    private readonly maxAttempts = 20,
  ) {}

  /**
   * Applies `change` to the latest committed state and commits it with its work. `change` must be
   * pure (it may run more than once) and may throw a typed error to refuse.
   */
  async change<T>(conversationId: string, change: (c: Conversation, sink: ChangeSink) => T, options: ChangeOptions = {}): Promise<{ conversation: Conversation; result: T; released?: boolean }> {
    return this.local.withLock(conversationId, async () => {
      for (let attempt = 1; ; attempt++) {
        // The store hands out a copy per read, so the change edits it in place. `before` keeps what
        // the change may replace or append to (messages are frozen and never edited in place).
        // A first try may start from this instance's cached copy; after a conflict, from the store.
        const c = options.fresh && attempt === 1 ? structuredClone(options.fresh) : await this.require(conversationId, attempt === 1 ? { atLeast: 1 } : undefined);
        const before: Conversation = { ...c, history: c.history.slice(), messages: c.messages.slice() };
        const timerBefore = Rules.nextTimer(c);
        const sink: ChangeSink = { effects: [], indexes: [] };
        const result = change(c, sink);
        c.updatedAt = this.now().toISOString();
        const nextTimer = Rules.nextTimer(c);
        const observations = observe(before, c);
        const { work, announce } = this.route(c, sink.effects);
        const commit: Commit = {
          conversation: c,
          expectedVersion: before.version,
          appended: c.messages.slice(before.messages.length),
          // Serialized once here, for the cache and the store alike.
          header: headerJson(c),
          work,
          indexes: [...sink.indexes, ...this.stateIndexes(before, c), ...dayIndexes(observations, c.id, c.updatedAt)],
          ...(options.inbound ? { inbound: sink.inboundMessage ? { ...options.inbound, message: sink.inboundMessage } : options.inbound } : {}),
          ...(options.cursor ? { cursor: options.cursor } : {}),
          ...(announce ? { announce } : {}),
          // The timers' schedule follows the conversation's earliest timer (always rewritten when timers fired).
          ...(options.reschedule || nextTimer !== timerBefore ? { schedule: { destination: TIMERS, at: nextTimer } } : {}),
        };
        const claim = this.claimFor(commit.work ?? []);
        if (claim) commit.claim = claim;
        const settled = claim?.destinations.includes(AGENT) ? this.routing.turnAhead?.(c, before.version + 1) : undefined;
        try {
          const { version, claimed, released } = await this.store.commitClaiming(commit);
          settled?.({ claimed }); // the early turn is taken only for the version written
          c.version = version;
          if (claimed.length) this.routing.claimed?.(claimed);
          this.routing.observed?.(observations);
          for (const effect of sink.effects) {
            if (effect.kind !== 'ownership') continue;
            const { from, to, reason, trigger } = effect.change;
            conversationLogger(this.logger, c).info({ from, to, reason, trigger }, 'ownership changed');
          }
          return released ? { conversation: c, result, released } : { conversation: c, result };
        } catch (err) {
          settled?.(undefined);
          // Lost a race: run the change again on what the winner committed.
          if (err instanceof VersionConflictError && attempt < this.maxAttempts) continue;
          throw err;
        }
      }
    });
  }

  async require(conversationId: string, options?: { atLeast?: number }): Promise<Conversation> {
    const c = await this.store.getConversation(conversationId, options);
    if (!c) throw new ConversationNotFoundError(conversationId);
    return c;
  }

  /** The new work's destinations this instance can start on now. */
  private claimFor(work: NonNullable<Commit['work']>): Commit['claim'] {
    if (work.length === 0 || !this.routing.claimable) return undefined;
    const { destinations, leaseMs, begin } = this.routing.claimable();
    const wanted = destinations.filter((d) => work.some((w) => w.to.includes(d)));
    if (wanted.length === 0) return undefined;
    const begins = begin.filter((d) => wanted.includes(d));
    return { destinations: wanted, leaseMs, ...(begins.length ? { begin: begins } : {}) };
  }

  /** Effects → work items, addressed to the destinations that should do them, and those to tell with no work (`Commit.announce`). */
  private route(c: Conversation, effects: Effect[]): { work: NonNullable<Commit['work']>; announce?: string[] } {
    const workspaces = this.routing.workspaces();
    const hooks = this.routing.webhooks?.() ? [WEBHOOKS] : [];
    const work: NonNullable<Commit['work']> = [];
    let announce: string[] | undefined;
    for (const effect of effects) {
      switch (effect.kind) {
        case 'mirror':
          addWork(
            work,
            [
              ...workspaces.filter((w) => (effect.only ? effect.only.includes(w) : w !== effect.message.source?.workspace || effect.message.source.inThread === false)),
              // A workspace's catch-up copy (`only`) is not a new message for the webhooks.
              ...(effect.only ? [] : hooks),
            ],
            { kind: 'mirror', messageId: effect.message.id },
          );
          break;
        case 'deliver':
          // Internal text never reaches a customer, whatever asked for it. A live channel (web chat)
          // needs no work: every instance catches its own sockets up from the change feed. The
          // notice still names `customer`, which instances of earlier versions wait for.
          if (effect.message.visibility !== 'public') break;
          if (!this.routing.live?.(c.origin)) addWork(work, [CUSTOMER], { kind: 'deliver', messageId: effect.message.id });
          else announce = [CUSTOMER];
          break;
        case 'ownership':
          // An agent-to-agent hop changes no owner: workspaces show its activity line; webhooks get handoff.agent.
          addWork(work, effect.change.reason === 'agent_handoff' ? hooks : [...workspaces, ...hooks], { kind: 'ownership', change: effect.change });
          break;
        case 'briefing':
          addWork(work, effect.only ? workspaces.filter((w) => effect.only!.includes(w)) : workspaces, { kind: 'briefing', escalation: effect.escalation });
          break;
        case 'managers':
          addWork(work, workspaces, { kind: 'managers', escalation: effect.escalation });
          break;
        case 'notify':
          addWork(work, workspaces.filter((w) => w === effect.operator.workspace), { kind: 'notify', operator: effect.operator, text: effect.text });
          break;
        case 'turn':
          if (c.state === 'agent') addWork(work, [AGENT], { kind: 'turn' });
          break;
      }
    }
    // Remember which workspaces have this conversation's thread, so one added later can catch up.
    const reached = new Set(work.flatMap((w) => w.to).filter((d) => workspaces.includes(d)));
    if ([...reached].some((w) => !c.workspaces?.includes(w))) c.workspaces = [...new Set([...(c.workspaces ?? []), ...reached])];
    return announce ? { work, announce } : { work };
  }

  /** Index entries that follow the conversation's state: who is waiting, which escalations are pending. */
  private stateIndexes(before: Conversation, c: Conversation): IndexWrite[] {
    const writes: IndexWrite[] = [];
    if (before.state !== c.state || before.version === 0) {
      if (before.version !== 0) writes.push({ op: 'remove', key: `state:${before.state}`, member: c.id });
      writes.push({ op: 'add', key: `state:${c.state}`, member: c.id });
    }
    if (Boolean(before.pendingEscalation) !== Boolean(c.pendingEscalation)) {
      writes.push({ op: c.pendingEscalation ? 'add' : 'remove', key: 'pending-escalation', member: c.id });
    }
    return writes;
  }
}

/** Work for `to`, when anyone is to do it. A module function: tsx names each inner closure it creates with `Object.defineProperty`, once per commit. */
function addWork(work: NonNullable<Commit['work']>, to: string[], payload: WorkPayload): void {
  if (to.length > 0) work.push({ to, payload });
}
