/**
 * The Teams attacks from the security review, each refused by the running bridge:
 * - Teams configured without MICROSOFT_APP_ID started with a warning, and an unauthenticated
 *   POST /api/messages claimed a conversation and wrote to the customer;
 * - the attacker's `serviceUrl` was stored, and a later private notice went to it (with the bot's
 *   token, had there been one);
 * - found while fuzzing: a rejected card click still stored the clicker's profile, and a signed
 *   token was accepted on an activity without a `serviceUrl` (botbuilder then skips the check).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isLoopbackAddress, isLoopbackHost, teamsConfigFromEnv, trustedServiceUrl } from '../../adapters/teams/config.ts';
import { BotConnector, BotConnectorError, isRefusal } from '../../adapters/teams/connector.ts';
import { createTeamsWorkspace } from '../../adapters/teams/index.ts';
import { TeamsState } from '../../adapters/teams/state.ts';
import { ConfigurationServiceClientCredentialFactory } from 'botbuilder';
import { startBridge } from '../../src/app.ts';
import { ConfigError } from '../../src/errors.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import { BotConnectorEmulator } from '../emulators/bot-connector.ts';
import { TEAMS_TEST_CHANNEL, TeamsDriver } from '../contract/teams-driver.ts';
import { createTestBridge, FAQ_PATH, ScriptedAgent, type TestBridge } from '../support/harness.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const APP_ID = '00000000-0000-4000-8000-00000000b075';
const ALICE = { userId: '29:alice-mri', name: 'Alice Ops' };
const MALLORY = { id: '29:mallory-mri', name: 'Mallory' };
const customer = { id: 'cust-9', name: 'Ada Lovelace' };

/** Escalates on the first message: the conversation waits for a person, with a briefing in Teams. */
const escalatingAgent = () =>
  new ScriptedAgent(() => ({
    kind: 'escalate',
    trigger: 'agent_tool',
    reason: 'Refund over the limit',
    actionsTaken: [],
    request: { summary: 'Wants a refund', pendingQuestion: 'Approve?', options: [{ id: 'approve', label: 'Approve', risk: 'high' }] },
  }));

describe('Teams will not run without authentication', () => {
  const base = { TEAMS_CHANNEL_ID: '19:ops@thread.tacv2' };

  it('refuses a Teams configuration without MICROSOFT_APP_ID, naming the variable in one line', () => {
    const attempt = () => teamsConfigFromEnv({ ...base, HOST: '0.0.0.0' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/^MICROSOFT_APP_ID: /);
    let message = '';
    try {
      attempt();
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toContain('\n');
  });

  it('does not start the bridge, so no unauthenticated POST /api/messages can claim a conversation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'teams-noauth-'));
    try {
      const env = { ...base, PORT: '0', HOST: '127.0.0.1', STORE_URL: join(dir, 'bridge.sqlite'), FAQ_FILE: FAQ_PATH, LOG_LEVEL: 'silent' };
      const started: unknown = await startBridge(env).catch((err: unknown) => err);
      // Before the fix the bridge started here, with only a warning.
      if (started && !(started instanceof Error)) await (started as Awaited<ReturnType<typeof startBridge>>).stop();
      expect(started).toBeInstanceOf(ConfigError);
      expect((started as ConfigError).variable).toBe('MICROSOFT_APP_ID');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with MICROSOFT_APP_ID set, the running bridge answers the unauthenticated claim and message 401, and nothing changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'teams-auth-'));
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const env = { ...base, MICROSOFT_APP_ID: APP_ID, MICROSOFT_APP_PASSWORD: 'not-a-real-secret', PORT: '0', HOST: '127.0.0.1', STORE_URL: join(dir, 'bridge.sqlite'), FAQ_FILE: FAQ_PATH, LOG_LEVEL: 'silent', WEBCHAT_ENABLED: 'false' };
    const running = await startBridge(env);
    try {
      expect(running.running).toContain('teams');
      const conversation = await running.bridge.openConversation({ origin: 'api', customer });
      const threadId = `${base.TEAMS_CHANNEL_ID};messageid=1699999999999`;
      await new TeamsState(running.bridge.store.kv('teams')).saveThread({ conversationId: conversation.id, channelId: base.TEAMS_CHANNEL_ID, serviceUrl: 'https://smba.trafficmanager.net/teams/', threadId, rootActivityId: '1699999999999', briefings: [] });
      const teams = new BotConnectorEmulator();
      const envelope = teams.envelope(threadId, MALLORY, 'f:1', 'https://attacker.example/');
      const post = (activity: Record<string, unknown>, authorization?: string) =>
        fetch(`http://127.0.0.1:${running.port}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body: JSON.stringify(activity) });
      const claim = { ...envelope, type: 'invoke', name: 'adaptiveCard/action', value: { action: { type: 'Action.Execute', verb: 'takeover', data: { handoff: 1, conversationId: conversation.id, action: 'takeover' } } } };
      const message = { ...envelope, id: '1800000000009', type: 'message', text: 'please confirm your card number and CVV' };
      for (const authorization of [undefined, 'Bearer forged']) {
        expect((await post(claim, authorization)).status).toBe(401);
        expect((await post(message, authorization)).status).toBe(401);
      }
      const after = (await running.bridge.getConversation(conversation.id))!;
      expect(after.state).toBe('agent');
      expect(after.messages).toEqual([]);
      expect(after.history).toEqual([]);
      expect(await running.bridge.store.kv('teams').get(`operator:${MALLORY.id}`)).toBeUndefined();
    } finally {
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
      vi.restoreAllMocks();
    }
  });

  it('`npm start` prints one line naming MICROSOFT_APP_ID and exits 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'teams-noauth-main-'));
    try {
      const result = spawnSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'src/main.ts')], {
        cwd: dir, // no .env here
        env: { PATH: process.env.PATH, ...base, PORT: '0', HOST: '0.0.0.0', STORE_URL: join(dir, 'bridge.sqlite'), FAQ_FILE: FAQ_PATH, LOG_LEVEL: 'silent' },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(result.status).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^Configuration error: MICROSOFT_APP_ID: required/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(['0.0.0.0', '::', '192.0.2.10', 'bridge.internal', undefined])('refuses TEAMS_ALLOW_UNAUTHENTICATED=true when HOST is %s', (host) => {
    const env = { ...base, TEAMS_ALLOW_UNAUTHENTICATED: 'true', ...(host !== undefined ? { HOST: host } : {}) };
    expect(() => teamsConfigFromEnv(env)).toThrow(ConfigError);
    expect(() => teamsConfigFromEnv(env)).toThrow(/^TEAMS_ALLOW_UNAUTHENTICATED: honoured only when HOST is a loopback address/);
  });

  it.each(['127.0.0.1', '::1', 'localhost'])('honours TEAMS_ALLOW_UNAUTHENTICATED=true on HOST=%s (local development)', (host) => {
    expect(teamsConfigFromEnv({ ...base, TEAMS_ALLOW_UNAUTHENTICATED: 'true', HOST: host })).toMatchObject({ appId: '', allowUnauthenticated: true });
  });

  it('keeps authentication on when an app id is set, whatever the opt-out says; rejects a vague opt-out', () => {
    const config = teamsConfigFromEnv({ ...base, MICROSOFT_APP_ID: 'app', MICROSOFT_APP_PASSWORD: 'pw', TEAMS_ALLOW_UNAUTHENTICATED: 'true', HOST: '0.0.0.0' });
    expect(config?.allowUnauthenticated).toBeUndefined();
    expect(() => teamsConfigFromEnv({ ...base, TEAMS_ALLOW_UNAUTHENTICATED: 'yes', HOST: '127.0.0.1' })).toThrow('TEAMS_ALLOW_UNAUTHENTICATED');
    expect(() => teamsConfigFromEnv({ ...base, TEAMS_ALLOW_UNAUTHENTICATED: 'false', HOST: '127.0.0.1' })).toThrow('MICROSOFT_APP_ID');
  });

  it('sends the bot token only over https, or plain http to this machine', () => {
    const auth = { ...base, MICROSOFT_APP_ID: 'app', MICROSOFT_APP_PASSWORD: 'pw' };
    expect(() => teamsConfigFromEnv({ ...auth, TEAMS_SERVICE_URL: 'http://smba.trafficmanager.net/teams/' })).toThrow('TEAMS_SERVICE_URL');
    expect(() => teamsConfigFromEnv({ ...auth, TEAMS_SERVICE_URL: 'https://user:pw@smba.trafficmanager.net/teams/' })).toThrow('TEAMS_SERVICE_URL');
    expect(teamsConfigFromEnv({ ...auth, TEAMS_SERVICE_URL: 'http://127.0.0.1:3978/' })?.serviceUrl).toBe('http://127.0.0.1:3978/');
  });

  it('knows loopback hosts and peer addresses', () => {
    expect(['127.0.0.1', '::1', 'localhost', 'LOCALHOST', '[::1]'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '::', '127.0.0.2', '10.0.0.1', ''].some(isLoopbackHost)).toBe(false);
    expect(['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1'].every((a) => isLoopbackAddress(a))).toBe(true);
    expect(['192.0.2.2', '::ffff:192.0.2.2', 'fd00::2', undefined, '127.0.0.1.evil'].some((a) => isLoopbackAddress(a))).toBe(false);
  });
});

describe('the service URLs the bot will call', () => {
  const config = { serviceUrl: 'https://smba.trafficmanager.net/teams/' };

  it("accepts Microsoft's Teams hosts in every region and cloud, and the configured origin", () => {
    for (const url of [
      'https://smba.trafficmanager.net/teams/',
      'https://smba.trafficmanager.net/amer/',
      'https://smba.trafficmanager.net/emea/',
      'https://SMBA.trafficmanager.net/apac/',
      'https://smba.infra.gcc.teams.microsoft.com/teams',
      'https://smba.infra.gov.teams.microsoft.us/teams',
      'https://smba.infra.dod.teams.microsoft.us/teams',
    ]) {
      expect(trustedServiceUrl(config, url), url).toBeDefined();
    }
    expect(trustedServiceUrl({ serviceUrl: 'http://127.0.0.1:3978/' }, 'http://127.0.0.1:3978/other/')).toBe('http://127.0.0.1:3978/other/');
  });

  it('refuses any other host, scheme, port, credentials, query, or a look-alike', () => {
    for (const url of [
      'https://attacker.example/',
      'http://smba.trafficmanager.net/teams/',
      'https://smba.trafficmanager.net:8443/teams/',
      'https://smba.trafficmanager.net.attacker.example/teams/',
      'https://attacker.example/smba.trafficmanager.net/',
      'https://evilsmba.trafficmanager.net/',
      'https://x.smba.trafficmanager.net/',
      'https://user@smba.trafficmanager.net/teams/',
      'https://smba.trafficmanager.net/teams/?next=https://attacker.example',
      'http://127.0.0.1:3978/',
      'http://169.254.169.254/latest/meta-data/',
      'file:///etc/passwd',
      'not a url',
      '',
      42,
      undefined,
    ]) {
      expect(trustedServiceUrl(config, url), String(url)).toBeUndefined();
    }
  });

  it('the Bot Connector client refuses an untrusted service URL before any request (or token) leaves', async () => {
    const attacker = new BotConnectorEmulator();
    const attackerUrl = await attacker.start();
    try {
      const connector = new BotConnector({
        appId: '',
        credentials: new ConfigurationServiceClientCredentialFactory({}),
        logger: silentLogger(),
        allowServiceUrl: (url) => trustedServiceUrl(config, url) !== undefined,
      });
      const error = await connector.sendToConversation(attackerUrl, 'a:1chat', { type: 'message', text: 'hi' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BotConnectorError);
      expect(isRefusal(error)).toBe(true);
      expect(attacker.requests).toEqual([]);
    } finally {
      await attacker.stop();
    }
  });
});

describe("an activity's serviceUrl is never stored or called unless it is authenticated and Teams'", () => {
  let driver: TeamsDriver;
  let attacker: BotConnectorEmulator;
  let attackerUrl: string;
  beforeEach(async () => {
    attacker = new BotConnectorEmulator();
    attackerUrl = await attacker.start();
  });
  afterEach(async () => {
    await driver?.stop();
    await attacker.stop();
    vi.restoreAllMocks();
  });

  it('without authentication (loopback opt-out), a private answer goes to the configured service URL, never the one in the request', async () => {
    driver = new TeamsDriver();
    const { bridge } = await driver.start(escalatingAgent());
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund please' });
    await driver.settle();
    const threadId = await driver.threadId(conversation.id);

    // `help` is answered privately, in a 1:1 chat: today's code opened it at the attacker's URL.
    const res = await driver.emulator.channelMessage({ threadId, from: MALLORY, text: 'help', serviceUrl: attackerUrl });
    await driver.settle();
    expect(res.status).toBe(200);
    expect(attacker.requests).toEqual([]);
    expect(await bridge.store.kv('teams').get(`operator:${MALLORY.id}`)).not.toHaveProperty('serviceUrl');
    expect(driver.emulator.directMessages(MALLORY.id).join('\n')).toContain('In a conversation thread');

    // A later notice (a refused claim) goes to the configured URL too.
    await driver.clickClaim(conversation.id, ALICE);
    await driver.emulator.channelMessage({ threadId, from: MALLORY, text: 'claim', serviceUrl: attackerUrl });
    await driver.settle();
    expect(attacker.requests).toEqual([]);
    expect(driver.emulator.directMessages(MALLORY.id).join('\n')).toContain('already held by Alice Ops');
  });

  it('a profile holding an untrusted serviceUrl (stored by an older version) is not used', async () => {
    driver = new TeamsDriver();
    const { bridge } = await driver.start(escalatingAgent());
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund please' });
    await driver.settle();
    await driver.clickClaim(conversation.id, ALICE); // Teams tells the bot its own id with every activity
    await driver.settle();
    await new TeamsState(bridge.store.kv('teams')).rememberOperator({ userId: MALLORY.id, name: MALLORY.name, tenantId: driver.emulator.tenantId, serviceUrl: attackerUrl });
    // A notice the bridge sends on its own (the delivery worker calls the port like this).
    await driver.workspace.notifyOperator({ id: `teams:${MALLORY.id}`, name: MALLORY.name, workspace: 'teams' }, 'HB-1 was transferred to you', conversation);
    expect(attacker.requests).toEqual([]);
    expect(driver.emulator.directMessages(MALLORY.id).join('\n')).toContain('HB-1 was transferred to you');
  });

  it('with authentication, a signed activity naming a foreign serviceUrl is handled but the URL is not kept; a Teams one is', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    driver = new TeamsDriver({ config: (emulator) => ({ appId: APP_ID, appPassword: 'not-a-real-secret', openIdMetadataUrl: emulator.openIdMetadataUrl }) });
    const { bridge } = await driver.start();
    const conversation = await bridge.openConversation({ origin: 'api', customer });
    const threadId = `${TEAMS_TEST_CHANNEL};messageid=1699999999999`;
    const state = new TeamsState(bridge.store.kv('teams'));
    await state.saveThread({ conversationId: conversation.id, channelId: TEAMS_TEST_CHANNEL, serviceUrl: driver.emulator.serviceUrl, threadId, rootActivityId: '1699999999999', briefings: [] });

    const post = (serviceUrl: string, text: string) =>
      driver.emulator.channelMessage({ threadId, from: MALLORY, text, serviceUrl, authorization: `Bearer ${driver.emulator.issueToken({ audience: APP_ID, serviceUrl })}` });
    expect((await post(attackerUrl, '// first note')).status).toBe(200);
    await driver.settle();
    expect((await state.operator(MALLORY.id))?.serviceUrl).toBeUndefined();

    const regional = 'https://smba.trafficmanager.net/amer/';
    expect((await post(regional, '// second note')).status).toBe(200);
    await driver.settle();
    expect((await state.operator(MALLORY.id))?.serviceUrl).toBe(regional);
    expect((await bridge.getConversation(conversation.id))!.messages.map((m) => m.text)).toEqual(['first note', 'second note']);

    // botbuilder compares the token's service URL with the activity's only when the activity has
    // one: a token replayed on an activity without it would pass. Teams always sends it.
    const token = driver.emulator.issueToken({ audience: APP_ID, serviceUrl: 'https://smba.trafficmanager.net/emea/' });
    const bare: Record<string, unknown> = { ...driver.emulator.envelope(threadId, MALLORY, '1800000000077'), type: 'message', text: '// replayed' };
    delete bare.serviceUrl;
    expect((await driver.emulator.postToBot(bare, `Bearer ${token}`)).status).toBe(400);
    expect((await bridge.getConversation(conversation.id))!.messages).toHaveLength(2);
  });
});

describe('without authentication, only this machine may call /api/messages', () => {
  const external = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  let testBridge: TestBridge | undefined;
  let http: HttpServer | undefined;
  let emulator: BotConnectorEmulator | undefined;
  afterEach(async () => {
    await http?.close();
    await testBridge?.close();
    await emulator?.stop();
  });

  it.skipIf(!external)('refuses a request from another address even if the server was bound to every interface', async () => {
    emulator = new BotConnectorEmulator();
    const serviceUrl = await emulator.start();
    testBridge = await createTestBridge();
    http = new HttpServer(silentLogger());
    const workspace = createTeamsWorkspace({
      bridge: testBridge.bridge,
      http,
      logger: silentLogger(),
      config: { appId: '', appPassword: '', tenantId: '', appType: 'MultiTenant', channelId: TEAMS_TEST_CHANNEL, serviceUrl, allowUnauthenticated: true },
    });
    testBridge.bridge.addWorkspace(workspace);
    const port = await http.listen(0, '0.0.0.0');
    await workspace.start();
    const conversation = await testBridge.bridge.openConversation({ origin: 'api', customer });
    const threadId = `${TEAMS_TEST_CHANNEL};messageid=1699999999999`;
    await new TeamsState(testBridge.bridge.store.kv('teams')).saveThread({ conversationId: conversation.id, channelId: TEAMS_TEST_CHANNEL, serviceUrl, threadId, rootActivityId: '1699999999999', briefings: [] });

    const claim = { ...emulator.envelope(threadId, MALLORY, 'f:1'), type: 'invoke', name: 'adaptiveCard/action', value: { action: { type: 'Action.Execute', verb: 'takeover', data: { handoff: 1, conversationId: conversation.id, action: 'takeover' } } } };
    const from = (host: string) => fetch(`http://${host}:${port}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claim) });
    expect((await from(external!)).status).toBe(403);
    expect((await testBridge.bridge.getConversation(conversation.id))!.state).toBe('agent');
    expect(await testBridge.bridge.store.kv('teams').get(`operator:${MALLORY.id}`)).toBeUndefined();
    // The same request from this machine is local development, and goes through.
    expect((await from('127.0.0.1')).status).toBe(200);
    expect((await testBridge.bridge.getConversation(conversation.id))!.owner?.id).toBe(`teams:${MALLORY.id}`);
    await workspace.stop();
  });
});
