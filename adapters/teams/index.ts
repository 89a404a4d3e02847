/**
 * Microsoft Teams as an operator workspace. `createTeamsWorkspace` wires botbuilder's CloudAdapter
 * (inbound, at `POST /api/messages`), the Bot Connector client (outbound, paced, one request per
 * call: the bridge's delivery worker retries) and the cards, on the same bridge and with the same
 * behaviour as Slack.
 *
 * main.ts:
 *   const config = teamsConfigFromEnv();
 *   if (config) { const teams = createTeamsWorkspace({ bridge, http, logger, config }); bridge.addWorkspace(teams); services.push(teams); }
 */
import { ConfigurationServiceClientCredentialFactory } from 'botbuilder';
import type { HttpServer } from '../../src/http.ts';
import type { Digest } from '../../src/engine/digest.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import type { BridgePort, DeliveryAttempt, Service, Workspace } from '../../src/ports.ts';
import { trustedServiceUrl, validateTeamsConfig, type TeamsConfig } from './config.ts';
import { BotConnector } from './connector.ts';
import { createBotAuthentication, mountMessagesEndpoint, TeamsCloudAdapter } from './endpoint.ts';
import { TeamsState } from './state.ts';
import { TEAMS_THREAD_LIMITS, ThreadPacer } from './throttle.ts';
import { TeamsTurns } from './turns.ts';
import { TeamsOutbound } from './workspace.ts';

export { teamsConfigFromEnv, type TeamsConfig } from './config.ts';

/** Where Teams posts activities (the Azure Bot's messaging endpoint is `https://<host>/api/messages`). */
export const TEAMS_MESSAGES_PATH = '/api/messages';

export interface TeamsWorkspaceOptions {
  bridge: BridgePort;
  http: HttpServer;
  logger: Logger;
  config: TeamsConfig;
  /** Route for inbound activities; `/api/messages` unless you need another. */
  path?: string;
}

/** The Teams workspace: a bridge `Workspace` and a `Service` main.ts starts and stops. */
export class TeamsWorkspace implements Workspace, Service {
  readonly name = 'teams';
  /** Set only with a managers' channel (`TEAMS_MANAGERS_CHANNEL_ID`): without one, the bridge leaves managers' work out. */
  readonly postToManagers?: (conversation: Conversation, attempt?: DeliveryAttempt) => Promise<void>;
  readonly postDigest?: (digest: Digest) => Promise<void>;
  private readonly outbound: TeamsOutbound;
  private readonly logger: Logger;
  private readonly inFlight = new Set<Promise<unknown>>();
  private accepting = false;

  constructor(options: TeamsWorkspaceOptions) {
    validateTeamsConfig(options.config);
    const { bridge, config } = options;
    this.logger = options.logger.child({ workspace: 'teams' });
    const state = new TeamsState(bridge.store.kv('teams'));
    const credentials = new ConfigurationServiceClientCredentialFactory({
      MicrosoftAppId: config.appId,
      MicrosoftAppPassword: config.appPassword,
      MicrosoftAppType: config.appType,
      MicrosoftAppTenantId: config.tenantId,
    });
    const connector = new BotConnector({
      appId: config.appId,
      credentials,
      logger: this.logger,
      ...(config.requestTimeoutMs ? { timeoutMs: config.requestTimeoutMs } : {}),
      ...(config.throttleBackoffMs ? { throttleBackoffMs: config.throttleBackoffMs } : {}),
      pacer: new ThreadPacer(config.threadLimits ?? TEAMS_THREAD_LIMITS),
      allowServiceUrl: (url) => trustedServiceUrl(config, url) !== undefined,
    });
    this.outbound = new TeamsOutbound({ bridge, config, connector, state, logger: this.logger });
    if (config.managersChannelId) {
      const outbound = this.outbound;
      this.postToManagers = (conversation, attempt) => this.track(outbound.postToManagers(conversation, attempt));
      this.postDigest = (digest) => this.track(outbound.postDigest(digest));
    }
    const authenticated = !!config.appId;
    const turns = new TeamsTurns({
      bridge,
      state,
      outbound: this.outbound,
      logger: this.logger,
      serviceUrl: config.serviceUrl,
      // Only an authenticated activity's serviceUrl is ever kept, and only a trusted one.
      serviceUrlOf: (activity) => (authenticated ? trustedServiceUrl(config, activity.serviceUrl) : undefined),
    });
    const adapter = new TeamsCloudAdapter(createBotAuthentication(config), this.logger);
    mountMessagesEndpoint(options.http, options.path ?? TEAMS_MESSAGES_PATH, {
      adapter,
      logic: (context) => turns.onTurn(context),
      accepting: () => this.accepting,
      track: (work) => this.track(work),
      logger: this.logger,
      loopbackOnly: !authenticated,
    });
    if (!authenticated) {
      this.logger.warn('TEAMS_ALLOW_UNAUTHENTICATED: Bot Framework authentication is OFF; /api/messages takes requests from this machine only (local development)');
    }
  }

  mirror(conversation: Conversation, message: Message, attempt?: DeliveryAttempt): Promise<void> {
    return this.track(this.outbound.mirror(conversation, message, attempt));
  }

  postBriefing(conversation: Conversation, attempt?: DeliveryAttempt): Promise<void> {
    return this.track(this.outbound.postBriefing(conversation, attempt));
  }

  ownershipChanged(conversation: Conversation, change: HistoryEntry, attempt?: DeliveryAttempt): Promise<void> {
    return this.track(this.outbound.ownershipChanged(conversation, change, attempt));
  }

  notifyOperator(operator: Operator, text: string, conversation?: Conversation): Promise<void> {
    return this.track(this.outbound.notifyOperator(operator, text, conversation));
  }

  async start(): Promise<void> {
    this.accepting = true;
    this.logger.info('Teams workspace accepting activities');
  }

  /** Stops taking activities (Teams retries them elsewhere or later), then finishes what is in flight. */
  async stop(): Promise<void> {
    this.accepting = false;
    await this.idle();
  }

  /** Resolves when no inbound turn or outbound Teams call is in flight. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work)).catch(() => {});
    return work;
  }
}

/** Creates the Teams workspace and mounts its endpoint on the shared HTTP server. */
export function createTeamsWorkspace(options: TeamsWorkspaceOptions): TeamsWorkspace {
  return new TeamsWorkspace(options);
}
