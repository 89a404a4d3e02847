/**
 * Plain text for an email that has only HTML. mailparser converts HTML to text only when the
 * HTML part is the message root; an HTML body nested in multipart/related or multipart/mixed
 * (Outlook and many mobile clients send that) comes back with no text at all. We run the same
 * converter by parsing the HTML as a message of its own, so quotes still come out as `>` lines
 * for the quote stripper and no second HTML library is needed.
 */
import { simpleParser } from 'mailparser';

/** Converts an HTML body to the plain text mailparser would have produced for it. */
export async function htmlToPlainText(html: string): Promise<string> {
  const encoded = Buffer.from(html, 'utf8').toString('base64').replace(/.{76}/g, '$&\r\n');
  const raw = `Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${encoded}\r\n`;
  const parsed = await simpleParser(raw, { skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true });
  // Embedded images render as "[cid:...]" or "[data:...]"; they are not words.
  return (parsed.text ?? '').replace(/\[(?:cid|data):[^\]]*\]/g, '').trim();
}
