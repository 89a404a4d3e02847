/**
 * Property-based fuzzing of POST /api/messages with fast-check: Teams-shaped activities (thread
 * messages, typed commands, card invokes, Action.Submit fallbacks, attachments, mentions) aimed at
 * the bridge's real threads and conversations, the same with one field of the wrong type, any
 * JSON, and bodies that are not JSON. Whatever arrives: no 5xx, no unhandled rejection, no call to
 * an activity's own service URL, and a rejected input (4xx, an invoke error, a thread that is not
 * the bridge's) writes nothing to the store. With authentication on, nothing without a valid token
 * gets past 401 or writes anything.
 *
 * FUZZ_RUNS sets the inputs per property (default 10,000 for the first, which runs with the
 * loopback opt-out so every input reaches the bot logic; a fifth of that with authentication).
 */
import { countingStore } from '../support/counting-store.ts';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { TeamsState, threadKey } from '../../adapters/teams/state.ts';
import type { Bridge } from '../../src/bridge.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import { BotConnectorEmulator, type TeamsUser } from '../emulators/bot-connector.ts';
import { TEAMS_TEST_CHANNEL, TeamsDriver } from '../contract/teams-driver.ts';
import { ScriptedAgent } from '../support/harness.ts';

const RUNS = Math.max(1, Number(process.env.FUZZ_RUNS) || 10_000);
const AUTH_RUNS = Math.max(1, Math.ceil(RUNS / 5));
/** Inputs per round of fresh conversations. */
const ROUND = 2_000;
const APP_ID = '00000000-0000-4000-8000-00000000f022';
const ALICE: TeamsUser = { id: '29:alice-mri', name: 'Alice Ops' };
const BOB: TeamsUser = { id: '29:bob-mri', name: 'Bob Ops' };
const MALLORY: TeamsUser = { id: '29:mallory-mri', name: 'Mallory' };


/** Escalates on "refund", answers anything else. */
const agent = () =>
  new ScriptedAgent(({ conversation }) => {
    const last = conversation.messages.findLast((m) => m.author.role === 'customer')?.text ?? '';
    if (/refund/i.test(last)) {
      return {
        kind: 'escalate',
        trigger: 'agent_tool',
        reason: 'Refund over the limit',
        actionsTaken: [],
        request: { summary: 'Wants a refund', pendingQuestion: 'Approve?', options: [{ id: 'approve', label: 'Approve', risk: 'high' }] },
      };
    }
    return { kind: 'reply', text: 'Noted.', actionsTaken: [] };
  });

interface Target {
  threadIds: string[];
  conversationIds: string[];
  cardIds: string[];
  emulator: BotConnectorEmulator;
  attackerUrl: string;
}

/** Teams-like activities aimed at the bridge's threads, some with a field of the wrong type, and anything else. */
function bodies(t: Target): fc.Arbitrary<{ body: string; activity?: Record<string, unknown> }> {
  const user = fc.oneof(
    fc.constantFrom<Record<string, unknown>>({ ...ALICE }, { ...BOB }, { ...MALLORY }, { ...t.emulator.bot }, { ...MALLORY, role: 'bot' }),
    fc.record({ id: fc.string(), name: fc.string(), aadObjectId: fc.string(), role: fc.string() }, { requiredKeys: [] }),
  );
  const thread = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...t.threadIds) },
    fc.constantFrom(TEAMS_TEST_CHANNEL, `${TEAMS_TEST_CHANNEL};messageid=1`, `${t.threadIds[0]!.toUpperCase()}`, `${t.threadIds[0]};messageid=9`, 'a:1chat', ''),
    fc.string(),
  );
  const conversationId = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...t.conversationIds) }, fc.string());
  const cardData = fc.record(
    {
      handoff: fc.constantFrom<unknown>(1, 2, '1', null),
      conversationId,
      action: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('claim', 'takeover', 'option', 'return', 'close', 'refresh') }, fc.string()),
      optionId: fc.constantFrom('approve', 'nope', ''),
      escalation: fc.oneof(fc.integer({ min: -1, max: 3 }), fc.double()),
      note: fc.string({ maxLength: 40 }),
    },
    { requiredKeys: ['handoff', 'conversationId', 'action'] },
  );
  const value = fc.oneof(
    cardData,
    fc.record({ action: fc.record({ type: fc.constant('Action.Execute'), verb: fc.string(), data: cardData }), trigger: fc.constantFrom('manual', 'automatic') }),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const text = fc.oneof(
    fc.constantFrom('claim', '/claim', 'take over', 'return', 'return: sorted it', '/close duplicate', 'close', 'help', 'hello there', '// checked', 'Return the item to us', ''),
    fc.string({ maxLength: 60 }),
    fc.string({ unit: 'grapheme', maxLength: 30 }),
  );
  const mention = `<at>${t.emulator.bot.name}</at>`;
  const entity = fc.oneof(
    fc.constant<Record<string, unknown>>({ type: 'mention', text: mention, mentioned: { id: t.emulator.bot.id, name: t.emulator.bot.name } }),
    fc.record({ type: fc.constantFrom('mention', 'clientInfo', ''), text: fc.string(), mentioned: fc.record({ id: fc.string(), name: fc.string() }, { requiredKeys: [] }) }, { requiredKeys: [] }),
  );
  const attachment = fc.record(
    {
      contentType: fc.oneof(fc.constantFrom('reference', 'text/html', 'image/png', 'application/vnd.microsoft.teams.file.download.info', 'application/vnd.microsoft.card.adaptive'), fc.string()),
      contentUrl: fc.oneof(fc.webUrl(), fc.constantFrom('https://files.example/%E0%A4%A', 'https://files.example/', 'javascript:alert(1)', 'https://x.asm.skype.com/a.png'), fc.string()),
      name: fc.string({ maxLength: 20 }),
      content: fc.oneof(fc.record({ downloadUrl: fc.oneof(fc.webUrl(), fc.string(), fc.integer()) }), fc.jsonValue({ maxDepth: 1 })),
    },
    { requiredKeys: [] },
  );
  const activity = fc
    .record(
      {
        type: fc.oneof({ weight: 5, arbitrary: fc.constantFrom('message', 'invoke') }, fc.constantFrom('conversationUpdate', 'messageReaction', 'event', 'typing'), fc.string()),
        id: fc.oneof(fc.constantFrom('1800000000001', '1800000000002', 'f:retry'), fc.string({ minLength: 1, maxLength: 20 })),
        name: fc.oneof({ weight: 3, arbitrary: fc.constant('adaptiveCard/action') }, fc.string()),
        text,
        textFormat: fc.constantFrom('plain', 'xml'),
        serviceUrl: fc.oneof(fc.constant(t.emulator.serviceUrl), fc.constant(t.attackerUrl), fc.webUrl(), fc.string()),
        channelId: fc.oneof({ weight: 8, arbitrary: fc.constant('msteams') }, fc.constantFrom('emulator', 'directline', 'webchat')),
        from: user,
        recipient: fc.oneof(fc.constant<Record<string, unknown>>(t.emulator.bot), user),
        conversation: fc.record({ id: thread, tenantId: fc.string(), isGroup: fc.boolean(), conversationType: fc.constantFrom('channel', 'personal') }, { requiredKeys: [] }),
        entities: fc.array(entity, { maxLength: 3 }),
        attachments: fc.array(attachment, { maxLength: 3 }),
        value,
        replyToId: fc.oneof(fc.constantFrom(...t.cardIds), fc.string()),
        channelData: fc.oneof(
          { weight: 3, arbitrary: fc.constant({ tenant: { id: t.emulator.tenantId }, channel: { id: TEAMS_TEST_CHANNEL } }) },
          fc.dictionary(fc.constantFrom('tenant', 'channel', 'team', 'eventType', 'x'), fc.jsonValue({ maxDepth: 1 })),
        ),
      },
      { requiredKeys: ['type', 'id', 'serviceUrl', 'channelId', 'from', 'recipient', 'conversation'] },
    )
    .map((a) => a as Record<string, unknown>);
  // The same with any of its fields left out.
  const sparse = fc.tuple(activity, fc.subarray(['id', 'name', 'text', 'serviceUrl', 'channelId', 'from', 'recipient', 'conversation', 'value'])).map(([a, drop]) => {
    const copy = { ...a };
    for (const key of drop) delete copy[key];
    return copy;
  });
  const field = fc.constantFrom('type', 'id', 'text', 'serviceUrl', 'from', 'recipient', 'conversation', 'entities', 'attachments', 'channelData', 'replyToId', 'value');
  const corrupted = fc.tuple(activity, field, fc.jsonValue({ maxDepth: 2 })).map(([a, key, v]) => ({ ...a, [key]: v }));
  return fc.oneof(
    { weight: 12, arbitrary: activity.map((a) => ({ body: JSON.stringify(a), activity: a })) },
    { weight: 2, arbitrary: sparse.map((a) => ({ body: JSON.stringify(a), activity: a })) },
    { weight: 3, arbitrary: corrupted.map((a) => ({ body: JSON.stringify(a), activity: a })) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => ({ body: JSON.stringify(v) ?? 'null' })) },
    { weight: 1, arbitrary: fc.string().map((s) => ({ body: s })) },
  );
}

describe('fuzzing POST /api/messages', () => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => void rejections.push(reason);
  beforeAll(() => void process.on('unhandledRejection', onRejection));
  afterAll(() => void process.off('unhandledRejection', onRejection));

  let driver: TeamsDriver | undefined;
  let attacker: BotConnectorEmulator | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await driver?.stop();
    await attacker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    vi.restoreAllMocks();
  });

  async function boot(config: ConstructorParameters<typeof TeamsDriver>[0] = {}) {
    // In memory where there is a tmpfs: every accepted command is a durable (fsynced) commit.
    dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'teams-fuzz-'));
    const counting = countingStore(await openSqliteStore(join(dir, 'bridge.sqlite')));
    attacker = new BotConnectorEmulator();
    const attackerUrl = await attacker.start();
    driver = new TeamsDriver({ ...config, bridge: { store: counting.store } });
    const { bridge } = await driver.start(agent());
    return { bridge, writes: counting.writes, attackerUrl };
  }

  /** One POST on its own connection: a pooled one the server closed while idle could fail the run. */
  const post = (body: string, authorization?: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = request(driver!.emulator.botUrl, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  it(`takes ${RUNS} fuzzed activities without a 5xx, a stray write or a call to their service URL`, { timeout: Math.max(120_000, RUNS * 30) }, async () => {
    const { bridge, writes, attackerUrl } = await boot();
    const statuses = new Map<number, number>();
    const allThreads: string[] = [];
    // In rounds of fresh conversations: fuzzed commands close them and hand them back, and each
    // round starts again from waiting, held and with the agent.
    for (let round = 0, left = RUNS; left > 0; round++, left -= ROUND) {
      const target = await targets(bridge, attackerUrl, round);
      allThreads.push(...target.threadIds);
      const threadKeys = new Set(target.threadIds.map(threadKey));
      /** In one of the bridge's threads, as the adapter reads it (anything else must change nothing). */
      const ours = (a: Record<string, unknown> | undefined) => {
        const id = (a?.conversation as { id?: unknown } | undefined)?.id;
        return typeof id === 'string' && threadKeys.has(threadKey(id));
      };
      await fc.assert(
        fc.asyncProperty(bodies(target), async ({ body, activity }) => {
          const before = writes();
          const res = await post(body);
          const answer = parseJson(res.text) as { statusCode?: number } | undefined;
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          // 501 is Bot Framework's answer to an invoke the bot does not implement (anything but a card action in Teams).
          const unimplemented = res.status === 501 && activity?.type === 'invoke' && (activity.name !== 'adaptiveCard/action' || activity.channelId !== 'msteams');
          if (!unimplemented) expect([200, 400]).toContain(res.status);
          const rejected = res.status !== 200 || (answer?.statusCode ?? 200) >= 400 || !ours(activity);
          if (rejected) expect(writes(), `a rejected input wrote to the store: ${body.slice(0, 300)}`).toBe(before);
          // What it committed is delivered before the next input, whose writes are then its own.
          else if (writes() !== before) await driver!.settle();
        }),
        { numRuns: Math.min(ROUND, left), ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) + round } : {}) },
      );
    }
    await driver!.settle();
    expect(rejections).toEqual([]);
    expect(attacker!.requests).toEqual([]);
    for (const user of [ALICE, BOB, MALLORY]) {
      const profile = await bridge.store.kv('teams').get<{ serviceUrl?: string }>(`operator:${user.id}`);
      expect(profile?.serviceUrl).toBeUndefined();
    }
    // Many inputs reached the bot logic, and it still works afterwards.
    expect(statuses.get(200) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(RUNS / 3);
    const res = await driver!.emulator.channelMessage({ threadId: allThreads.at(-1)!, from: BOB, text: '// still here' });
    expect(res.status).toBe(200);
  });

  /** Three conversations with threads: waiting with a briefing, held by Alice, with the agent. */
  async function targets(bridge: Bridge, attackerUrl: string, round: number): Promise<Target> {
    const ids: string[] = [];
    for (const text of ['I want a refund', 'refund for order B', 'where is my parcel']) {
      ids.push((await bridge.customerMessage({ origin: 'api', customer: { id: `c-${round}-${ids.length}`, name: 'Customer' }, text })).conversation.id);
    }
    await driver!.settle();
    await driver!.clickClaim(ids[1]!, { userId: ALICE.id, name: ALICE.name });
    await driver!.settle();
    return {
      threadIds: await Promise.all(ids.map((id) => driver!.threadId(id))),
      conversationIds: ids,
      cardIds: (await Promise.all(ids.slice(0, 2).map((id) => driver!.briefingMessages(id)))).flat().map((m) => m.id),
      emulator: driver!.emulator,
      attackerUrl,
    };
  }

  it(`with authentication, refuses ${AUTH_RUNS} fuzzed activities without a valid token, writing nothing`, { timeout: Math.max(60_000, AUTH_RUNS * 30) }, async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {}); // botbuilder prints rejected tokens
    const { bridge, writes, attackerUrl } = await boot({ config: (emulator) => ({ appId: APP_ID, appPassword: 'not-a-real-secret', openIdMetadataUrl: emulator.openIdMetadataUrl }) });
    const conversation = await bridge.openConversation({ origin: 'api', customer: { id: 'c-auth', name: 'Customer' } });
    const threadId = `${TEAMS_TEST_CHANNEL};messageid=1699999999999`;
    await new TeamsState(bridge.store.kv('teams')).saveThread({ conversationId: conversation.id, channelId: TEAMS_TEST_CHANNEL, serviceUrl: driver!.emulator.serviceUrl, threadId, rootActivityId: '1699999999999', briefings: [] });
    const e = driver!.emulator;
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: 'https://api.botframework.com', aud: APP_ID })).toString('base64url')}.`;
    const badAuth = fc.constantFrom(
      undefined,
      '',
      'Bearer',
      'Bearer not-a-jwt',
      'Basic YWxpY2U6c2VjcmV0',
      `Bearer ${unsigned}`,
      `Bearer ${e.issueToken({ audience: APP_ID, wrongKey: true })}`,
      `Bearer ${e.issueToken({ audience: 'another-bot' })}`,
      `Bearer ${e.issueToken({ audience: APP_ID, expiresInSeconds: -3600 })}`,
      `Bearer ${e.issueToken({ audience: APP_ID, issuer: 'https://attacker.example' })}`,
      // Signed for this bot, but for another service URL than the activity names.
      `Bearer ${e.issueToken({ audience: APP_ID, serviceUrl: 'https://smba.trafficmanager.net/elsewhere/' })}`,
    );
    const target: Target = { threadIds: [threadId], conversationIds: [conversation.id], cardIds: ['1699999999999'], emulator: e, attackerUrl };
    const before = writes();
    const snapshot = JSON.stringify(await bridge.getConversation(conversation.id));
    await fc.assert(
      fc.asyncProperty(bodies(target), badAuth, async ({ body }, authorization) => {
        const res = await post(body, authorization);
        expect([400, 401]).toContain(res.status);
      }),
      { numRuns: AUTH_RUNS },
    );
    expect(writes()).toBe(before);
    expect(JSON.stringify(await bridge.getConversation(conversation.id))).toBe(snapshot);
    expect(rejections).toEqual([]);
    expect(attacker!.requests).toEqual([]);
  });
});

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}
