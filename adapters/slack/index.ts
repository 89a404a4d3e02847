/**
 * The Slack workspace adapter. How the app (src/app.ts) uses it:
 *
 *   const slack = createSlackWorkspace({ bridge, http, logger, config: slackConfigFromEnv() });
 *   bridge.addWorkspace(slack);
 *   await slack.start();   // auth.test, then HTTP route live (or Socket Mode connected)
 *   ...
 *   await slack.stop();
 */
import { SlackWorkspace, type SlackWorkspaceOptions } from './workspace.ts';

export { slackConfigFromEnv, slackConfigured, type SlackConfig } from './config.ts';
export { COMMANDS, SHORTCUTS } from './listeners.ts';
export { SlackWorkspace } from './workspace.ts';

/**
 * Builds the Slack workspace (Workspace + Service). Socket Mode when `config.appToken` is set,
 * otherwise `POST /slack/events` on the shared HTTP server. Nothing touches the network until `start()`.
 * The caller adds it to the bridge (`bridge.addWorkspace`), whose delivery workers then call it.
 */
export function createSlackWorkspace(options: SlackWorkspaceOptions): SlackWorkspace {
  return new SlackWorkspace(options);
}
