/**
 * Agent turns as durable work. A customer message in agent state commits a `turn` item; this
 * destination runs the agent for it and commits the answer together with the cursor move, so a
 * turn is answered exactly once even across a crash (an unanswered turn is simply run again).
 *
 * The mute invariant holds three ways: the answer is committed only if ownership is unchanged since
 * the turn started (compare-and-set makes that check race-free across instances); a change
 * committed anywhere aborts the generation here (the store's change feed); and every tool call
 * asks `authorize` first, which refuses once the conversation has left the agent.
 *
 * A turn may start early: while the customer's commit is on its way to disk, the model is asked
 * already (`speculate`). Asking has no effect; nothing the answer implies happens before the worker
 * takes the turn: its tool calls wait to be authorized by it, and only the version the commit wrote
 * can adopt it. Any other outcome (a failed commit, no lease here, a newer state) discards it.
 */
import type { Agent, AgentTurnInput, AgentTurnResult } from '../agent/agent.ts';
import { markChange, recordAgentHandoffs } from '../agent/handoff-history.ts';
import type { Destination, WorkContext } from '../delivery/worker.ts';
import { BridgeError, LeaseLostError, StoreUnavailableError } from '../errors.ts';
import { conversationLogger, type Logger } from '../log.ts';
import type { Conversation } from '../model.ts';
import type { agentMaySpeak } from '../ownership.ts';
import type { Policy } from '../policy.ts';
import { RecentMap } from '../recent-map.ts';
import type { Lease, Store, WorkItem } from '../store/store.ts';
import { AGENT, type Committer } from './commit.ts';
import type { Rules } from './rules.ts';

export interface AgentTurnsOptions {
  store: Store;
  committer: Committer;
  rules: Rules;
  agent: Agent;
  policy: Policy;
  logger: Logger;
  timeoutMs: number;
  mayAgentSpeak: typeof agentMaySpeak;
  clip(text: string): string;
  /** Told what became of each early turn: taken by the worker, or discarded (its model call wasted). */
  earlyTurn?(outcome: 'taken' | 'discarded'): void;
}

interface RunningTurn {
  controller: AbortController;
  startedAt: number;
}

/** A turn started while its customer message was being committed, waiting for the worker to take it. */
interface EarlyTurn {
  /** The version the commit writes; the worker's copy must be this one to adopt the turn. */
  version: number;
  /** Set once the commit is stored and leased the turn to this instance. */
  committed: boolean;
  /** When it started (for the sweep). */
  at: number;
  /** The turn's own controller: the worker's turn takes it over. */
  controller: AbortController;
  result: Promise<AgentTurnResult>;
  /** Hands the worker's `authorize` to the tool calls waiting for it. */
  adopt(authorize: AgentTurnInput['authorize']): void;
  /** Aborts it; its waiting tool calls are refused. */
  discard(reason: Error): void;
}

/** An early turn nobody took within this (a worker stopping, a lease lost on the way) is discarded. */
const EARLY_TURN_WAIT_MS = 10_000;

const ownershipChanged = () => new BridgeError('ownership_changed', 'The conversation changed hands; this agent turn is void.');

export class AgentTurns implements Destination {
  readonly name = AGENT;
  private readonly running = new Map<string, RunningTurn>();
  private readonly unsubscribe: () => void;

  constructor(private readonly options: AgentTurnsOptions) {
    // A claim committed on any instance stops a generation running here; so does a newer customer message.
    this.unsubscribe = options.store.onChange((notice) => {
      this.rememberOwnership(notice.conversationId, notice.ownershipVersion);
      const turn = this.running.get(notice.conversationId);
      if (!turn) return;
      if (notice.ownershipVersion !== turn.startedAt) turn.controller.abort(ownershipChanged());
      else if (notice.destinations.includes(AGENT)) turn.controller.abort(new BridgeError('superseded', 'A newer customer message supersedes this turn.'));
    });
  }

  close(): void {
    this.unsubscribe();
    clearInterval(this.sweep);
    for (const early of this.early.values()) early.discard(new BridgeError('stopping', 'The bridge is stopping.'));
  }

  /** Early turns by conversation (at most one each: a newer one replaces the older). */
  private readonly early = new Map<string, EarlyTurn>();

  private readonly sweep = setInterval(() => {
    const before = Date.now() - EARLY_TURN_WAIT_MS;
    for (const early of this.early.values()) if (early.at < before) early.discard(new BridgeError('superseded', 'Nobody took this early agent turn.'));
  }, EARLY_TURN_WAIT_MS).unref();

  /**
   * Starts the agent's turn for a commit on its way to the store, which will write `version` and
   * lease the turn to this instance. Returns what to call when the commit settles: with the leases
   * it took, or with nothing when it failed.
   */
  speculate(pending: Conversation, version: number): ((settled: { claimed: Lease[] } | undefined) => void) | undefined {
    if (!this.options.mayAgentSpeak(pending, pending.ownershipVersion)) return undefined;
    // A turn running here holds the lease: this commit cannot take it, so the turn would be wasted.
    if (this.running.has(pending.id)) return undefined;
    const conversation: Conversation = { ...pending, version, messages: pending.messages.slice(), history: pending.history.slice() };
    const controller = new AbortController();
    let adopt!: (authorize: AgentTurnInput['authorize']) => void;
    let refuse!: (reason: Error) => void;
    const adopted = new Promise<AgentTurnInput['authorize']>((resolve, reject) => {
      adopt = resolve;
      refuse = reject;
    });
    adopted.catch(() => {});
    const early: EarlyTurn = {
      version,
      committed: false,
      at: Date.now(),
      controller,
      // A tool call waits for the worker's authorize: nothing with an effect runs before the turn is taken.
      result: Promise.resolve().then(() =>
        this.options.agent.respond({ conversation, policy: this.options.policy, signal: controller.signal, authorize: async (call) => (await adopted)(call) }),
      ),
      adopt,
      discard: (reason) => {
        if (controller.signal.aborted) return;
        this.options.earlyTurn?.('discarded');
        if (this.early.get(conversation.id) === early) this.early.delete(conversation.id);
        refuse(reason);
        controller.abort(reason);
      },
    };
    early.result.catch(() => {});
    this.early.get(conversation.id)?.discard(new BridgeError('superseded', 'A newer customer message supersedes this turn.'));
    this.early.set(conversation.id, early);
    return (settled) => {
      const leased = settled?.claimed.some((l) => l.destination === AGENT && l.conversationId === conversation.id);
      if (leased) early.committed = true;
      else early.discard(new BridgeError('superseded', settled ? 'The turn was not leased to this instance.' : 'The commit failed.'));
    };
  }

  /** The early turn started for exactly this version, if any; an older one is discarded. */
  private takeEarly(snapshot: Conversation): EarlyTurn | undefined {
    const early = this.early.get(snapshot.id);
    if (!early || early.version > snapshot.version) return undefined; // for a later item of this batch
    this.early.delete(snapshot.id);
    if (early.committed && early.version === snapshot.version) return early;
    early.discard(new BridgeError('superseded', 'The conversation moved on before the turn was taken.'));
    return undefined;
  }

  /** The latest ownership version heard per conversation (bounded: only recent changes matter). */
  private readonly ownershipSeen = new RecentMap<string, number>(10_000);

  private rememberOwnership(conversationId: string, ownershipVersion: number): void {
    if ((this.ownershipSeen.peek(conversationId) ?? -1) >= ownershipVersion) return;
    this.ownershipSeen.set(conversationId, ownershipVersion);
  }

  /** A turn commits its own cursor move with its answer; a repeat after a crash is simply the turn again. */
  recordsAttempts(): boolean {
    return false;
  }

  async handle(item: WorkItem, context: WorkContext): Promise<void | 'committed' | 'finished'> {
    if (item.payload.kind !== 'turn') return;
    // Several unanswered messages get one answer, to the latest.
    if (context.later.some((later) => later.payload.kind === 'turn')) return;
    const { mayAgentSpeak } = this.options;
    // The batch's copy is at least as new as this item.
    const snapshot = context.conversation;
    const early = this.takeEarly(snapshot);
    if (!mayAgentSpeak(snapshot, snapshot.ownershipVersion)) {
      early?.discard(ownershipChanged());
      return; // nobody may answer as the agent now
    }
    const startedAt = snapshot.ownershipVersion;
    const log = conversationLogger(this.options.logger, snapshot);

    // An early turn for this very state is this turn, asked already: its controller is the turn's.
    const controller = early?.controller ?? new AbortController();
    const onLeaseLost = () => controller.abort(context.signal.reason);
    context.signal.addEventListener('abort', onLeaseLost, { once: true });
    const turn: RunningTurn = { controller, startedAt };
    this.running.set(snapshot.id, turn);
    // An ownership change heard since the batch was read (before the turn was listening) stops it now.
    if ((this.ownershipSeen.peek(snapshot.id) ?? startedAt) > startedAt) controller.abort(ownershipChanged());
    const timeout = setTimeout(() => controller.abort(new BridgeError('agent_timeout', `The agent took longer than ${this.options.timeoutMs} ms.`)), this.options.timeoutMs);
    const authorize: AgentTurnInput['authorize'] = (call) => this.authorize(snapshot.id, startedAt, controller, call);
    let result: AgentTurnResult;
    try {
      if (early) {
        this.options.earlyTurn?.('taken');
        early.adopt(authorize);
        result = await early.result;
      } else {
        result = await this.options.agent.respond({ conversation: snapshot, policy: this.options.policy, signal: controller.signal, authorize });
      }
      controller.signal.throwIfAborted();
    } catch (err) {
      const reason = controller.signal.reason as Error | undefined;
      if (context.signal.aborted) throw context.signal.reason; // lease lost or stopping: not ours to finish
      if (controller.signal.aborted && (reason as BridgeError | undefined)?.code !== 'agent_timeout') {
        log.info({ reason: (reason as BridgeError | undefined)?.code }, 'agent turn aborted');
        return; // void: ownership changed, or a newer turn answers instead
      }
      if (err instanceof StoreUnavailableError) throw err; // authorize could not check: run the turn again later
      log.warn({ err }, 'agent failed; escalating so the customer is not left waiting');
      result = { kind: 'escalate', trigger: 'agent_error', reason: `The agent failed: ${(reason ?? (err as Error)).message}`, actionsTaken: [] };
    } finally {
      clearTimeout(timeout);
      context.signal.removeEventListener('abort', onLeaseLost);
      if (this.running.get(snapshot.id) === turn) this.running.delete(snapshot.id);
    }
    // The answer's commit gives the lease back too when this was the last turn waiting.
    return (await this.commitAnswer(snapshot, startedAt, item, context, result, log)) ? 'finished' : 'committed';
  }

  /** Commits the answer with the cursor move; retries a failing store a few times before giving the turn back. True when the commit also gave the lease back. */
  private async commitAnswer(snapshot: Conversation, startedAt: number, item: WorkItem, context: WorkContext, result: AgentTurnResult, log: Logger): Promise<boolean> {
    const { committer, rules, mayAgentSpeak } = this.options;
    for (let attempt = 1; ; attempt++) {
      let dropped = false;
      try {
        const { released } = await committer.change(
          snapshot.id,
          (c, sink) => {
            dropped = false;
            // The mute invariant: a turn that started before an ownership change must not speak.
            // A customer message that came in meanwhile has its own turn, which answers both.
            const newer = c.messages.slice(snapshot.messages.length).some((m) => m.author.role === 'customer');
            if (!mayAgentSpeak(c, startedAt) || newer) {
              dropped = true;
              return;
            }
            const mark = markChange(c, sink);
            const actions = result.actionsTaken.map((a) => ({ tool: a.tool, input: a.input, output: a.output, ok: a.ok }));
            if (result.kind === 'reply') {
              const message = rules.append(c, { author: { role: 'agent', name: this.options.agent.name }, text: this.options.clip(result.text), visibility: 'public', ...(actions.length ? { actions } : {}) });
              c.agentTurns += 1;
              sink.effects.push({ kind: 'mirror', message }, { kind: 'deliver', message });
            } else {
              if (actions.length) {
                const message = rules.append(c, { author: { role: 'agent', name: this.options.agent.name }, text: `Tried before escalating: ${actions.map((a) => a.tool).join(', ')}`, visibility: 'internal', actions });
                sink.effects.push({ kind: 'mirror', message });
              }
              rules.escalate(c, { trigger: result.trigger, reason: result.reason }, { kind: 'agent' }, sink, result.request);
            }
            // Several agents: the turn's hops go in before its answer; the answer is signed by its agent.
            recordAgentHandoffs(c, sink, rules, result, mark);
          },
          // Items after this one in the batch are still to do: the lease stays for them.
          { cursor: { lease: context.lease, seq: item.seq, release: context.later.length === 0 } },
        );
        if (dropped) log.info({ startedAt }, 'agent output dropped: the conversation changed during the turn');
        return released === true;
      } catch (err) {
        if (err instanceof LeaseLostError) throw err;
        if (!(err instanceof StoreUnavailableError) || attempt >= 5) throw err; // the turn runs again later
        log.warn({ attempt, err: err.message }, 'could not commit the agent answer; retrying');
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      }
    }
  }

  /** Before a tool runs: still the agent's conversation? Reserve the approval it uses. */
  private async authorize(conversationId: string, startedAt: number, controller: AbortController, call: { tool: string; args: unknown; approvalId?: string }): Promise<void> {
    const { store, committer, mayAgentSpeak } = this.options;
    const refuse = () => {
      const reason = ownershipChanged();
      controller.abort(reason);
      return reason;
    };
    if (!call.approvalId) {
      const current = await store.getConversation(conversationId);
      if (!current || !mayAgentSpeak(current, startedAt)) throw refuse();
      return;
    }
    const approvalId = call.approvalId;
    await committer.change(conversationId, (c, sink) => {
      if (!mayAgentSpeak(c, startedAt)) throw refuse();
      const approval = c.approvals.find((a) => a.id === approvalId);
      if (!approval || approval.usedAt) throw new BridgeError('approval_used', `The approval for ${call.tool} was already used.`);
      approval.usedAt = new Date().toISOString();
      this.options.rules.appendSystem(c, sink, { text: `The agent used ${approval.by.name}'s approval to run ${call.tool}.`, visibility: 'internal' });
    });
  }
}
