import { performance } from 'node:perf_hooks';
import type { Measurement } from './Measurement.js';

/** Where the progress line goes: a TTY stream (process.stderr by default). */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): boolean;
}

/**
 * The live progress line: elapsed time, phase, current rate and errors, redrawn in place once a second on a
 * TTY, and nothing at all otherwise (logs and pipes get only the final summary). Written to stderr so that
 * stdout stays the report (`--json`).
 */
export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private lastAt = 0;
  private lastCount = 0;
  private drawn = false;

  constructor(
    private readonly m: Measurement,
    private readonly label: string,
    private readonly stream: ProgressStream = process.stderr,
    private readonly intervalMs = 1000,
  ) {}

  /** True when a line will be drawn: the stream is a TTY. */
  get active(): boolean {
    return this.stream.isTTY === true;
  }

  start(): void {
    if (!this.active || this.timer !== undefined) return;
    this.lastAt = performance.now();
    this.lastCount = this.m.liveCount;
    this.timer = setInterval(() => this.draw(), this.intervalMs);
    this.timer.unref();
  }

  /** Erases the line (before the summary is printed). */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  /** The text of the line (exposed for tests). */
  line(now = performance.now()): string {
    const m = this.m;
    const elapsed = (now - m.createdAt) / 1000;
    const dt = now - this.lastAt;
    const rate = dt > 0 ? ((m.liveCount - this.lastCount) * 1000) / dt : 0;
    this.lastAt = now;
    this.lastCount = m.liveCount;
    const phase = m.phase === 'WARMUP' ? 'warm-up' : m.phase === 'MEASURING' ? 'measuring' : m.phase === 'STOPPED' ? 'stopping' : 'connecting';
    return `${this.label} ${elapsed.toFixed(1)} s ${phase}  ${Math.round(rate).toLocaleString('en-US')}/s  total ${m.liveCount.toLocaleString('en-US')}  errors ${m.errorCount}`;
  }

  private draw(): void {
    let text = this.line();
    const columns = this.stream.columns ?? 0;
    if (columns > 1 && text.length >= columns) text = text.slice(0, columns - 1);
    this.stream.write(`\r\x1b[2K${text}`);
    this.drawn = true;
  }
}
