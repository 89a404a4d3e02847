/** The verification example in docs/webhooks.md works on what the bridge really sends. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../src/delivery/webhooks.ts';

const dir = mkdtempSync(join(tmpdir(), 'webhooks-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function documentedVerify(): Promise<(secret: string, headers: Record<string, string>, raw: string, now?: number) => boolean> {
  const doc = readFileSync(new URL('../../docs/webhooks.md', import.meta.url), 'utf8');
  const block = /<!-- verify\.mjs[^>]*-->\s*```js\n([\s\S]*?)```/.exec(doc);
  expect(block, 'docs/webhooks.md has the verify.mjs block').toBeTruthy();
  const file = join(dir, 'verify.mjs');
  writeFileSync(file, block![1]!);
  const mod = (await import(pathToFileURL(file).href)) as { verifyHandoffSignature: Awaited<ReturnType<typeof documentedVerify>> };
  return mod.verifyHandoffSignature;
}

describe('docs/webhooks.md', () => {
  it("its verification example accepts the bridge's signature and refuses a tampered body, a wrong secret and a replay", async () => {
    const verify = await documentedVerify();
    const secret = 'whsec_0123456789abcdef';
    const raw = JSON.stringify({ type: 'conversation.closed', id: 'conv_1:9', ticket: 'HB-1', conversation_id: 'conv_1', at: '2026-01-01T00:00:00.000Z', data: { state: 'closed', by: { kind: 'system' } } });
    const now = Date.now();
    const ts = Math.floor(now / 1000);
    const headers = { 'x-handoff-timestamp': String(ts), 'x-handoff-signature': signWebhook(secret, ts, raw) };
    expect(verify(secret, headers, raw, now)).toBe(true);
    expect(verify(secret, headers, raw.replace('closed', 'claimed'), now)).toBe(false);
    expect(verify('another-secret-entirely', headers, raw, now)).toBe(false);
    expect(verify(secret, headers, raw, now + 6 * 60_000)).toBe(false);
    expect(verify(secret, { 'x-handoff-timestamp': String(ts) }, raw, now)).toBe(false);
  });
});
