/**
 * A loopback Teams: the Bot Connector REST API the bridge calls (create a channel thread or a 1:1
 * chat, post, edit), answering with ids shaped like Teams', recording everything, and able to
 * misbehave (429 with Retry-After, 5xx before or after applying, an answer lost after applying,
 * slowness, Teams' per-thread limits, the 40 KB message limit). It also plays the Teams client: it posts channel messages (with @mention
 * entities), `adaptiveCard/action` invokes and `Action.Submit` messages to the bot's
 * `/api/messages`, with `serviceUrl` pointing back at itself, and can sign Bot Framework tokens
 * with its own key (published at its OpenID metadata URL) for the authentication tests. Helpers
 * read messages as people see them: texts, buttons, links, and the mentions Teams would render.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface TeamsUser {
  /** Teams user id (MRI), `29:...`. */
  id: string;
  name: string;
  aadObjectId?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  /** 0 when the connection was dropped without an answer. */
  status: number;
  authorization?: string;
  at: number;
}

/** One message in the emulated Teams, with every version the bot wrote. */
export interface TeamsMessage {
  id: string;
  /** Conversation the message lives in: the channel thread id (`<channel>;messageid=<root>`) or a 1:1 chat id. */
  conversationId: string;
  fromBot: boolean;
  isRoot: boolean;
  /** Latest version. */
  activity: Record<string, unknown>;
  versions: Array<Record<string, unknown>>;
}

export interface Fault {
  /** The answer's status (503 unless given); not used with `dropAnswer`. */
  status?: number;
  /** Seconds, sent as `Retry-After`. */
  retryAfter?: number;
  /** How many matching requests fail (default 1). */
  times?: number;
  method?: 'POST' | 'PUT';
  /** Only requests whose path contains this. */
  pathIncludes?: string;
  /** Only requests whose JSON body contains this text (a message's words, a card's title). */
  bodyIncludes?: string;
  /** For 5xx: Teams applied the request before failing (the ambiguous case). */
  applied?: boolean;
  /** Teams applies the request, then the connection drops before any answer: the lost answer. */
  dropAnswer?: boolean;
  /** Answer this much later; without `status` or `dropAnswer` the request then succeeds as usual. */
  slowMs?: number;
}

export interface InvokeResult {
  status: number;
  body: { statusCode?: number; type?: string; value?: unknown } | undefined;
}

const BOT_FRAMEWORK_ISSUER = 'https://api.botframework.com';

export class BotConnectorEmulator {
  readonly tenantId = '72f988bf-0000-4000-8000-000000000001';
  readonly teamId = '19:team-general@thread.tacv2';
  readonly bot: { id: string; name: string };
  readonly requests: RecordedRequest[] = [];
  /** Every message, by id. */
  readonly messages = new Map<string, TeamsMessage>();
  /** Answers to invokes, per clicking user: what each user's client showed them privately. */
  readonly invokeResults: Array<{ userId: string; cardActivityId: string; result: InvokeResult }> = [];
  /** Users for whom Teams refuses a 1:1 chat (app not installed for them). */
  readonly noPersonalApp = new Set<string>();
  /** Enforce Teams' per-thread limits with 429s. */
  enforceThreadLimits = false;
  /** Delay before answering each Bot Connector request. */
  delayMs = 0;
  /** The bot's endpoint, e.g. `http://127.0.0.1:1234/api/messages`. */
  botUrl = '';

  private server?: Server;
  private base = '';
  private faults: Fault[] = [];
  private counter = 0;
  private readonly sentAt = new Map<string, number[]>();
  private readonly keys: { kid: string; privateKey: KeyObject; jwk: Record<string, unknown> };
  private readonly otherKey: KeyObject;

  constructor(options: { botName?: string; botAppId?: string } = {}) {
    this.bot = { id: `28:${options.botAppId ?? 'bridge-bot-app-id'}`, name: options.botName ?? 'Handoff Bridge' };
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = createHash('sha256').update(publicKey.export({ format: 'pem', type: 'spki' })).digest('hex').slice(0, 16);
    this.keys = { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', endorsements: ['msteams'] } };
    this.otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  }

  /** Starts listening on 127.0.0.1; returns the service URL (with a trailing slash). */
  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    this.base = `http://127.0.0.1:${port}`;
    return this.serviceUrl;
  }

  get serviceUrl(): string {
    return `${this.base}/`;
  }

  /** Where the bot fetches the keys that sign this emulator's tokens. */
  get openIdMetadataUrl(): string {
    return `${this.base}/v1/.well-known/openidconfiguration`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Makes the next matching request(s) fail. */
  fail(fault: Fault): void {
    this.faults.push({ times: 1, ...fault });
  }

  /** Teams is healthy again: every pending fault is dropped. */
  clearFaults(): void {
    this.faults = [];
  }

  // ---- the Bot Connector API --------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', this.base);
    const method = (req.method ?? 'GET').toUpperCase();

    if (method === 'GET' && url.pathname === '/v1/.well-known/openidconfiguration') {
      return json(res, 200, { issuer: BOT_FRAMEWORK_ISSUER, jwks_uri: `${this.base}/v1/keys`, id_token_signing_alg_values_supported: ['RS256'] });
    }
    if (method === 'GET' && url.pathname === '/v1/keys') return json(res, 200, { keys: [this.keys.jwk] });

    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      return this.answer(req, res, method, url.pathname, raw, 400, { error: { code: 'BadSyntax', message: 'Invalid JSON' } });
    }
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));

    const route = matchRoute(method, url.pathname);
    if (!route) return this.answer(req, res, method, url.pathname, body, 404, { error: { code: 'NotFound', message: `No route ${method} ${url.pathname}` } });
    if (raw.length * 2 > 40 * 1024) {
      return this.answer(req, res, method, url.pathname, body, 413, { error: { code: 'MessageSizeTooBig', message: 'Message size too big' } });
    }

    let fault = this.takeFault(method, url.pathname, raw);
    if (fault?.slowMs) {
      await new Promise((r) => setTimeout(r, fault!.slowMs));
      if (fault.status === undefined && !fault.dropAnswer) fault = undefined;
    }
    const faultStatus = fault?.status ?? 503;
    if (fault && !fault.dropAnswer && !(faultStatus >= 500 && fault.applied)) {
      return this.answer(req, res, method, url.pathname, body, faultStatus, { error: { code: faultCode(faultStatus), message: 'Emulated failure' } }, fault.retryAfter);
    }
    const throttleKey = route.conversationId ?? (body as { channelData?: { channel?: { id?: string } } })?.channelData?.channel?.id ?? 'new';
    if (this.enforceThreadLimits && this.overLimit(throttleKey)) {
      return this.answer(req, res, method, url.pathname, body, 429, { error: { code: 'Throttled', message: 'Too many requests in this thread' } }, 1);
    }

    const result = this.apply(route, body);
    if (fault?.dropAnswer) {
      this.requests.push({ method, path: decodeURIComponent(url.pathname), body, status: 0, at: Date.now() });
      res.socket?.destroy();
      return;
    }
    if (fault) return this.answer(req, res, method, url.pathname, body, faultStatus, { error: { code: 'ServiceError', message: 'Emulated failure after applying' } });
    return this.answer(req, res, method, url.pathname, body, result.status, result.body);
  }

  private apply(route: Route, body: unknown): { status: number; body: unknown } {
    const activity = (body ?? {}) as Record<string, unknown>;
    switch (route.kind) {
      case 'create': {
        const params = activity as { isGroup?: boolean; channelData?: { channel?: { id?: string }; tenant?: { id?: string } }; members?: Array<{ id: string }>; tenantId?: string; activity?: Record<string, unknown>; bot?: { id?: string } };
        const channel = params.channelData?.channel?.id;
        if (channel) {
          if (!params.activity?.type) return { status: 400, body: { error: { code: 'BadArgument', message: 'activity is required to start a channel thread' } } };
          const rootId = this.nextId();
          const threadId = `${channel};messageid=${rootId}`;
          this.store(threadId, rootId, params.activity, true);
          return { status: 201, body: { id: threadId, activityId: rootId } };
        }
        const member = params.members?.[0]?.id;
        if (params.isGroup || !member || params.members!.length !== 1) return { status: 400, body: { error: { code: 'BadArgument', message: 'Expected one member for a 1:1 chat' } } };
        if (!params.tenantId && !params.channelData?.tenant?.id) return { status: 400, body: { error: { code: 'BadArgument', message: 'Tenant id is required' } } };
        if (params.bot?.id !== this.bot.id) return { status: 400, body: { error: { code: 'BadArgument', message: `Unknown bot ${params.bot?.id}` } } };
        if (this.noPersonalApp.has(member)) return { status: 403, body: { error: { code: 'Forbidden', message: 'The bot is not part of the conversation roster.' } } };
        const chatId = `a:1${createHash('sha256').update(member).digest('hex').slice(0, 24)}`;
        if (params.activity?.type) this.store(chatId, this.nextId(), params.activity, false);
        return { status: 201, body: { id: chatId } };
      }
      case 'send':
      case 'reply': {
        if (typeof activity.type !== 'string') return { status: 400, body: { error: { code: 'BadArgument', message: 'Activity type is required' } } };
        const conversationId = route.conversationId!;
        const root = /;messageid=(\d+)$/.exec(conversationId)?.[1];
        if (root && !this.messages.has(root)) return { status: 404, body: { error: { code: 'ConversationNotFound', message: 'Conversation not found.' } } };
        if (!root && !conversationId.startsWith('a:') && conversationId.startsWith('19:')) {
          // A post to the channel itself starts a new thread, as in Teams.
          const id = this.nextId();
          this.store(`${conversationId};messageid=${id}`, id, activity, true);
          return { status: 201, body: { id } };
        }
        if (!root && !this.isKnownChat(conversationId)) return { status: 404, body: { error: { code: 'ConversationNotFound', message: 'Conversation not found.' } } };
        const id = this.nextId();
        this.store(conversationId, id, activity, false);
        return { status: 201, body: { id } };
      }
      case 'update': {
        const existing = this.messages.get(route.activityId!);
        if (!existing || !existing.fromBot) return { status: 404, body: { error: { code: 'ActivityNotFound', message: 'Activity not found.' } } };
        const threadOfRoute = route.conversationId!;
        if (existing.conversationId !== threadOfRoute) return { status: 400, body: { error: { code: 'BadArgument', message: 'Activity is not in this conversation.' } } };
        existing.activity = { ...activity, id: existing.id };
        existing.versions.push(existing.activity);
        return { status: 200, body: { id: existing.id } };
      }
      case 'members':
        return { status: 200, body: [] };
    }
  }

  private answer(req: IncomingMessage, res: ServerResponse, method: string, path: string, body: unknown, status: number, out: unknown, retryAfter?: number): void {
    this.requests.push({ method, path: decodeURIComponent(path), body, status, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), at: Date.now() });
    const headers: Record<string, string> = {};
    if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
    json(res, status, out, headers);
  }

  private takeFault(method: string, path: string, raw: string): Fault | undefined {
    const decoded = decodeURIComponent(path);
    const index = this.faults.findIndex(
      (f) => (!f.method || f.method === method) && (!f.pathIncludes || decoded.includes(f.pathIncludes)) && (!f.bodyIncludes || raw.includes(f.bodyIncludes)),
    );
    if (index < 0) return undefined;
    const fault = this.faults[index]!;
    fault.times = (fault.times ?? 1) - 1;
    if (fault.times <= 0) this.faults.splice(index, 1);
    return fault;
  }

  /** Teams' per-bot, per-thread limits: 7/1 s, 8/2 s, 60/30 s. */
  private overLimit(key: string): boolean {
    const now = Date.now();
    const history = (this.sentAt.get(key) ?? []).filter((t) => t > now - 30_000);
    const within = (ms: number) => history.filter((t) => t > now - ms).length;
    if (within(1000) >= 7 || within(2000) >= 8 || within(30_000) >= 60) return true;
    history.push(now);
    this.sentAt.set(key, history);
    return false;
  }

  private store(conversationId: string, id: string, activity: Record<string, unknown>, isRoot: boolean): void {
    const stored = { ...activity, id, conversation: { id: conversationId } };
    this.messages.set(id, { id, conversationId, fromBot: true, isRoot, activity: stored, versions: [stored] });
  }

  private isKnownChat(conversationId: string): boolean {
    return [...this.messages.values()].some((m) => m.conversationId === conversationId) || conversationId.startsWith('a:1');
  }

  /** Ids like Teams' (milliseconds since the epoch), strictly increasing. */
  private nextId(): string {
    this.counter += 1;
    return String(1_700_000_000_000 + this.counter);
  }

  // ---- what Teams shows ---------------------------------------------------------------------

  /** Root messages the bot started in `channelId` (one per conversation thread). */
  roots(channelId?: string): TeamsMessage[] {
    return [...this.messages.values()].filter((m) => m.isRoot && (!channelId || m.conversationId.startsWith(channelId + ';')));
  }

  /** The root of a thread. */
  root(threadId: string): TeamsMessage | undefined {
    const id = /;messageid=(\d+)$/.exec(threadId)?.[1];
    return id ? this.messages.get(id) : undefined;
  }

  /** Replies in a thread, in order (root excluded). `fromBot` narrows to the bot's or the users'. */
  replies(threadId: string, filter: { fromBot?: boolean } = {}): TeamsMessage[] {
    return [...this.messages.values()].filter((m) => m.conversationId === threadId && !m.isRoot && (filter.fromBot === undefined || m.fromBot === filter.fromBot));
  }

  /** Texts the bot sent a user in their 1:1 chat. */
  directMessages(userId: string): string[] {
    const chatId = `a:1${createHash('sha256').update(userId).digest('hex').slice(0, 24)}`;
    return [...this.messages.values()].filter((m) => m.conversationId === chatId).map((m) => visibleText(m.activity));
  }

  /**
   * What Teams told one user privately: their 1:1 chat, the notices on cards their own clicks
   * returned (user-specific views), and message answers to their invokes.
   */
  privateTexts(userId: string): string[] {
    const fromInvokes = this.invokeResults
      .filter((r) => r.userId === userId)
      .flatMap((r) => {
        const body = r.result.body;
        if (body?.type === 'application/vnd.microsoft.activity.message' && typeof body.value === 'string') return [body.value];
        if (body?.type === 'application/vnd.microsoft.error') return [String((body.value as { message?: string })?.message ?? '')];
        const notice = findElement(body?.value, (e) => e.id === 'notice');
        return notice ? [cardTexts({ body: [notice] }).join('\n')] : [];
      });
    return [...this.directMessages(userId), ...fromInvokes];
  }

  // ---- playing the Teams client -------------------------------------------------------------

  /** Posts a channel-thread message from `from` to the bot, as Teams does. */
  async channelMessage(input: {
    threadId: string;
    from: TeamsUser;
    text: string;
    mentionBot?: boolean;
    attachments?: Array<Record<string, unknown>>;
    value?: unknown;
    replyToId?: string;
    id?: string;
    authorization?: string;
    /** Where the activity says replies go; this emulator by default (an attacker's URL in the security tests). */
    serviceUrl?: string;
  }): Promise<{ status: number; body: unknown; id: string }> {
    const id = input.id ?? this.nextId();
    const mention = `<at>${this.bot.name}</at>`;
    const activity: Record<string, unknown> = {
      ...this.envelope(input.threadId, input.from, id, input.serviceUrl),
      type: 'message',
      textFormat: 'plain',
      text: input.mentionBot ? `${mention} ${input.text}` : input.text,
      entities: [
        ...(input.mentionBot ? [{ type: 'mention', text: mention, mentioned: { id: this.bot.id, name: this.bot.name } }] : []),
        { type: 'clientInfo', locale: 'en-US', country: 'US', platform: 'Web', timezone: 'Europe/London' },
      ],
      ...(input.attachments ? { attachments: input.attachments } : {}),
      ...(input.value !== undefined ? { value: input.value } : {}),
      ...(input.replyToId ? { replyToId: input.replyToId } : {}),
    };
    // The user's message is in the thread too (Teams shows it; the bot gets a copy).
    if (!this.messages.has(id)) this.messages.set(id, { id, conversationId: input.threadId, fromBot: false, isRoot: false, activity, versions: [activity] });
    const res = await this.postToBot(activity, input.authorization);
    return { ...res, id };
  }

  /**
   * Clicks a button on a bot card as `from`: finds the `Action.Execute` whose title matches in the
   * card's latest version and sends the `adaptiveCard/action` invoke Teams would, input values
   * merged into its data. Returns the bot's invoke response.
   */
  async clickButton(input: { cardActivityId: string; from: TeamsUser; title: string | RegExp; inputs?: Record<string, string>; id?: string }): Promise<InvokeResult> {
    const message = this.messages.get(input.cardActivityId);
    if (!message) throw new Error(`No message ${input.cardActivityId} in Teams`);
    const card = cardOf(message.activity);
    const action = findAction(card, input.title);
    if (!action) throw new Error(`No button ${String(input.title)} on card ${input.cardActivityId} (buttons: ${buttonTitles(card).join(', ') || 'none'})`);
    return this.invoke({
      conversationId: message.conversationId,
      cardActivityId: input.cardActivityId,
      from: input.from,
      verb: String(action.verb ?? ''),
      data: { ...((action.data as Record<string, unknown>) ?? {}), ...(input.inputs ?? {}) },
      ...(input.id ? { id: input.id } : {}),
    });
  }

  /** Sends an `adaptiveCard/action` invoke; records the answer as what `from` saw. */
  async invoke(input: { conversationId: string; cardActivityId: string; from: TeamsUser; verb: string; data: Record<string, unknown>; trigger?: 'manual' | 'automatic'; id?: string; authorization?: string }): Promise<InvokeResult> {
    const activity = {
      ...this.envelope(input.conversationId, input.from, input.id ?? `f:${this.nextId()}`),
      type: 'invoke',
      name: 'adaptiveCard/action',
      replyToId: input.cardActivityId,
      value: { action: { type: 'Action.Execute', verb: input.verb, data: input.data }, trigger: input.trigger ?? 'manual' },
    };
    const res = await this.postToBot(activity, input.authorization);
    const result: InvokeResult = { status: res.status, body: res.body as InvokeResult['body'] };
    this.invokeResults.push({ userId: input.from.id, cardActivityId: input.cardActivityId, result });
    return result;
  }

  /** An older client's `Action.Submit` fallback: a message with the button's data as `value`. */
  async submitFallback(input: { cardActivityId: string; from: TeamsUser; title: string | RegExp; inputs?: Record<string, string> }): Promise<{ status: number }> {
    const message = this.messages.get(input.cardActivityId);
    if (!message) throw new Error(`No message ${input.cardActivityId} in Teams`);
    const action = findAction(cardOf(message.activity), input.title);
    const fallback = action?.fallback as Record<string, unknown> | undefined;
    if (!fallback || fallback.type !== 'Action.Submit') throw new Error(`Button ${String(input.title)} has no Action.Submit fallback`);
    const res = await this.channelMessage({
      threadId: message.conversationId,
      from: input.from,
      text: '',
      value: { ...((fallback.data as Record<string, unknown>) ?? {}), ...(input.inputs ?? {}) },
      replyToId: input.cardActivityId,
    });
    return { status: res.status };
  }

  /**
   * Clicks a plain `Action.Submit` button (one with no invoke, e.g. Reveal) on a bot message's card
   * as `from`: Teams posts a message to the bot with the button's data as `value`, from the thread.
   */
  async clickSubmit(input: { cardActivityId: string; from: TeamsUser; title: string | RegExp; id?: string; authorization?: string }): Promise<{ status: number; id: string }> {
    const message = this.messages.get(input.cardActivityId);
    if (!message) throw new Error(`No message ${input.cardActivityId} in Teams`);
    const card = cardOf(message.activity);
    const action = findElement(card, (e) => e.type === 'Action.Submit' && (typeof input.title === 'string' ? e.title === input.title : input.title.test(String(e.title))));
    if (!action) throw new Error(`No Action.Submit ${String(input.title)} on message ${input.cardActivityId} (buttons: ${buttonTitles(card).join(', ') || 'none'})`);
    const res = await this.channelMessage({
      threadId: message.conversationId,
      from: input.from,
      text: '',
      value: { ...((action.data as Record<string, unknown>) ?? {}) },
      replyToId: input.cardActivityId,
      ...(input.id ? { id: input.id } : {}),
      ...(input.authorization ? { authorization: input.authorization } : {}),
    });
    return { status: res.status, id: res.id };
  }

  /** Posts any activity JSON to the bot. */
  async postToBot(activity: Record<string, unknown>, authorization?: string): Promise<{ status: number; body: unknown }> {
    if (!this.botUrl) throw new Error('Set emulator.botUrl to the bot endpoint first');
    const res = await fetch(this.botUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      body: JSON.stringify(activity),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body };
  }

  /**
   * A Bot Framework channel token as Teams would send it, signed with this emulator's key
   * (published at `openIdMetadataUrl`). `wrongKey` signs with a key the emulator does not publish.
   */
  issueToken(options: { audience: string; serviceUrl?: string; wrongKey?: boolean; expiresInSeconds?: number; issuer?: string }): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', kid: this.keys.kid };
    const payload = {
      iss: options.issuer ?? BOT_FRAMEWORK_ISSUER,
      aud: options.audience,
      serviceurl: options.serviceUrl ?? this.serviceUrl,
      nbf: now - 60,
      iat: now - 60,
      exp: now + (options.expiresInSeconds ?? 3600),
    };
    const unsigned = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
    const signature = sign('RSA-SHA256', Buffer.from(unsigned), options.wrongKey ? this.otherKey : this.keys.privateKey);
    return `${unsigned}.${signature.toString('base64url')}`;
  }

  /** The fields Teams puts on every activity it sends the bot. */
  envelope(conversationId: string, from: TeamsUser, id: string, serviceUrl = this.serviceUrl): Record<string, unknown> {
    const channel = conversationId.split(';')[0]!;
    const isChannel = channel.startsWith('19:');
    return {
      id,
      timestamp: new Date().toISOString(),
      localTimestamp: new Date().toISOString(),
      serviceUrl,
      channelId: 'msteams',
      from: { id: from.id, name: from.name, ...(from.aadObjectId ? { aadObjectId: from.aadObjectId } : {}) },
      conversation: { isGroup: isChannel, conversationType: isChannel ? 'channel' : 'personal', tenantId: this.tenantId, id: conversationId },
      recipient: { id: this.bot.id, name: this.bot.name },
      locale: 'en-US',
      channelData: isChannel
        ? { teamsChannelId: channel, teamsTeamId: this.teamId, channel: { id: channel }, team: { id: this.teamId }, tenant: { id: this.tenantId } }
        : { tenant: { id: this.tenantId } },
    };
  }
}

// ---- reading messages as a person would -------------------------------------------------------

/** The Adaptive Card in an activity, if any. */
export function cardOf(activity: Record<string, unknown>): Record<string, unknown> | undefined {
  const attachments = activity.attachments as Array<{ contentType?: string; content?: Record<string, unknown> }> | undefined;
  return attachments?.find((a) => a.contentType === 'application/vnd.microsoft.card.adaptive')?.content;
}

/**
 * What a person reads: message text with tags removed and entities decoded, or the card's texts.
 * A message with both (text and a card under it) reads as the text, then the card's texts.
 */
export function visibleText(activity: Record<string, unknown>): string {
  const card = cardOf(activity);
  const cardPart = card ? cardTexts(card).join('\n') : undefined;
  const raw = String(activity.text ?? '');
  if (cardPart !== undefined && !raw) return cardPart;
  const text = activity.textFormat !== 'xml' ? raw : decodeEntities(raw.replace(/<br\s*\/?>/gi, '\n').replace(/<[^>]+>/g, ''));
  return cardPart !== undefined ? `${text}\n${cardPart}` : text;
}

/**
 * The mentions Teams would render in a message: entities of type `mention` whose text appears in
 * the message text (for a card, in its texts, with the entities under `msteams.entities`). Teams
 * ignores a mention whose text it cannot find.
 */
export function renderedMentions(activity: Record<string, unknown>): Array<{ text: string; mentioned: { id?: string; name?: string; type?: string } }> {
  const card = cardOf(activity);
  const where = card ? cardTexts(card).join('\n') : String(activity.text ?? '');
  const entities = (card ? (card.msteams as { entities?: unknown[] } | undefined)?.entities : activity.entities) ?? [];
  return (entities as Array<Record<string, unknown>>)
    .filter((e) => e?.type === 'mention' && typeof e.text === 'string' && where.includes(e.text))
    .map((e) => ({ text: e.text as string, mentioned: (e.mentioned ?? {}) as { id?: string; name?: string; type?: string } }));
}

/** Link buttons (`Action.OpenUrl`) on a card, by title. */
export function linkButtons(card: Record<string, unknown> | undefined): Array<{ title: string; url: string }> {
  const links: Array<{ title: string; url: string }> = [];
  findElement(card, (e) => {
    if (e.type === 'Action.OpenUrl' && typeof e.title === 'string' && typeof e.url === 'string') links.push({ title: e.title, url: e.url });
    return false;
  });
  return links;
}

/** Texts on a card in reading order, buttons as `[Title]`. */
export function cardTexts(card: Record<string, unknown> | undefined): string[] {
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    if (n.type === 'TextBlock') out.push(String(n.text ?? ''));
    if (n.type === 'RichTextBlock') out.push((n.inlines as Array<{ text?: string }>).map((i) => i.text ?? '').join(''));
    if (typeof n.type === 'string' && n.type.startsWith('Action.') && typeof n.title === 'string') out.push(`[${n.title}]`);
    for (const key of ['body', 'items', 'columns', 'actions']) if (key in n) walk(n[key]);
  };
  walk(card?.body);
  walk(card?.actions);
  return out;
}

/** Titles of every button on a card. */
export function buttonTitles(card: Record<string, unknown> | undefined): string[] {
  const titles: string[] = [];
  findElement(card, (e) => {
    if (typeof e.type === 'string' && e.type.startsWith('Action.') && typeof e.title === 'string') titles.push(e.title);
    return false;
  });
  return titles;
}

function findAction(card: Record<string, unknown> | undefined, title: string | RegExp): Record<string, unknown> | undefined {
  return findElement(card, (e) => e.type === 'Action.Execute' && (typeof title === 'string' ? e.title === title : title.test(String(e.title))));
}

function findElement(node: unknown, predicate: (e: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  if (Array.isArray(node)) {
    for (const child of node) {
      const hit = findElement(child, predicate);
      if (hit) return hit;
    }
    return undefined;
  }
  if (!node || typeof node !== 'object') return undefined;
  const n = node as Record<string, unknown>;
  if (predicate(n)) return n;
  for (const key of ['body', 'items', 'columns', 'actions']) {
    const hit = key in n ? findElement(n[key], predicate) : undefined;
    if (hit) return hit;
  }
  return undefined;
}

function decodeEntities(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_m, code: string) => String.fromCodePoint(Number(code)))
    .replace(/&#x([0-9a-f]+);/gi, (_m, code: string) => String.fromCodePoint(parseInt(code, 16)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&nbsp;/g, ' ')
    .replace(/&amp;/g, '&');
}

type Route = { kind: 'create' | 'send' | 'reply' | 'update' | 'members'; conversationId?: string; activityId?: string };

function matchRoute(method: string, pathname: string): Route | undefined {
  if (method === 'POST' && pathname === '/v3/conversations') return { kind: 'create' };
  const m = /^\/v3\/conversations\/([^/]+)\/(activities|members)(?:\/([^/]+))?$/.exec(pathname);
  if (!m) return undefined;
  const conversationId = decodeURIComponent(m[1]!);
  const activityId = m[3] ? decodeURIComponent(m[3]) : undefined;
  if (m[2] === 'members' && method === 'GET') return { kind: 'members', conversationId };
  if (m[2] !== 'activities') return undefined;
  if (method === 'POST' && !activityId) return { kind: 'send', conversationId };
  if (method === 'POST' && activityId) return { kind: 'reply', conversationId, activityId };
  if (method === 'PUT' && activityId) return { kind: 'update', conversationId, activityId };
  return undefined;
}

function faultCode(status: number): string {
  if (status === 429) return 'Throttled';
  if (status === 413) return 'MessageSizeTooBig';
  return status >= 500 ? 'ServiceError' : 'BadArgument';
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(text);
}

function b64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}
