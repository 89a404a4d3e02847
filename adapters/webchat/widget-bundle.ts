/**
 * Builds the browser widget (adapters/webchat/widget/*.ts) into one script at start-up with esbuild,
 * so there is no build step to remember and the served file always matches the source.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { WidgetDefaults } from './widget/main.ts';

/** The bundled widget, with an ETag for conditional requests. */
export interface WidgetBundle {
  code: string;
  etag: string;
}

const ENTRY = fileURLToPath(new URL('./widget/main.ts', import.meta.url));

/** Bundles the widget with the server's defaults (brand, assistant name, limits) baked in. */
export async function buildWidget(defaults: WidgetDefaults): Promise<WidgetBundle> {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    // Evergreen browsers (2020 on): shadow DOM, fetch, optional chaining all native.
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    charset: 'utf8',
    define: { __WIDGET_DEFAULTS__: JSON.stringify(defaults) },
    logLevel: 'silent',
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('esbuild produced no output for the web chat widget');
  const code = `/* handoff-bridge web chat widget */\n${file.text}`;
  return { code, etag: `"${createHash('sha256').update(code).digest('base64url').slice(0, 27)}"` };
}
