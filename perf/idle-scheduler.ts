/**
 * Micro-benchmark: the cost of idle timeouts for 10,000 endpoints, in one run, alternating A B A B.
 *
 *   A  quay's IdleTimeoutScheduler (one periodic sweep for all, uWebSockets' way): register every target, mark
 *      activity round-robin (`markActive`: a `performance.now()` and a store), time sweeps of all targets,
 *      unregister every target.
 *   B  one Node timer per endpoint refreshed on activity, which is what `socket.setTimeout(ms)` does
 *      (net.Socket keeps a `Timeout` and calls `refresh()` on every read and write): `setTimeout` for each,
 *      `timer.refresh()` round-robin, `clearTimeout` each.
 *
 * Run with `--expose-gc`: the heap rows need it (`heapUsed` after a full GC, less V8's code spaces, before
 * against after creating the bookkeeping), and the full GCs move the targets to old space as long-lived endpoints would be; stores into
 * freshly allocated young targets measure several times cheaper and flatter A's activity figure.
 *
 *   npx tsc -p tsconfig.json && node --expose-gc dist/perf/idle-scheduler.js [--targets 10000]
 *     [--marks 1000000] [--pairs 9] [--json]
 *
 * Everything is synchronous, so neither the scheduler's unref'd interval nor the timers ever fire during a
 * measurement: only the bookkeeping is measured. Node's own timer processing (libuv's heap and the per-duration
 * lists) has no equivalent of "one sweep" to time, so that row is A only.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import type { IdleTimeoutTarget } from '../lib/io/IdleTimeoutScheduler.js';
import { median } from './lib.js';

const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: '10000' },
    marks: { type: 'string', default: '1000000' },
    pairs: { type: 'string', default: '9' },
    json: { type: 'boolean', default: false },
  },
});
const N = positiveInt(values.targets, 'targets');
const MARKS = positiveInt(values.marks, 'marks');
const PAIRS = Math.max(3, positiveInt(values.pairs, 'pairs'));
const SWEEPS = 30;
/** Long enough that nothing fires during the run; the same for all, as a server's sockets would have. */
const TIMEOUT_MS = 3_600_000;
const gc = (globalThis as { gc?: () => void }).gc;

function positiveInt(s: string | undefined, name: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`--${name} must be a positive integer, got ${s}`);
  return n;
}

/**
 * Heap used after a full GC, less V8's code spaces; NaN without --expose-gc. JIT code comes and goes with
 * tier-up and OSR (swings of ~200 KB per run were seen), which would swamp a 10k-object delta of ~80 KB.
 */
function heapUsed(): number {
  if (gc === undefined) return Number.NaN;
  gc();
  gc();
  let code = 0;
  for (const space of getHeapSpaceStatistics()) if (space.space_name.startsWith('code')) code += space.space_used_size;
  return process.memoryUsage().heapUsed - code;
}

// The allocating loops live in small functions, optimised once by the warm-up, rather than in the run
// functions: a loop in a long function is compiled on-stack (OSR) afresh in every run, and that code's metadata
// lands in old space between two heap readings.
function createTargets(holder: Target[]): void {
  for (let i = 0; i < holder.length; i++) holder[i] = new Target();
}

function registerAll(scheduler: IdleTimeoutScheduler, holder: readonly Target[]): void {
  for (let i = 0; i < holder.length; i++) scheduler.register(holder[i]!);
}

function createTimers(holder: NodeJS.Timeout[]): void {
  for (let i = 0; i < holder.length; i++) holder[i] = setTimeout(noop, TIMEOUT_MS).unref();
}

function elapsedNs(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0);
}

let expiredCount = 0;

/**
 * Stands in for an endpoint: the three IdleTimeoutTarget fields and the hook. `lastActivityMs` starts as a clock
 * reading (a double), as EndPoint's does: starting it at the integer 0 would make V8 migrate every object's map
 * when the first fractional `performance.now()` is stored, which costs ~0.8 us per target at registration.
 */
class Target implements IdleTimeoutTarget {
  idleTimeoutMs = TIMEOUT_MS;
  lastActivityMs = performance.now();
  idleSlot = -1;
  onIdleExpired(): void {
    expiredCount++;
  }
}

interface SchedulerRun {
  registerMs: number;
  nsPerMark: number;
  /** The same stores without the clock read (written directly, as an endpoint may): the store alone. */
  nsPerStore: number;
  sweepUsNoneExpired: number;
  sweepUsAllExpired: number;
  unregisterMs: number;
  /** The scheduler's own bookkeeping per target (its array slot). */
  heapSlot: number;
  /** The target objects too (header + the three fields, the timestamp being a heap number): an upper bound. */
  heapWithTarget: number;
}

interface TimerRun {
  createMs: number;
  nsPerRefresh: number;
  clearMs: number;
  heapPerTimer: number;
}

let sink = 0;

function runScheduler(n: number, marks: number): SchedulerRun {
  const holder: Target[] = new Array<Target>(n);
  const h0 = heapUsed();
  createTargets(holder);
  const h1 = heapUsed();
  const scheduler = new IdleTimeoutScheduler({ tickMs: 1000 });

  let t0 = process.hrtime.bigint();
  registerAll(scheduler, holder);
  const registerMs = elapsedNs(t0) / 1e6;
  const h2 = heapUsed();

  t0 = process.hrtime.bigint();
  for (let i = 0, j = 0; i < marks; i++) {
    scheduler.markActive(holder[j]!);
    if (++j === n) j = 0;
  }
  const nsPerMark = elapsedNs(t0) / marks;

  // (A second scheduler with a fake clock would make markActive's clock call polymorphic and slow A down.)
  const base = performance.now();
  t0 = process.hrtime.bigint();
  for (let i = 0, j = 0; i < marks; i++) {
    holder[j]!.lastActivityMs = base + i * 1e-6;
    if (++j === n) j = 0;
  }
  const nsPerStore = elapsedNs(t0) / marks;
  const restart = performance.now();
  for (let i = 0; i < n; i++) holder[i]!.lastActivityMs = restart;

  const none: number[] = [];
  for (let s = 0; s < SWEEPS; s++) {
    t0 = process.hrtime.bigint();
    sink += scheduler.sweep();
    none.push(elapsedNs(t0) / 1000);
  }
  // Worst case: every target expires in the same sweep (the hook only counts).
  const all: number[] = [];
  for (let s = 0; s < SWEEPS; s++) {
    for (let i = 0; i < n; i++) holder[i]!.lastActivityMs = -TIMEOUT_MS;
    t0 = process.hrtime.bigint();
    sink += scheduler.sweep();
    all.push(elapsedNs(t0) / 1000);
  }

  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) scheduler.unregister(holder[i]!);
  const unregisterMs = elapsedNs(t0) / 1e6;
  if (scheduler.size !== 0 || scheduler.isRunning) throw new Error('scheduler not empty after unregistering all');
  scheduler.close();
  return {
    registerMs,
    nsPerMark,
    nsPerStore,
    sweepUsNoneExpired: median(none),
    sweepUsAllExpired: median(all),
    unregisterMs,
    heapSlot: (h2 - h1) / n,
    heapWithTarget: (h2 - h0) / n,
  };
}

function noop(): void {}

function runTimers(n: number, refreshes: number): TimerRun {
  const holder: NodeJS.Timeout[] = new Array<NodeJS.Timeout>(n);
  const h0 = heapUsed();
  let t0 = process.hrtime.bigint();
  createTimers(holder);
  const createMs = elapsedNs(t0) / 1e6;
  const h1 = heapUsed();

  t0 = process.hrtime.bigint();
  for (let i = 0, j = 0; i < refreshes; i++) {
    holder[j]!.refresh();
    if (++j === n) j = 0;
  }
  const nsPerRefresh = elapsedNs(t0) / refreshes;

  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) clearTimeout(holder[i]!);
  const clearMs = elapsedNs(t0) / 1e6;
  return { createMs, nsPerRefresh, clearMs, heapPerTimer: (h1 - h0) / n };
}

// Warm-up (not reported): lets both paths reach optimised code before the measured pairs.
runScheduler(Math.min(N, 2000), Math.min(MARKS, 200_000));
runTimers(Math.min(N, 2000), Math.min(MARKS, 200_000));

const runStarted = performance.now();
const a: SchedulerRun[] = [];
const b: TimerRun[] = [];
for (let p = 0; p < PAIRS; p++) {
  a.push(runScheduler(N, MARKS));
  b.push(runTimers(N, MARKS));
}
const runSeconds = (performance.now() - runStarted) / 1000;

const med = <T>(rs: readonly T[], f: (r: T) => number): number => median(rs.map(f));
const round = (x: number, digits: number): number | null => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);
const A = {
  registerMs: round(med(a, (r) => r.registerMs), 3),
  nsPerActivity: round(med(a, (r) => r.nsPerMark), 1),
  nsPerStoreWithoutClockRead: round(med(a, (r) => r.nsPerStore), 1),
  unregisterMs: round(med(a, (r) => r.unregisterMs), 3),
  sweepUsNoneExpired: round(med(a, (r) => r.sweepUsNoneExpired), 1),
  sweepUsAllExpired: round(med(a, (r) => r.sweepUsAllExpired), 1),
  heapBytesPerTargetSlot: round(med(a, (r) => r.heapSlot), 1),
  heapBytesPerTargetWithFields: round(med(a, (r) => r.heapWithTarget), 1),
};
const B = {
  createMs: round(med(b, (r) => r.createMs), 3),
  nsPerActivity: round(med(b, (r) => r.nsPerRefresh), 1),
  clearMs: round(med(b, (r) => r.clearMs), 3),
  heapBytesPerTimer: round(med(b, (r) => r.heapPerTimer), 1),
};
const ratio = (x: number | null, y: number | null): number | null => (x !== null && y !== null && y !== 0 ? round(x / y, 2) : null);
const summary = {
  benchmark: 'idle-scheduler',
  date: new Date().toISOString(),
  node: process.version,
  targets: N,
  activityMarks: MARKS,
  pairs: PAIRS,
  sweepsPerRun: SWEEPS,
  gcExposed: gc !== undefined,
  runSeconds: round(runSeconds, 2),
  scheduler: A,
  timerPerEndpoint: B,
  /** B / A: above 1 means the scheduler is cheaper. */
  ratios: {
    perActivity: ratio(B.nsPerActivity, A.nsPerActivity),
    setup: ratio(B.createMs, A.registerMs),
    teardown: ratio(B.clearMs, A.unregisterMs),
    heap: ratio(B.heapBytesPerTimer, A.heapBytesPerTargetSlot),
  },
  samples: { scheduler: a, timerPerEndpoint: b },
};

if (values.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  const show = (x: number | null, unit = ''): string => (x === null ? 'n/a' : `${x.toLocaleString('en-US')}${unit}`);
  const rows: [string, string, string, string][] = [
    ['per activity (ns)', show(A.nsPerActivity), show(B.nsPerActivity), show(summary.ratios.perActivity, 'x')],
    ['  the store alone, no clock read (ns)', show(A.nsPerStoreWithoutClockRead), '-', ''],
    [`set up ${N} (ms)`, show(A.registerMs), show(B.createMs), show(summary.ratios.setup, 'x')],
    [`tear down ${N} (ms)`, show(A.unregisterMs), show(B.clearMs), show(summary.ratios.teardown, 'x')],
    ['heap per endpoint (bytes)', `${show(A.heapBytesPerTargetSlot)} slot (${show(A.heapBytesPerTargetWithFields)} w/ fields)`, show(B.heapBytesPerTimer), show(summary.ratios.heap, 'x')],
    [`sweep of ${N}, none expire (us)`, show(A.sweepUsNoneExpired), '-', ''],
    [`sweep of ${N}, all expire (us)`, show(A.sweepUsAllExpired), '-', ''],
  ];
  const head: [string, string, string, string] = ['', 'A: IdleTimeoutScheduler', 'B: setTimeout + refresh()', 'B / A'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: readonly string[]): string => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(
    `Idle timeouts for ${N.toLocaleString('en-US')} endpoints, ${MARKS.toLocaleString('en-US')} activity marks per run, ` +
      `${PAIRS} alternating A/B pairs (medians), Node ${process.version}, ${summary.runSeconds}s`,
  );
  console.log(line(head));
  console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  for (const r of rows) console.log(line(r));
  if (gc === undefined) console.log('(heap rows need --expose-gc)');
  const sweepShare = A.sweepUsNoneExpired === null ? null : (A.sweepUsNoneExpired / 1e6) * 100; // per 1 s tick
  console.log(
    `\nSummary: marking activity costs ${show(A.nsPerActivity)} ns with the scheduler against ${show(B.nsPerActivity)} ns ` +
      `for refreshing a per-socket timer (B/A ${show(summary.ratios.perActivity, 'x')}); of the scheduler's figure the store alone is ` +
      `${show(A.nsPerStoreWithoutClockRead)} ns, the rest being the performance.now() read. In exchange the scheduler ` +
      `runs one sweep per tick: ${show(A.sweepUsNoneExpired)} us for ${N.toLocaleString('en-US')} targets when none expire ` +
      `(${sweepShare === null ? 'n/a' : sweepShare.toFixed(3)}% of a core at the default 1 s tick), ${show(A.sweepUsAllExpired)} us ` +
      `when all do. Registering and unregistering ${N.toLocaleString('en-US')} targets costs ${show(A.registerMs)} + ` +
      `${show(A.unregisterMs)} ms against ${show(B.createMs)} + ${show(B.clearMs)} ms for the timers` +
      (gc === undefined
        ? '; run with --expose-gc for the heap figures.'
        : `, and the scheduler's own heap is ${show(A.heapBytesPerTargetSlot)} bytes per endpoint (an array slot; the ` +
          `endpoint carries the two fields) against ${show(B.heapBytesPerTimer)} bytes per Timeout object.`) +
      ` One timer runs instead of ${N.toLocaleString('en-US')}.`,
  );
}
if (sink === -1 || expiredCount === -1) console.log(''); // keeps the measured results observable to the optimiser
