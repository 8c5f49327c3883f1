/**
 * One call that runs a server on every core: the same script runs in the primary (which supervises) and in each
 * worker (which serves). See {@link runCluster}.
 */
import cluster from 'node:cluster';
import { safeToDrop } from '../io/safeToDrop.js';
import { ClusterSupervisor } from './ClusterSupervisor.js';
import { ClusterWorker } from './ClusterWorker.js';
import type { ClusterOptions, ClusterStart } from './options.js';

/** What {@link runCluster} made in this process: the supervisor in the primary, the worker in a worker. */
export type ClusterRole = { readonly primary: ClusterSupervisor; readonly worker?: undefined } | { readonly worker: ClusterWorker; readonly primary?: undefined };

/**
 * Runs `start` on `options.workers` worker processes of a node:cluster, supervised by the primary.
 *
 * Call it from the script node runs (the workers run that same script, `process.argv[1]`, unless `options.exec`
 * names another): in the primary it makes a {@link ClusterSupervisor}, starts it and resolves once every worker is
 * ready; in a worker it makes a {@link ClusterWorker}, runs `start` and resolves once the service it returned
 * serves. `start` runs only in workers.
 *
 * In the primary it rejects with a `WorkerCrashLoopError` when workers keep crashing before all were ready (the
 * cluster is then stopped; with `handleSignals` the exit code is 1). In a worker whose `start` throws it does not
 * settle: the worker exits with code 1 and the primary reports why. Safe to ignore.
 */
export function runCluster(start: ClusterStart, options: ClusterOptions = {}): Promise<ClusterRole> {
  if (cluster.isPrimary) {
    const primary = new ClusterSupervisor(options);
    return safeToDrop(primary.start().then(() => ({ primary })));
  }
  const worker = new ClusterWorker(start, options);
  return safeToDrop(worker.start().then(() => ({ worker })));
}
