/**
 * The delivery core as people see it: destinations do not wait on each other, a 429 holds only
 * its own conversation, a refusal moves on, a briefing that cannot be posted is never silent.
 */
import { expect, it } from 'vitest';
import { PermanentDeliveryError, RetryLaterError } from '../../src/delivery/outcome.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import type { DeliveryAttempt, Workspace } from '../../src/ports.ts';
import { MemoryChannel, MemoryWorkspace } from '../support/memory-ports.ts';
import { createTestBridge, waitFor, workLog } from '../support/harness.ts';

/** A workspace whose behaviour the test sets per call. */
class FlakyWorkspace implements Workspace {
  readonly name = 'flaky';
  readonly posted: Array<{ conversationId: string; text: string; attempt: number }> = [];
  readonly attempts: Array<{ conversationId: string; key: string; count: number }> = [];
  behaviour: (conversation: Conversation, message: Message) => void = () => {};
  briefing: () => void = () => {};
  async mirror(c: Conversation, m: Message, attempt?: DeliveryAttempt) {
    this.attempts.push({ conversationId: c.id, key: attempt!.key, count: attempt!.count });
    this.behaviour(c, m);
    this.posted.push({ conversationId: c.id, text: m.text, attempt: attempt!.count });
  }
  async postBriefing() {
    this.briefing();
  }
  async ownershipChanged(_c: Conversation, _h: HistoryEntry) {}
  async notifyOperator(_o: Operator, _t: string) {}
}

it('the customer gets the agent reply while the workspace is down, and the thread fills in, in order, once it is back', async () => {
  const channel = new MemoryChannel('api');
  const workspace = new FlakyWorkspace();
  let down = true;
  workspace.behaviour = () => {
    if (down) throw new Error('503 from the workspace');
  };
  const t = await createTestBridge({ channels: [channel], workspaces: [workspace] });
  const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'What are your opening hours?' });
  await waitFor(() => channel.texts(conversation.id).length === 1, { what: 'the agent reply to reach the customer' });
  expect(workspace.posted).toEqual([]);
  down = false;
  await t.bridge.idle();
  const c = (await t.bridge.getConversation(conversation.id))!;
  expect(workspace.posted.map((p) => p.text)).toEqual(c.messages.map((m) => m.text));
  // Retried under the same key, with the attempt count rising: what lets a real workspace look before reposting.
  const first = workspace.attempts.filter((a) => a.key === workspace.attempts[0]!.key);
  expect(first.map((a) => a.count)).toEqual(first.map((_, i) => i + 1));
  expect(first.length).toBeGreaterThan(1);
  await t.close();
});

it('an API conversation with no channel to push to makes no customer work: it is read over the API', async () => {
  const workspace = new MemoryWorkspace('slack');
  const t = await createTestBridge({ workspaces: [workspace] });
  const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'What are your opening hours?' });
  await t.bridge.idle();
  const c = (await t.bridge.getConversation(conversation.id))!;
  expect(c.messages.map((m) => m.author.role)).toEqual(['customer', 'agent']);
  expect(workLog(t.dir, conversation.id).filter((item) => item.to.includes('customer'))).toEqual([]);
  expect(workspace.mirrored.map((m) => m.message.text)).toEqual(c.messages.map((m) => m.text));
  await t.close();
});

it("a 429 on one conversation's thread holds only that conversation", async () => {
  const workspace = new FlakyWorkspace();
  // Customer a's thread answers 429 (its work may start the moment its message is committed).
  let held = 'a';
  workspace.behaviour = (c) => {
    if (c.customer.id === held) throw new RetryLaterError(3000);
  };
  const t = await createTestBridge({ workspaces: [workspace] });
  const slow = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'a' }, text: 'first customer' });
  const fast = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'b' }, text: 'second customer' });
  await waitFor(() => workspace.posted.some((p) => p.conversationId === fast.conversation.id), { what: "the other conversation's thread", timeoutMs: 1500 });
  expect(workspace.posted.some((p) => p.conversationId === slow.conversation.id)).toBe(false);
  held = '';
  await waitFor(() => workspace.posted.some((p) => p.conversationId === slow.conversation.id), { what: 'the held thread after Retry-After', timeoutMs: 6000 });
  await t.close();
});

it('a message the workspace refuses for good is skipped, and the ones after it still arrive', async () => {
  const workspace = new FlakyWorkspace();
  workspace.behaviour = (_c, m) => {
    if (m.text.includes('refused')) throw new PermanentDeliveryError('invalid_blocks');
  };
  const t = await createTestBridge({ workspaces: [workspace] });
  const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'this will be refused' });
  await t.bridge.customerMessage({ conversationId: conversation.id, origin: 'api', customer: { id: 'c' }, text: 'and this arrives' });
  await t.bridge.idle();
  expect(workspace.posted.map((p) => p.text)).toContain('and this arrives');
  expect(workspace.posted.map((p) => p.text)).not.toContain('this will be refused');
  await t.close();
});

it('a briefing that keeps failing tells the customer the truth once, notes it in the thread, and still arrives', async () => {
  const channel = new MemoryChannel('api');
  const workspace = new FlakyWorkspace();
  const watcher = new MemoryWorkspace('watch');
  let failures = 0;
  workspace.briefing = () => {
    if (failures++ < 7) throw new Error('Bot Connector 503');
  };
  const t = await createTestBridge({ channels: [channel], workspaces: [workspace, watcher] });
  const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want to talk to a person' });
  await t.bridge.idle();
  const texts = channel.texts(conversation.id);
  expect(texts[0]).toMatch(/^I'm connecting you with a person/);
  expect(texts.filter((x) => x.startsWith("We're having trouble reaching our team"))).toHaveLength(1);
  expect(watcher.mirrored.map((m) => m.message.text)).toContain('The briefing could not be posted to flaky yet; still retrying.');
  expect(failures).toBe(8); // seven failures, then the briefing went out
  await t.close();
});

it('delivery is independent per destination: a stuck customer channel does not hold the thread', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const channel = new (class extends MemoryChannel {
    override async deliver(c: Conversation, m: Message) {
      await gate;
      return super.deliver(c, m);
    }
  })('api');
  const workspace = new MemoryWorkspace('test');
  const t = await createTestBridge({ channels: [channel], workspaces: [workspace] });
  const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'What are your opening hours?' });
  await waitFor(() => workspace.mirrored.some((m) => m.message.author.role === 'agent'), { what: 'the agent reply in the thread' });
  expect(channel.texts(conversation.id)).toEqual([]);
  release();
  await t.bridge.idle();
  expect(channel.texts(conversation.id)).toHaveLength(1);
  await t.close();
});

it("a platform's retry of a committed command changes nothing, and a retry of one that never committed goes through", async () => {
  const channel = new MemoryChannel('api');
  const t = await createTestBridge({ channels: [channel] });
  const dana = { id: 'test:dana', name: 'Dana', workspace: 'test' };
  const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want to talk to a person' });
  await t.bridge.claim({ conversationId: conversation.id, operator: dana, idempotencyKey: 'evt-claim' });
  const again = await t.bridge.claim({ conversationId: conversation.id, operator: dana, idempotencyKey: 'evt-claim' });
  expect(again.owner?.id).toBe(dana.id);
  await t.bridge.returnToAgent({ conversationId: conversation.id, operator: dana, note: 'done', idempotencyKey: 'evt-return' });
  await t.bridge.returnToAgent({ conversationId: conversation.id, operator: dana, note: 'done', idempotencyKey: 'evt-return' });
  await t.bridge.idle();
  const c = (await t.bridge.getConversation(conversation.id))!;
  expect(c.history.map((h) => h.reason)).toEqual(['escalate', 'claim', 'return']);
  expect(channel.texts(conversation.id).filter((x) => x.includes('has joined'))).toHaveLength(1);
  // A key whose command was refused (nothing committed) does not block a later, valid use.
  await expect(t.bridge.returnToAgent({ conversationId: conversation.id, operator: dana, idempotencyKey: 'evt-x' })).rejects.toThrow();
  await t.close();
});

it("an agent turn's answer gives the agent's lease back in its own commit: no separate write finishes the turn", async () => {
  const t = await createTestBridge({ channels: [new MemoryChannel('api')] });
  // Count the work writes the agent's worker makes on a real store.
  const finishes: string[] = [];
  const work = t.store.work;
  const finish = work.finish.bind(work);
  work.finish = (lease, done, retryAt) => {
    finishes.push(lease.destination);
    return finish(lease, done, retryAt);
  };
  const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'What are your opening hours?' });
  await t.bridge.idle();
  await t.bridge.customerMessage({ conversationId: conversation.id, origin: 'api', customer: { id: 'c' }, text: 'And on Sundays?' });
  await t.bridge.idle();
  const c = (await t.bridge.getConversation(conversation.id))!;
  expect(c.messages.map((m) => m.author.role)).toEqual(['customer', 'agent', 'customer', 'agent']);
  expect(finishes.filter((d) => d === 'agent')).toEqual([]);
  // Nothing left leased or due for the agent: the next message is answered at once, as the second was.
  expect(await t.store.work.nextDue('agent')).toBeUndefined();
  await t.close();
});
