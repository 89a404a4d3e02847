/**
 * Webhooks and redaction through the bridge itself, once bridge.ts and commit.ts carry the wiring
 * (`webhooks` option, `redactedWorkspace`, the `webhooks` routing). Skipped until then.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { BridgeOptions } from '../../src/bridge.ts';
import { webhookConfigFromEnv } from '../../src/delivery/webhooks.ts';
import { createTestBridge, DANA, type TestBridge } from '../support/harness.ts';
import { MemoryWorkspace } from '../support/memory-ports.ts';
import { startReceiver, type Receiver } from './receiver.ts';

const SECRET = 'whsec_0123456789abcdef0123456789abcdef';
const source = (path: string) => readFileSync(new URL(`../../src/${path}`, import.meta.url), 'utf8');
const wired = source('bridge.ts').includes('WebhookDestination') && source('engine/commit.ts').includes('WEBHOOKS');

describe.skipIf(!wired)('webhooks wired into the bridge', () => {
  let t: TestBridge | undefined;
  let receiver: Receiver | undefined;
  afterEach(async () => {
    await t?.close();
    await receiver?.close();
  });

  it('every ownership change and message reaches the receiver once, in order, redacted; workspaces get redacted copies', async () => {
    receiver = await startReceiver(SECRET);
    let failures = 0;
    receiver.answerWith(() => (failures++ < 3 ? 503 : 200));
    const workspace = new MemoryWorkspace('test');
    const webhooks = webhookConfigFromEnv({ WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET })!;
    t = await createTestBridge({ workspaces: [workspace], bridgeOptions: { webhooks } as unknown as Partial<BridgeOptions> });
    const { bridge } = t;
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer: { id: 'c1' }, text: 'Card 4242 4242 4242 4242 was charged twice, I want a human' });
    await bridge.claim({ conversationId: conversation.id, operator: DANA });
    await bridge.close({ conversationId: conversation.id, operator: DANA });
    await bridge.idle();

    const events = receiver.accepted();
    expect(events.map((e) => e.type)).toEqual([
      'message.created',
      'conversation.escalated',
      'message.created',
      'message.created',
      'conversation.claimed',
      'message.created',
      'message.created',
      'conversation.closed',
      'message.created',
      'message.created',
    ]);
    const seqs = events.map((e) => Number(e.id.split(':').at(-1)));
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect([...receiver.acceptedCounts().values()].every((n) => n === 1)).toBe(true);
    const raw = receiver.requests.map((r) => r.raw).join('\n');
    expect(raw).not.toContain('4242 4242 4242 4242');
    expect(raw).toContain('[card •••• 4242]');
    expect(JSON.stringify(workspace.mirrored)).not.toContain('4242 4242 4242 4242');
    expect(workspace.mirrored[0]!.message.text).toBe('Card [card •••• 4242] was charged twice, I want a human');
    // The customer's and the agent's side keep the original.
    expect((await bridge.getConversation(conversation.id))!.messages[0]!.text).toContain('4242 4242 4242 4242');
  });
});
