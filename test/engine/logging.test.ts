import { Writable } from 'node:stream';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { conversationLogger, createLogger } from '../../src/log.ts';
import type { Conversation, Message } from '../../src/model.ts';
import type { Workspace } from '../../src/ports.ts';
import { createTestBridge } from '../support/harness.ts';

it('lines about a conversation carry its id and ticket once, the adapters\' included', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { raw.push(String(chunk)); lines.push(JSON.parse(String(chunk))); done(); } });
  const logger = pino({ level: 'info' }, sink);
  // An adapter that logs from inside its port call, with its own logger and the conversation.
  const adapterLog = logger.child({ adapter: 'test' });
  const workspace: Workspace = {
    name: 'test',
    async mirror(c: Conversation, m: Message) { await new Promise((r) => setTimeout(r, 1)); conversationLogger(adapterLog, c).info({ messageId: m.id }, 'mirrored'); },
    async postBriefing() {},
    async ownershipChanged() {},
    async notifyOperator() {},
  };
  const t = await createTestBridge({ workspaces: [workspace], bridgeOptions: { logger } });
  const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want to talk to a human' });
  await t.bridge.idle();
  await t.close();
  const mirrored = lines.filter((l) => l.msg === 'mirrored');
  expect(mirrored.length).toBeGreaterThan(0);
  for (const line of mirrored) expect(line).toMatchObject({ conversationId: conversation.id, ticket: conversation.ticket, adapter: 'test' });
  const changed = lines.find((l) => l.msg === 'ownership changed')!;
  expect(changed).toMatchObject({ conversationId: conversation.id, ticket: conversation.ticket, to: 'waiting' });
  // No duplicated keys in the raw line: the ids appear once.
  for (const line of raw.filter((l) => l.includes('"ownership changed"') || l.includes('"mirrored"'))) expect(line.match(/"conversationId"/g)).toHaveLength(1);
});

it('a conversation logger is made once per conversation and adds its ids to its own lines only', () => {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  const logger = createLogger({ level: 'info', destination });
  const one = conversationLogger(logger, { id: 'conv_1', ticket: 'HB-1' });
  expect(conversationLogger(logger, { id: 'conv_1', ticket: 'HB-1' })).toBe(one);
  expect(conversationLogger(logger, { id: 'conv_2', ticket: 'HB-2' })).not.toBe(one);
  one.info('inside');
  logger.info('outside');
  expect(lines.find((l) => l.msg === 'inside')).toMatchObject({ conversationId: 'conv_1', ticket: 'HB-1', service: 'handoff-bridge' });
  expect(lines.find((l) => l.msg === 'outside')).not.toHaveProperty('conversationId');
});
