/**
 * The console's stylesheet, served at /console/app.css (the page's CSP allows no inline styles).
 * Light and dark follow the system; focus is always visible.
 */
export const CONSOLE_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f4f5f7; --panel: #ffffff; --panel-2: #f9fafb; --line: #e3e6eb; --text: #1c2330; --muted: #667085;
  --accent: #4338ca; --accent-soft: #eef0ff; --accent-text: #ffffff;
  --ok: #15803d; --ok-soft: #e8f6ee; --warn: #b45309; --warn-soft: #fff4e0; --late: #c2261d; --late-soft: #fdeceb;
  --held: #1d4ed8; --held-soft: #e8efff; --agent: #475467; --agent-soft: #eef0f3;
  --note: #8a6100; --note-soft: #fff8e1; --note-line: #f2d37c;
  --radius: 10px; --shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f131a; --panel: #161b24; --panel-2: #1b212c; --line: #2a3140; --text: #e6e9ef; --muted: #98a2b3;
    --accent: #8b93ff; --accent-soft: #252a4a; --accent-text: #0f131a;
    --ok: #4ade80; --ok-soft: #12301f; --warn: #fbbf24; --warn-soft: #3a2a08; --late: #f87171; --late-soft: #3b1414;
    --held: #93b4ff; --held-soft: #1b2747; --agent: #b0b8c6; --agent-soft: #222835;
    --note: #f5cf6b; --note-soft: #2e260f; --note-line: #6b5517;
    --shadow: none;
  }
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: var(--bg); color: var(--text); }
button, input, textarea, select { font: inherit; color: inherit; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
kbd { font: 11px/1 ui-monospace, SFMono-Regular, Menlo, monospace; padding: 2px 5px; border: 1px solid var(--line); border-bottom-width: 2px; border-radius: 4px; background: var(--panel-2); color: var(--muted); }
button kbd { margin-left: 8px; }
.muted { color: var(--muted); }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; background: var(--agent-soft); color: var(--agent); white-space: nowrap; }
.prio-urgent.pill { background: var(--late-soft); color: var(--late); }
.prio-high.pill { background: var(--warn-soft); color: var(--warn); }
.prio-low.pill { background: var(--agent-soft); color: var(--muted); }
.role-manager.pill { background: var(--held-soft); color: var(--held); }

button { cursor: pointer; border: 1px solid var(--line); background: var(--panel); border-radius: 8px; padding: 6px 12px; }
button:hover:not(:disabled) { border-color: var(--muted); }
button:disabled { cursor: not-allowed; opacity: .55; }
button.primary, a.button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); font-weight: 600; }
button.primary kbd { background: transparent; color: inherit; border-color: currentColor; opacity: .75; }
button.danger { background: var(--late); border-color: var(--late); color: #fff; font-weight: 600; }
button.ghost { background: transparent; border-color: transparent; }
button.ghost:hover { border-color: var(--line); }
button.small { padding: 3px 8px; font-size: 13px; }
a.button { display: inline-block; padding: 8px 16px; border-radius: 8px; text-decoration: none; }

/* ---- frame ---- */
#console { height: 100%; display: flex; flex-direction: column; }
#console.boot { align-items: center; justify-content: center; color: var(--muted); }
.topbar { display: flex; align-items: center; gap: 18px; padding: 10px 16px; background: var(--panel); border-bottom: 1px solid var(--line); }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 700; white-space: nowrap; }
.brand .others { font-weight: 400; font-size: 12.5px; }
.logo { display: inline-grid; place-items: center; width: 28px; height: 28px; border-radius: 8px; background: var(--accent); color: var(--accent-text); font-weight: 800; }
.figures { flex: 1; min-width: 0; display: flex; flex-direction: column; gap: 1px; }
.counts { display: flex; gap: 14px; color: var(--muted); font-size: 13px; min-width: 0; }
.today { color: var(--muted); font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.count-waiting { font-weight: 650; color: var(--text); }
.count-waiting[data-sla="warn"] { color: var(--warn); }
.count-waiting[data-sla="late"] { color: var(--late); }
.live-status { font-size: 12.5px; color: var(--muted); display: inline-flex; align-items: center; gap: 6px; }
.live-status::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: var(--warn); }
.live-status[data-status="online"]::before { background: var(--ok); }
.live-status[data-status="offline"]::before { background: var(--late); }
.me { display: flex; align-items: center; gap: 8px; }
.me-name { font-weight: 600; }
.layout { flex: 1; min-height: 0; display: grid; grid-template-columns: minmax(300px, 360px) minmax(0, 1fr) minmax(300px, 380px); }

/* ---- inbox ---- */
.inbox { background: var(--panel); border-right: 1px solid var(--line); display: flex; flex-direction: column; min-height: 0; }
.inbox-filter { padding: 10px 12px; border-bottom: 1px solid var(--line); }
.filter { width: 100%; padding: 7px 10px; border: 1px solid var(--line); border-radius: 8px; background: var(--panel-2); }
.inbox-list { overflow-y: auto; flex: 1; padding-bottom: 24px; }
.section-title { display: flex; align-items: center; gap: 8px; margin: 0; padding: 14px 14px 6px; font-size: 11.5px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.section-title .count { background: var(--agent-soft); border-radius: 999px; padding: 0 7px; font-size: 11px; letter-spacing: 0; }
.sec-waiting .section-title .count { background: var(--warn-soft); color: var(--warn); }
.section-toggle { margin-left: auto; font-size: 11.5px; padding: 1px 8px; text-transform: none; letter-spacing: 0; }
.rows { list-style: none; margin: 0; padding: 0 8px; }
.rows .empty { color: var(--muted); padding: 4px 8px 8px; font-size: 13px; }
.row { display: grid; gap: 2px; width: 100%; text-align: left; border: 1px solid transparent; border-left: 3px solid transparent; border-radius: 8px; padding: 8px 10px; margin: 2px 0; background: transparent; }
.row:hover { background: var(--panel-2); border-color: var(--line); }
.row[aria-current="true"] { background: var(--accent-soft); border-color: var(--accent); }
.row[data-state="waiting"] { border-left-color: var(--ok); }
.row[data-state="waiting"][data-sla="warn"] { border-left-color: var(--warn); }
.row[data-state="waiting"][data-sla="late"] { border-left-color: var(--late); }
.row[data-state="human"] { border-left-color: var(--held); }
.row[data-state="closed"] { opacity: .75; }
.row-top { display: flex; gap: 8px; align-items: baseline; }
.row .ticket { font-weight: 700; font-variant-numeric: tabular-nums; }
.row .customer { flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.row .when { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
.row .when.wait { font-weight: 700; padding: 0 7px; border-radius: 999px; background: var(--ok-soft); color: var(--ok); }
.row .when.wait[data-sla="warn"] { background: var(--warn-soft); color: var(--warn); }
.row .when.wait[data-sla="late"] { background: var(--late-soft); color: var(--late); }
.row-mid { color: var(--muted); font-size: 13px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.row-bot { display: flex; gap: 6px; align-items: center; font-size: 12px; color: var(--muted); flex-wrap: wrap; }
.row .owner { font-weight: 600; color: var(--held); }
.row .owner.mine { color: var(--accent); }
.reply-due.pill { background: var(--late-soft); color: var(--late); }

/* ---- thread ---- */
.thread { display: flex; flex-direction: column; min-height: 0; min-width: 0; }
.thread-header { display: flex; align-items: flex-start; justify-content: space-between; gap: 12px; flex-wrap: wrap; padding: 12px 18px; background: var(--panel); border-bottom: 1px solid var(--line); }
.thread-header h1 { margin: 0; font-size: 18px; }
.thread-header h1 .ticket { color: var(--muted); font-weight: 600; }
.thread-sub { display: flex; gap: 10px; align-items: center; margin-top: 3px; font-size: 13px; flex-wrap: wrap; }
.state { font-weight: 650; font-size: 12.5px; padding: 1px 8px; border-radius: 999px; }
.st-waiting { background: var(--warn-soft); color: var(--warn); }
.st-human { background: var(--held-soft); color: var(--held); }
.st-agent { background: var(--agent-soft); color: var(--agent); }
.st-closed { background: var(--agent-soft); color: var(--muted); }
.thread-sub .owner { font-weight: 600; }
.thread-sub .agent { color: var(--muted); font-weight: 600; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; }
.readonly { font-size: 12.5px; color: var(--held); background: var(--held-soft); border-radius: 999px; padding: 2px 10px; font-weight: 600; }
.transcript { list-style: none; margin: 0; padding: 16px 18px 24px; overflow-y: auto; flex: 1; display: flex; flex-direction: column; gap: 10px; }
.entry { max-width: 760px; }
.entry .meta { display: flex; gap: 8px; align-items: baseline; font-size: 12.5px; color: var(--muted); margin-bottom: 3px; }
.entry .author { font-weight: 650; color: var(--text); }
.entry time { margin-left: auto; font-size: 11.5px; }
.bubble { white-space: pre-wrap; overflow-wrap: anywhere; padding: 8px 12px; border-radius: var(--radius); background: var(--panel); border: 1px solid var(--line); box-shadow: var(--shadow); }
.e-customer .bubble { background: var(--panel); }
.e-agent .bubble { background: var(--agent-soft); border-color: transparent; }
.e-operator { align-self: flex-end; }
.e-operator .bubble { background: var(--accent-soft); border-color: transparent; }
.e-note { align-self: flex-end; }
.e-note .bubble { background: var(--note-soft); border: 1px dashed var(--note-line); }
.tag { font-size: 11px; font-weight: 600; padding: 0 6px; border-radius: 4px; background: var(--agent-soft); color: var(--muted); }
.tag-internal { background: var(--note-soft); color: var(--note); }
.e-notice { align-self: center; max-width: 620px; }
.e-notice .bubble { background: transparent; border-style: dashed; box-shadow: none; color: var(--muted); font-size: 13px; }
.e-event { align-self: center; display: flex; gap: 10px; align-items: baseline; font-size: 12.5px; color: var(--muted); padding: 2px 10px; border-radius: 999px; background: var(--panel-2); border: 1px solid var(--line); }
.e-event time { margin-left: 0; }
.files { margin: 6px 0 0; padding-left: 18px; font-size: 13px; }
.tools { margin-top: 4px; font-size: 12px; color: var(--muted); }
.masked { margin-top: 4px; display: flex; gap: 8px; align-items: center; font-size: 12px; }
.revealed { margin-top: 6px; padding: 6px 10px; border: 1px dashed var(--note-line); border-radius: 8px; background: var(--note-soft); display: flex; flex-wrap: wrap; gap: 6px; align-items: baseline; }
.revealed-label { font-size: 12px; color: var(--note); font-weight: 600; }
.revealed-text { flex: 1 1 100%; white-space: pre-wrap; word-break: break-word; }
.composer { border-top: 1px solid var(--line); background: var(--panel); padding: 10px 18px 14px; }
.composer.is-note { background: var(--note-soft); }
.reply-hint { margin: 0 0 6px; font-size: 12.5px; color: var(--muted); }
.reply-hint:empty { display: none; }
.reply-input { width: 100%; resize: vertical; min-height: 64px; max-height: 40vh; padding: 8px 10px; border-radius: 8px; border: 1px solid var(--line); background: var(--panel); }
.composer.is-note .reply-input { border-style: dashed; border-color: var(--note-line); }
.composer-bar { display: flex; align-items: center; gap: 12px; margin-top: 8px; }
.composer-bar .keys { color: var(--muted); font-size: 12px; flex: 1; }
.note-toggle { display: inline-flex; gap: 6px; align-items: center; font-size: 13px; }
.counter { font-size: 12px; color: var(--muted); }
.counter.over { color: var(--late); font-weight: 700; }
.empty-thread { margin: auto; text-align: center; color: var(--muted); padding: 40px; }
.empty-thread h2 { color: var(--text); margin: 0 0 8px; }
.empty-thread .keys { font-size: 12.5px; }

/* ---- details ---- */
.details { border-left: 1px solid var(--line); overflow-y: auto; padding: 14px; display: flex; flex-direction: column; gap: 12px; background: var(--bg); }
.details:empty { display: none; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; padding: 12px 14px; box-shadow: var(--shadow); }
.card h2 { margin: 0 0 8px; font-size: 14px; }
.briefing { border-top: 4px solid var(--muted); }
.briefing.prio-high { border-top-color: var(--warn); }
.briefing.prio-urgent { border-top-color: var(--late); }
.briefing.prio-normal { border-top-color: var(--held); }
.briefing[data-open="false"] { opacity: .85; }
.briefing-head { display: flex; justify-content: space-between; gap: 8px; align-items: baseline; }
.briefing-status { margin: 0 0 8px; font-weight: 650; }
.briefing-agents { margin: 0 0 8px; color: var(--muted); font-size: 13px; }
.briefing .reason { margin: 0 0 6px; }
.briefing .trigger { color: var(--muted); font-size: 12.5px; }
.briefing .summary { margin: 0 0 8px; color: var(--muted); }
.question { background: var(--panel-2); border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; margin-bottom: 8px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; margin: 0; font-size: 13px; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
.options { display: flex; flex-direction: column; gap: 6px; margin-top: 10px; }
.options button { text-align: left; display: flex; justify-content: space-between; align-items: center; }
.options .claim { justify-content: center; }
.option.risk-high { border-color: var(--late); }
.option.chosen { background: var(--ok-soft); border-color: var(--ok); color: var(--ok); font-weight: 650; opacity: 1; }
.tradeoffs { margin: -2px 0 4px 4px; font-size: 12px; color: var(--muted); }
.history { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; font-size: 13px; }
.history li { display: flex; justify-content: space-between; gap: 8px; border-left: 2px solid var(--line); padding-left: 8px; }
.history time { color: var(--muted); font-size: 12px; white-space: nowrap; }

/* ---- dialogs, toasts, sign-in ---- */
.dialog { border: 1px solid var(--line); border-radius: 14px; padding: 20px 22px; width: min(520px, 92vw); background: var(--panel); color: var(--text); box-shadow: 0 20px 50px rgba(0,0,0,.25); }
.dialog::backdrop { background: rgba(15,19,26,.45); }
.dialog h2 { margin: 0 0 10px; font-size: 17px; }
.dialog p { margin: 0 0 10px; color: var(--muted); }
.dialog label { display: block; font-weight: 600; margin: 10px 0 4px; }
.dialog label.check { font-weight: 400; }
.dialog textarea, .dialog select, .link-field { width: 100%; padding: 8px 10px; border: 1px solid var(--line); border-radius: 8px; background: var(--panel-2); }
.dialog-actions { display: flex; justify-content: flex-end; gap: 8px; margin-top: 16px; }
.shortcuts { grid-template-columns: 90px 1fr; gap: 8px 14px; }
.toasts { position: fixed; right: 16px; bottom: 16px; display: flex; flex-direction: column; gap: 8px; z-index: 10; max-width: min(440px, 92vw); }
.toast { display: flex; gap: 10px; align-items: flex-start; padding: 10px 12px; border-radius: 10px; background: var(--panel); border: 1px solid var(--line); box-shadow: 0 8px 24px rgba(0,0,0,.15); }
.toast-error { border-color: var(--late); }
.toast-notice { border-color: var(--warn); }
.toast-close { margin-left: auto; padding: 0 6px; border: none; background: transparent; font-size: 16px; line-height: 1; }
body.signin, .signed-out { display: grid; place-items: center; min-height: 100%; }
.signin-card { width: min(440px, 92vw); background: var(--panel); border: 1px solid var(--line); border-radius: 16px; padding: 28px; box-shadow: var(--shadow); margin: 10vh auto; }
.signin-card .brand { margin-bottom: 18px; }
.signin-card h1 { font-size: 20px; margin: 0 0 8px; }
.signin-card p { color: var(--muted); }
.signin-card .error { color: var(--late); font-weight: 600; }
.signin-form label { display: block; font-weight: 600; margin-bottom: 4px; }
.signin-form input { width: 100%; padding: 8px 10px; border: 1px solid var(--line); border-radius: 8px; margin-bottom: 12px; background: var(--panel-2); }
.choose { display: flex; flex-direction: column; gap: 8px; }
.choose button { display: flex; justify-content: space-between; padding: 10px 14px; }
.choose .who { font-weight: 650; }
.choose .role { color: var(--muted); font-size: 13px; }

@media (max-width: 1180px) {
  .layout { grid-template-columns: minmax(280px, 320px) minmax(0, 1fr); }
  .details { grid-column: 2; border-left: none; border-top: 1px solid var(--line); max-height: 40vh; }
  .layout { grid-template-rows: 1fr auto; }
  .inbox { grid-row: 1 / span 2; }
}
@media (max-width: 760px) {
  .layout { display: flex; flex-direction: column; overflow-y: auto; }
  .inbox { max-height: 40vh; }
  .figures { display: none; }
}
`;
