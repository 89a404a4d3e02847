import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { stripReply } from '../../adapters/email/quotes.ts';
import { fixture } from './support.ts';

async function replyText(name: string): Promise<string> {
  const parsed = await simpleParser(fixture(name, { FROM: 'customer@example.net', TO: 'support+abc@acme.test', SUBJECT: 'Damaged lamp [HB-1001]' }));
  return parsed.text ?? '';
}

describe('what the customer just wrote, from replies shaped like the big mail clients', () => {
  it('Gmail: the wrapped "On ... wrote:" line and the quoted history are cut', async () => {
    const stripped = stripReply(await replyText('gmail-reply.eml'));
    expect(stripped.text).toBe('Yes, the order number is 4417. It was supposed to arrive last Friday.\n\nThanks,\nMaria');
    expect(stripped.quoteStripped).toBe(true);
  });

  it('Outlook (Microsoft 365): the underscore line, the From/Sent header block and the business signature are cut', async () => {
    const stripped = stripReply(await replyText('outlook-reply.eml'));
    expect(stripped.text).toBe(
      'Hi Dana,\n\nThat works for me, please go ahead with the replacement and send it to our Leeds office.\n\nBest regards,\nJon Park',
    );
    expect(stripped.signatureStripped).toBe(true);
  });

  it('Outlook desktop in plain text: everything from "-----Original Message-----" is cut', async () => {
    expect(stripReply(await replyText('outlook-original-message.eml')).text).toBe('The refund is fine, thank you.');
  });

  it('Apple Mail on the Mac: the quoted attribution and history are cut', async () => {
    expect(stripReply(await replyText('apple-mail-reply.eml')).text).toBe(
      'Perfect, thank you! Please ship it to 12 Rue de Rivoli, Paris instead.\n\nChris',
    );
  });

  it('iPhone Mail: "Sent from my iPhone" and the quote below it are cut', async () => {
    const stripped = stripReply(await replyText('iphone-reply.eml'));
    expect(stripped).toEqual({ text: 'One more thing: the box was also missing the power cable.', quoteStripped: true, signatureStripped: true });
  });
});

describe('quoted history', () => {
  const cases: Array<[string, string, string]> = [
    [
      'Gmail in German',
      'Danke, das passt.\n\nAm Di., 5. März 2024 um 10:12 Uhr schrieb Acme Support <support@acme.test>:\n> Hallo\n',
      'Danke, das passt.',
    ],
    [
      'Gmail in French',
      "Merci beaucoup.\n\nLe mar. 5 mars 2024 à 10:12, Acme Support <support@acme.test> a écrit :\n> Bonjour\n",
      'Merci beaucoup.',
    ],
    [
      'Gmail in Spanish',
      'Gracias.\n\nEl mar, 5 mar 2024 a las 10:12, Acme Support (<support@acme.test>) escribió:\n> Hola\n',
      'Gracias.',
    ],
    [
      'an attribution wrapped over three lines',
      'Sounds good.\n\nOn Tue, Mar 5, 2024 at 10:12 AM Dana via Acme Support Team of the\nNorthern Region <support@acme.test>\nwrote:\n> text\n',
      'Sounds good.',
    ],
    [
      'Outlook with bold header labels (converted from HTML)',
      'Go ahead.\n\n*From:* Acme Support <support@acme.test>\n*Sent:* Tuesday, March 5, 2024 9:02 AM\n*To:* Jon <jon@contoso.example>\n*Subject:* Re: Lamp\n\nOld text',
      'Go ahead.',
    ],
    [
      'Outlook for Mac (From/Date/To)',
      'Go ahead.\n\nFrom: Acme Support <support@acme.test>\nDate: Tuesday, 5 March 2024 at 09:02\nTo: Jon Park <jon@contoso.example>\nSubject: Re: Lamp\n\nOld text',
      'Go ahead.',
    ],
    [
      'Outlook in German (Von/Gesendet/An/Betreff)',
      'Passt.\n\nVon: Acme Support <support@acme.test>\nGesendet: Dienstag, 5. März 2024 09:02\nAn: Jon Park <jon@contoso.example>\nBetreff: AW: Lampe\n\nAlter Text',
      'Passt.',
    ],
    [
      'an Outlook underscore line on its own',
      'Go ahead.\n\n________________________________\nFrom: Acme Support <support@acme.test>\nSent: Tuesday, March 5, 2024 9:02 AM\nTo: Jon\nSubject: Lamp\n',
      'Go ahead.',
    ],
    ['bare ">" quoting with no attribution', 'Yes please.\n\n> Shall we refund it?\n> Dana\n', 'Yes please.'],
    [
      'CRLF line endings and non-breaking spaces',
      'Yes please.\r\n\r\nOn Tue, Mar 5, 2024 at 10:12\u00a0AM Acme <support@acme.test> wrote:\r\n> old\r\n',
      'Yes please.',
    ],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    const stripped = stripReply(input);
    expect(stripped.text).toBe(expected);
    expect(stripped.quoteStripped).toBe(true);
  });

  it('answers written between the quoted lines are kept, the quotes dropped', () => {
    const input = [
      'On Tue, Mar 5, 2024 at 10:12 AM Acme Support <support@acme.test> wrote:',
      '> What is your order number?',
      '',
      '4417',
      '',
      '> And your postcode?',
      '',
      'LS1 4AP',
    ].join('\n');
    expect(stripReply(input).text).toBe('4417\n\nLS1 4AP');
  });

  it('a reply typed below the quote is kept', () => {
    const input = 'On 5 Mar 2024, at 10:12, Acme <support@acme.test> wrote:\n\n> Which one?\n\nThe blue one.';
    expect(stripReply(input).text).toBe('The blue one.');
  });

  it('ordinary sentences that look a little like an attribution are not cut', () => {
    const input = 'On Monday the courier wrote:\n"we could not deliver your parcel"\n\nWhat should I do?';
    expect(stripReply(input)).toEqual({ text: input, quoteStripped: false, signatureStripped: false });
  });

  it('a forward with no words of its own is kept whole rather than lost', () => {
    const input = '---------- Forwarded message ---------\nFrom: Shop <orders@shop.example>\nDate: Mon, 4 Mar 2024\nSubject: Your order\nTo: me@example.net\n\nOrder 4417 confirmed.';
    expect(stripReply(input).text).toBe(input);
  });

  it('words above a forwarded message are kept together with the forward', () => {
    const forward = 'Begin forwarded message:\n\nFrom: Shop <orders@shop.example>\nSubject: Your order\nDate: 4 March 2024 at 09:00:00 CET\nTo: me@example.net\n\nOrder 4417 confirmed.';
    expect(stripReply(`This is the confirmation you asked for.\n\nSent from my iPhone\n\n${forward}`).text).toBe(
      `This is the confirmation you asked for.\n\n${forward}`,
    );
  });

  it('a message that is only a quote is kept whole rather than emptied', () => {
    const input = '> Which do you prefer?\n> Dana';
    expect(stripReply(input).text).toBe(input);
  });
});

describe('signatures', () => {
  it('everything under the "-- " delimiter is cut', () => {
    expect(stripReply('Thanks!\n\n-- \nMaria Keller\nKeller GmbH\n').text).toBe('Thanks!');
  });

  it('a delimiter whose trailing space a client ate ("--") still counts', () => {
    expect(stripReply('Thanks!\n--\nMaria').text).toBe('Thanks!');
  });

  it.each([
    'Sent from my iPhone',
    'Sent from my iPad',
    'Sent from my Galaxy',
    'Get Outlook for iOS',
    'Get Outlook for Android<https://aka.ms/AAb9ysg>',
    'Sent from Outlook for Android',
    'Sent from Mail for Windows',
    'Sent from Yahoo Mail for iPhone',
    'Von meinem iPhone gesendet',
    'Envoyé de mon iPhone',
    'Enviado desde mi iPhone',
  ])('the mobile sign-off "%s" is cut', (signoff) => {
    const stripped = stripReply(`Is it in stock?\n\n${signoff}`);
    expect(stripped.text).toBe('Is it in stock?');
    expect(stripped.signatureStripped).toBe(true);
  });

  it('"sent from my phone" inside a sentence is not a signature', () => {
    const input = 'Sent from my phone, the photo shows the crack.\nCan you see it?\nI can send more.\nThanks.';
    expect(stripReply(input).text).toBe(input);
  });

  it('a business signature under the sign-off is cut, the sign-off and name kept', () => {
    const input = 'Please cancel it.\n\nKind regards,\nAnika Patel\nProcurement | Fabrikam Inc.\nT: +1 (555) 010-4477\nanika.patel@fabrikam.example';
    expect(stripReply(input).text).toBe('Please cancel it.\n\nKind regards,\nAnika Patel');
  });

  it('a sign-off followed by plain words is left alone', () => {
    const input = 'Thanks,\nMaria\nP.S. the second lamp works fine.';
    expect(stripReply(input).text).toBe(input);
  });
});
