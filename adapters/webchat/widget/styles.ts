/**
 * The widget's stylesheet. It lives inside the widget's shadow root, so the host site's CSS cannot
 * reach in and ours cannot leak out. `--hc-accent` is the brand colour (data-color).
 */
export const WIDGET_CSS = `
:host { all: initial; }
* { box-sizing: border-box; }
.hc { --hc-accent: #4f46e5; --hc-accent-text: #fff; --hc-bg: #fff; --hc-text: #111827; --hc-muted: #6b7280;
  --hc-bubble: #f3f4f6; --hc-border: #e5e7eb;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--hc-text); position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; }
.hc-launcher { width: 60px; height: 60px; border-radius: 50%; border: 0; cursor: pointer; background: var(--hc-accent);
  color: var(--hc-accent-text); box-shadow: 0 8px 24px rgba(0,0,0,.18); display: grid; place-items: center;
  margin-left: auto; position: relative; transition: transform .15s ease; }
.hc-launcher:hover { transform: scale(1.05); }
.hc-launcher:focus-visible, .hc button:focus-visible, .hc textarea:focus-visible { outline: 3px solid rgba(79,70,229,.45); outline-offset: 2px; }
.hc-launcher svg { width: 28px; height: 28px; }
.hc-badge { position: absolute; top: -2px; right: -2px; min-width: 20px; height: 20px; padding: 0 6px; border-radius: 10px;
  background: #ef4444; color: #fff; font-size: 12px; font-weight: 600; line-height: 20px; text-align: center; }
.hc-badge[hidden] { display: none; }
.hc-panel { width: 380px; height: min(600px, calc(100vh - 120px)); background: var(--hc-bg); border-radius: 16px;
  box-shadow: 0 16px 48px rgba(0,0,0,.22); display: flex; flex-direction: column; overflow: hidden; margin-bottom: 16px; }
.hc-panel[hidden] { display: none; }
.hc-header { background: var(--hc-accent); color: var(--hc-accent-text); padding: 16px 16px 14px; display: flex; align-items: center; gap: 12px; }
.hc-avatar { width: 38px; height: 38px; border-radius: 50%; background: rgba(255,255,255,.22); display: grid; place-items: center;
  font-weight: 700; font-size: 16px; flex: none; position: relative; }
.hc-avatar::after { content: ""; position: absolute; right: 0; bottom: 0; width: 10px; height: 10px; border-radius: 50%;
  border: 2px solid var(--hc-accent); background: #9ca3af; }
.hc-online .hc-avatar::after { background: #22c55e; }
.hc-titles { flex: 1; min-width: 0; }
.hc-title { font-weight: 650; font-size: 16px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.hc-subtitle { font-size: 12.5px; opacity: .88; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.hc-close { background: transparent; border: 0; color: inherit; cursor: pointer; width: 32px; height: 32px; border-radius: 8px;
  display: grid; place-items: center; }
.hc-close:hover { background: rgba(255,255,255,.15); }
.hc-close svg { width: 18px; height: 18px; }
.hc-banner { background: #fef3c7; color: #92400e; font-size: 12.5px; padding: 8px 14px; border-bottom: 1px solid #fde68a; }
.hc-banner[hidden] { display: none; }
.hc-log { flex: 1; overflow-y: auto; padding: 16px 14px 8px; display: flex; flex-direction: column; gap: 10px; background: #fafafa; }
.hc-empty { color: var(--hc-muted); text-align: center; margin: auto 24px; font-size: 13.5px; }
.hc-msg { display: flex; flex-direction: column; max-width: 82%; align-self: flex-start; }
.hc-msg.hc-mine { align-self: flex-end; align-items: flex-end; }
.hc-author { font-size: 11.5px; color: var(--hc-muted); margin: 0 4px 3px; display: flex; gap: 6px; align-items: center; }
.hc-tag { font-size: 10px; font-weight: 600; letter-spacing: .02em; text-transform: uppercase; padding: 1px 6px; border-radius: 999px;
  background: #e0e7ff; color: #3730a3; }
.hc-tag.hc-person { background: #dcfce7; color: #166534; }
.hc-bubble { background: var(--hc-bg); border: 1px solid var(--hc-border); border-radius: 14px 14px 14px 4px; padding: 9px 12px;
  white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word; }
.hc-operator .hc-bubble { border-color: #bbf7d0; background: #f0fdf4; }
.hc-mine .hc-bubble { background: var(--hc-accent); color: var(--hc-accent-text); border-color: transparent; border-radius: 14px 14px 4px 14px; }
.hc-meta { font-size: 11px; color: var(--hc-muted); margin: 3px 4px 0; }
.hc-pending .hc-bubble { opacity: .65; }
.hc-failed .hc-bubble { background: #fee2e2; color: #991b1b; }
.hc-retry { background: none; border: 0; padding: 0; color: #b91c1c; text-decoration: underline; cursor: pointer; font: inherit; }
.hc-attachments { display: flex; flex-direction: column; gap: 2px; margin-top: 6px; }
.hc-attachments a { color: inherit; }
.hc-notice { align-self: center; max-width: 92%; text-align: center; font-size: 12.5px; color: #374151; background: #eef2ff;
  border: 1px solid #e0e7ff; padding: 6px 12px; border-radius: 999px; display: flex; gap: 6px; align-items: center; }
.hc-notice-escalated { background: #fff7ed; border-color: #fed7aa; color: #9a3412; }
.hc-notice-joined { background: #f0fdf4; border-color: #bbf7d0; color: #166534; }
.hc-notice-returned { background: #eef2ff; border-color: #c7d2fe; color: #3730a3; }
.hc-notice-closed { background: #f3f4f6; border-color: #e5e7eb; color: #374151; }
.hc-notice-dot { width: 6px; height: 6px; border-radius: 50%; background: currentColor; flex: none; }
.hc-typing { align-self: flex-start; font-size: 12px; color: var(--hc-muted); display: flex; gap: 6px; align-items: center; padding: 0 4px; }
.hc-typing[hidden] { display: none; }
.hc-dots { display: inline-flex; gap: 3px; }
.hc-dots i { width: 6px; height: 6px; border-radius: 50%; background: #9ca3af; animation: hc-blink 1.2s infinite ease-in-out; }
.hc-dots i:nth-child(2) { animation-delay: .2s; } .hc-dots i:nth-child(3) { animation-delay: .4s; }
@keyframes hc-blink { 0%, 80%, 100% { opacity: .3; } 40% { opacity: 1; } }
.hc-composer { display: flex; gap: 8px; align-items: flex-end; padding: 10px 12px 12px; border-top: 1px solid var(--hc-border); background: var(--hc-bg); }
.hc-input { flex: 1; resize: none; border: 1px solid var(--hc-border); border-radius: 12px; padding: 9px 12px; font: inherit;
  color: inherit; max-height: 120px; min-height: 40px; background: #fff; }
.hc-input:focus { border-color: var(--hc-accent); outline: none; }
.hc-send { width: 40px; height: 40px; border-radius: 12px; border: 0; background: var(--hc-accent); color: var(--hc-accent-text);
  cursor: pointer; display: grid; place-items: center; flex: none; }
.hc-send:disabled { opacity: .45; cursor: default; }
.hc-send svg { width: 18px; height: 18px; }
.hc-counter { font-size: 11px; color: var(--hc-muted); padding: 0 14px 6px; text-align: right; background: var(--hc-bg); }
.hc-counter.hc-over { color: #b91c1c; }
.hc-counter[hidden] { display: none; }
@media (max-width: 480px) {
  .hc { right: 12px; bottom: 12px; left: 12px; }
  .hc-panel { width: 100%; height: calc(100vh - 100px); }
}
@media (prefers-reduced-motion: reduce) { .hc-dots i { animation: none; } .hc-launcher { transition: none; } }
`;
