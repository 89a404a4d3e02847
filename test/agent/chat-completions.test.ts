/**
 * The Chat Completions client on a loopback HTTP server: what goes on the wire, the SDK's error
 * types for each failure, its retry rules (which statuses, which waits), timeouts and aborts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backoffMs, ChatCompletions, retryDelayMs, shouldRetry } from '../../src/agent/chat-completions.ts';

let server: Server;
let base: string;
let answer: (req: IncomingMessage, res: ServerResponse, body: string) => void;
const seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string; at: number }> = [];

beforeEach(async () => {
  seen.length = 0;
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, at: performance.now() });
      answer(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const json = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
};
const completion = { id: 'c1', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'Hello there', refusal: null } }] };
const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
const live = () => new AbortController().signal;

describe('the Chat Completions client', () => {
  it('posts the body as it is, with the key, and returns the parsed completion', async () => {
    answer = (_req, res) => json(res, 200, completion);
    const client = new ChatCompletions({ apiKey: 'sk-test', baseURL: `${base}/v1/`, organization: 'org_1', project: 'proj_1' });
    expect(await client.create(body, live())).toEqual(completion);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/v1/chat/completions', body });
    expect(seen[0]!.headers).toMatchObject({ authorization: 'Bearer sk-test', 'content-type': 'application/json', 'openai-organization': 'org_1', 'openai-project': 'proj_1' });
  });

  it('retries a 500, then a 429 after its retry-after-ms, and answers', async () => {
    let calls = 0;
    answer = (_req, res) => {
      calls += 1;
      if (calls === 1) return json(res, 500, { error: { message: 'boom' } }, { 'retry-after-ms': '0' });
      if (calls === 2) return json(res, 429, { error: { message: 'later' } }, { 'retry-after-ms': '40' });
      json(res, 200, completion);
    };
    const client = new ChatCompletions({ apiKey: 'sk-test', baseURL: `${base}/v1`, maxRetries: 2 });
    expect((await client.create(body, live())).choices[0]!.message.content).toBe('Hello there');
    expect(calls).toBe(3);
    expect(seen[2]!.at - seen[1]!.at).toBeGreaterThanOrEqual(35); // waited as the server asked
  });

  it('throws the SDK error for the status: no retry on 401 or 400, the last one after the retries run out', async () => {
    answer = (_req, res) => json(res, 401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } });
    const client = new ChatCompletions({ apiKey: 'sk-bad', baseURL: `${base}/v1`, maxRetries: 2 });
    const unauthorized = await client.create(body, live()).catch((err: unknown) => err);
    expect(unauthorized).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(unauthorized).toMatchObject({ status: 401, code: 'invalid_api_key', message: '401 Incorrect API key provided' });
    expect(seen).toHaveLength(1);

    answer = (_req, res) => json(res, 400, { error: { message: 'bad model' } });
    await expect(client.create(body, live())).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    expect(seen).toHaveLength(2);

    answer = (_req, res) => {
      res.writeHead(503, { 'retry-after': '0' });
      res.end('upstream down');
    };
    const down = await new ChatCompletions({ apiKey: 'sk-test', baseURL: `${base}/v1`, maxRetries: 1 }).create(body, live()).catch((err: unknown) => err);
    expect(down).toBeInstanceOf(OpenAI.InternalServerError);
    expect(down).toMatchObject({ status: 503, message: '503 upstream down' });
    expect(seen).toHaveLength(4); // one attempt and one retry
  });

  it('obeys x-should-retry either way', async () => {
    answer = (_req, res) => json(res, 500, { error: { message: 'final' } }, { 'x-should-retry': 'false' });
    const client = new ChatCompletions({ apiKey: 'sk-test', baseURL: `${base}/v1`, maxRetries: 2 });
    await expect(client.create(body, live())).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect(seen).toHaveLength(1);

    let calls = 0;
    answer = (_req, res) => (++calls === 1 ? json(res, 400, { error: { message: 'try again' } }, { 'x-should-retry': 'true', 'retry-after-ms': '0' }) : json(res, 200, completion));
    expect((await client.create(body, live())).id).toBe('c1');
    expect(calls).toBe(2);
  });

  it('a 2xx that is not JSON, a refused connection and a silent server fail with the SDK types', async () => {
    answer = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>proxy login</html>');
    };
    const client = new ChatCompletions({ apiKey: 'sk-test', baseURL: `${base}/v1`, maxRetries: 0 });
    await expect(client.create(body, live())).rejects.toMatchObject({ constructor: OpenAI.APIError, status: 200, message: expect.stringContaining('not JSON') });

    const closed = `http://127.0.0.1:${(server.address() as AddressInfo).port + 1}`;
    await expect(new ChatCompletions({ apiKey: 'sk-test', baseURL: closed, maxRetries: 0 }).create(body, live())).rejects.toBeInstanceOf(OpenAI.APIConnectionError);

    answer = () => {}; // never answers
    const silent = new ChatCompletions({ apiKey: 'sk-test', baseURL: `${base}/v1`, maxRetries: 0, timeoutMs: 100 });
    await expect(silent.create(body, live())).rejects.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
  });

  it('an abort stops the request at once, and a wait before a retry too', async () => {
    answer = () => {}; // never answers
    const client = new ChatCompletions({ apiKey: 'sk-test', baseURL: `${base}/v1` });
    const turn = new AbortController();
    const pending = client.create(body, turn.signal);
    setTimeout(() => turn.abort(new DOMException('claimed', 'AbortError')), 20);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError', message: 'claimed' });

    answer = (_req, res) => json(res, 429, { error: { message: 'later' } }, { 'retry-after': '30' });
    const waiting = new AbortController();
    const started = performance.now();
    const held = client.create(body, waiting.signal);
    setTimeout(() => waiting.abort(new DOMException('claimed', 'AbortError')), 50);
    await expect(held).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('the retry rules (the SDK\'s)', () => {
  const headers = (values: Record<string, string>) => new Headers(values);

  it('retries timeouts, lock timeouts, rate limits and server errors, unless the server says otherwise', () => {
    for (const status of [408, 409, 429, 500, 502, 503]) expect(shouldRetry(status, headers({}))).toBe(true);
    for (const status of [400, 401, 403, 404, 422]) expect(shouldRetry(status, headers({}))).toBe(false);
    expect(shouldRetry(500, headers({ 'x-should-retry': 'false' }))).toBe(false);
    expect(shouldRetry(400, headers({ 'x-should-retry': 'true' }))).toBe(true);
  });

  it('waits as the server asks (ms first, then seconds or a date, at most 60 s), else backs off', () => {
    const now = Date.parse('2026-11-30T12:00:00Z');
    expect(retryDelayMs(headers({ 'retry-after-ms': '250', 'retry-after': '9' }), 0, now)).toBe(250);
    expect(retryDelayMs(headers({ 'retry-after': '1.5' }), 0, now)).toBe(1500);
    expect(retryDelayMs(headers({ 'retry-after': 'Mon, 30 Nov 2026 12:00:03 GMT' }), 0, now)).toBe(3000);
    expect(retryDelayMs(headers({ 'retry-after': '3600' }), 0, now)).toBe(60_000);
    expect(retryDelayMs(headers({ 'retry-after': 'Mon, 30 Nov 2026 11:00:00 GMT' }), 0, now)).toBe(0);
    const fallback = retryDelayMs(headers({ 'retry-after': 'soon' }), 1, now);
    expect(fallback).toBeGreaterThanOrEqual(750);
    expect(fallback).toBeLessThanOrEqual(1000);
  });

  it('backs off from 0.5 s, doubling up to 8 s, less up to 25% jitter', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffMs(n, 0))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    expect(backoffMs(0, 1)).toBe(375);
  });
});
