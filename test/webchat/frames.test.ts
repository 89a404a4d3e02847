import { describe, expect, it } from 'vitest';
import { messageFrame, normalizeCustomerText, parseClientFrame } from '../../adapters/webchat/frames.ts';
import type { Message } from '../../src/model.ts';

const names = { assistant: 'Ava', brand: 'Northwind' };
const message = (over: Partial<Message>): Message => ({
  id: 'msg_1',
  at: '2025-03-01T10:00:00.000Z',
  author: { role: 'agent', name: 'offline' },
  text: 'Hello',
  visibility: 'public',
  ...over,
});

describe('client frames', () => {
  it('reads hello and message frames', () => {
    expect(parseClientFrame('{"type":"hello","token":"t","lastSeenId":"msg_1"}')).toEqual({
      ok: true,
      frame: { type: 'hello', token: 't', lastSeenId: 'msg_1' },
    });
    expect(parseClientFrame('{"type":"message","text":"hi","clientId":"c1"}')).toMatchObject({ ok: true });
  });

  it('answers anything else with a malformed_frame error that says what was expected', () => {
    for (const raw of ['not json', '[]', 'null', '{"type":"shout"}', '{"type":"message","text":1,"clientId":"c"}', '{"type":"message","text":"x","clientId":"<b>"}']) {
      const result = parseClientFrame(raw);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toMatchObject({ type: 'error', code: 'malformed_frame' });
    }
  });
});

describe('customer text', () => {
  it('keeps HTML as plain text and only tidies whitespace and control characters', () => {
    expect(normalizeCustomerText('  <img src=x onerror=alert(1)>\r\nok\u0000 ', 100)).toEqual({ ok: true, text: '<img src=x onerror=alert(1)>\nok' });
  });

  it('counts characters as people see them: an emoji is one', () => {
    expect(normalizeCustomerText('👍'.repeat(10), 10).ok).toBe(true);
    expect(normalizeCustomerText('👍'.repeat(11), 10)).toMatchObject({ ok: false, error: { code: 'message_too_long' } });
  });

  it('refuses empty text', () => {
    expect(normalizeCustomerText(' \n\t ', 10, 'c1')).toMatchObject({ ok: false, error: { code: 'empty_message', clientId: 'c1' } });
  });
});

describe('what the customer sees of a message', () => {
  it('names the assistant with the configured name, whatever agent produced it', () => {
    expect(messageFrame(message({}), names)).toEqual({ type: 'message', id: 'msg_1', role: 'agent', name: 'Ava', text: 'Hello', at: '2025-03-01T10:00:00.000Z' });
  });

  it("shows the operator's display name", () => {
    expect(messageFrame(message({ author: { role: 'operator', id: 'slack:U1', name: 'Dana' } }), names).name).toBe('Dana');
  });

  it('marks status notices with their kind, spoken by the brand', () => {
    const frame = messageFrame(message({ author: { role: 'system' }, notice: 'escalated', text: 'Ticket HB-1042' }), names);
    expect(frame).toMatchObject({ role: 'system', name: 'Northwind', notice: 'escalated', text: 'Ticket HB-1042' });
  });

  it('words the closed notice for the web chat: writing again starts a new conversation', () => {
    const frame = messageFrame(message({ author: { role: 'system' }, notice: 'closed', text: 'This conversation (HB-1042) is now closed. Reply any time to reopen it.' }), names, undefined, 'HB-1042');
    expect(frame.text).toBe('This conversation (HB-1042) is now closed. Write again any time to start a new one.');
  });

  it('passes on only web links as attachments', () => {
    const frame = messageFrame(
      message({ attachments: [{ name: 'label.pdf', url: 'https://files.example.com/label.pdf' }, { name: 'x', url: 'javascript:alert(1)' }] }),
      names,
    );
    expect(frame.attachments).toEqual([{ name: 'label.pdf', url: 'https://files.example.com/label.pdf' }]);
  });
});
