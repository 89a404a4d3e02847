/**
 * The end-to-end bench: customers through the real path, next to a bare forwarder in the same run.
 * `npm run bench:e2e` (`tsx bench/e2e.ts`); `--quick` for a short run; `--help` for the options.
 *
 * Processes, all on loopback:
 *  - this one: the load generator (web chat customers over WebSocket, email customers over SMTP);
 *  - bench/e2e-emulators.ts: the Slack Web API emulator, the Chat Completions emulator (a short
 *    reply to every request) and an SMTP sink for the bridge's outbound mail;
 *  - the bridge, started as `npm start` starts it (`node [flags of the start script] --import tsx src/main.ts`, configured by
 *    the environment only), once per store: SQLite (a file) and Redis (a redis-server of its own,
 *    append-only file with `appendfsync always` unless `--redis-fsync` says otherwise);
 *  - bench/forwarder.ts: the bare forwarder, the same unavoidable work with no persistence.
 *
 * Each cell runs C closed-loop customers for a fixed time after a warm-up: a customer sends a
 * message, waits for the agent's reply frame, sends the next (a new conversation every
 * `--messages`). For every concurrency the forwarder runs first, then each bridge, so the ratios
 * compare cells measured close together; `--rounds n` repeats the whole sequence n times and judges
 * the targets on the median of the rounds' ratios (one noisy minute hits one round). Every customer message must get exactly one agent reply
 * frame; the bench counts the ones lost and repeated, and waits after each cell until Slack has
 * every mirror. Per cell it also reads the servers' CPU and their main thread's scheduling from
 * /proc (an off-CPU view), Redis's CPU, /healthz latency, and the event-loop use of the emulators
 * and of this process, to show the load generator is not the bottleneck. Email customers go
 * through the bridge's inbound SMTP (no forwarder counterpart).
 *
 * Memory: on fresh processes, N conversations of one exchange each are opened and left open; the
 * process's memory is read after full GCs (through the inspector, opened with SIGUSR1) before and
 * after. RSS moves by megabytes as the allocators keep or return pages, so the JS heap + external
 * memory per conversation is reported beside it.
 *
 * `--cpu-prof` starts the bridges with `--cpu-prof` and prints, per bridge cell, the functions with
 * the most self time in that cell's window (samples are cut by time, so start-up is left out), by
 * area, and the project's functions by inclusive time (bench/e2e-profile.ts).
 *
 * Progress goes to stderr; the results go to stdout, as aligned tables and then as markdown.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import { WebSocket } from 'ws';
import { startNodeFlags } from '../scripts/start-command.ts';
import { accepting, freePort } from '../test/support/redis-process.ts';
import type { EmulatorStats, HostMessage } from './e2e-emulators.ts';
import { profileFile, ProfileReader, readProfile, snapshotSources, type CpuProfile } from './e2e-profile.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
/** `npm start`'s Node flags: the bridge runs as it starts, and the forwarder on the same runtime settings. */
const NODE_FLAGS = startNodeFlags(ROOT);
const SIGNING_SECRET = '5ca1ab1e0ddba11c0ffee0123456789a';
const SESSION_SECRET = 'bench-e2e-session-secret-0123456789abcdef0123456789';
const SUPPORT_ADDRESS = 'support@northwind.test';
/** A customer that has not had its reply after this long counts it as lost and starts afresh. */
const REPLY_TIMEOUT_MS = 60_000;

// ---- options -------------------------------------------------------------------------------------

const HELP = `npm run bench:e2e -- [options]
  --quick                 ~5 s per cell, 1 s warm-up, 300 idle conversations
  --duration <s>          measured seconds per cell (default 20; quick 5)
  --warmup <s>            unmeasured seconds before each window (default 3; quick 1)
  --concurrency <list>    web chat customers per cell (default 1,20,100)
  --rounds <n>            run the web chat cells n times, interleaved, and judge the targets on the median
                          ratio of the rounds (default 1)
  --stores <list>         sqlite,redis (default both)
  --redis-fsync <mode>    the redis-server's appendfsync: always (default, durable), everysec, or off (no AOF)
  --sqlite-sync <mode>    the SQLite bridge's SQLITE_SYNCHRONOUS: full (default, durable) or normal
  --messages <n>          messages per conversation before a customer starts a new one (default 20)
  --idle <n>              open idle conversations for the RSS measure; 0 skips it (default 2000; quick 300)
  --email <n>             email customers per store (one cell each); 0 skips it (default 20)
  --no-forwarder          bridge cells only (no ratios)
  --cpu-prof              profile the bridges; print the top self-time functions per cell
  --cpu-prof-dir <dir>    where the .cpuprofile files go (default: a new temporary directory)
  --top <n>               functions listed per profile (default 25)
  --log-level <level>     the bridge's LOG_LEVEL (default info, as npm start)
  --md <file>             also write the markdown report to this file
  --keep                  keep the run directory (logs, SQLite file)
  --preload <n>           store n finished conversations (4 messages each) in each bridge's store before it starts
  --without <list>        leave parts out of the bridges, to see what each costs: model (the offline agent
                          answers: no model call), slack (no Slack workspace: the built-in console mirrors
                          into the store). The forwarder is unchanged, so the targets are not judged.
Environment: BRIDGE_<NAME>=value sets <NAME> for both bridges (e.g. BRIDGE_CONVERSATION_CACHE_SIZE=0).`;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    concurrency: { type: 'string', default: '1,20,100' },
    rounds: { type: 'string', default: '1' },
    stores: { type: 'string', default: 'sqlite,redis' },
    'redis-fsync': { type: 'string', default: 'always' },
    'sqlite-sync': { type: 'string', default: 'full' },
    messages: { type: 'string', default: '20' },
    idle: { type: 'string' },
    email: { type: 'string', default: '20' },
    'no-forwarder': { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    'cpu-prof-dir': { type: 'string' },
    top: { type: 'string', default: '25' },
    'log-level': { type: 'string', default: 'info' },
    md: { type: 'string' },
    keep: { type: 'boolean', default: false },
    preload: { type: 'string', default: '0' },
    without: { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});
if (args.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const positive = (raw: string | undefined, fallback: number, name: string): number => {
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: expected a number, got "${raw}"`);
  return value;
};
const QUICK = args.quick;
const DURATION_MS = positive(args.duration, QUICK ? 5 : 20, 'duration') * 1000;
const WARMUP_MS = positive(args.warmup, QUICK ? 1 : 3, 'warmup') * 1000;
const CONCURRENCY = args.concurrency.split(',').map((c) => Math.max(1, Math.floor(positive(c.trim(), 1, 'concurrency'))));
const ROUNDS = Math.max(1, Math.floor(positive(args.rounds, 1, 'rounds')));
const STORES = args.stores.split(',').map((s) => s.trim()) as Array<'sqlite' | 'redis'>;
for (const s of STORES) if (s !== 'sqlite' && s !== 'redis') throw new Error(`--stores: sqlite or redis, got "${s}"`);
const REDIS_FSYNC = args['redis-fsync'];
if (!['always', 'everysec', 'off'].includes(REDIS_FSYNC)) throw new Error(`--redis-fsync: always, everysec or off, got "${REDIS_FSYNC}"`);
const SQLITE_SYNC = args['sqlite-sync'];
if (!['full', 'normal'].includes(SQLITE_SYNC)) throw new Error(`--sqlite-sync: full or normal, got "${SQLITE_SYNC}"`);
const MESSAGES = Math.max(1, Math.floor(positive(args.messages, 20, 'messages')));
const IDLE = Math.floor(positive(args.idle, QUICK ? 300 : 2000, 'idle'));
const EMAIL_C = Math.floor(positive(args.email, 20, 'email'));
const PRELOAD = Math.floor(positive(args.preload, 0, 'preload'));
const FORWARDER = !args['no-forwarder'];
const CPU_PROF = args['cpu-prof'];
const WITHOUT = new Set(args.without.split(',').map((w) => w.trim()).filter(Boolean));
for (const w of WITHOUT) if (w !== 'model' && w !== 'slack') throw new Error(`--without: model or slack, got "${w}"`);
const TOP = Math.max(1, Math.floor(positive(args.top, 25, 'top')));

const runDir = mkdtempSync(join(tmpdir(), 'bench-e2e-'));
const profileDir = CPU_PROF ? (args['cpu-prof-dir'] ?? mkdtempSync(join(tmpdir(), 'bench-e2e-profiles-'))) : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });

const note = (text: string) => process.stderr.write(`${text}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Microseconds on the monotonic clock V8's profiler stamps its samples with. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

// ---- child processes -----------------------------------------------------------------------------

const cleanups: Array<() => Promise<unknown>> = [];
async function cleanup(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    note(`bench: ${signal}; stopping the processes it started`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** The emulator process, driven over IPC. */
class EmulatorHost {
  private child!: ChildProcess;
  private counter = 0;
  private readonly waiting = new Map<number, (stats: EmulatorStats) => void>();
  mailListener: ((mail: Extract<HostMessage, { type: 'mail' }>, at: number) => void) | undefined;
  info!: Extract<HostMessage, { type: 'ready' }>;

  async start(): Promise<void> {
    this.child = fork(join(ROOT, 'bench/e2e-emulators.ts'), [], { execArgv: ['--import', TSX], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.info = await new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`the emulator process exited (code ${code})`)));
      this.child.on('message', (message: HostMessage) => {
        if ('type' in message && message.type === 'ready') resolve(message);
        else if ('type' in message && message.type === 'mail') this.mailListener?.(message, performance.now());
        else if ('id' in message) {
          this.waiting.get(message.id)?.(message.stats);
          this.waiting.delete(message.id);
        }
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  command(cmd: 'stats' | 'mark' | 'forget'): Promise<EmulatorStats> {
    const id = ++this.counter;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.send({ id, cmd });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.disconnect();
      setTimeout(() => this.child.kill('SIGKILL'), 3000).unref();
    });
  }
}

type ServerKind = 'forwarder' | 'sqlite' | 'redis';
const LABEL: Record<ServerKind, string> = { forwarder: 'forwarder', sqlite: 'bridge SQLite', redis: 'bridge Redis' };

/** The bridge (as `npm start` runs it) or the forwarder, as a child process with its output in a file. */
class ServerProcess {
  child?: ChildProcess;
  port = 0;
  smtpPort = 0;
  /** The inspector's port: not listening until SIGUSR1 (used only to force a GC before reading memory). */
  inspectPort = 0;
  readonly logFile: string;

  constructor(
    readonly kind: ServerKind,
    private readonly env: Record<string, string>,
  ) {
    this.logFile = join(runDir, `${kind}.log`);
  }

  get label(): string {
    return LABEL[this.kind];
  }
  get pid(): number {
    return this.child!.pid!;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/webchat/ws`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.smtpPort = await freePort();
    this.inspectPort = await freePort();
    const entry = this.kind === 'forwarder' ? join(ROOT, 'bench/forwarder.ts') : join(ROOT, 'src/main.ts');
    const profiling = CPU_PROF && this.kind !== 'forwarder' ? ['--cpu-prof', '--cpu-prof-dir', profileDir!] : [];
    const out = openSync(this.logFile, 'a');
    // cwd is the run directory: no .env is read, and relative defaults land there.
    this.child = spawn(process.execPath, [...NODE_FLAGS, ...profiling, `--inspect-port=127.0.0.1:${this.inspectPort}`, '--import', TSX, entry], {
      cwd: runDir,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TMPDIR: tmpdir(), ...this.env, PORT: String(this.port), SMTP_INBOUND_PORT: String(this.smtpPort) },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    const deadline = Date.now() + 120_000;
    while (!(await healthy(this.url))) {
      if (this.child.exitCode !== null) throw new Error(`${this.label} exited while starting (code ${this.child.exitCode}); see ${this.logFile}`);
      if (Date.now() > deadline) throw new Error(`${this.label} not ready within 120 s; see ${this.logFile}`);
      await sleep(200);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}

/** A DevTools protocol session with a server process (SIGUSR1 opens its inspector): full GCs and memory figures. */
class Inspector {
  private counter = 0;
  private readonly waiting = new Map<number, (result: any) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as { id?: number; result?: unknown };
      if (message.id) this.waiting.get(message.id)?.(message.result);
    });
  }

  static async attach(server: ServerProcess): Promise<Inspector> {
    process.kill(server.pid, 'SIGUSR1');
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const list = JSON.parse((await httpCall(`http://127.0.0.1:${server.inspectPort}/json/list`, 'GET')).text) as Array<{ webSocketDebuggerUrl: string }>;
        const ws = new WebSocket(list[0]!.webSocketDebuggerUrl);
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        return new Inspector(ws);
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`no inspector on ${server.label}: ${(err as Error).message}`);
        await sleep(200);
      }
    }
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = ++this.counter;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Two full GCs, a moment for the allocator to hand pages back, then process.memoryUsage(). */
  async memoryAfterGc(): Promise<NodeJS.MemoryUsage> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    await sleep(500);
    const answer = await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
    return JSON.parse(answer.result.value as string) as NodeJS.MemoryUsage;
  }

  close(): void {
    this.ws.close();
  }
}

/** One HTTP request on a connection of its own (a reused keep-alive connection can meet the server closing it). */
function httpCall(url: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, agent: false, headers: { ...(data ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

async function healthy(base: string): Promise<boolean> {
  try {
    return (await httpCall(`${base}/healthz`, 'GET')).status === 200;
  } catch {
    return false;
  }
}

// ---- /proc ---------------------------------------------------------------------------------------

const TICK_MS = 10; // USER_HZ is 100 on Linux

interface CpuSample {
  /** The main thread (JavaScript, and whatever native calls block it). */
  main: number;
  /** Every other thread: libuv's pool (SQLite statements, fsync), V8's GC and compiler workers. Node 20 names them all "node". */
  other: number;
  /** The main thread's user and system time apart. */
  mainUser: number;
  mainSystem: number;
}

/** CPU milliseconds a process has used: its main thread and the others. */
function cpuOf(pid: number): CpuSample {
  const sample: CpuSample = { main: 0, other: 0, mainUser: 0, mainSystem: 0 };
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return sample;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const user = Number(fields[11]) * TICK_MS;
      const system = Number(fields[12]) * TICK_MS;
      if (Number(tid) === pid) {
        sample.main += user + system;
        sample.mainUser += user;
        sample.mainSystem += system;
      } else sample.other += user + system;
    } catch {
      // the thread ended meanwhile
    }
  }
  return sample;
}

function cpuDelta(a: CpuSample, b: CpuSample): CpuSample {
  return { main: b.main - a.main, other: b.other - a.other, mainUser: b.mainUser - a.mainUser, mainSystem: b.mainSystem - a.mainSystem };
}
const cpuTotal = (s: CpuSample) => s.main + s.other;

interface Sched {
  /** Main thread: ms on a CPU, ms runnable but waiting for one (the machine's other work), switches. */
  runMs: number;
  waitMs: number;
  voluntary: number;
  involuntary: number;
}

/** The main thread's scheduler figures (an off-CPU view: what is neither running nor waiting for a CPU is asleep). */
function schedOf(pid: number): Sched {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ');
    const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
    const count = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { runMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6, voluntary: count('voluntary_ctxt_switches'), involuntary: count('nonvoluntary_ctxt_switches') };
  } catch {
    return { runMs: 0, waitMs: 0, voluntary: 0, involuntary: 0 };
  }
}

/** Jiffies of every CPU of the machine, busy (not idle, not waiting for I/O) and in all, from /proc/stat. */
function machineCpu(): { busy: number; total: number } {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = fields.reduce((sum, n) => sum + n, 0);
    return { busy: total - fields[3]! - fields[4]!, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

interface Redis {
  url: string;
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/**
 * Redis's own counts so far, over a connection of its own: calls per command (`INFO commandstats`;
 * commands a Lua script makes count too) and `reads`, the requests it read from clients (round trips).
 */
async function redisCommandCounts(port: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const match of (await redisInfo(port, 'commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts[match[1]!] = Number(match[2]);
  counts.reads = Number(/^total_reads_processed:(\d+)/m.exec(await redisInfo(port, 'stats'))?.[1] ?? 0);
  return counts;
}

/**
 * A bridge's counters, from one read of its /metrics: SQLite's group commit (transactions fsynced or
 * not, and the writes they carried; NaN on Redis) and the agent turns started early, taken or discarded.
 */
async function bridgeCounters(url: string): Promise<{ writes: { synced: number; unsynced: number; writes: number }; early: { taken: number; discarded: number } }> {
  const text = (await httpCall(`${url}/metrics`, 'GET')).text;
  const read = (pattern: RegExp, absent = NaN) => Number(pattern.exec(text)?.[1] ?? absent);
  return {
    writes: {
      synced: read(/^handoff_store_transactions_total\{fsync="yes"\} (\d+)$/m),
      unsynced: read(/^handoff_store_transactions_total\{fsync="no"\} (\d+)$/m),
      writes: read(/^handoff_store_writes_total (\d+)$/m),
    },
    // A counter with labels shows no line before its first count.
    early: { taken: read(/^handoff_agent_early_turns_total\{outcome="taken"\} (\d+)$/m, 0), discarded: read(/^handoff_agent_early_turns_total\{outcome="discarded"\} (\d+)$/m, 0) },
  };
}

function redisInfo(port: number, section: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const done = () => {
      socket.destroy();
      resolve(text);
    };
    socket.setTimeout(5000, done);
    socket.on('error', done);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      // A bulk reply: $<length>\r\n<payload>\r\n.
      const header = /^\$(\d+)\r\n/.exec(text);
      if (header && Buffer.byteLength(text) >= header[0].length + Number(header[1]) + 2) done();
    });
    socket.write(`*2\r\n$4\r\nINFO\r\n$${section.length}\r\n${section}\r\n`);
  });
}

/** A redis-server of the bench's own, its append-only file in the run directory (fsync per `--redis-fsync`). */
async function startRedisServer(): Promise<Redis> {
  const port = await freePort();
  const dir = join(runDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const persistence = REDIS_FSYNC === 'off' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', REDIS_FSYNC];
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...persistence], { stdio: 'ignore' });
  child.on('error', () => {});
  const deadline = Date.now() + 10_000;
  while (!(await accepting(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('redis-server did not start (is it installed? apt-get install -y redis-server), or use --stores sqlite');
    await sleep(25);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid!,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

// ---- web chat customers --------------------------------------------------------------------------

const TEXTS = [
  'Where is my order {n}? It was supposed to arrive yesterday.',
  'Can I change the delivery address for order {n}?',
  'How long does shipping to Lisbon usually take?',
  'Do you have the blue rain jacket in size M?',
  'My parcel {n} shows delivered but I cannot find it.',
  'Is it possible to pay by bank transfer?',
  'What is your return window for shoes?',
  'The discount code SPRING{n} does not work at checkout.',
];
const textFor = (n: number) => TEXTS[n % TEXTS.length]!.replace('{n}', String(10_000 + (n % 9000)));

let addressCounter = 0;
/** A distinct client address per session (X-Forwarded-For), so per-address session limits see separate visitors. */
function nextAddress(): string {
  const n = ++addressCounter;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** What the customers of one cell saw. */
class Tally {
  sent = 0;
  replied = 0;
  /** Agent frames with an id this socket had already received. */
  duplicates = 0;
  /** Agent frames when no message was waiting for one (a second reply). */
  unexpected = 0;
  /** Customer messages never confirmed back to the sender. */
  unconfirmed = 0;
  /** Timed out waiting for the reply. */
  timedOut = 0;
  notices = 0;
  openFailures = 0;
  conversations = 0;
  readonly errors: Record<string, number> = {};
  /** [sentAt, repliedAt] in performance.now() ms. */
  readonly exchanges: Array<[number, number]> = [];

  error(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }
}

interface Pending {
  clientId: string;
  sentAt: number;
  confirmed: boolean;
  done: (repliedAt: number | undefined) => void;
}

class ChatCustomer {
  private ws: WebSocket | undefined;
  private pending: Pending | undefined;
  private seen = new Set<string>();
  private onReady: (() => void) | undefined;
  private counter = 0;

  constructor(
    private readonly server: ServerProcess,
    private readonly tally: Tally,
    readonly label: string,
  ) {}

  /** A new session, a socket, hello, ready. */
  async open(): Promise<void> {
    const session = await httpCall(`${this.server.url}/webchat/session`, 'POST', { name: `Customer ${this.label}` }, { 'x-forwarded-for': nextAddress() });
    if (session.status !== 200) throw new Error(`session: HTTP ${session.status}`);
    const { token } = JSON.parse(session.text) as { token: string };
    const ws = new WebSocket(this.server.wsUrl, { perMessageDeflate: false });
    this.ws = ws;
    this.seen = new Set();
    ws.on('message', (data) => this.onFrame(String(data)));
    ws.on('error', () => {});
    ws.on('close', () => {
      // A socket this customer already left (its previous conversation) changes nothing.
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.pending?.done(undefined);
      this.onReady = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ready frame within 30 s')), 30_000);
      ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', token })));
      ws.once('close', () => reject(new Error('socket closed before ready')));
      this.onReady = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.tally.conversations += 1;
  }

  /** Sends one message; resolves with the time its reply frame arrived, or undefined. */
  exchange(text: string): Promise<number | undefined> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.resolve(undefined);
    const clientId = `${this.label}-${++this.counter}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.tally.timedOut += 1;
        pending.done(undefined);
      }, REPLY_TIMEOUT_MS);
      const pending: Pending = {
        clientId,
        sentAt: performance.now(),
        confirmed: false,
        done: (repliedAt) => {
          if (this.pending !== pending) return;
          this.pending = undefined;
          clearTimeout(timer);
          if (!pending.confirmed) this.tally.unconfirmed += 1;
          if (repliedAt !== undefined) {
            this.tally.replied += 1;
            this.tally.exchanges.push([pending.sentAt, repliedAt]);
          }
          resolve(repliedAt);
        },
      };
      this.pending = pending;
      this.tally.sent += 1;
      ws.send(JSON.stringify({ type: 'message', text, clientId }));
    });
  }

  close(): void {
    this.ws?.close();
  }

  private onFrame(raw: string): void {
    const at = performance.now();
    const frame = JSON.parse(raw) as { type: string; role?: string; id?: string; clientId?: string; code?: string };
    switch (frame.type) {
      case 'ready':
        this.onReady?.();
        this.onReady = undefined;
        return;
      case 'message': {
        if (frame.role === 'customer') {
          if (this.pending && frame.clientId === this.pending.clientId) this.pending.confirmed = true;
          return;
        }
        if (frame.role !== 'agent') {
          this.tally.notices += 1;
          return;
        }
        if (this.seen.has(frame.id!)) {
          this.tally.duplicates += 1;
          return;
        }
        this.seen.add(frame.id!);
        if (this.pending) this.pending.done(at);
        else this.tally.unexpected += 1;
        return;
      }
      case 'error':
        this.tally.error(frame.code ?? 'error');
        if (this.pending && frame.clientId === this.pending.clientId) this.pending.done(undefined);
        return;
      default:
        return;
    }
  }
}

// ---- email customers -----------------------------------------------------------------------------

interface Mail {
  to: string[];
  messageId: string;
  at: number;
}

class MailCustomer {
  private readonly transport;
  private address = '';
  private conversation = 0;
  private lastReply: string | undefined;
  private references: string[] = [];
  private waiting: ((at: number | undefined) => void) | undefined;
  private readonly seen = new Set<string>();
  private counter = 0;

  constructor(
    server: ServerProcess,
    private readonly tally: Tally,
    private readonly index: number,
    private readonly byAddress: Map<string, MailCustomer>,
  ) {
    this.transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.smtpPort, secure: false, ignoreTLS: true, pool: true, maxConnections: 1, socketTimeout: 60_000 });
  }

  /** A new thread from a new address: a new conversation. */
  open(): void {
    this.byAddress.delete(this.address);
    this.conversation += 1;
    this.address = `customer${this.index}.${this.conversation}@c${this.index}.example`;
    this.byAddress.set(this.address, this);
    this.lastReply = undefined;
    this.references = [];
    this.tally.conversations += 1;
  }

  async exchange(text: string): Promise<number | undefined> {
    const sentAt = performance.now();
    const n = ++this.counter;
    const messageId = `<m${this.index}.${n}.${Date.now().toString(36)}@c${this.index}.example>`;
    this.tally.sent += 1;
    const replied = new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.tally.timedOut += 1;
        this.waiting = undefined;
        resolve(undefined);
      }, REPLY_TIMEOUT_MS);
      this.waiting = (at) => {
        clearTimeout(timer);
        this.waiting = undefined;
        resolve(at);
      };
    });
    try {
      await this.transport.sendMail({
        from: { name: `Customer ${this.index}`, address: this.address },
        to: SUPPORT_ADDRESS,
        subject: this.lastReply ? `Re: Order question ${this.index}.${this.conversation}` : `Order question ${this.index}.${this.conversation}`,
        text,
        messageId,
        ...(this.lastReply ? { inReplyTo: this.lastReply, references: [...this.references, this.lastReply].slice(-20) } : {}),
      });
    } catch (err) {
      this.tally.error(`smtp_${(err as { responseCode?: number }).responseCode ?? 'failed'}`);
      this.waiting?.(undefined);
      return replied;
    }
    this.references.push(messageId);
    const at = await replied;
    if (at !== undefined) {
      this.tally.replied += 1;
      this.tally.exchanges.push([sentAt, at]);
    }
    return at;
  }

  onMail(mail: Mail): void {
    if (this.seen.has(mail.messageId)) {
      this.tally.duplicates += 1;
      return;
    }
    this.seen.add(mail.messageId);
    if (!this.waiting) {
      this.tally.unexpected += 1;
      return;
    }
    this.lastReply = mail.messageId;
    this.waiting(mail.at);
  }

  close(): void {
    this.transport.close();
  }
}

// ---- cells ---------------------------------------------------------------------------------------

interface CellResult {
  server: ServerKind;
  /** Which of the `--rounds` this web chat cell belongs to (1-based). */
  round: number;
  channel: 'webchat' | 'email';
  concurrency: number;
  windowMs: number;
  throughput: number;
  p50: number;
  p95: number;
  p99: number;
  tally: Tally;
  /** Left without an answer after the drain: sent - replied. */
  lost: number;
  cpu: CpuSample;
  /** Server CPU ms per message answered in the window. */
  cpuPerMessage: number;
  /** The server's main thread over the window. */
  sched: Sched;
  redisCpuPerMessage?: number;
  /** Redis commands per message answered in the window, by command. */
  redisCommands?: Record<string, number>;
  /** SQLite transactions (fsynced and not) and writes per message answered in the window. */
  sqliteWrites?: { synced: number; unsynced: number; writes: number };
  /** Agent turns started early per message answered in the window: taken, and discarded. */
  earlyTurns?: { taken: number; discarded: number };
  healthzP99: number;
  healthzMax: number;
  loadElu: number;
  loadCpu: number;
  /** Share of the whole machine's CPU time in use over the window (every process, all cores). */
  machineBusy: number;
  /** CPU ms per message answered: the whole machine (every process, all cores), the emulator process, the load generator. */
  machineCpuPerMessage: number;
  emulatorsCpuPerMessage: number;
  loadCpuPerMessage: number;
  emulators: EmulatorStats;
  /** Slack thread posts per exchange over the whole cell (after the drain), and how many short of two per message sent. */
  mirrorsPerExchange: number;
  mirrorsMissing: number;
  chatCallsPerExchange: number;
  chatRequestKb: number;
  mirrorDrainMs: number;
  windowUs: [number, number];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** GET /healthz every 250 ms while `running()`, with a new connection each time. */
async function probeHealth(server: ServerProcess, running: () => boolean): Promise<number[]> {
  const times: number[] = [];
  while (running()) {
    const start = performance.now();
    await healthy(server.url);
    times.push(performance.now() - start);
    await sleep(250);
  }
  return times.sort((a, b) => a - b);
}

async function runCell(
  server: ServerProcess,
  channel: 'webchat' | 'email',
  concurrency: number,
  emulators: EmulatorHost,
  redis: Redis | undefined,
  timing: { warmupMs: number; durationMs: number } = { warmupMs: WARMUP_MS, durationMs: DURATION_MS },
): Promise<CellResult> {
  const tally = new Tally();
  await emulators.command('forget');
  let stopping = false;
  const byAddress = new Map<string, MailCustomer>();
  if (channel === 'email') emulators.mailListener = (mail, at) => {
    for (const to of mail.to) byAddress.get(to)?.onMail({ to: mail.to, messageId: mail.messageId, at });
  };

  const chats: ChatCustomer[] = [];
  const mails: MailCustomer[] = [];
  let sequence = 0;
  const loops: Array<Promise<void>> = [];
  for (let i = 0; i < concurrency; i++) {
    if (channel === 'webchat') {
      const customer = new ChatCustomer(server, tally, `${server.kind}${concurrency}c${i}`);
      chats.push(customer);
      loops.push(
        (async () => {
          while (!stopping) {
            try {
              await customer.open();
            } catch (err) {
              tally.openFailures += 1;
              tally.error(`open: ${(err as Error).message}`);
              await sleep(250);
              continue;
            }
            for (let k = 0; k < MESSAGES && !stopping; k++) {
              if ((await customer.exchange(textFor(sequence++))) === undefined) break;
            }
            if (!stopping) customer.close();
          }
        })(),
      );
    } else {
      const customer = new MailCustomer(server, tally, i, byAddress);
      mails.push(customer);
      loops.push(
        (async () => {
          while (!stopping) {
            customer.open();
            for (let k = 0; k < MESSAGES && !stopping; k++) {
              if ((await customer.exchange(textFor(sequence++))) === undefined) break;
            }
          }
        })(),
      );
    }
  }

  await sleep(timing.warmupMs);
  // The window.
  const t0 = performance.now();
  const us0 = monoUs();
  const cpu0 = cpuOf(server.pid);
  const sched0 = schedOf(server.pid);
  const redisCpu0 = redis ? cpuOf(redis.pid) : undefined;
  const machine0 = machineCpu();
  const emulatorsCpu0 = cpuOf(emulators.pid);
  const commands0 = redis ? await redisCommandCounts(redis.port) : undefined;
  const counters0 = server.kind !== 'forwarder' ? await bridgeCounters(server.url) : undefined;
  const writes0 = server.kind === 'sqlite' ? counters0?.writes : undefined;
  const early0 = counters0?.early;
  const elu0 = performance.eventLoopUtilization();
  const own0 = process.cpuUsage();
  await emulators.command('mark');
  let inWindow = true;
  const health = probeHealth(server, () => inWindow);
  await sleep(timing.durationMs);
  const t1 = performance.now();
  const us1 = monoUs();
  const cpu = cpuDelta(cpu0, cpuOf(server.pid));
  const sched1 = schedOf(server.pid);
  const sched: Sched = { runMs: sched1.runMs - sched0.runMs, waitMs: sched1.waitMs - sched0.waitMs, voluntary: sched1.voluntary - sched0.voluntary, involuntary: sched1.involuntary - sched0.involuntary };
  const redisCpu = redis && redisCpu0 ? cpuTotal(cpuDelta(redisCpu0, cpuOf(redis.pid))) : undefined;
  const machine1 = machineCpu();
  const emulatorsCpu = cpuTotal(cpuDelta(emulatorsCpu0, cpuOf(emulators.pid)));
  const commands1 = redis ? await redisCommandCounts(redis.port) : undefined;
  const counters1 = counters0 ? await bridgeCounters(server.url) : undefined;
  const writes1 = writes0 ? counters1?.writes : undefined;
  const early1 = counters1?.early;
  const loadElu = performance.eventLoopUtilization(elu0).utilization;
  const ownCpu = process.cpuUsage(own0);
  const emulatorWindow = await emulators.command('stats');
  inWindow = false;
  const healthTimes = await health;

  // The drain: no new messages; every customer waits for the reply it is owed.
  stopping = true;
  await Promise.race([Promise.all(loops), sleep(REPLY_TIMEOUT_MS + 10_000)]);
  // Mirrors still going out: wait until Slack has them all (or stops getting more).
  const drainStart = performance.now();
  let last = -1;
  let stats = await emulators.command('stats');
  // Bridges run --without slack post nothing there.
  const mirrored = channel === 'webchat' && (server.kind === 'forwarder' || !WITHOUT.has('slack'));
  if (mirrored) {
    for (;;) {
      if (stats.slackThreadPosts >= 2 * tally.sent && stats.slackThreadPosts === last) break;
      if (performance.now() - drainStart > 30_000) break;
      last = stats.slackThreadPosts;
      await sleep(250);
      stats = await emulators.command('stats');
    }
  } else {
    await sleep(500);
    stats = await emulators.command('stats');
  }
  const mirrorDrainMs = performance.now() - drainStart;
  for (const c of chats) c.close();
  for (const m of mails) m.close();
  emulators.mailListener = undefined;

  const windowMs = t1 - t0;
  const answered = tally.exchanges.filter(([, repliedAt]) => repliedAt >= t0 && repliedAt <= t1).length;
  const latencies = tally.exchanges
    .filter(([sentAt]) => sentAt >= t0 && sentAt <= t1)
    .map(([sentAt, repliedAt]) => repliedAt - sentAt)
    .sort((a, b) => a - b);
  const exchanges = Math.max(1, tally.replied);
  return {
    server: server.kind,
    round: 1,
    channel,
    concurrency,
    windowMs,
    throughput: (answered * 1000) / windowMs,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    tally,
    lost: tally.sent - tally.replied,
    cpu,
    cpuPerMessage: cpuTotal(cpu) / Math.max(1, answered),
    sched,
    ...(redisCpu !== undefined ? { redisCpuPerMessage: redisCpu / Math.max(1, answered) } : {}),
    ...(commands0 && commands1
      ? {
          redisCommands: Object.fromEntries(
            Object.entries(commands1)
              .map(([name, calls]) => [name, (calls - (commands0[name] ?? 0)) / Math.max(1, answered)] as const)
              .filter(([name, perMessage]) => perMessage > 0 && name !== 'info'),
          ),
        }
      : {}),
    ...(writes0 && writes1
      ? {
          sqliteWrites: {
            synced: (writes1.synced - writes0.synced) / Math.max(1, answered),
            unsynced: (writes1.unsynced - writes0.unsynced) / Math.max(1, answered),
            writes: (writes1.writes - writes0.writes) / Math.max(1, answered),
          },
        }
      : {}),
    ...(early0 && early1
      ? { earlyTurns: { taken: (early1.taken - early0.taken) / Math.max(1, answered), discarded: (early1.discarded - early0.discarded) / Math.max(1, answered) } }
      : {}),
    healthzP99: percentile(healthTimes, 99),
    healthzMax: healthTimes.at(-1) ?? NaN,
    loadElu,
    loadCpu: (ownCpu.user + ownCpu.system) / 1000 / windowMs,
    machineBusy: (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total),
    machineCpuPerMessage: ((machine1.busy - machine0.busy) * TICK_MS) / Math.max(1, answered),
    emulatorsCpuPerMessage: emulatorsCpu / Math.max(1, answered),
    loadCpuPerMessage: (ownCpu.user + ownCpu.system) / 1000 / Math.max(1, answered),
    emulators: emulatorWindow,
    mirrorsPerExchange: stats.slackThreadPosts / exchanges,
    mirrorsMissing: mirrored ? Math.max(0, 2 * tally.sent - stats.slackThreadPosts) : 0,
    chatCallsPerExchange: stats.chatRequests / exchanges,
    chatRequestKb: stats.chatRequests ? stats.chatRequestBytes / stats.chatRequests / 1024 : NaN,
    mirrorDrainMs,
    windowUs: [us0, us1],
  };
}

interface MemoryResult {
  server: ServerKind;
  conversations: number;
  /** process.memoryUsage() after full GCs: before, with half of them open, with all of them open. */
  before: NodeJS.MemoryUsage;
  half: NodeJS.MemoryUsage;
  after: NodeJS.MemoryUsage;
  /** RSS: (after - before) / conversations. Noisy: the allocators keep or hand back megabytes at will. */
  perConversation: number;
  /** JS heap used plus memory held outside it for JS objects (Buffers): (after - before) / conversations. */
  heapPerConversation: number;
  failed: number;
}

/** Opens `count` conversations (one exchange each) through `parallel` customers at a time. */
async function openConversations(server: ServerProcess, count: number, tally: Tally, label: string): Promise<ChatCustomer[]> {
  const open: ChatCustomer[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const customer = new ChatCustomer(server, tally, `${label}${i}`);
      try {
        await customer.open();
        if ((await customer.exchange(textFor(i))) !== undefined) open.push(customer);
        else customer.close();
      } catch {
        tally.openFailures += 1;
        customer.close();
      }
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  return open;
}

/** What JavaScript holds: the heap in use and the memory outside it that JS objects own (Buffers). */
const held = (m: NodeJS.MemoryUsage) => m.heapUsed + m.external;

/**
 * RSS per open idle web chat conversation: N conversations of one exchange each, left open, opened
 * in two halves. Memory is read after full GCs (through the inspector) before, between and after,
 * so the figure is what the open conversations keep, not the garbage their first exchange left.
 */
async function idleMemory(server: ServerProcess, count: number, emulators: EmulatorHost): Promise<MemoryResult> {
  await emulators.command('forget');
  const inspector = await Inspector.attach(server);
  try {
    const tally = new Tally();
    // Warm the paths first, so the delta is the conversations and not the code that serves them.
    for (const c of await openConversations(server, 50, tally, `${server.kind}warm`)) c.close();
    await sleep(1500);
    const before = await inspector.memoryAfterGc();
    const half = Math.floor(count / 2);
    const first = await openConversations(server, half, tally, `${server.kind}idleA`);
    await sleep(1500);
    const middle = await inspector.memoryAfterGc();
    const second = await openConversations(server, count - half, tally, `${server.kind}idleB`);
    await sleep(1500);
    const after = await inspector.memoryAfterGc();
    for (const c of [...first, ...second]) c.close();
    await sleep(1000);
    const open = first.length + second.length;
    return {
      server: server.kind,
      conversations: open,
      before,
      half: middle,
      after,
      perConversation: (after.rss - before.rss) / Math.max(1, open),
      heapPerConversation: (held(after) - held(before)) / Math.max(1, open),
      failed: count + 50 - tally.replied,
    };
  } finally {
    inspector.close();
  }
}

// ---- report --------------------------------------------------------------------------------------

const fmtMs = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(1) : Math.round(n).toString()) : 'n/a');
const fmtRate = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US')) : 'n/a');
const pct = (n: number) => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : 'n/a');
const times = (n: number) => (Number.isFinite(n) ? `×${n < 10 ? n.toFixed(1) : Math.round(n)}` : 'n/a');
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function errorsText(t: Tally, mirrorsMissing = 0): string {
  const parts = Object.entries(t.errors).map(([code, n]) => `${code} ${n}`);
  if (mirrorsMissing) parts.push(`Slack mirrors missing ${mirrorsMissing}`);
  if (t.timedOut) parts.push(`timeout ${t.timedOut}`);
  if (t.unconfirmed) parts.push(`unconfirmed ${t.unconfirmed}`);
  if (t.openFailures) parts.push(`open failed ${t.openFailures}`);
  if (t.notices) parts.push(`notices ${t.notices}`);
  return parts.join(', ') || '0';
}

// ---- main ----------------------------------------------------------------------------------------

/** The commit measured, and how many files of the bridge's code differ from it. */
function revision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['status', '--porcelain', '--', 'src', 'adapters', 'cards'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean).length;
    return changed ? `commit ${head} with ${changed} changed files in src/, adapters/, cards/` : `commit ${head}`;
  } catch {
    return 'commit unknown';
  }
}

/**
 * Stores `n` finished conversations, as a long-running desk would have: each with four messages,
 * its ticket and state indexes, and no work left, so the hot path runs beside them.
 */
async function preload(storeUrl: string, n: number): Promise<void> {
  const { openStore } = await import('../src/store/index.ts');
  const store = await openStore(storeUrl);
  const started = performance.now();
  try {
    const at = new Date().toISOString();
    for (let done = 0; done < n; ) {
      const batch = Math.min(500, n - done);
      await Promise.all(
        Array.from({ length: batch }, (_, i) => {
          const k = done + i;
          const id = `conv_preload_${k}`;
          const messages = ['Where is my order?', 'It left the warehouse today.', 'Thanks!', 'You are welcome.'].map((text, j) => ({
            id: `msg_preload_${k}_${j}`,
            at,
            author: { role: j % 2 === 0 ? ('customer' as const) : ('agent' as const) },
            text,
            visibility: 'public' as const,
          }));
          const conversation = {
            id,
            ticket: `PL-${k}`,
            origin: 'webchat' as const,
            customer: { id: `visitor-preload-${k}` },
            queue: 'general',
            state: 'closed' as const,
            ownershipVersion: 1,
            messages,
            history: [],
            decisions: [],
            agentTurns: 2,
            approvals: [],
            version: 0,
            createdAt: at,
            updatedAt: at,
            channelData: {},
          };
          return store.commit({
            conversation,
            expectedVersion: 0,
            appended: messages,
            indexes: [
              { op: 'set', key: `ticket:PL-${k}`, value: id },
              { op: 'add', key: 'state:closed', member: id },
            ],
          });
        }),
      );
      done += batch;
    }
  } finally {
    await store.close();
  }
  note(`preloaded ${n.toLocaleString('en-US')} conversations into ${storeUrl.startsWith('redis') ? 'Redis' : 'SQLite'} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const measured = revision();
  const cells = ROUNDS * CONCURRENCY.length * (STORES.length + (FORWARDER ? 1 : 0)) + (EMAIL_C ? STORES.length : 0);
  const budgetMs = cells * (WARMUP_MS + DURATION_MS + 2 * REPLY_TIMEOUT_MS) + 600_000;
  const watchdog = setTimeout(() => {
    note(`bench: over its time budget (${Math.round(budgetMs / 1000)} s); stopping.`);
    void cleanup().finally(() => process.exit(2));
  }, budgetMs);
  watchdog.unref();

  note(`bench:e2e: ${QUICK ? 'quick, ' : ''}${DURATION_MS / 1000} s per cell after ${WARMUP_MS / 1000} s warm-up; C = ${CONCURRENCY.join(' / ')}; stores ${STORES.join(', ')}; run directory ${runDir}`);
  const emulators = new EmulatorHost();
  await emulators.start();
  cleanups.push(() => emulators.stop());
  const { slackApiUrl, botToken, channel, openaiBaseUrl, smtpPort } = emulators.info;

  const policyFile = join(runDir, 'policy.json');
  // Every message gets an agent turn: no repetition or turn-cap escalation.
  writeFileSync(policyFile, JSON.stringify({ behaviour: { repeatThreshold: 1_000_000, turnCap: 1_000_000 } }));
  let redis: Redis | undefined;
  if (STORES.includes('redis')) {
    redis = await startRedisServer();
    cleanups.push(() => redis!.stop());
  }
  const bridgeEnv = (store: 'sqlite' | 'redis'): Record<string, string> => ({
    HOST: '127.0.0.1',
    LOG_LEVEL: args['log-level'],
    LOG_FORMAT: 'json',
    STORE_URL: store === 'redis' ? redis!.url : join(runDir, 'bridge.sqlite'),
    SQLITE_SYNCHRONOUS: SQLITE_SYNC,
    // BRIDGE_<NAME>=value in the bench's environment sets <NAME> for both bridges (a setting to compare).
    ...Object.fromEntries(Object.entries(process.env).flatMap(([k, v]) => (k.startsWith('BRIDGE_') && v !== undefined ? [[k.slice('BRIDGE_'.length), v]] : []))),
    POLICY_FILE: policyFile,
    BRAND_NAME: 'Northwind',
    SHUTDOWN_GRACE_MS: '10000',
    WEBCHAT_SESSION_SECRET: SESSION_SECRET,
    // Many customers share 127.0.0.1: each session names its own X-Forwarded-For; no customer hits the message limit.
    TRUST_PROXY: 'true',
    WEBCHAT_RATE_PER_MINUTE: '1000000',
    WEBCHAT_BURST: '1000000',
    ...(WITHOUT.has('slack') ? {} : { SLACK_BOT_TOKEN: botToken, SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_CHANNEL_ID: channel, SLACK_API_URL: slackApiUrl }),
    ...(WITHOUT.has('model') ? { FAQ_FILE: join(ROOT, 'config/faq.json') } : { OPENAI_API_KEY: 'sk-bench-e2e', OPENAI_BASE_URL: openaiBaseUrl }),
    EMAIL_ADDRESS: SUPPORT_ADDRESS,
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    SMTP_INBOUND_HOST: '127.0.0.1',
    SMTP_INBOUND_MAX_CONNECTIONS: '2000',
    SMTP_INBOUND_MAX_CONNECTIONS_PER_IP: '2000',
    EMAIL_AUTO_REPLIES_PER_ADDRESS: '0',
    EMAIL_AUTO_REPLIES_PER_DOMAIN: '0',
  });
  const servers = new Map<ServerKind, ServerProcess>();
  if (FORWARDER) {
    servers.set('forwarder', new ServerProcess('forwarder', { HOST: '127.0.0.1', SLACK_API_URL: slackApiUrl, SLACK_BOT_TOKEN: botToken, SLACK_CHANNEL_ID: channel, OPENAI_BASE_URL: openaiBaseUrl, OPENAI_API_KEY: 'sk-bench-e2e' }));
  }
  for (const store of STORES) {
    if (PRELOAD > 0) await preload(bridgeEnv(store).STORE_URL!, PRELOAD);
    servers.set(store, new ServerProcess(store, bridgeEnv(store)));
  }
  for (const server of servers.values()) cleanups.push(() => server.stop());
  // The sources the bridges compile now, to map profile positions back to lines afterwards.
  const sources = CPU_PROF ? snapshotSources(ROOT) : new Map<string, string>();
  await Promise.all([...servers.values()].map((s) => s.start()));
  note(`started: ${[...servers.values()].map((s) => `${s.label} (pid ${s.pid}, rss ${mb(rssOf(s.pid))})`).join(', ')}`);
  const idleRss = new Map([...servers.values()].map((s) => [s.kind, rssOf(s.pid)]));
  // CPU with no traffic at all (timers, polling), over 3 s.
  const quiet0 = new Map([...servers.values()].map((s) => [s.kind, cpuTotal(cpuOf(s.pid))]));
  await sleep(3000);
  const idleCpu = new Map([...servers.values()].map((s) => [s.kind, (cpuTotal(cpuOf(s.pid)) - quiet0.get(s.kind)!) / 3000]));
  note(`CPU with no traffic: ${[...servers.values()].map((s) => `${s.label} ${pct(idleCpu.get(s.kind)!)}`).join(', ')}`);

  // Idle conversations first, on fresh processes.
  const memory: MemoryResult[] = [];
  if (IDLE > 0) {
    for (const server of servers.values()) {
      const result = await idleMemory(server, IDLE, emulators);
      memory.push(result);
      note(
        `  idle ${server.label}: ${result.conversations} open conversations, rss ${mb(result.before.rss)} -> ${mb(result.half.rss)} -> ${mb(result.after.rss)}, ` +
          `${kb(result.perConversation)} each (heap used + external ${kb(result.heapPerConversation)})${result.failed ? `, ${result.failed} failed` : ''}`,
      );
    }
  }

  // A short unrecorded run per server, so the first cell does not measure a cold process.
  for (const server of servers.values()) await runCell(server, 'webchat', 10, emulators, undefined, { warmupMs: 0, durationMs: Math.max(2000, WARMUP_MS) });

  const results: CellResult[] = [];
  const order: ServerKind[] = [...(FORWARDER ? (['forwarder'] as const) : []), ...STORES];
  // Rounds interleave, so a noisy minute of the shared machine hits one round of every server.
  for (let round = 1; round <= ROUNDS; round++) {
  for (const c of CONCURRENCY) {
    for (const kind of order) {
      const server = servers.get(kind)!;
      const result = { ...(await runCell(server, 'webchat', c, emulators, kind === 'redis' ? redis : undefined)), round };
      results.push(result);
      note(
        `  ${server.label} C=${c}${ROUNDS > 1 ? ` (round ${round})` : ''}: ${fmtRate(result.throughput)} msg/s, p50 ${fmtMs(result.p50)} / p95 ${fmtMs(result.p95)} / p99 ${fmtMs(result.p99)} ms, ` +
          `lost ${result.lost}, dup ${result.tally.duplicates + result.tally.unexpected}, cpu ${result.cpuPerMessage.toFixed(2)} ms/msg, load gen ELU ${pct(result.loadElu)}, emulators ELU ${pct(result.emulators.elu)}`,
      );
    }
  }
  }
  if (EMAIL_C > 0) {
    for (const store of STORES) {
      const server = servers.get(store)!;
      const result = await runCell(server, 'email', EMAIL_C, emulators, store === 'redis' ? redis : undefined);
      results.push(result);
      note(`  ${server.label} email C=${EMAIL_C}: ${fmtRate(result.throughput)} msg/s, p50 ${fmtMs(result.p50)} / p95 ${fmtMs(result.p95)} ms, lost ${result.lost}, dup ${result.tally.duplicates + result.tally.unexpected}`);
    }
  }

  // Stop the bridges (a profile is written on exit).
  for (const server of servers.values()) await server.stop();
  const profiles = new Map<ServerKind, CpuProfile>();
  if (profileDir) {
    for (const store of STORES) {
      const file = profileFile(profileDir, servers.get(store)!.pid);
      if (file) profiles.set(store, readProfile(file));
      else note(`  no CPU profile found for ${LABEL[store]} in ${profileDir}`);
    }
  }

  // ---- the report
  const out: string[] = [];
  const md: string[] = [];
  const both = (title: string, header: string[], rows: string[][]) => {
    out.push(`${title}\n\n${textTable(header, rows)}\n`);
    md.push(`### ${title}\n\n${markdownTable(header, rows)}\n`);
  };
  const fwd = (c: number, round = 1) => results.find((r) => r.server === 'forwarder' && r.channel === 'webchat' && r.concurrency === c && r.round === round);
  const label = (r: CellResult) => (ROUNDS > 1 && r.channel === 'webchat' ? `${LABEL[r.server]} (round ${r.round})` : LABEL[r.server]);
  const chatHeader = ['server', 'C', 'msg/s', 'p50 ms', 'p95 ms', 'p99 ms', 'msg/s vs fwd', 'p50 vs fwd', 'lost', 'dup', 'other problems'];
  const chatRows = results
    .filter((r) => r.channel === 'webchat')
    .map((r) => {
      const base = r.server === 'forwarder' ? undefined : fwd(r.concurrency, r.round);
      return [
        label(r),
        String(r.concurrency),
        fmtRate(r.throughput),
        fmtMs(r.p50),
        fmtMs(r.p95),
        fmtMs(r.p99),
        base ? pct(r.throughput / base.throughput) : '',
        base ? times(r.p50 / base.p50) : '',
        String(r.lost),
        String(r.tally.duplicates + r.tally.unexpected),
        errorsText(r.tally, r.mirrorsMissing),
      ];
    });
  both('Web chat: closed-loop customers, customer message -> agent reply frame', chatHeader, chatRows);

  // Each round's ratio against the forwarder of the same round; the median judges the targets.
  const ratios = (kind: ServerKind, c: number) => {
    const pairs = results.filter((r) => r.server === kind && r.channel === 'webchat' && r.concurrency === c).flatMap((r) => {
      const f = fwd(c, r.round);
      return f ? [{ throughput: r.throughput / f.throughput, p50: r.p50 / f.p50 }] : [];
    });
    if (pairs.length === 0) return undefined;
    const median = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      const mid = Math.floor(sorted.length / 2);
      return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
    };
    const t = pairs.map((p) => p.throughput);
    const l = pairs.map((p) => p.p50);
    return { throughput: median(t), throughputRange: [Math.min(...t), Math.max(...t)], p50: median(l), p50Range: [Math.min(...l), Math.max(...l)] };
  };
  if (ROUNDS > 1 && FORWARDER) {
    both(
      `Across ${ROUNDS} rounds: each round against the forwarder of the same round`,
      ['server', 'C', 'msg/s vs fwd, median', 'range', 'p50 vs fwd, median', 'range'],
      STORES.flatMap((store) =>
        CONCURRENCY.flatMap((c) => {
          const x = ratios(store, c);
          return x ? [[LABEL[store], String(c), pct(x.throughput), `${pct(x.throughputRange[0]!)}–${pct(x.throughputRange[1]!)}`, times(x.p50), `${times(x.p50Range[0]!)}–${times(x.p50Range[1]!)}`]] : [];
        }),
      ),
    );
  }

  const emailRows = results
    .filter((r) => r.channel === 'email')
    .map((r) => [LABEL[r.server], String(r.concurrency), fmtRate(r.throughput), fmtMs(r.p50), fmtMs(r.p95), fmtMs(r.p99), String(r.lost), String(r.tally.duplicates + r.tally.unexpected), errorsText(r.tally)]);
  if (emailRows.length) {
    both('Email: closed-loop customers, SMTP send -> agent reply in the sink (no forwarder counterpart)', ['server', 'C', 'msg/s', 'p50 ms', 'p95 ms', 'p99 ms', 'lost', 'dup', 'other problems'], emailRows);
  }

  // Where the time went, per cell: the server's CPU, its main thread's scheduling, the other processes.
  both(
    'Resources in each window (CPU from /proc; main thread: on a CPU / runnable but waiting for one / asleep, as shares of the window)',
    ['server', 'channel', 'C', 'CPU ms/msg', 'main thread CPU (user+sys)', 'other threads CPU', 'main on CPU / waiting / asleep', 'main sleeps/msg', 'redis CPU ms/msg', 'healthz p99 ms', 'Slack mirrors/msg (caught up after)', 'model calls/msg', 'early turns/msg: taken / discarded', 'model request KB', 'emulators ELU', 'load gen ELU / CPU', 'machine CPU busy'],
    results.map((r) => {
      const w = r.windowMs;
      const answered = Math.max(1, (r.throughput * w) / 1000);
      const asleep = Math.max(0, 1 - (r.sched.runMs + r.sched.waitMs) / w);
      return [
        label(r),
        r.channel,
        String(r.concurrency),
        r.cpuPerMessage.toFixed(2),
        `${pct(r.cpu.main / w)} (${pct(r.cpu.mainUser / w)}+${pct(r.cpu.mainSystem / w)})`,
        pct(r.cpu.other / w),
        `${pct(r.sched.runMs / w)} / ${pct(r.sched.waitMs / w)} / ${pct(asleep)}`,
        (r.sched.voluntary / answered).toFixed(1),
        r.redisCpuPerMessage !== undefined ? r.redisCpuPerMessage.toFixed(2) : '',
        fmtMs(r.healthzP99),
        r.channel === 'webchat' ? `${r.mirrorsPerExchange.toFixed(2)} (${(r.mirrorDrainMs / 1000).toFixed(1)} s)` : '',
        r.chatCallsPerExchange.toFixed(2),
        r.earlyTurns ? `${r.earlyTurns.taken.toFixed(2)} / ${r.earlyTurns.discarded.toFixed(2)}` : '',
        r.chatRequestKb.toFixed(1),
        pct(r.emulators.elu),
        `${pct(r.loadElu)} / ${pct(r.loadCpu)}`,
        pct(r.machineBusy),
      ];
    }),
  );

  // Where each message's CPU went on the whole machine. When a cell fills the machine, throughput is
  // its cores over this total, so the forwarder's total over a bridge's bounds the ratio it can reach.
  // The last column puts the forwarder's own CPU in place of the bridge's: what is left is the
  // price of the rest of the bridge's path (its store, its larger model requests), which no
  // saving inside the bridge's process can take away.
  both(
    'CPU budget per message, whole machine (ms of CPU per message answered; every process on every core)',
    ['server', 'channel', 'C', 'server', 'redis', 'emulators', 'load gen', 'rest of the machine', 'machine', 'machine CPU busy', 'forwarder machine / this (bounds msg/s vs fwd)', 'the same bound, were the server as cheap as the forwarder'],
    results
      .filter((r) => r.channel === 'webchat')
      .map((r) => {
        const redisMs = r.redisCpuPerMessage ?? 0;
        const rest = r.machineCpuPerMessage - r.cpuPerMessage - redisMs - r.emulatorsCpuPerMessage - r.loadCpuPerMessage;
        const f = r.server === 'forwarder' ? undefined : fwd(r.concurrency, r.round);
        return [
          label(r),
          r.channel,
          String(r.concurrency),
          r.cpuPerMessage.toFixed(2),
          r.redisCpuPerMessage !== undefined ? redisMs.toFixed(2) : '',
          r.emulatorsCpuPerMessage.toFixed(2),
          r.loadCpuPerMessage.toFixed(2),
          rest.toFixed(2),
          r.machineCpuPerMessage.toFixed(2),
          pct(r.machineBusy),
          f ? pct(f.machineCpuPerMessage / r.machineCpuPerMessage) : '',
          f ? pct(f.machineCpuPerMessage / (r.machineCpuPerMessage - r.cpuPerMessage + f.cpuPerMessage)) : '',
        ];
      }),
  );

  const fwdMemory = memory.find((m) => m.server === 'forwarder');
  if (memory.length) {
    both(
      'Memory per open idle web chat conversation (one exchange each, socket left open; read after full GCs)',
      ['server', 'RSS after start', 'CPU with no traffic', 'conversations', 'RSS before / half / after', 'RSS per conversation', 'vs forwarder', 'JS heap + external per conversation', 'vs forwarder'],
      memory.map((m) => [
        LABEL[m.server],
        mb(idleRss.get(m.server) ?? NaN),
        pct(idleCpu.get(m.server) ?? NaN),
        String(m.conversations),
        `${mb(m.before.rss)} / ${mb(m.half.rss)} / ${mb(m.after.rss)}`,
        kb(m.perConversation),
        fwdMemory && m.server !== 'forwarder' ? times(m.perConversation / fwdMemory.perConversation) : '',
        kb(m.heapPerConversation),
        fwdMemory && m.server !== 'forwarder' ? times(m.heapPerConversation / fwdMemory.heapPerConversation) : '',
      ]),
    );
  }

  const redisRows = results
    .filter((r) => r.redisCommands)
    .map((r) => {
      const { reads = 0, ...rest } = r.redisCommands!;
      const commands = Object.entries(rest).sort((a, b) => b[1] - a[1]);
      const total = commands.reduce((sum, [, n]) => sum + n, 0);
      return [r.channel, String(r.concurrency), reads.toFixed(1), (rest.evalsha ?? 0).toFixed(1), total.toFixed(1), commands.map(([name, n]) => `${name} ${n.toFixed(1)}`).join(', ')];
    });
  if (redisRows.length) {
    both(
      'Redis work per message answered (INFO over the window; commands include those the Lua scripts make)',
      ['channel', 'C', 'socket reads (round trips; batched under load)', 'script calls', 'commands', 'by command'],
      redisRows,
    );
  }

  const sqliteRows = results
    .filter((r) => r.sqliteWrites)
    .map((r) => {
      const { synced, unsynced, writes } = r.sqliteWrites!;
      return [label(r), r.channel, String(r.concurrency), (synced + unsynced).toFixed(2), synced.toFixed(2), writes.toFixed(1), (writes / Math.max(1e-9, synced + unsynced)).toFixed(1)];
    });
  if (sqliteRows.length) {
    both(
      'SQLite work per message answered (the bridge\'s /metrics over the window: its group commit)',
      ['server', 'channel', 'C', 'transactions', 'fsynced', 'writes', 'writes per transaction'],
      sqliteRows,
    );
  }

  // Where we stand against the issue's targets (ratios measured in this run; the median of the rounds).
  // With parts left out the ratios do not compare like with like: the table says so instead.
  const targets: string[][] = [];
  if (WITHOUT.size) targets.push([`throughput and latency targets: not judged (--without ${[...WITHOUT].join(',')})`, '', '', '']);
  const ofRounds = ROUNDS > 1 ? ` (median of ${ROUNDS} rounds)` : '';
  for (const store of STORES) {
    const goal = store === 'redis' ? 0.5 : 0.35;
    const at20 = WITHOUT.size ? undefined : ratios(store, 20);
    if (at20) targets.push([`${LABEL[store]}: throughput at C=20 vs forwarder${ofRounds}`, `≥ ${pct(goal)}`, pct(at20.throughput), at20.throughput >= goal ? 'met' : 'not met']);
    for (const c of [1, 20]) {
      const x = WITHOUT.size ? undefined : ratios(store, c);
      if (x) targets.push([`${LABEL[store]}: p50 at C=${c} vs forwarder${ofRounds}`, '≤ ×3', times(x.p50), x.p50 <= 3 ? 'met' : 'not met']);
    }
    const m = memory.find((x) => x.server === store);
    if (m && fwdMemory) {
      const ratio = m.heapPerConversation / fwdMemory.heapPerConversation;
      targets.push([`${LABEL[store]}: memory per idle conversation vs forwarder (JS heap + external; RSS too noisy)`, '≤ ×1.5', times(ratio), ratio <= 1.5 ? 'met' : 'not met']);
    }
  }
  const bridgeResults = results.filter((r) => r.server !== 'forwarder');
  const lost = bridgeResults.reduce((s, r) => s + r.lost, 0);
  const dup = bridgeResults.reduce((s, r) => s + r.tally.duplicates + r.tally.unexpected, 0);
  targets.push(['bridge: replies lost / duplicated during the load', '0 / 0', `${lost} / ${dup}`, lost === 0 && dup === 0 ? 'met' : 'not met']);
  both('Targets (issue 12)', ['target', 'goal', 'now', ''], targets);

  const reader = new ProfileReader(ROOT, sources);
  for (const [store, profile] of profiles) {
    for (const r of results.filter((x) => x.server === store)) {
      const top = reader.top(profile, r.windowUs[0], r.windowUs[1], TOP);
      if (top.totalMs === 0) {
        note(`  the ${LABEL[store]} profile has no samples in the C=${r.concurrency} window`);
        continue;
      }
      const answered = (r.throughput * r.windowMs) / 1000;
      const title =
        `CPU profile, ${LABEL[store]}, ${r.channel} C=${r.concurrency}: main thread not idle ${Math.round(top.busyMs)} of ${Math.round(top.totalMs)} ms sampled, ` +
        `${(top.busyMs / Math.max(1, answered)).toFixed(2)} ms per message (time blocked in a native call counts as that call)`;
      both(
        title,
        ['self ms', '% busy', 'function', 'where'],
        top.functions.map((f) => [f.ms.toFixed(0), pct(f.ms / top.busyMs), f.name, f.where]),
      );
      both(`Self time by area, ${LABEL[store]}, ${r.channel} C=${r.concurrency}`, ['area', 'self ms', '% busy'], top.areas.map((a) => [a.area, a.ms.toFixed(0), pct(a.ms / top.busyMs)]));
      both(
        `Inclusive time of the project's functions, ${LABEL[store]}, ${r.channel} C=${r.concurrency} (synchronous callees included; nested calls overlap)`,
        ['ms', '% busy', 'function', 'where'],
        top.inclusive.map((f) => [f.ms.toFixed(0), pct(f.ms / top.busyMs), f.name, f.where]),
      );
    }
  }

  const machine = `${measured}; Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')} at the end; ${Math.round((performance.now() - startedAt) / 1000)} s in all`;
  const settings = `${QUICK ? '--quick: ' : ''}${DURATION_MS / 1000} s per cell after ${WARMUP_MS / 1000} s warm-up, ${MESSAGES} messages per conversation${IDLE ? `, ${IDLE} idle conversations` : ''}${EMAIL_C ? `, ${EMAIL_C} email customers` : ''}${WITHOUT.size ? `; bridges without ${[...WITHOUT].join(' and ')}` : ''}`;
  process.stdout.write(`\n${machine}\n${settings}\n\n${out.join('\n')}\n`);
  const markdown = `${machine}. ${settings}.\n\n${md.join('\n')}`;
  process.stdout.write(`\n---- markdown ----\n\n${markdown}\n`);
  if (args.md) writeFileSync(args.md, markdown);
  if (profileDir) note(`CPU profiles kept in ${profileDir}`);

  await cleanup();
  const failed = lost > 0 || dup > 0;
  if (args.keep || failed) note(`run directory kept: ${runDir} (logs${failed ? '; replies were lost or repeated' : ''})`);
  else rmSync(runDir, { recursive: true, force: true });
  clearTimeout(watchdog);
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    note(`bench:e2e failed: ${(err as Error).stack ?? String(err)}`);
    await cleanup();
    note(`run directory kept: ${runDir}`);
    process.exit(1);
  },
);
