import { describe, expect, it } from 'vitest';
import { composeReply, escapeHtml, senderName, textToHtml, type EmailThread } from '../../adapters/email/compose.ts';
import type { Message } from '../../src/model.ts';

const thread: EmailThread = {
  customerAddress: 'maria@example.net',
  customerName: 'Maria Keller',
  subject: 'Damaged lamp',
  token: '0a1b2c3d4e5f6a7b',
  messageIds: ['<c1@mail.gmail.com>', '<hb.msg_1@acme.test>'],
};

function message(fields: Partial<Message> & Pick<Message, 'author' | 'text'>): Message {
  return { id: 'msg_2', at: '2024-03-05T10:00:00.000Z', visibility: 'public', ...fields };
}

function compose(m: Message) {
  return composeReply({
    conversation: { ticket: 'HB-1042' },
    message: m,
    thread,
    messageId: '<hb.msg_2@acme.test>',
    address: 'support@acme.test',
    brandName: 'Acme Support',
  });
}

describe('who the customer sees as the sender', () => {
  it('an operator by name, "via" the brand', () => {
    expect(senderName({ author: { role: 'operator', name: 'Dana' } }, 'Acme Support')).toBe('Dana via Acme Support');
  });
  it('the agent and status notices as the brand', () => {
    expect(senderName({ author: { role: 'agent', name: 'offline' } }, 'Acme Support')).toBe('Acme Support');
    expect(senderName({ author: { role: 'system' } }, 'Acme Support')).toBe('Acme Support');
  });
  it('an operator without a name as the brand', () => {
    expect(senderName({ author: { role: 'operator', name: '  ' } }, 'Acme Support')).toBe('Acme Support');
  });
});

describe('an operator reply as an email', () => {
  const mail = compose(message({ author: { role: 'operator', id: 'slack:U1', name: 'Dana' }, text: 'We can send a replacement today.' }));

  it('threads under the latest email of the conversation, carrying the chain', () => {
    expect(mail.messageId).toBe('<hb.msg_2@acme.test>');
    expect(mail.inReplyTo).toBe('<hb.msg_1@acme.test>');
    expect(mail.references).toEqual(['<c1@mail.gmail.com>', '<hb.msg_1@acme.test>']);
  });

  it('keeps the subject with "Re:" and the ticket reference', () => {
    expect(mail.subject).toBe('Re: Damaged lamp [HB-1042]');
  });

  it('shows who speaks, goes to the customer, and routes replies through the reply token', () => {
    expect(mail.from).toEqual({ name: 'Dana via Acme Support', address: 'support@acme.test' });
    expect(mail.to).toEqual({ name: 'Maria Keller', address: 'maria@example.net' });
    expect(mail.replyTo).toBe('support+0a1b2c3d4e5f6a7b@acme.test');
  });

  it('is a person\'s mail: no Auto-Submitted, but asks other servers not to auto-reply', () => {
    expect(mail.headers['Auto-Submitted']).toBeUndefined();
    expect(mail.headers['X-Auto-Response-Suppress']).toBe('OOF, AutoReply');
    expect(mail.headers['X-Handoff-Ticket']).toBe('HB-1042');
  });

  it('has a plain-text body with a standard signature and a matching HTML body', () => {
    expect(mail.text).toBe('We can send a replacement today.\n\n-- \nDana, Acme Support\nTicket HB-1042. Reply to this email to continue the conversation.\n');
    expect(mail.html).toContain('<p style="margin:0 0 12px 0">We can send a replacement today.</p>');
    expect(mail.html).toContain('Dana, Acme Support<br>Ticket HB-1042.');
  });
});

describe('agent replies and notices', () => {
  it('an agent reply is marked auto-replied (RFC 3834), so the customer\'s own robots leave it alone', () => {
    const mail = compose(message({ author: { role: 'agent', name: 'offline' }, text: 'Your order ships tomorrow.' }));
    expect(mail.headers['Auto-Submitted']).toBe('auto-replied');
    expect(mail.from.name).toBe('Acme Support');
    expect(mail.text.endsWith('-- \nAcme Support\nTicket HB-1042. Reply to this email to continue the conversation.\n')).toBe(true);
  });

  it('a status notice is marked auto-generated', () => {
    const mail = compose(message({ author: { role: 'system' }, notice: 'escalated', text: 'A person will reply here.' }));
    expect(mail.headers['Auto-Submitted']).toBe('auto-generated');
  });

  it('a first reply in a conversation with no known Message-ID has no threading headers', () => {
    const mail = composeReply({
      conversation: { ticket: 'HB-1' },
      message: message({ author: { role: 'agent' }, text: 'Hi' }),
      thread: { customerAddress: 'a@b.test', token: 't', messageIds: [] },
      messageId: '<hb.x@acme.test>',
      address: 'support@acme.test',
      brandName: 'Acme',
    });
    expect(mail.inReplyTo).toBeUndefined();
    expect(mail.references).toEqual([]);
    expect(mail.to).toEqual({ address: 'a@b.test' });
    expect(mail.subject).toBe('Re: Your request [HB-1]');
  });

  it('attachments are sent as links in both bodies', () => {
    const mail = compose(
      message({ author: { role: 'operator', name: 'Dana' }, text: 'Label attached.', attachments: [{ name: 'label.pdf', url: 'https://files.acme.test/label.pdf' }] }),
    );
    expect(mail.text).toContain('Label attached.\n\nAttachment: label.pdf <https://files.acme.test/label.pdf>');
    expect(mail.html).toContain('<a href="https://files.acme.test/label.pdf">label.pdf</a>');
  });
});

describe('HTML body', () => {
  it('escapes everything the text contains', () => {
    expect(escapeHtml(`<script>alert("x") & 'y'</script>`)).toBe('&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;');
    expect(textToHtml('<b>bold</b>')).toBe('<p style="margin:0 0 12px 0">&lt;b&gt;bold&lt;/b&gt;</p>');
  });

  it('keeps paragraphs and line breaks', () => {
    expect(textToHtml('one\ntwo\n\nthree')).toBe('<p style="margin:0 0 12px 0">one<br>two</p>\n<p style="margin:0 0 12px 0">three</p>');
  });

  it('makes http(s) links clickable without swallowing trailing punctuation, and nothing else', () => {
    expect(textToHtml('See https://acme.test/track?id=1&x=2.')).toBe(
      '<p style="margin:0 0 12px 0">See <a href="https://acme.test/track?id=1&amp;x=2">https://acme.test/track?id=1&amp;x=2</a>.</p>',
    );
    expect(textToHtml('javascript:alert(1)')).toBe('<p style="margin:0 0 12px 0">javascript:alert(1)</p>');
  });
});
