/**
 * The chat's command line (examples/chat/server.ts, the .ts through tap's TypeScript loader) as `npm start -- ...`
 * runs it, in a child process stopped by its PID at teardown: for test/browser/chat.test.ts and the scale-out
 * tests.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

/** The chat's entry point. */
export const CHAT_CLI = fileURLToPath(new URL('../../examples/chat/server.ts', import.meta.url));

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
 * `maxLifeMs` (default 30 s) whatever happens.
 */
export function runCli(t: Test, args: readonly string[], env: NodeJS.ProcessEnv = process.env, maxLifeMs = 30_000): CliRun {
  const child = spawn(process.execPath, [...process.execArgv, CHAT_CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
