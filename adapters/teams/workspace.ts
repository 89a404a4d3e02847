/**
 * The Teams side of the Workspace port: each conversation gets a thread in the operators' channel
 * (opened proactively with a root card), every transcript message becomes a reply, briefings are
 * Adaptive Cards, and the root and latest briefing are edited in place on every ownership change.
 *
 * Outbound sends go through a ledger: a message is recorded as `sending` before the request and
 * `sent` (with Teams' activity id) after it, so a retried port call or a restart never posts it
 * twice; a send whose outcome is unknown (5xx, timeout) is recorded `uncertain` and not repeated.
 */
import type { Bridge } from '../../src/bridge.ts';
import { conversationLogger, type Logger } from '../../src/log.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import type { Workspace } from '../../src/ports.ts';
import { CARD_CONTENT_TYPE, type AdaptiveCard } from '../../cards/teams/adaptive.ts';
import { buildBriefingCard, buildSupersededBriefingCard, type CardView } from '../../cards/teams/briefing.ts';
import { formatBridgeLine, formatMirroredMessage } from '../../cards/teams/message.ts';
import { buildRootCard, rootSummary } from '../../cards/teams/root.ts';
import { escapeMessageText, oneLine } from '../../cards/teams/text.ts';
import { channelForQueue, type TeamsConfig } from './config.ts';
import { BotConnectorError, type BotConnector, type OutgoingActivity } from './connector.ts';
import { teamsUserId } from './inbound.ts';
import { threadIdFor, type TeamsState, type ThreadRecord } from './state.ts';

export interface TeamsOutboundDeps {
  bridge: Bridge;
  config: TeamsConfig;
  connector: BotConnector;
  state: TeamsState;
  logger: Logger;
}

/** Turns bridge events into Teams thread messages and card edits. */
export class TeamsOutbound implements Pick<Workspace, 'mirror' | 'postBriefing' | 'ownershipChanged' | 'notifyOperator'> {
  constructor(private readonly deps: TeamsOutboundDeps) {}

  async mirror(conversation: Conversation, message: Message): Promise<void> {
    if (message.source?.workspace === 'teams') return; // already in the thread: an operator typed it there
    const thread = await this.ensureThread(conversation);
    await this.postOnce(conversation, thread, `msg:${message.id}`, { type: 'message', ...formatMirroredMessage(message) });
  }

  async postBriefing(conversation: Conversation): Promise<void> {
    const thread = await this.ensureThread(conversation);
    // One briefing per escalation: the ledger key survives retries of the same escalation.
    const escalations = conversation.history.filter((h) => h.reason === 'escalate').length;
    const activityId = await this.postOnce(conversation, thread, `briefing:${escalations}`, this.briefingActivity(conversation));
    if (!activityId) return;
    const { older } = await this.deps.bridge.store.withLock(`teams:thread:${conversation.id}`, async () => {
      const current = (await this.deps.state.thread(conversation.id)) ?? thread;
      if (current.briefings.some((b) => b.activityId === activityId)) return { older: [] };
      const older = current.briefings.map((b) => b.activityId);
      await this.deps.state.saveThread({ ...current, briefings: [...current.briefings, { activityId, postedAt: new Date().toISOString() }] });
      return { older };
    });
    // Earlier briefings lose their buttons so nobody acts on stale options.
    await this.updateAll(
      conversation,
      older.map((id) => ({ activityId: id, activity: cardActivity(buildSupersededBriefingCard(conversation), `${conversation.ticket}: superseded briefing`) })),
      thread,
    );
  }

  async ownershipChanged(conversation: Conversation, change: HistoryEntry): Promise<void> {
    const thread = await this.ensureThread(conversation);
    const updates: Array<{ activityId: string; activity: OutgoingActivity }> = [
      { activityId: thread.rootActivityId, activity: this.rootActivity(conversation) },
    ];
    // An escalation brings a new briefing right after this; the old card is superseded then, not redrawn now.
    const latest = change.reason === 'escalate' ? undefined : thread.briefings.at(-1);
    if (latest) updates.push({ activityId: latest.activityId, activity: this.briefingActivity(conversation) });
    await this.updateAll(conversation, updates, thread);
  }

  /**
   * Tells one Teams operator something privately, in a 1:1 chat with the bot. If Teams refuses
   * (the app is not installed for that user), falls back to an @mention in the conversation's thread.
   */
  async notifyOperator(operator: Operator, text: string, conversation?: Conversation): Promise<void> {
    const userId = teamsUserId(operator);
    if (!userId) return;
    const { state, connector, config } = this.deps;
    const profile = await state.operator(userId);
    const serviceUrl = profile?.serviceUrl ?? config.serviceUrl;
    try {
      let chatId = await state.directChat(userId);
      if (!chatId) {
        const bot = (await state.bot()) ?? { id: `28:${config.appId}` };
        const tenantId = profile?.tenantId ?? config.tenantId;
        const created = await connector.createConversation(
          serviceUrl,
          {
            isGroup: false,
            bot,
            members: [{ id: userId }],
            ...(tenantId ? { tenantId, channelData: { tenant: { id: tenantId } } } : {}),
          },
          `dm:${userId}`,
        );
        chatId = created.id;
        await state.saveDirectChat(userId, chatId);
      }
      await connector.sendToConversation(serviceUrl, chatId, { type: 'message', ...formatBridgeLine(text) });
    } catch (err) {
      const thread = conversation ? await state.thread(conversation.id) : undefined;
      this.deps.logger.warn({ err, operator: operator.id }, 'could not message the operator privately; mentioning them in the thread instead');
      if (!thread) throw err;
      const mention = `<at>${escapeMessageText(oneLine(operator.name, 100))}</at>`;
      await connector.sendToConversation(thread.serviceUrl, thread.threadId, {
        type: 'message',
        textFormat: 'xml',
        text: `${mention} ${formatBridgeLine(text).text}`,
        entities: [{ type: 'mention', text: mention, mentioned: { id: userId, name: operator.name } }],
      });
    }
  }

  /** The briefing card as `view` sees it; the base card (no viewer) lists the owner for per-user refresh. */
  briefingCard(conversation: Conversation, view: Omit<CardView, 'refreshUserIds'> = {}): AdaptiveCard {
    const owner = conversation.state === 'human' && conversation.owner ? teamsUserId(conversation.owner) : undefined;
    return buildBriefingCard(conversation, { ...view, refreshUserIds: owner ? [owner] : [] });
  }

  /** The conversation's thread, opening it (root card in the queue's channel) on first use. */
  async ensureThread(conversation: Conversation): Promise<ThreadRecord> {
    const { state, connector, config, bridge } = this.deps;
    const existing = await state.thread(conversation.id);
    if (existing) return existing;
    return bridge.store.withLock(`teams:thread:${conversation.id}`, async () => {
      const again = await state.thread(conversation.id);
      if (again) return again;
      const log = conversationLogger(this.deps.logger, conversation);
      const previous = await state.sent(conversation.id, 'root');
      if (previous) {
        // Without the root's id an earlier, unconfirmed thread cannot be used; a new one is the only way on.
        log.warn({ previous }, 'an earlier attempt to open this thread got no clear answer from Teams; opening a new thread');
      }
      const channelId = channelForQueue(config, conversation.queue);
      await state.markSent(conversation.id, 'root', { state: 'sending', at: new Date().toISOString() });
      let created: { id: string; activityId?: string };
      try {
        created = await connector.createConversation(
          config.serviceUrl,
          {
            isGroup: true,
            channelData: { channel: { id: channelId }, ...(config.tenantId ? { tenant: { id: config.tenantId } } : {}) },
            activity: this.rootActivity(conversation),
            ...(config.tenantId ? { tenantId: config.tenantId } : {}),
          },
          channelId,
        );
      } catch (err) {
        await this.recordFailure(conversation.id, 'root', err);
        throw err;
      }
      const rootActivityId = created.activityId ?? /;messageid=(\d+)/.exec(created.id)?.[1];
      if (!rootActivityId) {
        await state.markSent(conversation.id, 'root', { state: 'uncertain', at: new Date().toISOString(), error: `no root activity id in ${created.id}` });
        throw new BotConnectorError(`Teams opened conversation ${created.id} without a root message id`, 'unknown');
      }
      const record: ThreadRecord = {
        conversationId: conversation.id,
        channelId,
        serviceUrl: config.serviceUrl,
        threadId: threadIdFor(created.id, rootActivityId),
        rootActivityId,
        briefings: [],
      };
      await state.saveThread(record);
      await state.markSent(conversation.id, 'root', { state: 'sent', activityId: rootActivityId, at: new Date().toISOString() });
      log.info({ threadId: record.threadId, channelId }, 'opened the Teams thread');
      return record;
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

  /** Posts into the thread unless the ledger says this key was already sent (or may have been). */
  private async postOnce(conversation: Conversation, thread: ThreadRecord, key: string, activity: OutgoingActivity): Promise<string | undefined> {
    const { state, connector } = this.deps;
    const previous = await state.sent(conversation.id, key);
    if (previous) {
      if (previous.state !== 'sent') {
        conversationLogger(this.deps.logger, conversation).warn({ key, previous }, 'not re-posting: an earlier attempt may have reached Teams');
      }
      return previous.activityId;
    }
    await state.markSent(conversation.id, key, { state: 'sending', at: new Date().toISOString() });
    try {
      const { id } = await connector.sendToConversation(thread.serviceUrl, thread.threadId, activity);
      await state.markSent(conversation.id, key, { state: 'sent', activityId: id, at: new Date().toISOString() });
      return id;
    } catch (err) {
      await this.recordFailure(conversation.id, key, err);
      throw err;
    }
  }

  /** A refused send may be tried again later; one whose outcome is unknown is marked and left alone. */
  private async recordFailure(conversationId: string, key: string, err: unknown): Promise<void> {
    if (err instanceof BotConnectorError && err.delivery === 'not_sent') {
      await this.deps.state.forgetSent(conversationId, key);
      return;
    }
    await this.deps.state.markSent(conversationId, key, { state: 'uncertain', at: new Date().toISOString(), error: (err as Error).message });
  }

  /** Edits each activity; tries them all, then reports the first failure. */
  private async updateAll(conversation: Conversation, updates: Array<{ activityId: string; activity: OutgoingActivity }>, thread: ThreadRecord): Promise<void> {
    let firstError: unknown;
    for (const { activityId, activity } of updates) {
      try {
        await this.deps.connector.updateActivity(thread.serviceUrl, thread.threadId, activityId, activity);
      } catch (err) {
        conversationLogger(this.deps.logger, conversation).error({ err, activityId }, 'could not update a Teams card');
        firstError ??= err;
      }
    }
    if (firstError) throw firstError;
  }
}

/** A message activity carrying one Adaptive Card. */
export function cardActivity(card: AdaptiveCard, summary: string): OutgoingActivity {
  return { type: 'message', summary: oneLine(summary, 200), attachments: [{ contentType: CARD_CONTENT_TYPE, content: card }] };
}
