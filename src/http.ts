/**
 * One HTTP server on PORT for everything: Slack events, the Bot Framework endpoint, the web chat
 * (pages + WebSocket upgrade) and /healthz. Adapters register routes; the server knows none of them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from './log.ts';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export class HttpServer {
  private readonly routes = new Map<string, RouteHandler>();
  private readonly prefixRoutes: Array<{ method: string; prefix: string; handler: RouteHandler }> = [];
  private readonly upgrades = new Map<string, UpgradeHandler>();
  private server?: Server;
  private ready = false;

  constructor(private readonly logger: Logger) {
    this.route('GET', '/healthz', (_req, res) => {
      res.writeHead(this.ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: this.ready }));
    });
  }

  /** Exact-path route. */
  route(method: string, path: string, handler: RouteHandler): void {
    this.routes.set(`${method.toUpperCase()} ${path}`, handler);
  }

  /** Route for every path under `prefix` (e.g. `/webchat/`). */
  routePrefix(method: string, prefix: string, handler: RouteHandler): void {
    this.prefixRoutes.push({ method: method.toUpperCase(), prefix, handler });
  }

  /** WebSocket (or other) upgrade on an exact path. */
  upgrade(path: string, handler: UpgradeHandler): void {
    this.upgrades.set(path, handler);
  }

  /** /healthz answers 200 once this is set. */
  setReady(ready: boolean): void {
    this.ready = ready;
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    const server = createServer((req, res) => void this.dispatch(req, res));
    server.on('upgrade', (req, socket, head) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const handler = this.upgrades.get(path);
      if (!handler) return socket.destroy();
      handler(req, socket, head);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address();
    return typeof address === 'object' && address ? address.port : port;
  }

  /** Stops accepting connections and waits for open requests to finish. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.ready = false;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 5000).unref();
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const handler =
      this.routes.get(`${method} ${path}`) ??
      this.prefixRoutes.find((r) => r.method === method && path.startsWith(r.prefix))?.handler;
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    try {
      await handler(req, res);
    } catch (err) {
      this.logger.error({ err, path }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error');
    }
  }
}

/** Reads a request body up to `limit` bytes; rejects larger bodies instead of buffering them. */
export async function readBody(req: IncomingMessage, limit = 1_000_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw Object.assign(new Error(`request body over ${limit} bytes`), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
