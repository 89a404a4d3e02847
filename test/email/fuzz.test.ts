/**
 * Property-based fuzzing of inbound MIME email with fast-check, through the email channel's own
 * inbound handler (the one the SMTP server calls, with the real streaming parser, routing, limits
 * and bridge behind it): structured messages whose headers and parts are aimed at the bridge's
 * real conversations (their Message-IDs, reply addresses, tickets), with forged authentication
 * results, encoded words, broken MIME, nested multiparts and odd attachments; arbitrary bytes; and
 * real replies with bytes flipped or cut. Whatever arrives: no crash, no error other than an SMTP
 * refusal, no unhandled rejection, and a refused or dropped (robot) mail writes nothing. Inputs
 * come 8 at a time, handled concurrently as by parallel SMTP sessions.
 *
 * FUZZ_RUNS sets the number of inputs (default 10,000); FUZZ_SEED replays a run.
 */
import { countingStore } from '../support/counting-store.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmailChannel, type EmailChannel } from '../../adapters/email/index.ts';
import { SmtpReplyError } from '../../adapters/email/smtp-inbound.ts';
import type { SmtpEnvelope } from '../../adapters/email/inbound.ts';
import { silentLogger } from '../../src/log.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import { createTestBridge, type TestBridge } from '../support/harness.ts';
import { RELAY_ID, SUPPORT, authResults, fixture } from './support.ts';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const RUNS = Math.max(1, Number(process.env.FUZZ_RUNS) || 10_000);
/** Inputs handled at once (as an SMTP server handles several sessions): races on one conversation included. */
const AT_ONCE = 8;


interface Target {
  /** Message-IDs of the seeded conversations (the customer's and ours). */
  messageIds: string[];
  /** Their reply addresses (support+token@). */
  replyAddresses: string[];
  tickets: string[];
}

const CRLF = '\r\n';

/** One of the current targets (read when the value is generated: the targets are replaced as the run goes on). */
const pick = (list: () => string[]): fc.Arbitrary<string> => fc.nat().map((i) => list()[i % list().length]!);

function mime(target: Target) {
  const addresses = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom('alice@alice.example', 'Alice <alice@alice.example>', 'bob@bob.example', 'victim@victim.example', 'no-reply@forms.example', 'MAILER-DAEMON@mx.example', SUPPORT) },
    { weight: 1, arbitrary: pick(() => target.replyAddresses) },
    { weight: 2, arbitrary: fc.emailAddress() },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '',
        '<>',
        'not an address',
        '"Quoted, Name" <quoted@example.net>',
        '=?utf-8?B?w4TDpMO2?= <umlaut@example.net>',
        '=?iso-8859-1?Q?Jos=E9?= <jose@example.net>',
        'a@b.example, c@d.example',
        'undisclosed-recipients:;',
        'group: one@x.example, two@y.example;',
        '<<<>>>@@@',
        'x@[127.0.0.1]',
        '"\\"\\\\"@example.net',
      ),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
  );
  const messageIds = fc.oneof(
    { weight: 3, arbitrary: pick(() => target.messageIds) },
    { weight: 2, arbitrary: fc.tuple(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 20 }), fc.domain()).map(([l, d]) => `<${l}@${d}>`) },
    { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
  );
  const text = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'grapheme', maxLength: 200 }),
    fc.constantFrom('Where is my order?', 'I want to talk to a human', 'On Tue, Mar 5 Alice wrote:\n> quoted', '-- \nsig', 'Sent from my iPhone', '.\r\n.', '\u0000\u0007\u001b[31m', 'x'.repeat(9000)),
  );
  const subject = fc.oneof(
    text,
    pick(() => target.tickets).map((t) => `Re: [${t}]`),
    fc.constantFrom('Automatic reply: away', '=?utf-8?Q?=E2=9C=93_done?=', '=?bogus?X?abc?=', '=?utf-8?B?!!!!?='),
  );
  const authResult = fc.oneof(
    fc.tuple(fc.constantFrom<'pass' | 'fail' | 'none'>('pass', 'fail', 'none'), fc.constantFrom('alice.example', 'bob.example', 'victim.example'), fc.constantFrom(RELAY_ID, 'mx.google.com', 'MX.ACME.TEST')).map(([r, d, id]) =>
      authResults(r, d, id).slice('Authentication-Results: '.length),
    ),
    fc.string({ maxLength: 120 }),
    fc.constantFrom('mx.acme.test; dmarc=pass (((unclosed', 'mx.acme.test; dmarc="pass"; dmarc=fail', ';;;=;=', 'spf=pass; dmarc=pass header.from=alice.example'),
  );
  const extraHeader = fc.oneof(
    fc.tuple(fc.constantFrom('Auto-Submitted', 'Precedence', 'List-Id', 'X-Autoreply', 'Return-Path', 'X-Loop', 'Delivered-To', 'X-Original-To', 'Received', 'Date', 'X-Spam'), fc.string({ maxLength: 60 })),
    fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/), fc.string({ maxLength: 60 })),
  );

  const leaf = fc.oneof(
    text.map((t) => ({ head: 'Content-Type: text/plain; charset=utf-8', body: t })),
    text.map((t) => ({ head: 'Content-Type: text/html; charset=utf-8', body: `<div>${t}</div><blockquote>${t}</blockquote><img src="cid:x"><script>alert(1)</script>` })),
    fc.uint8Array({ maxLength: 300 }).map((b) => ({ head: 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64', body: Buffer.from(b).toString('base64').replace(/.{76}/g, '$&\r\n') })),
    fc.string({ maxLength: 120 }).map((b) => ({ head: 'Content-Type: text/plain\r\nContent-Transfer-Encoding: base64', body: b })),
    fc.string({ maxLength: 120 }).map((b) => ({ head: 'Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable', body: b.replace(/x/g, '=') + '=\r\n=ZZ=E9' })),
    fc.tuple(fc.constantFrom('crack.jpg', '../../etc/passwd', '', 'a'.repeat(300), '=?utf-8?B?w6Q=?=.pdf', 'file"; name=evil'), fc.uint8Array({ maxLength: 200 })).map(([name, b]) => ({
      head: `Content-Type: application/octet-stream; name="${name}"\r\nContent-Disposition: attachment; filename*=utf-8''${encodeURIComponent(name)}\r\nContent-Transfer-Encoding: base64`,
      body: Buffer.from(b).toString('base64'),
    })),
    fc.constantFrom(
      { head: 'Content-Type: image/png\r\nContent-ID: <x>\r\nContent-Disposition: inline', body: 'iVBORw0KGgo=' },
      { head: 'Content-Type: message/delivery-status', body: 'Reporting-MTA: dns; mx.example\r\n\r\nAction: failed' },
      { head: 'Content-Type: message/rfc822', body: 'From: inner@x.example\r\nSubject: inner\r\n\r\ninner body' },
      { head: 'Content-Type: text/calendar; method=REQUEST', body: 'BEGIN:VCALENDAR\r\nEND:VCALENDAR' },
      { head: 'Content-Type: text/plain; charset=unknown-8bit', body: '\u00ff\u00fe\u0000' },
    ),
  );
  const { part } = fc.letrec((tie) => ({
    part: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('multipart')),
    multipart: fc
      .tuple(
        fc.constantFrom('mixed', 'alternative', 'related', 'report', 'signed'),
        fc.oneof(fc.constant('b0'), fc.stringMatching(/^[A-Za-z0-9'()+_,./:=? -]{0,70}$/)),
        fc.array(tie('part') as fc.Arbitrary<{ head: string; body: string }>, { maxLength: 4 }),
        fc.boolean(),
      )
      .map(([kind, boundary, parts, closed]) => ({
        head: `Content-Type: multipart/${kind}; boundary="${boundary}"`,
        body: parts.map((p) => `--${boundary}${CRLF}${p.head}${CRLF}${CRLF}${p.body}${CRLF}`).join('') + (closed ? `--${boundary}--${CRLF}` : ''),
      })),
  }));

  const structured = fc
    .record(
      {
        from: addresses,
        to: fc.oneof(fc.constant(SUPPORT), addresses),
        cc: addresses,
        replyTo: addresses,
        subject,
        messageId: messageIds,
        inReplyTo: messageIds,
        references: fc.array(messageIds, { maxLength: 6 }).map((ids) => ids.join(' ')),
        auth: fc.array(authResult, { maxLength: 3 }),
        extra: fc.array(extraHeader, { maxLength: 4 }),
        body: part as fc.Arbitrary<{ head: string; body: string }>,
        fold: fc.boolean(),
        bareLf: fc.boolean(),
      },
      { requiredKeys: ['body', 'fold', 'bareLf'] },
    )
    .map((m) => {
      const lines: string[] = [];
      for (const value of m.auth ?? []) lines.push(`Authentication-Results: ${value}`);
      if (m.from !== undefined) lines.push(`From: ${m.from}`);
      if (m.to !== undefined) lines.push(`To: ${m.to}`);
      if (m.cc !== undefined) lines.push(`Cc: ${m.cc}`);
      if (m.replyTo !== undefined) lines.push(`Reply-To: ${m.replyTo}`);
      if (m.subject !== undefined) lines.push(`Subject: ${m.subject}`);
      if (m.messageId !== undefined) lines.push(`Message-ID: ${m.messageId}`);
      if (m.inReplyTo !== undefined) lines.push(`In-Reply-To: ${m.inReplyTo}`);
      if (m.references !== undefined) lines.push(`References: ${m.references}`);
      for (const [name, value] of m.extra ?? []) lines.push(`${name}: ${value}`);
      lines.push('MIME-Version: 1.0', m.body.head);
      let head = lines.join(CRLF);
      if (m.fold) head = head.replace(/, /g, `,${CRLF}\t`);
      const raw = `${head}${CRLF}${CRLF}${m.body.body}${CRLF}`;
      return m.bareLf ? raw.replace(/\r\n/g, '\n') : raw;
    });

  const realReply = fc.constantFrom('gmail-reply.eml', 'outlook-reply.eml', 'apple-mail-reply.eml', 'iphone-reply.eml', 'bounce.eml', 'newsletter.eml').map((name) =>
    fixture(name, { FROM: 'alice@alice.example', TO: target.replyAddresses[0]!, SUBJECT: `Order [${target.tickets[0]}]`, IN_REPLY_TO: target.messageIds[0]!, REFERENCES: target.messageIds.join(' ') }),
  );
  const mutated = fc.tuple(realReply, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 20 }), fc.option(fc.nat())).map(([raw, flips, cut]) => {
    const bytes = Buffer.from(raw, 'utf8');
    for (const [at, value] of flips) bytes[at % bytes.length] = value;
    return cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
  });

  const envelope: fc.Arbitrary<SmtpEnvelope> = fc.record({
    mailFrom: fc.oneof(fc.constantFrom('', 'alice@alice.example', 'bounce@forger.example'), fc.emailAddress()),
    rcptTo: fc.array(fc.oneof(fc.constantFrom(SUPPORT, 'SUPPORT+ZZZ@ACME.TEST'), pick(() => target.replyAddresses)), { minLength: 1, maxLength: 3 }),
    remoteAddress: fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant('::ffff:192.0.2.25')),
  });

  return fc.tuple(
    fc.oneof(
      { weight: 8, arbitrary: structured.map((s) => Buffer.from(s, 'utf8')) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)) },
      { weight: 2, arbitrary: mutated },
    ),
    envelope,
  );
}

describe('fuzzing inbound MIME email', () => {
  let test: TestBridge;
  let email: EmailChannel;
  let writes: (input: number) => number;
  const context = new AsyncLocalStorage<number>();
  let dir: string;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown): void => void rejections.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    // On tmpfs when there is one: the store's fsyncs would otherwise take most of the time.
    dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'email-fuzz-'));
    // Each input runs in its own async context, so writes are counted per input even when handled at once.
    const counts = new Map<number, number>();
    const shared = countingStore(await openSqliteStore(join(dir, 'bridge.sqlite')), () => {
      const input = context.getStore() ?? -1;
      counts.set(input, (counts.get(input) ?? 0) + 1);
    });
    const counting = { store: shared.store, writes: (input: number) => counts.get(input) ?? 0 };
    writes = counting.writes;
    // No workers: only the inbound path writes, so every write is the input's.
    test = await createTestBridge({ store: counting.store, startWorkers: false });
    email = createEmailChannel({
      bridge: test.bridge,
      logger: silentLogger(),
      config: { inboundPort: 0, address: SUPPORT, smtpUrl: 'smtp://127.0.0.1:9', authservIds: [RELAY_ID], trustedRelays: ['192.0.2.25'], replyToTrusted: ['no-reply@forms.example'] },
    });
  });

  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    await test?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${RUNS} inputs: no crash, only SMTP refusals, and nothing written for a refused or dropped mail`, { timeout: Math.max(60_000, RUNS * 20) }, async () => {
    // Conversations to aim at: their Message-IDs, reply addresses and tickets. Fresh ones every
    // 500 inputs, as a real bridge has many conversations rather than two of thousands of messages.
    const target: Target = { messageIds: [], replyAddresses: [], tickets: [] };
    let seeds = 0;
    const seed = async (): Promise<void> => {
      const next: Target = { messageIds: [], replyAddresses: [], tickets: [] };
      for (const who of ['alice@alice.example', 'bob@bob.example']) {
        const id = `<seed.${++seeds}.${who}>`;
        const reply = await email.receive(`From: ${who}\r\nTo: ${SUPPORT}\r\nSubject: seed\r\nMessage-ID: ${id}\r\n\r\nHello\r\n`, { mailFrom: who, rcptTo: [SUPPORT] });
        const conversation = (await test.bridge.findByTicket(reply.replace(/^OK: opened /, '')))!;
        const thread = (await email.thread(conversation.id))!;
        next.messageIds.push(id);
        next.replyAddresses.push(`support+${thread.token}@acme.test`);
        next.tickets.push(conversation.ticket);
      }
      Object.assign(target, next);
    };
    await seed();
    const first = { ...target };

    const outcomes = new Map<string, number>();
    let inputs = 0;
    /** One input: what the SMTP server would answer, and that a refusal or a drop wrote nothing. */
    const handle = async ([raw, envelope]: [Buffer, SmtpEnvelope]): Promise<void> => {
      const input = ++inputs;
      let reply: string;
      try {
        reply = await context.run(input, () => email.receive(raw, envelope));
      } catch (err) {
        if (!(err instanceof SmtpReplyError)) throw err;
        // 451 only for the same mail arriving twice at once (one of a batch's duplicates).
        if (err.responseCode < 500) expect(err.message).toContain('already being received');
        expect(writes(input), 'a refused mail wrote to the store').toBe(0);
        outcomes.set(String(err.responseCode), (outcomes.get(String(err.responseCode)) ?? 0) + 1);
        return;
      }
      const kind = /^OK: (automated|opened|added to|already received)/.exec(reply)?.[1];
      expect(kind, reply).toBeDefined();
      if (kind === 'automated') expect(writes(input), 'a dropped robot mail wrote to the store').toBe(0);
      outcomes.set(kind!, (outcomes.get(kind!) ?? 0) + 1);
    };
    let batches = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mime(target), { minLength: AT_ONCE, maxLength: AT_ONCE }), async (batch) => {
        if (++batches % Math.ceil(500 / AT_ONCE) === 0) await seed();
        await Promise.all(batch.map(handle));
      }),
      { numRuns: Math.ceil(RUNS / AT_ONCE), ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}) },
    );
    expect(inputs).toBeGreaterThanOrEqual(RUNS);
    await new Promise((r) => setImmediate(r));
    expect(rejections).toEqual([]);
    // The inputs reached every outcome, and the seeded conversations are intact.
    for (const kind of ['opened', 'added to', 'automated']) expect(outcomes.get(kind) ?? 0, JSON.stringify([...outcomes])).toBeGreaterThan(RUNS / 100);
    const alice = (await test.bridge.findByTicket(first.tickets[0]!))!;
    expect(alice.customer.id).toBe('alice@alice.example');
    expect(alice.messages.filter((m) => m.author.role === 'customer').every((m) => m.author.id === 'alice@alice.example')).toBe(true);
  });
});
