/**
 * The Slack workspace: mirrors each conversation into a thread, posts and refreshes the briefing,
 * and tells operators things privately. Inbound operator actions are wired in `listeners.ts`.
 *
 * The bridge's delivery workers call the Workspace port for one conversation at a time, in order,
 * at least once. Nothing here queues, sleeps or retries: a failure goes back to the worker, which
 * tries this conversation again later (a 429 after its Retry-After). Every post carries a key
 * derived from the work (`root:<conversation>`, `msg:<message>`,
 * `briefing:<conversation>:<escalation>:thread|queue`), so a repeat after an uncertain outcome
 * finds the earlier post instead of posting twice (`SlackApi.post`). A message Slack refuses for
 * its content is replaced by a smaller one rather than dropped.
 */
import { App, SocketModeReceiver, type webApi } from '@slack/bolt';
import { PermanentDeliveryError, RetryLaterError } from '../../src/delivery/outcome.ts';
import type { HttpServer } from '../../src/http.ts';
import { conversationLogger, type Logger } from '../../src/log.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import { FIRST_ATTEMPT, type BridgePort, type DeliveryAttempt, type Service, type Workspace } from '../../src/ports.ts';
import { briefingCard, briefingFallbacks, supersededBriefingCard } from '../../cards/slack/briefing.ts';
import type { SlackMessage } from '../../cards/slack/limits.ts';
import { escalationNumber } from '../../cards/slack/status.ts';
import { escapeMrkdwn } from '../../cards/slack/text.ts';
import { bridgeLine, threadMessage, threadRoot } from '../../cards/slack/thread.ts';
import { CONTENT_REFUSALS, describe, SlackApi, SlackRefusedError, SlackUnavailableError, type PostArgs, type PostedRef } from './api.ts';
import { boltLogger } from './bolt-logger.ts';
import { normalizeApiUrl, type SlackConfig } from './config.ts';
import { SlackDirectory, type BriefingCopy } from './directory.ts';
import { SlackFiles } from './files.ts';
import { registerListeners, ReplyNotRecordedError } from './listeners.ts';
import { SlackOperators, slackUserId } from './operators.ts';
import { commitBeforeAck, SlackHttpReceiver } from './receiver.ts';

export interface SlackWorkspaceOptions {
  bridge: BridgePort;
  http: HttpServer;
  logger: Logger;
  config: SlackConfig;
  /** Public base URL of this server (e.g. https://bridge.example.com): enables signed links for files shared in threads. */
  publicUrl?: string;
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
  private readonly receiver?: SlackHttpReceiver;
  private readonly files?: SlackFiles;
  private readonly logger: Logger;
  private started = false;

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
      commitBeforeAck(receiver);
      this.app = new App({ token: config.botToken, receiver, logger, clientOptions, deferInitialization: true, convoStore: false });
    } else {
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
    this.api = new SlackApi(this.client, this.logger);
    this.directory = new SlackDirectory(kv);
    this.operators = new SlackOperators((user) => this.api.call('users.info', { user }), kv, this.logger);
    if (options.publicUrl) {
      this.files = new SlackFiles({
        http: options.http,
        publicUrl: options.publicUrl,
        secret: config.signingSecret,
        botToken: config.botToken,
        apiUrl: slackApiUrl,
        fileInfo: (file) => this.api.call('files.info', { file }),
        logger: this.logger,
      });
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
    });
  }

  /** Checks the bot token (auth.test), then starts taking Slack requests (HTTP) or connects (Socket Mode). */
  async start(): Promise<void> {
    try {
      await this.app.init();
    } catch (err) {
      throw new Error(`Slack rejected SLACK_BOT_TOKEN or could not be reached (auth.test: ${(err as Error).message}).`);
    }
    await this.app.start();
    this.started = true;
    this.logger.info({ mode: this.mode }, 'slack workspace started');
  }

  /** Stops taking Slack requests and lets those in progress finish. Outbound work stays with the bridge's workers. */
  async stop(): Promise<void> {
    if (this.started) await this.app.stop().catch((err: unknown) => this.logger.warn({ err }, 'slack receiver did not stop cleanly'));
    this.started = false;
  }

  /** Resolves when no Slack request is being handled (HTTP mode). */
  async settle(): Promise<void> {
    await this.receiver?.idle();
  }

  // ---- the Workspace port ---------------------------------------------------------------

  /** Posts one transcript message into the conversation's thread, opening the thread on first use. */
  async mirror(conversation: Conversation, message: Message, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    const log = conversationLogger(this.logger, conversation);
    const root = await this.ensureThread(conversation, attempt);
    const fallback = bridgeLine(`A ${message.author.role} message could not be shown in Slack; it is in the conversation's transcript in the bridge.`);
    await this.postFirstAccepted(`msg:${message.id}`, { channel: root.channel, thread_ts: root.ts }, [threadMessage(message), fallback], attempt, log);
  }

  /**
   * Posts the current escalation's briefing in the thread (broadcast to the channel) and, when its
   * queue maps to another channel, there too; earlier briefings lose their buttons. Each copy is
   * recorded as soon as it is posted, so a retry posts only what is missing.
   */
  async postBriefing(conversation: Conversation, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
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

  /** Refreshes the thread root and every current briefing copy (chat.update is safe to repeat). */
  async ownershipChanged(conversation: Conversation, _change: HistoryEntry, _attempt?: DeliveryAttempt): Promise<void> {
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
      this.logger.warn({ user, err: describe(err) }, 'slack refused a private notice');
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
        const wait = err instanceof RetryLaterError ? err.retryAfterMs : err instanceof SlackUnavailableError ? 250 * tries : undefined;
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
        return await this.api.post(key, { ...where, ...render(message) }, attempt);
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

function render(message: SlackMessage): { text: string; blocks?: unknown[] } {
  return message.blocks ? { text: message.text, blocks: message.blocks } : { text: message.text };
}
