/**
 * Structured logs (pino). Use `conversationLogger` so every line about a conversation carries its
 * id and ticket.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/**
 * The conversation being worked on. The bridge sets it around each conversation's work, so every
 * log line written meanwhile (adapters' retries included) carries the conversation id and ticket.
 */
export const logContext = new AsyncLocalStorage<{ conversationId: string; ticket: string }>();

/** Runs `fn` with the conversation's ids on every log line it writes. */
export function withConversationContext<T>(conversation: { id: string; ticket: string }, fn: () => T): T {
  return logContext.run({ conversationId: conversation.id, ticket: conversation.ticket }, fn);
}

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  const settings = {
    level: options.level ?? 'info',
    base: { service: 'handoff-bridge' },
    mixin: () => logContext.getStore() ?? {},
    redact: { paths: ['*.token', '*.password', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/** A silent logger for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

export function conversationLogger(logger: Logger, conversation: { id: string; ticket: string }): Logger {
  // Inside that conversation's context the mixin adds the ids already.
  if (logContext.getStore()?.conversationId === conversation.id) return logger;
  return logger.child({ conversationId: conversation.id, ticket: conversation.ticket });
}
