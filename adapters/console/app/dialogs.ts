/**
 * Modal questions (return with a note, close, a risky option, transfer, route, help) on native <dialog>:
 * focus moves in and back, Escape cancels, Enter in the last field confirms.
 */
import { h, replace } from './dom.ts';

export interface AskOptions {
  title: string;
  /** Plain text lines under the title. */
  body?: string[];
  confirm: string;
  /** Marks the confirm button as dangerous/important. */
  tone?: 'primary' | 'danger';
  note?: { label: string; placeholder?: string; required?: boolean; value?: string };
  select?: { label: string; options: Array<{ value: string; label: string }>; value?: string };
  /** A checkbox under the fields. */
  check?: { label: string };
}

export interface AskResult {
  note: string;
  value: string;
  checked: boolean;
}

export class Dialogs {
  private readonly dialog: HTMLDialogElement;

  constructor(host: HTMLElement) {
    this.dialog = h('dialog.dialog', { 'aria-modal': 'true' });
    host.append(this.dialog);
  }

  get isOpen(): boolean {
    return this.dialog.open;
  }

  /** Asks; resolves with the answers, or undefined when cancelled. */
  ask(options: AskOptions): Promise<AskResult | undefined> {
    const returnFocus = document.activeElement instanceof HTMLElement ? document.activeElement : undefined;
    return new Promise((resolve) => {
      const form = h('form', { method: 'dialog' });
      const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
      form.append(h('h2', { id: titleId }, options.title));
      this.dialog.setAttribute('aria-labelledby', titleId);
      for (const line of options.body ?? []) form.append(h('p', {}, line));
      let select: HTMLSelectElement | undefined;
      if (options.select) {
        select = h('select', { id: `${titleId}-select`, required: true });
        for (const o of options.select.options) select.append(h('option', { value: o.value }, o.label));
        if (options.select.value !== undefined) select.value = options.select.value;
        form.append(h('label', { for: `${titleId}-select` }, options.select.label), select);
      }
      let note: HTMLTextAreaElement | undefined;
      if (options.note) {
        note = h('textarea', { id: `${titleId}-note`, rows: '4', placeholder: options.note.placeholder, required: options.note.required });
        note.value = options.note.value ?? '';
        form.append(h('label', { for: `${titleId}-note` }, options.note.label), note);
        note.addEventListener('keydown', (event) => {
          if (event.key === 'Enter' && (event.metaKey || event.ctrlKey)) {
            event.preventDefault();
            form.requestSubmit();
          }
        });
      }
      let check: HTMLInputElement | undefined;
      if (options.check) {
        check = h('input', { type: 'checkbox', id: `${titleId}-check` });
        form.append(h('label.check', { for: `${titleId}-check` }, check, ` ${options.check.label}`));
      }
      const cancel = h('button', { type: 'button', class: 'ghost' }, 'Cancel');
      const confirm = h('button', { type: 'submit', class: options.tone === 'danger' ? 'danger' : 'primary', value: 'ok' }, options.confirm);
      form.append(h('div.dialog-actions', {}, cancel, confirm));
      replace(this.dialog, form);

      let answered = false;
      const finish = (result: AskResult | undefined) => {
        if (answered) return;
        answered = true;
        if (this.dialog.open) this.dialog.close();
        returnFocus?.focus();
        resolve(result);
      };
      cancel.addEventListener('click', () => finish(undefined));
      this.dialog.addEventListener('cancel', () => finish(undefined), { once: true });
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        if (options.note?.required && !note?.value.trim()) {
          note?.focus();
          return;
        }
        finish({ note: note?.value.trim() ?? '', value: select?.value ?? '', checked: check?.checked ?? false });
      });
      this.dialog.showModal();
      (select ?? note ?? confirm).focus();
    });
  }

  /** Shows information (shortcuts, a link) until dismissed. */
  show(title: string, content: Node[]): void {
    const returnFocus = document.activeElement instanceof HTMLElement ? document.activeElement : undefined;
    const close = h('button', { type: 'button', class: 'primary' }, 'Close');
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    this.dialog.setAttribute('aria-labelledby', titleId);
    replace(this.dialog, h('div.dialog-info', {}, h('h2', { id: titleId }, title), ...content, h('div.dialog-actions', {}, close)));
    close.addEventListener('click', () => this.dialog.close());
    this.dialog.addEventListener('close', () => returnFocus?.focus(), { once: true });
    this.dialog.showModal();
    close.focus();
  }
}
