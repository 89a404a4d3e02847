/**
 * The escalation lifecycle in Teams, against the Bot Connector emulator with second-scale policy
 * durations: the reminder mentioning the queue's on-call tag, the managers' alert and a claim from
 * it, fallback and release shown in the thread, and the daily digest card.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import { DigestScheduler } from '../../src/engine/digest.ts';
import { silentLogger } from '../../src/log.ts';
import { PolicySchema } from '../../src/policy.ts';
import { buttonTitles, cardOf, linkButtons, renderedMentions, visibleText, type TeamsMessage } from '../emulators/bot-connector.ts';
import { TEAMS_TEST_CHANNEL, TeamsDriver } from '../contract/teams-driver.ts';
import { ScriptedAgent, waitFor } from '../support/harness.ts';
import type { TeamsConfig } from '../../adapters/teams/index.ts';

const MANAGERS = '19:managers-channel@thread.tacv2';
/** A tag id as Graph lists them (base64, `=` padded). */
const TAG_ID = 'MjQzMmI1N2ItMGFiZC00M2RiLWFhN2ItMTZlYWRkMTE1ZDM0IyNvbmNhbGw=';
const customer = { id: 'cust-9', name: 'Ada Lovelace', email: 'ada@example.com' };
const ALICE = { id: '29:alice-mri', name: 'Alice Ops' };
const BOB = { id: '29:bob-mri', name: 'Bob Ops' };

/** Escalates on "refund", otherwise echoes; picks up after a return or a fallback. */
function agent(): ScriptedAgent {
  return new ScriptedAgent(({ conversation }): AgentTurnResult => {
    const last = conversation.messages.filter((m) => m.author.role === 'customer').at(-1)?.text ?? '';
    if (/refund/i.test(last) && conversation.history.every((h) => h.reason !== 'escalate')) {
      return {
        kind: 'escalate',
        trigger: 'agent_tool',
        reason: 'Refund over the limit',
        actionsTaken: [],
        request: { summary: 'Ada wants 300 USD back.', pendingQuestion: 'Approve the refund?', options: [{ id: 'approve', label: 'Approve', risk: 'high' }] },
      };
    }
    return { kind: 'reply', text: `You said: ${last}`, actionsTaken: [] };
  });
}

/** Every ladder step off unless given (0 turns a step off). */
function policy(escalation: Record<string, string | number>) {
  return PolicySchema.parse({ escalation: { remindAfter: 0, managersAfter: 0, fallbackAfter: 0, ownerSilentAfter: 0, ownerReleaseAfter: 0, ...escalation } });
}

const card = (m: TeamsMessage) => cardOf(m.activity);
const text = (m: TeamsMessage) => visibleText(m.activity);
/** The reminder in the thread: a line, or a card mentioning the on-call tag (a briefing posted late also lists it, as history). */
const isReminder = (m: TeamsMessage) => !card(m)?.refresh && text(m).includes('Reminder:');

describe('Teams: an escalation nobody claims', () => {
  let driver: TeamsDriver;
  afterEach(() => driver?.stop());

  async function boot(escalation: Record<string, string | number>, config: Partial<TeamsConfig> = {}) {
    driver = new TeamsDriver({ bridge: { policy: policy(escalation) }, config });
    const { bridge } = await driver.start(agent());
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'I need a refund for order A-7' });
    await driver.settle();
    return { bridge, id: conversation.id, ticket: conversation.ticket };
  }

  const threadReplies = async (id: string) => driver.emulator.replies(await driver.threadId(id), { fromBot: true });

  it("reminds in the thread mentioning the queue's on-call tag, then alerts the managers' channel, where Claim works", async () => {
    const { bridge, id, ticket } = await boot(
      { remindAfter: '0.3s', managersAfter: '0.6s' },
      { managersChannelId: MANAGERS, oncallTags: { general: { id: TAG_ID, name: 'Support on-call' } } },
    );

    // 1. The reminder: a thread line with the tag mention Teams renders (entity text found in the text).
    const reminder = await waitFor(async () => (await threadReplies(id)).find(isReminder), { what: 'the reminder' });
    expect(text(reminder)).toMatch(new RegExp(`^⏰ <at>Support on-call</at>\nReminder: ${ticket} has waited .* for a person \\(general queue\\)\\.$`));
    expect(renderedMentions(reminder.activity)).toEqual([{ text: '<at>Support on-call</at>', mentioned: { id: TAG_ID, name: 'Support on-call', type: 'tag' } }]);

    // 2. The managers' alert: a new thread in the managers' channel, linking to the conversation's thread.
    const alert = await waitFor(() => driver.emulator.roots(MANAGERS)[0], { what: "the managers' alert" });
    await driver.settle(); // the bridge records the alert once Teams has answered
    const alertText = text(alert);
    expect(alertText).toMatch(new RegExp(`⏳ ${ticket} has waited \\d+ s for a person`));
    expect(alertText).toContain('Reason: Refund over the limit (agent_tool)');
    expect(alertText).toContain('Pending question: Approve the refund?');
    expect(alertText).toContain('Customer: Ada Lovelace <ada@example.com> via API');
    expect(buttonTitles(card(alert))).toEqual(['Claim', 'Open the thread']);
    const threadRoot = driver.emulator.root(await driver.threadId(id))!;
    const [link] = linkButtons(card(alert));
    expect(link!.url).toBe(
      `https://teams.microsoft.com/l/message/${encodeURIComponent(TEAMS_TEST_CHANNEL)}/${threadRoot.id}?parentMessageId=${threadRoot.id}&createdTime=${threadRoot.id}`,
    );
    await waitFor(async () => (await driver.threadTexts(id)).some((t) => t.includes("Escalated to the managers")), { what: 'the managers line in the thread' });

    // 3. Claim from the alert: the same claim as the briefing's, answered with the clicker's view.
    const claimed = await driver.emulator.clickButton({ cardActivityId: alert.id, from: ALICE, title: 'Claim' });
    expect(claimed.status).toBe(200);
    expect(JSON.stringify(claimed.body)).toContain('You hold this conversation');
    await driver.settle();
    const conversation = (await bridge.getConversation(id))!;
    expect(conversation).toMatchObject({ state: 'human', owner: { id: `teams:${ALICE.id}`, name: ALICE.name } });

    // Everyone's copy of the alert, the briefing and the root now say who holds it; the alert lost its Claim button.
    const redrawn = driver.emulator.messages.get(alert.id)!;
    expect(text(redrawn)).toMatch(/🙋 Alice Ops claimed the conversation · after \d+ s/);
    expect(text(redrawn)).toContain('Now: 🙋 Held by Alice Ops');
    expect(buttonTitles(card(redrawn))).toEqual(['Open the thread']);
    // The tenant learned from Alice's click now goes into the link too.
    expect(linkButtons(card(redrawn))[0]!.url).toContain(`tenantId=${driver.emulator.tenantId}&parentMessageId=${threadRoot.id}`);
    expect(await driver.rootCard(id)).toContain('Alice Ops');
    expect((await driver.briefingCards(id)).at(-1)).toContain('Held by ');

    // A late click from Bob is told, privately, who holds it; nothing changes.
    const late = await driver.emulator.invoke({ conversationId: alert.conversationId, cardActivityId: alert.id, from: BOB, verb: 'claim', data: { handoff: 1, conversationId: id, action: 'claim' } });
    expect(late.status).toBe(200);
    expect((await driver.emulator.privateTexts(BOB.id)).join('\n')).toContain('already held by Alice Ops');
    // The alert only claims, and only its own conversation.
    const close = await driver.emulator.invoke({ conversationId: alert.conversationId, cardActivityId: alert.id, from: BOB, verb: 'close', data: { handoff: 1, conversationId: id, action: 'close' } });
    expect(close.body).toMatchObject({ statusCode: 403 });
    const other = await driver.emulator.invoke({ conversationId: alert.conversationId, cardActivityId: alert.id, from: BOB, verb: 'claim', data: { handoff: 1, conversationId: 'conv_other', action: 'claim' } });
    expect(other.body).toMatchObject({ statusCode: 403 });
    await driver.settle();
    expect((await bridge.getConversation(id))!.owner?.name).toBe(ALICE.name);

    // One alert per escalation: a retry after an unknown outcome finds the record and posts nothing.
    await driver.workspace.postToManagers!((await bridge.getConversation(id))!, { key: 'retry', count: 2, since: 0 });
    expect(driver.emulator.roots(MANAGERS)).toHaveLength(1);
    const history = (await bridge.getConversation(id))!.history.map((h) => h.reason);
    expect(history).toEqual(['escalate', 'remind', 'managers', 'claim']);
  });

  it("claims from the alert with an older client's Action.Submit too", async () => {
    const { bridge, id } = await boot({ managersAfter: '0.2s' }, { managersChannelId: MANAGERS });
    const alert = await waitFor(() => driver.emulator.roots(MANAGERS)[0], { what: "the managers' alert" });
    await driver.settle();
    expect((await driver.emulator.submitFallback({ cardActivityId: alert.id, from: BOB, title: 'Claim' })).status).toBe(200);
    await driver.settle();
    expect((await bridge.getConversation(id))!.owner?.name).toBe(BOB.name);
    expect(text(driver.emulator.messages.get(alert.id)!)).toContain('Now: 🙋 Held by Bob Ops');
    // Typing in the alert's thread is not a reply to the customer.
    await driver.emulator.channelMessage({ threadId: alert.conversationId, from: BOB, text: 'on it' });
    await driver.settle();
    expect((await bridge.getConversation(id))!.messages.some((m) => m.text === 'on it')).toBe(false);
  });

  it('posts the reminder without the mention when Teams refuses the tag', async () => {
    driver = new TeamsDriver({ bridge: { policy: policy({ remindAfter: '0.3s' }) }, config: { oncallTags: { '*': { id: TAG_ID, name: 'On-call' } } } });
    const { bridge } = await driver.start(agent());
    driver.emulator.fail({ status: 400, bodyIncludes: '"type":"tag"' });
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund please' });
    await driver.settle();
    const reminder = await waitFor(async () => (await threadReplies(conversation.id)).find(isReminder), { what: 'the reminder' });
    expect(text(reminder)).toMatch(/^⏰ Reminder: /);
    expect(card(reminder)).toBeUndefined();
    expect(renderedMentions(reminder.activity)).toEqual([]);
    await driver.settle();
    expect((await threadReplies(conversation.id)).filter(isReminder)).toHaveLength(1);
  });

  it("posts the alert as text when Teams refuses its card, and tells the thread when the managers' channel refuses the bot", async () => {
    driver = new TeamsDriver({ bridge: { policy: policy({ managersAfter: '0.2s' }) }, config: { managersChannelId: MANAGERS } });
    const { bridge } = await driver.start(agent());
    driver.emulator.fail({ status: 400, bodyIncludes: '"Action.OpenUrl"' });
    const first = (await bridge.customerMessage({ origin: 'api', customer, text: 'refund please' })).conversation;
    const textAlert = await waitFor(() => driver.emulator.roots(MANAGERS)[0], { what: 'the text alert' });
    expect(cardOf(textAlert.activity)).toBeUndefined();
    expect(visibleText(textAlert.activity)).toMatch(new RegExp(`^⏳ ${first.ticket} has waited \\d+ s for a person · general queue\nReason: Refund over the limit\nOpen the thread and type 'claim' there to take it\.$`));
    expect(String(textAlert.activity.text)).toContain('href="https://teams.microsoft.com/l/message/');

    // The bot is not in the managers' team: 403 every time. The conversation's thread must not wait forever.
    driver.emulator.fail({ status: 403, times: 100, bodyIncludes: MANAGERS });
    const second = (await bridge.customerMessage({ origin: 'api', customer: { id: 'cust-11', name: 'Bo' }, text: 'refund please' })).conversation;
    await waitFor(async () => (await bridge.getConversation(second.id))!.history.some((h) => h.reason === 'managers'), { what: 'the managers step' });
    const notice = await waitFor(async () => (await driver.threadTexts(second.id).catch(() => [])).find((t) => t.includes("managers' alert")), { what: 'the notice in the thread' });
    expect(notice).toMatch(new RegExp(`^ℹ️ The managers' alert for ${second.ticket} could not be posted in Teams \\(Teams answered 403`));
    await bridge.customerMessage({ conversationId: second.id, origin: 'api', customer: { id: 'cust-11', name: 'Bo' }, text: 'still there?' });
    await driver.settle();
    expect((await driver.threadTexts(second.id)).join('\n')).toContain('still there?');
    expect(driver.emulator.roots(MANAGERS)).toHaveLength(1);
  });

  it('shows the fallback in the thread, on the briefing and on the alert', async () => {
    const { bridge, id, ticket } = await boot({ remindAfter: '0.2s', managersAfter: '0.4s', fallbackAfter: '0.8s' }, { managersChannelId: MANAGERS });
    await waitFor(async () => (await bridge.getConversation(id))!.state === 'agent', { what: 'the fallback' });
    await driver.settle();

    const texts = (await driver.threadTexts(id)).join('\n');
    // Without a tag configured, the reminder is a plain line.
    expect(texts).toMatch(new RegExp(`⏰ Reminder: ${ticket} has waited`));
    expect(texts).toContain("📋 Escalated to the managers: unclaimed for");
    expect(texts).toContain("📣 Customer was told: I'm sorry: no one from our team is free right now.");
    expect(texts).toContain('ℹ️ Fallback: Unclaimed for');
    for (const m of await threadReplies(id)) expect(renderedMentions(m.activity)).toEqual([]);

    const briefing = (await driver.briefingMessages(id)).at(-1)!;
    const briefingText = text(driver.emulator.messages.get(briefing.id)!);
    expect(briefingText).toContain('⏰ Reminder: Unclaimed for');
    expect(briefingText).toContain('📋 Sent to the managers: Unclaimed for');
    expect(briefingText).toContain('⌛ Fallback, nobody claimed it in time: Unclaimed for');
    expect(await driver.rootCard(id)).toContain('With the AI agent');

    const alert = driver.emulator.messages.get(driver.emulator.roots(MANAGERS)[0]!.id)!;
    expect(text(alert)).toMatch(/⌛ Fallback, nobody claimed it in time: Unclaimed for .* · after \d+ s/);
    expect(buttonTitles(card(alert))).toEqual(['Open the thread']);
  });

  it('nudges a silent owner privately, then puts the conversation back in the queue, in the thread and on the cards', async () => {
    const { bridge, id } = await boot({ ownerSilentAfter: '0.3s', ownerReleaseAfter: '0.8s' });
    // Without TEAMS_MANAGERS_CHANNEL_ID the workspace has no managers' work at all.
    expect(driver.workspace.postToManagers).toBeUndefined();
    expect(driver.workspace.postDigest).toBeUndefined();

    await driver.clickClaim(id, { userId: ALICE.id, name: ALICE.name });
    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'Hello? Anyone there?' });
    await waitFor(async () => (await bridge.getConversation(id))!.state === 'waiting', { what: 'the release' });
    await driver.settle();

    expect((await driver.emulator.privateTexts(ALICE.id)).join('\n')).toMatch(/the customer has waited .* for your reply/);
    const texts = (await driver.threadTexts(id)).join('\n');
    expect(texts).toContain('ℹ️ Back in the queue: Alice Ops did not answer the customer for');
    expect(texts).toContain('📣 Customer was told: A person from our team will be with you shortly.');
    const briefing = (await driver.briefingMessages(id)).at(-1)!;
    const latest = driver.emulator.messages.get(briefing.id)!;
    expect(text(latest)).toContain('🔔 Owner nudged privately: The customer is waiting for the owner');
    expect(text(latest)).toContain('⤴️ Back in the queue: Alice Ops did not answer the customer for');
    expect(buttonTitles(card(latest))).toContain('Claim');
    expect(await driver.rootCard(id)).toContain('Waiting for a person');
  });
});

describe("Teams: the managers' daily digest", () => {
  let driver: TeamsDriver;
  afterEach(() => driver?.stop());

  it('posts the day as a card in the managers channel, once per date', async () => {
    driver = new TeamsDriver({ config: { managersChannelId: MANAGERS } });
    const { bridge } = await driver.start(agent());
    // One escalation out of two conversations, claimed and returned by Alice.
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'refund for A-7 please' });
    await bridge.customerMessage({ origin: 'api', customer: { id: 'cust-10', name: 'Bo' }, text: 'hello' });
    await driver.settle();
    await driver.clickClaim(conversation.id, { userId: ALICE.id, name: ALICE.name });
    await driver.returnWithNote(conversation.id, { userId: ALICE.id, name: ALICE.name }, 'refunded 300 USD');
    await driver.settle();

    // The engine's scheduler (one instance takes the day's mark) posts through the workspace.
    const post = (d: Parameters<NonNullable<typeof driver.workspace.postDigest>>[0]) => driver.workspace.postDigest!(d);
    const scheduler = new DigestScheduler({ store: driver.testBridge.store, at: '00:00', targets: [{ name: 'teams', post }], logger: silentLogger() });
    expect(await scheduler.tick()).toBe(true);
    const date = new Date().toISOString().slice(0, 10);
    const [digest] = driver.emulator.roots(MANAGERS);
    expect(cardOf(digest!.activity)).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    const lines = visibleText(digest!.activity).split('\n');
    expect(lines).toEqual([
      `📊 Handoff digest · ${date} (UTC)`,
      'Escalation rate: 50% (1 of 2 conversations) · ⚠️ above the 10%–15% target',
      expect.stringMatching(/^Median time to claim: \d+ s \(1 claim\)$/),
      'Waiting unclaimed now: 0',
      'Fallbacks (nobody claimed in time): 0',
      '**Top triggers**',
      '• agent_tool: 1',
      '**Returns to the agent, per operator**',
      '• Alice Ops: 1',
    ]);

    // The scheduler retrying the day (another workspace failed) does not post it twice here.
    await driver.workspace.postDigest!(await bridge.digest(date));
    expect(driver.emulator.roots(MANAGERS)).toHaveLength(1);
  });
});
