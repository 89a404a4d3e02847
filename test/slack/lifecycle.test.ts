/**
 * The escalation ladder and the managers' view in Slack (issue 10), against the Slack emulator
 * with second-scale durations: the reminder mentions the queue's on-call group, the managers'
 * card (once per escalation, even when Slack loses the answer) with a Claim that works from there,
 * the fallback shown in the thread, the Home tab's live queue and today's figures, and the daily
 * digest's blocks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { blockKitViolations } from '../../cards/slack/limits.ts';
import type { Digest } from '../../src/engine/digest.ts';
import { DEFAULT_POLICY, type Policy } from '../../src/policy.ts';
import { waitFor } from '../support/harness.ts';
import { CHANNEL, DANA, MANAGERS_CHANNEL, SAM, startSlackFixture, type SlackFixture } from './fixture.ts';

const ONCALL = 'S0ONCALL01';

function ladder(durations: Partial<Policy['escalation']>): Policy {
  return { ...DEFAULT_POLICY, escalation: { ...DEFAULT_POLICY.escalation, remindAfter: '0', managersAfter: '0', fallbackAfter: '0', ...durations } };
}

/** Everything a message shows, as one string (text and blocks). */
const shown = (m: { versions: Array<{ text: string; blocks?: any[] }> } | undefined) => JSON.stringify(m?.versions.at(-1) ?? null);

describe('the escalation ladder in Slack', () => {
  let f: SlackFixture;
  afterEach(async () => {
    await f?.close();
  });

  async function boot(policy: Policy) {
    f = await startSlackFixture({ policy, config: { managersChannelId: MANAGERS_CHANNEL, oncallGroups: { general: ONCALL } }, userGroups: [{ id: ONCALL, handle: 'support-oncall' }] });
  }

  async function escalate(name = 'Ann Lee') {
    const { conversation } = await f.bridge.customerMessage({ origin: 'webchat', customer: { id: `v-${name}`, name }, text: 'I want to talk to a human' });
    await f.settle();
    expect((await f.bridge.getConversation(conversation.id))!.state).toBe('waiting');
    return conversation;
  }

  const managersPosts = () => f.emulator.messages.filter((m) => m.channel === MANAGERS_CHANNEL && !m.thread_ts);

  it('reminds in the thread, mentioning the queue on-call group, once', async () => {
    await boot(ladder({ remindAfter: '0.3s' }));
    const conversation = await escalate();
    const reminder = await waitFor(async () => (await f.threadTexts(conversation.id)).find((t) => t.includes('Reminder:')), { what: 'the reminder' });
    expect(reminder).toMatch(/^:alarm_clock: Reminder: HB-\d+ has waited .* for a person \(general queue\)\. <!subteam\^S0ONCALL01>$/);
    await new Promise((r) => setTimeout(r, 500));
    await f.settle();
    expect((await f.threadTexts(conversation.id)).filter((t) => t.includes('Reminder:'))).toHaveLength(1);
    expect((await f.bridge.getConversation(conversation.id))!.history.map((h) => h.reason)).toEqual(['escalate', 'remind']);
  });

  it('posts the managers card once, with the wait, reason, thread link and a Claim that works from there', async () => {
    await boot(ladder({ managersAfter: '0.3s' }));
    // Slack stores the card but the answer is lost: the retry looks it up instead of posting again.
    f.emulator.fault({ method: 'chat.postMessage', when: (args) => args.channel === MANAGERS_CHANNEL, kind: 'lost_answer', times: 1 });
    const conversation = await escalate();
    const root = await f.root(conversation.id);
    const card = await waitFor(() => (f.emulator.callsOf('conversations.history').some((c) => c.args.channel === MANAGERS_CHANNEL) ? managersPosts()[0] : undefined), { what: 'the managers card after a lost answer' });
    await waitFor(async () => (await f.slack.directory.managersCards(conversation.id)).length === 1, { what: 'the card recorded' });
    await f.settle();
    expect(managersPosts()).toHaveLength(1);
    expect(card.metadata?.event_payload).toEqual({ key: `managers:${conversation.id}:1` });
    const before = shown(card);
    const ticket = (await f.bridge.getConversation(conversation.id))!.ticket;
    expect(before).toContain(`*${ticket}* has waited *`);
    expect(before).toContain('The customer asked for a person');
    expect(before).toContain(`<${f.emulator.permalink(root.channel, root.ts)}|Open the thread>`);
    expect(f.emulator.buttons(card.channel, card.ts)).toEqual(['briefing_claim']);
    expect(blockKitViolations(card.versions.at(-1)!)).toEqual([]);
    // The thread says where it went.
    expect((await f.threadTexts(conversation.id)).some((t) => t.startsWith(":mega: Escalated to the managers") && t.endsWith(`→ <#${MANAGERS_CHANNEL}>`))).toBe(true);

    // Sam claims from the managers' channel.
    const click = await f.events.interaction(f.emulator.blockActionPayload({ channel: card.channel, ts: card.ts, actionId: 'briefing_claim', user: SAM.userId }));
    expect(click.status).toBe(200);
    await waitFor(async () => (await f.bridge.getConversation(conversation.id))?.owner?.name === SAM.name, { what: 'the claim from the managers card' });
    await f.settle();
    expect(f.emulator.buttons(card.channel, card.ts)).toEqual([]);
    expect(shown(f.emulator.message(card.channel, card.ts))).toContain(`was claimed by *${SAM.name}* after`);
    // The briefing in the thread shows it too; a later claimer is told privately.
    expect(f.emulator.buttons((await f.briefings(conversation.id))[0]!.channel, (await f.briefings(conversation.id))[0]!.ts)).not.toContain('briefing_claim');
    await f.events.interaction(f.emulator.blockActionPayload({ channel: card.channel, ts: card.ts, actionId: 'briefing_claim', user: DANA.userId, stale: true }));
    await f.settle();
    expect(f.emulator.ephemerals.some((e) => e.user === DANA.userId && e.channel === MANAGERS_CHANNEL && e.text.includes(`already held by *${SAM.name}*`))).toBe(true);
    expect((await f.bridge.getConversation(conversation.id))!.owner?.name).toBe(SAM.name);
  });

  it('shows every step of the ladder in the thread, through the fallback', async () => {
    await boot(ladder({ remindAfter: '0.2s', managersAfter: '0.4s', fallbackAfter: '0.7s' }));
    const conversation = await escalate();
    await waitFor(async () => (await f.bridge.getConversation(conversation.id))?.state === 'agent', { what: 'the fallback' });
    await f.settle();
    const texts = await f.threadTexts(conversation.id);
    const step = (pattern: RegExp) => texts.findIndex((t) => pattern.test(t));
    const order = [/^:alarm_clock: Reminder:/, /^:mega: Escalated to the managers/, /^:speech_balloon: \*Customer was told:\* I'm sorry: no one from our team is free right now/, /^:information_source: Fallback: Unclaimed for/].map(step);
    expect(order.every((i) => i >= 0), JSON.stringify(texts, null, 1)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect((await f.bridge.getConversation(conversation.id))!.history.map((h) => h.reason)).toEqual(['escalate', 'remind', 'managers', 'fallback']);
    // The briefing and the managers' card say how it ended, and offer Take over instead of Claim.
    const copy = (await f.briefings(conversation.id))[0]!;
    expect(f.emulator.buttons(copy.channel, copy.ts)).toEqual(['briefing_takeover']);
    expect(shown(f.emulator.message(copy.channel, copy.ts))).toContain('Nobody claimed it in time');
    const card = managersPosts()[0]!;
    expect(f.emulator.buttons(card.channel, card.ts)).toEqual([]);
    expect(shown(f.emulator.message(card.channel, card.ts))).toContain('nobody claimed it in');
    expect(f.customer.texts(conversation.id).some((t) => t.startsWith("I'm sorry: no one from our team is free right now"))).toBe(true);
  });

  it('gives a later escalation of the same conversation its own card, and the first one loses its button', async () => {
    await boot(ladder({ managersAfter: '0.2s' }));
    const conversation = await escalate();
    await waitFor(() => managersPosts().length === 1, { what: 'the first card' });
    await f.settle();
    await f.click(conversation.id, DANA.userId, 'briefing_claim');
    await f.settle();
    const command = f.emulator.slashCommand({ command: '/return', text: 'handled', user: DANA.userId, channel: CHANNEL });
    expect((await f.events.command(command)).status).toBe(200);
    await f.settle();
    await f.bridge.customerMessage({ conversationId: conversation.id, origin: 'webchat', customer: { id: 'v-Ann Lee', name: 'Ann Lee' }, text: 'I want a human again' });
    await waitFor(() => managersPosts().length === 2, { what: 'the second card' });
    await f.settle();
    const [first, second] = managersPosts();
    expect(second!.metadata?.event_payload).toEqual({ key: `managers:${conversation.id}:2` });
    expect(f.emulator.buttons(first!.channel, first!.ts)).toEqual([]);
    expect(shown(f.emulator.message(first!.channel, first!.ts))).toContain('a newer escalation replaced this one');
    expect(f.emulator.buttons(second!.channel, second!.ts)).toEqual(['briefing_claim']);
  });

  it('refuses to start with an on-call group Slack does not know', async () => {
    await boot(ladder({}));
    const { createSlackWorkspace } = await import('../../adapters/slack/index.ts');
    const other = createSlackWorkspace({
      bridge: f.bridge,
      http: f.http,
      logger: f.test.bridge.logger,
      config: { botToken: f.emulator.botToken, appToken: f.emulator.appToken, channelId: CHANNEL, apiUrl: f.emulator.url, oncallGroups: { billing: 'S0NOSUCH01' } },
    });
    await expect(other.start()).rejects.toThrow(/^SLACK_ONCALL_GROUPS: S0NOSUCH01 \(queue billing\) is not an enabled user group/);
  });
});

describe('the managers view in Slack', () => {
  let f: SlackFixture;
  afterEach(async () => {
    await f?.close();
  });

  it('shows the live queue on the Home tab: waiting oldest first with their wait, held with owner, and today', async () => {
    f = await startSlackFixture({ policy: ladder({}), config: { managersChannelId: MANAGERS_CHANNEL } });
    const ask = async (name: string) => (await f.bridge.customerMessage({ origin: 'webchat', customer: { id: `v-${name}`, name }, text: 'I want to talk to a human' })).conversation;
    const first = await ask('Ann Lee');
    await new Promise((r) => setTimeout(r, 20));
    const second = await ask('Bob Ray');
    await new Promise((r) => setTimeout(r, 20));
    const held = await ask('Cy Held');
    await f.settle();
    await f.click(held.id, DANA.userId, 'briefing_claim');
    await f.bridge.customerMessage({ origin: 'webchat', customer: { id: 'v-faq' }, text: 'What are your opening hours?' });
    await f.settle();

    const opened = await f.events.event({ type: 'app_home_opened', user: SAM.userId, channel: 'D0SAMHOME', tab: 'home', event_ts: '1.1' });
    expect(opened.status).toBe(200);
    const view = f.emulator.homeView(SAM.userId)!;
    expect(view.type).toBe('home');
    expect(blockKitViolations(view, 'view')).toEqual([]);
    const text = JSON.stringify(view);
    const ticket = async (id: string) => (await f.bridge.getConversation(id))!.ticket;
    expect(text).toContain('Waiting for a person (2)');
    expect(text.indexOf(await ticket(first.id))).toBeLessThan(text.indexOf(await ticket(second.id)));
    expect(text).toMatch(/Ann Lee · general · waiting \*under a minute\*/);
    expect(text).toContain('Held by a person (1)');
    expect(text).toMatch(/Cy Held · general · held by \*Dana\* for under a minute/);
    const root = await f.root(first.id);
    expect(text).toContain(`<https://emulated.slack.com/archives/${root.channel}/p${root.ts.replace('.', '')}|${await ticket(first.id)}>`);
    // Today: 4 conversations, 3 escalations (75%, above the target band), 1 claim.
    expect(text).toContain('Escalation rate *75%* (3 of 4 conversations): above the 10%–15% target.');
    expect(text).toContain('*Claims*\\n1');
    expect(text).toContain('*Unclaimed now*\\n2');

    // The Messages tab opening publishes nothing; Refresh republishes.
    const published = f.emulator.homeViews.length;
    await f.events.event({ type: 'app_home_opened', user: SAM.userId, channel: 'D0SAMHOME', tab: 'messages', event_ts: '1.2' });
    expect(f.emulator.homeViews.length).toBe(published);
    const refresh = { type: 'block_actions', user: { id: SAM.userId, name: 'sam' }, container: { type: 'view', view_id: 'V1' }, trigger_id: '1.2.3', view: { id: 'V1', type: 'home' }, actions: [{ type: 'button', action_id: 'home_refresh', block_id: 'home_actions', value: 'refresh', action_ts: '1.3' }] };
    expect((await f.events.interaction(refresh)).status).toBe(200);
    await f.settle();
    expect(f.emulator.homeViews.length).toBe(published + 1);
  });

  it('posts the daily digest in the managers channel once, as Block Kit', async () => {
    f = await startSlackFixture({ config: { managersChannelId: MANAGERS_CHANNEL } });
    const digest: Digest = {
      date: '2026-11-30',
      conversations: 80,
      escalations: 10,
      escalationRate: 0.125,
      target: { low: 0.1, high: 0.15 },
      medianTimeToClaimSeconds: 245,
      claims: 9,
      unclaimed: 1,
      fallbacks: 2,
      topTriggers: [
        { trigger: 'explicit_request', count: 6 },
        { trigger: 'refund_threshold', count: 3 },
        { trigger: '<!channel> & co', count: 1 },
      ],
      returnsPerOperator: [
        { operatorId: `slack:${DANA.userId}`, name: 'Dana', count: 4 },
        { operatorId: 'teams:29:abc', name: 'Alice Ops', count: 1 },
      ],
    };
    // The first answer is lost after Slack stored it: the scheduler's next try finds it.
    f.emulator.fault({ method: 'chat.postMessage', kind: 'lost_answer', times: 1 });
    await expect(f.slack.postDigest!(digest)).rejects.toThrow();
    await f.slack.postDigest!(digest);
    const posts = f.emulator.messages.filter((m) => m.channel === MANAGERS_CHANNEL);
    expect(posts).toHaveLength(1);
    const message = posts[0]!.versions.at(-1)!;
    expect(blockKitViolations(message)).toEqual([]);
    expect(posts[0]!.metadata?.event_payload).toEqual({ key: 'digest:2026-11-30' });
    const blocks = message.blocks!;
    expect(blocks[0]).toMatchObject({ type: 'header', text: { text: 'Daily digest · 2026-11-30' } });
    expect(blocks[1].text.text).toBe(':white_check_mark: Escalation rate *12.5%* (10 of 80 conversations): within the 10%–15% target.');
    expect(blocks[2].fields.map((x: any) => x.text)).toEqual(['*Median time to claim*\n4 min', '*Claims*\n9', '*Unclaimed now*\n1 :hourglass_flowing_sand:', '*Fallbacks*\n2']);
    expect(blocks[3].text.text).toBe('*Top triggers*\n• explicit_request: 6\n• refund_threshold: 3\n• &lt;!channel&gt; &amp; co: 1');
    // Names, not mentions: the digest pings nobody.
    expect(blocks[4].text.text).toBe('*Returns to the agent, per operator*\n• Dana: 4\n• teams:29:abc: 1');
    expect(message.text).toContain('escalation rate 12.5% (target 10%–15%), median time to claim 4 min, 1 unclaimed, 2 fallbacks');
  });

  it('leaves the managers steps out without a managers channel', async () => {
    f = await startSlackFixture();
    expect(f.slack.postToManagers).toBeUndefined();
    expect(f.slack.postDigest).toBeUndefined();
  });
});
