/**
 * Signed webhooks: the `webhooks` destination turns committed work (ownership changes, transcript
 * messages) into events (`engine/webhook-events.ts`) and POSTs each, redacted, to every
 * `WEBHOOK_URL`, signed the way Slack signs requests:
 *
 *   X-Handoff-Timestamp: <unix seconds>
 *   X-Handoff-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<raw body>" with WEBHOOK_SECRET>
 *
 * It is durable work like any other destination: retried with backoff, in order per
 * conversation, picked up again after a restart. 2xx is done; 408, 429, 5xx, timeouts and
 * connection errors are retried; any other 4xx (and a redirect) is a refusal no retry will change.
 * Delivery is at least once: the event `id` is the same on every retry, so receivers dedupe on it.
 * With several URLs, one that accepted is not sent the event again while another is retried.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import type { Effect } from '../engine/commit.ts';
import { Redactor } from '../engine/redact.ts';
import { toWebhookEvent, WEBHOOK_EVENT_TYPES, type WebhookEvent, type WebhookEventType } from '../engine/webhook-events.ts';
import type { KeyValue, WorkItem } from '../store/store.ts';
import { parseRetryAfter } from './backoff.ts';
import { PermanentDeliveryError, RetryLaterError } from './outcome.ts';
import type { Destination, WorkContext } from './worker.ts';

/** The destination name work items for webhooks are addressed to. */
export const WEBHOOKS = 'webhooks';

export interface WebhookConfig {
  urls: string[];
  secret: string;
  /** Per request. */
  timeoutMs: number;
  /** Only these event types are sent (default: all). */
  events: WebhookEventType[];
}

// ---- configuration -------------------------------------------------------------------------

const EnvSchema = z.object({
  WEBHOOK_URL: z.string().describe('comma-separated http(s) URLs'),
  WEBHOOK_SECRET: z.string().min(16).describe('a shared secret of at least 16 characters (e.g. openssl rand -hex 32)'),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000).describe('milliseconds from 100 to 120000'),
  WEBHOOK_EVENTS: z.string().optional().describe(`comma-separated event types (${WEBHOOK_EVENT_TYPES.join(', ')}) or *`),
});

/**
 * Webhooks from the environment, or undefined when `WEBHOOK_URL` is not set. A wrong value stops
 * start-up with one line naming the variable (the secret is never echoed).
 */
export function webhookConfigFromEnv(env: Record<string, string | undefined>): WebhookConfig | undefined {
  const raw = env.WEBHOOK_URL?.trim();
  if (!raw) return undefined;
  const parsed = EnvSchema.safeParse({
    WEBHOOK_URL: raw,
    WEBHOOK_SECRET: env.WEBHOOK_SECRET?.trim() ?? '',
    ...(env.WEBHOOK_TIMEOUT_MS?.trim() ? { WEBHOOK_TIMEOUT_MS: env.WEBHOOK_TIMEOUT_MS.trim() } : {}),
    ...(env.WEBHOOK_EVENTS?.trim() ? { WEBHOOK_EVENTS: env.WEBHOOK_EVENTS.trim() } : {}),
  });
  if (!parsed.success) {
    const variable = String(parsed.error.issues[0]!.path[0]) as keyof typeof EnvSchema.shape;
    const expected = EnvSchema.shape[variable].description ?? parsed.error.issues[0]!.message;
    if (variable === 'WEBHOOK_SECRET') throw new ConfigError(variable, env.WEBHOOK_SECRET?.trim() ? `expected ${expected}` : `required with WEBHOOK_URL: ${expected}`);
    throw new ConfigError(variable, `expected ${expected}, got "${env[variable]}"`);
  }
  const urls: string[] = [];
  for (const entry of parsed.data.WEBHOOK_URL.split(',').map((u) => u.trim()).filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw new ConfigError('WEBHOOK_URL', `expected comma-separated http(s) URLs, got "${entry}"`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError('WEBHOOK_URL', `expected http(s) URLs, got a ${url.protocol} URL`);
    if (!urls.includes(url.href)) urls.push(url.href);
  }
  if (urls.length === 0) throw new ConfigError('WEBHOOK_URL', 'expected at least one http(s) URL');
  let events: WebhookEventType[] = [...WEBHOOK_EVENT_TYPES];
  const list = parsed.data.WEBHOOK_EVENTS?.split(',').map((e) => e.trim()).filter(Boolean);
  if (list && !list.includes('*')) {
    const unknown = list.find((e) => !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e));
    if (unknown) throw new ConfigError('WEBHOOK_EVENTS', `expected ${EnvSchema.shape.WEBHOOK_EVENTS.description}, got "${unknown}"`);
    events = list as WebhookEventType[];
  }
  return { urls, secret: parsed.data.WEBHOOK_SECRET, timeoutMs: parsed.data.WEBHOOK_TIMEOUT_MS, events };
}

// ---- signing -------------------------------------------------------------------------------

/** `v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">`. */
export function signWebhook(secret: string, timestamp: number | string, body: string): string {
  return 'v0=' + createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex');
}

/**
 * What a receiver does: recompute the signature over the RAW body, compare in constant time, and
 * refuse timestamps more than `toleranceSeconds` away (a replayed request).
 */
export function verifyWebhook(input: { secret: string; timestamp: string | undefined; signature: string | undefined; body: string; toleranceSeconds?: number; now?: number }): boolean {
  const { secret, timestamp, signature, body } = input;
  if (!timestamp || !signature || !/^\d+$/.test(timestamp)) return false;
  const now = Math.floor((input.now ?? Date.now()) / 1000);
  if (Math.abs(now - Number(timestamp)) > (input.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

// ---- routing -------------------------------------------------------------------------------

/**
 * Whether an engine effect is also work for the webhooks: every ownership change, and every
 * transcript message the first time it is mirrored (a catch-up copy for one workspace, `only`, is not).
 */
export function wantsWebhook(effect: Effect): boolean {
  return effect.kind === 'ownership' || (effect.kind === 'mirror' && !effect.only);
}

// ---- the destination -----------------------------------------------------------------------

export interface WebhookDestinationOptions {
  config: WebhookConfig;
  /** The policy's redaction; events are always built from redacted copies. */
  redactor?: Redactor;
  /** Where each URL's "accepted" is remembered while another URL is retried (`store.kv('webhooks')`). */
  kv?: KeyValue;
  fetch?: typeof fetch;
  now?: () => number;
}

type Outcome = { url: string; ok: true } | { url: string; ok: false; permanent: boolean; retryAfterMs?: number; why: string };

/** How long a URL's accepted mark is kept: longer than any retry of one item. */
const MARK_TTL_MS = 7 * 24 * 60 * 60 * 1000;
const MAX_RETRY_AFTER_MS = 15 * 60 * 1000;
/** A receiver asking for "now" again and again is not hammered. */
const MIN_RETRY_AFTER_MS = 1000;

export class WebhookDestination implements Destination {
  readonly name = WEBHOOKS;
  /** Off the customer's path: attempt records share other writes' fsync (`Destination.patient`). */
  readonly patient = true;
  private readonly config: WebhookConfig;
  private readonly redactor: Redactor;
  private readonly kv: KeyValue | undefined;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;

  constructor(options: WebhookDestinationOptions) {
    this.config = options.config;
    this.redactor = options.redactor ?? new Redactor();
    this.kv = options.kv;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
  }

  /** The event this item becomes, if any (also what the tests compare against). */
  eventFor(item: WorkItem, context: Pick<WorkContext, 'conversation'>): WebhookEvent | undefined {
    const event = toWebhookEvent(item, context.conversation, this.redactor);
    return event && this.config.events.includes(event.type) ? event : undefined;
  }

  async handle(item: WorkItem, context: WorkContext): Promise<void> {
    const event = this.eventFor(item, context);
    if (!event) return;
    const body = JSON.stringify(event);
    const pending: string[] = [];
    for (const url of this.config.urls) if (!(await this.accepted(event.id, url))) pending.push(url);
    const outcomes = await Promise.all(pending.map((url) => this.post(url, event, body, context)));
    for (const o of outcomes) if (o.ok || o.permanent) await this.mark(event.id, o.url);
    const failed = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
    const transient = failed.filter((o) => !o.permanent);
    if (transient.length > 0) {
      const why = transient.map((o) => o.why).join('; ');
      // Only a receiver that asked for a time sets it; anything else backs off.
      if (transient.every((o) => o.retryAfterMs !== undefined)) throw new RetryLaterError(Math.max(...transient.map((o) => o.retryAfterMs!)), why);
      throw new Error(why);
    }
    if (failed.length > 0) throw new PermanentDeliveryError(`${event.type} ${event.id} refused: ${failed.map((o) => o.why).join('; ')}`);
  }

  private async post(url: string, event: WebhookEvent, body: string, context: WorkContext): Promise<Outcome> {
    const timestamp = Math.floor(this.now() / 1000);
    const where = new URL(url).origin; // paths may hold tokens: errors name the origin only
    const signal = AbortSignal.any([context.signal, AbortSignal.timeout(this.config.timeoutMs)]);
    let res: Response;
    try {
      res = await this.fetch(url, {
        method: 'POST',
        redirect: 'manual',
        signal,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'handoff-bridge-webhooks/1',
          'x-handoff-timestamp': String(timestamp),
          'x-handoff-signature': signWebhook(this.config.secret, timestamp, body),
          'x-handoff-event': event.type,
          'x-handoff-delivery': event.id,
          'x-handoff-attempt': String(context.attempt.count),
        },
        body,
      });
    } catch (err) {
      if (context.signal.aborted) throw context.signal.reason;
      const why = (err as Error).name === 'TimeoutError' ? `timed out after ${this.config.timeoutMs} ms` : `failed: ${(err as Error).message}`;
      return { url, ok: false, permanent: false, why: `${where} ${why}` };
    }
    await res.body?.cancel().catch(() => {});
    const status = res.status;
    if (status >= 200 && status < 300) return { url, ok: true };
    const why = `${where} answered ${status}`;
    if (status === 429) return { url, ok: false, permanent: false, why, ...optionalRetryAfter(res.headers.get('retry-after'), this.now()) };
    if (status === 408 || status >= 500) return { url, ok: false, permanent: false, why };
    return { url, ok: false, permanent: true, why: status >= 300 && status < 400 ? `${why} (redirects are not followed: configure the final URL)` : why };
  }

  private markKey(eventId: string, url: string): string {
    return `${eventId}|${createHash('sha256').update(url).digest('hex').slice(0, 16)}`;
  }

  private async accepted(eventId: string, url: string): Promise<boolean> {
    if (!this.kv || this.config.urls.length < 2) return false;
    return (await this.kv.get<boolean>(this.markKey(eventId, url))) === true;
  }

  private async mark(eventId: string, url: string): Promise<void> {
    if (!this.kv || this.config.urls.length < 2) return;
    await this.kv.set(this.markKey(eventId, url), true, MARK_TTL_MS);
  }
}

/** A 429's Retry-After (seconds or an HTTP date), capped. */
function optionalRetryAfter(header: string | null, now: number): { retryAfterMs?: number } {
  const ms = parseRetryAfter(header, now);
  return ms === undefined ? {} : { retryAfterMs: Math.min(MAX_RETRY_AFTER_MS, Math.max(MIN_RETRY_AFTER_MS, ms)) };
}
