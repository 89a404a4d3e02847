/**
 * The agent's turn starts while the customer's message is still being committed
 * (`AgentTurns.speculate`): the model is asked before the commit is durable, but nothing follows
 * from its answer (a tool call, a reply) until the commit is stored and the worker takes the turn.
 * Any other outcome of the commit discards the early turn and aborts it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentTurnInput } from '../../src/agent/agent.ts';
import { OpenAIAgent } from '../../src/agent/openai-agent.ts';
import { StoreUnavailableError, VersionConflictError } from '../../src/errors.ts';
import { BridgeMetrics } from '../../src/metrics.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { Commit, Store } from '../../src/store/store.ts';
import { chat, startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { createTestBridge, ScriptedAgent, waitFor, type TestBridge } from '../support/harness.ts';
import { MemoryChannel } from '../support/memory-ports.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const customer = { id: 'visitor-1', name: 'Ana' };

/** A real SQLite store whose commits of a customer's message wait for the test (a slow disk), or fail once. */
async function customerCommitsControlled(): Promise<{ store: Store; held: Array<() => void>; failNext?: () => Error }> {
  const inner = await openSqliteStore(join(mkdtempSync(join(tmpdir(), 'early-turn-')), 'bridge.sqlite'));
  const control: { store: Store; held: Array<() => void>; failNext?: () => Error } = { store: inner, held: [] };
  control.store = new Proxy(inner, {
    get(target, key) {
      if (key === 'commitClaiming') {
        return async (commit: Commit) => {
          if (commit.appended.some((m) => m.author.role === 'customer')) {
            const fail = control.failNext;
            control.failNext = undefined;
            if (fail) throw fail();
            await new Promise<void>((resolve) => control.held.push(resolve));
          }
          return target.commitClaiming(commit);
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return control;
}

describe('an agent turn started while the customer message is committed', () => {
  let t: TestBridge | undefined;
  let model: ChatEmulator | undefined;
  afterEach(async () => {
    await t?.close();
    await model?.close();
    t = undefined;
    model = undefined;
  });

  it('asks the model before the commit is stored, once, and answers only after it is', async () => {
    model = await startChatEmulator();
    model.enqueue(chat.reply('We open at nine.'));
    const control = await customerCommitsControlled();
    const channel = new MemoryChannel('webchat');
    const agent = new OpenAIAgent({ apiKey: 'sk-test', baseURL: model.baseURL, maxRetries: 0, brandName: 'Acme' });
    t = await createTestBridge({ agent, store: control.store, channels: [channel] });

    const sent = t.bridge.customerMessage({ origin: 'webchat', customer, text: 'When do you open?' });
    await waitFor(() => model!.requests.length === 1, { what: 'the model request while the commit is held' });
    expect(control.held).toHaveLength(1);
    expect(model.lastRequest().messages.at(-1)).toEqual({ role: 'user', content: 'When do you open?' });
    // The answer is back, but the message is not stored yet: nothing reaches the customer.
    await new Promise((r) => setTimeout(r, 50));
    expect(channel.delivered).toEqual([]);
    expect(await t.store.indexMembers('state:agent')).toEqual([]);

    control.held.shift()!();
    const { conversation } = await sent;
    await t.bridge.idle();
    expect(channel.texts(conversation.id)).toEqual(['We open at nine.']);
    expect(model.requests).toHaveLength(1);
  });

  it('holds a tool call until the commit is stored and the worker has taken the turn', async () => {
    const control = await customerCommitsControlled();
    const events: string[] = [];
    const agent = new ScriptedAgent(async ({ authorize }: AgentTurnInput) => {
      events.push('asked');
      await authorize({ tool: 'lookup_order', args: { orderId: 'A1' } });
      events.push('tool ran');
      return { kind: 'reply', text: 'Order A1 is on its way.', actionsTaken: [] };
    });
    const channel = new MemoryChannel('api');
    t = await createTestBridge({ agent, store: control.store, channels: [channel] });

    const sent = t.bridge.customerMessage({ origin: 'api', customer, text: 'Where is order A1?' });
    await waitFor(() => events.includes('asked'), { what: 'the early turn' });
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual(['asked']);

    control.held.shift()!();
    const { conversation } = await sent;
    await t.bridge.idle();
    expect(events).toEqual(['asked', 'tool ran']);
    const c = (await t.bridge.getConversation(conversation.id))!;
    expect(c.messages.map((m) => [m.author.role, m.text])).toEqual([
      ['customer', 'Where is order A1?'],
      ['agent', 'Order A1 is on its way.'],
    ]);
  });

  it('a commit that lost a race discards its early turn: the turn runs on what was stored, and answers once', async () => {
    const control = await customerCommitsControlled();
    const agent = new ScriptedAgent(({ conversation }) => ({ kind: 'reply', text: `Answer to: ${conversation.messages.at(-1)!.text}`, actionsTaken: [] }));
    const channel = new MemoryChannel('api');
    const metrics = new BridgeMetrics(control.store, () => []);
    t = await createTestBridge({ agent, store: control.store, channels: [channel], bridgeOptions: { metrics } });
    const first = t.bridge.customerMessage({ origin: 'api', customer, text: 'Hello' });
    await waitFor(() => control.held.length === 1);
    control.held.shift()!();
    const { conversation } = await first;
    await t.bridge.idle();
    const callsBefore = agent.calls.length;

    control.failNext = () => new VersionConflictError(conversation.id, conversation.version, conversation.version + 1);
    const second = t.bridge.customerMessage({ conversationId: conversation.id, origin: 'api', customer, text: 'Are you there?' });
    await waitFor(() => control.held.length === 1, { what: 'the second attempt' });
    control.held.shift()!();
    await second;
    await t.bridge.idle();

    // Two early turns were started (one per attempt); the first was aborted, the second answered.
    const calls = agent.calls.slice(callsBefore);
    expect(calls).toHaveLength(2);
    expect(calls[0]!.signal.aborted).toBe(true);
    expect(calls[1]!.signal.aborted).toBe(false);
    expect(channel.texts(conversation.id)).toEqual(['Answer to: Hello', 'Answer to: Are you there?']);
    // /metrics counts the wasted model call.
    const counted = await metrics.registry.getSingleMetricAsString('handoff_agent_early_turns_total');
    expect(counted).toContain('handoff_agent_early_turns_total{outcome="taken"} 2');
    expect(counted).toContain('handoff_agent_early_turns_total{outcome="discarded"} 1');
  });

  it('a commit that fails discards its early turn: no answer for a message that was never stored', async () => {
    const control = await customerCommitsControlled();
    const agent = new ScriptedAgent(() => ({ kind: 'reply', text: 'Hi!', actionsTaken: [] }));
    const channel = new MemoryChannel('api');
    t = await createTestBridge({ agent, store: control.store, channels: [channel] });
    control.failNext = () => new StoreUnavailableError('the disk is gone');

    await expect(t.bridge.customerMessage({ origin: 'api', customer, text: 'Hello?' })).rejects.toThrow(StoreUnavailableError);
    await t.bridge.idle();
    expect(agent.calls).toHaveLength(1);
    expect(agent.calls[0]!.signal.aborted).toBe(true);
    expect(channel.delivered).toEqual([]);
  });
});
