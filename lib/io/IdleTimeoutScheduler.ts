import type { Clock, TimerHandle } from './Clock.js';
import { systemClock } from './Clock.js';

/** What the scheduler watches; `EndPoint` implements it. */
export interface IdleTimeoutTarget {
  /** Milliseconds; 0 = never expires. Read at every sweep, so a change takes effect at the next sweep. */
  readonly idleTimeoutMs: number;
  /** Clock time of the last activity. The endpoint writes it on every read and completed write. */
  lastActivityMs: number;
  /** The scheduler's slot for O(1) removal; -1 when not registered. */
  idleSlot: number;
  /** Called by a sweep when `now - lastActivityMs >= idleTimeoutMs > 0`. */
  onIdleExpired(now: number): void;
}

/** Options of an {@link IdleTimeoutScheduler}. */
export interface IdleTimeoutSchedulerOptions {
  /** Default: the system clock. Tests pass a `ManualClock`. */
  clock?: Clock;
  /** Sweep period in ms (default 1000): the granularity of every idle timeout. */
  tickMs?: number;
}

/**
 * One idle-timeout timer for all endpoints. Jetty keeps one lazily rescheduled timer per endpoint
 * (`IdleTimeout`); uWebSockets sweeps all sockets from one timer. We take uWS's way: marking activity is a plain
 * timestamp store (O(1), no allocation, no timer touched on the hot path), and one periodic sweep compares each
 * target's timestamp with its timeout.
 *
 * Granularity: a target expires between `idleTimeoutMs` and `idleTimeoutMs + tickMs` after its last activity.
 *
 * Expiry counts as activity (like Jetty rescheduling after `onIdleExpired`): a target that expired and was
 * neither closed nor marked active is not called again until it has been idle another full timeout.
 *
 * The timer runs only while at least one target is registered, and it is unref'd.
 */
export class IdleTimeoutScheduler {
  readonly clock: Clock;
  readonly tickMs: number;
  private targets: IdleTimeoutTarget[] = [];
  private timer: TimerHandle | undefined;
  private readonly sweepFn = (): void => void this.sweep();

  constructor(options: IdleTimeoutSchedulerOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.tickMs = options.tickMs ?? 1000;
    if (!(this.tickMs > 0)) throw new RangeError(`tickMs must be > 0, got ${this.tickMs}`);
  }

  /** Targets being watched. */
  get size(): number {
    return this.targets.length;
  }

  /** True while the sweep timer is scheduled. */
  get isRunning(): boolean {
    return this.timer !== undefined;
  }

  /** Starts watching `target` from now. Registering twice is a no-op. */
  register(target: IdleTimeoutTarget): void {
    if (target.idleSlot !== -1 && this.targets[target.idleSlot] === target) return;
    target.lastActivityMs = this.clock.now();
    target.idleSlot = this.targets.length;
    this.targets.push(target);
    if (this.timer === undefined) this.timer = this.clock.setInterval(this.sweepFn, this.tickMs);
  }

  /** Stops watching `target` (O(1): the last target moves into its slot). */
  unregister(target: IdleTimeoutTarget): void {
    const slot = target.idleSlot;
    if (slot === -1 || this.targets[slot] !== target) return;
    const last = this.targets.pop()!;
    if (last !== target) {
      this.targets[slot] = last;
      last.idleSlot = slot;
    }
    target.idleSlot = -1;
    if (this.targets.length === 0) this.stopTimer();
  }

  /** Records activity: a timestamp store, nothing else. */
  markActive(target: IdleTimeoutTarget): void {
    target.lastActivityMs = this.clock.now();
  }

  /**
   * Runs one sweep now; returns how many targets expired. Safe against `onIdleExpired` unregistering itself or
   * others, or registering new targets: the sweep walks a snapshot of the targets present when it started,
   * skipping those unregistered meanwhile, so none is skipped or visited twice.
   */
  sweep(): number {
    const now = this.clock.now();
    const n = this.targets.length;
    if (n === 0) return 0;
    // Copy only when someone expires (rare): the common sweep allocates nothing.
    let snapshot: IdleTimeoutTarget[] | undefined;
    let expired = 0;
    for (let i = 0; i < n; i++) {
      const target = snapshot === undefined ? this.targets[i] : snapshot[i];
      if (target === undefined) break;
      if (snapshot !== undefined && (target.idleSlot === -1 || this.targets[target.idleSlot] !== target)) continue;
      const timeout = target.idleTimeoutMs;
      if (timeout <= 0 || now - target.lastActivityMs < timeout) continue;
      if (snapshot === undefined) snapshot = this.targets.slice(0, n);
      expired++;
      const before = target.lastActivityMs;
      try {
        target.onIdleExpired(now);
      } finally {
        if (target.lastActivityMs === before) target.lastActivityMs = now;
      }
    }
    return expired;
  }

  /** Cancels the timer and forgets every target. */
  close(): void {
    for (const target of this.targets) target.idleSlot = -1;
    this.targets = [];
    this.stopTimer();
  }

  private stopTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
