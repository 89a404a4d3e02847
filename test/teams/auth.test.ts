/**
 * Bot Framework authentication on /api/messages. With an app id configured, Teams' requests carry a
 * JWT signed by Microsoft; the emulator signs with its own key and publishes it at its OpenID
 * metadata URL, so the whole check runs on loopback. Nothing here may reach the outbound side
 * (that would need a real token from Microsoft), so conversations are seeded without Teams calls.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TeamsState } from '../../adapters/teams/state.ts';
import type { Bridge } from '../../src/bridge.ts';
import { TEAMS_TEST_CHANNEL, TeamsDriver } from '../contract/teams-driver.ts';

const APP_ID = '00000000-0000-4000-8000-00000000b075';
const ALICE = { id: '29:alice-mri', name: 'Alice Ops' };

/** A conversation with a Teams thread on record, made without any outbound Teams call. */
async function seededConversation(bridge: Bridge): Promise<{ id: string; threadId: string }> {
  const conversation = await bridge.openConversation({ origin: 'api', customer: { id: 'c-1', name: 'Barbara Liskov' } });
  const threadId = `${TEAMS_TEST_CHANNEL};messageid=1699999999999`;
  await new TeamsState(bridge.store.kv('teams')).saveThread({
    conversationId: conversation.id,
    channelId: TEAMS_TEST_CHANNEL,
    serviceUrl: 'http://127.0.0.1:9/',
    threadId,
    rootActivityId: '1699999999999',
    briefings: [],
  });
  return { id: conversation.id, threadId };
}

describe('with an app id configured, a request without a valid token is rejected and changes nothing', () => {
  let driver: TeamsDriver;
  // botbuilder prints rejected tokens to console.error; the adapter already logs them.
  beforeEach(() => void vi.spyOn(console, 'error').mockImplementation(() => {}));
  afterEach(async () => {
    await driver?.stop();
    vi.restoreAllMocks();
  });

  async function boot(withKeys: boolean) {
    driver = new TeamsDriver({
      config: (emulator) => ({ appId: APP_ID, appPassword: 'not-a-real-secret', ...(withKeys ? { openIdMetadataUrl: emulator.openIdMetadataUrl } : {}) }),
    });
    const { bridge } = await driver.start();
    return { bridge, ...(await seededConversation(bridge)) };
  }

  const note = (threadId: string, authorization?: string) =>
    driver.emulator.channelMessage({ threadId, from: ALICE, text: '// checked the order history', ...(authorization ? { authorization } : {}) });

  it('refuses a missing or malformed token locally, without fetching any keys', async () => {
    // No metadata URL override: had botbuilder needed Microsoft's keys, this sandbox has no network and the answer would not be 401.
    const { bridge, id, threadId } = await boot(false);
    expect((await note(threadId)).status).toBe(401);
    expect((await note(threadId, 'Bearer not-a-jwt')).status).toBe(401);
    expect((await note(threadId, 'Basic YWxpY2U6c2VjcmV0')).status).toBe(401);
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"iss":"https://evil.example"}').toString('base64url')}.`;
    expect((await note(threadId, `Bearer ${unsigned}`)).status).toBe(401);
    expect((await bridge.getConversation(id))!.messages).toEqual([]);
    expect(await bridge.store.kv('teams').get(`operator:${ALICE.id}`)).toBeUndefined();
  });

  it('refuses tokens with a bad signature, another audience, or past their expiry', async () => {
    const { bridge, id, threadId } = await boot(true);
    const e = driver.emulator;
    expect((await note(threadId, `Bearer ${e.issueToken({ audience: APP_ID, wrongKey: true })}`)).status).toBe(401);
    expect((await note(threadId, `Bearer ${e.issueToken({ audience: 'some-other-bot' })}`)).status).toBe(401);
    expect((await note(threadId, `Bearer ${e.issueToken({ audience: APP_ID, expiresInSeconds: -3600 })}`)).status).toBe(401);
    expect((await note(threadId, `Bearer ${e.issueToken({ audience: APP_ID, serviceUrl: 'https://attacker.example/' })}`)).status).toBe(401);
    expect((await bridge.getConversation(id))!.messages).toEqual([]);
  });

  it('refuses a card click with a bad token: nobody takes the conversation', async () => {
    const { bridge, id, threadId } = await boot(true);
    const result = await driver.emulator.invoke({
      conversationId: threadId,
      cardActivityId: '1699999999999',
      from: ALICE,
      verb: 'takeover',
      data: { handoff: 1, conversationId: id, action: 'takeover' },
      authorization: `Bearer ${driver.emulator.issueToken({ audience: APP_ID, wrongKey: true })}`,
    });
    expect(result.status).toBe(401);
    const conversation = (await bridge.getConversation(id))!;
    expect(conversation.state).toBe('agent');
    expect(conversation.history).toEqual([]);
  });

  it('accepts a token Teams signed for this bot', async () => {
    const { bridge, id, threadId } = await boot(true);
    const res = await note(threadId, `Bearer ${driver.emulator.issueToken({ audience: APP_ID })}`);
    await driver.settle();
    expect(res.status).toBe(200);
    expect((await bridge.getConversation(id))!.messages).toEqual([
      expect.objectContaining({ text: 'checked the order history', visibility: 'internal', author: expect.objectContaining({ id: `teams:${ALICE.id}` }) }),
    ]);
  });
});
