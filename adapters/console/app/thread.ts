/**
 * One conversation: the header with its actions, the transcript (who spoke, what stayed internal),
 * the reply box, and beside it the briefing card (Claim and the options), the customer and the
 * handoff history. Transcript lines are appended as they arrive; everything else is rebuilt from
 * each new view. Every text from a person is set as text. A line with masked values has a Reveal
 * button (the owner's); what it reveals is shown under that line on this screen only.
 */
import { agentsLine } from '../../../cards/console/thread.ts';
import type { BriefingOptionView, BriefingView, ThreadEntry, ThreadView } from '../../../cards/console/types.ts';
import { append, button, formatTime, h, replace } from './dom.ts';

export interface ThreadActions {
  claim(): void;
  option(option: BriefingOptionView, escalation: number): void;
  returnToAgent(): void;
  release(): void;
  transfer(): void;
  close(): void;
  /** Asks for the masked values of one line (the answer comes back through `showRevealed`). */
  reveal(entry: ThreadEntry): void;
  /** Picks the agent that answers. */
  route(): void;
  /** Sends text; resolves true when stored (the box is then cleared). */
  send(text: string, internal: boolean): Promise<boolean>;
}

const KIND_LABEL: Record<ThreadEntry['kind'], string> = {
  customer: 'Customer',
  agent: 'AI agent',
  operator: 'Operator',
  note: 'Internal note',
  notice: 'Sent to the customer',
  event: 'Bridge',
};

const STATE_LABEL = { waiting: 'Waiting for a person', human: 'With a person', agent: 'With the agent', closed: 'Closed' } as const;

export class ThreadPane {
  readonly main: HTMLElement;
  readonly details: HTMLElement;
  private readonly header: HTMLElement;
  private readonly log: HTMLElement;
  private readonly composer: HTMLFormElement;
  private readonly input: HTMLTextAreaElement;
  private readonly noteToggle: HTMLInputElement;
  private readonly hint: HTMLElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly counter: HTMLElement;
  private readonly rendered = new Map<string, HTMLElement>();
  private readonly drafts = new Map<string, string>();
  private view: ThreadView | undefined;
  private sending = false;
  /** The person ticked "Internal note" (a reply box that cannot reach the customer is a note anyway). */
  private noteChosen = false;

  constructor(
    private readonly actions: ThreadActions,
    private readonly settings: { notePrefix: string; maxMessageChars: number; canAct: boolean; hasColleagues: boolean; agents: string[] },
  ) {
    this.header = h('header.thread-header');
    this.log = h('ol.transcript', { role: 'log', 'aria-live': 'polite', 'aria-label': 'Transcript', tabindex: '0' });
    this.input = h('textarea.reply-input', { rows: '3', 'aria-label': 'Reply', 'aria-keyshortcuts': 'r' });
    this.noteToggle = h('input', { type: 'checkbox', id: 'note-toggle', 'aria-keyshortcuts': 'n' });
    this.hint = h('p.reply-hint', { id: 'reply-hint' });
    this.counter = h('span.counter');
    this.sendButton = h('button.primary.send', { type: 'submit' }, 'Send');
    this.input.setAttribute('aria-describedby', 'reply-hint');
    this.composer = h(
      'form.composer',
      {},
      this.hint,
      this.input,
      h('div.composer-bar', {}, h('label.note-toggle', { for: 'note-toggle' }, this.noteToggle, ' Internal note'), h('span.keys', {}, 'Enter to send · Shift+Enter for a new line'), this.counter, this.sendButton),
    );
    this.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.submit();
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.submit();
      }
    });
    this.input.addEventListener('input', () => {
      if (this.view) this.drafts.set(this.view.row.id, this.input.value);
      this.refreshComposer();
    });
    this.noteToggle.addEventListener('change', () => {
      this.noteChosen = this.noteToggle.checked;
      this.refreshComposer();
    });
    this.main = h('main.thread', { 'aria-label': 'Conversation' }, this.empty());
    this.details = h('aside.details', { 'aria-label': 'Briefing and history' });
  }

  get current(): ThreadView | undefined {
    return this.view;
  }

  /** Shows a conversation, or a newer version of the one shown (older versions are ignored). */
  show(view: ThreadView): void {
    const same = this.view?.row.id === view.row.id;
    if (same && this.view!.row.version > view.row.version) return;
    if (!same) {
      this.rendered.clear();
      replace(this.log);
      replace(this.main, this.header, this.log, this.composer);
      this.input.value = this.drafts.get(view.row.id) ?? '';
      this.noteChosen = false;
    }
    const nearBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
    this.view = view;
    this.renderHeader(view);
    this.renderEntries(view.entries);
    this.refreshReveal(view);
    this.renderDetails(view);
    this.refreshComposer();
    if (!same || nearBottom) this.log.scrollTop = this.log.scrollHeight;
  }

  clear(): void {
    this.view = undefined;
    this.rendered.clear();
    replace(this.main, this.empty());
    replace(this.details);
  }

  /** Puts the cursor in the reply box, as a note when `note`. */
  focusComposer(note: boolean): void {
    if (!this.view || !this.settings.canAct) return;
    this.noteChosen = note;
    this.refreshComposer();
    this.input.focus();
  }

  /** Shows a revealed original under its line, for this person only, until hidden or the conversation changes. */
  showRevealed(conversationId: string, messageId: string, text: string): void {
    if (this.view?.row.id !== conversationId) return;
    const node = this.rendered.get(messageId);
    if (!node) return;
    node.querySelector('.revealed')?.remove();
    const panel = h('div.revealed', { role: 'note' }, h('span.revealed-label', {}, 'Only you see this (the reveal is logged):'), h('span.revealed-text', {}, text));
    panel.append(button('Hide', () => panel.remove(), { className: 'ghost small' }));
    node.append(panel);
  }

  private refreshReveal(view: ThreadView): void {
    this.log.querySelectorAll<HTMLButtonElement>('button.reveal').forEach((node) => {
      node.disabled = !view.can.reveal;
      node.title = view.can.reveal ? 'Show the masked values to you only (logged)' : 'Only the person holding the conversation can reveal';
    });
  }

  private empty(): HTMLElement {
    return h(
      'div.empty-thread',
      {},
      h('h2', {}, 'Pick a conversation'),
      h('p', {}, 'Waiting conversations are at the top, longest wait first.'),
      h('p.keys', {}, 'j / k next and previous · Enter open · / filter · ? all shortcuts'),
    );
  }

  private renderHeader(view: ThreadView): void {
    const { row, can } = view;
    const actions = h('div.actions', { role: 'toolbar', 'aria-label': 'Actions' });
    if (can.claim) actions.append(button('Claim', () => this.actions.claim(), { className: 'primary act-claim', shortcut: 'c' }));
    if (can.takeOver) actions.append(button('Take over', () => this.actions.claim(), { className: 'act-claim', shortcut: 'c' }));
    if (can.returnToAgent) actions.append(button('Return to agent…', () => this.actions.returnToAgent(), { className: 'act-return', shortcut: 'b' }));
    if (can.release) actions.append(button('Release', () => this.actions.release(), { className: 'act-release' }));
    if (can.transfer && this.settings.hasColleagues) actions.append(button('Transfer…', () => this.actions.transfer(), { className: 'act-transfer' }));
    if (can.route && this.settings.agents.length > 0) actions.append(button('Route…', () => this.actions.route(), { className: 'act-route', title: 'Pick the agent that answers' }));
    if (can.close) actions.append(button('Close…', () => this.actions.close(), { className: 'act-close', shortcut: 'x' }));
    if (!this.settings.canAct) actions.append(h('span.readonly', { title: view.replyHint }, 'Read-only'));
    const owner = row.owner ? h('span.owner', {}, `Held by ${row.owner.name}${row.owner.workspace !== 'console' ? ` · in ${capitalize(row.owner.workspace)}` : ''}`) : null;
    replace(
      this.header,
      h(
        'div.thread-title',
        {},
        h('h1', {}, h('span.ticket', {}, row.ticket), ' ', h('span.customer', {}, view.customer.name)),
        h(
          'div.thread-sub',
          {},
          h(`span.state.st-${row.state}`, {}, STATE_LABEL[row.state]),
          owner,
          view.agent ? h('span.agent', {}, `Agent: ${view.agent.name}${view.agent.pinned ? ' (pinned)' : ''}`) : null,
          h('span.muted', {}, `${row.queue} · ${row.origin}`),
        ),
      ),
      actions,
    );
  }

  private renderEntries(entries: ThreadEntry[]): void {
    // Transcript lines never change once written: append what is new, in order.
    for (const entry of entries) {
      if (this.rendered.has(entry.id)) continue;
      const node = this.entryNode(entry);
      this.rendered.set(entry.id, node);
      this.log.append(node);
    }
  }

  private entryNode(entry: ThreadEntry): HTMLElement {
    const time = h('time', { datetime: entry.at, title: new Date(entry.at).toLocaleString() }, formatTime(entry.at));
    if (entry.kind === 'event') {
      return h('li.entry.e-event', { 'data-id': entry.id }, h('span.event-text', {}, entry.text), time);
    }
    const tags: HTMLElement[] = [];
    if (entry.kind === 'note') tags.push(h('span.tag.tag-internal', {}, 'Internal note'));
    else if (entry.visibility === 'internal') tags.push(h('span.tag.tag-internal', {}, 'Internal'));
    if (entry.kind === 'notice') tags.push(h('span.tag', {}, KIND_LABEL.notice));
    if (entry.via) tags.push(h('span.tag', {}, `via ${capitalize(entry.via)}`));
    const bubble = h('div.bubble', {}, entry.text);
    const node = h(`li.entry.e-${entry.kind}`, { 'data-id': entry.id, 'data-visibility': entry.visibility }, h('div.meta', {}, h('span.author', {}, entry.kind === 'notice' ? 'Status notice' : entry.author), ...tags, time), bubble);
    if (entry.attachments?.length) {
      const files = h('ul.files');
      for (const file of entry.attachments) {
        const link = file.url ? h('a', { href: file.url, target: '_blank', rel: 'noopener noreferrer nofollow' }, file.name) : h('span', {}, file.name);
        files.append(h('li', {}, link));
      }
      node.append(files);
    }
    if (entry.tools?.length) node.append(h('div.tools', {}, `Used ${entry.tools.map((t) => `${t.tool}${t.ok ? '' : ' (failed)'}`).join(', ')}`));
    if (entry.masked && this.settings.canAct) {
      const reveal = button('Reveal', () => this.actions.reveal(entry), { className: 'ghost small reveal' });
      node.append(h('div.masked', {}, h('span.muted', {}, `${entry.masked} value${entry.masked === 1 ? '' : 's'} masked`), reveal));
    }
    return node;
  }

  private renderDetails(view: ThreadView): void {
    const parts: HTMLElement[] = [];
    if (view.briefing) parts.push(this.briefingCard(view.briefing, view));
    const c = view.customer;
    parts.push(
      h(
        'section.card.customer-card',
        { 'aria-labelledby': 'customer-title' },
        h('h2', { id: 'customer-title' }, 'Customer'),
        h('dl', {}, ...pair('Name', c.name), ...(c.email ? pair('Email', c.email) : []), ...pair('Id', c.id), ...pair('Channel', c.origin), ...pair('Since', formatTime(view.createdAt))),
      ),
    );
    const history = h('ol.history');
    for (const item of [...view.history].reverse()) history.append(h(`li.h-${item.reason}`, {}, h('span', {}, item.text), h('time', { datetime: item.at }, formatTime(item.at))));
    if (view.history.length === 0) history.append(h('li.muted', {}, 'No handoffs yet: the agent has handled this on its own.'));
    parts.push(h('section.card.history-card', { 'aria-labelledby': 'history-title' }, h('h2', { id: 'history-title' }, 'Handoff history'), history));
    replace(this.details, ...parts);
  }

  private briefingCard(b: BriefingView, view: ThreadView): HTMLElement {
    const card = h(`section.card.briefing.prio-${b.priority}`, { 'aria-labelledby': 'briefing-title', 'data-open': String(b.open) });
    append(
      card,
      h('div.briefing-head', {}, h('h2', { id: 'briefing-title' }, `Briefing · ${b.intent}`), h(`span.pill.prio-${b.priority}`, {}, capitalize(b.priority))),
      h('p.briefing-status', {}, b.status),
      agentsLine(b) ? h('p.briefing-agents', {}, agentsLine(b)) : null,
      h('p.reason', {}, b.reason, h('span.trigger', {}, ` (${b.trigger.replace(/_/g, ' ')})`)),
      h('p.summary', {}, b.summary),
      h('div.question', {}, h('strong', {}, 'Needs an answer: '), b.pendingQuestion),
    );
    const facts: HTMLElement[] = [];
    for (const e of b.entities) facts.push(...pair(e.label, e.values.join(', ')));
    facts.push(...pair('Sentiment', b.sentiment), ...pair('Queue', b.queue));
    if (b.constraints.length) facts.push(...pair('Constraints', b.constraints.join(' · ')));
    if (b.actionsTaken.length) facts.push(...pair('Agent tried', b.actionsTaken.map((a) => `${a.tool}${a.ok ? '' : ' (failed)'}`).join(', ')));
    card.append(h('dl.facts', {}, ...facts));
    const buttons = h('div.options', { role: 'group', 'aria-label': 'Options' });
    if (view.can.claim) buttons.append(button('Claim', () => this.actions.claim(), { className: 'primary claim', shortcut: 'c' }));
    b.options.forEach((option, i) => {
      const enabled = view.can.decide && b.open;
      const node = button(option.label, () => this.actions.option(option, b.escalation), { className: `option risk-${option.risk}${option.chosen ? ' chosen' : ''}`, shortcut: enabled && i < 9 ? String(i + 1) : undefined, disabled: !enabled, title: option.tradeoffs });
      node.dataset.option = option.id;
      buttons.append(node);
      if (option.tradeoffs) buttons.append(h('p.tradeoffs', {}, option.tradeoffs));
    });
    if (buttons.childElementCount) card.append(buttons);
    return card;
  }

  private refreshComposer(): void {
    const view = this.view;
    if (!view) return;
    const canAct = this.settings.canAct && view.can.note;
    this.composer.hidden = !this.settings.canAct;
    const typedNote = this.input.value.trimStart().startsWith(this.settings.notePrefix);
    const internal = !view.can.replyToCustomer || this.noteChosen || typedNote;
    this.noteToggle.disabled = !view.can.replyToCustomer;
    this.noteToggle.checked = !view.can.replyToCustomer || this.noteChosen;
    this.composer.classList.toggle('is-note', internal);
    this.hint.textContent = view.replyHint || (internal ? 'Internal note: only colleagues see this.' : `Your reply goes to ${view.customer.name}. Start with ${this.settings.notePrefix} (or tick Internal note) to keep it internal.`);
    this.input.placeholder = internal ? 'Write an internal note…' : `Reply to ${view.customer.name}…`;
    this.sendButton.textContent = internal ? 'Add note' : 'Send to customer';
    const length = this.input.value.trim().length;
    this.counter.textContent = length > this.settings.maxMessageChars * 0.8 ? `${length} / ${this.settings.maxMessageChars}` : '';
    this.counter.classList.toggle('over', length > this.settings.maxMessageChars);
    this.sendButton.disabled = !canAct || this.sending || length === 0 || length > this.settings.maxMessageChars;
    this.input.disabled = !canAct;
  }

  private async submit(): Promise<void> {
    const view = this.view;
    const text = this.input.value.trim();
    if (!view || !text || this.sending || text.length > this.settings.maxMessageChars) return;
    this.sending = true;
    this.refreshComposer();
    const internal = !view.can.replyToCustomer || this.noteChosen;
    try {
      if (await this.actions.send(text, internal)) {
        if (this.view?.row.id === view.row.id) this.input.value = '';
        this.drafts.delete(view.row.id);
      }
    } finally {
      this.sending = false;
      this.refreshComposer();
    }
  }
}

function pair(label: string, value: string): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
