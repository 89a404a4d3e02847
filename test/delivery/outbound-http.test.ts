/**
 * The outbound HTTP client of the delivery path (Slack Web API, Chat Completions) against a real
 * HTTP server on loopback: what it hands back, and how it stops.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundHttp } from '../../src/outbound-http.ts';

let server: Server;
let origin: string;
const seen: string[] = [];
const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  '/hints': (_req, res) => {
    res.writeEarlyHints({ link: '</x.css>; rel=preload' });
    res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
    res.end('{"ok":true}');
  },
  '/chunked': (_req, res) => {
    res.writeHead(429, { 'retry-after': '3' });
    res.write('part one, ');
    setTimeout(() => res.end('part two'), 20);
  },
  '/slow': (_req, res) => {
    res.writeHead(200);
    res.write('the start');
    // never ends
  },
};

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req.url!);
    req.resume();
    req.on('end', () => routes[req.url!]!(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('OutboundHttp', () => {
  const http = new OutboundHttp({ connectionsPerOrigin: 4, maxAnswerBytes: 1 << 20 });
  afterAll(() => http.close());
  const post = (path: string, signal?: AbortSignal) => http.send(origin, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', ...(signal ? { signal } : {}) });

  it('answers with the final status after 1xx hints, lower-case headers, repeated ones as arrays', async () => {
    const answer = await post('/hints');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(answer.body.toString()).toBe('{"ok":true}');
  });

  it('reads an answer sent in parts whole, whatever its status', async () => {
    const answer = await post('/chunked');
    expect(answer.status).toBe(429);
    expect(answer.headers['retry-after']).toBe('3');
    expect(answer.body.toString()).toBe('part one, part two');
  });

  it('an abort stops a request whose answer is still coming, with the reason given', async () => {
    const controller = new AbortController();
    const sent = post('/slow', controller.signal);
    setTimeout(() => controller.abort(new Error('claimed elsewhere')), 50);
    await expect(sent).rejects.toThrow('claimed elsewhere');
    // The client goes on working.
    expect((await post('/hints')).status).toBe(200);
  });

  it('a signal aborted already sends nothing', async () => {
    const before = seen.length;
    await expect(post('/hints', AbortSignal.abort(new Error('too late')))).rejects.toThrow('too late');
    expect(seen.length).toBe(before);
  });
});
