/**
 * The Slack workspace: mirrors each conversation into a thread, posts and refreshes the briefing,
 * and tells operators things privately. Inbound operator actions are wired in `listeners.ts`.
 * Outbound work for one conversation runs on its own lane, in order, with 429s honoured per lane.
 * That queue is in memory; the thread heals itself from the durable transcript on the next mirror
 * (or briefing) if a crash or a failed post left messages out.
 */
import { App, SocketModeReceiver, type webApi } from '@slack/bolt';
import type { Bridge } from '../../src/bridge.ts';
import type { HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import { conversationLogger } from '../../src/log.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import type { Service, Workspace } from '../../src/ports.ts';
import { briefingCard, supersededBriefingCard } from '../../cards/slack/briefing.ts';
import type { SlackMessage } from '../../cards/slack/limits.ts';
import { threadMessage, threadRoot } from '../../cards/slack/thread.ts';
import { escapeMrkdwn } from '../../cards/slack/text.ts';
import { boltLogger } from './bolt-logger.ts';
import { normalizeApiUrl, type SlackConfig } from './config.ts';
import { SlackDirectory, type BriefingCopy } from './directory.ts';
import { SlackFiles } from './files.ts';
import { registerListeners } from './listeners.ts';
import { SlackOperators, slackUserId } from './operators.ts';
import { classifyFailure, describe, Lanes, PostOutcomeUnknownError, SenderStoppedError, SlackSender, type PostedRef } from './outbox.ts';
import { SlackHttpReceiver } from './receiver.ts';

export interface SlackWorkspaceOptions {
  bridge: Bridge;
  http: HttpServer;
  logger: Logger;
  config: SlackConfig;
  /** Public base URL of this server (e.g. https://bridge.example.com): enables signed links for files shared in threads. */
  publicUrl?: string;
  /** How long `stop()` waits for queued Slack work before abandoning it. */
  stopGraceMs?: number;
  /** Overrides for the sender's retry policy (tests use a fast backoff). */
  retry?: { maxAttempts?: number; backoffMs?: (attempt: number) => number; maxRetryAfterSeconds?: number };
}

/** Where a private notice goes: a user, in a channel, optionally inside a thread. */
export interface PrivateTarget {
  channel: string;
  user: string;
  threadTs?: string;
}

export class SlackWorkspace implements Workspace, Service {
  readonly name = 'slack';
  /** The Bolt app (listeners, WebClient). */
  readonly app: App;
  readonly directory: SlackDirectory;
  readonly operators: SlackOperators;
  readonly mode: 'http' | 'socket';
  private readonly client: webApi.WebClient;
  private readonly sender: SlackSender;
  private readonly lanes = new Lanes();
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
      // Our lanes handle 429 (Retry-After, per thread) and retries; the client must not pause or retry globally.
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: 15_000,
    };
    const logger = boltLogger(this.logger);
    if (config.appToken) {
      const receiver = new SocketModeReceiver({ appToken: config.appToken, logger, installerOptions: { clientOptions: { slackApiUrl } } });
      this.app = new App({ token: config.botToken, receiver, logger, clientOptions, deferInitialization: true, convoStore: false });
    } else {
      this.receiver = new SlackHttpReceiver({ http: options.http, signingSecret: config.signingSecret, logger: this.logger, ...(config.eventsPath ? { path: config.eventsPath } : {}) });
      this.app = new App({ token: config.botToken, receiver: this.receiver, logger, clientOptions, deferInitialization: true, convoStore: false });
    }
    this.app.error(async (err) => {
      this.logger.error({ err: describe(err), message: err.message }, 'slack listener error');
    });
    this.client = this.app.client;
    const kv = bridge.store.kv('slack');
    this.sender = new SlackSender({ client: this.client, kv, logger: this.logger, ...options.retry });
    this.directory = new SlackDirectory(kv);
    this.operators = new SlackOperators((user) => this.sender.call('users.info', { user }), kv, this.logger);
    if (options.publicUrl) {
      this.files = new SlackFiles({
        http: options.http,
        publicUrl: options.publicUrl,
        secret: config.signingSecret,
        botToken: config.botToken,
        apiUrl: slackApiUrl,
        fileInfo: (file) => this.sender.call('files.info', { file }),
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
        // Not on a lane and not retried: a trigger_id expires in 3 seconds.
        await this.client.views.open({ trigger_id: triggerId, view });
      },
      mirrorCopy: (conversation, message) => this.mirror(conversation, message),
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

  /** Stops taking requests, finishes queued Slack work (up to the grace period), then abandons the rest. */
  async stop(): Promise<void> {
    if (this.started) await this.app.stop().catch((err: unknown) => this.logger.warn({ err }, 'slack receiver did not stop cleanly'));
    this.started = false;
    const grace = this.options.stopGraceMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), grace);
      timer.unref();
    });
    const outcome = await Promise.race([this.settle().then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.logger.warn({ graceMs: grace }, 'slack work still queued at shutdown; abandoning it');
      this.sender.abort();
      await this.settle();
    }
  }

  /** Resolves when no Slack request is being handled and nothing is queued for Slack. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await this.receiver?.idle();
      await this.lanes.idle();
    }
  }

  // ---- the Workspace port ---------------------------------------------------------------

  /**
   * Posts `message` into the conversation's thread, after first posting any earlier transcript
   * message that belongs there but was never posted (work still queued when a process died, or a
   * mirror that failed), oldest first. Posts are keyed by message id, so nothing appears twice.
   */
  async mirror(conversation: Conversation, message: Message): Promise<void> {
    await this.lanes.run(conversation.id, async () => {
      const root = await this.ensureThread(conversation);
      const at = lastIndexOf(conversation.messages, message.id);
      if (at < 0) return void (await this.postMirror(root, message));
      const done = await this.heal(conversation, root, at);
      await this.postMirror(root, message);
      if (at === done + 1) await this.directory.setMirroredUpTo(conversation.id, { index: at, id: message.id });
    });
  }

  async postBriefing(conversation: Conversation): Promise<void> {
    await this.lanes.run(conversation.id, async () => {
      const log = conversationLogger(this.logger, conversation);
      const root = await this.ensureThread(conversation);
      // Every message of this snapshot was handed to `mirror` before the briefing: fill any gap above the card.
      await this.heal(conversation, root, conversation.messages.length).catch((err: unknown) => {
        if (err instanceof SenderStoppedError) throw err;
        log.warn({ err: describe(err) }, 'could not complete the slack thread before the briefing');
      });
      const escalation = conversation.history.filter((h) => h.reason === 'escalate').length;
      const copies = await this.directory.briefings(conversation.id);
      for (const copy of copies) {
        if (copy.escalation >= escalation || copy.superseded) continue;
        if (await this.update(copy, supersededBriefingCard(conversation), log)) copy.superseded = true;
      }
      const card = this.render(briefingCard(conversation));
      const has = (place: BriefingCopy['place']) => copies.some((c) => c.escalation === escalation && c.place === place);
      if (!has('thread')) {
        // A broadcast reply: in the thread, and shown in the channel too.
        const ref = await this.sender.postOnce(`briefing:${conversation.id}:${escalation}:thread`, { channel: root.channel, thread_ts: root.ts, reply_broadcast: true, ...card });
        copies.push({ ...ref, escalation, place: 'thread' });
        await this.directory.setBriefings(conversation.id, copies);
      }
      const queueChannel = this.options.config.queueChannels?.[conversation.briefing?.queue ?? conversation.queue];
      if (queueChannel && queueChannel !== root.channel && !has('queue')) {
        const ref = await this.sender.postOnce(`briefing:${conversation.id}:${escalation}:queue`, { channel: queueChannel, ...card });
        await this.directory.link(ref, conversation.id);
        copies.push({ ...ref, escalation, place: 'queue' });
      }
      await this.directory.setBriefings(conversation.id, copies);
    });
  }

  async ownershipChanged(conversation: Conversation, _change: HistoryEntry): Promise<void> {
    await this.lanes.run(conversation.id, async () => {
      const log = conversationLogger(this.logger, conversation);
      const root = await this.directory.thread(conversation.id);
      if (root) await this.update(root, threadRoot(conversation), log);
      for (const copy of await this.directory.briefings(conversation.id)) {
        if (!copy.superseded) await this.update(copy, briefingCard(conversation), log);
      }
    });
  }

  async notifyOperator(operator: Operator, text: string, conversation?: Conversation): Promise<void> {
    const user = slackUserId(operator);
    if (!user) return;
    const root = conversation ? await this.directory.thread(conversation.id) : undefined;
    await this.tell({ channel: root?.channel ?? this.options.config.channelId, user, ...(root ? { threadTs: root.ts } : {}) }, escapeMrkdwn(text));
  }

  // ---- helpers --------------------------------------------------------------------------

  /** Sends an ephemeral message (already mrkdwn) to one user; per-user order, 429-aware, never throws. */
  async tell(target: PrivateTarget, text: string): Promise<void> {
    await this.lanes
      .run(`private:${target.user}`, () =>
        this.sender.call('chat.postEphemeral', { channel: target.channel, user: target.user, text, ...(target.threadTs ? { thread_ts: target.threadTs } : {}) }),
      )
      .catch((err: unknown) => this.logger.warn({ user: target.user, err: describe(err) }, 'could not tell the operator privately'));
  }

  /** The conversation's thread, opened (root posted once) on first use. Runs on the conversation's lane. */
  private async ensureThread(conversation: Conversation): Promise<PostedRef> {
    const existing = await this.directory.thread(conversation.id);
    if (existing) return existing;
    const channel = this.options.config.queueChannels?.[conversation.queue] ?? this.options.config.channelId;
    const root = await this.sender.postOnce(`root:${conversation.id}`, { channel, ...this.render(threadRoot(conversation)) });
    await this.directory.setThread(conversation.id, root);
    return root;
  }

  /**
   * Posts, oldest first, the messages before index `end` that the bridge mirrors to Slack (all but
   * those typed in Slack) and that have no posted record, then records how far the thread is
   * complete. Only messages after the recorded mark are looked at, so a healthy thread costs one
   * read. A message Slack refuses for good is skipped (as a live mirror would have dropped it); any
   * other failure stops here, keeping the thread in transcript order, and throws: the next mirror
   * tries again. Returns the index up to which the thread is complete. Runs on the conversation's lane.
   */
  private async heal(conversation: Conversation, root: PostedRef, end: number): Promise<number> {
    const start = await this.directory.mirroredUpTo(conversation.id, conversation.messages);
    let done = start;
    const record = async () => {
      if (done > start) await this.directory.setMirroredUpTo(conversation.id, { index: done, id: conversation.messages[done]!.id });
    };
    for (let i = start + 1; i < end; i++) {
      const message = conversation.messages[i]!;
      if (message.source?.workspace !== this.name) {
        try {
          await this.postMirror(root, message);
        } catch (err) {
          if (err instanceof SenderStoppedError || err instanceof PostOutcomeUnknownError || classifyFailure(err).kind !== 'permanent') {
            await record();
            throw err;
          }
          conversationLogger(this.logger, conversation).warn({ messageId: message.id, err: describe(err) }, 'slack refused a missing thread message; skipping it');
        }
      }
      done = i;
    }
    await record();
    return done;
  }

  /** Posts one transcript message into the thread, at most once (keyed by the message id). */
  private async postMirror(root: PostedRef, message: Message): Promise<PostedRef> {
    return this.sender.postOnce(`msg:${message.id}`, { channel: root.channel, thread_ts: root.ts, ...this.render(threadMessage(message)) });
  }

  /** chat.update one message; a message that is gone is logged, not retried forever. */
  private async update(ref: PostedRef, message: SlackMessage, log: Logger): Promise<boolean> {
    try {
      await this.sender.call('chat.update', { channel: ref.channel, ts: ref.ts, ...this.render(message) });
      return true;
    } catch (err) {
      log.warn({ channel: ref.channel, ts: ref.ts, err: describe(err) }, 'could not update a slack message');
      return false;
    }
  }

  private render(message: SlackMessage): { text: string; blocks?: unknown[] } {
    return message.blocks ? { text: message.text, blocks: message.blocks } : { text: message.text };
  }
}

/** Where message `id` sits in the transcript (searched from the end: mirrored messages are usually recent); -1 if absent. */
function lastIndexOf(messages: readonly Message[], id: string): number {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.id === id) return i;
  return -1;
}
