import { describe, expect, it } from 'vitest';
import { dmarcVerdict, parseAuthResults } from '../../adapters/email/auth-results.ts';
import { headerMap } from '../../adapters/email/autoreply.ts';
import { htmlToPlainText } from '../../adapters/email/html-text.ts';
import { readInbound, transcriptText, type InboundPolicy } from '../../adapters/email/inbound.ts';
import { parseMail } from '../../adapters/email/parse.ts';
import { inMemoryMessage } from '../../adapters/email/spool.ts';

const OWN = 'support@acme.test';

async function read(headers: string, body = 'Hello', envelope = { mailFrom: 'maria@example.net', rcptTo: [OWN] }, policy: Partial<InboundPolicy> = {}) {
  const raw = `${headers.trim().replace(/\n/g, '\r\n')}\r\n\r\n${body}\r\n`;
  const message = inMemoryMessage(raw);
  return readInbound(await parseMail(message.open()), envelope, { digest: message.digest }, { ownAddress: OWN, ...policy });
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

  it('the customer is the From address; replies go to a Reply-To only in the same domain', async () => {
    const sameDomain = await read(`
From: Maria <maria@example.net>
Reply-To: orders@example.net
To: support@acme.test
Subject: x`);
    expect(sameDomain.customer).toEqual({ address: 'maria@example.net', name: 'Maria' });
    expect(sameDomain.replyAddress).toEqual({ address: 'orders@example.net', name: 'Maria' });
    expect(sameDomain.ignoredReplyTo).toBeUndefined();

    // Reply-To in another domain would let anyone aim our replies at anyone: kept for operators, never mailed.
    const elsewhere = await read(`
From: Maria <maria@example.net>
Reply-To: victim@elsewhere.test
To: support@acme.test
Subject: x`);
    expect(elsewhere.customer).toEqual({ address: 'maria@example.net', name: 'Maria' });
    expect(elsewhere.replyAddress).toEqual({ address: 'maria@example.net', name: 'Maria' });
    expect(elsewhere.ignoredReplyTo).toBe('victim@elsewhere.test');

    const odd = await read(`
From: Maria <Maria@Example.net>
Reply-To: support@acme.test
To: support@acme.test
Subject: x`);
    expect(odd.customer).toEqual({ address: 'maria@example.net', name: 'Maria' });
    expect(odd.ignoredReplyTo).toBeUndefined();
  });

  it('a contact form listed in EMAIL_TRUST_REPLY_TO names the customer in its Reply-To', async () => {
    const headers = `
From: no-reply@forms.example
Reply-To: Lee <lee@example.org>
To: support@acme.test
Subject: x`;
    const trusted = await read(headers, 'Hello', undefined, { replyToTrusted: ['@forms.example'] });
    expect(trusted).toMatchObject({ customer: { address: 'lee@example.org', name: 'Lee' }, replyAddress: { address: 'lee@example.org' }, identity: 'reply-to' });
    const byAddress = await read(headers, 'Hello', undefined, { replyToTrusted: ['no-reply@forms.example'] });
    expect(byAddress.customer?.address).toBe('lee@example.org');
    const untrusted = await read(headers);
    expect(untrusted).toMatchObject({ customer: { address: 'no-reply@forms.example' }, identity: 'from', ignoredReplyTo: 'lee@example.org' });
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
    expect(transcriptText(mail)).toBe('See the photo\n\n[Attachments received by email, not shown here: crack.jpg]');
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

  it('reads only the start of a huge body', async () => {
    const mail = await read(`
From: maria@example.net
To: support@acme.test
Subject: x`, 'Start of it.\r\n' + 'more words here\r\n'.repeat(200_000));
    expect(mail.text.startsWith('Start of it.')).toBe(true);
    expect(mail.text.length).toBeLessThanOrEqual(64_000);
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

describe('the relay\'s Authentication-Results', () => {
  const trust = { authservIds: ['mx.acme.test'], relayTrusted: true };
  const headers = (...values: string[]) => headerMap(values.map((v) => ({ key: 'authentication-results', line: `Authentication-Results: ${v}` })));

  it('parses the header as Gmail, Postfix/OpenDMARC and Fastmail write it', () => {
    expect(
      parseAuthResults(
        'mx.google.com;\r\n       dkim=pass header.i=@example.net header.s=s1 header.b=AbC;\r\n       spf=pass (google.com: domain of maria@example.net designates 192.0.2.1 as permitted sender) smtp.mailfrom=maria@example.net;\r\n       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.net',
      ),
    ).toEqual({
      authservId: 'mx.google.com',
      results: [
        { method: 'dkim', result: 'pass', props: { 'header.i': '@example.net', 'header.s': 's1', 'header.b': 'AbC' } },
        { method: 'spf', result: 'pass', props: { 'smtp.mailfrom': 'maria@example.net' } },
        { method: 'dmarc', result: 'pass', props: { 'header.from': 'example.net' } },
      ],
    });
    expect(parseAuthResults('mail.acme.test 1; dmarc=fail (p=reject dis=none; it says "; x") header.from=example.net')?.results).toEqual([
      { method: 'dmarc', result: 'fail', props: { 'header.from': 'example.net' } },
    ]);
    expect(parseAuthResults('mx.acme.test; none')).toEqual({ authservId: 'mx.acme.test', results: [] });
    // Exchange Online writes no authserv-id: nothing to trust it by.
    expect(parseAuthResults('spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=example.net; dmarc=pass action=none header.from=example.net')).toBeUndefined();
  });

  it('believes only the trusted authserv-id, topmost first, and only for the From domain', () => {
    expect(dmarcVerdict(headers('mx.acme.test; dmarc=pass header.from=example.net'), 'example.net', trust).dmarc).toBe('pass');
    expect(dmarcVerdict(headers('mx.acme.test; dmarc=fail header.from=example.net'), 'example.net', trust).dmarc).toBe('fail');
    // Written by the sender under another name: ignored.
    expect(dmarcVerdict(headers('mx.google.com; dmarc=pass header.from=example.net'), 'example.net', trust).dmarc).toBe('none');
    // The relay's own header is on top; a forged one below it does not count.
    expect(dmarcVerdict(headers('mx.acme.test; dmarc=fail header.from=example.net', 'mx.acme.test; dmarc=pass header.from=example.net'), 'example.net', trust).dmarc).toBe('fail');
    // A pass for another domain is no pass for this From.
    expect(dmarcVerdict(headers('mx.acme.test; dmarc=pass header.from=attacker.test'), 'example.net', trust).dmarc).toBe('none');
    expect(dmarcVerdict(headers('mx.acme.test; dmarc=temperror header.from=example.net'), 'example.net', trust).dmarc).toBe('none');
    expect(dmarcVerdict(headers('mx.acme.test; dmarc=pass header.from=example.net'), 'example.net', { authservIds: [], relayTrusted: true }).dmarc).toBe('none');
    expect(dmarcVerdict(headers('mx.acme.test; dmarc=pass header.from=example.net'), 'example.net', { ...trust, relayTrusted: false }).dmarc).toBe('none');
  });
});
