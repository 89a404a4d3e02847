/**
 * The fault suite, small enough for `npm test` (about a minute on 2 cores): two bridge instances as
 * child processes on one real redis-server, Slack behind the chaos proxy, kill -9 and restart of
 * one instance mid-burst, Redis stopped and started while owners reply, the SMTP sink down, racing
 * claims. Every count must be 0. Then the web chat reply latency during a Slack 429 storm must stay
 * close to the calm one. `npm run faults` runs the full size (bench/faults.ts, docs/faults.md).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { total } from './count.ts';
import { startRig, type Rig } from './rig.ts';
import { measureLatency, runScenario } from './scenario.ts';

const dir = mkdtempSync(join(tmpdir(), 'faults-test-'));
let rig: Rig | undefined;
let passed = false;
afterAll(async () => {
  await rig?.close();
  // The instances' logs stay for a failed run (the assertion message names the directory).
  if (passed) rmSync(dir, { recursive: true, force: true });
});

it('nothing is lost, doubled or reordered through kill -9, a Redis outage, an SMTP outage and Slack chaos; 429s do not slow the customer', { timeout: 240_000 }, async () => {
  rig = await startRig({ dir, seed: 7, chaosRate: 0.2, dropRate: 0.05, leaseMs: 5000, email: true, logLevel: 'info' });
  const result = await runScenario(rig, {
    run: 1,
    seed: 7,
    webchatCustomers: 4,
    emailCustomers: 2,
    escalateEvery: 2,
    returnEvery: 2,
    agentQuestions: 2,
    humanMessages: 3,
    ownerReplies: 3,
    afterReturnQuestions: 1,
    plainQuestions: 4,
    smtpDownMs: 5000,
    redisDownMs: 3000,
    restartAfterMs: 500,
    settleTimeoutMs: 60_000,
  });
  const report = [`logs: ${dir}`, ...result.timeline.map((t) => `+${t.atMs} ms ${t.what}`), ...result.details].join('\n');
  // The faults happened, and the traffic went through them.
  expect(result.timeline.map((t) => t.what).join('\n'), report).toMatch(/killed[\s\S]*restarted[\s\S]*Redis stopped[\s\S]*Redis started/);
  expect(result.chaos.rateLimited + result.chaos.serverErrors + result.chaos.dropped, report).toBeGreaterThan(0);
  expect(result.info.customerMessagesInThreads, report).toBeGreaterThanOrEqual(result.info.customerMessagesAccepted!);
  expect(result.info.ownerRepliesShown, report).toBe(result.info.ownerRepliesAccepted);
  expect(result.counts, report).toEqual({
    customerToThread: { lost: 0, duplicated: 0, outOfOrder: 0 },
    ownerToCustomer: { lost: 0, duplicated: 0, outOfOrder: 0 },
    agentToCustomer: { lost: 0, duplicated: 0, outOfOrder: 0 },
    noticesToCustomer: { lost: 0, duplicated: 0, outOfOrder: 0 },
    claimsWithoutOneOwner: 0,
    mutedAgentMessages: 0,
    slackDuplicatePosts: 0,
  });
  expect(total(result.counts)).toBe(0);

  const latency = await measureLatency(rig, { customers: 4, questions: 3, label: 'lat' });
  const figures = JSON.stringify(latency);
  expect(latency.calm.missing + latency.storm.missing, figures).toBe(0);
  // Generous on purpose: a noisy machine moves both phases; Slack's 3 s Retry-After must not show up here.
  expect(latency.storm.p50, figures).toBeLessThan(3 * latency.calm.p50 + 200);
  passed = true;
});
