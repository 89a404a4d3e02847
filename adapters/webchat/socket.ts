/**
 * One visitor WebSocket, from hello to close: checks the session token and moves the session to
 * its next token, replays what the widget missed, turns message frames into customer messages for
 * the bridge (the first one creates the conversation), and answers every bad input with an error
 * frame instead of breaking.
 */
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { BridgePort } from '../../src/ports.ts';
import { BridgeError, ConversationClosedError, ConversationNotFoundError, InputError } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation, Customer, Message } from '../../src/model.ts';
import type { ResolvedWebChatConfig } from './config.ts';
import {
  errorFrame,
  messageFrame,
  normalizeCustomerText,
  parseClientFrame,
  type ErrorCode,
  type HelloFrame,
  type MessageFrame,
  type SpeakerNames,
} from './frames.ts';
import { Connection, type ConversationHub } from './hub.ts';
import type { Periodic } from './periodic.ts';
import type { RateLimiter } from './rate-limit.ts';
import { admit, type SessionRecord, type Sessions } from './sessions.ts';
import { signSessionToken, verifiedUserId, verifyIdentity, verifySessionToken, type SessionClaims } from './token.ts';

/** Close codes the widget understands: 4001/4004 mean "get a new session", 4010 "the conversation is over". */
export const CloseCode = {
  invalidToken: 4001,
  conversationGone: 4004,
  helloTimeout: 4008,
  tooManyWindows: 4009,
  conversationClosed: 4010,
  serverStopping: 1001,
} as const;

export interface SocketContext {
  bridge: BridgePort;
  hub: ConversationHub;
  config: ResolvedWebChatConfig;
  names: SpeakerNames;
  /** Customer messages per session (shared by all its tabs, before and after the conversation exists). */
  messageLimiter: RateLimiter;
  /** Frames of any kind per socket, so junk floods cost nothing (each socket keeps its own bucket: `takeFrom`). */
  frameLimiter: RateLimiter;
  /** Ready sockets, each handed a fresh token every half token life (`SocketHandler.refreshToken`). */
  refreshes: Periodic<SocketHandler>;
  sessions: Sessions;
  logger: Logger;
}

type Refusal = { code: ErrorCode; close: number; message: string };

const REFUSED: Record<'invalid' | 'expired' | 'gone' | 'closed' | 'full', Refusal> = {
  invalid: { code: 'invalid_token', close: CloseCode.invalidToken, message: 'This chat session is not valid; starting a new one.' },
  expired: { code: 'invalid_token', close: CloseCode.invalidToken, message: 'This chat session has expired; starting a new one.' },
  gone: { code: 'conversation_not_found', close: CloseCode.conversationGone, message: 'This conversation no longer exists; starting a new one.' },
  closed: { code: 'conversation_closed', close: CloseCode.conversationClosed, message: 'This conversation is closed. Write again to start a new one.' },
  full: { code: 'too_many_windows', close: CloseCode.tooManyWindows, message: 'This conversation is open in too many windows; close one and try again.' },
};

/** Serves one socket until it closes. `stream`: the connection under it (frames sent together leave in one write). */
export function serveSocket(socket: WebSocket, context: SocketContext, stream?: Duplex): void {
  const handler = new SocketHandler(socket, context, stream);
  handlers.set(socket, handler);
  socket.on('message', onMessage);
  socket.on('close', onClose);
  socket.on('error', onError);
}

/** Each socket's handler. The listeners are shared by all sockets (one set of functions, not one per socket). */
const handlers = new WeakMap<WebSocket, SocketHandler>();

function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  handlers.get(this)?.message(data, isBinary);
}

function onClose(this: WebSocket): void {
  handlers.get(this)?.closed();
}

function onError(this: WebSocket, err: Error): void {
  handlers.get(this)?.context.logger.debug({ err }, 'web chat socket error');
}

/** A settled promise: where a socket's frame queue starts, and starts again once it has drained. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * One socket, from hello to close. Its state lives in fields and its steps are methods, so an open
 * socket costs one object and no closures (thousands of idle sockets stay cheap).
 */
export class SocketHandler {
  readonly connection: Connection;
  private state: 'new' | 'starting' | 'ready' = 'new';
  private floodWarned = false;
  /** This socket's frame bucket (SocketContext.frameLimiter). */
  private frameBucket: number | undefined;
  /** Frames are handled one at a time so a visitor's messages reach the bridge in the order typed. Undefined when idle. */
  private queue: Promise<void> | undefined;
  private helloTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: WebSocket,
    readonly context: SocketContext,
    stream?: Duplex,
  ) {
    this.connection = new Connection(socket, stream);
    this.helloTimer = setTimeout(closeWithoutHello, context.config.helloTimeoutMs, socket);
    this.helloTimer.unref();
  }

  message(data: RawData, isBinary: boolean): void {
    const { connection } = this;
    const bucket = this.context.frameLimiter.takeFrom(this.frameBucket);
    if (bucket === undefined) {
      if (!this.floodWarned) connection.send(errorFrame('rate_limited', 'Too many frames; slow down.'));
      this.floodWarned = true;
      return;
    }
    this.frameBucket = bucket;
    this.floodWarned = false;
    if (isBinary) return connection.send(errorFrame('malformed_frame', 'Frames must be JSON text, not binary.'));
    const parsed = parseClientFrame(rawText(data));
    if (!parsed.ok) return connection.send(parsed.error);
    const frame = parsed.frame;
    if (frame.type === 'hello') {
      if (this.state !== 'new') return connection.send(errorFrame('already_started', 'This socket already said hello.'));
      this.state = 'starting';
      this.enqueue(
        () => this.hello(frame),
        (err) => this.fail(err, 'hello'),
      );
      return;
    }
    if (this.state === 'new') return connection.send(errorFrame('hello_required', 'Send {type:"hello", token} first.', frame.clientId));
    this.enqueue(
      () => this.customerMessage(frame),
      (err) => this.fail(err, 'message', frame.clientId),
    );
  }

  closed(): void {
    this.clearHelloTimer();
    this.context.refreshes.delete(this);
    this.context.hub.remove(this.connection);
  }

  /** Runs `task` after the frames before it; `failed` answers its error. */
  private enqueue(task: () => Promise<void>, failed: (err: unknown) => void): void {
    const next: Promise<void> = (this.queue ?? SETTLED)
      .then(task)
      .catch(failed)
      .then(() => {
        if (this.queue === next) this.queue = undefined;
      });
    this.queue = next;
  }

  private clearHelloTimer(): void {
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
  }

  /** A store or bridge failure: the visitor is told to retry; nothing half-done is kept. */
  private fail(err: unknown, during: 'hello' | 'message', clientId?: string): void {
    const { connection, context } = this;
    if (err instanceof InputError) return connection.send(errorFrame('malformed_frame', err.message, clientId));
    const code = err instanceof BridgeError ? err.code : 'internal';
    context.logger.error({ err, code, conversationId: connection.conversationId }, `web chat ${during} failed`);
    if (during === 'hello') {
      context.hub.remove(connection);
      connection.send(errorFrame('unavailable', 'Chat is briefly unavailable; reconnecting.'));
      this.socket.close(1011, 'unavailable');
      return;
    }
    connection.send(errorFrame('unavailable', 'Your message could not be sent just now. Please try again.', clientId));
  }

  private refuse(refusal: Refusal): void {
    this.context.hub.remove(this.connection);
    this.connection.send(errorFrame(refusal.code, refusal.message));
    this.connection.end(refusal.close, refusal.code);
  }

  private async hello(frame: HelloFrame): Promise<void> {
    const { connection, socket } = this;
    const { hub, config, logger, sessions, bridge } = this.context;
    this.clearHelloTimer();
    const now = config.clock();
    const verdict = verifySessionToken(frame.token, config.sessionSecret, { now, maxAgeMs: config.tokenTtlMs });
    if (!verdict.ok) {
      logger.info({ problem: verdict.problem }, 'web chat token refused');
      return this.refuse(verdict.problem === 'expired' ? REFUSED.expired : REFUSED.invalid);
    }
    const claims = verdict.claims;
    // A verified user's token works only next to the host site's proof that this user is signed in.
    if (claims.verified && !this.identityProven(claims, frame)) {
      logger.info({ sessionId: claims.sessionId }, 'web chat token refused: identity not proven');
      return this.refuse(REFUSED.invalid);
    }
    connection.claims = claims;
    const outcome = await sessions.withLock(claims, async (): Promise<Refusal | { pending: true } | { conversationId: string; record: SessionRecord }> => {
      const record = await sessions.get(claims.sessionId);
      const decision = admit(claims, record, now);
      if (decision.kind === 'refuse') {
        logger.warn({ sessionId: claims.sessionId, reason: decision.reason }, 'web chat token refused');
        return REFUSED.invalid;
      }
      if (decision.kind === 'pending') return { pending: true };
      const checked = await this.checkConversation(decision.conversationId, claims);
      if ('code' in checked) return checked;
      if (socket.readyState !== socket.OPEN) return REFUSED.invalid;
      if (!hub.add(connection, checked.id)) return REFUSED.full;
      connection.beginReplay();
      await sessions.put(claims.sessionId, decision.record);
      return { conversationId: checked.id, record: decision.record };
    });
    if ('code' in outcome) return this.refuse(outcome);
    if ('pending' in outcome) {
      if (socket.readyState !== socket.OPEN) return; // gone while the record was read: nothing to register
      hub.addPending(connection, claims.sessionId);
      this.ready(signSessionToken({ ...claims, issuedAt: config.clock() }, config.sessionSecret));
      return;
    }
    connection.firstClientId = outcome.record.firstClientId;
    // Read after registering, so nothing committed in between is missed.
    const conversation = await bridge.getConversation(outcome.conversationId);
    const visible = (conversation?.messages ?? []).filter((m) => m.visibility === 'public');
    const seenIndex = frame.lastSeenId ? visible.findIndex((m) => m.id === frame.lastSeenId) : -1;
    connection.finishReplay(
      visible.slice(0, seenIndex + 1).map((m) => m.id),
      visible.slice(seenIndex + 1).map((m) => messageFrame(m, this.context.names, undefined, conversation?.ticket)),
    );
    this.ready(this.boundToken(claims, outcome.conversationId, outcome.record.generation), outcome.conversationId);
    // Closed while this hello was being answered: the visitor has just seen the closed notice.
    if (conversation?.state === 'closed') connection.end(CloseCode.conversationClosed, 'conversation closed');
  }

  private ready(token: string, conversationId?: string): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.state = 'ready';
    this.connection.send(conversationId ? { type: 'ready', token, conversationId } : { type: 'ready', token });
    // A socket open longer than half a token's life hands the widget a fresh one, so it can resume.
    this.context.refreshes.add(this);
  }

  /** SocketContext.refreshes: half a token's life since the last one. */
  refreshToken(): void {
    this.refresh().catch((err: unknown) => this.context.logger.debug({ err }, 'web chat token refresh failed'));
  }

  /** The current generation with a new issue time (no rotation: the widget may keep using what it has). */
  private async refresh(): Promise<void> {
    const { connection, socket } = this;
    const { config, sessions } = this.context;
    const claims = connection.claims;
    if (!claims || socket.readyState !== socket.OPEN) return;
    const conversationId = connection.conversationId;
    if (!conversationId) {
      connection.send({ type: 'token', token: signSessionToken({ ...claims, issuedAt: config.clock() }, config.sessionSecret) });
      return;
    }
    await sessions.withLock(claims, async () => {
      const record = await sessions.get(claims.sessionId);
      if (!record || record.conversationId !== conversationId) return;
      await sessions.put(claims.sessionId, record); // outlives the token it is about to issue
      connection.send({ type: 'token', token: this.boundToken(claims, conversationId, record.generation), conversationId });
    });
  }

  private identityProven(claims: SessionClaims, frame: HelloFrame): boolean {
    const { config } = this.context;
    const userId = verifiedUserId(claims);
    if (!userId || !config.identitySecret || frame.userId !== userId || !frame.userHash) return false;
    return verifyIdentity(userId, frame.userHash, config.identitySecret);
  }

  /** The conversation a session may use: the visitor's own web chat conversation, still open. */
  private async checkConversation(conversationId: string, claims: SessionClaims): Promise<Refusal | Conversation> {
    const conversation = await this.context.bridge.getConversation(conversationId);
    if (!conversation || conversation.origin !== 'webchat' || conversation.customer.id !== claims.visitorId) return REFUSED.gone;
    if (conversation.state === 'closed') return REFUSED.closed;
    return conversation;
  }

  private boundToken(claims: SessionClaims, conversationId: string, generation: number): string {
    const { config } = this.context;
    const { sessionId, visitorId, verified } = claims;
    return signSessionToken({ sessionId, visitorId, verified, generation, conversationId, issuedAt: config.clock() }, config.sessionSecret);
  }

  private async customerMessage(frame: MessageFrame): Promise<void> {
    const { connection, context } = this;
    const claims = connection.claims;
    if (this.state !== 'ready' || !claims) return; // hello failed; the socket is closing
    const text = normalizeCustomerText(frame.text, context.config.maxMessageChars, frame.clientId);
    if (!text.ok) return connection.send(text.error);
    const allowed = context.messageLimiter.take(claims.sessionId);
    if (!allowed.ok) {
      const seconds = Math.max(1, Math.ceil(allowed.retryAfterMs / 1000));
      return connection.send(
        errorFrame('rate_limited', `You're sending messages faster than we can read them. Try again in ${seconds} s.`, frame.clientId),
      );
    }
    if (!connection.conversationId) {
      const user = verifiedUserId(claims);
      const next = await context.sessions.withLock(claims, () => this.firstMessage(claims, frame, text.text), user === undefined ? {} : { user });
      if (next === 'done') return;
    }
    await this.conversationMessage(claims, frame, text.text);
  }

  /**
   * The session's first message, under its lock (and the verified user's): creates the
   * conversation in the same commit as the message, unless another tab or device already has one.
   * Returns 'send' when the message itself still has to be sent to that conversation.
   */
  private async firstMessage(claims: SessionClaims, frame: MessageFrame, text: string): Promise<'done' | 'send'> {
    const { connection, context } = this;
    const { hub, config, logger, sessions, bridge } = context;
    const now = config.clock();
    const record = await sessions.get(claims.sessionId);
    if (record && record.visitorId !== claims.visitorId) {
      this.refuse(REFUSED.invalid);
      return 'done';
    }
    if (record?.conversationId) {
      // Another tab of this session created it a moment ago.
      connection.firstClientId = record.firstClientId;
      return (await this.join(record.conversationId)) ? 'send' : 'done';
    }
    const user = verifiedUserId(claims);
    const known = user === undefined ? undefined : await sessions.userConversation(user);
    const existing = known ? await bridge.getConversation(known) : undefined;
    if (user !== undefined && existing && existing.customer.id === claims.visitorId && existing.state !== 'closed') {
      // The verified user's conversation from another device: this session joins it.
      const joined: SessionRecord = { visitorId: claims.visitorId, conversationId: existing.id, generation: 1, rotatedAt: now, graceUses: 0 };
      await sessions.put(claims.sessionId, joined);
      if (!(await this.join(existing.id))) return 'done';
      connection.send({ type: 'token', token: this.boundToken(claims, existing.id, 1), conversationId: existing.id });
      return 'send';
    }

    // A marker first: if this attempt dies after the commit, the retry finds the conversation by the same key.
    const firstClientId = record?.firstClientId ?? frame.clientId;
    if (!record) await sessions.put(claims.sessionId, { visitorId: claims.visitorId, firstClientId, generation: 0, rotatedAt: now, graceUses: 0 });
    const result = await bridge.customerMessage({
      origin: 'webchat',
      customer: customerOf(claims),
      text,
      idempotencyKey: `webchat:${claims.sessionId}:first`,
      channelData: { webchat: { verified: claims.verified, openedAt: new Date(now).toISOString() } },
    });
    const conversation = result.conversation;
    const first = result.duplicate ? firstClientId : frame.clientId;
    await sessions.put(claims.sessionId, { visitorId: claims.visitorId, conversationId: conversation.id, firstClientId: first, generation: 1, rotatedAt: now, graceUses: 0 });
    if (user !== undefined) await sessions.setUserConversation(user, conversation.id);
    if (!result.duplicate) logger.info({ conversationId: conversation.id, ticket: conversation.ticket, verified: claims.verified }, 'web chat conversation opened');

    connection.firstClientId = first;
    // The message this frame stored (a resend of the first frame gets it back from the bridge).
    const own = result.duplicate && first !== frame.clientId ? undefined : result.message;
    const confirm = own ? { id: own.id, clientId: frame.clientId } : undefined;
    const shown = await this.join(conversation.id, confirm);
    connection.send({ type: 'token', token: this.boundToken(claims, conversation.id, 1), conversationId: conversation.id });
    // This instance's other tabs of the session join too (tabs elsewhere join at their next message or hello).
    for (const other of hub.pending(claims.sessionId)) {
      if (other === connection) continue;
      other.firstClientId = first;
      void joinConversation(other, conversation.id, context).catch(() => {});
    }
    if (!shown) return 'done';
    // An earlier attempt stored a different first message: this one still has to be sent.
    if (result.duplicate && first !== frame.clientId) return 'send';
    if (!own) {
      const resent = await this.findResent(conversation, text);
      if (resent) connection.show(messageFrame(resent, context.names, frame.clientId, conversation.ticket));
      return 'done';
    }
    if (result.duplicate) return 'done'; // confirmed by the replay; its answer is already under way
    // The assistant is working on an answer, unless it already came (in the replay, or live since).
    if (shown.state === 'agent' && connection.lastShownId === own.id) {
      connection.send({ type: 'typing', name: context.names.assistant });
    }
    return 'done';
  }

  /** Moves this socket onto a conversation and shows what it has not seen; false if it could not. */
  private async join(conversationId: string, confirm?: { id: string; clientId: string }): Promise<Conversation | undefined> {
    const joined = await joinConversation(this.connection, conversationId, this.context, confirm);
    if (!joined) this.refuse(REFUSED.full);
    return joined;
  }

  private async conversationMessage(claims: SessionClaims, frame: MessageFrame, text: string): Promise<void> {
    const { connection, socket, context } = this;
    const { hub, bridge } = context;
    const conversationId = connection.conversationId;
    if (!conversationId || socket.readyState !== socket.OPEN) return;
    const release = hub.hold(conversationId);
    try {
      const result = await bridge.customerMessage({
        conversationId,
        origin: 'webchat',
        customer: customerOf(claims),
        text,
        idempotencyKey: frame.clientId === connection.firstClientId ? `webchat:${claims.sessionId}:first` : `webchat:${claims.sessionId}:${frame.clientId}`,
        // A closed conversation is over on the web chat: its sessions are revoked, nothing reopens it.
        reopen: false,
      });
      const message = result.message ?? (await this.findResent(result.conversation, text));
      if (!message) {
        context.logger.warn({ conversationId, clientId: frame.clientId }, 'web chat resend recognised but its message was not found');
        return;
      }
      // The sender gets its confirmation; the visitor's other tabs get the message itself.
      connection.show(messageFrame(message, context.names, frame.clientId, result.conversation.ticket));
      hub.fanOut(conversationId, messageFrame(message, context.names, undefined, result.conversation.ticket), connection);
      // The assistant is working on an answer, unless a person is on it. What was committed since
      // (the answer itself, say) is shown after the hold, so after this notice.
      if (!result.duplicate && result.conversation.state === 'agent') {
        for (const other of hub.connections(conversationId)) other.send({ type: 'typing', name: context.names.assistant });
      }
    } catch (err) {
      if (err instanceof ConversationClosedError) return this.refuse(REFUSED.closed);
      if (err instanceof ConversationNotFoundError) return this.refuse(REFUSED.gone);
      throw err;
    } finally {
      release();
    }
  }

  /**
   * A resend the bridge has but could not name (stored before commits recorded their message, or
   * the index could not be read): the latest customer message with the same text.
   */
  private async findResent(conversation: Conversation | undefined, text: string): Promise<Message | undefined> {
    const latest = conversation ? await this.context.bridge.getConversation(conversation.id) : undefined;
    return latest && [...latest.messages].reverse().find((m) => m.author.role === 'customer' && m.text === text);
  }
}

function closeWithoutHello(socket: WebSocket): void {
  socket.close(CloseCode.helloTimeout, 'no hello received');
}

/**
 * Registers `connection` on a conversation and replays its public transcript, holding live
 * deliveries meanwhile (they may have started before the socket was registered). `confirm` marks
 * the sender's own message with its clientId. Undefined when the conversation is full or gone.
 */
export async function joinConversation(
  connection: Connection,
  conversationId: string,
  context: Pick<SocketContext, 'hub' | 'bridge' | 'names'>,
  confirm?: { id: string; clientId: string },
): Promise<Conversation | undefined> {
  if (!context.hub.add(connection, conversationId)) return undefined;
  connection.beginReplay();
  let conversation: Conversation | undefined;
  try {
    conversation = await context.bridge.getConversation(conversationId);
  } finally {
    const visible = (conversation?.messages ?? []).filter((m) => m.visibility === 'public');
    connection.finishReplay(
      [],
      visible.map((m) => messageFrame(m, context.names, m.id === confirm?.id ? confirm.clientId : undefined, conversation?.ticket)),
    );
  }
  return conversation;
}

function customerOf(claims: SessionClaims): Customer {
  const customer: Customer = { id: claims.visitorId };
  if (claims.name) customer.name = claims.name;
  if (claims.email && claims.verified) customer.email = claims.email;
  return customer;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
