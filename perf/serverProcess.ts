/**
 * A benchmark server (perf/servers/<name>.js) that stops with SIGTERM, with Node flags of our choosing
 * (`--expose-gc` for the memory benchmark), through lib.ts's startServer; and a plain GET to its HTTP routes
 * (/stats, /heapsnapshot).
 */
import { get } from 'node:http';
import { get as httpsGet } from 'node:https';
import { startServer } from './lib.js';
import type { RunningServer } from './lib.js';

/** A server started by {@link startServerProcess}; `stop()` sends SIGTERM and resolves when the process is gone. */
export type ServerProcess = RunningServer;

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
  return startServer(name, options.args, {
    ...(options.nodeFlags === undefined ? {} : { nodeFlags: options.nodeFlags }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stopSignal: 'SIGTERM',
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
