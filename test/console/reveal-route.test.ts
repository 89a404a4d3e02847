/**
 * Reveal and Route through the console's API, against the real bridge (redacted, as app.ts wires
 * it) and, for several agents, the loopback Chat Completions emulator. A card number never reaches
 * any screen; only the owner gets the original, in the answer to their own press; forged or
 * signed-out requests get nothing. Any operator may route, managers may not, and an unknown agent
 * or a single agent is refused with the bridge's words.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MultiAgent } from '../../src/agent/multi-agent.ts';
import { startChatEmulator, type ChatEmulator } from '../emulators/openai-chat.ts';
import { startConsole, type ConsoleRig, type OperatorClient } from './support.ts';

let rig: ConsoleRig | undefined;
let model: ChatEmulator | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  await model?.close();
  model = undefined;
});

const CARD = '4242 4242 4242 4242';
const ADA = { id: 'cust-1', name: 'Ada Lovelace' };

type RevealAnswer = { revealed?: { messageId: string; text: string } };

/** Everything a socket was ever sent, as one string. */
function seen(client: OperatorClient): string {
  return JSON.stringify(client.frames);
}

describe('Reveal in the console', () => {
  it('the card is masked on every screen; the owner alone gets the original, in the answer to their press, logged once', async () => {
    rig = await startConsole();
    const { conversation, message } = await rig.bridge.customerMessage({ origin: 'api', customer: ADA, text: `I want to talk to a human: my card ${CARD} was charged twice` });
    const id = conversation.id;
    const messageId = message!.id;
    await rig.settle();
    const [dana, sam, lee] = [await rig.signIn('dana'), await rig.signIn('sam'), await rig.signIn('lee')];
    for (const client of [dana, sam, lee]) {
      await client.connect();
      client.show(id);
    }
    const view = await lee.waitThread(id, (v) => v.entries.some((e) => e.masked), 'the masked line');
    const line = view.entries.find((e) => e.id === messageId)!;
    expect(line).toMatchObject({ masked: 1 });
    expect(line.text).toContain('•••• 4242');

    // Nobody holds it yet: nobody may reveal.
    const early = await dana.act(id, 'reveal', { messageId });
    expect(early.status).toBe(409);
    expect(early.body.error?.code).toBe('not_owner');

    expect((await dana.act(id, 'claim')).status).toBe(200);
    // Sam is told who holds it; Lee (a manager) may not act at all.
    const bySam = await sam.act(id, 'reveal', { messageId });
    expect(bySam.status).toBe(409);
    expect(bySam.body.error).toEqual({ code: 'not_owner', message: 'Only Dana Scully, who holds this conversation, can reveal values in it.' });
    expect((await lee.act(id, 'reveal', { messageId })).body.error?.code).toBe('read_only');

    // Forged presses get nothing: no CSRF token, another site, no session.
    expect((await dana.post(`conversations/${id}/reveal`, { messageId }, { 'x-console-csrf': 'forged' })).status).toBe(403);
    expect((await dana.post(`conversations/${id}/reveal`, { messageId }, { origin: 'https://evil.example' })).status).toBe(403);
    const anonymous = await fetch(`${rig.baseUrl}/console/api/conversations/${id}/reveal`, { method: 'POST', headers: { origin: rig.baseUrl, 'content-type': 'application/json' }, body: JSON.stringify({ messageId }) });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).not.toContain('4242');
    expect((await rig.bridge.getConversation(id))!.history.some((h) => h.reason === 'reveal')).toBe(false);

    // Dana presses Reveal (and the same press again): the original in the answer, one log entry.
    const first = await dana.act(id, 'reveal', { messageId, requestId: 'press-1' });
    expect(first.status).toBe(200);
    expect((first.body as RevealAnswer).revealed).toEqual({ messageId, text: `I want to talk to a human: my card ${CARD} was charged twice` });
    const again = await dana.act(id, 'reveal', { messageId, requestId: 'press-1' });
    expect((again.body as RevealAnswer).revealed?.text).toContain(CARD);
    await rig.settle();
    const stored = (await rig.bridge.getConversation(id))!;
    expect(stored.history.filter((h) => h.reason === 'reveal')).toHaveLength(1);

    // Every screen shows the logged reveal, and none was ever sent the number.
    const after = await lee.waitThread(id, (v) => v.entries.some((e) => e.kind === 'event' && e.text.includes('revealed')), 'the reveal line');
    expect(after.entries.find((e) => e.kind === 'event' && e.text.includes('revealed'))!.text).toBe('Dana Scully revealed card •••• 4242 from a customer message.');
    expect(after.history.at(-1)!.text).toBe('Dana Scully revealed card •••• 4242');
    expect(after.briefing?.status).toBe('Claimed by Dana Scully');
    expect(after.entries.find((e) => e.id === messageId)!.text).not.toContain(CARD);
    for (const client of [dana, sam, lee]) {
      expect(seen(client)).not.toContain(CARD);
      expect(seen(client)).not.toContain('4242424242424242');
    }
    expect(JSON.stringify(first.body.view)).not.toContain(CARD);
  });
});

describe('Route in the console', () => {
  async function severalAgents(): Promise<ConsoleRig> {
    model = await startChatEmulator();
    const agent = new MultiAgent(
      {
        mode: 'handoffs',
        defaultAgent: 'triage',
        agents: [
          { name: 'triage', instructions: 'Route the customer.', handoffs: [{ to: 'billing' }] },
          { name: 'billing', instructions: 'Charges and refunds.', handoffs: [{ to: 'triage' }] },
        ],
      },
      { apiKey: 'sk-test', baseURL: model.baseURL, maxRetries: 0, brandName: 'Northwind' },
    );
    return startConsole({ agent });
  }

  it('lists the agents; an operator picks one (pinned, with a note), a manager cannot, an unknown agent is refused with the list', async () => {
    rig = await severalAgents();
    const { conversation } = await rig.bridge.customerMessage({ origin: 'api', customer: ADA, text: 'I want to talk to a human' });
    const id = conversation.id;
    await rig.settle();
    const dana = await rig.signIn('dana');
    const lee = await rig.signIn('lee');
    expect((await dana.get<{ settings: { agents: string[] } }>('session')).body.settings.agents).toEqual(['triage', 'billing']);
    const before = await dana.view(id);
    expect(before.row.state).toBe('waiting');
    // The explicit request escalates before any model call.
    expect(model!.requests).toHaveLength(0);
    expect(before.can.route).toBe(true);

    const unknown = await dana.act(id, 'route', { agent: 'legal' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toEqual({ code: 'unknown_agent', message: 'No agent named "legal" (agents: triage, billing).' });
    expect((await lee.act(id, 'route', { agent: 'billing' })).body.error?.code).toBe('read_only');

    const routed = await dana.act(id, 'route', { agent: 'billing', note: 'a charge question', pin: true, requestId: 'route-1' });
    expect(routed.status).toBe(200);
    const view = routed.body.view!;
    expect(view.agent).toEqual({ name: 'billing', pinned: true });
    expect(view.history.at(-1)!.text).toBe('Dana Scully handed the conversation from triage to billing and pinned it: a charge question');
    expect(view.entries.at(-1)).toMatchObject({ kind: 'event', text: 'Dana Scully handed the conversation from triage to billing and pinned it: a charge question' });
    // A hop is not a change of hands: the wait clock keeps running from the escalation.
    expect(view.row.waitingSince).toBe(before.row.waitingSince);
    // The same press again changes nothing.
    expect((await dana.act(id, 'route', { agent: 'billing', note: 'a charge question', pin: true, requestId: 'route-1' })).status).toBe(200);
    expect((await rig.bridge.getConversation(id))!.history.filter((h) => h.reason === 'agent_handoff')).toHaveLength(1);

    // Closed: nothing to route.
    expect((await dana.act(id, 'close')).status).toBe(200);
    const closed = await dana.act(id, 'route', { agent: 'triage' });
    expect(closed.status).toBe(409);
    expect(closed.body.error?.code).toBe('invalid_transition');
  });

  it('with one agent the page offers no Route, and the API says why', async () => {
    rig = await startConsole();
    const { conversation } = await rig.bridge.customerMessage({ origin: 'api', customer: ADA, text: 'I want to talk to a human' });
    await rig.settle();
    const dana = await rig.signIn('dana');
    expect((await dana.get<{ settings: { agents: string[] } }>('session')).body.settings.agents).toEqual([]);
    const answer = await dana.act(conversation.id, 'route', { agent: 'triage' });
    expect(answer.status).toBe(409);
    expect(answer.body.error).toEqual({ code: 'single_agent', message: 'One agent runs here: there is no other agent to route to.' });
    expect((await dana.view(conversation.id)).agent).toBeUndefined();
  });
});
