/**
 * DOM helpers for the console page. Text goes in with `textContent` only: nothing from a person is
 * ever parsed as HTML, so a message reading `<script>` shows exactly that.
 */

type Child = Node | string | null | undefined | false;

/** `h('div.row.sla-late', { title: 'x' }, 'text', child)`: an element with classes, attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(spec: K | `${K}.${string}`, attrs: Record<string, string | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const [tag, ...classes] = spec.split('.') as [K, ...string[]];
  const node = document.createElement(tag);
  if (classes.length) node.className = classes.join(' ');
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? '' : value);
  }
  append(node, ...children);
  return node;
}

export function append(node: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Replaces every child of `node`. */
export function replace(node: Node, ...children: Child[]): void {
  while (node.firstChild) node.removeChild(node.firstChild);
  append(node, ...children);
}

export function button(label: string, onClick: () => void, options: { className?: string; title?: string; shortcut?: string; disabled?: boolean; type?: 'button' | 'submit' } = {}): HTMLButtonElement {
  const b = h('button', { type: options.type ?? 'button', class: options.className, title: options.title, 'aria-keyshortcuts': options.shortcut, disabled: options.disabled });
  b.textContent = label;
  if (options.shortcut) append(b, h('kbd', { 'aria-hidden': 'true' }, options.shortcut));
  b.addEventListener('click', onClick);
  return b;
}

/** 14:05 today, `Mon 14:05` this week, else `12 Mar 14:05`. */
export function formatTime(iso: string, now = Date.now()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const age = now - d.getTime();
  if (age < 20 * 3600_000 && new Date(now).getDate() === d.getDate()) return time;
  if (age < 6 * 24 * 3600_000) return `${d.toLocaleDateString([], { weekday: 'short' })} ${time}`;
  return `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`;
}

/** True when keyboard input belongs to a field, not to the page's shortcuts. */
export function typingIn(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement;
}
