/**
 * GET /metrics: Prometheus text with the escalation and the claim, and the backlog per destination.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startBridge } from '../../src/app.ts';
import { silentLogger } from '../../src/log.ts';
import { DANA } from '../support/harness.ts';
import { MemoryWorkspace } from '../support/memory-ports.ts';

const dir = mkdtempSync(join(tmpdir(), 'metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('reports conversations, the escalation by trigger, the time to claim and the pending work', async () => {
  const running = await startBridge({ PORT: '0', HOST: '127.0.0.1', STORE_URL: join(dir, 'm.sqlite'), WEBCHAT_ENABLED: 'false' }, { logger: silentLogger() });
  try {
    running.bridge.addWorkspace(new MemoryWorkspace('test'));
    const { conversation } = await running.bridge.customerMessage({ origin: 'api', customer: { id: 'c1' }, text: 'I want to talk to a person' });
    await running.bridge.customerMessage({ origin: 'api', customer: { id: 'c2' }, text: 'What are your opening hours?' });
    await running.bridge.claim({ conversationId: conversation.id, operator: DANA });
    await running.bridge.operatorMessage({ conversationId: conversation.id, operator: DANA, text: 'Hi, Dana here.' });
    await running.bridge.returnToAgent({ conversationId: conversation.id, operator: DANA, note: 'sorted' });
    await running.bridge.idle();

    const response = await fetch(`http://127.0.0.1:${running.port}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toMatch(/^handoff_conversations_total 2$/m);
    expect(text).toMatch(/^handoff_escalations_total\{trigger="explicit_request"\} 1$/m);
    expect(text).toMatch(/^handoff_time_to_claim_seconds_count 1$/m);
    expect(text).toMatch(/^handoff_time_to_first_human_reply_seconds_count 1$/m);
    expect(text).toMatch(/^handoff_handle_time_seconds_count\{how="return"\} 1$/m);
    expect(text).toMatch(/^handoff_fallbacks_total 0$/m);
    expect(text).toMatch(/^handoff_work_pending\{destination="customer"\} 0$/m);
    expect(text).toMatch(/^handoff_delivery_lag_seconds\{destination="agent"\} 0$/m);

    // SQLite's group commit: what a second scrape says lies between what the store had counted just
    // before and just after it (work may still write meanwhile), so each scrape adds only what is new.
    await running.bridge.customerMessage({ origin: 'api', customer: { id: 'c3' }, text: 'Do you ship to Lisbon?' });
    await running.bridge.idle();
    const before = { ...running.bridge.store.stats! };
    const again = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text();
    const after = { ...running.bridge.store.stats! };
    const value = (name: string) => Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(again)?.[1]);
    const between = (scraped: number, low: number, high: number) => {
      expect(scraped).toBeGreaterThanOrEqual(low);
      expect(scraped).toBeLessThanOrEqual(high);
    };
    expect(before.transactions).toBeGreaterThan(0);
    between(value('handoff_store_transactions_total{fsync="yes"}'), before.transactions - before.unsynced, after.transactions - after.unsynced);
    between(value('handoff_store_transactions_total{fsync="no"}'), before.unsynced, after.unsynced);
    between(value('handoff_store_writes_total'), before.writes, after.writes);
    expect(after.writes).toBeGreaterThanOrEqual(after.transactions);
  } finally {
    await running.stop();
  }
});
