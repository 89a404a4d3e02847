/**
 * One bridge instance as a child process, for the fault suite: `node --import tsx
 * test/faults/instance.ts`, configured entirely by the environment its parent passes (the same
 * variables `npm start` reads). Prints one `FAULTS-READY {...}` line when it takes traffic; logs
 * go to stdout as usual. SIGTERM stops it cleanly; the suite also kills it with SIGKILL.
 */
import { startBridge } from '../../src/app.ts';

try {
  const running = await startBridge(process.env);
  process.stdout.write(`FAULTS-READY ${JSON.stringify({ pid: process.pid, port: running.port, running: running.running })}\n`);
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
} catch (err) {
  process.stderr.write(`instance failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}
