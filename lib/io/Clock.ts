import { performance } from 'node:perf_hooks';

/** A periodic timer's handle. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Time as lib/io sees it. Injectable so that tests of idle timeouts advance time by hand instead of sleeping.
 */
export interface Clock {
  /** Milliseconds, monotonic (never goes back when the wall clock is adjusted). */
  now(): number;
  /** Calls `fn` every `ms` until cancelled. The system clock's timer is unref'd: it never keeps the process alive. */
  setInterval(fn: () => void, ms: number): TimerHandle;
}

/** The real clock: `performance.now()` and an unref'd `setInterval`. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setInterval(fn: () => void, ms: number): TimerHandle {
    const timer = setInterval(fn, ms);
    timer.unref();
    return { cancel: () => clearInterval(timer) };
  },
};

interface ManualTimer {
  fn: () => void;
  period: number;
  due: number;
  cancelled: boolean;
}

/**
 * A clock for tests: time moves only when `advance(ms)` is called, and interval callbacks that fall due on the
 * way run in time order, each seeing `now()` equal to its due time.
 */
export class ManualClock implements Clock {
  private time: number;
  private timers: ManualTimer[] = [];

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  /** How many intervals are active (tests check that a scheduler stops its timer when idle). */
  get activeTimers(): number {
    return this.timers.length;
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    if (!(ms > 0)) throw new RangeError(`interval must be > 0 ms, got ${ms}`);
    const timer: ManualTimer = { fn, period: ms, due: this.time + ms, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
        this.timers = this.timers.filter((t) => t !== timer);
      },
    };
  }

  /** Moves time forward by `ms`, running every interval callback that falls due, in order. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`cannot advance by ${ms} ms`);
    const end = this.time + ms;
    // Bounded: each iteration moves time forward to the earliest due timer, at most (ms / smallest period) + n steps.
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.timers) if (!t.cancelled && t.due <= end && (next === undefined || t.due < next.due)) next = t;
      if (next === undefined) break;
      this.time = next.due;
      next.due += next.period;
      next.fn();
    }
    this.time = end;
  }
}
