/**
 * Several agents on the loopback Chat Completions emulator, as the multi-agent tests use them:
 * triage hands billing questions to billing (typed input, history since the handoff) and
 * deliveries to shipping (a nested summary); billing can hand back to triage.
 */
import { z } from 'zod';
import { createDemoShop } from '../../src/agent/demo-data.ts';
import type { MultiAgentConfig } from '../../src/agent/multi-agent-config.ts';
import { MultiAgent } from '../../src/agent/multi-agent.ts';
import { demoTools } from '../../src/agent/tools.ts';

export const TRIAGE_BILLING_SHIPPING: MultiAgentConfig = {
  mode: 'handoffs',
  defaultAgent: 'triage',
  agents: [
    {
      name: 'triage',
      description: 'First contact',
      instructions: 'Find out what the customer needs and hand billing questions to billing.',
      tools: ['lookup_order'],
      handoffs: [
        { to: 'billing', description: 'Charges and refunds.', inputFilter: 'since_last_handoff', input: z.object({ reason: z.string().min(1), order_id: z.string().optional() }) },
        { to: 'shipping', inputFilter: 'nested_summary' },
      ],
    },
    { name: 'billing', description: 'Charges and refunds', instructions: 'You handle charges and refunds.', model: 'billing-model', tools: ['check_refund_eligibility', 'issue_refund'], handoffs: [{ to: 'triage' }] },
    { name: 'shipping', instructions: 'You handle deliveries.', model: 'shipping-model', tools: ['lookup_order'] },
  ],
};

/** `config`'s agents on the emulator at `baseURL`, with the demo shop's tools and no retries. */
export function emulatedAgents(baseURL: string, config: MultiAgentConfig = TRIAGE_BILLING_SHIPPING): MultiAgent {
  return new MultiAgent(config, { apiKey: 'sk-test', baseURL, tools: demoTools(createDemoShop()), maxRetries: 0, brandName: 'Acme' });
}
