/**
 * Several instances on one Redis: a customer's socket may sit on one instance while the operator's
 * reply is committed (and delivered) on another. The change feed brings it to the socket at once.
 */
import { afterAll, expect, it } from 'vitest';
import { openRedisStore } from '../../src/store/redis.ts';
import { DANA } from '../support/harness.ts';
import { startWebChat, type WebChatRig } from './support.ts';

const rigs: WebChatRig[] = [];
afterAll(async () => {
  for (const rig of rigs) await rig.close();
});

it('an operator reply committed on one instance reaches a socket on another without polling', async () => {
  const namespace = `wc${Date.now()}`;
  const a = await startWebChat({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }) });
  // B runs no workers: whatever its socket shows was delivered by A and reached B through the change feed.
  const b = await startWebChat({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }), startWorkers: false });
  rigs.push(a, b);

  const session = await b.session();
  const socket = await b.connect(session.token);
  await socket.ready();
  socket.say('I want to talk to a person');
  await socket.message((f) => f.text.startsWith("I'm connecting you with a person"), 'the escalation notice');
  const conversationId = socket.conversationId()!;

  await a.bridge.claim({ conversationId, operator: DANA });
  const latencies: number[] = [];
  for (let i = 0; i < 5; i++) {
    const sent = Date.now();
    await a.bridge.operatorMessage({ conversationId, operator: DANA, text: `reply ${i}` });
    await socket.message((f) => f.text === `reply ${i}`, `reply ${i} on the other instance`);
    latencies.push(Date.now() - sent);
  }
  // Shown in order, once each, and far sooner than any polling interval would allow.
  const replies = socket.messages().filter((f) => f.text.startsWith('reply ')).map((f) => f.text);
  expect(replies).toEqual(['reply 0', 'reply 1', 'reply 2', 'reply 3', 'reply 4']);
  expect(Math.max(...latencies)).toBeLessThan(2000);
});

it('a conversation closed on one instance ends its socket on another, and its token no longer works there', async () => {
  const namespace = `wc${Date.now()}close`;
  const a = await startWebChat({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }) });
  const b = await startWebChat({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }), startWorkers: false });
  rigs.push(a, b);

  const { socket, conversationId } = await b.started('Thanks, that was all');
  await a.bridge.close({ conversationId });
  await socket.message((f) => f.notice === 'closed', 'the closed notice on the other instance');
  expect((await socket.closedWith()).code).toBe(4010);
  const again = await a.connect(socket.token()!);
  expect(await again.next((f) => f.type === 'error', 'refusal')).toMatchObject({ code: 'conversation_closed' });
});
