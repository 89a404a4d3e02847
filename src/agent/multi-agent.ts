/**
 * Several agents behind the one `Agent` the bridge runs, so the bridge's rules hold for all of
 * them: a turn is durable work, the mute rule silences every agent while a person holds the
 * conversation, every tool is gated by the policy, and `escalate_to_human` (same envelope) is
 * offered to every agent.
 *
 * One turn: find the agent holding the conversation (the last handoff in the history, else the
 * default agent); in `router` mode a `route_conversation` call may move it first; then that agent
 * runs (on Chat Completions, as `OpenAIAgent`) with `transfer_to_<agent>` tools for its enabled
 * handoffs. A transfer validates its typed input, records the hop, applies the target's input
 * filter, and the target answers in the same turn. The hops are returned with the answer
 * (`MultiAgentTurnResult`) and committed with it by the engine (`recordAgentHandoffs`).
 */
import type { ChatCompletionCreateParamsNonStreaming, ChatCompletionTool } from 'openai/resources/chat/completions';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import type { Conversation, Message } from '../model.ts';
import { conversationLogger, type Logger } from '../log.ts';
import type { Agent, AgentTool, AgentTurnInput } from './agent.ts';
import { buildChatMessages, defaultSystemPrompt } from './context.ts';
import { ChatCompletions, DEFAULT_BASE_URL } from './chat-completions.ts';
import { encodeChatRequest } from './request-body.ts';
import { currentAgent, lastHandoff, unansweredFrom, type AgentHandoff, type MultiAgentTurnResult } from './handoff-history.ts';
import { DEFAULT_HANDOFF_INPUT, loadMultiAgentFile, transferToolName, validateMultiAgentConfig, type AgentDefinition, type InputFilter, type MultiAgentConfig } from './multi-agent-config.ts';
import { OpenAIAgent } from './openai-agent.ts';
import { defineTool, toolParametersJsonSchema } from './tools.ts';

export interface MultiAgentOptions {
  apiKey: string;
  baseURL?: string;
  /** Model for agents that name none. Default `gpt-4o-mini`. */
  model?: string;
  /** The business tools agents pick from by name. */
  tools?: AgentTool[];
  brandName?: string;
  /** The transcript window each agent gets (see `OpenAIAgentConfig.maxTranscriptMessages`). Default 24. */
  transcriptWindow?: number;
  timeoutMs?: number;
  maxRetries?: number;
  logger?: Logger;
  now?: () => Date;
}

/** Thrown inside a turn when an agent calls a transfer tool: the next agent takes the turn. */
class HandoffSignal extends Error {
  constructor(readonly to: string, readonly input: Record<string, unknown>) {
    super(`handoff to ${to}`);
    this.name = 'HandoffSignal';
  }
}

export const ROUTE_TOOL_NAME = 'route_conversation';

const MAX_SUMMARY_CHARS = 6000;

export class MultiAgent implements Agent {
  readonly name = 'agents';
  private readonly byName = new Map<string, AgentDefinition>();
  private readonly completions: ChatCompletions;
  private readonly now: () => Date;
  /** `route_conversation`: its arguments' schema and the tool the router is sent, built once. */
  private routeArgs?: z.ZodObject<{ target: z.ZodEnum<Record<string, string>>; reason: z.ZodOptional<z.ZodString> }>;
  private routeTool?: ChatCompletionTool;

  constructor(
    readonly config: MultiAgentConfig,
    private readonly options: MultiAgentOptions,
  ) {
    validateMultiAgentConfig(config, options.tools ?? []);
    for (const agent of config.agents) this.byName.set(agent.name, agent);
    this.now = options.now ?? (() => new Date());
    this.completions = new ChatCompletions({ apiKey: options.apiKey, baseURL: options.baseURL, timeoutMs: options.timeoutMs ?? 30_000, maxRetries: options.maxRetries ?? 2 });
  }

  /** Agent names and the default one (for `routeConversation`). */
  get agents(): { names: string[]; defaultAgent: string } {
    return { names: this.config.agents.map((a) => a.name), defaultAgent: this.config.defaultAgent };
  }

  async respond(input: AgentTurnInput): Promise<MultiAgentTurnResult> {
    const { conversation, signal } = input;
    const log = this.options.logger ? conversationLogger(this.options.logger, conversation) : undefined;
    const handoffs: AgentHandoff[] = [];
    const pinned = lastHandoff(conversation)?.agent_handoff.pinned === true;
    let current = currentAgent(conversation, this.config.defaultAgent);
    if (!this.byName.has(current)) current = this.config.defaultAgent; // an agent removed from the configuration
    if (this.config.mode === 'router' && !pinned) {
      const routed = await this.route(conversation, current, signal, log);
      if (routed && routed.target !== current) {
        handoffs.push({ from: current, to: routed.target, ...(routed.reason ? { reason: routed.reason } : {}), since: unansweredFrom(conversation.messages), at: this.now().toISOString(), via: 'router' });
        current = routed.target;
      }
    }
    const max = this.config.maxHandoffsPerTurn ?? 3;
    for (;;) {
      const agent = this.byName.get(current)!;
      const child = new AbortController();
      const onAbort = () => child.abort(signal.reason);
      if (signal.aborted) child.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const transfers = this.config.mode === 'handoffs' && !pinned && handoffs.length < max ? this.transferTools(agent, conversation, child) : [];
        const runner = new OpenAIAgent({
          apiKey: this.options.apiKey,
          ...(this.options.baseURL ? { baseURL: this.options.baseURL } : {}),
          model: agent.model ?? this.options.model ?? 'gpt-4o-mini',
          tools: [...(this.options.tools ?? []).filter((t) => agent.tools?.includes(t.name)), ...transfers],
          systemPrompt: this.systemPrompt(agent, conversation, handoffs, transfers),
          ...(this.options.transcriptWindow ? { maxTranscriptMessages: this.options.transcriptWindow } : {}),
          ...(this.options.timeoutMs ? { timeoutMs: this.options.timeoutMs } : {}),
          ...(this.options.maxRetries !== undefined ? { maxRetries: this.options.maxRetries } : {}),
          ...(this.options.logger ? { logger: this.options.logger } : {}),
        });
        const view = this.view(conversation, current, handoffs);
        const result = await runner.respond({ ...input, conversation: view, signal: child.signal });
        return { ...result, agent: current, handoffs };
      } catch (err) {
        if (!(err instanceof HandoffSignal) || signal.aborted) throw err;
        const reason = typeof err.input.reason === 'string' ? err.input.reason : undefined;
        handoffs.push({ from: current, to: err.to, ...(reason ? { reason } : {}), input: err.input, since: unansweredFrom(conversation.messages), at: this.now().toISOString(), via: 'agent' });
        log?.info({ from: current, to: err.to, reason }, 'agent handoff');
        current = err.to;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    }
  }

  /** `transfer_to_<agent>` for each handoff of `agent` that is enabled now. */
  private transferTools(agent: AgentDefinition, conversation: Conversation, controller: AbortController): AgentTool[] {
    const done = conversation.history.filter((h) => h.reason === 'agent_handoff').length;
    return (agent.handoffs ?? [])
      .filter((h) => h.isEnabled?.({ conversation, from: agent.name, to: h.to, handoffs: done }) ?? true)
      .map((h) => {
        const target = this.byName.get(h.to)!;
        return defineTool({
          name: transferToolName(h.to),
          description: h.description ?? `Hand the conversation to the ${h.to} agent${target.description ? ` (${target.description})` : ''}. It answers the customer from here on.`,
          parameters: h.input ?? DEFAULT_HANDOFF_INPUT,
          async run(args) {
            controller.abort(new HandoffSignal(h.to, args as Record<string, unknown>));
            return 'Transferred.';
          },
        });
      });
  }

  /** The filter on the way into `agent`: the handoff's own, else the configuration's default. */
  private filterInto(agent: string, conversation: Conversation, handoffs: AgentHandoff[]): { filter: InputFilter; from?: string; reason?: string; input?: Record<string, unknown> } {
    const hop = handoffs.at(-1);
    const committed = lastHandoff(conversation)?.agent_handoff;
    const from = hop?.from ?? committed?.from;
    const edge = from ? this.byName.get(from)?.handoffs?.find((h) => h.to === agent) : undefined;
    const viaOperator = !hop && lastHandoff(conversation)?.by.kind === 'operator';
    const filter = (!viaOperator && edge?.inputFilter) || this.config.defaultFilter || 'all';
    const input = hop?.input ?? committed?.input;
    const reason = hop?.reason ?? lastHandoff(conversation)?.note;
    return { filter, ...(from ? { from } : {}), ...(reason ? { reason } : {}), ...(input ? { input } : {}) };
  }

  /** Where the receiving agent's part of the transcript starts: the messages it was handed to answer. */
  private cut(conversation: Conversation, handoffs: AgentHandoff[]): number {
    if (handoffs.length > 0) return unansweredFrom(conversation.messages);
    return Math.min(conversation.messages.length, lastHandoff(conversation)?.agent_handoff.since ?? 0);
  }

  /** The conversation as the agent holding it should see it (the input filter applied). */
  private view(conversation: Conversation, agent: string, handoffs: AgentHandoff[]): Conversation {
    const { filter } = this.filterInto(agent, conversation, handoffs);
    if (filter === 'all' || (handoffs.length === 0 && !lastHandoff(conversation))) return conversation;
    return { ...conversation, messages: conversation.messages.slice(this.cut(conversation, handoffs)) };
  }

  private systemPrompt(agent: AgentDefinition, conversation: Conversation, handoffs: AgentHandoff[], transfers: AgentTool[]): string {
    const parts = [defaultSystemPrompt(this.options.brandName), `You are the "${agent.name}" agent.${agent.description ? ` ${agent.description}` : ''}`, agent.instructions.trim()];
    if (transfers.length > 0) {
      parts.push(`Other agents can take this conversation: call ${transfers.map((t) => t.name).join(', ')} when the request is theirs; they answer the customer from there, so say nothing yourself first.`);
    }
    const into = this.filterInto(agent.name, conversation, handoffs);
    if (into.from && (handoffs.length > 0 || lastHandoff(conversation))) {
      const details = into.input && Object.keys(into.input).some((k) => k !== 'reason') ? ` Details: ${JSON.stringify(into.input)}.` : '';
      parts.push(`You took this conversation over from ${into.from}${into.reason ? `: ${into.reason.replace(/[.\s]+$/, '')}.` : '.'}${details}`);
    }
    if (into.filter === 'nested_summary' && (handoffs.length > 0 || lastHandoff(conversation))) {
      const earlier = conversation.messages.slice(0, this.cut(conversation, handoffs));
      const summary = nestedSummary(earlier);
      if (summary) parts.push(`The conversation before you took over, collapsed into one message (for your context; the customer saw the public part):\n${summary}`);
    }
    return parts.join('\n\n');
  }

  /** `router` mode: the router model names the agent for this turn; undefined keeps the current one. */
  private async route(conversation: Conversation, current: string, signal: AbortSignal, log?: Logger): Promise<{ target: string; reason?: string } | undefined> {
    if (!this.routeArgs || !this.routeTool) {
      const names = this.config.agents.map((a) => a.name);
      this.routeArgs = z.object({ target: z.enum(names as [string, ...string[]]), reason: z.string().max(300).optional() });
      this.routeTool = { type: 'function', function: { name: ROUTE_TOOL_NAME, description: 'Pick the agent that answers the customer next.', parameters: toolParametersJsonSchema({ parameters: this.routeArgs }) } };
    }
    const Args = this.routeArgs;
    const tool = this.routeTool;
    const instructions = [
      this.config.router?.instructions ?? 'You route a customer support conversation to the agent best placed to answer its latest message.',
      `The conversation is now with "${current}". Agents:`,
      ...this.config.agents.map((a) => `- ${a.name}: ${a.description ?? a.instructions.split('\n')[0]!.slice(0, 200)}`),
      `Call ${ROUTE_TOOL_NAME} with the agent that should answer next (keep "${current}" unless another fits better).`,
    ].join('\n');
    try {
      const request: ChatCompletionCreateParamsNonStreaming = {
        model: this.config.router?.model ?? this.options.model ?? 'gpt-4o-mini',
        messages: buildChatMessages(conversation, { systemPrompt: instructions, maxTranscriptMessages: 40 }),
        tools: [tool],
        tool_choice: { type: 'function', function: { name: ROUTE_TOOL_NAME } },
      };
      const completion = await this.completions.create(encodeChatRequest(request), signal);
      const call = completion.choices[0]?.message.tool_calls?.find((c) => c.type === 'function' && c.function.name === ROUTE_TOOL_NAME);
      const parsed = call && call.type === 'function' ? Args.safeParse(JSON.parse(call.function.arguments || '{}')) : undefined;
      if (!parsed?.success) {
        log?.warn({ current }, 'the router gave no valid route; the current agent answers');
        return undefined;
      }
      return { target: parsed.data.target, ...(parsed.data.reason ? { reason: parsed.data.reason } : {}) };
    } catch (err) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : err;
      log?.warn({ err: (err as Error).message, current }, 'the router failed; the current agent answers');
      return undefined;
    }
  }
}

/** The earlier transcript as one block (the SDK's nest_handoff_history), newest kept when long. */
export function nestedSummary(messages: readonly Message[]): string {
  const lines = messages
    .filter((m) => (m.visibility === 'public' && !m.notice) || m.handback)
    .map((m) => {
      const who = m.author.role === 'customer' ? 'Customer' : m.author.role === 'agent' ? `${m.author.name ?? 'Agent'} (agent)` : m.author.role === 'operator' ? `${m.author.name ?? 'Operator'} (support team)` : 'Support team';
      return `- ${who}: ${m.handback?.note ? `handed back: ${m.handback.note}` : m.text}`.replace(/\s+/g, ' ');
    });
  let text = lines.join('\n');
  if (text.length > MAX_SUMMARY_CHARS) text = '…' + text.slice(text.length - MAX_SUMMARY_CHARS + 1);
  return text;
}

/**
 * Several agents from the environment: `AGENTS_FILE` (YAML or JSON) with the OpenAI settings the
 * single agent uses (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_MODEL`, ...). Undefined when
 * `AGENTS_FILE` is not set: the single agent runs.
 */
export function multiAgentFromEnv(env: Record<string, string | undefined>, options: { tools: AgentTool[]; logger?: Logger }): MultiAgent | undefined {
  const path = env.AGENTS_FILE?.trim();
  if (!path) return undefined;
  const apiKey = env.OPENAI_API_KEY?.trim();
  if (!apiKey) throw new ConfigError('AGENTS_FILE', 'several agents run on a model: set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server)');
  const config = validateMultiAgentConfig(loadMultiAgentFile(path), options.tools, 'AGENTS_FILE');
  const whole = (name: string, min: number): number | undefined => {
    const raw = env[name]?.trim();
    if (!raw) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new ConfigError(name, `expected a whole number >= ${min}, got "${raw}"`);
    return n;
  };
  const timeoutMs = whole('OPENAI_TIMEOUT_MS', 1);
  const maxRetries = whole('OPENAI_MAX_RETRIES', 0);
  const transcriptWindow = whole('AGENT_TRANSCRIPT_WINDOW', 1);
  return new MultiAgent(config, {
    apiKey,
    baseURL: env.OPENAI_BASE_URL?.trim() || DEFAULT_BASE_URL,
    ...(env.OPENAI_MODEL?.trim() ? { model: env.OPENAI_MODEL.trim() } : {}),
    tools: options.tools,
    ...(env.AGENT_BRAND_NAME?.trim() ? { brandName: env.AGENT_BRAND_NAME.trim() } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(maxRetries !== undefined ? { maxRetries } : {}),
    ...(transcriptWindow !== undefined ? { transcriptWindow } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
}
