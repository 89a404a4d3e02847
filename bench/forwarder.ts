/**
 * The bare forwarder of the end-to-end bench (bench/e2e.ts): the work one web chat exchange cannot
 * avoid, and nothing else. It speaks enough of the web chat protocol for the bench's customers
 * (POST /webchat/session, WebSocket hello -> ready, message frames; the first message opens the
 * conversation and brings a token frame), and per customer message it
 *   1. confirms the message to the socket and posts it into the conversation's Slack thread
 *      (chat.postMessage; the first message posts the thread's root first),
 *   2. asks the Chat Completions API for an answer, with a system prompt and the transcript so far,
 *   3. sends the answer to the socket and posts it into the thread.
 * Slack posts of a conversation go out in order, one after the other; the model call does not
 * wait for them. Nothing is stored, nothing is retried, no tokens are checked: state is in memory.
 * HTTP calls use node:http with keep-alive connections.
 *
 * Environment: PORT, HOST, SLACK_API_URL, SLACK_BOT_TOKEN, SLACK_CHANNEL_ID, OPENAI_BASE_URL,
 * OPENAI_API_KEY, OPENAI_MODEL. Serves GET /healthz. SIGTERM stops it.
 */
import { randomUUID } from 'node:crypto';
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

const env = process.env;
const PORT = Number(env.PORT ?? 0);
const HOST = env.HOST ?? '127.0.0.1';
const SLACK_API_URL = new URL(env.SLACK_API_URL ?? 'http://127.0.0.1:1/api/');
const SLACK_TOKEN = env.SLACK_BOT_TOKEN ?? '';
const CHANNEL = env.SLACK_CHANNEL_ID ?? '';
const OPENAI_URL = new URL(`${(env.OPENAI_BASE_URL ?? 'http://127.0.0.1:1/v1').replace(/\/+$/, '')}/chat/completions`);
const OPENAI_KEY = env.OPENAI_API_KEY ?? '';
const MODEL = env.OPENAI_MODEL ?? 'gpt-4o-mini';
const SYSTEM_PROMPT = 'You are the support assistant of Northwind. Answer briefly and politely.';
/** The model sees at most this many transcript messages. */
const WINDOW = 40;
const MAX_CHARS = 2000;

const keepAlive = new Agent({ keepAlive: true, maxSockets: 512 });
let failures = 0;

function postJson(url: URL, path: string, token: string, body: unknown): Promise<any> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: 'POST',
        agent: keepAlive,
        headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data), authorization: `Bearer ${token}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
            else resolve(parsed);
          } catch (err) {
            reject(err as Error);
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function slackPost(args: { text: string; thread_ts?: string }): Promise<string> {
  const result = await postJson(SLACK_API_URL, `${SLACK_API_URL.pathname}chat.postMessage`, SLACK_TOKEN, { channel: CHANNEL, ...args });
  if (!result.ok) throw new Error(`slack: ${result.error}`);
  return String(result.ts);
}

async function complete(transcript: Turn[]): Promise<string> {
  const result = await postJson(OPENAI_URL, OPENAI_URL.pathname, OPENAI_KEY, {
    model: MODEL,
    messages: [{ role: 'system', content: SYSTEM_PROMPT }, ...transcript.slice(-WINDOW)],
  });
  const text = result.choices?.[0]?.message?.content;
  if (typeof text !== 'string' || !text) throw new Error('model: no answer');
  return text;
}

interface Turn {
  role: 'user' | 'assistant';
  content: string;
}

interface Conversation {
  id: string;
  transcript: Turn[];
  /** The thread's root ts, once posted. */
  root?: string;
  /** Slack posts of this conversation, in order. */
  posts: Promise<unknown>;
  sockets: Set<WebSocket>;
}

const sessions = new Map<string, Conversation | undefined>();
let messageCounter = 0;

function inThread(conversation: Conversation, text: string): void {
  conversation.posts = conversation.posts
    .then(() => slackPost({ text, thread_ts: conversation.root! }))
    .catch(() => {
      failures += 1;
    });
}

function messageFrame(role: 'customer' | 'agent', text: string, clientId?: string): string {
  messageCounter += 1;
  return JSON.stringify({
    type: 'message',
    id: `msg_${messageCounter}`,
    role,
    name: role === 'agent' ? 'Assistant' : 'You',
    text,
    at: new Date().toISOString(),
    ...(clientId ? { clientId } : {}),
  });
}

function serveSocket(ws: WebSocket): void {
  let token: string | undefined;
  ws.on('message', (data: RawData) => {
    let frame: { type?: string; token?: string; text?: string; clientId?: string };
    try {
      frame = JSON.parse(String(data));
    } catch {
      return ws.send(JSON.stringify({ type: 'error', code: 'malformed_frame', message: 'Frames must be JSON.' }));
    }
    if (frame.type === 'hello' && typeof frame.token === 'string' && sessions.has(frame.token)) {
      token = frame.token;
      const conversation = sessions.get(token);
      conversation?.sockets.add(ws);
      ws.send(JSON.stringify({ type: 'ready', token, ...(conversation ? { conversationId: conversation.id } : {}) }));
      return;
    }
    if (frame.type !== 'message' || !token || typeof frame.text !== 'string' || !frame.text.trim() || frame.text.length > MAX_CHARS || typeof frame.clientId !== 'string') {
      return ws.send(JSON.stringify({ type: 'error', code: 'malformed_frame', message: 'Unexpected frame.' }));
    }
    let conversation = sessions.get(token);
    if (!conversation) {
      const created: Conversation = { id: randomUUID(), transcript: [], posts: Promise.resolve(), sockets: new Set([ws]) };
      created.posts = slackPost({ text: 'New web chat conversation' }).then(
        (ts) => {
          created.root = ts;
        },
        () => {
          failures += 1;
        },
      );
      sessions.set(token, created);
      conversation = created;
      ws.send(JSON.stringify({ type: 'token', token, conversationId: created.id }));
    }
    void exchange(conversation, ws, frame.text, frame.clientId);
  });
  ws.on('close', () => {
    const conversation = token ? sessions.get(token) : undefined;
    conversation?.sockets.delete(ws);
    // Nothing is kept once the last window of a conversation closes (there is no store to resume from).
    if (conversation && conversation.sockets.size === 0) sessions.delete(token!);
  });
  ws.on('error', () => {});
}

async function exchange(conversation: Conversation, ws: WebSocket, text: string, clientId: string): Promise<void> {
  ws.send(messageFrame('customer', text, clientId));
  ws.send(JSON.stringify({ type: 'typing', name: 'Assistant' }));
  conversation.transcript.push({ role: 'user', content: text });
  inThread(conversation, `*Customer:* ${text}`);
  let answer: string;
  try {
    answer = await complete(conversation.transcript);
  } catch {
    failures += 1;
    ws.send(JSON.stringify({ type: 'error', code: 'unavailable', message: 'No answer just now.', clientId }));
    return;
  }
  conversation.transcript.push({ role: 'assistant', content: answer });
  const frame = messageFrame('agent', answer);
  for (const socket of conversation.sockets) socket.send(frame);
  inThread(conversation, `*Assistant:* ${answer}`);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, failures }));
    return;
  }
  if (req.method === 'POST' && req.url === '/webchat/session') {
    void readBody(req).then(() => {
      const token = randomUUID();
      sessions.set(token, undefined);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify({ token, maxMessageChars: MAX_CHARS }));
    });
    return;
  }
  res.writeHead(404).end();
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_CHARS * 12 + 4096 });
server.on('upgrade', (req, socket, head) => {
  if (req.url?.split('?')[0] !== '/webchat/ws') return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => serveSocket(ws));
});

server.listen(PORT, HOST, () => {
  process.stdout.write(`forwarder listening on ${HOST}:${(server.address() as { port: number }).port}\n`);
});

process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
