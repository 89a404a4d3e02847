/**
 * The Teams contract driver, exercised only through the `WorkspaceDriver` interface the shared
 * workspace suite uses, so the suite can rely on it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkspaceDriver } from '../contract/driver.ts';
import { TeamsDriver } from '../contract/teams-driver.ts';
import { offlineAgent } from '../support/harness.ts';

const customer = { id: 'cust-42', name: 'Katherine Johnson' };
const DANA = { userId: '29:dana', name: 'Dana' };
const SAM = { userId: '29:sam', name: 'Sam' };

describe('the Teams driver, through the contract interface', () => {
  let driver: WorkspaceDriver;
  afterEach(() => driver?.stop());

  it('runs a whole takeover: conversation, escalation, racing claims, relay, return with a note, the agent resuming', async () => {
    driver = new TeamsDriver();
    const { bridge, customer: channel } = await driver.start(offlineAgent());
    const { conversation } = await bridge.customerMessage({ origin: 'api', customer, text: 'How do I reset my password?' });
    const id = conversation.id;
    await driver.settle();
    expect((await driver.threadTexts(id)).join('\n')).toContain('How do I reset my password?');
    expect(await driver.rootCard(id)).toContain(conversation.ticket);

    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'I want to talk to a human' });
    await driver.settle();
    expect(await driver.briefingCards(id)).toHaveLength(1);
    expect((await driver.briefingCards(id))[0]).toContain('Claim');

    await Promise.all([driver.clickClaim(id, DANA), driver.clickClaim(id, SAM)]);
    await driver.settle();
    const held = (await bridge.getConversation(id))!;
    const [winner, loser] = held.owner!.name === 'Dana' ? [DANA, SAM] : [SAM, DANA];
    expect((await driver.privateTexts(loser)).join('\n')).toContain(winner.name);
    expect(await driver.rootCard(id)).toContain(winner.name);

    await driver.replyInThread(id, winner, 'Hi Katherine, I can help with that.');
    await driver.replyInThread(id, loser, 'note for the team');
    await driver.settle();
    expect(channel.texts(id)).toContain('Hi Katherine, I can help with that.');
    expect(channel.texts(id).join('\n')).not.toContain('note for the team');

    await bridge.customerMessage({ conversationId: id, origin: 'api', customer, text: 'How do I reset my password?' });
    await driver.settle();
    await driver.returnWithNote(id, winner, 'Reset link sent to her email');
    await driver.settle();
    const back = (await bridge.getConversation(id))!;
    expect(back.state).toBe('agent');
    expect(back.history.at(-1)).toMatchObject({ reason: 'return', note: 'Reset link sent to her email' });
    // The agent answers the waiting customer again.
    const lastAgent = back.messages.filter((m) => m.author.role === 'agent' && m.visibility === 'public').at(-1);
    expect(lastAgent && lastAgent.at > back.history.at(-1)!.at).toBe(true);
    expect((await driver.threadTexts(id)).at(-1)).toContain(lastAgent!.text.slice(0, 40));
  });
});
