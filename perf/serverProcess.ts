/**
 * A benchmark server (perf/servers/<name>.js) in a child process with Node flags of our choosing (lib.ts's
 * startServer takes none): `--expose-gc` for the memory benchmark; and a plain GET to its HTTP routes
 * (/stats, /heapsnapshot).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { HAVE_TASKSET, PERF_DIR, SERVER_CORE } from './lib.js';

export interface ServerProcess {
  port: number;
  child: ChildProcess;
  /** SIGTERM (the servers exit cleanly on it); resolves when the process is gone. */
  stop(): Promise<void>;
}

export interface ServerProcessOptions {
  /** Flags before the script, e.g. ['--expose-gc']. */
  nodeFlags?: readonly string[];
  /** The working directory (where a heap snapshot is written). */
  cwd?: string;
  /** Arguments after the script, e.g. ['--tls']. */
  args?: readonly string[];
}

/** Starts perf/servers/<name>.js pinned to the server core; resolves once it printed `listening PORT`. */
export function startServerProcess(name: string, options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const node = [process.execPath, ...(options.nodeFlags ?? []), join(PERF_DIR, 'servers', `${name}.js`), ...(options.args ?? [])];
  const argv = HAVE_TASKSET ? ['taskset', '-c', SERVER_CORE, ...node] : node;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], ...(options.cwd === undefined ? {} : { cwd: options.cwd }) });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 10 s`)), 10_000);
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before listening`)));
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening (\d+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      resolve({
        port: Number(m[1]),
        child,
        stop: () =>
          new Promise<void>((r) => {
            if (child.exitCode !== null || child.signalCode !== null) return r();
            child.once('exit', () => r());
            child.kill('SIGTERM');
          }),
      });
    });
  });
}

/**
 * GET http://127.0.0.1:port/path on a fresh connection (closed after); resolves with the body of a 200. `tls`:
 * https:// to a server started with `--tls` (its test certificate is not verified).
 */
export function httpGet(port: number, path: string, timeoutMs = 60_000, tls = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path, agent: false, headers: { Connection: 'close' }, timeout: timeoutMs };
    const req = (tls ? httpsGet : get)({ ...options, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${path}: ${res.statusCode} ${body}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}
