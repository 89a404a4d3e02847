/**
 * A whole takeover through Slack, against the loopback Web API emulator and signed requests:
 * customer message, thread, escalation, two operators racing to claim, the owner's replies reaching
 * the customer while the other's do not, `/return` with a note, and the agent's next answer using it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentTurnResult } from '../../src/agent/agent.ts';
import { ScriptedAgent, waitFor } from '../support/harness.ts';
import { CHANNEL, DANA, SAM, startSlackFixture, type SlackFixture } from './fixture.ts';

/** Answers plainly, and after a hand-back repeats the operator's note so the test can see it was used. */
function notingAgent(): ScriptedAgent {
  return new ScriptedAgent(({ conversation }): AgentTurnResult => {
    const handback = [...conversation.messages].reverse().find((m) => m.handback)?.handback;
    if (handback?.note) return { kind: 'reply', text: `Update from our team: ${handback.note}`, actionsTaken: [] };
    return { kind: 'reply', text: 'Let me look into that for you.', actionsTaken: [] };
  });
}

describe('a takeover in Slack', () => {
  let f: SlackFixture;
  let agent: ScriptedAgent;
  beforeEach(async () => {
    agent = notingAgent();
    f = await startSlackFixture({ agent });
  });
  afterEach(async () => {
    await f.close();
  });

  it('mirrors, escalates, lets the first claimer own it, relays only the owner, and returns with a note the agent uses', async () => {
    // The customer writes; a thread opens with the customer, origin, ticket and owner on its root.
    const conversation = await f.customerSays('Hi, my order A-1001 never arrived');
    await f.settle();
    const root = await f.root(conversation.id);
    expect(root.channel).toBe(CHANNEL);
    const rootMessage = f.emulator.message(root.channel, root.ts)!;
    expect(rootMessage.thread_ts).toBeUndefined();
    const rootJson = JSON.stringify(rootMessage.versions.at(-1));
    expect(rootJson).toContain(conversation.ticket);
    expect(rootJson).toContain('Ann Lee');
    expect(rootJson).toContain('web chat');
    expect(rootJson).toContain('AI agent');
    let texts = await f.threadTexts(conversation.id);
    expect(texts[0]).toContain('Ann Lee');
    expect(texts[0]).toContain('(customer)');
    expect(texts[0]).toContain('my order A-1001 never arrived');
    expect(texts[1]).toContain('Let me look into that for you.');

    // Asking for a person escalates: a briefing lands in the thread and in the channel.
    await f.customerSays('I want to talk to a human please', conversation.id);
    await f.settle();
    const [briefing] = await f.briefings(conversation.id);
    expect(briefing).toBeDefined();
    const briefingMessage = f.emulator.message(briefing!.channel, briefing!.ts)!;
    expect(briefingMessage.thread_ts).toBe(root.ts);
    expect(briefingMessage.reply_broadcast).toBe(true);
    expect(f.emulator.buttons(briefing!.channel, briefing!.ts)).toContain('briefing_claim');
    expect(JSON.stringify(f.emulator.message(root.channel, root.ts)!.versions.at(-1))).toContain('Waiting for a person');

    // Dana and Sam click Claim at the same moment: exactly one wins.
    const claims = await Promise.all([f.click(conversation.id, DANA.userId, 'briefing_claim'), f.click(conversation.id, SAM.userId, 'briefing_claim')]);
    expect(claims).toEqual([200, 200]);
    await f.settle();
    const held = (await f.bridge.getConversation(conversation.id))!;
    expect(held.state).toBe('human');
    const owner = held.owner!.name === DANA.name ? DANA : SAM;
    const other = owner === DANA ? SAM : DANA;
    expect(held.owner!.id).toBe(`slack:${owner.userId}`);

    // The later claimer is told privately who holds it; every card shows the owner.
    const toOther = f.emulator.ephemerals.filter((e) => e.user === other.userId).map((e) => e.text);
    expect(toOther.some((t) => t.includes(`already held by *${owner.name}*`))).toBe(true);
    expect(f.emulator.ephemerals.filter((e) => e.user === owner.userId && e.text.includes('already held'))).toHaveLength(0);
    expect(JSON.stringify(f.emulator.message(root.channel, root.ts)!.versions.at(-1))).toContain(owner.name);
    const claimedCard = JSON.stringify(f.emulator.message(briefing!.channel, briefing!.ts)!.versions.at(-1));
    expect(claimedCard).toContain(`*${owner.name}* claimed the conversation`);
    expect(f.emulator.buttons(briefing!.channel, briefing!.ts)).not.toContain('briefing_claim');
    expect(f.emulator.buttons(briefing!.channel, briefing!.ts)).toContain('briefing_return');

    // The customer is told a person joined.
    expect(f.customer.texts(conversation.id).some((t) => t.includes(`${owner.name} from our team has joined`))).toBe(true);

    // The owner's reply reaches the customer; the other operator's stays an internal note.
    const callsBefore = agent.calls.length;
    await f.reply(conversation.id, owner.userId, 'Hi Ann, I am checking with the courier now.');
    await f.reply(conversation.id, other.userId, 'I think the parcel is lost, FYI');
    await f.settle();
    const seen = f.customer.texts(conversation.id);
    expect(seen).toContain('Hi Ann, I am checking with the courier now.');
    expect(seen.some((t) => t.includes('parcel is lost'))).toBe(false);
    expect(f.emulator.ephemerals.some((e) => e.user === other.userId && e.text.includes('internal note'))).toBe(true);
    const transcript = (await f.bridge.getConversation(conversation.id))!.messages;
    expect(transcript.find((m) => m.text.includes('parcel is lost'))?.visibility).toBe('internal');

    // The owner can keep a note internal with the // prefix.
    await f.reply(conversation.id, owner.userId, '// customer sounds upset, be gentle');
    await f.settle();
    expect(f.customer.texts(conversation.id).some((t) => t.includes('be gentle'))).toBe(false);
    expect((await f.bridge.getConversation(conversation.id))!.messages.find((m) => m.text.includes('be gentle'))?.visibility).toBe('internal');

    // A reply Slack lets through but the bridge refuses (too long) is explained privately, not lost silently.
    await f.reply(conversation.id, owner.userId, 'x'.repeat(9000));
    await f.settle();
    expect(f.emulator.ephemerals.some((e) => e.user === owner.userId && e.text.includes('the limit is'))).toBe(true);

    // The customer writes during the takeover: it shows in the thread, and the agent stays silent.
    await f.customerSays('Thank you! It was a birthday present.', conversation.id);
    await f.settle();
    texts = await f.threadTexts(conversation.id);
    expect(texts.some((t) => t.includes('It was a birthday present.'))).toBe(true);
    expect(agent.calls.length).toBe(callsBefore);

    // The owner hands back with /return and a note, from the channel.
    const note = 'Courier confirmed loss; a replacement ships Monday with tracking by email.';
    const command = f.emulator.slashCommand({ command: '/return', text: note, user: owner.userId, channel: CHANNEL });
    expect((await f.events.command(command)).status).toBe(200);
    await f.settle();
    const returned = (await f.bridge.getConversation(conversation.id))!;
    expect(returned.state).toBe('agent');
    expect(returned.history.at(-1)).toMatchObject({ reason: 'return', note });
    expect(f.emulator.responsesFor(owner.userId).some((r) => String(r.text).includes('back with the agent'))).toBe(true);

    // The thread records who returned it and why; the root says the agent has it again.
    texts = await f.threadTexts(conversation.id);
    expect(texts.some((t) => t.includes(`${owner.name} returned the conversation to the agent`) && t.includes('replacement ships Monday'))).toBe(true);
    expect(JSON.stringify(f.emulator.message(root.channel, root.ts)!.versions.at(-1))).toContain('AI agent');

    // The agent's next answer was generated with the note in its context.
    await waitFor(() => f.customer.texts(conversation.id).some((t) => t.includes('Update from our team')), { what: 'agent answer' });
    expect(agent.calls.length).toBe(callsBefore + 1);
    expect(agent.calls.at(-1)!.conversation.messages.some((m) => m.handback?.note === note)).toBe(true);
    expect(f.customer.texts(conversation.id).at(-1)).toBe(`Update from our team: ${note}`);
  });
});
