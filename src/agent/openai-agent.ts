/**
 * The agent on OpenAI Chat Completions with tools, so any OpenAI-compatible server works.
 *
 * One turn: build the messages from the conversation (hand-backs included), call the model, run
 * the tool calls it asks for (each gated by the policy first), feed the results back, and repeat
 * until the model answers in text or a person is needed. Failure handling, in the product's terms:
 * - `escalate_to_human` escalates with the model's briefing; arguments that do not fully validate
 *   still escalate, keeping the fields that do (a customer who needs a person must not wait on JSON).
 * - A tool the policy does not allow is not run; the turn escalates with the policy's trigger and a
 *   ready-made approve/decline question for the operator.
 * - A tool that throws is recorded (`ok: false`) and reported to the model; after
 *   `policy.behaviour.toolErrorLimit` failures in one turn, the turn escalates with `tool_error`.
 * - Unknown tools and arguments that are not valid JSON or fail the tool's schema are reported to the
 *   model so it can correct itself; after `maxInvalidToolCalls` such calls, the turn escalates
 *   (`model_error`). So do an empty, cut-off or refused answer, too many tool rounds, and an API that
 *   still fails after the client's retries: in each case a person is better than silence.
 * - An aborted turn (ownership changed) rejects with the signal's reason; nothing is returned.
 *
 * Each request carries only what the turn can use (see `offeredTools`): `escalate_to_human` always,
 * business tools only while they can run, each tool's compact JSON Schema built once; and the
 * transcript window with a summary of what is older (`buildChatMessages`).
 */
import OpenAI from 'openai';
import type {
  ChatCompletion,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import { z } from 'zod';
import type { ActionTaken, Agent, AgentTool, AgentTurnInput, AgentTurnResult } from './agent.ts';
import { buildChatMessages, defaultSystemPrompt, type ChatContextOptions } from './context.ts';
import { ChatCompletions, DEFAULT_BASE_URL } from './chat-completions.ts';
import { encodeChatRequest } from './request-body.ts';
import { demoTools, ESCALATE_TOOL_NAME, escalateToolDefinition, ToolRegistry, toolDefinition, toolIsEnabled } from './tools.ts';
import { deepFreeze } from '../deep-freeze.ts';
import { findApproval } from '../engine/approvals.ts';
import { EscalateToolArgsSchema, OptionSchema, type BriefingOption, type EscalateToolArgs } from '../envelope.ts';
import { ConfigError } from '../errors.ts';
import { conversationLogger, type Logger } from '../log.ts';
import type { Approval, Conversation } from '../model.ts';
import { gateToolCall, toolClass, type Policy } from '../policy.ts';

export interface OpenAIAgentConfig {
  apiKey: string;
  /** An OpenAI-compatible endpoint, e.g. `http://localhost:11434/v1`. Default: OpenAI's. */
  baseURL?: string;
  /** Default `gpt-4o-mini`. */
  model?: string;
  /** Business tools; default none (pass `demoTools()` for the demo shop). */
  tools?: AgentTool[];
  /** Model calls that may ask for tools in one turn before the turn escalates. Default 5. */
  maxToolRounds?: number;
  /** Unknown tools / invalid arguments tolerated in one turn before escalating. Default 2. */
  maxInvalidToolCalls?: number;
  /** Per HTTP request. Default 30 s. */
  timeoutMs?: number;
  /** Retries on 408/409/429/5xx and connection errors (the client honours Retry-After). Default 2. */
  maxRetries?: number;
  systemPrompt?: string;
  brandName?: string;
  /** See `ChatContextOptions.handbackRole`. */
  handbackRole?: ChatContextOptions['handbackRole'];
  /**
   * The transcript window: at most this many latest messages sent as they are; older ones are
   * summarised in the system message (see `ChatContextOptions.maxTranscriptMessages`). Default 24.
   */
  maxTranscriptMessages?: number;
  /** Sent only when set: some models reject it. */
  temperature?: number;
  logger?: Logger;
}

type EscalateResult = Extract<AgentTurnResult, { kind: 'escalate' }>;

/** The tag `context.ts` puts on operator replies, should the model copy it into its own answer. */
const OPERATOR_TAG_PREFIX = /^\s*\[[^\]\n]{1,80}, support team\]\s*/;

/** Tool output longer than this is cut before it goes back to the model. */
const MAX_TOOL_RESULT_CHARS = 16_000;

/** The agent on Chat Completions. Construct once; `respond` is safe to call concurrently. */
export class OpenAIAgent implements Agent {
  readonly name = 'openai';
  readonly model: string;
  private readonly completions: ChatCompletions;
  private readonly registry: ToolRegistry;
  private readonly businessTools: AgentTool[];
  private readonly escalate: ChatCompletionTool;
  /** Every tool, for the usual request where all of them can run; built once. */
  private readonly allDefinitions: ChatCompletionTool[];
  /** The last round of a turn: a business tool call would only escalate, so none is offered. */
  private readonly escalateOnly: ChatCompletionTool[];
  private readonly maxToolRounds: number;
  private readonly maxInvalidToolCalls: number;
  private readonly context: ChatContextOptions;

  constructor(private readonly config: OpenAIAgentConfig) {
    if (!config.apiKey) throw new ConfigError('OPENAI_API_KEY', 'an API key is required for the OpenAI agent');
    this.model = config.model ?? 'gpt-4o-mini';
    this.maxToolRounds = config.maxToolRounds ?? 5;
    this.maxInvalidToolCalls = config.maxInvalidToolCalls ?? 2;
    this.registry = new ToolRegistry(config.tools ?? []);
    this.businessTools = this.registry.list();
    // The constant part of every request, built once.
    const systemPrompt = config.systemPrompt ?? defaultSystemPrompt(config.brandName);
    // The default prompt (which several agents keep as their first part) says when to escalate.
    this.escalate = escalateToolDefinition(systemPrompt.startsWith(defaultSystemPrompt(config.brandName)));
    // Frozen: each list's JSON is kept and sent as it is (request-body.ts).
    this.allDefinitions = deepFreeze([...this.businessTools.map(toolDefinition), this.escalate]);
    this.escalateOnly = deepFreeze([this.escalate]);
    this.context = {
      systemPrompt,
      handbackRole: config.handbackRole,
      maxTranscriptMessages: config.maxTranscriptMessages,
    };
    this.completions = new ChatCompletions({
      apiKey: config.apiKey,
      ...(config.baseURL ? { baseURL: config.baseURL } : {}),
      timeoutMs: config.timeoutMs ?? 30_000,
      maxRetries: config.maxRetries ?? 2,
    });
  }

  async respond({ conversation, policy, signal, authorize }: AgentTurnInput): Promise<AgentTurnResult> {
    const log = this.config.logger ? conversationLogger(this.config.logger, conversation) : undefined;
    const messages: ChatCompletionMessageParam[] = buildChatMessages(conversation, this.context);
    const actionsTaken: ActionTaken[] = [];
    // Approvals are single-use: one reserved in this turn no longer covers a second call.
    const approvals = { approvals: conversation.approvals.map((a) => ({ ...a })) };
    let toolFailures = 0;
    let invalidCalls = 0;
    const escalate = (trigger: string, reason: string, request?: Partial<EscalateToolArgs>): EscalateResult => {
      log?.info({ trigger, reason }, 'agent escalates');
      return { kind: 'escalate', trigger, reason, actionsTaken, ...(request ? { request } : {}) };
    };

    for (let round = 0; ; round += 1) {
      const offered = round >= this.maxToolRounds ? [] : this.offeredTools(conversation, policy, approvals.approvals, log);
      let completion: ChatCompletion;
      try {
        // An abort stops the request, and a wait before a retry, at once (chat-completions.ts).
        completion = await this.complete(messages, this.definitionsFor(offered), signal);
      } catch (err) {
        if (signal.aborted) throw abortReason(signal);
        if (!(err instanceof OpenAI.APIError)) throw err;
        const what = describeApiError(err);
        // Bad key, model or URL: every conversation is affected, so say it loudly.
        const misconfigured = err.status === 401 || err.status === 403 || err.status === 404;
        log?.[misconfigured ? 'error' : 'warn']({ err: what, model: this.model }, 'model call failed');
        return escalate('model_error', `The AI model could not answer (${what}); a person should take this one.`);
      }
      const choice = completion.choices?.[0];
      const message = choice?.message;
      if (!message) return escalate('model_error', 'The AI model returned no answer.');
      const toolCalls = message.tool_calls ?? [];

      if (toolCalls.length === 0) {
        if (message.refusal) return escalate('model_error', `The AI model declined to answer: ${message.refusal}`.slice(0, 300));
        if (choice.finish_reason === 'content_filter') return escalate('model_error', "The AI model's answer was blocked by its content filter.");
        if (choice.finish_reason === 'length') return escalate('model_error', "The AI model's answer was cut off (length limit).");
        // The transcript tags operator replies; a model that imitates the tag must not sign as Dana.
        const text = (message.content ?? '').replace(OPERATOR_TAG_PREFIX, '').trim();
        if (!text) return escalate('model_error', 'The AI model returned an empty answer.');
        return { kind: 'reply', text, actionsTaken };
      }

      // The model wants a person: that wins over anything else it asked for in the same breath.
      const escalation = toolCalls.find((c) => c.type === 'function' && c.function.name === ESCALATE_TOOL_NAME);
      if (escalation && escalation.type === 'function') {
        const { request, complete } = parseEscalateArgs(escalation.function.arguments);
        if (!complete) log?.warn('escalate_to_human arguments did not fully validate; escalating with what parsed');
        return escalate('agent_tool', request.reason ?? 'The agent asked for a person.', request);
      }
      if (round >= this.maxToolRounds) {
        return escalate('model_error', `The AI model kept calling tools after ${this.maxToolRounds} rounds without answering.`);
      }

      messages.push({ role: 'assistant', content: message.content ?? null, tool_calls: toolCalls });
      for (const call of toolCalls) {
        const answer = (content: string) => messages.push({ role: 'tool', tool_call_id: call.id, content });
        if (call.type !== 'function') {
          invalidCalls += 1;
          answer(`Error: only function tools are available.`);
          continue;
        }
        const name = call.function.name;
        const known = this.registry.get(name);
        // A tool left out of this request (its precondition does not hold) does not run either.
        const tool = known && offered.includes(known) ? known : undefined;
        const args = tool ? parseToolArgs(tool, call) : undefined;
        if (!tool || !args || !args.ok) {
          invalidCalls += 1;
          const problem = !known
            ? `there is no tool named "${name}"`
            : !tool
              ? `${name} is not available in this conversation now`
              : args && !args.ok
                ? args.error
                : 'invalid arguments';
          log?.warn({ tool: name, problem }, 'invalid tool call from the model');
          if (invalidCalls > this.maxInvalidToolCalls) {
            return escalate('model_error', `The AI model made ${invalidCalls} invalid tool calls in one turn (last: ${problem}).`.slice(0, 300));
          }
          answer(`Error: ${problem}. Check the tool's name and schema and call it again, or answer without it.`);
          continue;
        }

        const verdict = gateToolCall(policy, { tool: name, args: args.value }, findApproval(approvals, policy, { tool: name, args: args.value }));
        if (!verdict.allow) {
          return escalate(verdict.trigger, verdict.reason, approvalRequest(policy, name, args.value, verdict.reason, verdict.amount));
        }
        // Nothing runs once the conversation has left the agent; an approval is used up before its tool runs.
        await authorize({ tool: name, args: args.value, ...(verdict.approval ? { approvalId: verdict.approval.id } : {}) });
        if (verdict.approval) approvals.approvals.find((a) => a.id === verdict.approval!.id)!.usedAt = new Date().toISOString();

        try {
          const output = await tool.run(args.value, { conversation, signal });
          signal.throwIfAborted();
          actionsTaken.push({ tool: name, input: args.value, output, ok: true });
          answer(serializeToolOutput(output));
        } catch (err) {
          if (signal.aborted) throw abortReason(signal);
          const error = err instanceof Error ? err.message : String(err);
          actionsTaken.push({ tool: name, input: args.value, output: { error }, ok: false });
          toolFailures += 1;
          log?.warn({ tool: name, error }, 'tool failed');
          if (toolFailures >= policy.behaviour.toolErrorLimit) {
            return escalate('tool_error', `${name} failed: ${error}`.slice(0, 300));
          }
          answer(`Error: ${error}`);
        }
      }
    }
  }

  /**
   * The business tools that can run now; `escalate_to_human` is always offered on top. Left out:
   * - a tool whose own precondition (`defineTool`'s `isEnabled`) is false for this conversation;
   * - while an escalation is pending (nobody from the support team can answer yet), a tool the
   *   policy always stops without an approval (irreversible) when no unused approval covers it: its
   *   call could only ask for an approval nobody can give now, and the turn would end in silence.
   * A tool that needs an approval in other states stays offered: calling it is how the agent asks a
   * person to approve that exact call (the card's approve/decline question).
   */
  private offeredTools(conversation: Conversation, policy: Policy, approvals: readonly Approval[], log?: Logger): AgentTool[] {
    const context = { conversation, policy };
    return this.businessTools.filter((tool) => {
      if (conversation.pendingEscalation && toolClass(policy, tool.name) === 'irreversible' && !approvals.some((a) => !a.usedAt && a.tool === tool.name)) return false;
      try {
        return toolIsEnabled(tool, context);
      } catch (err) {
        log?.warn({ tool: tool.name, err: (err as Error).message }, 'tool precondition failed; the tool is not offered');
        return false;
      }
    });
  }

  private definitionsFor(offered: readonly AgentTool[]): ChatCompletionTool[] {
    if (offered.length === this.businessTools.length) return this.allDefinitions;
    if (offered.length === 0) return this.escalateOnly;
    return [...offered.map(toolDefinition), this.escalate];
  }

  private complete(messages: ChatCompletionMessageParam[], tools: ChatCompletionTool[], signal: AbortSignal): Promise<ChatCompletion> {
    const request: ChatCompletionCreateParamsNonStreaming = {
      model: this.model,
      messages,
      tools,
      tool_choice: 'auto',
      ...(this.config.temperature !== undefined ? { temperature: this.config.temperature } : {}),
    };
    // The body goes encoded from kept pieces (request-body.ts).
    return this.completions.create(encodeChatRequest(request), signal);
  }
}

/**
 * The OpenAI agent configured from the environment, or undefined when `OPENAI_API_KEY` is not set
 * (main.ts then runs the offline agent). Reads `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_MODEL`,
 * `OPENAI_TIMEOUT_MS`, `OPENAI_MAX_RETRIES`, `AGENT_BRAND_NAME`, `AGENT_TRANSCRIPT_WINDOW` (at most
 * this many messages sent as they are; older ones are summarised). Tools default to the demo shop.
 */
export function openAIAgentFromEnv(
  env: Record<string, string | undefined> = process.env,
  options: { tools?: AgentTool[]; logger?: Logger; systemPrompt?: string } = {},
): OpenAIAgent | undefined {
  const apiKey = env.OPENAI_API_KEY?.trim();
  if (!apiKey) return undefined;
  const baseURL = env.OPENAI_BASE_URL?.trim() || undefined;
  if (baseURL) {
    let url: URL | undefined;
    try {
      url = new URL(baseURL);
    } catch {
      url = undefined;
    }
    if (!url || !/^https?:$/.test(url.protocol)) {
      throw new ConfigError('OPENAI_BASE_URL', `expected an http(s) URL such as https://api.openai.com/v1, got "${baseURL}"`);
    }
  }
  return new OpenAIAgent({
    apiKey,
    // Explicit, so the client does not fall back to process.env when another env object was given.
    baseURL: baseURL ?? DEFAULT_BASE_URL,
    model: env.OPENAI_MODEL?.trim() || undefined,
    timeoutMs: intFromEnv(env, 'OPENAI_TIMEOUT_MS', 1),
    maxRetries: intFromEnv(env, 'OPENAI_MAX_RETRIES', 0),
    brandName: env.AGENT_BRAND_NAME?.trim() || undefined,
    maxTranscriptMessages: intFromEnv(env, 'AGENT_TRANSCRIPT_WINDOW', 1),
    systemPrompt: options.systemPrompt,
    tools: options.tools ?? demoTools(),
    logger: options.logger,
  });
}

function intFromEnv(env: Record<string, string | undefined>, name: string, min: number): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(name, `expected a whole number >= ${min}, got "${raw}"`);
  return n;
}

type ParsedArgs = { ok: true; value: unknown } | { ok: false; error: string };

/** The model's JSON arguments, validated against the tool's schema. */
function parseToolArgs(tool: AgentTool, call: ChatCompletionMessageFunctionToolCall): ParsedArgs {
  let raw: unknown;
  try {
    raw = JSON.parse(call.function.arguments || '{}');
  } catch (err) {
    return { ok: false, error: `the arguments for ${tool.name} are not valid JSON (${(err as Error).message})` };
  }
  const parsed = tool.parameters.safeParse(raw);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(arguments)'}: ${i.message}`);
  return { ok: false, error: `the arguments for ${tool.name} do not match its schema (${issues.join('; ')})` };
}

/**
 * The model's briefing. When it does not fully validate, keeps every field that does (strings cut to
 * their limit, bad options dropped), so the operator still gets what the model did write.
 */
export function parseEscalateArgs(json: string): { request: Partial<EscalateToolArgs>; complete: boolean } {
  let raw: unknown;
  try {
    raw = JSON.parse(json || '{}');
  } catch {
    return { request: {}, complete: false };
  }
  const full = EscalateToolArgsSchema.safeParse(raw);
  if (full.success) return { request: full.data, complete: true };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { request: {}, complete: false };
  const record = raw as Record<string, unknown>;
  const request: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(EscalateToolArgsSchema.shape) as Array<[string, z.ZodType]>) {
    const value = record[key];
    if (value === undefined) continue;
    const parsed = schema.safeParse(value);
    if (parsed.success) {
      request[key] = parsed.data;
      continue;
    }
    if (typeof value === 'string') {
      const max = maxLength(schema);
      const cut = max !== undefined ? schema.safeParse(value.slice(0, max)) : undefined;
      if (cut?.success) request[key] = cut.data;
    } else if (key === 'options' && Array.isArray(value)) {
      const options = value.flatMap((o) => {
        const one = OptionSchema.safeParse(o);
        return one.success ? [one.data] : [];
      });
      if (options.length > 0) request[key] = options.slice(0, 5);
    }
  }
  return { request: request as Partial<EscalateToolArgs>, complete: false };
}

/** The max length of a (possibly optional/defaulted) string schema, if it has one. */
function maxLength(schema: z.ZodType): number | undefined {
  let inner: unknown = schema;
  while (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault || inner instanceof z.ZodNullable) inner = inner.unwrap();
  return inner instanceof z.ZodString && inner.maxLength !== null ? inner.maxLength : undefined;
}

/**
 * For a call the policy stopped: the question the operator answers and the options to answer it
 * with, so a refund can be approved from the card without taking over (`approvesTool`).
 */
function approvalRequest(policy: Policy, tool: string, args: unknown, reason: string, amount?: number): Partial<EscalateToolArgs> {
  const record = typeof args === 'object' && args !== null ? (args as Record<string, unknown>) : {};
  const ids = Object.entries(record)
    .filter(([k, v]) => /(^|_)id$/i.test(k) && typeof v === 'string')
    .map(([, v]) => String(v).slice(0, 200));
  const currency = policy.refund.currency;
  const isRefund = policy.refund.tools.includes(tool) && amount !== undefined;
  const refundAmount = isRefund ? amount : Number(record[policy.refund.amountArg]);
  const what = isRefund
    ? `a refund of ${amount} ${currency}${ids[0] ? ` on ${ids[0]}` : ''}`
    : `${tool}(${truncate(JSON.stringify(args), 200)})`;
  const approveId = `approve_${tool}`.toLowerCase().replace(/[^a-z0-9_-]/g, '_').slice(0, 60);
  const options: BriefingOption[] = [
    {
      id: approveId,
      label: truncate(isRefund ? `Approve refund of ${amount} ${currency}` : `Approve ${tool}`, 75),
      tradeoffs: truncate(`${reason}. Approving lets the agent run it once.`, 500),
      risk: 'medium',
      approvesTool: tool,
      // The approval covers this call only: these arguments, nothing else.
      approvesArgs: args,
    },
    { id: 'decline', label: 'Decline', tradeoffs: 'The agent tells the customer it cannot be done.', risk: 'low' },
  ];
  return {
    pendingQuestion: truncate(`Approve ${what}?`, 500),
    options,
    entities: {
      ids,
      amounts: Number.isFinite(refundAmount) && policy.refund.tools.includes(tool) ? [{ value: refundAmount, currency }] : [],
      dates: [],
      emails: [],
    },
  };
}

function serializeToolOutput(output: unknown): string {
  let text: string;
  try {
    text = output === undefined ? 'OK' : typeof output === 'string' ? output : JSON.stringify(output);
  } catch {
    text = String(output);
  }
  return truncate(text, MAX_TOOL_RESULT_CHARS);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function describeApiError(err: InstanceType<typeof OpenAI.APIError>): string {
  if (err instanceof OpenAI.APIConnectionTimeoutError) return 'request timed out';
  if (err instanceof OpenAI.APIConnectionError) return `connection failed: ${err.message}`;
  return truncate(`HTTP ${err.status ?? '?'}: ${err.message}`, 200);
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The agent turn was aborted.', 'AbortError');
}
