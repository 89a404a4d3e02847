/**
 * What the console shows, as pure functions of the conversation: the inbox order and its SLA
 * colours, the thread's lines, the briefing's status, and what each viewer may do; with several
 * agents, the hops and the agents on the briefing; masked lines and reveals.
 */
import { describe, expect, it } from 'vitest';
import { customerName, filterInbox, formatDuration, inboxCounts, inboxRow, slaLevel, sortInbox } from '../../cards/console/inbox.ts';
import { agentsLine, briefingStatus, describeChange, permissions, replyHint, threadView } from '../../cards/console/thread.ts';
import type { InboxRow } from '../../cards/console/types.ts';
import { HandoffEnvelopeSchema } from '../../src/envelope.ts';
import type { Conversation, HistoryEntry, Message, Operator } from '../../src/model.ts';
import { conversationFixture } from '../support/conversations.ts';

const DANA: Operator = { id: 'console:dana', name: 'Dana', workspace: 'console' };
const SAM: Operator = { id: 'slack:U1', name: 'Sam', workspace: 'slack' };

function message(fields: Partial<Message> & Pick<Message, 'author' | 'text'>, at = '2025-01-01T10:00:00.000Z'): Message {
  return { id: `msg_${Math.random().toString(36).slice(2)}`, at, visibility: 'public', ...fields };
}

function change(fields: Partial<HistoryEntry> & Pick<HistoryEntry, 'reason' | 'from' | 'to'>): HistoryEntry {
  return { by: { kind: 'system' }, at: '2025-01-01T10:01:00.000Z', ...fields };
}

const briefing = HandoffEnvelopeSchema.parse({
  reason: 'Refund over the limit',
  trigger: 'refund_threshold',
  priority: 'high',
  summary: 'Ada wants 250 USD back.',
  intent: 'Refund a damaged order',
  pendingQuestion: 'Approve the refund?',
  options: [
    { id: 'approve_refund', label: 'Approve refund of 250 USD', risk: 'high' },
    { id: 'offer_credit', label: 'Offer store credit instead' },
  ],
  entities: { ids: ['A-1001'], amounts: [{ value: 250, currency: 'USD', raw: '$250' }] },
});

function waiting(overrides: Partial<Conversation> = {}): Conversation {
  return conversationFixture({
    state: 'waiting',
    customer: { id: 'anon:Xy12abcd', name: 'Ada Lovelace' },
    briefing,
    messages: [message({ author: { role: 'customer' }, text: 'I need a refund of $250' })],
    history: [change({ reason: 'escalate', from: 'agent', to: 'waiting', trigger: 'refund_threshold', at: '2025-01-01T10:01:00.000Z' })],
    version: 3,
    ...overrides,
  });
}

function row(fields: Partial<InboxRow> & Pick<InboxRow, 'id' | 'state'>): InboxRow {
  return { ticket: fields.id, version: 1, customer: 'x', origin: 'webchat', queue: 'general', awaitingReply: false, lastActivityAt: '2025-01-01T10:00:00.000Z', messageCount: 1, ...fields };
}

describe('the inbox', () => {
  it('puts waiting first (urgent, then the longest wait), then held (mine, then a customer waiting on a reply), then the agent, then closed', () => {
    const rows = [
      row({ id: 'agent-old', state: 'agent', lastActivityAt: '2025-01-01T09:00:00.000Z' }),
      row({ id: 'closed', state: 'closed' }),
      row({ id: 'held-other', state: 'human', owner: SAM, lastActivityAt: '2025-01-01T10:05:00.000Z' }),
      row({ id: 'wait-new', state: 'waiting', waitingSince: '2025-01-01T10:04:00.000Z' }),
      row({ id: 'held-reply-due', state: 'human', owner: SAM, awaitingReply: true, lastActivityAt: '2025-01-01T10:00:00.000Z' }),
      row({ id: 'wait-old', state: 'waiting', waitingSince: '2025-01-01T10:00:00.000Z' }),
      row({ id: 'held-mine', state: 'human', owner: DANA, lastActivityAt: '2025-01-01T09:00:00.000Z' }),
      row({ id: 'wait-urgent', state: 'waiting', priority: 'urgent', waitingSince: '2025-01-01T10:06:00.000Z' }),
      row({ id: 'agent-new', state: 'agent', lastActivityAt: '2025-01-01T10:09:00.000Z' }),
    ];
    expect(sortInbox(rows, DANA.id).map((r) => r.id)).toEqual(['wait-urgent', 'wait-old', 'wait-new', 'held-mine', 'held-reply-due', 'held-other', 'agent-new', 'agent-old', 'closed']);
  });

  it('colours a wait green, amber from half the target, red past it', () => {
    expect([slaLevel(0, 300_000), slaLevel(149_999, 300_000), slaLevel(150_000, 300_000), slaLevel(300_000, 300_000)]).toEqual(['ok', 'ok', 'warn', 'late']);
    expect([formatDuration(42_000), formatDuration(185_000), formatDuration(3 * 3600_000 + 60_000), formatDuration(50 * 3600_000)]).toEqual(['42s', '3m 05s', '3h 01m', '2d 2h']);
  });

  it('a waiting row carries the briefing, when it started waiting, and the last public line', () => {
    const c = waiting();
    expect(inboxRow(c)).toMatchObject({
      ticket: 'HB-1042',
      state: 'waiting',
      customer: 'Ada Lovelace',
      intent: 'Refund a damaged order',
      priority: 'high',
      waitingSince: '2025-01-01T10:01:00.000Z',
      preview: { who: 'Ada Lovelace', text: 'I need a refund of $250' },
      version: 3,
    });
  });

  it('a held row names its owner and says when the customer is waiting on a reply', () => {
    const c = waiting({ state: 'human', owner: SAM, history: [...waiting().history, change({ reason: 'claim', from: 'waiting', to: 'human', by: { kind: 'operator', operator: SAM }, at: '2025-01-01T10:02:00.000Z' })] });
    expect(inboxRow(c)).toMatchObject({ owner: { name: 'Sam', workspace: 'slack' }, heldSince: '2025-01-01T10:02:00.000Z', awaitingReply: true });
    c.messages.push(message({ author: { role: 'operator', name: 'Sam' }, text: 'On it' }, '2025-01-01T10:03:00.000Z'));
    expect(inboxRow(c).awaitingReply).toBe(false);
  });

  it('names anonymous visitors briefly, and filters on any shown word', () => {
    expect(customerName({ id: 'anon:Xy12abcd' })).toBe('Visitor Xy12');
    expect(customerName({ id: 'ada@example.com', email: 'ada@example.com' })).toBe('ada@example.com');
    const rows = [row({ id: 'a', state: 'waiting', customer: 'Ada Lovelace', queue: 'billing' }), row({ id: 'b', state: 'agent', customer: 'Grace', owner: SAM })];
    expect(filterInbox(rows, 'ada billing').map((r) => r.id)).toEqual(['a']);
    expect(filterInbox(rows, 'sam').map((r) => r.id)).toEqual(['b']);
  });

  it('counts what waits and for how long', () => {
    const rows = [row({ id: 'a', state: 'waiting', waitingSince: '2025-01-01T10:00:00.000Z' }), row({ id: 'b', state: 'human' }), row({ id: 'c', state: 'agent' })];
    expect(inboxCounts(rows, Date.parse('2025-01-01T10:03:00.000Z'))).toEqual({ waiting: 1, longestWaitMs: 180_000, held: 1, agent: 1, closed: 0 });
  });
});

describe('the thread', () => {
  it('labels every line: who spoke, what stayed internal, what the customer was told, what the bridge recorded', () => {
    const c = waiting({
      messages: [
        message({ author: { role: 'customer' }, text: 'Hello <b>there</b>' }),
        message({ author: { role: 'agent' }, text: 'Hi!' }),
        message({ author: { role: 'system' }, text: 'Escalated (refund_threshold)', visibility: 'internal' }),
        message({ author: { role: 'system' }, text: "I'm connecting you with a person", notice: 'escalated' }),
        message({ author: { role: 'operator', id: SAM.id, name: 'Sam' }, text: 'approve it', visibility: 'internal', source: { workspace: 'slack', externalId: '1.2' } }),
        message({ author: { role: 'operator', id: DANA.id, name: 'Dana' }, text: 'Hi Ada', source: { workspace: 'console' } }),
      ],
    });
    const view = threadView(c, { id: DANA.id, role: 'operator' });
    expect(view.entries.map((e) => [e.kind, e.author, e.visibility, e.via])).toEqual([
      ['customer', 'Ada Lovelace', 'public', undefined],
      ['agent', 'AI agent', 'public', undefined],
      ['event', 'Bridge', 'internal', undefined],
      ['notice', 'Bridge', 'public', undefined],
      ['note', 'Sam', 'internal', 'slack'],
      ['operator', 'Dana', 'public', undefined],
    ]);
    // Text stays text: the page sets it with textContent.
    expect(view.entries[0]!.text).toBe('Hello <b>there</b>');
  });

  it('the briefing says where the escalation stands and which option was chosen', () => {
    const c = waiting();
    expect(briefingStatus(c)).toBe('Waiting for a person');
    c.state = 'human';
    c.owner = DANA;
    c.history.push(change({ reason: 'claim', from: 'waiting', to: 'human', by: { kind: 'operator', operator: DANA } }));
    expect(briefingStatus(c)).toBe('Claimed by Dana');
    c.state = 'agent';
    delete c.owner;
    c.history.push(change({ reason: 'decide', from: 'human', to: 'agent', by: { kind: 'operator', operator: DANA }, optionId: 'offer_credit', at: '2025-01-01T10:05:00.000Z' }));
    c.decisions.push({ optionId: 'offer_credit', label: 'Offer store credit instead', by: DANA, at: '2025-01-01T10:05:00.000Z' });
    const view = threadView(c, { id: DANA.id, role: 'operator' });
    expect(view.briefing).toMatchObject({ escalation: 1, open: false, status: 'Dana decided: Offer store credit instead. Back with the agent.' });
    expect(view.briefing!.options.map((o) => [o.id, o.chosen])).toEqual([
      ['approve_refund', false],
      ['offer_credit', true],
    ]);
    expect(view.briefing!.entities).toEqual([
      { label: 'Ids', values: ['A-1001'] },
      { label: 'Amounts', values: ['$250'] },
    ]);
  });

  it('what a viewer may do follows ownership; a manager may do nothing', () => {
    const c = waiting();
    const dana = { id: DANA.id, role: 'operator' as const };
    expect(permissions(c, dana)).toMatchObject({ claim: true, takeOver: false, decide: true, replyToCustomer: false, note: true, returnToAgent: true, release: false, close: true });
    expect(replyHint(c, dana)).toContain('Nobody has claimed HB-1042 yet');

    const heldBySam = { ...c, state: 'human' as const, owner: SAM };
    expect(permissions(heldBySam, dana)).toMatchObject({ claim: false, decide: false, replyToCustomer: false, returnToAgent: false, close: false });
    expect(replyHint(heldBySam, dana)).toBe('Sam holds HB-1042: what you write stays an internal note.');

    const mine = { ...c, state: 'human' as const, owner: DANA };
    expect(permissions(mine, dana)).toMatchObject({ decide: true, replyToCustomer: true, returnToAgent: true, release: true, transfer: true, close: true });
    expect(replyHint(mine, dana)).toBe('');

    expect(permissions({ ...c, state: 'agent' }, dana)).toMatchObject({ claim: false, takeOver: true, decide: false });
    expect(Object.values(permissions(mine, { id: 'console:lee', role: 'manager' })).every((v) => v === false)).toBe(true);
  });
});

describe('several agents and masked values', () => {
  const hop = (fields: Partial<HistoryEntry> & { agent_handoff: Record<string, unknown> }) => change({ reason: 'agent_handoff', from: 'agent', to: 'agent', by: { kind: 'agent' }, ...fields }) as HistoryEntry;

  it('names the agents on the briefing only when set, and each hop in words', () => {
    expect(agentsLine({})).toBe('');
    expect(agentsLine({ agent: 'billing', agents: ['billing'] })).toBe('Escalated by billing');
    expect(agentsLine({ agent: 'billing', agents: ['triage', 'billing'] })).toBe('Escalated by billing · agents: triage → billing');
    const c = waiting({ briefing: { ...briefing, agent: 'billing', agents: ['triage', 'billing'] } });
    expect(threadView(c, { id: DANA.id, role: 'operator' }).briefing).toMatchObject({ agent: 'billing', agents: ['triage', 'billing'] });
    expect(threadView(waiting(), { id: DANA.id, role: 'operator' }).briefing).not.toHaveProperty('agents');

    expect(describeChange(hop({ note: 'Double charge', agent_handoff: { from: 'triage', to: 'billing' } }))).toBe('triage handed the conversation to billing: Double charge');
    expect(describeChange(hop({ by: { kind: 'operator', operator: DANA }, note: 'done here', agent_handoff: { from: 'billing', to: 'triage', pinned: true } }))).toBe('Dana handed the conversation from billing to triage and pinned it: done here');
    expect(describeChange(change({ reason: 'reveal', from: 'human', to: 'human', by: { kind: 'operator', operator: DANA }, note: 'card •••• 4242 in msg_1' }))).toBe('Dana revealed card •••• 4242');
  });

  it('a reveal or a hop leaves the status and the wait clocks as they were; the thread says which agent holds it', () => {
    const c = waiting({ state: 'human', owner: DANA });
    c.history.push(change({ reason: 'claim', from: 'waiting', to: 'human', by: { kind: 'operator', operator: DANA }, at: '2025-01-01T10:02:00.000Z' }));
    c.history.push(change({ reason: 'reveal', from: 'human', to: 'human', by: { kind: 'operator', operator: DANA }, at: '2025-01-01T10:09:00.000Z', note: 'card •••• 4242 in m1' }));
    c.history.push(hop({ from: 'human', to: 'human', by: { kind: 'operator', operator: DANA }, at: '2025-01-01T10:10:00.000Z', agent_handoff: { from: 'billing', to: 'triage', pinned: true } }));
    expect(briefingStatus(c)).toBe('Claimed by Dana');
    expect(inboxRow(c).heldSince).toBe('2025-01-01T10:02:00.000Z');
    const view = threadView(c, { id: DANA.id, role: 'operator' });
    expect(view.agent).toEqual({ name: 'triage', pinned: true });
    expect(threadView(waiting(), { id: DANA.id, role: 'operator' })).not.toHaveProperty('agent');
  });

  it('a masked line says how many values it hides; answers name their agent once there are several', () => {
    const withHop = waiting({
      messages: [message({ author: { role: 'customer' }, text: 'my card •••• 4242', masked: 1 }), message({ author: { role: 'agent', name: 'billing' }, text: 'Refundable.' })],
    });
    withHop.history.unshift(hop({ agent_handoff: { from: 'triage', to: 'billing' } }));
    const entries = threadView(withHop, { id: DANA.id, role: 'operator' }).entries;
    expect(entries.map((e) => [e.author, e.masked])).toEqual([
      ['Ada Lovelace', 1],
      ['AI agent · billing', undefined],
    ]);
    const single = waiting({ messages: [message({ author: { role: 'agent', name: 'openai' }, text: 'Hi' })] });
    expect(threadView(single, { id: DANA.id, role: 'operator' }).entries[0]!.author).toBe('AI agent');
  });

  it('only the owner may reveal; any operator may route until it is closed; a manager may do neither', () => {
    const dana = { id: DANA.id, role: 'operator' as const };
    const sam = { id: 'console:sam', role: 'operator' as const };
    const mine = waiting({ state: 'human', owner: DANA });
    expect(permissions(mine, dana)).toMatchObject({ reveal: true, route: true });
    expect(permissions(mine, sam)).toMatchObject({ reveal: false, route: true });
    expect(permissions(waiting(), dana)).toMatchObject({ reveal: false, route: true });
    expect(permissions(waiting({ state: 'closed' }), dana)).toMatchObject({ reveal: false, route: false });
    expect(permissions(mine, { id: 'console:lee', role: 'manager' })).toMatchObject({ reveal: false, route: false });
  });
});
