/**
 * Several instances on one Redis, each running the console: a sign-in on one works on the other,
 * what is committed on one shows on the other's screens through the change feed, and a private
 * notice delivered by one instance reaches its person's socket on the other.
 */
import { afterAll, expect, it } from 'vitest';
import { openRedisStore } from '../../src/store/redis.ts';
import { waitFor } from '../support/harness.ts';
import { startConsole, type ConsoleRig } from './support.ts';

const rigs: ConsoleRig[] = [];
afterAll(async () => {
  for (const rig of rigs.reverse()) await rig.close();
});

it('one inbox across instances: sessions, live rows, claims and private notices', { timeout: 30_000 }, async () => {
  const namespace = `console${Date.now()}`;
  const a = await startConsole({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }) });
  // B does no delivery work: whatever its screens show came through the store and its change feed.
  const b = await startConsole({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }), startWorkers: false });
  rigs.push(a, b);

  // Sam signs in on A; his browser's next request lands on B with the same cookie.
  const sam = (await a.signIn('sam')).at(b.baseUrl);
  expect((await sam.get('session')).status).toBe(200);
  await sam.connect();
  const dana = await a.signIn('dana');

  const { conversation } = await a.bridge.customerMessage({ origin: 'api', customer: { id: 'c1', name: 'Ada' }, text: 'I want to talk to a human' });
  await sam.waitRow(conversation.id, (r) => r.state === 'waiting', 'the waiting row on the other instance');

  expect((await dana.act(conversation.id, 'claim')).status).toBe(200);
  await sam.waitRow(conversation.id, (r) => r.owner?.name === 'Dana Scully', "Dana's claim on the other instance");

  // Sam replies on B without holding it: A's worker delivers the notice; B's socket gets it.
  expect((await sam.act(conversation.id, 'reply', { text: 'I can take this one' })).body.delivered).toBe(false);
  await a.settle();
  const started = Date.now();
  const notice = await waitFor(() => sam.notices()[0], { what: 'the notice on the other instance', timeoutMs: 8000 });
  expect(notice).toContain('Dana Scully holds');
  // Other instances look for notices every 2 s.
  expect(Date.now() - started).toBeLessThan(5000);
});
