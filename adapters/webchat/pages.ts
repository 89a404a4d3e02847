/**
 * The demo page at `/`: a plain storefront-like page that embeds the widget with the same one-line
 * tag a customer's site would use, plus that tag to copy. Pure HTML builder; values are escaped.
 */

/** The embed tag for a site, pointing at the bridge's public URL. */
export function embedSnippet(baseUrl: string): string {
  return `<script src="${baseUrl}/widget.js" async></script>`;
}

/** The whole demo page. `baseUrl` is where the bridge is reachable from browsers. */
export function demoPage(options: { brandName: string; assistantName: string; baseUrl: string }): string {
  const brand = escapeHtml(options.brandName);
  const snippet = escapeHtml(embedSnippet(options.baseUrl));
  const verified = escapeHtml(
    `<script>\n  window.HandoffChatSettings = { userId: "42", userHash: "<hex HMAC-SHA256(secret, \\"42\\")>", name: "Ada" };\n</script>\n${embedSnippet(options.baseUrl)}`,
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${brand} · Help center</title>
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: light; }
  body { margin: 0; font: 16px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1f2937; background: #f8fafc; }
  header { background: #fff; border-bottom: 1px solid #e5e7eb; }
  .bar { max-width: 980px; margin: 0 auto; padding: 14px 24px; display: flex; align-items: center; gap: 24px; }
  .logo { font-weight: 750; font-size: 19px; letter-spacing: -.01em; }
  nav { display: flex; gap: 18px; color: #6b7280; font-size: 14.5px; }
  main { max-width: 980px; margin: 0 auto; padding: 48px 24px 120px; }
  h1 { font-size: 38px; line-height: 1.15; margin: 0 0 12px; letter-spacing: -.02em; }
  .lead { font-size: 18px; color: #4b5563; max-width: 620px; margin: 0 0 36px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 16px; margin-bottom: 44px; }
  .card { background: #fff; border: 1px solid #e5e7eb; border-radius: 14px; padding: 18px 20px; }
  .card h3 { margin: 0 0 6px; font-size: 16px; }
  .card p { margin: 0; color: #6b7280; font-size: 14.5px; }
  h2 { font-size: 20px; margin: 0 0 8px; }
  pre { background: #0f172a; color: #e2e8f0; padding: 16px 18px; border-radius: 12px; overflow-x: auto; font-size: 13.5px; }
  .hint { color: #6b7280; font-size: 14.5px; }
  code { background: #eef2ff; padding: 1px 6px; border-radius: 6px; font-size: 14px; }
</style>
</head>
<body>
<header><div class="bar"><div class="logo">${brand}</div><nav><span>Orders</span><span>Returns</span><span>Billing</span><span>Account</span></nav></div></header>
<main>
  <h1>How can we help?</h1>
  <p class="lead">Ask ${escapeHtml(options.assistantName.toLowerCase() === 'assistant' ? 'our assistant' : options.assistantName)} anything about orders, returns or billing. When you need a person, say so: someone from our team joins this same chat, with the whole conversation in front of them.</p>
  <div class="cards">
    <div class="card"><h3>Track an order</h3><p>Try “Where is my order 1042?”</p></div>
    <div class="card"><h3>Talk to a person</h3><p>Try “I want to talk to a human”.</p></div>
    <div class="card"><h3>Pick up later</h3><p>Reload the page: the conversation and anything you missed come back.</p></div>
  </div>
  <h2>Add the chat to your site</h2>
  <p class="hint">One tag, anywhere in the page:</p>
  <pre>${snippet}</pre>
  <p class="hint">For signed-in users, pass their id and an HMAC of it computed on your server with <code>WEBCHAT_IDENTITY_SECRET</code>; they get the same conversation on every device:</p>
  <pre>${verified}</pre>
</main>
<script src="${escapeHtml(options.baseUrl)}/widget.js" async></script>
</body>
</html>
`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
