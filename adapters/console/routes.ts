/**
 * The console's HTTP side, on the bridge's one server:
 *   GET  /console                 the app (signed in), a sign-in page (not), or a token link
 *   POST /console/signin          uses a sign-in token (form post from the sign-in pages)
 *   GET  /console/app.js|app.css  the bundled app
 *   GET  /console/api/...         session, inbox, one conversation, find by ticket, today's figures
 *   POST /console/api/...         actions (claim, decide, reply, return, release, transfer, close,
 *                                 reveal, route), sign-in links, sign out
 * Actions need the session cookie, a same-origin request, a JSON body and the session's CSRF token
 * in a header; managers may read everything and act on nothing. A reveal's original text is in
 * that one response only: never pushed, stored as a notice or logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { AlreadyClaimedError, BridgeError, DuplicateInboundError, InputError } from '../../src/errors.ts';
import { readBody } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation } from '../../src/model.ts';
import type { BridgePort } from '../../src/ports.ts';
import { dayLine } from '../../cards/console/notices.ts';
import { threadView } from '../../cards/console/thread.ts';
import type { ConsoleSettings, ViewerView } from '../../cards/console/types.ts';
import { bridgeOperator, csrfOk, originOk, type ConsoleAuth, type Session } from './auth.ts';
import type { ConsoleBundle } from './app-bundle.ts';
import type { ConsoleOperator, ResolvedConsoleConfig } from './config.ts';
import type { LiveInbox } from './live.ts';
import { appShell, signInPage, type SignInState } from './pages.ts';

export interface RoutesContext {
  bridge: BridgePort;
  config: ResolvedConsoleConfig;
  auth: ConsoleAuth;
  live: LiveInbox;
  logger: Logger;
  notePrefix: string;
  bundle(): Promise<ConsoleBundle>;
  /** A sign-in link for `operatorId` (path and query), minted now. */
  signInLink(operatorId: string): Promise<string>;
  isStopping(): boolean;
  /** A session ended here: close its sockets on this instance (others notice within a minute). */
  signedOut(sessionKey: string): void;
}

const HTML_HEADERS = (req: IncomingMessage): Record<string, string> => {
  const host = (req.headers.host ?? 'localhost').replace(/[^A-Za-z0-9.:[\]-]/g, '');
  return {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'same-origin',
    'content-security-policy': [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      `connect-src 'self' ws://${host} wss://${host}`,
      "img-src 'self' data:",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join('; '),
  };
};

/** A tiny per-address limiter for sign-in attempts: tokens are long, but nobody needs 20 tries a minute. */
class AttemptLimiter {
  private readonly hits = new Map<string, { count: number; since: number }>();
  constructor(
    private readonly perMinute: number,
    private readonly clock: () => number,
  ) {}
  allow(key: string): boolean {
    const now = this.clock();
    if (this.hits.size > 10_000) this.hits.clear();
    const hit = this.hits.get(key);
    if (!hit || now - hit.since > 60_000) {
      this.hits.set(key, { count: 1, since: now });
      return true;
    }
    hit.count += 1;
    return hit.count <= this.perMinute;
  }
}

export class ConsoleRoutes {
  private readonly attempts: AttemptLimiter;

  constructor(private readonly ctx: RoutesContext) {
    this.attempts = new AttemptLimiter(20, ctx.config.clock);
  }

  // ---- pages -----------------------------------------------------------------------------

  async page(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const token = url.searchParams.get('token') ?? undefined;
    if (token !== undefined) return this.tokenLink(req, res, token);
    const session = await this.ctx.auth.session(req);
    if (!session) return this.html(req, res, 200, { kind: 'help' });
    const bundle = await this.ctx.bundle();
    res.writeHead(200, HTML_HEADERS(req)).end(appShell({ brandName: this.ctx.config.brandName, version: bundle.version }));
  }

  /** `/console?token=…`: a reusable token signs in at once; a one-time link asks first (previews must not use it up). */
  private async tokenLink(req: IncomingMessage, res: ServerResponse, token: string): Promise<void> {
    if (!this.attempts.allow(this.address(req))) return this.html(req, res, 429, { kind: 'help', error: 'Too many sign-in attempts; wait a minute.' });
    const grant = await this.ctx.auth.inspect(token);
    if (!grant) return this.html(req, res, 200, { kind: 'help', error: 'This sign-in link is not valid, has expired, or was already used. Ask for a new one.' });
    if (grant.kind === 'link') return this.html(req, res, 200, { kind: 'confirm', token, operator: grant.operator });
    if (grant.kind === 'shared' && grant.operators.length > 1) return this.html(req, res, 200, { kind: 'choose', token, operators: grant.operators });
    const result = await this.ctx.auth.redeem(token);
    if (!result.ok) return this.html(req, res, 200, { kind: 'help', error: 'This sign-in link is not valid. Ask for a new one.' });
    await this.signIn(req, res, result.operator);
  }

  /** POST /console/signin (form): `token`, and `operator` when the shared token asks who you are. */
  async signInPost(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!originOk(req, this.ctx.config.publicUrl)) return this.html(req, res, 403, { kind: 'help', error: 'Sign in from this site’s own page.' });
    if (!this.attempts.allow(this.address(req))) return this.html(req, res, 429, { kind: 'help', error: 'Too many sign-in attempts; wait a minute.' });
    let form: URLSearchParams;
    try {
      form = new URLSearchParams((await readBody(req, 4096)).toString('utf8'));
    } catch {
      return this.html(req, res, 400, { kind: 'help', error: 'That sign-in form was too large.' });
    }
    const token = form.get('token')?.trim() ?? '';
    const chosen = form.get('operator') ?? undefined;
    const result = await this.ctx.auth.redeem(token, chosen);
    if (result.ok) return this.signIn(req, res, result.operator);
    if (result.reason === 'choose') {
      const grant = await this.ctx.auth.inspect(token);
      if (grant?.kind === 'shared') return this.html(req, res, 200, { kind: 'choose', token, operators: grant.operators });
    }
    const error = result.reason === 'used' ? 'This sign-in link was already used. Ask for a new one.' : 'That token is not valid, or has expired.';
    this.ctx.logger.info({ reason: result.reason }, 'console sign-in refused');
    return this.html(req, res, 401, { kind: 'help', error });
  }

  private async signIn(req: IncomingMessage, res: ServerResponse, operator: ConsoleOperator): Promise<void> {
    const { cookie } = await this.ctx.auth.createSession(operator);
    this.ctx.logger.info({ operator: operator.id, role: operator.role }, 'console sign-in');
    res.setHeader('set-cookie', this.ctx.auth.cookieHeader(cookie, this.secure(req)));
    this.html(req, res, 200, { kind: 'signed-in', operator });
  }

  async asset(req: IncomingMessage, res: ServerResponse, kind: 'js' | 'css'): Promise<void> {
    const bundle = await this.ctx.bundle();
    const etag = kind === 'js' ? bundle.jsEtag : bundle.cssEtag;
    const headers = {
      'content-type': kind === 'js' ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
      'cache-control': 'private, max-age=300',
      etag,
      'x-content-type-options': 'nosniff',
    };
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, headers).end();
    res.writeHead(200, headers).end(kind === 'js' ? bundle.js : bundle.css);
  }

  // ---- API -------------------------------------------------------------------------------

  async api(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.slice('/console/api/'.length);
    const session = await this.ctx.auth.session(req);
    if (!session) return json(res, 401, { error: { code: 'signed_out', message: 'You are signed out. Sign in again.' } });
    if (req.method === 'GET') return this.read(res, session, path, url);
    if (!originOk(req, this.ctx.config.publicUrl)) return json(res, 403, { error: { code: 'bad_origin', message: 'Actions must come from the console’s own page.' } });
    if (!csrfOk(req, session)) return json(res, 403, { error: { code: 'bad_csrf', message: 'This page is out of date; reload it.' } });
    if (!String(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) return json(res, 415, { error: { code: 'bad_request', message: 'Send JSON.' } });
    if (this.ctx.isStopping()) return json(res, 503, { error: { code: 'unavailable', message: 'The bridge is restarting; try again in a few seconds.' } }, { 'retry-after': '5' });
    let body: unknown;
    try {
      const raw = await readBody(req, this.ctx.bridge.maxMessageChars * 6 + 4096);
      body = raw.length ? JSON.parse(raw.toString('utf8')) : {};
    } catch {
      return json(res, 400, { error: { code: 'bad_request', message: 'Send a JSON object.' } });
    }
    if (path === 'signout') {
      await this.ctx.auth.endSession(session);
      this.ctx.signedOut(session.key);
      res.setHeader('set-cookie', this.ctx.auth.cookieHeader(undefined, this.secure(req)));
      return json(res, 200, { ok: true });
    }
    if (path === 'signin-links') return this.mintLink(res, session, body);
    const match = /^conversations\/([A-Za-z0-9_-]{1,100})\/([a-z-]+)$/.exec(path);
    if (!match) return json(res, 404, { error: { code: 'not_found', message: 'No such action.' } });
    if (session.operator.role !== 'operator') {
      return json(res, 403, { error: { code: 'read_only', message: 'Managers can watch every conversation but not act on it.' } });
    }
    return this.act(res, session, match[1]!, match[2]!, body);
  }

  private async read(res: ServerResponse, session: Session, path: string, url: URL): Promise<void> {
    if (path === 'session') {
      return json(res, 200, { me: viewerOf(session), csrf: session.csrf, settings: this.settings(session) });
    }
    if (path === 'inbox') return json(res, 200, { rows: this.ctx.live.list() });
    if (path === 'today') {
      const digest = await this.ctx.bridge.digest(new Date(this.ctx.config.clock()).toISOString().slice(0, 10));
      return json(res, 200, { line: dayLine(digest), digest });
    }
    if (path === 'find') {
      const ticket = (url.searchParams.get('ticket') ?? '').trim();
      const conversation = /^[A-Za-z]{1,8}-\d{1,12}$/.test(ticket) ? await this.ctx.bridge.findByTicket(ticket) : undefined;
      if (!conversation) return json(res, 404, { error: { code: 'not_found', message: `No conversation ${ticket}.` } });
      this.ctx.live.offer(conversation);
      return json(res, 200, { conversationId: conversation.id });
    }
    const match = /^conversations\/([A-Za-z0-9_-]{1,100})$/.exec(path);
    if (match) {
      const conversation = await this.ctx.bridge.getConversation(match[1]!);
      if (!conversation) return json(res, 404, { error: { code: 'not_found', message: 'No such conversation.' } });
      this.ctx.live.offer(conversation);
      return json(res, 200, { view: threadView(conversation, viewerFor(session)) });
    }
    return json(res, 404, { error: { code: 'not_found', message: 'Not found.' } });
  }

  settings(session: Session): ConsoleSettings {
    return {
      brandName: this.ctx.config.brandName,
      slaMs: this.ctx.config.slaMs,
      notePrefix: this.ctx.notePrefix,
      maxMessageChars: this.ctx.bridge.maxMessageChars,
      colleagues: this.ctx.config.operators.filter((o) => o.id !== session.operator.id).map((o) => ({ id: o.id, name: o.name, role: o.role })),
      workspaces: this.ctx.config.otherWorkspaces,
      agents: [...this.ctx.bridge.agentNames()],
    };
  }

  /** A one-time sign-in link: managers for anyone, everyone for themselves (another device). */
  private async mintLink(res: ServerResponse, session: Session, body: unknown): Promise<void> {
    const parsed = z.object({ operatorId: z.string().max(64) }).safeParse(body);
    if (!parsed.success) return json(res, 400, { error: { code: 'bad_request', message: 'Say whose link: { operatorId }.' } });
    const { operatorId } = parsed.data;
    if (!this.ctx.auth.operator(operatorId)) return json(res, 404, { error: { code: 'not_found', message: `No console person ${operatorId}.` } });
    if (operatorId !== session.operator.id && session.operator.role !== 'manager') {
      return json(res, 403, { error: { code: 'forbidden', message: 'Only managers create sign-in links for others.' } });
    }
    const path = await this.ctx.signInLink(operatorId);
    this.ctx.logger.info({ by: session.operator.id, for: operatorId }, 'console sign-in link created');
    return json(res, 200, { path, expiresInMs: this.ctx.config.signInLinkTtlMs });
  }

  private async act(res: ServerResponse, session: Session, conversationId: string, action: string, body: unknown): Promise<void> {
    const operator = bridgeOperator(session.operator);
    const bridge = this.ctx.bridge;
    const text = (max: number) => z.string().max(max);
    // The page names each press: the same request sent again changes nothing.
    const requestId = (body as { requestId?: unknown } | null)?.requestId;
    const key = typeof requestId === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(requestId) ? { idempotencyKey: `console:${operator.id}:${requestId}` } : {};
    let conversation: Conversation;
    let delivered: boolean | undefined;
    let revealed: { messageId: string; text: string } | undefined;
    try {
      switch (action) {
        case 'claim':
          try {
            conversation = await bridge.claim({ conversationId, operator, ...key });
          } catch (err) {
            // A double click: the first claim already won.
            if (!(err instanceof AlreadyClaimedError) || err.holder.id !== operator.id) throw err;
            conversation = await this.require(conversationId);
          }
          break;
        case 'decide': {
          const input = parse(z.object({ optionId: z.string().min(1).max(60), escalation: z.number().int().positive(), note: text(2000).optional() }), body);
          conversation = await bridge.decide({ conversationId, operator, optionId: input.optionId, escalation: input.escalation, ...(input.note?.trim() ? { note: input.note.trim() } : {}), ...key });
          break;
        }
        case 'reply': {
          const input = parse(z.object({ text: text(bridge.maxMessageChars + 100), internal: z.boolean().optional(), clientId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional() }), body);
          const result = await bridge.operatorMessage({
            conversationId,
            operator,
            text: input.text,
            ...(input.internal ? { internal: true } : {}),
            ...(input.clientId ? { idempotencyKey: `console:${operator.id}:${input.clientId}` } : {}),
            source: { workspace: 'console' },
          });
          conversation = result.duplicate ? await this.require(conversationId) : result.conversation;
          delivered = result.delivered;
          break;
        }
        case 'return': {
          const input = parse(z.object({ note: text(4000).optional() }), body);
          conversation = await bridge.returnToAgent({ conversationId, operator, ...(input.note?.trim() ? { note: input.note } : {}), ...key });
          break;
        }
        case 'release':
          conversation = await bridge.release({ conversationId, operator, ...key });
          break;
        case 'transfer': {
          const input = parse(z.object({ to: z.string().max(64) }), body);
          const to = this.ctx.auth.operator(input.to);
          if (!to || to.role !== 'operator') throw new InputError(`No console operator ${input.to} to transfer to.`);
          conversation = await bridge.transfer({ conversationId, operator, to: bridgeOperator(to), ...key });
          break;
        }
        case 'close': {
          const input = parse(z.object({ note: text(2000).optional() }), body);
          conversation = await bridge.close({ conversationId, operator, ...(input.note?.trim() ? { note: input.note.trim() } : {}), ...key });
          break;
        }
        case 'reveal': {
          // Only the owner may; the bridge logs it. The original goes back to this person alone.
          const input = parse(z.object({ messageId: z.string().min(1).max(100) }), body);
          const result = await bridge.reveal({ conversationId, operator, messageId: input.messageId, ...key });
          revealed = { messageId: input.messageId, text: result.text };
          conversation = await this.require(conversationId);
          break;
        }
        case 'route': {
          const input = parse(z.object({ agent: z.string().min(1).max(60), note: text(2000).optional(), pin: z.boolean().optional() }), body);
          try {
            conversation = await bridge.route({ conversationId, operator, agent: input.agent, ...(input.note?.trim() ? { note: input.note.trim() } : {}), ...(input.pin ? { pin: true } : {}), ...key });
          } catch (err) {
            // The same press sent again: the first one routed it.
            if (!(err instanceof DuplicateInboundError)) throw err;
            conversation = await this.require(conversationId);
          }
          break;
        }
        default:
          return json(res, 404, { error: { code: 'not_found', message: `No action ${action}.` } });
      }
    } catch (err) {
      return this.fail(res, err, action, conversationId);
    }
    this.ctx.live.offer(conversation);
    return json(res, 200, { ok: true, view: threadView(conversation, viewerFor(session)), ...(delivered !== undefined ? { delivered } : {}), ...(revealed ? { revealed } : {}) });
  }

  private async require(conversationId: string): Promise<Conversation> {
    const conversation = await this.ctx.bridge.getConversation(conversationId);
    if (!conversation) throw new BridgeError('not_found', 'No such conversation.');
    return conversation;
  }

  private fail(res: ServerResponse, err: unknown, action: string, conversationId: string): void {
    if (err instanceof BridgeError) {
      const status = STATUS[err.code] ?? 409;
      if (status >= 500) this.ctx.logger.warn({ err: err.message, action, conversationId }, 'console action failed');
      return json(res, status, { error: { code: err.code, message: err.message } });
    }
    this.ctx.logger.error({ err, action, conversationId }, 'console action failed');
    json(res, 500, { error: { code: 'internal', message: 'That did not work; try again.' } });
  }

  // ---- helpers ---------------------------------------------------------------------------

  private html(req: IncomingMessage, res: ServerResponse, status: number, state: SignInState): void {
    res.writeHead(status, HTML_HEADERS(req)).end(signInPage({ brandName: this.ctx.config.brandName, state }));
  }

  private secure(req: IncomingMessage): boolean {
    if ((req.socket as { encrypted?: boolean }).encrypted) return true;
    if (this.ctx.config.trustProxy && String(req.headers['x-forwarded-proto'] ?? '').split(',')[0]?.trim() === 'https') return true;
    return this.ctx.config.publicUrl?.startsWith('https:') === true && req.headers.host === new URL(this.ctx.config.publicUrl).host;
  }

  private address(req: IncomingMessage): string {
    if (this.ctx.config.trustProxy) {
      const first = String(req.headers['x-forwarded-for'] ?? '').split(',')[0]?.trim();
      if (first) return first;
    }
    return req.socket.remoteAddress ?? 'unknown';
  }
}

const STATUS: Record<string, number> = {
  bad_input: 400,
  unknown_option: 400,
  unknown_agent: 400,
  not_found: 404,
  already_claimed: 409,
  not_owner: 409,
  invalid_transition: 409,
  stale_briefing: 409,
  version_conflict: 409,
  store_unavailable: 503,
  lock_timeout: 503,
};

export function viewerOf(session: Session): ViewerView {
  return { id: bridgeOperator(session.operator).id, name: session.operator.name, role: session.operator.role };
}

export function viewerFor(session: Session): { id: string; role: 'operator' | 'manager' } {
  return { id: bridgeOperator(session.operator).id, role: session.operator.role };
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers }).end(JSON.stringify(body));
}
