/**
 * Business tools the agent may call, and the registry that checks and describes them.
 * The demo tools work over the fake shop in `demo-data.ts`; a real deployment passes its own
 * `AgentTool`s (same shape) to the agent. Whether a tool may run without a person is not decided
 * here but by the policy (`gateToolCall`): these only do the work.
 */
import type { ChatCompletionFunctionTool } from 'openai/resources/chat/completions';
import { z } from 'zod';
import type { AgentTool } from './agent.ts';
import type { Conversation } from '../model.ts';
import { EscalateToolArgsSchema } from '../envelope.ts';
import { ConfigError } from '../errors.ts';
import type { Policy } from '../policy.ts';
import { createDemoShop, REFUND_WINDOW_DAYS, type DemoOrder, type DemoShop } from './demo-data.ts';

/** The name of the built-in escalation tool; business tools may not use it. */
export const ESCALATE_TOOL_NAME = 'escalate_to_human';

/** Function names the Chat Completions API accepts. */
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** What a tool's `isEnabled` is asked before each model request. */
export interface ToolAvailabilityContext {
  conversation: Conversation;
  policy: Policy;
}

/**
 * Declares a tool with its argument type inferred from the zod schema. `isEnabled`, when given, is
 * the tool's precondition on the conversation: while it returns false the tool is not offered to the
 * model (and a call to it is refused as unavailable), so the request carries only tools that can run.
 */
export function defineTool<S extends z.ZodType>(tool: {
  name: string;
  description: string;
  parameters: S;
  run(args: z.output<S>, context: { conversation: Conversation; signal: AbortSignal }): Promise<unknown>;
  isEnabled?(context: ToolAvailabilityContext): boolean;
}): AgentTool {
  return tool as unknown as AgentTool;
}

/** The tool's own precondition (`defineTool`'s `isEnabled`); true when it declares none. */
export function toolIsEnabled(tool: AgentTool, context: ToolAvailabilityContext): boolean {
  const check = (tool as { isEnabled?: (context: ToolAvailabilityContext) => boolean }).isEnabled;
  return typeof check === 'function' ? check.call(tool, context) : true;
}

/**
 * A JSON Schema cut down to what guides the model. Sent in every request, so it stays small:
 * - `$schema`, and `default` values (zod fills defaults when it parses the arguments);
 * - `minLength: 1` (a required string says as much) and `additionalProperties` when it allows
 *   anything anyway (the API only needs it, as `false`, in `strict` mode, which we do not use:
 *   strict needs every property required, and OpenAI-compatible servers often lack it).
 * Everything that constrains the answer stays: types, enums, `required`, patterns, maximums and
 * descriptions. Arguments are still validated against the full zod schema.
 */
export function compactJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(compactJsonSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema as Record<string, unknown>)) {
    switch (key) {
      case '$schema':
      case 'default':
        continue;
      case 'minLength':
        if (value === 1) continue;
        out[key] = value;
        break;
      case 'additionalProperties':
        if (value === true || (isPlainObject(value) && Object.keys(value).length === 0)) continue;
        out[key] = compactJsonSchema(value);
        break;
      case 'properties':
      case '$defs':
      case 'definitions':
      case 'patternProperties':
        // Keys here are names, not keywords: keep every one, compact each schema.
        out[key] = isPlainObject(value) ? Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, compactJsonSchema(sub)])) : value;
        break;
      case 'enum':
      case 'const':
      case 'required':
      case 'examples':
        out[key] = value;
        break;
      default:
        out[key] = isPlainObject(value) || Array.isArray(value) ? compactJsonSchema(value) : value;
    }
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value as Record<string, unknown>)) deepFreeze(inner);
  }
  return value;
}

/** Compact schemas by zod schema: derived once, shared by every request (and every agent). */
const jsonSchemaCache = new WeakMap<z.ZodType, Readonly<Record<string, unknown>>>();

/**
 * JSON Schema of a tool's arguments, derived from its zod schema and compacted (what the model
 * sees). Computed once per zod schema and frozen: do not modify the result.
 */
export function toolParametersJsonSchema(tool: Pick<AgentTool, 'parameters'>): Record<string, unknown> {
  let schema = jsonSchemaCache.get(tool.parameters);
  if (!schema) {
    schema = deepFreeze(compactJsonSchema(z.toJSONSchema(tool.parameters, { io: 'input', unrepresentable: 'any' })) as Record<string, unknown>);
    jsonSchemaCache.set(tool.parameters, schema);
  }
  return schema as Record<string, unknown>;
}

const definitionCache = new WeakMap<AgentTool, ChatCompletionFunctionTool>();

/** The tool as a Chat Completions function tool; built once per tool object. */
export function toolDefinition(tool: AgentTool): ChatCompletionFunctionTool {
  let definition = definitionCache.get(tool);
  if (!definition) {
    definition = functionTool(tool.name, tool.description, toolParametersJsonSchema(tool));
    definitionCache.set(tool, definition);
  }
  return definition;
}

function functionTool(name: string, description: string, parameters: Record<string, unknown>): ChatCompletionFunctionTool {
  return deepFreeze({ type: 'function', function: { name, description: description.replace(/\s+/g, ' ').trim(), parameters } });
}

/** What the tool does; when to call it is in the default system prompt. */
const ESCALATE_DESCRIPTION = 'Hand the conversation to a person on the support team, with a briefing they can act on in 30 seconds.';
/** For an agent whose own system prompt replaced the default one (which says when to escalate). */
const ESCALATE_WHEN = ' Call it when the customer asks for a person, or the request is beyond you or your authority.';

const escalateDefinitions = new Map<boolean, ChatCompletionFunctionTool>();

/**
 * `escalate_to_human` as the model sees it: the briefing's compact schema, without the fields the
 * runtime fills itself (`actionsTaken` comes from the recorded tool calls, `approvesArgs` from the
 * call the gate stopped). The full schema (`EscalateToolArgsSchema`) still parses the answer.
 * `promptSaysWhen`: the system prompt already says when to escalate (the default one does), so the
 * description does not repeat it. Built once per variant.
 */
export function escalateToolDefinition(promptSaysWhen = true): ChatCompletionFunctionTool {
  let definition = escalateDefinitions.get(promptSaysWhen);
  if (!definition) {
    const schema = compactJsonSchema(z.toJSONSchema(EscalateToolArgsSchema, { io: 'input', unrepresentable: 'any' })) as {
      properties: Record<string, { items?: { properties?: Record<string, unknown> } }>;
    };
    delete schema.properties.actionsTaken;
    delete schema.properties.options?.items?.properties?.approvesArgs;
    definition = functionTool(ESCALATE_TOOL_NAME, ESCALATE_DESCRIPTION + (promptSaysWhen ? '' : ESCALATE_WHEN), schema as unknown as Record<string, unknown>);
    escalateDefinitions.set(promptSaysWhen, definition);
  }
  return definition;
}

/** The agent's business tools by name, checked once at start-up so a bad tool fails fast. */
export class ToolRegistry {
  private readonly byName = new Map<string, AgentTool>();

  constructor(tools: readonly AgentTool[]) {
    for (const tool of tools) {
      if (!TOOL_NAME.test(tool.name)) {
        throw new ConfigError('agent tools', `tool name "${tool.name}" must be 1-64 letters, digits, "_" or "-"`);
      }
      if (tool.name === ESCALATE_TOOL_NAME) {
        throw new ConfigError('agent tools', `"${ESCALATE_TOOL_NAME}" is built in; give the business tool another name`);
      }
      if (this.byName.has(tool.name)) throw new ConfigError('agent tools', `two tools are named "${tool.name}"; names must be unique`);
      const schema = toolParametersJsonSchema(tool);
      if (schema.type !== 'object') {
        throw new ConfigError('agent tools', `tool "${tool.name}" must take a zod object as parameters (got JSON Schema type ${String(schema.type)})`);
      }
      this.byName.set(tool.name, tool);
    }
  }

  get(name: string): AgentTool | undefined {
    return this.byName.get(name);
  }

  list(): AgentTool[] {
    return [...this.byName.values()];
  }
}

const OrderId = z.string().min(1).max(40).describe('The order number, e.g. A1001');

const AddressSchema = z.object({
  line1: z.string().min(1).max(200).describe('Street and number'),
  line2: z.string().max(200).optional().describe('Apartment, floor, etc.'),
  city: z.string().min(1).max(100),
  postalCode: z.string().min(1).max(20),
  country: z.string().min(2).max(2).describe('ISO 3166-1 alpha-2 country code, e.g. US'),
});

/** An error a tool throws for the model (and, through the briefing, the operator) to read. */
export class ToolError extends Error {
  override name = 'ToolError';
}

function requireOrder(shop: DemoShop, orderId: string): DemoOrder {
  const order = shop.findOrder(orderId);
  if (!order) {
    throw new ToolError(`No order "${orderId}" exists. Ask the customer to check the order number (they look like A1001).`);
  }
  return order;
}

function eligibility(shop: DemoShop, order: DemoOrder): { eligible: boolean; refundable: number; reason: string } {
  const refundable = shop.refundable(order);
  if (order.status === 'cancelled') return { eligible: false, refundable: 0, reason: 'The order was cancelled; nothing was charged.' };
  if (refundable <= 0) return { eligible: false, refundable: 0, reason: 'The order was already refunded in full.' };
  if (order.status !== 'delivered' || !order.deliveredAt) {
    return { eligible: false, refundable, reason: `The order is ${order.status}; refunds open once it is delivered (a cancellation may be possible instead).` };
  }
  const days = (shop.now().getTime() - Date.parse(order.deliveredAt)) / 86_400_000;
  if (days > REFUND_WINDOW_DAYS) {
    return { eligible: false, refundable, reason: `Delivered ${Math.floor(days)} days ago, outside the ${REFUND_WINDOW_DAYS}-day refund window.` };
  }
  return { eligible: true, refundable, reason: `Delivered ${Math.floor(days)} days ago, within the ${REFUND_WINDOW_DAYS}-day refund window.` };
}

/**
 * The demo business tools over one fake shop: `lookup_order` and `check_refund_eligibility`
 * (read), `update_shipping_address` (write) and `issue_refund` (irreversible in the default policy).
 * Pass a shop to share or inspect its state (tests); by default each call gets a fresh one.
 */
export function demoTools(shop: DemoShop = createDemoShop()): AgentTool[] {
  return [
    defineTool({
      name: 'lookup_order',
      description: 'Look up an order: status, items, total, dates, shipping address and refunds so far.',
      parameters: z.object({ order_id: OrderId }),
      async run({ order_id }) {
        const order = requireOrder(shop, order_id);
        const customer = shop.customerOf(order);
        return {
          order_id: order.id,
          customer: customer ? { name: customer.name, email: customer.email } : undefined,
          status: order.status,
          items: order.items,
          total: order.total,
          currency: order.currency,
          placed_at: order.placedAt,
          shipped_at: order.shippedAt,
          delivered_at: order.deliveredAt,
          shipping_address: order.shippingAddress,
          refunds: order.refunds,
        };
      },
    }),
    defineTool({
      name: 'check_refund_eligibility',
      description: 'Check whether an order can be refunded and how much is still refundable.',
      parameters: z.object({ order_id: OrderId }),
      async run({ order_id }) {
        const order = requireOrder(shop, order_id);
        const verdict = eligibility(shop, order);
        return { order_id: order.id, eligible: verdict.eligible, refundable_amount: verdict.refundable, currency: order.currency, reason: verdict.reason };
      },
    }),
    defineTool({
      name: 'issue_refund',
      description: 'Refund money to the customer for an order. Cannot be undone. Check eligibility first.',
      parameters: z.object({
        order_id: OrderId,
        amount: z.number().positive().describe('Amount to refund, in the order currency'),
        reason: z.string().min(1).max(300).describe('Why the refund is given, in a few words'),
      }),
      async run({ order_id, amount, reason }) {
        const order = requireOrder(shop, order_id);
        const verdict = eligibility(shop, order);
        if (!verdict.eligible) throw new ToolError(`Order ${order.id} cannot be refunded: ${verdict.reason}`);
        if (amount > verdict.refundable) {
          throw new ToolError(`Only ${verdict.refundable} ${order.currency} is refundable on order ${order.id}; ${amount} was asked.`);
        }
        const refund = shop.recordRefund(order, amount, reason);
        return { refund_id: refund.id, order_id: order.id, amount: refund.amount, currency: order.currency, status: 'issued' };
      },
    }),
    defineTool({
      name: 'update_shipping_address',
      description: 'Change the shipping address of an order that has not shipped yet.',
      parameters: z.object({ order_id: OrderId, address: AddressSchema }),
      async run({ order_id, address }) {
        const order = requireOrder(shop, order_id);
        if (order.status !== 'processing') {
          throw new ToolError(`Order ${order.id} is already ${order.status}; its address can no longer be changed.`);
        }
        order.shippingAddress = { ...address, country: address.country.toUpperCase() };
        return { order_id: order.id, shipping_address: order.shippingAddress, status: 'updated' };
      },
    }),
  ];
}
