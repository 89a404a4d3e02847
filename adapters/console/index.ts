/**
 * The operator console, served by the bridge at /console. app.ts:
 *
 *   const consoleConfig = consoleConfigFromEnv(env, { otherWorkspaces });   // undefined: off
 *   if (consoleConfig) {
 *     const operatorConsole = createConsoleWorkspace({ bridge, http, logger, config: consoleConfig, notePrefix });
 *     bridge.addWorkspace(operatorConsole);
 *     services.push(operatorConsole);
 *   }
 *
 * and, once started, `operatorConsole.signInLinks()` for the start-up banner.
 */
import type { ConsoleWorkspaceOptions } from './workspace.ts';
import { ConsoleWorkspace } from './workspace.ts';

export { consoleConfigFromEnv, parseOperators, readOperatorsFile, type ConsoleConfig, type ConsoleOperator, type ConsoleRole } from './config.ts';
export { ConsoleWorkspace, type ConsoleWorkspaceOptions, type SignInLink } from './workspace.ts';

/** Creates the console and registers its routes on `http`. Add it to the bridge as a workspace and start it as a service. */
export function createConsoleWorkspace(options: ConsoleWorkspaceOptions): ConsoleWorkspace {
  return new ConsoleWorkspace(options);
}
