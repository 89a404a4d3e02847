/**
 * The email channel end to end over real SMTP on loopback: a nodemailer client plays the
 * customer's mail server sending into our inbound port, a real smtp-server sink plays the
 * outbound provider. The bridge runs with the offline agent; operators act through the Bridge API.
 */
import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { Conversation } from '../../src/model.ts';
import { DANA, SAM, waitFor } from '../support/harness.ts';
import type { EmailCustomerMessage } from '../../adapters/email/index.ts';
import { RELAY_ID, SUPPORT, authResults, fixture, recordCustomerMessages, sendRawToInbound, sendToInbound, startEmailBridge, ticketIn, waitForMail, type EmailBridge, type ReceivedMail } from './support.ts';

const MARIA = 'maria.keller@example.net';

let env: EmailBridge;
beforeEach(async () => {
  env = await startEmailBridge();
});
afterEach(async () => {
  await env.close();
});

/** The customer writes a first email; returns the conversation it opened. */
async function customerWrites(text: string, subject = 'Damaged lamp', from = MARIA): Promise<Conversation> {
  const { response } = await sendToInbound(env.email.port, {
    from: { name: 'Maria Keller', address: from },
    to: SUPPORT,
    subject,
    text,
    messageId: `<first.${Math.random().toString(36).slice(2)}@example.net>`,
  });
  const conversation = await env.bridge.findByTicket(ticketIn(response));
  if (!conversation) throw new Error('no conversation opened');
  return conversation;
}

/** What an email of ours says, above its signature. */
function bodyOf(mail: ReceivedMail): string {
  return mail.parsed.text!.split(/\n-- \n/)[0]!.trim();
}

async function transcript(conversationId: string): Promise<Array<{ role: string; text: string }>> {
  await env.bridge.idle();
  const c = await env.bridge.getConversation(conversationId);
  return c!.messages.filter((m) => m.visibility === 'public').map((m) => ({ role: m.author.role, text: m.text }));
}

/** Escalates with the offline agent's trigger, then Dana claims it. Waits for the two notices to be mailed. */
async function escalateAndClaim(conversation: Conversation, alreadyMailed: number): Promise<void> {
  const last = env.sink.to(MARIA).at(-1)!;
  await sendToInbound(env.email.port, {
    from: MARIA,
    to: SUPPORT,
    subject: `Re: ${last.parsed.subject}`,
    text: 'I want to talk to a human',
    inReplyTo: last.parsed.messageId!,
    references: [last.parsed.messageId!],
  });
  await env.bridge.idle();
  await env.bridge.claim({ conversationId: conversation.id, operator: DANA });
  await env.bridge.idle();
  await waitForMail(env.sink, MARIA, alreadyMailed + 2);
}

describe('a conversation by email stays one thread in the customer\'s mailbox', () => {
  it('a first email opens a conversation and the agent\'s answer lands in the same thread', async () => {
    const messageId = '<CAF3first0001@mail.gmail.com>';
    const { response } = await sendToInbound(env.email.port, {
      from: { name: 'Maria Keller', address: MARIA },
      to: SUPPORT,
      subject: 'Where is my order?',
      text: 'Where is my order? It has not arrived.\n\nSent from my iPhone',
      messageId,
    });
    expect(response).toMatch(/^250 OK: opened HB-\d+/);
    const conversation = (await env.bridge.findByTicket(ticketIn(response)))!;
    expect(conversation).toMatchObject({ origin: 'email', customer: { id: MARIA, email: MARIA, name: 'Maria Keller' }, subject: 'Where is my order?' });

    const [reply] = await waitForMail(env.sink, MARIA, 1);
    expect(reply!.parsed.inReplyTo).toBe(messageId);
    expect(reply!.header('references')).toBe(messageId);
    expect(reply!.parsed.subject).toBe(`Re: Where is my order? [${conversation.ticket}]`);
    expect(reply!.parsed.from!.value[0]).toEqual({ name: 'Acme Support', address: SUPPORT });
    const replyTo = reply!.parsed.replyTo!.value[0]!.address!;
    expect(replyTo).toMatch(/^support\+[0-9a-f]{16}@acme\.test$/);
    expect(reply!.header('auto-submitted')).toBe('auto-replied');
    expect(reply!.parsed.text).toContain(`Ticket ${conversation.ticket}`);
    expect(reply!.parsed.html).toContain(`Ticket ${conversation.ticket}`);
    expect(reply!.mailFrom).toBe(SUPPORT);

    // The agent saw the words, not the sign-off.
    expect((await transcript(conversation.id))[0]).toEqual({ role: 'customer', text: 'Where is my order? It has not arrived.' });
    await env.bridge.idle();
    const stored = await env.bridge.getConversation(conversation.id);
    expect(stored!.channelData.email).toMatchObject({ customerAddress: MARIA, subject: 'Where is my order?', messageIds: [messageId, reply!.parsed.messageId] });
  });

  it('the handoff reads as one thread: notice, operator reply from "Dana via Acme Support", hand-back', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    await waitForMail(env.sink, MARIA, 1);
    await escalateAndClaim(conversation, 1);

    await env.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text: 'Sorry about that! A replacement or a refund?' });
    await env.bridge.idle();
    await env.bridge.returnToAgent({ conversationId: conversation.id, operator: DANA, note: 'Customer chose a refund' });
    await env.bridge.idle();

    const mails = env.sink.to(MARIA);
    const texts = mails.map((m) => bodyOf(m));
    expect(texts).toEqual([
      expect.any(String), // the agent's first answer
      expect.stringContaining(`ticket reference is ${conversation.ticket}`),
      'Dana from our team has joined the conversation.',
      'Sorry about that! A replacement or a refund?',
      expect.stringContaining("You're back with the assistant"),
    ]);
    expect(mails[3]!.parsed.from!.value[0]).toEqual({ name: 'Dana via Acme Support', address: SUPPORT });
    expect(mails[3]!.header('auto-submitted')).toBeUndefined();
    expect(mails[2]!.header('auto-submitted')).toBe('auto-generated');

    // Every email answers the one before it and carries the whole chain from the customer's first email.
    const subjects = new Set(mails.map((m) => m.parsed.subject));
    expect(subjects).toEqual(new Set([`Re: Damaged lamp [${conversation.ticket}]`]));
    const root = (await env.email.thread(conversation.id))!.messageIds[0]!;
    for (let i = 1; i < mails.length; i++) {
      const refs = mails[i]!.header('references')!.split(/\s+/);
      expect(refs[0]).toBe(root);
      expect(refs).toContain(mails[i - 1]!.parsed.messageId);
    }
    expect(new Set(mails.map((m) => m.parsed.messageId)).size).toBe(mails.length);
  });
});

describe('replies find their conversation', () => {
  it.each([
    ['gmail-reply.eml', 'Yes, the order number is 4417. It was supposed to arrive last Friday.\n\nThanks,\nMaria'],
    ['outlook-reply.eml', 'Hi Dana,\n\nThat works for me, please go ahead with the replacement and send it to our Leeds office.\n\nBest regards,\nJon Park'],
    ['outlook-original-message.eml', 'The refund is fine, thank you.'],
    ['apple-mail-reply.eml', 'Perfect, thank you! Please ship it to 12 Rue de Rivoli, Paris instead.\n\nChris'],
    ['iphone-reply.eml', 'One more thing: the box was also missing the power cable.'],
  ])('a %s reply joins through In-Reply-To, quotes and signature stripped before anyone sees it', async (name, expected) => {
    const conversation = await customerWrites('My lamp arrived broken.');
    await waitForMail(env.sink, MARIA, 1);
    await escalateAndClaim(conversation, 1);
    await env.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text: 'We can send a replacement today or refund the full amount. Which do you prefer?' });
    const mails = await waitForMail(env.sink, MARIA, 4);
    const ours = mails.at(-1)!;

    const raw = fixture(name, {
      FROM: MARIA,
      TO: ours.parsed.replyTo!.value[0]!.address!,
      SUBJECT: ours.parsed.subject!.replace(/^Re: /, ''),
      IN_REPLY_TO: ours.parsed.messageId!,
      REFERENCES: ours.header('references')! + ' ' + ours.parsed.messageId!,
    });
    const { response } = await sendRawToInbound(env.email.port, { from: MARIA, to: [SUPPORT] }, raw);
    expect(response).toBe(`250 OK: added to ${conversation.ticket}`);

    const said = await transcript(conversation.id);
    expect(said.at(-1)).toEqual({ role: 'customer', text: expected });
  });

  it('an HTML-only reply is read as text, with the quote stripped', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    const [ours] = await waitForMail(env.sink, MARIA, 1);
    await sendToInbound(env.email.port, {
      from: MARIA,
      to: SUPPORT,
      subject: ours!.parsed.subject!,
      inReplyTo: ours!.parsed.messageId!,
      html: '<div dir="ltr">Yes please, the <b>blue</b> one.</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, Mar 5, 2024 at 10:12 AM Acme Support &lt;<a href="mailto:support@acme.test">support@acme.test</a>&gt; wrote:<br></div><blockquote class="gmail_quote">Which colour?</blockquote></div>',
    });
    expect((await transcript(conversation.id)).filter((m) => m.role === 'customer').at(-1)).toEqual({ role: 'customer', text: 'Yes please, the blue one.' });
  });

  it('an HTML email with a photo attached and a logo embedded: the words, and a note naming the photo', async () => {
    const { response } = await sendToInbound(env.email.port, {
      from: MARIA,
      to: SUPPORT,
      subject: 'Cracked lamp',
      html: '<p>See the photo of the crack.</p><p><img src="cid:logo@contoso"></p>',
      attachments: [
        { filename: 'logo.png', content: Buffer.from('89504e470d0a1a0a', 'hex'), cid: 'logo@contoso' },
        { filename: 'crack.jpg', content: Buffer.from('ffd8ffe000104a464946', 'hex'), contentType: 'image/jpeg' },
      ],
    });
    const conversation = (await env.bridge.findByTicket(ticketIn(response)))!;
    expect((await transcript(conversation.id))[0]).toEqual({
      role: 'customer',
      text: 'See the photo of the crack.\n\n[Attachments received by email, not shown here: crack.jpg]',
    });
  });

  it('a contact form listed in EMAIL_TRUST_REPLY_TO (no-reply sender, Reply-To the customer) is answered to the customer', async () => {
    await env.close();
    env = await startEmailBridge({ config: { replyToTrusted: ['no-reply@forms.acme.test'] } });
    const { response } = await sendToInbound(env.email.port, {
      from: 'no-reply@forms.acme.test',
      replyTo: { name: 'Lee Wong', address: 'lee@example.org' },
      to: SUPPORT,
      subject: 'Contact form: where is my order?',
      text: 'Where is my order 5521?',
    });
    const conversation = (await env.bridge.findByTicket(ticketIn(response)))!;
    expect(conversation.customer).toEqual({ id: 'lee@example.org', email: 'lee@example.org', name: 'Lee Wong' });
    const [answer] = await waitForMail(env.sink, 'lee@example.org', 1);
    expect(answer!.parsed.to).toMatchObject({ value: [{ address: 'lee@example.org', name: 'Lee Wong' }] });
    expect(env.sink.to('no-reply@forms.acme.test')).toHaveLength(0);
  });

  it('a contact form not listed: the sender is the customer, nothing is mailed to the Reply-To, the thread says why', async () => {
    const calls: EmailCustomerMessage[] = [];
    await env.close();
    env = await startEmailBridge({ wrapBridge: recordCustomerMessages(calls) });
    const { response } = await sendToInbound(env.email.port, {
      from: 'no-reply@forms.acme.test',
      replyTo: { name: 'Lee Wong', address: 'lee@example.org' },
      to: SUPPORT,
      subject: 'Contact form: where is my order?',
      text: 'Where is my order 5521?',
    });
    const conversation = (await env.bridge.findByTicket(ticketIn(response)))!;
    expect(conversation.customer).toEqual({ id: 'no-reply@forms.acme.test', email: 'no-reply@forms.acme.test' });
    expect(calls.at(-1)).toMatchObject({ autoReply: false });
    await env.bridge.idle();
    const notes = (await env.bridge.getConversation(conversation.id))!.messages.filter((m) => m.visibility === 'internal').map((m) => m.text);
    expect(notes.join('\n')).toContain('lee@example.org is in another domain and is not used');
    expect(env.sink.to('lee@example.org')).toHaveLength(0);
  });

  it('a reply with no threading headers finds its conversation through the reply address token', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    const [first] = await waitForMail(env.sink, MARIA, 1);
    const replyTo = first!.parsed.replyTo!.value[0]!.address!;
    // A client that drops In-Reply-To/References and rewrites the subject.
    const { response } = await sendToInbound(env.email.port, { from: MARIA, to: replyTo, subject: 'lamp', text: 'Any news?' });
    expect(response).toBe(`250 OK: added to ${conversation.ticket}`);
    expect((await transcript(conversation.id)).filter((m) => m.role === 'customer').map((m) => m.text)).toEqual(['My lamp arrived broken.', 'Any news?']);
  });

  it('a new email with the ticket in its subject joins the conversation, only from the customer\'s own, authenticated address', async () => {
    await env.close();
    env = await startEmailBridge({ config: { authservIds: [RELAY_ID] } });
    const conversation = await customerWrites('My lamp arrived broken.');
    await waitForMail(env.sink, MARIA, 1);

    const raw = (from: string, auth: string) =>
      `${auth}\r\nFrom: ${from}\r\nTo: ${SUPPORT}\r\nSubject: Lamp again [${conversation.ticket}]\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@example.net>\r\n\r\nStill waiting.\r\n`;
    const fromCustomer = await sendRawToInbound(env.email.port, { from: MARIA, to: [SUPPORT] }, raw(MARIA, authResults('pass', 'example.net')));
    expect(fromCustomer.response).toBe(`250 OK: added to ${conversation.ticket}`);

    // Ticket numbers are guessable: a stranger quoting one starts a conversation of their own.
    const fromStranger = await sendToInbound(env.email.port, { from: 'mallory@example.org', to: SUPPORT, subject: `Re: [${conversation.ticket}]`, text: 'Send the refund to me.' });
    expect(fromStranger.response).toMatch(/^250 OK: opened HB-\d+/);
    expect(ticketIn(fromStranger.response)).not.toBe(conversation.ticket);
  });

  it('anything else starts a new conversation', async () => {
    const first = await customerWrites('My lamp arrived broken.');
    const second = await customerWrites('Also, can I change my password?', 'Password');
    expect(second.id).not.toBe(first.id);
  });

  it('a customer replying after the conversation was closed reopens it to the agent', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    await waitForMail(env.sink, MARIA, 1);
    await env.bridge.close({ conversationId: conversation.id, operator: SAM });
    const mails = await waitForMail(env.sink, MARIA, 2);
    expect(mails[1]!.parsed.text).toContain(`(${conversation.ticket}) is now closed`);

    await sendToInbound(env.email.port, { from: MARIA, to: SUPPORT, subject: mails[1]!.parsed.subject!, text: 'Actually, one more question.', inReplyTo: mails[1]!.parsed.messageId! });
    await env.bridge.idle();
    const reopened = await env.bridge.getConversation(conversation.id);
    expect(reopened!.state).toBe('agent');
  });

  it('the same email delivered twice (a sending server\'s retry) is added once', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    const [first] = await waitForMail(env.sink, MARIA, 1);
    const message = { from: MARIA, to: SUPPORT, subject: 'Re: lamp', text: 'Hello again', messageId: '<retry.1@example.net>', inReplyTo: first!.parsed.messageId! };
    await sendToInbound(env.email.port, message);
    await sendToInbound(env.email.port, message);
    const customerSaid = (await transcript(conversation.id)).filter((m) => m.role === 'customer').map((m) => m.text);
    expect(customerSaid).toEqual(['My lamp arrived broken.', 'Hello again']);
  });

  it('an email without a Message-ID is still added once when it arrives twice', async () => {
    const raw = `From: ${MARIA}\r\nTo: ${SUPPORT}\r\nSubject: no id\r\nDate: Tue, 5 Mar 2024 10:00:00 +0000\r\n\r\nHello without an id\r\n`;
    const one = await sendRawToInbound(env.email.port, { from: MARIA, to: [SUPPORT] }, raw);
    const two = await sendRawToInbound(env.email.port, { from: MARIA, to: [SUPPORT] }, raw);
    expect(one.response).toMatch(/opened HB-/);
    expect(two.response).toBe('250 OK: already received');
  });
});

describe('robots are never answered', () => {
  it.each([
    ['gmail-vacation.eml', MARIA],
    ['outlook-oof.eml', MARIA],
    ['bounce.eml', ''],
    ['newsletter.eml', 'bounces@gadgetweekly.example'],
  ])('%s is accepted and dropped: no conversation, no reply', async (name, envelopeFrom) => {
    const conversation = await customerWrites('My lamp arrived broken.');
    const [ours] = await waitForMail(env.sink, MARIA, 1);
    const before = await transcript(conversation.id);

    const raw = fixture(name, {
      FROM: MARIA,
      TO: ours!.parsed.replyTo!.value[0]!.address!,
      SUBJECT: ours!.parsed.subject!.replace(/^Re: /, ''),
      IN_REPLY_TO: ours!.parsed.messageId!,
      REFERENCES: ours!.parsed.messageId!,
    });
    const { response } = await sendRawToInbound(env.email.port, { from: envelopeFrom, to: [SUPPORT] }, raw);
    expect(response).toMatch(/^250 OK: automated message \([a-z-]+\) received, not answered$/);

    await env.bridge.idle();
    expect(await transcript(conversation.id)).toEqual(before);
    expect(env.sink.received).toHaveLength(1);
  });

  it('two robots cannot mail each other: our own mail coming back is dropped', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    const [ours] = await waitForMail(env.sink, MARIA, 1);
    // The customer's server forwards our reply straight back to us.
    const { response } = await sendRawToInbound(env.email.port, { from: SUPPORT, to: [SUPPORT] }, ours!.raw);
    expect(response).toMatch(/automated message \(loop\)/);
    await env.bridge.idle();
    expect(env.sink.received).toHaveLength(1);
    expect((await transcript(conversation.id)).filter((m) => m.role === 'customer')).toHaveLength(1);
  });
});

describe('the inbound server refuses rather than loses', () => {
  it('mail for other addresses is refused with 550', async () => {
    await expect(sendToInbound(env.email.port, { from: MARIA, to: 'sales@acme.test', subject: 'x', text: 'x' })).rejects.toMatchObject({ responseCode: 550 });
    await expect(sendToInbound(env.email.port, { from: MARIA, to: 'support@other.test', subject: 'x', text: 'x' })).rejects.toMatchObject({ responseCode: 550 });
  });

  it('mail over the size limit is refused with 552', async () => {
    await env.close();
    env = await startEmailBridge({ config: { maxMessageBytes: 4096 } });
    await expect(
      sendToInbound(env.email.port, { from: MARIA, to: SUPPORT, subject: 'big', text: 'x'.repeat(10_000) }),
    ).rejects.toMatchObject({ responseCode: 552 });
    // The server is fine afterwards.
    const { response } = await sendToInbound(env.email.port, { from: MARIA, to: SUPPORT, subject: 'small', text: 'small one' });
    expect(response).toMatch(/opened HB-/);
  });

  it('mail without a From address is refused with a reason, and the server keeps serving', async () => {
    const raw = `To: ${SUPPORT}\r\nSubject: who am I\r\n\r\nno sender\r\n`;
    await expect(sendRawToInbound(env.email.port, { from: 'x@example.net', to: [SUPPORT] }, raw)).rejects.toMatchObject({ responseCode: 550 });
    const garbage = '\u0000\u0001\u0002 not a mail at all \r\n\r\n\u00ff\u00fe';
    await expect(sendRawToInbound(env.email.port, { from: 'x@example.net', to: [SUPPORT] }, garbage)).rejects.toMatchObject({ responseCode: 550 });
    const { response } = await sendToInbound(env.email.port, { from: MARIA, to: SUPPORT, subject: 'hi', text: 'still there?' });
    expect(response).toMatch(/opened HB-/);
  });

  it('an email with only a subject is taken in by its subject', async () => {
    const { response } = await sendToInbound(env.email.port, { from: MARIA, to: SUPPORT, subject: 'Refund for order 4417 please', text: '' });
    const conversation = (await env.bridge.findByTicket(ticketIn(response)))!;
    expect((await transcript(conversation.id))[0]).toEqual({ role: 'customer', text: 'Refund for order 4417 please' });
  });
});

describe('sending: the delivery worker retries, the SMTP server decides', () => {
  it('emails waiting when the bridge restarts are sent by the next process', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    await waitForMail(env.sink, MARIA, 1);
    await escalateAndClaim(conversation, 1);
    const before = env.sink.to(MARIA).length;

    await env.sink.stop();
    await env.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text: 'Written just before the restart.' });
    await waitFor(async () => noteIn(conversation.id, 'has not gone out yet'), { what: 'the failing email noted in the thread' });

    // The process goes away (workers and channel stopped, store kept); a new one starts on the same store.
    const first = env;
    await first.bridge.stop();
    await first.email.stop();
    env = await startEmailBridge({ store: first.store, sink: first.sink });
    onTestFinished(async () => {
      await first.sink.stop();
      rmSync(first.dir, { recursive: true, force: true });
    });

    await first.sink.start();
    await waitForMail(env.sink, MARIA, before + 1);
    await env.bridge.idle();
    const after = env.sink.to(MARIA).slice(before);
    expect(after.map((m) => bodyOf(m))).toEqual(['Written just before the restart.']);
  });

  it('a temporary refusal (4xx) is retried and sent once', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    await waitForMail(env.sink, MARIA, 1);
    await escalateAndClaim(conversation, 1);
    const before = env.sink.to(MARIA).length;

    env.sink.refuseNext(451, '4.7.1 Greylisted, try again later');
    env.sink.refuseNext(452, '4.2.2 Mailbox full', 'rcpt');
    await env.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text: 'Greylisted twice.' });
    await env.bridge.idle();
    const after = env.sink.to(MARIA).slice(before);
    expect(after.map((m) => bodyOf(m))).toEqual(['Greylisted twice.']);
    expect(after[0]!.parsed.inReplyTo).toBe(env.sink.to(MARIA)[before - 1]!.parsed.messageId);
  });

  it('a permanent refusal (5xx) is noted in the thread for the operators, and later mail still goes out', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    await waitForMail(env.sink, MARIA, 1);
    await escalateAndClaim(conversation, 1);
    const before = env.sink.to(MARIA);

    env.sink.refuseNext(550, '5.1.1 mailbox unavailable', 'rcpt');
    await env.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text: 'This one is refused.' });
    await env.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text: 'This one goes through.' });
    await env.bridge.idle();

    const after = env.sink.to(MARIA).slice(before.length);
    expect(after.map((m) => bodyOf(m))).toEqual(['This one goes through.']);
    // The refused email is not part of the thread: the next one answers the last one delivered.
    expect(after[0]!.parsed.inReplyTo).toBe(before.at(-1)!.parsed.messageId);
    const note = await noteIn(conversation.id, 'was refused');
    expect(note).toMatch(new RegExp(`^The email to ${MARIA} was refused: .*550.*"This one is refused\\."$`));
    // Internal: never emailed.
    expect(env.sink.to(MARIA).some((m) => m.parsed.text!.includes('was refused'))).toBe(false);
  });

  it('a conversation without an email address is noted in the thread, not silently skipped', async () => {
    const { conversation } = await env.bridge.customerMessage({ origin: 'email', customer: { id: 'anonymous' }, text: 'Where is my order?' });
    await env.bridge.idle();
    const agentReplies = (await env.bridge.getConversation(conversation.id))!.messages.filter((m) => m.author.role === 'agent');
    expect(agentReplies.length).toBeGreaterThan(0);
    expect(await noteIn(conversation.id, 'no email address')).toContain('was not emailed to the customer');
    expect(env.sink.received).toHaveLength(0);
  });

  it('a resend after an unknown outcome is the same email: same Message-ID, same place in the thread', async () => {
    const conversation = await customerWrites('My lamp arrived broken.');
    await waitForMail(env.sink, MARIA, 1);
    await env.bridge.idle();
    const c = (await env.bridge.getConversation(conversation.id))!;
    const agentReply = c.messages.find((m) => m.author.role === 'agent')!;
    // The worker's second attempt at an item whose first attempt may have gone out.
    await env.email.deliver(c, agentReply, { key: `${c.id}:x`, count: 2, since: Date.now() });
    const [first, again] = env.sink.to(MARIA);
    expect(again!.parsed.messageId).toBe(first!.parsed.messageId);
    expect(again!.parsed.inReplyTo).toBe(first!.parsed.inReplyTo);
    expect(again!.header('references')).toBe(first!.header('references'));
    expect(bodyOf(again!)).toBe(bodyOf(first!));
    expect((await env.email.thread(conversation.id))!.messageIds).toEqual([expect.any(String), first!.parsed.messageId]);
  });
});

/** The text of the conversation's latest internal system note containing `words`, if any. */
async function noteIn(conversationId: string, words: string): Promise<string | undefined> {
  const c = await env.bridge.getConversation(conversationId);
  return c?.messages.filter((m) => m.author.role === 'system' && m.visibility === 'internal' && m.text.includes(words)).at(-1)?.text;
}
