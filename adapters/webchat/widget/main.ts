/**
 * The embeddable widget's entry point. A host site adds one tag:
 *
 *   <script src="https://support.example.com/widget.js" async
 *           data-user-id="42" data-user-hash="<hex HMAC>" data-name="Ada" data-color="#0f766e"></script>
 *
 * or sets `window.HandoffChatSettings = { userId, userHash, name, email, color, open }` before it.
 * It exposes `window.HandoffChat` with open(), close() and shutdown() (call shutdown on logout).
 * Bundled and served by the bridge at /widget.js; `__WIDGET_DEFAULTS__` is filled in at build time.
 */
import { ChatClient, type ConnectionStatus, type Identity } from './client.ts';
import { ChatView } from './view.ts';
import type { ServerMessageFrame } from '../frames.ts';

/** Server-side settings baked into the bundle. */
export interface WidgetDefaults {
  brandName: string;
  assistantName: string;
  maxMessageChars: number;
}

interface Settings extends Identity {
  color?: string;
  open?: boolean;
}

interface PublicApi {
  open(): void;
  close(): void;
  shutdown(): void;
}

declare const __WIDGET_DEFAULTS__: WidgetDefaults;

declare global {
  interface Window {
    HandoffChat?: PublicApi;
    HandoffChatSettings?: Settings;
  }
}

(function boot(): void {
  if (window.HandoffChat) return; // the tag was included twice
  const script = document.currentScript as HTMLScriptElement | null;
  const base = serverBase(script);
  const settings = readSettings(script);
  const defaults = __WIDGET_DEFAULTS__;

  const mount = (): void => {
    let speaker = `${defaults.assistantName} · answers right away`;
    let status: ConnectionStatus = 'idle';
    const refreshSubtitle = (): void => {
      const text = status === 'connecting' ? 'Connecting…' : status === 'offline' ? 'Reconnecting…' : speaker;
      view.setSubtitle(text, status === 'online');
    };
    let lastSeen: string | undefined;
    const follow = (frame: ServerMessageFrame): void => {
      lastSeen = frame.id;
      // The header says who the visitor is talking to right now, following the handoff.
      if (frame.notice === 'escalated' || frame.notice === 'released') speaker = 'Waiting for a person…';
      else if (frame.notice === 'joined' || frame.notice === 'transferred') speaker = 'A person from our team is here';
      else if (frame.notice === 'returned' || frame.notice === 'reopened') speaker = `${defaults.assistantName} · answers right away`;
      else if (frame.notice === 'closed') speaker = 'Conversation closed · write to start a new one';
      else if (frame.role === 'operator') speaker = `${frame.name} · ${defaults.brandName} team`;
      else if (frame.role === 'agent') speaker = `${defaults.assistantName} · answers right away`;
      refreshSubtitle();
    };

    // Unread: messages after the last one the visitor saw with the panel open (kept across reloads).
    const readKey = `handoff-chat:read:${base}`;
    let lastRead = readStorage(readKey);
    let unread = 0;
    const markRead = (id: string): void => {
      lastRead = id;
      unread = 0;
      view.setUnread(0);
      writeStorage(readKey, id);
    };

    const client: ChatClient = new ChatClient(base, settings, {
      message(frame) {
        if (frame.clientId) view.settle(frame.clientId, frame);
        else view.addMessage(frame);
        follow(frame);
        if (view.isOpen || frame.clientId) markRead(frame.id);
        // Whoever wrote after a message had seen it (replayed own messages, another tab).
        else if (frame.id === lastRead || frame.role === 'customer') view.setUnread((unread = 0));
        else view.setUnread(++unread);
      },
      typing(name) {
        view.showTyping(name);
      },
      failed(clientId, message, retryable) {
        view.fail(clientId, message, retryable);
      },
      status(next, problem) {
        status = next;
        view.setBanner(problem);
        refreshSubtitle();
      },
      reset() {
        view.clear();
        speaker = `${defaults.assistantName} · answers right away`;
      },
    });

    const view: ChatView = new ChatView({
      brandName: defaults.brandName,
      accent: settings.color,
      maxMessageChars: defaults.maxMessageChars,
      onSend(text) {
        // Queue first so the bubble exists before a fast confirmation can arrive.
        const clientId = client.send(text);
        view.addPending(clientId, text);
      },
      onRetry(clientId) {
        client.retry(clientId);
      },
      onOpen() {
        if (lastSeen) markRead(lastSeen);
        client.start();
      },
    });
    refreshSubtitle();
    document.body.append(view.host);
    window.HandoffChat = {
      open: () => view.open(),
      close: () => view.close(),
      shutdown: () => {
        client.shutdown();
        view.clear();
        view.close();
      },
    };
    client.resumeIfKnown();
    if (settings.open) view.open();
  };

  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount, { once: true });
})();

function readStorage(key: string): string | undefined {
  try {
    return localStorage.getItem(key) ?? undefined;
  } catch {
    return undefined; // storage disabled: unread counts restart with the page
  }
}

function writeStorage(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage disabled or full: nothing to keep
  }
}

/** Where the bridge is: the script's own URL minus `/widget.js` (works behind a path prefix too). */
function serverBase(script: HTMLScriptElement | null): string {
  const src = script?.src;
  if (!src) return window.location.origin;
  const url = new URL(src, window.location.href);
  return `${url.origin}${url.pathname.replace(/\/widget\.js$/, '')}`.replace(/\/+$/, '');
}

function readSettings(script: HTMLScriptElement | null): Settings {
  const global = window.HandoffChatSettings ?? {};
  const data = script?.dataset ?? {};
  const pick = (value: unknown): string | undefined => (typeof value === 'string' && value.trim() ? value.trim() : undefined);
  const settings: Settings = {};
  const userId = pick(global.userId) ?? pick(data.userId);
  const userHash = pick(global.userHash) ?? pick(data.userHash);
  const name = pick(global.name) ?? pick(data.name);
  const email = pick(global.email) ?? pick(data.email);
  const color = pick(global.color) ?? pick(data.color);
  if (userId) settings.userId = userId;
  if (userHash) settings.userHash = userHash;
  if (name) settings.name = name;
  if (email) settings.email = email;
  if (color) settings.color = color;
  settings.open = global.open ?? data.open === 'true';
  return settings;
}
