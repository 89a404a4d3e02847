/**
 * Who is connected to which conversation. A conversation can be open in several tabs or devices;
 * every delivery goes to all of them. Each connection remembers which messages it has shown, so
 * replay, live delivery and catch-up can overlap without the visitor seeing anything twice.
 */
import { WebSocket } from 'ws';
import type { Customer } from '../../src/model.ts';
import type { ServerFrame, ServerMessageFrame } from './frames.ts';

/** A socket whose unread output passes this is a dead or hostile reader: drop it. */
const MAX_BUFFERED_BYTES = 1_000_000;

/** One visitor socket after a successful hello. */
export class Connection {
  conversationId: string | undefined;
  customer: Customer | undefined;
  /** Message ids this socket has shown (or the widget already had before it connected). */
  private readonly shown = new Set<string>();
  /** Live messages that arrived while the replay was being read; sent right after it. */
  private held: ServerMessageFrame[] | undefined;

  constructor(readonly socket: WebSocket) {}

  get replaying(): boolean {
    return this.held !== undefined;
  }

  /** Sends any frame now (errors, typing, ready). */
  send(frame: ServerFrame): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (this.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.socket.terminate();
      return;
    }
    this.socket.send(JSON.stringify(frame));
  }

  /** Shows a transcript message once, in order with the replay. */
  show(frame: ServerMessageFrame): void {
    if (this.held) {
      this.held.push(frame);
      return;
    }
    if (this.shown.has(frame.id) && !frame.clientId) return;
    this.shown.add(frame.id);
    this.send(frame);
  }

  hasShown(id: string): boolean {
    return this.shown.has(id);
  }

  /** Holds live deliveries until `finishReplay`, so a replay never lands after a newer message. */
  beginReplay(): void {
    this.held = [];
  }

  /** `alreadySeen`: what the widget had before reconnecting; `replay`: what it missed, in order. */
  finishReplay(alreadySeen: string[], replay: ServerMessageFrame[]): void {
    for (const id of alreadySeen) this.shown.add(id);
    const held = this.held ?? [];
    this.held = undefined;
    for (const frame of replay) this.show(frame);
    for (const frame of held) this.show(frame);
  }
}

/** The registry of connections by conversation. */
export class ConversationHub {
  private readonly byConversation = new Map<string, Set<Connection>>();
  /** Deliveries per conversation, so a caller can tell whether a reply already went out. */
  private readonly deliveries = new Map<string, number>();
  private readonly holds = new Map<string, { count: number; frames: ServerMessageFrame[] }>();

  constructor(private readonly maxPerConversation: number) {}

  /** Registers a connection; past the cap the oldest connection of that conversation is let go. */
  add(connection: Connection, conversationId: string): void {
    connection.conversationId = conversationId;
    let set = this.byConversation.get(conversationId);
    if (!set) this.byConversation.set(conversationId, (set = new Set()));
    set.add(connection);
    if (set.size > this.maxPerConversation) {
      const oldest = set.values().next().value;
      if (oldest && oldest !== connection) {
        set.delete(oldest);
        oldest.socket.close(4009, 'too many windows open on this conversation');
      }
    }
  }

  remove(connection: Connection): void {
    const id = connection.conversationId;
    if (!id) return;
    const set = this.byConversation.get(id);
    set?.delete(connection);
    if (set?.size === 0) {
      this.byConversation.delete(id);
      this.deliveries.delete(id);
    }
  }

  connections(conversationId: string): Connection[] {
    return [...(this.byConversation.get(conversationId) ?? [])];
  }

  /** A bridge delivery: shown on every connection of the conversation (after any hold). */
  deliver(conversationId: string, frame: ServerMessageFrame): void {
    this.deliveries.set(conversationId, (this.deliveries.get(conversationId) ?? 0) + 1);
    const hold = this.holds.get(conversationId);
    if (hold) hold.frames.push(frame);
    else this.fanOut(conversationId, frame);
  }

  /** Shows a message on every connection of the conversation except `skip`, now. */
  fanOut(conversationId: string, frame: ServerMessageFrame, skip?: Connection): void {
    for (const connection of this.connections(conversationId)) if (connection !== skip) connection.show(frame);
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
    };
  }

  /** How many deliveries the conversation has had while someone was connected. */
  deliveryCount(conversationId: string): number {
    return this.deliveries.get(conversationId) ?? 0;
  }

  conversationIds(): string[] {
    return [...this.byConversation.keys()];
  }

  all(): Connection[] {
    return [...this.byConversation.values()].flatMap((set) => [...set]);
  }
}
