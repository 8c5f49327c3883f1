/**
 * A run's result: the JSON object `--json` prints (the contract with perf/compare and any other consumer), its
 * parsing back with checks, and the human summary.
 */
import type { Histogram } from './Histogram.js';
import { ERROR_KINDS, round } from './Measurement.js';
import type { ErrorKind, Measurement } from './Measurement.js';
import { WORKLOADS } from './options.js';
import type { LoadOptions, WorkloadName } from './options.js';

/** What a workload returns: the report, and the measurement behind it (its histogram, for merging or plotting). */
export interface WorkloadRun {
  report: LoadReport;
  measurement: Measurement;
  /** idle: the delivery latencies of stamped broadcasts (µs), for merging. */
  broadcastHistogram?: Histogram;
}

/**
 * idle: one stamped broadcast as received by this run's connections. `rate` is deliveries per second from the
 * send to the last receipt (`spanMs`); sentUs and lastUs are wall-clock microseconds since the epoch.
 */
export interface BroadcastFigures {
  seq: number;
  deliveries: number;
  sentUs: number;
  lastUs: number;
  spanMs: number;
  rate: number;
}

/** The figures of broadcast `seq` from its deliveries, its send time and its last receipt (epoch µs). */
export function broadcastFigures(seq: number, deliveries: number, sentUs: number, lastUs: number): BroadcastFigures {
  const spanMs = Math.max(0, lastUs - sentUs) / 1000;
  return { seq, deliveries, sentUs, lastUs, spanMs: round(spanMs, 3), rate: spanMs > 0 ? round((deliveries * 1000) / spanMs, 1) : 0 };
}

/** Latency percentiles in milliseconds. */
export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/**
 * The JSON report. The first fields are always present; the rest are workload extras, present when they apply.
 * `count` is what the workload counts (echo: messages echoed; fanout: deliveries to every receiver; http:
 * responses; idle: connections opened), `rate` is count per second over `durationSec`, the measured window
 * (warm-up excluded; idle: the time to open them all), `bytes` what was received in it (WebSocket: payload bytes;
 * http: response bytes on the wire). `errors` has every kind, 0 included, over the whole run.
 */
export interface LoadReport {
  workload: WorkloadName;
  url: string;
  connections: number;
  durationSec: number;
  count: number;
  rate: number;
  bytes: number;
  errors: Record<ErrorKind, number>;
  latencyMs: LatencySummary;
  /** [seconds into the measured window, rate over the interval that ended then]. */
  timeline: [number, number][];
  /** [percentile, ms] at fixed percentiles from 0 to 100: the latency distribution, to plot. */
  latencyDistribution: [number, number][];
  /** The first message of each kind of error that occurred. */
  errorSamples?: Partial<Record<ErrorKind, string>>;
  /** The run was stopped early (Ctrl-C): the figures cover what was measured until then. */
  interrupted?: boolean;
  warmupSec?: number;
  /** echo, fanout */
  inflight?: number;
  size?: number;
  binary?: boolean;
  /** Whole-run totals for consistency checks (warm-up and the final drain included). echo, http: sent = received
   * when nothing was lost; fanout: sent = delivered, and every receiver got receiverMin = receiverMax = sent. */
  sent?: number;
  received?: number;
  delivered?: number;
  receivers?: number;
  receiverMin?: number;
  receiverMax?: number;
  /** http */
  pipelining?: number;
  statuses?: Record<string, number>;
  /** selftest: where the raw echo server ran. */
  serverThread?: 'worker' | 'main';
  /** idle */
  opened?: number;
  closed?: number;
  openMs?: number;
  closeMs?: number;
  targetRssBytes?: { before: number; open: number; settled: number };
  targetRssBytesPerConnection?: number;
  targetHeapBytesPerConnection?: number;
  /** idle: delivery latency of stamped broadcasts (send to receipt, over every delivery) */
  broadcastLatencyMs?: LatencySummary;
  /** idle: each stamped broadcast received */
  broadcasts?: BroadcastFigures[];
  /** a run split over processes (--processes): how many */
  processes?: number;
}

/** The percentiles of {@link LoadReport.latencyDistribution}. */
export const DISTRIBUTION_PERCENTILES: readonly number[] = [
  0.001, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 97.5, 99, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995,
  99.999, 100,
];

/** A report that does not follow the schema. */
export class ReportFormatError extends Error {
  readonly code = 'LOAD_BAD_REPORT';
  /** Where: a field name (`latencyMs.p99`, `timeline[3]`). */
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'ReportFormatError';
    this.field = field;
  }
}

/** Percentiles of a histogram of microseconds, in milliseconds (µs precision). */
export function latencySummary(h: Histogram): LatencySummary {
  return {
    p50: ms(h.valueAtPercentile(50)),
    p90: ms(h.valueAtPercentile(90)),
    p99: ms(h.valueAtPercentile(99)),
    p999: ms(h.valueAtPercentile(99.9)),
    max: ms(h.max),
    mean: ms(h.mean),
  };
}

export function latencyDistribution(h: Histogram): [number, number][] {
  if (h.count === 0) return [];
  return DISTRIBUTION_PERCENTILES.map((p) => [p, ms(h.valueAtPercentile(p))]);
}

function ms(us: number): number {
  return round(us / 1000, 3);
}

/** The report of a finished (or interrupted) run; `extras` are the workload's own fields. */
export function buildReport(
  options: LoadOptions,
  connections: number,
  m: Measurement,
  extras: Partial<LoadReport> = {},
  histogram: Histogram = m.histogram,
): LoadReport {
  const durationSec = m.windowSec;
  const report: LoadReport = {
    workload: options.workload,
    url: options.url,
    connections,
    durationSec: round(durationSec, 3),
    count: m.count,
    rate: durationSec > 0 ? round(m.count / durationSec, 1) : 0,
    bytes: m.bytes,
    errors: { ...m.errors },
    latencyMs: latencySummary(histogram),
    timeline: m.timeline.slice(),
    latencyDistribution: latencyDistribution(histogram),
  };
  if (m.errorCount > 0) report.errorSamples = { ...m.errorSamples };
  return Object.assign(report, extras);
}

/** A workload's result: its report ({@link buildReport}), marked `interrupted` when `signal` aborted the run. */
export function workloadRun(
  options: LoadOptions,
  connections: number,
  m: Measurement,
  extras: Partial<LoadReport>,
  signal: AbortSignal | undefined,
): WorkloadRun {
  const report = buildReport(options, connections, m, extras);
  if (signal?.aborted === true) report.interrupted = true;
  return { report, measurement: m };
}

// ------------------------------------------------------------------------------------------------ parsing

type Json = Record<string, unknown>;

/**
 * Parses `--json` output (a string, or an object already parsed) and checks it against the schema: the
 * required fields and the types of the extras that are present. Unknown fields are kept (a newer generator).
 * @throws ReportFormatError naming the first field that is wrong.
 */
export function parseReport(input: string | unknown): LoadReport {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (error) {
      throw new ReportFormatError('(json)', (error as Error).message);
    }
  }
  if (!isObject(value)) throw new ReportFormatError('(root)', 'not a JSON object');
  const r = value;
  if (typeof r['workload'] !== 'string' || !WORKLOADS.includes(r['workload'] as WorkloadName)) {
    throw new ReportFormatError('workload', `unknown workload ${JSON.stringify(r['workload'])}`);
  }
  if (typeof r['url'] !== 'string') throw new ReportFormatError('url', 'not a string');
  for (const f of ['connections', 'durationSec', 'count', 'rate', 'bytes']) number(r, f, f);
  const errors = object(r, 'errors', 'errors');
  for (const kind of ERROR_KINDS) number(errors, kind, `errors.${kind}`);
  for (const [kind, n] of Object.entries(errors)) if (typeof n !== 'number') throw new ReportFormatError(`errors.${kind}`, 'not a number');
  const latency = object(r, 'latencyMs', 'latencyMs');
  for (const f of ['p50', 'p90', 'p99', 'p999', 'max', 'mean']) number(latency, f, `latencyMs.${f}`);
  pairs(r, 'timeline');
  if (r['latencyDistribution'] === undefined) r['latencyDistribution'] = [];
  pairs(r, 'latencyDistribution');
  for (const f of [
    'warmupSec', 'inflight', 'size', 'sent', 'received', 'delivered', 'receivers', 'receiverMin', 'receiverMax',
    'pipelining', 'opened', 'closed', 'openMs', 'closeMs', 'targetRssBytesPerConnection', 'targetHeapBytesPerConnection', 'processes',
  ]) {
    if (r[f] !== undefined) number(r, f, f);
  }
  if (r['serverThread'] !== undefined && r['serverThread'] !== 'worker' && r['serverThread'] !== 'main') {
    throw new ReportFormatError('serverThread', 'not worker or main');
  }
  for (const f of ['binary', 'interrupted']) {
    if (r[f] !== undefined && typeof r[f] !== 'boolean') throw new ReportFormatError(f, 'not a boolean');
  }
  if (r['statuses'] !== undefined) {
    const statuses = object(r, 'statuses', 'statuses');
    for (const k of Object.keys(statuses)) number(statuses, k, `statuses.${k}`);
  }
  if (r['targetRssBytes'] !== undefined) {
    const rss = object(r, 'targetRssBytes', 'targetRssBytes');
    for (const f of ['before', 'open', 'settled']) number(rss, f, `targetRssBytes.${f}`);
  }
  if (r['broadcastLatencyMs'] !== undefined) {
    const b = object(r, 'broadcastLatencyMs', 'broadcastLatencyMs');
    for (const f of ['p50', 'p90', 'p99', 'p999', 'max', 'mean']) number(b, f, `broadcastLatencyMs.${f}`);
  }
  if (r['broadcasts'] !== undefined) {
    const list = r['broadcasts'];
    if (!Array.isArray(list)) throw new ReportFormatError('broadcasts', 'not an array');
    list.forEach((b: unknown, i) => {
      if (!isObject(b)) throw new ReportFormatError(`broadcasts[${i}]`, 'not an object');
      for (const f of ['seq', 'deliveries', 'sentUs', 'lastUs', 'spanMs', 'rate']) number(b, f, `broadcasts[${i}].${f}`);
    });
  }
  if (r['errorSamples'] !== undefined) {
    const samples = object(r, 'errorSamples', 'errorSamples');
    for (const [k, v] of Object.entries(samples)) if (typeof v !== 'string') throw new ReportFormatError(`errorSamples.${k}`, 'not a string');
  }
  return r as unknown as LoadReport;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function number(o: Json, key: string, path: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ReportFormatError(path, v === undefined ? 'missing' : `not a finite number: ${JSON.stringify(v)}`);
  return v;
}

function object(o: Json, key: string, path: string): Json {
  const v = o[key];
  if (!isObject(v)) throw new ReportFormatError(path, v === undefined ? 'missing' : 'not an object');
  return v;
}

function pairs(o: Json, key: string): void {
  const v = o[key];
  if (!Array.isArray(v)) throw new ReportFormatError(key, v === undefined ? 'missing' : 'not an array');
  v.forEach((p: unknown, i) => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'number' || typeof p[1] !== 'number') {
      throw new ReportFormatError(`${key}[${i}]`, 'not a [number, number] pair');
    }
  });
}

// ------------------------------------------------------------------------------------------------ human

const UNIT: Record<WorkloadName, string> = {
  echo: 'messages',
  selftest: 'messages',
  fanout: 'deliveries',
  http: 'responses',
  idle: 'connections',
};

/** The human summary: a few aligned lines. */
export function formatSummary(r: LoadReport): string {
  const lines: string[] = [];
  lines.push(`quay-load ${r.workload} ${r.url}${r.interrupted === true ? '  (interrupted)' : ''}`);
  lines.push(`  ${setup(r)}`);
  if (r.workload === 'idle') {
    lines.push(`  ${label('opened')}${int(r.opened ?? r.count)} in ${fixed(r.openMs ?? 0, 1)} ms (${int(r.rate)}/s), closed ${int(r.closed ?? 0)} in ${fixed(r.closeMs ?? 0, 1)} ms`);
    if (r.targetRssBytesPerConnection !== undefined) {
      const heap = r.targetHeapBytesPerConnection === undefined ? '' : `, heap ${int(r.targetHeapBytesPerConnection)} B`;
      lines.push(`  ${label('target')}RSS ${int(r.targetRssBytesPerConnection)} B per connection${heap}`);
    }
    lines.push(`  ${label('handshake')}${latency(r.latencyMs)}`);
    if (r.broadcastLatencyMs !== undefined) {
      const list = r.broadcasts ?? [];
      const deliveries = list.reduce((a, b) => a + b.deliveries, 0);
      lines.push(`  ${label('broadcasts')}${int(list.length)} received, ${int(deliveries)} deliveries (${int(r.received ?? 0)} messages in all)`);
      for (const b of list.slice(0, 10)) {
        lines.push(`  ${label('')}#${b.seq}: ${int(b.deliveries)} deliveries in ${fixed(b.spanMs, 1)} ms (${int(b.rate)}/s)`);
      }
      if (list.length > 10) lines.push(`  ${label('')}... ${list.length - 10} more`);
      lines.push(`  ${label('delivery')}${latency(r.broadcastLatencyMs)}`);
    }
  } else {
    const mbs = r.durationSec > 0 ? r.bytes / r.durationSec / 1e6 : 0;
    lines.push(`  ${label(UNIT[r.workload])}${int(r.count)}  ${int(r.rate)}/s  ${fixed(mbs, 1)} MB/s`);
    lines.push(`  ${label('latency')}${latency(r.latencyMs)}`);
    if (r.timeline.length > 1) {
      const rates = r.timeline.map((p) => p[1]);
      lines.push(`  ${label('rate range')}${int(Math.min(...rates))} .. ${int(Math.max(...rates))}/s over ${r.timeline.length} intervals`);
    }
  }
  lines.push(`  ${label('errors')}${errorsLine(r)}`);
  if (r.errorSamples !== undefined) {
    for (const [kind, message] of Object.entries(r.errorSamples)) lines.push(`  ${label('')}${kind}: ${message}`);
  }
  return lines.join('\n') + '\n';
}

function setup(r: LoadReport): string {
  const payload = r.size === undefined ? '' : `, ${int(r.size)} B ${r.binary === true ? 'binary' : 'text'}`;
  const measured = `${fixed(r.durationSec, 1)} s measured${r.warmupSec ? ` after ${fixed(r.warmupSec, 1)} s warm-up` : ''}`;
  switch (r.workload) {
    case 'fanout':
      return `1 sender -> ${int(r.receivers ?? r.connections - 1)} receivers, ${int(r.inflight ?? 1)} in flight${payload}, ${measured}`;
    case 'http':
      return `${int(r.connections)} connections x ${int(r.pipelining ?? 1)} pipelined, ${measured}`;
    case 'idle':
      return `${int(r.connections)} idle connections${r.processes === undefined ? '' : ` from ${int(r.processes)} processes`}`;
    default:
      return `${int(r.connections)} connections x ${int(r.inflight ?? 1)} in flight${payload}, ${measured}`;
  }
}

function errorsLine(r: LoadReport): string {
  const parts = ERROR_KINDS.filter((k) => r.errors[k] > 0).map((k) => `${k} ${int(r.errors[k])}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

function latency(l: LatencySummary): string {
  return `ms p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}  max ${l.max}  mean ${l.mean}`;
}

function label(s: string): string {
  return s.padEnd(12);
}

function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fixed(n: number, digits: number): string {
  return n.toFixed(digits);
}
