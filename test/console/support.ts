/**
 * Boots the real console for tests, the way app.ts does: a bridge (SQLite by default), the shared
 * HTTP server on a loopback port, the console on it as a workspace reading through
 * `redactedPort` (so it sees only redacted copies), and a customer channel (a
 * recording one, or the real web chat). `OperatorClient` is what a browser does: it signs in with
 * a token link, keeps the cookie and CSRF token, calls the API and listens on the WebSocket.
 */
import { WebSocket } from 'ws';
import { createConsoleWorkspace, type ConsoleConfig, type ConsoleWorkspace } from '../../adapters/console/index.ts';
import { createWebChat, type WebChat } from '../../adapters/webchat/index.ts';
import type { InboxRow, ServerFrame, ThreadView } from '../../cards/console/types.ts';
import type { Agent } from '../../src/agent/agent.ts';
import type { Bridge } from '../../src/bridge.ts';
import { redactedPort } from '../../src/engine/redact.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import type { Workspace } from '../../src/ports.ts';
import type { Store } from '../../src/store/store.ts';
import { createTestBridge, waitFor, type TestBridge } from '../support/harness.ts';
import { MemoryChannel } from '../support/memory-ports.ts';

export const CONSOLE_TOKEN = 'test-console-token-0123456789';
export const SESSION_SECRET = 'test-session-secret-0123456789abcdef';

/** Dana and Sam operate; Lee manages (read-only). */
export const TEST_OPERATORS: NonNullable<ConsoleConfig['operators']> = [
  { id: 'dana', name: 'Dana Scully', role: 'operator' },
  { id: 'sam', name: 'Sam Tran', role: 'operator' },
  { id: 'lee', name: 'Lee Chen', role: 'manager' },
];

export interface ConsoleRig {
  bridge: Bridge;
  harness: TestBridge;
  console: ConsoleWorkspace;
  http: HttpServer;
  baseUrl: string;
  /** Present unless the rig runs the real web chat. */
  customer: MemoryChannel;
  webchat?: WebChat;
  /** Signs in as a configured person through the shared token, as a browser would. */
  signIn(operatorId: string): Promise<OperatorClient>;
  /** Waits until committed work is done and the console has pushed what it saw. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export async function startConsole(
  options: {
    config?: Partial<ConsoleConfig>;
    agent?: Agent;
    /** Serve the real web chat (customer page at `/`) instead of a recording channel. */
    webchat?: boolean;
    store?: Store;
    startWorkers?: boolean;
    /** Other workspaces beside the console (a claim there must show here). */
    workspaces?: Workspace[];
  } = {},
): Promise<ConsoleRig> {
  const customer = new MemoryChannel();
  const harness = await createTestBridge({
    ...(options.agent ? { agent: options.agent } : {}),
    ...(options.store ? { store: options.store } : {}),
    ...(options.startWorkers === false ? { startWorkers: false } : {}),
    channels: options.webchat ? [] : [customer],
    workspaces: options.workspaces ?? [],
  });
  const http = new HttpServer(silentLogger());
  let webchat: WebChat | undefined;
  if (options.webchat) {
    webchat = createWebChat({ bridge: harness.bridge, http, logger: silentLogger(), config: { sessionSecret: SESSION_SECRET, brandName: 'Northwind' } });
    harness.bridge.addChannel(webchat);
    await webchat.start();
  }
  const workspace = createConsoleWorkspace({
    bridge: redactedPort(harness.bridge, harness.bridge.redactor),
    http,
    logger: silentLogger(),
    config: { operators: TEST_OPERATORS, token: CONSOLE_TOKEN, brandName: 'Northwind', ...options.config },
  });
  harness.bridge.addWorkspace(workspace);
  const port = await http.listen(0, '127.0.0.1');
  await workspace.start();
  http.setReady(true);
  const baseUrl = `http://127.0.0.1:${port}`;
  const clients: OperatorClient[] = [];
  const rig: ConsoleRig = {
    bridge: harness.bridge,
    harness,
    console: workspace,
    http,
    baseUrl,
    customer,
    ...(webchat ? { webchat } : {}),
    async signIn(operatorId) {
      const client = await OperatorClient.signIn(baseUrl, { token: options.config?.token ?? CONSOLE_TOKEN, operator: operatorId });
      clients.push(client);
      return client;
    },
    async settle() {
      for (let round = 0; round < 3; round++) {
        await harness.bridge.idle();
        await workspace.idle();
      }
    },
    async close() {
      for (const client of clients) client.close();
      await harness.bridge.idle();
      await workspace.stop();
      await webchat?.stop();
      await http.close();
      await harness.close();
    },
  };
  return rig;
}

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  body: T & { error?: { code: string; message: string } };
}

/** A signed-in browser, without the browser: cookie, CSRF token, API calls and the live socket. */
export class OperatorClient {
  readonly frames: ServerFrame[] = [];
  private ws: WebSocket | undefined;
  csrf = '';
  /** The close code, once the server closed the socket. */
  closedWith: number | undefined;

  private constructor(
    readonly baseUrl: string,
    readonly cookie: string,
  ) {}

  /** POSTs the sign-in form (token, and who you are for the shared token) and keeps the session cookie. */
  static async signIn(baseUrl: string, form: { token: string; operator?: string }): Promise<OperatorClient> {
    const response = await fetch(`${baseUrl}/console/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: baseUrl },
      body: new URLSearchParams({ token: form.token, ...(form.operator ? { operator: form.operator } : {}) }).toString(),
      redirect: 'manual',
    });
    const cookie = sessionCookie(response);
    if (!cookie) throw new Error(`sign-in refused: ${response.status} ${await response.text()}`);
    const client = new OperatorClient(baseUrl, cookie);
    const session = await client.get<{ csrf: string }>('session');
    client.csrf = session.body.csrf;
    return client;
  }

  /** The same browser session against another instance (a load balancer sending it elsewhere). */
  at(baseUrl: string): OperatorClient {
    const client = new OperatorClient(baseUrl, this.cookie);
    client.csrf = this.csrf;
    return client;
  }

  async get<T = Record<string, unknown>>(path: string): Promise<ApiAnswer<T>> {
    const response = await fetch(`${this.baseUrl}/console/api/${path}`, { headers: { cookie: this.cookie } });
    return { status: response.status, body: (await response.json()) as ApiAnswer<T>['body'] };
  }

  async post<T = Record<string, unknown>>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer<T>> {
    const response = await fetch(`${this.baseUrl}/console/api/${path}`, {
      method: 'POST',
      headers: { cookie: this.cookie, origin: this.baseUrl, 'content-type': 'application/json', 'x-console-csrf': this.csrf, ...headers },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as ApiAnswer<T>['body'] };
  }

  /** An action on a conversation, as the page's buttons do it. */
  act(conversationId: string, action: string, body: Record<string, unknown> = {}): Promise<ApiAnswer<{ ok?: true; view?: ThreadView; delivered?: boolean }>> {
    return this.post(`conversations/${conversationId}/${action}`, body);
  }

  async view(conversationId: string): Promise<ThreadView> {
    const answer = await this.get<{ view: ThreadView }>(`conversations/${conversationId}`);
    if (answer.status !== 200) throw new Error(`GET view answered ${answer.status}`);
    return answer.body.view;
  }

  /** Opens the live socket and waits for its hello. */
  async connect(): Promise<void> {
    const ws = new WebSocket(`${this.baseUrl.replace(/^http/, 'ws')}/console/ws`, { headers: { cookie: this.cookie, origin: this.baseUrl } });
    this.ws = ws;
    ws.on('message', (data) => this.frames.push(JSON.parse(String(data)) as ServerFrame));
    ws.on('close', (code) => (this.closedWith = code));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await waitFor(() => this.frames.some((f) => f.type === 'hello'), { what: 'the console hello' });
  }

  /** Shows a conversation (the socket then pushes its thread on every change). */
  show(conversationId: string | null): void {
    this.ws?.send(JSON.stringify({ type: 'open', conversationId }));
  }

  /** The newest thread view pushed for a conversation. */
  thread(conversationId: string): ThreadView | undefined {
    let latest: ThreadView | undefined;
    for (const f of this.frames) if (f.type === 'thread' && f.view.row.id === conversationId && (!latest || f.view.row.version >= latest.row.version)) latest = f.view;
    return latest;
  }

  /** The inbox as this socket knows it: the hello's rows, updated by every push. */
  inbox(): Map<string, InboxRow> {
    const rows = new Map<string, InboxRow>();
    for (const f of this.frames) {
      const incoming = f.type === 'hello' ? f.inbox : f.type === 'rows' ? f.rows : f.type === 'thread' ? [f.view.row] : [];
      for (const row of incoming) if ((rows.get(row.id)?.version ?? -1) <= row.version) rows.set(row.id, row);
    }
    return rows;
  }

  notices(): string[] {
    return this.frames.filter((f): f is Extract<ServerFrame, { type: 'notice' }> => f.type === 'notice').map((f) => f.text);
  }

  async waitThread(conversationId: string, check: (view: ThreadView) => boolean, what: string): Promise<ThreadView> {
    return waitFor(
      () => {
        const view = this.thread(conversationId);
        return view && check(view) ? view : undefined;
      },
      { what, timeoutMs: 10_000 },
    );
  }

  async waitRow(conversationId: string, check: (row: InboxRow) => boolean, what: string): Promise<InboxRow> {
    return waitFor(
      () => {
        const row = this.inbox().get(conversationId);
        return row && check(row) ? row : undefined;
      },
      { what, timeoutMs: 10_000 },
    );
  }

  get socket(): WebSocket | undefined {
    return this.ws;
  }

  close(): void {
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) this.ws.close();
  }
}

export function sessionCookie(response: Response): string | undefined {
  const header = response.headers.getSetCookie().find((c) => c.startsWith('hb_console=') && !c.startsWith('hb_console=;'));
  return header?.split(';')[0];
}
