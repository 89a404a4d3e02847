/**
 * Structured logs (pino). Use `conversationLogger` so every line about a conversation carries its
 * id and ticket. The context is passed explicitly, not through AsyncLocalStorage: on Node 20 that
 * turns on promise hooks for every promise in the process, which cost 4-5% of the CPU under load.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { RecentMap } from './recent-map.ts';

export type Logger = PinoLogger;

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  const settings = {
    level: options.level ?? 'info',
    base: { service: 'handoff-bridge' },
    redact: { paths: ['*.token', '*.password', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/** A silent logger for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Child loggers per parent, for the conversations worked on lately: an exchange asks for several,
 * and making a child is not free. Few, so idle conversations hold none.
 */
const children = new WeakMap<Logger, RecentMap<string, Logger>>();
const CHILDREN_PER_LOGGER = 128;

/** `logger` with the conversation's id and ticket on every line. */
export function conversationLogger(logger: Logger, conversation: { id: string; ticket: string }): Logger {
  let byId = children.get(logger);
  if (!byId) children.set(logger, (byId = new RecentMap(CHILDREN_PER_LOGGER)));
  let child = byId.get(conversation.id);
  if (!child) byId.set(conversation.id, (child = logger.child({ conversationId: conversation.id, ticket: conversation.ticket })));
  return child;
}
