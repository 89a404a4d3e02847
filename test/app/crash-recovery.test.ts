/**
 * Agent turns are durable work: a customer message committed but not yet answered when the
 * process is killed (kill -9, no shutdown) is answered after the restart, exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.ts';
import { chat, startChatEmulator } from '../emulators/openai-chat.ts';
import { waitFor } from '../support/harness.ts';
import { freePort } from '../support/redis-process.ts';
import { isMessage, VisitorSocket } from '../webchat/support.ts';

const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function startInstance(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: root, env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', ...env }, stdio: 'ignore' });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${env.PORT}/healthz`).catch(() => undefined))?.ok, { timeoutMs: 30_000, what: 'the instance to be ready' });
  return child;
}

it('a customer message left unanswered by a kill -9 is answered after the restart, once', { timeout: 90_000 }, async () => {
  const model = await startChatEmulator();
  // The first model call never answers in time: the process dies while it is in flight.
  model.enqueue({ ...chat.reply('too late'), delayMs: 60_000 }, chat.reply('Your order A1002 ships tomorrow.'));
  const port = await freePort();
  const env = { PORT: String(port), HOST: '127.0.0.1', STORE_URL: join(dir, 'bridge.sqlite'), OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: model.baseURL, DELIVERY_LEASE_MS: '3000' };
  let child = await startInstance(env);
  try {
    const session = (await (await fetch(`http://127.0.0.1:${port}/webchat/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { token: string };
    const socket = await VisitorSocket.open(`ws://127.0.0.1:${port}/webchat/ws`);
    socket.send({ type: 'hello', token: session.token });
    await socket.ready();
    socket.say('When does order A1002 ship?');
    await model.waitForRequests(1);
    // The first message created the conversation; the socket holds its id and the current token.
    const conversationId = await waitFor(() => socket.conversationId(), { what: 'the conversation id' });
    const token = socket.token() ?? session.token;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));

    child = await startInstance(env);
    // The restarted instance runs the turn again (the lease of the dead one expires) and answers.
    const again = await VisitorSocket.open(`ws://127.0.0.1:${port}/webchat/ws`);
    again.send({ type: 'hello', token });
    await again.ready();
    await waitFor(() => again.messages().some((f) => f.text === 'Your order A1002 ships tomorrow.'), { timeoutMs: 60_000, what: 'the answer after the restart' });
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));

    const store = await openStore(env.STORE_URL);
    const stored = (await store.getConversation(conversationId))!;
    await store.close();
    const answers = stored.messages.filter((m) => m.author.role === 'agent').map((m) => m.text);
    expect(answers).toEqual(['Your order A1002 ships tomorrow.']);
    expect(again.frames.filter(isMessage).filter((f) => f.text === 'Your order A1002 ships tomorrow.')).toHaveLength(1);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await model.close();
  }
});
