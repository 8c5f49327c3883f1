/**
 * The chat's command line (examples/chat/server.ts, the .ts through tap's TypeScript loader) as `npm start -- ...`
 * runs it, in a child process stopped by its PID at teardown: for test/browser/chat.test.ts and the scale-out
 * tests.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

/** The chat's entry point. */
export const CHAT_CLI = fileURLToPath(new URL('../../examples/chat/server.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The compiled entry point (`npm start` runs it): for --workers, whose workers node:cluster forks as JavaScript. */
export const BUILT_CHAT_CLI = join(ROOT, 'dist', 'examples', 'chat', 'server.js');

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
    return Math.min(statSync(BUILT_CHAT_CLI).mtimeMs, statSync(join(ROOT, 'dist', 'lib', 'index.js')).mtimeMs);
  } catch {
    return 0;
  }
}

/**
 * Builds dist/ (tsc -p tsconfig.json) when lib/ or examples/ changed since the last build (`npm test` builds first,
 * so this is for a test file run on its own). The lock directory of test/support/clusterApp.ts keeps two test
 * files from building at once.
 */
export async function ensureChatBuilt(): Promise<void> {
  const sources = Math.max(newest(join(ROOT, 'lib')), newest(join(ROOT, 'examples')));
  if (builtAt() >= sources) return;
  const lock = join(ROOT, 'dist', '.cluster-test-build');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  for (let i = 0; i < 1200; i++) {
    try {
      mkdirSync(lock);
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // another test file builds: wait for it (bounded: 120 s)
      continue;
    }
    try {
      if (builtAt() < sources) execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
    } finally {
      rmdirSync(lock);
    }
    return;
  }
  throw new Error('dist/ is being built by another test for too long');
}

/** A running chat command line. */
export interface CliRun {
  /** The child's PID. */
  readonly pid: number;
  /** Resolves with the first stdout line that matches, or rejects when the process ends first. */
  line(pattern: RegExp): Promise<string>;
  /** Every stdout line that matches, once `count` of them came (rejects when the process ends first). */
  lines(pattern: RegExp, count: number): Promise<string[]>;
  /** Exit code (or the signal's name) once the process has ended. */
  exited: Promise<number | string>;
  stdout: () => string;
  stderr: () => string;
  /** SIGTERM (a graceful stop). */
  stop(): void;
  /** A signal to the child, by its PID. */
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts the CLI with `args`; stopped by its PID (SIGKILL) at teardown if still running. Bounded: killed after
 * `maxLifeMs` (default 30 s) whatever happens. `built`: the compiled one ({@link BUILT_CHAT_CLI}, see
 * {@link ensureChatBuilt}), without tap's TypeScript loader (which takes seconds in every process).
 */
export function runCli(t: Test, args: readonly string[], env: NodeJS.ProcessEnv = process.env, maxLifeMs = 30_000, built = false): CliRun {
  const argv = built ? [BUILT_CHAT_CLI, ...args] : [...process.execArgv, CHAT_CLI, ...args];
  const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const watchers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const watch of watchers) watch();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const guard = setTimeout(() => child.kill('SIGKILL'), maxLifeMs);
  void exited.then(() => clearTimeout(guard));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const lines = (pattern: RegExp, count: number): Promise<string[]> =>
    new Promise((resolve, reject) => {
      const watch = (): void => {
        const found = out.split('\n').filter((l) => pattern.test(l));
        if (found.length < count) return;
        watchers.delete(watch);
        resolve(found.slice(0, count));
      };
      watchers.add(watch);
      watch();
      void exited.then((code) => {
        if (!watchers.has(watch)) return;
        watchers.delete(watch);
        reject(new Error(`the chat ended (${code}) before printing ${count} x ${pattern}; stdout: ${out} stderr: ${err}`));
      });
    });
  return {
    pid: child.pid!,
    line: (pattern) => lines(pattern, 1).then((found) => found[0]!),
    lines,
    exited,
    stdout: () => out,
    stderr: () => err,
    stop: () => child.kill('SIGTERM'),
    kill: (signal) => child.kill(signal),
  };
}
