/**
 * `POST /api/messages`: botbuilder's CloudAdapter with Bot Framework authentication, on the shared
 * HTTP server. A body that is not an activity is answered 400, and a request without a valid token
 * 401, before any bot logic runs, so neither changes anything. A missing or malformed token is
 * refused locally; only a well-formed token needs Microsoft's signing keys (fetched once, then
 * cached by botbuilder). Without authentication (`TEAMS_ALLOW_UNAUTHENTICATED`, local development)
 * only requests from this machine are taken.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CloudAdapter, ConfigurationBotFrameworkAuthentication, type Activity, type TurnContext } from 'botbuilder';
import { readBody, type HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import { isLoopbackAddress, type TeamsConfig } from './config.ts';

/** Bot Framework activities are small; anything bigger is not from Teams. */
const MAX_BODY_BYTES = 1_000_000;

/** The CloudAdapter, answering with status codes we choose and logging through our logger. */
export class TeamsCloudAdapter extends CloudAdapter {
  constructor(
    auth: ConfigurationBotFrameworkAuthentication,
    private readonly logger: Logger,
  ) {
    super(auth);
    this.onTurnError = async (_context, err) => {
      this.logger.error({ err }, 'Teams turn failed');
      throw err; // surfaces as 500, so Teams retries the activity
    };
  }

  /**
   * Authenticates one inbound activity and runs `logic` on it. Returns what to answer Teams:
   * 401 for a bad or missing token, the invoke response for invokes, 200 otherwise.
   */
  async handle(activity: Activity, authorization: string, logic: (context: TurnContext) => Promise<void>): Promise<{ status: number; body?: unknown }> {
    let auth: Awaited<ReturnType<ConfigurationBotFrameworkAuthentication['authenticateRequest']>>;
    try {
      auth = await this.botFrameworkAuthentication.authenticateRequest(activity, authorization);
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      // jsonwebtoken's own errors (bad signature, expired, not yet valid) reach us unwrapped.
      const tokenError = ['JsonWebTokenError', 'TokenExpiredError', 'NotBeforeError'].includes((err as Error).name);
      if (status === 401 || status === 403 || tokenError) {
        this.logger.warn({ reason: (err as Error).message, activityType: activity.type }, 'rejected a Teams request: invalid or missing token');
        return { status: 401, body: { error: 'unauthorized' } };
      }
      // Could not check the token (e.g. signing keys unreachable): not the caller's fault; Teams retries.
      this.logger.error({ err }, 'could not authenticate a Teams request');
      return { status: 503, body: { error: 'authentication unavailable' } };
    }
    const response = await this.processActivity(auth, activity, logic);
    return { status: response?.status ?? 200, ...(response?.body !== undefined ? { body: response.body } : {}) };
  }
}

/**
 * Public-cloud endpoints, spelled out: botbuilder uses its built-in set only when none is
 * overridden, so overriding the metadata URL means giving the rest too.
 */
const PUBLIC_CLOUD = {
  ToChannelFromBotLoginUrl: 'https://login.microsoftonline.com/botframework.com',
  ToChannelFromBotOAuthScope: 'https://api.botframework.com',
  ToBotFromChannelTokenIssuer: 'https://api.botframework.com',
  OAuthUrl: 'https://api.botframework.com',
  CallerId: 'urn:botframework:azure',
  ValidateAuthority: true,
};

/** Builds the Bot Framework authentication for the configured app (empty app id: auth disabled, see `allowUnauthenticated`). */
export function createBotAuthentication(config: TeamsConfig): ConfigurationBotFrameworkAuthentication {
  return new ConfigurationBotFrameworkAuthentication({
    MicrosoftAppId: config.appId,
    MicrosoftAppPassword: config.appPassword,
    MicrosoftAppType: config.appType,
    MicrosoftAppTenantId: config.tenantId,
    ...(config.openIdMetadataUrl
      ? { ...PUBLIC_CLOUD, ToBotFromChannelOpenIdMetadataUrl: config.openIdMetadataUrl, ToBotFromEmulatorOpenIdMetadataUrl: config.openIdMetadataUrl }
      : {}),
  });
}

/**
 * Mounts `POST <path>`: reads the JSON activity, hands it to the adapter, writes its answer.
 * `accepting()` false answers 503 (starting up or draining), which Teams retries.
 */
export function mountMessagesEndpoint(
  http: HttpServer,
  path: string,
  options: {
    adapter: TeamsCloudAdapter;
    logic: (context: TurnContext) => Promise<void>;
    accepting: () => boolean;
    track: <T>(work: Promise<T>) => Promise<T>;
    logger: Logger;
    /** No authentication (local development): refuse every request not from this machine. */
    loopbackOnly?: boolean;
  },
): void {
  http.route('POST', path, async (req: IncomingMessage, res: ServerResponse) => {
    if (options.loopbackOnly && !isLoopbackAddress(req.socket.remoteAddress)) {
      options.logger.warn({ remoteAddress: req.socket.remoteAddress }, 'refused a Teams request from another machine: authentication is off (TEAMS_ALLOW_UNAUTHENTICATED)');
      req.resume();
      return send(res, 403, { error: 'this bridge takes unauthenticated Teams requests only from its own machine' });
    }
    if (!options.accepting()) return send(res, 503, { error: 'not accepting activities right now' });
    let activity: Activity;
    try {
      const parsed = JSON.parse((await readBody(req, MAX_BODY_BYTES)).toString('utf8')) as unknown;
      const problem = activityProblem(parsed);
      if (problem) return send(res, 400, { error: `expected a Bot Framework activity: ${problem}` });
      activity = parsed as Activity;
    } catch (err) {
      const status = (err as { status?: number }).status === 413 ? 413 : 400;
      return send(res, status, { error: status === 413 ? 'activity too large' : 'body is not JSON' });
    }
    const authorization = headerValue(req.headers.authorization);
    const result = await options.track(options.adapter.handle(activity, authorization, options.logic)).catch((err: unknown) => {
      options.logger.error({ err, activityId: activity.id, type: activity.type }, 'Teams activity failed');
      return { status: 500, body: { error: 'the bridge could not handle this activity' } };
    });
    send(res, result.status, result.body);
  });
}

const STRING_FIELDS = ['type', 'id', 'name', 'text', 'textFormat', 'serviceUrl', 'channelId', 'replyToId', 'locale', 'timestamp', 'localTimestamp', 'deliveryMode'] as const;
const ACCOUNT_FIELDS = ['id', 'name', 'aadObjectId', 'role', 'tenantId', 'conversationType'] as const;

/**
 * What makes `body` unusable as an activity, or undefined. Checked before authentication and bot
 * logic, so neither meets a field of the wrong type: the fields read here are strings, accounts and
 * the conversation are objects, entities and attachments are arrays of objects. `value` and
 * `channelData` contents are read defensively where used.
 */
export function activityProblem(body: unknown): string | undefined {
  if (!isObject(body)) return 'not a JSON object';
  if (typeof body.type !== 'string' || !body.type) return 'no type';
  // Teams always sends both. botbuilder checks the service URL against the token only when there
  // is one, and fails with a TypeError (not a 401) on a token for an activity without a channel.
  if (typeof body.serviceUrl !== 'string' || !body.serviceUrl) return 'no serviceUrl';
  if (typeof body.channelId !== 'string' || !body.channelId) return 'no channelId';
  for (const field of STRING_FIELDS) if (body[field] !== undefined && typeof body[field] !== 'string') return `${field} is not a string`;
  for (const field of ['from', 'recipient', 'conversation'] as const) {
    const account = body[field];
    if (account === undefined) continue;
    if (!isObject(account)) return `${field} is not an object`;
    for (const key of ACCOUNT_FIELDS) if (account[key] !== undefined && typeof account[key] !== 'string') return `${field}.${key} is not a string`;
    if (account.isGroup !== undefined && typeof account.isGroup !== 'boolean') return `${field}.isGroup is not a boolean`;
  }
  if (body.channelData !== undefined && !isObject(body.channelData)) return 'channelData is not an object';
  for (const field of ['entities', 'attachments', 'membersAdded', 'membersRemoved'] as const) {
    const list = body[field];
    if (list === undefined) continue;
    if (!Array.isArray(list) || !list.every(isObject)) return `${field} is not a list of objects`;
  }
  for (const entity of (body.entities ?? []) as Array<Record<string, unknown>>) {
    if (entity.type !== undefined && typeof entity.type !== 'string') return 'an entity type is not a string';
    if (entity.text !== undefined && typeof entity.text !== 'string') return 'an entity text is not a string';
    if (entity.mentioned !== undefined && !(isObject(entity.mentioned) && (entity.mentioned.id === undefined || typeof entity.mentioned.id === 'string'))) return 'a mention is malformed';
  }
  for (const attachment of (body.attachments ?? []) as Array<Record<string, unknown>>) {
    for (const key of ['contentType', 'contentUrl', 'name'] as const) {
      if (attachment[key] !== undefined && typeof attachment[key] !== 'string') return `an attachment ${key} is not a string`;
    }
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function headerValue(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) }).end(json);
}
