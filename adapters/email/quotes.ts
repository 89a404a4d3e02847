/**
 * Strips quoted history and signatures from a plain-text email reply, pure, so the agent and the
 * operator's thread see only what the customer just wrote. Handles the shapes the big clients
 * produce: Gmail and Apple Mail ("On <date>, <name> wrote:" then `>` lines), Outlook ("From: /
 * Sent: / To: / Subject:" header blocks, "-----Original Message-----", a line of underscores),
 * inline `>` quoting, the `-- ` signature delimiter and mobile sign-offs ("Sent from my iPhone").
 *
 * It never loses a message: when stripping would leave nothing (a bare forward, a reply typed
 * below the quote) it keeps what is left after removing only the quoted lines, or the whole text.
 */

export interface StrippedReply {
  /** What the customer wrote. */
  text: string;
  /** True when quoted history was removed. */
  quoteStripped: boolean;
  /** True when a signature was removed. */
  signatureStripped: boolean;
}

/** "wrote:" in the languages our customers' clients most often use. */
const WROTE = /(?:wrote|writes|schrieb|a écrit|escribió|escreveu|schreef|ha scritto|skrev|kirjoitti|napisał|написал\(а\)|napsal)\s*:?\s*$/i;
/** Languages that put the name after the verb: "Am ... schrieb Acme Support <...>:". */
const WROTE_BEFORE_NAME = /\b(?:schrieb|skrev|kirjoitti)\b.{0,200}:\s*$/i;
/** A forwarded message: its content is what the customer is sending us, so it is never stripped. */
const FORWARD_MARKER =
  /^\s*(?:-{2,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado|Mensagem encaminhada|Doorgestuurd bericht)\s*-{2,}|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:)\s*$/i;
/** How an attribution line starts: "On", "Am", "Le", "El", "Em", "Op", "Il", "Den", "W dniu", ... */
const ATTRIBUTION_START = /^\s*(?:On|Am|Le|El|Em|Op|Il|Den|På|W dniu|Dne)\s/;
const ORIGINAL_MESSAGE = /^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|Mensagem original|Oorspronkelijk bericht|Messaggio originale)\s*-{2,}\s*$/i;
const UNDERSCORES = /^\s*_{10,}\s*$/;
const HEADER_FROM = /^\s*\*?(?:From|Von|De|Van|Da|Från|Fra|Od|От)\s*:\*?\s*\S/i;
const HEADER_SENT = /^\s*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Verzonden|Inviato|Skickat|Sendt|Data|Wysłano|Отправлено)\s*:\*?\s*\S/i;
const HEADER_OTHER = /^\s*\*?(?:To|Subject|Cc|An|Betreff|À|Objet|Para|Asunto|Assunto|Aan|Onderwerp|A|Oggetto|Till|Ämne|Til|Emne|Do|Temat)\s*:\*?/i;
const QUOTED = /^\s*>/;
const SIGNATURE_DELIMITER = /^--\s*$/;
const MOBILE_SIGNOFF =
  /^\s*(?:Sent from my \w[\w\s-]{0,40}|Sent from (?:Outlook|Mail|Yahoo Mail|Gmail|AOL|Proton Mail|ProtonMail)\b.*|Get Outlook for (?:iOS|Android)\b.*|Sent (?:from|via) (?:the )?\w+ (?:app|mobile)\b.*|Von meinem \w+ gesendet|Gesendet von meinem \w+.*|Envoyé de mon \w+.*|Enviado desde mi \w+.*|Enviado do meu \w+.*|Verstuurd vanaf mijn \w+.*|Inviato da(?:l mio)? \w+.*)\s*$/i;

const VALEDICTION =
  /^\s*(?:best regards|kind regards|warm regards|warmest regards|regards|best wishes|best|all the best|thanks(?: again| so much| a lot)?|thank you(?: so much)?|many thanks|cheers|sincerely|yours sincerely|yours truly|mit freundlichen grüßen|viele grüße|liebe grüße|cordialement|bien à vous|saludos|un saludo|atentamente|met vriendelijke groet(?:en)?|distinti saluti|cordiali saluti)\s*[,.!]?\s*$/i;
/** A line of contact details: phone number, email, web address, or "|"-separated title/company. */
const CONTACT = /(?:\+?\d[\d\s().\/-]{6,}\d|@|www\.|https?:\/\/|\s\|\s)/i;

/** Where a block of quoted history starts and how many lines its introduction takes. */
interface QuoteStart {
  index: number;
  /** Lines that only introduce the quote (attribution, separator, header block). */
  introLines: number;
}

/** The line where quoted history starts, if any. */
function findQuoteStart(lines: string[]): QuoteStart | undefined {
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (ORIGINAL_MESSAGE.test(line)) return { index: i, introLines: 1 + headerBlockLength(lines, i + 1) };
    if (UNDERSCORES.test(line) && headerBlockLength(lines, i + 1) > 0) {
      return { index: i, introLines: 1 + headerBlockLength(lines, i + 1) };
    }
    const block = headerBlockLength(lines, i);
    if (block > 0) return { index: i, introLines: block };
    const attribution = attributionLength(lines, i);
    if (attribution > 0) return { index: i, introLines: attribution };
  }
  return undefined;
}

/**
 * An attribution ("On Tue, 5 Mar 2024 at 10:12, Acme <support@acme.test> wrote:"), which Gmail
 * wraps over up to three lines. Needs a digit (the date) so ordinary sentences do not match.
 */
function attributionLength(lines: string[], i: number): number {
  if (!ATTRIBUTION_START.test(lines[i]!)) return 0;
  let joined = '';
  for (let n = 0; n < 3 && i + n < lines.length; n++) {
    const line = lines[i + n]!;
    if (n > 0 && (line.trim() === '' || QUOTED.test(line))) return 0;
    joined += (n > 0 ? ' ' : '') + line.trim();
    if (joined.length > 400) return 0;
    if ((WROTE.test(joined) || WROTE_BEFORE_NAME.test(joined)) && /\d/.test(joined)) return n + 1;
  }
  return 0;
}

/**
 * An Outlook-style header block: a "From:" line, then within the next few lines "Sent:"/"Date:"
 * and a "To:"/"Subject:" line. Returns the block's length in lines (0 if none starts at `i`).
 */
function headerBlockLength(lines: string[], i: number): number {
  let start = i;
  while (start < lines.length && lines[start]!.trim() === '' && start - i < 2) start++;
  if (start >= lines.length || !HEADER_FROM.test(lines[start]!)) return 0;
  let sawSent = false;
  let sawOther = false;
  let end = start + 1;
  for (; end < lines.length && end <= start + 6; end++) {
    const line = lines[end]!;
    if (HEADER_SENT.test(line)) sawSent = true;
    else if (HEADER_OTHER.test(line)) sawOther = true;
    else if (line.trim() === '' || !/^\s*\*?[\p{L} -]{1,20}\s*:/u.test(line)) break;
  }
  return sawSent && sawOther ? end - i : 0;
}

/** The first signature line in `lines` (delimiter or mobile sign-off near the end), if any. */
function findSignature(lines: string[]): number | undefined {
  const delimiter = lines.findIndex((line) => SIGNATURE_DELIMITER.test(line));
  // A mobile sign-off counts only among the last few non-empty lines: it is a footer, not a sentence.
  const tail = lines
    .map((line, index) => ({ line, index }))
    .filter((l) => l.line.trim() !== '')
    .slice(-3);
  const signoff = tail.find((l) => MOBILE_SIGNOFF.test(l.line))?.index;
  const found = [delimiter >= 0 ? delimiter : undefined, signoff].filter((n): n is number => n !== undefined);
  return found.length ? Math.min(...found) : undefined;
}

/**
 * A business signature under a sign-off: "Best regards," + name, then a few short lines of
 * title, company, phone. Keeps the sign-off and the name (they are part of what the customer
 * wrote) and returns where the contact block starts, if there is one.
 */
function findContactBlock(lines: string[]): number | undefined {
  const filled = lines.map((line, index) => ({ line, index })).filter((l) => l.line.trim() !== '');
  for (let k = Math.max(0, filled.length - 8); k < filled.length; k++) {
    if (!VALEDICTION.test(filled[k]!.line)) continue;
    const rest = filled.slice(k + 2);
    if (rest.length === 0 || rest.length > 6) return undefined;
    if (rest.every((l) => l.line.trim().length <= 60) && rest.some((l) => CONTACT.test(l.line))) return rest[0]!.index;
    return undefined;
  }
  return undefined;
}

function hasContent(lines: string[]): boolean {
  return lines.some((line) => line.trim() !== '');
}

/** Trims blank lines at both ends, trailing spaces, and runs of blank lines down to one. */
function tidy(lines: string[]): string {
  const out: string[] = [];
  for (const raw of lines) {
    const line = raw.replace(/[ \t]+$/, '');
    if (line === '' && (out.length === 0 || out[out.length - 1] === '')) continue;
    out.push(line);
  }
  while (out.length && out[out.length - 1] === '') out.pop();
  return out.join('\n');
}

/** Strips quoted history and signature from a reply's plain text. */
export function stripReply(text: string): StrippedReply {
  const normalized = text.replace(/\r\n?/g, '\n').replace(/\u00a0/g, ' ');
  // Signature detection needs the "-- " delimiter intact, so trailing spaces are kept until tidy().
  const all = normalized.split('\n');
  // Only the part above a forwarded message is the customer's reply; the forward stays as it is.
  const forwardAt = all.findIndex((l) => FORWARD_MARKER.test(l));
  let lines = forwardAt >= 0 ? all.slice(0, forwardAt) : all;
  const forwarded = forwardAt >= 0 ? all.slice(forwardAt) : [];
  let quoteStripped = false;
  let signatureStripped = false;

  const start = findQuoteStart(lines);
  if (start && hasContent(lines.slice(0, start.index).filter((l) => !QUOTED.test(l)))) {
    lines = lines.slice(0, start.index);
    quoteStripped = true;
  } else if (start) {
    // Typed below or between the quotes: drop the introduction and the quoted lines, keep the rest.
    const rest = [...lines.slice(0, start.index), ...lines.slice(start.index + start.introLines)].filter(
      (l) => !QUOTED.test(l),
    );
    if (hasContent(rest)) {
      lines = rest;
      quoteStripped = true;
    }
  }
  if (lines.some((l) => QUOTED.test(l))) {
    const unquoted = lines.filter((l) => !QUOTED.test(l));
    if (hasContent(unquoted)) {
      lines = unquoted;
      quoteStripped = true;
    }
  }

  const signature = findSignature(lines);
  if (signature !== undefined && hasContent(lines.slice(0, signature))) {
    lines = lines.slice(0, signature);
    signatureStripped = true;
  }

  const contact = findContactBlock(lines);
  if (contact !== undefined) {
    lines = lines.slice(0, contact);
    signatureStripped = true;
  }

  const result = tidy([...lines, ...(forwarded.length && hasContent(lines) ? [''] : []), ...forwarded]);
  if (!result) return { text: tidy(normalized.split('\n')), quoteStripped: false, signatureStripped: false };
  return { text: result, quoteStripped, signatureStripped };
}
