/** `STORE_URL` → a store: `redis://...` / `rediss://...`, `sqlite://<path>`, or a plain file path. */
import { ConfigError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { redactUrl } from './keyv-store.ts';
import { openRedisStore } from './redis.ts';
import { openSqliteStore } from './sqlite.ts';
import type { Store } from './store.ts';

export async function openStore(url: string, options: { sqliteSynchronous?: 'full' | 'normal'; logger?: Logger } = {}): Promise<Store> {
  if (/^rediss?:\/\//.test(url)) return openRedisStore(url);
  const sqlite = { ...(options.sqliteSynchronous ? { synchronous: options.sqliteSynchronous } : {}), ...(options.logger ? { logger: options.logger } : {}) };
  if (url.startsWith('sqlite://')) return openSqliteStore(url.slice('sqlite://'.length) || ':memory:', sqlite);
  if (/^[a-z]+:\/\//i.test(url)) throw new ConfigError('STORE_URL', `expected redis://..., sqlite://<path> or a file path, got ${redactUrl(url)}`);
  return openSqliteStore(url, sqlite);
}
