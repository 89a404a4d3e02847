import { afterEach, describe, expect, it } from 'vitest';
import { identityHash } from '../../adapters/webchat/index.ts';
import { waitFor } from '../support/harness.ts';
import { IDENTITY_SECRET, startWebChat, VisitorSocket, type WebChatRig } from './support.ts';

let rig: WebChatRig;
afterEach(async () => {
  await rig?.close();
});

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${rig.baseUrl}/webchat/session`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('web chat sessions', () => {
  it('an anonymous visitor gets a token; their first message creates the web chat conversation', async () => {
    rig = await startWebChat();
    const response = await post({ name: 'Ada' });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    const body = (await response.json()) as { token: string; conversationId?: string; maxMessageChars: number };
    expect(body).toEqual({ token: expect.stringMatching(/^v2\.[\w-]+\.[\w-]+$/), maxMessageChars: 2000 });
    const socket = await rig.connect(body.token);
    await socket.ready();
    socket.say('Hello?');
    const conversationId = await waitFor(() => socket.conversationId(), { what: 'the conversation' });
    const conversation = await rig.bridge.getConversation(conversationId);
    expect(conversation).toMatchObject({ origin: 'webchat', state: 'agent', customer: { id: expect.stringMatching(/^anon:/), name: 'Ada' } });
    // Two visitors never share a conversation.
    expect((await rig.started()).conversationId).not.toBe(conversationId);
  });

  it('a verified user comes back to the same conversation from another device', async () => {
    rig = await startWebChat({ config: { identitySecret: IDENTITY_SECRET } });
    const userHash = identityHash('user-42', IDENTITY_SECRET);
    const identity = { userId: 'user-42', userHash };
    const laptop = await rig.session({ ...identity, name: 'Ada', email: 'ada@example.com' });
    const onLaptop = await rig.connect(laptop.token, undefined, identity);
    await onLaptop.ready();
    onLaptop.say('Where is my order?', 'laptop-1');
    await onLaptop.message((f) => f.clientId === 'laptop-1', 'confirmation');
    const conversationId = onLaptop.conversationId()!;
    expect((await rig.bridge.getConversation(conversationId))?.customer).toEqual({ id: 'user:user-42', name: 'Ada', email: 'ada@example.com' });

    const phone = await rig.session({ userId: 'user-42', userHash: userHash.toUpperCase() });
    expect(phone.conversationId).toBe(conversationId);
    const onPhone = await rig.connect(phone.token, undefined, identity);
    expect(await onPhone.ready()).toMatchObject({ conversationId });
    expect(onPhone.messages().map((m) => m.text)).toContain('Where is my order?');
  });

  it('two devices of a verified user writing first at the same moment share one conversation', async () => {
    rig = await startWebChat({ config: { identitySecret: IDENTITY_SECRET } });
    const identity = { userId: 'user-7', userHash: identityHash('user-7', IDENTITY_SECRET) };
    const [a, b] = await Promise.all([rig.session(identity), rig.session(identity)]);
    const [onA, onB] = await Promise.all([rig.connect(a!.token, undefined, identity), rig.connect(b!.token, undefined, identity)]);
    await Promise.all([onA.ready(), onB.ready()]);
    onA.say('from the laptop', 'a-1');
    onB.say('from the phone', 'b-1');
    await Promise.all([onA.message((f) => f.clientId === 'a-1', 'laptop confirmation'), onB.message((f) => f.clientId === 'b-1', 'phone confirmation')]);
    expect(onA.conversationId()).toBe(onB.conversationId());
    const conversation = (await rig.bridge.getConversation(onA.conversationId()!))!;
    expect(conversation.messages.filter((m) => m.author.role === 'customer').map((m) => m.text).sort()).toEqual(['from the laptop', 'from the phone']);
  });

  it('a wrong identity hash is refused and says how to compute the right one', async () => {
    rig = await startWebChat({ config: { identitySecret: IDENTITY_SECRET } });
    const response = await post({ userId: 'user-42', userHash: identityHash('user-43', IDENTITY_SECRET) });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: { code: 'identity_rejected', message: expect.stringContaining('HMAC-SHA256') } });
    expect((await post({ userId: 'user-42' })).status).toBe(401);
  });

  it('an unverified visitor cannot claim an email address', async () => {
    rig = await startWebChat({ config: { identitySecret: IDENTITY_SECRET } });
    const { conversationId } = await rig.started('Hi', { name: 'Mallory', email: 'ceo@example.com' });
    expect((await rig.bridge.getConversation(conversationId))?.customer).toEqual({ id: expect.stringMatching(/^anon:/), name: 'Mallory' });
  });

  it('when identity is required, anonymous visitors are refused', async () => {
    rig = await startWebChat({ config: { identitySecret: IDENTITY_SECRET, requireIdentity: true } });
    const response = await post({});
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('identity_required');
  });

  it('a user id without an identity secret configured is a setup error, said plainly', async () => {
    rig = await startWebChat();
    const response = await post({ userId: 'user-42', userHash: 'abc' });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: { code: 'identity_not_configured', message: expect.stringContaining('WEBCHAT_IDENTITY_SECRET') } });
  });

  it('a malformed or oversized body gets a 4xx with what to send', async () => {
    rig = await startWebChat();
    expect((await post('{nope')).status).toBe(400);
    expect((await post({ email: 'not-an-email' })).status).toBe(400);
    expect((await post({ name: 'x'.repeat(10_000) })).status).toBe(413);
  });

  it('too many new sessions from one address are slowed down with Retry-After', async () => {
    rig = await startWebChat({ config: { sessionsPerMinute: 6 } });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await post({})).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    const limited = await post({});
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('answers the CORS preflight so any site can embed the widget', async () => {
    rig = await startWebChat();
    const response = await fetch(`${rig.baseUrl}/webchat/session`, {
      method: 'OPTIONS',
      headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-allow-headers')).toBe('content-type');
  });

  it('with an origin allow-list, other sites can neither open sessions nor sockets', async () => {
    rig = await startWebChat({ config: { allowedOrigins: ['https://shop.example.com'] } });
    const ok = await post({}, { origin: 'https://shop.example.com' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://shop.example.com');
    expect((await post({}, { origin: 'https://evil.example.net' })).status).toBe(403);
    await expect(VisitorSocket.open(rig.wsUrl, { origin: 'https://evil.example.net' })).rejects.toThrow(/403/);
    const allowed = await VisitorSocket.open(rig.wsUrl, { origin: 'https://shop.example.com' });
    allowed.close();
  });
});

describe('served pages', () => {
  it('serves the widget as JavaScript with an ETag, and a 304 when unchanged', async () => {
    rig = await startWebChat();
    const response = await fetch(`${rig.baseUrl}/widget.js`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const code = await response.text();
    expect(code).toContain('Northwind');
    expect(code).not.toContain('__WIDGET_DEFAULTS__');
    const etag = response.headers.get('etag')!;
    expect((await fetch(`${rig.baseUrl}/widget.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
  });

  it('the demo page embeds the widget with the one-line tag and a strict CSP', async () => {
    rig = await startWebChat({ config: { brandName: 'Northwind <Outfitters>' } });
    const response = await fetch(`${rig.baseUrl}/`);
    const html = await response.text();
    expect(html).toContain(`<script src="${rig.baseUrl}/widget.js" async></script>`);
    expect(html).toContain('Northwind &lt;Outfitters&gt;');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
  });
});
