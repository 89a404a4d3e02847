/**
 * The offline FAQ agent, plus what a model would do with a refund over the policy limit: look the
 * order up, check eligibility, and escalate with a briefing (so the console shows a full card with
 * options). Everything else, hand-backs included, is the offline agent's own answer.
 */
import type { Agent, AgentTurnInput, AgentTurnResult } from '../../src/agent/agent.ts';
import { offlineAgent } from '../support/harness.ts';

export function demoAgent(): Agent {
  const offline = offlineAgent();
  return {
    name: 'demo',
    async respond(input: AgentTurnInput): Promise<AgentTurnResult> {
      const messages = input.conversation.messages;
      const last = messages.findLast((m) => m.author.role === 'customer');
      const handback = messages.findLast((m) => m.handback);
      const fresh = last && (!handback || last.at > handback.at);
      if (fresh && /refund/i.test(last.text) && /\$\s?\d{3,}/.test(last.text)) {
        return {
          kind: 'escalate',
          trigger: 'refund_threshold',
          reason: 'Refund of 250 USD is over the 100 USD limit an agent may approve',
          actionsTaken: [
            { tool: 'lookup_order', input: { orderId: 'A-1001' }, output: { status: 'delivered', total: 250 }, ok: true },
            { tool: 'check_refund_eligibility', input: { orderId: 'A-1001' }, output: { eligible: true, reason: 'damaged on arrival' }, ok: true },
          ],
          request: {
            summary: 'Ada ordered a standing desk (A-1001, 250 USD) that arrived with a cracked leg. She wants her money back rather than a replacement. The order is eligible; the amount is over the agent limit.',
            intent: 'Refund a damaged order',
            pendingQuestion: 'Approve a 250 USD refund for order A-1001, or offer store credit?',
            priority: 'high',
            sentiment: 'frustrated',
            constraints: ['Refunds over 100 USD need a person', 'Refunds cannot be undone'],
          },
        };
      }
      return offline.respond(input);
    },
  };
}
