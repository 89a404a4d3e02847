/**
 * The Slack workspace adapter. main.ts:
 *
 *   const slack = createSlackWorkspace({ bridge, http, logger, config: slackConfigFromEnv() });
 *   bridge.addWorkspace(slack);
 *   await slack.start();   // auth.test, then HTTP route live (or Socket Mode connected)
 *   ...
 *   await slack.stop();
 */
import type { Bridge } from '../../src/bridge.ts';
import type { HttpServer } from '../../src/http.ts';
import type { Logger } from '../../src/log.ts';
import type { SlackConfig } from './config.ts';
import { SlackWorkspace, type SlackWorkspaceOptions } from './workspace.ts';

export { slackConfigFromEnv, slackConfigured, type SlackConfig } from './config.ts';
export { COMMANDS, SHORTCUTS } from './listeners.ts';
export { SlackWorkspace } from './workspace.ts';

/**
 * Builds the Slack workspace (Workspace + Service). Socket Mode when `config.appToken` is set,
 * otherwise `POST /slack/events` on the shared HTTP server. Nothing touches the network until `start()`.
 * The caller adds it to the bridge (`bridge.addWorkspace`).
 */
export function createSlackWorkspace(options: {
  bridge: Bridge;
  http: HttpServer;
  logger: Logger;
  config: SlackConfig;
  publicUrl?: string;
  stopGraceMs?: number;
  retry?: SlackWorkspaceOptions['retry'];
}): SlackWorkspace {
  return new SlackWorkspace(options);
}
