/**
 * A real HAProxy (Debian's package, /usr/sbin/haproxy) in front of quay instances, for the tests and benchmarks:
 * started in the foreground (`-db`: no daemon, no master process, so its PID is the one to stop) with a
 * configuration generated for the run (frontend on a free 127.0.0.1 port, one backend server per instance, HTTP
 * health checks, `retries` and `option redispatch`), stopped by its PID. `.ci/run` installs the package;
 * {@link findHaproxy} says where it is, or undefined so that a test can skip with a message.
 *
 * The generated configuration is the one of examples/chat/haproxy.cfg with the timeouts made options: the tests
 * need short ones (`timeout client 1s` to show that quay's pings keep a WebSocket open through it) and need to
 * leave `timeout tunnel` out (HAProxy then applies `timeout client` / `timeout server` to the upgraded tunnel).
 *
 * An admin socket (a UNIX socket in the run's temporary folder) answers `show stat`: {@link HaproxyProcess.serverStates}
 * tells which backend servers HAProxy's health checks see UP or DOWN.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './RedisServerProcess.js';

const CANDIDATES = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy', '/usr/local/bin/haproxy'];

/** The haproxy binary (HAPROXY overrides), or undefined when it is not installed. */
export function findHaproxy(): string | undefined {
  const fromEnv = process.env['HAPROXY'];
  if (fromEnv !== undefined && fromEnv !== '') return existsSync(fromEnv) ? fromEnv : undefined;
  return CANDIDATES.find((p) => existsSync(p));
}

/** What a test says when haproxy is missing (it skips with this message, never silently). */
export const HAPROXY_MISSING = 'haproxy is not installed (Debian: apt-get install haproxy, as .ci/run does; or set HAPROXY to its path)';

/** One backend server: a quay instance listening on 127.0.0.1:port. */
export interface HaproxyBackend {
  /** The server's name in HAProxy (letters, digits, `-`, `_`, `.`). */
  name: string;
  port: number;
  /** Default '127.0.0.1'. */
  host?: string;
}

/** Options of {@link HaproxyProcess.start}. Times in ms (HAProxy's unit suffix `ms` is written for them). */
export interface HaproxyOptions {
  backends: readonly HaproxyBackend[];
  /** The frontend's port. Default: a free one. */
  port?: number;
  /**
   * How a new connection picks its server. Default `leastconn`: WebSockets are long-lived, so the instance with
   * the fewest open connections takes the next one (HAProxy's advice for long sessions); it also makes two pages
   * opened one after the other land on two instances, which the tests check.
   */
  balance?: 'leastconn' | 'roundrobin' | 'first';
  /** `timeout connect`. Default 1000. */
  timeoutConnectMs?: number;
  /** `timeout client`: inactivity on the client side. Default 30 000. */
  timeoutClientMs?: number;
  /** `timeout server`: inactivity on the server side. Default 30 000. */
  timeoutServerMs?: number;
  /**
   * `timeout tunnel`: inactivity of an upgraded (WebSocket) connection, in place of client/server. Default:
   * not set (then `timeout client` and `timeout server` apply to the tunnel too).
   */
  timeoutTunnelMs?: number;
  /** `timeout http-request`. Default 5000. */
  timeoutHttpRequestMs?: number;
  /** HTTP health checks (`option httpchk GET path`, 200 expected). Default: GET /instance every 500 ms, fall 2, rise 1. `false`: none. */
  healthCheck?: { path: string; intervalMs: number; fall: number; rise: number } | false;
  /** `retries` (connection attempts to a server before giving up or redispatching). Default 3. */
  retries?: number;
  /** `option redispatch`: the last retry goes to another server. Default true. */
  redispatch?: boolean;
  /** `maxconn` (global): connections at most. Default 4096 (HAProxy needs about twice that in open files). */
  maxConnections?: number;
  /** HAProxy's log lines on its stderr (for debugging a test). Default false. */
  log?: boolean;
  /** The binary. Default {@link findHaproxy}. */
  binary?: string;
}

/** A backend server's state as HAProxy's checks see it (the `status` column of `show stat`). */
export type HaproxyServerState = 'UP' | 'DOWN' | 'MAINT' | 'NOLB' | 'DRAIN' | string;

/** The configuration {@link HaproxyProcess.start} writes (exported for tests and for reading). */
export function haproxyConfig(options: HaproxyOptions & { port: number; adminSocket?: string }): string {
  const check = options.healthCheck ?? { path: '/instance', intervalMs: 500, fall: 2, rise: 1 };
  const lines: string[] = [
    'global',
    '  nbthread 1',
    // HAProxy raises its open-file limit to about 2 x maxconn at start and refuses to start when the hard limit
    // is lower (20,000 per process here).
    `  maxconn ${options.maxConnections ?? 4096}`,
    ...(options.adminSocket === undefined ? [] : [`  stats socket ${options.adminSocket} mode 600 level admin`]),
    ...(options.log === true ? ['  log stderr format raw local0 info'] : []),
    '',
    'defaults',
    '  mode http',
    ...(options.log === true ? ['  log global', '  option httplog'] : []),
    `  timeout connect ${options.timeoutConnectMs ?? 1000}ms`,
    `  timeout client ${options.timeoutClientMs ?? 30_000}ms`,
    `  timeout server ${options.timeoutServerMs ?? 30_000}ms`,
    `  timeout http-request ${options.timeoutHttpRequestMs ?? 5000}ms`,
    ...(options.timeoutTunnelMs === undefined ? [] : [`  timeout tunnel ${options.timeoutTunnelMs}ms`]),
    `  retries ${options.retries ?? 3}`,
    ...(options.redispatch === false ? [] : ['  option redispatch']),
    '',
    'frontend chat',
    `  bind 127.0.0.1:${options.port}`,
    '  default_backend quay',
    '',
    'backend quay',
    `  balance ${options.balance ?? 'leastconn'}`,
    ...(check === false ? [] : [`  option httpchk GET ${check.path}`, '  http-check expect status 200', `  default-server inter ${check.intervalMs}ms fall ${check.fall} rise ${check.rise}`]),
  ];
  for (const backend of options.backends) {
    if (!/^[A-Za-z0-9_.-]+$/.test(backend.name)) throw new TypeError(`haproxy: bad server name ${JSON.stringify(backend.name)}`);
    lines.push(`  server ${backend.name} ${backend.host ?? '127.0.0.1'}:${backend.port}${check === false ? '' : ' check'}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A running haproxy (in the foreground, `-db`), stopped by its PID. */
export class HaproxyProcess {
  /** The frontend's port on 127.0.0.1. */
  readonly port: number;
  /** The configuration it runs. */
  readonly config: string;
  private readonly dir: string;
  private readonly adminSocket: string;
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | string>;
  private stderrText = '';

  private constructor(port: number, config: string, dir: string, adminSocket: string, child: ChildProcess) {
    this.port = port;
    this.config = config;
    this.dir = dir;
    this.adminSocket = adminSocket;
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      // Bounded: the first 64 KiB is what explains a failure.
      if (this.stderrText.length < 65_536) this.stderrText += chunk;
      if (process.env['QUAY_HAPROXY_LOG'] === '1') process.stderr.write(chunk);
    });
  }

  /** Starts haproxy; resolves once its frontend accepts connections, rejects if it exits first (with its stderr). */
  static async start(options: HaproxyOptions): Promise<HaproxyProcess> {
    const binary = options.binary ?? findHaproxy();
    if (binary === undefined) throw new Error(HAPROXY_MISSING);
    const port = options.port ?? (await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'quay-haproxy-'));
    const adminSocket = join(dir, 'admin.sock');
    const config = haproxyConfig({ ...options, port, adminSocket });
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, config);
    const child = spawn(binary, ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    const haproxy = new HaproxyProcess(port, config, dir, adminSocket, child);
    const failed = haproxy.exited.then((code) => {
      throw new Error(`haproxy exited (${code}) at start: ${haproxy.stderrText.trim()}\n${config}`);
    });
    failed.catch(() => {});
    try {
      await Promise.race([waitForPort(port, 10_000), failed]);
      await Promise.race([waitFor(() => existsSync(adminSocket), 5_000, 'the admin socket'), failed]);
    } catch (error) {
      await haproxy.stop();
      throw error;
    }
    return haproxy;
  }

  /** `http://127.0.0.1:PORT/` */
  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  /** The PID while it runs, else undefined. */
  get pid(): number | undefined {
    return this.child.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** What haproxy wrote on stderr so far (its warnings; its log with `log: true`), at most 64 KiB. */
  get stderr(): string {
    return this.stderrText;
  }

  /** Each backend server's state as HAProxy's health checks see it (`show stat` on the admin socket). */
  async serverStates(): Promise<Map<string, HaproxyServerState>> {
    const csv = await this.admin('show stat');
    const lines = csv.split('\n');
    const header = (lines[0] ?? '').replace(/^# /, '').split(',');
    const name = header.indexOf('svname');
    const status = header.indexOf('status');
    const proxy = header.indexOf('pxname');
    const states = new Map<string, HaproxyServerState>();
    for (const line of lines.slice(1)) {
      const cells = line.split(',');
      const server = cells[name];
      if (cells[proxy] !== 'quay' || server === undefined || server === 'BACKEND' || server === 'FRONTEND') continue;
      states.set(server, cells[status] ?? '?');
    }
    return states;
  }

  /** Resolves once HAProxy sees `server` in `state` (polled every 50 ms); rejects after `timeoutMs`. */
  async waitForServer(server: string, state: 'UP' | 'DOWN', timeoutMs = 10_000): Promise<void> {
    let last: string | undefined;
    try {
      await waitFor(async () => {
        // `UP 1/2` or `DOWN 1/2` are transitions (a check failed or passed, not yet `fall`/`rise` in a row).
        last = (await this.serverStates()).get(server);
        return last === state;
      }, timeoutMs, `haproxy to see ${server} ${state}`);
    } catch (error) {
      throw new Error(`${(error as Error).message} (last seen: ${last})`);
    }
  }

  /** One command on the admin socket; its whole answer. */
  admin(command: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.adminSocket);
      let answer = '';
      socket.setEncoding('utf8');
      socket.setTimeout(5_000, () => socket.destroy(new Error(`haproxy admin socket: no answer to ${command} within 5 s`)));
      socket.on('connect', () => socket.end(`${command}\n`));
      socket.on('data', (chunk: string) => (answer += chunk));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
  }

  /** Stops it by its PID (SIGTERM, SIGKILL after 5 s) and removes its temporary folder; resolves when it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null) {
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.kill('SIGTERM');
      await this.exited;
      clearTimeout(kill);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects after timeoutMs. */
export function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  return waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.setTimeout(1000, () => {
          socket.destroy();
          resolve(false);
        });
        socket.once('error', () => resolve(false));
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
      }),
    timeoutMs,
    `127.0.0.1:${port} to accept connections`,
  );
}

/** Polls `test` every 50 ms (at most timeoutMs / 50 + 1 times); rejects with what it waited for. */
async function waitFor(test: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const attempts = Math.ceil(timeoutMs / 50) + 1;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await test()) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`waited ${timeoutMs} ms for ${what}`);
}
