/**
 * The cost of idle timeouts for 10,000 endpoints: quay's one-sweep IdleTimeoutScheduler against one Node timer
 * per socket refreshed on activity (what `socket.setTimeout` does), alternating A B A B in one run.
 *
 *   npm run build && node --expose-gc dist/perf/idle-scheduler.js [--targets 10000] [--marks 1000000] [--pairs 3] [--json]
 */
import { parseArgs } from 'node:util';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import type { IdleTimeoutTarget } from '../lib/io/IdleTimeoutScheduler.js';
import { median } from './lib.js';

const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: '10000' },
    marks: { type: 'string', default: '1000000' },
    pairs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(values.targets);
const MARKS = Number(values.marks);
const PAIRS = Number(values.pairs);
const gc = (globalThis as { gc?: () => void }).gc;

function heap(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

class Target implements IdleTimeoutTarget {
  lastActivityMs = 0;
  idleSlot = -1;
  idleTimeoutMs = 3_600_000;
  onIdleExpired(): void {}
}

interface Result {
  nsPerActivity: number;
  setupMsPer10k: number;
  sweepUs: number;
  heapBytesPerEndpoint: number;
}

function runScheduler(): Result {
  const targets = Array.from({ length: N }, () => new Target());
  const before = heap();
  const scheduler = new IdleTimeoutScheduler({ tickMs: 1000 });
  let t0 = process.hrtime.bigint();
  for (const x of targets) scheduler.register(x);
  const setup = Number(process.hrtime.bigint() - t0) / 1e6;
  const heapPer = (heap() - before) / N;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < MARKS; i++) scheduler.markActive(targets[i % N]!);
  const marks = Number(process.hrtime.bigint() - t0);
  const sweeps: number[] = [];
  for (let i = 0; i < 20; i++) {
    const s0 = process.hrtime.bigint();
    scheduler.sweep();
    sweeps.push(Number(process.hrtime.bigint() - s0) / 1000);
  }
  scheduler.close();
  return { nsPerActivity: marks / MARKS, setupMsPer10k: (setup * 10_000) / N, sweepUs: median(sweeps), heapBytesPerEndpoint: heapPer };
}

function runTimers(): Result {
  const before = heap();
  let t0 = process.hrtime.bigint();
  const timers: NodeJS.Timeout[] = [];
  for (let i = 0; i < N; i++) timers.push(setTimeout(noop, 3_600_000).unref());
  const setup = Number(process.hrtime.bigint() - t0) / 1e6;
  const heapPer = (heap() - before) / N;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < MARKS; i++) timers[i % N]!.refresh();
  const marks = Number(process.hrtime.bigint() - t0);
  for (const x of timers) clearTimeout(x);
  // Node's timer list is checked by libuv, not by a sweep we can time: 0 here.
  return { nsPerActivity: marks / MARKS, setupMsPer10k: (setup * 10_000) / N, sweepUs: 0, heapBytesPerEndpoint: heapPer };
}

function noop(): void {}

const quay: Result[] = [];
const timers: Result[] = [];
for (let i = 0; i < PAIRS; i++) {
  quay.push(runScheduler());
  timers.push(runTimers());
}
const pick = (rs: Result[], k: keyof Result): number => median(rs.map((r) => r[k]));
const summary = {
  date: new Date().toISOString(),
  node: process.version,
  targets: N,
  activityMarks: MARKS,
  pairs: PAIRS,
  gcExposed: gc !== undefined,
  quay: { nsPerActivity: pick(quay, 'nsPerActivity'), setupMsPer10k: pick(quay, 'setupMsPer10k'), sweepUs: pick(quay, 'sweepUs'), heapBytesPerEndpoint: pick(quay, 'heapBytesPerEndpoint') },
  setTimeoutPerSocket: { nsPerActivity: pick(timers, 'nsPerActivity'), setupMsPer10k: pick(timers, 'setupMsPer10k'), heapBytesPerEndpoint: pick(timers, 'heapBytesPerEndpoint') },
};
if (values.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  const q = summary.quay;
  const s = summary.setTimeoutPerSocket;
  console.log(`Idle timeouts for ${N} endpoints, ${MARKS} activity marks, ${PAIRS} alternating pairs (medians), Node ${process.version}`);
  console.log('| | quay IdleTimeoutScheduler | setTimeout per socket + refresh() | ratio |');
  console.log('| --- | --- | --- | --- |');
  console.log(`| ns per activity mark | ${q.nsPerActivity.toFixed(1)} | ${s.nsPerActivity.toFixed(1)} | ${(s.nsPerActivity / q.nsPerActivity).toFixed(1)}x cheaper |`);
  console.log(`| ms to set up 10,000 | ${q.setupMsPer10k.toFixed(2)} | ${s.setupMsPer10k.toFixed(2)} | ${(s.setupMsPer10k / q.setupMsPer10k).toFixed(1)}x |`);
  console.log(`| heap bytes per endpoint | ${q.heapBytesPerEndpoint.toFixed(0)} (slot only; the timestamp lives in the endpoint) | ${s.heapBytesPerEndpoint.toFixed(0)} | |`);
  console.log(`| one sweep of all ${N} (µs, once per tick) | ${q.sweepUs.toFixed(0)} | n/a (libuv timer heap) | |`);
  if (gc === undefined) console.log('(run with --expose-gc for heap figures)');
}
