/**
 * A run split over child processes (`--processes K`): one process may hold only its open-file limit of
 * connections (20,000 here), so 100,000 need several. The parent forks K children (child.ts), gives each its share
 * of the connections (and of --open-concurrency) and the index of its first connection (the source addresses
 * continue one round robin over the whole run), sums their progress into its own Measurement (the progress line),
 * and merges their reports: counts, bytes and errors summed, latency histograms merged (not percentiles averaged),
 * per-broadcast deliveries summed.
 *
 * idle is driven by the parent: the children open their connections and report it; once all have (the time to
 * open them all is the parent's, from its start signal to the last child's report), the parent reads the
 * target's memory (--pid), calls the `held` hook, waits --duration, then tells every child to close, and times
 * that too. echo and http run in every child on their own clocks (their windows overlap; the rates are summed).
 *
 * IPC is a few messages per child and run (progress five times a second), never per connection or message.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Histogram } from './Histogram.js';
import type { HistogramSnapshot } from './Histogram.js';
import { ERROR_KINDS, round } from './Measurement.js';
import type { ErrorKind, Measurement } from './Measurement.js';
import { OptionsError } from './options.js';
import type { LoadOptions } from './options.js';
import { broadcastFigures, latencyDistribution, latencySummary } from './report.js';
import type { BroadcastFigures, LoadReport, WorkloadRun } from './report.js';
import { sleep } from './sleep.js';
import { readRss } from './targetMemory.js';
import type { IdleHooks, IdleLive } from './workloads/idle.js';

/** Parent to child. */
export type ParentMessage = { type: 'run'; options: LoadOptions } | { type: 'close' } | { type: 'abort' };

/** A child's running totals. */
export interface ChildProgress {
  liveCount: number;
  errors: Record<ErrorKind, number>;
  opened: number;
  failed: number;
  received: number;
}

/** Child to parent. */
export type ChildMessage =
  | { type: 'ready' }
  | ({ type: 'progress' } & ChildProgress)
  | ({ type: 'opened' } & ChildProgress)
  | { type: 'result'; report: LoadReport; histogram: HistogramSnapshot; broadcastHistogram?: HistogramSnapshot }
  | { type: 'error'; message: string };

/** A child that died or failed before its report: the run cannot be merged. */
export class LoadProcessError extends Error {
  readonly code = 'LOAD_PROCESS_FAILED';
  constructor(message: string) {
    super(message);
    this.name = 'LoadProcessError';
  }
}

/** After the last handshake, the target settles this long before its memory is read again (as idle does). */
const SETTLE_MS = 1000;
/** A child that does not report within this long after an abort is killed. */
const ABORT_GRACE_MS = 10_000;

interface Child {
  index: number;
  process: ChildProcess;
  ready: boolean;
  opened: boolean;
  progress: ChildProgress;
  result: { report: LoadReport; histogram: Histogram; broadcastHistogram: Histogram | undefined } | undefined;
  /** Why it ended without a result. */
  failure: string | undefined;
  exited: boolean;
}

/** The module a child runs: child.js next to this file (child.ts when run from source, as the tests do). */
function childModule(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './child.ts' : './child.js', import.meta.url);
}

/** `n` split over `k`: the first n mod k shares get one more. */
export function shares(n: number, k: number): number[] {
  const base = Math.floor(n / k);
  return Array.from({ length: k }, (_, i) => base + (i < n % k ? 1 : 0));
}

function zeroErrors(): Record<ErrorKind, number> {
  return { dns: 0, refused: 0, tls: 0, handshake: 0, closed: 0, protocol: 0, timeout: 0, http: 0 };
}

/**
 * Runs `options` over `options.processes` children; `m` gets their summed progress and, at the end, the merged
 * latency histogram.
 * @throws OptionsError for a workload that cannot be split (fanout, selftest).
 * @throws LoadProcessError when a child dies or fails before its report (the others are stopped first).
 */
export async function runProcesses(
  options: LoadOptions,
  m: Measurement,
  signal?: AbortSignal,
  idle: IdleHooks = {},
  module: URL = childModule(),
): Promise<WorkloadRun> {
  const k = options.processes;
  if (options.workload === 'fanout' || options.workload === 'selftest') {
    throw new OptionsError(`--processes is for the echo, http and idle workloads, not ${options.workload}`);
  }
  const isIdle = options.workload === 'idle';
  const counts = shares(options.connections, k);
  const concurrency = Math.max(1, Math.ceil(options.openConcurrency / k));
  const children: Child[] = [];
  let wake: (() => void) | undefined;
  const changed = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  /** Resolves once `done()` holds (re-checked at every message and exit of a child, and at an abort). */
  const until = async (done: () => boolean): Promise<void> => {
    while (!done()) await new Promise<void>((resolve) => (wake = resolve));
  };
  const onAbort = (): void => {
    for (const c of children) send(c, { type: 'abort' });
    changed();
  };

  const live: IdleLive = {
    get opened() {
      return children.reduce((a, c) => a + c.progress.opened, 0);
    },
    get failed() {
      return children.reduce((a, c) => a + c.progress.failed, 0);
    },
    get received() {
      return children.reduce((a, c) => a + c.progress.received, 0);
    },
  };
  const sumProgress = (): void => {
    let liveCount = 0;
    for (const kind of ERROR_KINDS) m.errors[kind] = 0;
    for (const c of children) {
      liveCount += c.progress.liveCount;
      for (const kind of ERROR_KINDS) m.errors[kind] += c.progress.errors[kind];
    }
    m.liveCount = liveCount;
  };

  for (let i = 0; i < k; i++) {
    const child: Child = {
      index: i,
      process: fork(module, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: process.execArgv }),
      ready: false,
      opened: false,
      progress: { liveCount: 0, errors: zeroErrors(), opened: 0, failed: 0, received: 0 },
      result: undefined,
      failure: undefined,
      exited: false,
    };
    children.push(child);
    child.process.on('message', (message: ChildMessage) => {
      switch (message.type) {
        case 'ready':
          child.ready = true;
          break;
        case 'opened':
          child.opened = true;
          child.progress = pickProgress(message);
          break;
        case 'progress':
          child.progress = pickProgress(message);
          break;
        case 'result':
          child.result = {
            report: message.report,
            histogram: Histogram.fromJSON(message.histogram),
            broadcastHistogram: message.broadcastHistogram === undefined ? undefined : Histogram.fromJSON(message.broadcastHistogram),
          };
          child.opened = true;
          break;
        case 'error':
          child.failure = message.message;
          break;
      }
      if (message.type !== 'ready') sumProgress();
      changed();
    });
    child.process.on('error', (error) => {
      child.failure ??= error.message;
      changed();
    });
    child.process.on('exit', (code, sig) => {
      child.exited = true;
      if (child.result === undefined) child.failure ??= `exited with ${sig ?? `code ${code}`} before its report`;
      changed();
    });
  }
  const failed = (): Child | undefined => children.find((c) => c.failure !== undefined);
  signal?.addEventListener('abort', onAbort, { once: true });

  try {
    await until(() => failed() !== undefined || children.every((c) => c.ready));
    throwIfFailed(children, failed());

    const rssBefore = isIdle && options.pid !== undefined ? readRssSum(options.pid) : undefined;
    m.beginMeasuring();
    const start = performance.now();
    let firstIndex = 0;
    for (const c of children) {
      const childOptions: LoadOptions = {
        ...options,
        connections: counts[c.index]!,
        // The rate is the whole run's: each child paces its share of the connections to its share of it.
        rate: options.rate === undefined ? undefined : (options.rate * counts[c.index]!) / options.connections,
        processes: 1,
        firstIndex: options.firstIndex + firstIndex,
        openConcurrency: concurrency,
        // The parent reads the target's memory, holds and plots; the children only open and measure.
        pid: undefined,
        heapUrl: undefined,
        plot: undefined,
        durationSec: isIdle ? 0 : options.durationSec,
        quiet: true,
      };
      firstIndex += counts[c.index]!;
      send(c, { type: 'run', options: childOptions });
    }
    if (signal?.aborted === true) onAbort();

    const extras: Partial<LoadReport> = {};
    let openMs = 0;
    let closeMs = 0;
    if (isIdle) {
      await until(() => failed() !== undefined || children.every((c) => c.opened));
      throwIfFailed(children, failed());
      const openEnd = performance.now();
      openMs = openEnd - start;
      m.stop();
      if (options.pid !== undefined && signal?.aborted !== true) {
        const rssOpen = readRssSum(options.pid);
        await sleep(SETTLE_MS, signal);
        const rssSettled = readRssSum(options.pid);
        if (rssBefore !== undefined && rssOpen !== undefined && rssSettled !== undefined) {
          extras.targetRssBytes = { before: rssBefore, open: rssOpen, settled: rssSettled };
          if (live.opened > 0) extras.targetRssBytesPerConnection = Math.round((rssSettled - rssBefore) / live.opened);
        }
      }
      if (idle.held !== undefined && signal?.aborted !== true) await idle.held(live);
      await sleep(options.durationSec * 1000 - (performance.now() - openEnd), signal);
      const closeStart = performance.now();
      for (const c of children) send(c, { type: 'close' });
      await until(() => failed() !== undefined || children.every((c) => c.result !== undefined));
      closeMs = performance.now() - closeStart;
    } else {
      await until(() => failed() !== undefined || children.every((c) => c.result !== undefined));
      m.stop();
    }
    throwIfFailed(children, failed());

    const runs = children.map((c) => c.result!);
    const histogram = new Histogram();
    for (const r of runs) histogram.merge(r.histogram);
    const report = mergeReports(
      runs.map((r) => r.report),
      histogram,
      mergeHistograms(runs.map((r) => r.broadcastHistogram)),
    );
    Object.assign(report, extras);
    if (isIdle) {
      // The window is the time to open every connection of every child, from the start signal to the last one.
      report.durationSec = round(openMs / 1000, 3);
      report.rate = openMs > 0 ? round((report.count * 1000) / openMs, 1) : 0;
      report.openMs = round(openMs, 1);
      report.closeMs = round(closeMs, 1);
    }
    if (signal?.aborted === true) report.interrupted = true;
    m.histogram.reset();
    m.histogram.merge(histogram);
    m.count = report.count;
    m.bytes = report.bytes;
    return { report, measurement: m };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await stopChildren(children);
  }
}

function pickProgress(p: ChildProgress): ChildProgress {
  return { liveCount: p.liveCount, errors: p.errors, opened: p.opened, failed: p.failed, received: p.received };
}

function send(child: Child, message: ParentMessage): void {
  if (child.exited || !child.process.connected) return;
  child.process.send(message, (error) => {
    if (error !== null && error !== undefined) child.failure ??= `IPC: ${error.message}`;
  });
}

function throwIfFailed(children: Child[], child: Child | undefined): void {
  if (child === undefined) return;
  for (const c of children) send(c, { type: 'abort' });
  throw new LoadProcessError(`quay-load child process ${child.index + 1} of ${children.length} (pid ${child.process.pid}): ${child.failure}`);
}

/** Waits for every child to exit (they do after their report, or after an abort); kills those that do not. */
async function stopChildren(children: Child[]): Promise<void> {
  const waiting = children.filter((c) => !c.exited);
  if (waiting.length === 0) return;
  for (const c of waiting) send(c, { type: 'abort' });
  const exits = waiting.map((c) => new Promise<void>((resolve) => (c.exited ? resolve() : c.process.once('exit', () => resolve()))));
  const grace = new AbortController();
  await Promise.race([Promise.all(exits), sleep(ABORT_GRACE_MS, grace.signal)]);
  grace.abort();
  for (const c of waiting) if (!c.exited && c.process.pid !== undefined) c.process.kill('SIGKILL');
  await Promise.all(exits);
}

function readRssSum(pids: readonly number[]): number | undefined {
  let sum = 0;
  for (const pid of pids) {
    const rss = readRss(pid);
    if (rss === undefined) return undefined;
    sum += rss;
  }
  return sum;
}

function mergeHistograms(list: (Histogram | undefined)[]): Histogram | undefined {
  let merged: Histogram | undefined;
  for (const h of list) if (h !== undefined) (merged ??= new Histogram()).merge(h);
  return merged;
}

/**
 * The report of a run from its children's: counts, bytes, errors and totals summed, rates summed (the children
 * ran at the same time), the window the longest, latencies from the merged histogram, broadcasts merged by
 * sequence number (deliveries summed, the last receipt the latest).
 */
export function mergeReports(reports: LoadReport[], histogram: Histogram, broadcastHistogram?: Histogram): LoadReport {
  const first = reports[0]!;
  const sum = (f: (r: LoadReport) => number | undefined): number | undefined => {
    let total: number | undefined;
    for (const r of reports) {
      const v = f(r);
      if (v !== undefined) total = (total ?? 0) + v;
    }
    return total;
  };
  const errors = zeroErrors();
  const errorSamples: Partial<Record<ErrorKind, string>> = {};
  for (const r of reports) {
    for (const kind of ERROR_KINDS) errors[kind] += r.errors[kind] ?? 0;
    for (const [kind, message] of Object.entries(r.errorSamples ?? {}) as [ErrorKind, string][]) errorSamples[kind] ??= message;
  }
  const longest = reports.reduce((a, r) => (r.timeline.length > a.timeline.length ? r : a), first);
  const timeline: [number, number][] = longest.timeline.map(([t], i) => [t, round(reports.reduce((a, r) => a + (r.timeline[i]?.[1] ?? 0), 0), 1)]);
  const report: LoadReport = {
    workload: first.workload,
    url: first.url,
    connections: sum((r) => r.connections)!,
    durationSec: Math.max(...reports.map((r) => r.durationSec)),
    count: sum((r) => r.count)!,
    rate: round(sum((r) => r.rate)!, 1),
    bytes: sum((r) => r.bytes)!,
    errors,
    latencyMs: latencySummary(histogram),
    timeline,
    latencyDistribution: latencyDistribution(histogram),
    processes: reports.length,
  };
  if (Object.keys(errorSamples).length > 0) report.errorSamples = errorSamples;
  if (reports.some((r) => r.interrupted === true)) report.interrupted = true;
  for (const f of ['warmupSec', 'inflight', 'size', 'binary', 'pipelining'] as const) {
    if (first[f] !== undefined) (report as unknown as Record<string, unknown>)[f] = first[f];
  }
  for (const f of ['sent', 'received', 'delivered', 'opened', 'closed'] as const) {
    const v = sum((r) => r[f]);
    if (v !== undefined) report[f] = v;
  }
  for (const f of ['openMs', 'closeMs'] as const) {
    if (first[f] !== undefined) report[f] = Math.max(...reports.map((r) => r[f] ?? 0));
  }
  if (reports.some((r) => r.statuses !== undefined)) {
    const statuses: Record<string, number> = {};
    for (const r of reports) for (const [s, n] of Object.entries(r.statuses ?? {})) statuses[s] = (statuses[s] ?? 0) + n;
    report.statuses = statuses;
  }
  if (broadcastHistogram !== undefined && broadcastHistogram.count > 0) {
    report.broadcastLatencyMs = latencySummary(broadcastHistogram);
    const bySeq = new Map<number, { deliveries: number; sentUs: number; lastUs: number }>();
    for (const r of reports) {
      for (const b of r.broadcasts ?? []) {
        const e = bySeq.get(b.seq);
        if (e === undefined) bySeq.set(b.seq, { deliveries: b.deliveries, sentUs: b.sentUs, lastUs: b.lastUs });
        else {
          e.deliveries += b.deliveries;
          e.sentUs = Math.min(e.sentUs, b.sentUs);
          e.lastUs = Math.max(e.lastUs, b.lastUs);
        }
      }
    }
    const list: BroadcastFigures[] = [...bySeq.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([seq, e]) => broadcastFigures(seq, e.deliveries, e.sentUs, e.lastUs));
    report.broadcasts = list;
  }
  return report;
}
