/**
 * Several agents, defined in configuration: name, instructions, model, tools, and the agents each
 * may hand off to, with the handoff's typed input (zod; the JSON Schema the model sees is derived
 * from it), an `is_enabled` condition and an input filter. In code (`MultiAgentConfig`, any zod
 * schema and any condition) or in a YAML/JSON file (`AGENTS_FILE`, declarative fields and
 * conditions). The default stays one agent: without `AGENTS_FILE` nothing here runs.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import type { Conversation, Origin } from '../model.ts';
import type { AgentTool } from './agent.ts';
import { ESCALATE_TOOL_NAME } from './tools.ts';

/** What the agent receiving a handoff sees of the conversation before it. */
export type InputFilter = 'all' | 'since_last_handoff' | 'nested_summary';

/** `handoffs`: agents transfer with `transfer_to_<agent>` tools; `router`: a router picks the agent every turn (`route_conversation`); `manual`: an operator picks. */
export type RoutingMode = 'handoffs' | 'router' | 'manual';

export interface HandoffCondition {
  conversation: Conversation;
  from: string;
  to: string;
  /** Agent handoffs in this conversation so far. */
  handoffs: number;
}

export interface HandoffDefinition {
  to: string;
  /** Tells the model when to use it (the tool's description). */
  description?: string;
  /** The typed input of `transfer_to_<to>`; default `{ reason }`. Must be a zod object. */
  input?: z.ZodObject;
  /** Offered only when this holds (the SDK's `is_enabled`). */
  isEnabled?: (context: HandoffCondition) => boolean;
  /** Default `all`. */
  inputFilter?: InputFilter;
}

export interface AgentDefinition {
  /** Lower case letters, digits, `_`, `-`: it becomes `transfer_to_<name>`. */
  name: string;
  /** One line for the router and for other agents' transfer tools. */
  description?: string;
  instructions: string;
  /** Default: the bridge's model (`OPENAI_MODEL`). */
  model?: string;
  /** Names of business tools (from the tool registry) this agent may call. */
  tools?: string[];
  handoffs?: HandoffDefinition[];
}

export interface MultiAgentConfig {
  mode: RoutingMode;
  /** The agent a new conversation starts with (the triage agent). */
  defaultAgent: string;
  agents: AgentDefinition[];
  router?: { model?: string; instructions?: string };
  /** The filter after an operator's pick or a router's choice with no matching handoff. Default `all`. */
  defaultFilter?: InputFilter;
  /** Handoffs one turn may make before it gives up and asks a person. Default 3. */
  maxHandoffsPerTurn?: number;
}

const NAME = /^[a-z][a-z0-9_-]{0,39}$/;

/** The tool an agent calls to hand the conversation to `to`. */
export function transferToolName(to: string): string {
  return `transfer_to_${to}`;
}

export const DEFAULT_HANDOFF_INPUT = z.object({ reason: z.string().min(1).max(300).describe('Why the other agent should take over, in one line') });

/** Checks a configuration once at start-up; a mistake stops start-up with one line. */
export function validateMultiAgentConfig(config: MultiAgentConfig, tools: readonly AgentTool[], where = 'agents'): MultiAgentConfig {
  const fail = (message: string): never => {
    throw new ConfigError(where, message);
  };
  const names = config.agents.map((a) => a.name);
  if (names.length === 0) fail('define at least one agent');
  for (const agent of config.agents) {
    if (!NAME.test(agent.name)) fail(`agent name "${agent.name}" must be 1-40 lower-case letters, digits, "_" or "-", starting with a letter`);
    if (names.filter((n) => n === agent.name).length > 1) fail(`two agents are named "${agent.name}"`);
    if (!agent.instructions.trim()) fail(`agent "${agent.name}" needs instructions`);
    for (const tool of agent.tools ?? []) {
      if (tool === ESCALATE_TOOL_NAME) fail(`agent "${agent.name}": ${ESCALATE_TOOL_NAME} is built in for every agent; leave it out of tools`);
      if (!tools.some((t) => t.name === tool)) fail(`agent "${agent.name}": no tool named "${tool}" (tools: ${tools.map((t) => t.name).join(', ') || 'none'})`);
    }
    for (const handoff of agent.handoffs ?? []) {
      if (!names.includes(handoff.to)) fail(`agent "${agent.name}" hands off to "${handoff.to}", which is not defined (agents: ${names.join(', ')})`);
      if (handoff.to === agent.name) fail(`agent "${agent.name}" cannot hand off to itself`);
      if ((agent.tools ?? []).includes(transferToolName(handoff.to))) fail(`agent "${agent.name}": a business tool is named ${transferToolName(handoff.to)}`);
    }
  }
  if (!names.includes(config.defaultAgent)) fail(`the default agent "${config.defaultAgent}" is not defined (agents: ${names.join(', ')})`);
  return config;
}

// ---- the file ------------------------------------------------------------------------------

const FieldSchema = z.union([
  z.object({ type: z.enum(['string', 'number', 'integer', 'boolean']), description: z.string().max(300).optional(), optional: z.boolean().default(false) }),
  z.object({ type: z.literal('enum'), values: z.array(z.string().min(1)).min(1), description: z.string().max(300).optional(), optional: z.boolean().default(false) }),
]);

const FilterSchema = z.enum(['all', 'since_last_handoff', 'nested_summary']);

const FileSchema = z.object({
  mode: z.enum(['handoffs', 'router', 'manual']).default('handoffs'),
  default: z.string().min(1),
  router: z.object({ model: z.string().min(1).optional(), instructions: z.string().min(1).optional() }).optional(),
  defaultFilter: FilterSchema.optional(),
  maxHandoffsPerTurn: z.number().int().min(1).max(10).optional(),
  agents: z
    .array(
      z.object({
        name: z.string(),
        description: z.string().max(300).optional(),
        instructions: z.string().min(1),
        model: z.string().min(1).optional(),
        tools: z.array(z.string()).default([]),
        handoffs: z
          .array(
            z.object({
              to: z.string(),
              description: z.string().max(500).optional(),
              filter: FilterSchema.default('all'),
              /** Fields of the typed input; default `{ reason }`. */
              input: z.record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/, 'a field name of letters, digits and "_"'), FieldSchema).optional(),
              /** The `is_enabled` condition, declaratively: all that are given must hold. */
              enabledWhen: z
                .object({
                  queues: z.array(z.string()).optional(),
                  origins: z.array(z.enum(['webchat', 'email', 'api'])).optional(),
                  /** Off after this many agent handoffs in the conversation (stops ping-pong). */
                  maxHandoffs: z.number().int().min(0).optional(),
                })
                .optional(),
            }),
          )
          .default([]),
      }),
    )
    .min(1),
});

function fieldSchema(field: z.output<typeof FieldSchema>): z.ZodType {
  let schema: z.ZodType;
  switch (field.type) {
    case 'string':
      schema = z.string().max(2000);
      break;
    case 'number':
      schema = z.number();
      break;
    case 'integer':
      schema = z.number().int();
      break;
    case 'boolean':
      schema = z.boolean();
      break;
    case 'enum':
      schema = z.enum(field.values as [string, ...string[]]);
      break;
  }
  if (field.description) schema = schema.describe(field.description);
  return field.optional ? schema.optional() : schema;
}

/** A configuration from a parsed file (YAML or JSON). */
export function multiAgentConfigFromFile(raw: unknown, where = 'AGENTS_FILE'): MultiAgentConfig {
  const parsed = FileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(where, `${issue.path.join('.') || '(root)'}: ${issue.message.replace(/\s+/g, ' ')}`);
  }
  const file = parsed.data;
  return {
    mode: file.mode,
    defaultAgent: file.default,
    ...(file.router ? { router: file.router } : {}),
    ...(file.defaultFilter ? { defaultFilter: file.defaultFilter } : {}),
    ...(file.maxHandoffsPerTurn ? { maxHandoffsPerTurn: file.maxHandoffsPerTurn } : {}),
    agents: file.agents.map((a) => ({
      name: a.name,
      instructions: a.instructions,
      tools: a.tools,
      ...(a.description ? { description: a.description } : {}),
      ...(a.model ? { model: a.model } : {}),
      handoffs: a.handoffs.map((h): HandoffDefinition => {
        const when = h.enabledWhen;
        return {
          to: h.to,
          inputFilter: h.filter,
          ...(h.description ? { description: h.description } : {}),
          ...(h.input ? { input: z.object(Object.fromEntries(Object.entries(h.input).map(([k, f]) => [k, fieldSchema(f)]))) } : {}),
          ...(when
            ? {
                isEnabled: ({ conversation, handoffs }: HandoffCondition) =>
                  (!when.queues || when.queues.includes(conversation.queue)) &&
                  (!when.origins || when.origins.includes(conversation.origin as Origin)) &&
                  (when.maxHandoffs === undefined || handoffs < when.maxHandoffs),
              }
            : {}),
        };
      }),
    })),
  };
}

/** Reads `AGENTS_FILE` (YAML or JSON). */
export function loadMultiAgentFile(path: string): MultiAgentConfig {
  let raw: unknown;
  try {
    const text = readFileSync(path, 'utf8');
    raw = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError('AGENTS_FILE', `expected a readable YAML or JSON file at ${path} (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  return multiAgentConfigFromFile(raw, 'AGENTS_FILE');
}
