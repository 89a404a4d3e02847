/**
 * The widget's connection to the bridge: gets a session, keeps one WebSocket open, resumes after
 * reloads and network drops, and resends unconfirmed messages (each carries a clientId, so the
 * server never stores a resend twice). Each hello spends the session token and the server sends
 * the next one: it is stored at once (tabs share it through localStorage).
 */
import type { ServerFrame, ServerMessageFrame } from '../frames.ts';

export type ConnectionStatus = 'idle' | 'connecting' | 'online' | 'offline';

export interface Identity {
  userId?: string;
  userHash?: string;
  name?: string;
  email?: string;
}

export interface ClientEvents {
  message(frame: ServerMessageFrame): void;
  typing(name: string): void;
  /** One of the visitor's messages was refused. */
  failed(clientId: string, message: string, retryable: boolean): void;
  status(status: ConnectionStatus, problem?: string): void;
  /** The old conversation is gone (token refused): the view starts over. */
  reset(): void;
}

interface StoredSession {
  token: string;
  /** Set once the first message has created the conversation. */
  conversationId?: string;
  userId?: string;
}

/** Close codes the server uses for "this session is over, get a new one". */
const SESSION_GONE = new Set([4001, 4004]);
/** The conversation was closed: the session is revoked, the next message starts a new one. */
const CONVERSATION_CLOSED = 4010;

export class ChatClient {
  private ws: WebSocket | undefined;
  private ready = false;
  private wanted = false;
  /** A session request is in flight (online/visibility events must not start a second one). */
  private connecting = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastSeenId: string | undefined;
  /** Sent or queued messages the server has not confirmed yet, in order. */
  private readonly outbox = new Map<string, string>();
  private readonly storageKey: string;

  constructor(
    private readonly base: string,
    private readonly identity: Identity,
    private readonly events: ClientEvents,
  ) {
    this.storageKey = `handoff-chat:${base}`;
    window.addEventListener('online', () => this.reconnectNow());
    // A socket can outlive the network silently (browsers never surface pings): drop it and show it.
    window.addEventListener('offline', () => this.ws?.close(4000, 'browser offline'));
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.reconnectNow();
    });
    window.addEventListener('storage', (event) => {
      if (event.key === this.storageKey) this.followOtherTab();
    });
  }

  /** A returning visitor: reconnect at once so replies that came while away show up. */
  resumeIfKnown(): void {
    if (this.loadSession()) this.start();
  }

  /** Opens the connection (creating a session on first use). */
  start(): void {
    if (this.wanted) return;
    this.wanted = true;
    void this.connect();
  }

  /** Queues a message and sends it when connected; returns its clientId. */
  send(text: string): string {
    const clientId = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
    this.outbox.set(clientId, text);
    this.start();
    this.transmit(clientId, text);
    return clientId;
  }

  retry(clientId: string): void {
    const text = this.outbox.get(clientId);
    if (text !== undefined) this.transmit(clientId, text);
  }

  /** Ends the session on this device (the host site's logout). */
  shutdown(): void {
    this.wanted = false;
    clearTimeout(this.timer);
    this.clearSession();
    this.outbox.clear();
    this.ws?.close(1000, 'shutdown');
    this.ws = undefined;
    this.ready = false;
    this.events.status('idle');
  }

  private async connect(): Promise<void> {
    clearTimeout(this.timer);
    if (!this.wanted || this.ws || this.connecting) return;
    this.events.status('connecting');
    let session = this.loadSession();
    if (!session) {
      this.connecting = true;
      try {
        session = await this.createSession();
      } catch (err) {
        this.events.status('offline', (err as Error).message);
        return this.scheduleReconnect();
      } finally {
        this.connecting = false;
      }
      if (!this.wanted || this.ws) return;
    }
    const ws = new WebSocket(`${this.base.replace(/^http/i, 'ws')}/webchat/ws`);
    this.ws = ws;
    this.socketToken = undefined;
    this.socketConversation = undefined;
    ws.onopen = () => {
      // Read again at open: another tab may have spent the token read above and stored the next one.
      this.socketToken = this.loadSession()?.token ?? session.token;
      const hello: Record<string, string> = { type: 'hello', token: this.socketToken };
      if (this.lastSeenId) hello.lastSeenId = this.lastSeenId;
      // A verified user's token only works next to the host site's proof of who is signed in.
      if (this.identity.userId && this.identity.userHash) {
        hello.userId = this.identity.userId;
        hello.userHash = this.identity.userHash;
      }
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(event.data)) as ServerFrame;
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.ready = false;
      const ended = SESSION_GONE.has(event.code) || event.code === CONVERSATION_CLOSED;
      // Another tab already moved the session on (or started a new one): use that, lose nothing.
      const movedOn = ended && this.socketToken !== undefined && (this.loadSession()?.token ?? this.socketToken) !== this.socketToken;
      if (ended && !movedOn) {
        // The server no longer accepts this session: start afresh, keep unsent text. After a close
        // the transcript stays on screen; a refused session takes it away.
        this.clearSession();
        this.lastSeenId = undefined;
        if (event.code !== CONVERSATION_CLOSED) this.events.reset();
      }
      if (ended) this.attempt = 0;
      if (!this.wanted) return;
      this.events.status('offline');
      this.scheduleReconnect();
    };
  }

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'ready':
        this.keepToken(frame.token, frame.conversationId);
        this.ready = true;
        this.attempt = 0;
        this.events.status('online');
        for (const [clientId, text] of this.outbox) this.transmit(clientId, text);
        return;
      case 'token':
        this.keepToken(frame.token, frame.conversationId);
        return;
      case 'message':
        this.lastSeenId = frame.id;
        if (frame.clientId) this.outbox.delete(frame.clientId);
        this.events.message(frame);
        return;
      case 'typing':
        this.events.typing(frame.name);
        return;
      case 'error':
        if (frame.clientId) {
          const retryable = frame.code === 'rate_limited' || frame.code === 'unavailable';
          if (!retryable) this.outbox.delete(frame.clientId);
          this.events.failed(frame.clientId, frame.message, retryable);
        } else if (frame.code !== 'invalid_token' && frame.code !== 'conversation_not_found' && frame.code !== 'conversation_closed') {
          this.events.status(this.ready ? 'online' : 'offline', frame.message);
        }
        return;
    }
  }

  private transmit(clientId: string, text: string): void {
    if (this.ready && this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: 'message', text, clientId }));
    }
  }

  private async createSession(): Promise<StoredSession> {
    const body: Record<string, string> = {};
    for (const key of ['userId', 'userHash', 'name', 'email'] as const) {
      const value = this.identity[key];
      if (value) body[key] = value;
    }
    let response: Response;
    try {
      response = await fetch(`${this.base}/webchat/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        credentials: 'omit',
      });
    } catch {
      throw new Error('You are offline. We will reconnect automatically.');
    }
    const data = (await response.json().catch(() => ({}))) as { token?: string; conversationId?: string; error?: { message?: string } };
    if (!response.ok || !data.token) {
      throw new Error(data.error?.message ?? 'Chat is unavailable right now. We will keep trying.');
    }
    const session: StoredSession = { token: data.token };
    if (data.conversationId) session.conversationId = data.conversationId;
    if (this.identity.userId) session.userId = this.identity.userId;
    this.saveSession(session);
    return session;
  }

  /** The token the server just gave: the one used for the hello no longer works. */
  private keepToken(token: string | undefined, conversationId: string | undefined): void {
    if (!token) return;
    this.socketToken = token;
    if (conversationId) this.socketConversation = conversationId;
    const session: StoredSession = { token };
    if (conversationId) session.conversationId = conversationId;
    if (this.identity.userId) session.userId = this.identity.userId;
    this.saveSession(session);
  }

  private saveSession(session: StoredSession): void {
    try {
      localStorage.setItem(this.storageKey, JSON.stringify(session));
    } catch {
      // Storage can be disabled (private mode): the session lasts as long as the page.
    }
    this.memorySession = session;
  }

  private memorySession: StoredSession | undefined;
  /** The newest token the open socket used or was given; another one in storage means another tab moved on. */
  private socketToken: string | undefined;
  private socketConversation: string | undefined;

  /**
   * Another tab stored a different session (both started one at once, or after a close). While this
   * socket's session has no conversation yet, it switches to that one, so the tabs stay in one chat.
   */
  private followOtherTab(): void {
    const ws = this.ws;
    if (!ws || !this.socketToken || this.socketConversation) return;
    const stored = this.loadSession();
    if (!stored || sessionOf(stored.token) === sessionOf(this.socketToken)) return;
    this.ws = undefined;
    this.ready = false;
    ws.onclose = null;
    ws.close(1000, 'joining the session of another tab');
    this.lastSeenId = undefined;
    void this.connect();
  }

  private loadSession(): StoredSession | undefined {
    let session = this.memorySession;
    try {
      const raw = localStorage.getItem(this.storageKey);
      if (raw) session = JSON.parse(raw) as StoredSession;
    } catch {
      // unreadable storage: fall back to the in-memory session
    }
    // A session belongs to one signed-in user; another user on this browser gets their own.
    if (!session?.token || (session.userId ?? undefined) !== (this.identity.userId ?? undefined)) return undefined;
    return session;
  }

  private clearSession(): void {
    this.memorySession = undefined;
    try {
      localStorage.removeItem(this.storageKey);
    } catch {
      // nothing stored
    }
  }

  private scheduleReconnect(): void {
    if (!this.wanted) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), reconnectDelay(this.attempt++));
  }

  private reconnectNow(): void {
    if (!this.wanted || this.ws) return;
    this.attempt = 0;
    void this.connect();
  }
}

/** The session a token belongs to (its payload's `s`), to tell a rotated token from another session. */
function sessionOf(token: string): string | undefined {
  try {
    const payload = token.split('.')[1] ?? '';
    return (JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { s?: string }).s;
  } catch {
    return undefined;
  }
}

/** Exponential back-off with jitter: ~0.5 s, 1 s, 2 s ... capped at 30 s. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(30_000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base / 2 + random() * (base / 2));
}
