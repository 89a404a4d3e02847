/** A scripted agent for Teams tests: escalates with two options on a keyword, otherwise answers "noted". */
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import { ScriptedAgent } from '../support/harness.ts';

/**
 * Escalates (Approve refund / Offer credit) when the customer's latest message matches `escalateOn`
 * and no hand-back came after it; otherwise replies "noted".
 */
export function optionsAgent(escalateOn: RegExp, summary?: string): ScriptedAgent {
  return new ScriptedAgent(({ conversation }): AgentTurnResult => {
    const messages = conversation.messages;
    const lastCustomer = messages.findLastIndex((m) => m.author.role === 'customer');
    const handedBack = messages.findLastIndex((m) => m.handback) > lastCustomer;
    if (!handedBack && escalateOn.test(messages[lastCustomer]?.text ?? '')) {
      return {
        kind: 'escalate',
        trigger: 'agent_tool',
        reason: 'Refund over the limit',
        actionsTaken: [],
        request: {
          ...(summary ? { summary } : {}),
          pendingQuestion: 'Approve the refund or offer credit?',
          options: [
            { id: 'approve_refund', label: 'Approve refund', risk: 'high' },
            { id: 'offer_credit', label: 'Offer credit', risk: 'low' },
          ],
        },
      };
    }
    return { kind: 'reply', text: 'noted', actionsTaken: [] };
  });
}
