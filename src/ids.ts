/**
 * Conversation ids that sort by creation time: `conv_` + 8 hex digits of the creation second +
 * 20 random hex digits (80 bits).
 *
 * The stores key their rows by conversation id. With random ids the conversations being worked on
 * are spread over the whole B-tree, so every write of a batch dirties a page of its own; ids of
 * conversations opened around the same time sit next to each other, so the writes of one batch
 * share pages. On SQLite that cut the WAL pages written per message by about 40% (docs/bench.md).
 * Ids made before this (`conv_` + 20 random hex digits) stay valid: nothing parses an id.
 */
import { randomBytes, randomUUID } from 'node:crypto';

export function newConversationId(now: Date): string {
  const seconds = Math.max(0, Math.floor(now.getTime() / 1000));
  return `conv_${seconds.toString(16).padStart(8, '0').slice(-8)}${randomBytes(10).toString('hex')}`;
}

/** Message ids: `msg_` + the first 20 hex digits of a random UUID (sliced around its dashes, no regex). */
export function newMessageId(): string {
  const u = randomUUID();
  return `msg_${u.slice(0, 8)}${u.slice(9, 13)}${u.slice(14, 18)}${u.slice(19, 23)}`;
}
