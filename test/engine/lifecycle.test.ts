/**
 * The escalation lifecycle: nobody waits forever. Pure rules on a fake clock first (every step of
 * the ladder, owner silence, support hours), then the real bridge with second-scale durations.
 */
import { describe, expect, it } from 'vitest';
import type { ChangeSink } from '../../src/engine/commit.ts';
import { isOpen, nextOpening, parseDuration, parseSupportHours } from '../../src/engine/hours.ts';
import { Rules, type Availability } from '../../src/engine/rules.ts';
import { ConfigError } from '../../src/errors.ts';
import type { Conversation } from '../../src/model.ts';
import { applyPolicyEnv, DEFAULT_POLICY, PolicySchema } from '../../src/policy.ts';
import { openRedisStore } from '../../src/store/redis.ts';
import { conversationFixture as buildConversation } from '../support/conversations.ts';
import { createTestBridge, DANA, waitFor } from '../support/harness.ts';
import { MemoryChannel, MemoryWorkspace } from '../support/memory-ports.ts';

const T0 = Date.parse('2026-11-30T10:00:00.000Z'); // a Monday, 11:00 in Berlin
const MIN = 60_000;

function rig(availability?: Availability, policy = DEFAULT_POLICY) {
  let now = T0;
  const rules = new Rules(policy, () => new Date(now), availability);
  const c: Conversation = buildConversation();
  const sink = (): ChangeSink => ({ effects: [], indexes: [] });
  return {
    rules,
    c,
    sink,
    at: (ms: number) => (now = T0 + ms),
    fire: () => {
      const s = sink();
      rules.fireTimers(c, s);
      return s;
    },
  };
}

describe('the ladder of an unclaimed escalation (fake clock)', () => {
  it('reminds at 5 min, goes to the managers at 15, falls back at 30, each once, in the history', () => {
    const r = rig();
    r.rules.escalate(r.c, { trigger: 'explicit_request', reason: 'The customer asked for a person' }, { kind: 'system' }, r.sink());
    expect(r.c.state).toBe('waiting');
    expect(r.c.timers!.map((t) => [t.name, Date.parse(t.at) - T0])).toEqual([['remind', 5 * MIN], ['managers', 15 * MIN], ['fallback', 30 * MIN]]);

    r.at(4 * MIN);
    expect(r.fire().effects).toEqual([]);
    r.at(5 * MIN);
    const remind = r.fire();
    expect(remind.effects.map((e) => e.kind)).toEqual(['mirror']);
    expect(r.c.messages.at(-1)).toMatchObject({ visibility: 'internal', notice: 'reminder', text: expect.stringContaining('has waited 5 min') });
    expect(r.fire().effects).toEqual([]); // once

    r.at(15 * MIN);
    expect(r.fire().effects.map((e) => e.kind)).toEqual(['mirror', 'managers']);
    r.at(30 * MIN);
    const fallback = r.fire();
    expect(r.c.state).toBe('agent');
    expect(fallback.effects.map((e) => e.kind)).toContain('deliver');
    expect(r.c.messages.find((m) => m.notice === 'fallback')?.text).toMatch(/no one from our team is free right now/);
    expect(r.c.messages.at(-1)?.handback).toMatchObject({ kind: 'fallback' });
    expect(r.c.history.map((h) => h.reason)).toEqual(['escalate', 'remind', 'managers', 'fallback']);
    expect(r.c.timers).toEqual([]);
  });

  it('a claim stops the ladder; a release starts it again', () => {
    const r = rig();
    r.rules.escalate(r.c, { trigger: 'explicit_request', reason: 'asked' }, { kind: 'system' }, r.sink());
    const claim = { type: 'claim' as const, operator: DANA };
    let s = r.sink();
    r.rules.afterOwnershipChange(r.c, claim, r.rules.apply(r.c, claim, s), s);
    expect(r.c.timers).toEqual([]);
    r.at(60 * MIN);
    expect(r.fire().effects).toEqual([]);
    const release = { type: 'release' as const, operator: DANA };
    s = r.sink();
    r.rules.afterOwnershipChange(r.c, release, r.rules.apply(r.c, release, s), s);
    expect(r.c.timers!.map((t) => t.name)).toEqual(['remind', 'managers', 'fallback']);
  });

  it('a timer of an earlier escalation does nothing to a newer one', () => {
    const r = rig();
    r.rules.escalate(r.c, { trigger: 'explicit_request', reason: 'asked' }, { kind: 'system' }, r.sink());
    const stale = r.c.timers!.find((t) => t.name === 'fallback')!;
    r.c.timers = [{ ...stale, escalation: 0, at: new Date(T0).toISOString() }];
    expect(r.fire().effects).toEqual([]);
    expect(r.c.state).toBe('waiting');
  });

  it('a silent owner is nudged privately at 10 min and loses the conversation at 30; an answer stops the clock', () => {
    const r = rig();
    r.rules.escalate(r.c, { trigger: 'explicit_request', reason: 'asked' }, { kind: 'system' }, r.sink());
    const claim = { type: 'claim' as const, operator: DANA };
    let s = r.sink();
    r.rules.afterOwnershipChange(r.c, claim, r.rules.apply(r.c, claim, s), s);
    r.rules.customerWaitsOnOwner(r.c);
    r.at(2 * MIN);
    r.rules.customerWaitsOnOwner(r.c); // a second message does not restart the clock
    r.at(10 * MIN);
    s = r.fire();
    expect(s.effects.filter((e) => e.kind === 'notify')).toEqual([{ kind: 'notify', operator: DANA, text: `${r.c.ticket}: the customer has waited 10 min for your reply.` }]);
    expect(r.c.messages.at(-1)).toMatchObject({ visibility: 'internal', text: 'Dana was nudged privately: the customer has waited 10 min for a reply.' });
    r.at(30 * MIN);
    r.fire();
    expect(r.c.state).toBe('waiting');
    expect(r.c.owner).toBeUndefined();
    expect(r.c.history.at(-1)).toMatchObject({ reason: 'expire', by: { kind: 'system' } });
    expect(r.c.messages.some((m) => m.notice === 'released')).toBe(true);
    expect(r.c.timers!.map((t) => t.name)).toEqual(['remind', 'managers', 'fallback']);

    const answered = rig();
    answered.rules.escalate(answered.c, { trigger: 'explicit_request', reason: 'asked' }, { kind: 'system' }, answered.sink());
    s = answered.sink();
    answered.rules.afterOwnershipChange(answered.c, claim, answered.rules.apply(answered.c, claim, s), s);
    answered.rules.customerWaitsOnOwner(answered.c);
    answered.rules.ownerAnswered(answered.c);
    answered.at(60 * MIN);
    expect(answered.fire().effects).toEqual([]);
  });
});

describe('handoff only when someone can answer', () => {
  const hours = parseSupportHours('Mon-Fri 09:00-17:00 Europe/Berlin', ['2026-12-25']);
  const byHours: Availability = (_c, at) => (isOpen(hours, at) ? { open: true } : { open: false, why: 'hours', until: nextOpening(hours, at)!, timeZone: hours.timeZone });

  it('reads support hours in the desk time zone, with holidays', () => {
    expect(isOpen(hours, new Date('2026-11-30T10:00:00Z'))).toBe(true); // Mon 11:00 Berlin
    expect(isOpen(hours, new Date('2026-11-30T16:30:00Z'))).toBe(false); // Mon 17:30 Berlin
    expect(isOpen(hours, new Date('2026-12-25T10:00:00Z'))).toBe(false); // a holiday
    expect(nextOpening(hours, new Date('2026-12-04T17:00:00Z'))!.toISOString()).toBe('2026-12-07T08:00:00.000Z'); // Fri evening -> Mon 09:00 CET
    expect(nextOpening(hours, new Date('2026-12-24T17:00:00Z'))!.toISOString()).toBe('2026-12-28T08:00:00.000Z'); // skips the holiday and the weekend
    expect(() => parseSupportHours('Mon-Fri 9-5')).toThrow(ConfigError);
    expect(() => parseSupportHours('Mon-Fri 09:00-17:00 Mars/Olympus')).toThrow(/IANA time zone/);
    expect(parseDuration('90s', 'X')).toBe(90_000);
    expect(parseDuration('10m', 'X')).toBe(600_000);
    expect(parseDuration(2, 'X')).toBe(2000);
    expect(() => parseDuration('soon', 'ESCALATION_REMIND_AFTER')).toThrow(/ESCALATION_REMIND_AFTER/);
  });

  it('outside hours the customer is never promised a person: told when one answers, the agent keeps helping, raised at opening', () => {
    const r = rig(byHours);
    r.at(Date.parse('2026-12-04T18:00:00Z') - T0); // Friday 19:00 Berlin
    const s = r.sink();
    r.rules.escalate(r.c, { trigger: 'explicit_request', reason: 'asked for a person' }, { kind: 'system' }, s);
    expect(r.c.state).toBe('agent');
    expect(r.c.pendingEscalation).toMatchObject({ trigger: 'explicit_request' });
    const notice = r.c.messages.find((m) => m.notice === 'deferred')!;
    expect(notice.text).toMatch(/^Our team is offline right now; a person can reply from Mon, 09:00 GMT\+1\. Until then I'll keep helping you here\./);
    expect(r.c.messages.some((m) => m.notice === 'escalated')).toBe(false);
    expect(s.effects.map((e) => e.kind)).toContain('turn');
    expect(r.c.timers).toEqual([{ name: 'hours_open', at: '2026-12-07T08:00:00.000Z' }]);

    // The agent keeps helping; asking again does not promise anything new.
    const again = r.sink();
    r.rules.escalate(r.c, { trigger: 'explicit_request', reason: 'asked again' }, { kind: 'system' }, again);
    expect(r.c.messages.filter((m) => m.notice === 'deferred')).toHaveLength(1);
    expect(again.effects.map((e) => e.kind)).toEqual(['turn']);

    r.at(Date.parse('2026-12-07T08:00:00Z') - T0);
    const opened = r.fire();
    expect(r.c.state).toBe('waiting');
    expect(r.c.pendingEscalation).toBeUndefined();
    expect(opened.effects.map((e) => e.kind)).toContain('briefing');
    expect(r.c.messages.some((m) => m.notice === 'escalated')).toBe(true);
  });

  it('policy durations and hours can be set from the environment, and a wrong value names its variable', () => {
    const policy = applyPolicyEnv(DEFAULT_POLICY, { ESCALATION_REMIND_AFTER: '90s', ESCALATION_FALLBACK_AFTER: '1h', SUPPORT_HOURS: 'Mon-Fri 09:00-17:00 Europe/Berlin', OFF_DUTY_QUEUES: 'billing' });
    expect(policy.escalation).toMatchObject({ remindAfter: '90s', managersAfter: '15m', fallbackAfter: '1h' });
    expect(policy.hours?.schedule).toBe('Mon-Fri 09:00-17:00 Europe/Berlin');
    expect(policy.offDuty).toEqual(['billing']);
    expect(() => applyPolicyEnv(DEFAULT_POLICY, { ESCALATION_MANAGERS_AFTER: 'later' })).toThrow(/^ESCALATION_MANAGERS_AFTER: /);
  });
});

describe('the lifecycle through the bridge (real time, second-scale durations)', () => {
  const fast = PolicySchema.parse({ escalation: { remindAfter: '1s', managersAfter: '2s', fallbackAfter: '3s' } });

  it('an unclaimed escalation reminds, reaches the managers and falls back on time, once each, across two instances', { timeout: 30_000 }, async () => {
    const namespace = `life${Date.now()}`;
    const channel = new MemoryChannel('api');
    const managers: string[] = [];
    const workspace = (name: string) => Object.assign(new MemoryWorkspace(name), { async postToManagers(c: Conversation) { managers.push(c.id); } });
    const a = await createTestBridge({ policy: fast, channels: [channel], workspaces: [workspace('test')], store: await openRedisStore(process.env.REDIS_URL!, { namespace }) });
    const b = await createTestBridge({ policy: fast, channels: [channel], workspaces: [workspace('test')], store: await openRedisStore(process.env.REDIS_URL!, { namespace }) });
    try {
      const started = Date.now();
      const { conversation } = await a.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want to talk to a person' });
      const fellBack = await waitFor(async () => ((await a.bridge.getConversation(conversation.id))!.state === 'agent' ? Date.now() : 0), { timeoutMs: 10_000, what: 'the fallback' });
      expect(fellBack - started).toBeGreaterThanOrEqual(2900);
      await a.bridge.idle();
      await b.bridge.idle();
      const c = (await a.bridge.getConversation(conversation.id))!;
      expect(c.history.map((h) => h.reason)).toEqual(['escalate', 'remind', 'managers', 'fallback']);
      expect(c.messages.filter((m) => m.notice === 'reminder')).toHaveLength(1);
      expect(managers).toEqual([conversation.id]);
      expect(channel.texts(conversation.id).filter((t) => t.includes('no one from our team is free'))).toHaveLength(1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('with no workspace nobody is promised a person; a workspace added later gets the thread and the briefing', async () => {
    const channel = new MemoryChannel('api');
    const t = await createTestBridge({ channels: [channel], workspaces: [] });
    const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want to talk to a person' });
    await t.bridge.idle();
    expect(channel.texts(conversation.id)[0]).toMatch(/^No one from our team can join right now\. I'll keep helping you here/);
    expect(channel.texts(conversation.id).some((x) => x.startsWith("I'm connecting you"))).toBe(false);
    expect((await t.bridge.getConversation(conversation.id))!.state).toBe('agent');

    const slack = new MemoryWorkspace('late');
    t.bridge.addWorkspace(slack);
    await waitFor(() => slack.briefings.length === 1, { what: 'the briefing in the workspace added later' });
    await t.bridge.idle();
    const c = (await t.bridge.getConversation(conversation.id))!;
    expect(c.state).toBe('waiting');
    expect(slack.mirrored.map((m) => m.message.text)).toContain('I want to talk to a person');
    expect(channel.texts(conversation.id).some((x) => x.startsWith("I'm connecting you"))).toBe(true);
    await t.close();
  });
});

describe("the managers' daily digest", () => {
  it('sums the day from what was committed, and exactly one of two instances posts it, once', async () => {
    const { readDigest, DigestScheduler } = await import('../../src/engine/digest.ts');
    const { silentLogger } = await import('../../src/log.ts');
    const namespace = `digest${Date.now()}`;
    const a = await createTestBridge({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }) });
    const b = await createTestBridge({ store: await openRedisStore(process.env.REDIS_URL!, { namespace }), startWorkers: false });
    try {
      const ids: string[] = [];
      for (const text of ['I want to talk to a person', 'What are your opening hours?', 'Where is my order?', 'Can I speak to a human?']) {
        ids.push((await a.bridge.customerMessage({ origin: 'api', customer: { id: `c${ids.length}` }, text })).conversation.id);
      }
      await a.bridge.claim({ conversationId: ids[0]!, operator: DANA });
      await a.bridge.returnToAgent({ conversationId: ids[0]!, operator: DANA, note: 'done' });
      const today = new Date().toISOString().slice(0, 10);
      const digest = await readDigest(a.store, today);
      expect(digest).toMatchObject({ date: today, conversations: 4, escalations: 2, escalationRate: 0.5, claims: 1, unclaimed: 1, fallbacks: 0 });
      expect(digest.topTriggers).toEqual([{ trigger: 'explicit_request', count: 2 }]);
      expect(digest.returnsPerOperator).toEqual([{ operatorId: DANA.id, name: 'Dana', count: 1 }]);
      expect(digest.medianTimeToClaimSeconds).toBeGreaterThanOrEqual(0);

      const posted: string[] = [];
      const scheduler = (name: string, store: typeof a.store) => new DigestScheduler({ store, at: '00:00', targets: [{ name: 'slack', post: async (d) => void posted.push(`${name}:${d.date}`) }], logger: silentLogger() });
      const results = await Promise.all([scheduler('a', a.store).tick(), scheduler('b', b.store).tick(), scheduler('a', a.store).tick()]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(posted).toHaveLength(1);
      // Before its time of day, nobody posts.
      expect(await new DigestScheduler({ store: a.store, at: '23:59', now: () => new Date(`${today}T00:00:00Z`), targets: [{ name: 'teams', post: async () => void posted.push('early') }], logger: silentLogger() }).tick()).toBe(false);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('sticky routing and queue transfers', () => {
  it('a returning customer is offered first to the operator who helped them; others wait for the first chance to pass', async () => {
    const policy = PolicySchema.parse({ escalation: { stickyFirstChance: '1s' } });
    const t = await createTestBridge({ policy });
    const sam = { id: 'test:sam', name: 'Sam', workspace: 'test' };
    try {
      const first = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'ada' }, text: 'I want to talk to a person' });
      await t.bridge.claim({ conversationId: first.conversation.id, operator: DANA });
      await t.bridge.close({ conversationId: first.conversation.id, operator: DANA });

      const again = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'ada' }, text: 'Hello again, can I speak to a human?' });
      const c = (await t.bridge.getConversation(again.conversation.id))!;
      expect(c.offeredTo?.operator.id).toBe(DANA.id);
      expect(c.briefing!.constraints[0]).toMatch(/^Offered first to Dana, who helped this customer before/);
      await expect(t.bridge.claim({ conversationId: c.id, operator: sam })).rejects.toThrow(/offered first to Dana/);
      await new Promise((r) => setTimeout(r, 1100));
      await t.bridge.claim({ conversationId: c.id, operator: sam });
      expect((await t.bridge.getConversation(c.id))!.owner?.id).toBe(sam.id);
    } finally {
      await t.close();
    }
  });

  it('moving a conversation to another queue is a new escalation there: fresh briefing, the ladder again, the owner lets go', async () => {
    const workspace = new MemoryWorkspace('test');
    const t = await createTestBridge({ workspaces: [workspace] });
    try {
      const { conversation } = await t.bridge.customerMessage({ origin: 'api', customer: { id: 'c' }, text: 'I want to talk to a person' });
      await t.bridge.claim({ conversationId: conversation.id, operator: DANA });
      const moved = await t.bridge.transferQueue({ conversationId: conversation.id, operator: DANA, queue: 'billing', note: 'refund question' });
      await t.bridge.idle();
      expect(moved).toMatchObject({ state: 'waiting', queue: 'billing' });
      expect(moved.owner).toBeUndefined();
      expect(moved.history.at(-1)).toMatchObject({ reason: 'escalate', trigger: 'transfer', note: 'to billing: refund question' });
      expect(moved.briefing).toMatchObject({ queue: 'billing', trigger: 'transfer' });
      expect(workspace.briefings).toHaveLength(2);
      expect(moved.timers!.map((x) => x.name).sort()).toEqual(['fallback', 'managers', 'remind']);
      await expect(t.bridge.transferQueue({ conversationId: conversation.id, operator: DANA, queue: 'no such queue!' })).rejects.toThrow(/not a queue name/);
    } finally {
      await t.close();
    }
  });
});
