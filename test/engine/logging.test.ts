import { Writable } from 'node:stream';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { createLogger, logContext, withConversationContext } from '../../src/log.ts';
import type { Conversation, Message } from '../../src/model.ts';
import type { Workspace } from '../../src/ports.ts';
import { createTestBridge } from '../support/harness.ts';

it('lines written while a conversation is worked on carry its id and ticket, adapters included', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { raw.push(String(chunk)); lines.push(JSON.parse(String(chunk))); done(); } });
  const logger = pino({ level: 'info', mixin: () => logContext.getStore() ?? {} }, sink);
  // An adapter that logs from inside its port call, with its own plain logger.
  const adapterLog = logger.child({ adapter: 'test' });
  const workspace: Workspace = {
    name: 'test',
    async mirror(_c: Conversation, m: Message) { await new Promise((r) => setTimeout(r, 1)); adapterLog.info({ messageId: m.id }, 'mirrored'); },
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
  for (const line of raw.filter((l) => l.includes('"ownership changed"'))) expect(line.match(/"conversationId"/g)).toHaveLength(1);
});

it('the production logger adds the conversation context itself, and nothing outside it', () => {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  const logger = createLogger({ level: 'info', destination });
  withConversationContext({ id: 'conv_1', ticket: 'HB-1' }, () => logger.info('inside'));
  logger.info('outside');
  expect(lines.find((l) => l.msg === 'inside')).toMatchObject({ conversationId: 'conv_1', ticket: 'HB-1', service: 'handoff-bridge' });
  expect(lines.find((l) => l.msg === 'outside')).not.toHaveProperty('conversationId');
});
