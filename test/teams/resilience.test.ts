import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BotConnector, BotConnectorError } from '../../adapters/teams/connector.ts';
import { TEAMS_THREAD_LIMITS } from '../../adapters/teams/throttle.ts';
import { ConfigurationServiceClientCredentialFactory } from 'botbuilder';
import { silentLogger } from '../../src/log.ts';
import { TeamsDriver } from '../contract/teams-driver.ts';
import { visibleText } from '../emulators/bot-connector.ts';
import { ScriptedAgent, waitFor } from '../support/harness.ts';

const customer = { id: 'cust-9', name: 'Edsger Dijkstra' };

/** An agent that never answers, so the thread holds exactly what the test sends. */
const quietAgent = () => new ScriptedAgent(() => ({ kind: 'reply', text: 'noted', actionsTaken: [] }));

describe('Teams misbehaving', () => {
  let driver: TeamsDriver;
  afterEach(() => driver?.stop());

  async function conversationWithThread(config: ConstructorParameters<typeof TeamsDriver>[0] = {}) {
    driver = new TeamsDriver(config);
    const { bridge } = await driver.start(quietAgent());
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'first' });
    await driver.settle();
    return { bridge, id: conversation.id, threadId: await driver.threadId(conversation.id) };
  }

  it('waits out a 429 for at least its Retry-After, then posts the message once, in order', async () => {
    const { bridge, id, threadId } = await conversationWithThread();
    driver.emulator.fail({ status: 429, retryAfter: 1, method: 'POST', pathIncludes: ';messageid=' });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'second' });
    await driver.settle();

    const posts = driver.emulator.requests.filter((r) => r.method === 'POST' && JSON.stringify(r.body).includes('second'));
    expect(posts.map((p) => p.status)).toEqual([429, 201]);
    expect(posts[1]!.at - posts[0]!.at).toBeGreaterThanOrEqual(1000);
    const texts = driver.emulator.replies(threadId, { fromBot: true }).map((m) => visibleText(m.activity));
    expect(texts.filter((t) => t.includes('second'))).toHaveLength(1);
    expect(texts.findIndex((t) => t.includes('first'))).toBeLessThan(texts.findIndex((t) => t.includes('second')));
  });

  it('never re-posts a message after a 5xx whose outcome is unknown, even when the bridge retries the mirror', async () => {
    const { bridge, id, threadId } = await conversationWithThread();
    driver.emulator.fail({ status: 502, applied: true, method: 'POST', pathIncludes: ';messageid=' });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'maybe twice?' });
    await driver.settle();

    const conversation = (await bridge.getConversation(id))!;
    const message = conversation.messages.find((m) => m.text === 'maybe twice?')!;
    await expect(driver.workspace.mirror(conversation, message)).resolves.toBeUndefined();
    await driver.settle();

    const posts = driver.emulator.requests.filter((r) => r.method === 'POST' && JSON.stringify(r.body).includes('maybe twice?'));
    expect(posts).toHaveLength(1);
    expect(driver.emulator.replies(threadId, { fromBot: true }).filter((m) => visibleText(m.activity).includes('maybe twice?'))).toHaveLength(1);
    const ledger = await bridge.store.kv('teams').get<{ state: string }>(`sent:${id}:msg:${message.id}`);
    expect(ledger?.state).toBe('uncertain');
  });

  it('does not re-post after a timeout either: Teams may have taken it', async () => {
    const { bridge, id, threadId } = await conversationWithThread({ config: { requestTimeoutMs: 200 } });
    driver.emulator.delayMs = 600;
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'slow one' });
    await driver.settle();
    driver.emulator.delayMs = 0;
    // The emulator still applies the request it was slow to answer, as Teams may.
    await waitFor(() => driver.emulator.replies(threadId, { fromBot: true }).some((m) => visibleText(m.activity).includes('slow one')), { what: 'the slow post to land' });
    const posts = driver.emulator.requests.filter((r) => r.method === 'POST' && JSON.stringify(r.body).includes('slow one'));
    expect(posts).toHaveLength(1);
    expect(driver.emulator.replies(threadId, { fromBot: true }).filter((m) => visibleText(m.activity).includes('slow one'))).toHaveLength(1);
  });

  it('retries a card edit after a 5xx, since editing is idempotent', async () => {
    const { bridge, id } = await conversationWithThread();
    driver.emulator.fail({ status: 503, method: 'PUT' });
    await bridge.takeOver({ conversationId: id, operator: { id: 'teams:29:alice', name: 'Alice Ops', workspace: 'teams' } });
    await driver.settle();
    const puts = driver.emulator.requests.filter((r) => r.method === 'PUT');
    expect(puts[0]!.status).toBe(503);
    expect(puts.some((p) => p.status === 200)).toBe(true);
    expect(await driver.rootCard(id)).toContain('Alice Ops');
  });

  it("paces a burst under Teams' per-thread limits, so Teams never has to throttle it", async () => {
    const { bridge, id, threadId } = await conversationWithThread({ config: { threadLimits: TEAMS_THREAD_LIMITS } });
    driver.emulator.enforceThreadLimits = true;
    for (let i = 1; i <= 12; i++) await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: `burst ${i}` });
    await driver.settle();
    expect(driver.emulator.requests.filter((r) => r.status === 429)).toEqual([]);
    const texts = driver.emulator
      .replies(threadId, { fromBot: true })
      .map((m) => visibleText(m.activity))
      .filter((t) => t.includes('(customer)') && t.includes('burst'));
    expect(texts.map((t) => /burst (\d+)/.exec(t)?.[1])).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
  });
});

describe('the Bot Connector client', () => {
  it('retries when Teams cannot be reached at all (nothing was sent), then says so', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const connector = new BotConnector({
      appId: '',
      credentials: new ConfigurationServiceClientCredentialFactory({}),
      logger: silentLogger(),
      maxAttempts: 3,
      baseBackoffMs: 5,
      maxBackoffMs: 20,
    });
    const error = await connector.sendToConversation(`http://127.0.0.1:${port}/`, '19:x@thread.tacv2;messageid=1', { type: 'message', text: 'hi' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BotConnectorError);
    expect(error).toMatchObject({ delivery: 'not_sent', code: 'ECONNREFUSED' });
  });
});
