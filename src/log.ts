/**
 * Structured logs (pino). Use `conversationLogger` so every line about a conversation carries its
 * id and ticket.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(options: { level?: string; pretty?: boolean } = {}): Logger {
  return pino({
    level: options.level ?? 'info',
    base: { service: 'handoff-bridge' },
    redact: { paths: ['*.token', '*.password', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
  });
}

/** A silent logger for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

export function conversationLogger(logger: Logger, conversation: { id: string; ticket: string }): Logger {
  return logger.child({ conversationId: conversation.id, ticket: conversation.ticket });
}
