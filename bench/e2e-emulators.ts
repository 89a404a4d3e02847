/**
 * The far side of the end-to-end bench (bench/e2e.ts), in a process of its own so the load
 * generator's event loop only carries customers: the Slack Web API emulator, the Chat Completions
 * emulator (a short reply to every request, at once) and an SMTP sink for outbound mail.
 *
 * Run with `node --import tsx bench/e2e-emulators.ts` through `fork` (IPC). It sends
 * `{ type: 'ready', ... }` once listening, `{ type: 'mail', ... }` for each email the sink accepts,
 * and answers `{ id, cmd }` with `{ id, stats }`: `forget` zeroes every counter (a new cell), `mark`
 * restarts only the event-loop and CPU measures (the start of a cell's window), `stats` reads.
 *
 * Under load the emulators would keep every call and message they saw, and the Slack emulator
 * looks a thread up by scanning all its messages; here lookups go through an index and the
 * records are folded into counters every second. `conversations.replies` therefore only sees
 * replies of the last second (it is only read when a post is retried).
 */
import { performance } from 'node:perf_hooks';
import { SMTPServer } from 'smtp-server';
import { startChatEmulator } from '../test/emulators/openai-chat.ts';
import { SlackApiEmulator, type StoredMessage } from '../test/emulators/slack-api.ts';

export const CHANNEL = 'CBENCH0001';
export const AGENT_REPLY = 'Thanks for your message! Your order is on its way and should arrive within two days.';

export interface EmulatorStats {
  /** Web API calls by method. */
  slackCalls: Record<string, number>;
  /** chat.postMessage into a thread (mirrors), and without one (thread roots and cards). */
  slackThreadPosts: number;
  slackOtherPosts: number;
  chatRequests: number;
  chatRequestBytes: number;
  mails: number;
  /** Event-loop utilisation and CPU time of this process since the last `mark` or `forget`. */
  elu: number;
  cpuMs: number;
  wallMs: number;
}

export type HostMessage =
  | { type: 'ready'; slackApiUrl: string; botToken: string; channel: string; openaiBaseUrl: string; smtpPort: number }
  | { type: 'mail'; to: string[]; messageId: string; inReplyTo: string; at: number }
  | { id: number; stats: EmulatorStats };

/** Thread lookups by (channel, ts) in O(1); everything else is the real emulator. */
class IndexedSlack extends SlackApiEmulator {
  private readonly index = new Map<string, StoredMessage>();
  private indexed = 0;
  readonly counts: Record<string, number> = {};
  threadPosts = 0;
  otherPosts = 0;

  override message(channel: string, ts: string): StoredMessage | undefined {
    this.catchUp();
    return this.index.get(`${channel} ${ts}`);
  }

  private catchUp(): void {
    for (; this.indexed < this.messages.length; this.indexed++) {
      const m = this.messages[this.indexed]!;
      // Thread replies are never looked up by ts in the bench; roots are (every mirror names its thread).
      if (!m.thread_ts || m.thread_ts === m.ts) this.index.set(`${m.channel} ${m.ts}`, m);
    }
  }

  /** Folds the recorded calls into counters and drops the stored replies. */
  compact(): void {
    this.catchUp();
    for (const call of this.calls) {
      this.counts[call.method] = (this.counts[call.method] ?? 0) + 1;
      if (call.method === 'chat.postMessage') {
        if (call.args.thread_ts) this.threadPosts += 1;
        else this.otherPosts += 1;
      }
    }
    this.calls.length = 0;
    this.messages.length = 0;
    this.indexed = 0;
  }

  /** Between cells: no thread is in use any more, so the roots go too. */
  forget(): void {
    this.compact();
    for (const key of Object.keys(this.counts)) delete this.counts[key];
    this.threadPosts = 0;
    this.otherPosts = 0;
    this.index.clear();
  }
}

const slack = await new IndexedSlack().start();
slack.addChannel(CHANNEL, 'support');
const chat = await startChatEmulator();
chat.respondWith(() => ({ reply: AGENT_REPLY }));

let chatRequests = 0;
let chatRequestBytes = 0;
let mails = 0;

function compactChat(): void {
  for (const request of chat.requests) {
    chatRequests += 1;
    chatRequestBytes += Number(request.headers['content-length'] ?? 0);
  }
  chat.requests.length = 0;
}

const sink = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  maxClients: 10_000,
  onData(stream, session, callback) {
    // Only the head is read: who it is for, and its Message-ID (a repeat is a duplicate).
    let head = '';
    stream.on('data', (chunk: Buffer) => {
      if (head.length < 16_384) head += chunk.toString('utf8');
    });
    stream.on('end', () => {
      mails += 1;
      const headers = head.split(/\r?\n\r?\n/, 1)[0]!.replace(/\r?\n[ \t]+/g, ' ');
      const header = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(headers)?.[1]?.trim() ?? '';
      send({ type: 'mail', to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()), messageId: header('Message-ID'), inReplyTo: header('In-Reply-To'), at: Date.now() });
      callback();
    });
  },
});
sink.on('error', () => {});
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', () => resolve()));
const smtpPort = (sink.server.address() as { port: number }).port;

const compactTimer = setInterval(() => {
  slack.compact();
  compactChat();
}, 1000);

let eluSince = performance.eventLoopUtilization();
let cpuSince = process.cpuUsage();
let wallSince = performance.now();

function stats(): EmulatorStats {
  slack.compact();
  compactChat();
  const cpu = process.cpuUsage(cpuSince);
  return {
    slackCalls: { ...slack.counts },
    slackThreadPosts: slack.threadPosts,
    slackOtherPosts: slack.otherPosts,
    chatRequests,
    chatRequestBytes,
    mails,
    elu: performance.eventLoopUtilization(eluSince).utilization,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - wallSince,
  };
}

function send(message: HostMessage): void {
  process.send?.(message);
}

process.on('message', (message: { id: number; cmd: 'stats' | 'mark' | 'forget' }) => {
  if (message.cmd === 'forget') {
    slack.forget();
    compactChat();
    chatRequests = 0;
    chatRequestBytes = 0;
    mails = 0;
  }
  if (message.cmd === 'mark' || message.cmd === 'forget') {
    eluSince = performance.eventLoopUtilization();
    cpuSince = process.cpuUsage();
    wallSince = performance.now();
  }
  send({ id: message.id, stats: stats() });
});

// The parent going away ends this process too.
process.on('disconnect', () => {
  clearInterval(compactTimer);
  void Promise.allSettled([slack.stop(), chat.close(), new Promise<void>((resolve) => sink.close(() => resolve()))]).finally(() => process.exit(0));
});

send({ type: 'ready', slackApiUrl: slack.url, botToken: slack.botToken, channel: CHANNEL, openaiBaseUrl: chat.baseURL, smtpPort });
