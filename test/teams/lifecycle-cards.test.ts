/**
 * The pure Teams builders for the escalation lifecycle: the managers' alert, the digest card, the
 * reminder line with its tag mention, history wording, and the settings they come from.
 */
import { describe, expect, it } from 'vitest';
import { oncallTagFor, parseOncallTags, teamsConfigFromEnv } from '../../adapters/teams/config.ts';
import { cardText, type AdaptiveCard } from '../../cards/teams/adaptive.ts';
import { buildDigestCard, rateVerdict } from '../../cards/teams/digest.ts';
import { buildManagersCard, threadDeepLink } from '../../cards/teams/managers.ts';
import { formatMirroredMessage } from '../../cards/teams/message.ts';
import { buildReminderCard } from '../../cards/teams/reminder.ts';
import { describeChange, endOfWait, formatDuration, waitStartedAt } from '../../cards/teams/status.ts';
import { utf16Bytes } from '../../cards/teams/text.ts';
import type { Digest } from '../../src/engine/digest.ts';
import { ConfigError } from '../../src/errors.ts';
import type { Conversation, HistoryEntry, Message } from '../../src/model.ts';
import { conversationFixture } from '../support/conversations.ts';
import { HandoffEnvelopeSchema } from '../../src/envelope.ts';

const T0 = Date.parse('2025-03-03T10:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const ALICE = { id: 'teams:29:alice', name: 'Alice Ops', workspace: 'teams' };
const SYSTEM = { kind: 'system' } as const;

function waiting(overrides: Partial<Conversation> = {}): Conversation {
  return conversationFixture({
    id: 'conv_9',
    ticket: 'HB-1077',
    queue: 'billing',
    customer: { id: 'c9', name: 'Ada Lovelace', email: 'ada@example.com' },
    state: 'waiting',
    history: [{ from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at: at(0), trigger: 'refund_threshold' }],
    briefing: HandoffEnvelopeSchema.parse({
      reason: 'Refund over the limit',
      trigger: 'refund_threshold',
      priority: 'high',
      summary: 'Ada wants 300 USD back.',
      intent: 'Refund',
      entities: { ids: [], amounts: [], dates: [], emails: [] },
      sentiment: 'neutral',
      actionsTaken: [],
      pendingQuestion: 'Approve the refund?',
      options: [],
      ticket: 'HB-1077',
    }),
    ...overrides,
  });
}

function withHistory(c: Conversation, ...entries: HistoryEntry[]): Conversation {
  const last = entries.at(-1)!;
  return { ...c, history: [...c.history, ...entries], state: last.to, ...(last.to === 'human' && last.by.kind === 'operator' ? { owner: last.by.operator } : {}) };
}

const texts = (card: AdaptiveCard) => cardText(card);
const actionsOf = (card: AdaptiveCard) => (card.actions ?? []).map((a) => ({ type: a.type, title: a.title }));

describe("the managers' alert card", () => {
  const link = 'https://teams.microsoft.com/l/message/19%3Aops%40thread.tacv2/1700000000001?parentMessageId=1700000000001&createdTime=1700000000001';

  it('shows the ticket, the wait so far, the reason, the customer, a Claim button and the link to the thread', () => {
    const card = buildManagersCard(waiting(), { escalation: 1, now: new Date(T0 + 16 * 60_000 + 5_000), threadLink: link });
    expect(card).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    expect(texts(card)).toEqual([
      '⏳ HB-1077 has waited 16 min 5 s for a person',
      'Ticket: HB-1077 · billing queue',
      'Reason: Refund over the limit (refund_threshold)',
      'Pending question: Approve the refund?',
      'Customer: Ada Lovelace <ada@example.com> via web chat',
      'Now: ⏳ Waiting for a person',
      '[Claim]',
      '[Open the thread]',
    ]);
    expect(card.actions![0]).toMatchObject({ type: 'Action.Execute', verb: 'claim', data: { handoff: 1, conversationId: 'conv_9', action: 'claim' }, fallback: { type: 'Action.Submit' } });
    expect(card.actions![1]).toEqual({ type: 'Action.OpenUrl', title: 'Open the thread', url: link });
  });

  it('measures the wait from the latest time the conversation went back to the queue', () => {
    const released = withHistory(
      waiting(),
      { from: 'waiting', to: 'human', reason: 'claim', by: { kind: 'operator', operator: ALICE }, at: at(60_000) },
      { from: 'human', to: 'waiting', reason: 'expire', by: SYSTEM, at: at(10 * 60_000), note: 'Alice Ops did not answer the customer for 30 min' },
    );
    expect(waitStartedAt(released)).toBe(at(10 * 60_000));
    expect(texts(buildManagersCard(released, { escalation: 1, now: new Date(T0 + 12 * 60_000) }))[0]).toBe('⏳ HB-1077 has waited 2 min for a person');
  });

  it('once claimed, says who and after how long, and loses its Claim button; the holder sees it is theirs', () => {
    const claimed = withHistory(waiting(), { from: 'waiting', to: 'human', reason: 'claim', by: { kind: 'operator', operator: ALICE }, at: at(17 * 60_000) });
    expect(endOfWait(claimed)?.reason).toBe('claim');
    const card = buildManagersCard(claimed, { escalation: 1, now: new Date(T0 + 60 * 60_000), threadLink: link });
    expect(texts(card)[0]).toBe('🙋 Alice Ops claimed the conversation · after 17 min');
    expect(texts(card)).toContain('Now: 🙋 Held by Alice Ops');
    expect(actionsOf(card)).toEqual([{ type: 'Action.OpenUrl', title: 'Open the thread' }]);
    const mine = buildManagersCard(claimed, { escalation: 1, now: new Date(), viewerId: ALICE.id, notice: 'Claimed.' });
    expect(texts(mine)).toContain('Now: 🙋 You hold this conversation');
    expect(mine.body[0]).toMatchObject({ id: 'notice' });
  });

  it('after a fallback, says so; an earlier escalation’s alert only points to the thread', () => {
    const fellBack = withHistory(waiting(), { from: 'waiting', to: 'agent', reason: 'fallback', by: SYSTEM, at: at(30 * 60_000), note: 'Unclaimed for 30 min' });
    expect(texts(buildManagersCard(fellBack, { escalation: 1, now: new Date() }))[0]).toBe('⌛ Fallback, nobody claimed it in time: Unclaimed for 30 min · after 30 min');
    const again = withHistory(fellBack, { from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'customer' }, at: at(40 * 60_000) });
    const old = buildManagersCard(again, { escalation: 1, now: new Date(), threadLink: link });
    expect(texts(old)).toEqual(['🗂️ HB-1077: this alert is from an earlier escalation; the thread has the latest.', '[Open the thread]']);
  });

  it('keeps untrusted text literal and leaves out a link that is not http(s)', () => {
    const hostile = waiting({ customer: { id: 'c', name: '**[click](https://evil.example)** <at>Everyone</at>' } });
    const card = buildManagersCard(hostile, { escalation: 1, now: new Date(T0), threadLink: 'javascript:alert(1)' });
    const customer = JSON.stringify(card.body.find((e) => JSON.stringify(e).includes('Customer')));
    expect(customer).toContain('"type":"TextRun"');
    expect(card.body.every((e) => e.type !== 'TextBlock')).toBe(true);
    expect(actionsOf(card)).toEqual([{ type: 'Action.Execute', title: 'Claim' }]);
    expect(utf16Bytes(buildManagersCard(waiting({ customer: { id: 'c', name: 'x'.repeat(50_000) } }), { escalation: 1, now: new Date() }))).toBeLessThan(10_000);
  });

  it('links to the thread the way Teams documents channel-conversation deep links', () => {
    expect(threadDeepLink({ channelId: '19:ops@thread.tacv2', rootMessageId: '1700000000001', tenantId: '72f988bf-0000-4000-8000-000000000001', groupId: '3606f714-ec2e-41b3-9ad1-6afb331bd35d' })).toBe(
      'https://teams.microsoft.com/l/message/19%3Aops%40thread.tacv2/1700000000001?tenantId=72f988bf-0000-4000-8000-000000000001&groupId=3606f714-ec2e-41b3-9ad1-6afb331bd35d&parentMessageId=1700000000001&createdTime=1700000000001',
    );
    expect(threadDeepLink({ channelId: '19:ops@thread.tacv2', rootMessageId: '1700000000001' })).toBe(link);
  });
});

describe('the daily digest card', () => {
  const digest: Digest = {
    date: '2025-03-03',
    conversations: 80,
    escalations: 10,
    escalationRate: 0.125,
    target: { low: 0.1, high: 0.15 },
    medianTimeToClaimSeconds: 200,
    claims: 8,
    unclaimed: 1,
    fallbacks: 2,
    topTriggers: [
      { trigger: 'explicit_request', count: 6 },
      { trigger: 'refund_threshold', count: 4 },
    ],
    returnsPerOperator: [
      { operatorId: 'teams:29:alice', name: 'Alice', count: 3 },
      { operatorId: 'slack:U0123', name: 'slack:U0123', count: 1 },
    ],
  };

  it('shows the rate against the target, the median time to claim, unclaimed, fallbacks, triggers and returns per operator', () => {
    const card = buildDigestCard(digest, { operatorNames: { 'teams:29:alice': 'Alice Ops' } });
    expect(card).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    expect(texts(card)).toEqual([
      '📊 Handoff digest · 2025-03-03 (UTC)',
      'Escalation rate: 12.5% (10 of 80 conversations) · ✅ within the 10%–15% target',
      'Median time to claim: 3 min 20 s (8 claims)',
      'Waiting unclaimed now: 1',
      'Fallbacks (nobody claimed in time): 2',
      '**Top triggers**',
      '• explicit_request: 6',
      '• refund_threshold: 4',
      '**Returns to the agent, per operator**',
      '• Alice Ops: 3',
      '• U0123 (slack): 1',
    ]);
  });

  it('says when the rate is outside the band, and reads well on a quiet day', () => {
    expect(rateVerdict({ ...digest, escalationRate: 0.2 }).text).toBe('⚠️ above the 10%–15% target');
    expect(rateVerdict({ ...digest, escalationRate: 0.05 }).text).toBe('ℹ️ below the 10%–15% target');
    const quiet = buildDigestCard({ ...digest, conversations: 0, escalations: 0, escalationRate: 0, claims: 0, unclaimed: 0, fallbacks: 0, topTriggers: [], returnsPerOperator: [], medianTimeToClaimSeconds: undefined } as Digest);
    expect(texts(quiet)).toEqual([
      '📊 Handoff digest · 2025-03-03 (UTC)',
      'Escalation rate: 0% (0 of 0 conversations) · no conversations yet (10%–15% target)',
      'Median time to claim: no claims yet',
      'Waiting unclaimed now: 0',
      'Fallbacks (nobody claimed in time): 0',
      '**Top triggers**',
      'No escalations.',
      '**Returns to the agent, per operator**',
      'No returns.',
    ]);
  });

  it('lists at most ten operators', () => {
    const many = { ...digest, returnsPerOperator: Array.from({ length: 14 }, (_, i) => ({ operatorId: `slack:U${i}`, name: `slack:U${i}`, count: 1 })) };
    expect(texts(buildDigestCard(many)).at(-1)).toBe('… and 4 more');
  });
});

describe('ladder steps in the thread', () => {
  const message = (fields: Partial<Message>): Message => ({ id: 'msg_1', at: at(0), author: { role: 'system' }, text: '', visibility: 'internal', ...fields });

  it('labels the reminder and the managers line, and mentions the on-call tag so Teams renders it', () => {
    const reminder = message({ notice: 'reminder', text: 'Reminder: HB-1077 has waited 5 min for a person (billing queue).' });
    expect(formatMirroredMessage(reminder).text).toBe('⏰ Reminder: HB-1077 has waited 5 min for a person (billing queue).');
    expect(formatMirroredMessage(message({ notice: 'managers', text: "Sent to the managers' channel: unclaimed for 15 min." })).text).toBe("📋 Sent to the managers' channel: unclaimed for 15 min.");
    // With a tag: a small card whose first line mentions it, as in Microsoft's tag-mention sample.
    const tagged = buildReminderCard(reminder, { id: 'dGFn=', name: 'Billing <on-call> & *co*' });
    expect(tagged).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    expect(texts(tagged)).toEqual(['⏰ <at>Billing on-call co</at>', 'Reminder: HB-1077 has waited 5 min for a person (billing queue).']);
    expect(tagged.body[1]).toMatchObject({ type: 'RichTextBlock' });
    expect(tagged.msteams?.entities).toEqual([{ type: 'mention', text: '<at>Billing on-call co</at>', mentioned: { id: 'dGFn=', name: 'Billing on-call co', type: 'tag' } }]);
    // The entity's text is found in the card's text, as Teams requires.
    expect(texts(tagged)[0]!.includes(tagged.msteams!.entities![0]!.text)).toBe(true);
  });

  it('words every ladder step in the history', () => {
    const entry = (reason: string, note: string): HistoryEntry => ({ from: 'waiting', to: 'waiting', reason, by: SYSTEM, at: at(0), note });
    expect(describeChange(entry('remind', 'Unclaimed for 5 min'))).toBe('⏰ Reminder: Unclaimed for 5 min');
    expect(describeChange(entry('managers', 'Unclaimed for 15 min'))).toBe('📋 Sent to the managers: Unclaimed for 15 min');
    expect(describeChange(entry('fallback', 'Unclaimed for 30 min'))).toBe('⌛ Fallback, nobody claimed it in time: Unclaimed for 30 min');
    expect(describeChange(entry('expire', 'Alice Ops did not answer the customer for 30 min'))).toBe('⤴️ Back in the queue: Alice Ops did not answer the customer for 30 min');
    expect(describeChange(entry('nudge', 'The customer is waiting for the owner'))).toBe('🔔 Owner nudged privately: The customer is waiting for the owner');
  });

  it('formats durations for people', () => {
    expect([0, 45_000, 60_000, 200_000, 3_600_000, 3_900_000].map(formatDuration)).toEqual(['0 s', '45 s', '1 min', '3 min 20 s', '1 h', '1 h 5 min']);
  });
});

describe("the managers' channel and on-call tags in the environment", () => {
  const base = { TEAMS_CHANNEL_ID: '19:ops@thread.tacv2', MICROSOFT_APP_ID: 'app', MICROSOFT_APP_PASSWORD: 'pw' };
  const TAG = 'MjQzMmI1N2ItMGFiZC00M2RiLWFhN2ItMTZlYWRkMTE1ZDM0IyN0YWc=';

  it('reads TEAMS_MANAGERS_CHANNEL_ID and TEAMS_ONCALL_TAGS (names optional, * for any queue)', () => {
    const config = teamsConfigFromEnv({ ...base, TEAMS_MANAGERS_CHANNEL_ID: ' 19:managers@thread.tacv2 ', TEAMS_ONCALL_TAGS: `general:${TAG}, billing:${TAG}:Billing on-call, *:${TAG}` })!;
    expect(config.managersChannelId).toBe('19:managers@thread.tacv2');
    expect(config.oncallTags).toEqual({ general: { id: TAG, name: 'general on-call' }, billing: { id: TAG, name: 'Billing on-call' }, '*': { id: TAG, name: 'on-call' } });
    expect(oncallTagFor(config, 'billing')?.name).toBe('Billing on-call');
    expect(oncallTagFor(config, 'technical')?.name).toBe('on-call');
    expect(oncallTagFor(teamsConfigFromEnv(base)!, 'general')).toBeUndefined();
    expect(parseOncallTags(`general:${TAG}:On-call: first line`)).toEqual({ general: { id: TAG, name: 'On-call: first line' } });
  });

  it.each([
    ['TEAMS_MANAGERS_CHANNEL_ID', { TEAMS_MANAGERS_CHANNEL_ID: 'managers' }],
    ['TEAMS_ONCALL_TAGS', { TEAMS_ONCALL_TAGS: `general=${TAG}` }],
    ['TEAMS_ONCALL_TAGS', { TEAMS_ONCALL_TAGS: 'general:' }],
    ['TEAMS_ONCALL_TAGS', { TEAMS_ONCALL_TAGS: 'general:<b>bad</b>' }],
  ])('a wrong %s stops start-up with one line naming it', (variable, env) => {
    let error: unknown;
    try {
      teamsConfigFromEnv({ ...base, ...env });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as Error).message).toMatch(new RegExp(`^${variable}: [^\\n]+$`));
  });
});
