/**
 * Assembles the bridge from configuration: store, policy, agent, HTTP server, and every channel
 * and workspace whose variables are set. `main.ts` runs it; tests start it the same way.
 */
import { randomBytes } from 'node:crypto';
import { consoleConfigFromEnv, createConsoleWorkspace, type ConsoleWorkspace } from '../adapters/console/index.ts';
import { createEmailChannel, emailConfigFromEnv } from '../adapters/email/index.ts';
import { createSlackWorkspace, slackConfigFromEnv, slackConfigured } from '../adapters/slack/index.ts';
import { createTeamsWorkspace, teamsConfigFromEnv } from '../adapters/teams/index.ts';
import { createWebChat, webChatConfigFromEnv } from '../adapters/webchat/index.ts';
import type { Agent } from './agent/agent.ts';
import { loadFaq, OfflineAgent } from './agent/offline-agent.ts';
import { multiAgentFromEnv } from './agent/multi-agent.ts';
import { openAIAgentFromEnv } from './agent/openai-agent.ts';
import { demoTools } from './agent/tools.ts';
import { webhookConfigFromEnv } from './delivery/webhooks.ts';
import { redactedPort } from './engine/redact.ts';
import { baseUrlFor, type StartupInfo } from './banner.ts';
import { Bridge } from './bridge.ts';
import { parseCoreConfig, type CoreConfig } from './config.ts';
import { HttpServer } from './http.ts';
import { BridgeMetrics } from './metrics.ts';
import { DigestScheduler } from './engine/digest.ts';
import { createLogger, type Logger } from './log.ts';
import { applyPolicyEnv, loadPolicy } from './policy.ts';
import { parseSupportHours } from './engine/hours.ts';
import type { Service } from './ports.ts';
import { openStore } from './store/index.ts';
import type { Store } from './store/store.ts';

export interface RunningBridge {
  bridge: Bridge;
  http: HttpServer;
  port: number;
  config: CoreConfig;
  /** Names of what runs, e.g. `['webchat', 'email', 'slack']`. */
  running: string[];
  /** The URLs to open and what runs, for the start-up banner. */
  startup: StartupInfo;
  /** Stops taking new work, finishes what is in flight, closes everything. */
  stop(): Promise<void>;
}

export async function startBridge(
  rawEnv: Record<string, string | undefined>,
  options: { logger?: Logger; /** Shows start-up (the terminal banner) instead of the JSON ready line. */ onReady?: (info: StartupInfo) => void } = {},
): Promise<RunningBridge> {
  // One BRAND_NAME names the company everywhere; per-channel names may override it.
  const env = { ...rawEnv };
  if (env.BRAND_NAME) {
    env.AGENT_BRAND_NAME ??= env.BRAND_NAME;
    env.EMAIL_BRAND_NAME ??= env.BRAND_NAME;
  }
  const config = parseCoreConfig(env);
  const logger = options.logger ?? createLogger({ level: config.LOG_LEVEL });
  // Read every setting before opening anything, so a wrong value stops start-up with nothing half-open.
  const policy = applyPolicyEnv(loadPolicy(config.POLICY_FILE), env);
  if (policy.hours) parseSupportHours(policy.hours.schedule, policy.hours.holidays, env.SUPPORT_HOURS ? 'SUPPORT_HOURS' : 'POLICY_FILE');
  // AGENTS_FILE: several agents; else OPENAI_API_KEY: one; else the offline agent.
  const agents = multiAgentFromEnv(env, { tools: demoTools(), logger });
  const openai = agents ? undefined : openAIAgentFromEnv(env, { logger });
  const agent: Agent = agents ?? openai ?? new OfflineAgent(loadFaq(config.FAQ_FILE));
  const webhooks = webhookConfigFromEnv(env);
  const slackConfig = slackConfigured(env) ? slackConfigFromEnv(env) : undefined;
  const teamsConfig = teamsConfigFromEnv(env);
  const emailConfig = emailConfigFromEnv(env);
  // The console runs when no other workspace does (or with CONSOLE_ENABLED=true beside them).
  const consoleConfig = consoleConfigFromEnv(env, { otherWorkspaces: [...(slackConfig ? ['slack'] : []), ...(teamsConfig ? ['teams'] : [])] });
  const webchatOff = env.WEBCHAT_ENABLED === 'false' || env.WEBCHAT_ENABLED === '0';

  const store = await openStore(config.STORE_URL, { sqliteSynchronous: config.SQLITE_SYNCHRONOUS, logger });
  const services: Service[] = [];
  const http = new HttpServer(logger);
  let bridge: Bridge | undefined;
  const metrics = new BridgeMetrics(store, () => bridge?.destinations() ?? []);
  try {
    bridge = new Bridge({
      store,
      agent,
      policy,
      logger,
      ticketPrefix: config.TICKET_PREFIX,
      notePrefix: config.NOTE_PREFIX,
      maxMessageChars: config.MAX_MESSAGE_CHARS,
      agentTimeoutMs: config.AGENT_TIMEOUT_MS,
      delivery: { leaseMs: config.DELIVERY_LEASE_MS, concurrency: config.DELIVERY_CONCURRENCY },
      conversationCacheSize: config.CONVERSATION_CACHE_SIZE,
      ...(webhooks ? { webhooks } : {}),
      metrics,
    });
    // Workspaces read conversations (threads, views, cards) only as redacted copies.
    const workspaceBridge = redactedPort(bridge, bridge.redactor);
    http.route('GET', '/metrics', async (_req, res) => {
      const { contentType, body } = await metrics.text();
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(body);
    });

    if (!webchatOff) {
      const webchatConfig = webChatConfigFromEnv({ ...env, WEBCHAT_SESSION_SECRET: env.WEBCHAT_SESSION_SECRET ?? (await persistedSecret(store)) })!;
      const webchat = createWebChat({ bridge, http, logger, config: webchatConfig });
      bridge.addChannel(webchat);
      services.push(webchat);
    }
    if (emailConfig) {
      const email = createEmailChannel({ bridge, logger, config: emailConfig });
      bridge.addChannel(email);
      services.push(email);
    }
    if (slackConfig) {
      const slack = createSlackWorkspace({ bridge: workspaceBridge, http, logger, config: slackConfig, ...(config.PUBLIC_URL ? { publicUrl: config.PUBLIC_URL } : {}) });
      bridge.addWorkspace(slack);
      services.push(slack);
    }
    if (teamsConfig) {
      const teams = createTeamsWorkspace({ bridge: workspaceBridge, http, logger, config: teamsConfig });
      bridge.addWorkspace(teams);
      services.push(teams);
    }
    let operatorConsole: ConsoleWorkspace | undefined;
    if (consoleConfig) {
      operatorConsole = createConsoleWorkspace({ bridge: workspaceBridge, http, logger, config: consoleConfig, notePrefix: config.NOTE_PREFIX });
      bridge.addWorkspace(operatorConsole);
      services.push(operatorConsole);
    }

    // Work left from an earlier run goes out now that every destination is registered.
    bridge.start();
    const port = await http.listen(config.PORT, config.HOST);
    for (const service of services) await service.start();
    http.setReady(true);

    // The managers' daily digest, posted once a day by one instance, to every workspace that shows it.
    const digestTargets = bridge.workspaceList().filter((w) => w.postDigest);
    const digest = digestTargets.length
      ? new DigestScheduler({
          store,
          at: config.DIGEST_AT,
          ...(policy.hours ? { timeZone: parseSupportHours(policy.hours.schedule, policy.hours.holidays).timeZone } : {}),
          targets: digestTargets.map((w) => ({ name: w.name, post: (d) => w.postDigest!(d) })),
          logger,
        })
      : undefined;
    digest?.start();

    const running = services.map((s) => s.name);
    const off = ['webchat', 'email', 'slack', 'teams', 'console'].filter((n) => !running.includes(n));
    const baseUrl = baseUrlFor(config.PUBLIC_URL, config.HOST, port);
    const startup: StartupInfo = {
      port,
      baseUrl,
      running,
      off,
      store: store.backend,
      agent: agent.name,
      healthUrl: `${baseUrl}/healthz`,
      ...(running.includes('webchat') ? { customerUrl: `${baseUrl}/` } : {}),
      ...(operatorConsole
        ? {
            console: operatorConsole.signInLinks().map((link) => ({
              who: link.operator.name,
              kind: link.kind,
              // CONSOLE_TOKEN is the operators' own secret: never printed or logged.
              url: link.kind === 'shared' ? `${baseUrl}/console?token=<CONSOLE_TOKEN>` : `${baseUrl}${link.path}`,
            })),
          }
        : {}),
    };
    if (options.onReady) options.onReady(startup);
    else {
      logger.info(
        { port, store: store.backend, agent: agent.name, running, off, urls: { customer: startup.customerUrl, console: startup.console, health: startup.healthUrl } },
        `bridge ready on port ${port}: ${running.join(', ') || 'no channels or workspaces'} running` +
          (off.length ? `; off: ${off.join(', ')} (set their variables to turn them on)` : '') +
          (running.some((n) => n === 'slack' || n === 'teams' || n === 'console') ? '' : '; no operator workspace: escalations wait in the store until one runs'),
      );
    }

    const running_bridge = bridge;
    return {
      bridge: running_bridge,
      http,
      port,
      config,
      running,
      startup,
      async stop() {
        http.setReady(false);
        digest?.stop();
        // Channels and workspaces stop taking new work and drain, then the bridge finishes its turns.
        for (const service of [...services].reverse()) await service.stop().catch((err) => logger.error({ err, service: service.name }, 'stop failed'));
        await running_bridge.stop(config.SHUTDOWN_GRACE_MS);
        await http.close();
        await store.close();
      },
    };
  } catch (err) {
    for (const service of services) await service.stop().catch(() => {});
    await http.close().catch(() => {});
    await bridge?.stop(1000);
    await store.close().catch(() => {});
    throw err;
  }
}

/**
 * A web chat session secret kept in the store, so `npm start` works with no setup and restarts keep
 * sessions. Created once: instances starting together take the store-wide lock, and the first writes it.
 */
async function persistedSecret(store: Store): Promise<string> {
  const kv = store.kv('webchat');
  return store.withLock('webchat:session-secret', async () => {
    const existing = await kv.get<string>('session-secret');
    if (existing) return existing;
    const secret = randomBytes(32).toString('hex');
    await kv.set('session-secret', secret);
    return secret;
  });
}
