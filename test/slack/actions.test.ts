/**
 * Operator actions from Slack besides the main takeover: deciding an option without taking over,
 * returning and closing through the briefing's buttons and modal, the message shortcut, the
 * `/return` picker when an operator holds several conversations, take-over, and shared files.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import { ScriptedAgent, waitFor } from '../support/harness.ts';
import { BILLING_CHANNEL, CHANNEL, DANA, SAM, startSlackFixture, type SlackFixture } from './fixture.ts';

/** Escalates a refund over the limit once; afterwards answers with whatever decision or note it got. */
function refundAgent(): ScriptedAgent {
  return new ScriptedAgent(({ conversation }): AgentTurnResult => {
    const handback = [...conversation.messages].reverse().find((m) => m.handback)?.handback;
    if (handback?.decision) return { kind: 'reply', text: `Decision received: ${handback.decision.label}`, actionsTaken: [] };
    if (handback) return { kind: 'reply', text: `Back with the agent. Note: ${handback.note ?? '(none)'}`, actionsTaken: [] };
    if (conversation.history.length === 0)
      return {
        kind: 'escalate',
        trigger: 'refund_threshold',
        reason: 'Refund of 250 USD is over the 100 USD policy limit',
        request: { queue: 'billing' },
        actionsTaken: [{ tool: 'lookup_order', input: { order_id: 'A-1001' }, output: { status: 'delivered', total: 250 }, ok: true }],
      };
    return { kind: 'reply', text: 'Noted.', actionsTaken: [] };
  });
}

describe('Slack operator actions', () => {
  let f: SlackFixture;
  let agent: ScriptedAgent;
  beforeEach(async () => {
    agent = refundAgent();
    f = await startSlackFixture({ agent, queueChannels: { billing: BILLING_CHANNEL }, publicUrl: true });
  });
  afterEach(async () => {
    await f.close();
  });

  async function escalated() {
    const conversation = await f.customerSays('Hi, order A-1001 (250 USD) arrived broken, I want my money back');
    await f.settle();
    const stored = (await f.bridge.getConversation(conversation.id))!;
    expect(stored.state).toBe('waiting');
    return stored;
  }

  it('shows a briefing with options, a confirmation on the high-risk one, and a copy in the queue channel', async () => {
    const conversation = await escalated();
    const copies = await f.briefings(conversation.id);
    expect(copies.map((c) => c.place).sort()).toEqual(['queue', 'thread']);
    expect((await f.root(conversation.id)).channel).toBe(CHANNEL);
    const queueCopy = copies.find((c) => c.place === 'queue')!;
    expect(queueCopy.channel).toBe(BILLING_CHANNEL);
    expect(f.emulator.message(queueCopy.channel, queueCopy.ts)!.thread_ts).toBeUndefined();
    const card = f.emulator.message(queueCopy.channel, queueCopy.ts)!.versions.at(-1)!;
    expect(f.emulator.buttons(queueCopy.channel, queueCopy.ts)).toEqual([
      'briefing_claim',
      'briefing_option:approve_refund',
      'briefing_option:offer_credit',
      'briefing_option:decline_refund',
      'briefing_return',
      'briefing_close',
    ]);
    const approve = card.blocks!.flatMap((b: any) => b.elements ?? []).find((e: any) => e.action_id === 'briefing_option:approve_refund');
    expect(approve.confirm.title.text).toContain('Approve refund');
    expect(approve.style).toBe('danger');
    const json = JSON.stringify(card);
    expect(json).toContain('lookup_order');
    expect(json).toContain('Refund of 250 USD is over the 100 USD policy limit');
    expect(json).toContain('Pending question');
  });

  it('records an option decision and resumes the agent with it, without a takeover', async () => {
    const conversation = await escalated();
    expect(await f.click(conversation.id, SAM.userId, /^briefing_option:offer_credit$/)).toBe(200);
    await f.settle();
    const after = (await f.bridge.getConversation(conversation.id))!;
    expect(after.state).toBe('agent');
    expect(after.owner).toBeUndefined();
    expect(after.decisions).toEqual([expect.objectContaining({ optionId: 'offer_credit', by: expect.objectContaining({ id: `slack:${SAM.userId}`, name: SAM.name }) })]);
    await waitFor(() => f.customer.texts(conversation.id).includes('Decision received: Offer store credit instead'), { what: 'agent reply with the decision' });
    for (const copy of await f.briefings(conversation.id)) {
      const card = JSON.stringify(f.emulator.message(copy.channel, copy.ts)!.versions.at(-1));
      expect(card).toContain('*Sam* chose *Offer store credit instead*');
      expect(f.emulator.buttons(copy.channel, copy.ts)).not.toContain('briefing_claim');
    }
  });

  it('returns through the button and its note modal; a non-owner is refused inside the modal', async () => {
    const conversation = await escalated();
    await f.click(conversation.id, DANA.userId, 'briefing_claim');
    await f.settle();

    // Sam is not the owner: no modal, a private explanation instead.
    await f.click(conversation.id, SAM.userId, 'briefing_return');
    await f.settle();
    expect(f.emulator.views).toHaveLength(0);
    expect(f.emulator.ephemerals.some((e) => e.user === SAM.userId && e.text.includes('Only Dana'))).toBe(true);

    await f.click(conversation.id, DANA.userId, 'briefing_return');
    await f.settle();
    expect(f.emulator.views).toHaveLength(1);
    expect(f.emulator.views[0]!.view.callback_id).toBe('handoff_return_note');

    // A submission by someone else (say Dana's modal was forwarded) is refused with a field error.
    const foreign = await f.events.interaction(f.emulator.viewSubmissionPayload({ user: SAM.userId, note: 'not mine' }));
    expect(foreign.status).toBe(200);
    expect(foreign.json()).toMatchObject({ response_action: 'errors', errors: { note: expect.stringContaining('Only Dana') } });

    const answer = await f.events.interaction(f.emulator.viewSubmissionPayload({ user: DANA.userId, note: 'Approved store credit of 250 USD.' }));
    expect(answer.status).toBe(200);
    expect(answer.text).toBe('');
    await f.settle();
    const after = (await f.bridge.getConversation(conversation.id))!;
    expect(after.state).toBe('agent');
    expect(after.history.at(-1)).toMatchObject({ reason: 'return', note: 'Approved store credit of 250 USD.' });
  });

  it('returns from the message shortcut inside the thread', async () => {
    const conversation = await escalated();
    await f.click(conversation.id, DANA.userId, 'briefing_claim');
    await f.settle();
    await f.reply(conversation.id, DANA.userId, 'Hi, Dana here.');
    const root = await f.root(conversation.id);
    const inThread = f.emulator.replies(root.channel, root.ts).at(-1)!;
    const shortcut = f.emulator.messageShortcut({ callbackId: 'handoff_return', channel: root.channel, ts: inThread.ts, user: DANA.userId });
    expect((await f.events.interaction(shortcut)).status).toBe(200);
    await f.settle();
    expect(f.emulator.views.at(-1)!.view.callback_id).toBe('handoff_return_note');
    await f.events.interaction(f.emulator.viewSubmissionPayload({ user: DANA.userId, note: 'Sorted by phone.' }));
    await f.settle();
    expect((await f.bridge.getConversation(conversation.id))!.state).toBe('agent');
    expect((await f.threadTexts(conversation.id)).some((t) => t.includes('Dana returned the conversation to the agent. Note: Sorted by phone.'))).toBe(true);
  });

  it('closes through /close-ticket with a ticket reference and a note', async () => {
    const conversation = await escalated();
    await f.click(conversation.id, DANA.userId, 'briefing_claim');
    await f.settle();
    await f.events.command(f.emulator.slashCommand({ command: '/close-ticket', text: `${conversation.ticket.toLowerCase()} refunded by finance`, user: DANA.userId, channel: CHANNEL }));
    await f.settle();
    const after = (await f.bridge.getConversation(conversation.id))!;
    expect(after.state).toBe('closed');
    expect(after.history.at(-1)).toMatchObject({ reason: 'close', note: 'refunded by finance' });
    expect(f.emulator.responsesFor(DANA.userId).some((r) => String(r.text).includes('is closed'))).toBe(true);
    expect(f.emulator.buttons((await f.briefings(conversation.id))[0]!.channel, (await f.briefings(conversation.id))[0]!.ts)).toEqual([]);
  });

  it('moves a conversation to another queue with /transfer: a new briefing there, the owner lets go', async () => {
    const conversation = await escalated();
    await f.click(conversation.id, DANA.userId, 'briefing_claim');
    await f.settle();
    const before = (await f.briefings(conversation.id)).length;
    await f.events.command(f.emulator.slashCommand({ command: '/transfer', text: `${conversation.ticket} billing refund question`, user: DANA.userId, channel: CHANNEL }));
    await f.settle();
    const after = (await f.bridge.getConversation(conversation.id))!;
    expect(after).toMatchObject({ state: 'waiting', queue: 'billing' });
    expect(after.history.at(-1)).toMatchObject({ reason: 'escalate', trigger: 'transfer', note: 'to billing: refund question' });
    expect(f.emulator.responsesFor(DANA.userId).some((r) => String(r.text).includes('moved to the *billing* queue'))).toBe(true);
    expect((await f.briefings(conversation.id)).length).toBeGreaterThan(before);
    await f.events.command(f.emulator.slashCommand({ command: '/transfer', text: `${conversation.ticket}`, user: DANA.userId, channel: CHANNEL }));
    await f.settle();
    expect(f.emulator.responsesFor(DANA.userId).some((r) => String(r.text).includes('Name the queue'))).toBe(true);
  });

  it('asks which conversation when /return could mean several, and returns the one picked', async () => {
    const first = await escalated();
    const second = await escalated();
    await f.click(first.id, DANA.userId, 'briefing_claim');
    await f.click(second.id, DANA.userId, 'briefing_claim');
    await f.settle();
    await f.events.command(f.emulator.slashCommand({ command: '/return', text: 'credit issued', user: DANA.userId, channel: CHANNEL }));
    await f.settle();
    const picker = f.emulator.responsesFor(DANA.userId).at(-1)!;
    expect(picker.response_type).toBe('ephemeral');
    expect(JSON.stringify(picker.blocks)).toContain(second.ticket);
    // Slack keeps an ephemeral picker as a message the user can click: simulate the click on it.
    const button = (picker.blocks as any[]).find((b) => b.accessory?.text?.text === `Return ${second.ticket}`).accessory;
    const click = {
      type: 'block_actions',
      user: { id: DANA.userId, name: 'dana' },
      team: { id: f.emulator.teamId },
      channel: { id: CHANNEL },
      container: { type: 'message', message_ts: '1.1', channel_id: CHANNEL, is_ephemeral: true },
      trigger_id: f.emulator.triggerId(),
      response_url: f.emulator.responseUrl(DANA.userId),
      actions: [{ type: 'button', action_id: button.action_id, block_id: 'x', value: button.value, action_ts: '1.2' }],
    };
    await f.events.interaction(click);
    await f.settle();
    expect((await f.bridge.getConversation(second.id))!).toMatchObject({ state: 'agent' });
    expect((await f.bridge.getConversation(second.id))!.history.at(-1)).toMatchObject({ reason: 'return', note: 'credit issued' });
    expect((await f.bridge.getConversation(first.id))!.state).toBe('human');
    expect(f.emulator.responsesFor(DANA.userId).at(-1)).toMatchObject({ replace_original: true, text: expect.stringContaining('back with the agent') });
  });

  it('tells an operator who holds nothing how to use /return', async () => {
    await f.events.command(f.emulator.slashCommand({ command: '/return', text: '', user: SAM.userId, channel: CHANNEL }));
    await f.settle();
    expect(String(f.emulator.responsesFor(SAM.userId).at(-1)?.text)).toContain("You don't hold any conversation");
  });

  it('lets an operator take over a conversation the agent is handling', async () => {
    const conversation = await escalated();
    await f.click(conversation.id, SAM.userId, /^briefing_option:decline_refund$/);
    await f.settle();
    expect((await f.bridge.getConversation(conversation.id))!.state).toBe('agent');
    expect(await f.click(conversation.id, DANA.userId, 'briefing_takeover')).toBe(200);
    await f.settle();
    expect((await f.bridge.getConversation(conversation.id))!.owner?.name).toBe('Dana');
  });

  it('relays files the owner shares as links the customer can open', async () => {
    const conversation = await escalated();
    await f.click(conversation.id, DANA.userId, 'briefing_claim');
    await f.settle();
    const file = f.emulator.addFile({ id: 'F0LABEL01', name: 'return-label.pdf', mimetype: 'application/pdf', content: '%PDF-1.4 label', user: DANA.userId });
    await f.reply(conversation.id, DANA.userId, 'Here is your return label.', { files: [file] });
    await f.settle();
    const delivered = f.customer.delivered.find((d) => d.message.text === 'Here is your return label.')!;
    expect(delivered.message.attachments).toHaveLength(1);
    const link = delivered.message.attachments![0]!;
    expect(link.name).toBe('return-label.pdf');
    expect(link.url).toMatch(new RegExp(`^http://127.0.0.1:${f.port}/slack/files/F0LABEL01/`));
    const download = await fetch(link.url);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('%PDF-1.4 label');
    const tampered = await fetch(link.url.replace(/sig=[^&]+/, 'sig=forged'));
    expect(tampered.status).toBe(404);
  });

  it("mirrors a reply typed under the queue channel's copy into the conversation's thread, once", async () => {
    const conversation = await escalated();
    await f.click(conversation.id, DANA.userId, 'briefing_claim');
    await f.settle();
    const queueCopy = (await f.briefings(conversation.id)).find((c) => c.place === 'queue')!;
    const event = f.emulator.postAsUser({ channel: queueCopy.channel, user: DANA.userId, text: 'Answered from the billing channel.', thread_ts: queueCopy.ts });
    expect((await f.events.event(event)).status).toBe(200);
    await f.events.event(event);
    await f.settle();
    expect(f.customer.texts(conversation.id).filter((t) => t === 'Answered from the billing channel.')).toHaveLength(1);
    const message = (await f.bridge.getConversation(conversation.id))!.messages.find((m) => m.text === 'Answered from the billing channel.')!;
    const root = await f.root(conversation.id);
    const copies = f.emulator.replies(root.channel, root.ts).filter((m) => m.metadata?.event_payload.key === `msg:${message.id}`);
    expect(copies).toHaveLength(1);
    expect(copies[0]!.text).toContain('Answered from the billing channel.');
  });

  it('decides nothing from an older briefing, and tells the operator why', async () => {
    const conversation = await escalated();
    await f.click(conversation.id, SAM.userId, /^briefing_option:decline_refund$/);
    await f.settle();
    // A new escalation offering the same option: only its own card may decide it.
    await f.bridge.escalate({ conversationId: conversation.id, trigger: 'explicit_request', reason: 'Customer asked again', request: { options: [{ id: 'offer_credit', label: 'Offer store credit instead', risk: 'low' }] } });
    await f.settle();
    expect((await f.bridge.getConversation(conversation.id))!.state).toBe('waiting');
    // Dana's client still shows the first card with its options (it has not refreshed yet).
    const first = (await f.briefings(conversation.id)).find((c) => c.escalation === 1 && c.place === 'thread')!;
    const stale = f.emulator.blockActionPayload({ channel: first.channel, ts: first.ts, actionId: /^briefing_option:offer_credit$/, user: DANA.userId, stale: true });
    expect(stale.actions[0].value).toBe(`${conversation.id}|1`);
    expect((await f.events.interaction(stale)).status).toBe(200);
    await f.settle();
    const after = (await f.bridge.getConversation(conversation.id))!;
    expect(after.state).toBe('waiting');
    expect(after.decisions.map((d) => d.optionId)).toEqual(['decline_refund']);
    expect(f.emulator.ephemerals.some((e) => e.user === DANA.userId && e.text.includes('earlier escalation'))).toBe(true);
    // The current card decides.
    expect(await f.click(conversation.id, DANA.userId, /^briefing_option:offer_credit$/)).toBe(200);
    await f.settle();
    expect((await f.bridge.getConversation(conversation.id))!.decisions.map((d) => d.optionId)).toEqual(['decline_refund', 'offer_credit']);
  });

  it('does not post a second briefing copy on a new escalation without superseding the first', async () => {
    const conversation = await escalated();
    await f.click(conversation.id, DANA.userId, /^briefing_option:decline_refund$/);
    await f.settle();
    await f.bridge.escalate({ conversationId: conversation.id, trigger: 'explicit_request', reason: 'Customer asked again' });
    await f.settle();
    const copies = await f.briefings(conversation.id);
    const old = copies.filter((c) => c.escalation === 1);
    const fresh = copies.filter((c) => c.escalation === 2);
    expect(old.every((c) => c.superseded)).toBe(true);
    expect(fresh.length).toBeGreaterThan(0);
    for (const c of old) expect(f.emulator.buttons(c.channel, c.ts)).toEqual([]);
    for (const c of fresh) expect(f.emulator.buttons(c.channel, c.ts)).toContain('briefing_claim');
  });
});
