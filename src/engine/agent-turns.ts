/**
 * Agent turns as durable work. A customer message in agent state commits a `turn` item; this
 * destination runs the agent for it and commits the answer together with the cursor move, so a
 * turn is answered exactly once even across a crash (an unanswered turn is simply run again).
 *
 * The mute invariant holds three ways: the answer is committed only if ownership is unchanged since
 * the turn started (compare-and-set makes that check race-free across instances); a change
 * committed anywhere aborts the generation here (the store's change feed); and every tool call
 * asks `authorize` first, which refuses once the conversation has left the agent.
 */
import type { Agent, AgentTurnResult } from '../agent/agent.ts';
import { markChange, recordAgentHandoffs } from '../agent/handoff-history.ts';
import type { Destination, WorkContext } from '../delivery/worker.ts';
import { BridgeError, LeaseLostError, StoreUnavailableError } from '../errors.ts';
import { conversationLogger, type Logger } from '../log.ts';
import type { Conversation } from '../model.ts';
import type { agentMaySpeak } from '../ownership.ts';
import type { Policy } from '../policy.ts';
import { RecentMap } from '../recent-map.ts';
import type { Store, WorkItem } from '../store/store.ts';
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
}

interface RunningTurn {
  controller: AbortController;
  startedAt: number;
}

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
    if (!mayAgentSpeak(snapshot, snapshot.ownershipVersion)) return; // nobody may answer as the agent now
    const startedAt = snapshot.ownershipVersion;
    const log = conversationLogger(this.options.logger, snapshot);

    const controller = new AbortController();
    const onLeaseLost = () => controller.abort(context.signal.reason);
    context.signal.addEventListener('abort', onLeaseLost, { once: true });
    const turn: RunningTurn = { controller, startedAt };
    this.running.set(snapshot.id, turn);
    // An ownership change heard since the batch was read (before the turn was listening) stops it now.
    if ((this.ownershipSeen.peek(snapshot.id) ?? startedAt) > startedAt) controller.abort(ownershipChanged());
    const timeout = setTimeout(() => controller.abort(new BridgeError('agent_timeout', `The agent took longer than ${this.options.timeoutMs} ms.`)), this.options.timeoutMs);
    let result: AgentTurnResult;
    try {
      result = await this.options.agent.respond({
        conversation: snapshot,
        policy: this.options.policy,
        signal: controller.signal,
        authorize: (call) => this.authorize(snapshot.id, startedAt, controller, call),
      });
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
