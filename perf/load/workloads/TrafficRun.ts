import type { Measurement } from '../Measurement.js';
import type { LoadOptions } from '../options.js';
import { sleep } from '../sleep.js';

/** How long the end of a run waits for what is still in flight, at most (and at most --timeout). */
const DRAIN_MS = 5000;
/** How often the watchdog looks for work left unanswered for --timeout. */
const WATCH_MS = 1000;

/** What a workload that keeps requests (messages) in flight plugs into a {@link TrafficRun}. */
export interface Traffic {
  /** Whether there is a connection to send on; when there is none it counts why (the run measures nothing). */
  canSend(): boolean;
  /** Sends the first requests; every answer sends the next one until stopSending(). */
  startSending(): void;
  /** Sends no more; what is in flight may still be answered. */
  stopSending(): void;
  /** Nothing is in flight. */
  readonly settled: boolean;
  /** The drain wait of `waitMs` is over: counts what is still in flight as timeouts. */
  countUnanswered(waitMs: number): void;
  /** Every {@link WATCH_MS}: fails the connections (or drops the requests) unanswered for --timeout. */
  watch(): void;
}

/**
 * The timed part of a traffic workload once its connections are open: a settling pause if asked, the warm-up
 * (not counted), the measured window, then the drain (the answers still in flight, waited for at most
 * {@link DRAIN_MS} and --timeout), with the timeout watchdog running throughout. An abort ends the run at once
 * and skips the drain.
 */
export class TrafficRun {
  private drained: (() => void) | undefined;

  constructor(
    private readonly traffic: Traffic,
    /** A pause before the first send (the watchdog already running), for servers that need it after the opens. */
    private readonly settleMs = 0,
  ) {}

  /** Ends the drain wait once nothing is in flight: call whenever something in flight settles. */
  checkDrained(): void {
    if (this.drained !== undefined && this.traffic.settled) this.drained();
  }

  async run(o: LoadOptions, m: Measurement, signal: AbortSignal | undefined): Promise<void> {
    const traffic = this.traffic;
    const watchdog = setInterval(() => traffic.watch(), WATCH_MS);
    try {
      if (this.settleMs > 0) await sleep(this.settleMs, signal);
      if (signal?.aborted !== true && traffic.canSend()) {
        if (o.warmupSec > 0) m.beginWarmup();
        else m.beginMeasuring();
        traffic.startSending();
        if (o.warmupSec > 0) {
          await sleep(o.warmupSec * 1000, signal);
          m.beginMeasuring();
        }
        await sleep(o.durationSec * 1000, signal);
      }
      m.stop();
      traffic.stopSending();
      if (signal?.aborted !== true) await this.drain(o);
    } finally {
      clearInterval(watchdog);
      m.stop();
      traffic.stopSending();
    }
  }

  private async drain(o: LoadOptions): Promise<void> {
    if (this.traffic.settled) return;
    const waitMs = Math.min(o.timeoutSec * 1000, DRAIN_MS);
    const done = new Promise<void>((resolve) => (this.drained = resolve));
    const timer = new AbortController();
    await Promise.race([done, sleep(waitMs, timer.signal)]);
    timer.abort();
    this.drained = undefined;
    this.traffic.countUnanswered(waitMs);
  }
}
