import t from 'tap';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import type { IdleTimeoutTarget } from '../lib/io/IdleTimeoutScheduler.js';
import { ManualClock } from '../lib/io/Clock.js';

class Target implements IdleTimeoutTarget {
  lastActivityMs = 0;
  idleSlot = -1;
  expiries: number[] = [];
  onExpire: ((now: number) => void) | undefined;
  constructor(public idleTimeoutMs: number) {}
  onIdleExpired(now: number): void {
    this.expiries.push(now);
    this.onExpire?.(now);
  }
}

function setup(tickMs = 100): { clock: ManualClock; s: IdleTimeoutScheduler } {
  const clock = new ManualClock();
  return { clock, s: new IdleTimeoutScheduler({ clock, tickMs }) };
}

t.test('expires after the timeout, not before; activity postpones; 0 never', async (t) => {
  const { clock, s } = setup();
  const a = new Target(1000);
  const busy = new Target(1000);
  const never = new Target(0);
  s.register(a);
  s.register(busy);
  s.register(never);
  for (let i = 0; i < 9; i++) {
    clock.advance(100);
    s.markActive(busy);
  }
  t.same(a.expiries, [], 'not before the timeout');
  clock.advance(100);
  t.same(a.expiries, [1000], 'at the first sweep at or after the timeout');
  for (let i = 0; i < 30; i++) {
    clock.advance(100);
    s.markActive(busy);
  }
  t.same(busy.expiries, [], 'activity keeps it alive');
  t.same(never.expiries, [], '0 never expires');
  t.same(a.expiries, [1000, 2000, 3000, 4000], 'expiry counts as activity: once per full timeout');
});

t.test('the timeout can change at any time', async (t) => {
  const { clock, s } = setup();
  const a = new Target(0);
  s.register(a);
  clock.advance(5000);
  t.same(a.expiries, []);
  a.idleTimeoutMs = 300;
  clock.advance(100);
  t.same(a.expiries, [5100], 'already idle longer than the new timeout: next sweep');
});

t.test('unregister and register during a sweep', async (t) => {
  const { clock, s } = setup();
  const targets = Array.from({ length: 6 }, () => new Target(100));
  for (const x of targets) s.register(x);
  targets[0]!.onExpire = () => s.unregister(targets[0]!); // itself
  targets[1]!.onExpire = () => s.unregister(targets[4]!); // another, not yet visited
  const late = new Target(100);
  targets[2]!.onExpire = () => s.register(late);
  clock.advance(100);
  t.same(targets.map((x) => x.expiries.length), [1, 1, 1, 1, 0, 1], 'each visited once; the removed one skipped');
  t.same(late.expiries, [], 'registered during the sweep: not visited in it');
  t.equal(s.size, 5);
  clock.advance(100);
  t.same(late.expiries, [200]);
});

t.test('the timer runs only while something is registered; close()', async (t) => {
  const { clock, s } = setup();
  t.equal(clock.activeTimers, 0);
  const a = new Target(100);
  const b = new Target(100);
  s.register(a);
  s.register(a);
  t.equal(s.size, 1, 'registering twice is a no-op');
  s.register(b);
  t.equal(clock.activeTimers, 1, 'one timer for all');
  s.unregister(a);
  t.equal(a.idleSlot, -1);
  t.equal(clock.activeTimers, 1);
  s.unregister(b);
  t.equal(clock.activeTimers, 0, 'stopped when empty');
  s.register(a);
  s.close();
  t.equal(clock.activeTimers, 0);
  t.equal(s.size, 0);
  t.equal(a.idleSlot, -1);
});

t.test('seeded randomized run against a reference model', async (t) => {
  let seed = 7;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const tick = 50;
  const { clock, s } = setup(tick);
  const targets = Array.from({ length: 200 }, () => new Target(Math.floor(rnd() * 10) * 100));
  const model = targets.map(() => ({ last: 0, registered: true, expected: 0 }));
  targets.forEach((x) => s.register(x));
  for (let step = 0; step < 400; step++) {
    for (let k = 0; k < 20; k++) {
      const i = Math.floor(rnd() * targets.length);
      const x = targets[i]!;
      const m = model[i]!;
      const r = rnd();
      if (r < 0.7 && m.registered) {
        s.markActive(x);
        m.last = clock.now();
      } else if (r < 0.85 && m.registered) {
        s.unregister(x);
        m.registered = false;
      } else if (!m.registered) {
        s.register(x);
        m.registered = true;
        m.last = clock.now();
      }
    }
    clock.advance(tick);
    const now = clock.now();
    for (let i = 0; i < targets.length; i++) {
      const m = model[i]!;
      const x = targets[i]!;
      if (m.registered && x.idleTimeoutMs > 0 && now - m.last >= x.idleTimeoutMs) {
        m.expected++;
        m.last = now;
      }
    }
  }
  const mismatches = targets.filter((x, i) => x.expiries.length !== model[i]!.expected).length;
  t.equal(mismatches, 0, 'every target expired exactly when the model says');
  s.close();
});

t.test('ManualClock runs intervals at their due times, in order', async (t) => {
  const clock = new ManualClock(1000);
  const seen: string[] = [];
  const a = clock.setInterval(() => seen.push(`a@${clock.now()}`), 30);
  clock.setInterval(() => seen.push(`b@${clock.now()}`), 50);
  clock.advance(100);
  t.same(seen, ['a@1030', 'b@1050', 'a@1060', 'a@1090', 'b@1100']);
  a.cancel();
  clock.advance(50);
  t.same(seen.slice(5), ['b@1150']);
  t.equal(clock.now(), 1150);
});
