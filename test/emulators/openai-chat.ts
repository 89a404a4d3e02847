/**
 * A loopback server that speaks OpenAI Chat Completions (`POST /v1/chat/completions`, non-streaming)
 * from a script, and records every request body. It checks what the real API checks that our agent
 * could get wrong (bearer key, model, message shapes, every tool call answered by a `tool` message)
 * and can misbehave on demand: 429 with Retry-After, 5xx, or a slow answer (to test aborts).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A tool call the scripted model makes; `arguments` objects are JSON-encoded, strings sent as is. */
export interface ScriptedToolCall {
  name: string;
  arguments: Record<string, unknown> | string;
  id?: string;
}

/** One scripted answer. */
export type ChatStep =
  | { reply: string; finishReason?: 'stop' | 'length' | 'content_filter' }
  | { toolCalls: ScriptedToolCall[]; content?: string }
  | { refusal: string }
  | { status: 429; retryAfterSeconds?: number }
  | { status: 400 | 401 | 404 | 500 | 502 | 503; message?: string };

/** Wraps a step to answer only after `delayMs` (the connection stays open meanwhile). */
export type TimedStep = ChatStep & { delayMs?: number };

export interface RecordedChatRequest {
  body: ChatRequestBody;
  headers: IncomingMessage['headers'];
  /** True when the client went away before the answer was sent (an aborted request). */
  aborted: boolean;
}

/** The subset of the request body the emulator reads. */
export interface ChatRequestBody {
  model: string;
  messages: Array<{ role: string; content?: unknown; tool_calls?: Array<{ id: string; type: string; function: { name: string; arguments: string } }>; tool_call_id?: string; name?: string }>;
  tools?: Array<{ type: string; function: { name: string; description?: string; parameters?: Record<string, unknown> } }>;
  tool_choice?: unknown;
  [key: string]: unknown;
}

export interface ChatEmulator {
  /** Base URL for the OpenAI client (`.../v1`). */
  readonly baseURL: string;
  readonly requests: RecordedChatRequest[];
  /** Queue answers, used in order, one per request. */
  enqueue(...steps: TimedStep[]): void;
  /** Answer from a function of the request instead of (after) the queue. */
  respondWith(handler: (body: ChatRequestBody, index: number) => TimedStep): void;
  /** The last request body received. */
  lastRequest(): ChatRequestBody;
  /** Resolves once `count` requests have arrived (event-driven, no polling). */
  waitForRequests(count: number): Promise<void>;
  /** Resolves once request number `index` (0-based) was aborted by the client. */
  waitForAbort(index: number): Promise<void>;
  close(): Promise<void>;
}

/** Helpers that read like the script they write. */
export const chat = {
  reply: (text: string): ChatStep => ({ reply: text }),
  call: (name: string, args: Record<string, unknown> | string, id?: string): ChatStep => ({ toolCalls: [{ name, arguments: args, ...(id ? { id } : {}) }] }),
};

const API_KEY_PATTERN = /^Bearer \S+$/;

export async function startChatEmulator(): Promise<ChatEmulator> {
  const queue: TimedStep[] = [];
  let handler: ((body: ChatRequestBody, index: number) => TimedStep) | undefined;
  const requests: RecordedChatRequest[] = [];
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  const waitUntil = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      if (done()) return resolve();
      const check = () => {
        if (done()) {
          listeners.delete(check);
          resolve();
        }
      };
      listeners.add(check);
    });

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, `emulator failure: ${(err as Error).message}`, 'server_error');
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url?.split('?')[0] !== '/v1/chat/completions') {
      return sendError(res, 404, `Invalid URL (${req.method} ${req.url})`, 'invalid_request_error');
    }
    if (!API_KEY_PATTERN.test(req.headers.authorization ?? '')) {
      return sendError(res, 401, "You didn't provide an API key.", 'invalid_request_error', 'invalid_api_key');
    }
    const raw = await readAll(req);
    let body: ChatRequestBody;
    try {
      body = JSON.parse(raw) as ChatRequestBody;
    } catch {
      return sendError(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error');
    }
    const record: RecordedChatRequest = { body, headers: req.headers, aborted: false };
    const index = requests.push(record) - 1;
    res.on('close', () => {
      if (!res.writableFinished) {
        record.aborted = true;
        notify();
      }
    });
    notify();

    const invalid = validate(body);
    if (invalid) return sendError(res, 400, invalid, 'invalid_request_error', null, 'messages');

    const step = queue.shift() ?? handler?.(body, index);
    if (!step) {
      return sendError(res, 400, `openai-chat emulator: no scripted answer left for request #${index + 1}`, 'invalid_request_error');
    }
    if (step.delayMs) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, step.delayMs);
        res.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (res.destroyed || res.writableEnded) return;
    }
    answer(res, body, step);
  }

  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;

  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    enqueue: (...steps) => void queue.push(...steps),
    respondWith: (fn) => {
      handler = fn;
    },
    lastRequest() {
      const last = requests.at(-1);
      if (!last) throw new Error('The chat emulator has received no request yet.');
      return last.body;
    },
    waitForRequests: (count) => waitUntil(() => requests.length >= count),
    waitForAbort: (index) => waitUntil(() => requests[index]?.aborted === true),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The checks the real API makes that a tool-calling client can fail. */
function validate(body: ChatRequestBody): string | undefined {
  if (typeof body.model !== 'string' || !body.model) return "you must provide a model parameter";
  if (!Array.isArray(body.messages) || body.messages.length === 0) return "[] is too short - 'messages'";
  const pending = new Set<string>();
  for (const [i, m] of body.messages.entries()) {
    if (!['system', 'developer', 'user', 'assistant', 'tool'].includes(m.role)) return `Invalid value: '${m.role}'. Supported values are: 'system', 'assistant', 'user', 'tool', 'developer'.`;
    if (m.role === 'tool') {
      if (!m.tool_call_id || !pending.delete(m.tool_call_id)) {
        return `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. (messages[${i}])`;
      }
      if (typeof m.content !== 'string') return `Invalid type for 'messages[${i}].content': expected a string.`;
      continue;
    }
    if (pending.size > 0) {
      return `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`;
    }
    if (m.role === 'assistant') {
      for (const call of m.tool_calls ?? []) pending.add(call.id);
      if ((m.tool_calls ?? []).length === 0 && (m.content === null || m.content === undefined)) {
        return `Invalid value for 'messages[${i}].content': expected content when there are no tool_calls.`;
      }
    } else if (typeof m.content !== 'string' || m.content.length === 0) {
      return `Invalid 'messages[${i}].content': expected a non-empty string.`;
    }
  }
  if (pending.size > 0) return `The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`;
  const names = new Set((body.tools ?? []).map((t) => t.function?.name));
  for (const t of body.tools ?? []) {
    if (t.type !== 'function' || !t.function?.name) return "Invalid 'tools': each tool needs type 'function' and a function name.";
    if (t.function.parameters && t.function.parameters.type !== 'object') return `Invalid schema for function '${t.function.name}': schema must be a JSON Schema of 'type: "object"'.`;
  }
  if (names.size !== (body.tools ?? []).length) return 'Duplicate tool names.';
  return undefined;
}

function answer(res: ServerResponse, body: ChatRequestBody, step: ChatStep): void {
  if ('status' in step) {
    if (step.status === 429) {
      res.setHeader('retry-after', String(step.retryAfterSeconds ?? 0));
      return sendError(res, 429, 'Rate limit reached for requests. Please try again later.', 'requests', 'rate_limit_exceeded');
    }
    return sendError(res, step.status, step.message ?? 'The server had an error while processing your request.', step.status >= 500 ? 'server_error' : 'invalid_request_error');
  }
  const message: Record<string, unknown> = { role: 'assistant', content: null, refusal: null, annotations: [] };
  let finishReason = 'stop';
  if ('reply' in step) {
    message.content = step.reply;
    finishReason = step.finishReason ?? 'stop';
  } else if ('refusal' in step) {
    message.refusal = step.refusal;
  } else {
    message.content = step.content ?? null;
    message.tool_calls = step.toolCalls.map((call) => ({
      id: call.id ?? `call_${randomBytes(12).toString('base64url')}`,
      type: 'function',
      function: { name: call.name, arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments) },
    }));
    finishReason = 'tool_calls';
  }
  const promptTokens = Math.ceil(JSON.stringify(body.messages).length / 4);
  const completionTokens = Math.ceil(JSON.stringify(message).length / 4);
  const payload = {
    id: `chatcmpl-${randomBytes(15).toString('base64url')}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    },
    service_tier: 'default',
    system_fingerprint: 'fp_emulator',
  };
  send(res, 200, payload);
}

function sendError(res: ServerResponse, status: number, message: string, type: string, code: string | null = null, param: string | null = null): void {
  send(res, status, { error: { message, type, param, code } });
}

function send(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-request-id': `req_${randomBytes(8).toString('hex')}`,
    'openai-processing-ms': '1',
  });
  res.end(text);
}

function readAll(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
