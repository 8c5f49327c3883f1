/**
 * Child processes of `npm run bench:hostile`: a server under attack (pinned to the server core like every
 * benchmark server, optionally under a lower open-file limit), whose stderr is captured and counted, whose exit
 * is a result ("crashed (exit code N)") and not a harness failure, and whose RSS is read from /proc.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HAVE_TASKSET, PERF_DIR, SERVER_CORE } from '../lib.js';

const PRLIMIT = '/usr/bin/prlimit';
const HAVE_PRLIMIT = existsSync(PRLIMIT) && spawnSync(PRLIMIT, ['--version']).status === 0;

export interface ChildOptions {
  /** Lower the open-file limit (soft and hard) of the child to this. */
  nofile?: number;
  /** Pin to this core (default: the server core). */
  core?: string;
}

/** A child process whose stderr we count and whose exit we record. */
export interface Watched {
  child: ChildProcess;
  pid: number;
  /** Lines and bytes written to stderr so far. */
  stderrLines: number;
  stderrBytes: number;
  /** The first and the last 2 KiB of stderr (why it crashed). */
  stderrHead: string;
  stderrTail: string;
  /** Everything written to stdout (the last 64 KiB). */
  stdoutText: string;
  /** Set once the process exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exited: Promise<void>;
  /** SIGKILL unless already gone; resolves once it is gone. */
  kill(): Promise<void>;
}

/** The argv (wrapped in prlimit/taskset when available) of `node [flags] script args`. */
export function childArgv(script: string, args: readonly string[], options: ChildOptions = {}): string[] {
  let argv = [process.execPath, script, ...args];
  if (HAVE_TASKSET) argv = ['taskset', '-c', options.core ?? SERVER_CORE, ...argv];
  if (options.nofile !== undefined) {
    if (HAVE_PRLIMIT) argv = [PRLIMIT, `--nofile=${options.nofile}:${options.nofile}`, '--', ...argv];
    else argv = ['bash', '-c', `ulimit -n ${options.nofile} && exec "$@"`, 'bash', ...argv];
  }
  return argv;
}

/** Spawns `argv` with stdout piped (for `listening PORT` and the like) and stderr counted. */
export function watch(argv: readonly string[]): Watched {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const w: Watched = {
    child,
    pid: child.pid ?? -1,
    stderrLines: 0,
    stderrBytes: 0,
    stderrHead: '',
    stderrTail: '',
    stdoutText: '',
    exit: undefined,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        w.exit = { code, signal };
        resolve();
      });
    }),
    kill: async () => {
      if (w.exit === undefined) child.kill('SIGKILL');
      await w.exited;
    },
  };
  child.stdin!.on('error', () => {});
  child.stdout!.on('data', (b: Buffer) => {
    w.stdoutText = (w.stdoutText + b.toString()).slice(-65536);
  });
  child.stderr!.on('data', (b: Buffer) => {
    w.stderrBytes += b.length;
    for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) w.stderrLines++;
    if (w.stderrHead.length < 2048) w.stderrHead += b.toString('utf8', 0, Math.min(b.length, 2048 - w.stderrHead.length));
    w.stderrTail = (w.stderrTail + b.toString('utf8', Math.max(0, b.length - 2048))).slice(-2048);
  });
  return w;
}

/** Resolves with the first match of `re` on the child's stdout, or rejects when it exits first or after `ms`. */
export function waitForLine(w: Watched, re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = re.exec(w.stdoutText);
      if (m === null) return false;
      finish(undefined, m);
      return true;
    };
    const onData = (): void => void setImmediate(check);
    const onExit = (): void => {
      setImmediate(() => {
        if (!check()) finish(new Error(`exited (${w.exit?.code ?? w.exit?.signal}) before ${re}: ${w.stderrTail.trim().slice(-300)}`));
      });
    };
    const timer = setTimeout(() => finish(new Error(`no ${re} within ${ms} ms (stdout: ${JSON.stringify(w.stdoutText.slice(-200))}, stderr: ${JSON.stringify(w.stderrTail.slice(-300))})`)), ms);
    let done = false;
    function finish(error: Error | undefined, m?: RegExpExecArray): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      w.child.stdout!.off('data', onData);
      w.child.off('exit', onExit);
      if (error === undefined) resolve(m!);
      else reject(error);
    }
    w.child.stdout!.on('data', onData);
    w.child.on('exit', onExit);
    check();
  });
}

export type Impl = 'quay' | 'node';

export interface HostileServer extends Watched {
  impl: Impl;
  port: number;
}

/** Starts perf/servers/hostile-<impl>.js with `args`; resolves once it listens. */
export async function startHostileServer(impl: Impl, args: readonly string[], options: ChildOptions = {}): Promise<HostileServer> {
  const script = join(PERF_DIR, 'servers', `hostile-${impl}.js`);
  const w = watch(childArgv(script, ['--port', '0', ...args], options));
  try {
    // Generous: the machine is shared, and a server can start while the previous one's sockets are being torn down.
    const m = await waitForLine(w, /listening (\d+)/, 30_000);
    return Object.assign(w, { impl, port: Number(m[1]) });
  } catch (error) {
    await w.kill();
    throw error;
  }
}

/** VmRSS of a process in bytes, from /proc; NaN once it is gone. */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m === null ? NaN : Number(m[1]) * 1024;
  } catch {
    return NaN;
  }
}

/** Samples a process's RSS every `everyMs` until stopped: baseline (first sample) and the maximum. */
export class RssSampler {
  readonly baseline: number;
  max: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    everyMs = 200,
  ) {
    this.baseline = rssOf(pid);
    this.max = this.baseline;
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): void {
    const r = rssOf(this.pid);
    if (r > this.max) this.max = r;
  }

  /** Stops sampling; returns max - baseline in bytes. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.max - this.baseline;
  }
}

/** What became of a server: "alive", or "crashed (exit code N)" / "killed (SIGx)". */
export function fate(w: Watched): string {
  if (w.exit === undefined) return 'alive';
  if (w.exit.signal !== null) return `killed (${w.exit.signal})`;
  return `crashed (exit code ${w.exit.code})`;
}

/** The first line of stderr that says why a process died (an Error line), for the notes. */
export function crashReason(w: Watched): string {
  const text = `${w.stderrHead}\n${w.stderrTail}`;
  const m =
    /^\s*[A-Za-z]*Error(?: \[[A-Z_]+\])?:[^\n]*$/m.exec(text) ?? /^[^\n]*(?:FATAL|Error|error)[^\n]*$/m.exec(text);
  if (m === null) return '';
  // Node prints this frame above an error that no one caught because it was a Promise's rejection.
  const unhandled = text.includes('fromPromise') ? 'unhandled rejection: ' : '';
  return `${unhandled}${m[0].trim()}`.slice(0, 160);
}
