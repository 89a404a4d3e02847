/**
 * How a destination says an attempt did not work. Anything else thrown counts as transient:
 * retried with backoff, in order, for as long as it takes.
 */

/** The destination asked us to come back later (Slack's or Teams' 429). Holds only this conversation. */
export class RetryLaterError extends Error {
  constructor(readonly retryAfterMs: number, message = `Asked to retry after ${retryAfterMs} ms.`) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

/**
 * The destination refused this item for good (a 4xx that no retry will change). The worker
 * records it and moves on, so one bad item never blocks the conversation behind it. A
 * destination that can send something smaller instead does so before throwing this.
 */
export class PermanentDeliveryError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'PermanentDeliveryError';
  }
}
