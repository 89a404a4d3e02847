/**
 * `npm start`: reads the environment and `.env`, starts the bridge, and shuts it down cleanly on
 * SIGTERM/SIGINT (in-flight work finishes first). A configuration error is one line and exit 1.
 */
import { startBridge } from './app.ts';
import { startupBanner, startupFormat } from './banner.ts';
import { loadEnvironment } from './config.ts';
import { BridgeError, ConfigError } from './errors.ts';

async function main(): Promise<void> {
  const env = loadEnvironment();
  let running;
  try {
    // On a terminal, a short banner with the URLs to open; JSON lines otherwise (or LOG_FORMAT=json).
    const format = startupFormat(env.LOG_FORMAT === 'json' || env.LOG_FORMAT === 'text' ? env.LOG_FORMAT : 'auto', process.stdout.isTTY === true);
    running = await startBridge(env, format === 'text' ? { onReady: (info) => process.stdout.write(startupBanner(info)) } : {});
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`Configuration error: ${err.message}\n`);
      process.exit(1);
    }
    if (err instanceof BridgeError) {
      process.stderr.write(`Cannot start: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    running.bridge.logger.info({ signal }, 'shutting down: finishing in-flight work');
    running
      .stop()
      .then(() => process.exit(0))
      .catch((err) => {
        running.bridge.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

void main();
