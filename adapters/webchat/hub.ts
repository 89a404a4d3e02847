/**
 * Who is connected to which conversation. A conversation can be open in several tabs or devices;
 * every delivery goes to all of them. Each connection remembers which messages it has shown, so
 * replay, live delivery and catch-up can overlap without the visitor seeing anything twice.
 * Sessions without a conversation yet wait in a pending set until their first message creates one.
 */
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { ServerFrame, ServerMessageFrame } from './frames.ts';
import type { SessionClaims } from './token.ts';

/** A socket whose unread output passes this is a dead or hostile reader: drop it. */
const MAX_BUFFERED_BYTES = 1_000_000;

/** Message ids a connection has shown; a Set once there are more than this (a short list is far smaller). */
const SHOWN_LIST_MAX = 8;
const NONE_SHOWN: readonly string[] = [];

/** One visitor socket after a successful hello. */
export class Connection {
  conversationId: string | undefined;
  /** The session's claims as of the hello (who the visitor is; which session). */
  claims: SessionClaims | undefined;
  /** The client id whose message created the conversation (its resend keeps the same idempotency key). */
  firstClientId: string | undefined;
  /** Message ids this socket has shown (or the widget already had before it connected). */
  private shown: readonly string[] | Set<string> = NONE_SHOWN;
  /** The last transcript message this socket sent, so a caller can tell whether a reply already went out. */
  lastShownId: string | undefined;
  /** How many of the transcript's first messages this socket is done with (shown, or not public): a catch-up starts after them. */
  caughtUp = 0;
  /** Live messages that arrived while the replay was being read; sent right after it. */
  private held: ServerMessageFrame[] | undefined;
  /** A close asked for while the replay was running: done right after it. */
  private endAfterReplay: { code: number; reason: string } | undefined;

  constructor(
    readonly socket: WebSocket,
    /** The connection under the socket, when known: frames sent in one turn are corked into one write. */
    private readonly stream?: Duplex,
  ) {}

  get replaying(): boolean {
    return this.held !== undefined;
  }

  get sessionId(): string | undefined {
    return this.claims?.sessionId;
  }

  /** Sends any frame now (errors, typing, ready). */
  send(frame: ServerFrame): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (this.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.socket.terminate();
      return;
    }
    this.corkUntilNextTick();
    this.socket.send(JSON.stringify(frame));
  }

  /** A confirmation and the typing notice (say) go out in one write instead of one each. */
  private corkUntilNextTick(): void {
    const stream = this.stream;
    if (!stream || stream.writableCorked > 0) return;
    stream.cork();
    process.nextTick(uncork, stream);
  }

  /** Shows a transcript message once, in order with the replay. */
  show(frame: ServerMessageFrame): void {
    if (this.held) {
      this.held.push(frame);
      return;
    }
    if (this.hasShown(frame.id) && !frame.clientId) return;
    this.markShown(frame.id);
    this.lastShownId = frame.id;
    this.send(frame);
  }

  hasShown(id: string): boolean {
    const shown = this.shown;
    return shown instanceof Set ? shown.has(id) : shown.includes(id);
  }

  /** Holds live deliveries until `finishReplay`, so a replay never lands after a newer message. */
  beginReplay(): void {
    this.held = [];
  }

  /** `alreadySeen`: what the widget had before reconnecting; `replay`: what it missed, in order. */
  finishReplay(alreadySeen: string[], replay: ServerMessageFrame[]): void {
    for (const id of alreadySeen) this.markShown(id);
    const held = this.held ?? [];
    this.held = undefined;
    for (const frame of replay) this.show(frame);
    for (const frame of held) this.show(frame);
    if (this.endAfterReplay) this.socket.close(this.endAfterReplay.code, this.endAfterReplay.reason);
  }

  /** Closes the socket once what it is showing has gone out. */
  end(code: number, reason: string): void {
    if (this.held) this.endAfterReplay = { code, reason };
    else this.socket.close(code, reason);
  }

  private markShown(id: string): void {
    const shown = this.shown;
    if (shown instanceof Set) {
      shown.add(id);
      return;
    }
    if (shown.includes(id)) return;
    // A copy per addition (concat sizes it exactly): far smaller than a Set for the few messages most sockets show.
    this.shown = shown.length < SHOWN_LIST_MAX ? shown.concat(id) : new Set(shown).add(id);
  }
}

/** The connections of one conversation on this instance. */
interface Room {
  connections: Connection[];
}

/** The registry of connections by conversation. */
export class ConversationHub {
  private readonly byConversation = new Map<string, Room>();
  /** Connections whose session has no conversation yet, by session id. */
  private readonly pendingBySession = new Map<string, Set<Connection>>();
  private readonly holds = new Map<string, { count: number; frames: ServerMessageFrame[]; end?: { code: number; reason: string }; after?: Array<() => void> }>();

  constructor(private readonly maxPerConversation: number) {}

  /**
   * Registers a connection. Past the cap the newcomer is refused (false): sockets already open are
   * never let go to make room, so nobody can push a customer out by opening more.
   */
  add(connection: Connection, conversationId: string): boolean {
    const room = this.byConversation.get(conversationId);
    if (room?.connections.includes(connection)) return true;
    if (room && room.connections.length >= this.maxPerConversation) return false;
    this.removePending(connection);
    connection.conversationId = conversationId;
    if (room) room.connections.push(connection);
    else this.byConversation.set(conversationId, { connections: [connection] });
    return true;
  }

  /** Registers a connection whose session has no conversation yet. */
  addPending(connection: Connection, sessionId: string): void {
    let set = this.pendingBySession.get(sessionId);
    if (!set) this.pendingBySession.set(sessionId, (set = new Set()));
    set.add(connection);
  }

  /** This instance's sockets of a session that is still waiting for its first message. */
  pending(sessionId: string): Connection[] {
    return [...(this.pendingBySession.get(sessionId) ?? [])];
  }

  remove(connection: Connection): void {
    this.removePending(connection);
    const id = connection.conversationId;
    if (!id) return;
    const room = this.byConversation.get(id);
    const at = room ? room.connections.indexOf(connection) : -1;
    if (!room || at < 0) return;
    room.connections.splice(at, 1);
    if (room.connections.length === 0) this.byConversation.delete(id);
  }

  /** Whether this instance has a socket on the conversation (asked per commit: no copy of the list). */
  watches(conversationId: string): boolean {
    return this.byConversation.has(conversationId);
  }

  connections(conversationId: string): Connection[] {
    return [...(this.byConversation.get(conversationId)?.connections ?? [])];
  }

  /** A bridge delivery: shown on every connection of the conversation (after any hold). */
  deliver(conversationId: string, frame: ServerMessageFrame): void {
    const hold = this.holds.get(conversationId);
    if (hold) hold.frames.push(frame);
    else this.fanOut(conversationId, frame);
  }

  /** Shows a message on every connection of the conversation except `skip`, now. */
  fanOut(conversationId: string, frame: ServerMessageFrame, skip?: Connection): void {
    for (const connection of this.connections(conversationId)) if (connection !== skip) connection.show(frame);
  }

  /** Closes every socket of the conversation, after anything held for them has been shown. */
  end(conversationId: string, code: number, reason: string): void {
    const hold = this.holds.get(conversationId);
    if (hold) hold.end = { code, reason };
    else for (const connection of this.connections(conversationId)) connection.end(code, reason);
  }

  /**
   * Holds the bridge's deliveries for a conversation while a customer message is being stored, so
   * the visitor's own message is shown before what it caused (the escalation notice, say).
   * Returns the release, which sends what was held.
   */
  hold(conversationId: string): () => void {
    let hold = this.holds.get(conversationId);
    if (!hold) this.holds.set(conversationId, (hold = { count: 0, frames: [] }));
    hold.count += 1;
    let released = false;
    return () => {
      if (released || !hold) return;
      released = true;
      hold.count -= 1;
      if (hold.count > 0) return;
      this.holds.delete(conversationId);
      for (const frame of hold.frames) this.fanOut(conversationId, frame);
      if (hold.end) this.end(conversationId, hold.end.code, hold.end.reason);
      for (const run of hold.after ?? []) run();
    };
  }

  isHeld(conversationId: string): boolean {
    return this.holds.has(conversationId);
  }

  /** Runs `fn` once the conversation's hold is released (now if it is not held): what it shows then comes after the sender's own message. */
  afterHold(conversationId: string, fn: () => void): void {
    const hold = this.holds.get(conversationId);
    if (!hold) return fn();
    (hold.after ??= []).push(fn);
  }

  conversationIds(): string[] {
    return [...this.byConversation.keys()];
  }

  all(): Connection[] {
    const all: Connection[] = [];
    for (const room of this.byConversation.values()) all.push(...room.connections);
    for (const set of this.pendingBySession.values()) all.push(...set);
    return all;
  }

  private removePending(connection: Connection): void {
    const sessionId = connection.sessionId;
    if (!sessionId) return;
    const set = this.pendingBySession.get(sessionId);
    set?.delete(connection);
    if (set?.size === 0) this.pendingBySession.delete(sessionId);
  }
}

function uncork(stream: Duplex): void {
  stream.uncork();
}
