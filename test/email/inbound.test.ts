import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { htmlToPlainText } from '../../adapters/email/html-text.ts';
import { readInbound, transcriptText } from '../../adapters/email/inbound.ts';

const OWN = 'support@acme.test';

async function read(headers: string, body = 'Hello', envelope = { mailFrom: 'maria@example.net', rcptTo: [OWN] }) {
  const raw = `${headers.trim().replace(/\n/g, '\r\n')}\r\n\r\n${body}\r\n`;
  return readInbound(await simpleParser(raw), envelope, raw, OWN);
}

describe('reading an inbound email for routing', () => {
  it('collects the Message-IDs it answers: In-Reply-To first, then References newest first', async () => {
    const mail = await read(`
From: Maria <maria@example.net>
To: support@acme.test
Subject: Re: lamp
Message-ID: <m3@example.net>
In-Reply-To: <hb.2@acme.test>
References: <m1@example.net> <hb.1@acme.test> <hb.2@acme.test>`);
    expect(mail.messageId).toBe('<m3@example.net>');
    expect(mail.key).toBe('<m3@example.net>');
    expect(mail.refersTo).toEqual(['<hb.2@acme.test>', '<hb.1@acme.test>', '<m1@example.net>']);
  });

  it('finds reply tokens on the envelope and in To/Cc, once each', async () => {
    const mail = await read(
      `
From: maria@example.net
To: Acme <support+aaa@acme.test>
Cc: support+bbb@acme.test, someone@else.test
Subject: x`,
      'Hi',
      { mailFrom: 'maria@example.net', rcptTo: ['support+AAA@acme.test'] },
    );
    expect(mail.tokens).toEqual(['aaa', 'bbb']);
  });

  it('answers go to Reply-To when given, unless it points back at us', async () => {
    const form = await read(`
From: no-reply@forms.example
Reply-To: Lee <lee@example.org>
To: support@acme.test
Subject: x`);
    expect(form.customer).toEqual({ address: 'lee@example.org', name: 'Lee' });
    const odd = await read(`
From: Maria <Maria@Example.net>
Reply-To: support@acme.test
To: support@acme.test
Subject: x`);
    expect(odd.customer).toEqual({ address: 'maria@example.net', name: 'Maria' });
  });

  it('finds the ticket in the subject and strips the quote from the text', async () => {
    const mail = await read(
      `
From: maria@example.net
To: support@acme.test
Subject: RE: lamp [HB-1042]`,
      'Fine by me.\r\n\r\n> old text',
    );
    expect(mail.ticket).toBe('HB-1042');
    expect(mail.text).toBe('Fine by me.');
    expect(mail.verdict).toEqual({ automated: false });
  });

  it('mail without a Message-ID is keyed by its bytes', async () => {
    const mail = await read(`
From: maria@example.net
To: support@acme.test
Subject: x`);
    expect(mail.messageId).toBeUndefined();
    expect(mail.key).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('names attachments it does not forward, but not images embedded in the HTML', async () => {
    const mail = await read(
      `
From: maria@example.net
To: support@acme.test
Subject: photo
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"`,
      [
        '--b1',
        'Content-Type: multipart/related; boundary="b2"',
        '',
        '--b2',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>See the photo</p><img src="cid:logo1">',
        '--b2',
        'Content-Type: image/png',
        'Content-ID: <logo1>',
        'Content-Disposition: inline; filename="logo.png"',
        'Content-Transfer-Encoding: base64',
        '',
        'iVBORw0KGgo=',
        '--b2--',
        '--b1',
        'Content-Type: image/jpeg; name="crack.jpg"',
        'Content-Disposition: attachment; filename="crack.jpg"',
        'Content-Transfer-Encoding: base64',
        '',
        '/9j/4AAQSkZJRg==',
        '--b1--',
      ].join('\r\n'),
    );
    expect(mail.attachments.map((a) => a.name)).toEqual(['crack.jpg']);
    expect(transcriptText(mail)).toBe('[Attachments received by email, not shown here: crack.jpg]');
  });

  it('an empty email falls back to its subject, then to a placeholder', () => {
    expect(transcriptText({ text: '', attachments: [] }, 'Refund please')).toBe('Refund please');
    expect(transcriptText({ text: '  ', attachments: [] })).toBe('(empty email)');
  });

  it('a message with thousands of references is looked up only so far', async () => {
    const refs = Array.from({ length: 3000 }, (_, i) => `<r${i}@x.test>`).join(' ');
    const mail = await read(`
From: maria@example.net
To: support@acme.test
Subject: x
References: ${refs}`);
    expect(mail.refersTo).toHaveLength(50);
    expect(mail.refersTo[0]).toBe('<r2999@x.test>');
  });

  it('an HTML body nested in multipart (no text part) still yields text, quotes as ">" lines, images dropped', async () => {
    const text = await htmlToPlainText(
      '<div>Yes please, the <b>blue</b> one.<img src="cid:logo1"></div><div class="gmail_quote">On Tue, Mar 5, 2024 at 10:12 AM Acme &lt;support@acme.test&gt; wrote:<blockquote>Which colour?</blockquote></div>',
    );
    expect(text).toContain('Yes please, the blue one.');
    expect(text).toContain('> Which colour?');
    expect(text).not.toContain('cid:');
  });
});
