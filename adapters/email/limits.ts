/**
 * How many new conversations a sender gets automatic replies for: per address and per domain,
 * in a sliding window, shared by every instance through the store. A log of recent grants is kept
 * per address and per domain under one lock per domain; a repeat of the same mail (the sending
 * server retrying) is granted again without counting twice.
 */
import { createHash } from 'node:crypto';
import type { KeyValue, Store } from '../../src/store/store.ts';

export interface AutoReplyLimits {
  /** 0: no limit. */
  perAddress: number;
  /** 0: no limit. */
  perDomain: number;
  windowMs: number;
}

export type LimitDecision = { ok: true } | { ok: false; scope: 'address' | 'domain'; who: string; max: number; windowMs: number };

type Log = Array<{ k: string; t: number }>;

export class AutoReplyLimiter {
  constructor(
    private readonly kv: KeyValue,
    private readonly store: Pick<Store, 'withLock'>,
    private readonly limits: AutoReplyLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes one automatic reply for `address` (and its domain, unless `countDomain` is false: mail
   * the domain itself authenticated is no reflection off it), or says which limit it is over.
   */
  async take(address: string, mailKey: string, countDomain: boolean): Promise<LimitDecision> {
    const { perAddress, perDomain, windowMs } = this.limits;
    const lower = address.toLowerCase();
    const domain = lower.slice(lower.lastIndexOf('@') + 1);
    const useDomain = countDomain && perDomain > 0;
    if (perAddress <= 0 && !useDomain) return { ok: true };
    const key = createHash('sha256').update(mailKey).digest('hex').slice(0, 16);
    return this.store.withLock(`email:limit:${domain}`, async () => {
      const since = this.now() - windowMs;
      const read = async (k: string): Promise<Log> => ((await this.kv.get<Log>(k)) ?? []).filter((e) => e.t > since);
      const addressKey = `limit:address:${lower}`;
      const domainKey = `limit:domain:${domain}`;
      const addressLog = perAddress > 0 ? await read(addressKey) : [];
      const domainLog = useDomain ? await read(domainKey) : [];
      if (addressLog.some((e) => e.k === key)) return { ok: true };
      if (perAddress > 0 && addressLog.length >= perAddress) return { ok: false, scope: 'address', who: lower, max: perAddress, windowMs };
      if (useDomain && domainLog.length >= perDomain) return { ok: false, scope: 'domain', who: domain, max: perDomain, windowMs };
      const entry = { k: key, t: this.now() };
      if (perAddress > 0) await this.kv.set(addressKey, [...addressLog, entry], windowMs);
      if (useDomain) await this.kv.set(domainKey, [...domainLog, entry], windowMs);
      return { ok: true };
    });
  }
}
