/**
 * Inbound Teams turns: thread messages (relay, notes, typed commands) and card actions
 * (`adaptiveCard/action` invokes, plus `Action.Submit` messages: older clients' fallbacks and the
 * Reveal button), turned into bridge commands. Each runs before Teams gets its answer, so a
 * failure makes Teams retry.
 *
 * Teams retries a slow bot with the same activity id. Every message and command carries it as its
 * idempotency key (`teams:<conversation id>:<activity id>`), recorded by the bridge in the same
 * commit as the change: a retry after the commit changes nothing, one after a crash before it goes
 * through. A retry arriving while the first is still being handled here shares the first's outcome.
 *
 * Buttons on a managers' alert (its own thread in the managers' channel) can only claim. A briefing
 * copy in a queue's channel (its own thread there, after a transfer) is the conversation's like the
 * thread: its buttons act as the thread briefing's do, and replies under it are relayed as if typed
 * in the thread (and mirrored into it).
 *
 * Nothing is remembered from an activity outside the bridge's threads and alerts, and an activity's
 * `serviceUrl` only when it came with a valid token and points at Teams (`serviceUrlOf`).
 */
import { ActivityTypes, type TurnContext } from 'botbuilder';
import type { RevealResult } from '../../src/engine/redact.ts';
import { BridgeError, StaleBriefingError } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation, Operator } from '../../src/model.ts';
import type { BridgePort } from '../../src/ports.ts';
import { CARD_CONTENT_TYPE, parseCardAction, type ParsedCardAction } from '../../cards/teams/adaptive.ts';
import { buildSupersededBriefingCard } from '../../cards/teams/briefing.ts';
import { escalationNumber } from '../../cards/teams/status.ts';
import { formatRevealedMessage } from '../../cards/teams/message.ts';
import {
  attachmentsFromActivity,
  HELP_TEXT,
  isFromBot,
  messageText,
  operatorFromActivity,
  parseThreadCommand,
  type TeamsActivity,
} from './inbound.ts';
import { BotConnectorError } from './connector.ts';
import type { TeamsState } from './state.ts';
import type { TeamsOutbound } from './workspace.ts';

/** A Microsoft Entra id (tenant, group): only such values go into links. */
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The `adaptiveCard/action` invoke response body Teams expects. */
export type CardActionResponse =
  | { statusCode: 200; type: typeof CARD_CONTENT_TYPE; value: unknown }
  | { statusCode: 200; type: 'application/vnd.microsoft.activity.message'; value: string }
  | { statusCode: number; type: 'application/vnd.microsoft.error'; value: { code: string; message: string } };

export interface TeamsTurnsDeps {
  bridge: BridgePort;
  state: TeamsState;
  outbound: TeamsOutbound;
  logger: Logger;
  /** The configured service URL. */
  serviceUrl: string;
  /** The activity's service URL if it may be kept and called later; undefined when unauthenticated or not Teams'. */
  serviceUrlOf: (activity: TeamsActivity) => string | undefined;
}

export class TeamsTurns {
  private warnedServiceUrl = false;
  /** Activities being handled in this process: a retry arriving meanwhile shares the first's outcome. */
  private readonly running = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: TeamsTurnsDeps) {}

  /** The bot's logic for one inbound activity (runs inside botbuilder's turn). */
  async onTurn(context: TurnContext): Promise<void> {
    const activity = context.activity as unknown as TeamsActivity;
    // Other Bot Framework channels the Azure Bot may have enabled have no business in our threads.
    if (activity.channelId !== 'msteams') return;
    if (activity.type === ActivityTypes.Message) return this.onMessage(activity);
    if (activity.type === ActivityTypes.Invoke && activity.name === 'adaptiveCard/action') {
      const body = await this.onCardInvoke(activity);
      await context.sendActivity({ type: ActivityTypes.InvokeResponse, value: { status: 200, body } });
    }
    // conversationUpdate (installs, renames), reactions and other invokes need nothing from us.
  }

  private async onMessage(activity: TeamsActivity): Promise<void> {
    if (isFromBot(activity)) return;
    const place = await this.place(activity);
    if (!place) return this.onManagersSubmit(activity); // outside our threads: only a managers' alert's button is ours
    const { conversationId } = place;
    const action = parseCardAction(activity.value);
    if (action && action.conversationId !== conversationId) return; // a card from another thread: not this one's to act on
    const { text, mentionedBot } = messageText(activity);
    const attachments = attachmentsFromActivity(activity);
    if (!action && !text && attachments.length === 0) return;
    const operator = await this.operator(activity);
    if (!operator) return;
    const key = idempotencyKey(activity);
    if (action?.action === 'reveal') {
      await this.shared(activity, async () => {
        const { notice } = await this.reveal(action, operator, key);
        if (notice) await this.tellPrivately(operator, notice, conversationId);
      });
      return;
    }
    if (action) {
      // Action.Submit fallback from an older client: same effect as the invoke, answers go privately.
      await this.shared(activity, async () => {
        const { notice } = await this.perform(action, operator, key);
        if (notice) await this.tellPrivately(operator, notice, action.conversationId);
      });
      return;
    }
    const command = parseThreadCommand(text, mentionedBot);
    if (command.kind === 'message') {
      const { duplicate } = await this.deps.bridge.operatorMessage({
        conversationId,
        operator,
        text,
        ...(attachments.length ? { attachments } : {}),
        ...key,
        // Typed under a briefing copy: not in the conversation's thread, which still needs it.
        source: { workspace: 'teams', ...(activity.id ? { externalId: activity.id } : {}), ...(place.copy ? { inThread: false } : {}) },
      });
      if (duplicate) this.deps.logger.info({ activityId: activity.id }, 'duplicate Teams activity ignored (Teams retried a slow answer)');
      return;
    }
    if (command.kind === 'help') return this.tellPrivately(operator, HELP_TEXT, conversationId);
    await this.shared(activity, async () => {
      try {
        switch (command.kind) {
          case 'return':
            await this.deps.bridge.returnToAgent({ conversationId, operator, ...(command.note ? { note: command.note } : {}), ...key });
            return;
          case 'close':
            await this.deps.bridge.close({ conversationId, operator, ...(command.note ? { note: command.note } : {}), ...key });
            return;
          case 'claim':
            await this.deps.bridge.claim({ conversationId, operator, ...key });
            return;
          case 'takeover':
            await this.deps.bridge.takeOver({ conversationId, operator, ...key });
            return;
          case 'route': {
            // Any operator may pick the agent; the activity line in the thread says who did.
            const names = this.deps.bridge.agentNames();
            if (!command.agent && names.length > 0) {
              await this.tellPrivately(operator, `Name the agent: 'route <agent> [--pin] [note]' (agents: ${names.join(', ')}).`, conversationId);
              return;
            }
            const agent = names.find((n) => n.toLowerCase() === command.agent?.toLowerCase()) ?? command.agent ?? '';
            await this.deps.bridge.route({ conversationId, operator, agent, ...(command.pin ? { pin: true } : {}), ...(command.note ? { note: command.note } : {}), ...key });
            return;
          }
          case 'transfer':
            if (!command.queue) {
              await this.tellPrivately(operator, "Name the queue: 'transfer billing why it moves'.", conversationId);
              return;
            }
            await this.deps.bridge.transferQueue({ conversationId, operator, queue: command.queue, ...(command.note ? { note: command.note } : {}), ...key });
            return;
        }
      } catch (err) {
        if (!(err instanceof BridgeError)) throw err;
        // The operator's mistake (not the owner, already claimed...): tell them, not the channel.
        await this.tellPrivately(operator, err.message, conversationId);
      }
    });
  }

  private async onCardInvoke(activity: TeamsActivity): Promise<CardActionResponse> {
    const action = parseCardAction(activity.value);
    if (!action) return errorResponse(400, 'bad_action', 'This card action is not one the bridge knows.');
    if (!activity.from?.id) return errorResponse(400, 'no_user', 'Teams did not say who clicked.');
    // A card acts only on the conversation whose thread (or briefing copy) it sits in, or whose managers' alert it is.
    const place = await this.place(activity);
    if (!place) {
      const alert = activity.conversation?.id ? await this.deps.state.managersAlertFor(activity.conversation.id) : undefined;
      if (alert) return this.onManagersInvoke(activity, action, alert);
    }
    if (place?.conversationId !== action.conversationId) return errorResponse(403, 'wrong_thread', 'This card does not belong to this thread.');
    const conversation = await this.deps.bridge.getConversation(action.conversationId);
    if (!conversation) return errorResponse(404, 'not_found', `No conversation ${action.conversationId}; it may have been deleted.`);
    const operator = await this.operator(activity);
    if (!operator) return errorResponse(400, 'no_user', 'Teams did not say who clicked.');

    if (place.copy) {
      // A copy from an earlier escalation (its queue's channel may not even be the current one).
      if (place.copy.escalation !== escalationNumber(conversation)) return cardResponse(buildSupersededBriefingCard(conversation));
    } else {
      const thread = await this.deps.state.thread(conversation.id);
      const latest = thread?.briefings.at(-1)?.activityId;
      if (activity.replyToId && latest && thread?.briefings.some((b) => b.activityId === activity.replyToId) && activity.replyToId !== latest) {
        return cardResponse(buildSupersededBriefingCard(conversation));
      }
    }
    if (action.action === 'refresh') return cardResponse(this.deps.outbound.briefingCard(conversation, { viewerId: operator.id }));
    if (action.action === 'reveal') {
      // Our Reveal buttons are Action.Submit; an invoke is answered the same way, the card left as it is.
      const { notice } = await this.shared(activity, () => this.reveal(action, operator, idempotencyKey(activity)));
      return messageResponse(notice ?? 'Sent to you in your private chat with the bot.');
    }

    // Teams retries a slow invoke with the same id: the bridge acts once (idempotency key), and
    // the retry is answered with the card as it is now.
    const outcome = await this.shared(activity, () => this.perform(action, operator, idempotencyKey(activity), conversation));
    // A button from an older briefing: that card is out of date, so show it as such, with why.
    if (outcome.stale) return cardResponse(buildSupersededBriefingCard(outcome.conversation, outcome.notice));
    return cardResponse(this.deps.outbound.briefingCard(outcome.conversation, { viewerId: operator.id, ...(outcome.notice ? { notice: outcome.notice } : {}) }));
  }

  /**
   * A click on a managers' alert: Claim (the same claim as the briefing's) or the per-viewer
   * refresh. The answer is the alert as the clicker sees it now; everyone's copy is redrawn by the
   * ownership change the claim commits.
   */
  private async onManagersInvoke(activity: TeamsActivity, action: ParsedCardAction, alert: { conversationId: string; escalation: number }): Promise<CardActionResponse> {
    if (action.conversationId !== alert.conversationId) return errorResponse(403, 'wrong_thread', 'This card does not belong to this thread.');
    if (action.action !== 'claim' && action.action !== 'refresh') return errorResponse(403, 'not_here', 'Open the thread to do that.');
    const conversation = await this.deps.bridge.getConversation(action.conversationId);
    if (!conversation) return errorResponse(404, 'not_found', `No conversation ${action.conversationId}; it may have been deleted.`);
    const operator = await this.operator(activity);
    if (!operator) return errorResponse(400, 'no_user', 'Teams did not say who clicked.');
    const outcome = action.action === 'claim' ? await this.shared(activity, () => this.perform(action, operator, idempotencyKey(activity), conversation)) : { conversation };
    const card = await this.deps.outbound.managersCard(outcome.conversation, alert.escalation, { viewerId: operator.id, ...('notice' in outcome && outcome.notice ? { notice: outcome.notice } : {}) });
    return cardResponse(card);
  }

  /** An older client's `Action.Submit` on a managers' alert: the claim, with any refusal told privately. */
  private async onManagersSubmit(activity: TeamsActivity): Promise<void> {
    const action = parseCardAction(activity.value);
    if (!action || action.action !== 'claim' || !activity.conversation?.id) return;
    const alert = await this.deps.state.managersAlertFor(activity.conversation.id);
    if (!alert || alert.conversationId !== action.conversationId) return;
    const operator = await this.operator(activity);
    if (!operator) return;
    await this.shared(activity, async () => {
      const { notice } = await this.perform(action, operator, idempotencyKey(activity));
      if (notice) await this.tellPrivately(operator, notice, action.conversationId);
    });
  }

  /**
   * The conversation an activity's Teams conversation belongs to: the conversation's thread, or a
   * briefing copy's own thread in a queue's channel (`copy`, with the escalation it briefs).
   */
  private async place(activity: TeamsActivity): Promise<{ conversationId: string; copy?: { escalation: number } } | undefined> {
    const teamsConversationId = activity.conversation?.id;
    if (!teamsConversationId) return undefined;
    const conversationId = await this.deps.state.conversationForThread(teamsConversationId);
    if (conversationId) return { conversationId };
    const copy = await this.deps.state.queueCopyFor(teamsConversationId);
    return copy ? { conversationId: copy.conversationId, copy: { escalation: copy.escalation } } : undefined;
  }

  /** Runs one card action; a refused action (already claimed, not the owner) comes back as a notice. */
  private async perform(
    action: ParsedCardAction,
    operator: Operator,
    key: { idempotencyKey?: string },
    known?: Conversation,
  ): Promise<{ conversation: Conversation; notice?: string; stale?: boolean }> {
    const { bridge } = this.deps;
    const conversationId = action.conversationId;
    const note = action.note ? { note: action.note } : {};
    try {
      switch (action.action) {
        case 'claim':
          return { conversation: await bridge.claim({ conversationId, operator, ...key }) };
        case 'takeover':
          return { conversation: await bridge.takeOver({ conversationId, operator, ...key }) };
        case 'option':
          return {
            conversation: await bridge.decide({ conversationId, operator, optionId: action.optionId!, ...note, ...(action.escalation ? { escalation: action.escalation } : {}), ...key }),
          };
        case 'return':
          return { conversation: await bridge.returnToAgent({ conversationId, operator, ...note, ...key }) };
        case 'close':
          return { conversation: await bridge.close({ conversationId, operator, ...note, ...key }) };
        case 'refresh':
        case 'reveal': // handled by reveal(), never performed here
          return { conversation: known ?? (await this.require(conversationId)) };
      }
    } catch (err) {
      if (!(err instanceof BridgeError)) throw err;
      return { conversation: await this.require(conversationId), notice: err.message, ...(err instanceof StaleBriefingError ? { stale: true } : {}) };
    }
  }

  /**
   * The Reveal button: the bridge checks that `operator` holds the conversation and logs the reveal;
   * the original goes only to the operator's 1:1 chat with the bot, never to the thread. A refusal
   * (not the owner, no such message) comes back as a notice for the caller to tell privately.
   */
  private async reveal(action: ParsedCardAction, operator: Operator, key: { idempotencyKey?: string }): Promise<{ notice?: string }> {
    const { conversationId, messageId } = action;
    if (!messageId) return { notice: 'This Reveal button names no message.' };
    let revealed: RevealResult;
    try {
      revealed = await this.deps.bridge.reveal({ conversationId, operator, messageId, ...key });
    } catch (err) {
      if (!(err instanceof BridgeError)) throw err;
      return { notice: err.message };
    }
    if (revealed.spans.length === 0) return { notice: 'Nothing is masked in that message.' };
    const conversation = await this.deps.bridge.getConversation(conversationId);
    const message = conversation?.messages.find((m) => m.id === messageId);
    try {
      await this.deps.outbound.sendPrivately(operator, formatRevealedMessage(conversation?.ticket ?? conversationId, message, revealed.text));
      return {};
    } catch (err) {
      // A 4xx: no 1:1 chat with this user. Never a fallback into the thread: the original stays out of it.
      // Anything else fails the turn, so Teams sends the click again (the reveal is logged once).
      if (!(err instanceof BotConnectorError && err.status !== undefined && err.status < 500)) throw err;
      this.deps.logger.warn({ err: err.message, operator: operator.id }, 'could not send a revealed message privately');
      return { notice: 'I could not message you privately, so the original was not sent. Add the Handoff Bridge app for yourself (personal scope), then click Reveal again.' };
    }
  }

  /** A private answer to an operator; failing to deliver it must not fail (and so replay) the turn. */
  private async tellPrivately(operator: Operator, text: string, conversationId: string): Promise<void> {
    try {
      const conversation = await this.deps.bridge.getConversation(conversationId);
      await this.deps.outbound.notifyOperator(operator, text, conversation);
    } catch (err) {
      this.deps.logger.error({ err, operator: operator.id, text }, 'could not tell the operator privately');
    }
  }

  /**
   * The acting operator, for an activity in one of the bridge's threads. Their profile (and the
   * bot's own account) is kept so the bridge can message them privately later; the activity's
   * service URL only when `serviceUrlOf` vouches for it.
   */
  private async operator(activity: TeamsActivity): Promise<Operator | undefined> {
    const operator = operatorFromActivity(activity);
    const userId = activity.from?.id;
    if (!operator || !userId) return undefined;
    const tenantId = activity.channelData?.tenant?.id ?? activity.conversation?.tenantId;
    const serviceUrl = this.deps.serviceUrlOf(activity);
    if (serviceUrl && !sameUrl(serviceUrl, this.deps.serviceUrl) && !this.warnedServiceUrl) {
      this.warnedServiceUrl = true;
      this.deps.logger.warn({ seen: serviceUrl, configured: this.deps.serviceUrl }, `Teams serves this tenant from ${serviceUrl}; set TEAMS_SERVICE_URL to it`);
    }
    if (activity.recipient?.id) await this.deps.state.rememberBot({ id: activity.recipient.id, ...(activity.recipient.name ? { name: activity.recipient.name } : {}) });
    // For deep links to threads (managers' alerts): the tenant, and the channel's team group id when Teams says.
    const groupId = activity.channelData?.team?.aadGroupId;
    const channelId = activity.conversation?.id?.split(';')[0];
    const tenant = typeof tenantId === 'string' && GUID.test(tenantId) ? tenantId : undefined;
    const group = typeof groupId === 'string' && GUID.test(groupId) && channelId?.startsWith('19:') ? groupId : undefined;
    if (tenant || group) await this.deps.state.rememberTeam({ ...(tenant ? { tenantId: tenant } : {}), ...(group ? { channelId, groupId: group } : {}) });
    await this.deps.state.rememberOperator({
      userId,
      name: operator.name,
      ...(activity.from?.aadObjectId ? { aadObjectId: activity.from.aadObjectId } : {}),
      ...(typeof tenantId === 'string' && tenantId ? { tenantId } : {}),
      ...(serviceUrl ? { serviceUrl } : {}),
    });
    return operator;
  }

  /** Runs `fn` for an activity; the same activity arriving again while it runs gets the same outcome. */
  private async shared<T>(activity: TeamsActivity, fn: () => Promise<T>): Promise<T> {
    if (!activity.id) return fn();
    const key = `${activity.conversation?.id ?? ''}:${activity.id}`;
    const earlier = this.running.get(key);
    if (earlier) {
      this.deps.logger.info({ activityId: activity.id }, 'Teams sent an activity again while it was being handled; answering both with one outcome');
      return earlier as Promise<T>;
    }
    const run = fn();
    this.running.set(key, run);
    try {
      return await run;
    } finally {
      this.running.delete(key);
    }
  }

  private async require(conversationId: string): Promise<Conversation> {
    const conversation = await this.deps.bridge.getConversation(conversationId);
    if (!conversation) throw new BridgeError('not_found', `No conversation ${conversationId}.`);
    return conversation;
  }
}

/**
 * The bridge's idempotency key for an activity's message or command: Teams resends with the same
 * ids. A message id is unique only within its conversation (like a Slack ts in its channel).
 */
function idempotencyKey(activity: TeamsActivity): { idempotencyKey?: string } {
  return activity.id ? { idempotencyKey: `teams:${activity.conversation?.id ?? ''}:${activity.id}` } : {};
}

function sameUrl(a: string, b: string): boolean {
  return a.replace(/\/+$/, '').toLowerCase() === b.replace(/\/+$/, '').toLowerCase();
}

function messageResponse(text: string): CardActionResponse {
  return { statusCode: 200, type: 'application/vnd.microsoft.activity.message', value: text };
}

function cardResponse(card: unknown): CardActionResponse {
  return { statusCode: 200, type: CARD_CONTENT_TYPE, value: card };
}

function errorResponse(statusCode: number, code: string, message: string): CardActionResponse {
  return { statusCode, type: 'application/vnd.microsoft.error', value: { code, message } };
}
