/**
 * The console page's entry point, bundled and served at /console/app.js. It loads the session,
 * keeps the inbox and the open conversation live over the WebSocket, and turns clicks and keys into
 * actions (HTTP calls carrying the CSRF token). Keyboard: j/k next/previous, / filter, c claim,
 * r reply, n note, 1-9 options, b return, x close, ? help, Esc back to the inbox. Reveal (on a line
 * with masked values) and Route… (several agents) are buttons.
 */
import { formatDuration, inboxCounts, slaLevel } from '../../../cards/console/inbox.ts';
import type { BriefingOptionView, ServerFrame, ThreadEntry, ThreadView } from '../../../cards/console/types.ts';
import { Api, ApiError, randomId, type ActionResult, type SessionInfo } from './api.ts';
import { Dialogs } from './dialogs.ts';
import { button, h, replace, typingIn } from './dom.ts';
import { InboxPane } from './inbox.ts';
import { LiveSocket, type LiveStatus } from './socket.ts';
import { ThreadPane } from './thread.ts';

const SHORTCUTS: Array<[string, string]> = [
  ['j / k', 'Next / previous conversation'],
  ['↑ / ↓', 'Move in the inbox (Enter opens)'],
  ['/', 'Filter the inbox (Enter opens the first match or a ticket)'],
  ['c', 'Claim, or take over from the agent'],
  ['r', 'Reply'],
  ['n', 'Internal note'],
  ['1 … 9', 'Choose a briefing option'],
  ['b', 'Return to the agent, with a note'],
  ['x', 'Close the conversation'],
  ['Esc', 'Leave the reply box, back to the inbox'],
  ['?', 'These shortcuts'],
];

class ConsoleApp {
  private readonly api = new Api();
  private readonly root: HTMLElement;
  private session!: SessionInfo;
  private inbox!: InboxPane;
  private thread!: ThreadPane;
  private dialogs!: Dialogs;
  private live!: LiveSocket;
  private counts!: HTMLElement;
  private today: HTMLElement | undefined;
  private todayTimer: ReturnType<typeof setTimeout> | undefined;
  private status!: HTMLElement;
  private toasts!: HTMLElement;
  private openId: string | null = null;
  /** Server time minus local time, so wait times agree with the server. */
  private skew = 0;
  private readonly seenNotices = new Set<string>();

  constructor() {
    this.root = document.getElementById('console')!;
  }

  async boot(): Promise<void> {
    try {
      this.session = await this.api.session();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.signedOut();
      return this.fatal(err instanceof Error ? err.message : 'The console could not load.');
    }
    this.build();
    const { rows } = await this.api.inbox().catch(() => ({ rows: [] }));
    this.inbox.setRows(rows);
    this.live.start();
    window.addEventListener('hashchange', () => this.route());
    document.addEventListener('keydown', (event) => this.onKey(event));
    setInterval(() => this.tick(), 1000);
    if (this.today) {
      void this.refreshToday();
      setInterval(() => void this.refreshToday(), 60_000);
    }
    this.route();
    this.tick();
  }

  private now(): number {
    return Date.now() + this.skew;
  }

  private get canAct(): boolean {
    return this.session.me.role === 'operator';
  }

  private build(): void {
    const { me, settings } = this.session;
    this.counts = h('div.counts', { 'aria-live': 'off' });
    this.status = h('span.live-status', { role: 'status', 'data-status': 'connecting' }, 'Connecting…');
    const menu = h('div.me', {}, h('span.me-name', {}, me.name), h(`span.pill.role-${me.role}`, {}, me.role === 'manager' ? 'Manager · read-only' : 'Operator'));
    menu.append(button('Sign-in link', () => void this.signInLinkDialog(), { className: 'ghost small', title: 'A one-time link to sign in on another device' }));
    menu.append(button('Sign out', () => void this.signOut(), { className: 'ghost small' }));
    menu.append(button('?', () => this.help(), { className: 'ghost small', title: 'Keyboard shortcuts' }));
    const others = settings.workspaces.length ? h('span.muted.others', {}, `also in ${settings.workspaces.map(capitalize).join(', ')}`) : null;
    // Managers also see the day's figures.
    this.today = me.role === 'manager' ? h('div.today', { title: "Today's figures (UTC day)" }) : undefined;
    const topbar = h(
      'header.topbar',
      {},
      h('div.brand', {}, h('span.logo', { 'aria-hidden': 'true' }, (settings.brandName.trim()[0] ?? 'S').toUpperCase()), h('span', {}, `${settings.brandName} console`), others),
      h('div.figures', {}, this.counts, this.today),
      this.status,
      menu,
    );
    this.inbox = new InboxPane({ slaMs: settings.slaMs, meId: me.id, now: () => this.now(), open: (id) => this.navigate(id) });
    this.inbox.filter.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        void this.openFromFilter();
      } else if (event.key === 'Escape') {
        this.inbox.filter.value = '';
        this.inbox.render();
        this.inbox.focus();
      }
    });
    this.thread = new ThreadPane(
      {
        claim: () => void this.act('claim'),
        option: (option, escalation) => void this.chooseOption(option, escalation),
        returnToAgent: () => void this.returnToAgent(),
        release: () => void this.act('release'),
        transfer: () => void this.transfer(),
        close: () => void this.close(),
        reveal: (entry) => void this.reveal(entry),
        route: () => void this.routeToAgent(),
        send: (text, internal) => this.send(text, internal),
      },
      {
        notePrefix: settings.notePrefix,
        maxMessageChars: settings.maxMessageChars,
        canAct: this.canAct,
        hasColleagues: settings.colleagues.some((c) => c.role === 'operator'),
        agents: settings.agents,
      },
    );
    this.toasts = h('div.toasts', { role: 'status', 'aria-live': 'polite' });
    replace(this.root, topbar, h('div.layout', {}, this.inbox.element, this.thread.main, this.thread.details), this.toasts);
    this.root.classList.remove('boot');
    this.root.removeAttribute('aria-busy');
    this.dialogs = new Dialogs(this.root);
    this.live = new LiveSocket({
      frame: (frame) => this.onFrame(frame),
      status: (status) => this.setStatus(status),
      signedIn: () =>
        this.api.session().then(
          () => true,
          (err: unknown) => !(err instanceof ApiError && err.status === 401),
        ),
    });
  }

  // ---- live updates ----------------------------------------------------------------------

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'hello':
        this.skew = frame.serverTime - Date.now();
        this.inbox.setRows(frame.inbox);
        this.tick();
        return;
      case 'rows':
        this.inbox.upsert(frame.rows);
        this.tick();
        // The day's figures move with the queue; fetched again shortly after a change, not per change.
        if (this.today && !this.todayTimer) this.todayTimer = setTimeout(() => void this.refreshToday(), 3000);
        return;
      case 'thread':
        if (frame.view.row.id === this.openId) this.thread.show(frame.view);
        this.inbox.upsert([frame.view.row]);
        return;
      case 'gone':
        if (frame.conversationId === this.openId) {
          this.toast('That conversation no longer exists.', 'error');
          this.navigate(null);
        }
        return;
      case 'notice':
        if (this.seenNotices.has(frame.id)) return;
        this.seenNotices.add(frame.id);
        this.toast(frame.ticket ? `${frame.ticket}: ${frame.text}` : frame.text, 'notice');
        return;
      case 'signed-out':
        this.signedOut(frame.reason);
        return;
    }
  }

  private async refreshToday(): Promise<void> {
    clearTimeout(this.todayTimer);
    this.todayTimer = undefined;
    const today = await this.api.today().catch(() => undefined);
    if (today && this.today) this.today.textContent = `Today: ${today.line}`;
  }

  private setStatus(status: LiveStatus): void {
    if (status === 'signed-out') return this.signedOut();
    this.status.dataset.status = status;
    this.status.textContent = status === 'online' ? 'Live' : status === 'connecting' ? 'Connecting…' : 'Offline: reconnecting…';
  }

  private tick(): void {
    const now = this.now();
    const counts = inboxCounts(this.inbox.all(), now);
    const sla = counts.waiting ? slaLevel(counts.longestWaitMs, this.session.settings.slaMs) : 'ok';
    replace(
      this.counts,
      h('span.count-waiting', { 'data-sla': sla }, `${counts.waiting} waiting`, counts.waiting ? h('span.longest', {}, ` · longest ${formatDuration(counts.longestWaitMs)}`) : null),
      h('span', {}, `${counts.held} with a person`),
      h('span', {}, `${counts.agent} with the agent`),
    );
    this.inbox.tick();
    document.title = `${counts.waiting ? `(${counts.waiting}) ` : ''}Console · ${this.session.settings.brandName}`;
  }

  // ---- navigation ------------------------------------------------------------------------

  private route(): void {
    const match = /^#\/c\/([A-Za-z0-9_-]+)$/.exec(location.hash);
    void this.open(match ? match[1]! : null);
  }

  private navigate(id: string | null): void {
    const hash = id ? `#/c/${id}` : '';
    if (location.hash === hash || (!id && !location.hash)) return void this.open(id);
    if (id) location.hash = hash;
    else history.pushState(null, '', location.pathname);
    this.route();
  }

  private async open(id: string | null): Promise<void> {
    if (id === this.openId) return;
    this.openId = id;
    this.inbox.setOpen(id);
    this.live.show(id);
    if (!id) return this.thread.clear();
    try {
      const { view } = await this.api.conversation(id);
      if (this.openId === id) this.thread.show(view);
    } catch (err) {
      this.toast(errorText(err), 'error');
      if (this.openId === id) this.navigate(null);
    }
  }

  private async openFromFilter(): Promise<void> {
    const text = this.inbox.filter.value.trim();
    const first = this.inbox.matches()[0];
    if (first) return this.navigate(first.id);
    if (/^[A-Za-z]{1,8}-\d{1,12}$/.test(text)) {
      try {
        const { conversationId } = await this.api.find(text);
        this.inbox.filter.value = '';
        this.inbox.render();
        return this.navigate(conversationId);
      } catch (err) {
        return this.toast(errorText(err), 'error');
      }
    }
    this.toast('No conversation matches.', 'error');
  }

  // ---- actions ---------------------------------------------------------------------------

  /** One action on the open conversation; undefined when refused (the person was told why). */
  private async act(action: string, body: Record<string, unknown> = {}): Promise<ActionResult | undefined> {
    const view = this.thread.current;
    if (!view || !this.canAct) return undefined;
    try {
      const result = await this.api.act(view.row.id, action, body);
      this.apply(result.view);
      return result;
    } catch (err) {
      this.toast(errorText(err), 'error');
      if (err instanceof ApiError && err.status === 401) this.signedOut();
      // The conversation moved on meanwhile: show where it stands now.
      if (err instanceof ApiError && err.status === 409) void this.api.conversation(view.row.id).then(({ view: fresh }) => this.apply(fresh), () => {});
      return undefined;
    }
  }

  private apply(view: ThreadView): void {
    if (view.row.id === this.openId) this.thread.show(view);
    this.inbox.upsert([view.row]);
  }

  private async send(text: string, internal: boolean): Promise<boolean> {
    return (await this.act('reply', { text, internal, clientId: randomId() })) !== undefined;
  }

  /** The original comes back in the answer and is shown under its line, on this screen only. */
  private async reveal(entry: ThreadEntry): Promise<void> {
    const id = this.thread.current?.row.id;
    const result = await this.act('reveal', { messageId: entry.id });
    if (id && result?.revealed) this.thread.showRevealed(id, result.revealed.messageId, result.revealed.text);
  }

  private async routeToAgent(): Promise<void> {
    const view = this.thread.current;
    const agents = this.session.settings.agents;
    if (!view?.can.route || agents.length === 0) return;
    const answer = await this.dialogs.ask({
      title: `Route ${view.row.ticket} to an agent`,
      body: [view.agent ? `Now with ${view.agent.name}${view.agent.pinned ? ' (pinned)' : ''}.` : 'The agent you pick answers from now on.'],
      confirm: 'Route',
      select: { label: 'Agent', options: agents.map((name) => ({ value: name, label: name })), ...(view.agent ? { value: view.agent.name } : {}) },
      note: { label: 'Note (optional, internal)', placeholder: 'Why this agent' },
      check: { label: 'Pin: keep it with this agent until someone picks again' },
    });
    if (answer) await this.act('route', { agent: answer.value, ...(answer.note ? { note: answer.note } : {}), ...(answer.checked ? { pin: true } : {}) });
  }

  private async chooseOption(option: BriefingOptionView, escalation: number): Promise<void> {
    if (option.risk !== 'high') {
      await this.act('decide', { optionId: option.id, escalation });
      return;
    }
    const answer = await this.dialogs.ask({
      title: option.label,
      body: [option.tradeoffs ?? 'This cannot be undone.', 'The agent continues with your decision.'],
      confirm: option.label,
      tone: 'danger',
      note: { label: 'Note for the agent (optional)', placeholder: 'What the agent should tell the customer' },
    });
    if (answer) await this.act('decide', { optionId: option.id, escalation, ...(answer.note ? { note: answer.note } : {}) });
  }

  private async returnToAgent(): Promise<void> {
    const view = this.thread.current;
    if (!view?.can.returnToAgent) return;
    const answer = await this.dialogs.ask({
      title: `Return ${view.row.ticket} to the agent`,
      body: ['The agent picks up with your note and what was said while you held it, so the customer need not repeat themselves.'],
      confirm: 'Return to agent',
      note: { label: 'Note for the agent', placeholder: 'What you found or decided, e.g. "Refund approved as store credit"' },
    });
    if (answer) await this.act('return', answer.note ? { note: answer.note } : {});
  }

  private async close(): Promise<void> {
    const view = this.thread.current;
    if (!view?.can.close) return;
    const answer = await this.dialogs.ask({
      title: `Close ${view.row.ticket}`,
      body: ['The customer is told it is closed; writing again reopens it with the agent.'],
      confirm: 'Close conversation',
      tone: 'danger',
      note: { label: 'Closing note (optional, internal)' },
    });
    if (answer) await this.act('close', answer.note ? { note: answer.note } : {});
  }

  private async transfer(): Promise<void> {
    const view = this.thread.current;
    const colleagues = this.session.settings.colleagues.filter((c) => c.role === 'operator');
    if (!view?.can.transfer || colleagues.length === 0) return;
    const answer = await this.dialogs.ask({
      title: `Transfer ${view.row.ticket}`,
      confirm: 'Transfer',
      select: { label: 'To', options: colleagues.map((c) => ({ value: c.id, label: c.name })) },
    });
    if (answer) await this.act('transfer', { to: answer.value });
  }

  private async signInLinkDialog(): Promise<void> {
    const { me, settings } = this.session;
    let operatorId = me.id.replace(/^console:/, '');
    if (me.role === 'manager' && settings.colleagues.length) {
      const answer = await this.dialogs.ask({
        title: 'Create a one-time sign-in link',
        confirm: 'Create link',
        select: { label: 'For', options: [{ value: operatorId, label: `${me.name} (you, another device)` }, ...settings.colleagues.map((c) => ({ value: c.id, label: `${c.name}${c.role === 'manager' ? ' · manager' : ''}` }))] },
      });
      if (!answer) return;
      operatorId = answer.value;
    }
    try {
      const { path, expiresInMs } = await this.api.signInLink(operatorId);
      const url = `${location.origin}${path}`;
      const field = h('input.link-field', { type: 'text', readonly: true, value: url, 'aria-label': 'Sign-in link' });
      this.dialogs.show('One-time sign-in link', [h('p', {}, `Works once, within ${formatDuration(expiresInMs)}. Send it privately.`), field]);
      field.select();
    } catch (err) {
      this.toast(errorText(err), 'error');
    }
  }

  private async signOut(): Promise<void> {
    await this.api.signOut().catch(() => {});
    location.assign('/console');
  }

  private help(): void {
    const list = h('dl.shortcuts');
    for (const [key, what] of SHORTCUTS) list.append(h('dt', {}, h('kbd', {}, key)), h('dd', {}, what));
    this.dialogs.show('Keyboard shortcuts', [list]);
  }

  // ---- keyboard --------------------------------------------------------------------------

  private onKey(event: KeyboardEvent): void {
    if (this.dialogs.isOpen || event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typingIn(event.target)) {
      if (event.key === 'Escape') {
        (event.target as HTMLElement).blur();
        this.inbox.focus();
      }
      return;
    }
    const view = this.thread.current;
    const key = event.key;
    const run = (fn: () => void) => {
      event.preventDefault();
      fn();
    };
    if (key === '?') return run(() => this.help());
    if (key === '/') return run(() => this.inbox.filter.focus());
    if (key === 'j' || key === 'k') return run(() => {
      const next = this.inbox.neighbour(key === 'j' ? 1 : -1);
      if (next) this.navigate(next);
    });
    if (key === 'Escape') return run(() => this.inbox.focus());
    if (!view) return;
    if (key === 'c' && (view.can.claim || view.can.takeOver)) return run(() => void this.act('claim'));
    if (key === 'r' && view.can.note) return run(() => this.thread.focusComposer(false));
    if (key === 'n' && view.can.note) return run(() => this.thread.focusComposer(true));
    if (key === 'b' && view.can.returnToAgent) return run(() => void this.returnToAgent());
    if (key === 'x' && view.can.close) return run(() => void this.close());
    if (/^[1-9]$/.test(key) && view.briefing && view.can.decide && view.briefing.open) {
      const option = view.briefing.options[Number(key) - 1];
      if (option) return run(() => void this.chooseOption(option, view.briefing!.escalation));
    }
  }

  // ---- messages to the person ------------------------------------------------------------

  private toast(text: string, kind: 'notice' | 'error'): void {
    const node = h(`div.toast.toast-${kind}`, { role: kind === 'error' ? 'alert' : undefined }, text);
    const dismiss = button('×', () => node.remove(), { className: 'toast-close', title: 'Dismiss' });
    dismiss.setAttribute('aria-label', 'Dismiss');
    node.append(dismiss);
    this.toasts.append(node);
    setTimeout(() => node.remove(), kind === 'error' ? 10_000 : 8_000);
  }

  private signedOut(reason?: string): void {
    replace(
      this.root,
      h(
        'main.signin-card',
        {},
        h('h1', {}, 'You are signed out'),
        h('p', {}, reason ?? 'Your session ended. Open a sign-in link to continue.'),
        h('p', {}, h('a.button.primary', { href: '/console' }, 'Sign in')),
      ),
    );
    this.root.className = 'signed-out';
  }

  private fatal(message: string): void {
    replace(this.root, h('main.signin-card', {}, h('h1', {}, 'The console could not load'), h('p', {}, message), h('p', {}, h('a.button.primary', { href: '/console' }, 'Try again'))));
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : 'That did not work; try again.';
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

void new ConsoleApp().boot();
