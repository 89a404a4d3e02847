/**
 * The email attacks of issue 9 ("Nobody speaks as someone else"), each against a running bridge
 * over real SMTP on loopback: joining someone else's conversation (In-Reply-To, References, the
 * reply address, a guessed ticket with a forged From), forged authentication results, DMARC
 * failures, Reply-To redirection, a flood "from" one victim or one domain, and idle connections
 * starving the server.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EmailChannelConfig, EmailCustomerMessage } from '../../adapters/email/index.ts';
import type { Conversation } from '../../src/model.ts';
import {
  RELAY_ID,
  SUPPORT,
  authResults,
  recordCustomerMessages,
  sendManyToInbound,
  sendRawToInbound,
  sendToInbound,
  startEmailBridge,
  ticketIn,
  waitForMail,
  type EmailBridge,
  type ReceivedMail,
} from './support.ts';

const ALICE = 'alice@alice.example';
const BOB = 'bob@bob.example';
const VICTIM = 'victim@victim.example';

let env: EmailBridge | undefined;
let calls: EmailCustomerMessage[] = [];
afterEach(async () => {
  await env?.close();
  env = undefined;
});

async function start(config: Partial<EmailChannelConfig> = {}): Promise<EmailBridge> {
  calls = [];
  env = await startEmailBridge({ config: { authservIds: [RELAY_ID], ...config }, wrapBridge: recordCustomerMessages(calls) });
  return env;
}

/** Alice opens a conversation and gets the agent's answer. */
async function aliceWrites(e: EmailBridge): Promise<{ conversation: Conversation; aliceMessageId: string; answer: ReceivedMail }> {
  const aliceMessageId = '<alice.first.1@alice.example>';
  const { response } = await sendToInbound(e.email.port, { from: { name: 'Alice', address: ALICE }, to: SUPPORT, subject: 'My order 7731', text: 'Where is my order 7731?', messageId: aliceMessageId });
  const conversation = (await e.bridge.findByTicket(ticketIn(response)))!;
  const [answer] = await waitForMail(e.sink, ALICE, 1);
  return { conversation, aliceMessageId, answer: answer! };
}

async function customerTexts(e: EmailBridge, conversationId: string): Promise<string[]> {
  await e.bridge.idle();
  return (await e.bridge.getConversation(conversationId))!.messages.filter((m) => m.author.role === 'customer').map((m) => m.text);
}

async function notes(e: EmailBridge, conversationId: string): Promise<string> {
  await e.bridge.idle();
  return (await e.bridge.getConversation(conversationId))!.messages.filter((m) => m.visibility === 'internal').map((m) => m.text).join('\n');
}

/** What every "someone else's conversation" attack must end with. */
async function expectKeptOut(e: EmailBridge, alice: Conversation, response: string, attacker: string): Promise<Conversation> {
  expect(response).toMatch(/^250 OK: opened HB-\d+$/);
  expect(ticketIn(response)).not.toBe(alice.ticket);
  expect(await customerTexts(e, alice.id)).toEqual(['Where is my order 7731?']);
  const opened = (await e.bridge.findByTicket(ticketIn(response)))!;
  expect(opened.customer.id).toBe(attacker);
  expect(await notes(e, alice.id)).toContain(`It opened ${opened.ticket} instead.`);
  // Nothing more went out in Alice's conversation. (A forged From: alice opens a conversation
  // for that address, whose answer goes to it: without authentication nobody can tell it from her.)
  expect(e.sink.to(ALICE).filter((m) => m.parsed.subject?.includes(`[${alice.ticket}]`))).toHaveLength(1);
  return opened;
}

describe('a mail joins a conversation only when its sender is that conversation\'s customer', () => {
  it('Bob answering Alice\'s Message-ID (In-Reply-To) opens his own conversation; Alice\'s thread is told', async () => {
    const e = await start();
    const { conversation: alice, aliceMessageId } = await aliceWrites(e);
    const { response } = await sendToInbound(e.email.port, { from: BOB, to: SUPPORT, subject: 'Re: My order 7731', text: 'Please send it to 1 Evil Street instead.', inReplyTo: aliceMessageId });
    const bobs = await expectKeptOut(e, alice, response, BOB);
    expect(await notes(e, alice.id)).toContain(`An email from ${BOB} answers an email of this conversation, but was not added here: ${BOB} is not this conversation's customer.`);
    expect(await customerTexts(e, bobs.id)).toEqual(['Please send it to 1 Evil Street instead.']);
    // Bob is answered as himself, in his own thread.
    await waitForMail(e.sink, BOB, 1);
  });

  it('strangers pointing at Alice\'s conversation are noted there at most 5 times an hour, once per sender', async () => {
    const e = await start();
    const { conversation: alice, aliceMessageId } = await aliceWrites(e);
    const mail = (i: number) => ({ from: `stranger${i % 8}@bob.example`, to: SUPPORT, subject: 'Re: My order 7731', text: `Hello ${i}`, inReplyTo: aliceMessageId, messageId: `<s.${i}@bob.example>` });
    const results = await sendManyToInbound(e.email.port, Array.from({ length: 12 }, (_, i) => mail(i)));
    expect(results.every((r) => r.response?.startsWith('250 OK: opened '))).toBe(true);
    const pointed = (await notes(e, alice.id)).split('\n').filter((n) => n.startsWith('An email from'));
    expect(pointed).toHaveLength(5);
    expect(pointed.map((n) => n.split(' ')[3])).toEqual([0, 1, 2, 3, 4].map((i) => `stranger${i}@bob.example`));
    expect(pointed[4]).toContain('No more such emails are noted here for 60 min.');
  });

  it('Bob with Alice\'s Message-ID only in References is kept out the same way', async () => {
    const e = await start();
    const { conversation: alice, answer } = await aliceWrites(e);
    const { response } = await sendToInbound(e.email.port, { from: BOB, to: SUPPORT, subject: 'Re: My order 7731', text: 'Cancel it.', references: ['<unrelated@bob.example>', answer.parsed.messageId!] });
    await expectKeptOut(e, alice, response, BOB);
  });

  it('Bob writing to Alice\'s reply address (support+token@) is kept out the same way', async () => {
    const e = await start();
    const { conversation: alice, answer } = await aliceWrites(e);
    const token = answer.parsed.replyTo!.value[0]!.address!;
    const { response } = await sendToInbound(e.email.port, { from: BOB, to: token, subject: 'hello', text: 'Change the card on file.' });
    await expectKeptOut(e, alice, response, BOB);
    expect(await notes(e, alice.id)).toContain("was sent to this conversation's reply address");
  });

  it('a forged From: alice with her guessable ticket in the subject does not join (no authenticated sender)', async () => {
    const e = await start();
    const { conversation: alice } = await aliceWrites(e);
    const { response } = await sendToInbound(e.email.port, { from: ALICE, to: SUPPORT, subject: `Re: [${alice.ticket}]`, text: 'Please confirm my card number and CVV.' });
    await expectKeptOut(e, alice, response, ALICE);
    expect(await notes(e, alice.id)).toContain('its sender could not be verified');
  });

  it('authentication results written by the sender are not believed: another authserv-id, or not from the trusted relay', async () => {
    const e = await start({ trustedRelays: ['192.0.2.25'] });
    const { conversation: alice } = await aliceWrites(e);
    const forged = (auth: string) =>
      `${auth}\r\nFrom: ${ALICE}\r\nTo: ${SUPPORT}\r\nSubject: Re: [${alice.ticket}]\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@forger.example>\r\n\r\nRefund to IBAN XX00 1234.\r\n`;
    // Claims a pass in Google's name: not our relay.
    const other = await sendRawToInbound(e.email.port, { from: ALICE, to: [SUPPORT] }, forged(authResults('pass', 'alice.example', 'mx.google.com')));
    expect(other.response).toMatch(/^250 OK: opened /);
    // Claims a pass in our relay's name, but the connection does not come from the relay.
    const direct = await sendRawToInbound(e.email.port, { from: ALICE, to: [SUPPORT] }, forged(authResults('pass', 'alice.example')));
    expect(direct.response).toMatch(/^250 OK: opened /);
    expect(await customerTexts(e, alice.id)).toEqual(['Where is my order 7731?']);
  });

  it('the real Alice, authenticated by the relay, still joins by ticket; by Message-ID she joins without it', async () => {
    const e = await start({ trustedRelays: ['127.0.0.0/8'] });
    const { conversation: alice, answer } = await aliceWrites(e);
    const raw = `${authResults('pass', 'alice.example')}\r\nFrom: ${ALICE}\r\nTo: ${SUPPORT}\r\nSubject: Order [${alice.ticket}]\r\nMessage-ID: <alice.2@alice.example>\r\n\r\nAny news?\r\n`;
    expect((await sendRawToInbound(e.email.port, { from: ALICE, to: [SUPPORT] }, raw)).response).toBe(`250 OK: added to ${alice.ticket}`);
    const reply = await sendToInbound(e.email.port, { from: ALICE, to: SUPPORT, subject: 'Re: x', text: 'Thanks!', inReplyTo: answer.parsed.messageId! });
    expect(reply.response).toBe(`250 OK: added to ${alice.ticket}`);
    expect(await customerTexts(e, alice.id)).toEqual(['Where is my order 7731?', 'Any news?', 'Thanks!']);
  });
});

describe('DMARC failures reported by the receiving relay', () => {
  async function forgedFailing(e: EmailBridge, aliceMessageId: string): Promise<string> {
    const raw = `${authResults('fail', 'alice.example')}\r\nFrom: Alice <${ALICE}>\r\nTo: ${SUPPORT}\r\nSubject: Re: My order 7731\r\nIn-Reply-To: ${aliceMessageId}\r\nMessage-ID: <forged.1@forger.example>\r\n\r\nSend the parcel to my new address.\r\n`;
    return (await sendRawToInbound(e.email.port, { from: 'bounce@forger.example', to: [SUPPORT] }, raw)).response;
  }

  it('a mail failing DMARC never joins, is flagged in its thread, and asks for no automatic reply', async () => {
    const e = await start();
    const { conversation: alice, aliceMessageId } = await aliceWrites(e);
    const response = await forgedFailing(e, aliceMessageId);
    const opened = await expectKeptOut(e, alice, response, ALICE);
    expect(await notes(e, alice.id)).toContain('it failed DMARC');
    const flagged = await notes(e, opened.id);
    expect(flagged).toContain(`This email failed DMARC (${RELAY_ID}: dmarc=fail header.from=alice.example)`);
    expect(flagged).toContain('MAIL FROM <bounce@forger.example>');
    expect(flagged).toContain('No automatic reply was sent');
    expect(calls.at(-1)).toMatchObject({ autoReply: false });
    // Alice's own mail asked for the normal answer.
    expect(calls[0]).not.toHaveProperty('autoReply');
  });

  it('nothing is mailed to the forged address', async () => {
    const e = await start();
    const { aliceMessageId } = await aliceWrites(e);
    const opened = (await e.bridge.findByTicket(ticketIn(await forgedFailing(e, aliceMessageId))))!;
    await e.bridge.idle();
    expect(e.sink.to(ALICE)).toHaveLength(1);
    expect((await e.bridge.getConversation(opened.id))!.messages.filter((m) => m.author.role === 'agent')).toEqual([]);
  });
});

describe('Reply-To cannot aim our replies at someone else', () => {
  it('a Reply-To in another domain is not mailed: the answer goes to From, and the thread names the Reply-To', async () => {
    const e = await start();
    const { response } = await sendToInbound(e.email.port, { from: BOB, replyTo: VICTIM, to: SUPPORT, subject: 'Buy cheap pills at evil.example', text: 'Hello?' });
    const conversation = (await e.bridge.findByTicket(ticketIn(response)))!;
    expect(conversation.customer.id).toBe(BOB);
    await waitForMail(e.sink, BOB, 1);
    await e.bridge.idle();
    expect(e.sink.to(VICTIM)).toEqual([]);
    expect(await notes(e, conversation.id)).toContain(`The email asks for replies to ${VICTIM}, another domain than the sender's; replies go to ${BOB}.`);
  });

  it('a Reply-To in the sender\'s own domain is used (a shared mailbox)', async () => {
    const e = await start();
    await sendToInbound(e.email.port, { from: BOB, replyTo: 'orders@bob.example', to: SUPPORT, subject: 'Order', text: 'Hello?' });
    const [answer] = await waitForMail(e.sink, 'orders@bob.example', 1);
    expect(answer!.rcptTo).toEqual(['orders@bob.example']);
    expect(e.sink.to(BOB)).toEqual([]);
  });
});

describe('automatic replies are limited per sender address and per domain', () => {
  const flood = (count: number, from: (i: number) => string) =>
    Array.from({ length: count }, (_, i) => ({ from: from(i), to: SUPPORT, subject: `Win a prize ${i} at evil.example`, text: `Spam ${i}`, messageId: `<flood.${i}@forger.example>` }));

  it('60 mails "from" one victim open 60 mirrored conversations; only the first 5 ask for an automatic reply', async () => {
    const e = await start();
    const results = await sendManyToInbound(e.email.port, flood(60, () => VICTIM));
    expect(results.map((r) => r.response?.slice(0, 15))).toEqual(Array(60).fill('250 OK: opened '));
    expect(calls).toHaveLength(60);
    expect(calls.slice(0, 5).every((c) => c.autoReply === undefined)).toBe(true);
    expect(calls.slice(5).every((c) => c.autoReply === false)).toBe(true);
    const sixth = (await e.bridge.findByTicket(ticketIn(results[5]!.response!)))!;
    expect(await notes(e, sixth.id)).toContain(`The sender ${VICTIM} is over the automatic-reply limit (5 new conversations in 60 min).`);
    // A sending server's retry of one of the first five is not counted again.
    await sendToInbound(e.email.port, flood(1, () => VICTIM)[0]!);
    expect(calls.at(-1)!.autoReply).toBeUndefined();
  });

  it('the victim gets 5 replies, not 60', async () => {
    const e = await start();
    await sendManyToInbound(e.email.port, flood(60, () => VICTIM));
    await e.bridge.idle();
    expect(e.sink.to(VICTIM)).toHaveLength(5);
  });

  it('many addresses of one domain share the domain\'s limit; mail the domain authenticated does not count against it', async () => {
    const e = await start({ autoReplyLimit: { perDomain: 3 } });
    const results = await sendManyToInbound(e.email.port, flood(5, (i) => `user${i}@victim.example`));
    expect(calls.map((c) => c.autoReply)).toEqual([undefined, undefined, undefined, false, false]);
    const fourth = (await e.bridge.findByTicket(ticketIn(results[3]!.response!)))!;
    expect(await notes(e, fourth.id)).toContain("The sender's domain victim.example is over the automatic-reply limit (3 new conversations in 60 min).");
    const raw = `${authResults('pass', 'victim.example')}\r\nFrom: real.person@victim.example\r\nTo: ${SUPPORT}\r\nSubject: Help\r\nMessage-ID: <real@victim.example>\r\n\r\nI really need help.\r\n`;
    await sendRawToInbound(e.email.port, { from: 'real.person@victim.example', to: [SUPPORT] }, raw);
    expect(calls.at(-1)!.autoReply).toBeUndefined();
  });
});

describe('connections: per IP, and a short wait for MAIL FROM', () => {
  /** Opens a raw connection from `localAddress` and resolves with the server's first reply line. */
  function openIdle(port: number, localAddress: string): Promise<{ socket: Socket; first: string; closed: Promise<string> }> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', localAddress });
      let data = '';
      let resolved = false;
      const closed = new Promise<string>((done) => socket.on('close', () => done(data)));
      socket.on('data', (chunk) => {
        data += chunk.toString();
        if (!resolved && data.includes('\r\n')) {
          resolved = true;
          resolve({ socket, first: data.split('\r\n')[0]!, closed });
        }
      });
      socket.on('error', (err) => (resolved ? undefined : reject(err)));
    });
  }

  it('100 idle connections from one address: 10 get in, the rest get 421, real mail still flows, the idle ones are closed', async () => {
    const e = await start({ preMailTimeoutMs: 1_500 });
    const idle = await Promise.all(Array.from({ length: 100 }, () => openIdle(e.email.port, '127.0.0.2')));
    try {
      const admitted = idle.filter((c) => c.first.startsWith('220'));
      expect(admitted).toHaveLength(10);
      expect(idle.filter((c) => c.first.startsWith('421'))).toHaveLength(90);

      // A real mail server elsewhere is not blocked.
      const started = Date.now();
      const { response } = await sendToInbound(e.email.port, { from: ALICE, to: SUPPORT, subject: 'hi', text: 'Hello' });
      expect(response).toMatch(/^250 OK: opened /);
      expect(Date.now() - started).toBeLessThan(1_500);

      // The ten that never said MAIL FROM are told and closed.
      const last = await Promise.all(admitted.map((c) => c.closed));
      for (const transcript of last) expect(transcript).toMatch(/421 4\.4\.2 Idle too long/);
      // Their places are free again.
      const again = await openIdle(e.email.port, '127.0.0.2');
      expect(again.first).toMatch(/^220 /);
      again.socket.destroy();
    } finally {
      for (const c of idle) c.socket.destroy();
    }
  });
  it('a trusted relay is not held to the per-address limit (it carries everyone\'s mail)', async () => {
    const e = await start({ trustedRelays: ['127.0.0.3'], maxConnectionsPerIp: 2 });
    const relay = await Promise.all(Array.from({ length: 6 }, () => openIdle(e.email.port, '127.0.0.3')));
    const other = await Promise.all(Array.from({ length: 3 }, () => openIdle(e.email.port, '127.0.0.4')));
    try {
      expect(relay.map((c) => c.first.slice(0, 3))).toEqual(Array(6).fill('220'));
      expect(other.map((c) => c.first.slice(0, 3)).sort()).toEqual(['220', '220', '421']);
    } finally {
      for (const c of [...relay, ...other]) c.socket.destroy();
    }
  });
});

describe('bounded memory: large mail is spooled to disk, and the spool is cleaned up', () => {
  it('a 3 MB mail goes through a spool file that is gone afterwards', async () => {
    const spoolDir = mkdtempSync(join(tmpdir(), 'email-spool-'));
    try {
      const e = await start({ spoolDir, spoolMemoryBytes: 64 * 1024 });
      const { response } = await sendToInbound(e.email.port, {
        from: ALICE,
        to: SUPPORT,
        subject: 'Photos',
        text: 'Here are the photos of the damage.',
        attachments: [{ filename: 'damage.jpg', content: Buffer.alloc(3 * 1024 * 1024, 7), contentType: 'image/jpeg' }],
      });
      const conversation = (await e.bridge.findByTicket(ticketIn(response)))!;
      expect(await customerTexts(e, conversation.id)).toEqual(['Here are the photos of the damage.\n\n[Attachments received by email, not shown here: damage.jpg]']);
      expect(readdirSync(spoolDir)).toEqual([]);
      // Refused over-size mail leaves nothing behind either.
      await e.close();
      env = await startEmailBridge({ config: { spoolDir, spoolMemoryBytes: 1024, maxMessageBytes: 100_000 } });
      await expect(sendToInbound(env.email.port, { from: ALICE, to: SUPPORT, subject: 'big', text: 'x'.repeat(300_000) })).rejects.toMatchObject({ responseCode: 552 });
      expect(readdirSync(spoolDir)).toEqual([]);
    } finally {
      rmSync(spoolDir, { recursive: true, force: true });
    }
  });
});
