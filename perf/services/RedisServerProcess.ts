/**
 * A real `redis-server` (Debian's package) for the tests and benchmarks: started on a free 127.0.0.1 port with no
 * persistence (no RDB snapshots, no AOF, nothing written to disk), stopped by its PID, and restartable on the same
 * port (the "Redis goes away and comes back" cases). `.ci/run` installs the package; {@link findRedisServer}
 * says where it is, or undefined so that a test can skip with a message.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server'];

/** The redis-server binary (REDIS_SERVER overrides), or undefined when it is not installed. */
export function findRedisServer(): string | undefined {
  const fromEnv = process.env['REDIS_SERVER'];
  if (fromEnv !== undefined && fromEnv !== '') return existsSync(fromEnv) ? fromEnv : undefined;
  return CANDIDATES.find((p) => existsSync(p));
}

/** A free TCP port on 127.0.0.1 (bound and released: good enough for a child that binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves when `PING` gets `+PONG` on 127.0.0.1:port, rejects after timeoutMs. */
export async function waitForRedis(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (await ping(port)) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (b: Buffer) => {
      reply += b.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** A running (or stopped, restartable) redis-server. */
export class RedisServerProcess {
  readonly port: number;
  private readonly binary: string;
  private child: ChildProcess | undefined;

  private constructor(binary: string, port: number) {
    this.binary = binary;
    this.port = port;
  }

  /** Starts redis-server on a free port (or `port`); resolves once it answers PING. */
  static async start(options: { port?: number; binary?: string } = {}): Promise<RedisServerProcess> {
    const binary = options.binary ?? findRedisServer();
    if (binary === undefined) throw new Error('redis-server is not installed (Debian: apt-get install redis-server; .ci/run does it)');
    const server = new RedisServerProcess(binary, options.port ?? (await freePort()));
    await server.restart();
    return server;
  }

  /** `redis://127.0.0.1:PORT` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The PID of the running server, or undefined when stopped. */
  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** Starts it again on the same port (after {@link stop}); resolves once it answers PING. */
  async restart(): Promise<void> {
    if (this.pid !== undefined) return;
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning', '--dir', '/tmp'];
    const child = spawn(this.binary, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    this.child = child;
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`redis-server exited with ${code} at start`))));
    exited.catch(() => {});
    await Promise.race([waitForRedis(this.port), exited]);
  }

  /** Stops it by its PID (SIGTERM, SIGKILL after 5 s); resolves when the process is gone. */
  stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
