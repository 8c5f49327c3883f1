/**
 * idle: opens N connections (from the source addresses round robin), holds them for --duration seconds, closes
 * them. count = connections opened; the measured window is the time to open them all; latency is each one's
 * connect + handshake. With --pid: the target's RSS before opening, once all are open and after settling 1 s,
 * and the settled delta per connection; with --heap-url, the same for its heap.
 */
import { performance } from 'node:perf_hooks';
import { Measurement, round } from '../Measurement.js';
import type { LoadOptions } from '../options.js';
import { workloadRun } from '../report.js';
import type { LoadReport, WorkloadRun } from '../report.js';
import { sleep } from '../sleep.js';
import { parseTarget } from '../target.js';
import { fetchHeapUsed, readRss } from '../targetMemory.js';
import type { WsLoadClient } from '../WsLoadClient.js';
import { WsWorkload } from './WsWorkload.js';

/** After the last handshake, the target settles this long before its memory is read again. */
const SETTLE_MS = 1000;

export class IdleWorkload extends WsWorkload {
  constructor(options: LoadOptions, m: Measurement) {
    super(options, parseTarget(options.url), m);
  }

  async run(signal?: AbortSignal): Promise<WorkloadRun> {
    const o = this.options;
    const m = this.m;
    const n = o.connections;
    const rssBefore = o.pid === undefined ? undefined : readRss(o.pid);
    const heapTls = { ca: o.ca, rejectUnauthorized: !o.insecure };
    const heapBefore = o.heapUrl === undefined ? undefined : await fetchHeapUsed(o.heapUrl, undefined, heapTls);

    m.beginMeasuring();
    const openStart = performance.now();
    await this.openAll(n, signal);
    const openEnd = performance.now();
    m.stop();

    const extras: Partial<LoadReport> = {};
    if ((o.pid !== undefined || heapBefore !== undefined) && signal?.aborted !== true) {
      const rssOpen = o.pid === undefined ? undefined : readRss(o.pid);
      await sleep(SETTLE_MS, signal);
      const rssSettled = o.pid === undefined ? undefined : readRss(o.pid);
      if (rssBefore !== undefined && rssOpen !== undefined && rssSettled !== undefined) {
        extras.targetRssBytes = { before: rssBefore, open: rssOpen, settled: rssSettled };
        if (this.openedCount > 0) extras.targetRssBytesPerConnection = Math.round((rssSettled - rssBefore) / this.openedCount);
      }
      const heapSettled = heapBefore === undefined ? undefined : await fetchHeapUsed(o.heapUrl!, undefined, heapTls);
      if (heapBefore !== undefined && heapSettled !== undefined && this.openedCount > 0) {
        extras.targetHeapBytesPerConnection = Math.round((heapSettled - heapBefore) / this.openedCount);
      }
    }
    await sleep(o.durationSec * 1000 - (performance.now() - openEnd), signal);

    const closeStart = performance.now();
    await this.closeAll(signal?.aborted === true ? 200 : o.timeoutSec * 1000);
    const closeMs = performance.now() - closeStart;

    return workloadRun(
      o,
      n,
      m,
      { opened: this.openedCount, closed: this.closedCount, openMs: round(openEnd - openStart, 1), closeMs: round(closeMs, 1), ...extras },
      signal,
    );
  }

  protected override opened(client: WsLoadClient): void {
    this.m.deliver(client.connectAt, client.openedAt, 0);
  }

  onMessage(): void {}

  onReadComplete(): void {}
}

export async function runIdle(options: LoadOptions, m = new Measurement(options.rateIntervalMs), signal?: AbortSignal): Promise<WorkloadRun> {
  return new IdleWorkload(options, m).run(signal);
}
