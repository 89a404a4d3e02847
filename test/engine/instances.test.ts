/**
 * Two bridge instances on one real Redis: commits race through compare-and-set, a claim made on
 * one instance stops the agent on the other, and nothing either writes is lost.
 */
import { afterAll, expect, it } from 'vitest';
import type { Agent, AgentTurnInput, AgentTurnResult } from '../../src/agent/agent.ts';
import { AlreadyClaimedError, BridgeError } from '../../src/errors.ts';
import { openRedisStore } from '../../src/store/redis.ts';
import { MemoryChannel } from '../support/memory-ports.ts';
import { createTestBridge, DANA, SAM, waitFor, type TestBridge } from '../support/harness.ts';

const open: TestBridge[] = [];
afterAll(async () => {
  for (const t of open) await t.close();
});

async function twoInstances(agent?: Agent, workersOnB = true) {
  const namespace = `inst${Date.now()}${Math.random().toString(36).slice(2, 6)}`;
  const channelA = new MemoryChannel('api');
  const channelB = new MemoryChannel('api');
  const a = await createTestBridge({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }), channels: [channelA], ...(agent ? { agent } : {}) });
  const b = await createTestBridge({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }), channels: [channelB], ...(agent ? { agent } : {}), startWorkers: workersOnB });
  open.push(a, b);
  return { a, b, channelA, channelB };
}

/** An agent that waits until its turn is aborted (or 10 s), then answers anyway. */
class StubbornAgent implements Agent {
  readonly name = 'stubborn';
  readonly signals: AbortSignal[] = [];
  async respond({ signal }: AgentTurnInput): Promise<AgentTurnResult> {
    this.signals.push(signal);
    await new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => resolve(), { once: true });
      setTimeout(resolve, 10_000).unref();
    });
    return { kind: 'reply', text: 'an answer nobody should see', actionsTaken: [] };
  }
}

it('a claim committed on one instance aborts the agent generation running on the other', async () => {
  const agent = new StubbornAgent();
  const { a, b, channelA } = await twoInstances(agent, false);
  const { conversation } = await a.bridge.customerMessage({ origin: 'api', customer: { id: 'c1' }, text: 'Where is my order?' });
  await waitFor(() => agent.signals.length === 1, { what: 'the generation on instance A' });

  await b.bridge.takeOver({ conversationId: conversation.id, operator: DANA });
  await waitFor(() => agent.signals[0]!.aborted, { what: 'the abort on instance A', timeoutMs: 2000 });
  await a.bridge.idle();
  const c = (await a.bridge.getConversation(conversation.id))!;
  expect(c.messages.filter((m) => m.author.role === 'agent')).toEqual([]);
  expect(channelA.texts(conversation.id)).toEqual(['Dana from our team has joined the conversation.']);
});

it('racing commits from both instances lose nothing, and the claim ends with exactly one owner', async () => {
  const { a, b } = await twoInstances();
  const { conversation } = await a.bridge.customerMessage({ origin: 'api', customer: { id: 'c2' }, text: 'I want to talk to a person' });
  const id = conversation.id;
  const swallow = (p: Promise<unknown>) => p.catch((err) => (err instanceof BridgeError ? err : Promise.reject(err)));
  // Notes, customer messages and claims from both instances at once.
  const results = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => swallow((i % 2 ? a : b).bridge.operatorMessage({ conversationId: id, operator: SAM, text: `// note ${i}` }))),
    ...Array.from({ length: 10 }, (_, i) => swallow((i % 2 ? b : a).bridge.customerMessage({ conversationId: id, origin: 'api', customer: { id: 'c2' }, text: `customer ${i}` }))),
    ...[DANA, SAM, DANA, SAM].map((operator, i) => swallow((i % 2 ? a : b).bridge.claim({ conversationId: id, operator }))),
  ]);
  const claims = results.slice(30);
  expect(claims.filter((r) => !(r instanceof Error))).toHaveLength(1);
  expect(claims.filter((r) => r instanceof AlreadyClaimedError)).toHaveLength(3);

  const c = (await b.bridge.getConversation(id))!;
  const texts = c.messages.map((m) => m.text);
  for (let i = 0; i < 20; i++) expect(texts).toContain(`note ${i}`);
  for (let i = 0; i < 10; i++) expect(texts).toContain(`customer ${i}`);
  expect(c.state).toBe('human');
  expect(c.history.filter((h) => h.reason === 'claim')).toHaveLength(1);
  expect(await a.bridge.conversationsHeldBy(c.owner!.id)).toHaveLength(1);
  // Every commit bumped the version once: nothing was overwritten.
  expect(new Set(c.messages.map((m) => m.id)).size).toBe(c.messages.length);
});
