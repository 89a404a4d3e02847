/**
 * A permanent refusal is not a reason to post nothing. Slack refuses a message whose blocks hold
 * more than about 12,000 characters of text in total (`msg_blocks_too_long`), even when every
 * element is within its own limit. The briefing is budgeted to fit; if Slack still refuses it, a
 * smaller briefing takes its place (Claim still works), and text alone if even that is refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import { blocksTextLength, LIMITS } from '../../cards/slack/limits.ts';
import { ScriptedAgent } from '../support/harness.ts';
import { maximalRequest } from './envelopes.ts';
import { DANA, startSlackFixture, type SlackFixture } from './fixture.ts';

/** Escalates at once with the largest briefing an agent can ask for. */
function maximalAgent(): ScriptedAgent {
  return new ScriptedAgent(({ conversation }): AgentTurnResult =>
    conversation.history.length === 0
      ? { kind: 'escalate', trigger: 'agent_tool', reason: 'The customer needs a person', request: maximalRequest(), actionsTaken: [] }
      : { kind: 'reply', text: 'Noted.', actionsTaken: [] },
  );
}

describe('a briefing Slack would refuse for its size', () => {
  let f: SlackFixture;
  afterEach(async () => {
    await f?.close();
  });

  async function escalate() {
    f = await startSlackFixture({ agent: maximalAgent() });
    return f;
  }

  async function briefingOf(conversationId: string) {
    const copy = (await f.briefings(conversationId)).find((c) => c.place === 'thread')!;
    return { copy, message: f.emulator.message(copy.channel, copy.ts)! };
  }

  it('is posted whole when it is the largest the agent can ask for: its text is budgeted under the limit', async () => {
    await escalate();
    const conversation = await f.customerSays('I need a refund for A-1001');
    await f.settle();
    const { copy, message } = await briefingOf(conversation.id);
    expect(f.emulator.calls.filter((c) => c.error === 'msg_blocks_too_long')).toHaveLength(0);
    expect(blocksTextLength(message.blocks)).toBeLessThanOrEqual(LIMITS.messageBlocksText);
    expect(f.emulator.buttons(copy.channel, copy.ts)).toContain('briefing_option:option_4');
  });

  it('is replaced by a smaller briefing with Claim when Slack refuses it, and that one stays current', async () => {
    await escalate();
    // Slack's own count is undocumented: suppose it is stricter than our budget.
    f.emulator.blocksTextLimit = 2500;
    const conversation = await f.customerSays('I need a refund for A-1001');
    await f.settle();
    expect(f.emulator.calls.filter((c) => c.method === 'chat.postMessage' && c.error === 'msg_blocks_too_long')).toHaveLength(1);
    const { copy, message } = await briefingOf(conversation.id);
    const json = JSON.stringify(message.versions.at(-1));
    expect(json).toContain(conversation.ticket);
    expect(json).toContain('Pending question');
    expect(json).toContain('The full briefing did not fit in Slack');
    expect(f.emulator.buttons(copy.channel, copy.ts)).toEqual(['briefing_claim', 'briefing_return', 'briefing_close']);
    // One briefing in the thread, under the briefing's key.
    const keys = f.emulator.messages.filter((m) => m.metadata).map((m) => String(m.metadata!.event_payload.key));
    expect(keys.filter((k) => k.startsWith('briefing:'))).toEqual([`briefing:${conversation.id}:1:thread`]);

    // Claim works from it, and the update that follows is refused in full and made small again.
    expect(await f.click(conversation.id, DANA.userId, 'briefing_claim')).toBe(200);
    await f.settle();
    expect((await f.bridge.getConversation(conversation.id))!.owner?.name).toBe('Dana');
    expect(JSON.stringify(f.emulator.message(copy.channel, copy.ts)!.versions.at(-1))).toContain('Dana');
    expect(f.emulator.buttons(copy.channel, copy.ts)).toEqual(['briefing_return', 'briefing_close']);
  });

  it('falls back to text alone when even the smaller briefing is refused', async () => {
    await escalate();
    f.emulator.blocksTextLimit = 20;
    const conversation = await f.customerSays('I need a refund for A-1001');
    await f.settle();
    const { message } = await briefingOf(conversation.id);
    expect(message.blocks).toBeUndefined();
    expect(message.text).toContain(conversation.ticket);
    expect(message.text).toContain('The full briefing did not fit in Slack');
    expect(f.emulator.messages.filter((m) => m.metadata?.event_payload.key === `briefing:${conversation.id}:1:thread`)).toHaveLength(1);
  });
});
