/**
 * Capacity: connections past `maxConnections` are refused, counted and reported once a second
 * with a count; the default `maxConnections` leaves a reserve under the open-file limit; and a process that is at
 * its open-file limit (where Node drops new connections without a word) is detected and reported. The last two
 * run a child process under a low `ulimit -n` (test/support/capacityServer.ts).
 */
import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SelectorManager } from '../lib/io/SelectorManager.js';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import { ManualClock } from '../lib/io/Clock.js';
import { ConnectionLimitError } from '../lib/io/errors.js';
import { DEFAULT_FILE_DESCRIPTOR_RESERVE, defaultMaxConnections, readOpenFileLimit } from '../lib/io/OpenFileLimit.js';
import { EchoConnectionFactory } from '../examples/echo/EchoConnection.js';
import { ByteBufferPool } from '../lib/buffers/index.js';

const HOST = '127.0.0.1';

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: HOST, port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Polls `check` every 20 ms, at most `tries` times. */
async function until(check: () => boolean, tries = 250): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

t.test('refusals at maxConnections are counted and reported once per second with a count', async (t) => {
  const clock = new ManualClock();
  const scheduler = new IdleTimeoutScheduler({ clock });
  const pool = new ByteBufferPool({ debug: true });
  const errors: Error[] = [];
  const manager = new SelectorManager({ connectionFactory: new EchoConnectionFactory(pool), bufferPool: pool, scheduler, maxConnections: 2, onError: (e) => errors.push(e) });
  const { port } = await manager.listen({ host: HOST, port: 0 });
  const sockets: Socket[] = [];
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await manager.stop(200);
    scheduler.close();
  });
  for (let i = 0; i < 6; i++) {
    const s = await dial(port);
    s.on('error', () => {});
    sockets.push(s);
  }
  t.ok(await until(() => manager.stats().refused === 4), 'four of six refused');
  const stats = manager.stats();
  t.equal(stats.refusedAtLimit, 4, 'counted as refused at the limit');
  t.equal(stats.open, 2);
  t.equal(errors.length, 0, 'nothing reported before the once-a-second check');
  clock.advance(1000);
  t.equal(errors.length, 1, 'one report for the four refusals');
  t.type(errors[0], ConnectionLimitError);
  t.equal((errors[0] as ConnectionLimitError).refused, 4);
  t.equal((errors[0] as ConnectionLimitError).code, 'CONNECTION_LIMIT');
  t.match(errors[0]!.message, /maxConnections 2/);
  clock.advance(1000);
  t.equal(errors.length, 1, 'no refusal since: no report');
  t.equal(manager.stats().openFileLimitHits, 0);
});

t.test('the default maxConnections leaves a reserve under the open-file limit', async (t) => {
  const limit = readOpenFileLimit();
  const manager = new SelectorManager({ connectionFactory: new EchoConnectionFactory(new ByteBufferPool()) });
  if (limit === undefined) {
    t.equal(manager.connectionLimit, Infinity, 'no limit known: no bound');
    return;
  }
  t.equal(manager.connectionLimit, limit - DEFAULT_FILE_DESCRIPTOR_RESERVE);
  t.equal(defaultMaxConnections(200), 100, 'at least half the limit goes to connections');
  t.equal(defaultMaxConnections(undefined), Infinity);
  t.throws(() => new SelectorManager({ connectionFactory: new EchoConnectionFactory(new ByteBufferPool()), maxConnections: -1 }), RangeError);
});

/** Runs test/support/capacityServer.ts under `ulimit -n <fdLimit>` with the given maxConnections argument. */
async function capacityChild(t: Test, fdLimit: number, maxConnections: string) {
  const script = fileURLToPath(new URL('./support/capacityServer.ts', import.meta.url));
  // The TypeScript loader of tap, so that the child runs the same sources (not a build that may be stale).
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  const child = spawn('bash', ['-c', `ulimit -n ${fdLimit} && exec "$0" "$@"`, process.execPath, ...loader, script, maxConnections], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  t.teardown(() => {
    if (child.exitCode === null) child.kill();
  });
  const first = await lines.next();
  const { port, maxConnections: limit } = JSON.parse(String(first.value)) as { port: number; maxConnections: number | null };
  const report = async (): Promise<{ stats: Record<string, number>; errors: string[] }> => {
    child.stdin!.write('report\n');
    return JSON.parse(String((await lines.next()).value)) as { stats: Record<string, number>; errors: string[] };
  };
  const stop = async (): Promise<number | null> => {
    child.stdin!.write('exit\n');
    const [code] = (await once(child, 'exit')) as [number | null];
    return code;
  };
  return { port, limit, report, stop };
}

/** Opens `n` connections, keeping the sockets (some may be closed by the server at once). */
async function openMany(port: number, n: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect({ host: HOST, port });
    s.on('error', () => {});
    sockets.push(s);
  }
  await until(() => sockets.every((s) => !s.connecting), 250);
  return sockets;
}

t.test('without a bound, a process at its open-file limit is detected and reported', async (t) => {
  const child = await capacityChild(t, 160, 'Infinity');
  const sockets = await openMany(child.port, 220);
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  let last: { stats: Record<string, number>; errors: string[] } | undefined;
  for (let i = 0; i < 20; i++) {
    last = await child.report();
    if (last.stats.openFileLimitHits! > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(last!.stats.openFileLimitHits! > 0, 'the limit was detected');
  t.ok(last!.errors.includes('OPEN_FILE_LIMIT'), 'and reported');
  t.ok(last!.stats.accepted! < 220, `only ${last!.stats.accepted} of 220 reached the server (the rest were dropped by Node)`);
  for (const s of sockets) s.destroy();
  t.equal(await child.stop(), 0);
});

t.test('with the default bound, connections are refused before the open-file limit, counted, and the server goes on', async (t) => {
  const child = await capacityChild(t, 256, 'default');
  t.equal(child.limit, 128, 'the default is the limit less the reserve (at least half)');
  const sockets = await openMany(child.port, 220);
  let last: { stats: Record<string, number>; errors: string[] } | undefined;
  for (let i = 0; i < 20; i++) {
    last = await child.report();
    if (last.stats.refusedAtLimit! + last.stats.open! >= 220) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(last!.stats.open, 128, 'maxConnections open');
  t.equal(last!.stats.refusedAtLimit, 92, 'the rest refused and counted');
  t.equal(last!.stats.openFileLimitHits, 0, 'the process never ran out of descriptors');
  t.ok(last!.errors.includes('CONNECTION_LIMIT'), 'reported');
  for (const s of sockets) s.destroy();
  // Once the clients left, a new one is served (echo).
  let echoed = '';
  for (let attempt = 0; attempt < 50 && echoed === ''; attempt++) {
    const s = await dial(child.port);
    s.write('ping');
    echoed = await new Promise<string>((resolve) => {
      s.once('data', (b) => resolve(String(b)));
      s.once('close', () => resolve(''));
    });
    s.destroy();
    if (echoed === '') await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(echoed, 'ping', 'served after the clients left');
  t.equal(await child.stop(), 0);
});
