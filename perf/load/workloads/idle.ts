/**
 * idle: opens N connections (from the source addresses round robin), holds them for --duration seconds, closes
 * them. count = connections opened; the measured window is the time to open them all; latency is each one's
 * connect + handshake. With --pid: the target's RSS before opening, once all are open and after settling 1 s,
 * and the settled delta per connection (several PIDs: summed); with --heap-url, the same for its heap.
 *
 * Broadcasts: every message received is counted; one that starts with a stamp `SEQ:SENT` (broadcastStamp.ts) is
 * a delivery of broadcast SEQ, timed against this machine's clock. The report gives the latency percentiles over
 * every delivery and per broadcast the deliveries, the time from the send to the last receipt and their rate.
 */
import { performance } from 'node:perf_hooks';
import type { DataOpCode } from '../../../lib/index.js';
import { MAX_TRACKED_BROADCASTS, epochMicros, readBroadcastStamp } from '../broadcastStamp.js';
import type { BroadcastStamp } from '../broadcastStamp.js';
import { Histogram } from '../Histogram.js';
import { Measurement, round } from '../Measurement.js';
import type { LoadOptions } from '../options.js';
import { broadcastFigures, latencySummary, workloadRun } from '../report.js';
import type { BroadcastFigures, LoadReport, WorkloadRun } from '../report.js';
import { sleep } from '../sleep.js';
import { parseTarget } from '../target.js';
import { fetchHeapUsed, readRss } from '../targetMemory.js';
import type { WsLoadClient } from '../WsLoadClient.js';
import { WsWorkload } from './WsWorkload.js';

/** After the last handshake, the target settles this long before its memory is read again. */
const SETTLE_MS = 1000;

/** An idle run as it goes: what a {@link IdleHooks.held} hook (or a parent process) can watch. */
export interface IdleLive {
  /** Connections whose handshake completed. */
  readonly opened: number;
  /** Connections whose connect or handshake failed. */
  readonly failed: number;
  /** Messages received (all connections). */
  readonly received: number;
}

/** What a caller may do while an idle run holds its connections. */
export interface IdleHooks {
  /**
   * Called once every connection opened or failed (and the target's memory was read, with --pid): the
   * connections are held until the promise settles and --duration has passed since they were all open, then
   * closed. What a benchmark does with them meanwhile (broadcasts, measurements) goes here.
   */
  held?(live: IdleLive): Promise<void>;
}

/** The target's RSS: the sum over its processes; undefined when one of them cannot be read. */
function readRssSum(pids: readonly number[]): number | undefined {
  let sum = 0;
  for (const pid of pids) {
    const rss = readRss(pid);
    if (rss === undefined) return undefined;
    sum += rss;
  }
  return sum;
}

export class IdleWorkload extends WsWorkload {
  /** Messages received. */
  received = 0;
  /** Delivery latencies of stamped broadcasts, in microseconds. */
  readonly broadcastHistogram = new Histogram();
  private readonly stamp: BroadcastStamp = { seq: -1, sentUs: 0 };
  /** Per tracked broadcast (by sequence number): deliveries, its send time and the last receipt (epoch µs). */
  private readonly deliveries = new Float64Array(MAX_TRACKED_BROADCASTS);
  private readonly sentUs = new Float64Array(MAX_TRACKED_BROADCASTS);
  private readonly lastUs = new Float64Array(MAX_TRACKED_BROADCASTS);

  constructor(
    options: LoadOptions,
    m: Measurement,
    private readonly hooks: IdleHooks = {},
  ) {
    super(options, parseTarget(options.url), m);
  }

  /** The run as it goes, for the `held` hook. */
  readonly live: IdleLive = ((run: IdleWorkload): IdleLive => ({
    get opened() {
      return run.openedCount;
    },
    get failed() {
      return run.failedOpens;
    },
    get received() {
      return run.received;
    },
  }))(this);

  async run(signal?: AbortSignal): Promise<WorkloadRun> {
    const o = this.options;
    const m = this.m;
    const n = o.connections;
    const rssBefore = o.pid === undefined ? undefined : readRssSum(o.pid);
    const heapTls = { ca: o.ca, rejectUnauthorized: !o.insecure };
    const heapBefore = o.heapUrl === undefined ? undefined : await fetchHeapUsed(o.heapUrl, undefined, heapTls);

    m.beginMeasuring();
    const openStart = performance.now();
    await this.openAll(n, signal);
    const openEnd = performance.now();
    m.stop();

    const extras: Partial<LoadReport> = {};
    if ((o.pid !== undefined || heapBefore !== undefined) && signal?.aborted !== true) {
      const rssOpen = o.pid === undefined ? undefined : readRssSum(o.pid);
      await sleep(SETTLE_MS, signal);
      const rssSettled = o.pid === undefined ? undefined : readRssSum(o.pid);
      if (rssBefore !== undefined && rssOpen !== undefined && rssSettled !== undefined) {
        extras.targetRssBytes = { before: rssBefore, open: rssOpen, settled: rssSettled };
        if (this.openedCount > 0) extras.targetRssBytesPerConnection = Math.round((rssSettled - rssBefore) / this.openedCount);
      }
      const heapSettled = heapBefore === undefined ? undefined : await fetchHeapUsed(o.heapUrl!, undefined, heapTls);
      if (heapBefore !== undefined && heapSettled !== undefined && this.openedCount > 0) {
        extras.targetHeapBytesPerConnection = Math.round((heapSettled - heapBefore) / this.openedCount);
      }
    }
    if (this.hooks.held !== undefined && signal?.aborted !== true) await this.hooks.held(this.live);
    await sleep(o.durationSec * 1000 - (performance.now() - openEnd), signal);

    const closeStart = performance.now();
    await this.closeAll(signal?.aborted === true ? 200 : o.timeoutSec * 1000);
    const closeMs = performance.now() - closeStart;

    extras.received = this.received;
    if (this.broadcastHistogram.count > 0) {
      extras.broadcastLatencyMs = latencySummary(this.broadcastHistogram);
      extras.broadcasts = this.broadcastList();
    }
    const run = workloadRun(
      o,
      n,
      m,
      { opened: this.openedCount, closed: this.closedCount, openMs: round(openEnd - openStart, 1), closeMs: round(closeMs, 1), ...extras },
      signal,
    );
    run.broadcastHistogram = this.broadcastHistogram;
    return run;
  }

  protected override opened(client: WsLoadClient): void {
    this.m.deliver(client.connectAt, client.openedAt, 0);
  }

  onMessage(_client: WsLoadClient, _opcode: DataOpCode, data: Buffer): void {
    this.received++;
    const stamp = this.stamp;
    if (!readBroadcastStamp(data, stamp)) return;
    const now = epochMicros();
    this.broadcastHistogram.record(now - stamp.sentUs);
    const seq = stamp.seq;
    if (seq >= MAX_TRACKED_BROADCASTS) return;
    this.deliveries[seq]!++;
    this.sentUs[seq] = stamp.sentUs;
    if (now > this.lastUs[seq]!) this.lastUs[seq] = now;
  }

  onReadComplete(): void {}

  /** The tracked broadcasts that were received, by sequence number. */
  private broadcastList(): BroadcastFigures[] {
    const list: BroadcastFigures[] = [];
    for (let seq = 0; seq < MAX_TRACKED_BROADCASTS; seq++) {
      if (this.deliveries[seq]! > 0) list.push(broadcastFigures(seq, this.deliveries[seq]!, this.sentUs[seq]!, this.lastUs[seq]!));
    }
    return list;
  }
}

export async function runIdle(
  options: LoadOptions,
  m = new Measurement(options.rateIntervalMs),
  signal?: AbortSignal,
  hooks: IdleHooks = {},
): Promise<WorkloadRun> {
  return new IdleWorkload(options, m, hooks).run(signal);
}
