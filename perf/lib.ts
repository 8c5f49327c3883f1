/** Shared pieces of the side-by-side benchmarks: child servers pinned to a core, medians, ratios. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const HAVE_TASKSET = spawnSync('taskset', ['--version']).status === 0;
export const SERVER_CORE = '0';
export const LOAD_CORE = '1';

/** The compiled perf/ folder (dist/perf), where the servers are. */
export const PERF_DIR = dirname(fileURLToPath(import.meta.url));

export interface RunningServer {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The port a benchmark server announces (`listening PORT` on its stdout, perf/servers/args.ts); rejects when it
 * exits first or says nothing within `timeoutMs` (the caller decides whether to kill it).
 */
export function listeningPort(child: ChildProcess, name: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs / 1000} s`)), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before listening`));
    });
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening (\d+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      resolve(Number(m[1]));
    });
  });
}

/** How {@link startServer} runs a server beyond its arguments. */
export interface StartServerOptions {
  /** Node flags before the script, e.g. ['--expose-gc']. */
  nodeFlags?: readonly string[];
  /** The working directory (where a heap snapshot is written). */
  cwd?: string;
  /** How `stop()` ends it: SIGKILL by default, SIGTERM to let it exit on its own (the servers exit cleanly on it). */
  stopSignal?: NodeJS.Signals;
}

/** Starts `servers/<name>.js` pinned to the server core; resolves once it printed `listening PORT`. */
export async function startServer(name: string, extraArgs: readonly string[] = [], options: StartServerOptions = {}): Promise<RunningServer> {
  const node = [process.execPath, ...(options.nodeFlags ?? []), join(PERF_DIR, 'servers', `${name}.js`), ...extraArgs];
  const argv = HAVE_TASKSET ? ['taskset', '-c', SERVER_CORE, ...node] : node;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], ...(options.cwd === undefined ? {} : { cwd: options.cwd }) });
  const port = await listeningPort(child, name, 10_000);
  return {
    port,
    child,
    stop: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill(options.stopSignal ?? 'SIGKILL');
      }),
  };
}

/** Runs a command pinned to the load core; resolves with its stdout. */
export function runLoad(command: string, args: string[]): Promise<string> {
  const cmd = HAVE_TASKSET ? 'taskset' : command;
  const argv = HAVE_TASKSET ? ['-c', LOAD_CORE, command, ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} exited ${code}: ${err}`))));
  });
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/**
 * CPU time (user + system) a process has used, in clock ticks of 10 ms, from /proc/PID/stat; 0 when it is gone or
 * /proc is absent. Fields are counted after the last ')' (a command name may hold spaces and parentheses):
 * utime and stime are fields 14 and 15 of stat(5).
 */
export function cpuTicks(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}
