/**
 * Builds the console's browser code (adapters/console/app/*.ts) into one script at start-up with
 * esbuild, like the web chat widget: no build step to remember, no framework to download, and the
 * served file always matches the source.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { CONSOLE_CSS } from './app/styles.ts';

export interface ConsoleBundle {
  js: string;
  css: string;
  /** Changes whenever either file does. */
  version: string;
  jsEtag: string;
  cssEtag: string;
}

const ENTRY = fileURLToPath(new URL('./app/main.ts', import.meta.url));

export async function buildConsoleApp(): Promise<ConsoleBundle> {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'silent',
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('esbuild produced no output for the console');
  const js = `/* handoff-bridge operator console */\n${file.text}`;
  const css = CONSOLE_CSS;
  const jsEtag = etag(js);
  const cssEtag = etag(css);
  return { js, css, jsEtag, cssEtag, version: etag(jsEtag + cssEtag).slice(1, 13) };
}

function etag(text: string): string {
  return `"${createHash('sha256').update(text).digest('base64url').slice(0, 27)}"`;
}
