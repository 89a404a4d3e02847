/**
 * The widget's DOM, inside a shadow root. Every piece of text that comes from a person (customer,
 * assistant, operator, notice) is set with `textContent`, never parsed as HTML: a message reading
 * `<script>` shows exactly that.
 */
import type { ServerMessageFrame } from '../frames.ts';
import { WIDGET_CSS } from './styles.ts';

const SVG_NS = 'http://www.w3.org/2000/svg';
const ICONS = {
  chat: 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z',
  close: 'M6 6l12 12M18 6L6 18',
  send: 'M3 20.5l18-8.5L3 3.5v6.6l12.5 1.9L3 13.9z',
};

export interface ViewOptions {
  brandName: string;
  accent?: string;
  maxMessageChars: number;
  onSend(text: string): void;
  onRetry(clientId: string): void;
  onOpen(): void;
}

export class ChatView {
  readonly host: HTMLElement;
  private readonly root: HTMLElement;
  private readonly panel: HTMLElement;
  private readonly launcher: HTMLButtonElement;
  private readonly badge: HTMLElement;
  private readonly subtitle: HTMLElement;
  private readonly banner: HTMLElement;
  private readonly log: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly typing: HTMLElement;
  private readonly typingLabel: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly counter: HTMLElement;
  private readonly rendered = new Map<string, HTMLElement>();
  private typingTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly options: ViewOptions) {
    this.host = el('div');
    this.host.id = 'handoff-chat';
    const shadow = this.host.attachShadow({ mode: 'open' });
    // A constructed stylesheet is not an inline <style>, so hosts with a strict CSP need no 'unsafe-inline'.
    if ('adoptedStyleSheets' in shadow && typeof CSSStyleSheet !== 'undefined' && 'replaceSync' in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(WIDGET_CSS);
      shadow.adoptedStyleSheets = [sheet];
    } else {
      const style = el('style');
      style.textContent = WIDGET_CSS;
      shadow.append(style);
    }

    this.root = el('div', 'hc');
    if (options.accent && /^#[0-9a-f]{3,8}$|^[a-z]+$/i.test(options.accent)) this.root.style.setProperty('--hc-accent', options.accent);

    this.panel = el('section', 'hc-panel');
    this.panel.hidden = true;
    this.panel.setAttribute('role', 'dialog');
    this.panel.setAttribute('aria-label', `Chat with ${options.brandName}`);

    const header = el('header', 'hc-header');
    const avatar = el('div', 'hc-avatar');
    avatar.textContent = (options.brandName.trim()[0] ?? 'S').toUpperCase();
    const titles = el('div', 'hc-titles');
    const title = el('div', 'hc-title');
    title.textContent = options.brandName;
    this.subtitle = el('div', 'hc-subtitle');
    titles.append(title, this.subtitle);
    const close = el('button', 'hc-close');
    close.type = 'button';
    close.setAttribute('aria-label', 'Close chat');
    close.append(icon(ICONS.close, true));
    close.addEventListener('click', () => this.close());
    header.append(avatar, titles, close);

    this.banner = el('div', 'hc-banner');
    this.banner.hidden = true;
    this.banner.setAttribute('role', 'status');

    this.log = el('div', 'hc-log');
    this.log.setAttribute('role', 'log');
    this.log.setAttribute('aria-live', 'polite');
    this.empty = el('div', 'hc-empty');
    this.empty.textContent = `Hi! Ask us anything. Our assistant answers right away, and a person from ${options.brandName} can join whenever you need one.`;
    this.typing = el('div', 'hc-typing');
    this.typing.hidden = true;
    const dots = el('span', 'hc-dots');
    dots.append(el('i'), el('i'), el('i'));
    this.typingLabel = el('span');
    this.typing.append(dots, this.typingLabel);
    this.log.append(this.empty, this.typing);

    this.counter = el('div', 'hc-counter');
    this.counter.hidden = true;
    const composer = el('form', 'hc-composer');
    this.input = el('textarea', 'hc-input');
    this.input.rows = 1;
    this.input.placeholder = 'Write a message…';
    this.input.setAttribute('aria-label', 'Message');
    this.sendButton = el('button', 'hc-send');
    this.sendButton.type = 'submit';
    this.sendButton.setAttribute('aria-label', 'Send');
    this.sendButton.append(icon(ICONS.send, false));
    composer.append(this.input, this.sendButton);
    composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener('input', () => this.refreshComposer());

    this.panel.append(header, this.banner, this.log, this.counter, composer);

    this.launcher = el('button', 'hc-launcher');
    this.launcher.type = 'button';
    this.launcher.setAttribute('aria-label', `Chat with ${options.brandName}`);
    this.launcher.append(icon(ICONS.chat, false));
    this.badge = el('span', 'hc-badge');
    this.badge.hidden = true;
    this.launcher.append(this.badge);
    this.launcher.addEventListener('click', () => (this.panel.hidden ? this.open() : this.close()));

    this.root.append(this.panel, this.launcher);
    shadow.append(this.root);
    this.refreshComposer();
  }

  get isOpen(): boolean {
    return !this.panel.hidden;
  }

  open(): void {
    this.panel.hidden = false;
    this.scrollToEnd();
    this.input.focus();
    this.options.onOpen();
  }

  close(): void {
    this.panel.hidden = true;
  }

  /** Header line under the brand: who is speaking, or the connection state. */
  setSubtitle(text: string, online: boolean): void {
    this.subtitle.textContent = text;
    this.root.classList.toggle('hc-online', online);
  }

  /** A problem the visitor should know about (offline, refused); undefined hides it. */
  setBanner(text: string | undefined): void {
    this.banner.textContent = text ?? '';
    this.banner.hidden = !text;
  }

  /** Renders a message or notice from the server once; a repeat (replay overlap) is ignored. */
  addMessage(frame: ServerMessageFrame): void {
    if (this.rendered.has(frame.id)) return;
    const node = frame.notice || frame.role === 'system' ? this.noticeNode(frame) : this.messageNode(frame);
    this.rendered.set(frame.id, node);
    this.append(node);
    if (frame.role !== 'customer') this.hideTyping();
  }

  /** The count on the launcher of messages the visitor has not seen; 0 hides it. */
  setUnread(count: number): void {
    this.badge.textContent = count > 9 ? '9+' : String(count);
    this.badge.hidden = count === 0;
    this.launcher.setAttribute('aria-label', count ? `Chat with ${this.options.brandName} (${count} unread)` : `Chat with ${this.options.brandName}`);
  }

  /** The visitor's own message, shown at once and settled when the server confirms it. */
  addPending(clientId: string, text: string): void {
    const node = this.messageNode({ type: 'message', id: clientId, role: 'customer', name: 'You', text, at: new Date().toISOString() });
    node.classList.add('hc-pending');
    this.setMeta(node, 'Sending…');
    this.rendered.set(`pending:${clientId}`, node);
    this.append(node);
  }

  /** The server stored a pending message: it becomes a normal one. */
  settle(clientId: string, frame: ServerMessageFrame): void {
    const node = this.rendered.get(`pending:${clientId}`);
    if (!node) return this.addMessage(frame);
    this.rendered.delete(`pending:${clientId}`);
    if (this.rendered.has(frame.id)) return node.remove();
    this.rendered.set(frame.id, node);
    node.classList.remove('hc-pending', 'hc-failed');
    this.setMeta(node, formatTime(frame.at));
  }

  /** A pending message the server refused; `retryable` offers a retry link. */
  fail(clientId: string, reason: string, retryable: boolean): void {
    const node = this.rendered.get(`pending:${clientId}`);
    if (!node) return;
    node.classList.remove('hc-pending');
    node.classList.add('hc-failed');
    const meta = this.setMeta(node, reason);
    if (retryable) {
      const retry = el('button', 'hc-retry');
      retry.type = 'button';
      retry.textContent = 'Retry';
      retry.addEventListener('click', () => {
        node.classList.remove('hc-failed');
        node.classList.add('hc-pending');
        this.setMeta(node, 'Sending…');
        this.options.onRetry(clientId);
      });
      meta.append(' ', retry);
    }
  }

  showTyping(name: string): void {
    this.typingLabel.textContent = `${name} is typing…`;
    this.typing.hidden = false;
    this.log.append(this.typing);
    this.scrollToEnd();
    clearTimeout(this.typingTimer);
    // The reply may never come (the assistant was muted by a takeover): don't leave the dots forever.
    this.typingTimer = setTimeout(() => this.hideTyping(), 30_000);
  }

  hideTyping(): void {
    clearTimeout(this.typingTimer);
    this.typing.hidden = true;
  }

  /** Forget the transcript (the conversation was replaced by a new one). */
  clear(): void {
    for (const node of this.rendered.values()) if (!node.classList.contains('hc-pending')) node.remove();
    for (const [key, node] of this.rendered) if (!node.isConnected) this.rendered.delete(key);
    this.empty.hidden = this.rendered.size > 0;
  }

  private submit(): void {
    const text = this.input.value.trim();
    if (!text || [...text].length > this.options.maxMessageChars) return;
    this.input.value = '';
    this.refreshComposer();
    this.options.onSend(text);
  }

  private refreshComposer(): void {
    const length = [...this.input.value.trim()].length;
    const max = this.options.maxMessageChars;
    this.sendButton.disabled = length === 0 || length > max;
    this.counter.hidden = length < max * 0.8;
    this.counter.textContent = `${length} / ${max}`;
    this.counter.classList.toggle('hc-over', length > max);
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 120)}px`;
  }

  private messageNode(frame: ServerMessageFrame): HTMLElement {
    const mine = frame.role === 'customer';
    const node = el('div', `hc-msg hc-${frame.role}${mine ? ' hc-mine' : ''}`);
    node.dataset.role = frame.role;
    if (!mine) {
      const author = el('div', 'hc-author');
      const name = el('span', 'hc-name');
      name.textContent = frame.name;
      author.append(name);
      const tag = el('span', frame.role === 'operator' ? 'hc-tag hc-person' : 'hc-tag');
      tag.textContent = frame.role === 'agent' ? 'AI' : frame.role === 'operator' ? 'Team' : '';
      if (tag.textContent) author.append(tag);
      node.append(author);
    }
    const bubble = el('div', 'hc-bubble');
    bubble.textContent = frame.text;
    if (frame.attachments?.length) {
      const list = el('div', 'hc-attachments');
      for (const attachment of frame.attachments) {
        if (!/^https?:\/\//i.test(attachment.url)) continue;
        const link = el('a');
        link.href = attachment.url;
        link.target = '_blank';
        link.rel = 'noopener noreferrer nofollow';
        link.textContent = attachment.name || attachment.url;
        list.append(link);
      }
      bubble.append(list);
    }
    node.append(bubble);
    this.setMeta(node, formatTime(frame.at));
    return node;
  }

  private noticeNode(frame: ServerMessageFrame): HTMLElement {
    const node = el('div', `hc-notice hc-notice-${frame.notice ?? 'info'}`);
    node.dataset.notice = frame.notice ?? 'info';
    node.setAttribute('role', 'status');
    const text = el('span');
    text.textContent = frame.text;
    node.append(el('span', 'hc-notice-dot'), text);
    return node;
  }

  private setMeta(node: HTMLElement, text: string): HTMLElement {
    let meta = node.querySelector<HTMLElement>(':scope > .hc-meta');
    if (!meta) {
      meta = el('div', 'hc-meta');
      node.append(meta);
    }
    meta.textContent = text;
    return meta;
  }

  private append(node: HTMLElement): void {
    this.empty.hidden = true;
    this.log.insertBefore(node, this.typing);
    this.scrollToEnd();
  }

  private scrollToEnd(): void {
    this.log.scrollTop = this.log.scrollHeight;
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

function icon(path: string, stroke: boolean): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(SVG_NS, 'path');
  p.setAttribute('d', path);
  if (stroke) {
    p.setAttribute('fill', 'none');
    p.setAttribute('stroke', 'currentColor');
    p.setAttribute('stroke-width', '2');
    p.setAttribute('stroke-linecap', 'round');
  } else {
    p.setAttribute('fill', 'currentColor');
  }
  svg.append(p);
  return svg;
}

function formatTime(at: string): string {
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
