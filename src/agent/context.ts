/**
 * Turns a conversation into Chat Completions messages: the system prompt, then the transcript the
 * customer saw, with each hand-back as one structured context message so the agent continues from
 * what the operator decided and said, not from its earlier plan. Pure functions, no I/O.
 */
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { Conversation, HandbackContext, Message } from '../model.ts';

export interface ChatContextOptions {
  /** Replaces the default system prompt entirely. */
  systemPrompt?: string;
  /** The company the agent speaks for, used in the default system prompt. */
  brandName?: string;
  /**
   * Role of the hand-back message. `system` (default) works with OpenAI; some OpenAI-compatible
   * servers only accept a system message first, for those use `user` (the text says it is from the
   * support team, not the customer).
   */
  handbackRole?: 'system' | 'developer' | 'user';
  /** Keeps only the most recent transcript messages, so long conversations fit the context window. */
  maxTranscriptMessages?: number;
}

const DEFAULT_MAX_TRANSCRIPT = 80;

/** The default instructions for the support agent. */
export function defaultSystemPrompt(brandName = 'our company'): string {
  return [
    `You are the customer support assistant for ${brandName}. You talk with one customer in this conversation.`,
    'Be concise, friendly and concrete. Answer in the language the customer writes in.',
    'Use the tools to look things up instead of guessing; never invent order details, amounts or policies.',
    'Call escalate_to_human when the customer asks for a person, when you cannot resolve the request, when a',
    'decision is above your authority, or when the customer is upset; fill in the briefing so a person understands',
    'the case in 30 seconds, and offer options they can pick without taking over when there are clear choices.',
    'Some tools need a person\'s approval; if a tool call is refused, escalate instead of retrying it.',
    'Messages that start with "[<name>, support team]" were written by a person on our team, not by you;',
    'the customer saw them. Never start your own messages with such a tag.',
  ].join('\n');
}

/** Context about the case that the model needs on every turn (who, where, what was approved). */
function caseFacts(conversation: Conversation): string {
  const customer = conversation.customer;
  const who = [customer.name, customer.email].filter(Boolean).join(', ') || customer.id;
  const lines = [
    `Conversation ${conversation.ticket} with ${who}, via ${conversation.origin}.`,
    ...(conversation.subject ? [`Subject: ${conversation.subject}`] : []),
  ];
  const open = conversation.approvals.filter((a) => !a.usedAt);
  if (open.length > 0) {
    const calls = open.map((a) => (a.args !== undefined ? `${a.tool}(${JSON.stringify(a.args)})` : a.amount !== undefined ? `${a.tool} for ${a.amount}` : a.tool));
    lines.push(`A person approved these calls for one use each, with exactly the arguments they were shown: ${[...new Set(calls)].join(', ')}.`);
  }
  if (conversation.pendingEscalation) {
    lines.push(
      `A person was asked for (${conversation.pendingEscalation.reason}), but nobody from the support team can answer yet; the customer was told when one will. Keep helping meanwhile, and do not promise that a person is joining now.`,
    );
  }
  return lines.join('\n');
}

function operatorTag(name: string | undefined): string {
  return `[${name?.trim() || 'Operator'}, support team]`;
}

function speaker(role: HandbackContext['humanStretch'][number]['role'], name: string | undefined): string {
  switch (role) {
    case 'customer':
      return 'Customer';
    case 'operator':
      return name?.trim() ? `${name.trim()} (operator)` : 'Operator';
    case 'agent':
      return 'You (agent)';
    case 'system':
      return 'Notice';
  }
}

/**
 * The hand-back as one message: who returned control and when, the operator's note, the decision,
 * and what was said while a person held the conversation. Shared by every agent implementation.
 */
export function formatHandback(handback: HandbackContext): string {
  const by = handback.by?.name ?? 'the support team';
  const lines: string[] = [];
  if (handback.kind === 'fallback') {
    lines.push(`Nobody from the support team was available to take this conversation (asked at ${handback.at}); it is yours again.`);
    lines.push('The customer was told no person is free right now and their ticket stays open. Keep helping as well as you can; do not promise that a person will join soon.');
    return lines.join('\n');
  }
  if (handback.kind === 'decision') {
    lines.push(`${by} answered your escalation at ${handback.at}; the conversation is yours again.`);
  } else {
    lines.push(`Control of this conversation was returned to you by ${by} at ${handback.at}.`);
  }
  lines.push(handback.note?.trim() ? `Operator's note: ${handback.note.trim()}` : "Operator's note: (none)");
  const decision = handback.decision;
  if (decision) {
    const note = decision.note?.trim() && decision.note.trim() !== handback.note?.trim() ? ` (note: ${decision.note.trim()})` : '';
    lines.push(`Decision: ${decision.label} [${decision.optionId}], chosen by ${decision.by.name} at ${decision.at}${note}.`);
  }
  if (handback.humanStretch.length > 0) {
    lines.push('What was said while a person handled the conversation:');
    for (const said of handback.humanStretch) lines.push(`- ${speaker(said.role, said.name)}: ${said.text}`);
  } else if (handback.kind === 'return') {
    lines.push('Nothing was said to the customer while a person handled the conversation.');
  }
  lines.push(
    'Continue from these facts, not your earlier plan. Do not repeat what the operator already told the customer, and do not contradict their decision.',
  );
  return lines.join('\n');
}

function withAttachments(message: Message): string {
  const files = (message.attachments ?? []).map((a) => `[attachment: ${a.name}${a.contentType ? ` (${a.contentType})` : ''}]`);
  return [message.text, ...files].filter((s) => s.trim().length > 0).join('\n');
}

/** Tool output longer than this is cut when replayed from the transcript. */
const MAX_REPLAYED_TOOL_CHARS = 4_000;

/**
 * The tool calls an earlier agent turn made, replayed as the assistant tool-call message plus one
 * `tool` message per call (the shape the API requires), so the model remembers what it looked up.
 */
function replayActions(message: Message): ChatCompletionMessageParam[] {
  const actions = message.actions ?? [];
  if (actions.length === 0) return [];
  const ids = actions.map((_, i) => `call_${message.id}_${i}`.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, 64));
  const calls: ChatCompletionMessageParam = {
    role: 'assistant',
    content: null,
    tool_calls: actions.map((a, i) => ({ id: ids[i]!, type: 'function', function: { name: a.tool, arguments: safeJson(a.input ?? {}) } })),
  };
  const results: ChatCompletionMessageParam[] = actions.map((a, i) => {
    const output = a.output === undefined ? 'OK' : typeof a.output === 'string' ? a.output : safeJson(a.output);
    const content = a.ok ? output : `Error: ${output}`;
    return { role: 'tool', tool_call_id: ids[i]!, content: content.length > MAX_REPLAYED_TOOL_CHARS ? `${content.slice(0, MAX_REPLAYED_TOOL_CHARS - 1)}…` : content };
  });
  return [calls, ...results];
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return String(value);
  }
}

/** One transcript message as the model should see it (possibly several chat messages, or none). */
function toChatMessages(message: Message, handbackRole: NonNullable<ChatContextOptions['handbackRole']>): ChatCompletionMessageParam[] {
  // A hand-back is internal (never shown to the customer) but is exactly what the agent must read.
  if (message.handback) {
    const content = formatHandback(message.handback);
    return [handbackRole === 'user' ? { role: 'user', content: `[Context from the support team, not from the customer]\n${content}` } : { role: handbackRole, content }];
  }
  // The agent's own tool calls matter even on its internal "tried before escalating" message.
  if (message.author.role === 'agent') {
    const said: ChatCompletionMessageParam[] = message.visibility === 'public' && message.text.trim() ? [{ role: 'assistant', content: message.text }] : [];
    return [...replayActions(message), ...said];
  }
  // Internal notes are between operators; status notices are the bridge's, not the agent's, words.
  if (message.visibility !== 'public') return [];
  switch (message.author.role) {
    case 'customer': {
      const content = withAttachments(message);
      return content ? [{ role: 'user', content }] : [];
    }
    case 'operator': {
      // The customer saw this from our side of the conversation, so it is an assistant turn; the
      // tag keeps the model from taking it for something it said itself.
      const content = withAttachments(message);
      return content ? [{ role: 'assistant', content: `${operatorTag(message.author.name)} ${content}` }] : [];
    }
    case 'system':
      return [];
  }
}

/** The messages for one Chat Completions request: system prompt, case facts, then the transcript. */
export function buildChatMessages(conversation: Conversation, options: ChatContextOptions = {}): ChatCompletionMessageParam[] {
  const handbackRole = options.handbackRole ?? 'system';
  const system = options.systemPrompt ?? defaultSystemPrompt(options.brandName);
  // One entry per transcript message, so trimming never splits a tool call from its result.
  const transcript: Array<{ chat: ChatCompletionMessageParam[]; handback: boolean }> = [];
  for (const message of conversation.messages) {
    const chat = toChatMessages(message, handbackRole);
    if (chat.length > 0) transcript.push({ chat, handback: message.handback !== undefined });
  }
  const max = Math.max(1, options.maxTranscriptMessages ?? DEFAULT_MAX_TRANSCRIPT);
  const omitted = Math.max(0, transcript.length - max);
  const kept = transcript.slice(omitted);
  // The latest hand-back still binds the agent even when it scrolled out of the window.
  const lastHandback = transcript.findLast((t) => t.handback);
  const carried = lastHandback && !kept.includes(lastHandback) ? lastHandback.chat : [];
  const facts = caseFacts(conversation) + (omitted > 0 ? `\n(${omitted} earlier messages are not shown.)` : '');
  return [{ role: 'system', content: `${system}\n\n${facts}` }, ...carried, ...kept.flatMap((t) => t.chat)];
}
