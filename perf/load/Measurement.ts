import { performance } from 'node:perf_hooks';
import { Histogram } from './Histogram.js';

/**
 * The kinds of errors a run counts (never fatal):
 * - `dns`: the host name could not be resolved (ENOTFOUND, EAI_AGAIN): nothing was ever connected to;
 * - `refused`: the TCP connection could not be opened (ECONNREFUSED, EADDRNOTAVAIL, ...);
 * - `tls`: the TLS handshake failed (wss://, https://): the certificate was not trusted or not for the host, no
 *   protocol or cipher in common, the server closed or reset during it; the message carries node:tls's code
 *   (DEPTH_ZERO_SELF_SIGNED_CERT, ERR_TLS_CERT_ALTNAME_INVALID, ERR_SSL_WRONG_VERSION_NUMBER, ...);
 * - `handshake`: the WebSocket handshake failed (not a 101, a wrong accept key, closed during it);
 * - `closed`: the peer closed (or reset) a connection the run still used;
 * - `protocol`: bytes we could not parse (a bad frame, a malformed HTTP response, an unexpected message);
 * - `timeout`: no connection/handshake in time, or work left unanswered for --timeout;
 * - `http`: an HTTP response with a status outside 2xx-3xx.
 */
export type ErrorKind = 'dns' | 'refused' | 'tls' | 'handshake' | 'closed' | 'protocol' | 'timeout' | 'http';
export const ERROR_KINDS: readonly ErrorKind[] = ['dns', 'refused', 'tls', 'handshake', 'closed', 'protocol', 'timeout', 'http'];

/** Where a run is: counting starts with MEASURING and ends with STOPPED (warm-up and drain are not counted). */
export type MeasurementPhase = 'IDLE' | 'WARMUP' | 'MEASURING' | 'STOPPED';

/**
 * What a run measures: the count, bytes and latencies of the measured window (warm-up excluded), the errors of
 * the whole run by kind, and the rate timeline. Workloads call {@link deliver} once per completed unit of work:
 * it is allocation-free.
 */
export class Measurement {
  /** Latencies of the measured window, in microseconds. */
  readonly histogram = new Histogram();
  readonly errors: Record<ErrorKind, number> = { dns: 0, refused: 0, tls: 0, handshake: 0, closed: 0, protocol: 0, timeout: 0, http: 0 };
  /** The first message of each kind of error, for the human summary. */
  readonly errorSamples: Partial<Record<ErrorKind, string>> = {};
  /** [seconds since the measured window began, rate over the interval ending then]. */
  readonly timeline: [number, number][] = [];
  private _phase: MeasurementPhase = 'IDLE';
  /** Units in the measured window. */
  count = 0;
  /** Bytes in the measured window. */
  bytes = 0;
  /** Units since the run started, warm-up included: the progress line's rate. */
  liveCount = 0;
  readonly createdAt = performance.now();
  measuringAt = 0;
  stoppedAt = 0;
  private readonly rateIntervalMs: number;
  private sampler: NodeJS.Timeout | undefined;
  private lastSampleAt = 0;
  private lastSampleCount = 0;

  constructor(rateIntervalMs = 1000) {
    this.rateIntervalMs = rateIntervalMs;
  }

  get phase(): MeasurementPhase {
    return this._phase;
  }

  get measuring(): boolean {
    return this._phase === 'MEASURING';
  }

  get errorCount(): number {
    let n = 0;
    for (const kind of ERROR_KINDS) n += this.errors[kind];
    return n;
  }

  /** The measured window in seconds: up to now while measuring, 0 before. */
  get windowSec(): number {
    if (this.measuringAt === 0) return 0;
    return ((this._phase === 'STOPPED' ? this.stoppedAt : performance.now()) - this.measuringAt) / 1000;
  }

  beginWarmup(): void {
    if (this._phase === 'IDLE') this._phase = 'WARMUP';
  }

  /** Starts the measured window (and the timeline). */
  beginMeasuring(): void {
    if (this._phase !== 'IDLE' && this._phase !== 'WARMUP') return;
    this._phase = 'MEASURING';
    this.measuringAt = this.lastSampleAt = performance.now();
    this.count = this.bytes = this.lastSampleCount = 0;
    this.histogram.reset();
    this.sampler = setInterval(() => this.sample(performance.now()), this.rateIntervalMs);
  }

  /** Ends the measured window; a last partial interval of at least half the interval joins the timeline. */
  stop(): void {
    if (this._phase === 'STOPPED') return;
    const wasMeasuring = this._phase === 'MEASURING';
    this._phase = 'STOPPED';
    this.stoppedAt = performance.now();
    if (this.sampler !== undefined) clearInterval(this.sampler);
    this.sampler = undefined;
    if (wasMeasuring && this.stoppedAt - this.lastSampleAt >= this.rateIntervalMs / 2) this.sample(this.stoppedAt);
  }

  /** One unit of work done: started at `startedAt`, done at `now` (performance.now() ms), `bytes` received. */
  deliver(startedAt: number, now: number, bytes: number): void {
    this.liveCount++;
    if (this._phase !== 'MEASURING') return;
    this.count++;
    this.bytes += bytes;
    this.histogram.record((now - startedAt) * 1000);
  }

  /** Bytes received outside of {@link deliver} (HTTP counts whole reads). */
  addBytes(n: number): void {
    if (this._phase === 'MEASURING') this.bytes += n;
  }

  /** Counts an error of a kind, in any phase (errors of the warm-up matter too). */
  error(kind: ErrorKind, message: string): void {
    this.errors[kind]++;
    if (this.errorSamples[kind] === undefined) this.errorSamples[kind] = message;
  }

  private sample(now: number): void {
    const elapsed = now - this.lastSampleAt;
    if (elapsed <= 0) return;
    const rate = ((this.count - this.lastSampleCount) * 1000) / elapsed;
    this.timeline.push([round((now - this.measuringAt) / 1000, 3), round(rate, 1)]);
    this.lastSampleAt = now;
    this.lastSampleCount = this.count;
  }
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
