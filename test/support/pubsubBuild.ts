/**
 * The ClusterBroker test runs its cluster program from dist/ (node:cluster forks JavaScript; tap's TypeScript
 * loader costs seconds per process on a busy machine). `npm test` builds first; a test file run on its own builds
 * here when dist/ is older than lib/ or perf/pubsub/. The lock directory is the one test/support/clusterApp.ts
 * (lib/cluster's tests) uses, so that two test files never run tsc into dist/ at once.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname ?? '.', '..', '..');
/** The compiled cluster program of test/pubsub-cluster.test.ts. */
export const CLUSTER_CHECK = join(root, 'dist', 'perf', 'pubsub', 'cluster-check.js');

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path));
    else if (entry.name.endsWith('.ts')) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

function builtAt(): number {
  try {
    return Math.min(statSync(CLUSTER_CHECK).mtimeMs, statSync(join(root, 'dist', 'lib', 'index.js')).mtimeMs);
  } catch {
    return 0;
  }
}

/** Builds dist/ (tsc -p tsconfig.json) when lib/ or perf/pubsub/ changed since the last build. */
export async function ensureBuilt(): Promise<void> {
  const sources = Math.max(newest(join(root, 'lib')), newest(join(root, 'perf', 'pubsub')));
  if (builtAt() >= sources) return;
  const lock = join(root, 'dist', '.cluster-test-build');
  mkdirSync(join(root, 'dist'), { recursive: true });
  for (let i = 0; i < 1200; i++) {
    try {
      mkdirSync(lock);
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // another test file builds: wait for it (bounded: 120 s)
      continue;
    }
    try {
      if (builtAt() < sources) execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
    } finally {
      rmdirSync(lock);
    }
    return;
  }
  throw new Error('dist/ is being built by another test for too long');
}
