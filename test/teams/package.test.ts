import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { buildTeamsPackage } from '../../scripts/teams-package.ts';

const MANIFEST_DIR = new URL('../../manifest/teams/', import.meta.url).pathname;
const APP_ID = '0f1e2d3c-4b5a-4697-8877-665544332211';

function unpack(zip: Uint8Array) {
  const files = unzipSync(zip);
  return { names: Object.keys(files).sort(), manifest: JSON.parse(new TextDecoder().decode(files['manifest.json'])), files };
}

/** Pixels of an 8-bit RGBA PNG written without row filters (as make-icons.mjs writes them). */
function rgba(png: Uint8Array, size: number): number[][] {
  const buf = Buffer.from(png);
  const idat: Buffer[] = [];
  for (let at = 8; at < buf.length; ) {
    const length = buf.readUInt32BE(at);
    if (buf.toString('ascii', at + 4, at + 8) === 'IDAT') idat.push(buf.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const rows = inflateSync(Buffer.concat(idat));
  const out: number[][] = [];
  for (let y = 0; y < size; y++) {
    expect(rows[y * (size * 4 + 1)]).toBe(0);
    for (let x = 0; x < size; x++) {
      const i = y * (size * 4 + 1) + 1 + x * 4;
      out.push([rows[i]!, rows[i + 1]!, rows[i + 2]!, rows[i + 3]!]);
    }
  }
  return out;
}

describe('the Teams app package', () => {
  it('holds manifest.json and both icons at the root, with the app id filled in everywhere', () => {
    const { names, manifest } = unpack(buildTeamsPackage(MANIFEST_DIR, { appId: APP_ID, publicUrl: 'https://bridge.example.com/' }));
    expect(names).toEqual(['color.png', 'manifest.json', 'outline.png']);
    expect(JSON.stringify(manifest)).not.toContain('${{');
    expect(manifest).toMatchObject({
      manifestVersion: '1.17',
      version: '1.0.0',
      id: APP_ID,
      developer: { websiteUrl: 'https://bridge.example.com', privacyUrl: 'https://bridge.example.com/privacy' },
      webApplicationInfo: { id: APP_ID },
      authorization: { permissions: { resourceSpecific: [{ name: 'ChannelMessage.Read.Group', type: 'Application' }] } },
    });
    expect(manifest.bots[0]).toMatchObject({ botId: APP_ID, scopes: expect.arrayContaining(['team']) });
    const teamCommands = manifest.bots[0].commandLists.find((l: { scopes: string[] }) => l.scopes.includes('team')).commands.map((c: { title: string }) => c.title);
    expect(teamCommands).toEqual(expect.arrayContaining(['return', 'close', 'claim', 'help']));
    for (const command of manifest.bots[0].commandLists.flatMap((l: { commands: unknown[] }) => l.commands)) {
      expect(command.title.length).toBeLessThanOrEqual(32);
      expect(command.description.length).toBeLessThanOrEqual(128);
    }
    expect(manifest.description.short.length).toBeLessThanOrEqual(80);
  });

  it('ships a 192x192 color icon and a 32x32 white-on-transparent outline icon', () => {
    const { files } = unpack(buildTeamsPackage(MANIFEST_DIR, { appId: APP_ID, publicUrl: 'https://bridge.example.com' }));
    const size = (png: Uint8Array) => [Buffer.from(png).readUInt32BE(16), Buffer.from(png).readUInt32BE(20)];
    expect(size(files['color.png']!)).toEqual([192, 192]);
    expect(size(files['outline.png']!)).toEqual([32, 32]);
    const outline = rgba(files['outline.png']!, 32);
    const visible = outline.filter((p) => p[3]! > 0);
    expect(visible.length).toBeGreaterThan(100);
    expect(outline.some((p) => p[3] === 0)).toBe(true);
    expect(visible.every(([r, g, b]) => r === 255 && g === 255 && b === 255)).toBe(true);
  });

  it('refuses values Teams would reject, naming the setting', () => {
    expect(() => buildTeamsPackage(MANIFEST_DIR, { appId: 'my-bot', publicUrl: 'https://x.example' })).toThrow('MICROSOFT_APP_ID');
    expect(() => buildTeamsPackage(MANIFEST_DIR, { appId: APP_ID, publicUrl: 'http://x.example' })).toThrow('https');
    expect(() => buildTeamsPackage(MANIFEST_DIR, { appId: APP_ID, publicUrl: 'https://x.example', version: 'v2' })).toThrow('TEAMS_APP_VERSION');
  });

  it('writes dist/teams-app.zip from the command line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'teams-pkg-'));
    try {
      const out = join(dir, 'teams-app.zip');
      execFileSync(process.execPath, ['--import', 'tsx', 'scripts/teams-package.ts', '--app-id', APP_ID, '--url', 'https://bridge.example.com', '--version', '1.2.3', '--out', out], {
        cwd: new URL('../../', import.meta.url).pathname,
        stdio: 'pipe',
      });
      expect(unpack(readFileSync(out)).manifest.version).toBe('1.2.3');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
