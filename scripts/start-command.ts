/**
 * How `npm start` runs the bridge, read from package.json's `start` script, so the bench and the
 * tests start it with the same Node flags instead of a copy that could drift.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;

/** The flags between `node` and `--import` in the start script (for example `--max-semi-space-size=64`). */
export function startNodeFlags(root = ROOT): string[] {
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: { start?: string } }).scripts?.start ?? '';
  const words = start.trim().split(/\s+/);
  const end = words.indexOf('--import');
  if (words[0] !== 'node' || end < 0) throw new Error(`package.json "start" should read "node [flags] --import tsx src/main.ts", not "${start}"`);
  return words.slice(1, end);
}
