/**
 * The cards of the escalation ladder and the managers' view, as pure functions: the thread lines
 * of the new notices, the history reasons in words, the managers' card in each state, the Home tab
 * and the digest. Untrusted text is escaped and Block Kit's limits hold whatever the input.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digestMessage, rateLine } from '../../cards/slack/digest.ts';
import { homeView } from '../../cards/slack/home.ts';
import { blockKitViolations } from '../../cards/slack/limits.ts';
import { managersCard, managersCardText } from '../../cards/slack/managers.ts';
import { describeChange, formatDuration, lastWait } from '../../cards/slack/status.ts';
import { threadMessage } from '../../cards/slack/thread.ts';
import { oncallGroupFor } from '../../adapters/slack/config.ts';
import type { Digest } from '../../src/engine/digest.ts';
import type { Conversation, HistoryEntry, Message } from '../../src/model.ts';
import { conversationFixture } from '../support/conversations.ts';

const T0 = Date.parse('2026-11-30T10:00:00.000Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();
const DANA = { id: 'slack:UDANA', name: 'Dana <@U1>', workspace: 'slack' };
const escalate: HistoryEntry = { from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, at: at(0), trigger: 'explicit_request' };

function waiting(overrides: Partial<Conversation> = {}): Conversation {
  return conversationFixture({ id: 'conv_1', ticket: 'HB-1042', state: 'waiting', customer: { id: 'v1', name: 'Ann <!here>' }, history: [escalate], ...overrides });
}

const system = (text: string, extra: Partial<Message> = {}): Message => ({ id: 'msg_1', at: at(5), author: { role: 'system' }, text, visibility: 'internal', ...extra });

describe('the ladder in the thread', () => {
  it('mentions the on-call group on a reminder and links the managers channel, nothing else', () => {
    const reminder = system('Reminder: HB-1042 has waited 5 min for a person (general queue).', { notice: 'reminder' });
    expect(threadMessage(reminder, { oncallGroup: 'S0ONCALL1' }).text).toBe(':alarm_clock: Reminder: HB-1042 has waited 5 min for a person (general queue). <!subteam^S0ONCALL1>');
    expect(threadMessage(reminder).text).toBe(':alarm_clock: Reminder: HB-1042 has waited 5 min for a person (general queue).');
    // Only a user group id goes into a mention.
    expect(threadMessage(reminder, { oncallGroup: '!channel' }).text).not.toContain('<!');
    const managers = system("Sent to the managers' channel: unclaimed for 15 min.", { notice: 'managers' });
    expect(threadMessage(managers, { managersChannel: 'CMANAGERS1', oncallGroup: 'S0ONCALL1' }).text).toBe(":mega: Sent to the managers' channel: unclaimed for 15 min. → <#CMANAGERS1>");
    // A customer cannot borrow either: their text is escaped and gets no suffix.
    const customer: Message = { id: 'msg_2', at: at(1), author: { role: 'customer', name: 'Ann' }, text: 'Reminder: <!subteam^S0ONCALL1>', visibility: 'public', notice: 'reminder' };
    expect(threadMessage(customer, { oncallGroup: 'S0ONCALL1' }).text).toBe(':bust_in_silhouette: *Ann* (customer)\nReminder: &lt;!subteam^S0ONCALL1&gt;');
    const told = { ...system("I'm sorry: no one from our team is free right now.", { notice: 'fallback' }), visibility: 'public' as const };
    expect(threadMessage(told).text).toBe(":speech_balloon: *Customer was told:* I'm sorry: no one from our team is free right now.");
  });

  it('picks the queue group, or the one for every queue', () => {
    expect(oncallGroupFor({ oncallGroups: { billing: 'S0B', '*': 'S0ALL' } }, 'billing')).toBe('S0B');
    expect(oncallGroupFor({ oncallGroups: { billing: 'S0B', '*': 'S0ALL' } }, 'general')).toBe('S0ALL');
    expect(oncallGroupFor({}, 'general')).toBeUndefined();
  });

  it('says every history reason in words', () => {
    const entry = (reason: string, from: HistoryEntry['from'], to: HistoryEntry['to'], note?: string): HistoryEntry => ({ from, to, reason, by: { kind: 'system' }, at: at(5), ...(note ? { note } : {}) });
    expect(describeChange(entry('remind', 'waiting', 'waiting', 'Unclaimed for 5 min'))).toBe(':alarm_clock: Reminder posted in the thread: _Unclaimed for 5 min_');
    expect(describeChange(entry('managers', 'waiting', 'waiting', 'Unclaimed for 15 min'))).toBe(":mega: Sent to the managers' channel: _Unclaimed for 15 min_");
    expect(describeChange(entry('fallback', 'waiting', 'agent', 'Unclaimed for 30 min'))).toBe(':leftwards_arrow_with_hook: Nobody claimed it in time; the customer was told and the agent continues: _Unclaimed for 30 min_');
    expect(describeChange(entry('expire', 'human', 'waiting', 'Dana did not answer the customer for 30 min'))).toBe(':hourglass: Back in the queue: _Dana did not answer the customer for 30 min_');
    expect(describeChange(entry('nudge', 'human', 'human'))).toBe(':bell: The owner was reminded privately');
  });

  it('formats waits as people say them', () => {
    expect([0, 59_000, 60_000, 17 * 60_000, 60 * 60_000, 125 * 60_000, 26 * 3600_000].map(formatDuration)).toEqual(['under a minute', 'under a minute', '1 min', '17 min', '1 h', '2 h 5 min', '1 d 2 h']);
  });
});

describe("the managers' card", () => {
  const now = new Date(T0 + 17 * 60_000);
  const link = 'https://acme.slack.com/archives/CSUPPORT01/p1700000000000100';

  it('shows the wait, the reason and the thread, with Claim while nobody has it', () => {
    const card = managersCard({ conversation: waiting(), escalation: 1, threadLink: link, now });
    expect(blockKitViolations(card)).toEqual([]);
    const text = JSON.stringify(card.blocks);
    expect(text).toContain(':rotating_light: *HB-1042* has waited *17 min* for a person and nobody has claimed it.');
    expect(text).toContain('Ann &lt;!here&gt;');
    expect(text).toContain(`<${link}|Open the thread>`);
    expect(card.blocks!.at(-1)).toMatchObject({ type: 'actions', elements: [{ action_id: 'briefing_claim', value: 'conv_1|1' }] });
    expect(card.text).toBe('HB-1042 has waited 17 min for a person');
    expect(managersCardText({ conversation: waiting(), escalation: 1, threadLink: link, now }).text).toContain('has waited *17 min*');
  });

  it('says who claimed it and after how long, or how the wait ended, without buttons', () => {
    const claim: HistoryEntry = { from: 'waiting', to: 'human', reason: 'claim', by: { kind: 'operator', operator: DANA }, at: at(12) };
    const claimed = managersCard({ conversation: waiting({ state: 'human', owner: DANA, history: [escalate, claim] }), escalation: 1, now });
    expect(JSON.stringify(claimed.blocks)).toContain('was claimed by *Dana &lt;@U1&gt;* after 12 min.');
    expect(claimed.blocks!.some((b) => b.type === 'actions')).toBe(false);
    const fallback: HistoryEntry = { from: 'waiting', to: 'agent', reason: 'fallback', by: { kind: 'system' }, at: at(30) };
    expect(JSON.stringify(managersCard({ conversation: waiting({ state: 'agent', history: [escalate, fallback] }), escalation: 1, now }).blocks)).toContain('nobody claimed it in 30 min');
    const again: HistoryEntry = { ...escalate, at: at(40) };
    const newer = managersCard({ conversation: waiting({ history: [escalate, fallback, again] }), escalation: 1, now });
    expect(JSON.stringify(newer.blocks)).toContain('a newer escalation replaced this one');
    expect(newer.blocks!.some((b) => b.type === 'actions')).toBe(false);
    // The wait is the latest one: a release starts a new wait.
    const release: HistoryEntry = { from: 'human', to: 'waiting', reason: 'release', by: { kind: 'operator', operator: DANA }, at: at(14) };
    expect(lastWait(waiting({ history: [escalate, claim, release] }))?.start.at).toBe(at(14));
  });

  it('fits Block Kit whatever the names and reasons hold', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 5000 }), fc.string({ maxLength: 500 }), fc.constantFrom('waiting', 'human', 'agent', 'closed') as fc.Arbitrary<Conversation['state']>, (name, queue, state) => {
        const conversation = waiting({ state, queue, customer: { id: name || 'x', name }, owner: { ...DANA, name } });
        const card = managersCard({ conversation, escalation: 1, threadLink: 'javascript:alert(1)', threadChannel: 'not a channel', now });
        expect(blockKitViolations(card)).toEqual([]);
        expect(JSON.stringify(card)).not.toContain('javascript:');
      }),
      { numRuns: 200 },
    );
  });
});

describe('the Home tab', () => {
  it('lists waiting conversations oldest first and held ones with their owner, within the view limits', () => {
    const now = new Date(T0 + 60 * 60_000);
    const waitingList = Array.from({ length: 40 }, (_, i) =>
      waiting({ id: `conv_w${i}`, ticket: `HB-${2000 + i}`, history: [{ ...escalate, at: at(59 - i) }], briefing: undefined, customer: { id: `c${i}`, name: `Customer ${i} & <co>` } }),
    );
    const held = [waiting({ id: 'conv_h', ticket: 'HB-3000', state: 'human', owner: DANA, history: [escalate, { from: 'waiting', to: 'human', reason: 'claim', by: { kind: 'operator', operator: DANA }, at: at(15) }] })];
    const view = homeView({ waiting: waitingList, held, now, threadLink: (c) => (c.id === 'conv_w39' ? 'https://acme.slack.com/archives/C1/p1' : undefined) });
    expect(blockKitViolations(view, 'view')).toEqual([]);
    const text = JSON.stringify(view.blocks);
    // The oldest (waited longest) first; only 25 listed, the rest counted.
    expect(text.indexOf('HB-2039')).toBeLessThan(text.indexOf('HB-2038'));
    expect(text).toContain('*<https://acme.slack.com/archives/C1/p1|HB-2039>*');
    expect(text).toContain('HB-2039>* · Customer 39 &amp; &lt;co&gt; · general · waiting *40 min*');
    expect(text).not.toContain('HB-2014');
    expect(text).toContain('…and 15 more waiting');
    expect(text).toContain('Customer 39 &amp; &lt;co&gt;');
    expect(text).toContain('held by *Dana &lt;@U1&gt;* for 45 min');
    expect(homeView({ waiting: [], held: [], now }).blocks.map((b) => JSON.stringify(b)).join()).toContain('Nobody is waiting.');
  });
});

describe('the daily digest', () => {
  const digest = (overrides: Partial<Digest> = {}): Digest => ({
    date: '2026-11-30',
    conversations: 100,
    escalations: 12,
    escalationRate: 0.12,
    target: { low: 0.1, high: 0.15 },
    claims: 0,
    unclaimed: 0,
    fallbacks: 0,
    topTriggers: [],
    returnsPerOperator: [],
    ...overrides,
  });

  it('places the escalation rate against the target band', () => {
    expect(rateLine(digest())).toBe(':white_check_mark: Escalation rate *12%* (12 of 100 conversations): within the 10%–15% target.');
    expect(rateLine(digest({ escalations: 30, escalationRate: 0.3 }))).toMatch(/^:arrow_up: .*above the 10%–15% target\.$/);
    expect(rateLine(digest({ escalations: 2, escalationRate: 0.02 }))).toMatch(/^:arrow_down: .*below the 10%–15% target\.$/);
    expect(rateLine(digest({ conversations: 0, escalations: 0, escalationRate: 0 }))).toBe('No conversations yet (target escalation rate 10%–15%).');
    const quiet = digestMessage(digest());
    expect(JSON.stringify(quiet.blocks)).toContain('*Median time to claim*\\n–');
    expect(JSON.stringify(quiet.blocks)).toContain('_No escalations._');
  });

  it('fits Block Kit with any triggers and operators, listing ten of each', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ trigger: fc.string({ maxLength: 300 }), count: fc.nat() }), { maxLength: 30 }), fc.array(fc.record({ operatorId: fc.string({ maxLength: 300 }), name: fc.string({ maxLength: 300 }), count: fc.nat() }), { maxLength: 30 }), (topTriggers, returnsPerOperator) => {
        const message = digestMessage(digest({ topTriggers, returnsPerOperator }));
        expect(blockKitViolations(message)).toEqual([]);
        expect(JSON.stringify(message)).not.toMatch(/<[@!#]/);
      }),
      { numRuns: 200 },
    );
  });
});
