/**
 * A loopback webhook receiver that behaves like a real one: it reads the raw body, verifies the
 * signature the documented way (HMAC-SHA256 of `v0:<timestamp>:<raw body>`, constant-time compare,
 * 5-minute window), dedupes on the event id, and can fail on demand (503s, 429s, slow answers).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  index: number;
  headers: IncomingHttpHeaders;
  raw: string;
  /** Parsed body (undefined if it was not JSON). */
  body: { type: string; id: string; conversation_id: string; [key: string]: unknown } | undefined;
  signatureValid: boolean;
  status: number;
  at: number;
}

/** How the receiver answers one request. */
export type Answer = number | { status: number; delayMs?: number; headers?: Record<string, string> };

export interface Receiver {
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** Answers in order, one per request, then `fallback` (default 200). */
  script(...answers: Answer[]): void;
  /** Answers from a function of the request instead (after the script runs out). */
  answerWith(fn: (request: ReceivedRequest) => Answer | undefined): void;
  /** Events accepted (2xx) with a valid signature, first delivery of each id only, in arrival order. */
  accepted(): NonNullable<ReceivedRequest['body']>[];
  /** How many times each id was accepted (before dedupe). */
  acceptedCounts(): Map<string, number>;
  close(): Promise<void>;
}

export function verifySignature(secret: string, headers: IncomingHttpHeaders, raw: string, now = Date.now()): boolean {
  const timestamp = String(headers['x-handoff-timestamp'] ?? '');
  const signature = String(headers['x-handoff-signature'] ?? '');
  if (!/^\d+$/.test(timestamp) || Math.abs(now / 1000 - Number(timestamp)) > 300) return false;
  const expected = Buffer.from('v0=' + createHmac('sha256', secret).update(`v0:${timestamp}:${raw}`).digest('hex'));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export async function startReceiver(secret: string): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const queue: Answer[] = [];
  let fn: ((r: ReceivedRequest) => Answer | undefined) | undefined;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: ReceivedRequest['body'];
      try {
        body = JSON.parse(raw) as ReceivedRequest['body'];
      } catch {
        body = undefined;
      }
      const request: ReceivedRequest = { index: requests.length, headers: req.headers, raw, body, signatureValid: verifySignature(secret, req.headers, raw), status: 0, at: Date.now() };
      requests.push(request);
      const answer = queue.shift() ?? fn?.(request) ?? 200;
      const { status, delayMs, headers } = typeof answer === 'number' ? { status: answer, delayMs: 0, headers: {} } : { delayMs: 0, headers: {}, ...answer };
      // A receiver refuses what it cannot verify.
      request.status = request.signatureValid ? status : 401;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(request.status, { 'content-type': 'text/plain', ...headers }).end(request.status < 300 ? 'ok' : 'no');
      };
      if (delayMs) setTimeout(send, delayMs);
      else send();
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const ok = (r: ReceivedRequest) => r.status >= 200 && r.status < 300 && r.signatureValid && r.body;
  return {
    url: `http://127.0.0.1:${port}/hooks/handoff`,
    requests,
    script: (...answers) => void queue.push(...answers),
    answerWith: (f) => {
      fn = f;
    },
    accepted() {
      const seen = new Set<string>();
      const out: NonNullable<ReceivedRequest['body']>[] = [];
      for (const r of requests) {
        if (!ok(r) || seen.has(r.body!.id)) continue;
        seen.add(r.body!.id);
        out.push(r.body!);
      }
      return out;
    },
    acceptedCounts() {
      const counts = new Map<string, number>();
      for (const r of requests) if (ok(r)) counts.set(r.body!.id, (counts.get(r.body!.id) ?? 0) + 1);
      return counts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
