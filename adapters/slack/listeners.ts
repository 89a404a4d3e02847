/**
 * Operator actions from Slack, turned into bridge commands: thread replies (relay or internal
 * note), Claim (on a briefing or a managers' card), option buttons, Return / Close (button + modal,
 * `/return` and `/close-ticket`, message shortcuts), Take over, Reveal (the owner sees a masked
 * message privately), `/transfer` and `/route`; and the Home tab, published when opened. Payload
 * fields are read by type: a field of the wrong type counts as absent, and a click on a
 * conversation that does not exist stores nothing. Clicks and commands ack first and do
 * the work afterwards, carrying the platform's id for the request (click, modal, command) into the
 * commit. A thread reply is committed with the Slack message as its idempotency key before Slack
 * gets its answer (see `receiver.ts`): a redelivery is recognised, and a reply that could not be
 * recorded fails the request so Slack delivers it again. Anything the bridge refuses is told to the
 * operator privately.
 */
import { randomUUID } from 'node:crypto';
import type { App, types } from '@slack/bolt';
import { AlreadyClaimedError, BridgeError, LockTimeoutError, StoreUnavailableError, VersionConflictError } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation, Operator } from '../../src/model.ts';
import { transition } from '../../src/ownership.ts';
import type { BridgePort } from '../../src/ports.ts';
import type { KeyValue } from '../../src/store/store.ts';
import { BRIEFING_ACTIONS, parseBriefingButtonValue } from '../../cards/slack/briefing.ts';
import { HOME_ACTIONS } from '../../cards/slack/home.ts';
import { NOTE_MODAL, noteModal, notices, parseNoteModalMetadata, parsePickerValue, PICKER_ACTIONS, pickerMessage, type HandBack } from '../../cards/slack/operator.ts';
import { slackToPlain } from '../../cards/slack/text.ts';
import { parseRevealButtonValue, THREAD_ACTIONS } from '../../cards/slack/thread.ts';
import type { SlackDirectory } from './directory.ts';
import { SLACK_OPERATOR_PREFIX, type SlackOperators } from './operators.ts';
import { filesToAttachments, mentionedUsers, parseHandBackText, parseRouteText, threadReplyOf, type SlackFile } from './parse.ts';
import { RETRY_REQUEST_CODE } from './receiver.ts';

/** Slash commands the app registers (see manifest/slack.yaml). `/close` is Slack's own, hence `/close-ticket`. */
export const COMMANDS = { return: '/return', close: '/close-ticket', transfer: '/transfer', route: '/route' } as const;

/** Message shortcut callback ids (see manifest/slack.yaml). */
export const SHORTCUTS = { return: 'handoff_return', close: 'handoff_close' } as const;

/** Slack's last redelivery of an event is its third retry (about 5 minutes after the first try). */
const LAST_SLACK_RETRY = 3;

/**
 * An operator's thread reply could not be recorded (the store is unavailable): the request fails
 * so that Slack delivers the event again.
 */
export class ReplyNotRecordedError extends Error {
  /** Bolt passes errors with a `code` to the app's error handler as they are; the receivers answer it with a retry. */
  readonly code = RETRY_REQUEST_CODE;
  constructor(override readonly cause: unknown) {
    super(`The Slack reply could not be recorded yet: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'ReplyNotRecordedError';
  }
}

export interface ListenerDeps {
  bridge: BridgePort;
  logger: Logger;
  directory: SlackDirectory;
  operators: SlackOperators;
  kv: KeyValue;
  /** Default channel for private notices that have no better place. */
  channelId: string;
  tell(target: { channel: string; user: string; threadTs?: string }, text: string): Promise<unknown>;
  openModal(triggerId: string, view: types.ModalView): Promise<void>;
  /** A customer-openable link for a Slack file. */
  fileLink?(file: SlackFile): string | undefined;
  /** Publishes the Home tab (the live queue and today's figures) for one user. */
  publishHome(user: string): Promise<void>;
}

/** Where a click or command came from, in the shape every handler needs. */
interface Origin {
  user: string;
  userName?: string;
  channel: string;
  threadTs?: string;
}

type Loose = Record<string, any>; // Slack payloads are validated field by field below.

export function registerListeners(app: App, deps: ListenerDeps): void {
  const { bridge, logger } = deps;

  // Slack delivers events at least once. A thread reply is recognised by its message (the commit's
  // idempotency key), which a redelivery keeps whatever its event_id.
  app.event('message', async ({ event, context }) => {
    await onThreadReply(deps, event as unknown as Loose, context.retryNum);
  });

  // The briefing's Claim, and the managers' card's (same action, same value).
  app.action(BRIEFING_ACTIONS.claim, async ({ ack, body, action }) => {
    await ack();
    const origin = clickOrigin(body as Loose);
    const button = parseBriefingButtonValue((action as Loose).value);
    if (!button || !origin) return;
    await guarded(deps, origin, async () => {
      if (!(await exists(deps, origin, button.conversationId))) return;
      await bridge.claim({ conversationId: button.conversationId, operator: await deps.operators.operator(origin.user, origin.userName), idempotencyKey: clickKey(body as Loose, action as Loose) });
    });
  });

  app.action(BRIEFING_ACTIONS.takeOver, async ({ ack, body, action }) => {
    await ack();
    const origin = clickOrigin(body as Loose);
    const button = parseBriefingButtonValue((action as Loose).value);
    if (!button || !origin) return;
    await guarded(deps, origin, async () => {
      if (!(await exists(deps, origin, button.conversationId))) return;
      await bridge.takeOver({ conversationId: button.conversationId, operator: await deps.operators.operator(origin.user, origin.userName), idempotencyKey: clickKey(body as Loose, action as Loose) });
    });
  });

  app.action(new RegExp(`^${escapeRegExp(BRIEFING_ACTIONS.optionPrefix)}`), async ({ ack, body, action }) => {
    await ack();
    const origin = clickOrigin(body as Loose);
    const a = action as Loose;
    const optionId = String(a.action_id).slice(BRIEFING_ACTIONS.optionPrefix.length);
    const button = parseBriefingButtonValue(a.value);
    if (!button || !origin) return;
    // The card's escalation: a click on an older briefing decides nothing (StaleBriefingError, told privately).
    await guarded(deps, origin, async () => {
      if (!(await exists(deps, origin, button.conversationId))) return;
      await bridge.decide({
        conversationId: button.conversationId,
        operator: await deps.operators.operator(origin.user, origin.userName),
        optionId,
        ...(button.escalation !== undefined ? { escalation: button.escalation } : {}),
        idempotencyKey: clickKey(body as Loose, a),
      });
    });
  });

  // Reveal on a mirrored message with masked values: the original goes to the clicker alone, as an
  // ephemeral in the thread; the bridge refuses anyone but the owner (told privately too).
  app.action(THREAD_ACTIONS.reveal, async ({ ack, body, action }) => {
    await ack();
    const origin = clickOrigin(body as Loose);
    const target = parseRevealButtonValue((action as Loose).value);
    if (!target || !origin) return;
    await guarded(deps, origin, async () => {
      const conversation = await bridge.getConversation(target.conversationId);
      if (!conversation) return void (await deps.tell(origin, notices.failed('That conversation no longer exists.')));
      // Only the owner can reveal: nobody else is looked up or stored (the bridge refuses them and says why).
      const id = SLACK_OPERATOR_PREFIX + origin.user;
      const isOwner = conversation.state === 'human' && conversation.owner?.id === id;
      const operator: Operator = isOwner ? await deps.operators.operator(origin.user, origin.userName) : { id, name: origin.userName ?? origin.user, workspace: 'slack' };
      const revealed = await bridge.reveal({ conversationId: target.conversationId, operator, messageId: target.messageId, idempotencyKey: clickKey(body as Loose, action as Loose) });
      await deps.tell(origin, notices.revealed(conversation.ticket, revealed.text));
    });
  });

  for (const [actionId, kind] of [
    [BRIEFING_ACTIONS.returnToAgent, 'return'],
    [BRIEFING_ACTIONS.close, 'close'],
  ] as const) {
    app.action(actionId, async ({ ack, body, action }) => {
      await ack();
      const b = body as Loose;
      const button = parseBriefingButtonValue((action as Loose).value);
      const origin = clickOrigin(b);
      if (!button || !origin) return;
      const triggerId = textOf(b.trigger_id);
      if (!triggerId) return;
      await guarded(deps, origin, () => openNoteModal(deps, kind, button.conversationId, triggerId, origin));
    });
  }

  for (const [actionId, kind] of [
    [PICKER_ACTIONS.return, 'return'],
    [PICKER_ACTIONS.close, 'close'],
  ] as const) {
    app.action(actionId, async ({ ack, body, action, respond }) => {
      await ack();
      const origin = clickOrigin(body as Loose);
      const picked = parsePickerValue((action as Loose).value);
      if (!picked || !origin) return;
      const outcome = await unlessUnavailable(deps, async () => {
        if (!(await deps.bridge.getConversation(picked.conversationId))) return notices.failed('That conversation no longer exists.');
        const pick = await deps.kv.get<{ note?: string }>(`pick:${picked.pickId}`);
        const operator = await deps.operators.operator(origin.user, origin.userName);
        return handBack(deps, kind, picked.conversationId, operator, pick?.note, clickKey(body as Loose, action as Loose));
      });
      await respond({ replace_original: true, text: outcome }).catch((err: unknown) => logger.warn({ err }, 'could not answer the picker'));
    });
  }

  for (const [callbackId, kind] of [
    [NOTE_MODAL.return, 'return'],
    [NOTE_MODAL.close, 'close'],
  ] as const) {
    app.view(callbackId, async ({ ack, body, view }) => {
      const meta = parseNoteModalMetadata(view.private_metadata);
      const user = (body as Loose).user?.id;
      if (!meta || typeof user !== 'string' || !user) {
        await ack();
        return;
      }
      const typed = (view as Loose).state?.values?.[NOTE_MODAL.blockId]?.[NOTE_MODAL.actionId]?.value;
      const note = (typeof typed === 'string' ? typed : '').trim();
      // Refuse inside the modal when we can already tell, so the operator sees why right there.
      const blocked = await precheck(deps, kind, meta.conversationId, user).catch((err: unknown) => {
        deps.logger.warn({ err: (err as Error)?.message }, 'could not check a hand-back');
        return 'The bridge cannot record this right now. Try again in a moment.';
      });
      if (blocked) {
        await ack({ response_action: 'errors', errors: { [NOTE_MODAL.blockId]: blocked } });
        return;
      }
      await ack();
      const operator = await deps.operators.operator(user, textOf((body as Loose).user?.name));
      const outcome = await handBack(deps, kind, meta.conversationId, operator, note || undefined, `slack:view:${(view as Loose).id ?? ''}:${(view as Loose).hash ?? ''}`);
      if (outcome.startsWith(':warning:')) await deps.tell({ channel: meta.channel ?? deps.channelId, user, ...(meta.threadTs ? { threadTs: meta.threadTs } : {}) }, outcome);
    });
  }

  for (const [command, kind] of [
    [COMMANDS.return, 'return'],
    [COMMANDS.close, 'close'],
  ] as const) {
    app.command(command, async ({ ack, command: cmd, respond }) => {
      await ack();
      if (!textOf(cmd.user_id)) return;
      const reply = (message: string | { text: string; blocks?: unknown[] }) =>
        respond(typeof message === 'string' ? { response_type: 'ephemeral', text: message } : { response_type: 'ephemeral', ...message } as never).catch((err: unknown) =>
          logger.warn({ err }, 'could not answer the slash command'),
        );
      const { ticket, note } = parseHandBackText(cmd.text);
      const answer = await unlessUnavailable(deps, async (): Promise<string | { text: string; blocks?: unknown[] }> => {
        // Nothing is resolved or stored for a command that names nothing: the operator comes last.
        let target: Conversation | undefined;
        if (ticket) {
          target = await bridge.findByTicket(ticket);
          if (!target) return notices.unknownTicket(ticket);
        } else {
          const held = await bridge.conversationsHeldBy(SLACK_OPERATOR_PREFIX + cmd.user_id);
          if (held.length === 0) return notices.holdsNothing(kind);
          if (held.length > 1) {
            const pickId = randomUUID();
            await deps.kv.set(`pick:${pickId}`, { ...(note ? { note } : {}) }, 3600 * 1000);
            return pickerMessage(kind, held, pickId) as { text: string; blocks?: unknown[] };
          }
          target = held[0]!;
        }
        const operator = await deps.operators.operator(cmd.user_id, textOf(cmd.user_name));
        return handBack(deps, kind, target.id, operator, note, `slack:command:${textOf(cmd.trigger_id) ?? randomUUID()}`);
      });
      await reply(answer);
    });
  }

  // `/transfer [HB-1042] <queue> [note]`: a new escalation in that queue's channel.
  app.command(COMMANDS.transfer, async ({ ack, command: cmd, respond }) => {
    await ack();
    if (!textOf(cmd.user_id)) return;
    const answer = await unlessUnavailable(deps, async (): Promise<string> => {
      const { ticket, note: rest } = parseHandBackText(cmd.text);
      const [queue, ...words] = (rest ?? '').split(/\s+/).filter(Boolean);
      if (!queue) return notices.failed('Name the queue: `/transfer HB-1042 billing why it moves`.');
      let target: Conversation | undefined;
      if (ticket) {
        target = await bridge.findByTicket(ticket);
        if (!target) return notices.unknownTicket(ticket);
      } else {
        const held = await bridge.conversationsHeldBy(SLACK_OPERATOR_PREFIX + cmd.user_id);
        if (held.length !== 1) return notices.failed(held.length === 0 ? 'Name the ticket: `/transfer HB-1042 billing why it moves`.' : 'You hold several conversations: name the ticket, `/transfer HB-1042 billing why it moves`.');
        target = held[0]!;
      }
      const operator = await deps.operators.operator(cmd.user_id, textOf(cmd.user_name));
      try {
        const moved = await bridge.transferQueue({ conversationId: target.id, operator, queue, ...(words.length ? { note: words.join(' ') } : {}), idempotencyKey: `slack:command:${textOf(cmd.trigger_id) ?? randomUUID()}` });
        return `:twisted_rightwards_arrows: ${moved.ticket} moved to the *${queue}* queue; its briefing is posted there.`;
      } catch (err) {
        if (!(err instanceof BridgeError)) throw err;
        return notices.failed(err.message);
      }
    });
    await respond({ response_type: 'ephemeral', text: answer }).catch((err: unknown) => logger.warn({ err }, 'could not answer the slash command'));
  });

  // `/route [HB-1042] <agent> [--pin] [note]`: any operator picks the agent that answers (several agents configured).
  app.command(COMMANDS.route, async ({ ack, command: cmd, respond }) => {
    await ack();
    if (!textOf(cmd.user_id)) return;
    const answer = await unlessUnavailable(deps, async (): Promise<string> => {
      const agents = bridge.agentNames();
      const { ticket, agent, pin, note } = parseRouteText(cmd.text, agents);
      if (!agent || agents.length === 0) return notices.routeUsage(agents);
      let target: Conversation | undefined;
      if (ticket) {
        target = await bridge.findByTicket(ticket);
        if (!target) return notices.unknownTicket(ticket);
      } else {
        const held = await bridge.conversationsHeldBy(SLACK_OPERATOR_PREFIX + cmd.user_id);
        if (held.length !== 1) return notices.failed(held.length === 0 ? `Name the ticket: \`/route HB-1042 ${agent}\`.` : `You hold several conversations: name the ticket, \`/route HB-1042 ${agent}\`.`);
        target = held[0]!;
      }
      const operator = await deps.operators.operator(cmd.user_id, textOf(cmd.user_name));
      try {
        const routed = await bridge.route({ conversationId: target.id, operator, agent, pin, ...(note ? { note } : {}), idempotencyKey: `slack:command:${textOf(cmd.trigger_id) ?? randomUUID()}` });
        return notices.routed(routed.ticket, agent, pin);
      } catch (err) {
        if (!(err instanceof BridgeError)) throw err;
        return notices.failed(err.message);
      }
    });
    await respond({ response_type: 'ephemeral', text: answer }).catch((err: unknown) => logger.warn({ err }, 'could not answer the slash command'));
  });

  for (const [callbackId, kind] of [
    [SHORTCUTS.return, 'return'],
    [SHORTCUTS.close, 'close'],
  ] as const) {
    app.shortcut(callbackId, async ({ ack, shortcut }) => {
      await ack();
      const s = shortcut as Loose;
      const channel = textOf(s.channel?.id);
      const user = textOf(s.user?.id);
      const threadTs = textOf(s.message?.thread_ts) ?? textOf(s.message?.ts) ?? textOf(s.message_ts);
      const triggerId = textOf(s.trigger_id);
      if (!channel || !user || !threadTs || !triggerId) return;
      const userName = textOf(s.user?.name);
      const origin: Origin = { user, channel, threadTs, ...(userName ? { userName } : {}) };
      await guarded(deps, origin, async () => {
        const conversationId = await deps.directory.conversationAt(channel, threadTs);
        if (!conversationId) return void (await deps.tell(origin, notices.notInThread()));
        await openNoteModal(deps, kind, conversationId, triggerId, origin);
      });
    });
  }

  // The Home tab: the live queue and today's figures, published each time it is opened.
  app.event('app_home_opened', async ({ event }) => {
    const e = event as Loose;
    const user = textOf(e.user);
    if (!user || (e.tab !== undefined && e.tab !== 'home')) return;
    await deps.publishHome(user);
  });

  app.action(HOME_ACTIONS.refresh, async ({ ack, body }) => {
    await ack();
    const user = textOf((body as Loose).user?.id);
    if (user) await deps.publishHome(user);
  });
}

/**
 * A human reply in a conversation's thread goes to the bridge, which decides: customer or internal
 * note. It is committed with the Slack message (channel + ts) as its idempotency key, so Slack's
 * redeliveries of the event are recognised. If it cannot be recorded (the store is unavailable),
 * the operator is told privately and `ReplyNotRecordedError` fails the request: Slack delivers it
 * again (up to three retries over about five minutes).
 */
async function onThreadReply(deps: ListenerDeps, event: Loose, retryNum: number | undefined): Promise<void> {
  const parsed = threadReplyOf(event);
  if ('ignore' in parsed) return;
  const reply = parsed.reply;
  const origin: Origin = { user: reply.user, channel: reply.channel, threadTs: reply.threadTs };
  try {
    const conversationId = await deps.directory.conversationAt(reply.channel, reply.threadTs);
    if (!conversationId) return;
    const operator = await deps.operators.operator(reply.user);
    for (const mentioned of mentionedUsers(reply.text).slice(0, 10)) await deps.operators.name(mentioned);
    const text = slackToPlain(reply.text, (id) => deps.operators.knownName(id));
    const attachments = filesToAttachments(reply.files, deps.fileLink);
    if (!text.trim() && attachments.length === 0) return;
    // Typed in the conversation's own thread, it is there already. Typed under a briefing copy in a
    // queue channel, it is marked `inThread: false`, so the bridge still mirrors it into the thread.
    const root = await deps.directory.thread(conversationId);
    const inThread = root !== undefined && root.channel === reply.channel && root.ts === reply.threadTs;
    await deps.bridge.operatorMessage({
      conversationId,
      operator,
      text,
      ...(attachments.length ? { attachments } : {}),
      idempotencyKey: `slack:${reply.channel}:${reply.ts}`,
      source: { workspace: 'slack', externalId: reply.ts, ...(inThread ? {} : { inThread: false }) },
    });
  } catch (err) {
    if (err instanceof BridgeError && !isTransient(err)) {
      await deps.tell(origin, notices.failed(err.message));
      return;
    }
    deps.logger.error({ err: (err as Error)?.message ?? String(err), channel: reply.channel, ts: reply.ts, retryNum }, 'an operator reply could not be recorded; slack will deliver it again');
    if (!retryNum) await deps.tell(origin, notices.notRecordedYet());
    else if (retryNum >= LAST_SLACK_RETRY) await deps.tell(origin, notices.notRecorded());
    throw new ReplyNotRecordedError(err);
  }
}

/** Failures that may pass: the store, a lock, a race. Other bridge errors are answers (too long, unknown...). */
function isTransient(err: BridgeError): boolean {
  return err instanceof StoreUnavailableError || err instanceof LockTimeoutError || err instanceof VersionConflictError || err.code === 'duplicate_in_flight';
}

/** Opens the note modal for Return / Close, or says privately why it cannot be done. */
async function openNoteModal(deps: ListenerDeps, kind: HandBack, conversationId: string, triggerId: string, origin: Origin): Promise<void> {
  const conversation = await deps.bridge.getConversation(conversationId);
  if (!conversation) return void (await deps.tell(origin, notices.failed(`That conversation no longer exists.`)));
  const blocked = blockedReason(kind, conversation, origin.user);
  if (blocked) return void (await deps.tell(origin, notices.failed(blocked)));
  try {
    await deps.openModal(triggerId, noteModal(kind, conversation, { conversationId, channel: origin.channel, ...(origin.threadTs ? { threadTs: origin.threadTs } : {}) }));
  } catch (err) {
    deps.logger.warn({ err: (err as Error).message }, 'could not open the note modal');
    await deps.tell(origin, notices.failed(`Slack did not open the form. Use \`${kind === 'return' ? COMMANDS.return : COMMANDS.close} ${conversation.ticket} your note\` in the channel instead.`));
  }
}

/** Runs `work`; if the bridge cannot be reached (the store is down), says so to the operator instead. */
async function unlessUnavailable<T>(deps: ListenerDeps, work: () => Promise<T>): Promise<T | string> {
  try {
    return await work();
  } catch (err) {
    deps.logger.error({ err: (err as Error)?.message ?? String(err) }, 'a slack command failed');
    return notices.failed(`The bridge could not do that right now (${(err as Error)?.message ?? 'unavailable'}). Try again in a moment.`);
  }
}

/** Returns or closes, and says how it went (mrkdwn for the operator). */
async function handBack(deps: ListenerDeps, kind: HandBack, conversationId: string, operator: Operator, note: string | undefined, idempotencyKey: string): Promise<string> {
  try {
    const conversation =
      kind === 'return'
        ? await deps.bridge.returnToAgent({ conversationId, operator, ...(note ? { note } : {}), idempotencyKey })
        : await deps.bridge.close({ conversationId, operator, ...(note ? { note } : {}), idempotencyKey });
    return notices.done(kind, conversation.ticket);
  } catch (err) {
    if (!(err instanceof BridgeError)) deps.logger.error({ err, conversationId }, `slack ${kind} failed`);
    return notices.failed(err instanceof BridgeError ? err.message : `Something went wrong (${(err as Error).message}). Try again.`);
  }
}

/** Why the state machine would refuse this hand-back right now, if it would. */
async function precheck(deps: ListenerDeps, kind: HandBack, conversationId: string, user: string): Promise<string | undefined> {
  const conversation = await deps.bridge.getConversation(conversationId);
  if (!conversation) return 'That conversation no longer exists.';
  return blockedReason(kind, conversation, user);
}

function blockedReason(kind: HandBack, conversation: Conversation, user: string): string | undefined {
  const operator: Operator = { id: `slack:${user}`, name: user, workspace: 'slack' };
  const command = kind === 'return' ? ({ type: 'return', operator } as const) : ({ type: 'close', by: { kind: 'operator', operator } } as const);
  const result = transition(conversation, command, new Date().toISOString());
  return result.ok ? undefined : result.error.message;
}

/** True if the conversation exists; otherwise the operator is told, and nothing is resolved or stored for the click. */
async function exists(deps: ListenerDeps, origin: Origin, conversationId: string): Promise<boolean> {
  if (await deps.bridge.getConversation(conversationId)) return true;
  await deps.tell(origin, notices.failed('That conversation no longer exists.'));
  return false;
}

/** Runs a bridge command for an operator; refusals and failures are told to them privately. */
async function guarded(deps: ListenerDeps, origin: Origin, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof AlreadyClaimedError) {
      const ticket = (err as AlreadyClaimedError).ticket ?? 'This conversation';
      await deps.tell(origin, notices.alreadyClaimed(err.holder.name, ticket));
    } else if (err instanceof BridgeError) {
      await deps.tell(origin, notices.failed(err.message));
    } else {
      deps.logger.error({ err }, 'slack action failed');
      await deps.tell(origin, notices.failed(`Something went wrong (${(err as Error).message}). Try again.`));
    }
  }
}

/** The platform's id for one click (who, which button, when): the same request sent again is recognised. */
function clickKey(body: Loose, action: Loose): string {
  return `slack:click:${body.user?.id ?? ''}:${action.action_id ?? ''}:${action.action_ts ?? body.trigger_id ?? ''}`;
}

/**
 * Who clicked, and where: the channel of the message, and its thread if it sits in one. Undefined
 * without a user or a channel (nothing can be done or said for a click from nobody, nowhere).
 */
function clickOrigin(body: Loose): Origin | undefined {
  const user = textOf(body.user?.id);
  const channel = textOf(body.channel?.id) ?? textOf(body.container?.channel_id);
  if (!user || !channel) return undefined;
  const threadTs = textOf(body.message?.thread_ts) ?? textOf(body.container?.thread_ts);
  const userName = textOf(body.user?.name) ?? textOf(body.user?.username);
  return { user, channel, ...(userName ? { userName } : {}), ...(threadTs ? { threadTs } : {}) };
}

/** A non-empty string from a payload field, or undefined. */
function textOf(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
