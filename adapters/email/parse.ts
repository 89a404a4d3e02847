/**
 * Parses one inbound message from a stream with mailparser, keeping what routing and the
 * transcript need: headers, addresses, the text (or HTML) body, and each attachment's name, type
 * and size. Attachment bytes are read and dropped as they come (we never forward them), and an
 * HTML body is cut before it is turned into text, so a large mail costs little memory.
 */
import type { Readable } from 'node:stream';
import { MailParser, type AttachmentStream, type MessageText, type ParsedMail } from 'mailparser';
import { htmlToPlainText } from './html-text.ts';
import type { ParsedInbound } from './inbound.ts';

/** HTML beyond this is not converted: the customer's words are at the top, and the text is clipped anyway. */
const MAX_HTML_CHARS = 512 * 1024;
/** Text kept from the body: far more than the transcript takes (the rest is quotes or padding). */
const MAX_TEXT_CHARS = 64_000;

/**
 * The start of `text` as a string of its own. A plain `slice` of a large string can keep the whole
 * original alive, and that must not outlive the parse.
 */
function head(text: string, max: number): string {
  return text.length <= max ? text : Buffer.from(text.slice(0, max), 'utf8').toString('utf8');
}

type AttachmentInfo = ParsedInbound['attachments'][number];

export async function parseMail(source: Readable): Promise<ParsedInbound> {
  const parser = new MailParser({ skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true, skipHtmlToText: true });
  const mail: Partial<ParsedMail> & { attachments: AttachmentInfo[] } = { attachments: [] };

  const done = new Promise<void>((resolve, reject) => {
    // mailparser may report a non-fatal error and still end; the first outcome wins.
    parser.on('error', (err) => {
      source.unpipe(parser);
      source.destroy();
      reject(err);
    });
    parser.on('end', () => resolve());
    source.once('error', (err) => {
      parser.destroy();
      reject(err);
    });
  });
  parser.on('headers', (headers) => {
    mail.headers = headers;
    mail.headerLines = (parser as unknown as { headerLines: ParsedMail['headerLines'] }).headerLines;
  });
  parser.on('data', (data: AttachmentStream | MessageText) => {
    if (data.type === 'text') {
      if (typeof data.text === 'string') mail.text = head(data.text, MAX_TEXT_CHARS);
      if (typeof data.html === 'string') mail.html = head(data.html, MAX_HTML_CHARS);
      return;
    }
    const attachment = data;
    let size = 0;
    let done = false;
    // Named with the bytes counted so far; a broken encoding ends it early instead of failing the mail.
    const finish = (): void => {
      if (done) return;
      done = true;
      mail.attachments.push({
        ...(attachment.filename ? { filename: attachment.filename } : {}),
        contentType: attachment.contentType,
        size,
        ...(attachment.related ? { related: true } : {}),
      } as AttachmentInfo);
      attachment.release?.();
    };
    attachment.content.on('data', (chunk: Buffer) => (size += chunk.length));
    attachment.content.on('end', finish);
    attachment.content.on('error', finish);
  });
  source.pipe(parser);
  await done;

  const headers = mail.headers ?? new Map();
  const get = <T>(key: string): T | undefined => (headers.has(key) ? (headers.get(key) as T) : undefined);
  let text = mail.text;
  if (!text?.trim() && typeof mail.html === 'string') text = await htmlToPlainText(mail.html);
  return {
    headerLines: mail.headerLines ?? [],
    ...(get<string>('message-id') !== undefined ? { messageId: get<string>('message-id') } : {}),
    ...(get('in-reply-to') !== undefined ? { inReplyTo: get<string>('in-reply-to') } : {}),
    ...(get('references') !== undefined ? { references: get<string | string[]>('references') } : {}),
    ...(get('from') !== undefined ? { from: get<ParsedMail['from']>('from') } : {}),
    ...(get('reply-to') !== undefined ? { replyTo: get<ParsedMail['replyTo']>('reply-to') } : {}),
    ...(get('to') !== undefined ? { to: get<ParsedMail['to']>('to') } : {}),
    ...(get('cc') !== undefined ? { cc: get<ParsedMail['cc']>('cc') } : {}),
    ...(get('subject') !== undefined ? { subject: get<string>('subject') } : {}),
    ...(text !== undefined ? { text } : {}),
    attachments: mail.attachments,
  } as ParsedInbound;
}
