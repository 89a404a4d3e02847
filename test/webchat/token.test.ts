import { describe, expect, it } from 'vitest';
import { identityHash, signSessionToken, verifyIdentity, verifySessionToken } from '../../adapters/webchat/token.ts';

const SECRET = 'a-session-secret-of-at-least-32-chars!!';
const NOW = Date.parse('2025-03-01T10:00:00Z');
const claims = { conversationId: 'conv_1', visitorId: 'anon:abc', verified: false, issuedAt: NOW };
const check = (token: unknown, now = NOW) => verifySessionToken(token, SECRET, { now, maxAgeMs: 24 * 3600_000 });

describe('session tokens', () => {
  it('a token the bridge signed is accepted and says which conversation it resumes', () => {
    expect(check(signSessionToken(claims, SECRET))).toEqual({ ok: true, claims });
  });

  it('a token pointed at another conversation is refused', () => {
    const [version, payload, mac] = signSessionToken(claims, SECRET).split('.') as [string, string, string];
    const forged = JSON.parse(Buffer.from(payload, 'base64url').toString());
    forged.c = 'conv_someone_else';
    const token = `${version}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${mac}`;
    expect(check(token)).toEqual({ ok: false, problem: 'bad_signature' });
  });

  it('a token signed with another secret is refused', () => {
    expect(check(signSessionToken(claims, 'another-secret-another-secret-another'))).toEqual({ ok: false, problem: 'bad_signature' });
  });

  it('garbage is refused as malformed, without throwing', () => {
    for (const token of ['', 'abc', 'v1.x', 'v2.a.b', 42, null, { token: 'x' }, 'v1.' + 'a'.repeat(5000) + '.b']) {
      expect(check(token)).toMatchObject({ ok: false, problem: 'malformed' });
    }
  });

  it('a token older than its lifetime has expired', () => {
    expect(check(signSessionToken(claims, SECRET), NOW + 25 * 3600_000)).toEqual({ ok: false, problem: 'expired' });
  });
});

describe('identity verification', () => {
  const secret = 'host-site-identity-secret';

  it("accepts the host site's HMAC of the user id, in any hex case", () => {
    const hash = identityHash('user-42', secret);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(verifyIdentity('user-42', hash, secret)).toBe(true);
    expect(verifyIdentity('user-42', hash.toUpperCase(), secret)).toBe(true);
  });

  it("refuses another user's hash, a truncated hash and an empty one", () => {
    const hash = identityHash('user-42', secret);
    expect(verifyIdentity('user-43', hash, secret)).toBe(false);
    expect(verifyIdentity('user-42', hash.slice(0, 40), secret)).toBe(false);
    expect(verifyIdentity('user-42', '', secret)).toBe(false);
  });
});
