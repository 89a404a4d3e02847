/**
 * The whole takeover on one machine, in a real browser: Debian's Chromium driven by playwright-core,
 * two browser contexts (the customer on the web chat page, the operator on /console), one bridge.
 * Screenshots go to test-artifacts/; with UPDATE_SCREENSHOTS=1 also to docs/screenshots/.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MultiAgent } from '../../src/agent/multi-agent.ts';
import { startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { waitFor } from '../support/harness.ts';
import { demoAgent } from './agents.ts';
import { CONSOLE_TOKEN, startConsole, type ConsoleRig } from './support.ts';

const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;
const DOCS = new URL('../../docs/screenshots/', import.meta.url).pathname;

let browser: Browser;
let rig: ConsoleRig | undefined;
let model: ChatEmulator | undefined;
const contexts: BrowserContext[] = [];

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
  for (const context of contexts.splice(0)) await context.close();
  await rig?.close();
  rig = undefined;
  await model?.close();
  model = undefined;
});

async function newPage(viewport = { width: 1440, height: 900 }): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport });
  contexts.push(context);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  // CSP violations and failed loads show up as console errors.
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  return { page, problems };
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = `${ARTIFACTS}console-${name}.png`;
  await page.screenshot({ path });
  if (process.env.UPDATE_SCREENSHOTS) {
    mkdirSync(DOCS, { recursive: true });
    copyFileSync(path, `${DOCS}console-${name}.png`);
  }
}

/** Waits for a rendered element matching `selector` that contains `text`. */
async function sees(page: Page, selector: string, text: string | RegExp): Promise<string> {
  const node = page.locator(selector).filter({ hasText: text }).last();
  await node.waitFor({ state: 'visible', timeout: 15_000 });
  return (await node.textContent()) ?? '';
}

/** The customer types into the widget and sends with Enter. */
async function customerSays(page: Page, text: string): Promise<void> {
  await page.locator('.hc-input').fill(text);
  await page.locator('.hc-input').press('Enter');
  await sees(page, '.hc-msg.hc-customer .hc-bubble', text);
}

/** Other conversations, so the inbox looks like a working day: one the agent handles, one Sam holds. */
async function seed(r: ConsoleRig): Promise<void> {
  const origin = r.webchat ? 'webchat' : r.customer.origin;
  await r.bridge.customerMessage({ origin, customer: { id: 'anon:grace001', name: 'Grace Hopper' }, text: 'How do I reset my password?' });
  const { conversation } = await r.bridge.customerMessage({ origin, customer: { id: 'anon:alan0001', name: 'Alan Turing' }, text: 'I want to talk to a human about my invoice INV-2024-0042' });
  await r.settle();
  const sam = await r.signIn('sam');
  expect((await sam.act(conversation.id, 'claim')).status).toBe(200);
  expect((await sam.act(conversation.id, 'reply', { text: 'Hi Alan, Sam here. Pulling up that invoice now.' })).status).toBe(200);
  await r.bridge.customerMessage({ conversationId: conversation.id, origin, customer: conversation.customer, text: 'Thanks, it shows a double charge.' });
  await r.settle();
}

describe('the operator console in a real browser', () => {
  it('escalate, claim, reply, note, return with a note, and the agent answering again: customer and operator side by side', { timeout: 120_000 }, async () => {
    rig = await startConsole({ webchat: true, agent: demoAgent() });
    await seed(rig);

    // The operator signs in with the token link and says who they are.
    const { page: operator, problems: operatorProblems } = await newPage();
    await operator.goto(`${rig.baseUrl}/console?token=${CONSOLE_TOKEN}`);
    await operator.getByRole('button', { name: /Dana Scully/ }).waitFor();
    await shot(operator, 'sign-in');
    await operator.keyboard.press('Enter'); // the first person has focus
    await operator.locator('.row').first().waitFor();
    expect(await operator.locator('.me-name').textContent()).toBe('Dana Scully');
    await sees(operator, '.row[data-state="human"]', 'Alan Turing');
    await sees(operator, '.row[data-state="agent"]', 'Grace Hopper');

    // The customer opens the chat; the agent answers, and the console shows it live.
    const { page: customer, problems: customerProblems } = await newPage({ width: 1100, height: 820 });
    // The shop passes the visitor's name to the widget, as a host site may.
    await customer.addInitScript(() => {
      (window as unknown as { HandoffChatSettings: unknown }).HandoffChatSettings = { name: 'Ada Lovelace' };
    });
    await customer.goto(`${rig.baseUrl}/`);
    await customer.locator('.hc-launcher').click();
    await customerSays(customer, 'Where is my order?');
    await sees(customer, '.hc-msg.hc-agent', 'Account > Orders');
    await sees(operator, '.row[data-state="agent"]', 'Ada Lovelace');

    // A refund over the limit: the agent escalates. The conversation jumps to the top, waiting, on time.
    await customerSays(customer, 'I need a refund of $250 for order A-1001, it arrived broken');
    await sees(customer, '.hc-notice[data-notice="escalated"]', /ticket reference is HB-\d+/);
    const waiting = operator.locator('.row[data-state="waiting"]');
    await waiting.waitFor();
    expect(await waiting.getAttribute('data-sla')).toBe('ok');
    expect(await operator.locator('.row').first().getAttribute('data-state')).toBe('waiting');
    await waitFor(async () => (await operator.title()).startsWith('(1) Console'), { what: 'the waiting count in the title' });
    const conversationId = (await waiting.getAttribute('data-id'))!;
    const { ticket } = (await rig.bridge.getConversation(conversationId))!;

    // Keyboard only: j opens the first conversation in the inbox: the waiting one, with its briefing.
    await operator.locator('body').press('j');
    await sees(operator, '.briefing', 'Refund a damaged order');
    await sees(operator, '.briefing .options button', 'Approve refund of 250 USD');
    expect(await operator.locator('.thread-header .ticket').textContent()).toBe(ticket);
    await shot(operator, 'briefing');

    // c claims: the customer is told, the header and the inbox follow.
    await operator.locator('body').press('c');
    await sees(customer, '.hc-notice[data-notice="joined"]', 'Dana Scully from our team has joined');
    await sees(operator, '.thread-header .state', 'With a person');
    await sees(operator, '.briefing-status', 'Claimed by Dana Scully');
    await sees(operator, `.row[data-id="${conversationId}"]`, 'You');

    // r replies; the customer gets it under Dana's name.
    await operator.locator('body').press('r');
    await operator.keyboard.type("Hi Ada, I'm Dana. Sorry about the desk: I can see the photos of the cracked leg.");
    await operator.keyboard.press('Enter');
    const reply = await sees(customer, '.hc-msg.hc-operator', 'cracked leg');
    expect(reply).toContain('Dana Scully');
    await sees(operator, '.entry.e-operator .bubble', 'cracked leg');

    // A // note stays in the console.
    await operator.locator('.reply-input').fill('// Warehouse confirms the damage; offering store credit first.');
    await operator.locator('.reply-input').press('Enter');
    await sees(operator, '.entry.e-note .bubble', 'Warehouse confirms the damage');

    // The customer answers, with markup that must show as text on the operator's screen.
    const markup = 'Store credit is fine <img src=x onerror="window.__pwned=1"> <b>thanks</b>';
    await customerSays(customer, markup);
    await sees(operator, '.entry.e-customer .bubble', '<b>thanks</b>');
    expect(await operator.evaluate(() => ({ pwned: (window as unknown as { __pwned?: number }).__pwned, injected: document.querySelectorAll('.transcript img, .transcript b').length }))).toEqual({ pwned: undefined, injected: 0 });
    await shot(operator, 'takeover');

    // Esc leaves the reply box; b returns it with a note; the agent picks up at once, grounded in the note.
    await operator.locator('.reply-input').press('Escape');
    await operator.keyboard.press('b');
    const dialog = operator.locator('dialog[open]');
    await dialog.waitFor();
    await dialog.locator('textarea').fill('Refund approved as store credit: 250 USD on the account today.');
    await dialog.getByRole('button', { name: 'Return to agent' }).click();
    await sees(customer, '.hc-notice[data-notice="returned"]', 'back with the assistant');
    await sees(customer, '.hc-msg.hc-agent', 'Refund approved as store credit');
    await sees(operator, '.thread-header .state', 'With the agent');
    await sees(operator, '.entry.e-agent .bubble', 'Refund approved as store credit');

    // The agent keeps answering, and the operator watches it live.
    await customerSays(customer, 'What are your opening hours?');
    await sees(customer, '.hc-msg.hc-agent', 'Monday to Friday');
    await sees(operator, '.entry.e-agent .bubble', 'Monday to Friday');
    await sees(operator, '.history', 'Dana Scully returned the conversation to the agent');
    await shot(operator, 'returned');
    await shot(customer, 'customer');

    // What the customer saw never included the note.
    const seen = (await customer.locator('.hc-msg .hc-bubble, .hc-notice').allTextContents()).join('\n');
    expect(seen).not.toContain('Warehouse confirms');
    const stored = (await rig.bridge.getConversation(conversationId))!;
    expect(stored.state).toBe('agent');
    expect(stored.history.map((h) => h.reason)).toEqual(['escalate', 'claim', 'return']);
    expect(stored.messages.find((m) => m.text.includes('Warehouse confirms'))).toMatchObject({ visibility: 'internal', source: { workspace: 'console' } });
    expect(operatorProblems).toEqual([]);
    expect(customerProblems).toEqual([]);
  });

  it('a manager signs in with a one-time link and watches every conversation, read-only, waits turning amber then red', { timeout: 60_000 }, async () => {
    // A 4-second response target, so the colours change while the test watches.
    rig = await startConsole({ agent: demoAgent(), config: { slaMs: 4000 } });
    await seed(rig);
    await rig.bridge.customerMessage({ origin: 'api', customer: { id: 'c-9', name: 'Ada Lovelace' }, text: 'I need a refund of $250 for order A-1001, it arrived broken' });
    await rig.settle();

    const link = await rig.console.createSignInLink('lee');
    const { page, problems } = await newPage();
    await page.goto(`${rig.baseUrl}${link}`);
    // A link preview fetching the page must not use the link up: a person confirms.
    await page.getByRole('button', { name: 'Continue as Lee Chen' }).click();
    await page.locator('.row').first().waitFor();
    await sees(page, '.me', 'Manager · read-only');
    const first = page.locator('.row[data-state="waiting"]').first();
    await first.click();
    await sees(page, '.briefing', 'Refund a damaged order');
    expect(await page.locator('.actions button').count()).toBe(0);
    expect(await page.locator('.composer').isHidden()).toBe(true);
    expect(await page.locator('.briefing .options button[data-option]:not([disabled])').count()).toBe(0);

    // A second customer starts waiting; the first one's wait goes past the target.
    await rig.bridge.customerMessage({ origin: 'api', customer: { id: 'c-10', name: 'Katherine Johnson' }, text: 'I want to talk to a human about a charge on my invoice INV-77812' });
    await waitFor(async () => (await first.getAttribute('data-sla')) === 'late', { what: 'the first wait to turn red', timeoutMs: 10_000 });
    expect(await page.locator('.row[data-state="waiting"]').count()).toBe(2);
    await waitFor(async () => (await page.locator('.row[data-state="waiting"]').nth(1).getAttribute('data-sla')) === 'warn', { what: 'the second wait to turn amber', timeoutMs: 10_000 });
    await shot(page, 'manager');

    // The link worked once.
    const { page: again } = await newPage();
    await again.goto(`${rig.baseUrl}${link}`);
    await sees(again, '.error', 'not valid, has expired, or was already used');
    expect(problems).toEqual([]);
  });

  it('with several agents: Reveal shows the card number to the owner only, under its line, and Route… picks and pins an agent', { timeout: 60_000 }, async () => {
    model = await startChatEmulator();
    const agent = new MultiAgent(
      { mode: 'handoffs', defaultAgent: 'triage', agents: [{ name: 'triage', instructions: 'Route.', handoffs: [{ to: 'billing' }] }, { name: 'billing', instructions: 'Charges.' }] },
      { apiKey: 'sk-test', baseURL: model.baseURL, maxRetries: 0, brandName: 'Northwind' },
    );
    rig = await startConsole({ agent });
    const card = '4242 4242 4242 4242';
    const { conversation } = await rig.bridge.customerMessage({ origin: 'api', customer: { id: 'c-1', name: 'Ada Lovelace' }, text: `I want to talk to a human, my card ${card} was charged twice` });
    await rig.settle();

    const { page, problems } = await newPage();
    await page.goto(`${rig.baseUrl}/console?token=${CONSOLE_TOKEN}`);
    await page.getByRole('button', { name: /Dana Scully/ }).click();
    await page.locator(`.row[data-id="${conversation.id}"]`).click();
    const line = page.locator('.entry.e-customer').filter({ hasText: '•••• 4242' });
    await line.waitFor();
    // Not hers yet: Reveal waits for a claim.
    expect(await line.locator('button.reveal').isDisabled()).toBe(true);
    await page.locator('.actions .act-claim').click();
    await sees(page, '.thread-header .state', 'With a person');
    await line.locator('button.reveal:not([disabled])').click();
    expect(await sees(page, '.revealed .revealed-text', card)).toContain(card);
    expect(await line.locator('.bubble').textContent()).not.toContain(card);
    await sees(page, '.entry.e-event', 'Dana Scully revealed card •••• 4242');

    await page.locator('.actions .act-route').click();
    const dialog = page.locator('dialog[open]');
    await dialog.locator('select').selectOption('billing');
    await dialog.locator('textarea').fill('a charge question');
    await dialog.getByLabel(/Pin/).check();
    await dialog.getByRole('button', { name: 'Route' }).click();
    await sees(page, '.thread-sub .agent', 'Agent: billing (pinned)');
    await sees(page, '.history', 'Dana Scully handed the conversation from triage to billing and pinned it: a charge question');
    expect(problems).toEqual([]);
  });
});
