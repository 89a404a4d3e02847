/**
 * The console as a workspace: the inbox and threads follow the store live (a claim in Slack shows
 * at once), actions go through the bridge with the bridge's answers, private notices reach only
 * their person, and the list of conversations survives a restart.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createConsoleWorkspace } from '../../adapters/console/index.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger } from '../../src/log.ts';
import { MemoryChannel, MemoryWorkspace } from '../support/memory-ports.ts';
import { createTestBridge, waitFor } from '../support/harness.ts';
import { demoAgent } from './agents.ts';
import { OperatorClient, startConsole, CONSOLE_TOKEN, TEST_OPERATORS, type ConsoleRig } from './support.ts';

let rig: ConsoleRig | undefined;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rig?.close();
  rig = undefined;
});

const SLACK_SAM = { id: 'slack:U0SAM', name: 'Sam in Slack', workspace: 'slack' };

async function say(r: ConsoleRig, text: string, conversationId?: string): Promise<string> {
  const { conversation } = await r.bridge.customerMessage({ ...(conversationId ? { conversationId } : {}), origin: 'api', customer: { id: 'cust-1', name: 'Ada Lovelace' }, text });
  return conversation.id;
}

describe('the live inbox and thread', () => {
  it('a new conversation appears on every screen at once, and moves to the top when it needs a person', async () => {
    rig = await startConsole({ agent: demoAgent() });
    const dana = await rig.signIn('dana');
    await dana.connect();
    const first = await say(rig, 'Where is my order?');
    await dana.waitRow(first, (r) => r.state === 'agent' && r.preview?.who === 'AI agent', 'the agent conversation');
    const second = await say(rig, 'I need a refund of $250 for order A-1001');
    const row = await dana.waitRow(second, (r) => r.state === 'waiting', 'the waiting conversation');
    expect(row).toMatchObject({ intent: 'Refund a damaged order', priority: 'high', customer: 'Ada Lovelace' });
    expect(row.waitingSince).toBeDefined();
  });

  it('a claim made in Slack shows in the console at once, owner and all', async () => {
    const slack = new MemoryWorkspace('slack');
    rig = await startConsole({ workspaces: [slack], config: { otherWorkspaces: ['slack'] } });
    const id = await say(rig, 'I want to talk to a human');
    await rig.settle();
    const lee = await rig.signIn('lee');
    await lee.connect();
    lee.show(id);
    await lee.waitThread(id, (v) => v.row.state === 'waiting', 'the waiting thread');

    await rig.bridge.claim({ conversationId: id, operator: SLACK_SAM });
    const view = await lee.waitThread(id, (v) => v.row.state === 'human', 'the claim from Slack');
    expect(view.row.owner).toEqual({ id: 'slack:U0SAM', name: 'Sam in Slack', workspace: 'slack' });
    expect(view.briefing?.status).toBe('Claimed by Sam in Slack');
    expect(lee.inbox().get(id)?.owner?.name).toBe('Sam in Slack');

    // And the other way round: what an operator types in the console is mirrored to Slack, once.
    await rig.bridge.operatorMessage({ conversationId: id, operator: SLACK_SAM, text: 'Hi Ada', source: { workspace: 'slack', externalId: '1.1' } });
    const dana = await rig.signIn('dana');
    await dana.act(id, 'reply', { text: '// Sam, the invoice is in the shared drive' });
    await rig.settle();
    expect(slack.mirrored.filter((m) => m.message.text === 'Sam, the invoice is in the shared drive')).toHaveLength(1);
    expect(slack.mirrored.some((m) => m.message.text === 'Hi Ada')).toBe(false);
    const thread = await lee.waitThread(id, (v) => v.entries.some((e) => e.kind === 'note'), 'the note');
    expect(thread.entries.find((e) => e.text === 'Hi Ada')).toMatchObject({ kind: 'operator', via: 'slack' });
  });

  it('an open thread updates as the customer writes, and a view older than the one shown is never pushed after it', async () => {
    rig = await startConsole();
    const id = await say(rig, 'I want to talk to a human');
    await rig.settle();
    const dana = await rig.signIn('dana');
    await dana.connect();
    dana.show(id);
    await dana.waitThread(id, (v) => v.row.state === 'waiting', 'the thread');
    for (let i = 1; i <= 5; i++) await say(rig, `still here ${i}`, id);
    await dana.waitThread(id, (v) => v.entries.at(-1)?.text === 'still here 5', 'the last line');
    const versions = dana.frames.filter((f) => f.type === 'thread').map((f) => (f.type === 'thread' ? f.view.row.version : 0));
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
  });
});

describe('actions through the bridge', () => {
  it('claim (twice is harmless), reply, note, transfer, release and close, each answered with the new view', async () => {
    rig = await startConsole();
    const id = await say(rig, 'I want to talk to a human');
    await rig.settle();
    const dana = await rig.signIn('dana');
    const sam = await rig.signIn('sam');

    const [a, b] = await Promise.all([dana.act(id, 'claim'), dana.act(id, 'claim')]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body.view?.can.replyToCustomer).toBe(true);
    const late = await sam.act(id, 'claim');
    expect(late).toMatchObject({ status: 409, body: { error: { code: 'already_claimed', message: expect.stringContaining('Dana Scully') } } });

    const reply = await dana.act(id, 'reply', { text: 'Hi Ada, Dana here.', clientId: 'c1' });
    expect(reply.body.delivered).toBe(true);
    // The page retrying the same send (a lost answer) stores it once.
    expect((await dana.act(id, 'reply', { text: 'Hi Ada, Dana here.', clientId: 'c1' })).status).toBe(200);
    const note = await dana.act(id, 'reply', { text: 'checking the warehouse', internal: true });
    expect(note.body.delivered).toBe(false);
    await rig.settle();
    expect(rig.customer.texts(id).filter((t) => t === 'Hi Ada, Dana here.')).toHaveLength(1);
    expect(rig.customer.texts(id)).not.toContain('checking the warehouse');

    const transfer = await dana.act(id, 'transfer', { to: 'sam' });
    expect(transfer.body.view?.row.owner?.name).toBe('Sam Tran');
    expect((await dana.act(id, 'transfer', { to: 'sam' })).body.error?.code).toBe('not_owner'); // Dana no longer holds it
    expect((await sam.act(id, 'transfer', { to: 'lee' })).body.error?.message).toContain('No console operator lee');
    const released = await sam.act(id, 'release');
    expect(released.body.view?.row.state).toBe('waiting');
    const closed = await dana.act(id, 'close', { note: 'duplicate of HB-1000' });
    expect(closed.body.view?.row.state).toBe('closed');
    await rig.settle();
    expect(rig.customer.texts(id).at(-1)).toContain('is now closed');
    const stored = (await rig.bridge.getConversation(id))!;
    expect(stored.history.map((h) => h.reason)).toEqual(['escalate', 'claim', 'transfer', 'release', 'close']);
    expect(stored.messages.filter((m) => m.author.role === 'operator').map((m) => [m.text, m.visibility, m.source?.workspace])).toEqual([
      ['Hi Ada, Dana here.', 'public', 'console'],
      ['checking the warehouse', 'internal', 'console'],
    ]);
  });

  it('an option from an older briefing decides nothing', async () => {
    rig = await startConsole({ agent: demoAgent() });
    const id = await say(rig, 'I need a refund of $250 for order A-1001');
    await rig.settle();
    const dana = await rig.signIn('dana');
    const stale = await dana.act(id, 'decide', { optionId: 'approve_refund', escalation: 7 });
    expect(stale).toMatchObject({ status: 409, body: { error: { code: 'stale_briefing' } } });
    const ok = await dana.act(id, 'decide', { optionId: 'offer_credit', escalation: 1, note: 'Offer 250 USD credit' });
    expect(ok.body.view?.briefing).toMatchObject({ open: false, status: 'Dana Scully decided: Offer store credit instead. Back with the agent.' });
    expect((await dana.act(id, 'decide', { optionId: 'approve_refund', escalation: 1 })).status).toBe(409);
  });

  it('a reply from someone who does not hold the conversation stays internal, and only they are told why', async () => {
    rig = await startConsole();
    const id = await say(rig, 'I want to talk to a human');
    await rig.settle();
    const dana = await rig.signIn('dana');
    const sam = await rig.signIn('sam');
    await Promise.all([dana.connect(), sam.connect()]);
    await dana.act(id, 'claim');
    const answer = await sam.act(id, 'reply', { text: 'Ada, I can help too' });
    expect(answer.body.delivered).toBe(false);
    await rig.settle();
    const notice = await waitFor(() => sam.notices()[0], { what: "Sam's notice" });
    expect(notice).toBe('Dana Scully holds HB-1001, so your reply was kept as an internal note. Claim it to answer the customer.');
    expect(sam.frames.find((f) => f.type === 'notice')).toMatchObject({ ticket: 'HB-1001', conversationId: id });
    expect(dana.notices()).toEqual([]);
    expect(rig.customer.texts(id)).not.toContain('Ada, I can help too');
    // Delivered again after an unknown outcome, it is still one notice.
    await rig.console.notifyOperator({ id: 'console:sam', name: 'Sam Tran', workspace: 'console' }, notice, (await rig.bridge.getConversation(id))!);
    await new Promise((r) => setTimeout(r, 100));
    expect(sam.notices()).toHaveLength(1);
  });

  it('a press sent twice (same request id) acts once', async () => {
    rig = await startConsole();
    const id = await say(rig, 'I want to talk to a human');
    await rig.settle();
    const dana = await rig.signIn('dana');
    expect((await dana.act(id, 'claim', { requestId: 'press-1' })).status).toBe(200);
    const first = await dana.act(id, 'close', { requestId: 'press-2' });
    const again = await dana.act(id, 'close', { requestId: 'press-2' });
    expect([first.status, again.status]).toEqual([200, 200]);
    expect(again.body.view?.row.state).toBe('closed');
    expect((await rig.bridge.getConversation(id))!.history.filter((h) => h.reason === 'close')).toHaveLength(1);
    // A new press is a new request, and the bridge's answer comes back as it is.
    expect((await dana.act(id, 'close', { requestId: 'press-3' })).body.error?.code).toBe('invalid_transition');
  });

  it('finds a conversation by its ticket', async () => {
    rig = await startConsole();
    const id = await say(rig, 'hello');
    await rig.settle();
    const dana = await rig.signIn('dana');
    expect((await dana.get('find?ticket=hb-1001')).body).toEqual({ conversationId: id });
    expect((await dana.get('find?ticket=HB-9999')).status).toBe(404);
  });
});

describe('managers', () => {
  it('are told when an escalation waits too long, and get the daily digest, once each', async () => {
    rig = await startConsole({ agent: demoAgent() });
    const id = await say(rig, 'I need a refund of $250 for order A-1001');
    await rig.settle();
    const [lee, dana] = [await rig.signIn('lee'), await rig.signIn('dana')];
    await Promise.all([lee.connect(), dana.connect()]);
    const conversation = (await rig.bridge.getConversation(id))!;
    const attempt = { key: `${id}:9`, count: 1, since: Date.now() };
    await rig.console.postToManagers(conversation, attempt);
    await rig.console.postToManagers(conversation, { ...attempt, count: 2 });
    await waitFor(() => lee.notices().length === 1, { what: "the managers' alert" });
    expect(lee.notices()[0]).toMatch(/^HB-1001 \(Ada Lovelace\) has waited \d+s for a person, unclaimed: Refund of 250 USD is over/);

    const digest = await rig.bridge.digest(new Date().toISOString().slice(0, 10));
    await rig.console.postDigest(digest);
    await rig.console.postDigest(digest);
    await waitFor(() => lee.notices().length === 2, { what: 'the digest' });
    expect(lee.notices()[1]).toMatch(/^Digest for \d{4}-\d{2}-\d{2}: 1 conversation · 1 escalated \(100%, target 10%–15%\)/);
    await new Promise((r) => setTimeout(r, 100));
    expect(lee.notices()).toHaveLength(2);
    expect(dana.notices()).toEqual([]);
    expect((await lee.get<{ line: string }>('today')).body.line).toContain('1 escalated');
  });
});

describe('the list of conversations', () => {
  it('the live queue comes from the bridge: what waited before the console ran is listed', async () => {
    const harness = await createTestBridge({ channels: [new MemoryChannel()] });
    const waiting = await harness.bridge.customerMessage({ origin: 'api', customer: { id: 'c1', name: 'Early Bird' }, text: 'I want to talk to a human' });
    await harness.bridge.idle();
    const http = new HttpServer(silentLogger());
    const operatorConsole = createConsoleWorkspace({ bridge: harness.bridge, http, logger: silentLogger(), config: { operators: TEST_OPERATORS, token: CONSOLE_TOKEN } });
    harness.bridge.addWorkspace(operatorConsole);
    const port = await http.listen(0, '127.0.0.1');
    await operatorConsole.start();
    cleanups.push(async () => {
      await operatorConsole.stop();
      await http.close();
      await harness.close();
    });
    const dana = await OperatorClient.signIn(`http://127.0.0.1:${port}`, { token: CONSOLE_TOKEN, operator: 'dana' });
    const rows = (await dana.get<{ rows: Array<{ id: string; state: string; customer: string }> }>('inbox')).body.rows;
    expect(rows).toEqual([expect.objectContaining({ id: waiting.conversation.id, state: 'waiting', customer: 'Early Bird' })]);
  });

  it('survives a restart: a new console on the same store lists what the old one was told about', async () => {
    rig = await startConsole();
    const ids = [await say(rig, 'one'), await say(rig, 'I want to talk to a human')];
    await rig.settle();
    const http = new HttpServer(silentLogger());
    const second = createConsoleWorkspace({ bridge: rig.bridge, http, logger: silentLogger(), config: { operators: TEST_OPERATORS, token: CONSOLE_TOKEN } });
    const port = await http.listen(0, '127.0.0.1');
    await second.start();
    cleanups.push(async () => {
      await second.stop();
      await http.close();
    });
    const dana = await OperatorClient.signIn(`http://127.0.0.1:${port}`, { token: CONSOLE_TOKEN, operator: 'dana' });
    const rows = (await dana.get<{ rows: Array<{ id: string; state: string }> }>('inbox')).body.rows;
    expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
    expect(rows.find((r) => r.id === ids[1])?.state).toBe('waiting');
  });

  it('repeated deliveries change nothing, and only the most recent closed conversations are kept', async () => {
    rig = await startConsole({ config: { closedKept: 2 } });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await say(rig, `question ${i}`));
    await rig.settle();
    const lee = { id: 'console:lee', name: 'Lee', workspace: 'console' };
    for (const id of ids) await rig.bridge.close({ conversationId: id, operator: lee });
    await rig.settle();
    // The same work, delivered again (a retry after an unknown outcome).
    for (const id of ids) {
      const c = (await rig.bridge.getConversation(id))!;
      await rig.console.mirror(c, c.messages.at(-1)!);
      await rig.console.ownershipChanged(c, c.history.at(-1)!);
    }
    const entries = await rig.harness.store.kv('console').get<Array<{ id: string }>>('conversations');
    expect(entries!.map((e) => e.id).sort()).toEqual(ids.slice(2).sort());
  });
});
