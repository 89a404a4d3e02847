import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_REFERENCES,
  MAX_THREAD_IDS,
  appendToThread,
  baseSubject,
  matchRecipient,
  newReplyToken,
  normalizeMessageId,
  outboundMessageId,
  parseAddress,
  parseMessageIdList,
  rawMessageKey,
  replyAddress,
  replySubject,
  threadHeaders,
  ticketFromSubject,
} from '../../adapters/email/threading.ts';

describe('Message-IDs', () => {
  it('are compared in one canonical form: brackets, no whitespace, lowercase domain', () => {
    expect(normalizeMessageId(' <CAF3xk9Y@Mail.Gmail.COM> ')).toBe('<CAF3xk9Y@mail.gmail.com>');
    expect(normalizeMessageId('CAF3xk9Y@mail.gmail.com')).toBe('<CAF3xk9Y@mail.gmail.com>');
    expect(normalizeMessageId('<no-at-sign>')).toBeUndefined();
    expect(normalizeMessageId('')).toBeUndefined();
  });

  it('a References header yields every id in order, however it was folded or split', () => {
    const header = '<a@x.test>\r\n <b@x.test>\t<c@X.test> <a@x.test>';
    expect(parseMessageIdList(header)).toEqual(['<a@x.test>', '<b@x.test>', '<c@x.test>']);
    expect(parseMessageIdList(['<a@x.test>', '<b@x.test>'])).toEqual(['<a@x.test>', '<b@x.test>']);
    expect(parseMessageIdList(undefined)).toEqual([]);
    expect(parseMessageIdList('garbage without ids')).toEqual([]);
  });

  it('our outbound Message-ID is fixed by the bridge message, so a retried send carries the same one', () => {
    expect(outboundMessageId('msg_abc123', 'Acme.TEST')).toBe('<hb.msg_abc123@acme.test>');
    expect(outboundMessageId('msg_abc123', 'acme.test')).toBe(outboundMessageId('msg_abc123', 'acme.test'));
    expect(outboundMessageId('weird id/with<stuff>', 'acme.test')).toBe('<hb.weird_id_with_stuff_@acme.test>');
  });

  it('mail without a Message-ID is recognised again by a hash of its bytes', () => {
    expect(rawMessageKey('Subject: hi\r\n\r\nbody')).toBe(rawMessageKey(Buffer.from('Subject: hi\r\n\r\nbody')));
    expect(rawMessageKey('a')).not.toBe(rawMessageKey('b'));
  });
});

describe('threading our replies', () => {
  it('the first reply answers the customer\'s email', () => {
    expect(threadHeaders(['<c1@gmail.com>'])).toEqual({ inReplyTo: '<c1@gmail.com>', references: ['<c1@gmail.com>'] });
  });

  it('a later reply answers the latest email and carries the whole chain', () => {
    const thread = ['<c1@gmail.com>', '<hb.1@acme.test>', '<c2@gmail.com>'];
    expect(threadHeaders(thread)).toEqual({ inReplyTo: '<c2@gmail.com>', references: thread });
  });

  it('a long thread keeps the root and the most recent ids, so headers stay a sane size', () => {
    const thread = Array.from({ length: 50 }, (_, i) => `<m${i}@x.test>`);
    const { references, inReplyTo } = threadHeaders(thread);
    expect(references).toHaveLength(MAX_REFERENCES);
    expect(references[0]).toBe('<m0@x.test>');
    expect(references.at(-1)).toBe('<m49@x.test>');
    expect(inReplyTo).toBe('<m49@x.test>');
  });

  it('an empty thread gives no threading headers', () => {
    expect(threadHeaders([])).toEqual({ references: [] });
  });

  it('adding ids to a thread never duplicates one', () => {
    expect(appendToThread(['<a@x>'], '<b@x>', undefined, '<a@x>', '<b@x>')).toEqual(['<a@x>', '<b@x>']);
  });

  it('a flooded thread record keeps its root and the latest ids, so it stays small', () => {
    const ids = Array.from({ length: 500 }, (_, i) => `<m${i}@x>`);
    const thread = ids.reduce<string[]>((t, id) => appendToThread(t, id), []);
    expect(thread).toHaveLength(MAX_THREAD_IDS);
    expect(thread[0]).toBe('<m0@x>');
    expect(thread.at(-1)).toBe('<m499@x>');
    expect(threadHeaders(thread).inReplyTo).toBe('<m499@x>');
  });

  it('References always start at the root and end at In-Reply-To, whatever the thread length', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 1, maxLength: 80 }), (locals) => {
        const thread = locals.map((l) => `<${l}@x.test>`);
        const { inReplyTo, references } = threadHeaders(thread);
        expect(references[0]).toBe(thread[0]);
        expect(references.at(-1)).toBe(inReplyTo);
        expect(references.length).toBeLessThanOrEqual(MAX_REFERENCES);
        expect(new Set(references).size).toBe(references.length);
      }),
    );
  });
});

describe('reply addresses', () => {
  it('a reply token rides in the plus-address', () => {
    expect(replyAddress('support@acme.test', 'a1b2c3')).toBe('support+a1b2c3@acme.test');
  });

  it('tokens are fresh, address-safe and survive case folding', () => {
    const tokens = new Set(Array.from({ length: 200 }, () => newReplyToken()));
    expect(tokens.size).toBe(200);
    for (const token of tokens) expect(token).toMatch(/^[0-9a-f]{16}$/);
  });

  it('recognises our address and its plus forms, case-insensitively, and reads the token', () => {
    expect(matchRecipient('support@acme.test', 'support@acme.test')).toEqual({ ours: true });
    expect(matchRecipient('Support@ACME.test', 'support@acme.test')).toEqual({ ours: true });
    expect(matchRecipient('support+A1B2@acme.test', 'support@acme.test')).toEqual({ ours: true, token: 'a1b2' });
    expect(matchRecipient('<support+x@acme.test>', 'support@acme.test')).toEqual({ ours: true, token: 'x' });
  });

  it('other mailboxes and other domains are not ours', () => {
    expect(matchRecipient('sales@acme.test', 'support@acme.test')).toEqual({ ours: false });
    expect(matchRecipient('supportteam@acme.test', 'support@acme.test')).toEqual({ ours: false });
    expect(matchRecipient('support@acme.test.evil.example', 'support@acme.test')).toEqual({ ours: false });
    expect(matchRecipient('not an address', 'support@acme.test')).toEqual({ ours: false });
  });

  it('parses plain addresses only', () => {
    expect(parseAddress('Dana@Acme.TEST')).toEqual({ local: 'Dana', domain: 'acme.test' });
    expect(parseAddress('two@a.test, three@b.test')).toBeUndefined();
    expect(parseAddress('@acme.test')).toBeUndefined();
    expect(parseAddress('dana@')).toBeUndefined();
  });
});

describe('subjects and tickets', () => {
  it('finds the ticket reference in a subject, in any case', () => {
    expect(ticketFromSubject('Re: Damaged lamp [HB-1042]')).toBe('HB-1042');
    expect(ticketFromSubject('RE: AW: [ hb-77 ] Damaged lamp')).toBe('HB-77');
    expect(ticketFromSubject('Order HB-1042 is late')).toBeUndefined();
    expect(ticketFromSubject(undefined)).toBeUndefined();
  });

  it('the conversation subject drops reply and forward prefixes in many languages, and the ticket tag', () => {
    expect(baseSubject('Re: RE: Fwd: Damaged lamp [HB-1042]')).toBe('Damaged lamp');
    expect(baseSubject('AW: WG: Lampe kaputt')).toBe('Lampe kaputt');
    expect(baseSubject('SV: Re[2]: Lampa')).toBe('Lampa');
    expect(baseSubject('TR: RE : Lampe')).toBe('Lampe');
    expect(baseSubject('[HB-1042] Re: Damaged lamp')).toBe('Damaged lamp');
    expect(baseSubject('   ')).toBeUndefined();
    expect(baseSubject('Re:')).toBeUndefined();
  });

  it('words that merely start like a prefix stay', () => {
    expect(baseSubject('Refund for order 4417')).toBe('Refund for order 4417');
    expect(baseSubject('Fwding issue')).toBe('Fwding issue');
  });

  it('our reply subject is "Re: <subject> [ticket]", however often the customer replied', () => {
    expect(replySubject('Damaged lamp', 'HB-1042')).toBe('Re: Damaged lamp [HB-1042]');
    expect(replySubject('RE: Re: Damaged lamp [HB-1042]', 'HB-1042')).toBe('Re: Damaged lamp [HB-1042]');
    expect(replySubject(undefined, 'HB-1042')).toBe('Re: Your request [HB-1042]');
  });
});
