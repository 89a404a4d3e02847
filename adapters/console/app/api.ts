/**
 * The console's HTTP calls. Actions carry the session's CSRF token in a header and JSON bodies; an
 * error answer becomes an `ApiError` with the bridge's message, ready to show as is.
 */
import type { ConsoleSettings, InboxRow, ThreadView, ViewerView } from '../../../cards/console/types.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface SessionInfo {
  me: ViewerView;
  csrf: string;
  settings: ConsoleSettings;
}

export interface ActionResult {
  ok: true;
  view: ThreadView;
  delivered?: boolean;
  /** A reveal's original text: for this person's screen only. */
  revealed?: { messageId: string; text: string };
}

export class Api {
  private csrf = '';

  async session(): Promise<SessionInfo> {
    const info = await this.request<SessionInfo>('GET', 'session');
    this.csrf = info.csrf;
    return info;
  }

  inbox(): Promise<{ rows: InboxRow[] }> {
    return this.request('GET', 'inbox');
  }

  conversation(id: string): Promise<{ view: ThreadView }> {
    return this.request('GET', `conversations/${encodeURIComponent(id)}`);
  }

  find(ticket: string): Promise<{ conversationId: string }> {
    return this.request('GET', `find?ticket=${encodeURIComponent(ticket)}`);
  }

  /** One press of a button; `requestId` makes a resend of the same press harmless. */
  act(conversationId: string, action: string, body: Record<string, unknown> = {}): Promise<ActionResult> {
    return this.request('POST', `conversations/${encodeURIComponent(conversationId)}/${action}`, { requestId: randomId(), ...body });
  }

  /** Today's figures, for managers. */
  today(): Promise<{ line: string }> {
    return this.request('GET', 'today');
  }

  signInLink(operatorId: string): Promise<{ path: string; expiresInMs: number }> {
    return this.request('POST', 'signin-links', { operatorId });
  }

  signOut(): Promise<{ ok: true }> {
    return this.request('POST', 'signout', {});
  }

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`/console/api/${path}`, {
        method,
        credentials: 'same-origin',
        headers: method === 'POST' ? { 'content-type': 'application/json', 'x-console-csrf': this.csrf } : {},
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch {
      throw new ApiError(0, 'offline', 'The bridge cannot be reached. Check your connection and try again.');
    }
    const data = (await response.json().catch(() => ({}))) as { error?: { code: string; message: string } };
    if (!response.ok) throw new ApiError(response.status, data.error?.code ?? 'error', data.error?.message ?? `The bridge answered ${response.status}.`);
    return data as T;
  }
}

export function randomId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
