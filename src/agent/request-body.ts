/**
 * The Chat Completions request body as JSON, from pieces kept per frozen part. A request is mostly
 * the tool definitions and the earlier transcript, the same in every turn of a conversation; the
 * transcript's chat messages are frozen and shared (context.ts), so each is encoded once.
 */
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';

const encoded = new WeakMap<object, string>();

/** `JSON.stringify(value)`, kept for a frozen value (which can no longer change). */
function pieceJson(value: object): string {
  if (!Object.isFrozen(value)) return JSON.stringify(value);
  let text = encoded.get(value);
  if (text === undefined) encoded.set(value, (text = JSON.stringify(value)));
  return text;
}

/** Exactly `JSON.stringify(request)`: the same keys in the same order. */
export function encodeChatRequest(request: ChatCompletionCreateParamsNonStreaming): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(request)) {
    if (value === undefined) continue; // as JSON.stringify leaves it out
    const text = key === 'messages' ? `[${(value as object[]).map(pieceJson).join(',')}]` : key === 'tools' ? pieceJson(value as object) : JSON.stringify(value);
    parts.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${parts.join(',')}}`;
}
