/**
 * Signing in and staying safe: token links, one-time links used once (even when raced), sessions in
 * HttpOnly SameSite=Strict cookies, actions refused without the CSRF token or from another origin,
 * and managers who can look but not act.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { waitFor } from '../support/harness.ts';
import { OperatorClient, sessionCookie, startConsole, CONSOLE_TOKEN, type ConsoleRig } from './support.ts';

let rig: ConsoleRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

function form(token: string, operator?: string): string {
  return new URLSearchParams({ token, ...(operator ? { operator } : {}) }).toString();
}

async function postSignIn(baseUrl: string, body: string, origin = baseUrl): Promise<Response> {
  return fetch(`${baseUrl}/console/signin`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin }, body, redirect: 'manual' });
}

async function escalated(r: ConsoleRig): Promise<string> {
  const { conversation } = await r.bridge.customerMessage({ origin: 'api', customer: { id: 'c1', name: 'Ada' }, text: 'I want to talk to a human' });
  await r.settle();
  return conversation.id;
}

/** Opens a socket with these headers; resolves with the HTTP status it was refused with, or 101. */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => resolve(0));
  });
}

describe('signing in', () => {
  it('without a session, /console explains how to sign in and the API and socket refuse', async () => {
    rig = await startConsole();
    const page = await fetch(`${rig.baseUrl}/console`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Open the sign-in link printed when the bridge started');
    expect((await fetch(`${rig.baseUrl}/console/api/inbox`)).status).toBe(401);
    expect(await upgradeStatus(`${rig.baseUrl.replace('http', 'ws')}/console/ws`, { origin: rig.baseUrl })).toBe(401);
  });

  it('the shared token asks who you are when several people are configured, then sets a safe cookie', async () => {
    rig = await startConsole();
    const choose = await fetch(`${rig.baseUrl}/console?token=${CONSOLE_TOKEN}`);
    const html = await choose.text();
    expect(html).toContain('Who are you?');
    expect(html).toContain('Dana Scully');
    expect(html).toContain('Manager · read-only');
    expect(choose.headers.get('set-cookie')).toBeNull();

    const signedIn = await postSignIn(rig.baseUrl, form(CONSOLE_TOKEN, 'dana'));
    expect(signedIn.status).toBe(200);
    const cookie = signedIn.headers.getSetCookie()[0]!;
    expect(cookie).toMatch(/^hb_console=[\w-]{40,}; Path=\/console; HttpOnly; SameSite=Strict; Max-Age=604800$/);
    // A same-site navigation on to the console, so the Strict cookie goes with it.
    expect(await signedIn.text()).toContain('<meta http-equiv="refresh" content="0; url=/console">');
    const app = await fetch(`${rig.baseUrl}/console`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(await app.text()).toContain('/console/app.js');
    const csp = app.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(app.headers.get('x-frame-options')).toBe('DENY');
  });

  it('with one person configured, /console?token=<CONSOLE_TOKEN> signs in at once', async () => {
    rig = await startConsole({ config: { operators: undefined } });
    const response = await fetch(`${rig.baseUrl}/console?token=${CONSOLE_TOKEN}`);
    expect(sessionCookie(response)).toBeDefined();
    expect(await response.text()).toContain('Welcome, Operator');
    expect(rig.console.signInLinks()).toEqual([{ operator: { id: 'operator', name: 'Operator', role: 'operator' }, path: `/console?token=${CONSOLE_TOKEN}`, kind: 'shared' }]);
  });

  it('with nothing configured, start-up mints a one-time link: shown without being used, then used exactly once', async () => {
    rig = await startConsole({ config: { operators: undefined, token: undefined } });
    const [link] = rig.console.signInLinks();
    expect(link).toMatchObject({ kind: 'one-time', operator: { id: 'operator', name: 'Operator' } });
    const token = new URL(link!.path, rig.baseUrl).searchParams.get('token')!;
    // Opening it (or a link preview fetching it) only asks to continue.
    for (let i = 0; i < 2; i++) {
      const page = await fetch(`${rig.baseUrl}${link!.path}`);
      expect(await page.text()).toContain('Continue as Operator');
      expect(page.headers.get('set-cookie')).toBeNull();
    }
    // Two tabs continue at the same moment: one gets in.
    const both = await Promise.all([postSignIn(rig.baseUrl, form(token)), postSignIn(rig.baseUrl, form(token))]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 401]);
    expect(await both.find((r) => r.status === 401)!.text()).toContain('already used');
    expect((await fetch(`${rig.baseUrl}${link!.path}`).then((r) => r.text()))).toContain('not valid, has expired, or was already used');
  });

  it('a personal token from the operators file signs that person in', async () => {
    rig = await startConsole({ config: { token: undefined, operators: [{ id: 'dana', name: 'Dana Scully', role: 'operator', token: 'dana-personal-token-0001' }, { id: 'sam', name: 'Sam', role: 'operator' }] } });
    const response = await fetch(`${rig.baseUrl}/console?token=dana-personal-token-0001`);
    expect(await response.text()).toContain('Welcome, Dana Scully');
    // Sam has no token of his own: start-up minted him a one-time link; Dana needs none.
    expect(rig.console.signInLinks().map((l) => [l.operator.id, l.kind])).toEqual([['sam', 'one-time']]);
  });

  it('a wrong token, or a sign-in form posted from another site, gets nowhere', async () => {
    rig = await startConsole();
    const wrong = await fetch(`${rig.baseUrl}/console?token=not-the-token-at-all`);
    expect(await wrong.text()).toContain('not valid');
    expect(sessionCookie(wrong)).toBeUndefined();
    const foreign = await postSignIn(rig.baseUrl, form(CONSOLE_TOKEN, 'dana'), 'https://evil.example');
    expect(foreign.status).toBe(403);
    expect(sessionCookie(foreign)).toBeUndefined();
  });

  it('sessions expire, and signing out ends the session and its socket', async () => {
    let now = Date.now();
    rig = await startConsole({ config: { clock: () => now, sessionTtlMs: 60_000 } });
    const dana = await rig.signIn('dana');
    await dana.connect();
    expect((await dana.get('inbox')).status).toBe(200);
    now += 61_000;
    expect((await dana.get('inbox')).status).toBe(401);

    now = Date.now();
    const sam = await rig.signIn('sam');
    await sam.connect();
    expect((await sam.post('signout', {})).status).toBe(200);
    expect((await sam.get('inbox')).status).toBe(401);
    await expectClosed(sam, 4401);
  });
});

async function expectClosed(client: OperatorClient, code: number): Promise<void> {
  expect(await waitFor(() => client.closedWith, { what: 'the socket to close' })).toBe(code);
  expect(client.frames.some((f) => f.type === 'signed-out')).toBe(true);
}

describe('actions are safe', () => {
  it('need the CSRF token, a JSON body and the console’s own origin', async () => {
    rig = await startConsole();
    const id = await escalated(rig);
    const dana = await rig.signIn('dana');
    const noToken = await dana.post(`conversations/${id}/claim`, {}, { 'x-console-csrf': '' });
    expect(noToken).toMatchObject({ status: 403, body: { error: { code: 'bad_csrf' } } });
    const otherSite = await dana.post(`conversations/${id}/claim`, {}, { origin: 'https://evil.example' });
    expect(otherSite).toMatchObject({ status: 403, body: { error: { code: 'bad_origin' } } });
    const formPost = await fetch(`${rig.baseUrl}/console/api/conversations/${id}/claim`, {
      method: 'POST',
      headers: { cookie: dana.cookie, origin: rig.baseUrl, 'content-type': 'text/plain', 'x-console-csrf': dana.csrf },
      body: '{}',
    });
    expect(formPost.status).toBe(415);
    expect((await rig.bridge.getConversation(id))!.state).toBe('waiting');
    expect((await dana.act(id, 'claim')).status).toBe(200);
    expect((await rig.bridge.getConversation(id))!.owner).toEqual({ id: 'console:dana', name: 'Dana Scully', workspace: 'console' });
  });

  it('a socket from another site is refused', async () => {
    rig = await startConsole();
    const dana = await rig.signIn('dana');
    expect(await upgradeStatus(`${rig.baseUrl.replace('http', 'ws')}/console/ws`, { cookie: dana.cookie, origin: 'https://evil.example' })).toBe(403);
    expect(await upgradeStatus(`${rig.baseUrl.replace('http', 'ws')}/console/ws`, { cookie: dana.cookie, origin: rig.baseUrl })).toBe(101);
  });

  it('a manager sees everything and can act on nothing', async () => {
    rig = await startConsole();
    const id = await escalated(rig);
    const lee = await rig.signIn('lee');
    expect((await lee.get('inbox')).body).toMatchObject({ rows: [{ id, state: 'waiting' }] });
    const view = await lee.view(id);
    expect(view.can.claim).toBe(false);
    expect(view.replyHint).toContain('Read-only');
    for (const action of ['claim', 'reply', 'return', 'close']) {
      const answer = await lee.act(id, action, { text: 'hi' });
      expect(answer).toMatchObject({ status: 403, body: { error: { code: 'read_only' } } });
    }
    expect((await rig.bridge.getConversation(id))!.messages.some((m) => m.author.role === 'operator')).toBe(false);
  });

  it('sign-in links for someone else come from managers; anyone may make one for themselves', async () => {
    rig = await startConsole();
    const dana = await rig.signIn('dana');
    expect((await dana.post('signin-links', { operatorId: 'sam' })).status).toBe(403);
    const own = await dana.post<{ path: string }>('signin-links', { operatorId: 'dana' });
    expect(own.status).toBe(200);
    const lee = await rig.signIn('lee');
    const forSam = await lee.post<{ path: string }>('signin-links', { operatorId: 'sam' });
    const token = new URL(forSam.body.path, rig.baseUrl).searchParams.get('token')!;
    const sam = await OperatorClient.signIn(rig.baseUrl, { token });
    expect((await sam.get<{ me: { name: string } }>('session')).body.me.name).toBe('Sam Tran');
  });
});
