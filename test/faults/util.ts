/** Small helpers the fault suite shares: sleeping, polling, seeded randomness, percentiles. */

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns something truthy; undefined when the deadline passes first. */
export async function until<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, intervalMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) return undefined;
    await sleep(intervalMs);
  }
}

/** A seeded PRNG (mulberry32): the same seed gives the same sequence of faults. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A whole number in [min, max] from `random`. */
export function between(random: () => number, min: number, max: number): number {
  return Math.round(min + random() * (max - min));
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** How many entries of `sequence` are out of order: its length minus its longest increasing subsequence. */
export function outOfOrder(sequence: number[]): { count: number; misplaced: Set<number> } {
  // Patience sorting with back-pointers, so the entries outside the subsequence can be named.
  const tails: number[] = [];
  const previous: number[] = new Array(sequence.length).fill(-1);
  for (let i = 0; i < sequence.length; i++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sequence[tails[mid]!]! < sequence[i]!) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) previous[i] = tails[lo - 1]!;
    tails[lo] = i;
  }
  const keep = new Set<number>();
  for (let i = tails.at(-1) ?? -1; i >= 0; i = previous[i]!) keep.add(i);
  const misplaced = new Set<number>();
  for (let i = 0; i < sequence.length; i++) if (!keep.has(i)) misplaced.add(i);
  return { count: misplaced.size, misplaced };
}
