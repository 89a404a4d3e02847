/**
 * When a patient write (`Patience`: a workspace's attempt record or cursor move) may wait, shared by
 * both stores: only while other writes are coming (one in the last PATIENCE_MS), and then until the
 * next write that does not wait, or PATIENCE_MS at most. SQLite takes it into that write's
 * transaction; Redis sends it right behind that write. Either way one fsync covers both.
 */
import { PATIENCE_MS } from './store.ts';

export class PatientWrites {
  private held: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private lastImpatientAt = -Infinity;

  /**
   * Holds `send` when writes are coming: it is then called right after the next `impatient()`, in
   * the same turn, or after PATIENCE_MS. False when nothing is coming: the caller sends as usual.
   */
  wait(send: () => void): boolean {
    if (performance.now() - this.lastImpatientAt >= PATIENCE_MS) return false;
    this.held.push(send);
    this.timer ??= setTimeout(this.release, PATIENCE_MS);
    return true;
  }

  /** A write that does not wait is being sent now: the held ones follow it. */
  impatient(): void {
    this.lastImpatientAt = performance.now();
    if (this.held.length > 0) this.release();
  }

  /** The held writes went along with another one already (a SQLite batch): nothing left to call. */
  forget(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.held = [];
  }

  /** Sends whatever is held, now (also when the store closes). */
  readonly release = (): void => {
    const held = this.held;
    this.forget();
    for (const send of held) send();
  };
}
