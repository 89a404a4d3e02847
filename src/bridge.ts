/**
 * The bridge: the entry points adapters call (`BridgePort`) and the wiring behind them. Each
 * command is one change committed with the work it implies (`engine/commit.ts`); the rules of
 * each change live in `engine/rules.ts`; agent turns and every destination are durable work run
 * by delivery workers (`delivery/`). It knows nothing about Slack, Teams, SMTP or WebSockets.
 */
import type { Agent } from './agent/agent.ts';
import { routeConversation, type RouteInput } from './agent/handoff-history.ts';
import { CustomerDestination, WorkspaceDestination } from './delivery/destinations.ts';
import { WebhookDestination, type WebhookConfig } from './delivery/webhooks.ts';
import { DeliveryWorker, type Destination } from './delivery/worker.ts';
import { AgentTurns } from './engine/agent-turns.ts';
import { Committer, type ChangeSink } from './engine/commit.ts';
import { isOpen, nextOpening, parseSupportHours, type SupportHours } from './engine/hours.ts';
import { escalationCount, Rules, type Availability } from './engine/rules.ts';
import { TimerWorker } from './engine/timer-worker.ts';
import { readDigest, type Digest } from './engine/digest.ts';
import { redactedWorkspace, Redactor, revealMessage, type RevealInput, type RevealResult } from './engine/redact.ts';
import type { Observation } from './engine/stats.ts';
import type { BridgeMetrics } from './metrics.ts';
import type { EscalateToolArgs } from './envelope.ts';
import { AlreadyClaimedError, BridgeError, ConversationClosedError, DuplicateInboundError, InputError, OfferedToOtherError, StaleBriefingError } from './errors.ts';
import { newConversationId } from './ids.ts';
import { silentLogger, type Logger } from './log.ts';
import type { Actor, Attachment, Conversation, Customer, Message, MessageSource, Operator, Origin, OwnershipState } from './model.ts';
import { agentMaySpeak, type OwnershipCommand } from './ownership.ts';
import { DEFAULT_POLICY, routeQueue, type Policy } from './policy.ts';
import type { BridgePort, CustomerChannel, Workspace } from './ports.ts';
import { CachedStore } from './store/cached.ts';
import type { Lease, Store, WorkItem } from './store/store.ts';
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
  /** Prometheus metrics this instance records (GET /metrics). */
  metrics?: BridgeMetrics;
  /** Signed webhooks (`WEBHOOK_URL`, `WEBHOOK_SECRET`); absent: none. */
  webhooks?: WebhookConfig;
  /** Conversations kept in this instance's version-checked cache (src/store/cached.ts); 0 turns it off. */
  conversationCacheSize?: number;
  /** Delivery workers' settings (tests shorten leases and backoff). */
  delivery?: { leaseMs?: number; pollMs?: number; concurrency?: number; backoff?: { initialMs: number; maxMs: number; factor: number; jitter: number }; stuckAfter?: number };
}

export interface CustomerMessageInput {
  conversationId?: string;
  origin: Origin;
  customer: Customer;
  subject?: string;
  text: string;
  attachments?: Attachment[];
  /** The platform's id for this message (email Message-ID, frame id): a redelivery is recognised, never stored twice. */
  idempotencyKey?: string;
  channelData?: Record<string, unknown>;
  /** false: a closed conversation stays closed (`ConversationClosedError`, nothing written) instead of reopening. */
  reopen?: boolean;
  /** false: store and mirror the message, but no agent turn, no trigger, no automatic notice (unverified or rate-limited senders). */
  autoReply?: boolean;
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

/** How long an inbound idempotency mark is kept: longer than any platform retries (Slack's last retry comes after ~5 min). */
const INBOUND_TTL_MS = 24 * 60 * 60 * 1000;
/** The index entry naming the message an inbound key stored. */
/** Where marks made before `Commit.inbound.message` recorded their message. */
const inboundMessageKey = (inboundKey: string) => `inbound-message:${inboundKey}`;

export class Bridge implements BridgePort {
  readonly store: Store;
  readonly logger: Logger;
  readonly policy: Policy;
  /** The policy's PII redaction: what workspaces and webhooks are given. */
  readonly redactor: Redactor;
  private readonly webhooks: WebhookConfig | undefined;
  /** Longest text accepted from a customer or operator; channels shorten to fit. */
  readonly maxMessageChars: number;
  private readonly agent: Agent;
  private readonly channels: CustomerChannel[] = [];
  private readonly workspaces: Workspace[] = [];
  private readonly ticketPrefix: string;
  private readonly notePrefix: string;
  private readonly now: () => Date;
  private readonly rules: Rules;
  private readonly committer: Committer;
  private readonly agentTurns: AgentTurns;
  private readonly workers = new Map<string, DeliveryWorker>();
  private readonly timers: TimerWorker;
  private readonly delivery: NonNullable<BridgeOptions['delivery']>;
  private started = false;

  constructor(options: BridgeOptions) {
    this.store = CachedStore.wrap(options.store, options.conversationCacheSize);
    this.agent = options.agent;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.logger = options.logger ?? silentLogger();
    this.ticketPrefix = options.ticketPrefix ?? 'HB';
    this.notePrefix = options.notePrefix ?? '//';
    this.maxMessageChars = options.maxMessageChars ?? 8000;
    this.now = options.now ?? (() => new Date());
    this.delivery = options.delivery ?? {};
    this.redactor = new Redactor(this.policy.redaction);
    this.webhooks = options.webhooks;
    const hours = this.policy.hours ? parseSupportHours(this.policy.hours.schedule, this.policy.hours.holidays, 'POLICY_FILE hours') : undefined;
    this.rules = new Rules(this.policy, this.now, this.availability(hours));
    const metrics = options.metrics;
    this.committer = new Committer(
      this.store,
      {
        workspaces: () => this.workspaces.map((w) => w.name),
        webhooks: () => this.webhooks !== undefined,
        // With no channel for them, API conversations are read over the API: nothing to deliver either.
        live: (origin) => {
          const channel = this.channels.find((ch) => ch.origin === origin);
          return channel ? channel.live === true : origin === 'api';
        },
        claimable: () => {
          const free = [...this.workers.values()].filter((w) => w.canAdopt);
          return { destinations: free.map((w) => w.name), leaseMs: this.delivery.leaseMs ?? 30_000, begin: free.filter((w) => w.beginsOnLease).map((w) => w.name) };
        },
        claimed: (leases) => this.adopt(leases),
        turnAhead: (c, version) => this.agentTurns.speculate(c, version),
        ...(metrics ? { observed: (o: Observation[]) => metrics.record(o) } : {}),
      },
      this.now,
      this.logger,
    );
    this.agentTurns = new AgentTurns({
      store: this.store,
      committer: this.committer,
      rules: this.rules,
      agent: this.agent,
      policy: this.policy,
      logger: this.logger,
      timeoutMs: options.agentTimeoutMs ?? 120_000,
      mayAgentSpeak: options.mayAgentSpeak ?? agentMaySpeak,
      clip: (text) => this.clip(text),
      ...(metrics ? { earlyTurn: (outcome: 'taken' | 'discarded') => metrics.earlyTurn(outcome) } : {}),
    });
    this.timers = new TimerWorker({
      store: this.store,
      committer: this.committer,
      rules: this.rules,
      logger: this.logger,
      leaseMs: this.delivery.leaseMs ?? 30_000,
      backoff: this.delivery.backoff ?? { initialMs: 500, maxMs: 60_000, factor: 2, jitter: 0.25 },
      ...(this.delivery.pollMs ? { pollMs: this.delivery.pollMs } : {}),
    });
  }

  /** A person can answer when a workspace runs, the desk is open, and the queue's on-call switch is on. */
  private availability(hours: SupportHours | undefined): Availability {
    return (c, at) => {
      if (this.workspaces.length === 0) return { open: false, why: 'no_workspace' };
      if (!isOpen(hours, at)) {
        const until = nextOpening(hours, at);
        return { open: false, why: 'hours', ...(until ? { until } : {}), timeZone: hours!.timeZone };
      }
      if (this.policy.offDuty.includes(c.queue)) return { open: false, why: 'off_duty' };
      return { open: true };
    };
  }

  addChannel(channel: CustomerChannel): void {
    this.channels.push(channel);
  }

  addWorkspace(workspace: Workspace): void {
    this.workspaces.push(workspace);
    if (this.started) {
      this.startWorker(new WorkspaceDestination(redactedWorkspace(workspace, this.redactor), (c, item, name) => this.briefingStuck(c, item, name)));
      void this.catchUp().catch((err: unknown) => this.logger.error({ err }, 'could not catch up waiting escalations'));
    }
  }

  /**
   * Starts the delivery workers: the customer's channels, the agent, each workspace. Call after
   * adding the channels and workspaces, so work left from an earlier run finds its destination.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.startWorker(new CustomerDestination(() => this.channels));
    this.startWorker(this.agentTurns);
    for (const workspace of this.workspaces) this.startWorker(new WorkspaceDestination(redactedWorkspace(workspace, this.redactor), (c, item, name) => this.briefingStuck(c, item, name)));
    if (this.webhooks) this.startWorker(new WebhookDestination({ config: this.webhooks, redactor: this.redactor, kv: this.store.kv('webhooks') }));
    this.timers.start();
    void this.catchUp().catch((err: unknown) => this.logger.error({ err }, 'could not catch up waiting escalations'));
  }

  /**
   * Escalations that waited for someone to answer: a pending one is raised now if a person can
   * answer, and a waiting one gets its thread and briefing in every workspace that never had it
   * (Slack configured after the customer asked for a person).
   */
  async catchUp(): Promise<void> {
    const ids = new Set([...(await this.store.indexMembers('pending-escalation')), ...(await this.store.indexMembers('state:waiting'))]);
    for (const id of ids) {
      const current = await this.store.getConversation(id);
      const names = this.workspaces.map((w) => w.name);
      const missing = (c: Conversation) => (c.state === 'waiting' ? names.filter((n) => !c.workspaces?.includes(n)) : []);
      if (!current || (!current.pendingEscalation && missing(current).length === 0)) continue;
      await this.committer.change(id, (c, sink) => {
        const only = names.filter((n) => !c.workspaces?.includes(n));
        const earlier = [...c.messages];
        const raised = this.rules.raisePending(c, sink);
        if (!raised && c.state !== 'waiting') return;
        // The thread starts with what was said before, then what the escalation adds.
        if (only.length > 0) sink.effects.unshift(...earlier.map((message) => ({ kind: 'mirror' as const, message, only })));
        if (!raised && only.length > 0) sink.effects.push({ kind: 'briefing', escalation: escalationCount(c), only });
      });
    }
  }

  /** Hands leases a commit took to this instance's workers; one that cannot start now is given back (due at once). */
  private adopt(leases: Lease[]): void {
    for (const lease of leases) {
      const worker = this.workers.get(lease.destination);
      if (worker?.adopt(lease)) continue;
      // Nobody hears of a release: the workers look again once it is written.
      this.store.work.release(lease).then(
        () => worker?.wake(),
        (err: unknown) => this.logger.warn({ err: String(err), destination: lease.destination }, 'could not give back a lease; it expires on its own'),
      );
    }
  }

  private startWorker(destination: Destination): void {
    const worker = new DeliveryWorker({ store: this.store, destination, logger: this.logger, ...this.delivery });
    this.workers.set(destination.name, worker);
    worker.start();
  }

  /** Opens a conversation with no message yet (a web chat session opening). */
  async openConversation(input: { origin: Origin; customer: Customer; subject?: string; channelData?: Record<string, unknown> }): Promise<Conversation> {
    const fresh = await this.newConversation(input.origin, input.customer, input.subject, input.channelData);
    const { conversation } = await this.committer.change(fresh.id, (c, sink) => this.indexTicket(c, sink), { fresh });
    return conversation;
  }

  /**
   * A customer message. Without `conversationId` it starts a conversation; a closed one reopens to
   * the agent. Deterministic triggers run first; in agent state the agent owes an answer (durable work).
   */
  async customerMessage(input: CustomerMessageInput): Promise<{ conversation: Conversation; message: Message | undefined; duplicate: boolean }> {
    const text = this.cleanText(input.text, 'customer', (input.attachments?.length ?? 0) > 0);
    const inboundKey = input.idempotencyKey ? `customer:${input.idempotencyKey}` : undefined;
    // A redelivered first message must not take a ticket number: look before creating. For an
    // existing conversation the commit itself refuses a duplicate, so no read is needed first.
    if (inboundKey && !input.conversationId) {
      const seen = await this.store.inboundSeen(inboundKey);
      if (seen) return this.duplicate(seen, inboundKey);
    }
    // A new conversation is created by the same commit that stores its first message.
    const fresh = input.conversationId ? undefined : await this.newConversation(input.origin, input.customer, input.subject, input.channelData);
    if (fresh) {
      // A customer who comes back is offered first to the operator who helped them last.
      const sticky = await this.store.indexValue(`sticky:${fresh.origin}:${fresh.customer.id}`).catch(() => undefined);
      if (sticky) fresh.previousOperator = JSON.parse(sticky) as NonNullable<Conversation['previousOperator']>;
    }
    const conversationId = input.conversationId ?? fresh!.id;
    try {
      const { conversation, result: message } = await this.committer.change(
        conversationId,
        (c, sink) => {
          if (fresh) this.indexTicket(c, sink);
          if (input.channelData) c.channelData = { ...c.channelData, ...input.channelData };
          if (c.state === 'closed') {
            if (input.reopen === false) throw new ConversationClosedError(c.id, c.ticket);
            this.rules.apply(c, { type: 'reopen', by: { kind: 'customer' } }, sink);
            c.agentTurns = 0;
            this.rules.appendSystem(c, sink, { text: `Reopened by the customer.`, visibility: 'internal', notice: 'reopened' });
          }
          const message = this.rules.append(c, {
            author: { role: 'customer', id: c.customer.id, ...(c.customer.name ? { name: c.customer.name } : {}) },
            text,
            visibility: 'public',
            ...(input.attachments?.length ? { attachments: input.attachments } : {}),
          });
          sink.effects.push({ kind: 'mirror', message });
          // A resend finds the message it stored: kept with the inbound mark, in the same commit.
          if (inboundKey) sink.inboundMessage = message.id;
          this.rules.customerWaitsOnOwner(c);
          if (c.state === 'agent' && input.autoReply !== false) {
            if (c.messages.filter((m) => m.author.role === 'customer').length === 1) c.queue = routeQueue(this.policy, text);
            const hit = evaluateCustomerTriggers(c, this.policy);
            if (hit) this.rules.escalate(c, { trigger: hit.trigger, reason: hit.reason, priority: hit.priority }, { kind: 'system' }, sink);
            else sink.effects.push({ kind: 'turn' });
          }
          return message;
        },
        { ...(fresh ? { fresh } : {}), ...(inboundKey ? { inbound: { key: inboundKey, ttlMs: INBOUND_TTL_MS } } : {}) },
      );
      return { conversation, message, duplicate: false };
    } catch (err) {
      if (err instanceof DuplicateInboundError && err.conversationId && inboundKey) return this.duplicate(err.conversationId, inboundKey);
      // Refused for another reason (closed since, say): a resend of a stored message is still just a resend.
      const seen = inboundKey && !(err instanceof DuplicateInboundError) ? await this.store.inboundSeen(inboundKey).catch(() => undefined) : undefined;
      if (seen && inboundKey) return this.duplicate(seen, inboundKey);
      throw err;
    }
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
    const inboundKey = input.idempotencyKey ? `operator:${input.idempotencyKey}` : undefined;
    const duplicate = async () => ({ conversation: await this.committer.require(input.conversationId), message: undefined, delivered: false, duplicate: true });
    if (inboundKey && (await this.store.inboundSeen(inboundKey)) === input.conversationId) return duplicate();
    try {
      const { conversation, result } = await this.committer.change(
        input.conversationId,
        (c, sink) => {
          const delivered = !internal && c.state === 'human' && c.owner?.id === input.operator.id;
          const message = this.rules.append(c, {
            author: { role: 'operator', id: input.operator.id, name: input.operator.name },
            text,
            visibility: delivered ? 'public' : 'internal',
            ...(input.attachments?.length ? { attachments: input.attachments } : {}),
            ...(input.source ? { source: input.source } : {}),
          });
          sink.effects.push({ kind: 'mirror', message });
          if (delivered) {
            sink.effects.push({ kind: 'deliver', message });
            this.rules.ownerAnswered(c);
          }
          else if (!internal) {
            // Tell the writer privately why the customer did not get it.
            const why = c.state === 'human' ? `${c.owner!.name} holds ${c.ticket}` : `Nobody has claimed ${c.ticket} yet`;
            sink.effects.push({ kind: 'notify', operator: input.operator, text: `${why}, so your reply was kept as an internal note. Claim it to answer the customer.` });
          }
          return { message, delivered };
        },
        inboundKey ? { inbound: { key: inboundKey, ttlMs: INBOUND_TTL_MS } } : {},
      );
      return { conversation, message: result.message, delivered: result.delivered, duplicate: false };
    } catch (err) {
      if (err instanceof DuplicateInboundError) return duplicate();
      throw err;
    }
  }

  /** An internal system note in the conversation's thread (e.g. a channel reporting a bounce). Never reaches the customer. */
  async internalNote(input: { conversationId: string; text: string }): Promise<Message> {
    const text = this.cleanText(input.text, 'note', false);
    const { result } = await this.committer.change(input.conversationId, (c, sink) => this.rules.appendSystem(c, sink, { text, visibility: 'internal' }));
    return result;
  }

  /** Waiting -> human. The first claim wins; a later one gets `AlreadyClaimedError` naming the holder. */
  async claim(input: { conversationId: string; operator: Operator; idempotencyKey?: string }): Promise<Conversation> {
    return this.ownershipCommand(input, { type: 'claim', operator: input.operator }, (c) => {
      // Sticky routing: the operator who helped this customer before has the first chance.
      const offer = c.offeredTo;
      if (c.state === 'waiting' && offer && offer.operator.id !== input.operator.id && this.now().toISOString() < offer.until) {
        throw new OfferedToOtherError(offer.operator, offer.until, c.ticket);
      }
    });
  }

  /**
   * Moves a waiting (or, by its owner, a held) conversation to another queue: a new escalation in
   * that queue's channel, the old card superseded.
   */
  async transferQueue(input: { conversationId: string; operator: Operator; queue: string; note?: string; idempotencyKey?: string }): Promise<Conversation> {
    const queue = input.queue.trim();
    if (!/^[A-Za-z0-9_-]{1,60}$/.test(queue)) throw new InputError(`"${input.queue}" is not a queue name (letters, digits, - and _).`);
    const note = input.note?.trim() ? this.cleanText(input.note, 'note', false) : undefined;
    return this.ownershipCommand(input, { type: 'requeue', operator: input.operator, queue, ...(note ? { note } : {}) });
  }

  /** Agent -> human: an operator takes over proactively. */
  async takeOver(input: { conversationId: string; operator: Operator; idempotencyKey?: string }): Promise<Conversation> {
    return this.ownershipCommand(input, { type: 'take_over', operator: input.operator });
  }

  /**
   * An operator picks a briefing option without taking over; the agent resumes with the decision.
   * `escalation` (carried by the card's buttons) must be the current one: a stale card decides nothing.
   */
  async decide(input: { conversationId: string; operator: Operator; optionId: string; note?: string; escalation?: number; idempotencyKey?: string }): Promise<Conversation> {
    return this.ownershipCommand(
      input,
      { type: 'decide', operator: input.operator, optionId: input.optionId, ...(input.note ? { note: input.note } : {}) },
      (c) => {
        const current = escalationCount(c);
        if (input.escalation !== undefined && input.escalation !== current) throw new StaleBriefingError(input.escalation, current);
      },
    );
  }

  /** Human (or waiting) -> agent, with the operator's note in the agent's context. */
  async returnToAgent(input: { conversationId: string; operator: Operator; note?: string; idempotencyKey?: string }): Promise<Conversation> {
    const note = input.note?.trim() ? this.cleanText(input.note, 'note', false) : undefined;
    return this.ownershipCommand(input, { type: 'return', operator: input.operator, ...(note ? { note } : {}) });
  }

  /** Human -> waiting: the owner puts it back in the queue. */
  async release(input: { conversationId: string; operator: Operator; idempotencyKey?: string }): Promise<Conversation> {
    return this.ownershipCommand(input, { type: 'release', operator: input.operator });
  }

  /** The owner hands the conversation to another operator. */
  async transfer(input: { conversationId: string; operator: Operator; to: Operator; idempotencyKey?: string }): Promise<Conversation> {
    return this.ownershipCommand(input, { type: 'transfer', operator: input.operator, to: input.to });
  }

  async close(input: { conversationId: string; operator?: Operator; note?: string; idempotencyKey?: string }): Promise<Conversation> {
    const by: Actor = input.operator ? { kind: 'operator', operator: input.operator } : { kind: 'system' };
    return this.ownershipCommand(input, { type: 'close', by, ...(input.note ? { note: input.note } : {}) });
  }

  /** Escalates from outside the agent (API callers, schedulers). */
  async escalate(input: { conversationId: string; trigger: string; reason: string; request?: Partial<EscalateToolArgs> }): Promise<Conversation> {
    const { conversation } = await this.committer.change(input.conversationId, (c, sink) => {
      this.rules.escalate(c, { trigger: input.trigger, reason: input.reason }, { kind: 'system' }, sink, input.request);
    });
    return conversation;
  }

  async getConversation(id: string): Promise<Conversation | undefined> {
    return this.store.getConversation(id);
  }

  async findByTicket(ticket: string): Promise<Conversation | undefined> {
    const id = await this.store.indexValue(`ticket:${ticket.trim().toUpperCase()}`);
    return id ? this.getConversation(id) : undefined;
  }

  async conversationsHeldBy(operatorId: string): Promise<Conversation[]> {
    const ids = await this.store.indexMembers(`held:${operatorId}`);
    const conversations = await Promise.all(ids.map((id) => this.getConversation(id)));
    return conversations.filter((c): c is Conversation => c?.state === 'human' && c.owner?.id === operatorId);
  }

  async conversationsIn(state: OwnershipState): Promise<Conversation[]> {
    const ids = await this.store.indexMembers(`state:${state}`);
    const conversations = await Promise.all(ids.map((id) => this.getConversation(id)));
    return conversations.filter((c): c is Conversation => c?.state === state).sort((a, b) => a.updatedAt.localeCompare(b.updatedAt));
  }

  /** The owner reveals the masked values of one message (returned to the caller only; logged). */
  reveal(input: RevealInput): Promise<RevealResult> {
    return revealMessage({ committer: this.committer, rules: this.rules, redactor: this.redactor, now: this.now, seen: (key) => this.store.inboundSeen(key) }, input);
  }

  /** The configured agents (several agents configured), for an operator's pick; empty with one agent. */
  agentNames(): readonly string[] {
    return this.agentDirectory()?.names ?? [];
  }

  private agentDirectory(): { names: readonly string[]; defaultAgent: string } | undefined {
    return (this.agent as { agents?: { names: readonly string[]; defaultAgent: string } }).agents;
  }

  /** An operator picks the agent that answers (several agents configured). */
  async route(input: RouteInput): Promise<Conversation> {
    const agents = this.agentDirectory();
    if (!agents) throw new BridgeError('single_agent', 'One agent runs here: there is no other agent to route to.');
    return this.atMostOnce(input, () => routeConversation({ committer: this.committer, rules: this.rules, agents, now: this.now }, input));
  }

  digest(date: string): Promise<Digest> {
    return readDigest(this.store, date);
  }

  /** Merges channel-private data into `conversation.channelData[channel]`. */
  async updateChannelData(conversationId: string, channel: string, data: Record<string, unknown>): Promise<Conversation> {
    const { conversation } = await this.committer.change(conversationId, (c) => {
      c.channelData = { ...c.channelData, [channel]: { ...((c.channelData[channel] as Record<string, unknown>) ?? {}), ...data } };
    });
    return conversation;
  }

  /** The workspaces this instance runs. */
  workspaceList(): readonly Workspace[] {
    return this.workspaces;
  }

  /** Destination names this instance runs workers for (customer, agent, each workspace, timers). */
  destinations(): string[] {
    return [...this.workers.keys(), 'timers'];
  }

  /** Resolves when no committed work is due or in progress for any destination. */
  async idle(): Promise<void> {
    for (let round = 0; round < 3; round++) {
      for (const worker of this.workers.values()) await worker.idle();
      await this.timers.idle();
    }
  }

  /** Stops the workers: work in progress finishes (up to `timeoutMs`); the rest waits in the store. */
  async stop(timeoutMs = 25_000): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.stop(timeoutMs)));
    await this.timers.stop(timeoutMs);
    this.agentTurns.close();
  }

  // ---- ownership -------------------------------------------------------------------------

  /**
   * Applies one ownership command. A request the platform sends again (same `idempotencyKey`) after
   * it was committed changes nothing and answers with the conversation as it is.
   */
  private ownershipCommand(input: { conversationId: string; idempotencyKey?: string }, command: OwnershipCommand, check?: (c: Conversation) => void): Promise<Conversation> {
    const { conversationId } = input;
    return this.atMostOnce(input, async (inbound) => {
      if (command.type === 'claim' || command.type === 'take_over') {
        // A committed claim is final until its holder lets go: losers need not race the commit.
        const current = await this.committer.require(conversationId);
        if (current.state === 'human' && current.owner) {
          // The same request again (a platform retry racing its first delivery): the claim stands.
          if (inbound && current.owner.id === command.operator.id) return current;
          throw new AlreadyClaimedError(current.owner, current.ticket);
        }
      }
      const { conversation } = await this.committer.change(
        conversationId,
        (c, sink) => {
          check?.(c);
          const entry = this.rules.apply(c, command, sink);
          this.rules.afterOwnershipChange(c, command, entry, sink);
        },
        inbound ? { inbound } : {},
      );
      return conversation;
    });
  }

  /**
   * Runs an operator's command once per platform request id: the same request again, before or
   * after its commit, changes nothing and answers with the conversation as it is. A key seen with
   * another conversation is another request (platform ids are not global).
   */
  private async atMostOnce(input: { conversationId: string; idempotencyKey?: string }, run: (inbound?: { key: string; ttlMs: number }) => Promise<Conversation>): Promise<Conversation> {
    const key = input.idempotencyKey ? `command:${input.idempotencyKey}` : undefined;
    if (key && (await this.store.inboundSeen(key)) === input.conversationId) return this.committer.require(input.conversationId);
    try {
      return await run(key ? { key, ttlMs: INBOUND_TTL_MS } : undefined);
    } catch (err) {
      if (err instanceof DuplicateInboundError) return this.committer.require(input.conversationId);
      throw err;
    }
  }

  /**
   * A workspace keeps failing to post a briefing: the customer was promised a person, so tell them
   * the truth (their request is saved) and note it in the thread. The worker keeps retrying.
   */
  private async briefingStuck(c: Conversation, item: WorkItem, workspace: string): Promise<void> {
    const key = `stuck:${workspace}:${c.id}:${item.seq}`;
    await this.committer
      .change(
        c.id,
        (current, sink) => {
          this.rules.appendSystem(current, sink, { text: `The briefing could not be posted to ${workspace} yet; still retrying.`, visibility: 'internal' });
          if (current.state === 'waiting') {
            const message = this.rules.appendSystem(current, sink, {
              text: `We're having trouble reaching our team right now. Your request (${current.ticket}) is saved, and a person will reply here as soon as we're connected again.`,
              visibility: 'public',
            });
            sink.effects.push({ kind: 'deliver', message });
          }
        },
        { inbound: { key, ttlMs: INBOUND_TTL_MS } },
      )
      .catch((err: unknown) => {
        if (!(err instanceof DuplicateInboundError)) throw err;
      });
  }

  // ---- helpers ---------------------------------------------------------------------------

  /** A customer message already stored: its conversation, and the message when the commit recorded which it was. */
  private async duplicate(conversationId: string, inboundKey: string): Promise<{ conversation: Conversation; message: Message | undefined; duplicate: true }> {
    const existing = await this.getConversation(conversationId);
    if (!existing) throw new BridgeError('duplicate_in_flight', 'This message is already being processed; retry shortly.');
    // Marks made before they kept their message recorded it in an index value (they expire within a day).
    const id = (await this.store.inboundMessage(inboundKey).catch(() => undefined)) ?? (await this.store.indexValue(inboundMessageKey(inboundKey)).catch(() => undefined));
    return { conversation: existing, message: id ? existing.messages.find((m) => m.id === id) : undefined, duplicate: true };
  }

  private indexTicket(c: Conversation, sink: ChangeSink): void {
    sink.indexes.push({ op: 'set', key: `ticket:${c.ticket.toUpperCase()}`, value: c.id });
  }

  private async newConversation(origin: Origin, customer: Customer, subject?: string, channelData?: Record<string, unknown>): Promise<Conversation> {
    const number = 1000 + (await this.store.increment('ticket'));
    const at = this.now().toISOString();
    return {
      id: newConversationId(this.now()),
      ticket: `${this.ticketPrefix}-${number}`,
      origin,
      customer,
      ...(subject ? { subject: this.clip(subject, 300) } : {}),
      queue: this.policy.queues.default,
      state: 'agent',
      ownershipVersion: 0,
      version: 0,
      messages: [],
      history: [],
      decisions: [],
      agentTurns: 0,
      approvals: [],
      createdAt: at,
      updatedAt: at,
      channelData: channelData ?? {},
    };
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
}
