import { performance } from 'node:perf_hooks';

/** A periodic timer's handle. */
export interface TimerHandle {
  /** Stops the timer; idempotent. */
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

/**
 * The real clock: `performance.now()` (monotonic, unlike `Date.now()`) and an unref'd `setInterval`, so that a
 * server's housekeeping timer never holds the process open on its own.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setInterval(fn: () => void, ms: number): TimerHandle {
    const timer = setInterval(fn, ms);
    timer.unref();
    return { cancel: () => clearInterval(timer) };
  },
};

interface ManualTimer {
  readonly fn: () => void;
  readonly period: number;
  due: number;
}

/**
 * A clock for tests: time moves only when {@link ManualClock.advance} is called, and interval callbacks that fall
 * due on the way run in time order (ties in creation order), each seeing `now()` equal to its due time.
 */
export class ManualClock implements Clock {
  private time: number;
  private timers: ManualTimer[] = [];

  /** @param startMs the initial value of `now()` (default 0). */
  constructor(startMs = 0) {
    this.time = startMs;
  }

  /** The current manual time in ms. */
  now(): number {
    return this.time;
  }

  /** How many intervals are active (tests check that a scheduler stops its timer when idle). */
  get activeTimers(): number {
    return this.timers.length;
  }

  /** Schedules `fn` every `ms` (> 0), first at `now() + ms`. */
  setInterval(fn: () => void, ms: number): TimerHandle {
    if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError(`interval must be a finite number > 0 ms, got ${ms}`);
    const timer: ManualTimer = { fn, period: ms, due: this.time + ms };
    this.timers.push(timer);
    return {
      cancel: () => {
        const i = this.timers.indexOf(timer);
        if (i !== -1) this.timers.splice(i, 1);
      },
    };
  }

  /**
   * Moves time forward by `ms`, running every interval callback that falls due on the way, in order; timers
   * created or cancelled by a callback are honoured within the same call. If a callback throws, time stays at
   * that callback's due time and the error propagates.
   */
  advance(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`cannot advance by ${ms} ms`);
    const end = this.time + ms;
    // Bounded: every iteration moves one timer's due time forward by its period (> 0), so the loop runs at most
    // sum(ms / period) times over the timers alive during the call.
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.timers) if (t.due <= end && (next === undefined || t.due < next.due)) next = t;
      if (next === undefined) break;
      this.time = next.due;
      next.due += next.period;
      next.fn();
    }
    this.time = end;
  }
}
