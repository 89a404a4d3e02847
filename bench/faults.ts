/**
 * The fault suite at full size: `npm run faults` (`tsx bench/faults.ts`). Each run starts a fresh
 * redis-server (append-only file), the Slack emulator behind the chaos proxy, an SMTP sink and two
 * bridge instances as child processes, drives customers and operators through kill -9, a Redis
 * outage and an SMTP outage (test/faults/scenario.ts), and counts what people saw
 * (test/faults/count.ts). Then it measures web chat reply latency, calm vs a Slack 429 storm.
 * Prints a table; exits 1 if any count is not 0. docs/faults.md explains the figures.
 *
 * Options: --runs N (default 3), --seed N (default 1), --smtp-down S (seconds, default 30),
 * --lease-ms N (DELIVERY_LEASE_MS, default 30000), --no-latency, --quick (small runs, short outages).
 * Logs of every instance and the per-message details go to a directory printed at the end.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { total, type Counts } from '../test/faults/count.ts';
import { startRig, type Rig } from '../test/faults/rig.ts';
import { measureLatency, runScenario, type LatencyResult, type ScenarioOptions, type ScenarioResult } from '../test/faults/scenario.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const value = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  const raw = i >= 0 ? args[i + 1] : undefined;
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a number, got ${raw}`);
  return n;
};
const quick = flag('quick');
const runs = value('runs', 3);
const seed = value('seed', 1);
const smtpDownMs = value('smtp-down', quick ? 5 : 30) * 1000;
const leaseMs = value('lease-ms', quick ? 5000 : 30_000);
const dir = join(tmpdir(), `faults-${new Date().toISOString().replace(/[:.]/g, '-')}`);
mkdirSync(dir, { recursive: true });

const scenario = (run: number): ScenarioOptions => ({
  run,
  seed,
  webchatCustomers: quick ? 4 : 12,
  emailCustomers: quick ? 2 : 6,
  escalateEvery: 2,
  returnEvery: 2,
  agentQuestions: quick ? 2 : 3,
  humanMessages: quick ? 3 : 4,
  ownerReplies: quick ? 3 : 4,
  afterReturnQuestions: quick ? 1 : 2,
  plainQuestions: quick ? 4 : 6,
  smtpDownMs,
  redisDownMs: 3000,
  restartAfterMs: 1000,
  settleTimeoutMs: quick ? 90_000 : 180_000,
  log: (line) => console.log(`  ${line}`),
});

let current: Rig | undefined;
const shutdown = async () => {
  await current?.close();
  current = undefined;
};
process.on('SIGINT', () => void shutdown().finally(() => process.exit(130)));

const results: ScenarioResult[] = [];
let latency: LatencyResult | undefined;
try {
  console.log(`fault suite: ${runs} run(s), seed ${seed}, SMTP down ${smtpDownMs / 1000} s, Redis down 3 s, lease ${leaseMs} ms, ${cpus().length} cores; logs in ${dir}`);
  for (let run = 1; run <= runs; run++) {
    console.log(`run ${run}:`);
    current = await startRig({ dir: join(dir, `run-${run}`), seed: seed + run, chaosRate: 0.2, dropRate: 0.05, leaseMs, email: true });
    const result = await runScenario(current, scenario(run));
    results.push(result);
    writeFileSync(join(dir, `run-${run}`, 'details.txt'), [...result.timeline.map((t) => `+${t.atMs} ms ${t.what}`), '', ...result.details].join('\n') + '\n');
    await shutdown();
  }
  if (!flag('no-latency')) {
    console.log('latency:');
    current = await startRig({ dir: join(dir, 'latency'), seed, chaosRate: 0, dropRate: 0, leaseMs, email: false });
    latency = await measureLatency(current, { customers: quick ? 4 : 6, questions: quick ? 3 : 4, label: 'lat', log: (line) => console.log(`  ${line}`) });
    await shutdown();
  }
} finally {
  await shutdown();
}

// ---- the table ------------------------------------------------------------------------------

const rows: Array<[string, (c: Counts) => number]> = [
  ['customer → thread: lost', (c) => c.customerToThread.lost],
  ['customer → thread: duplicated', (c) => c.customerToThread.duplicated],
  ['customer → thread: out of order', (c) => c.customerToThread.outOfOrder],
  ['owner → customer: lost', (c) => c.ownerToCustomer.lost],
  ['owner → customer: duplicated', (c) => c.ownerToCustomer.duplicated],
  ['owner → customer: out of order', (c) => c.ownerToCustomer.outOfOrder],
  ['agent → customer: lost', (c) => c.agentToCustomer.lost],
  ['agent → customer: duplicated', (c) => c.agentToCustomer.duplicated],
  ['agent → customer: out of order', (c) => c.agentToCustomer.outOfOrder],
  ['notices → customer: lost', (c) => c.noticesToCustomer.lost],
  ['notices → customer: duplicated', (c) => c.noticesToCustomer.duplicated],
  ['notices → customer: out of order', (c) => c.noticesToCustomer.outOfOrder],
  ['claims without exactly one owner', (c) => c.claimsWithoutOneOwner],
  ['agent messages while muted', (c) => c.mutedAgentMessages],
  ['Slack posts twice (same key / root)', (c) => c.slackDuplicatePosts],
];
const infoRows: Array<[string, (r: ScenarioResult) => number | string]> = [
  ['customer messages sent / accepted / in Slack', (r) => `${r.info.customerMessagesSent}/${r.info.customerMessagesAccepted}/${r.info.customerMessagesInThreads}`],
  ['owner replies sent / 200 / seen by customer', (r) => `${r.info.ownerRepliesSent}/${r.info.ownerRepliesAccepted}/${r.info.ownerRepliesShown}`],
  ['customer resends (web chat, MTA retries)', (r) => r.info.customerResends!],
  ['Slack event retries (same event_id)', (r) => r.info.slackEventRetries!],
  ['agent replies committed', (r) => r.info.agentReplies!],
  ['claim races (rounds of clicks)', (r) => `${r.info.claimRaces} (${r.info.claimRounds})`],
  ['chat.postMessage: posts, 429, 500, dropped', (r) => `${r.chaos.posts},${r.chaos.rateLimited},${r.chaos.serverErrors},${r.chaos.dropped}`],
  ['web chat reconnects / sessions refused', (r) => `${r.info.webchatReconnects}/${r.info.webchatSessionsRefused}`],
  ['emails resent with the same Message-ID', (r) => r.info.emailResendsSameMessageId!],
  ['drain after traffic (s)', (r) => (r.settleMs / 1000).toFixed(1) + (r.settled ? '' : ' (not drained)')],
  ['run time (s)', (r) => (r.durationMs / 1000).toFixed(0)],
];
const width = 46;
const header = ['', ...results.map((r) => `run ${r.run}`)].map((h, i) => (i === 0 ? h.padEnd(width) : h.padStart(16))).join('');
console.log('\n' + header);
for (const [label, get] of rows) console.log(label.padEnd(width) + results.map((r) => String(get(r.counts)).padStart(16)).join(''));
console.log('-'.repeat(header.length));
for (const [label, get] of infoRows) console.log(label.padEnd(width) + results.map((r) => String(get(r)).padStart(16)).join(''));
if (latency) {
  console.log('\nweb chat reply latency (message → agent answer frame), two instances:');
  console.log(`  calm:                 p50 ${latency.calm.p50} ms   p95 ${latency.calm.p95} ms   (${latency.calm.samples} answers, ${latency.calm.missing} missing)`);
  console.log(`  Slack 429 storm (3 s): p50 ${latency.storm.p50} ms   p95 ${latency.storm.p95} ms   (${latency.storm.samples} answers, ${latency.storm.missing} missing)`);
  console.log(`  p50 ratio storm/calm: ${latency.ratio.toFixed(2)}`);
}
const failing = results.filter((r) => total(r.counts) > 0);
for (const r of failing) {
  console.log(`\nrun ${r.run}: ${total(r.counts)} problem(s); first ones (all in ${join(dir, `run-${r.run}`, 'details.txt')}):`);
  for (const line of r.details.filter((d) => !d.includes('not counted as lost')).slice(0, 15)) console.log(`  ${line}`);
}
console.log(`\nlogs: ${dir}`);
process.exit(failing.length > 0 || (latency && (latency.calm.missing > 0 || latency.storm.missing > 0)) ? 1 : 0);
