import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Connection, ConversationHub } from '../../adapters/webchat/hub.ts';
import type { ServerMessageFrame } from '../../adapters/webchat/frames.ts';

/** Just enough of a ws socket for a Connection: open, and every frame it is sent kept. */
function fakeSocket(): { socket: WebSocket; sent: () => Array<{ type: string; id?: string; clientId?: string }>; closed: number[] } {
  const frames: string[] = [];
  const closed: number[] = [];
  const socket = {
    readyState: WebSocket.OPEN,
    bufferedAmount: 0,
    send: (data: string) => frames.push(data),
    close: (code: number) => closed.push(code),
    terminate: () => {},
  } as unknown as WebSocket;
  return { socket, sent: () => frames.map((f) => JSON.parse(f) as { type: string; id?: string }), closed };
}

const frame = (id: string, clientId?: string): ServerMessageFrame => ({ type: 'message', id, role: 'agent', name: 'Assistant', text: id, at: '2024-01-01T00:00:00.000Z', ...(clientId ? { clientId } : {}) });

describe('web chat hub', () => {
  it('a connection shows each message once, however many it has shown', () => {
    const { socket, sent } = fakeSocket();
    const connection = new Connection(socket);
    connection.beginReplay();
    connection.show(frame('live-3'));
    connection.finishReplay(['seen-1', 'seen-2'], [frame('seen-2'), frame('replay-1'), frame('live-3')]);
    for (let i = 0; i < 30; i++) connection.show(frame(`m${i % 20}`));
    connection.show(frame('m3', 'client-3')); // the sender's confirmation always goes out
    connection.show(frame('seen-1'));
    const ids = sent().map((f) => f.id);
    expect(ids).toEqual(['replay-1', 'live-3', ...Array.from({ length: 20 }, (_, i) => `m${i}`), 'm3']);
    for (const id of ['seen-1', 'seen-2', 'replay-1', 'live-3', 'm0', 'm19']) expect(connection.hasShown(id)).toBe(true);
    expect(connection.hasShown('m20')).toBe(false);
  });

  it('work waiting on a hold runs after the sender sees its own message and the held deliveries', () => {
    const hub = new ConversationHub(10);
    const { socket, sent } = fakeSocket();
    const connection = new Connection(socket);
    expect(hub.add(connection, 'c1')).toBe(true);
    const release = hub.hold('c1');
    expect(hub.isHeld('c1')).toBe(true);
    hub.deliver('c1', frame('notice-1'));
    // Another instance's change arrives while this socket's message is being stored: it waits.
    hub.afterHold('c1', () => connection.show(frame('reply-2')));
    connection.show(frame('own-1', 'client-1')); // the sender's confirmation
    expect(sent().map((f) => f.id)).toEqual(['own-1']);
    release();
    expect(hub.isHeld('c1')).toBe(false);
    expect(sent().map((f) => f.id)).toEqual(['own-1', 'notice-1', 'reply-2']);
    // Not held: at once.
    hub.afterHold('c1', () => connection.show(frame('later-3')));
    expect(sent().at(-1)?.id).toBe('later-3');
  });

  it('a connection knows the last message it sent, replay and held ones included', () => {
    const { socket } = fakeSocket();
    const connection = new Connection(socket);
    expect(connection.lastShownId).toBeUndefined();
    connection.beginReplay();
    connection.show(frame('answer-2')); // committed while the replay was read: held
    expect(connection.lastShownId).toBeUndefined();
    connection.finishReplay([], [frame('own-1', 'client-1')]);
    expect(connection.lastShownId).toBe('answer-2');
    connection.show(frame('own-1')); // already shown: nothing sent, nothing changes
    expect(connection.lastShownId).toBe('answer-2');
  });

  it('a socket that joins during a hold gets what was held when it is released', () => {
    const hub = new ConversationHub(10);
    const { socket, sent } = fakeSocket();
    const a = new Connection(socket);
    const release = hub.hold('c1');
    hub.deliver('c1', frame('r1'));
    expect(hub.watches('c1')).toBe(false);
    hub.add(a, 'c1');
    expect(hub.watches('c1')).toBe(true);
    expect(sent()).toEqual([]);
    release();
    expect(sent().map((f) => f.id)).toEqual(['r1']);
    hub.remove(a);
    expect(hub.watches('c1')).toBe(false);
    expect(hub.conversationIds()).toEqual([]);
  });

  it('refuses a connection past the cap without dropping any open one', () => {
    const hub = new ConversationHub(2);
    const [a, b, c] = [0, 1, 2].map(() => new Connection(fakeSocket().socket)) as [Connection, Connection, Connection];
    expect(hub.add(a, 'c1')).toBe(true);
    expect(hub.add(a, 'c1')).toBe(true);
    expect(hub.add(b, 'c1')).toBe(true);
    expect(hub.add(c, 'c1')).toBe(false);
    expect(hub.connections('c1')).toEqual([a, b]);
    expect(hub.all()).toEqual([a, b]);
  });
});

describe('frames sent together', () => {
  it('leave in one write on a real socket, and arrive whole and in order', async () => {
    const { createServer } = await import('node:http');
    const { WebSocketServer } = await import('ws');
    const server = createServer();
    const wss = new WebSocketServer({ noServer: true });
    const writes: number[] = [];
    const accepted = new Promise<Connection>((resolve) =>
      server.on('upgrade', (req, stream, head) => {
        const raw = stream as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
        const write = raw._write.bind(raw);
        const writev = raw._writev.bind(raw);
        raw._write = (...a) => (writes.push(1), write(...a));
        raw._writev = (...a) => (writes.push((a[0] as unknown[]).length), writev(...a));
        wss.handleUpgrade(req, stream, head, (ws) => resolve(new Connection(ws, stream)));
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new WebSocket(`ws://127.0.0.1:${(server.address() as { port: number }).port}`);
    const received: string[] = [];
    client.on('message', (d) => received.push((JSON.parse(String(d)) as { id?: string; type: string }).id ?? 'typing'));
    const connection = await accepted;
    await new Promise((r) => client.once('open', r));
    writes.length = 0;
    connection.show(frame('confirm', 'c1'));
    connection.send({ type: 'typing', name: 'Assistant' });
    connection.show(frame('reply'));
    await new Promise((r) => setTimeout(r, 50));
    expect(writes).toEqual([6]); // one write: three frames, each a header and a payload
    expect(received).toEqual(['confirm', 'typing', 'reply']);
    client.close();
    wss.close();
    await new Promise((r) => server.close(r));
  });
});
