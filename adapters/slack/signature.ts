/**
 * Slack request signing: `v0=` + HMAC-SHA256(signing secret, `v0:{timestamp}:{raw body}`), sent in
 * `X-Slack-Signature` with `X-Slack-Request-Timestamp`. Requests older than five minutes are stale
 * (replay protection). Pure functions; the receiver calls them before anything else happens.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a request's timestamp may be from now, either way. */
export const MAX_REQUEST_AGE_SECONDS = 5 * 60;

export type SignatureVerdict = { ok: true } | { ok: false; reason: 'missing_headers' | 'stale' | 'bad_signature' };

/** The signature Slack would send for `body` at `timestamp` (seconds). */
export function signSlackBody(signingSecret: string, timestamp: number | string, body: string | Buffer): string {
  const hmac = createHmac('sha256', signingSecret);
  hmac.update(`v0:${timestamp}:`);
  hmac.update(body);
  return `v0=${hmac.digest('hex')}`;
}

/** Checks a request's signature and age in constant time. */
export function verifySlackSignature(input: {
  signingSecret: string;
  body: Buffer | string;
  timestamp: string | undefined;
  signature: string | undefined;
  nowMs?: number;
}): SignatureVerdict {
  const { timestamp, signature } = input;
  if (!timestamp || !signature) return { ok: false, reason: 'missing_headers' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'stale' };
  const nowSeconds = Math.floor((input.nowMs ?? Date.now()) / 1000);
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_REQUEST_AGE_SECONDS) return { ok: false, reason: 'stale' };
  const expected = Buffer.from(signSlackBody(input.signingSecret, timestamp, input.body));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad_signature' };
  return { ok: true };
}
