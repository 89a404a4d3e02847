/**
 * The console as `npm start` assembles it: on by default when it is the only workspace, signed in
 * with the one-time link start-up prints; beside Slack only with CONSOLE_ENABLED=true.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startBridge } from '../../src/app.ts';
import { startupBanner } from '../../src/banner.ts';
import { silentLogger } from '../../src/log.ts';
import { SlackApiEmulator } from '../emulators/slack-api.ts';
import { OperatorClient } from './support.ts';

const dir = mkdtempSync(join(tmpdir(), 'console-app-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('with nothing configured the console runs, and the one-time link from start-up signs in once', { timeout: 30_000 }, async () => {
  const running = await startBridge({ PORT: '0', HOST: '127.0.0.1', STORE_URL: join(dir, 'a.sqlite') }, { logger: silentLogger() });
  try {
    expect(running.running).toEqual(['webchat', 'console']);
    const [link] = running.startup.console!;
    expect(link).toMatchObject({ who: 'Operator', kind: 'one-time' });
    expect(link!.url).toMatch(new RegExp(`^http://localhost:${running.port}/console\\?token=[\\w-]{32}$`));
    const banner = startupBanner(running.startup);
    expect(banner).toContain(`Customer page       http://localhost:${running.port}/`);
    expect(banner).toContain(link!.url);
    expect(banner).toContain(`http://localhost:${running.port}/healthz`);

    const base = `http://127.0.0.1:${running.port}`;
    const token = new URL(link!.url).searchParams.get('token')!;
    const operator = await OperatorClient.signIn(base, { token });
    expect((await operator.get<{ me: { id: string } }>('session')).body.me.id).toBe('console:operator');
    await expect(OperatorClient.signIn(base, { token })).rejects.toThrow(/sign-in refused: 401/);
  } finally {
    await running.stop();
  }
});

it('beside Slack it stays off unless CONSOLE_ENABLED=true; a shared CONSOLE_TOKEN is never printed', { timeout: 30_000 }, async () => {
  const slackApi = await new SlackApiEmulator().start();
  slackApi.addChannel('CSUPPORT01', 'support');
  const slack = { SLACK_BOT_TOKEN: slackApi.botToken, SLACK_SIGNING_SECRET: '0123456789abcdef0123456789abcdef', SLACK_CHANNEL_ID: 'CSUPPORT01', SLACK_API_URL: slackApi.url };
  try {
    const off = await startBridge({ PORT: '0', HOST: '127.0.0.1', STORE_URL: join(dir, 'b.sqlite'), ...slack }, { logger: silentLogger() });
    expect(off.running).toEqual(['webchat', 'slack']);
    expect((await fetch(`http://127.0.0.1:${off.port}/console`)).status).toBe(404);
    await off.stop();

    const token = 'shared-console-token-0123';
    const on = await startBridge({ PORT: '0', HOST: '127.0.0.1', STORE_URL: join(dir, 'c.sqlite'), CONSOLE_ENABLED: 'true', CONSOLE_TOKEN: token, ...slack }, { logger: silentLogger() });
    try {
      expect(on.running).toEqual(['webchat', 'slack', 'console']);
      expect(on.startup.console).toEqual([{ who: 'Operator', kind: 'shared', url: `http://localhost:${on.port}/console?token=<CONSOLE_TOKEN>` }]);
      expect(startupBanner(on.startup)).not.toContain(token);
      const page = await fetch(`http://127.0.0.1:${on.port}/console?token=${token}`);
      expect(await page.text()).toContain('Welcome, Operator');
    } finally {
      await on.stop();
    }
  } finally {
    await slackApi.stop();
  }
});
