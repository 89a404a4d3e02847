/**
 * `POST /api/messages`: botbuilder's CloudAdapter with Bot Framework authentication, on the shared
 * HTTP server. When an app id is configured, a request without a valid token is answered 401 before
 * any bot logic runs, so it changes nothing. A missing or malformed token is refused locally; only a
 * well-formed token needs Microsoft's signing keys (fetched once, then cached by botbuilder).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CloudAdapter, ConfigurationBotFrameworkAuthentication, type Activity, type TurnContext } from 'botbuilder';
import { readBody, type HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import type { TeamsConfig } from './config.ts';

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

/** Builds the Bot Framework authentication for the configured app (empty app id: auth disabled). */
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
  },
): void {
  http.route('POST', path, async (req: IncomingMessage, res: ServerResponse) => {
    if (!options.accepting()) return send(res, 503, { error: 'not accepting activities right now' });
    let activity: Activity;
    try {
      const parsed = JSON.parse((await readBody(req, MAX_BODY_BYTES)).toString('utf8')) as unknown;
      if (!parsed || typeof parsed !== 'object' || typeof (parsed as { type?: unknown }).type !== 'string') {
        return send(res, 400, { error: 'expected a Bot Framework activity (JSON object with a type)' });
      }
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
