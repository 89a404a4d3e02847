/**
 * The console's HTML: the app shell (the page's script does the rest) and the sign-in pages, which
 * work without JavaScript. Pure builders; every value is escaped.
 */
import type { ConsoleOperator } from './config.ts';

/** The page that loads the console app. `version` busts caches when the bundle changes. */
export function appShell(options: { brandName: string; version: string }): string {
  const v = encodeURIComponent(options.version);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Console · ${escapeHtml(options.brandName)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/app.css?v=${v}">
</head>
<body>
<div id="console" class="boot" aria-busy="true"><p class="boot-text">Loading the console…</p><noscript><p>The console needs JavaScript.</p></noscript></div>
<script src="/console/app.js?v=${v}" defer></script>
</body>
</html>
`;
}

export type SignInState =
  /** No session and no token: how to sign in. */
  | { kind: 'help'; error?: string }
  /** A one-time link: confirm before it is used up (link previews must not use it). */
  | { kind: 'confirm'; token: string; operator: ConsoleOperator }
  /** The shared token with several people configured: who are you? */
  | { kind: 'choose'; token: string; operators: ConsoleOperator[] }
  /** Signed in: on to the console (a same-site navigation, so the SameSite=Strict cookie goes with it). */
  | { kind: 'signed-in'; operator: ConsoleOperator };

export function signInPage(options: { brandName: string; state: SignInState }): string {
  const { state } = options;
  const brand = escapeHtml(options.brandName);
  let body: string;
  let head = '';
  switch (state.kind) {
    case 'help':
      body = `<h1>Sign in to the console</h1>
${state.error ? `<p class="error" role="alert">${escapeHtml(state.error)}</p>` : ''}
<p>Open the sign-in link printed when the bridge started, or one a colleague sent you. You can also paste its token here.</p>
<form method="post" action="/console/signin" class="signin-form">
  <label for="token">Sign-in token</label>
  <input id="token" name="token" type="password" autocomplete="off" required autofocus>
  <button type="submit" class="primary">Sign in</button>
</form>`;
      break;
    case 'confirm':
      body = `<h1>Sign in as ${escapeHtml(state.operator.name)}</h1>
<p>This link works once. Continue to open the ${brand} console${state.operator.role === 'manager' ? ' (read-only, as a manager)' : ''}.</p>
<form method="post" action="/console/signin">
  <input type="hidden" name="token" value="${escapeHtml(state.token)}">
  <button type="submit" class="primary" autofocus>Continue as ${escapeHtml(state.operator.name)}</button>
</form>`;
      break;
    case 'choose':
      body = `<h1>Who are you?</h1>
<p>Your name is shown to colleagues, and to customers when you join their conversation.</p>
<form method="post" action="/console/signin" class="choose">
  <input type="hidden" name="token" value="${escapeHtml(state.token)}">
  ${state.operators
    .map(
      (o, i) =>
        `<button type="submit" name="operator" value="${escapeHtml(o.id)}"${i === 0 ? ' autofocus' : ''}><span class="who">${escapeHtml(o.name)}</span><span class="role">${o.role === 'manager' ? 'Manager · read-only' : 'Operator'}</span></button>`,
    )
    .join('\n  ')}
</form>`;
      break;
    case 'signed-in':
      head = '<meta http-equiv="refresh" content="0; url=/console">';
      body = `<h1>Welcome, ${escapeHtml(state.operator.name)}</h1>
<p><a href="/console" class="button primary" autofocus>Open the console</a></p>`;
      break;
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
${head}
<title>Sign in · ${brand} console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/app.css">
</head>
<body class="signin">
<main class="signin-card">
<div class="brand"><span class="logo" aria-hidden="true">${escapeHtml((options.brandName.trim()[0] ?? 'S').toUpperCase())}</span>${brand} console</div>
${body}
</main>
</body>
</html>
`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
