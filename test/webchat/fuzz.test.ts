/**
 * Property-based fuzzing of web chat frames with fast-check: the parsers and the token check on
 * their own, then a running web chat fed frames over real sockets. No input may crash anything or
 * leave a promise rejection unhandled, and input that is refused must leave the store as it was.
 *
 * FUZZ_RUNS sets the number of inputs per property (default 10,000); FUZZ_SEED replays a failure.
 */
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientFrameSchema, normalizeCustomerText, parseClientFrame, wellFormedMessage, type ServerFrame } from '../../adapters/webchat/frames.ts';
import { identityHash } from '../../adapters/webchat/index.ts';
import { admit, type SessionRecord } from '../../adapters/webchat/sessions.ts';
import { signSessionToken, verifySessionToken, type SessionClaims } from '../../adapters/webchat/token.ts';
import { IDENTITY_SECRET, SESSION_SECRET, startWebChat, VisitorSocket, type WebChatRig } from './support.ts';

const RUNS = Math.max(1, Number(process.env.FUZZ_RUNS ?? 10_000));
const SEED = process.env.FUZZ_SEED === undefined ? {} : { seed: Number(process.env.FUZZ_SEED) };
const options = { numRuns: RUNS, ...SEED };
const NOW = Date.parse('2025-03-01T10:00:00Z');
const MAX_CHARS = 50;

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

// ---- generators -------------------------------------------------------------------------------

const anyText = fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ unit: 'grapheme', maxLength: 80 }), fc.string({ maxLength: 80 }));
const clientId = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,12}$/), fc.stringMatching(/^[A-Za-z0-9_.:-]{98,102}$/), fc.constantFrom('c1', 'c2', 'c3', ''), anyText);
const controlText = fc.array(fc.constantFrom(' ', '\t', '\n', '\r', '\u0000', '\u0007', '\u001b', '\u007f', 'a', 'é', '👍', '\u200b'), { maxLength: 80 }).map((a) => a.join(''));
/** Things shaped like frames, with every field sometimes wrong. */
const frameLike = fc.record(
  {
    type: fc.oneof(fc.constantFrom('hello', 'message', 'Message', 'ready', 'token', '', '__proto__'), anyText),
    text: fc.oneof(anyText, controlText, fc.string({ minLength: MAX_CHARS, maxLength: MAX_CHARS * 3 }), fc.integer(), fc.constant(null), fc.array(fc.string())),
    clientId: fc.oneof(clientId, fc.integer(), fc.constant(null)),
    token: fc.oneof(anyText, fc.integer()),
    lastSeenId: fc.oneof(anyText, fc.integer()),
    userId: fc.oneof(anyText, fc.integer()),
    userHash: anyText,
    extra: fc.jsonValue({ maxDepth: 2 }),
  },
  { requiredKeys: [] },
);
const pollution = fc.constantFrom(
  '{"__proto__":{"type":"message","text":"x","clientId":"c"}}',
  '{"type":"message","text":"x","clientId":"c","__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"type":"hello"}}}',
  '{"type":"hello","token":{"toString":"x"}}',
  '[{"type":"message","text":"x","clientId":"c"}]',
  'null',
  '"hello"',
  '1e309',
  '{"type":"message","text":"x","clientId":"c"',
);
/** One raw frame as a socket could send it. */
const rawFrame = fc.oneof(
  { arbitrary: anyText, weight: 2 },
  { arbitrary: fc.json({ maxDepth: 3 }), weight: 2 },
  { arbitrary: frameLike.map((f) => JSON.stringify(f)), weight: 5 },
  { arbitrary: pollution, weight: 1 },
);

// ---- pure -------------------------------------------------------------------------------------

describe(`web chat parsing, fuzzed (${RUNS} inputs per property)`, () => {
  it('parseClientFrame never throws, and accepts only well-formed hello and message frames', () => {
    fc.assert(
      fc.property(rawFrame, (raw) => {
        const result = parseClientFrame(raw);
        if (!result.ok) {
          expect(result.error).toMatchObject({ type: 'error', code: 'malformed_frame', message: expect.any(String) });
          return;
        }
        const frame = result.frame;
        if (frame.type === 'hello') expect(typeof frame.token === 'string' && frame.token.length > 0 && frame.token.length <= 2048).toBe(true);
        else expect(typeof frame.text === 'string' && /^[A-Za-z0-9_.:-]{1,100}$/.test(frame.clientId)).toBe(true);
      }),
      options,
    );
  });

  it('the hand-checked message frame agrees with the schema: the same frames pass, with the same result', () => {
    // Message frames with every field near its edge, besides every kind of raw frame.
    const nearlyMessage = fc
      .record({ type: fc.constantFrom('message', 'hello'), text: fc.oneof(anyText, fc.integer()), clientId, extra: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: ['type', 'text', 'clientId'] })
      .map((f) => JSON.stringify(f));
    fc.assert(
      fc.property(fc.oneof(rawFrame, nearlyMessage), (raw) => {
        let json: unknown;
        try {
          json = JSON.parse(raw);
        } catch {
          return;
        }
        const parsed = ClientFrameSchema.safeParse(json);
        const quick = wellFormedMessage(json);
        if (parsed.success && parsed.data.type === 'message') expect(quick).toEqual(parsed.data);
        else expect(quick).toBeUndefined();
      }),
      options,
    );
  });

  it('customer text comes out non-empty, trimmed, free of control characters and within the limit, or is refused', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, controlText), fc.integer({ min: 1, max: 60 }), (text, max) => {
        const result = normalizeCustomerText(text, max);
        if (!result.ok) {
          expect(['empty_message', 'message_too_long']).toContain(result.error.code);
          return;
        }
        expect(result.text.length).toBeGreaterThan(0);
        expect(result.text).toBe(result.text.trim());
        expect([...result.text].length).toBeLessThanOrEqual(max);
        // eslint-disable-next-line no-control-regex
        expect(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\r]/.test(result.text)).toBe(false);
      }),
      options,
    );
  });

  const claims: SessionClaims = { sessionId: 'sess_fuzz', generation: 2, visitorId: 'anon:fuzz', verified: false, conversationId: 'conv_fuzz', issuedAt: NOW };
  const valid = signSessionToken(claims, SESSION_SECRET);
  const check = (token: unknown) => verifySessionToken(token, SESSION_SECRET, { now: NOW, maxAgeMs: 3600_000 });

  it('a token changed in any way is refused; only the token as issued passes', () => {
    const mutation = fc.oneof(
      fc.record({ at: fc.nat(valid.length - 1), char: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) }).map(({ at, char }) => valid.slice(0, at) + char + valid.slice(at + 1)),
      fc.nat(valid.length).map((n) => valid.slice(0, n)),
      anyText.map((tail) => valid + tail),
      fc.nat(valid.length - 1).map((at) => valid.slice(0, at) + valid.slice(at + 1)),
      anyText,
    );
    fc.assert(
      fc.property(mutation, (token) => {
        const verdict = check(token);
        if (verdict.ok) expect(token).toBe(valid);
      }),
      options,
    );
  });

  it('a correctly signed payload of any shape is read without throwing, and only complete claims pass', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (payload) => {
        const body = Buffer.from(JSON.stringify(payload) ?? 'null').toString('base64url');
        const verdict = check(resign(body));
        if (verdict.ok) {
          expect(verdict.claims.sessionId.length).toBeGreaterThan(0);
          expect(Number.isSafeInteger(verdict.claims.generation) && verdict.claims.generation >= 0).toBe(true);
          expect(verdict.claims.verified).toBe(verdict.claims.visitorId.startsWith('user:'));
        }
      }),
      options,
    );
  });

  it('rotation never admits an old generation after the grace, and never goes backwards', () => {
    const record = fc.record(
      {
        visitorId: fc.constantFrom('anon:a', 'anon:b', 'user:1'),
        conversationId: fc.constantFrom('conv_1', 'conv_2'),
        firstClientId: fc.constant('c1'),
        generation: fc.nat(6),
        rotatedAt: fc.integer({ min: NOW - 120_000, max: NOW }),
        graceUses: fc.nat(6),
      },
      { requiredKeys: ['visitorId', 'generation', 'rotatedAt', 'graceUses'] },
    );
    const asked = fc.record(
      { sessionId: fc.constant('s'), generation: fc.nat(8), visitorId: fc.constantFrom('anon:a', 'anon:b', 'user:1'), verified: fc.boolean(), conversationId: fc.constantFrom('conv_1', 'conv_2'), issuedAt: fc.constant(NOW) },
      { requiredKeys: ['sessionId', 'generation', 'visitorId', 'verified', 'issuedAt'] },
    );
    fc.assert(
      fc.property(asked, fc.option(record, { nil: undefined }), (c, r) => {
        const decision = admit(c as SessionClaims, r as SessionRecord | undefined, NOW);
        if (decision.kind !== 'admit') return;
        expect(decision.record.visitorId).toBe(c.visitorId);
        if (!r?.conversationId) {
          expect(c.generation).toBe(0);
          return;
        }
        expect(decision.conversationId).toBe(r.conversationId);
        expect(decision.record.generation).toBeGreaterThanOrEqual(r.generation);
        if (c.generation !== r.generation) {
          expect(c.generation).toBe(r.generation - 1);
          expect(NOW - r.rotatedAt).toBeLessThanOrEqual(30_000);
        }
      }),
      options,
    );
  });
});

/** Signs any payload the way signSessionToken does: a payload the bridge would never produce. */
function resign(payload: string): string {
  return `v2.${payload}.${createHmac('sha256', SESSION_SECRET).update(`v2.${payload}`, 'utf8').digest('base64url')}`;
}

// ---- live -------------------------------------------------------------------------------------

/**
 * A read connection to the rig's SQLite file. `version()` is SQLite's data_version: it moves
 * whenever another connection commits anything, so an unchanged value means nothing was written.
 */
class StoreView {
  private constructor(private readonly db: Database.Database) {}

  static async open(path: string): Promise<StoreView> {
    return new StoreView(new Database(path, { readonly: true, fileMustExist: true }));
  }

  async dump(): Promise<string> {
    const tables = ['conversations', 'messages', 'work_log', 'work_state', 'index_values', 'index_members', 'inbound', 'adapter_data', 'counters'];
    const parts: string[] = [];
    for (const table of tables) {
      const rows = this.db.prepare(`SELECT * FROM ${table}`).all();
      parts.push(table, ...rows.map((row) => JSON.stringify(row)).sort());
    }
    return parts.join('\n');
  }

  async version(): Promise<number> {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** Waits for the answer to the frame sent after `from` frames: an error, or a confirmed message. */
async function answerAfter(socket: VisitorSocket, from: number): Promise<ServerFrame> {
  const answer = await socket.until((f) => f.type === 'error' || (f.type === 'message' && f.clientId !== undefined), from);
  if (!answer) throw new Error(`socket closed without an answer: ${JSON.stringify(socket.closed)}`);
  return answer;
}

describe(`a running web chat fed fuzzed frames (${RUNS} inputs per property)`, () => {
  let rig: WebChatRig;
  let view: StoreView;
  let victim: { conversationId: string; texts: Set<string>; spent: string[] };

  beforeAll(async () => {
    // No delivery workers: the store changes only when the web chat itself commits something.
    rig = await startWebChat({
      startWorkers: false,
      config: { identitySecret: IDENTITY_SECRET, maxMessageChars: MAX_CHARS, ratePerMinute: 1e9, burst: 1e7, sessionsPerMinute: 1e9 },
    });
    const session = await rig.session();
    const first = await rig.connect(session.token);
    await first.ready();
    first.say('the victim writes first', 'v1');
    await answerAfter(first, 0);
    const conversationId = first.conversationId()!;
    const spent = first.token()!;
    first.close();
    // The victim comes back (spending that token) and leaves; later, its old tokens are only replays.
    const back = await rig.connect(spent);
    await back.ready();
    back.close();
    rig.advance(31_000);
    victim = { conversationId, texts: new Set(['the victim writes first']), spent: [session.token, spent] };
    view = await StoreView.open(join(rig.dir, 'bridge.sqlite'));
  });
  afterAll(async () => {
    await view?.close();
    await rig?.close();
  });

  it('after hello: every frame is answered, the socket stays up, and a refused frame changes nothing stored', { timeout: 600_000 }, async () => {
    const session = await rig.session();
    const socket = await rig.connect(session.token);
    await socket.ready();
    socket.say('opening line', 'open');
    await answerAfter(socket, 0);
    const sendable = fc.oneof({ arbitrary: rawFrame, weight: 12 }, { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 });
    let refused = 0;
    let stored = 0;
    await fc.assert(
      fc.asyncProperty(sendable, async (raw) => {
        const from = socket.frames.length;
        const before = await view.version();
        if (typeof raw === 'string') socket.ws.send(raw);
        else socket.ws.send(raw, { binary: true });
        const answer = await answerAfter(socket, from);
        expect(socket.closed).toBeUndefined();
        const after = await view.version();
        if (answer.type === 'error') {
          refused += 1;
          expect(after).toBe(before);
        } else if (after !== before) stored += 1;
      }),
      options,
    );
    // Most fuzzed frames are refused; some are well-formed messages, stored (which the version sees).
    expect(refused).toBeGreaterThan(RUNS / 2);
    if (RUNS >= 1000) expect(stored).toBeGreaterThan(0);
    // Still serving: a plain message goes through.
    const from = socket.frames.length;
    socket.say('still here?', 'final');
    expect(await answerAfter(socket, from)).toMatchObject({ type: 'message', clientId: 'final' });
    socket.close();
  });

  it('before and at hello: forged, mangled and replayed tokens get nothing and store nothing', { timeout: 600_000 }, async () => {
    const victimRecord = (await rig.bridge.getConversation(victim.conversationId))!;
    const userHash = identityHash('user-1', IDENTITY_SECRET);
    const signedClaims = fc.record(
      {
        sessionId: fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,22}$/), anyText.filter((s) => s.length > 0)),
        generation: fc.nat(5),
        // Never the victim's visitor id: with it and the secret, a token is the victim's own.
        visitorId: fc.oneof(fc.constantFrom('anon:intruder', 'user:user-1', 'user:user-2'), anyText.filter((s) => s.length > 0 && s !== victimRecord.customer.id)),
        verified: fc.boolean(),
        conversationId: fc.option(fc.constantFrom(victim.conversationId, 'conv_nope'), { nil: undefined }),
        issuedAt: fc.integer({ min: Date.now() - 90_000_000, max: Date.now() + 120_000 }),
      },
      { requiredKeys: ['sessionId', 'generation', 'visitorId', 'verified', 'issuedAt'] },
    );
    const token = fc.oneof(
      anyText,
      fc.constantFrom(...victim.spent),
      signedClaims.map((c) => signSessionToken(c as SessionClaims, SESSION_SECRET)),
      signedClaims.map((c) => signSessionToken(c as SessionClaims, 'some-other-secret-some-other-secret!')),
    );
    const hello = fc.record(
      { type: fc.constant('hello'), token, lastSeenId: fc.option(anyText, { nil: undefined }), userId: fc.option(fc.constantFrom('user-1', 'user-2'), { nil: undefined }), userHash: fc.option(fc.constantFrom(userHash, 'ab'.repeat(32)), { nil: undefined }) },
      { requiredKeys: ['type', 'token'] },
    );
    /** One socket's opening: a hello (usually) or junk, up to three frames. */
    const opening = fc.array(fc.oneof({ arbitrary: hello.map((h) => JSON.stringify(h)), weight: 4 }, { arbitrary: rawFrame, weight: 1 }), { minLength: 1, maxLength: 3 });
    const outcomes = new Map<string, number>();
    const play = async (frames: string[]): Promise<void> => {
      const socket = await VisitorSocket.open(rig.wsUrl);
      try {
        for (const raw of frames) {
          const from = socket.frames.length;
          socket.send(raw);
          await socket.until((f) => f.type === 'error' || f.type === 'ready', from);
          // A session that got in (pending, storing nothing) stops here: its first message would be a legitimate write.
          if (socket.closed || socket.frames.some((f) => f.type === 'ready')) break;
        }
        // Nothing of the victim's conversation is ever shown.
        expect(socket.frames.some((f) => f.type === 'message' && victim.texts.has(f.text))).toBe(false);
        expect(socket.frames.some((f) => f.type === 'ready' && f.conversationId !== undefined)).toBe(false);
        const last = socket.frames.at(-1);
        const outcome = last?.type === 'error' ? last.code : (last?.type ?? 'none');
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      } finally {
        socket.close();
      }
    };
    await rig.bridge.idle();
    const before = await view.dump();
    const version = await view.version();
    // Sockets are independent: a batch of them at a time, RUNS openings in all.
    const BATCH = 8;
    await fc.assert(
      fc.asyncProperty(fc.array(opening, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        await Promise.all(batch.map(play));
        expect(await view.version()).toBe(version);
      }),
      { ...options, numRuns: Math.ceil(RUNS / BATCH) },
    );
    expect(await view.dump()).toBe(before);
    // Both kinds happened: refusals, and fresh sessions let in without a conversation (storing nothing).
    if (RUNS >= 1000) expect([outcomes.get('invalid_token'), outcomes.get('ready')]).toEqual([expect.any(Number), expect.any(Number)]);
    // The web chat still serves a real visitor afterwards.
    await rig.started('after the storm');
  });
});
