/**
 * The operator console: a workspace served by the bridge itself at /console, so the whole
 * takeover runs on one machine with no Slack app or Azure bot, and managers can watch every
 * conversation in one place beside Slack and Teams.
 *
 * Unlike Slack and Teams it keeps no copy of anything: the inbox and threads are built from the
 * conversations as stored, re-read whenever the store's change feed says one changed (so a claim in
 * Slack, or on another instance, shows at once), and pushed over a WebSocket to signed-in browsers.
 * The Workspace port calls (from the bridge's delivery workers, at least once, in order) only keep
 * the list of conversations to show and deliver private notices; repeating any of them is harmless.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import type { Digest } from '../../src/engine/digest.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import type { BridgePort, DeliveryAttempt, Service, Workspace } from '../../src/ports.ts';
import { formatDuration } from '../../cards/console/inbox.ts';
import { digestText, managersAlert } from '../../cards/console/notices.ts';
import { threadView } from '../../cards/console/thread.ts';
import type { ClientFrame } from '../../cards/console/types.ts';
import { buildConsoleApp, type ConsoleBundle } from './app-bundle.ts';
import { bridgeOperator, ConsoleAuth, originOk, type Session } from './auth.ts';
import { resolveConsoleConfig, type ConsoleConfig, type ConsoleOperator, type ResolvedConsoleConfig } from './config.ts';
import { ConversationDirectory } from './directory.ts';
import { ConsoleClient, ConsoleHub } from './hub.ts';
import { LiveInbox } from './live.ts';
import { NoticeBox } from './notices.ts';
import { ConsoleRoutes, viewerOf } from './routes.ts';

export interface ConsoleWorkspaceOptions {
  bridge: BridgePort;
  /** The shared HTTP server; routes are registered on it at once. */
  http: HttpServer;
  logger?: Logger;
  config: ConsoleConfig;
  /** The bridge's note prefix (NOTE_PREFIX), shown in the reply box. Default `//`. */
  notePrefix?: string;
}

/** How to sign in, for the start-up banner. */
export interface SignInLink {
  operator: Pick<ConsoleOperator, 'id' | 'name' | 'role'>;
  /** `/console?token=…` (join it to the public base URL). */
  path: string;
  /** `one-time`: works once (printed at start-up); `shared`: CONSOLE_TOKEN, reusable. */
  kind: 'one-time' | 'shared';
}

/** Close codes the console page understands. */
export const CloseCode = { signedOut: 4401, serverStopping: 1001 } as const;

const HEARTBEAT_MS = 30_000;
const SESSION_CHECK_MS = 60_000;
const NOTICE_POLL_MS = 2_000;

export class ConsoleWorkspace implements Workspace, Service {
  readonly name = 'console';
  readonly config: ResolvedConsoleConfig;
  private readonly bridge: BridgePort;
  private readonly logger: Logger;
  private readonly auth: ConsoleAuth;
  private readonly directory: ConversationDirectory;
  private readonly live: LiveInbox;
  private readonly hub = new ConsoleHub();
  private readonly notices: NoticeBox;
  private readonly routes: ConsoleRoutes;
  private readonly wss: WebSocketServer;
  private bundlePromise: Promise<ConsoleBundle> | undefined;
  private links: SignInLink[] = [];
  private unsubscribe: (() => void) | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;

  constructor(options: ConsoleWorkspaceOptions) {
    this.config = resolveConsoleConfig(options.config);
    this.bridge = options.bridge;
    this.logger = (options.logger ?? options.bridge.logger).child({ workspace: 'console' });
    const store = this.bridge.store;
    const kv = store.kv('console');
    const withLock = <T>(key: string, fn: () => Promise<T>) => store.withLock(key, fn);
    this.auth = new ConsoleAuth(kv, (key, ttl) => store.once(key, ttl), this.config);
    this.directory = new ConversationDirectory(kv, withLock, this.config.closedKept);
    this.notices = new NoticeBox(kv, withLock, (counter) => store.increment(counter), this.config.clock);
    this.live = new LiveInbox({
      load: (id) => this.bridge.getConversation(id),
      changed: (conversation, row) => this.hub.changed(conversation, row),
      logger: this.logger,
      closedKept: this.config.closedKept,
    });
    this.routes = new ConsoleRoutes({
      bridge: this.bridge,
      config: this.config,
      auth: this.auth,
      live: this.live,
      logger: this.logger,
      notePrefix: options.notePrefix ?? '//',
      bundle: () => this.bundle(),
      signInLink: (operatorId) => this.createSignInLink(operatorId),
      isStopping: () => this.stopping,
      signedOut: (key) => {
        for (const client of this.hub.all()) if (client.session.key === key) this.endSocket(client);
      },
    });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });

    const http = options.http;
    http.route('GET', '/console', (req, res) => this.routes.page(req, res));
    http.route('GET', '/console/', (_req, res) => void res.writeHead(308, { location: '/console' }).end());
    http.route('POST', '/console/signin', (req, res) => this.routes.signInPost(req, res));
    http.route('GET', '/console/app.js', (req, res) => this.routes.asset(req, res, 'js'));
    http.route('GET', '/console/app.css', (req, res) => this.routes.asset(req, res, 'css'));
    http.routePrefix('GET', '/console/api/', (req, res) => this.routes.api(req, res));
    http.routePrefix('POST', '/console/api/', (req, res) => this.routes.api(req, res));
    http.upgrade('/console/ws', (req, socket, head) => {
      this.upgrade(req, socket, head).catch((err: unknown) => {
        this.logger.warn({ err: String(err) }, 'console socket upgrade failed');
        socket.destroy();
      });
    });
  }

  /** Builds the page's code, loads the inbox, follows the change feed, and mints start-up sign-in links. */
  async start(): Promise<void> {
    this.stopping = false;
    await this.bundle();
    this.unsubscribe = this.bridge.store.onChange((notice) => {
      const id = notice.conversationId;
      if (notice.destinations.includes(this.name) || this.live.has(id) || this.hub.watching(id)) this.live.refresh(id);
    });
    // The live queue comes from the bridge itself (even conversations from before the console ran);
    // the list adds the recent ones with the agent or closed.
    for (const state of ['waiting', 'human'] as const) for (const c of await this.bridge.conversationsIn(state)) this.live.offer(c);
    for (const entry of await this.directory.list()) if (!this.live.has(entry.id)) this.live.refresh(entry.id);
    await this.live.idle();
    this.timers.push(setInterval(() => this.heartbeat(), HEARTBEAT_MS), setInterval(() => void this.checkSessions(), SESSION_CHECK_MS));
    // One SQLite instance delivers every notice itself; on Redis another instance may have.
    if (this.bridge.store.backend !== 'sqlite') this.timers.push(setInterval(() => void this.pollNotices(), NOTICE_POLL_MS));
    for (const timer of this.timers) timer.unref();
    this.links = await this.startupLinks();
    this.logger.info({ operators: this.config.operators.length, conversations: this.live.list().length }, 'console started');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.live.stop();
    const closing = [...this.wss.clients].map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          // The page reconnects on its own.
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

  /** Resolves when every change seen so far has been read and pushed (tests). */
  async idle(): Promise<void> {
    await this.live.idle();
    await new Promise((r) => setImmediate(r));
  }

  /** How to sign in, minted at start: CONSOLE_TOKEN's link, or a one-time link per person without a token of their own. */
  signInLinks(): SignInLink[] {
    return this.links;
  }

  /** A new one-time sign-in link (path and query) for a configured person. */
  async createSignInLink(operatorId: string): Promise<string> {
    return `/console?token=${await this.auth.createSignInToken(operatorId)}`;
  }

  /** Signed-in browsers connected to this instance. */
  connectionCount(): number {
    return this.hub.size();
  }

  // ---- the Workspace port ---------------------------------------------------------------

  async mirror(conversation: Conversation, _message: Message, _attempt?: DeliveryAttempt): Promise<void> {
    await this.directory.note(conversation);
    this.live.offer(conversation);
  }

  async postBriefing(conversation: Conversation, _attempt?: DeliveryAttempt): Promise<void> {
    await this.directory.note(conversation);
    this.live.offer(conversation);
  }

  async ownershipChanged(conversation: Conversation, _change: HistoryEntry, _attempt?: DeliveryAttempt): Promise<void> {
    await this.directory.note(conversation);
    this.live.offer(conversation);
  }

  /** Kept for the person's sockets on every instance; shown at once on this one's. */
  async notifyOperator(operator: Operator, text: string, conversation?: Conversation, attempt?: DeliveryAttempt): Promise<void> {
    if (!operator.id.startsWith('console:')) return;
    const stored = await this.notices.add(operator.id, { text, ...(conversation ? { conversationId: conversation.id, ticket: conversation.ticket } : {}) }, deliveryKey(attempt));
    if (stored) await this.deliverNotices(operator.id);
  }

  /** An escalation nobody claimed in time: every manager is told (the inbox already shows it red). */
  async postToManagers(conversation: Conversation, attempt?: DeliveryAttempt): Promise<void> {
    await this.directory.note(conversation);
    this.live.offer(conversation);
    const row = this.live.row(conversation.id);
    const waited = row?.waitingSince ? formatDuration(this.config.clock() - Date.parse(row.waitingSince)) : undefined;
    await this.tellManagers({ text: managersAlert(conversation, waited), conversationId: conversation.id, ticket: conversation.ticket }, deliveryKey(attempt) ?? `managers:${conversation.id}:${conversation.history.length}`);
  }

  /** The managers' daily digest, as a notice to every manager. */
  async postDigest(digest: Digest): Promise<void> {
    await this.tellManagers({ text: digestText(digest) }, `digest:${digest.date}`);
  }

  // ---- sockets --------------------------------------------------------------------------

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.stopping) return void socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n\r\n');
    if (!originOk(req, this.config.publicUrl)) {
      this.logger.info({ origin: req.headers.origin }, 'console socket refused: another origin');
      return void socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
    }
    let session: Session | undefined;
    try {
      session = await this.auth.session(req);
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'console socket: could not read the session');
      return void socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n\r\n');
    }
    if (!session) return void socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.serve(ws, session));
  }

  private async serve(ws: WebSocket, session: Session): Promise<void> {
    const client = new ConsoleClient(ws, session);
    ws.on('pong', () => (client.awaitingPong = false));
    ws.on('error', (err) => this.logger.debug({ err: String(err) }, 'console socket error'));
    ws.on('close', () => this.hub.remove(client));
    ws.on('message', (data, isBinary) => void this.onFrame(client, data, isBinary));
    client.lastNotice = await this.notices.latest(client.operatorId).catch(() => 0);
    this.hub.add(client);
    client.send({ type: 'hello', me: viewerOf(session), inbox: this.live.list(), serverTime: this.config.clock() });
  }

  private async onFrame(client: ConsoleClient, data: RawData, isBinary: boolean): Promise<void> {
    if (isBinary) return;
    let frame: ClientFrame;
    try {
      frame = JSON.parse(String(data)) as ClientFrame;
    } catch {
      return;
    }
    if (frame?.type !== 'open') return;
    const id = typeof frame.conversationId === 'string' && /^[A-Za-z0-9_-]{1,100}$/.test(frame.conversationId) ? frame.conversationId : undefined;
    // Registered before the read, so a change committed meanwhile is pushed too.
    client.open = id;
    if (!id) return;
    try {
      const conversation = await this.bridge.getConversation(id);
      if (client.open !== id) return;
      if (!conversation) return client.send({ type: 'gone', conversationId: id });
      client.send({ type: 'thread', view: threadView(conversation, client.viewer) });
      this.live.offer(conversation);
    } catch (err) {
      this.logger.warn({ conversationId: id, err: String(err) }, 'console could not open a conversation');
      this.live.refresh(id);
    }
  }

  private async tellManagers(notice: { text: string; conversationId?: string; ticket?: string }, key: string): Promise<void> {
    for (const manager of this.config.operators.filter((o) => o.role === 'manager')) {
      const id = bridgeOperator(manager).id;
      if (await this.notices.add(id, notice, key)) await this.deliverNotices(id);
    }
  }

  /** Sends each of the person's sockets on this instance the notices it has not had. */
  private async deliverNotices(operatorId: string): Promise<void> {
    const clients = this.hub.all().filter((c) => c.operatorId === operatorId);
    if (clients.length === 0) return;
    const since = Math.min(...clients.map((c) => c.lastNotice));
    const notices = await this.notices.since(operatorId, since);
    for (const client of clients) {
      for (const n of notices) {
        if (n.seq <= client.lastNotice) continue;
        client.lastNotice = n.seq;
        client.send({ type: 'notice', id: n.id, text: n.text, at: n.at, ...(n.conversationId ? { conversationId: n.conversationId } : {}), ...(n.ticket ? { ticket: n.ticket } : {}) });
      }
    }
  }

  private async pollNotices(): Promise<void> {
    const operators = new Set(this.hub.all().map((c) => c.operatorId));
    for (const id of operators) await this.deliverNotices(id).catch(() => {});
  }

  private heartbeat(): void {
    for (const client of this.hub.all()) {
      // No pong since the last ping: the network dropped without a close.
      if (client.awaitingPong) {
        client.socket.terminate();
        continue;
      }
      client.awaitingPong = true;
      client.socket.ping();
    }
  }

  /** Ends sockets whose session was signed out (on any instance) or expired. */
  private async checkSessions(): Promise<void> {
    for (const client of this.hub.all()) {
      const session = await this.auth.sessionByKey(client.session.key).catch(() => client.session);
      if (!session) this.endSocket(client);
    }
  }

  private endSocket(client: ConsoleClient): void {
    client.send({ type: 'signed-out', reason: 'Your session ended. Sign in again.' });
    client.socket.close(CloseCode.signedOut, 'signed out');
  }

  private async startupLinks(): Promise<SignInLink[]> {
    const pick = (o: ConsoleOperator) => ({ id: o.id, name: o.name, role: o.role });
    if (this.config.token) {
      const single = this.config.operators.length === 1 ? this.config.operators[0]! : undefined;
      return [{ operator: single ? pick(single) : { id: '*', name: 'anyone configured', role: 'operator' }, path: `/console?token=${encodeURIComponent(this.config.token)}`, kind: 'shared' }];
    }
    const links: SignInLink[] = [];
    for (const operator of this.config.operators) {
      if (operator.token) continue;
      links.push({ operator: pick(operator), path: await this.createSignInLink(operator.id), kind: 'one-time' });
    }
    return links;
  }

  private bundle(): Promise<ConsoleBundle> {
    this.bundlePromise ??= buildConsoleApp().catch((err: unknown) => {
      this.bundlePromise = undefined; // let the next request try again
      throw err;
    });
    return this.bundlePromise;
  }
}

/** The delivery core's key for this item (stable across retries), unless it is a direct call. */
function deliveryKey(attempt: DeliveryAttempt | undefined): string | undefined {
  return attempt && attempt.key !== 'direct' ? attempt.key : undefined;
}
