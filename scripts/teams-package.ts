/**
 * `npm run teams:package`: zips manifest/teams (manifest.json + icons) into dist/teams-app.zip for
 * upload to Teams, filling in the app id and the other `${{NAME}}` placeholders.
 *
 *   MICROSOFT_APP_ID=<guid> PUBLIC_URL=https://bridge.example.com npm run teams:package
 *   npm run teams:package -- --app-id <guid> --url https://bridge.example.com [--version 1.2.0] [--developer "Acme"] [--out dist/teams-app.zip]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';

export interface PackageValues {
  /** The Azure Bot's Microsoft App ID (a GUID); also the Teams app id. */
  appId: string;
  /** Public https base URL of the bridge (developer website; /privacy and /terms below it). */
  publicUrl: string;
  version?: string;
  developer?: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ICONS = { 'color.png': 192, 'outline.png': 32 } as const;

/** Builds the upload zip from a manifest folder. Throws with the setting to fix when a value is wrong. */
export function buildTeamsPackage(manifestDir: string, values: PackageValues): Uint8Array {
  if (!GUID.test(values.appId)) throw new Error(`MICROSOFT_APP_ID (--app-id): expected the Azure Bot's app id, a GUID; got "${values.appId}"`);
  let url: URL;
  try {
    url = new URL(values.publicUrl);
  } catch {
    throw new Error(`PUBLIC_URL (--url): expected an https URL, got "${values.publicUrl}"`);
  }
  if (url.protocol !== 'https:') throw new Error(`PUBLIC_URL (--url): Teams requires https, got "${values.publicUrl}"`);
  const version = values.version ?? '1.0.0';
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`TEAMS_APP_VERSION (--version): expected x.y.z, got "${version}"`);

  const substitutions: Record<string, string> = {
    MICROSOFT_APP_ID: values.appId.toLowerCase(),
    PUBLIC_URL: url.toString().replace(/\/$/, ''),
    TEAMS_APP_VERSION: version,
    TEAMS_APP_DEVELOPER: values.developer?.trim() || 'Handoff Bridge',
  };
  const template = readFileSync(join(manifestDir, 'manifest.json'), 'utf8');
  const filled = template.replace(/\$\{\{(\w+)\}\}/g, (_match, name: string) => {
    const value = substitutions[name];
    if (value === undefined) throw new Error(`manifest.json uses \${{${name}}}, which this script does not fill`);
    // Values land inside JSON strings.
    return JSON.stringify(value).slice(1, -1);
  });
  const manifest = JSON.parse(filled) as Record<string, unknown>;

  const files: Record<string, Uint8Array> = { 'manifest.json': new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n') };
  for (const [name, size] of Object.entries(ICONS)) {
    const png = readFileSync(join(manifestDir, name));
    const [width, height] = pngSize(png);
    if (width !== size || height !== size) throw new Error(`${name} must be ${size}x${size} pixels, is ${width}x${height}`);
    files[name] = png;
  }
  // Teams wants the three files at the root of the zip.
  return zipSync(files, { level: 9, mtime: new Date('2025-01-01T00:00:00Z') });
}

function pngSize(png: Buffer): [number, number] {
  if (png.length < 24 || png.toString('ascii', 1, 4) !== 'PNG') throw new Error('icon is not a PNG file');
  return [png.readUInt32BE(16), png.readUInt32BE(20)];
}

function argValue(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
}

function main(): void {
  const args = process.argv.slice(2);
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const out = resolve(root, argValue(args, '--out') ?? 'dist/teams-app.zip');
  const values: PackageValues = {
    appId: argValue(args, '--app-id') ?? process.env.MICROSOFT_APP_ID ?? '',
    publicUrl: argValue(args, '--url') ?? process.env.PUBLIC_URL ?? '',
  };
  const version = argValue(args, '--version') ?? process.env.TEAMS_APP_VERSION;
  const developer = argValue(args, '--developer') ?? process.env.TEAMS_APP_DEVELOPER;
  if (version) values.version = version;
  if (developer) values.developer = developer;
  const zip = buildTeamsPackage(join(root, 'manifest', 'teams'), values);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, zip);
  console.log(`Wrote ${out} (${zip.length} bytes). Upload it in Teams: Apps > Manage your apps > Upload an app.`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (err) {
    console.error(`teams:package: ${(err as Error).message}`);
    process.exit(1);
  }
}
