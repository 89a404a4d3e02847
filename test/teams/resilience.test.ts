/**
 * Teams misbehaving, with the real adapter on the bridge's delivery core: the Bot Connector
 * emulator fails, throttles, loses answers and refuses; the core retries and the adapter makes
 * each retry safe. Counts are of what a person would see in the Teams thread.
 */
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { ConfigurationServiceClientCredentialFactory } from 'botbuilder';
import { afterEach, describe, expect, it } from 'vitest';
import { BotConnector, BotConnectorError } from '../../adapters/teams/connector.ts';
import { TEAMS_THREAD_LIMITS } from '../../adapters/teams/throttle.ts';
import { RetryLaterError } from '../../src/delivery/outcome.ts';
import { createLogger, silentLogger } from '../../src/log.ts';
import { TEAMS_TEST_CHANNEL, TeamsDriver } from '../contract/teams-driver.ts';
import { BotConnectorEmulator, buttonTitles, cardOf, visibleText, type TeamsMessage } from '../emulators/bot-connector.ts';
import { waitFor } from '../support/harness.ts';
import { optionsAgent } from './options-agent.ts';

const customer = { id: 'cust-9', name: 'Edsger Dijkstra' };
const ALICE = { id: '29:alice-mri', name: 'Alice Ops' };
const BOB = { id: '29:bob-mri', name: 'Bob Ops' };
const CARD = 'application/vnd.microsoft.card.adaptive';

/** Answers "noted"; escalates (with two options) when the customer's latest message asks for a refund. */
const agent = () => optionsAgent(/refund/i);

describe('Teams misbehaving, on the delivery core', () => {
  let driver: TeamsDriver;
  afterEach(async () => {
    driver?.emulator?.clearFaults();
    await driver?.stop();
  });

  async function boot(config: ConstructorParameters<typeof TeamsDriver>[0] = {}) {
    driver = new TeamsDriver(config);
    return (await driver.start(agent())).bridge;
  }

  async function conversationWithThread(config: ConstructorParameters<typeof TeamsDriver>[0] = {}) {
    const bridge = await boot(config);
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'first' });
    await driver.settle();
    return { bridge, id: conversation.id, threadId: await driver.threadId(conversation.id) };
  }

  const botReplies = (threadId: string): TeamsMessage[] => driver.emulator.replies(threadId, { fromBot: true });
  const copies = (threadId: string, text: string) => botReplies(threadId).filter((m) => visibleText(m.activity).includes(text)).length;
  const posts = (text: string) => driver.emulator.requests.filter((r) => r.method === 'POST' && JSON.stringify(r.body).includes(text));

  it('posts a briefing that Teams answered 503 three times exactly once, and later lines follow it in order', async () => {
    const bridge = await boot();
    driver.emulator.fail({ status: 503, times: 3, method: 'POST', pathIncludes: ';messageid=', bodyIncludes: CARD });
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'I want a refund' });
    await driver.settle();
    await bridge.customerMessage({ conversationId: conversation.id, origin: 'api', customer, text: 'are you there?' });
    await driver.settle();

    const threadId = await driver.threadId(conversation.id);
    const briefingPosts = driver.emulator.requests.filter((r) => r.method === 'POST' && r.path.includes(';messageid=') && JSON.stringify(r.body).includes(CARD));
    expect(briefingPosts.map((r) => r.status)).toEqual([503, 503, 503, 201]);
    expect(await driver.briefingMessages(conversation.id)).toHaveLength(1);
    // Nothing lost or repeated: every transcript message is in the thread once, in transcript order.
    const stored = (await bridge.getConversation(conversation.id))!;
    const texts = botReplies(threadId).map((m) => visibleText(m.activity));
    const mirrored = texts.filter((t) => !t.includes('needs a person'));
    expect(mirrored).toHaveLength(stored.messages.length);
    stored.messages.forEach((m, i) => expect(mirrored[i]).toContain(m.text));
    // The briefing came before the customer's next message.
    expect(texts.findIndex((t) => t.includes('needs a person'))).toBeLessThan(texts.findIndex((t) => t.includes('are you there?')));
    expect(stored.state).toBe('waiting');
  });

  it('keeps retrying a briefing Teams keeps failing: the customer is told the truth, and the card still arrives once', async () => {
    const bridge = await boot();
    driver.emulator.fail({ status: 503, times: 6, method: 'POST', pathIncludes: ';messageid=', bodyIncludes: CARD });
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund please' });
    await driver.settle();
    expect(await driver.briefingMessages(conversation.id)).toHaveLength(1);
    expect(driver.customer.texts(conversation.id).join('\n')).toContain("We're having trouble reaching our team");
    expect(copies(await driver.threadId(conversation.id), 'could not be posted to teams yet')).toBe(1);
  });

  it('posts again after a lost answer (Teams took it, the connection dropped): at most one duplicate, never a loss', async () => {
    const { bridge, id, threadId } = await conversationWithThread();
    driver.emulator.fail({ dropAnswer: true, method: 'POST', bodyIncludes: 'lost answer' });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'lost answer' });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'after it' });
    await driver.settle();

    expect(posts('lost answer').map((r) => r.status)).toEqual([0, 201]);
    // The Bot Connector cannot be asked whether the first post arrived, so it shows twice.
    expect(copies(threadId, 'lost answer')).toBe(2);
    expect(copies(threadId, 'after it')).toBe(1);
    const texts = botReplies(threadId).map((m) => visibleText(m.activity));
    expect(texts.findLastIndex((t) => t.includes('lost answer'))).toBeLessThan(texts.findIndex((t) => t.includes('after it')));
  });

  it('posts again after a 5xx that Teams applied anyway, and after a timeout: at most one duplicate each', async () => {
    const { bridge, id, threadId } = await conversationWithThread({ config: { requestTimeoutMs: 300 } });
    driver.emulator.fail({ status: 502, applied: true, method: 'POST', bodyIncludes: 'maybe twice' });
    driver.emulator.fail({ slowMs: 800, method: 'POST', bodyIncludes: 'slow one' });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'maybe twice' });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'slow one' });
    await driver.settle();
    // The slow request lands after its timeout, as it may in Teams.
    await waitFor(() => copies(threadId, 'slow one') === 2, { what: 'the slow post to land too' });

    expect(posts('maybe twice').map((r) => r.status)).toEqual([502, 201]);
    expect(copies(threadId, 'maybe twice')).toBe(2);
    expect(posts('slow one')).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 100));
    expect(copies(threadId, 'slow one')).toBe(2);
  });

  it('does not post again when the earlier attempt recorded what Teams answered', async () => {
    const { bridge, id, threadId } = await conversationWithThread();
    const conversation = (await bridge.getConversation(id))!;
    const first = conversation.messages.find((m) => m.text === 'first')!;
    const before = driver.emulator.requests.length;
    await driver.workspace.mirror(conversation, first, { key: `${id}:1`, count: 2, since: Date.now() - 1000 });
    expect(driver.emulator.requests.length).toBe(before);
    expect(copies(threadId, 'first')).toBe(1);
  });

  it('opens a new thread when the answer to opening one was lost, and says so in the docs: the first stays empty', async () => {
    const bridge = await boot();
    driver.emulator.fail({ dropAnswer: true, method: 'POST', bodyIncludes: '"channelData":{"channel"' });
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'hello' });
    await driver.settle();
    const roots = driver.emulator.roots(TEAMS_TEST_CHANNEL).filter((r) => visibleText(r.activity).includes(`${conversation.ticket} · `));
    expect(roots).toHaveLength(2);
    expect(botReplies(roots[0]!.conversationId)).toEqual([]);
    expect(copies(roots[1]!.conversationId, 'hello')).toBe(1);
  });

  it('holds only the throttled conversation on a 429 with Retry-After; another thread gets its messages meanwhile', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({ level: 'info', destination: new Writable({ write: (chunk, _enc, done) => done(void lines.push(JSON.parse(String(chunk)))) }) });
    const { bridge, id: a, threadId: threadA } = await conversationWithThread({ logger });
    const { conversation: other } = await bridge.customerMessage({ origin: 'api', customer, text: 'other first' });
    await driver.settle();
    const threadB = await driver.threadId(other.id);

    driver.emulator.fail({ status: 429, retryAfter: 2, method: 'POST', pathIncludes: threadA });
    const sent = Date.now();
    await bridge.customerMessage({ conversationId: a, origin: 'api', customer, text: 'A second' });
    await waitFor(() => posts('A second').length > 0, { what: 'the throttled post' });
    await bridge.customerMessage({ conversationId: other.id, origin: 'api', customer, text: 'B second' });
    await waitFor(() => copies(threadB, 'B second') === 1, { what: "B's message" });
    const bArrived = Date.now();
    expect(bArrived - sent).toBeLessThan(1500);
    expect(copies(threadA, 'A second')).toBe(0);

    await driver.settle();
    const aPosts = posts('A second');
    expect(aPosts.map((p) => p.status)).toEqual([429, 201]);
    expect(aPosts[1]!.at - aPosts[0]!.at).toBeGreaterThanOrEqual(2000);
    expect(copies(threadA, 'A second')).toBe(1);
    const texts = botReplies(threadA).map((m) => visibleText(m.activity));
    expect(texts.findIndex((t) => t.includes('first'))).toBeLessThan(texts.findIndex((t) => t.includes('A second')));
    // The throttle line says which conversation waits.
    const throttled = lines.filter((l) => String(l.msg).includes('throttled this thread'));
    expect(throttled.length).toBeGreaterThan(0);
    expect(throttled.every((l) => l.conversationId === a)).toBe(true);
  });

  it('refuses an option button from an earlier briefing that Teams has not replaced yet, and says why', async () => {
    const bridge = await boot();
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund please' });
    await driver.settle();
    const [card1] = await driver.briefingMessages(conversation.id);
    const staleCard = cardOf(card1!.versions[0]!); // what a client that has not refreshed still shows
    expect(buttonTitles(staleCard)).toContain('Approve refund');
    await driver.emulator.clickButton({ cardActivityId: card1!.id, from: BOB, title: 'Offer credit' });
    await driver.settle();

    // A second escalation, whose briefing Teams keeps failing for now: card 1 is still the latest.
    driver.emulator.fail({ status: 503, times: 1000, method: 'POST', pathIncludes: ';messageid=', bodyIncludes: CARD });
    await bridge.customerMessage({ conversationId: conversation.id, origin: 'api', customer, text: 'I still want the refund' });
    await waitFor(async () => (await bridge.getConversation(conversation.id))!.state === 'waiting', { what: 'the second escalation' });

    const approve = findButton(staleCard!, 'Approve refund');
    expect(approve.data).toMatchObject({ action: 'option', optionId: 'approve_refund', escalation: 1 });
    const result = await driver.emulator.invoke({ conversationId: card1!.conversationId, cardActivityId: card1!.id, from: ALICE, verb: 'option', data: approve.data });
    expect(result.body).toMatchObject({ statusCode: 200, type: CARD });
    expect(JSON.stringify(result.body)).toContain('That card is from an earlier escalation (1); the current briefing is number 2');
    const after = (await bridge.getConversation(conversation.id))!;
    expect(after.state).toBe('waiting');
    expect(after.decisions.map((d) => d.optionId)).toEqual(['offer_credit']);

    driver.emulator.clearFaults();
    await driver.settle();
    expect(await driver.briefingMessages(conversation.id)).toHaveLength(2);
  });

  it("refuses an older client's Action.Submit of a stale option privately", async () => {
    const bridge = await boot();
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund please' });
    await driver.settle();
    const [card1] = await driver.briefingMessages(conversation.id);
    const approve = findButton(cardOf(card1!.versions[0]!)!, 'Approve refund');
    await driver.emulator.clickButton({ cardActivityId: card1!.id, from: BOB, title: 'Offer credit' });
    await driver.settle();
    await bridge.customerMessage({ conversationId: conversation.id, origin: 'api', customer, text: 'I still want the refund' });
    await driver.settle();

    const res = await driver.emulator.channelMessage({ threadId: card1!.conversationId, from: ALICE, text: '', value: approve.data, replyToId: card1!.id });
    await driver.settle();
    expect(res.status).toBe(200);
    expect(driver.emulator.privateTexts(ALICE.id).join('\n')).toContain('That card is from an earlier escalation (1)');
    expect((await bridge.getConversation(conversation.id))!.decisions.map((d) => d.optionId)).toEqual(['offer_credit']);
  });

  it('posts the briefing as text when Teams refuses the card, and gives up on it only if the text is refused too', async () => {
    const bridge = await boot();
    driver.emulator.fail({ status: 400, method: 'POST', pathIncludes: ';messageid=', bodyIncludes: CARD });
    const { conversation: first } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund one' });
    await driver.settle();
    const thread1 = await driver.threadId(first.id);
    const fallback = botReplies(thread1).find((m) => visibleText(m.activity).includes('needs a person'))!;
    expect(cardOf(fallback.activity)).toBeUndefined();
    for (const part of [first.ticket, 'Refund over the limit', 'Approve the refund or offer credit?', "type 'claim' here"]) expect(visibleText(fallback.activity)).toContain(part);

    // Card and text both refused: the briefing is given up (logged), the thread goes on.
    driver.emulator.fail({ status: 400, times: 2, method: 'POST', pathIncludes: ';messageid=', bodyIncludes: 'needs a person' });
    const { conversation: second } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund two' });
    await driver.settle();
    await bridge.customerMessage({ conversationId: second.id, origin: 'api', customer, text: 'still here' });
    await driver.settle();
    const thread2 = await driver.threadId(second.id);
    expect(copies(thread2, 'needs a person')).toBe(0);
    expect(copies(thread2, 'still here')).toBe(1);
  });

  it('shows a placeholder for a transcript message Teams refuses, and carries on', async () => {
    const { bridge, id, threadId } = await conversationWithThread();
    driver.emulator.fail({ status: 413, method: 'POST', bodyIncludes: 'refused line' });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'refused line' });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'next line' });
    await driver.settle();
    const texts = botReplies(threadId).map((m) => visibleText(m.activity));
    const placeholder = texts.findIndex((t) => t.includes('Teams would not show a message from Edsger Dijkstra (customer)'));
    expect(placeholder).toBeGreaterThan(-1);
    expect(placeholder).toBeLessThan(texts.findIndex((t) => t.includes('next line')));
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
    const texts = botReplies(threadId)
      .map((m) => visibleText(m.activity))
      .filter((t) => t.includes('(customer)') && t.includes('burst'));
    expect(texts.map((t) => /burst (\d+)/.exec(t)?.[1])).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
  });
});

describe('the Bot Connector client', () => {
  const connector = () => new BotConnector({ appId: '', credentials: new ConfigurationServiceClientCredentialFactory({}), logger: silentLogger(), throttleBackoffMs: 1000 });

  it('makes one request per call and says when Teams could not be reached (nothing was sent)', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const error = await connector()
      .sendToConversation(`http://127.0.0.1:${port}/`, '19:x@thread.tacv2;messageid=1', { type: 'message', text: 'hi' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BotConnectorError);
    expect(error).toMatchObject({ delivery: 'not_sent', code: 'ECONNREFUSED' });
  });

  it("turns a 429 into RetryLaterError: Teams' Retry-After when given, else 1-3 s", async () => {
    const emulator = new BotConnectorEmulator();
    const serviceUrl = await emulator.start();
    try {
      const client = connector();
      const created = await client.createConversation(serviceUrl, { isGroup: true, channelData: { channel: { id: TEAMS_TEST_CHANNEL } }, activity: { type: 'message', text: 'root' } }, TEAMS_TEST_CHANNEL);
      emulator.fail({ status: 429, retryAfter: 7 });
      const withHeader = await client.sendToConversation(serviceUrl, created.id, { type: 'message', text: 'x' }).catch((e: unknown) => e);
      expect(withHeader).toBeInstanceOf(RetryLaterError);
      expect((withHeader as RetryLaterError).retryAfterMs).toBeGreaterThanOrEqual(7000);
      expect((withHeader as RetryLaterError).retryAfterMs).toBeLessThanOrEqual(7250);
      emulator.fail({ status: 429 });
      const without = await client.sendToConversation(serviceUrl, created.id, { type: 'message', text: 'x' }).catch((e: unknown) => e);
      expect((without as RetryLaterError).retryAfterMs).toBeGreaterThanOrEqual(1000);
      expect((without as RetryLaterError).retryAfterMs).toBeLessThanOrEqual(3000);
      // One request each: the client never retries on its own.
      expect(emulator.requests.filter((r) => r.status === 429)).toHaveLength(2);
    } finally {
      await emulator.stop();
    }
  });
});

function findButton(card: Record<string, unknown>, title: string): { data: Record<string, unknown> } {
  const walk = (n: unknown): Record<string, unknown> | undefined => {
    if (Array.isArray(n)) return n.map(walk).find(Boolean);
    if (!n || typeof n !== 'object') return undefined;
    const o = n as Record<string, unknown>;
    if (o.type === 'Action.Execute' && o.title === title) return o;
    return walk(o.body) ?? walk(o.items) ?? walk(o.actions);
  };
  const found = walk(card);
  if (!found) throw new Error(`No button ${title}`);
  return found as { data: Record<string, unknown> };
}
