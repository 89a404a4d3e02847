/**
 * The store, counting every write (commits, adapter data, once/forget/increment): the fuzzing suites
 * check that rejected input writes nothing. `onWrite` is told of each write (for per-input counts).
 */
import type { KeyValue, Store } from '../../src/store/store.ts';

export function countingStore(store: Store, onWrite: () => void = () => {}): { store: Store; writes: () => number } {
  let writes = 0;
  const counted =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      writes += 1;
      onWrite();
      return fn(...args);
    };
  const wrapped = new Proxy(store, {
    get(target, prop) {
      if (prop === 'kv') {
        return (namespace: string): KeyValue => {
          const kv = target.kv(namespace);
          return { get: (key) => kv.get(key), set: counted((key, value, ttl) => kv.set(key, value, ttl)), delete: counted((key) => kv.delete(key)) };
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const bound = (value as (...args: unknown[]) => unknown).bind(target);
      return ['commit', 'commitClaiming', 'once', 'forget', 'increment'].includes(String(prop)) ? counted(bound as (...args: unknown[]) => Promise<unknown>) : bound;
    },
  });
  return { store: wrapped, writes: () => writes };
}
