/**
 * Files an operator shares in a thread, made reachable for the customer. Slack file URLs need the
 * bot token, so the customer gets a signed, expiring link to this server, which fetches the file
 * from Slack (files.info, then url_private_download with the token) and streams it back.
 * The token is only ever sent to Slack's own file hosts (or the configured API host, for tests).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import type { SlackFile } from './parse.ts';

/** Path prefix of the signed file links. */
export const FILES_PATH = '/slack/files/';

export interface SlackFilesOptions {
  http: HttpServer;
  /** Public base URL of this server, e.g. https://bridge.example.com */
  publicUrl: string;
  /** Key for the link signatures. */
  secret: string;
  botToken: string;
  /** The Web API base URL; its host is trusted with the token besides Slack's file hosts. */
  apiUrl: string;
  fileInfo: (fileId: string) => Promise<{ file?: SlackFile }>;
  logger: Logger;
  /** How long a link works. */
  ttlSeconds?: number;
}

export class SlackFiles {
  private readonly ttlSeconds: number;

  constructor(private readonly options: SlackFilesOptions) {
    this.ttlSeconds = options.ttlSeconds ?? 30 * 24 * 3600;
    options.http.routePrefix('GET', FILES_PATH, (req, res) => this.serve(req, res));
  }

  /** A signed link the customer can open, or undefined if the file has no id. */
  link(file: SlackFile, nowMs = Date.now()): string | undefined {
    if (typeof file.id !== 'string' || !/^F[A-Z0-9]+$/.test(file.id)) return undefined;
    const expires = Math.floor(nowMs / 1000) + this.ttlSeconds;
    const label = [file.name, file.title].find((v): v is string => typeof v === 'string' && v.length > 0) ?? 'file';
    const name = encodeURIComponent(label.slice(0, 120));
    const base = this.options.publicUrl.replace(/\/+$/, '');
    return `${base}${FILES_PATH}${file.id}/${name}?exp=${expires}&sig=${this.sign(file.id, expires)}`;
  }

  private sign(fileId: string, expires: number): string {
    return createHmac('sha256', this.options.secret).update(`slack-file:${fileId}:${expires}`).digest('base64url');
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const fileId = url.pathname.slice(FILES_PATH.length).split('/')[0] ?? '';
    const expires = Number(url.searchParams.get('exp'));
    const sig = url.searchParams.get('sig') ?? '';
    const expected = Buffer.from(this.sign(fileId, expires));
    const valid = /^F[A-Z0-9]+$/.test(fileId) && Number.isFinite(expires) && expires * 1000 > Date.now() && sig.length === expected.length && timingSafeEqual(Buffer.from(sig), expected);
    if (!valid) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('This link is invalid or has expired.');
      return;
    }
    try {
      const info = await this.options.fileInfo(fileId);
      const source = info.file?.url_private_download ?? info.file?.url_private;
      if (!source || !this.trusted(source)) throw new Error(`no trusted download URL for ${fileId}`);
      const upstream = await fetch(source, { headers: { authorization: `Bearer ${this.options.botToken}` }, redirect: 'follow' });
      if (!upstream.ok || !upstream.body) throw new Error(`Slack answered ${upstream.status} for ${fileId}`);
      const name = (info.file?.name ?? 'file').replace(/["\r\n]/g, '');
      res.writeHead(200, {
        'content-type': info.file?.mimetype ?? upstream.headers.get('content-type') ?? 'application/octet-stream',
        'content-disposition': `attachment; filename="${name.replace(/[^\x20-\x7e]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`,
        'x-content-type-options': 'nosniff',
        'cache-control': 'private, max-age=300',
      });
      Readable.fromWeb(upstream.body as import('node:stream/web').ReadableStream).pipe(res);
    } catch (err) {
      this.options.logger.warn({ fileId, err: (err as Error).message }, 'could not relay a slack file');
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('The file could not be fetched from Slack.');
      else res.destroy();
    }
  }

  /** Only Slack's file hosts (and the configured API host) ever see the bot token. */
  private trusted(source: string): boolean {
    try {
      const host = new URL(source).host;
      return host === 'files.slack.com' || host.endsWith('.slack.com') || host === new URL(this.options.apiUrl).host;
    } catch {
      return false;
    }
  }
}
