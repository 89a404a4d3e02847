import { describe, expect, it } from 'vitest';
import { admit, MAX_GRACE_USES, ROTATION_GRACE_MS, type SessionRecord } from '../../adapters/webchat/sessions.ts';
import { identityHash, signSessionToken, verifyIdentity, verifySessionToken, type SessionClaims } from '../../adapters/webchat/token.ts';

const SECRET = 'a-session-secret-of-at-least-32-chars!!';
const NOW = Date.parse('2025-03-01T10:00:00Z');
const claims: SessionClaims = { sessionId: 'sess_1', generation: 3, conversationId: 'conv_1', visitorId: 'anon:abc', verified: false, issuedAt: NOW };
const check = (token: unknown, now = NOW) => verifySessionToken(token, SECRET, { now, maxAgeMs: 24 * 3600_000 });

describe('session tokens', () => {
  it('a token the bridge signed is accepted and says which conversation it resumes', () => {
    expect(check(signSessionToken(claims, SECRET))).toEqual({ ok: true, claims });
  });

  it('a token pointed at another conversation is refused', () => {
    const [version, payload, mac] = signSessionToken(claims, SECRET).split('.') as [string, string, string];
    const forged = JSON.parse(Buffer.from(payload, 'base64url').toString());
    forged.s = 'sess_someone_else';
    const token = `${version}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${mac}`;
    expect(check(token)).toEqual({ ok: false, problem: 'bad_signature' });
  });

  it('a token signed with another secret is refused', () => {
    expect(check(signSessionToken(claims, 'another-secret-another-secret-another'))).toEqual({ ok: false, problem: 'bad_signature' });
  });

  it('garbage is refused as malformed, without throwing', () => {
    for (const token of ['', 'abc', 'v1.x', 'v3.a.b', 42, null, { token: 'x' }, 'v2.' + 'a'.repeat(5000) + '.b']) {
      expect(check(token)).toMatchObject({ ok: false, problem: 'malformed' });
    }
  });

  it('the 30-day tokens of the previous format are refused', () => {
    const payload = Buffer.from(JSON.stringify({ c: 'conv_1', v: 'anon:abc', u: 0, iat: NOW })).toString('base64url');
    expect(check(`v1.${payload}.whatever`)).toEqual({ ok: false, problem: 'malformed' });
  });

  it('claims that mix up anonymous and verified visitors are refused even when signed', () => {
    expect(check(signSessionToken({ ...claims, visitorId: 'user:42' }, SECRET))).toEqual({ ok: false, problem: 'malformed' });
    expect(check(signSessionToken({ ...claims, verified: true }, SECRET))).toEqual({ ok: false, problem: 'malformed' });
    expect(check(signSessionToken({ ...claims, email: 'ceo@example.com' }, SECRET))).toEqual({ ok: false, problem: 'malformed' });
    expect(check(signSessionToken({ ...claims, generation: -1 }, SECRET))).toEqual({ ok: false, problem: 'malformed' });
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

describe('rotation: which hello a session record admits', () => {
  const record: SessionRecord = { visitorId: 'anon:abc', conversationId: 'conv_1', generation: 3, rotatedAt: NOW, graceUses: 0 };
  const at = (generation: number) => ({ ...claims, generation });

  it('the current generation is admitted once and the session moves on to the next', () => {
    expect(admit(at(3), record, NOW + 1000)).toEqual({ kind: 'admit', conversationId: 'conv_1', record: { ...record, generation: 4, rotatedAt: NOW + 1000 } });
  });

  it('the generation just replaced is admitted for a short grace, a few times, without moving the session', () => {
    const later = { ...record, generation: 4 };
    expect(admit(at(3), later, NOW + ROTATION_GRACE_MS)).toEqual({ kind: 'admit', conversationId: 'conv_1', record: { ...later, graceUses: 1 } });
    expect(admit(at(3), later, NOW + ROTATION_GRACE_MS + 1)).toEqual({ kind: 'refuse', reason: 'replayed' });
    expect(admit(at(3), { ...later, graceUses: MAX_GRACE_USES }, NOW + 1)).toEqual({ kind: 'refuse', reason: 'replayed' });
  });

  it('older generations, other visitors and other conversations are refused', () => {
    expect(admit(at(1), record, NOW)).toEqual({ kind: 'refuse', reason: 'replayed' });
    expect(admit(at(9), record, NOW)).toEqual({ kind: 'refuse', reason: 'replayed' });
    expect(admit({ ...at(3), visitorId: 'anon:other' }, record, NOW)).toEqual({ kind: 'refuse', reason: 'mismatch' });
    expect(admit({ ...at(3), conversationId: 'conv_2' }, record, NOW)).toEqual({ kind: 'refuse', reason: 'mismatch' });
  });

  it('a session without a conversation is pending and needs no record; a generation above 0 needs one', () => {
    const pending = { ...claims, generation: 0, conversationId: undefined } as SessionClaims;
    delete pending.conversationId;
    expect(admit(pending, undefined, NOW)).toEqual({ kind: 'pending' });
    expect(admit({ ...pending, generation: 2 }, undefined, NOW)).toEqual({ kind: 'refuse', reason: 'unknown_session' });
    // A verified user resuming an open conversation: the first hello writes the record.
    expect(admit({ ...pending, conversationId: 'conv_1' }, undefined, NOW)).toEqual({
      kind: 'admit',
      conversationId: 'conv_1',
      record: { visitorId: 'anon:abc', generation: 1, rotatedAt: NOW, graceUses: 0 },
    });
  });
});
