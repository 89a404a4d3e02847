/**
 * The inbox pane: conversations in working order (waiting, held, with the agent, closed), wait
 * times that tick with their SLA colour, and arrow-key / j-k navigation. Rows are rebuilt from the
 * data on every change; focus stays on the same conversation.
 */
import { filterInbox, formatDuration, slaLevel, sortInbox } from '../../../cards/console/inbox.ts';
import type { InboxRow } from '../../../cards/console/types.ts';
import { formatTime, h, replace } from './dom.ts';

export interface InboxOptions {
  slaMs: number;
  meId: string;
  now(): number;
  open(id: string): void;
}

const SECTIONS: Array<{ state: InboxRow['state']; title: string; empty: string }> = [
  { state: 'waiting', title: 'Waiting for a person', empty: 'Nobody is waiting.' },
  { state: 'human', title: 'With a person', empty: 'Nobody is held.' },
  { state: 'agent', title: 'With the agent', empty: 'The agent has no conversations.' },
  { state: 'closed', title: 'Closed', empty: 'Nothing closed recently.' },
];

const PRIORITY_LABEL: Record<string, string> = { urgent: 'Urgent', high: 'High', normal: 'Normal', low: 'Low' };

export class InboxPane {
  readonly element: HTMLElement;
  readonly filter: HTMLInputElement;
  private readonly list: HTMLElement;
  private rows = new Map<string, InboxRow>();
  private openId: string | null = null;
  private showClosed = false;
  private order: string[] = [];

  constructor(private readonly options: InboxOptions) {
    this.filter = h('input.filter', { type: 'search', placeholder: 'Filter: ticket, customer, queue…  (/)', 'aria-label': 'Filter conversations', 'aria-keyshortcuts': '/' });
    this.filter.addEventListener('input', () => this.render());
    this.list = h('div.inbox-list');
    this.element = h('nav.inbox', { 'aria-label': 'Conversations' }, h('div.inbox-filter', {}, this.filter), this.list);
    this.list.addEventListener('keydown', (event) => this.onKey(event));
  }

  setRows(rows: InboxRow[]): void {
    this.rows = new Map(rows.map((r) => [r.id, r]));
    this.render();
  }

  /** Newer rows replace older ones; an older version never wins. */
  upsert(rows: InboxRow[]): void {
    for (const row of rows) {
      const known = this.rows.get(row.id);
      if (!known || known.version <= row.version) this.rows.set(row.id, row);
    }
    this.render();
  }

  all(): InboxRow[] {
    return [...this.rows.values()];
  }

  setOpen(id: string | null): void {
    this.openId = id;
    for (const node of Array.from(this.list.querySelectorAll<HTMLElement>('.row'))) {
      if (node.dataset.id === id) node.setAttribute('aria-current', 'true');
      else node.removeAttribute('aria-current');
    }
  }

  /** The conversation `step` rows away from the open one, in the order shown. */
  neighbour(step: number): string | undefined {
    if (this.order.length === 0) return undefined;
    const index = this.openId ? this.order.indexOf(this.openId) : -1;
    const next = index < 0 ? (step > 0 ? 0 : this.order.length - 1) : index + step;
    return this.order[Math.max(0, Math.min(this.order.length - 1, next))];
  }

  /** Visible rows matching the filter, in order. */
  matches(): InboxRow[] {
    return sortInbox(filterInbox(this.all(), this.filter.value), this.options.meId);
  }

  /** Moves focus to the open conversation's row (or the first). */
  focus(): void {
    const rows = Array.from(this.list.querySelectorAll<HTMLElement>('.row'));
    (rows.find((r) => r.dataset.id === this.openId) ?? rows[0])?.focus();
  }

  /** Updates the ticking times without rebuilding anything. */
  tick(): void {
    const now = this.options.now();
    for (const node of Array.from(this.list.querySelectorAll<HTMLElement>('[data-since]'))) {
      const ms = now - Date.parse(node.dataset.since!);
      node.textContent = formatDuration(ms);
      if (node.dataset.sla !== undefined) {
        const level = slaLevel(ms, this.options.slaMs);
        if (node.dataset.sla !== level) {
          node.dataset.sla = level;
          node.closest('.row')?.setAttribute('data-sla', level);
        }
      }
    }
  }

  render(): void {
    const focused = document.activeElement instanceof HTMLElement && this.list.contains(document.activeElement) ? document.activeElement.closest<HTMLElement>('.row')?.dataset.id : undefined;
    const rows = this.matches();
    const sections: HTMLElement[] = [];
    this.order = [];
    for (const section of SECTIONS) {
      const members = rows.filter((r) => r.state === section.state);
      const collapsed = section.state === 'closed' && !this.showClosed && !this.filter.value.trim();
      const header = h('h2.section-title', { id: `sec-${section.state}` }, section.title, h('span.count', {}, String(members.length)));
      const body = h('ul.rows', { 'aria-labelledby': `sec-${section.state}` });
      if (section.state === 'closed') {
        const toggle = h('button.section-toggle', { type: 'button', 'aria-expanded': String(!collapsed) }, collapsed ? 'Show' : 'Hide');
        toggle.addEventListener('click', () => {
          this.showClosed = !this.showClosed;
          this.render();
        });
        header.append(toggle);
      }
      if (!collapsed) {
        if (members.length === 0) body.append(h('li.empty', {}, this.filter.value.trim() ? 'No match.' : section.empty));
        for (const row of members) {
          body.append(h('li', {}, this.rowNode(row)));
          this.order.push(row.id);
        }
      }
      sections.push(h(`section.section.sec-${section.state}`, {}, header, body));
    }
    replace(this.list, ...sections);
    this.tick();
    if (focused) this.list.querySelector<HTMLElement>(`.row[data-id="${CSS.escape(focused)}"]`)?.focus();
  }

  private rowNode(row: InboxRow): HTMLElement {
    const now = this.options.now();
    const mine = row.owner?.id === this.options.meId;
    let when: HTMLElement;
    if (row.state === 'waiting' && row.waitingSince) {
      const level = slaLevel(now - Date.parse(row.waitingSince), this.options.slaMs);
      when = h('span.when.wait', { 'data-since': row.waitingSince, 'data-sla': level, title: 'Waiting for a person' });
    } else if (row.state === 'human' && row.heldSince) {
      when = h('span.when', { 'data-since': row.heldSince, title: 'Held for' });
    } else {
      when = h('span.when', { title: new Date(row.lastActivityAt).toLocaleString() }, formatTime(row.lastActivityAt, now));
    }
    const middle = row.intent ?? (row.preview ? `${row.preview.who}: ${row.preview.text}` : row.subject ?? '');
    const tags: Array<HTMLElement | string> = [];
    if (row.priority && row.priority !== 'normal' && (row.state === 'waiting' || row.state === 'human')) tags.push(h(`span.pill.prio-${row.priority}`, {}, PRIORITY_LABEL[row.priority] ?? row.priority));
    if (row.owner) tags.push(h(`span.owner${mine ? '.mine' : ''}`, { title: `Held by ${row.owner.name}${row.owner.workspace !== 'console' ? ` (in ${row.owner.workspace})` : ''}` }, mine ? 'You' : row.owner.name));
    if (row.awaitingReply) tags.push(h('span.pill.reply-due', {}, 'Customer waiting'));
    tags.push(h('span.queue', {}, `${row.queue} · ${row.origin}`));
    const node = h(
      'button.row',
      { type: 'button', 'data-id': row.id, 'data-state': row.state, 'aria-current': row.id === this.openId ? 'true' : undefined, 'aria-label': `${row.ticket}, ${row.customer}, ${stateWords(row)}` },
      h('span.row-top', {}, h('span.ticket', {}, row.ticket), h('span.customer', {}, row.customer), when),
      h('span.row-mid', {}, middle),
      h('span.row-bot', {}, ...tags),
    );
    if (row.state === 'waiting') node.setAttribute('data-sla', when.dataset.sla ?? 'ok');
    node.addEventListener('click', () => this.options.open(row.id));
    return node;
  }

  private onKey(event: KeyboardEvent): void {
    const current = (event.target as HTMLElement).closest<HTMLElement>('.row');
    if (!current) return;
    const rows = Array.from(this.list.querySelectorAll<HTMLElement>('.row'));
    const index = rows.indexOf(current);
    let next: HTMLElement | undefined;
    if (event.key === 'ArrowDown') next = rows[index + 1];
    else if (event.key === 'ArrowUp') next = rows[index - 1];
    else if (event.key === 'Home') next = rows[0];
    else if (event.key === 'End') next = rows.at(-1);
    else return;
    event.preventDefault();
    next?.focus();
  }
}

function stateWords(row: InboxRow): string {
  switch (row.state) {
    case 'waiting':
      return 'waiting for a person';
    case 'human':
      return `held by ${row.owner?.name ?? 'an operator'}`;
    case 'agent':
      return 'with the agent';
    case 'closed':
      return 'closed';
  }
}
