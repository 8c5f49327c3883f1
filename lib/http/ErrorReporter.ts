import { debuglog } from 'node:util';

/**
 * `NODE_DEBUG=quay` (`util.debuglog`): every error, including those the default reporter does not print or
 * suppresses, and details not worth a line on stderr (a client that left mid-response). One for all of lib/http.
 */
export const debug = debuglog('quay');

/** Options of an {@link ErrorReporter} (tests set a clock and a printer). */
export interface ErrorReporterOptions {
  /** At most one line per kind of error per window, in ms. Default 1000. */
  intervalMs?: number;
  /** Kinds of error tracked at once; past this, new kinds share one bucket. Default 64. */
  maxKinds?: number;
  /** Where lines go. Default: `console.error` (looked up at each call). */
  print?: (...args: unknown[]) => void;
  /** Milliseconds, for the windows. Default `Date.now`. */
  now?: () => number;
}

interface Bucket {
  /** When the current window started (ms). */
  windowStart: number;
  /** Reports of this kind not printed in the current window. */
  suppressed: number;
  /** A label for the summary line, e.g. `handler error TypeError`. */
  label: string;
}

/**
 * Prints errors in proportion (the server's default `onError`): the first error of a kind in a window is printed,
 * the others of that kind in the same window are counted, and one line at the window's end says how many were
 * suppressed. A flood of one error (a handler that fails for every request of a client sending 100,000) is then a
 * few lines a second, not 100,000 stack traces that stall the event loop. Everything, printed or not, goes to
 * `NODE_DEBUG=quay` (`util.debuglog`).
 *
 * A kind is the caller's category (`handler`, `upgrade`) with the error's `name` and `code`: not its message,
 * which may hold a request path, so a peer cannot make every report a new kind; and their number is capped.
 * One timer at most (unref'd, for the summary), never one per error.
 */
export class ErrorReporter {
  private readonly intervalMs: number;
  private readonly maxKinds: number;
  private readonly buckets = new Map<string, Bucket>();
  private timer: NodeJS.Timeout | undefined;
  private readonly options: ErrorReporterOptions;

  constructor(options: ErrorReporterOptions = {}) {
    this.options = options;
    this.intervalMs = options.intervalMs ?? 1000;
    this.maxKinds = options.maxKinds ?? 64;
  }

  /** Reports suppressed so far in the current windows, all kinds (for tests and dumps). */
  get suppressed(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.suppressed;
    return n;
  }

  /**
   * Prints `args` unless an error of the same kind was printed less than `intervalMs` ago; then counts it.
   * Never throws.
   */
  report(category: string, error: Error, ...args: unknown[]): void {
    try {
      debug('%s: %s', category, error.stack ?? error.message);
      const code = (error as { code?: unknown }).code;
      let key = `${category}${error.name === 'Error' ? '' : ` ${error.name}`}${typeof code === 'string' ? ` ${code}` : ''}`;
      let bucket = this.buckets.get(key);
      if (bucket === undefined && this.buckets.size >= this.maxKinds) {
        key = `${category} (other kinds)`;
        bucket = this.buckets.get(key);
      }
      const now = this.now();
      if (bucket === undefined) {
        this.buckets.set(key, { windowStart: now, suppressed: 0, label: key });
        this.print(...args);
        return;
      }
      if (now - bucket.windowStart >= this.intervalMs) {
        this.summarize(bucket);
        bucket.windowStart = now;
        this.print(...args);
        return;
      }
      bucket.suppressed++;
      if (this.timer === undefined) {
        this.timer = setTimeout(() => this.onWindowEnd(), this.intervalMs);
        this.timer.unref();
      }
    } catch {
      // A reporter must not break the server (a closed stderr, a printer that throws).
    }
  }

  /** Prints the pending "suppressed" counts now and forgets the windows (the server calls it when it stops). */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      for (const bucket of this.buckets.values()) this.summarize(bucket);
    } catch {
      // As in report().
    }
    this.buckets.clear();
  }

  /** The timer: the pending counts are printed; kinds whose window is over are forgotten. */
  private onWindowEnd(): void {
    this.timer = undefined;
    try {
      const now = this.now();
      for (const [key, bucket] of this.buckets) {
        this.summarize(bucket);
        if (now - bucket.windowStart >= this.intervalMs) this.buckets.delete(key);
      }
    } catch {
      // As in report().
    }
  }

  private summarize(bucket: Bucket): void {
    if (bucket.suppressed === 0) return;
    const n = bucket.suppressed;
    bucket.suppressed = 0;
    this.print(`quay: ${n} more suppressed: ${bucket.label} (one of a kind per ${this.intervalMs} ms is printed; NODE_DEBUG=quay prints each)`);
  }

  private print(...args: unknown[]): void {
    const print = this.options.print;
    if (print !== undefined) print(...args);
    else console.error(...args);
  }

  private now(): number {
    return this.options.now === undefined ? Date.now() : this.options.now();
  }
}
