/**
 * The request body encoded from kept pieces is exactly what `JSON.stringify` gives, whatever the
 * transcript holds, the first time and when its pieces come from the cache.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { buildChatMessages } from '../../src/agent/context.ts';
import { createDemoShop } from '../../src/agent/demo-data.ts';
import { encodeChatRequest } from '../../src/agent/request-body.ts';
import { demoTools, escalateToolDefinition, toolDefinition } from '../../src/agent/tools.ts';
import { deepFreeze } from '../../src/deep-freeze.ts';
import { agentSays, conversationWith, customerSays, dana, handbackMessage, operatorSays } from './fixtures.ts';

const tools = deepFreeze([...demoTools(createDemoShop()).map(toolDefinition), escalateToolDefinition(true)]);

const line = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('"quoted" \\ back\nslash', '\u2028\u2029', '<script>', '💳 4242'));
const message = fc.tuple(fc.constantFrom('customer', 'agent', 'operator', 'handback'), line).map(([who, text]) =>
  who === 'customer' ? customerSays(text) : who === 'agent' ? agentSays(text) : who === 'operator' ? operatorSays(text) : handbackMessage({ kind: 'return', by: dana, at: new Date(0).toISOString(), note: text, humanStretch: [{ role: 'operator', name: 'Dana', text, at: new Date(0).toISOString() }] }),
);

describe('the Chat Completions request body', () => {
  it('is byte for byte JSON.stringify of the request, with frozen (kept) and fresh pieces alike', () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 30 }), fc.boolean(), fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }), (messages, frozen, temperature) => {
        const conversation = conversationWith(frozen ? messages.map(deepFreeze) : messages);
        const request: ChatCompletionCreateParamsNonStreaming = { model: 'gpt-4o-mini', messages: buildChatMessages(conversation), tools, tool_choice: 'auto', temperature };
        expect(encodeChatRequest(request)).toBe(JSON.stringify(request));
        // Again, now from the kept pieces.
        expect(encodeChatRequest(request)).toBe(JSON.stringify(request));
      }),
      { numRuns: 200 },
    );
  });
});
