/**
 * Tests whose programs run from dist/ (node:cluster forks JavaScript, and tap's TypeScript loader costs seconds per
 * forked process on a busy machine): `npm test` builds first; a test file run on its own builds here when dist/ is
 * older than the sources it needs. One lock directory for every such test file, so that two of them never run tsc
 * into dist/ at once.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository's root. */
export const ROOT = resolve(import.meta.dirname ?? '.', '..', '..');

/** The newest modification time of the .ts files under dir. */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path));
    else if (entry.name.endsWith('.ts')) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

/** When `program` (a file under dist/) and dist/lib were built: the older of the two, 0 when one is missing. */
function builtAt(program: string): number {
  try {
    return Math.min(statSync(program).mtimeMs, statSync(join(ROOT, 'dist', 'lib', 'index.js')).mtimeMs);
  } catch {
    return 0;
  }
}

/**
 * Builds dist/ (tsc -p tsconfig.json) when lib/ or one of `sourceDirs` (relative to the root) changed since
 * `program` was built. Waits for another test file that is building (bounded: 120 s).
 */
export async function ensureBuilt(program: string, sourceDirs: readonly string[]): Promise<void> {
  const sources = Math.max(newest(join(ROOT, 'lib')), ...sourceDirs.map((d) => newest(join(ROOT, d))));
  if (builtAt(program) >= sources) return;
  const lock = join(ROOT, 'dist', '.cluster-test-build');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  for (let i = 0; i < 1200; i++) {
    try {
      mkdirSync(lock);
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // another test file builds: wait for it
      continue;
    }
    try {
      if (builtAt(program) < sources) execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
    } finally {
      rmdirSync(lock);
    }
    return;
  }
  throw new Error('dist/ is being built by another test for too long');
}
