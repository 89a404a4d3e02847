/**
 * What the receiving relay says about the sender, pure: the DMARC result in its
 * `Authentication-Results` header (RFC 8601). Anyone can write that header, so only one is read:
 * the topmost one whose authserv-id is one we were told to trust (`EMAIL_AUTHSERV_ID`), and only
 * when the mail came from a trusted relay (`EMAIL_TRUSTED_RELAYS`, when set). A relay prepends its
 * header, so its own result is above anything the sender wrote.
 */
import type { HeaderMap } from './autoreply.ts';

/** `pass`: the From domain is authenticated. `fail`: it is forged or broken. `none`: we cannot tell. */
export type DmarcVerdict = 'pass' | 'fail' | 'none';

export interface SenderAuth {
  dmarc: DmarcVerdict;
  /** One line for logs and notes: which header said what, or why none was read. */
  detail: string;
}

export interface AuthTrust {
  /** Authserv-ids whose results we believe (lowercase compared). Empty: none is read. */
  authservIds: readonly string[];
  /** False when the SMTP client is not one of the trusted relays: its headers are not read. */
  relayTrusted: boolean;
}

export interface AuthResult {
  method: string;
  result: string;
  props: Record<string, string>;
}

export interface AuthResultsHeader {
  authservId: string;
  results: AuthResult[];
}

/** Drops RFC 5322 comments (nested parentheses, backslash escapes), keeping quoted strings. */
function withoutComments(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && (quoted || depth > 0)) {
      if (depth === 0) out += c + (value[i + 1] ?? '');
      i++;
      continue;
    }
    if (depth === 0 && c === '"') quoted = !quoted;
    else if (!quoted && c === '(') {
      depth++;
      continue;
    } else if (!quoted && c === ')' && depth > 0) {
      depth--;
      continue;
    }
    if (depth === 0) out += c;
  }
  return out;
}

/** Splits on `;` outside quoted strings. */
function splitStatements(value: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const c of value) {
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter(Boolean);
}

/** Parses one `Authentication-Results` value; undefined when it has no authserv-id. */
export function parseAuthResults(value: string): AuthResultsHeader | undefined {
  const [head, ...statements] = splitStatements(withoutComments(value).replace(/\s+/g, ' '));
  // authserv-id [version]; a header that starts with a result (Exchange Online) names no server.
  const authservId = head?.split(' ')[0]?.toLowerCase();
  if (!authservId || authservId.includes('=')) return undefined;
  const results: AuthResult[] = [];
  for (const statement of statements) {
    const tokens = statement.match(/[^\s=]+=(?:"(?:[^"\\]|\\.)*"|\S*)|\S+/g) ?? [];
    const first = tokens[0]?.match(/^([A-Za-z0-9_-]+)(?:\/[0-9]+)?=([A-Za-z]+)$/);
    if (!first) continue;
    const props: Record<string, string> = {};
    for (const token of tokens.slice(1)) {
      const eq = token.indexOf('=');
      if (eq > 0) props[token.slice(0, eq).toLowerCase()] = token.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    }
    results.push({ method: first[1]!.toLowerCase(), result: first[2]!.toLowerCase(), props });
  }
  return { authservId, results };
}

/**
 * The DMARC verdict for a mail whose From domain is `fromDomain`, from the trusted relay's header.
 * A `pass` for another domain than From's is no pass.
 */
export function dmarcVerdict(headers: HeaderMap, fromDomain: string | undefined, trust: AuthTrust): SenderAuth {
  if (!trust.authservIds.length) return { dmarc: 'none', detail: 'no trusted authserv-id configured (EMAIL_AUTHSERV_ID)' };
  if (!trust.relayTrusted) return { dmarc: 'none', detail: 'the mail did not come from a trusted relay (EMAIL_TRUSTED_RELAYS)' };
  const ids = new Set(trust.authservIds.map((id) => id.toLowerCase()));
  for (const value of headers['authentication-results'] ?? []) {
    const parsed = parseAuthResults(value);
    if (!parsed || !ids.has(parsed.authservId)) continue;
    const dmarc = parsed.results.find((r) => r.method === 'dmarc');
    if (!dmarc) return { dmarc: 'none', detail: `${parsed.authservId} reports no DMARC result` };
    const domain = dmarc.props['header.from']?.toLowerCase();
    if (dmarc.result === 'fail') return { dmarc: 'fail', detail: `${parsed.authservId}: dmarc=fail${domain ? ` header.from=${domain}` : ''}` };
    if (dmarc.result !== 'pass') return { dmarc: 'none', detail: `${parsed.authservId}: dmarc=${dmarc.result}` };
    if (!fromDomain) return { dmarc: 'none', detail: `${parsed.authservId}: dmarc=pass, but the mail has no From domain` };
    if (domain && domain !== fromDomain.toLowerCase()) {
      return { dmarc: 'none', detail: `${parsed.authservId}: dmarc=pass for ${domain}, not for the From domain ${fromDomain}` };
    }
    return { dmarc: 'pass', detail: `${parsed.authservId}: dmarc=pass header.from=${domain ?? fromDomain}` };
  }
  return { dmarc: 'none', detail: 'no Authentication-Results from a trusted authserv-id' };
}
