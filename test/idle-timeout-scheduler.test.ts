import t from 'tap';
import { ManualClock } from '../lib/io/Clock.js';
import type { Clock, TimerHandle } from '../lib/io/Clock.js';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import type { IdleTimeoutTarget } from '../lib/io/IdleTimeoutScheduler.js';

/** A target that records when it expired and runs an optional hook. */
class Target implements IdleTimeoutTarget {
  idleTimeoutMs: number;
  lastActivityMs = 0;
  idleSlot = -1;
  readonly expiries: number[] = [];
  onExpire: ((now: number) => void) | undefined;

  constructor(
    readonly name: string,
    idleTimeoutMs: number,
  ) {
    this.idleTimeoutMs = idleTimeoutMs;
  }

  onIdleExpired(now: number): void {
    this.expiries.push(now);
    this.onExpire?.(now);
  }
}

function setup(tickMs = 100, startMs = 0): { clock: ManualClock; scheduler: IdleTimeoutScheduler } {
  const clock = new ManualClock(startMs);
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs });
  return { clock, scheduler };
}

/** mulberry32: a tiny seeded PRNG so the randomized test is reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('ManualClock runs interval callbacks at their due times, in order', async (t) => {
  const clock = new ManualClock(1000);
  const seen: string[] = [];
  const a = clock.setInterval(() => seen.push(`a@${clock.now()}`), 30);
  clock.setInterval(() => seen.push(`b@${clock.now()}`), 50);
  t.equal(clock.activeTimers, 2);
  clock.advance(29);
  t.same(seen, [], 'nothing due yet');
  clock.advance(81); // to 1110
  t.same(seen, ['a@1030', 'b@1050', 'a@1060', 'a@1090', 'b@1100']);
  t.equal(clock.now(), 1110, 'time ends at start + ms');
  a.cancel();
  a.cancel();
  t.equal(clock.activeTimers, 1, 'cancel is idempotent');
  seen.length = 0;
  clock.advance(50);
  t.same(seen, ['b@1150']);
  t.throws(() => clock.advance(-1), RangeError);
  t.throws(() => clock.setInterval(() => {}, 0), RangeError);
});

t.test('ManualClock: ties run in creation order; callbacks may add and cancel timers mid-advance', async (t) => {
  const clock = new ManualClock();
  const seen: string[] = [];
  let late: TimerHandle | undefined;
  const first = clock.setInterval(() => {
    seen.push(`first@${clock.now()}`);
    if (late === undefined) late = clock.setInterval(() => seen.push(`late@${clock.now()}`), 15); // due at 25
  }, 10);
  const victim = clock.setInterval(() => seen.push(`victim@${clock.now()}`), 20);
  clock.setInterval(() => {
    seen.push(`second@${clock.now()}`);
    victim.cancel(); // cancelled before its own turn at 20
  }, 20);
  clock.advance(30);
  t.same(
    seen,
    ['first@10', 'first@20', 'victim@20', 'second@20', 'late@25', 'first@30'],
    'ties in creation order; a timer added by a callback runs in the same advance; a cancelled one stops',
  );
  seen.length = 0;
  clock.advance(10);
  t.same(seen, ['first@40', 'second@40', 'late@40'], 'the victim stays cancelled');

  first.cancel();
  const boom = new Error('boom');
  const thrower = clock.setInterval(() => {
    throw boom;
  }, 5); // due at 45
  t.throws(() => clock.advance(100), boom, 'a throwing callback propagates');
  t.equal(clock.now(), 45, 'time stays at the failing callback');
  thrower.cancel();
  clock.advance(0);
  t.equal(clock.now(), 45, 'advance(0) runs nothing due later');
});

t.test('the timer sweeps every tickMs while targets are registered', async (t) => {
  const { clock, scheduler } = setup(100, 5);
  const sweeps: number[] = [];
  const probe = new Target('probe', 0); // never expires, only keeps the timer running
  const original = scheduler.sweep.bind(scheduler);
  scheduler.sweep = () => {
    sweeps.push(clock.now());
    return original();
  };
  clock.advance(250);
  t.same(sweeps, [], 'no timer before the first register');
  scheduler.register(probe); // at 255
  clock.advance(300);
  t.same(sweeps, [355, 455, 555], 'one sweep per tick from registration');
  scheduler.unregister(probe);
  clock.advance(300);
  t.same(sweeps, [355, 455, 555], 'no sweeps while empty');
});

t.test('a target expires after its timeout, within one tick', async (t) => {
  const { clock, scheduler } = setup(100);
  const a = new Target('a', 1000);
  scheduler.register(a);
  t.equal(a.lastActivityMs, 0, 'register sets lastActivityMs = now');
  t.not(a.idleSlot, -1);
  clock.advance(900);
  t.same(a.expiries, [], 'not before the timeout');
  clock.advance(100);
  t.same(a.expiries, [1000], 'expired at the sweep where idle time reached the timeout');

  // Activity between ticks: expiry comes between timeout and timeout + tickMs after it.
  const b = new Target('b', 1000);
  scheduler.register(b);
  clock.advance(50); // 1050
  scheduler.markActive(b);
  t.equal(b.lastActivityMs, 1050);
  clock.advance(1049); // 2099: idle 1049 at the 2000 sweep (950) ... the 2000 sweep saw 950
  t.same(b.expiries, [], 'not expired at 950 ms idle');
  clock.advance(1); // 2100: idle 1050
  t.same(b.expiries, [2100], 'expired 1050 ms after the last activity (timeout 1000 + at most one tick 100)');
  t.ok(b.expiries[0]! - 1050 >= 1000 && b.expiries[0]! - 1050 < 1000 + scheduler.tickMs, 'granularity bound');
  scheduler.close();
});

t.test('activity postpones expiry', async (t) => {
  const { clock, scheduler } = setup(100);
  const a = new Target('a', 500);
  scheduler.register(a);
  for (let i = 0; i < 20; i++) {
    clock.advance(100);
    scheduler.markActive(a);
  }
  t.same(a.expiries, [], 'kept alive by activity every tick');
  a.lastActivityMs = clock.now(); // endpoints may write the field directly
  clock.advance(400);
  t.same(a.expiries, []);
  clock.advance(100);
  t.same(a.expiries, [2500], 'expires once activity stops');
  scheduler.close();
});

t.test('timeout 0 never expires', async (t) => {
  const { clock, scheduler } = setup(100);
  const a = new Target('a', 0);
  scheduler.register(a);
  clock.advance(1_000_000);
  t.same(a.expiries, []);
  t.equal(scheduler.sweep(), 0);
  t.equal(scheduler.size, 1, 'still registered');
  scheduler.close();
});

t.test('negative, NaN and infinite timeouts never expire either', async (t) => {
  const { clock, scheduler } = setup(100);
  const ts = [-1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY].map((ms) => new Target(`t${ms}`, ms));
  for (const x of ts) scheduler.register(x);
  clock.advance(100_000);
  t.same(ts.map((x) => x.expiries.length), [0, 0, 0, 0]);
  scheduler.close();
});

t.test('changing the timeout at runtime takes effect at the next sweep', async (t) => {
  const { clock, scheduler } = setup(100);
  const a = new Target('a', 0);
  const b = new Target('b', 10_000);
  scheduler.register(a);
  scheduler.register(b);
  clock.advance(5000);
  t.same(a.expiries, []);
  a.idleTimeoutMs = 300; // already idle 5000 ms: expires at the next sweep
  b.idleTimeoutMs = 2000; // likewise
  clock.advance(100);
  t.same(a.expiries, [5100]);
  t.same(b.expiries, [5100]);
  b.idleTimeoutMs = 60_000; // lengthened: not called again until 60 s after the expiry
  clock.advance(59_900);
  t.same(b.expiries, [5100]);
  clock.advance(100);
  t.same(b.expiries, [5100, 65_100]);
  t.equal(a.expiries.length, 201, 'a (300 ms) expired every 300 ms meanwhile: 5100 + 200 * 300');
  a.idleTimeoutMs = 0; // turned off
  clock.advance(100_000);
  t.equal(a.expiries.length, 201, 'no more expiries once set to 0');
  scheduler.close();
});

t.test('expiry counts as activity: no double calls', async (t) => {
  const { clock, scheduler } = setup(100);
  const quiet = new Target('quiet', 1000); // neither closes nor marks active
  const busy = new Target('busy', 1000);
  busy.onExpire = () => scheduler.markActive(busy);
  scheduler.register(quiet);
  scheduler.register(busy);
  clock.advance(1000);
  t.same(quiet.expiries, [1000]);
  t.equal(quiet.lastActivityMs, 1000, 'the scheduler rescheduled it from the expiry');
  t.equal(scheduler.sweep(), 0, 'an immediate second sweep calls nobody');
  clock.advance(900);
  t.same(quiet.expiries, [1000], 'not called again before another full timeout');
  clock.advance(100);
  t.same(quiet.expiries, [1000, 2000]);
  t.same(busy.expiries, [1000, 2000], 'a target that marks itself active is treated the same way');
  scheduler.close();
});

t.test('unregister inside onIdleExpired: itself, a visited target, an unvisited target', async (t) => {
  const { clock, scheduler } = setup(100);
  const ts = Array.from({ length: 6 }, (_, i) => new Target(`t${i}`, 1000));
  for (const x of ts) scheduler.register(x);
  // t2 closes itself (like an EndPoint), t3 removes t0 (visited) and t5 (not yet visited).
  ts[2]!.onExpire = () => scheduler.unregister(ts[2]!);
  ts[3]!.onExpire = () => {
    scheduler.unregister(ts[0]!);
    scheduler.unregister(ts[5]!);
    scheduler.unregister(ts[5]!); // twice: ignored
  };
  clock.advance(1000);
  t.same(
    ts.map((x) => x.expiries.length),
    [1, 1, 1, 1, 1, 0],
    'each visited once; the unvisited one removed before its turn is not called',
  );
  t.equal(scheduler.size, 3);
  t.same(
    [ts[0]!.idleSlot, ts[2]!.idleSlot, ts[5]!.idleSlot],
    [-1, -1, -1],
    'removed targets have slot -1',
  );
  // The survivors' slots are dense and consistent after the sweep.
  const slots = [ts[1]!, ts[3]!, ts[4]!].map((x) => x.idleSlot).sort();
  t.same(slots, [0, 1, 2]);
  clock.advance(1000);
  t.same(
    ts.map((x) => x.expiries.length),
    [1, 2, 1, 2, 2, 0],
    'the survivors keep expiring; the removed ones never again',
  );
  scheduler.close();
});

t.test('register inside onIdleExpired: the new target waits for the next sweep', async (t) => {
  const { clock, scheduler } = setup(100);
  const a = new Target('a', 1000);
  const fresh = new Target('fresh', 50); // would be "expired" by any later sweep at once
  const again = new Target('again', 1000);
  const stale = new Target('stale', 1000);
  scheduler.register(a); // slot 0: visited first
  scheduler.register(again); // slot 1: expires in the same sweep as a
  a.onExpire = (now) => {
    scheduler.register(fresh);
    // An endpoint may write its own timestamp: this one would be expired if this sweep visited it.
    scheduler.register(stale);
    stale.lastActivityMs = now - 5000;
    // Unregister and re-register a target before its turn: it moves past the sweep's end and is not visited.
    scheduler.unregister(again);
    scheduler.register(again);
  };
  clock.advance(1000);
  t.same(a.expiries, [1000]);
  t.same(fresh.expiries, [], 'not visited in the sweep that registered it');
  t.equal(fresh.lastActivityMs, 1000, 'registered at the sweep time');
  t.same(stale.expiries, [], 'not visited even though it is already past its timeout');
  t.same(again.expiries, [], 're-registered before its turn: idle time restarts, not visited');
  t.equal(again.lastActivityMs, 1000);
  t.equal(scheduler.size, 4);
  a.onExpire = undefined;
  clock.advance(100);
  t.same(fresh.expiries, [1100], 'visited by the next sweep');
  t.same(stale.expiries, [1100]);
  clock.advance(900);
  t.same(again.expiries, [2000], 'a full timeout after its re-registration');
  scheduler.close();
});

t.test('no target is called twice in one sweep, whatever the callbacks do', async (t) => {
  const { clock, scheduler } = setup(100);
  const ts = Array.from({ length: 8 }, (_, i) => new Target(`t${i}`, 300));
  for (const x of ts) scheduler.register(x);
  // t0 leaves and comes back (appended past the sweep's end); t1 re-registers t0 and t7 (visited / not yet);
  // t2 marks itself active; t3 unregisters and re-registers itself twice; t4 moves t5 to the end.
  ts[0]!.onExpire = () => {
    scheduler.unregister(ts[0]!);
    scheduler.register(ts[0]!);
  };
  ts[1]!.onExpire = () => {
    for (const x of [ts[0]!, ts[7]!]) {
      scheduler.unregister(x);
      scheduler.register(x);
    }
  };
  ts[2]!.onExpire = () => scheduler.markActive(ts[2]!);
  ts[3]!.onExpire = () => {
    for (let k = 0; k < 2; k++) {
      scheduler.unregister(ts[3]!);
      scheduler.register(ts[3]!);
    }
  };
  ts[4]!.onExpire = () => {
    scheduler.unregister(ts[5]!);
    scheduler.register(ts[5]!);
  };
  const sweeps: number[] = [];
  for (let k = 0; k < 20; k++) {
    clock.advance(100);
    sweeps.push(clock.now());
    for (const x of ts) {
      const calls = x.expiries.filter((at) => at === clock.now()).length;
      if (calls > 1) t.fail(`${x.name} called ${calls} times in the sweep at ${clock.now()}`);
    }
  }
  t.equal(scheduler.size, 8, 'every target still registered once');
  t.same(
    ts.map((x) => x.idleSlot).sort((p, q) => p - q),
    [0, 1, 2, 3, 4, 5, 6, 7],
    'slots dense and distinct',
  );
  const every300 = [300, 600, 900, 1200, 1500, 1800];
  t.same(
    ts.map((x) => x.expiries),
    [[300], every300, every300, every300, every300, [], every300, []],
    'once per due sweep; t0, t5 and t7 are re-registered before their turn in every sweep, which restarts their idle time',
  );
  scheduler.close();
});

t.test('close(): forgets every target, stops the timer, and the scheduler can be reused', async (t) => {
  const { clock, scheduler } = setup(100);
  const ts = Array.from({ length: 3 }, (_, i) => new Target(`t${i}`, 200));
  for (const x of ts) scheduler.register(x);
  scheduler.close();
  t.equal(scheduler.size, 0);
  t.equal(scheduler.isRunning, false);
  t.equal(clock.activeTimers, 0, 'the interval is cancelled');
  t.same(ts.map((x) => x.idleSlot), [-1, -1, -1], 'targets are detached');
  clock.advance(10_000);
  t.same(ts.map((x) => x.expiries.length), [0, 0, 0], 'nobody is called after close');
  t.equal(scheduler.sweep(), 0, 'a manual sweep finds nothing');
  scheduler.unregister(ts[0]!); // ignored: not registered any more
  scheduler.close(); // idempotent
  t.equal(clock.activeTimers, 0);

  scheduler.register(ts[1]!);
  t.equal(clock.activeTimers, 1, 'a register after close starts a new timer');
  t.equal(ts[1]!.idleSlot, 0);
  t.equal(ts[1]!.lastActivityMs, 10_000, 'idle time counts from the new registration');
  clock.advance(200);
  t.same(ts[1]!.expiries, [10_200]);

  // close() inside a callback: the sweep stops, later targets are not called, new registrations are honoured.
  scheduler.register(ts[2]!);
  ts[1]!.onExpire = () => {
    scheduler.close();
    scheduler.register(ts[0]!);
  };
  clock.advance(200); // t1 expires at 10_400 (slot 0) and closes before t2 (slot 1)'s turn
  t.same(ts[1]!.expiries, [10_200, 10_400]);
  t.same(ts[2]!.expiries, [], 'the sweep stopped at close');
  t.equal(scheduler.size, 1);
  t.equal(ts[0]!.idleSlot, 0, 'registered after the close, in the fresh table');
  t.equal(ts[2]!.idleSlot, -1);
  t.equal(clock.activeTimers, 1, 'one timer, for the new registration');
  clock.advance(200);
  t.same(ts[0]!.expiries, [10_600], 'the new registration is swept normally');
  scheduler.close();
  t.equal(clock.activeTimers, 0);
});

t.test('the timer starts and stops with register/unregister', async (t) => {
  const { clock, scheduler } = setup(100);
  const a = new Target('a', 1000);
  const b = new Target('b', 1000);
  t.equal(clock.activeTimers, 0, 'no timer while empty');
  t.equal(scheduler.isRunning, false);
  scheduler.register(a);
  t.equal(clock.activeTimers, 1);
  scheduler.register(b);
  scheduler.register(b); // no-op
  t.equal(clock.activeTimers, 1, 'one timer for all targets');
  t.equal(scheduler.size, 2);
  scheduler.unregister(a);
  t.equal(clock.activeTimers, 1);
  scheduler.unregister(b);
  t.equal(clock.activeTimers, 0, 'stopped when empty');
  t.equal(scheduler.isRunning, false);

  // The last target leaves during a sweep, a new one arrives in the same sweep: the timer keeps running.
  scheduler.register(a);
  a.onExpire = () => {
    scheduler.unregister(a);
    t.equal(clock.activeTimers, 0, 'stopped as soon as the last target leaves');
    scheduler.register(b);
  };
  clock.advance(1000);
  t.equal(clock.activeTimers, 1, 'restarted by the registration during the sweep');
  t.equal(scheduler.size, 1);
  t.equal(b.idleSlot, 0, 'slots compacted after the sweep');

  scheduler.close();
  t.equal(clock.activeTimers, 0, 'close cancels the timer');
  t.equal(scheduler.size, 0);
  t.equal(b.idleSlot, -1, 'close forgets targets');
  scheduler.register(a);
  t.equal(clock.activeTimers, 1, 'usable again after close');
  scheduler.close();
});

t.test('a throwing onIdleExpired does not stop the sweep; the error is rethrown after it', async (t) => {
  const { scheduler } = setup(100);
  const ts = Array.from({ length: 4 }, (_, i) => new Target(`t${i}`, 1));
  for (const x of ts) {
    scheduler.register(x);
    x.lastActivityMs = -100;
  }
  const boom = new Error('boom');
  ts[1]!.onExpire = () => {
    scheduler.unregister(ts[1]!);
    throw boom;
  };
  t.throws(() => scheduler.sweep(), boom);
  t.same(
    ts.map((x) => x.expiries.length),
    [1, 1, 1, 1],
    'all visited',
  );
  t.equal(scheduler.size, 3);
  t.same([ts[0]!, ts[2]!, ts[3]!].map((x) => x.idleSlot), [0, 1, 2], 'compacted despite the error');

  for (const x of ts) x.lastActivityMs = -100;
  ts[0]!.onExpire = () => {
    throw new Error('one');
  };
  ts[2]!.onExpire = () => {
    throw new Error('two');
  };
  t.throws(() => scheduler.sweep(), AggregateError, 'several errors are aggregated');
  scheduler.close();
});

t.test('sweep re-entrancy and close during a sweep', async (t) => {
  const { scheduler } = setup(100);
  const a = new Target('a', 1);
  const b = new Target('b', 1);
  scheduler.register(a);
  scheduler.register(b);
  a.lastActivityMs = b.lastActivityMs = -100;
  let nested = -1;
  a.onExpire = () => (nested = scheduler.sweep());
  t.equal(scheduler.sweep(), 2);
  t.equal(nested, 0, 'a nested sweep does nothing');
  t.same([a.expiries.length, b.expiries.length], [1, 1]);

  a.lastActivityMs = b.lastActivityMs = -100;
  a.onExpire = () => scheduler.close();
  t.equal(scheduler.sweep(), 1, 'the sweep stops once a callback closes the scheduler');
  t.same([a.expiries.length, b.expiries.length], [2, 1]);
  t.equal(scheduler.size, 0);
});

t.test('constructor validates tickMs; defaults to 1000', async (t) => {
  t.throws(() => new IdleTimeoutScheduler({ tickMs: 0 }), RangeError);
  t.throws(() => new IdleTimeoutScheduler({ tickMs: Number.NaN }), RangeError);
  const s = new IdleTimeoutScheduler({ clock: new ManualClock() });
  t.equal(s.tickMs, 1000);
});

/**
 * Randomized: many targets doing random things (including from inside onIdleExpired) against a reference model
 * of the contract. Order-independent checks per sweep, with E = targets expired when the sweep starts and
 * U = targets unregistered by callbacks during it: every call is for a registered, expired target, at most once;
 * E minus U are all called.
 */
t.test('randomized against a reference model (seeded)', async (t) => {
  const TIMEOUTS = [0, 50, 100, 250, 700];
  for (const seed of [1, 42, 20240607]) {
    const rnd = mulberry32(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const manual = new ManualClock(1000);

    // The model: registered targets and what their lastActivityMs must be.
    const last = new Map<Target, number>();
    let expected: Set<Target> | undefined; // E of the running sweep
    let calledThisSweep = new Set<Target>();
    let removedThisSweep = new Set<Target>();
    let registeredThisSweep = new Set<Target>();
    let sweepNow = 0;
    let failures = 0;
    const fail = (msg: string): void => {
      if (failures++ < 5) t.fail(`seed ${seed}: ${msg}`);
    };

    const beginSweep = (): void => {
      sweepNow = manual.now();
      expected = new Set();
      for (const [x, l] of last) if (x.idleTimeoutMs > 0 && sweepNow - l >= x.idleTimeoutMs) expected.add(x);
      calledThisSweep = new Set();
      removedThisSweep = new Set();
      registeredThisSweep = new Set();
    };
    const endSweep = (returned: number | undefined): void => {
      for (const x of expected!) if (!removedThisSweep.has(x) && !calledThisSweep.has(x)) fail(`${x.name} expired but not called`);
      if (returned !== undefined && returned !== calledThisSweep.size) fail(`sweep returned ${returned}, ${calledThisSweep.size} calls`);
      // Expiry counts as activity.
      for (const x of calledThisSweep) if (last.has(x)) last.set(x, sweepNow);
      expected = undefined;
    };
    // Observe the timer's sweeps through the clock, so the model knows when each starts and ends.
    const observed: Clock = {
      now: () => manual.now(),
      setInterval: (fn: () => void, ms: number): TimerHandle =>
        manual.setInterval(() => {
          beginSweep();
          fn();
          endSweep(undefined);
        }, ms),
    };
    const scheduler = new IdleTimeoutScheduler({ clock: observed, tickMs: 100 });

    const pool: Target[] = Array.from({ length: 200 }, (_, i) => new Target(`${seed}/t${i}`, pick(TIMEOUTS)));
    const register = (x: Target): void => {
      if (!last.has(x)) {
        last.set(x, manual.now());
        if (expected !== undefined) registeredThisSweep.add(x);
      }
      scheduler.register(x);
    };
    const unregister = (x: Target): void => {
      if (expected !== undefined && last.has(x) && x.idleSlot !== -1) removedThisSweep.add(x);
      last.delete(x);
      scheduler.unregister(x);
    };
    for (const x of pool) {
      x.onExpire = (now) => {
        if (expected === undefined) return fail(`${x.name} called outside a sweep`);
        if (now !== sweepNow) fail(`${x.name} got now=${now}, sweep at ${sweepNow}`);
        if (!last.has(x)) fail(`${x.name} called while not registered`);
        if (registeredThisSweep.has(x)) fail(`${x.name} visited in the sweep that registered it`);
        if (calledThisSweep.has(x)) fail(`${x.name} called twice in one sweep`);
        if (!expected.has(x)) fail(`${x.name} called but not expired (idle ${now - (last.get(x) ?? NaN)}, timeout ${x.idleTimeoutMs})`);
        calledThisSweep.add(x);
        const r = rnd();
        if (r < 0.25) unregister(x); // close
        else if (r < 0.4) unregister(pick(pool)); // close another
        else if (r < 0.55) {
          // A new connection arrives; half the time it carries an old timestamp (endpoints may write the field),
          // so a sweep that wrongly visited it would call it.
          const y = pick(pool);
          const fresh = !last.has(y);
          register(y);
          if (fresh && y !== x && !calledThisSweep.has(y) && rnd() < 0.5) {
            y.lastActivityMs = sweepNow - 10_000;
            last.set(y, y.lastActivityMs);
          }
        }
        else if (r < 0.65) x.idleTimeoutMs = pick(TIMEOUTS);
        else if (r < 0.75) {
          scheduler.markActive(x); // e.g. sends a ping
          last.set(x, manual.now());
        }
        // else: keep it, do nothing
      };
    }

    for (let step = 0; step < 1500 && failures === 0; step++) {
      const r = rnd();
      const x = pick(pool);
      if (r < 0.2) register(x);
      else if (r < 0.3) unregister(x);
      else if (r < 0.5) {
        if (last.has(x)) {
          scheduler.markActive(x);
          last.set(x, manual.now());
        }
      } else if (r < 0.55) x.idleTimeoutMs = pick(TIMEOUTS);
      else if (r < 0.6) {
        beginSweep();
        endSweep(scheduler.sweep());
      } else manual.advance(Math.floor(rnd() * 160));

      // Invariants after every step.
      if (scheduler.size !== last.size) fail(`size ${scheduler.size}, model ${last.size}`);
      if (manual.activeTimers !== (last.size > 0 ? 1 : 0)) fail(`${manual.activeTimers} timers with ${last.size} targets`);
      for (const y of pool) {
        const registered = last.has(y);
        if ((y.idleSlot !== -1) !== registered) fail(`${y.name} slot ${y.idleSlot}, registered=${registered}`);
        if (registered && y.lastActivityMs !== last.get(y)) fail(`${y.name} lastActivityMs ${y.lastActivityMs}, model ${last.get(y)}`);
      }
    }
    const calls = pool.reduce((n, x) => n + x.expiries.length, 0);
    t.equal(failures, 0, `seed ${seed}: model agrees (${calls} expiries)`);
    t.ok(calls > 100, `seed ${seed}: the run exercised expiry`);
    scheduler.close();
  }
});
