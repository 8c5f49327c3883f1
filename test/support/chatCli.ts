/**
 * The chat's command line (examples/chat/server.ts, the .ts through tap's TypeScript loader) as `npm start -- ...`
 * runs it, in a child process stopped by its PID at teardown: for test/browser/chat.test.ts and the scale-out
 * tests.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { ROOT, ensureBuilt } from './distBuild.js';

/** The chat's entry point. */
export const CHAT_CLI = fileURLToPath(new URL('../../examples/chat/server.ts', import.meta.url));
/** The compiled entry point (`npm start` runs it): for --workers, whose workers node:cluster forks as JavaScript. */
export const BUILT_CHAT_CLI = join(ROOT, 'dist', 'examples', 'chat', 'server.js');

/**
 * Builds dist/ when lib/ or examples/ changed since the last build (`npm test` builds first, so this is for a test
 * file run on its own; distBuild.ts's lock keeps two test files from building at once).
 */
export function ensureChatBuilt(): Promise<void> {
  return ensureBuilt(BUILT_CHAT_CLI, ['examples']);
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
