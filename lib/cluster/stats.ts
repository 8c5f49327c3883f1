/**
 * What `ClusterSupervisor.stats()` returns: each worker's own `stats()` as it answered, and the numeric fields of
 * those answers summed over the workers (`total`), so that one call tells the whole machine's connections.
 */
import type { ClusterRelayStats } from './relay.js';
import type { ClusterWorkerInfo } from './ClusterSupervisor.js';

/** The numeric fields of the workers' stats summed, nested objects summed field by field (e.g. `tls.handshakes`). */
export interface ClusterTotals {
  [field: string]: number | ClusterTotals;
}

/** One worker in {@link ClusterStats}: what {@link ClusterWorkerInfo} says of it, and its answer. */
export interface ClusterWorkerStats extends ClusterWorkerInfo {
  /** Its service's `stats()`, when it answered in time (`undefined` for a service without `stats()`). */
  readonly stats?: object;
  /** Why there is no `stats`: `'timeout'` (no answer within `requestTimeoutMs`), `'not running'`, or what its `stats()` threw. */
  readonly error?: string;
}

/** The whole cluster's stats (from the primary). */
export interface ClusterStats {
  readonly workers: readonly ClusterWorkerStats[];
  /** Numeric fields summed over the workers that answered. */
  readonly total: ClusterTotals;
  /** Workers that answered / that were asked. */
  readonly answered: number;
  readonly asked: number;
  /** The primary's relay (worker-to-worker messages). */
  readonly relay: ClusterRelayStats;
}

/** Adds the numeric fields of `stats` (recursively) into `total`. Arrays and other values are skipped. */
export function addNumericFields(total: ClusterTotals, stats: object): void {
  for (const [key, value] of Object.entries(stats)) {
    if (typeof value === 'number') {
      const current = total[key];
      total[key] = (typeof current === 'number' ? current : 0) + value;
    } else if (typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value)) {
      let nested = total[key];
      if (typeof nested !== 'object') {
        nested = {};
        total[key] = nested;
      }
      addNumericFields(nested, value as object);
    }
  }
}
