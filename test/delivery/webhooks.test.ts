/**
 * Signed webhooks as durable work, against a real loopback receiver that fails at first.
 *
 * The bridge here routes work to `webhooks` by running a (memory) workspace of that name without
 * its worker, so the real engine commits exactly the mirror and ownership items the commit.ts
 * wiring routes (plus briefing and notify items, which the destination ignores); the webhook
 * destination then runs in its own DeliveryWorker, as bridge.ts will run it.
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WorkspaceDestination } from '../../src/delivery/destinations.ts';
import { signWebhook, verifyWebhook, webhookConfigFromEnv, WebhookDestination, WEBHOOKS, type WebhookConfig } from '../../src/delivery/webhooks.ts';
import { DeliveryWorker } from '../../src/delivery/worker.ts';
import { Redactor } from '../../src/engine/redact.ts';
import { toWebhookEvent, webhookJsonSchema, WebhookEventSchema, type WebhookEvent } from '../../src/engine/webhook-events.ts';
import { ConfigError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import type { Bridge } from '../../src/bridge.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/store.ts';
import { createTestBridge, DANA, SAM, waitFor, type TestBridge } from '../support/harness.ts';
import { conversationFixture } from '../support/conversations.ts';
import { MemoryWorkspace } from '../support/memory-ports.ts';
import { startReceiver, type Receiver } from './receiver.ts';

const SECRET = 'whsec_0123456789abcdef0123456789abcdef';
const FAST = { initialMs: 20, maxMs: 200, factor: 2, jitter: 0.2 };

function config(urls: string[], extra: Partial<WebhookConfig> = {}): WebhookConfig {
  return { urls, secret: SECRET, timeoutMs: 2000, events: webhookConfigFromEnv({ WEBHOOK_URL: 'http://x', WEBHOOK_SECRET: SECRET })!.events, ...extra };
}

function startWorker(store: Store, destination: WebhookDestination): DeliveryWorker {
  const worker = new DeliveryWorker({ store, destination, logger: silentLogger(), pollMs: 50, leaseMs: 5000, backoff: FAST });
  worker.start();
  return worker;
}

/** A bridge whose engine addresses work to `webhooks`; nothing else runs, the test runs the webhook worker. */
async function bridgeOn(store: Store): Promise<TestBridge> {
  return createTestBridge({ store, workspaces: [new MemoryWorkspace(WEBHOOKS)], startWorkers: false });
}

/** One conversation's life: escalated with a card number, claimed, answered, returned with a note, closed. */
async function lifeOf(bridge: Bridge, who: string, card: string): Promise<string> {
  const { conversation } = await bridge.customerMessage({ origin: 'api', customer: { id: who, name: who, email: `${who}@example.com` }, text: `I was charged twice on ${card}. I want a human.` });
  const id = conversation.id;
  await bridge.claim({ conversationId: id, operator: DANA });
  await bridge.operatorMessage({ conversationId: id, operator: DANA, text: 'Hi, Dana here. Refunding the duplicate now.' });
  await bridge.returnToAgent({ conversationId: id, operator: DANA, note: `Refunded the duplicate to ${card}.` });
  await bridge.close({ conversationId: id, operator: DANA, note: 'done' });
  return id;
}

/** The events the store says are owed to webhooks, in work-log order (what must arrive, once each). */
async function owed(store: Store, destination: WebhookDestination, ids: string[]): Promise<Map<string, WebhookEvent[]>> {
  const out = new Map<string, WebhookEvent[]>();
  for (const id of ids) {
    const conversation = (await store.getConversation(id))!;
    const { items } = await store.work.pending(WEBHOOKS, id, 1000);
    out.set(id, items.flatMap((item) => destination.eventFor(item, { conversation }) ?? []));
  }
  return out;
}

function byConversation(events: Array<{ conversation_id: string; id: string; type: string }>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of events) out.set(e.conversation_id, [...(out.get(e.conversation_id) ?? []), e.id]);
  return out;
}

const seqOf = (id: string) => Number(id.split(':').at(-1));

describe('webhooks through a receiver that fails at first', () => {
  let dir: string;
  let receivers: Receiver[] = [];
  let workers: DeliveryWorker[] = [];
  let bridges: TestBridge[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'webhooks-test-'));
  });
  afterEach(async () => {
    for (const w of workers) await w.stop(1000);
    for (const b of bridges) await b.close().catch(() => {});
    for (const r of receivers) await r.close();
    workers = [];
    bridges = [];
    receivers = [];
    rmSync(dir, { recursive: true, force: true });
  });

  it('arrive signed, redacted, in order per conversation, each id once after dedupe, across a restart', async () => {
    const receiver = await startReceiver(SECRET);
    receivers.push(receiver);
    const path = join(dir, 'bridge.sqlite');

    // Before the restart: the receiver is down (503 to everything).
    receiver.answerWith(() => 503);
    const store1 = await openSqliteStore(path);
    const t1 = await bridgeOn(store1);
    bridges.push(t1);
    const worker1 = startWorker(store1, new WebhookDestination({ config: config([receiver.url]), kv: store1.kv('webhooks') }));
    const ids = [await lifeOf(t1.bridge, 'ana', '4242 4242 4242 4242'), await lifeOf(t1.bridge, 'bo', '4111-1111-1111-1111')];
    await waitFor(() => receiver.requests.length >= 6, { what: 'failed attempts' });
    await worker1.stop(1000);
    await t1.close();
    bridges = [];
    expect(receiver.accepted()).toEqual([]);

    // After: a new process on the same file; the receiver fails a few more times, then accepts.
    const before = receiver.requests.length;
    let failures = 0;
    receiver.answerWith(() => (failures++ < 4 ? 503 : 200));
    const store2 = await openSqliteStore(path);
    const t2 = await bridgeOn(store2);
    bridges.push(t2);
    const destination = new WebhookDestination({ config: config([receiver.url]), kv: store2.kv('webhooks') });
    const expected = await owed(store2, destination, ids);
    const worker2 = startWorker(store2, destination);
    workers.push(worker2);
    await worker2.idle();

    const accepted = receiver.accepted();
    const arrived = byConversation(accepted as Array<{ conversation_id: string; id: string; type: string }>);
    for (const id of ids) {
      const owedHere = expected.get(id)!;
      // Every owed event, in work-log order, once.
      expect(arrived.get(id)).toEqual(owedHere.map((e) => e.id));
      expect(owedHere.map((e) => e.type)).toEqual([
        'message.created', // the customer
        'conversation.escalated',
        'message.created', // "Escalated (explicit_request)"
        'message.created', // the customer's notice
        'conversation.claimed',
        'message.created',
        'message.created',
        'message.created', // Dana's reply
        'conversation.returned',
        'message.created',
        'message.created',
        'conversation.closed',
        'message.created',
        'message.created',
      ]);
      const seqs = arrived.get(id)!.map(seqOf);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    }
    expect(receiver.requests.slice(before).filter((r) => r.status === 503)).toHaveLength(4);
    // Signed: every request verifies, with the documented algorithm and with the exported one.
    for (const r of receiver.requests) {
      expect(r.signatureValid).toBe(true);
      const ts = String(r.headers['x-handoff-timestamp']);
      expect(r.headers['x-handoff-signature']).toBe('v0=' + createHmac('sha256', SECRET).update(`v0:${ts}:${r.raw}`).digest('hex'));
      expect(verifyWebhook({ secret: SECRET, timestamp: ts, signature: String(r.headers['x-handoff-signature']), body: r.raw })).toBe(true);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['x-handoff-event']).toBe(r.body!.type);
      expect(r.headers['x-handoff-delivery']).toBe(r.body!.id);
    }
    // The schema holds, exactly (no field outside it).
    for (const body of accepted) expect(WebhookEventSchema.parse(body)).toEqual(body);
    // Redacted: no card number leaves, the masks do.
    const raw = receiver.requests.map((r) => r.raw).join('\n');
    for (const digits of ['4242 4242 4242 4242', '4242424242424242', '4111-1111-1111-1111', '4111111111111111']) expect(raw).not.toContain(digits);
    expect(raw).toContain('I was charged twice on [card •••• 4242]. I want a human.');
    expect(raw).toContain('Refunded the duplicate to [card •••• 1111].');
    // The events say what happened.
    const first = accepted.filter((e) => e.conversation_id === ids[0]) as WebhookEvent[];
    expect(first.find((e) => e.type === 'conversation.escalated')).toMatchObject({
      ticket: expect.stringMatching(/^HB-\d+$/),
      data: { state: 'waiting', escalation: 1, trigger: 'explicit_request', by: { kind: 'system' }, customer: { id: 'ana', email: 'ana@example.com' }, briefing: { priority: expect.any(String) } },
    });
    expect(first.find((e) => e.type === 'conversation.claimed')).toMatchObject({ data: { state: 'human', operator: DANA, take_over: false } });
    expect(first.find((e) => e.type === 'conversation.returned')).toMatchObject({ data: { state: 'agent', how: 'return', by: { kind: 'operator', operator: DANA }, note: 'Refunded the duplicate to [card •••• 4242].' } });
    expect(first.find((e) => e.type === 'conversation.closed')).toMatchObject({ data: { state: 'closed', note: 'done' } });
  });

  it('a timed-out request is sent again with the same id; the receiver keeps one', async () => {
    const receiver = await startReceiver(SECRET);
    receivers.push(receiver);
    receiver.script({ status: 200, delayMs: 600 }); // processed, but the answer comes too late
    const t = await bridgeOn(await openSqliteStore(join(dir, 'b.sqlite')));
    bridges.push(t);
    const worker = startWorker(t.store, new WebhookDestination({ config: config([receiver.url], { timeoutMs: 200 }) }));
    workers.push(worker);
    await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'hello' });
    await worker.idle();
    await new Promise((r) => setTimeout(r, 700)); // the late answer lands
    const counts = receiver.acceptedCounts();
    const first = receiver.requests[0]!.body!.id;
    expect(counts.get(first)).toBe(2);
    expect(receiver.accepted().map((e) => e.id)).toEqual([first]);
    expect(receiver.requests.map((r) => r.headers['x-handoff-attempt'])).toEqual(['1', '2']);
  });

  it('a refusal (4xx) is not retried and does not hold back what comes after; 408 and 429 are retried', async () => {
    const receiver = await startReceiver(SECRET);
    receivers.push(receiver);
    receiver.script(400, 408, { status: 429, headers: { 'retry-after': '0' } });
    const t = await bridgeOn(await openSqliteStore(join(dir, 'c.sqlite')));
    bridges.push(t);
    const worker = startWorker(t.store, new WebhookDestination({ config: config([receiver.url]) }));
    workers.push(worker);
    const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'first' });
    await worker.idle();
    await t.bridge.internalNote({ conversationId: conversation.id, text: 'second' });
    await worker.idle();
    const refused = receiver.requests[0]!;
    expect(refused.status).toBe(400);
    expect(receiver.requests.filter((r) => r.body!.id === refused.body!.id)).toHaveLength(1);
    expect(receiver.requests.slice(1).map((r) => r.status)).toEqual([408, 429, 200]);
    expect(receiver.accepted().map((e) => (e as unknown as WebhookEvent & { data: { message: { text: string } } }).data.message.text)).toEqual(['second']);
    // The 429 asked for "now": waited at least the floor (1 s), not hammered.
    expect(receiver.requests[3]!.at - receiver.requests[2]!.at).toBeGreaterThanOrEqual(900);
  });

  it('with several URLs, one that accepted is not sent the event again while another is retried', async () => {
    const healthy = await startReceiver(SECRET);
    const flaky = await startReceiver(SECRET);
    receivers.push(healthy, flaky);
    let n = 0;
    flaky.answerWith(() => (n++ < 5 ? 502 : 200));
    const t = await bridgeOn(await openSqliteStore(join(dir, 'd.sqlite')));
    bridges.push(t);
    const worker = startWorker(t.store, new WebhookDestination({ config: config([healthy.url, flaky.url]), kv: t.store.kv('webhooks') }));
    workers.push(worker);
    const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want a human' });
    await t.bridge.claim({ conversationId: conversation.id, operator: SAM });
    await worker.idle();
    expect([...healthy.acceptedCounts().values()].every((count) => count === 1)).toBe(true);
    expect(healthy.accepted().map((e) => e.id)).toEqual(flaky.accepted().map((e) => e.id));
    expect(healthy.accepted().map((e) => e.type)).toContain('conversation.claimed');
  });

  it('a briefing or a private notice is no event; only the configured event types are sent', async () => {
    const receiver = await startReceiver(SECRET);
    receivers.push(receiver);
    const t = await bridgeOn(await openSqliteStore(join(dir, 'e.sqlite')));
    bridges.push(t);
    const worker = startWorker(t.store, new WebhookDestination({ config: config([receiver.url], { events: ['conversation.escalated', 'conversation.claimed'] }) }));
    workers.push(worker);
    const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want a human' });
    await t.bridge.operatorMessage({ conversationId: conversation.id, operator: SAM, text: 'unclaimed reply' }); // a notify item
    await t.bridge.claim({ conversationId: conversation.id, operator: SAM });
    await worker.idle();
    expect(receiver.accepted().map((e) => e.type)).toEqual(['conversation.escalated', 'conversation.claimed']);
  });

  it('the workspace destination and the webhook destination share nothing but the work log', () => {
    // Names are distinct, so commit.ts can address both in one item.
    expect(new WorkspaceDestination(new MemoryWorkspace('slack')).name).not.toBe(WEBHOOKS);
  });
});

describe('webhook signing and configuration', () => {
  it('signs like Slack: v0=hex HMAC-SHA256 of "v0:<timestamp>:<raw body>"', () => {
    const body = '{"type":"conversation.closed"}';
    expect(signWebhook('secret', 1700000000, body)).toBe('v0=' + createHmac('sha256', 'secret').update(`v0:1700000000:${body}`).digest('hex'));
    const now = 1700000000_000;
    const ok = { secret: 'secret', timestamp: '1700000000', signature: signWebhook('secret', 1700000000, body), body, now };
    expect(verifyWebhook(ok)).toBe(true);
    expect(verifyWebhook({ ...ok, body: body + ' ' })).toBe(false);
    expect(verifyWebhook({ ...ok, secret: 'other' })).toBe(false);
    expect(verifyWebhook({ ...ok, now: now + 301_000 })).toBe(false); // a replay 5 minutes later
    expect(verifyWebhook({ ...ok, signature: undefined })).toBe(false);
  });

  it('reads WEBHOOK_URL (several), WEBHOOK_SECRET, WEBHOOK_TIMEOUT_MS and WEBHOOK_EVENTS', () => {
    expect(webhookConfigFromEnv({})).toBeUndefined();
    expect(webhookConfigFromEnv({ WEBHOOK_SECRET: SECRET })).toBeUndefined();
    const c = webhookConfigFromEnv({ WEBHOOK_URL: ' https://a.example.com/hook , http://127.0.0.1:9000/x,https://a.example.com/hook', WEBHOOK_SECRET: SECRET, WEBHOOK_TIMEOUT_MS: '2500', WEBHOOK_EVENTS: 'conversation.escalated, message.created' })!;
    expect(c).toEqual({ urls: ['https://a.example.com/hook', 'http://127.0.0.1:9000/x'], secret: SECRET, timeoutMs: 2500, events: ['conversation.escalated', 'message.created'] });
    expect(webhookConfigFromEnv({ WEBHOOK_URL: 'https://a.example.com', WEBHOOK_SECRET: SECRET, WEBHOOK_EVENTS: '*' })!.events).toContain('handoff.agent');
  });

  it.each([
    [{ WEBHOOK_URL: 'https://a.example.com' }, 'WEBHOOK_SECRET: required with WEBHOOK_URL: a shared secret of at least 16 characters (e.g. openssl rand -hex 32)'],
    [{ WEBHOOK_URL: 'https://a.example.com', WEBHOOK_SECRET: 'short' }, 'WEBHOOK_SECRET: expected a shared secret of at least 16 characters (e.g. openssl rand -hex 32)'],
    [{ WEBHOOK_URL: 'hooks.example.com', WEBHOOK_SECRET: SECRET }, 'WEBHOOK_URL: expected comma-separated http(s) URLs, got "hooks.example.com"'],
    [{ WEBHOOK_URL: 'ftp://a.example.com', WEBHOOK_SECRET: SECRET }, 'WEBHOOK_URL: expected http(s) URLs, got a ftp: URL'],
    [{ WEBHOOK_URL: 'https://a.example.com', WEBHOOK_SECRET: SECRET, WEBHOOK_TIMEOUT_MS: 'soon' }, 'WEBHOOK_TIMEOUT_MS: expected milliseconds from 100 to 120000, got "soon"'],
    [{ WEBHOOK_URL: 'https://a.example.com', WEBHOOK_SECRET: SECRET, WEBHOOK_EVENTS: 'conversation.claimed,ticket.created' }, 'WEBHOOK_EVENTS: expected comma-separated event types'],
  ])('refuses %j in one line', (env, message) => {
    let error: unknown;
    try {
      webhookConfigFromEnv(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message.startsWith(message)).toBe(true);
    expect((error as Error).message).not.toContain('\n');
    expect((error as Error).message).not.toContain(SECRET);
  });

  it('docs/webhooks.schema.json is the schema derived from the zod events (UPDATE_WEBHOOK_SCHEMA=1 rewrites it)', () => {
    const path = new URL('../../docs/webhooks.schema.json', import.meta.url).pathname;
    const derived = JSON.stringify(webhookJsonSchema(), null, 2) + '\n';
    if (process.env.UPDATE_WEBHOOK_SCHEMA === '1') writeFileSync(path, derived);
    expect(readFileSync(path, 'utf8')).toBe(derived);
  });

  it("events are built from redacted copies, with the policy's own patterns too", () => {
    const redactor = new Redactor({ patterns: [{ name: 'member', regex: 'M-\\d{6}' }] });
    const conversation = conversationFixture({
      messages: [{ id: 'msg_1', at: '2025-01-01T00:00:00.000Z', author: { role: 'customer' }, text: 'member M-123456, card 4242424242424242', visibility: 'public' }],
    });
    const event = toWebhookEvent({ seq: 7, to: [WEBHOOKS], payload: { kind: 'mirror', messageId: 'msg_1' }, at: 0, version: 1 }, conversation, redactor);
    expect(event).toMatchObject({ type: 'message.created', id: 'conv_test:7', ticket: 'HB-1042', conversation_id: 'conv_test', data: { message: { text: 'member [member ••••], card [card •••• 4242]' } } });
    expect(conversation.messages[0]!.text).toBe('member M-123456, card 4242424242424242');
  });

  it('an agent-to-agent handoff entry becomes handoff.agent', () => {
    const change = { from: 'agent' as const, to: 'agent' as const, reason: 'agent_handoff', by: { kind: 'agent' as const }, at: '2025-01-01T00:00:00.000Z', note: 'billing question', agent_handoff: { from: 'triage', to: 'billing' } };
    const conversation = conversationFixture({ history: [change] });
    expect(toWebhookEvent({ seq: 3, to: [WEBHOOKS], payload: { kind: 'ownership', change }, at: 0, version: 1 }, conversation, new Redactor())).toEqual({
      type: 'handoff.agent',
      id: 'conv_test:3',
      ticket: 'HB-1042',
      conversation_id: 'conv_test',
      at: '2025-01-01T00:00:00.000Z',
      data: { from_agent: 'triage', to_agent: 'billing', by: { kind: 'agent' }, reason: 'billing question' },
    });
  });
});
