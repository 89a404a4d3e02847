/**
 * A SQLite file made by an earlier version opens and keeps what it had: inbound marks made before
 * they kept their message gain the column, and their resends are still answered from the index.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { openSqliteStore } from '../../src/store/sqlite.ts';

let dir: string | undefined;

afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('an inbound table without the message column gets it on open, and its marks still count', async () => {
  dir = mkdtempSync(join(tmpdir(), 'sqlite-upgrade-'));
  const path = join(dir, 'bridge.sqlite');
  const old = new Database(path);
  old.exec('CREATE TABLE inbound (key TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID');
  old.prepare('INSERT INTO inbound (key, conversation_id, expires_at) VALUES (?, ?, ?)').run('customer:webchat:s:c1', 'conv_old', Date.now() + 60_000);
  old.close();

  const store = await openSqliteStore(path);
  try {
    expect(await store.inboundSeen('customer:webchat:s:c1')).toBe('conv_old');
    expect(await store.inboundMessage('customer:webchat:s:c1')).toBeUndefined();
    // New marks keep their message in the same file.
    await store.commit({
      conversation: { id: 'conv_new', ticket: 'HB-1', origin: 'webchat', customer: { id: 'v' }, queue: 'general', state: 'agent', ownershipVersion: 0, version: 0, messages: [], history: [], decisions: [], agentTurns: 0, approvals: [], createdAt: new Date().toISOString(), updatedAt: new Date().toISOString(), channelData: {} },
      expectedVersion: 0,
      appended: [],
      inbound: { key: 'customer:webchat:s:c2', ttlMs: 60_000, message: 'msg_new' },
    });
    expect(await store.inboundMessage('customer:webchat:s:c2')).toBe('msg_new');
  } finally {
    await store.close();
  }
  // Opening again does not try to add the column twice.
  const again = await openSqliteStore(path);
  expect(await again.inboundMessage('customer:webchat:s:c2')).toBe('msg_new');
  await again.close();
});
