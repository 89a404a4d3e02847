/**
 * Signed-in browsers on this instance: one WebSocket each, with the person behind it and the
 * conversation it shows. Every socket gets every inbox row (managers watch everything); only the
 * sockets showing a conversation get its thread, built for each viewer's permissions.
 */
import { WebSocket } from 'ws';
import type { Conversation } from '../../src/model.ts';
import { threadView } from '../../cards/console/thread.ts';
import type { InboxRow, ServerFrame } from '../../cards/console/types.ts';
import { bridgeOperator, type Session } from './auth.ts';

/** A socket whose unread output passes this is a dead or hostile reader: drop it. */
const MAX_BUFFERED_BYTES = 4_000_000;

export class ConsoleClient {
  /** The conversation the page shows, if any. */
  open: string | undefined;
  /** The newest private notice this socket has been sent. */
  lastNotice = 0;
  awaitingPong = false;

  constructor(
    readonly socket: WebSocket,
    public session: Session,
  ) {}

  get operatorId(): string {
    return bridgeOperator(this.session.operator).id;
  }

  get viewer(): { id: string; role: 'operator' | 'manager' } {
    return { id: this.operatorId, role: this.session.operator.role };
  }

  send(frame: ServerFrame): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (this.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.socket.terminate();
      return;
    }
    this.socket.send(JSON.stringify(frame));
  }
}

export class ConsoleHub {
  private readonly clients = new Set<ConsoleClient>();
  /** Rows changed since the last flush: sent together, once per tick. */
  private readonly rowsDue = new Map<string, InboxRow>();
  private flushing = false;

  add(client: ConsoleClient): void {
    this.clients.add(client);
  }

  remove(client: ConsoleClient): void {
    this.clients.delete(client);
  }

  all(): ConsoleClient[] {
    return [...this.clients];
  }

  size(): number {
    return this.clients.size;
  }

  /** Is anyone here showing this conversation? */
  watching(conversationId: string): boolean {
    for (const c of this.clients) if (c.open === conversationId) return true;
    return false;
  }

  /** A conversation changed: its row to everyone (batched), its thread to those showing it. */
  changed(conversation: Conversation, row: InboxRow): void {
    this.rowsDue.set(row.id, row);
    if (!this.flushing) {
      this.flushing = true;
      queueMicrotask(() => this.flushRows());
    }
    for (const client of this.clients) {
      if (client.open === conversation.id) client.send({ type: 'thread', view: threadView(conversation, client.viewer) });
    }
  }

  private flushRows(): void {
    this.flushing = false;
    const rows = [...this.rowsDue.values()];
    this.rowsDue.clear();
    if (rows.length === 0) return;
    for (const client of this.clients) client.send({ type: 'rows', rows });
  }
}
