/**
 * The Teams side of the Workspace port: each conversation gets a thread in the operators' channel
 * (opened proactively with a root card), every transcript message becomes a reply, briefings are
 * Adaptive Cards, and the root and latest briefing are edited in place on every ownership change.
 * When a briefing's queue has its own channel (`TEAMS_QUEUE_CHANNELS`) other than the thread's, as
 * after a transfer, a copy of the briefing also starts a thread of its own there, so that queue's
 * team sees it; its buttons act on the conversation, and it is edited and superseded like the
 * thread's.
 *
 * The delivery worker calls these for one conversation at a time, in order, at least once, and
 * retries what throws. The Bot Connector has no idempotency key and no way to list a thread's
 * messages, so the adapter records the activity id each post got right after Teams answers; a
 * retry (`attempt.count` > 1) that finds it does not post again. One that finds nothing cannot
 * tell "never arrived" from "arrived, answer lost", and posts again: a message may then show twice
 * in Teams, but is never lost.
 */
import { PermanentDeliveryError } from '../../src/delivery/outcome.ts';
import { conversationLogger, type Logger } from '../../src/log.ts';
import type { Digest } from '../../src/engine/digest.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import { FIRST_ATTEMPT, type BridgePort, type DeliveryAttempt, type Workspace } from '../../src/ports.ts';
import { CARD_CONTENT_TYPE, type AdaptiveCard } from '../../cards/teams/adaptive.ts';
import { buildBriefingCard, buildBriefingFallbackText, buildSupersededBriefingCard, type CardView } from '../../cards/teams/briefing.ts';
import { buildDigestCard, buildDigestText, digestSummary } from '../../cards/teams/digest.ts';
import { buildManagersCard, buildManagersFallbackText, managersSummary, threadDeepLink, type ManagersCardView } from '../../cards/teams/managers.ts';
import { buildRevealCard, formatBridgeLine, formatMirroredMessage, type TeamsText } from '../../cards/teams/message.ts';
import { buildReminderCard, mentionName } from '../../cards/teams/reminder.ts';
import { buildRootCard, rootSummary } from '../../cards/teams/root.ts';
import { escalationNumber } from '../../cards/teams/status.ts';
import { escapeMessageText, oneLine } from '../../cards/teams/text.ts';
import { channelForQueue, oncallTagFor, trustedServiceUrl, type TeamsConfig } from './config.ts';
import { BotConnectorError, isRefusal, type BotConnector, type ConversationParameters, type OutgoingActivity, type RequestOptions } from './connector.ts';
import { teamsUserId } from './inbound.ts';
import { threadIdFor, type BriefingRecord, type ManagersAlertRecord, type QueueCopyRecord, type TeamsState, type ThreadRecord } from './state.ts';

/** Attempts at a managers' alert the managers' channel refuses (403, 404) before the thread is told instead. */
const MANAGERS_ATTEMPTS = 3;

/** The same, for a briefing copy in a queue's channel. */
const QUEUE_COPY_ATTEMPTS = 3;

export interface TeamsOutboundDeps {
  bridge: BridgePort;
  config: TeamsConfig;
  connector: BotConnector;
  state: TeamsState;
  logger: Logger;
}

/** Turns bridge work into Teams thread messages and card edits. */
export class TeamsOutbound implements Pick<Workspace, 'mirror' | 'postBriefing' | 'ownershipChanged' | 'notifyOperator'>, Required<Pick<Workspace, 'postToManagers' | 'postDigest'>> {
  private warnedNoManagersChannel = false;

  constructor(private readonly deps: TeamsOutboundDeps) {}

  async mirror(conversation: Conversation, message: Message, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    // Already in the thread: an operator typed it there (not under a briefing copy in a queue channel).
    if (message.source?.workspace === 'teams' && message.source.inThread !== false) return;
    const { thread } = await this.ensureThread(conversation, attempt);
    const key = `msg:${message.id}`;
    if (attempt.count > 1 && (await this.postedEarlier(conversation, key, attempt))) return;
    try {
      if (message.notice === 'reminder' && message.author.role === 'system' && (await this.postReminderWithTag(conversation, thread, key, message, attempt))) return;
      await this.post(conversation, thread, key, mirroredActivity(conversation, message), attempt);
    } catch (err) {
      if (!isRefusal(err)) throw err;
      // Refused for good (too big, malformed): say so in the thread rather than leave a silent gap.
      const log = conversationLogger(this.deps.logger, conversation);
      log.error({ err: err.message, messageId: message.id }, 'Teams refused a transcript message; posting a placeholder instead');
      const who = message.author.name ? `${oneLine(message.author.name, 100)} (${message.author.role})` : message.author.role;
      const placeholder = formatBridgeLine(`Teams would not show a message from ${who} here (${err.message}). It is kept in the conversation's transcript.`);
      try {
        await this.post(conversation, thread, key, { type: 'message', ...placeholder }, attempt);
      } catch (again) {
        if (isRefusal(again)) throw new PermanentDeliveryError(`Teams refused message ${message.id} and its placeholder: ${again.message}`, again);
        throw again;
      }
    }
  }

  async postBriefing(conversation: Conversation, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    let { thread } = await this.ensureThread(conversation, attempt);
    // One briefing per escalation. A briefing item that runs after a newer escalation posts the
    // current one (cards show the latest state), and the newer item then finds it posted.
    const escalation = escalationNumber(conversation);
    if (!thread.briefings.some((b) => b.escalation === escalation)) {
      if (attempt.count > 1) {
        conversationLogger(this.deps.logger, conversation).warn(
          { escalation, attempts: attempt.count },
          'no briefing recorded from an earlier attempt; Teams cannot be asked whether it arrived, so posting it again (it may show twice)',
        );
      }
      const posted = await this.postBriefingMessage(conversation, thread, attempt);
      const record: BriefingRecord = { activityId: posted.activityId, postedAt: new Date().toISOString(), escalation, ...(posted.fallback ? { fallback: true } : {}) };
      // Recorded at once: a failure after this point (the copy, superseding) never posts the briefing again.
      thread = { ...thread, briefings: [...thread.briefings, record] };
      await this.deps.state.saveThread(thread);
    }
    // Both tried; the first failure is retried (what was recorded is not posted again).
    let firstError: unknown;
    try {
      thread = await this.postQueueCopy(conversation, thread, escalation, attempt);
    } catch (err) {
      firstError = err;
    }
    try {
      await this.supersedeOlder(conversation, thread, escalation, attempt);
    } catch (err) {
      firstError ??= err;
    }
    if (firstError) throw firstError;
  }

  async ownershipChanged(conversation: Conversation, change: HistoryEntry, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    const { thread, opened } = await this.ensureThread(conversation, attempt);
    const updates: CardUpdate[] = [];
    if (!opened) updates.push({ where: thread, activityId: thread.rootActivityId, activity: this.rootActivity(conversation) });
    // An escalation brings a new briefing right after this; the old card is superseded then, not redrawn now.
    const latest = change.reason === 'escalate' ? undefined : thread.briefings.at(-1);
    if (latest && !latest.fallback) updates.push({ where: thread, activityId: latest.activityId, activity: this.briefingActivity(conversation) });
    // The current escalation's copy in its queue's channel shows the same.
    if (change.reason !== 'escalate') {
      const escalation = escalationNumber(conversation);
      for (const copy of thread.queueCopies ?? []) {
        if (copy.escalation === escalation && !copy.fallback && !copy.superseded) updates.push({ where: copy, activityId: copy.activityId, activity: this.briefingActivity(conversation) });
      }
    }
    let firstError: unknown;
    try {
      await this.updateAll(conversation, updates, attempt);
    } catch (err) {
      firstError = err;
    }
    // The managers' alerts follow too (tried even if a thread card failed; the first failure is retried).
    try {
      await this.refreshManagersAlerts(conversation, attempt);
    } catch (err) {
      firstError ??= err;
    }
    if (firstError) throw firstError;
  }

  /**
   * An unclaimed escalation waited too long: a short alert card, as a new thread in the managers'
   * channel, with the wait, the reason, a link to the conversation's thread and a Claim button. One
   * per escalation, under the same rule as briefings: recorded as soon as Teams answers, and a retry
   * that finds no record posts again (Teams cannot be asked whether the first one arrived).
   */
  async postToManagers(conversation: Conversation, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    const { config, state } = this.deps;
    const channelId = config.managersChannelId;
    if (!channelId) return this.noManagersChannel('an unclaimed escalation');
    const escalation = escalationNumber(conversation);
    const log = conversationLogger(this.deps.logger, conversation);
    if ((await state.managersAlerts(conversation.id)).some((r) => r.escalation === escalation)) {
      log.info({ escalation }, "the managers' alert for this escalation is already posted");
      return;
    }
    if (attempt.count > 1) {
      log.warn({ escalation, attempts: attempt.count }, "no managers' alert recorded from an earlier attempt; Teams cannot be asked whether it arrived, so posting it again (it may show twice)");
    }
    // The alert links to the thread, so the thread exists first (it normally does: the briefing opened it).
    await this.ensureThread(conversation, attempt);
    const opened = await this.openChannelThread(conversation, channelId, attempt, MANAGERS_ATTEMPTS, {
      card: async () => cardActivity(await this.managersCard(conversation, escalation), managersSummary(conversation)),
      // No button in the text; it says how to claim in the thread.
      text: async () => ({ type: 'message', ...buildManagersFallbackText(conversation, { now: new Date(), ...(await this.threadLink(conversation)) }) }),
      refused: (err) => log.error({ err }, "Teams refused the managers' alert card; posting it as text"),
    });
    if ('barred' in opened) return this.alertNotPosted(conversation, escalation, opened.barred, attempt);
    const { activityId, threadId, fallback } = opened;
    const record: ManagersAlertRecord = {
      conversationId: conversation.id,
      escalation,
      activityId,
      threadId,
      serviceUrl: config.serviceUrl,
      postedAt: new Date().toISOString(),
      // A text alert has no card to redraw.
      ...(fallback ? { final: true } : {}),
    };
    await state.recordManagersAlert(record);
    log.info({ escalation, activityId }, "posted the managers' alert");
  }

  /**
   * The managers' daily digest, as a card starting a new thread in the managers' channel. Once per
   * date: a second call for a date already posted (the scheduler retrying after another workspace
   * failed) does nothing.
   */
  async postDigest(digest: Digest): Promise<void> {
    const { config, connector, state } = this.deps;
    const channelId = config.managersChannelId;
    if (!channelId) return this.noManagersChannel('the daily digest');
    if (await state.digest(digest.date)) {
      this.deps.logger.info({ date: digest.date }, 'the Teams digest for this date is already posted');
      return;
    }
    const names: Record<string, string> = {};
    for (const { operatorId } of digest.returnsPerOperator) {
      const userId = operatorId.startsWith('teams:') ? operatorId.slice('teams:'.length) : undefined;
      const profile = userId ? await state.operator(userId) : undefined;
      if (profile?.name) names[operatorId] = profile.name;
    }
    const open = (activity: OutgoingActivity) => connector.createConversation(config.serviceUrl, this.channelThread(channelId, activity), channelId);
    let created: { id: string; activityId?: string };
    try {
      created = await open(cardActivity(buildDigestCard(digest, { operatorNames: names }), digestSummary(digest)));
    } catch (err) {
      if (!isRefusal(err)) throw err;
      this.deps.logger.error({ err: err.message, date: digest.date }, 'Teams refused the digest card; posting it as text');
      try {
        created = await open({ type: 'message', ...buildDigestText(digest, { operatorNames: names }) });
      } catch (again) {
        // Refused again: retrying each minute (and making other workspaces post again) would change nothing.
        if (!isRefusal(again)) throw again;
        this.deps.logger.error({ err: again.message, date: digest.date }, 'Teams refused the digest as text too; it is not posted in Teams today');
        return;
      }
    }
    const activityId = created.activityId ?? /;messageid=(\d+)/.exec(created.id)?.[1] ?? '';
    // A failed record only matters if the day is posted again; failing now would make that certain.
    await state.recordDigest(digest.date, { activityId, threadId: activityId ? threadIdFor(created.id, activityId) : created.id, postedAt: new Date().toISOString() }).catch((err: unknown) => {
      this.deps.logger.warn({ err: String(err), date: digest.date }, 'posted the digest in Teams but could not record it');
    });
    this.deps.logger.info({ date: digest.date, activityId }, 'posted the daily digest in Teams');
  }

  /**
   * The alert card for `escalation` as `view` sees it, linking to the conversation's thread (with
   * the tenant and team group ids when known, from the config or the team's own activities).
   */
  async managersCard(conversation: Conversation, escalation: number, view: Omit<ManagersCardView, 'escalation' | 'now' | 'threadLink'> = {}): Promise<AdaptiveCard> {
    return buildManagersCard(conversation, { ...view, escalation, now: new Date(), ...(await this.threadLink(conversation)) });
  }

  /** A deep link to the conversation's thread, if it has one. */
  private async threadLink(conversation: Conversation): Promise<{ threadLink?: string }> {
    const thread = await this.deps.state.thread(conversation.id);
    if (!thread) return {};
    const team = await this.deps.state.team();
    const tenantId = this.deps.config.tenantId || team?.tenantId;
    const groupId = team?.groups?.[thread.channelId];
    return {
      threadLink: threadDeepLink({ channelId: thread.channelId, rootMessageId: thread.rootActivityId, ...(tenantId ? { tenantId } : {}), ...(groupId ? { groupId } : {}) }),
    };
  }

  /** Redraws the conversation's managers' alerts; an earlier escalation's alert is redrawn once, as such. */
  private async refreshManagersAlerts(conversation: Conversation, attempt: DeliveryAttempt): Promise<void> {
    const alerts = (await this.deps.state.managersAlerts(conversation.id)).filter((r) => !r.final);
    if (alerts.length === 0) return;
    const current = escalationNumber(conversation);
    const finished = new Set<string>();
    let firstError: unknown;
    for (const alert of alerts) {
      const activity = cardActivity(await this.managersCard(conversation, alert.escalation), managersSummary(conversation));
      const failure = await this.update(conversation, alert, alert.activityId, activity, attempt);
      if (failure) firstError ??= failure;
      else if (alert.escalation !== current) finished.add(alert.activityId);
    }
    if (finished.size) await this.deps.state.finalizeManagersAlerts(conversation.id, finished);
    if (firstError) throw firstError;
  }

  /** The managers' alert cannot be posted: said in the conversation's thread (and the log), and the item ends. */
  private async alertNotPosted(conversation: Conversation, escalation: number, why: string, attempt: DeliveryAttempt): Promise<void> {
    conversationLogger(this.deps.logger, conversation).error({ escalation, err: why }, "could not post the managers' alert in Teams (check TEAMS_MANAGERS_CHANNEL_ID and that the app is in that team)");
    const { thread } = await this.ensureThread(conversation, attempt);
    const key = `managers-failed:${escalation}`;
    if (await this.deps.state.posted(conversation.id, key)) return;
    await this.post(conversation, thread, key, { type: 'message', ...formatBridgeLine(`The managers' alert for ${conversation.ticket} could not be posted in Teams (${why}).`) }, attempt);
  }

  /** Logs once that managers' work is skipped for want of a channel. */
  private noManagersChannel(what: string): void {
    if (this.warnedNoManagersChannel) return;
    this.warnedNoManagersChannel = true;
    this.deps.logger.info(`TEAMS_MANAGERS_CHANNEL_ID is not set: ${what} is not posted in Teams`);
  }

  /** Parameters that start a new thread in a channel with `activity` as its root. */
  private channelThread(channelId: string, activity: OutgoingActivity): ConversationParameters {
    const { tenantId } = this.deps.config;
    return {
      isGroup: true,
      channelData: { channel: { id: channelId }, ...(tenantId ? { tenant: { id: tenantId } } : {}) },
      activity,
      ...(tenantId ? { tenantId } : {}),
    };
  }

  /**
   * Posts a reminder as a small card mentioning the queue's on-call tag. False when there is no tag,
   * or Teams refused the mention (a deleted tag, a wrong id): the caller then posts the plain line.
   */
  private async postReminderWithTag(conversation: Conversation, thread: ThreadRecord, key: string, message: Message, attempt: DeliveryAttempt): Promise<boolean> {
    const tag = oncallTagFor(this.deps.config, conversation.queue);
    if (!tag) return false;
    try {
      await this.post(conversation, thread, key, cardActivity(buildReminderCard(message, tag), `@${mentionName(tag.name)} ${message.text}`), attempt);
      return true;
    } catch (err) {
      if (!isRefusal(err)) throw err;
      conversationLogger(this.deps.logger, conversation).error({ err: err.message, tag: tag.id }, 'Teams refused the on-call tag mention (check TEAMS_ONCALL_TAGS); posting the reminder without it');
      return false;
    }
  }

  /**
   * Tells one Teams operator something privately, in a 1:1 chat with the bot. If Teams refuses
   * (the app is not installed for that user), falls back to an @mention in the conversation's thread.
   * The port passes no attempt: a retry after an unknown outcome may repeat the notice.
   */
  async notifyOperator(operator: Operator, text: string, conversation?: Conversation): Promise<void> {
    const userId = teamsUserId(operator);
    if (!userId) return;
    try {
      await this.sendToUser(userId, formatBridgeLine(text));
      return;
    } catch (err) {
      // A 4xx (429 aside, which is already a RetryLaterError) means no 1:1 chat with this user.
      if (!(err instanceof BotConnectorError && err.status !== undefined && err.status < 500)) throw err;
      (conversation ? conversationLogger(this.deps.logger, conversation) : this.deps.logger).warn({ err: err.message, operator: operator.id }, 'could not message the operator privately; mentioning them in the thread instead');
    }
    const thread = conversation ? await this.deps.state.thread(conversation.id) : undefined;
    if (!thread) throw new PermanentDeliveryError(`No private chat with ${operator.name} and no thread to mention them in`);
    const mention = `<at>${escapeMessageText(oneLine(operator.name, 100))}</at>`;
    try {
      await this.deps.connector.sendToConversation(thread.serviceUrl, thread.threadId, {
        type: 'message',
        textFormat: 'xml',
        text: `${mention} ${formatBridgeLine(text).text}`,
        entities: [{ type: 'mention', text: mention, mentioned: { id: userId, name: operator.name } }],
      });
    } catch (err) {
      if (isRefusal(err)) throw new PermanentDeliveryError(`Teams refused a notice for ${operator.name}: ${err.message}`, err);
      throw err;
    }
  }

  /**
   * A message for one Teams operator's 1:1 chat with the bot and nowhere else: unlike
   * `notifyOperator`, no @mention in the thread if Teams refuses (the caller is told by the throw).
   */
  async sendPrivately(operator: Operator, body: TeamsText): Promise<void> {
    const userId = teamsUserId(operator);
    if (!userId) throw new Error(`${operator.name} is not a Teams user`);
    await this.sendToUser(userId, body);
  }

  /**
   * A message in the user's 1:1 chat with the bot, opening the chat on first use. It goes to the
   * service URL Teams gave with the user's authenticated activity, if it is still a trusted one
   * (a profile stored by an older version may hold any URL), else to the configured one.
   */
  private async sendToUser(userId: string, body: TeamsText): Promise<void> {
    const { state, connector, config } = this.deps;
    const profile = await state.operator(userId);
    const serviceUrl = trustedServiceUrl(config, profile?.serviceUrl) ?? config.serviceUrl;
    let chatId = await state.directChat(userId);
    if (!chatId) {
      const bot = (await state.bot()) ?? { id: `28:${config.appId}` };
      const tenantId = profile?.tenantId ?? config.tenantId;
      const created = await connector.createConversation(
        serviceUrl,
        { isGroup: false, bot, members: [{ id: userId }], ...(tenantId ? { tenantId, channelData: { tenant: { id: tenantId } } } : {}) },
        `dm:${userId}`,
      );
      chatId = created.id;
      await state.saveDirectChat(userId, chatId);
    }
    await connector.sendToConversation(serviceUrl, chatId, { type: 'message', ...body });
  }

  /** The briefing card as `view` sees it; the base card (no viewer) lists the owner for per-user refresh. */
  briefingCard(conversation: Conversation, view: Omit<CardView, 'refreshUserIds'> = {}): AdaptiveCard {
    const owner = conversation.state === 'human' && conversation.owner ? teamsUserId(conversation.owner) : undefined;
    return buildBriefingCard(conversation, { ...view, refreshUserIds: owner ? [owner] : [] });
  }

  /**
   * The conversation's thread, opening it (root card in the queue's channel) on first use; `opened`
   * when this call opened it. The thread is recorded as soon as Teams answers. If an earlier attempt
   * got no answer, Teams may have opened a thread we never learned the id of: a new one is opened,
   * because an unknown thread cannot be posted to (the earlier one, if any, keeps only its root).
   */
  async ensureThread(conversation: Conversation, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<{ thread: ThreadRecord; opened: boolean }> {
    const { state, connector, config, bridge } = this.deps;
    const existing = await state.thread(conversation.id);
    if (existing) return { thread: existing, opened: false };
    // The worker's lease already keeps one sender per conversation; the lock covers a lapsed lease.
    return bridge.store.withLock(`teams:thread:${conversation.id}`, async () => {
      const again = await state.thread(conversation.id);
      if (again) return { thread: again, opened: false };
      const log = conversationLogger(this.deps.logger, conversation);
      if (attempt.count > 1) log.warn({ attempts: attempt.count }, 'no thread recorded from an earlier attempt; opening one (an unanswered earlier attempt may have left an empty thread in Teams)');
      const channelId = channelForQueue(config, conversation.queue);
      const created = await connector.createConversation(config.serviceUrl, this.channelThread(channelId, this.rootActivity(conversation)), channelId, this.callOptions(attempt, conversation));
      const rootActivityId = created.activityId ?? /;messageid=(\d+)/.exec(created.id)?.[1];
      if (!rootActivityId) throw new BotConnectorError(`Teams opened conversation ${created.id} without a root message id`, 'unknown');
      const thread: ThreadRecord = {
        conversationId: conversation.id,
        channelId,
        serviceUrl: config.serviceUrl,
        threadId: threadIdFor(created.id, rootActivityId),
        rootActivityId,
        briefings: [],
      };
      await state.saveThread(thread);
      log.info({ threadId: thread.threadId, channelId }, 'opened the Teams thread');
      return { thread, opened: true };
    });
  }

  rootActivity(conversation: Conversation): OutgoingActivity {
    return cardActivity(buildRootCard(conversation), rootSummary(conversation));
  }

  briefingActivity(conversation: Conversation): OutgoingActivity {
    const envelope = conversation.briefing;
    const summary = envelope ? `${conversation.ticket} needs a person: ${oneLine(envelope.pendingQuestion, 150)}` : conversation.ticket;
    return cardActivity(this.briefingCard(conversation), summary);
  }

  /** True when an earlier attempt's post was recorded; otherwise says why it posts again. */
  private async postedEarlier(conversation: Conversation, key: string, attempt: DeliveryAttempt): Promise<boolean> {
    const activityId = await this.deps.state.posted(conversation.id, key);
    const log = conversationLogger(this.deps.logger, conversation);
    if (activityId) {
      log.info({ key, activityId, attempts: attempt.count }, 'already in Teams from an earlier attempt; not posting again');
      return true;
    }
    log.warn({ key, attempts: attempt.count }, 'no Teams id recorded from an earlier attempt; Teams cannot be asked whether it arrived, so posting again (it may show twice)');
    return false;
  }

  /** Posts into the thread and records the activity id Teams gave it. */
  private async post(conversation: Conversation, thread: ThreadRecord, key: string, activity: OutgoingActivity, attempt: DeliveryAttempt): Promise<string> {
    const { id } = await this.deps.connector.sendToConversation(thread.serviceUrl, thread.threadId, activity, this.callOptions(attempt, conversation));
    // A failed record only matters if this item is retried; failing the posted item would make that certain.
    await this.deps.state.recordPosted(conversation.id, key, id).catch((err: unknown) => {
      conversationLogger(this.deps.logger, conversation).warn({ err: String(err), key }, 'posted to Teams but could not record its id');
    });
    return id;
  }

  /** The briefing card; if Teams refuses it for good, the short text briefing; if that too, a permanent failure. */
  private async postBriefingMessage(conversation: Conversation, thread: ThreadRecord, attempt: DeliveryAttempt): Promise<{ activityId: string; fallback: boolean }> {
    const send = (activity: OutgoingActivity) => this.deps.connector.sendToConversation(thread.serviceUrl, thread.threadId, activity, this.callOptions(attempt, conversation));
    try {
      return { activityId: (await send(this.briefingActivity(conversation))).id, fallback: false };
    } catch (err) {
      if (!isRefusal(err)) throw err;
      conversationLogger(this.deps.logger, conversation).error({ err: err.message }, 'Teams refused the briefing card; posting the briefing as text');
      try {
        return { activityId: (await send({ type: 'message', ...buildBriefingFallbackText(conversation) })).id, fallback: true };
      } catch (again) {
        if (isRefusal(again)) throw new PermanentDeliveryError(`Teams refused the briefing for ${conversation.ticket}, card and text: ${again.message}`, again);
        throw again;
      }
    }
  }

  /**
   * Starts a thread of its own in `channelId` (a managers' alert, a briefing copy): the card, or the
   * text if Teams refuses the card. `barred` when the channel refuses the bot (a refusal of the text
   * too, or 403/404 on the `attempts`th try: not in that team, no such channel), so the caller tells
   * the conversation's thread instead of holding it up.
   */
  private async openChannelThread(
    conversation: Conversation,
    channelId: string,
    attempt: DeliveryAttempt,
    attempts: number,
    content: { card: () => OutgoingActivity | Promise<OutgoingActivity>; text: () => OutgoingActivity | Promise<OutgoingActivity>; refused: (err: string) => void },
  ): Promise<{ activityId: string; threadId: string; fallback: boolean } | { barred: string }> {
    const { config, connector } = this.deps;
    const open = (activity: OutgoingActivity) => connector.createConversation(config.serviceUrl, this.channelThread(channelId, activity), channelId, this.callOptions(attempt, conversation));
    let created: { id: string; activityId?: string };
    let fallback = false;
    try {
      try {
        created = await open(await content.card());
      } catch (err) {
        if (!isRefusal(err)) throw err;
        content.refused(err.message);
        fallback = true;
        created = await open(await content.text());
      }
    } catch (err) {
      const barred = err instanceof BotConnectorError && (err.status === 403 || err.status === 404) && attempt.count >= attempts;
      if (!isRefusal(err) && !barred) throw err;
      return { barred: (err as Error).message };
    }
    const activityId = created.activityId ?? /;messageid=(\d+)/.exec(created.id)?.[1];
    if (!activityId) throw new BotConnectorError(`Teams opened conversation ${created.id} without a root message id`, 'unknown');
    return { activityId, threadId: threadIdFor(created.id, activityId), fallback };
  }

  /**
   * A copy of the current briefing in its queue's channel, as a thread of its own, when that channel
   * is not the thread's (a transfer moved the conversation to a queue with another channel). One per
   * escalation, under the same rule as the thread's briefing: recorded (and linked, so its buttons
   * act on this conversation) as soon as Teams answers; a retry that finds no record posts again,
   * since Teams cannot be asked whether the first one arrived. Returns the thread record as saved.
   */
  private async postQueueCopy(conversation: Conversation, thread: ThreadRecord, escalation: number, attempt: DeliveryAttempt): Promise<ThreadRecord> {
    const { config, state } = this.deps;
    const queue = conversation.briefing?.queue ?? conversation.queue;
    const channelId = channelForQueue(config, queue);
    if (channelId === thread.channelId) return thread;
    if ((thread.queueCopies ?? []).some((c) => c.escalation === escalation)) return thread;
    const log = conversationLogger(this.deps.logger, conversation);
    if (attempt.count > 1) {
      log.warn(
        { escalation, queue, channelId, attempts: attempt.count },
        "no copy of the briefing recorded in the queue's channel from an earlier attempt; Teams cannot be asked whether it arrived, so posting it again (it may show twice)",
      );
    }
    const opened = await this.openChannelThread(conversation, channelId, attempt, QUEUE_COPY_ATTEMPTS, {
      card: () => this.briefingActivity(conversation),
      text: () => ({ type: 'message', ...buildBriefingFallbackText(conversation) }),
      refused: (err) => log.error({ err, channelId }, "Teams refused the briefing card in the queue's channel; posting the briefing there as text"),
    });
    if ('barred' in opened) {
      await this.queueCopyNotPosted(conversation, thread, escalation, queue, opened.barred, attempt);
      return thread;
    }
    const { activityId, threadId, fallback } = opened;
    const copy: QueueCopyRecord = {
      activityId,
      postedAt: new Date().toISOString(),
      escalation,
      queue,
      channelId,
      threadId,
      serviceUrl: config.serviceUrl,
      ...(fallback ? { fallback: true } : {}),
    };
    // Recorded at once: a failure after this point never posts the copy again.
    await state.linkQueueCopy(copy, conversation.id);
    const saved: ThreadRecord = { ...thread, queueCopies: [...(thread.queueCopies ?? []), copy] };
    await state.saveThread(saved);
    log.info({ escalation, queue, channelId, activityId }, "posted a copy of the briefing in the queue's channel");
    return saved;
  }

  /** The copy cannot be posted in the queue's channel: said in the conversation's thread (and the log), once. */
  private async queueCopyNotPosted(conversation: Conversation, thread: ThreadRecord, escalation: number, queue: string, why: string, attempt: DeliveryAttempt): Promise<void> {
    conversationLogger(this.deps.logger, conversation).error(
      { escalation, queue, err: why },
      "could not post the briefing in the queue's channel in Teams (check TEAMS_QUEUE_CHANNELS and that the app is in that team)",
    );
    const key = `queue-copy-failed:${escalation}`;
    if (await this.deps.state.posted(conversation.id, key)) return;
    await this.post(conversation, thread, key, { type: 'message', ...formatBridgeLine(`The briefing for ${conversation.ticket} could not be posted in the ${queue} queue's channel (${why}).`) }, attempt);
  }

  /**
   * Earlier briefings lose their buttons so nobody acts on stale options: in the thread, all but the
   * latest; in queue channels, the copies of escalations before `escalation`. Each is marked once done.
   */
  private async supersedeOlder(conversation: Conversation, thread: ThreadRecord, escalation: number, attempt: DeliveryAttempt): Promise<void> {
    const older = thread.briefings.slice(0, -1).filter((b) => !b.superseded);
    const olderCopies = (thread.queueCopies ?? []).filter((c) => c.escalation < escalation && !c.superseded);
    if (older.length === 0 && olderCopies.length === 0) return;
    const superseded = cardActivity(buildSupersededBriefingCard(conversation), `${conversation.ticket}: superseded briefing`);
    const supersede = async (where: Pick<ThreadRecord, 'serviceUrl' | 'threadId'>, briefing: BriefingRecord, done: Set<string>): Promise<unknown> => {
      if (!briefing.fallback) {
        const failure = await this.update(conversation, where, briefing.activityId, superseded, attempt);
        if (failure) return failure;
      }
      done.add(briefing.activityId);
      return undefined;
    };
    const done = new Set<string>();
    const doneCopies = new Set<string>();
    let firstError: unknown;
    // (Awaited before `??=`, which would skip the call once an error is held.)
    for (const briefing of older) {
      const failure = await supersede(thread, briefing, done);
      firstError ??= failure;
    }
    for (const copy of olderCopies) {
      const failure = await supersede(copy, copy, doneCopies);
      firstError ??= failure;
    }
    if (done.size > 0 || doneCopies.size > 0) {
      const current = (await this.deps.state.thread(conversation.id)) ?? thread;
      await this.deps.state.saveThread({
        ...current,
        briefings: current.briefings.map((b) => (done.has(b.activityId) ? { ...b, superseded: true } : b)),
        ...(current.queueCopies ? { queueCopies: current.queueCopies.map((c) => (doneCopies.has(c.activityId) ? { ...c, superseded: true } : c)) } : {}),
      });
    }
    if (firstError) throw firstError;
  }

  /** Edits each activity; tries them all, then throws the first failure worth retrying. */
  private async updateAll(conversation: Conversation, updates: CardUpdate[], attempt: DeliveryAttempt): Promise<void> {
    let firstError: unknown;
    for (const { where, activityId, activity } of updates) {
      // Awaited first: `firstError ??= await ...` would skip the remaining edits after a failure.
      const failure = await this.update(conversation, where, activityId, activity, attempt);
      firstError ??= failure;
    }
    if (firstError) throw firstError;
  }

  /** Per connector call: the attempt's abort signal, and the conversation's logger for the connector's own lines (a 429). */
  private callOptions(attempt: DeliveryAttempt, conversation: Conversation): RequestOptions {
    return { ...(attempt.signal ? { signal: attempt.signal } : {}), log: conversationLogger(this.deps.logger, conversation) };
  }

  /**
   * One card edit (idempotent, so retried freely). Returns a failure to retry; a refusal (the
   * message was deleted, the card is refused) is logged and not retried, since no retry changes it.
   */
  private async update(conversation: Conversation, thread: Pick<ThreadRecord, 'serviceUrl' | 'threadId'>, activityId: string, activity: OutgoingActivity, attempt: DeliveryAttempt): Promise<unknown> {
    try {
      await this.deps.connector.updateActivity(thread.serviceUrl, thread.threadId, activityId, activity, this.callOptions(attempt, conversation));
      return undefined;
    } catch (err) {
      const log = conversationLogger(this.deps.logger, conversation);
      if (isRefusal(err)) {
        log.error({ err: err.message, activityId }, 'Teams refused a card edit; leaving that card as it is');
        return undefined;
      }
      log.warn({ err: String(err), activityId }, 'could not update a Teams card; retrying');
      return err;
    }
  }
}

/** One card edit: the activity, and the thread it lives in (the conversation's, or a copy's own). */
interface CardUpdate {
  where: Pick<ThreadRecord, 'serviceUrl' | 'threadId'>;
  activityId: string;
  activity: OutgoingActivity;
}

/** A transcript message as a thread reply; with masked values, a small card with the Reveal button under it. */
export function mirroredActivity(conversation: Conversation, message: Message): OutgoingActivity {
  const reveal = buildRevealCard(conversation.id, message);
  return { type: 'message', ...formatMirroredMessage(message), ...(reveal ? { attachments: [{ contentType: CARD_CONTENT_TYPE, content: reveal }] } : {}) };
}

/** A message activity carrying one Adaptive Card. */
export function cardActivity(card: AdaptiveCard, summary: string): OutgoingActivity {
  return { type: 'message', summary: oneLine(summary, 200), attachments: [{ contentType: CARD_CONTENT_TYPE, content: card }] };
}

