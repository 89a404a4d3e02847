/**
 * Property-based fuzzing of POST /slack/events with fast-check, every request correctly signed:
 * Events API callbacks (thread replies in the bridge's threads and elsewhere, Home tab opens, other
 * events), interactivity `payload=` forms (button clicks on real and made-up conversations, modal
 * submissions, shortcuts), slash commands, the same with one field of the wrong type, any JSON and
 * bodies that are not JSON. Whatever arrives: an answer within Slack's 3 s, never a 5xx, no
 * unhandled rejection, and an input that is refused (4xx) or cannot act (it names no conversation
 * of the bridge, or no action the bridge has) writes nothing to the store (opening the Home tab or
 * pressing its Refresh records the viewer, for live refreshes). Then the same bodies
 * with a wrong signature: 401, nothing written.
 *
 * FUZZ_RUNS sets the signed inputs (default 10,000, about 30 s here; a tenth of that forged);
 * FUZZ_SEED fixes the seed.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS, SHORTCUTS } from '../../adapters/slack/listeners.ts';
import { parseHandBackText } from '../../adapters/slack/parse.ts';
import { signSlackBody } from '../../adapters/slack/signature.ts';
import { BRIEFING_ACTIONS } from '../../cards/slack/briefing.ts';
import { HOME_ACTIONS } from '../../cards/slack/home.ts';
import { NOTE_MODAL, PICKER_ACTIONS } from '../../cards/slack/operator.ts';
import { THREAD_ACTIONS } from '../../cards/slack/thread.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import { ScriptedAgent } from '../support/harness.ts';
import { CHANNEL, countingStore, DANA, SAM, SIGNING_SECRET, startSlackFixture, type SlackFixture } from './fixture.ts';

const RUNS = Math.max(1, Number(process.env.FUZZ_RUNS) || 10_000);
const FORGED_RUNS = Math.max(1, Math.ceil(RUNS / 10));
/** Inputs per round of fresh conversations. */
const ROUND = 1_000;
const MALLORY = 'UMALLORY01';

/** Escalates when asked for a person, answers anything else. */
const agent = () =>
  new ScriptedAgent(({ conversation }) => {
    const last = conversation.messages.findLast((m) => m.author.role === 'customer')?.text ?? '';
    if (/human|refund/i.test(last) && conversation.state === 'agent') {
      return {
        kind: 'escalate',
        trigger: 'explicit_request',
        reason: 'The customer asked for a person',
        actionsTaken: [],
        request: { summary: 'Wants a person', pendingQuestion: 'Can you help?', options: [{ id: 'approve', label: 'Approve', risk: 'high' }] },
      };
    }
    return { kind: 'reply', text: 'Noted.', actionsTaken: [] };
  });

/** The bridge's conversations and where they live in Slack, for one round. */
interface Target {
  conversationIds: string[];
  tickets: string[];
  /** `channel:ts` of every thread root and briefing copy (replies under them reach the bridge). */
  places: Array<{ channel: string; ts: string }>;
  responseUrl: string;
}

const CLICK_ACTIONS = [BRIEFING_ACTIONS.claim, BRIEFING_ACTIONS.takeOver, BRIEFING_ACTIONS.returnToAgent, BRIEFING_ACTIONS.close, `${BRIEFING_ACTIONS.optionPrefix}approve`, `${BRIEFING_ACTIONS.optionPrefix}nope`, PICKER_ACTIONS.return, PICKER_ACTIONS.close, HOME_ACTIONS.refresh, THREAD_ACTIONS.reveal];
/** Actions that may change a conversation (the rest open a modal, answer privately or publish a view; Reveal writes only for masked values, which these conversations have none of). */
const WRITING_ACTIONS = new Set<string>([BRIEFING_ACTIONS.claim, BRIEFING_ACTIONS.takeOver, `${BRIEFING_ACTIONS.optionPrefix}approve`, `${BRIEFING_ACTIONS.optionPrefix}nope`, PICKER_ACTIONS.return, PICKER_ACTIONS.close]);

/** What one fuzzed request is: its body, how it is sent, and whether it may change anything. */
interface Input {
  body: string;
  contentType: string;
  /** The request names a conversation of the bridge and something that can act on it. */
  mayAct: boolean;
}

function inputs(t: Target, heldBy: (user: string) => boolean): fc.Arbitrary<Input> {
  const user = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(DANA.userId, SAM.userId, MALLORY) }, fc.string({ maxLength: 12 }));
  const place = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...t.places) }, fc.record({ channel: fc.constantFrom(CHANNEL, 'CELSEWHERE', ''), ts: fc.constantFrom('1.000001', '1700000000.000100', '') }));
  const conversationId = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...t.conversationIds) }, fc.string({ maxLength: 24 }), fc.constant('conv_does_not_exist'));
  const value = fc.oneof(
    { weight: 5, arbitrary: fc.tuple(conversationId, fc.constantFrom('', '|1', '|2', '|0', '|x', '|pick-1')).map(([id, suffix]) => `${id}${suffix}`) },
    fc.jsonValue({ maxDepth: 1 }),
  );
  const text = fc.oneof(
    fc.constantFrom('Hi Ann, Dana here.', '// internal check', 'claim', '<!channel> look', '<@UMALLORY01> hello', '<https://evil.example|bank.com>', '', ' '),
    fc.string({ maxLength: 80 }),
    fc.string({ unit: 'grapheme', maxLength: 30 }),
  );
  const responseUrl = fc.constantFrom(t.responseUrl, 'not a url', undefined);
  const ours = (p: { channel: unknown; ts: unknown }) => t.places.some((x) => x.channel === p.channel && x.ts === p.ts);

  // Events API: thread replies (in the bridge's threads or not), Home tab opens, anything else.
  const file = fc.record(
    { id: fc.oneof(fc.constantFrom('F0FILE01', 'F0NOPE'), fc.string()), name: fc.oneof(fc.string({ maxLength: 20 }), fc.integer()), mode: fc.constantFrom('hosted', 'tombstone'), url_private: fc.constantFrom('https://files.slack.com/x', ''), mimetype: fc.constantFrom('image/png', 'text/plain') },
    { requiredKeys: [] },
  );
  const message = fc
    .record(
      {
        place,
        user,
        text,
        subtype: fc.constantFrom(undefined, undefined, undefined, 'file_share', 'message_changed', 'bot_message', 'thread_broadcast'),
        bot_id: fc.constantFrom(undefined, undefined, 'BBOTBRIDGE'),
        files: fc.option(fc.array(file, { maxLength: 2 }), { nil: undefined }),
        ts: fc.integer({ min: 1, max: 999_999 }).map((n) => `1800000000.${String(n).padStart(6, '0')}`),
        topLevel: fc.boolean(),
      },
      { requiredKeys: ['place', 'user', 'text', 'ts', 'topLevel'] },
    )
    .map(({ place: p, topLevel, ...m }) => {
      const event: Record<string, unknown> = { type: 'message', channel: p.channel, user: m.user, text: m.text, ts: m.ts, ...(topLevel ? {} : { thread_ts: p.ts }) };
      if (m.subtype) event.subtype = m.subtype;
      if (m.bot_id) event.bot_id = m.bot_id;
      if (m.files) event.files = m.files;
      const acts = !topLevel && ours(p) && !m.bot_id && (m.subtype === undefined || m.subtype === 'file_share') && typeof m.user === 'string' && m.user.length > 0;
      return { event, acts };
    });
  // Opening the Home tab records the viewer (live refreshes).
  const homeOpened = fc.record({ user, tab: fc.constantFrom('home', 'messages', undefined) }).map((e) => ({ event: { type: 'app_home_opened', channel: 'D0HOME', ...e }, acts: e.tab !== 'messages' && e.user.length > 0 }));
  const otherEvent = fc.record({ type: fc.oneof(fc.constantFrom('reaction_added', 'member_joined_channel', 'app_mention', 'message'), fc.string()), user, channel: fc.constantFrom(CHANNEL, 'C0OTHER') }).map((event) => ({ event: event as Record<string, unknown>, acts: false }));
  const event = fc.tuple(fc.oneof({ weight: 5, arbitrary: message }, { weight: 2, arbitrary: homeOpened }, otherEvent), fc.nat()).map(([{ event: e, acts }, n]) => ({
    value: { token: 'unused', team_id: 'T0EMULATED', api_app_id: 'AEMULATED', type: 'event_callback', event_id: `EvFUZZ${n}`, event_time: 1, event: e } as Record<string, unknown>,
    acts,
    kind: 'event' as const,
  }));

  // Interactivity: clicks, modal submissions, shortcuts.
  const click = fc
    .record({
      user,
      actionId: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...CLICK_ACTIONS) }, fc.string({ maxLength: 30 })),
      value,
      place,
      responseUrl,
      triggerId: fc.constantFrom('1.2.3', undefined),
    })
    .map((c) => {
      const id = typeof c.value === 'string' ? c.value.split('|')[0] : undefined;
      const acts =
        (WRITING_ACTIONS.has(c.actionId) && id !== undefined && t.conversationIds.includes(id) && typeof c.user === 'string' && c.user.length > 0 && c.place.channel !== '') ||
        // Refresh records the viewer.
        (c.actionId === HOME_ACTIONS.refresh && c.user.length > 0);
      const payload: Record<string, unknown> = {
        type: 'block_actions',
        user: { id: c.user, username: 'someone', name: 'someone', team_id: 'T0EMULATED' },
        api_app_id: 'AEMULATED',
        container: { type: 'message', message_ts: c.place.ts, channel_id: c.place.channel, is_ephemeral: false },
        channel: { id: c.place.channel, name: 'support' },
        team: { id: 'T0EMULATED', domain: 'emulated' },
        actions: [{ type: 'button', action_id: c.actionId, block_id: 'b', value: c.value, action_ts: `${Date.now() / 1000}` }],
        ...(c.triggerId ? { trigger_id: c.triggerId } : {}),
        ...(c.responseUrl ? { response_url: c.responseUrl } : {}),
      };
      return { value: payload, acts, kind: 'interaction' as const };
    });
  const submission = fc
    .record({
      user,
      callbackId: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(NOTE_MODAL.return, NOTE_MODAL.close) }, fc.string({ maxLength: 20 })),
      metadata: fc.oneof(conversationId.map((id) => JSON.stringify({ conversationId: id, channel: CHANNEL })), fc.string({ maxLength: 30 }), fc.jsonValue({ maxDepth: 1 }).map((v) => JSON.stringify(v) ?? '')),
      note: text,
    })
    .map((s) => {
      let named: unknown;
      try {
        named = (JSON.parse(s.metadata) as { conversationId?: unknown } | null)?.conversationId;
      } catch {
        named = undefined;
      }
      const acts = (s.callbackId === NOTE_MODAL.return || s.callbackId === NOTE_MODAL.close) && typeof named === 'string' && t.conversationIds.includes(named);
      const payload: Record<string, unknown> = {
        type: 'view_submission',
        user: { id: s.user, name: 'someone', team_id: 'T0EMULATED' },
        team: { id: 'T0EMULATED', domain: 'emulated' },
        trigger_id: '1.2.3',
        view: { id: 'V0FUZZ', callback_id: s.callbackId, private_metadata: s.metadata, hash: 'h', state: { values: { [NOTE_MODAL.blockId]: { [NOTE_MODAL.actionId]: { type: 'plain_text_input', value: s.note } } } } },
      };
      return { value: payload, acts, kind: 'interaction' as const };
    });
  const shortcut = fc.record({ user, callbackId: fc.oneof(fc.constantFrom(SHORTCUTS.return, SHORTCUTS.close), fc.string({ maxLength: 20 })), place, type: fc.constantFrom('message_action', 'shortcut') }).map((s) => ({
    value: {
      type: s.type,
      callback_id: s.callbackId,
      user: { id: s.user, name: 'someone', team_id: 'T0EMULATED' },
      channel: { id: s.place.channel, name: 'support' },
      team: { id: 'T0EMULATED', domain: 'emulated' },
      trigger_id: '1.2.3',
      message_ts: s.place.ts,
      message: { type: 'message', ts: s.place.ts, text: 'x' },
      response_url: t.responseUrl,
    } as Record<string, unknown>,
    acts: false,
    kind: 'interaction' as const,
  }));

  // Slash commands: `/return` and `/close-ticket` act when they name a ticket of ours or the user holds
  // one; `/route` never does here (one agent runs).
  const command = fc
    .record({
      command: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(COMMANDS.return, COMMANDS.close) }, fc.constantFrom('/nope', '/claim', COMMANDS.route), fc.string({ maxLength: 10 })),
      text: fc.oneof(fc.constantFrom(...t.tickets).chain((ticket) => fc.constantFrom(ticket, `${ticket} all sorted`, `${ticket.toLowerCase()}: note`)), fc.constantFrom('HB-9999 nope', 'please', ''), text),
      user,
      responseUrl,
    })
    .map((c) => {
      const fields: Record<string, string> = { token: 'unused', team_id: 'T0EMULATED', team_domain: 'emulated', channel_id: CHANNEL, channel_name: 'support', command: c.command, text: c.text, api_app_id: 'AEMULATED', trigger_id: '1.2.3', user_name: 'someone', user_id: c.user };
      if (c.responseUrl) fields.response_url = c.responseUrl;
      const ticket = parseHandBackText(c.text).ticket;
      const known = c.command === COMMANDS.return || c.command === COMMANDS.close;
      const acts = known && c.user.length > 0 && (ticket ? t.tickets.includes(ticket) : heldBy(c.user));
      return { body: new URLSearchParams(fields).toString(), contentType: 'application/x-www-form-urlencoded', mayAct: acts };
    });

  const shaped = fc.oneof({ weight: 4, arbitrary: event }, { weight: 4, arbitrary: click }, { weight: 1, arbitrary: submission }, { weight: 1, arbitrary: shortcut });
  // The same with one field replaced by any JSON value (any may then act or not: only the answer is checked).
  const corrupted = fc.tuple(shaped, fc.constantFrom('type', 'event', 'user', 'channel', 'actions', 'view', 'container', 'trigger_id', 'response_url', 'team', 'message'), fc.jsonValue({ maxDepth: 2 })).map(([s, key, v]) => ({ ...s, value: { ...s.value, [key]: v }, acts: undefined }));
  const encode = (s: { value: Record<string, unknown>; acts: boolean | undefined; kind: 'event' | 'interaction' }): Input =>
    s.kind === 'event'
      ? { body: JSON.stringify(s.value), contentType: 'application/json', mayAct: s.acts ?? true }
      : { body: new URLSearchParams({ payload: JSON.stringify(s.value) }).toString(), contentType: 'application/x-www-form-urlencoded', mayAct: s.acts ?? true };
  return fc.oneof(
    { weight: 12, arbitrary: shaped.map(encode) },
    { weight: 2, arbitrary: command },
    { weight: 3, arbitrary: corrupted.map(encode) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => ({ body: JSON.stringify(v) ?? 'null', contentType: 'application/json', mayAct: false })) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => ({ body: new URLSearchParams({ payload: JSON.stringify(v) ?? 'null' }).toString(), contentType: 'application/x-www-form-urlencoded', mayAct: false })) },
    { weight: 1, arbitrary: fc.tuple(fc.string(), fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'text/plain')).map(([body, contentType]) => ({ body, contentType, mayAct: false })) },
  );
}

describe('fuzzing POST /slack/events', () => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => void rejections.push(reason);
  beforeAll(() => void process.on('unhandledRejection', onRejection));
  afterAll(() => void process.off('unhandledRejection', onRejection));

  let f: SlackFixture | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await f?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    f = undefined;
  });

  async function boot() {
    // In memory where there is a tmpfs: every accepted command is a durable (fsynced) commit.
    dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'slack-fuzz-'));
    const counting = countingStore(await openSqliteStore(join(dir, 'bridge.sqlite')));
    f = await startSlackFixture({ agent: agent(), store: counting.store });
    f.emulator.addUser({ id: MALLORY, name: 'mallory', displayName: 'Mallory' });
    return counting.writes;
  }

  /** One signed (or forged) POST on its own connection, failing if not answered within 3 s. */
  const post = (input: Pick<Input, 'body' | 'contentType'>, forged = false): Promise<{ status: number; ms: number }> =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const timestamp = Math.floor(Date.now() / 1000);
      const signature = forged ? signSlackBody('0'.repeat(32), timestamp, input.body) : signSlackBody(SIGNING_SECRET, timestamp, input.body);
      const req = request(
        `http://127.0.0.1:${f!.port}/slack/events`,
        { method: 'POST', agent: false, timeout: 3000, headers: { 'content-type': input.contentType, 'x-slack-request-timestamp': String(timestamp), 'x-slack-signature': signature } },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`not answered within 3 s: ${input.body.slice(0, 200)}`)));
      req.on('error', reject);
      req.end(input.body);
    });

  /** Three conversations with threads: waiting with a briefing, held by Dana, with the agent. */
  async function targets(round: number): Promise<Target> {
    const ids: string[] = [];
    for (const text of ['I want a human', 'I want a human please', 'where is my parcel']) {
      ids.push((await f!.bridge.customerMessage({ origin: 'webchat', customer: { id: `c-${round}-${ids.length}`, name: 'Customer' }, text })).conversation.id);
    }
    await f!.settle();
    expect(await f!.click(ids[1]!, DANA.userId, BRIEFING_ACTIONS.claim)).toBe(200);
    await f!.settle();
    const places: Array<{ channel: string; ts: string }> = [];
    const tickets: string[] = [];
    for (const id of ids) {
      places.push(await f!.root(id));
      for (const copy of await f!.briefings(id)) places.push({ channel: copy.channel, ts: copy.ts });
      tickets.push((await f!.bridge.getConversation(id))!.ticket);
    }
    return { conversationIds: ids, tickets, places, responseUrl: f!.emulator.responseUrl(DANA.userId) };
  }

  it(`answers ${RUNS} fuzzed, correctly signed requests within 3 s, without a 5xx or a stray write`, { timeout: Math.max(120_000, RUNS * 30) }, async () => {
    const writes = await boot();
    const statuses = new Map<number, number>();
    let slowest = 0;
    let wrote = 0;
    for (let round = 0, left = RUNS; left > 0; round++, left -= ROUND) {
      const target = await targets(round);
      // Who holds something right now (commands without a ticket act on it): any user, since a
      // fuzzed user id may have claimed a conversation too.
      const held = new Set<string>();
      const refreshHeld = async () => {
        held.clear();
        for (const c of await f!.bridge.conversationsIn('human')) if (c.owner?.id.startsWith('slack:')) held.add(c.owner.id.slice('slack:'.length));
      };
      await refreshHeld();
      await fc.assert(
        fc.asyncProperty(
          inputs(target, (user) => held.has(user)),
          async (input) => {
            const before = writes();
            const res = await post(input);
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            slowest = Math.max(slowest, res.ms);
            expect([200, 400], `${res.status} for ${input.body.slice(0, 300)}`).toContain(res.status);
            // Listeners go on after a click's ack: let them finish before counting.
            await f!.slack.settle();
            if (res.status !== 200 || !input.mayAct) expect(writes(), `a refused or inert input wrote to the store: ${input.body.slice(0, 300)}`).toBe(before);
            else if (writes() !== before) {
              wrote += 1;
              await f!.settle();
              await refreshHeld();
            }
          },
        ),
        { numRuns: Math.min(ROUND, left), ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) + round } : {}) },
      );
    }
    await f!.settle();
    expect(rejections).toEqual([]);
    // Many inputs got through to the listeners, some changed a conversation, and the bridge still works afterwards.
    expect(statuses.get(200) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(RUNS / 2);
    if (RUNS >= 1000) expect(wrote).toBeGreaterThan(0);
    expect(slowest).toBeLessThan(3000);
    const after = await targets(99);
    await f!.reply(after.conversationIds[1]!, DANA.userId, 'Still here, Dana.');
    await f!.settle();
    expect(f!.customer.texts(after.conversationIds[1]!)).toContain('Still here, Dana.');
  });

  it(`refuses ${FORGED_RUNS} fuzzed requests with a wrong signature, writing nothing`, { timeout: Math.max(60_000, FORGED_RUNS * 30) }, async () => {
    const writes = await boot();
    const target = await targets(0);
    const before = writes();
    await fc.assert(
      fc.asyncProperty(
        inputs(target, () => true),
        async (input) => {
          expect((await post(input, true)).status).toBe(401);
        },
      ),
      { numRuns: FORGED_RUNS },
    );
    await f!.slack.settle();
    expect(writes()).toBe(before);
    expect(rejections).toEqual([]);
  });
});
