import type { Clock, TimerHandle } from './Clock.js';
import { systemClock } from './Clock.js';

/** What the scheduler watches; `EndPoint` implements it. */
export interface IdleTimeoutTarget {
  /** Milliseconds; 0 (or anything not > 0) = never expires. Read at every sweep, so a change takes effect at the next sweep. */
  readonly idleTimeoutMs: number;
  /**
   * Clock time of the last activity. The endpoint writes it (via `scheduler.markActive` or directly) on every read
   * and completed write. Initialise it with a clock reading, not `0`: V8 then never has to change the field from
   * small-integer to double representation on a live object (a map migration per object on the first store).
   */
  lastActivityMs: number;
  /** The scheduler's slot for O(1) removal; -1 when not registered. Initialise to -1 and leave it to the scheduler. */
  idleSlot: number;
  /** Called by a sweep when `now - lastActivityMs >= idleTimeoutMs > 0`; the target decides whether to close. */
  onIdleExpired(now: number): void;
  /**
   * Optional: clock time of a deadline that activity does not move (a request that must be complete by then);
   * `Infinity` (or absent) = none. The target sets it; a sweep calls `onDeadline` once `now >= deadlineMs`.
   */
  readonly deadlineMs?: number;
  /**
   * Optional: called by a sweep when `now >= deadlineMs`, before the idle check. The target sets its next deadline
   * (or `Infinity`) itself; a deadline left in the past is called again at the next sweep.
   */
  onDeadline?(now: number): void;
}

/** Options of an {@link IdleTimeoutScheduler}. */
export interface IdleTimeoutSchedulerOptions {
  /** Default: {@link systemClock}. Tests pass a `ManualClock`. */
  clock?: Clock;
  /** Sweep period in ms (default 1000): the granularity of every idle timeout. */
  tickMs?: number;
}

/**
 * One idle-timeout timer for all endpoints.
 *
 * Jetty's `org.eclipse.jetty.io.IdleTimeout` keeps one lazily rescheduled timer per endpoint: activity only
 * stores a timestamp, and when the timer fires it compares that timestamp with the timeout and either expires
 * the endpoint or reschedules for the remainder. uWebSockets (`us_internal_timer_sweep` in uSockets) goes
 * further: one timer for the whole loop that walks every socket and decrements a per-socket timeout. We take
 * uWS's shape with Jetty's timestamp: marking activity is a plain number store (O(1), no allocation, no timer
 * touched on the hot path), and one periodic sweep compares each target's `lastActivityMs` with its
 * `idleTimeoutMs`. One interval for 10k sockets instead of 10k `Timeout` objects in Node's timer lists.
 *
 * Granularity: with the timer firing on time, a target expires between `idleTimeoutMs` and
 * `idleTimeoutMs + tickMs` after its last activity (later if the event loop is blocked).
 *
 * Deadlines: a target may also carry an absolute `deadlineMs` (a request that must be complete by then, whatever
 * trickles in meanwhile). The same sweep compares it with `now`, one number per target, so a deadline costs no timer
 * either: it fires between `deadlineMs` and `deadlineMs + tickMs`.
 *
 * Expiry counts as activity (as Jetty's `IdleTimeout.checkIdleTimeout` reschedules after calling
 * `onIdleExpired`): a target that expired and was neither unregistered nor marked active during the call gets
 * `lastActivityMs = now`, so it is not called again until it has been idle another full timeout.
 *
 * The timer runs only while at least one target is registered, and it is unref'd (see {@link systemClock}).
 *
 * Targets live in an array, `idleSlot` being the index: register appends, unregister swaps the last target into
 * the freed slot. During a sweep, unregister leaves a hole instead (the sweep walks slots in order, so moving a
 * target would make it skipped or visited twice) and the holes are compacted once the sweep ends; targets
 * registered during a sweep are appended past the end the sweep started with, so they wait for the next one.
 */
export class IdleTimeoutScheduler {
  /** The clock that times activity and drives the sweep. Endpoints read `now()` from it too. */
  readonly clock: Clock;
  /** Sweep period in ms. */
  readonly tickMs: number;
  /** Registered targets; `null` only for holes left by unregister during a sweep. */
  private targets: (IdleTimeoutTarget | null)[] = [];
  private live = 0;
  private holes = 0;
  private sweeping = false;
  /** Bumped by close(), so a sweep in progress stops when a callback closes the scheduler. */
  private generation = 0;
  private timer: TimerHandle | undefined;
  private readonly onTick = (): void => void this.sweep();

  /** @throws RangeError when `tickMs` is not a finite number > 0. */
  constructor(options: IdleTimeoutSchedulerOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.tickMs = options.tickMs ?? 1000;
    if (!(this.tickMs > 0) || !Number.isFinite(this.tickMs)) throw new RangeError(`tickMs must be a finite number > 0, got ${this.tickMs}`);
  }

  /** How many targets are watched. */
  get size(): number {
    return this.live;
  }

  /** True while the sweep timer is scheduled (exactly when `size > 0`). */
  get isRunning(): boolean {
    return this.timer !== undefined;
  }

  /**
   * Starts watching `target`, counting its idle time from now (`lastActivityMs = clock.now()`); starts the timer
   * if it was not running. Registering a target that is already registered here is a no-op.
   */
  register(target: IdleTimeoutTarget): void {
    const slot = target.idleSlot;
    if (slot !== -1 && this.targets[slot] === target) return;
    target.lastActivityMs = this.clock.now();
    target.idleSlot = this.targets.length;
    this.targets.push(target);
    this.live++;
    if (this.timer === undefined) this.timer = this.clock.setInterval(this.onTick, this.tickMs);
  }

  /**
   * Stops watching `target` in O(1) (the last target moves into its slot; during a sweep the slot is left empty
   * until the sweep ends). Stops the timer when nothing is left. A target not registered here is ignored.
   */
  unregister(target: IdleTimeoutTarget): void {
    const slot = target.idleSlot;
    if (slot === -1 || this.targets[slot] !== target) return;
    target.idleSlot = -1;
    this.live--;
    if (this.sweeping) {
      this.targets[slot] = null;
      this.holes++;
    } else {
      const last = this.targets.pop()!;
      if (last !== target) {
        this.targets[slot] = last;
        last.idleSlot = slot;
      }
    }
    if (this.live === 0) this.stopTimer();
  }

  /** Records activity: `target.lastActivityMs = clock.now()`, nothing else (no allocation, no timer). */
  markActive(target: IdleTimeoutTarget): void {
    target.lastActivityMs = this.clock.now();
  }

  /**
   * Runs one sweep now (the timer calls this every `tickMs`); returns how many targets expired (idle; deadlines
   * reached are not counted).
   *
   * Every target registered when the sweep starts is visited once, unless a callback unregisters it before its
   * turn; targets registered by callbacks wait for the next sweep. A throwing `onIdleExpired` does not stop the
   * sweep: the others are still visited, then the first error (or an `AggregateError` of all) is rethrown.
   * A `sweep()` called from inside `onIdleExpired` returns 0: the running sweep covers it.
   */
  sweep(): number {
    if (this.sweeping) return 0;
    const targets = this.targets;
    const n = targets.length;
    if (n === 0) return 0;
    const now = this.clock.now();
    const generation = this.generation;
    let expired = 0;
    let errors: unknown[] | undefined;
    this.sweeping = true;
    try {
      for (let i = 0; i < n && generation === this.generation; i++) {
        const target = targets[i];
        if (target === null) continue; // left by an unregister earlier in this sweep
        const deadline = target.deadlineMs;
        if (deadline !== undefined && now >= deadline) {
          try {
            target.onDeadline?.(now);
          } catch (e) {
            (errors ??= []).push(e);
          }
          if (targets[i] !== target) continue; // unregistered (closed) by its deadline
        }
        const timeout = target.idleTimeoutMs;
        if (!(timeout > 0) || now - target.lastActivityMs < timeout) continue;
        expired++;
        const before = target.lastActivityMs;
        try {
          target.onIdleExpired(now);
        } catch (e) {
          (errors ??= []).push(e);
        }
        // Expiry counts as activity (Jetty's reschedule): not called again before another full timeout.
        if (target.lastActivityMs === before) target.lastActivityMs = now;
      }
    } finally {
      this.sweeping = false;
      if (this.holes !== 0) this.compact();
    }
    if (errors !== undefined) {
      throw errors.length === 1 ? errors[0] : new AggregateError(errors, `${errors.length} onIdleExpired callbacks threw`);
    }
    return expired;
  }

  /** Cancels the timer and forgets every target (their `idleSlot` becomes -1). A later `register` starts afresh. */
  close(): void {
    for (const target of this.targets) if (target !== null) target.idleSlot = -1;
    this.targets = [];
    this.live = 0;
    this.holes = 0;
    this.generation++;
    this.stopTimer();
  }

  /** Removes the holes left by unregistrations during a sweep, keeping order; O(n), once per such sweep. */
  private compact(): void {
    const targets = this.targets;
    let w = 0;
    for (let r = 0; r < targets.length; r++) {
      const target = targets[r];
      if (target === null) continue;
      if (w !== r) {
        targets[w] = target;
        target.idleSlot = w;
      }
      w++;
    }
    targets.length = w;
    this.holes = 0;
  }

  private stopTimer(): void {
    const timer = this.timer;
    this.timer = undefined;
    timer?.cancel();
  }
}
