import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AgentTool } from '../../src/agent/agent.ts';
import { createDemoShop } from '../../src/agent/demo-data.ts';
import { compactJsonSchema, defineTool, demoTools, escalateToolDefinition, ToolRegistry, toolDefinition, toolParametersJsonSchema } from '../../src/agent/tools.ts';
import { EscalateToolArgsSchema, escalateToolJsonSchema } from '../../src/envelope.ts';
import { ConfigError } from '../../src/errors.ts';
import { conversationWith } from './fixtures.ts';

const context = { conversation: conversationWith([]), signal: new AbortController().signal };

function toolsOver() {
  const shop = createDemoShop();
  const tools = new ToolRegistry(demoTools(shop));
  const run = (name: string, args: unknown) => {
    const tool = tools.get(name)!;
    return tool.run(tool.parameters.parse(args), context) as Promise<Record<string, unknown>>;
  };
  return { shop, run };
}

describe('the demo business tools', () => {
  it('look up an order whatever way the customer writes its number', async () => {
    const { run } = toolsOver();
    const order = await run('lookup_order', { order_id: ' #a1002 ' });
    expect(order).toMatchObject({ order_id: 'A1002', status: 'delivered', total: 270, currency: 'USD', customer: { name: 'Ana Souza' } });
  });

  it('tell the agent clearly when an order does not exist', async () => {
    const { run } = toolsOver();
    await expect(run('lookup_order', { order_id: 'Z999' })).rejects.toThrow('No order "Z999" exists. Ask the customer to check the order number');
  });

  it('refund only delivered orders inside the refund window', async () => {
    const { run } = toolsOver();
    expect(await run('check_refund_eligibility', { order_id: 'A1001' })).toMatchObject({ eligible: true, refundable_amount: 89 });
    expect(await run('check_refund_eligibility', { order_id: 'A1003' })).toMatchObject({ eligible: false, reason: expect.stringContaining('shipped') });
    expect(await run('check_refund_eligibility', { order_id: 'A1005' })).toMatchObject({ eligible: false, reason: expect.stringContaining('30-day refund window') });
  });

  it('never refund more than what is left on the order', async () => {
    const { run, shop } = toolsOver();
    expect(await run('issue_refund', { order_id: 'A1001', amount: 50, reason: 'damaged box' })).toMatchObject({ status: 'issued', amount: 50 });
    await expect(run('issue_refund', { order_id: 'A1001', amount: 50, reason: 'again' })).rejects.toThrow('Only 39 USD is refundable on order A1001');
    expect(shop.findOrder('A1001')!.refunds).toHaveLength(1);
  });

  it('change the address only before the order ships', async () => {
    const { run } = toolsOver();
    const address = { line1: '1 New St', city: 'Leeds', postalCode: 'LS2 7AA', country: 'gb' };
    expect(await run('update_shipping_address', { order_id: 'A1004', address })).toMatchObject({ status: 'updated', shipping_address: { country: 'GB' } });
    await expect(run('update_shipping_address', { order_id: 'A1003', address })).rejects.toThrow('already shipped');
  });

  it('keep every shop separate, so one conversation never sees another test run', async () => {
    const first = toolsOver();
    await first.run('issue_refund', { order_id: 'A1001', amount: 89, reason: 'broken' });
    const second = toolsOver();
    expect(await second.run('check_refund_eligibility', { order_id: 'A1001' })).toMatchObject({ eligible: true, refundable_amount: 89 });
  });
});

describe('the tool registry', () => {
  const noop = (name: string, parameters: z.ZodType = z.object({})): AgentTool =>
    defineTool({ name, description: 'x', parameters, run: async () => null });

  it('describes each tool to the model as a JSON Schema object', () => {
    const schema = toolParametersJsonSchema(demoTools().find((t) => t.name === 'issue_refund')!);
    expect(schema).toMatchObject({ type: 'object', required: ['order_id', 'amount', 'reason'], properties: { amount: { type: 'number' } } });
    expect(schema).not.toHaveProperty('$schema');
  });

  it('refuses a tool that takes the escalation tool name, a duplicate, or non-object arguments', () => {
    expect(() => new ToolRegistry([noop('escalate_to_human')])).toThrow(ConfigError);
    expect(() => new ToolRegistry([noop('a'), noop('a')])).toThrow('two tools are named "a"');
    expect(() => new ToolRegistry([noop('bad name!')])).toThrow('must be 1-64 letters');
    expect(() => new ToolRegistry([noop('s', z.string())])).toThrow('must take a zod object');
  });
});

describe('the tool schemas the model is sent', () => {
  const keys = (value: unknown, found = new Set<string>()): Set<string> => {
    if (Array.isArray(value)) value.forEach((v) => keys(v, found));
    else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) (found.add(k), keys(v, found));
    return found;
  };

  it('keep what constrains the answer and drop what does not', () => {
    const schema = compactJsonSchema(
      z.toJSONSchema(
        z.object({
          default: z.string().min(1).max(10).default('x').describe('a property named "default" is kept'),
          kind: z.enum(['a', 'b']).default('a'),
          code: z.string().min(2).regex(/^[A-Z]+$/),
          extra: z.record(z.string(), z.unknown()),
          strict: z.strictObject({ n: z.number().positive() }),
        }),
        { io: 'input' },
      ),
    );
    expect(schema).toEqual({
      type: 'object',
      properties: {
        default: { type: 'string', maxLength: 10, description: 'a property named "default" is kept' },
        kind: { type: 'string', enum: ['a', 'b'] },
        code: { type: 'string', minLength: 2, pattern: '^[A-Z]+$' },
        extra: { type: 'object', propertyNames: { type: 'string' } },
        strict: { type: 'object', properties: { n: { type: 'number', exclusiveMinimum: 0 } }, required: ['n'], additionalProperties: false },
      },
      required: ['code', 'extra', 'strict'],
    });
  });

  it('are derived once per tool and shared by every request', () => {
    const [lookup] = demoTools();
    const sameArgs = defineTool({ name: 'other', description: 'x', parameters: lookup!.parameters, run: async () => null });
    expect(toolParametersJsonSchema(lookup!)).toBe(toolParametersJsonSchema(sameArgs));
    expect(toolDefinition(lookup!)).toBe(toolDefinition(lookup!));
    expect(Object.isFrozen(toolDefinition(lookup!).function.parameters)).toBe(true);
    expect(escalateToolDefinition()).toBe(escalateToolDefinition());
  });

  it('escalate_to_human: the briefing without what the runtime fills in, smaller, still what the parser accepts', () => {
    const { function: fn } = escalateToolDefinition();
    const parameters = fn.parameters as { properties: Record<string, { items?: { properties?: Record<string, unknown> } }>; required: string[] };
    const full = escalateToolJsonSchema() as typeof parameters;
    // Every briefing field the model writes; actionsTaken comes from the recorded calls, approvesArgs from the gate.
    expect(Object.keys(parameters.properties)).toEqual(Object.keys(full.properties).filter((k) => k !== 'actionsTaken'));
    expect(parameters.required).toEqual(['reason', 'summary', 'intent', 'pendingQuestion']);
    expect(Object.keys(parameters.properties.options!.items!.properties!)).toEqual(['id', 'label', 'tradeoffs', 'risk', 'approvesTool']);
    for (const dropped of ['$schema', 'default', 'actionsTaken', 'approvesArgs']) expect(keys(parameters).has(dropped)).toBe(false);
    expect(JSON.stringify(parameters).length).toBeLessThan(JSON.stringify(full).length * 0.8);
    // When to call it is in the default system prompt; an agent with its own prompt gets it here.
    expect(fn.description).not.toContain('asks for a person');
    expect(escalateToolDefinition(false).function.description).toContain('Call it when the customer asks for a person');
    const briefing = { reason: 'Wants a manager', summary: 'Ana wants a manager.', intent: 'Talk to a manager', pendingQuestion: 'Who calls her back?', options: [{ id: 'call', label: 'Call back' }] };
    expect(EscalateToolArgsSchema.safeParse(briefing).success).toBe(true);
  });
});
