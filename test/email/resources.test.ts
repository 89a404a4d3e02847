/**
 * The email channel's bounded resources, piece by piece: the spool (memory while small, a file
 * once large, the same bytes and hash either way, nothing left behind), the parse slots, and the
 * automatic-reply limiter's sliding window on a real store.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AutoReplyLimiter } from '../../adapters/email/limits.ts';
import { Slots, SpoolWriter, type SpooledMessage } from '../../adapters/email/spool.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/store.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'email-res-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function read(message: SpooledMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of message.open()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('the spool', () => {
  const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(16 * 1024, i));
  const whole = Buffer.concat(chunks);
  const digest = 'sha256:' + createHash('sha256').update(whole).digest('hex');

  it('keeps a small message in memory', async () => {
    const spool = new SpoolWriter(dir, 1024 * 1024);
    for (const c of chunks) await spool.write(c);
    const message = await spool.finish();
    expect(message).toMatchObject({ size: whole.length, digest, where: 'memory' });
    expect((await read(message)).equals(whole)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('moves a large one to a private file, readable more than once, deleted on dispose', async () => {
    const spool = new SpoolWriter(dir, 64 * 1024);
    for (const c of chunks) await spool.write(c);
    const message = await spool.finish();
    expect(message.where.startsWith(dir)).toBe(true);
    expect(message).toMatchObject({ size: whole.length, digest });
    expect((await read(message)).equals(whole)).toBe(true);
    expect((await read(message)).equals(whole)).toBe(true);
    await message.dispose();
    expect(existsSync(message.where)).toBe(false);
  });

  it('a discarded message leaves nothing behind', async () => {
    const spool = new SpoolWriter(dir, 1024);
    for (const c of chunks.slice(0, 4)) await spool.write(c);
    await spool.discard();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a spool directory that cannot be written is an error, not a hang', async () => {
    const spool = new SpoolWriter(join(dir, 'missing', 'deeper'), 1024);
    await expect(
      (async () => {
        for (const c of chunks) await spool.write(c);
        await spool.finish();
      })(),
    ).rejects.toThrow(/ENOENT/);
  });
});

describe('parse slots', () => {
  it('never run more than their limit at once, and run everything in the end', async () => {
    const slots = new Slots(2);
    let active = 0;
    let most = 0;
    const done = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        slots.run(async () => {
          active++;
          most = Math.max(most, active);
          await new Promise((r) => setTimeout(r, 1 + (i % 3)));
          active--;
          if (i === 7) throw new Error('one fails');
          return i;
        }).catch(() => -1),
      ),
    );
    expect(most).toBe(2);
    expect(done.filter((d) => d >= 0)).toHaveLength(19);
  });
});

describe('the automatic-reply limiter', () => {
  let store: Store;
  let now = 1_000_000;
  beforeEach(async () => {
    store = await openSqliteStore(join(dir, 'store.sqlite'));
    now = 1_000_000;
  });
  afterEach(async () => {
    await store.close();
  });
  const limiter = (perAddress: number, perDomain: number) => new AutoReplyLimiter(store.kv('email'), store, { perAddress, perDomain, windowMs: 60_000 }, () => now);

  it('grants per address up to the limit in a sliding window', async () => {
    const l = limiter(3, 0);
    const takes = [];
    for (let i = 0; i < 5; i++) takes.push((await l.take('Maria@Example.net', `m${i}`, true)).ok);
    expect(takes).toEqual([true, true, true, false, false]);
    expect(await l.take('other@example.net', 'o1', true)).toEqual({ ok: true });
    now += 60_001;
    expect((await l.take('maria@example.net', 'm9', true)).ok).toBe(true);
  });

  it('a repeat of a granted mail is granted again without counting', async () => {
    const l = limiter(2, 0);
    expect((await l.take('a@x.example', 'same', true)).ok).toBe(true);
    expect((await l.take('a@x.example', 'same', true)).ok).toBe(true);
    expect((await l.take('a@x.example', 'second', true)).ok).toBe(true);
    expect(await l.take('a@x.example', 'third', true)).toMatchObject({ ok: false, scope: 'address', who: 'a@x.example', max: 2 });
  });

  it('addresses of one domain share its limit, unless the domain authenticated them', async () => {
    const l = limiter(5, 2);
    expect((await l.take('a@v.example', '1', true)).ok).toBe(true);
    expect((await l.take('b@v.example', '2', true)).ok).toBe(true);
    expect(await l.take('c@v.example', '3', true)).toMatchObject({ ok: false, scope: 'domain', who: 'v.example' });
    expect((await l.take('d@v.example', '4', false)).ok).toBe(true);
  });

  it('concurrent takes for one sender never grant more than the limit', async () => {
    const l = limiter(3, 0);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => l.take('x@y.example', `k${i}`, true)));
    expect(results.filter((r) => r.ok)).toHaveLength(3);
  });
});
