/**
 * Benchmarks, on loopback only, bounded in time (the whole run stays under a minute) and stopping by
 * itself. Run with `npm run bench` (`tsx bench/run.ts`). Prints one table; numbers go in docs/bench.md.
 *
 *  (a) bridge throughput: customer messages/s through the bridge with the offline agent, on SQLite
 *      and on Redis, with p50/p95 of `customerMessage` and of the agent's reply reaching the customer;
 *  (b) claim race on Redis: 100 operators on 4 bridge instances claim one conversation at once;
 *  (c) card building: Slack and Teams briefings from a maximal envelope, builds/s;
 *  (d) memory: heap after 1,000 conversations of 20 customer messages (plus the agent's replies).
 *
 * Options (environment): BENCH_QUICK=1 shrinks every part (a smoke run).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { briefingCard } from '../cards/slack/briefing.ts';
import { buildBriefingCard } from '../cards/teams/briefing.ts';
import { loadFaq, OfflineAgent } from '../src/agent/offline-agent.ts';
import { Bridge } from '../src/bridge.ts';
import type { HandoffEnvelope } from '../src/envelope.ts';
import { AlreadyClaimedError } from '../src/errors.ts';
import { silentLogger } from '../src/log.ts';
import type { Conversation, Message, Operator } from '../src/model.ts';
import { DEFAULT_POLICY, type Policy } from '../src/policy.ts';
import type { CustomerChannel, Workspace } from '../src/ports.ts';
import { CachedStore } from '../src/store/cached.ts';
import { openRedisStore } from '../src/store/redis.ts';
import { openSqliteStore } from '../src/store/sqlite.ts';
import type { Store } from '../src/store/store.ts';
import { startRedis, type RedisProcess } from '../test/support/redis-process.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const HARD_LIMIT_MS = 58_000;
const startedAt = performance.now();
const FAQ = loadFaq(new URL('../config/faq.json', import.meta.url).pathname);

// A hard stop, whatever happens: the bench never outlives a minute.
const watchdog = setTimeout(() => {
  console.error(`bench: hard time limit (${HARD_LIMIT_MS} ms) reached; stopping.`);
  void cleanup().finally(() => process.exit(2));
}, HARD_LIMIT_MS);
watchdog.unref();

const cleanups: Array<() => Promise<void>> = [];
async function cleanup(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
}

/** Forces a full GC (the flag is set at run time, so `tsx bench/run.ts` needs no node options). */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function settleHeap(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

// ---- helpers -------------------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const ms = (n: number) => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(2) : n.toFixed(1)} ms` : 'n/a');
const perSec = (n: number) => `${Math.round(n).toLocaleString('en-US')}/s`;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const signedMb = (bytes: number) => `${bytes >= 0 ? '+' : '-'}${mb(Math.abs(bytes))}`;

interface Row {
  part: string;
  what: string;
  result: string;
  detail: string;
}
const rows: Row[] = [];
function row(part: string, what: string, result: string, detail = ''): void {
  rows.push({ part, what, result, detail });
  console.error(`  ${part} ${what}: ${result}${detail ? ` (${detail})` : ''}`);
}

/** The default policy without repetition or turn-cap escalations, so every message gets an agent turn. */
const BENCH_POLICY: Policy = { ...DEFAULT_POLICY, behaviour: { ...DEFAULT_POLICY.behaviour, repeatThreshold: 1_000_000, turnCap: 1_000_000 } };

const QUESTIONS = [
  'Where is my order {id}? It was due {day}.',
  'How do I reset my password for {email}?',
  'What is your refund policy for order {id}?',
  'Can I change the shipping address on {id} to {street}?',
  'When is support available on {day}?',
  'How do I cancel my subscription {id}?',
  'How do I track my package {id}?',
  'Can I return an item from order {id} bought {day}?',
];
const DAYS = ['Monday', 'Tuesday', 'yesterday', '2025-03-04', 'last week', 'March 5th'];
function customerText(conversation: number, n: number): string {
  const q = QUESTIONS[(conversation + n) % QUESTIONS.length]!;
  return q
    .replace('{id}', `A-${10_000 + conversation * 100 + n}`)
    .replace('{day}', DAYS[(conversation * 7 + n) % DAYS.length]!)
    .replace('{email}', `user${conversation}@example.com`)
    .replace('{street}', `${n + 1} Main Street`);
}

/** Counts agent replies delivered per conversation, and lets a customer wait for the next one. */
class WaitingChannel implements CustomerChannel {
  readonly origin = 'api' as const;
  private readonly replies = new Map<string, number>();
  private readonly waiters = new Map<string, { count: number; resolve: () => void }>();
  async deliver(conversation: Conversation, message: Message): Promise<void> {
    if (message.author.role !== 'agent') return;
    const count = (this.replies.get(conversation.id) ?? 0) + 1;
    this.replies.set(conversation.id, count);
    const waiter = this.waiters.get(conversation.id);
    if (waiter && count >= waiter.count) {
      this.waiters.delete(conversation.id);
      waiter.resolve();
    }
  }
  /** Resolves once `count` agent replies have reached the customer. */
  replyCount(conversationId: string, count: number): Promise<void> {
    if ((this.replies.get(conversationId) ?? 0) >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.set(conversationId, { count, resolve }));
  }
  forget(conversationId: string): void {
    this.replies.delete(conversationId);
  }
}

/** One chat exchange: the customer's message, then the agent's reply reaching the customer. */
async function exchange(bridge: Bridge, channel: WaitingChannel, conversationId: string | undefined, customerId: string, text: string, n: number) {
  const t = performance.now();
  const { conversation } = await bridge.customerMessage({ ...(conversationId ? { conversationId } : {}), origin: 'api', customer: { id: customerId }, text });
  const call = performance.now() - t;
  await channel.replyCount(conversation.id, n + 1);
  return { conversationId: conversation.id, call, reply: performance.now() - t };
}

/** A workspace that shows nothing: the claim race needs one to exist, not to post. */
const QUIET_WORKSPACE: Workspace = {
  name: 'bench',
  mirror: async () => {},
  postBriefing: async () => {},
  ownershipChanged: async () => {},
  notifyOperator: async () => {},
};

function newBridge(store: Store, channel?: CustomerChannel): Bridge {
  const bridge = new Bridge({ store, agent: new OfflineAgent(FAQ), policy: BENCH_POLICY, logger: silentLogger() });
  if (channel) bridge.addChannel(channel);
  bridge.start();
  cleanups.push(() => bridge.stop(1000));
  return bridge;
}

// ---- (a) bridge throughput -----------------------------------------------------------------------

/**
 * `concurrency` customers, each sending `perConversation` messages and waiting for the agent's
 * reply before the next one (a real chat), until the time budget runs out.
 */
async function throughput(label: string, store: Store, opts: { concurrency: number; perConversation: number; budgetMs: number }): Promise<void> {
  const channel = new WaitingChannel();
  const bridge = newBridge(store, channel);
  const callLatency: number[] = [];
  const replyLatency: number[] = [];
  const deadline = performance.now() + opts.budgetMs;
  let sent = 0;
  let conversationsStarted = 0;

  // Warm-up: one exchange, so module and connection set-up is not measured.
  await exchange(bridge, channel, undefined, 'warmup', 'Hi', 0);

  const t0 = performance.now();
  const customer = async (worker: number) => {
    while (performance.now() < deadline) {
      const index = conversationsStarted++;
      let conversationId: string | undefined;
      for (let n = 0; n < opts.perConversation && performance.now() < deadline; n++) {
        const r = await exchange(bridge, channel, conversationId, `bench-${worker}-${index}`, customerText(index, n), n);
        conversationId = r.conversationId;
        callLatency.push(r.call);
        replyLatency.push(r.reply);
        sent++;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, (_, i) => customer(i)));
  await bridge.idle();
  const elapsed = (performance.now() - t0) / 1000;
  callLatency.sort((a, b) => a - b);
  replyLatency.sort((a, b) => a - b);
  row('(a)', `bridge throughput, ${label}`, perSec(sent / elapsed), `${sent} messages + ${sent} agent replies in ${elapsed.toFixed(1)} s, ${opts.concurrency} concurrent customers`);
  row('(a)', `customerMessage latency, ${label}`, `p50 ${ms(percentile(callLatency, 50))} / p95 ${ms(percentile(callLatency, 95))}`, `max ${ms(callLatency.at(-1) ?? NaN)}`);
  row('(a)', `message -> agent reply delivered, ${label}`, `p50 ${ms(percentile(replyLatency, 50))} / p95 ${ms(percentile(replyLatency, 95))}`);
}

// ---- (b) claim race on Redis ---------------------------------------------------------------------

async function claimRace(redisUrl: string, opts: { claimers: number; instances: number; rounds: number }): Promise<void> {
  const stores = await Promise.all(Array.from({ length: opts.instances }, () => openRedisStore(redisUrl, { namespace: 'bench-race' })));
  cleanups.push(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });
  // Someone must be able to answer, or the escalation is held until a workspace appears.
  const bridges = stores.map((s) => {
    const bridge = newBridge(s);
    bridge.addWorkspace(QUIET_WORKSPACE);
    return bridge;
  });
  const operators: Operator[] = Array.from({ length: opts.claimers }, (_, i) => ({ id: `bench:op${i}`, name: `Operator ${i}`, workspace: 'bench' }));
  const claimLatency: number[] = [];
  const raceTimes: number[] = [];
  let badRounds = 0;
  let otherErrors = 0;
  for (let round = 0; round < opts.rounds; round++) {
    const { conversation } = await bridges[0]!.customerMessage({ origin: 'api', customer: { id: `race-${round}` }, text: 'I want to talk to a human' });
    if (conversation.state !== 'waiting') throw new Error(`race set-up: expected waiting, got ${conversation.state}`);
    const t0 = performance.now();
    const outcomes = await Promise.all(
      operators.map(async (operator, i) => {
        const t = performance.now();
        try {
          await bridges[i % bridges.length]!.claim({ conversationId: conversation.id, operator });
          return 'won';
        } catch (err) {
          if (!(err instanceof AlreadyClaimedError)) otherErrors++;
          return err instanceof AlreadyClaimedError ? 'lost' : 'error';
        } finally {
          claimLatency.push(performance.now() - t);
        }
      }),
    );
    raceTimes.push(performance.now() - t0);
    const winners = outcomes.filter((o) => o === 'won').length;
    const final = await bridges[1 % bridges.length]!.getConversation(conversation.id);
    if (winners !== 1 || final?.state !== 'human') badRounds++;
  }
  await Promise.all(bridges.map((b) => b.idle()));
  claimLatency.sort((a, b) => a - b);
  raceTimes.sort((a, b) => a - b);
  row(
    '(b)',
    `claim race, ${opts.claimers} claimers on ${opts.instances} instances (Redis)`,
    `race settled p50 ${ms(percentile(raceTimes, 50))} / p95 ${ms(percentile(raceTimes, 95))}`,
    `${opts.rounds} rounds; exactly one winner in ${opts.rounds - badRounds}/${opts.rounds}; ${otherErrors} errors other than AlreadyClaimed`,
  );
  row('(b)', 'claim call latency (winner and losers)', `p50 ${ms(percentile(claimLatency, 50))} / p95 ${ms(percentile(claimLatency, 95))}`, `max ${ms(claimLatency.at(-1) ?? NaN)}`);
}

// ---- (c) card building ---------------------------------------------------------------------------

/** Every field at its schema limit, with text that needs escaping everywhere. */
function maximalConversation(): Conversation {
  const nasty = (n: number, seed: string) => {
    const base = `${seed} <b>&amp;</b> *bold* _it_ ~st~ \`code\` <!channel> <@U1> émoji 😀👍🏽 "quotes" 'single' `;
    return base.repeat(Math.ceil(n / base.length)).slice(0, n);
  };
  const operator: Operator = { id: 'slack:U42', name: 'Dana Operator', workspace: 'slack' };
  const envelope: HandoffEnvelope = {
    reason: nasty(300, 'reason'),
    trigger: 'refund_threshold',
    priority: 'urgent',
    summary: nasty(1200, 'summary'),
    intent: nasty(200, 'intent'),
    entities: {
      ids: Array.from({ length: 20 }, (_, i) => nasty(200, `ID-${i}`)),
      amounts: Array.from({ length: 20 }, (_, i) => ({ value: 1_000_000.5 + i, currency: 'USD', raw: nasty(100, `$${i}`) })),
      dates: Array.from({ length: 20 }, (_, i) => nasty(100, `2025-01-${i + 1}`)),
      emails: Array.from({ length: 20 }, (_, i) => `${'x'.repeat(300)}${i}@example.com`),
    },
    constraints: Array.from({ length: 10 }, (_, i) => nasty(300, `constraint ${i}`)),
    sentiment: 'angry',
    actionsTaken: Array.from({ length: 20 }, (_, i) => ({
      tool: `tool_${i}_${'t'.repeat(80)}`,
      input: { order_id: `A-${i}`, note: nasty(500, 'input'), nested: { list: Array.from({ length: 20 }, (_, j) => j) } },
      output: { error: nasty(800, 'output'), rows: Array.from({ length: 10 }, (_, j) => ({ j, v: 'value' })) },
      ok: i % 3 !== 0,
    })),
    pendingQuestion: nasty(500, 'question?'),
    options: Array.from({ length: 5 }, (_, i) => ({
      id: `option_${i}`,
      label: nasty(75, `Option ${i}`),
      tradeoffs: nasty(500, 'tradeoffs'),
      risk: (['low', 'medium', 'high'] as const)[i % 3]!,
      ...(i === 0 ? { approvesTool: 'issue_refund' } : {}),
    })),
    queue: 'q'.repeat(60),
    ticket: 'HB-' + '9'.repeat(37),
  };
  const at = (i: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString();
  const messages: Message[] = Array.from({ length: 40 }, (_, i) => ({
    id: `msg_${i}`,
    at: at(i),
    author: i % 2 ? { role: 'agent', name: 'offline' } : { role: 'customer', name: nasty(100, 'Customer') },
    text: nasty(2000, `message ${i}`),
    visibility: 'public',
  }));
  return {
    id: 'conv_bench_card',
    ticket: envelope.ticket,
    origin: 'webchat',
    customer: { id: 'v1', name: nasty(200, 'Customer'), email: 'customer@example.com' },
    subject: nasty(300, 'subject'),
    queue: envelope.queue,
    state: 'human',
    owner: operator,
    ownershipVersion: 3,
    messages,
    history: [
      { from: 'agent', to: 'waiting', reason: 'escalate', by: { kind: 'system' }, at: at(30), trigger: 'refund_threshold', note: nasty(300, 'note') },
      { from: 'waiting', to: 'human', reason: 'claim', by: { kind: 'operator', operator }, at: at(31) },
      { from: 'human', to: 'human', reason: 'transfer', by: { kind: 'operator', operator }, at: at(32), to_operator: operator },
    ],
    briefing: envelope,
    decisions: [],
    agentTurns: 5,
    approvals: [],
    version: 0,
    createdAt: at(0),
    updatedAt: at(40),
    channelData: {},
  };
}

function cardRate(label: string, build: () => unknown, budgetMs: number): void {
  for (let i = 0; i < 20; i++) build(); // warm-up (JIT)
  const size = Buffer.byteLength(JSON.stringify(build()));
  let n = 0;
  const t0 = performance.now();
  const until = t0 + budgetMs;
  while (performance.now() < until) {
    for (let i = 0; i < 10; i++) build();
    n += 10;
  }
  const elapsed = (performance.now() - t0) / 1000;
  row('(c)', `${label} briefing from a maximal envelope`, perSec(n / elapsed), `${(elapsed * 1000 / n).toFixed(3)} ms each; card ${(size / 1024).toFixed(1)} KB JSON`);
}

// ---- (d) memory ----------------------------------------------------------------------------------

async function memory(opts: { conversations: number; messages: number; concurrency: number; budgetMs: number }): Promise<void> {
  // A throwaway SQLite store: only the bridge's own heap matters here, and 20,000 exchanges must fit
  // the time budget.
  const store = await openSqliteStore(':memory:');
  cleanups.push(() => store.close());
  const channel = new WaitingChannel();
  const bridge = newBridge(store, channel);
  const before = settleHeap();
  const rssBefore = process.memoryUsage().rss;
  const ids: string[] = [];
  let next = 0;
  let sentMessages = 0;
  const t0 = performance.now();
  const deadline = t0 + opts.budgetMs;
  const worker = async () => {
    for (;;) {
      const index = next++;
      if (index >= opts.conversations || performance.now() > deadline) return;
      let conversationId: string | undefined;
      for (let n = 0; n < opts.messages && performance.now() <= deadline; n++) {
        conversationId = (await exchange(bridge, channel, conversationId, `mem-${index}`, customerText(index, n), n)).conversationId;
        sentMessages++;
      }
      if (!conversationId) return;
      channel.forget(conversationId);
      ids.push(conversationId);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  await bridge.idle();
  const seconds = (performance.now() - t0) / 1000;
  const after = settleHeap();
  const rssAfter = process.memoryUsage().rss;
  const total = sentMessages;
  const cut = total < opts.conversations * opts.messages ? ` (cut by the time budget: ${total} of ${opts.conversations * opts.messages} messages)` : '';
  row(
    '(d)',
    `heap after ${ids.length.toLocaleString('en-US')} conversations x ${opts.messages} messages (SQLite :memory:)${cut}`,
    `${mb(after)} heap used`,
    `${signedMb(after - before)} vs ${mb(before)} before; rss ${mb(rssBefore)} -> ${mb(rssAfter)}; ${total.toLocaleString('en-US')} messages in ${seconds.toFixed(1)} s`,
  );
  // The bridge keeps recent conversations on purpose (its version-checked cache, CONVERSATION_CACHE_SIZE
  // entries at most); anything else it kept per conversation would still be here once that is dropped.
  if (bridge.store instanceof CachedStore) {
    const cached = bridge.store.size;
    bridge.store.evict();
    const uncached = settleHeap();
    row('(d)', `the same heap without the conversation cache (${cached.toLocaleString('en-US')} entries dropped)`, `${mb(uncached)} heap used`, `${signedMb(uncached - before)} vs before: ${signedMb(after - uncached)} was the cache`);
  }
  // What the same conversations cost when all held in memory at once (e.g. a cache or a full export).
  const held: Conversation[] = [];
  const base = settleHeap();
  for (const id of ids) held.push((await store.getConversation(id))!);
  const loaded = settleHeap();
  const messages = held.reduce((sum, c) => sum + c.messages.length, 0);
  row('(d)', `the same ${held.length.toLocaleString('en-US')} conversations loaded in memory`, `${signedMb(loaded - base)} heap`, `${messages.toLocaleString('en-US')} transcript messages incl. agent replies, ${((loaded - base) / held.length / 1024).toFixed(1)} KB per conversation`);
  held.length = 0;
}

// ---- main ----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-bench-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  console.error(`bench: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown'})${QUICK ? ', quick mode' : ''}`);

  let redis: RedisProcess | undefined;
  try {
    redis = await startRedis();
    cleanups.push(() => redis!.stop());
  } catch (err) {
    console.error(`bench: redis-server unavailable (${(err as Error).message}); Redis parts are skipped.`);
  }

  const budget = QUICK ? 1_000 : 4_000;
  {
    const store = await openSqliteStore(join(dir, 'throughput.sqlite'));
    try {
      await throughput('SQLite', store, { concurrency: 20, perConversation: 20, budgetMs: budget });
    } finally {
      await store.close();
    }
  }
  if (redis) {
    const store = await openRedisStore(redis.url, { namespace: 'bench-throughput' });
    try {
      await throughput('Redis', store, { concurrency: 20, perConversation: 20, budgetMs: budget });
    } finally {
      await store.close();
    }
    await claimRace(redis.url, { claimers: 100, instances: 4, rounds: QUICK ? 3 : 20 });
  }

  const conversation = maximalConversation();
  cardRate('Slack', () => briefingCard(conversation), QUICK ? 300 : 1_500);
  cardRate('Teams', () => buildBriefingCard(conversation), QUICK ? 300 : 1_500);

  // Whatever is left of the minute, minus a margin, caps (d); it reports how far it got.
  const left = HARD_LIMIT_MS - 10_000 - (performance.now() - startedAt);
  await memory({ conversations: QUICK ? 100 : 1_000, messages: 20, concurrency: 50, budgetMs: Math.max(5_000, left) });

  await cleanup();
  const elapsed = (performance.now() - startedAt) / 1000;
  const widths = { part: 4, what: Math.max(...rows.map((r) => r.what.length), 4), result: Math.max(...rows.map((r) => r.result.length), 6) };
  const line = (a: string, b: string, c: string, d: string) => `| ${a.padEnd(widths.part)} | ${b.padEnd(widths.what)} | ${c.padEnd(widths.result)} | ${d} |`;
  console.log('');
  console.log(line('part', 'what', 'result', 'detail'));
  console.log(line('-'.repeat(widths.part), '-'.repeat(widths.what), '-'.repeat(widths.result), '---'));
  for (const r of rows) console.log(line(r.part, r.what, r.result, r.detail));
  console.log('');
  console.log(`node ${process.version}, ${cpus().length} cores, total ${elapsed.toFixed(1)} s`);
}

main()
  .then(() => {
    clearTimeout(watchdog);
    process.exit(0);
  })
  .catch(async (err) => {
    console.error('bench failed:', err);
    await cleanup();
    process.exit(1);
  });
