/**
 * Boots a real bridge for tests: a SQLite store in a temp dir, the offline agent by default,
 * and whatever channels and workspaces the test brings.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent, AgentTurnInput, AgentTurnResult } from '../../src/agent/agent.ts';
import { loadFaq, OfflineAgent } from '../../src/agent/offline-agent.ts';
import { Bridge, type BridgeOptions } from '../../src/bridge.ts';
import { silentLogger } from '../../src/log.ts';
import type { Policy } from '../../src/policy.ts';
import type { CustomerChannel, Workspace } from '../../src/ports.ts';
import { MemoryWorkspace } from './memory-ports.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/store.ts';

export const FAQ_PATH = new URL('../../config/faq.json', import.meta.url).pathname;

export function offlineAgent(): OfflineAgent {
  return new OfflineAgent(loadFaq(FAQ_PATH));
}

/** An agent whose answers the test scripts. */
export class ScriptedAgent implements Agent {
  readonly name = 'scripted';
  readonly calls: AgentTurnInput[] = [];
  constructor(private readonly script: (input: AgentTurnInput) => AgentTurnResult | Promise<AgentTurnResult>) {}
  async respond(input: AgentTurnInput): Promise<AgentTurnResult> {
    this.calls.push(input);
    return this.script(input);
  }
}

export interface TestBridge {
  bridge: Bridge;
  store: Store;
  dir: string;
  close(): Promise<void>;
}

export async function createTestBridge(
  opts: {
    agent?: Agent;
    policy?: Policy;
    channels?: CustomerChannel[];
    workspaces?: Workspace[];
    store?: Store;
    bridgeOptions?: Partial<BridgeOptions>;
    /** false: commit only, run no delivery workers (another instance does the work). */
    startWorkers?: boolean;
  } = {},
): Promise<TestBridge> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-test-'));
  const store = opts.store ?? (await openSqliteStore(join(dir, 'bridge.sqlite')));
  const bridge = new Bridge({
    store,
    agent: opts.agent ?? offlineAgent(),
    logger: silentLogger(),
    ...(opts.policy ? { policy: opts.policy } : {}),
    // Quick retries: tests measure behaviour, not patience.
    delivery: { pollMs: 50, backoff: { initialMs: 20, maxMs: 500, factor: 2, jitter: 0.2 } },
    ...opts.bridgeOptions,
  });
  for (const channel of opts.channels ?? []) bridge.addChannel(channel);
  // A workspace runs unless the test says otherwise: with none, nobody is ever promised a person.
  for (const workspace of opts.workspaces ?? [new MemoryWorkspace('test')]) bridge.addWorkspace(workspace);
  if (opts.startWorkers !== false) bridge.start();
  return {
    bridge,
    store,
    dir,
    async close() {
      await bridge.idle();
      await bridge.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every work item ever written for a conversation in the harness's SQLite file (done or not), by who it was for. */
export function workLog(dir: string, conversationId: string): Array<{ seq: number; to: string[] }> {
  const db = new Database(join(dir, 'bridge.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT body FROM work_log WHERE conversation_id = ? ORDER BY seq').all(conversationId) as Array<{ body: string }>).map((row) => JSON.parse(row.body) as { seq: number; to: string[] });
  } finally {
    db.close();
  }
}

/** Polls `check` until it returns truthy or the deadline passes. */
export async function waitFor<T>(check: () => T | Promise<T>, { timeoutMs = 5000, intervalMs = 10, what = 'condition' } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const DANA = { id: 'test:dana', name: 'Dana', workspace: 'test' };
export const SAM = { id: 'test:sam', name: 'Sam', workspace: 'test' };
