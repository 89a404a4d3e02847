/**
 * The agent's transport on a loopback HTTP server: a success comes back as a buffered answer with
 * the reading side of a Response, anything else as a standard Response, aborts and failures in
 * fetch's shape; and the OpenAI SDK reads and retries through it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keepAliveFetch } from '../../src/agent/http-fetch.ts';

let server: Server;
let base: string;
let answer: (req: IncomingMessage, res: ServerResponse, body: string) => void;
const seen: Array<{ method: string; url: string; body: string }> = [];

beforeEach(async () => {
  seen.length = 0;
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
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

describe('the agent transport', () => {
  it('a success reads like a Response: status, headers, text or json once, clone before reading', async () => {
    answer = (_req, res, body) => json(res, 200, { echo: JSON.parse(body), emoji: 'été ✓' }, { 'x-request-id': 'req_1' });
    const fetch = keepAliveFetch();
    const response = await fetch(`${base}/v1/x`, { method: 'POST', body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' } });
    expect(response.ok).toBe(true);
    expect(response.status).toBe(200);
    expect(response.url).toBe(`${base}/v1/x`);
    expect(response.headers.get('X-Request-Id')).toBe('req_1');
    expect(response.headers.has('Content-Type')).toBe(true);
    expect(response.headers.get('x-absent')).toBeNull();
    const names: string[] = [];
    response.headers.forEach((_value, name) => names.push(name));
    expect(names).toContain('content-type');
    const copy = response.clone();
    expect(await response.json()).toEqual({ echo: { a: 1 }, emoji: 'été ✓' });
    expect(response.bodyUsed).toBe(true);
    await expect(response.text()).rejects.toThrow(TypeError);
    expect(JSON.parse(await copy.text())).toMatchObject({ emoji: 'été ✓' });
    expect(seen[0]).toMatchObject({ method: 'POST', body: '{"a":1}' });
  });

  it('anything but a success is a standard Response; an abort and a refused connection fail as fetch does', async () => {
    answer = (_req, res) => json(res, 429, { error: { message: 'slow down' } }, { 'retry-after-ms': '10' });
    const fetch = keepAliveFetch();
    const limited = await fetch(`${base}/v1/x`, { method: 'POST', body: '{}' });
    expect(limited).toBeInstanceOf(Response);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after-ms')).toBe('10');
    expect(await limited.json()).toEqual({ error: { message: 'slow down' } });

    answer = () => {}; // never answers
    const controller = new AbortController();
    const pending = fetch(`${base}/v1/slow`, { method: 'POST', body: '{}', signal: controller.signal });
    setTimeout(() => controller.abort(new DOMException('stop', 'AbortError')), 20);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    const before = new AbortController();
    before.abort(new DOMException('stopped first', 'AbortError'));
    await expect(fetch(`${base}/v1/x`, { method: 'POST', body: '{}', signal: before.signal })).rejects.toMatchObject({ name: 'AbortError', message: 'stopped first' });

    const closed = `http://127.0.0.1:${(server.address() as AddressInfo).port + 1}`;
    await expect(fetch(`${closed}/v1/x`, { method: 'POST', body: '{}' })).rejects.toThrow(/fetch failed/);
  });

  it('the OpenAI SDK reads a completion through it, and retries a 500 then a 429 before it', async () => {
    let calls = 0;
    answer = (_req, res) => {
      calls += 1;
      if (calls === 1) return json(res, 500, { error: { message: 'boom' } });
      if (calls === 2) return json(res, 429, { error: { message: 'later' } }, { 'retry-after-ms': '5' });
      json(res, 200, { id: 'c1', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'Hello there' } }] }, { 'x-request-id': 'req_9' });
    };
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${base}/v1`, fetch: keepAliveFetch(), maxRetries: 2 });
    const completion = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.choices[0]!.message.content).toBe('Hello there');
    expect(completion._request_id).toBe('req_9');
    expect(calls).toBe(3);
  });
});
