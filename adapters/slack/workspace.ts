/**
 * The Slack workspace: mirrors each conversation into a thread, posts and refreshes the briefing,
 * tells operators things privately and, with a managers' channel, posts unclaimed escalations
 * there and the daily digest. The Home tab shows the live queue, refreshed as it changes for
 * operators who opened it recently (`home-live.ts`). Inbound operator actions are wired in
 * `listeners.ts`.
 *
 * The bridge's delivery workers call the Workspace port for one conversation at a time, in order,
 * at least once. Nothing here queues, sleeps or retries: a failure goes back to the worker, which
 * tries this conversation again later (a 429 after its Retry-After). Every post carries a key
 * derived from the work (`root:<conversation>`, `msg:<message>`,
 * `briefing:<conversation>:<escalation>:thread|queue`, `managers:<conversation>:<escalation>`,
 * `digest:<date>`), so a repeat after an uncertain outcome
 * finds the earlier post instead of posting twice (`SlackApi.post`). A message Slack refuses for
 * its content is replaced by a smaller one rather than dropped.
 */
import { createHmac } from 'node:crypto';
import { App, SocketModeReceiver, type webApi } from '@slack/bolt';
import { PermanentDeliveryError, RetryLaterError } from '../../src/delivery/outcome.ts';
import type { Digest } from '../../src/engine/digest.ts';
import { BridgeError, ConfigError } from '../../src/errors.ts';
import type { HttpServer } from '../../src/http.ts';
import { conversationLogger, type Logger } from '../../src/log.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import { FIRST_ATTEMPT, type BridgePort, type DeliveryAttempt, type Service, type Workspace } from '../../src/ports.ts';
import { briefingCard, briefingFallbacks, supersededBriefingCard } from '../../cards/slack/briefing.ts';
import { digestMessage } from '../../cards/slack/digest.ts';
import { homeView, HOME_LIST_LIMIT } from '../../cards/slack/home.ts';
import type { SlackMessage } from '../../cards/slack/limits.ts';
import { managersCard, managersCardText, type ManagersCardInput } from '../../cards/slack/managers.ts';
import { escalationNumber } from '../../cards/slack/status.ts';
import { escapeMrkdwn } from '../../cards/slack/text.ts';
import { bridgeLine, threadMessage, threadRoot } from '../../cards/slack/thread.ts';
import { CONTENT_REFUSALS, describe, SlackApi, SlackRefusedError, SlackUnavailableError, TOKEN_REJECTED, type PostArgs, type PostedRef } from './api.ts';
import { boltLogger } from './bolt-logger.ts';
import { normalizeApiUrl, oncallGroupFor, type SlackConfig } from './config.ts';
import { SlackDirectory, type BriefingCopy, type ManagersCardRef } from './directory.ts';
import { SlackFiles } from './files.ts';
import { LiveHome, type LiveHomeOptions } from './home-live.ts';
import { registerListeners, ReplyNotRecordedError } from './listeners.ts';
import { SLACK_OPERATOR_PREFIX, SlackOperators, slackUserId } from './operators.ts';
import { commitBeforeAck, SlackHttpReceiver } from './receiver.ts';
import { SlackWebApiClient } from './web-api.ts';

export interface SlackWorkspaceOptions {
  bridge: BridgePort;
  http: HttpServer;
  logger: Logger;
  config: SlackConfig;
  /** Public base URL of this server (e.g. https://bridge.example.com): enables signed links for files shared in threads. */
  publicUrl?: string;
  /** Live Home tab refreshes (defaults in `LIVE_HOME_DEFAULTS`); `false` turns them off. */
  liveHome?: Partial<LiveHomeOptions> | false;
}

/** Where a private notice goes: a user, in a channel, optionally inside a thread. */
export interface PrivateTarget {
  channel: string;
  user: string;
  threadTs?: string;
}

/** Longest wait a private notice from a listener sits through before it is given up (logged). */
const TELL_MAX_WAIT_MS = 5000;

export class SlackWorkspace implements Workspace, Service {
  readonly name = 'slack';
  /** The Bolt app (listeners, WebClient). */
  readonly app: App;
  readonly directory: SlackDirectory;
  readonly operators: SlackOperators;
  readonly mode: 'http' | 'socket';
  private readonly client: webApi.WebClient;
  private readonly api: SlackApi;
  private readonly caller: SlackWebApiClient;
  private readonly receiver?: SlackHttpReceiver;
  private readonly files?: SlackFiles;
  private readonly liveHome?: LiveHome;
  private readonly logger: Logger;
  private started = false;
  /** The workspace's URL (`https://acme.slack.com/`), from auth.test: thread links without an API call. */
  private teamUrl?: string;

  /** An unclaimed escalation that waited too long: a card in the managers' channel. Only with SLACK_MANAGERS_CHANNEL_ID. */
  readonly postToManagers?: (conversation: Conversation, attempt?: DeliveryAttempt) => Promise<void>;
  /** The daily digest in the managers' channel. Only with SLACK_MANAGERS_CHANNEL_ID. */
  readonly postDigest?: (digest: Digest) => Promise<void>;

  constructor(private readonly options: SlackWorkspaceOptions) {
    const { config, bridge } = options;
    this.logger = options.logger.child({ workspace: 'slack' });
    this.mode = config.appToken ? 'socket' : 'http';
    const slackApiUrl = normalizeApiUrl(config.apiUrl);
    const clientOptions: webApi.WebClientOptions = {
      slackApiUrl,
      // The delivery workers retry (per conversation, after Retry-After): the client must not pause or retry.
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: 15_000,
    };
    const logger = boltLogger(this.logger);
    if (config.appToken) {
      const receiver = new SocketModeReceiver({ appToken: config.appToken, logger, installerOptions: { clientOptions: { slackApiUrl } } });
      commitBeforeAck(receiver, this.logger);
      this.app = new App({ token: config.botToken, receiver, logger, clientOptions, deferInitialization: true, convoStore: false });
    } else {
      if (!config.signingSecret) throw new ConfigError('SLACK_SIGNING_SECRET', 'required in HTTP mode (no SLACK_APP_TOKEN): the Signing Secret from the app\'s "Basic Information" page');
      this.receiver = new SlackHttpReceiver({ http: options.http, signingSecret: config.signingSecret, logger: this.logger, ...(config.eventsPath ? { path: config.eventsPath } : {}) });
      this.app = new App({ token: config.botToken, receiver: this.receiver, logger, clientOptions, deferInitialization: true, convoStore: false });
    }
    this.app.error(async (err) => {
      // Not recorded: fail the request, so Slack delivers the event again.
      if (err instanceof ReplyNotRecordedError) throw err;
      this.logger.error({ err: describe(err), message: err.message }, 'slack listener error');
    });
    this.client = this.app.client;
    const kv = bridge.store.kv('slack');
    // The adapter's own calls go through a lean client; Bolt keeps its WebClient for listeners.
    this.caller = new SlackWebApiClient({ token: config.botToken, apiUrl: slackApiUrl, timeoutMs: 15_000 });
    this.api = new SlackApi(this.caller, this.logger);
    this.directory = new SlackDirectory(kv);
    this.operators = new SlackOperators((user) => this.api.call('users.info', { user }), kv, this.logger);
    if (options.publicUrl) {
      this.files = new SlackFiles({
        http: options.http,
        publicUrl: options.publicUrl,
        // Socket Mode may run without a signing secret: then a key derived from the bot token signs the links.
        secret: config.signingSecret ?? createHmac('sha256', config.botToken).update('handoff-bridge slack file links').digest('hex'),
        botToken: config.botToken,
        apiUrl: slackApiUrl,
        fileInfo: (file) => this.api.call('files.info', { file }),
        logger: this.logger,
      });
    }
    if (options.liveHome !== false) {
      this.liveHome = new LiveHome(
        {
          kv,
          view: () => this.homeViewNow(),
          publish: async (user, view) => void (await this.api.call('views.publish', { user_id: user, view })),
          logger: this.logger,
        },
        options.liveHome ?? {},
      );
    }
    registerListeners(this.app, {
      bridge,
      logger: this.logger,
      directory: this.directory,
      operators: this.operators,
      kv,
      channelId: config.channelId,
      tell: (target, text) => this.tell(target, text),
      openModal: async (triggerId, view) => {
        // Once, at once: a trigger_id expires in 3 seconds.
        await this.client.views.open({ trigger_id: triggerId, view });
      },
      ...(this.files ? { fileLink: (file) => this.files!.link(file) } : {}),
      publishHome: (user) => this.publishHome(user),
    });
    const managersChannel = config.managersChannelId;
    if (managersChannel) {
      this.postToManagers = (conversation, attempt) => this.managersCard(managersChannel, conversation, attempt);
      this.postDigest = (digest) => this.digest(managersChannel, digest);
    }
  }

  /**
   * Checks the bot token (auth.test) and the on-call groups, then starts taking Slack requests
   * (HTTP) or connects (Socket Mode). A token Slack rejects is a `ConfigError` naming the variable;
   * Slack out of reach is one line too.
   */
  async start(): Promise<void> {
    const { config } = this.options;
    try {
      const auth = await this.api.call<{ url?: string }>('auth.test', {});
      if (typeof auth.url === 'string' && /^https:\/\/[^\s<>|]+\/$/.test(auth.url)) this.teamUrl = auth.url;
      await this.app.init();
    } catch (err) {
      throw startError('SLACK_BOT_TOKEN', 'the Bot User OAuth Token (xoxb-...) from the app\'s "OAuth & Permissions" page', normalizeApiUrl(config.apiUrl), err);
    }
    await this.checkOncallGroups();
    try {
      await this.app.start();
    } catch (err) {
      await this.app.stop().catch(() => {});
      throw startError('SLACK_APP_TOKEN', 'an app-level token (xapp-...) with connections:write, from the app\'s "Basic Information" page', normalizeApiUrl(config.apiUrl), err);
    }
    this.started = true;
    this.liveHome?.start();
    this.logger.info({ mode: this.mode, managers: Boolean(config.managersChannelId) }, 'slack workspace started');
  }

  /** Stops taking Slack requests and lets those in progress finish. Outbound work stays with the bridge's workers. */
  async stop(): Promise<void> {
    await this.liveHome?.stop();
    if (this.started) await this.app.stop().catch((err: unknown) => this.logger.warn({ err }, 'slack receiver did not stop cleanly'));
    this.started = false;
    await this.caller.close();
  }

  /** Resolves when no Slack request is being handled (HTTP mode). */
  async settle(): Promise<void> {
    await this.receiver?.idle();
  }

  // ---- the Workspace port ---------------------------------------------------------------

  /**
   * Posts one transcript message into the conversation's thread, opening the thread on first use.
   * A message with masked values (`message.masked`) carries a Reveal button.
   */
  async mirror(conversation: Conversation, message: Message, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    const log = conversationLogger(this.logger, conversation);
    const root = await this.ensureThread(conversation, attempt);
    const fallback = bridgeLine(`A ${message.author.role} message could not be shown in Slack; it is in the conversation's transcript in the bridge.`);
    const { config } = this.options;
    const oncallGroup = oncallGroupFor(config, conversation.queue);
    const context = { conversationId: conversation.id, ...(oncallGroup ? { oncallGroup } : {}), ...(config.managersChannelId ? { managersChannel: config.managersChannelId } : {}) };
    const card = threadMessage(message, context);
    // A message with a Reveal button falls back to its text alone before the one-line notice.
    const messages = card.blocks ? [card, { text: card.text }, fallback] : [card, fallback];
    await this.postFirstAccepted(`msg:${message.id}`, { channel: root.channel, thread_ts: root.ts }, messages, attempt, log);
  }

  /**
   * Posts the current escalation's briefing in the thread (broadcast to the channel) and, when its
   * queue maps to another channel, there too; earlier briefings lose their buttons. Each copy is
   * recorded as soon as it is posted, so a retry posts only what is missing.
   */
  async postBriefing(conversation: Conversation, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    this.liveHome?.changed();
    const log = conversationLogger(this.logger, conversation);
    const root = await this.ensureThread(conversation, attempt);
    const escalation = escalationNumber(conversation);
    let copies = await this.supersedeOlder(conversation, escalation, log);
    const cards = [briefingCard(conversation), ...briefingFallbacks(conversation)];
    const has = (place: 'thread' | 'queue') => copies.some((c) => c.escalation === escalation && c.place === place);
    if (!has('thread')) {
      const where = { channel: root.channel, thread_ts: root.ts, reply_broadcast: true };
      const ref = await this.postFirstAccepted(`briefing:${conversation.id}:${escalation}:thread`, where, cards, attempt, log);
      copies = [...copies, { ...ref, escalation, place: 'thread' }];
      await this.directory.setBriefings(conversation.id, copies);
    }
    const queueChannel = this.options.config.queueChannels?.[conversation.briefing?.queue ?? conversation.queue];
    if (queueChannel && queueChannel !== root.channel && !has('queue')) {
      const ref = await this.postFirstAccepted(`briefing:${conversation.id}:${escalation}:queue`, { channel: queueChannel }, cards, attempt, log);
      await this.directory.link(ref, conversation.id);
      copies = [...copies, { ...ref, escalation, place: 'queue' }];
      await this.directory.setBriefings(conversation.id, copies);
    }
  }

  /** Refreshes the thread root, every current briefing copy and managers' card (chat.update is safe to repeat). */
  async ownershipChanged(conversation: Conversation, _change: HistoryEntry, _attempt?: DeliveryAttempt): Promise<void> {
    this.liveHome?.changed();
    const log = conversationLogger(this.logger, conversation);
    const root = await this.directory.thread(conversation.id);
    if (root) {
      const card = threadRoot(conversation);
      await this.update(root, [card, { text: card.text }], log);
    }
    // A copy from an earlier escalation never shows the current one's buttons: it is superseded.
    for (const copy of await this.supersedeOlder(conversation, escalationNumber(conversation), log)) {
      if (!copy.superseded) await this.update(copy, [briefingCard(conversation), ...briefingFallbacks(conversation)], log);
    }
    await this.refreshManagersCards(conversation, log);
  }

  /**
   * An ephemeral notice; a 429 or an outage is thrown back to the worker, a refusal is logged.
   * Ephemerals cannot be looked up, so after a lost answer the retry may show it twice.
   */
  async notifyOperator(operator: Operator, text: string, conversation?: Conversation): Promise<void> {
    const user = slackUserId(operator);
    if (!user) return;
    const root = conversation ? await this.directory.thread(conversation.id) : undefined;
    try {
      await this.api.call('chat.postEphemeral', { channel: root?.channel ?? this.options.config.channelId, user, text: escapeMrkdwn(text), ...(root ? { thread_ts: root.ts } : {}) });
    } catch (err) {
      if (!(err instanceof SlackRefusedError)) throw err;
      (conversation ? conversationLogger(this.logger, conversation) : this.logger).warn({ user, err: describe(err) }, 'slack refused a private notice');
    }
  }

  // ---- managers' channel, digest and Home tab ------------------------------------------------

  /**
   * The managers' card for the conversation's current escalation: ticket, wait, reason, a link to
   * the thread and Claim. Once per (conversation, escalation); a later step of the same escalation
   * (after a release) gets its own card. Recorded as soon as it is posted; after an uncertain
   * attempt the post is looked up by its key first.
   */
  private async managersCard(channel: string, conversation: Conversation, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    const log = conversationLogger(this.logger, conversation);
    const root = await this.ensureThread(conversation, attempt);
    const escalation = escalationNumber(conversation);
    const cards = await this.directory.managersCards(conversation.id);
    // This work item posted and recorded its card already (the worker is repeating it).
    if (attempt !== FIRST_ATTEMPT && cards.some((c) => c.work === attempt.key)) return;
    const round = cards.filter((c) => c.escalation === escalation).length + 1;
    const key = `managers:${conversation.id}:${escalation}${round > 1 ? `:${round}` : ''}`;
    const threadLink = await this.permalink(root);
    const input: ManagersCardInput = { conversation, escalation, ...(threadLink ? { threadLink } : {}), threadChannel: root.channel, now: new Date() };
    const ref = await this.postFirstAccepted(key, { channel }, [managersCard(input), managersCardText(input)], attempt, log);
    const card: ManagersCardRef = { ...ref, escalation, key, work: attempt.key, ...(threadLink ? { threadLink } : {}) };
    await this.directory.setManagersCards(conversation.id, [...cards, card]);
  }

  /** Managers' cards show the conversation as it is now; a card of an earlier escalation loses its button once. */
  private async refreshManagersCards(conversation: Conversation, log: Logger): Promise<void> {
    let cards = await this.directory.managersCards(conversation.id);
    const current = escalationNumber(conversation);
    for (const card of cards) {
      if (card.done) continue;
      const input: ManagersCardInput = { conversation, escalation: card.escalation, ...(card.threadLink ? { threadLink: card.threadLink } : {}), now: new Date() };
      await this.update(card, [managersCard(input), managersCardText(input)], log);
      if (card.escalation !== current) {
        cards = cards.map((c) => (c === card ? { ...c, done: true } : c));
        await this.directory.setManagersCards(conversation.id, cards);
      }
    }
  }

  /**
   * The daily digest in the managers' channel. The scheduler tries again after any failure, so
   * the post always looks for an earlier one of the day first: a lost answer is not posted twice.
   */
  private async digest(channel: string, digest: Digest): Promise<void> {
    const names = new Map<string, string>();
    for (const { operatorId } of digest.returnsPerOperator.slice(0, 10)) names.set(operatorId, await this.operatorName(operatorId));
    const message = digestMessage(digest, (id) => names.get(id) ?? id);
    const key = `digest:${digest.date}`;
    // Posted on or after its (UTC) day; look from the start of that day, or the last hour if later.
    const dayStart = Date.parse(`${digest.date}T00:00:00Z`);
    const since = Math.min(Number.isFinite(dayStart) ? dayStart : Date.now(), Date.now() - 3_600_000);
    await this.postFirstAccepted(key, { channel }, [message, { text: message.text }], { key, count: 2, since }, this.logger);
  }

  /**
   * Publishes the Home tab for one user who opened it (or pressed Refresh): waiting conversations
   * (oldest first) with their wait, held ones with owner and duration, and today's figures. The
   * user then gets live refreshes for a while. A failure is logged; the next open publishes again.
   */
  async publishHome(user: string): Promise<void> {
    try {
      const view = await this.homeViewNow();
      await this.api.call('views.publish', { user_id: user, view });
      await this.liveHome?.opened(user, view);
    } catch (err) {
      this.logger.warn({ user, err: describe(err) }, 'could not publish the home tab');
    }
  }

  /** The Home tab as the queue is now (the same for every user). */
  private async homeViewNow(): Promise<Record<string, unknown>> {
    const { bridge } = this.options;
    const now = new Date();
    const [waiting, held, digest] = await Promise.all([bridge.conversationsIn('waiting'), bridge.conversationsIn('human'), bridge.digest(now.toISOString().slice(0, 10))]);
    const listed = [...waiting.slice(0, HOME_LIST_LIMIT * 2), ...held.slice(0, HOME_LIST_LIMIT * 2)];
    const roots = new Map(await Promise.all(listed.map(async (c) => [c.id, await this.directory.thread(c.id)] as const)));
    return homeView({ waiting, held, digest, now, threadLink: (c) => this.threadLink(roots.get(c.id)) }) as unknown as Record<string, unknown>;
  }

  /** The thread's permalink (chat.getPermalink), or one built from the workspace URL if Slack will not give it. */
  private async permalink(root: PostedRef): Promise<string | undefined> {
    try {
      const result = await this.api.call<{ permalink?: unknown }>('chat.getPermalink', { channel: root.channel, message_ts: root.ts });
      if (typeof result.permalink === 'string') return result.permalink;
    } catch (err) {
      if (!(err instanceof SlackRefusedError)) throw err;
      this.logger.warn({ channel: root.channel, ts: root.ts, err: describe(err) }, 'slack gave no permalink for a thread; using a built link');
    }
    return this.threadLink(root);
  }

  /** A link to a thread root built like Slack's permalinks (`https://acme.slack.com/archives/C123/p1700000000123456`). */
  private threadLink(root: PostedRef | undefined): string | undefined {
    if (!root || !this.teamUrl || !/^\d+\.\d+$/.test(root.ts)) return undefined;
    return `${this.teamUrl}archives/${root.channel}/p${root.ts.replace('.', '')}`;
  }

  /** A display name for an operator id (a Slack user's name, cached; another workspace's id as it is). */
  private async operatorName(operatorId: string): Promise<string> {
    if (operatorId.startsWith(SLACK_OPERATOR_PREFIX)) return this.operators.name(operatorId.slice(SLACK_OPERATOR_PREFIX.length));
    return operatorId;
  }

  /**
   * With SLACK_ONCALL_GROUPS set, checks each id is a user group here (usergroups.list, scope
   * `usergroups:read`). An unknown id stops start-up; if Slack will not say, a warning is logged.
   */
  private async checkOncallGroups(): Promise<void> {
    const groups = this.options.config.oncallGroups;
    if (!groups || Object.keys(groups).length === 0) return;
    let known: Set<string>;
    try {
      const result = await this.api.call<{ usergroups?: Array<{ id?: string }> }>('usergroups.list', { include_disabled: false });
      known = new Set((result.usergroups ?? []).map((g) => g.id).filter((id): id is string => typeof id === 'string'));
    } catch (err) {
      this.logger.warn({ err: describe(err) }, 'could not check SLACK_ONCALL_GROUPS (needs the usergroups:read scope); reminders mention them as configured');
      return;
    }
    for (const [queue, id] of Object.entries(groups)) {
      if (!known.has(id)) throw new ConfigError('SLACK_ONCALL_GROUPS', `${id} (queue ${queue}) is not an enabled user group in this Slack workspace`);
    }
  }

  // ---- helpers --------------------------------------------------------------------------

  /**
   * Sends an ephemeral message (already mrkdwn) to one user, for listeners answering a click or a
   * reply: a short 429 or an outage is waited out a couple of times, then it is logged. Never throws.
   */
  async tell(target: PrivateTarget, text: string): Promise<boolean> {
    const args = { channel: target.channel, user: target.user, text, ...(target.threadTs ? { thread_ts: target.threadTs } : {}) };
    for (let tries = 1; ; tries++) {
      try {
        await this.api.call('chat.postEphemeral', args);
        return true;
      } catch (err) {
        // A short 429 or an outage may pass; a setup problem (channel, scope) will not in a second.
        const wait = err instanceof RetryLaterError ? err.retryAfterMs : err instanceof SlackUnavailableError && err.reason === 'outage' ? 250 * tries : undefined;
        if (wait === undefined || tries >= 3 || wait > TELL_MAX_WAIT_MS) {
          this.logger.warn({ user: target.user, err: describe(err) }, 'could not tell the operator privately');
          return false;
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** Strips the buttons from briefing copies of escalations before `escalation`; returns the copies as recorded. */
  private async supersedeOlder(conversation: Conversation, escalation: number, log: Logger): Promise<BriefingCopy[]> {
    let copies = await this.directory.briefings(conversation.id);
    for (const copy of copies) {
      if (copy.escalation >= escalation || copy.superseded) continue;
      await this.update(copy, [supersededBriefingCard(conversation)], log);
      copies = copies.map((c) => (c === copy ? { ...c, superseded: true } : c));
      await this.directory.setBriefings(conversation.id, copies);
    }
    return copies;
  }

  /** The conversation's thread, opened (root posted, then recorded) on first use. */
  private async ensureThread(conversation: Conversation, attempt: DeliveryAttempt): Promise<PostedRef> {
    const existing = await this.directory.thread(conversation.id);
    if (existing) return existing;
    const channel = this.options.config.queueChannels?.[conversation.queue] ?? this.options.config.channelId;
    const card = threadRoot(conversation);
    const root = await this.postFirstAccepted(`root:${conversation.id}`, { channel }, [card, { text: card.text }], attempt, conversationLogger(this.logger, conversation));
    await this.directory.setThread(conversation.id, root);
    return root;
  }

  /**
   * Posts the first of `messages` that Slack accepts, all under one key (only one of them can be in
   * Slack). A refusal of the content moves on to the next, smaller message; any other refusal, or
   * the last message refused, is permanent. Outages and 429s are thrown to the worker.
   */
  private async postFirstAccepted(key: string, where: Omit<PostArgs, 'text' | 'blocks'>, messages: SlackMessage[], attempt: DeliveryAttempt, log: Logger): Promise<PostedRef> {
    let refusal: SlackRefusedError | undefined;
    for (const message of messages) {
      try {
        return await this.api.post(key, { ...where, ...render(message) }, attempt, log);
      } catch (err) {
        if (!(err instanceof SlackRefusedError)) throw err;
        refusal = err;
        if (!CONTENT_REFUSALS.has(err.code)) break;
        log.warn({ key, error: err.code }, 'slack refused this message for its content; trying a smaller one');
      }
    }
    throw new PermanentDeliveryError(`Slack refused ${key}: ${refusal?.code ?? 'nothing to post'}`, refusal);
  }

  /**
   * chat.update with the first of `messages` Slack accepts. A message that is gone (or can no
   * longer be edited) is logged and left; outages and 429s are thrown to the worker.
   */
  private async update(ref: PostedRef, messages: SlackMessage[], log: Logger): Promise<void> {
    for (const [i, message] of messages.entries()) {
      try {
        await this.api.call('chat.update', { channel: ref.channel, ts: ref.ts, ...render(message) });
        return;
      } catch (err) {
        if (!(err instanceof SlackRefusedError)) throw err;
        if (CONTENT_REFUSALS.has(err.code) && i < messages.length - 1) continue;
        log.warn({ channel: ref.channel, ts: ref.ts, error: err.code }, 'slack refused to update a message; leaving it as it is');
        return;
      }
    }
  }
}

/**
 * What start-up says when Slack refuses a token or cannot be reached: one line, no stack. A
 * rejected token is a `ConfigError` naming `variable`.
 */
function startError(variable: string, expected: string, apiUrl: string, err: unknown): Error {
  if (err instanceof BridgeError) return err;
  const e = err as { code?: string; data?: { error?: unknown }; message?: string };
  const code = typeof e.data?.error === 'string' ? e.data.error : err instanceof SlackUnavailableError ? err.detail : undefined;
  if (code && TOKEN_REJECTED.has(code)) return new ConfigError(variable, `Slack rejected it (${code}); expected ${expected}`);
  const detail = String(e.message ?? err).replace(/\s+/g, ' ').slice(0, 200);
  return new BridgeError('slack_unreachable', `Slack did not answer at ${apiUrl} (${detail}); check the network or SLACK_API_URL.`);
}

function render(message: SlackMessage): { text: string; blocks?: unknown[] } {
  return message.blocks ? { text: message.text, blocks: message.blocks } : { text: message.text };
}
