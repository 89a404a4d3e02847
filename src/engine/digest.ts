/**
 * The managers' daily digest: a pure summary of one day's figures (read from the per-day sets
 * every commit writes), and the scheduler that has exactly one instance post it once a day.
 */
import type { Logger } from '../log.ts';
import type { Store } from '../store/store.ts';

/** One day at the desk, as the digest shows it. */
export interface Digest {
  date: string;
  conversations: number;
  escalations: number;
  /** escalations / conversations (0..1); the target band is 10-15%. */
  escalationRate: number;
  target: { low: number; high: number };
  medianTimeToClaimSeconds?: number;
  claims: number;
  /** Waiting for a person right now. */
  unclaimed: number;
  fallbacks: number;
  topTriggers: Array<{ trigger: string; count: number }>;
  /** `name`: the operator's display name when they handed back (their id if unknown). */
  returnsPerOperator: Array<{ operatorId: string; name: string; count: number }>;
}

export const ESCALATION_TARGET = { low: 0.1, high: 0.15 };

/** Builds the digest from the day's sets (pure). */
export function summarizeDay(date: string, sets: { conversations: string[]; escalations: string[]; claims: string[]; fallbacks: string[]; triggers: string[]; returns: string[] }, unclaimed: number): Digest {
  const waits = sets.claims.map((m) => Number(m.split('|')[1])).filter(Number.isFinite).sort((a, b) => a - b);
  const median = waits.length === 0 ? undefined : waits.length % 2 ? waits[(waits.length - 1) / 2]! : (waits[waits.length / 2 - 1]! + waits[waits.length / 2]!) / 2;
  const count = (values: string[]) => {
    const counts = new Map<string, number>();
    for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  };
  return {
    date,
    conversations: sets.conversations.length,
    escalations: sets.escalations.length,
    escalationRate: sets.conversations.length ? sets.escalations.length / sets.conversations.length : 0,
    target: ESCALATION_TARGET,
    ...(median !== undefined ? { medianTimeToClaimSeconds: median } : {}),
    claims: sets.claims.length,
    unclaimed,
    fallbacks: sets.fallbacks.length,
    topTriggers: count(sets.triggers.map((m) => m.split('|')[0]!)).slice(0, 5).map(([trigger, n]) => ({ trigger, count: n })),
    returnsPerOperator: count(sets.returns.map((m) => m.split('|')[0]!)).map(([operatorId, n]) => ({
      operatorId,
      name: sets.returns.map((m) => m.split('|')).find((parts) => parts[0] === operatorId && parts[3])?.[3] ?? operatorId,
      count: n,
    })),
  };
}

/** Reads one day's figures from the store. */
export async function readDigest(store: Pick<Store, 'indexMembers'>, date: string): Promise<Digest> {
  const read = (what: string) => store.indexMembers(`day:${date}:${what}`);
  const [conversations, escalations, claims, fallbacks, triggers, returns, waiting] = await Promise.all([
    read('conversations'),
    read('escalations'),
    read('claims'),
    read('fallbacks'),
    read('triggers'),
    read('returns'),
    store.indexMembers('state:waiting'),
  ]);
  return summarizeDay(date, { conversations, escalations, claims, fallbacks, triggers, returns }, waiting.length);
}

/**
 * Posts the digest once a day at `at` (HH:MM, UTC unless a time zone is given). Every instance
 * checks each minute; the first to take the day's mark posts it, and a failed post gives the mark
 * back so the next check tries again.
 */
export class DigestScheduler {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly options: {
      store: Pick<Store, 'indexMembers' | 'once' | 'forget'>;
      at: string;
      timeZone?: string;
      /** Where the digest goes; each gets it once a day, on its own (one failing does not hold the others). */
      targets: Array<{ name: string; post: (digest: Digest) => Promise<void> }>;
      logger: Logger;
      now?: () => Date;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), 60_000);
    this.timer.unref();
    void this.tick();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Posts today's digest to each target if it is time and nobody has yet. True when this call posted somewhere. */
  async tick(): Promise<boolean> {
    const now = this.options.now?.() ?? new Date();
    const local = new Intl.DateTimeFormat('en-CA', { timeZone: this.options.timeZone ?? 'UTC', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(now);
    const part = (type: string) => local.find((p) => p.type === type)?.value ?? '';
    if (`${part('hour')}:${part('minute')}` < this.options.at) return false;
    // The day's figures are kept by UTC date (see stats.ts).
    const date = now.toISOString().slice(0, 10);
    let posted = false;
    for (const target of this.options.targets) {
      const mark = `digest:${date}:${target.name}`;
      try {
        if (!(await this.options.store.once(mark, 3 * 24 * 3600_000))) continue;
      } catch {
        return posted; // the store is down: the next minute tries again
      }
      try {
        await target.post(await readDigest(this.options.store, date));
        this.options.logger.info({ date, workspace: target.name }, 'daily digest posted');
        posted = true;
      } catch (err) {
        this.options.logger.warn({ err: String(err), date, workspace: target.name }, 'could not post the daily digest; trying again in a minute');
        await this.options.store.forget(mark).catch(() => {});
      }
    }
    return posted;
  }
}
