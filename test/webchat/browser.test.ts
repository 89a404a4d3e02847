/**
 * The whole customer experience in a real browser: Debian's Chromium driven by playwright-core.
 * The operator side is driven through the Bridge API (the Slack/Teams suites cover those clicks).
 */
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DANA, waitFor } from '../support/harness.ts';
import { identityHash } from '../../adapters/webchat/index.ts';
import { IDENTITY_SECRET, startWebChat, type WebChatRig } from './support.ts';

const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;

let browser: Browser;
let rig: WebChatRig | undefined;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** Types into the widget's composer and sends with Enter, as a person would. */
async function type(page: Page, text: string): Promise<void> {
  await page.locator('.hc-input').fill(text);
  await page.locator('.hc-input').press('Enter');
}

/** Waits for a rendered element matching `selector` that contains `text`. */
async function sees(page: Page, selector: string, text: string | RegExp): Promise<string> {
  const node = page.locator(selector).filter({ hasText: text }).last();
  await node.waitFor({ state: 'visible', timeout: 15_000 });
  return (await node.textContent()) ?? '';
}

async function subtitle(page: Page): Promise<string> {
  return (await page.locator('.hc-subtitle').textContent()) ?? '';
}

describe('the web chat widget in a real browser', () => {
  it('a customer is handed to a person and back in the same window, without repeating themselves', { timeout: 90_000 }, async () => {
    rig = await startWebChat();
    const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${rig.baseUrl}/`);

    // The widget sits on the page as a launcher until the visitor opens it.
    await page.locator('.hc-launcher').click();
    await page.locator('.hc-panel').waitFor({ state: 'visible' });
    await waitFor(async () => (await subtitle(page)).includes('Assistant'), { what: 'the header to show the assistant' });

    // The assistant answers.
    await type(page, 'Where is my order?');
    await sees(page, '.hc-msg.hc-customer', 'Where is my order?');
    const answer = await sees(page, '.hc-msg.hc-agent', 'Account > Orders');
    expect(answer).toContain('Assistant');

    // The customer asks for a person: a notice with the ticket reference.
    await type(page, 'I want to talk to a human');
    const escalated = await sees(page, '.hc-notice[data-notice="escalated"]', /ticket reference is HB-\d+/);
    const conversationId = await waitFor(() => rig!.workspace.briefings[0]?.conversationId, { what: 'the briefing' });
    const { ticket } = (await rig.bridge.getConversation(conversationId))!;
    expect(escalated).toContain(ticket);
    await waitFor(async () => (await subtitle(page)).includes('Waiting for a person'), { what: 'the header to say a person is coming' });

    // An operator claims it and replies: the reply lands in the same window, under their name.
    await rig.bridge.claim({ conversationId, operator: DANA });
    await sees(page, '.hc-notice[data-notice="joined"]', 'Dana from our team has joined');
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: "Hi, I'm Dana. I can see your order 1042 left our warehouse yesterday; it arrives Thursday." });
    const reply = await sees(page, '.hc-msg.hc-operator', 'arrives Thursday');
    expect(reply).toContain('Dana');
    await waitFor(async () => (await subtitle(page)).includes('Dana · Northwind team'), { what: 'the header to show Dana' });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}webchat-takeover.png` });

    // Markup typed by the customer or sent by the operator shows as text and never runs.
    const markup = '<img src=x onerror="window.__pwned=1"> <b>not bold</b>';
    await type(page, markup);
    await sees(page, '.hc-msg.hc-customer .hc-bubble', '<b>not bold</b>');
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Noted: <script>window.__pwned=2</script>' });
    await sees(page, '.hc-msg.hc-operator .hc-bubble', '<script>window.__pwned=2</script>');
    const injected = await page.evaluate(() => {
      const root = document.getElementById('handoff-chat')!.shadowRoot!;
      return { pwned: (window as unknown as { __pwned?: number }).__pwned, images: root.querySelectorAll('.hc-log img, .hc-log b, .hc-log script').length };
    });
    expect(injected).toEqual({ pwned: undefined, images: 0 });

    // A reload mid-takeover rebuilds the same conversation: nothing to repeat.
    const before = await page.locator('.hc-msg, .hc-notice').allTextContents();
    await page.reload();
    await page.locator('.hc-launcher').click();
    await sees(page, '.hc-msg.hc-operator', 'arrives Thursday');
    await waitFor(async () => (await page.locator('.hc-msg, .hc-notice').count()) === before.length, { what: 'the whole transcript after reload' });
    expect(await page.locator('.hc-msg .hc-bubble').allTextContents()).toContain('Where is my order?');

    // Back to the assistant, which picks up with the operator's note.
    await rig.bridge.returnToAgent({ conversationId, operator: DANA, note: 'Order 1042 arrives Thursday; carrier confirmed.' });
    await sees(page, '.hc-notice[data-notice="returned"]', 'back with the assistant');
    await type(page, 'What are your opening hours?');
    await sees(page, '.hc-msg.hc-agent', 'Monday to Friday');
    await waitFor(async () => (await subtitle(page)).includes('Assistant'), { what: 'the header to show the assistant again' });

    const conversation = (await rig.bridge.getConversation(conversationId))!;
    expect(conversation.state).toBe('agent');
    expect(conversation.messages.filter((m) => m.author.role === 'customer').map((m) => m.text)).toEqual([
      'Where is my order?',
      'I want to talk to a human',
      markup,
      'What are your opening hours?',
    ]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('messages typed while the connection is down are sent once it is back', { timeout: 60_000 }, async () => {
    rig = await startWebChat();
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${rig.baseUrl}/`);
    await page.locator('.hc-launcher').click();
    await type(page, 'Where is my order?');
    await sees(page, '.hc-msg.hc-agent', 'Account > Orders');

    // The network drops: the widget says so, keeps what the customer types, and sends it on return.
    await context.setOffline(true);
    await waitFor(async () => (await subtitle(page)).includes('Reconnecting'), { what: 'the widget to notice' });
    await type(page, 'How do I reset my password?');
    await sees(page, '.hc-msg.hc-customer.hc-pending', 'reset my password');
    await context.setOffline(false);
    await sees(page, '.hc-msg.hc-agent', 'Forgot password');
    expect(await page.locator('.hc-msg.hc-pending').count()).toBe(0);
    await context.close();
  });

  it('replies that arrive while the chat is closed show as unread on the launcher, across a reload', { timeout: 60_000 }, async () => {
    rig = await startWebChat();
    const page = await browser.newPage();
    await page.goto(`${rig.baseUrl}/`);
    await page.locator('.hc-launcher').click();
    await type(page, 'Where is my order?');
    await sees(page, '.hc-msg.hc-agent', 'Account > Orders');
    await page.locator('.hc-close').click();

    const conversationId = rig.workspace.mirrored[0]!.conversationId;
    await rig.bridge.takeOver({ conversationId, operator: DANA });
    await rig.bridge.operatorMessage({ conversationId, operator: DANA, text: 'Dana here, I took a look at your order.' });
    const badge = page.locator('.hc-badge');
    await waitFor(async () => (await badge.isVisible()) && (await badge.textContent()) === '2', { what: 'two unread on the launcher' });

    await page.reload();
    await waitFor(async () => (await badge.isVisible()) && (await badge.textContent()) === '2', { what: 'still two unread after a reload' });
    await page.locator('.hc-launcher').click();
    await sees(page, '.hc-msg.hc-operator', 'Dana here');
    expect(await badge.isVisible()).toBe(false);
    await page.reload();
    // The transcript is back (in the closed panel) and nothing in it is unread.
    await page.locator('.hc-msg.hc-operator').filter({ hasText: 'Dana here' }).waitFor({ state: 'attached' });
    expect(await badge.isVisible()).toBe(false);
    await page.close();
  });

  it('after the conversation is closed, the transcript stays and the next message starts a new conversation', { timeout: 60_000 }, async () => {
    rig = await startWebChat();
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${rig.baseUrl}/`);
    await page.locator('.hc-launcher').click();
    await type(page, 'Where is my order?');
    await sees(page, '.hc-msg.hc-agent', 'Account > Orders');
    const first = rig.workspace.mirrored[0]!.conversationId;

    await rig.bridge.close({ conversationId: first });
    await sees(page, '.hc-notice[data-notice="closed"]', 'start a new one');
    await waitFor(async () => (await subtitle(page)).includes('write to start a new one'), { what: 'the header to say so' });
    await type(page, 'One more thing: can I change the address?');
    const second = await waitFor(() => rig!.workspace.mirrored.find((m) => m.conversationId !== first)?.conversationId, { what: 'a new conversation' });
    await waitFor(async () => (await page.locator('.hc-msg.hc-pending').count()) === 0, { what: 'the message to be confirmed' });
    // The old transcript is still on screen; the closed conversation stayed closed and got nothing new.
    expect(await page.locator('.hc-msg .hc-bubble').allTextContents()).toContain('Where is my order?');
    expect((await rig.bridge.getConversation(first))!.state).toBe('closed');
    expect((await rig.bridge.getConversation(second))!.messages.filter((m) => m.author.role === 'customer').map((m) => m.text)).toEqual(['One more thing: can I change the address?']);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('two tabs of one browser share the session as its token rotates, through reloads', { timeout: 60_000 }, async () => {
    rig = await startWebChat();
    const context = await browser.newContext();
    const [tabA, tabB] = [await context.newPage(), await context.newPage()];
    await tabA.goto(`${rig.baseUrl}/`);
    await tabA.locator('.hc-launcher').click();
    await type(tabA, 'Where is my order?');
    await sees(tabA, '.hc-msg.hc-agent', 'Account > Orders');
    // Tab B opens the stored session (spending its token), then both reload at once.
    await tabB.goto(`${rig.baseUrl}/`);
    await tabB.locator('.hc-launcher').click();
    await sees(tabB, '.hc-msg.hc-agent', 'Account > Orders');
    await Promise.all([tabA.reload(), tabB.reload()]);
    for (const tab of [tabA, tabB]) await tab.locator('.hc-launcher').click();
    await type(tabB, 'What are your opening hours?');
    for (const tab of [tabA, tabB]) await sees(tab, '.hc-msg.hc-agent', 'Monday to Friday');
    await tabA.reload();
    await tabA.locator('.hc-launcher').click();
    await sees(tabA, '.hc-msg.hc-customer', 'What are your opening hours?');
    // One conversation throughout: nobody was sent off to a new session.
    expect(new Set(rig.workspace.mirrored.map((m) => m.conversationId)).size).toBe(1);

    // Closed: both tabs start over at once, and still end up in one new conversation.
    const first = rig.workspace.mirrored[0]!.conversationId;
    await rig.bridge.close({ conversationId: first });
    for (const tab of [tabA, tabB]) await sees(tab, '.hc-notice[data-notice="closed"]', 'start a new one');
    await waitFor(async () => (await subtitle(tabA)).includes('write to start a new one') && !(await subtitle(tabA)).includes('Reconnecting'), { what: 'tab A to settle' });
    await type(tabA, 'Another question: do you ship abroad?');
    await sees(tabB, '.hc-msg.hc-customer', 'do you ship abroad?');
    const conversations = new Set(rig.workspace.mirrored.map((m) => m.conversationId));
    expect(conversations.size).toBe(2);
    await context.close();
  });

  it('two new tabs opened at the same moment settle on one session', { timeout: 60_000 }, async () => {
    rig = await startWebChat();
    const context = await browser.newContext();
    const tabs = [await context.newPage(), await context.newPage()] as const;
    await Promise.all(tabs.map((tab) => tab.goto(`${rig!.baseUrl}/`)));
    // Both ask for a session before either has stored one.
    await Promise.all(tabs.map((tab) => tab.locator('.hc-launcher').click()));
    await waitFor(async () => (await Promise.all(tabs.map((tab) => subtitle(tab)))).every((text) => text.includes('Assistant')), { what: 'both tabs online' });
    await type(tabs[0], 'Where is my order?');
    await sees(tabs[1], '.hc-msg.hc-customer', 'Where is my order?');
    await sees(tabs[1], '.hc-msg.hc-agent', 'Account > Orders');
    await context.close();
  });

  it("a host site on another origin embeds the widget with one tag, for a verified user", { timeout: 60_000 }, async () => {
    rig = await startWebChat({ config: { identitySecret: IDENTITY_SECRET } });
    const hash = identityHash('cust-7', IDENTITY_SECRET);
    // The customer's own site: a different origin (another port) with nothing but the tag.
    const site = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(
        `<!doctype html><title>Shop</title><h1>Shop</h1><script src="${rig!.baseUrl}/widget.js" data-user-id="cust-7" data-user-hash="${hash}" data-name="Grace" data-color="#0f766e" async></script>`,
      );
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${(site.address() as { port: number }).port}/`);
      await page.locator('.hc-launcher').click();
      await type(page, 'Where is my order?');
      await sees(page, '.hc-msg.hc-agent', 'Account > Orders');
      const conversationId = rig.workspace.mirrored[0]!.conversationId;
      expect((await rig.bridge.getConversation(conversationId))?.customer).toEqual({ id: 'user:cust-7', name: 'Grace' });
      await page.close();
    } finally {
      await new Promise((resolve) => site.close(resolve));
    }
  });
});
