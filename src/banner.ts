/**
 * What start-up says: on a terminal, a short banner with the URLs to open (the customer page, the
 * console's sign-in, health); otherwise, or with LOG_FORMAT=json, one JSON log line with the same.
 */

export interface StartupInfo {
  port: number;
  /** Where browsers reach the bridge: PUBLIC_URL, else http://localhost:<port>. */
  baseUrl: string;
  running: string[];
  off: string[];
  store: string;
  agent: string;
  /** The web chat's demo page, when the web chat runs. */
  customerUrl?: string;
  /** The console's sign-in links, when the console runs. A shared token is never printed. */
  console?: Array<{ who: string; url: string; kind: 'one-time' | 'shared' }>;
  healthUrl: string;
}

/** PUBLIC_URL, or the local address browsers on this machine use. */
export function baseUrlFor(publicUrl: string | undefined, host: string, port: number): string {
  if (publicUrl) return publicUrl.replace(/\/+$/, '');
  const local = ['0.0.0.0', '::', '127.0.0.1', '::1', 'localhost', ''].includes(host);
  return `http://${local ? 'localhost' : host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** `text` (the banner) on a terminal unless LOG_FORMAT=json; `json` otherwise unless LOG_FORMAT=text. */
export function startupFormat(logFormat: 'auto' | 'json' | 'text', isTerminal: boolean): 'text' | 'json' {
  if (logFormat !== 'auto') return logFormat;
  return isTerminal ? 'text' : 'json';
}

export function startupBanner(info: StartupInfo): string {
  const lines = ['', `  Handoff Bridge is running on port ${info.port}`, ''];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(20)}${value}`);
  if (info.customerUrl) row('Customer page', info.customerUrl);
  const links = info.console ?? [];
  for (const link of links) {
    const who = link.who.length > 9 ? `${link.who.slice(0, 8)}…` : link.who;
    row(link.kind === 'one-time' && links.length > 1 ? `Console · ${who}` : 'Operator console', link.url);
  }
  if (links.some((l) => l.kind === 'one-time')) {
    lines.push(`  ${''.padEnd(20)}(${links.length === 1 ? `works once, as ${links[0]!.who}` : 'each works once'}; signed-in people can make more links)`);
  }
  row('Health', info.healthUrl);
  lines.push('');
  row('Running', info.running.join(', ') || 'no channels or workspaces');
  if (info.off.length) row('Off', `${info.off.join(', ')} (set their variables to turn them on)`);
  row('Agent · store', `${info.agent} · ${info.store}`);
  lines.push('', '  Ctrl+C stops it (in-flight work finishes first).', '');
  return lines.join('\n') + '\n';
}
