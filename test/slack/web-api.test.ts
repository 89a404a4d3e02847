/**
 * The delivery path's own Slack Web API client against a real HTTP server on loopback: what it
 * sends, and how each kind of answer (cut off, not JSON, 429, error) comes back as an SDK-shaped error.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SlackWebApiClient } from '../../adapters/slack/web-api.ts';

let server: Server | undefined;
let client: SlackWebApiClient | undefined;
afterEach(async () => {
  await client?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function serve(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void, timeoutMs = 2000): Promise<SlackWebApiClient> {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => handler(req, body, res));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  client = new SlackWebApiClient({ token: 'xoxb-test', apiUrl: `http://127.0.0.1:${port}/api`, timeoutMs });
  return client;
}

describe('Slack Web API client', () => {
  it('posts to /api/<method> with the bot token: JSON for the methods that take messages, a form for the rest', async () => {
    const seen: Array<{ url?: string; auth?: string; type?: string; body: string }> = [];
    const api = await serve((req, body, res) => {
      seen.push({ url: req.url, auth: req.headers.authorization, type: req.headers['content-type'], body });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, ts: '1.0001' }));
    });
    const message = { channel: 'C1', text: 'a & b', blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'a & b' } }], metadata: { event_type: 'x' }, reply_broadcast: true, unset: undefined };
    for (let i = 0; i < 2; i++) expect(await api.apiCall('chat.postMessage', message)).toEqual({ ok: true, ts: '1.0001' });
    expect(await api.apiCall('users.info', { user: 'U1', include_locale: true })).toEqual({ ok: true, ts: '1.0001' });
    expect(seen).toHaveLength(3);
    const { unset: _unset, ...sent } = message;
    expect(seen[1]).toMatchObject({ url: '/api/chat.postMessage', auth: 'Bearer xoxb-test', type: 'application/json; charset=utf-8' });
    expect(JSON.parse(seen[1]!.body)).toEqual(sent);
    // A read method takes only a form: strings as they are, everything else as JSON.
    expect(seen[2]).toEqual({ url: '/api/users.info', auth: 'Bearer xoxb-test', type: 'application/x-www-form-urlencoded', body: 'user=U1&include_locale=true' });
  });

  it('an answer cut off halfway is a request error, not a hang or a half-read body', async () => {
    const api = await serve((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"ok":true,');
      setTimeout(() => res.destroy(), 20);
    });
    await expect(api.apiCall('chat.postMessage', { channel: 'C1' })).rejects.toMatchObject({ code: 'slack_webapi_request_error' });
  });

  it('an answer that is not JSON, a 429 and a platform error each come back as the SDK would shape them', async () => {
    let next: 'html' | 'limited' | 'refused' = 'html';
    const api = await serve((_req, _body, res) => {
      if (next === 'html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>gateway</html>');
      else if (next === 'limited') res.writeHead(429, { 'retry-after': '7' }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, error: 'channel_not_found' }));
    });
    await expect(api.apiCall('chat.postMessage', {})).rejects.toMatchObject({ code: 'slack_webapi_request_error', message: expect.stringContaining('not JSON') });
    next = 'limited';
    await expect(api.apiCall('chat.postMessage', {})).rejects.toMatchObject({ code: 'slack_webapi_rate_limited_error', retryAfter: 7 });
    next = 'refused';
    await expect(api.apiCall('chat.postMessage', {})).rejects.toMatchObject({ code: 'slack_webapi_platform_error', data: { error: 'channel_not_found' } });
  });

  it('a Slack that stops answering, or answers more than 8 MB, fails the call with a request error, and the next call works', async () => {
    const api = await serve((req, _body, res) => {
      if (req.url === '/api/silent') return res.writeHead(200, { 'content-type': 'application/json' }).write('{"ok":');
      if (req.url === '/api/huge') return res.writeHead(200, { 'content-type': 'application/json' }).end(`{"ok":true,"x":"${'a'.repeat(9 * 1024 * 1024)}"}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }, 150);
    await expect(api.apiCall('silent', {})).rejects.toMatchObject({ code: 'slack_webapi_request_error', message: expect.stringContaining('no answer within 150 ms') });
    await expect(api.apiCall('huge', {})).rejects.toMatchObject({ code: 'slack_webapi_request_error' });
    expect(await api.apiCall('chat.postMessage', {})).toEqual({ ok: true });
  });

  it('keeps its connections: many calls, few sockets', async () => {
    const sockets = new Set<unknown>();
    const api = await serve((req, _body, res) => {
      sockets.add(req.socket);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    for (let i = 0; i < 20; i++) await api.apiCall('chat.postMessage', { channel: 'C1' });
    await Promise.all(Array.from({ length: 10 }, () => api.apiCall('chat.postMessage', { channel: 'C1' })));
    // 30 calls: one connection for the calls in turn, at most ten for the ten at once.
    expect(sockets.size).toBeLessThanOrEqual(11);
  });

  it('after close, a call still goes out on a new connection: a stopped workspace leaves its posts to the bridge\'s workers', async () => {
    const api = await serve((_req, _body, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    expect(await api.apiCall('chat.postMessage', {})).toEqual({ ok: true });
    await api.close();
    expect(await api.apiCall('chat.postMessage', {})).toEqual({ ok: true });
  });
});
