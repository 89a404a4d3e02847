/**
 * The bridge as `npm start` runs it: configuration, readiness, what runs, and a clean SIGTERM.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startBridge } from '../../src/app.ts';
import { ConfigError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import { waitFor } from '../support/harness.ts';
import { chat, startChatEmulator } from '../emulators/openai-chat.ts';
import { freePort } from '../support/redis-process.ts';
import { startNodeFlags } from '../../scripts/start-command.ts';

const dir = mkdtempSync(join(tmpdir(), 'app-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = new URL('../..', import.meta.url).pathname;
/** `node <flags> --import tsx src/main.ts`, with the flags of package.json's start script. */
const npmStart = [...startNodeFlags(root), '--import', 'tsx', 'src/main.ts'];

describe('starting the bridge', () => {
  it('runs with no configuration at all: web chat and the offline agent on SQLite, and says so', async () => {
    const running = await startBridge({ PORT: '0', HOST: '127.0.0.1', STORE_URL: join(dir, 'a.sqlite') }, { logger: silentLogger() });
    try {
      expect(running.running).toEqual(['webchat', 'console']);
      const health = await fetch(`http://127.0.0.1:${running.port}/healthz`);
      expect(health.status).toBe(200);
      const page = await fetch(`http://127.0.0.1:${running.port}/`);
      expect(await page.text()).toContain('widget.js');
    } finally {
      await running.stop();
    }
    await expect(fetch(`http://127.0.0.1:${running.port}/healthz`)).rejects.toThrow();
  });

  it('a wrong value stops start-up with an error naming the variable and what it expects', async () => {
    await expect(startBridge({ PORT: 'eighty' }, { logger: silentLogger() })).rejects.toSatisfy(
      (e) => e instanceof ConfigError && e.message === 'PORT: expected a TCP port number (0-65535), got "eighty"',
    );
    await expect(startBridge({ STORE_URL: join(dir, 'b.sqlite'), TICKET_PREFIX: 'hb-' }, { logger: silentLogger() })).rejects.toThrow(/^TICKET_PREFIX: expected 1-8 capital letters/);
    await expect(startBridge({ STORE_URL: join(dir, 'c.sqlite'), SLACK_BOT_TOKEN: 'xoxb-1' }, { logger: silentLogger() })).rejects.toThrow(/^SLACK_SIGNING_SECRET/);
    await expect(startBridge({ STORE_URL: join(dir, 'd.sqlite'), POLICY_FILE: join(dir, 'missing.json') }, { logger: silentLogger() })).rejects.toThrow(/^POLICY_FILE/);
  });

  it('stop() lets an agent turn in flight finish and reach the transcript before closing', async () => {
    const model = await startChatEmulator();
    model.enqueue({ ...chat.reply('Your order ships tomorrow.'), delayMs: 500 });
    const running = await startBridge(
      { PORT: '0', HOST: '127.0.0.1', STORE_URL: join(dir, 'e.sqlite'), OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: model.baseURL, WEBCHAT_ENABLED: 'false' },
      { logger: silentLogger() },
    );
    const { conversation } = await running.bridge.customerMessage({ origin: 'api', customer: { id: 'c1' }, text: 'When does my order ship?' });
    await model.waitForRequests(1);
    await running.stop();
    const { openStore } = await import('../../src/store/index.ts');
    const store = await openStore(join(dir, 'e.sqlite'));
    const stored = await store.getConversation(conversation.id);
    await store.close();
    await model.close();
    expect(stored!.messages.map((m) => m.text)).toContain('Your order ships tomorrow.');
  });

  it('npm start answers /healthz when ready and exits 0 on SIGTERM', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const child = spawn(process.execPath, npmStart, {
      cwd: root,
      env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', STORE_URL: join(dir, 'f.sqlite'), LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, { timeoutMs: 30_000, what: 'healthz' });
      // The ready line is written as /healthz turns ready; the pipe may bring it a moment later.
      await waitFor(() => /bridge ready on port/.test(output), { timeoutMs: 5_000, what: 'the ready line' });
      expect(output).toMatch(/bridge ready on port \d+: webchat, console running; off: email, slack, teams/);
      const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      expect(output).toContain('shutting down');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a configuration error is one line on stderr and exit code 1', { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, npmStart, {
      cwd: root,
      env: { PATH: process.env.PATH, PORT: '99999', STORE_URL: join(dir, 'g.sqlite') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('Configuration error: PORT: expected a TCP port number (0-65535), got "99999"');
  });
});
