/**
 * One visitor WebSocket, from hello to close: checks the session token, replays what the widget
 * missed, turns message frames into customer messages for the bridge, and answers every bad input
 * with an error frame instead of breaking.
 */
import { randomUUID } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';
import type { BridgePort } from '../../src/ports.ts';
import { BridgeError, InputError } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation, Message } from '../../src/model.ts';
import type { KeyValue } from '../../src/store/store.ts';
import type { ResolvedWebChatConfig } from './config.ts';
import {
  errorFrame,
  messageFrame,
  normalizeCustomerText,
  parseClientFrame,
  type HelloFrame,
  type MessageFrame,
  type SpeakerNames,
} from './frames.ts';
import { Connection, type ConversationHub } from './hub.ts';
import type { RateLimiter } from './rate-limit.ts';
import { verifySessionToken } from './token.ts';

/** Close codes the widget understands: 4001/4004 mean "get a new session". */
export const CloseCode = {
  invalidToken: 4001,
  conversationGone: 4004,
  helloTimeout: 4008,
  replaced: 4009,
  serverStopping: 1001,
} as const;

export interface SocketContext {
  bridge: BridgePort;
  hub: ConversationHub;
  config: ResolvedWebChatConfig;
  names: SpeakerNames;
  /** Customer messages per conversation (shared by all its tabs). */
  messageLimiter: RateLimiter;
  /** Frames of any kind per socket, so junk floods cost nothing. */
  frameLimiter: RateLimiter;
  /** clientId -> message id, to confirm a resend that the bridge recognised as a duplicate. */
  sentMessages: KeyValue;
  logger: Logger;
}

/** Serves one socket until it closes. */
export function serveSocket(socket: WebSocket, context: SocketContext): void {
  const { hub, config, logger } = context;
  const connection = new Connection(socket);
  const socketId = randomUUID();
  let state: 'new' | 'starting' | 'ready' = 'new';
  let floodWarned = false;
  // Frames are handled one at a time so a visitor's messages reach the bridge in the order typed.
  let queue: Promise<void> = Promise.resolve();

  const helloTimer = setTimeout(() => socket.close(CloseCode.helloTimeout, 'no hello received'), config.helloTimeoutMs);
  helloTimer.unref();

  socket.on('message', (data: RawData, isBinary: boolean) => {
    if (!context.frameLimiter.take(socketId).ok) {
      if (!floodWarned) connection.send(errorFrame('rate_limited', 'Too many frames; slow down.'));
      floodWarned = true;
      return;
    }
    floodWarned = false;
    if (isBinary) return connection.send(errorFrame('malformed_frame', 'Frames must be JSON text, not binary.'));
    const parsed = parseClientFrame(rawText(data));
    if (!parsed.ok) return connection.send(parsed.error);
    const frame = parsed.frame;
    if (frame.type === 'hello') {
      if (state !== 'new') return connection.send(errorFrame('already_started', 'This socket already said hello.'));
      state = 'starting';
      queue = queue.then(() => hello(frame));
      return;
    }
    if (state === 'new') return connection.send(errorFrame('hello_required', 'Send {type:"hello", token} first.', frame.clientId));
    queue = queue.then(() => customerMessage(frame));
  });

  socket.on('close', () => {
    clearTimeout(helloTimer);
    hub.remove(connection);
  });
  socket.on('error', (err) => logger.debug({ err }, 'web chat socket error'));

  async function hello(frame: HelloFrame): Promise<void> {
    clearTimeout(helloTimer);
    const verdict = verifySessionToken(frame.token, config.sessionSecret, { now: config.clock(), maxAgeMs: config.tokenTtlMs });
    if (!verdict.ok) {
      logger.info({ problem: verdict.problem }, 'web chat token refused');
      const message =
        verdict.problem === 'expired' ? 'This chat session has expired; starting a new one.' : 'This chat session is not valid; starting a new one.';
      connection.send(errorFrame('invalid_token', message));
      socket.close(CloseCode.invalidToken, 'invalid token');
      return;
    }
    const { conversationId, visitorId } = verdict.claims;
    let conversation: Conversation | undefined;
    try {
      conversation = await context.bridge.getConversation(conversationId);
    } catch (err) {
      logger.error({ err, conversationId }, 'web chat could not load a conversation');
      connection.send(errorFrame('unavailable', 'Chat is briefly unavailable; reconnecting.'));
      socket.close(1011, 'store unavailable');
      return;
    }
    if (!conversation || conversation.origin !== 'webchat' || conversation.customer.id !== visitorId) {
      connection.send(errorFrame('conversation_not_found', 'This conversation no longer exists; starting a new one.'));
      socket.close(CloseCode.conversationGone, 'conversation not found');
      return;
    }
    if (socket.readyState !== socket.OPEN) return;
    connection.customer = conversation.customer;
    connection.beginReplay();
    hub.add(connection, conversation.id);
    try {
      // Re-read after registering, so nothing committed in between is missed.
      conversation = (await context.bridge.getConversation(conversation.id)) ?? conversation;
    } catch {
      // the first read is recent enough; live deliveries are being held meanwhile
    }
    const visible = conversation.messages.filter((m) => m.visibility === 'public');
    const seenIndex = frame.lastSeenId ? visible.findIndex((m) => m.id === frame.lastSeenId) : -1;
    connection.finishReplay(
      visible.slice(0, seenIndex + 1).map((m) => m.id),
      visible.slice(seenIndex + 1).map((m) => messageFrame(m, context.names)),
    );
    state = 'ready';
    connection.send({ type: 'ready', conversationId: conversation.id });
  }

  async function customerMessage(frame: MessageFrame): Promise<void> {
    const conversationId = connection.conversationId;
    const customer = connection.customer;
    if (state !== 'ready' || !conversationId || !customer) return; // hello failed; the socket is closing
    const text = normalizeCustomerText(frame.text, config.maxMessageChars, frame.clientId);
    if (!text.ok) return connection.send(text.error);
    const allowed = context.messageLimiter.take(conversationId);
    if (!allowed.ok) {
      const seconds = Math.max(1, Math.ceil(allowed.retryAfterMs / 1000));
      return connection.send(
        errorFrame('rate_limited', `You're sending messages faster than we can read them. Try again in ${seconds} s.`, frame.clientId),
      );
    }
    const log = logger.child({ conversationId });
    const deliveriesBefore = hub.deliveryCount(conversationId);
    const release = hub.hold(conversationId);
    try {
      const result = await context.bridge.customerMessage({
        conversationId,
        origin: 'webchat',
        customer,
        text: text.text,
        idempotencyKey: `webchat:${conversationId}:${frame.clientId}`,
      });
      const message = result.message ?? (await findResent(result.conversation, frame, text.text));
      if (!message) {
        log.warn({ clientId: frame.clientId }, 'web chat resend recognised but its message was not found');
        return;
      }
      if (!result.duplicate) await context.sentMessages.set(`${conversationId}:${frame.clientId}`, message.id, 24 * 3600_000).catch(() => {});
      // The sender gets its confirmation; the visitor's other tabs get the message itself.
      connection.show(messageFrame(message, context.names, frame.clientId));
      hub.fanOut(conversationId, messageFrame(message, context.names), connection);
      // The assistant is working on an answer, unless it already came or a person is on it.
      if (!result.duplicate && result.conversation.state === 'agent' && hub.deliveryCount(conversationId) === deliveriesBefore) {
        for (const other of hub.connections(conversationId)) other.send({ type: 'typing', name: context.names.assistant });
      }
    } catch (err) {
      if (err instanceof InputError) return connection.send(errorFrame('malformed_frame', err.message, frame.clientId));
      const code = err instanceof BridgeError ? err.code : 'internal';
      log.error({ err, code }, 'web chat message failed');
      connection.send(errorFrame('unavailable', 'Your message could not be sent just now. Please try again.', frame.clientId));
    } finally {
      release();
    }
  }

  /** A resend the bridge already has: find the stored message to confirm it. */
  async function findResent(conversation: Conversation | undefined, frame: MessageFrame, text: string): Promise<Message | undefined> {
    const latest = conversation ? await context.bridge.getConversation(conversation.id) : undefined;
    if (!latest) return undefined;
    const id = await context.sentMessages.get<string>(`${latest.id}:${frame.clientId}`).catch(() => undefined);
    const byId = id ? latest.messages.find((m) => m.id === id) : undefined;
    // The id is recorded just after the first send; a resend racing it falls back to the text.
    return byId ?? [...latest.messages].reverse().find((m) => m.author.role === 'customer' && m.text === text);
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
