/**
 * The web chat customer channel. Served by the bridge on PORT:
 *   GET  /                 a demo page embedding the widget
 *   GET  /widget.js        the embeddable widget (one <script> tag on any site)
 *   POST /webchat/session  a signed session token (optionally a verified user); stores nothing
 *   WS   /webchat/ws       live messages: hello/replay, customer messages, deliveries, notices
 *
 * main.ts: `const webchat = createWebChat({ bridge, http, logger, config })`, then
 * `bridge.addChannel(webchat)` and start/stop it with the other services.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { BridgePort } from '../../src/ports.ts';
import type { HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation, Message } from '../../src/model.ts';
import type { CustomerChannel, Service } from '../../src/ports.ts';
import { resolveWebChatConfig, type ResolvedWebChatConfig, type WebChatConfig } from './config.ts';
import { messageFrame, type SpeakerNames } from './frames.ts';
import { ConversationHub } from './hub.ts';
import { demoPage, embedSnippet } from './pages.ts';
import { Periodic } from './periodic.ts';
import { RateLimiter } from './rate-limit.ts';
import { Sessions } from './sessions.ts';
import { handleSessionPreflight, handleSessionRequest, originAllowed } from './session.ts';
import { CloseCode, serveSocket, type SocketContext } from './socket.ts';
import { buildWidget, type WidgetBundle } from './widget-bundle.ts';

export { webChatConfigFromEnv, type WebChatConfig } from './config.ts';
export { identityHash } from './token.ts';

export interface WebChatOptions {
  bridge: BridgePort;
  /** The shared HTTP server; routes are registered on it at once. */
  http: HttpServer;
  logger?: Logger;
  config: WebChatConfig;
}

/** The web chat: a customer channel (origin `webchat`) and a service main.ts starts and stops. */
export interface WebChat extends CustomerChannel, Service {
  readonly origin: 'webchat';
  /** The `<script>` tag host sites paste, for a given public base URL (default: PUBLIC_URL). */
  embedSnippet(baseUrl?: string): string;
  /** Open visitor sockets (for health pages and tests). */
  connectionCount(): number;
}

/** Creates the web chat and registers its routes on `http`. */
export function createWebChat(options: WebChatOptions): WebChat {
  return new WebChatChannel(options);
}

const HEARTBEAT_MS = 30_000;
/** Past this, new sockets for the conversation are refused; open ones are never dropped for them. */
const MAX_SOCKETS_PER_CONVERSATION = 10;

class WebChatChannel implements WebChat {
  readonly origin = 'webchat' as const;
  /** Sockets show the transcript live from the change feed (`start`): commits make no delivery work. */
  readonly live = true;
  readonly name = 'webchat';
  private readonly config: ResolvedWebChatConfig;
  private readonly bridge: BridgePort;
  private readonly logger: Logger;
  private readonly names: SpeakerNames;
  private readonly hub = new ConversationHub(MAX_SOCKETS_PER_CONVERSATION);
  private readonly wss: WebSocketServer;
  private readonly socketContext: SocketContext;
  private readonly sessions: Sessions;
  private widget: Promise<WidgetBundle> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Conversations to re-read for this instance's sockets, gathered from the change feed, with the version each announced. */
  private readonly stale = new Map<string, number>();
  private catchingUp = false;
  private stopping = false;
  private readonly awaitingPong = new WeakSet<WebSocket>();
  /** Every socket's pong listener (one function for all of them: `this` is the socket). */
  private readonly onPong: (this: WebSocket) => void;

  constructor(options: WebChatOptions) {
    this.config = resolveWebChatConfig(options.config);
    const awaitingPong = this.awaitingPong;
    this.onPong = function (this: WebSocket) {
      awaitingPong.delete(this);
    };
    this.bridge = options.bridge;
    this.logger = (options.logger ?? options.bridge.logger).child({ channel: 'webchat' });
    this.names = { assistant: this.config.assistantName, brand: this.config.brandName };
    this.sessions = new Sessions(this.bridge.store.kv('webchat'), this.bridge.store, this.config.tokenTtlMs * 2);
    const { clock, ratePerMinute, burst } = this.config;
    // JSON may escape every character as a \uXXXX pair: 12 bytes a character is the worst honest case.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.config.maxMessageChars * 12 + 4096, perMessageDeflate: false });
    this.socketContext = {
      bridge: this.bridge,
      hub: this.hub,
      config: this.config,
      names: this.names,
      messageLimiter: new RateLimiter({ perMinute: ratePerMinute, burst, now: clock }),
      frameLimiter: new RateLimiter({ perMinute: Math.max(120, ratePerMinute * 6), burst: Math.max(30, burst * 4), now: clock }),
      // A socket open longer than half a token's life hands the widget a fresh one, so it can resume.
      refreshes: new Periodic(Math.min(this.config.tokenTtlMs / 2, 2 ** 31 - 1), (handler) => handler.refreshToken()),
      sessions: this.sessions,
      logger: this.logger,
    };
    const sessionLimiter = new RateLimiter({ perMinute: this.config.sessionsPerMinute, burst: Math.max(5, Math.ceil(this.config.sessionsPerMinute / 3)), now: clock });
    const http = options.http;
    http.route('GET', '/', (req, res) => this.serveDemo(req, res));
    http.route('GET', '/widget.js', (req, res) => this.serveWidget(req, res));
    http.route('OPTIONS', '/webchat/session', (req, res) => handleSessionPreflight(req, res, this.config));
    http.route('POST', '/webchat/session', (req, res) =>
      handleSessionRequest(req, res, {
        bridge: this.bridge,
        config: this.config,
        sessionLimiter,
        sessions: this.sessions,
        logger: this.logger,
        isStopping: () => this.stopping,
      }),
    );
    http.upgrade('/webchat/ws', (req, socket, head) => this.upgrade(req, socket, head));
  }

  async start(): Promise<void> {
    this.stopping = false;
    await this.widgetBundle();
    this.heartbeat = setInterval(() => this.checkHeartbeats(), HEARTBEAT_MS);
    this.heartbeat.unref();
    // The sockets are a live view of the transcript: after every commit of a conversation this
    // instance has sockets for (its own commits, and other instances' through the change feed), it
    // sends them the public messages they have not shown. No work item delivers web chat messages.
    this.unsubscribe = this.bridge.store.onChange((notice) => {
      if (!this.hub.watches(notice.conversationId)) return;
      this.catchUpAfterHold(notice.conversationId, notice.version);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeat);
    this.socketContext.refreshes.clear();
    this.unsubscribe?.();
    const closing = [...this.wss.clients].map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          // The widget reconnects on its own and replays anything it missed.
          socket.close(CloseCode.serverStopping, 'server restarting');
          setTimeout(() => {
            socket.terminate();
            resolve();
          }, 2000).unref();
        }),
    );
    await Promise.all(closing);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** Work items stored by versions before the live view (commits no longer address web chat). */
  async deliver(conversation: Conversation, message: Message): Promise<void> {
    if (message.visibility !== 'public') return;
    // No socket open: nothing is lost, the widget replays the transcript when it reconnects.
    this.hub.deliver(conversation.id, messageFrame(message, this.names, undefined, conversation.ticket));
    // Closing revokes the conversation's sessions: its sockets end once the notice has gone out.
    if (message.notice === 'closed' && conversation.state === 'closed') this.hub.end(conversation.id, CloseCode.conversationClosed, 'conversation closed');
  }

  embedSnippet(baseUrl?: string): string {
    return embedSnippet(baseUrl ?? this.config.publicUrl ?? '');
  }

  connectionCount(): number {
    return this.wss.clients.size;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.stopping) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n\r\n');
      return;
    }
    if (!originAllowed(req, this.config)) {
      this.logger.info({ origin: req.headers.origin }, 'web chat socket refused: origin not allowed');
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('pong', this.onPong);
      serveSocket(ws, this.socketContext, socket);
    });
  }

  private checkHeartbeats(): void {
    for (const ws of this.wss.clients) {
      // No pong since the last ping: the network dropped without a close. Free the slot.
      if (this.awaitingPong.has(ws)) {
        ws.terminate();
        continue;
      }
      this.awaitingPong.add(ws);
      ws.ping();
    }
  }

  /** Catches the conversation up once no message of this instance's sockets is being stored for it (the sender's own message comes first). */
  private catchUpAfterHold(conversationId: string, version: number): void {
    this.hub.afterHold(conversationId, () => {
      this.stale.set(conversationId, Math.max(version, this.stale.get(conversationId) ?? 0));
      void this.catchUp();
    });
  }

  /** Sends each socket of a changed conversation any public message it has not shown yet, in order. */
  private async catchUp(): Promise<void> {
    if (this.catchingUp) return;
    this.catchingUp = true;
    try {
      while (this.stale.size > 0) {
        const [conversationId, version] = this.stale.entries().next().value!;
        this.stale.delete(conversationId);
        const conversation = await this.bridge.store.getConversation(conversationId, { atLeast: version, readOnly: true }).catch(() => undefined);
        if (!conversation) continue;
        if (this.hub.isHeld(conversationId)) {
          this.catchUpAfterHold(conversationId, version); // held since it was marked: look again once it is released
          continue;
        }
        const { messages } = conversation;
        for (const connection of this.hub.connections(conversationId)) {
          // Transcripts only grow, so what a socket is done with stays done: look only after it.
          for (let i = connection.caughtUp <= messages.length ? connection.caughtUp : 0; i < messages.length; i++) {
            const message = messages[i]!;
            if (message.visibility === 'public' && !connection.hasShown(message.id)) connection.show(messageFrame(message, this.names, undefined, conversation.ticket));
          }
          // Each is shown now, or held by a socket still replaying, which shows it after the replay.
          connection.caughtUp = messages.length;
        }
        if (conversation.state === 'closed') this.hub.end(conversationId, CloseCode.conversationClosed, 'conversation closed');
      }
    } finally {
      this.catchingUp = false;
    }
  }

  private async widgetBundle(): Promise<WidgetBundle> {
    this.widget ??= buildWidget({
      brandName: this.config.brandName,
      assistantName: this.config.assistantName,
      maxMessageChars: this.config.maxMessageChars,
    }).catch((err: unknown) => {
      this.widget = undefined; // let the next request try again
      throw err;
    });
    return this.widget;
  }

  private async serveWidget(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const bundle = await this.widgetBundle();
    const headers = {
      'content-type': 'text/javascript; charset=utf-8',
      'cache-control': 'public, max-age=300',
      etag: bundle.etag,
      'access-control-allow-origin': '*',
      'x-content-type-options': 'nosniff',
    };
    if (req.headers['if-none-match'] === bundle.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, headers).end(bundle.code);
  }

  private serveDemo(req: IncomingMessage, res: ServerResponse): void {
    const base = this.config.publicUrl ?? this.requestBase(req);
    const wsBase = base.replace(/^http/i, 'ws');
    res
      .writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'strict-origin-when-cross-origin',
        'content-security-policy': [
          "default-src 'none'",
          `script-src 'self' ${base}`,
          "style-src 'unsafe-inline'",
          `connect-src 'self' ${base} ${wsBase}`,
          'img-src data:',
          "base-uri 'none'",
          "form-action 'none'",
          "frame-ancestors 'none'",
        ].join('; '),
      })
      .end(demoPage({ brandName: this.config.brandName, assistantName: this.config.assistantName, baseUrl: base }));
  }

  private requestBase(req: IncomingMessage): string {
    const forwarded = this.config.trustProxy ? String(req.headers['x-forwarded-proto'] ?? '').split(',')[0]?.trim() : '';
    const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
    const proto = forwarded === 'https' || forwarded === 'http' ? forwarded : encrypted ? 'https' : 'http';
    const host = (req.headers.host ?? 'localhost').replace(/[^A-Za-z0-9.:[\]-]/g, '');
    return `${proto}://${host}`;
  }
}
