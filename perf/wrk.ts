/** wrk's summary (`wrk --latency`), as the benchmarks read it. */

/** What {@link parseWrk} reads. Latencies in ms; NaN for a percentile wrk did not print. */
export interface WrkSummary {
  /** Requests/sec. */
  rate: number;
  /** The "N requests in" count. */
  total: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx/3xx answers plus socket errors (connect, write, timeout, and read unless `readErrors` is false). */
  errors: number;
}

/**
 * Parses wrk's summary. `readErrors: false` leaves out socket read errors: with `Connection: close`, wrk counts
 * the server's close after each response as one.
 * @throws Error when the output has no Requests/sec or request count (wrk failed).
 */
export function parseWrk(out: string, options: { readErrors?: boolean } = {}): WrkSummary {
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in/.exec(out);
  if (rate === null || total === null) throw new Error(`cannot parse wrk output: ${out}`);
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    if (m === null) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  let errors = non2xx === null ? 0 : Number(non2xx[1]);
  if (socketErrors !== null) {
    errors += Number(socketErrors[1]) + Number(socketErrors[3]) + Number(socketErrors[4]);
    if (options.readErrors !== false) errors += Number(socketErrors[2]);
  }
  return { rate: Number(rate[1]), total: Number(total[1]), p50Ms: pct('50'), p99Ms: pct('99'), errors };
}
