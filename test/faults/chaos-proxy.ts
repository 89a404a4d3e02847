/**
 * A chaos HTTP proxy in front of the Slack Web API emulator. For `chat.postMessage` it answers a
 * share of the calls itself (429 with Retry-After, or 500) without forwarding them, and for another
 * share it forwards the call, waits until the emulator has stored the post and answered, then
 * destroys the connection: the bridge never learns that the post exists. Every other method passes
 * through. The faults come from a seeded generator, so a seed gives the same sequence of faults.
 */
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { seeded } from './util.ts';

export interface ChaosSettings {
  /** Share of chat.postMessage calls answered 429 or 500 (half each) without forwarding. */
  rate: number;
  /** Share of chat.postMessage calls forwarded, then answered by a dropped connection. */
  dropRate: number;
  /** Retry-After (seconds) on a 429. */
  retryAfterSeconds: number;
  /** Every chat.postMessage answered 429 with `retryAfterSeconds`. */
  storm: boolean;
}

export interface ChaosStats {
  /** chat.postMessage calls seen. */
  posts: number;
  rateLimited: number;
  serverErrors: number;
  /** Forwarded (the emulator stored the post), then the answer was dropped. */
  dropped: number;
}

const CHAOS_METHODS = new Set(['chat.postMessage']);

export class ChaosProxy {
  readonly settings: ChaosSettings;
  readonly stats: ChaosStats = { posts: 0, rateLimited: 0, serverErrors: 0, dropped: 0 };
  private readonly random: () => number;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly target: URL;
  private server?: Server;
  origin = '';

  constructor(target: string, options: { seed?: number; rate?: number; dropRate?: number; retryAfterSeconds?: number } = {}) {
    this.target = new URL(target);
    this.random = seeded(options.seed ?? 1);
    this.settings = { rate: options.rate ?? 0.2, dropRate: options.dropRate ?? 0.05, retryAfterSeconds: options.retryAfterSeconds ?? 1, storm: false };
  }

  /** The Web API base URL to give the bridge (SLACK_API_URL). */
  get url(): string {
    return `${this.origin}/api/`;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.agent.destroy();
  }

  /** Every chat.postMessage answered 429 with Retry-After `retryAfterSeconds`, until `calm()`. */
  storm(retryAfterSeconds = 3): void {
    this.settings.storm = true;
    this.settings.retryAfterSeconds = retryAfterSeconds;
  }

  /** Back to the configured rates (`rate` 0 passes everything). */
  calm(settings: Partial<Omit<ChaosSettings, 'storm'>> = {}): void {
    Object.assign(this.settings, settings, { storm: false });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const method = new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/api\//, '');
    let drop = false;
    if (CHAOS_METHODS.has(method)) {
      this.stats.posts += 1;
      const { rate, dropRate, retryAfterSeconds, storm } = this.settings;
      const roll = this.random();
      const half = this.random();
      if (storm || roll < rate) {
        if (storm || half < 0.5) {
          this.stats.rateLimited += 1;
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(retryAfterSeconds) }).end(JSON.stringify({ ok: false, error: 'ratelimited' }));
        } else {
          this.stats.serverErrors += 1;
          res.writeHead(500, { 'content-type': 'text/html' }).end('<html>internal error</html>');
        }
        return;
      }
      drop = roll < rate + dropRate;
    }
    const headers = { ...req.headers, host: this.target.host };
    delete headers.connection;
    const upstream = request({ host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers, agent: this.agent }, (answer) => {
      const parts: Buffer[] = [];
      answer.on('data', (c: Buffer) => parts.push(c));
      answer.on('end', () => {
        if (drop) {
          // The emulator stored the post; the bridge gets a reset instead of the answer.
          this.stats.dropped += 1;
          req.socket.destroy();
          return;
        }
        const out = Buffer.concat(parts);
        const copy: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value !== undefined && !['connection', 'transfer-encoding', 'content-length', 'keep-alive'].includes(name)) copy[name] = value;
        }
        res.writeHead(answer.statusCode ?? 502, { ...copy, 'content-length': String(out.length) }).end(out);
      });
      answer.on('error', () => req.socket.destroy());
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end('bad gateway');
    });
    upstream.end(body);
  }
}
