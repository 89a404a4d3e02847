/**
 * One timer for many items that each want the same thing done every `everyMs`, from when they were
 * added: what a `setInterval` per item does, without a timer per item (an open socket that does
 * nothing should cost next to nothing). Items all have the same period, so the order they were
 * added in is the order they fall due: a Map keeps that order, and the timer waits for the first.
 */
export class Periodic<T> {
  /** item -> when it is next due (whole ms on the monotonic clock: small integers need no box), in due order. */
  private readonly due = new Map<T, number>();
  private timer: NodeJS.Timeout | undefined;
  /** When `timer` fires. */
  private timerAt = Infinity;

  constructor(
    private readonly everyMs: number,
    private readonly run: (item: T) => void,
  ) {}

  /** `run(item)` every `everyMs` from now, until `delete(item)`. Adding it again starts it afresh. */
  add(item: T): void {
    this.due.delete(item);
    this.due.set(item, Math.ceil(performance.now() + this.everyMs));
    this.arm();
  }

  delete(item: T): void {
    this.due.delete(item);
    if (this.due.size === 0) this.disarm();
  }

  get size(): number {
    return this.due.size;
  }

  /** Forgets every item. */
  clear(): void {
    this.due.clear();
    this.disarm();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    const ready: T[] = [];
    for (const [item, at] of this.due) {
      if (at > now) break;
      ready.push(item);
    }
    // Each goes to the back, due again a period from now (as a `setInterval` does).
    for (const item of ready) {
      this.due.delete(item);
      this.due.set(item, Math.ceil(now + this.everyMs));
    }
    try {
      for (const item of ready) if (this.due.has(item)) this.run(item);
    } finally {
      this.arm(); // a throwing `run` stops that round, never the schedule
    }
  }

  private arm(): void {
    const first = this.due.values().next();
    if (first.done) return;
    // Timers fire at whole milliseconds, and may fire a little early: never wait less than 1 ms.
    const at = first.value;
    if (this.timer && this.timerAt <= at) return;
    this.disarm();
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(1, Math.ceil(at - performance.now())));
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
