/**
 * Boots the real thing for web chat tests: a bridge (offline agent, SQLite), the shared HTTP server
 * on a loopback port, the web chat on it, and a recording workspace standing in for Slack/Teams.
 * `VisitorSocket` is a real `ws` client that keeps every frame it receives.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Store } from '../../src/store/store.ts';
import { WebSocket } from 'ws';
import { createWebChat, type WebChat, type WebChatConfig } from '../../adapters/webchat/index.ts';
import type { ServerFrame, ServerMessageFrame } from '../../adapters/webchat/frames.ts';
import type { Agent } from '../../src/agent/agent.ts';
import type { Bridge } from '../../src/bridge.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import { createTestBridge, waitFor } from '../support/harness.ts';
import { MemoryWorkspace } from '../support/memory-ports.ts';

export const SESSION_SECRET = 'test-session-secret-0123456789abcdef';
export const IDENTITY_SECRET = 'test-identity-secret-0123456789';

/** What POST /webchat/session answers: a token, and a conversation only for a verified user's open one. */
export interface Session {
  token: string;
  conversationId?: string;
}

/** A verified user's proof, sent again with each hello. */
export interface Identity {
  userId: string;
  userHash: string;
}

export interface WebChatRig {
  bridge: Bridge;
  /** The harness's temporary directory (the SQLite file is `bridge.sqlite` in it). */
  dir: string;
  webchat: WebChat;
  workspace: MemoryWorkspace;
  baseUrl: string;
  wsUrl: string;
  /** Moves the web chat's clock (tokens, rate limits). */
  advance(ms: number): void;
  /** Opens a session over HTTP like the widget does. */
  session(body?: Record<string, unknown>, headers?: Record<string, string>): Promise<Session>;
  /** Opens a socket and says hello with `token`. */
  connect(token: string, lastSeenId?: string, identity?: Identity): Promise<VisitorSocket>;
  /**
   * A session whose first message created its conversation, as the widget leaves it: the socket
   * that wrote it, the conversation, and the session's current token (the socket's latest).
   */
  started(text?: string, body?: Record<string, unknown>): Promise<{ socket: VisitorSocket; conversationId: string; token: string }>;
  /** Every row of every table of the SQLite store, to prove a request wrote nothing. */
  snapshot(): Promise<string>;
  close(): Promise<void>;
}

export async function startWebChat(options: { config?: Partial<WebChatConfig>; agent?: Agent; store?: Store; startWorkers?: boolean } = {}): Promise<WebChatRig> {
  const workspace = new MemoryWorkspace('test');
  const harness = await createTestBridge({ workspaces: [workspace], ...(options.agent ? { agent: options.agent } : {}), ...(options.store ? { store: options.store } : {}), ...(options.startWorkers === false ? { startWorkers: false } : {}) });
  const http = new HttpServer(silentLogger());
  let now = Date.now();
  const webchat = createWebChat({
    bridge: harness.bridge,
    http,
    logger: silentLogger(),
    config: { sessionSecret: SESSION_SECRET, brandName: 'Northwind', clock: () => now, ...options.config },
  });
  harness.bridge.addChannel(webchat);
  await webchat.start();
  const port = await http.listen(0, '127.0.0.1');
  http.setReady(true);
  const baseUrl = `http://127.0.0.1:${port}`;
  const sockets: VisitorSocket[] = [];
  const rig: WebChatRig = {
    bridge: harness.bridge,
    dir: harness.dir,
    webchat,
    workspace,
    baseUrl,
    wsUrl: `ws://127.0.0.1:${port}/webchat/ws`,
    advance(ms) {
      now += ms;
    },
    async session(body = {}, headers = {}) {
      const response = await fetch(`${baseUrl}/webchat/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`session refused: ${response.status} ${await response.text()}`);
      return (await response.json()) as { token: string; conversationId: string };
    },
    async connect(token, lastSeenId, identity) {
      const socket = await VisitorSocket.open(rig.wsUrl);
      sockets.push(socket);
      socket.send({ type: 'hello', token, ...(lastSeenId ? { lastSeenId } : {}), ...identity });
      return socket;
    },
    async started(text = 'Where is my order?', body = {}) {
      const session = await rig.session(body);
      const { userId, userHash } = body as Partial<Identity>;
      const socket = await rig.connect(session.token, undefined, userId && userHash ? { userId, userHash } : undefined);
      await socket.ready();
      const clientId = socket.say(text);
      await socket.message((f) => f.clientId === clientId, 'the first message confirmed');
      const conversationId = await waitFor(() => socket.conversationId(), { what: 'the conversation id' });
      return { socket, conversationId, token: socket.token() ?? session.token };
    },
    snapshot() {
      return dumpSqlite(join(harness.dir, 'bridge.sqlite'));
    },
    async close() {
      for (const socket of sockets) socket.close();
      await harness.bridge.idle();
      await webchat.stop();
      await http.close();
      await harness.close();
    },
  };
  return rig;
}

/** A visitor's socket, as a test sees it. */
export class VisitorSocket {
  readonly frames: ServerFrame[] = [];
  closed: { code: number; reason: string } | undefined;

  /** Called after every frame and on close (event-driven waits, for the fuzz suites' speed). */
  private readonly watchers = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as ServerFrame);
      for (const watcher of this.watchers) watcher();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const watcher of this.watchers) watcher();
    });
  }

  /** Resolves with the first frame after `from` that matches, or undefined once the socket is closed. */
  until(match: (frame: ServerFrame) => boolean, from: number, timeoutMs = 10_000): Promise<ServerFrame | undefined> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.slice(from).find(match);
        if (!found && !this.closed) return;
        this.watchers.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        this.watchers.delete(check);
        reject(new Error(`no matching frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.watchers.add(check);
      check();
    });
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<VisitorSocket> {
    const ws = new WebSocket(url, { headers });
    const socket = new VisitorSocket(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return socket;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  say(text: string, clientId = `c-${Math.random().toString(36).slice(2)}`): string {
    this.send({ type: 'message', text, clientId });
    return clientId;
  }

  /** Waits for a frame matching `match` that arrived after `from` frames. */
  next<T extends ServerFrame>(match: (frame: ServerFrame) => frame is T, what: string, from?: number): Promise<T>;
  next(match: (frame: ServerFrame) => boolean, what: string, from?: number): Promise<ServerFrame>;
  async next(match: (frame: ServerFrame) => boolean, what: string, from = 0): Promise<ServerFrame> {
    return waitFor(() => this.frames.slice(from).find(match), { what, timeoutMs: 10_000 });
  }

  /** Waits for a message frame matching `match`. */
  message(match: (frame: ServerMessageFrame) => boolean, what: string): Promise<ServerMessageFrame> {
    return this.next((f): f is ServerMessageFrame => f.type === 'message' && match(f), what);
  }

  ready(): Promise<ServerFrame> {
    return this.next((f) => f.type === 'ready', 'ready frame');
  }

  /** The newest token the server gave this socket (ready, then token frames). */
  token(): string | undefined {
    return this.frames.filter((f) => f.type === 'ready' || f.type === 'token').at(-1)?.token;
  }

  /** The conversation, once the server has named it. */
  conversationId(): string | undefined {
    return this.frames.filter((f) => f.type === 'ready' || f.type === 'token').map((f) => f.conversationId).filter(Boolean).at(-1);
  }

  /** Message frames (texts and notices) received so far. */
  messages(): ServerMessageFrame[] {
    return this.frames.filter((f): f is ServerMessageFrame => f.type === 'message');
  }

  async closedWith(): Promise<{ code: number; reason: string }> {
    return waitFor(() => this.closed, { what: 'socket close' });
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}

export const isMessage = (f: ServerFrame): f is ServerMessageFrame => f.type === 'message';
export const isError = (f: ServerFrame): f is Extract<ServerFrame, { type: 'error' }> => f.type === 'error';

/** Every row of every table, in a stable order. */
export async function dumpSqlite(path: string): Promise<string> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    const dump: Record<string, unknown[]> = {};
    for (const table of tables) dump[table] = db.prepare(`SELECT * FROM "${table}"`).all().map((row) => JSON.stringify(row)).sort();
    return JSON.stringify(dump, null, 1);
  } finally {
    db.close();
  }
}
