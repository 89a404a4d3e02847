/**
 * The Slack contract driver does what the contract suite expects of it (a smoke run of each method).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SlackDriver } from '../contract/slack-driver.ts';
import { offlineAgent } from '../support/harness.ts';

describe('the Slack contract driver', () => {
  const driver = new SlackDriver();
  afterEach(() => driver.stop());

  it('drives a claim race, replies and a return through Slack', async () => {
    const { bridge, customer } = await driver.start(offlineAgent());
    const { conversation } = await bridge.customerMessage({ origin: 'webchat', customer: { id: 'v9', name: 'Kim' }, text: 'I want to talk to a human' });
    await driver.settle();
    expect(await driver.briefingCards(conversation.id)).toHaveLength(1);
    const zoe = { userId: 'UZOE00001', name: 'Zoe' };
    const max = { userId: 'UMAX00001', name: 'Max' };
    await driver.clickClaim(conversation.id, zoe);
    await driver.settle();
    await driver.clickClaim(conversation.id, max);
    await driver.settle();
    expect(await driver.rootCard(conversation.id)).toContain('Zoe');
    expect((await driver.briefingCards(conversation.id))[0]).toContain('Zoe');
    expect((await driver.privateTexts(max)).some((t) => t.includes('already held by *Zoe*'))).toBe(true);
    await driver.replyInThread(conversation.id, zoe, 'Hello Kim');
    await driver.replyInThread(conversation.id, max, 'internal thought');
    await driver.settle();
    expect(customer.texts(conversation.id)).toContain('Hello Kim');
    expect(customer.texts(conversation.id)).not.toContain('internal thought');
    await driver.returnWithNote(conversation.id, zoe, 'all sorted');
    await driver.settle();
    expect((await bridge.getConversation(conversation.id))!.state).toBe('agent');
    expect((await driver.threadTexts(conversation.id)).some((t) => t.includes('all sorted'))).toBe(true);
    expect((await driver.privateTexts(zoe)).some((t) => t.includes('back with the agent'))).toBe(true);
  });
});
