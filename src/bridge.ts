/**
 * The bridge: the entry points adapters call and the rules behind them. It decides who owns a
 * conversation (through the pure state machine), runs the agent, enforces the mute invariant,
 * and fans committed changes out to the customer channel and the workspaces, in order.
 * It knows nothing about Slack, Teams, SMTP or WebSockets.
 */
import { randomUUID } from 'node:crypto';
import type { Agent, AgentTurnResult } from './agent/agent.ts';
import type { EscalateToolArgs } from './envelope.ts';
import { AlreadyClaimedError, BridgeError, ConversationNotFoundError, InputError, UnknownOptionError } from './errors.ts';
import { conversationLogger, silentLogger, withConversationContext, type Logger } from './log.ts';
import type {
  Actor,
  Attachment,
  Conversation,
  Customer,
  Decision,
  HandbackContext,
  HistoryEntry,
  Message,
  MessageSource,
  NoticeKind,
  Operator,
  Origin,
} from './model.ts';
import { agentMaySpeak, transition, type OwnershipCommand } from './ownership.ts';
import { DEFAULT_POLICY, routeQueue, type Policy } from './policy.ts';
import type { CustomerChannel, Workspace } from './ports.ts';
import type { Store } from './store/store.ts';
import { buildEnvelope, type EscalationCause } from './summarizer.ts';
import { evaluateCustomerTriggers } from './triggers.ts';

export interface BridgeOptions {
  store: Store;
  agent: Agent;
  policy?: Policy;
  logger?: Logger;
  /** Ticket prefix: `HB` gives `HB-1001`. */
  ticketPrefix?: string;
  /** Operator text starting with this is an internal note. */
  notePrefix?: string;
  /** Longest message text accepted from a customer or operator. */
  maxMessageChars?: number;
  /** An agent turn running longer than this is aborted and escalated. */
  agentTimeoutMs?: number;
  /** The mute rule. Only tests replace it, to prove the property tests catch a broken rule. */
  mayAgentSpeak?: typeof agentMaySpeak;
  now?: () => Date;
}

export interface CustomerMessageInput {
  conversationId?: string;
  origin: Origin;
  customer: Customer;
  subject?: string;
  text: string;
  attachments?: Attachment[];
  idempotencyKey?: string;
  channelData?: Record<string, unknown>;
}

export interface OperatorMessageInput {
  conversationId: string;
  operator: Operator;
  text: string;
  internal?: boolean;
  attachments?: Attachment[];
  idempotencyKey?: string;
  source?: MessageSource;
}

/** What one committed change asks the ports to do, in order. */
type Effect =
  | { kind: 'mirror'; message: Message }
  | { kind: 'deliver'; message: Message }
  | { kind: 'ownership'; change: HistoryEntry }
  | { kind: 'briefing' }
  | { kind: 'notify'; operator: Operator; text: string };

interface ActiveTurn {
  id: string;
  controller: AbortController;
  /** A newer customer message started another turn; this one's output is stale. */
  superseded?: boolean;
}

const CUSTOMER_NOTICES: Partial<Record<NoticeKind, (c: Conversation, by?: Operator) => string>> = {
  escalated: (c) => `I'm connecting you with a person from our team. Your ticket reference is ${c.ticket}; they'll reply right here.`,
  joined: (_c, by) => `${by?.name ?? 'A person'} from our team has joined the conversation.`,
  returned: () => `You're back with the assistant. Our team has shared what they found, so there's no need to repeat yourself.`,
  released: () => `A person from our team will be with you shortly.`,
  transferred: (_c, by) => `${by?.name ?? 'Another person'} from our team is now helping you.`,
  closed: (c) => `This conversation (${c.ticket}) is now closed. Reply any time to reopen it.`,
};

export class Bridge {
  readonly store: Store;
  readonly logger: Logger;
  readonly policy: Policy;
  private readonly agent: Agent;
  private readonly channels: CustomerChannel[] = [];
  private readonly workspaces: Workspace[] = [];
  private readonly ticketPrefix: string;
  private readonly notePrefix: string;
  /** Longest text accepted from a customer or operator; channels shorten to fit. */
  readonly maxMessageChars: number;
  private readonly agentTimeoutMs: number;
  private readonly mayAgentSpeak: typeof agentMaySpeak;
  private readonly now: () => Date;
  /** Per-conversation tail of port calls, so each conversation's effects go out in order. */
  private readonly outbound = new Map<string, Promise<void>>();
  private readonly activeTurns = new Map<string, ActiveTurn>();
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(options: BridgeOptions) {
    this.store = options.store;
    this.agent = options.agent;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.logger = options.logger ?? silentLogger();
    this.ticketPrefix = options.ticketPrefix ?? 'HB';
    this.notePrefix = options.notePrefix ?? '//';
    this.maxMessageChars = options.maxMessageChars ?? 8000;
    this.agentTimeoutMs = options.agentTimeoutMs ?? 120_000;
    this.mayAgentSpeak = options.mayAgentSpeak ?? agentMaySpeak;
    this.now = options.now ?? (() => new Date());
  }

  addChannel(channel: CustomerChannel): void {
    this.channels.push(channel);
  }

  addWorkspace(workspace: Workspace): void {
    this.workspaces.push(workspace);
  }

  /** Creates a conversation with no message yet (a web chat session opening). */
  async openConversation(input: { origin: Origin; customer: Customer; subject?: string; channelData?: Record<string, unknown> }): Promise<Conversation> {
    const fresh = await this.newConversation(input.origin, input.customer, input.subject, input.channelData);
    const { conversation } = await this.mutate(fresh.id, () => undefined, fresh);
    await this.store.kv('index').set(`ticket:${conversation.ticket.toUpperCase()}`, conversation.id);
    return conversation;
  }

  /**
   * A customer message. Without `conversationId` it starts a conversation; a closed one reopens to
   * the agent. Deterministic triggers run first; in agent state an agent turn starts in the background.
   */
  async customerMessage(input: CustomerMessageInput): Promise<{ conversation: Conversation; message: Message | undefined; duplicate: boolean }> {
    const text = this.cleanText(input.text, 'customer', (input.attachments?.length ?? 0) > 0);
    return this.onceOnly(input.idempotencyKey && `customer:${input.idempotencyKey}`, async (first) => {
      const index = this.store.kv('index');
      let conversationId = input.conversationId;
      if (!first) {
        // A redelivery: answer with the conversation the first delivery went to.
        conversationId ??= await index.get<string>(`idem:${input.idempotencyKey}`);
        const existing = conversationId ? await this.getConversation(conversationId) : undefined;
        if (!existing) throw new BridgeError('duplicate_in_flight', 'This message is already being processed; retry shortly.');
        return { conversation: existing, message: undefined, duplicate: true };
      }
      // A new conversation is created by the same write that stores its first message.
      const fresh = conversationId ? undefined : await this.newConversation(input.origin, input.customer, input.subject, input.channelData);
      conversationId ??= fresh!.id;

      let startTurn = false;
      const { conversation, message } = await this.mutate(conversationId, (c, effects) => {
        if (input.channelData) c.channelData = { ...c.channelData, ...input.channelData };
        if (c.state === 'closed') {
          this.apply(c, { type: 'reopen', by: { kind: 'customer' } }, effects);
          c.agentTurns = 0;
          this.appendSystem(c, effects, { text: `Reopened by the customer.`, visibility: 'internal', notice: 'reopened' });
        }
        const message = this.append(c, {
          author: { role: 'customer', id: c.customer.id, ...(c.customer.name ? { name: c.customer.name } : {}) },
          text,
          visibility: 'public',
          ...(input.attachments?.length ? { attachments: input.attachments } : {}),
        });
        effects.push({ kind: 'mirror', message });
        if (c.state === 'agent') {
          if (c.messages.filter((m) => m.author.role === 'customer').length === 1) c.queue = routeQueue(this.policy, text);
          const hit = evaluateCustomerTriggers(c, this.policy);
          if (hit) this.escalateInPlace(c, { trigger: hit.trigger, reason: hit.reason, priority: hit.priority }, { kind: 'system' }, effects);
          else startTurn = true;
        }
        return message;
      }, fresh);
      if (fresh) {
        await index.set(`ticket:${conversation.ticket.toUpperCase()}`, conversation.id);
        if (input.idempotencyKey) await index.set(`idem:${input.idempotencyKey}`, conversation.id, 24 * 60 * 60 * 1000);
      }
      if (startTurn) this.startAgentTurn(conversation.id);
      return { conversation, message, duplicate: false };
    });
  }

  /**
   * Operator text from a thread. The owner's text reaches the customer; anyone else's (or text
   * marked internal, or starting with the note prefix) stays an internal note.
   */
  async operatorMessage(input: OperatorMessageInput): Promise<{ conversation: Conversation; message: Message | undefined; delivered: boolean; duplicate: boolean }> {
    let text = input.text;
    let internal = input.internal ?? false;
    if (text.trimStart().startsWith(this.notePrefix)) {
      internal = true;
      text = text.trimStart().slice(this.notePrefix.length).trimStart();
    }
    text = this.cleanText(text, 'operator', (input.attachments?.length ?? 0) > 0);
    return this.onceOnly(input.idempotencyKey && `operator:${input.idempotencyKey}`, async (first) => {
      if (!first) return { conversation: await this.require(input.conversationId), message: undefined, delivered: false, duplicate: true };
      let delivered = false;
      const { conversation, message } = await this.mutate(input.conversationId, (c, effects) => {
        delivered = !internal && c.state === 'human' && c.owner?.id === input.operator.id;
        const message = this.append(c, {
          author: { role: 'operator', id: input.operator.id, name: input.operator.name },
          text,
          visibility: delivered ? 'public' : 'internal',
          ...(input.attachments?.length ? { attachments: input.attachments } : {}),
          ...(input.source ? { source: input.source } : {}),
        });
        effects.push({ kind: 'mirror', message });
        if (delivered) effects.push({ kind: 'deliver', message });
        else if (!internal) {
          // Tell the writer privately why the customer did not get it.
          const why = c.state === 'human' ? `${c.owner!.name} holds ${c.ticket}` : `Nobody has claimed ${c.ticket} yet`;
          effects.push({ kind: 'notify', operator: input.operator, text: `${why}, so your reply was kept as an internal note. Claim it to answer the customer.` });
        }
        return message;
      });
      return { conversation, message, delivered, duplicate: false };
    });
  }

  /** An internal system note in the conversation's thread (e.g. a channel reporting a bounce). Never reaches the customer. */
  async internalNote(input: { conversationId: string; text: string }): Promise<Message> {
    const text = this.cleanText(input.text, 'note', false);
    const { message } = await this.mutate(input.conversationId, (c, effects) => this.appendSystem(c, effects, { text, visibility: 'internal' }));
    return message;
  }

  /** Waiting -> human. The first claim wins; a later one gets `AlreadyClaimedError` naming the holder. */
  async claim(input: { conversationId: string; operator: Operator; idempotencyKey?: string }): Promise<Conversation> {
    return this.ownershipCommand(input.conversationId, { type: 'claim', operator: input.operator });
  }

  /** Agent -> human: an operator takes over proactively. */
  async takeOver(input: { conversationId: string; operator: Operator }): Promise<Conversation> {
    return this.ownershipCommand(input.conversationId, { type: 'take_over', operator: input.operator });
  }

  /** An operator picks a briefing option without taking over; the agent resumes with the decision. */
  async decide(input: { conversationId: string; operator: Operator; optionId: string; note?: string }): Promise<Conversation> {
    const conversation = await this.ownershipCommand(input.conversationId, {
      type: 'decide',
      operator: input.operator,
      optionId: input.optionId,
      ...(input.note ? { note: input.note } : {}),
    });
    this.startAgentTurn(conversation.id);
    return conversation;
  }

  /** Human (or waiting) -> agent, with the operator's note in the agent's context. */
  async returnToAgent(input: { conversationId: string; operator: Operator; note?: string }): Promise<Conversation> {
    const note = input.note?.trim() ? this.cleanText(input.note, 'note', false) : undefined;
    const conversation = await this.ownershipCommand(input.conversationId, { type: 'return', operator: input.operator, ...(note ? { note } : {}) });
    // If the customer is waiting on an answer, the agent gives it now, with the note in context.
    const lastPublic = conversation.messages.filter((m) => m.visibility === 'public' && !m.notice).at(-1);
    if (lastPublic?.author.role === 'customer') this.startAgentTurn(conversation.id);
    return conversation;
  }

  /** Human -> waiting: the owner puts it back in the queue. */
  async release(input: { conversationId: string; operator: Operator }): Promise<Conversation> {
    return this.ownershipCommand(input.conversationId, { type: 'release', operator: input.operator });
  }

  /** The owner hands the conversation to another operator. */
  async transfer(input: { conversationId: string; operator: Operator; to: Operator }): Promise<Conversation> {
    return this.ownershipCommand(input.conversationId, { type: 'transfer', operator: input.operator, to: input.to });
  }

  async close(input: { conversationId: string; operator?: Operator; note?: string }): Promise<Conversation> {
    const by: Actor = input.operator ? { kind: 'operator', operator: input.operator } : { kind: 'system' };
    return this.ownershipCommand(input.conversationId, { type: 'close', by, ...(input.note ? { note: input.note } : {}) });
  }

  /** Escalates from outside the agent (API callers, schedulers). */
  async escalate(input: { conversationId: string; trigger: string; reason: string; request?: Partial<EscalateToolArgs> }): Promise<Conversation> {
    const { conversation } = await this.mutate(input.conversationId, (c, effects) => {
      this.escalateInPlace(c, { trigger: input.trigger, reason: input.reason }, { kind: 'system' }, effects, input.request);
      return undefined;
    });
    return conversation;
  }

  async getConversation(id: string): Promise<Conversation | undefined> {
    return this.store.getConversation(id);
  }

  async findByTicket(ticket: string): Promise<Conversation | undefined> {
    const id = await this.store.kv('index').get<string>(`ticket:${ticket.trim().toUpperCase()}`);
    return id ? this.getConversation(id) : undefined;
  }

  async conversationsHeldBy(operatorId: string): Promise<Conversation[]> {
    const ids = (await this.store.kv('index').get<string[]>(`held:${operatorId}`)) ?? [];
    const conversations = await Promise.all(ids.map((id) => this.getConversation(id)));
    return conversations.filter((c): c is Conversation => c?.state === 'human' && c.owner?.id === operatorId);
  }

  /** Merges channel-private data into `conversation.channelData[channel]`. */
  async updateChannelData(conversationId: string, channel: string, data: Record<string, unknown>): Promise<Conversation> {
    const { conversation } = await this.mutate(conversationId, (c) => {
      c.channelData = { ...c.channelData, [channel]: { ...((c.channelData[channel] as Record<string, unknown>) ?? {}), ...data } };
      return undefined;
    });
    return conversation;
  }

  /** Resolves when no agent turn or port call is in flight. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Finishes in-flight work (agent turns, deliveries), then returns. */
  async stop(timeoutMs = 25_000): Promise<void> {
    await Promise.race([this.idle(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  // ---- ownership -------------------------------------------------------------------------

  private async ownershipCommand(conversationId: string, command: OwnershipCommand): Promise<Conversation> {
    if (command.type === 'claim' || command.type === 'take_over') {
      // A committed claim is final until its holder lets go: losers need not queue for the lock.
      const current = await this.require(conversationId);
      if (current.state === 'human' && current.owner) throw new AlreadyClaimedError(current.owner, current.ticket);
    }
    let previousOwner: Operator | undefined;
    const { conversation } = await this.mutate(conversationId, (c, effects) => {
      previousOwner = c.owner;
      const entry = this.apply(c, command, effects);
      this.afterOwnershipChange(c, command, entry, effects);
      return undefined;
    });
    await this.updateHeldIndex(previousOwner, conversation.owner, conversation);
    return conversation;
  }

  /** Applies a transition to the conversation or throws its typed error. */
  private apply(c: Conversation, command: OwnershipCommand, effects: Effect[]): HistoryEntry {
    const result = transition(c, command, this.now().toISOString());
    if (!result.ok) {
      if ('holder' in result.error && !('ticket' in result.error && result.error.ticket)) Object.assign(result.error, { ticket: c.ticket });
      throw result.error;
    }
    c.state = result.next.state;
    c.ownershipVersion = result.next.ownershipVersion;
    if (result.next.owner) c.owner = result.next.owner;
    else delete c.owner;
    c.history.push(result.entry);
    effects.push({ kind: 'ownership', change: result.entry });
    return result.entry;
  }

  /** Transcript messages, hand-back context and decisions that go with each transition. */
  private afterOwnershipChange(c: Conversation, command: OwnershipCommand, entry: HistoryEntry, effects: Effect[]): void {
    const at = entry.at;
    switch (command.type) {
      case 'claim':
      case 'take_over':
        this.appendSystem(c, effects, {
          text: `${command.operator.name} ${entry.reason === 'take_over' ? 'took over from the agent' : 'claimed the conversation'}.`,
          visibility: 'internal',
        });
        this.noticeCustomer(c, effects, 'joined', command.operator);
        break;
      case 'release':
        this.appendSystem(c, effects, { text: `${command.operator.name} released the conversation back to the queue.`, visibility: 'internal' });
        this.noticeCustomer(c, effects, 'released');
        break;
      case 'transfer':
        this.appendSystem(c, effects, { text: `${command.operator.name} transferred the conversation to ${command.to.name}.`, visibility: 'internal' });
        this.noticeCustomer(c, effects, 'transferred', command.to);
        break;
      case 'decide': {
        const option = c.briefing?.options.find((o) => o.id === command.optionId);
        if (!option) throw new UnknownOptionError(command.optionId, c.briefing?.options.map((o) => o.id) ?? []);
        const decision: Decision = { optionId: option.id, label: option.label, by: command.operator, at, ...(command.note ? { note: command.note } : {}) };
        c.decisions.push(decision);
        if (option.approvesTool && !c.approvedTools.includes(option.approvesTool)) c.approvedTools.push(option.approvesTool);
        c.agentTurns = 0;
        const handback = this.handbackContext(c, 'decision', command.operator, at, command.note, decision);
        this.appendSystem(c, effects, { text: `${command.operator.name} decided: ${option.label}${command.note ? ` (${command.note})` : ''}.`, visibility: 'internal', handback });
        this.noticeCustomer(c, effects, 'returned');
        break;
      }
      case 'return': {
        c.agentTurns = 0;
        const handback = this.handbackContext(c, 'return', command.operator, at, command.note);
        this.appendSystem(c, effects, {
          text: `${command.operator.name} returned the conversation to the agent${command.note ? `. Note: ${command.note}` : '.'}`,
          visibility: 'internal',
          handback,
        });
        this.noticeCustomer(c, effects, 'returned');
        break;
      }
      case 'close':
        this.appendSystem(c, effects, {
          text: `Closed by ${command.by.kind === 'operator' ? command.by.operator.name : command.by.kind}${command.note ? `: ${command.note}` : '.'}`,
          visibility: 'internal',
        });
        this.noticeCustomer(c, effects, 'closed');
        break;
      case 'escalate':
      case 'reopen':
        break;
    }
  }

  /** The one structured message the agent gets when control comes back. */
  private handbackContext(c: Conversation, kind: HandbackContext['kind'], by: Operator, at: string, note?: string, decision?: Decision): HandbackContext {
    // The human stretch starts when the agent last lost control.
    const lostControl = [...c.history].reverse().find((h) => h.from === 'agent' && (h.to === 'waiting' || h.to === 'human'));
    const since = lostControl?.at ?? c.createdAt;
    const humanStretch = c.messages
      .filter((m) => m.visibility === 'public' && !m.notice && m.at >= since && (m.author.role === 'customer' || m.author.role === 'operator'))
      .map((m) => ({ role: m.author.role, ...(m.author.name ? { name: m.author.name } : {}), text: m.text, at: m.at }));
    return { kind, by, at, ...(note ? { note } : {}), ...(decision ? { decision } : {}), humanStretch };
  }

  private escalateInPlace(c: Conversation, cause: EscalationCause, by: Actor, effects: Effect[], request?: Partial<EscalateToolArgs>): void {
    this.apply(c, { type: 'escalate', by, trigger: cause.trigger, reason: cause.reason }, effects);
    c.briefing = buildEnvelope(c, cause, this.policy, request);
    if (c.briefing.queue) c.queue = c.briefing.queue;
    this.appendSystem(c, effects, { text: `Escalated (${cause.trigger}): ${cause.reason}`, visibility: 'internal' });
    this.noticeCustomer(c, effects, 'escalated');
    effects.push({ kind: 'briefing' });
  }

  private noticeCustomer(c: Conversation, effects: Effect[], notice: NoticeKind, by?: Operator): void {
    const text = CUSTOMER_NOTICES[notice]?.(c, by);
    if (!text) return;
    const message = this.appendSystem(c, effects, { text, visibility: 'public', notice });
    effects.push({ kind: 'deliver', message });
  }

  private async updateHeldIndex(before: Operator | undefined, after: Operator | undefined, c: Conversation): Promise<void> {
    if (before?.id === after?.id) return;
    const index = this.store.kv('index');
    const edit = (operatorId: string, change: (ids: string[]) => string[]) =>
      this.store.withLock(`held:${operatorId}`, async () => {
        const ids = (await index.get<string[]>(`held:${operatorId}`)) ?? [];
        await index.set(`held:${operatorId}`, change(ids));
      });
    if (before) await edit(before.id, (ids) => ids.filter((id) => id !== c.id));
    if (after) await edit(after.id, (ids) => (ids.includes(c.id) ? ids : [...ids, c.id]));
  }

  // ---- the agent ---------------------------------------------------------------------------

  /** Starts an agent turn in the background; a newer turn supersedes an older one. */
  private startAgentTurn(conversationId: string): void {
    const previous = this.activeTurns.get(conversationId);
    if (previous) previous.superseded = true;
    this.abortTurn(conversationId);
    const id = randomUUID();
    const controller = new AbortController();
    const turn: ActiveTurn = { id, controller };
    this.activeTurns.set(conversationId, turn);
    void this.track(
      this.runAgentTurn(conversationId, turn).catch((err: unknown) => {
        this.logger.error({ err, conversationId }, 'agent turn failed');
      }),
    ).finally(() => {
      if (this.activeTurns.get(conversationId) === turn) this.activeTurns.delete(conversationId);
    });
  }

  private abortTurn(conversationId: string): void {
    const turn = this.activeTurns.get(conversationId);
    if (!turn) return;
    this.activeTurns.delete(conversationId);
    turn.controller.abort(new BridgeError('ownership_changed', 'The conversation changed hands; this agent turn is void.'));
  }

  private async runAgentTurn(conversationId: string, turn: ActiveTurn): Promise<void> {
    const snapshot = await this.require(conversationId);
    if (snapshot.state !== 'agent') return;
    return withConversationContext(snapshot, () => this.generate(conversationId, turn, snapshot));
  }

  private async generate(conversationId: string, turn: ActiveTurn, snapshot: Conversation): Promise<void> {
    const startedAt = snapshot.ownershipVersion;
    const log = conversationLogger(this.logger, snapshot);
    const timeout = setTimeout(() => turn.controller.abort(new BridgeError('agent_timeout', `The agent took longer than ${this.agentTimeoutMs} ms.`)), this.agentTimeoutMs);
    let result: AgentTurnResult;
    try {
      result = await this.agent.respond({ conversation: snapshot, policy: this.policy, signal: turn.controller.signal });
    } catch (err) {
      const reason = turn.controller.signal.reason as BridgeError | undefined;
      if (turn.controller.signal.aborted && reason?.code !== 'agent_timeout') {
        log.info({ turn: turn.id }, 'agent turn aborted: ownership changed');
        return;
      }
      log.warn({ err }, 'agent failed; escalating so the customer is not left waiting');
      result = { kind: 'escalate', trigger: 'agent_error', reason: `The agent failed: ${(reason ?? (err as Error)).message}`, actionsTaken: [] };
    } finally {
      clearTimeout(timeout);
    }

    let dropped = false;
    await this.mutate(conversationId, (c, effects) => {
      // The mute invariant: a turn that started before an ownership change must not speak.
      if (!this.mayAgentSpeak(c, startedAt) || turn.superseded) {
        dropped = true;
        return undefined;
      }
      const actions = result.actionsTaken.map((a) => ({ tool: a.tool, input: a.input, output: a.output, ok: a.ok }));
      const used = result.consumedApprovals ?? [];
      if (used.length) c.approvedTools = c.approvedTools.filter((t) => !used.includes(t));
      if (result.kind === 'reply') {
        const message = this.append(c, { author: { role: 'agent', name: this.agent.name }, text: this.clip(result.text), visibility: 'public', ...(actions.length ? { actions } : {}) });
        c.agentTurns += 1;
        effects.push({ kind: 'mirror', message }, { kind: 'deliver', message });
      } else {
        if (actions.length) {
          const message = this.append(c, { author: { role: 'agent', name: this.agent.name }, text: `Tried before escalating: ${actions.map((a) => a.tool).join(', ')}`, visibility: 'internal', actions });
          effects.push({ kind: 'mirror', message });
        }
        this.escalateInPlace(c, { trigger: result.trigger, reason: result.reason }, { kind: 'agent' }, effects, result.request);
      }
      return undefined;
    });
    if (dropped) {
      turn.controller.abort(new BridgeError('ownership_changed', 'The conversation changed hands; this agent turn is void.'));
      log.info({ turn: turn.id, startedAt }, 'agent output dropped: ownership changed during the turn');
    }
  }

  // ---- transcript and persistence ---------------------------------------------------------

  /**
   * Load, change and save one conversation under its lock, then queue its effects for the ports
   * in commit order. Nothing reaches a port unless the change was saved.
   */
  private async mutate<T>(
    conversationId: string,
    change: (c: Conversation, effects: Effect[]) => T,
    fresh?: Conversation,
  ): Promise<{ conversation: Conversation; message: T }> {
    return this.store.withLock(conversationId, async () => {
      // `fresh`: a conversation not stored yet, which this write creates.
      const c = fresh ?? (await this.require(conversationId));
      const versionBefore = c.ownershipVersion;
      const effects: Effect[] = [];
      const message = change(c, effects);
      c.updatedAt = this.now().toISOString();
      await this.save(c);
      // Ownership changed: any agent generation in flight is now stale; stop paying for it.
      if (c.ownershipVersion !== versionBefore) this.abortTurn(conversationId);
      this.dispatch(structuredClone(c), effects);
      return { conversation: c, message };
    });
  }

  private async save(c: Conversation): Promise<void> {
    await this.store.saveConversation(c);
  }

  private async require(conversationId: string): Promise<Conversation> {
    const c = await this.store.getConversation(conversationId);
    if (!c) throw new ConversationNotFoundError(conversationId);
    return c;
  }

  private async newConversation(origin: Origin, customer: Customer, subject?: string, channelData?: Record<string, unknown>): Promise<Conversation> {
    const number = 1000 + (await this.store.increment('ticket'));
    const at = this.now().toISOString();
    return {
      id: `conv_${randomUUID().replace(/-/g, '').slice(0, 20)}`,
      ticket: `${this.ticketPrefix}-${number}`,
      origin,
      customer,
      ...(subject ? { subject: this.clip(subject, 300) } : {}),
      queue: this.policy.queues.default,
      state: 'agent',
      ownershipVersion: 0,
      messages: [],
      history: [],
      decisions: [],
      agentTurns: 0,
      approvedTools: [],
      createdAt: at,
      updatedAt: at,
      channelData: channelData ?? {},
    };
  }

  private append(c: Conversation, fields: Omit<Message, 'id' | 'at'>): Message {
    const last = c.messages.at(-1)?.at;
    let at = this.now().toISOString();
    if (last && at < last) at = last; // keep the transcript ordered even if clocks step back
    const message: Message = { id: `msg_${randomUUID().replace(/-/g, '').slice(0, 20)}`, at, ...fields };
    c.messages.push(message);
    return message;
  }

  private appendSystem(c: Conversation, effects: Effect[], fields: Pick<Message, 'text' | 'visibility'> & Partial<Message>): Message {
    const message = this.append(c, { author: { role: 'system' }, ...fields });
    effects.push({ kind: 'mirror', message });
    return message;
  }

  /** Trims, drops control characters, enforces the size limit. Empty text is an error unless files came with it. */
  private cleanText(text: string, who: string, hasAttachments: boolean): string {
    if (typeof text !== 'string') throw new InputError(`The ${who} message must be text.`);
    // eslint-disable-next-line no-control-regex
    const cleaned = text.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '').replace(/\r\n?/g, '\n').trim();
    if (!cleaned && !hasAttachments) throw new InputError(`The ${who} message is empty.`);
    if (cleaned.length > this.maxMessageChars) throw new InputError(`The ${who} message is ${cleaned.length} characters; the limit is ${this.maxMessageChars}.`);
    return cleaned;
  }

  private clip(text: string, max = this.maxMessageChars): string {
    return text.length <= max ? text : text.slice(0, max - 1) + '…';
  }

  /** Runs `fn` once per idempotency key; if it fails, the key is forgotten so a retry can succeed. */
  private async onceOnly<T>(key: string | undefined | '', fn: (first: boolean) => Promise<T>): Promise<T> {
    if (!key) return fn(true);
    const first = await this.store.once(key);
    try {
      return await fn(first);
    } catch (err) {
      if (first) await this.store.forget(key).catch(() => {});
      throw err;
    }
  }

  // ---- fan-out to the ports -------------------------------------------------------------

  private dispatch(c: Conversation, effects: Effect[]): void {
    if (effects.length === 0) return;
    const previous = this.outbound.get(c.id) ?? Promise.resolve();
    const next = previous.then(() => withConversationContext(c, () => this.runEffects(c, effects)));
    const tail = this.track(next);
    this.outbound.set(c.id, tail);
    void tail.finally(() => {
      if (this.outbound.get(c.id) === tail) this.outbound.delete(c.id);
    });
  }

  private async runEffects(c: Conversation, effects: Effect[]): Promise<void> {
    const log = conversationLogger(this.logger, c);
    const channel = this.channels.find((ch) => ch.origin === c.origin);
    const attempt = async (what: string, port: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        log.error({ err, port }, `${what} failed`);
      }
    };
    for (const effect of effects) {
      switch (effect.kind) {
        case 'deliver':
          if (effect.message.visibility !== 'public') break; // internal text never reaches a customer
          if (channel) await attempt('delivery to the customer', channel.origin, () => channel.deliver(c, effect.message));
          break;
        case 'mirror':
          for (const ws of this.workspaces) {
            if (effect.message.source?.workspace === ws.name) continue;
            await attempt('mirroring', ws.name, () => ws.mirror(c, effect.message));
          }
          break;
        case 'ownership':
          for (const ws of this.workspaces) await attempt('ownership update', ws.name, () => ws.ownershipChanged(c, effect.change));
          log.info({ from: effect.change.from, to: effect.change.to, reason: effect.change.reason, trigger: effect.change.trigger }, 'ownership changed');
          break;
        case 'briefing':
          for (const ws of this.workspaces) await attempt('briefing', ws.name, () => ws.postBriefing(c));
          break;
        case 'notify':
          for (const ws of this.workspaces.filter((w) => w.name === effect.operator.workspace))
            await attempt('operator notice', ws.name, () => ws.notifyOperator(effect.operator, effect.text, c));
          break;
      }
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    void promise.finally(() => this.inFlight.delete(promise)).catch(() => {});
    return promise;
  }
}
