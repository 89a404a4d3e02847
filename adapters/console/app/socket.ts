/**
 * The console's live connection: reconnects with backoff, re-sends which conversation is open, and
 * reports its status. A 4401 close means the session ended: no reconnecting, sign in again.
 */
import type { ClientFrame, ServerFrame } from '../../../cards/console/types.ts';

export type LiveStatus = 'connecting' | 'online' | 'offline' | 'signed-out';

export interface LiveHandlers {
  frame(frame: ServerFrame): void;
  status(status: LiveStatus): void;
  /** Is the session still valid? Asked when a connection is refused before it opened. */
  signedIn(): Promise<boolean>;
}

export class LiveSocket {
  private ws: WebSocket | undefined;
  private attempts = 0;
  private open: string | null = null;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly handlers: LiveHandlers) {}

  start(): void {
    this.connect();
    window.addEventListener('online', () => this.reconnectNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && !this.ws) this.reconnectNow();
    });
  }

  /** Which conversation the page shows (sent now, and again after every reconnect). */
  show(conversationId: string | null): void {
    this.open = conversationId;
    this.send({ type: 'open', conversationId });
  }

  private send(frame: ClientFrame): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  private connect(): void {
    if (this.stopped) return;
    this.handlers.status('connecting');
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/console/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempts = 0;
      this.handlers.status('online');
      if (this.open) this.send({ type: 'open', conversationId: this.open });
    };
    ws.onmessage = (event) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(event.data)) as ServerFrame;
      } catch {
        return;
      }
      this.handlers.frame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this.ws = undefined;
      if (event.code === 4401) {
        this.stopped = true;
        this.handlers.status('signed-out');
        return;
      }
      this.handlers.status('offline');
      if (opened) return this.schedule();
      // Refused at the handshake: maybe the session ended rather than the network.
      void this.handlers.signedIn().then(
        (yes) => {
          if (yes) return this.schedule();
          this.stopped = true;
          this.handlers.status('signed-out');
        },
        () => this.schedule(),
      );
    };
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.attempts += 1;
    const delay = Math.min(15_000, 500 * 2 ** Math.min(this.attempts, 5)) * (0.75 + Math.random() / 2);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private reconnectNow(): void {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.connect();
  }
}
