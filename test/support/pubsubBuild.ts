/**
 * The ClusterBroker test runs its cluster program from dist/ (see distBuild.ts): built here when lib/ or
 * perf/pubsub/ changed since, for a test file run on its own.
 */
import { join } from 'node:path';
import { ROOT, ensureBuilt as ensureDistBuilt } from './distBuild.js';

/** The compiled cluster program of test/pubsub-cluster.test.ts. */
export const CLUSTER_CHECK = join(ROOT, 'dist', 'perf', 'pubsub', 'cluster-check.js');

/** Builds dist/ when lib/ or perf/pubsub/ changed since the program was built. */
export function ensureBuilt(): Promise<void> {
  return ensureDistBuilt(CLUSTER_CHECK, ['perf/pubsub']);
}
