/**
 * A loopback Slack for tests.
 *
 * `SlackApiEmulator` is a real HTTP server that answers the Web API methods the bridge uses the way
 * Slack does (form or JSON bodies, bearer token, `ok`/`error`, `ts`, `channel`, `message`), keeps the
 * channel history (so threads, updates and metadata can be inspected), records every call, and can
 * misbehave on demand: 429 with Retry-After, 500, a lost answer (processed, then the connection drops)
 * and slowness, one fault at a time (`fault`) or at random (`chaos`). Like Slack it refuses blocks
 * over their limits, including `msg_blocks_too_long` when the text of all blocks together passes
 * `blocksTextLimit`, and pages `conversations.replies` / `conversations.history` by `limit` and
 * `cursor`. It also serves `response_url`s and private file downloads, publishes Home tabs
 * (`views.publish`), gives permalinks (`chat.getPermalink`) and lists user groups (`usergroups.list`).
 *
 * `SlackEventsClient` plays Slack's side of inbound traffic: signed Events API callbacks,
 * interactivity (`payload=` forms) and slash commands, sent to the app's `/slack/events`.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

export interface RecordedCall {
  method: string;
  args: Record<string, any>;
  /** HTTP status the emulator answered with (0: connection dropped after processing). */
  status: number;
  /** The `error` of an `ok: false` answer. */
  error?: string;
  /** When it arrived (epoch ms). */
  at: number;
}

export interface StoredMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text: string;
  blocks?: any[];
  metadata?: { event_type: string; event_payload: Record<string, unknown> };
  user: string;
  bot_id?: string;
  reply_broadcast?: boolean;
  /** Every rendering it had, first post included. */
  versions: Array<{ text: string; blocks?: any[] }>;
  files?: any[];
}

export interface Fault {
  /** Method name (or pattern) the fault applies to; all methods when absent. */
  method?: string | RegExp;
  /** Further narrowing on the call's arguments. */
  when?: (args: Record<string, any>) => boolean;
  /** How many matching calls it affects. */
  times: number;
  kind: 'rate_limit' | 'server_error' | 'lost_answer' | 'delay';
  retryAfterSeconds?: number;
  delayMs?: number;
}

/** Random misbehaviour: each matching call fails with probability `rate`, as a 429, a 500 or a lost answer. */
export interface Chaos {
  rate: number;
  /** Methods it applies to (default: posts, updates and the reads used to look for posts). */
  methods?: RegExp;
  /** Retry-After of its 429s (default 1 s). */
  retryAfterSeconds?: number;
  /** Which faults it picks from (default all three). */
  kinds?: Array<'rate_limit' | 'server_error' | 'lost_answer'>;
  /** Seed of its random choices: the same seed gives the same faults for the same calls. */
  seed?: number;
}

export interface EmulatedUser {
  id: string;
  name: string;
  displayName: string;
  realName?: string;
}

const PLAIN_LIMITS = { blocks: 50, header: 150, section: 3000, field: 2000, fields: 10, button: 75, value: 2000, actionId: 255, text: 40000 };

export class SlackApiEmulator {
  readonly botToken: string;
  /** App-level token accepted by apps.connections.open (Socket Mode). */
  readonly appToken = 'xapp-1-AEMULATED-emulated-app-token';
  readonly botUserId = 'UBOTBRIDGE';
  readonly botId = 'BBOTBRIDGE';
  readonly teamId = 'T0EMULATED';
  readonly calls: RecordedCall[] = [];
  readonly messages: StoredMessage[] = [];
  readonly ephemerals: Array<{ channel: string; user: string; text: string; blocks?: any[]; thread_ts?: string }> = [];
  readonly responses: Array<{ id: string; body: Record<string, any> }> = [];
  readonly views: Array<{ id: string; trigger_id: string; view: Record<string, any> }> = [];
  /** Every Home tab published, in order (the latest per user is what they see). */
  readonly homeViews: Array<{ user: string; view: Record<string, any> }> = [];
  readonly userGroups = new Map<string, { id: string; handle: string; name: string }>();
  readonly users = new Map<string, EmulatedUser>();
  readonly channels = new Map<string, { id: string; name: string }>();
  readonly files = new Map<string, { file: Record<string, any>; content: Buffer }>();
  private readonly faults: Fault[] = [];
  private chaotic?: { chaos: Chaos; random: () => number };
  /** Slack refuses a message whose blocks hold more text than this in total (`msg_blocks_too_long`). */
  blocksTextLimit = 12_000;
  private readonly responseOwners = new Map<string, string>();
  private server?: Server;
  private readonly sockets = new WebSocketServer({ noServer: true });
  private socket?: WebSocket;
  private readonly pendingAcks = new Map<string, (payload: Record<string, any>) => void>();
  private counter = 0;
  private lastSecond = 0;
  origin = '';

  constructor(options: { botToken?: string } = {}) {
    this.botToken = options.botToken ?? 'xoxb-emulated-bot-token';
  }

  /** Web API base URL, for SLACK_API_URL / `slackApiUrl`. */
  get url(): string {
    return `${this.origin}/api/`;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/socket')) return socket.destroy();
      this.sockets.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address() as { port: number };
    this.origin = `http://127.0.0.1:${address.port}`;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    for (const client of this.sockets.clients) client.terminate();
    this.sockets.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resolves once an app has connected over Socket Mode. */
  async socketConnected(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.socket?.readyState !== 1) {
      if (Date.now() > deadline) throw new Error('no Socket Mode connection');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Sends one Socket Mode envelope (`events_api`, `interactive`, `slash_commands`) and resolves with
   * the app's ack payload.
   */
  socketSend(type: 'events_api' | 'interactive' | 'slash_commands', payload: Record<string, any>, options: { retryAttempt?: number; timeoutMs?: number } = {}): Promise<Record<string, any>> {
    const socket = this.socket;
    if (!socket || socket.readyState !== 1) return Promise.reject(new Error('no Socket Mode connection'));
    const envelopeId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingAcks.delete(envelopeId);
        reject(new Error(`no ack for ${type} envelope within ${options.timeoutMs ?? 3000} ms`));
      }, options.timeoutMs ?? 3000);
      this.pendingAcks.set(envelopeId, (ack) => {
        clearTimeout(timer);
        resolve(ack);
      });
      socket.send(
        JSON.stringify({
          envelope_id: envelopeId,
          type,
          payload,
          accepts_response_payload: type !== 'events_api',
          ...(type === 'events_api' ? { retry_attempt: options.retryAttempt ?? 0, retry_reason: options.retryAttempt ? 'timeout' : '' } : {}),
        }),
      );
    });
  }

  private onSocket(ws: WebSocket): void {
    this.socket = ws;
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as { envelope_id?: string; payload?: Record<string, any> };
      if (message.envelope_id) this.pendingAcks.get(message.envelope_id)?.(message.payload ?? {});
      if (message.envelope_id) this.pendingAcks.delete(message.envelope_id);
    });
    ws.send(JSON.stringify({ type: 'hello', num_connections: 1, debug_info: { host: 'emulated', approximate_connection_time: 3600 }, connection_info: { app_id: 'AEMULATED' } }));
  }

  addUser(user: EmulatedUser): void {
    this.users.set(user.id, user);
  }

  addChannel(id: string, name: string): void {
    this.channels.set(id, { id, name });
  }

  addUserGroup(group: { id: string; handle: string; name?: string }): void {
    this.userGroups.set(group.id, { id: group.id, handle: group.handle, name: group.name ?? group.handle });
  }

  /** The Home tab `user` sees now. */
  homeView(user: string): Record<string, any> | undefined {
    return this.homeViews.filter((v) => v.user === user).at(-1)?.view;
  }

  /** The permalink Slack gives for a message (the same shape as `chat.getPermalink`'s). */
  permalink(channel: string, ts: string): string {
    const message = this.message(channel, ts);
    const base = `https://emulated.slack.com/archives/${channel}/p${ts.replace('.', '')}`;
    return message?.thread_ts && message.thread_ts !== ts ? `${base}?thread_ts=${message.thread_ts}&cid=${channel}` : base;
  }

  /** A file an operator shared, downloadable with the bot token. */
  addFile(input: { id: string; name: string; mimetype: string; content: string | Buffer; user: string }): Record<string, any> {
    const file = {
      id: input.id,
      name: input.name,
      title: input.name,
      mimetype: input.mimetype,
      size: Buffer.byteLength(input.content),
      user: input.user,
      mode: 'hosted',
      url_private: `${this.origin}/files-pri/${this.teamId}-${input.id}/${encodeURIComponent(input.name)}`,
      url_private_download: `${this.origin}/files-pri/${this.teamId}-${input.id}/download/${encodeURIComponent(input.name)}`,
      permalink: `${this.origin}/files/${input.user}/${input.id}/${encodeURIComponent(input.name)}`,
    };
    this.files.set(input.id, { file, content: Buffer.from(input.content) });
    return file;
  }

  /** Make the next matching calls misbehave. */
  fault(fault: Fault): void {
    this.faults.push({ ...fault });
  }

  clearFaults(): void {
    this.faults.length = 0;
    this.chaotic = undefined;
  }

  /** Misbehave at random from now on (until `clearFaults`). */
  chaos(chaos: Chaos): void {
    this.chaotic = { chaos, random: mulberry32(chaos.seed ?? 1) };
  }

  /** Calls of one method, in order. */
  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  message(channel: string, ts: string): StoredMessage | undefined {
    return this.messages.find((m) => m.channel === channel && m.ts === ts);
  }

  /** Replies in a thread (root excluded), oldest first. */
  replies(channel: string, threadTs: string): StoredMessage[] {
    return this.messages.filter((m) => m.channel === channel && m.thread_ts === threadTs && m.ts !== threadTs);
  }

  /** A `response_url` for a slash command or action, recorded under `owner` (a user id). */
  responseUrl(owner: string): string {
    const id = randomUUID();
    this.responseOwners.set(id, owner);
    return `${this.origin}/respond/${id}`;
  }

  /** What was sent to response_urls handed to `user`. */
  responsesFor(user: string): Array<Record<string, any>> {
    return this.responses.filter((r) => this.responseOwners.get(r.id) === user).map((r) => r.body);
  }

  /** A human posts in a channel or thread (as Slack would store it); returns the message event Slack sends. */
  postAsUser(input: { channel: string; user: string; text: string; thread_ts?: string; files?: any[] }): Record<string, any> {
    const ts = this.nextTs();
    const stored: StoredMessage = {
      channel: input.channel,
      ts,
      text: input.text,
      user: input.user,
      versions: [{ text: input.text }],
      ...(input.thread_ts ? { thread_ts: input.thread_ts } : {}),
      ...(input.files ? { files: input.files } : {}),
    };
    this.messages.push(stored);
    return {
      type: 'message',
      ...(input.files ? { subtype: 'file_share', files: input.files } : {}),
      channel: input.channel,
      user: input.user,
      text: input.text,
      ts,
      event_ts: ts,
      channel_type: 'channel',
      team: this.teamId,
      client_msg_id: randomUUID(),
      ...(input.thread_ts ? { thread_ts: input.thread_ts, parent_user_id: this.botUserId } : {}),
    };
  }

  /** The message event Slack sends for one of the bot's own posts (the echo the app must ignore). */
  echoEvent(message: StoredMessage): Record<string, any> {
    return {
      type: 'message',
      ...(message.reply_broadcast ? { subtype: 'thread_broadcast' } : {}),
      channel: message.channel,
      user: this.botUserId,
      bot_id: this.botId,
      text: message.text,
      ts: message.ts,
      event_ts: message.ts,
      ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}),
    };
  }

  /**
   * The `block_actions` payload Slack sends when `user` clicks the button `actionId` on a message,
   * built from the message's current blocks: clicking a button that is not shown fails. With
   * `stale`, an older rendering may be clicked (a client that has not refreshed yet, as in real Slack).
   */
  blockActionPayload(input: { channel: string; ts: string; actionId: string | RegExp; user: string; stale?: boolean }): Record<string, any> {
    const message = this.message(input.channel, input.ts);
    if (!message) throw new Error(`no message ${input.channel}/${input.ts}`);
    const renderings = input.stale ? [...message.versions].reverse() : [message.versions.at(-1)!];
    let found: { block: any; element: any } | undefined;
    let current = renderings[0]!;
    for (const rendering of renderings) {
      for (const block of rendering.blocks ?? []) {
        const elements = block.type === 'actions' ? block.elements : block.accessory ? [block.accessory] : [];
        for (const element of elements ?? []) {
          const matches = typeof input.actionId === 'string' ? element.action_id === input.actionId : input.actionId.test(element.action_id);
          if (element.type === 'button' && matches && !found) {
            found = { block, element };
            current = rendering;
          }
        }
      }
      if (found) break;
    }
    if (!found) throw new Error(`no button ${String(input.actionId)} on ${input.channel}/${input.ts}; buttons: ${this.buttons(input.channel, input.ts).join(', ')}`);
    const user = this.users.get(input.user);
    return {
      type: 'block_actions',
      user: { id: input.user, username: user?.name ?? input.user, name: user?.name ?? input.user, team_id: this.teamId },
      api_app_id: 'AEMULATED',
      token: 'verification-token-unused',
      container: { type: 'message', message_ts: message.ts, channel_id: message.channel, is_ephemeral: false, ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}) },
      trigger_id: this.triggerId(),
      team: { id: this.teamId, domain: 'emulated' },
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: message.channel, name: this.channels.get(message.channel)?.name ?? 'support' },
      message: { type: 'message', user: this.botUserId, bot_id: this.botId, text: current.text, blocks: current.blocks, ts: message.ts, ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}) },
      state: { values: {} },
      response_url: this.responseUrl(input.user),
      actions: [
        {
          type: 'button',
          action_id: found.element.action_id,
          block_id: found.block.block_id ?? 'b',
          text: found.element.text,
          value: found.element.value,
          action_ts: `${Date.now() / 1000}`,
        },
      ],
    };
  }

  /** action_ids of the buttons a message shows now. */
  buttons(channel: string, ts: string): string[] {
    const current = this.message(channel, ts)?.versions.at(-1);
    const ids: string[] = [];
    for (const block of current?.blocks ?? []) {
      const elements = block.type === 'actions' ? block.elements : block.accessory ? [block.accessory] : [];
      for (const element of elements ?? []) if (element.type === 'button') ids.push(element.action_id);
    }
    return ids;
  }

  /** The `view_submission` payload for the last modal opened, with the note typed in. */
  viewSubmissionPayload(input: { user: string; note: string; viewId?: string }): Record<string, any> {
    const opened = input.viewId ? this.views.find((v) => v.id === input.viewId) : this.views.at(-1);
    if (!opened) throw new Error('no modal was opened');
    const values: Record<string, any> = {};
    for (const block of opened.view.blocks ?? []) {
      if (block.type === 'input') values[block.block_id] = { [block.element.action_id]: { type: block.element.type, value: input.note } };
    }
    return {
      type: 'view_submission',
      team: { id: this.teamId, domain: 'emulated' },
      user: { id: input.user, username: this.users.get(input.user)?.name ?? input.user, name: this.users.get(input.user)?.name ?? input.user, team_id: this.teamId },
      api_app_id: 'AEMULATED',
      token: 'verification-token-unused',
      trigger_id: this.triggerId(),
      view: { ...opened.view, id: opened.id, team_id: this.teamId, state: { values }, hash: 'h', app_id: 'AEMULATED', bot_id: this.botId },
      response_urls: [],
      is_enterprise_install: false,
      enterprise: null,
    };
  }

  /** The form fields of a slash command typed by `user` in `channel`. */
  slashCommand(input: { command: string; text: string; user: string; channel: string }): Record<string, string> {
    return {
      token: 'verification-token-unused',
      team_id: this.teamId,
      team_domain: 'emulated',
      channel_id: input.channel,
      channel_name: this.channels.get(input.channel)?.name ?? 'support',
      user_id: input.user,
      user_name: this.users.get(input.user)?.name ?? input.user,
      command: input.command,
      text: input.text,
      api_app_id: 'AEMULATED',
      is_enterprise_install: 'false',
      response_url: this.responseUrl(input.user),
      trigger_id: this.triggerId(),
    };
  }

  /** The `message_action` payload of a message shortcut used on a message. */
  messageShortcut(input: { callbackId: string; channel: string; ts: string; user: string }): Record<string, any> {
    const message = this.message(input.channel, input.ts);
    if (!message) throw new Error(`no message ${input.channel}/${input.ts}`);
    return {
      type: 'message_action',
      token: 'verification-token-unused',
      action_ts: `${Date.now() / 1000}`,
      team: { id: this.teamId, domain: 'emulated' },
      user: { id: input.user, name: this.users.get(input.user)?.name ?? input.user, team_id: this.teamId },
      channel: { id: input.channel, name: this.channels.get(input.channel)?.name ?? 'support' },
      is_enterprise_install: false,
      enterprise: null,
      callback_id: input.callbackId,
      trigger_id: this.triggerId(),
      response_url: this.responseUrl(input.user),
      message_ts: message.ts,
      message: { type: 'message', user: message.user, text: message.text, ts: message.ts, ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}) },
    };
  }

  triggerId(): string {
    return `${Date.now()}.${Math.floor(Math.random() * 1e9)}.${randomUUID().slice(0, 8)}`;
  }

  // ---- the server -----------------------------------------------------------------------

  private nextTs(): string {
    const second = Math.floor(Date.now() / 1000);
    if (second > this.lastSecond) {
      this.lastSecond = second;
      this.counter = 0;
    }
    this.counter += 1;
    return `${this.lastSecond}.${String(this.counter).padStart(6, '0')}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');

    if (url.pathname.startsWith('/respond/')) {
      const id = url.pathname.slice('/respond/'.length);
      if (!this.responseOwners.has(id)) return void res.writeHead(404).end('no such response_url');
      this.responses.push({ id, body: JSON.parse(raw || '{}') });
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    }
    if (url.pathname.startsWith('/files-pri/')) {
      if (req.headers.authorization !== `Bearer ${this.botToken}`) return void res.writeHead(302, { location: `${this.origin}/signin` }).end();
      const id = url.pathname.split('/')[2]?.split('-').at(-1) ?? '';
      const file = this.files.get(id);
      if (!file) return void res.writeHead(404).end();
      return void res.writeHead(200, { 'content-type': file.file.mimetype }).end(file.content);
    }
    if (!url.pathname.startsWith('/api/')) return void res.writeHead(404).end();

    const method = url.pathname.slice('/api/'.length);
    const args = parseArgs(raw, req.headers['content-type']);
    const record: RecordedCall = { method, args, status: 200, at: Date.now() };
    this.calls.push(record);

    const fault = this.takeFault(method, args) ?? this.randomFault(method);
    if (fault?.kind === 'delay') await new Promise((r) => setTimeout(r, fault.delayMs ?? 200));
    if (fault?.kind === 'rate_limit') {
      record.status = 429;
      record.error = 'ratelimited';
      return void res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(fault.retryAfterSeconds ?? 1) }).end(JSON.stringify({ ok: false, error: 'ratelimited' }));
    }
    if (fault?.kind === 'server_error') {
      record.status = 500;
      return void res.writeHead(500, { 'content-type': 'text/html' }).end('<html>internal error</html>');
    }

    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '') || (args.token as string | undefined);
    const result =
      method === 'apps.connections.open'
        ? token === this.appToken
          ? { ok: true, url: `${this.origin.replace('http', 'ws')}/socket?ticket=${randomUUID()}` }
          : { ok: false, error: 'invalid_auth' }
        : token === this.botToken
          ? this.answer(method, args)
          : { ok: false, error: token ? 'invalid_auth' : 'not_authed' };
    if (result.ok === false) record.error = String(result.error);

    if (fault?.kind === 'lost_answer') {
      // Slack did the work, but the answer never arrives.
      record.status = 0;
      req.socket.destroy();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(result));
  }

  private takeFault(method: string, args: Record<string, any>): Fault | undefined {
    const index = this.faults.findIndex(
      (f) => f.times > 0 && (f.method === undefined || (typeof f.method === 'string' ? f.method === method : f.method.test(method))) && (!f.when || f.when(args)),
    );
    if (index === -1) return undefined;
    const fault = this.faults[index]!;
    fault.times -= 1;
    if (fault.times === 0) this.faults.splice(index, 1);
    return fault;
  }

  private randomFault(method: string): Fault | undefined {
    if (!this.chaotic) return undefined;
    const { chaos, random } = this.chaotic;
    if (!(chaos.methods ?? /^(chat\.postMessage|chat\.update|conversations\.replies|conversations\.history)$/).test(method)) return undefined;
    if (random() >= chaos.rate) return undefined;
    const kinds = chaos.kinds ?? ['rate_limit', 'server_error', 'lost_answer'];
    const kind = kinds[Math.floor(random() * kinds.length)]!;
    return { kind, times: 1, retryAfterSeconds: chaos.retryAfterSeconds ?? 1 };
  }

  private answer(method: string, args: Record<string, any>): Record<string, any> {
    switch (method) {
      case 'auth.test':
        return { ok: true, url: 'https://emulated.slack.com/', team: 'Emulated', user: 'bridge', team_id: this.teamId, user_id: this.botUserId, bot_id: this.botId, is_enterprise_install: false };
      case 'chat.postMessage':
        return this.postMessage(args);
      case 'chat.update':
        return this.update(args);
      case 'chat.postEphemeral': {
        if (!args.channel || !args.user) return { ok: false, error: !args.channel ? 'channel_not_found' : 'user_not_found' };
        if (!args.text && !args.blocks) return { ok: false, error: 'no_text' };
        this.ephemerals.push({ channel: args.channel, user: args.user, text: args.text ?? '', ...(args.blocks ? { blocks: args.blocks } : {}), ...(args.thread_ts ? { thread_ts: args.thread_ts } : {}) });
        return { ok: true, message_ts: this.nextTs() };
      }
      case 'users.info': {
        const user = this.users.get(args.user);
        if (!user) return { ok: false, error: 'user_not_found' };
        return {
          ok: true,
          user: { id: user.id, team_id: this.teamId, name: user.name, deleted: false, real_name: user.realName ?? user.displayName, is_bot: false, profile: { display_name: user.displayName, real_name: user.realName ?? user.displayName } },
        };
      }
      case 'views.open': {
        if (!args.trigger_id) return { ok: false, error: 'invalid_arguments' };
        const view = typeof args.view === 'string' ? JSON.parse(args.view) : args.view;
        if (!view || view.type !== 'modal') return { ok: false, error: 'invalid_arguments' };
        if ((view.title?.text ?? '').length > 24) return { ok: false, error: 'invalid_arguments' };
        const id = `V${randomUUID().replace(/-/g, '').slice(0, 10).toUpperCase()}`;
        this.views.push({ id, trigger_id: args.trigger_id, view });
        return { ok: true, view: { ...view, id } };
      }
      case 'views.publish': {
        const view = parseJsonArg(args.view);
        if (!args.user_id || !view || view.type !== 'home') return { ok: false, error: 'invalid_arguments' };
        if (!Array.isArray(view.blocks) || view.blocks.length > 100) return { ok: false, error: 'invalid_blocks' };
        const invalid = blockProblems(view.blocks, '', Number.POSITIVE_INFINITY, 100);
        if (invalid) return { ok: false, error: invalid };
        this.homeViews.push({ user: String(args.user_id), view });
        return { ok: true, view: { ...view, id: `V${randomUUID().replace(/-/g, '').slice(0, 10).toUpperCase()}` } };
      }
      case 'chat.getPermalink': {
        if (!args.channel) return { ok: false, error: 'channel_not_found' };
        if (!this.message(args.channel, args.message_ts)) return { ok: false, error: 'message_not_found' };
        return { ok: true, channel: args.channel, permalink: this.permalink(args.channel, args.message_ts) };
      }
      case 'usergroups.list':
        return { ok: true, usergroups: [...this.userGroups.values()].map((g) => ({ id: g.id, team_id: this.teamId, handle: g.handle, name: g.name, is_usergroup: true, date_delete: 0 })) };
      case 'conversations.info': {
        const channel = this.channels.get(args.channel);
        return channel ? { ok: true, channel: { id: channel.id, name: channel.name, is_channel: true, is_member: true } } : { ok: false, error: 'channel_not_found' };
      }
      case 'conversations.replies': {
        const root = this.message(args.channel, args.ts);
        if (!root) return { ok: false, error: 'thread_not_found' };
        const oldest = Number(args.oldest ?? 0);
        // Oldest first, the parent on every page, as Slack does.
        const replies = this.replies(args.channel, args.ts).filter((m) => Number(m.ts) > oldest);
        return this.page([root], replies, args);
      }
      case 'conversations.history': {
        const oldest = Number(args.oldest ?? 0);
        const top = this.messages.filter((m) => m.channel === args.channel && (!m.thread_ts || m.thread_ts === m.ts || m.reply_broadcast) && Number(m.ts) > oldest);
        // Newest first.
        return this.page([], top.reverse(), args);
      }
      case 'files.info': {
        const file = this.files.get(args.file);
        return file ? { ok: true, file: file.file } : { ok: false, error: 'file_not_found' };
      }
      default:
        return { ok: false, error: 'unknown_method' };
    }
  }

  /** One page of `messages` (after `head`), by `limit` and an opaque `cursor`. */
  private page(head: StoredMessage[], messages: StoredMessage[], args: Record<string, any>): Record<string, any> {
    const limit = Math.max(1, Math.min(1000, Number(args.limit ?? 100) || 100));
    const offset = args.cursor ? Number(Buffer.from(String(args.cursor), 'base64url').toString('utf8').replace(/^offset:/, '')) || 0 : 0;
    const slice = messages.slice(offset, offset + limit);
    const more = offset + limit < messages.length;
    return {
      ok: true,
      messages: [...head, ...slice].map((m) => this.wire(m, args.include_all_metadata)),
      has_more: more,
      response_metadata: { next_cursor: more ? Buffer.from(`offset:${offset + limit}`).toString('base64url') : '' },
    };
  }

  private postMessage(args: Record<string, any>): Record<string, any> {
    if (!args.channel) return { ok: false, error: 'channel_not_found' };
    const blocks = parseJsonArg(args.blocks);
    const text = typeof args.text === 'string' ? args.text : '';
    if (!text && !blocks) return { ok: false, error: 'no_text' };
    const invalid = blockProblems(blocks, text, this.blocksTextLimit);
    if (invalid) return { ok: false, error: invalid };
    if (args.thread_ts && !this.message(args.channel, args.thread_ts)) return { ok: false, error: 'thread_not_found' };
    const metadata = parseJsonArg(args.metadata);
    const ts = this.nextTs();
    const stored: StoredMessage = {
      channel: args.channel,
      ts,
      text,
      user: this.botUserId,
      bot_id: this.botId,
      versions: [{ text, ...(blocks ? { blocks } : {}) }],
      ...(blocks ? { blocks } : {}),
      ...(args.thread_ts ? { thread_ts: String(args.thread_ts) } : {}),
      ...(metadata ? { metadata } : {}),
      ...(args.reply_broadcast === true || args.reply_broadcast === 'true' ? { reply_broadcast: true } : {}),
    };
    this.messages.push(stored);
    return { ok: true, channel: stored.channel, ts, message: this.wire(stored, true) };
  }

  private update(args: Record<string, any>): Record<string, any> {
    const message = this.message(args.channel, args.ts);
    if (!message) return { ok: false, error: 'message_not_found' };
    if (message.bot_id !== this.botId) return { ok: false, error: 'cant_update_message' };
    const blocks = parseJsonArg(args.blocks);
    const text = typeof args.text === 'string' ? args.text : message.text;
    const invalid = blockProblems(blocks, text, this.blocksTextLimit);
    if (invalid) return { ok: false, error: invalid };
    message.text = text;
    if (blocks) message.blocks = blocks;
    message.versions.push({ text, ...(blocks ? { blocks } : message.blocks ? { blocks: message.blocks } : {}) });
    return { ok: true, channel: message.channel, ts: message.ts, text, message: this.wire(message, false) };
  }

  private wire(m: StoredMessage, includeMetadata: unknown): Record<string, any> {
    return {
      type: 'message',
      user: m.user,
      ...(m.bot_id ? { bot_id: m.bot_id, app_id: 'AEMULATED' } : {}),
      text: m.text,
      ts: m.ts,
      ...(m.thread_ts ? { thread_ts: m.thread_ts } : {}),
      ...(m.blocks ? { blocks: m.blocks } : {}),
      ...(m.reply_broadcast ? { subtype: 'thread_broadcast' } : {}),
      ...(m.metadata && (includeMetadata === true || includeMetadata === 'true') ? { metadata: m.metadata } : {}),
    };
  }
}

function parseArgs(raw: string, contentType: string | undefined): Record<string, any> {
  if ((contentType ?? '').includes('application/json')) return raw ? (JSON.parse(raw) as Record<string, any>) : {};
  return Object.fromEntries(new URLSearchParams(raw).entries());
}

function parseJsonArg(value: unknown): any {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}

/** Every string `text` in the blocks, counted together. */
function totalBlocksText(node: unknown): number {
  if (Array.isArray(node)) return node.reduce((sum: number, item) => sum + totalBlocksText(item), 0);
  if (!node || typeof node !== 'object') return 0;
  let sum = 0;
  for (const [key, value] of Object.entries(node)) sum += key === 'text' && typeof value === 'string' ? value.length : totalBlocksText(value);
  return sum;
}

/** The error Slack gives for blocks (or text) over its limits, or undefined. */
function blockProblems(blocks: any[] | undefined, text: string, blocksTextLimit: number, maxBlocks = PLAIN_LIMITS.blocks): string | undefined {
  if (text.length > PLAIN_LIMITS.text) return 'msg_too_long';
  if (!blocks) return undefined;
  if (!Array.isArray(blocks) || blocks.length > maxBlocks) return 'invalid_blocks';
  if (totalBlocksText(blocks) > blocksTextLimit) return 'msg_blocks_too_long';
  for (const block of blocks) {
    if (block.type === 'header' && !(block.text?.text?.length > 0 && block.text.text.length <= PLAIN_LIMITS.header)) return 'invalid_blocks';
    if (block.type === 'section') {
      if (block.text && !(block.text.text?.length > 0 && block.text.text.length <= PLAIN_LIMITS.section)) return 'invalid_blocks';
      if (block.fields && (block.fields.length > PLAIN_LIMITS.fields || block.fields.some((f: any) => !(f.text?.length > 0) || f.text.length > PLAIN_LIMITS.field))) return 'invalid_blocks';
      if (!block.text && !block.fields) return 'invalid_blocks';
    }
    const elements = block.type === 'actions' ? block.elements : block.accessory ? [block.accessory] : [];
    const ids = new Set<string>();
    for (const el of elements ?? []) {
      if (el.type !== 'button') continue;
      if (!(el.text?.text?.length > 0) || el.text.text.length > PLAIN_LIMITS.button) return 'invalid_blocks';
      if ((el.value ?? '').length > PLAIN_LIMITS.value || (el.action_id ?? '').length > PLAIN_LIMITS.actionId) return 'invalid_blocks';
      if (ids.has(el.action_id)) return 'invalid_blocks';
      ids.add(el.action_id);
    }
  }
  return undefined;
}

/** A small seeded PRNG (mulberry32): reproducible chaos. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the app answered to one signed request. */
export interface SlackReply {
  status: number;
  text: string;
  json(): any;
}

/** Sends Slack's inbound requests, signed with the signing secret, to the app's events URL. */
export class SlackEventsClient {
  private eventCounter = 0;

  constructor(
    private readonly eventsUrl: string,
    private readonly signingSecret: string,
    private readonly teamId = 'T0EMULATED',
  ) {}

  /** An Events API callback wrapping `event`. Reuse `eventId` to simulate a redelivery. */
  async event(event: Record<string, any>, options: { eventId?: string; retryNum?: number } = {}): Promise<SlackReply & { eventId: string }> {
    const eventId = options.eventId ?? `Ev${Date.now().toString(36).toUpperCase()}${(this.eventCounter += 1)}`;
    const body = JSON.stringify({
      token: 'verification-token-unused',
      team_id: this.teamId,
      api_app_id: 'AEMULATED',
      event,
      type: 'event_callback',
      event_id: eventId,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ enterprise_id: null, team_id: this.teamId, user_id: 'UBOTBRIDGE', is_bot: true, is_enterprise_install: false }],
      is_ext_shared_channel: false,
      event_context: `4-${eventId}`,
    });
    const headers: Record<string, string> = options.retryNum ? { 'x-slack-retry-num': String(options.retryNum), 'x-slack-retry-reason': 'http_timeout' } : {};
    return { ...(await this.send(body, 'application/json', { headers })), eventId };
  }

  /** An interactivity request (`payload=` form): button clicks, modal submissions, shortcuts. */
  interaction(payload: Record<string, any>): Promise<SlackReply> {
    return this.send(new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), 'application/x-www-form-urlencoded');
  }

  /** A slash command (form fields). */
  command(fields: Record<string, string>): Promise<SlackReply> {
    return this.send(new URLSearchParams(fields).toString(), 'application/x-www-form-urlencoded');
  }

  /** Any body, signed as Slack would, or with a chosen timestamp/signature to forge one. */
  async send(body: string, contentType: string, options: { timestamp?: number; signature?: string; headers?: Record<string, string> } = {}): Promise<SlackReply> {
    const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
    const signature = options.signature ?? `v0=${createHmac('sha256', this.signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
    const response = await fetch(this.eventsUrl, {
      method: 'POST',
      headers: { 'content-type': contentType, 'x-slack-request-timestamp': String(timestamp), 'x-slack-signature': signature, ...options.headers },
      body,
    });
    const text = await response.text();
    return { status: response.status, text, json: () => JSON.parse(text) };
  }
}
