/**
 * `npm run bench:memory`: memory per WebSocket connection, quay against `ws` and a bare node:net server
 * (perf/servers/echo-raw: one socket, one closure, one small object per connection).
 *
 *   npm run build && node dist/perf/ws-memory.js [--idle 10000] [--active 1000] [--size 16384] [--seconds 5]
 *                                                [--servers quay,ws,net] [--per-process 5000] [--runs 3] [--json]
 *                                                [--server-flags=--max-semi-space-size=1] [--tls]
 *
 * idle: a fresh server (`node --expose-gc`, pinned to core 0) is warmed up (100 connections opened and closed,
 * so that JIT code and lazily loaded modules are not counted), its memory read after a full GC from its /stats
 * route, then N connections are opened to /echo by opener processes on core 1 (at most --per-process each,
 * under the 20,000 open files a process may have here, each from its own 127.0.0.x address) and left silent;
 * after 1 s the memory is read again. Reported: RSS delta / N and live heap delta / N.
 *
 * active: a fresh server again, then M/2 connections each echoing S-byte binary messages, one in flight, for
 * --seconds (memory read: "mid"), then the other M/2 for --seconds; at the end (steady state) RSS, live heap and
 * external (Buffer) memory are read, delta / M, and the marginal RSS (end - mid) / (M/2): what one more busy
 * connection costs once the process-wide growth a busy server has anyway is paid. The echo rate (all M) is
 * printed to show the connections were busy.
 *
 * --runs: the servers are measured in turn (quay, ws, net, quay, ws, net, ...) that many times and each figure is
 * the median of its runs, with every run's RSS per connection printed beside it: RSS after a GC is mostly the
 * allocator's state (freed ArrayBuffer memory that glibc keeps), which swings by tens of percent between
 * identical runs, so one run decides nothing.
 *
 * --server-flags: extra node flags for every server (not the openers), e.g. `--max-semi-space-size=1` to cap V8's
 * young generation, which is most of the active figure of a server that allocates little per message
 * (perf/RESULTS.md).
 *
 * --tls: the same over TLS (wss://): every server started with `--tls` (quay's `tls` option, ws on node:https,
 * the bare server on node:tls), the openers speaking TLS, /stats read over https (`npm run bench:tls` runs the
 * idle part against quay and ws).
 *
 * The connections come from perf/opener (just enough WebSocket, no quay-load): this benchmark depends on
 * nothing but the servers.
 */
import { parseArgs } from 'node:util';
import { fmt, median } from './lib.js';
import { MAX_PER_PROCESS, openMany } from './opener.js';
import { httpGet, startServerProcess } from './serverProcess.js';
import type { ServerProcess } from './serverProcess.js';

const { values } = parseArgs({
  options: {
    idle: { type: 'string', default: '10000' },
    active: { type: 'string', default: '1000' },
    size: { type: 'string', default: '16384' },
    seconds: { type: 'string', default: '5' },
    servers: { type: 'string', default: 'net,ws,quay' },
    'per-process': { type: 'string', default: '5000' },
    runs: { type: 'string', default: '3' },
    'server-flags': { type: 'string', default: '' },
    json: { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
  },
});
const TLS = values.tls === true;

const SETTLE_MS = 1000;
const SERVER_FLAGS = values['server-flags']!.split(' ').filter((f) => f !== '');
const SERVERS: Record<string, { script: string; label: string }> = {
  quay: { script: 'echo-quay', label: TLS ? 'quay (tls option)' : 'quay' },
  ws: { script: 'echo-ws', label: TLS ? 'ws 8 on node:https (perMessageDeflate off)' : 'ws 8 (perMessageDeflate off)' },
  net: { script: 'echo-raw', label: TLS ? 'bare node:tls (echo-raw --tls)' : 'bare node:net (echo-raw)' },
};

interface Stats {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  gc: boolean;
}

/** The server's memory after a full GC, from its /stats route. */
async function stats(port: number): Promise<Stats> {
  const s = JSON.parse(await httpGet(port, '/stats', 60_000, TLS)) as Stats;
  if (!s.gc) throw new Error('the server has no gc(): start it with --expose-gc');
  return s;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface MemoryRow {
  server: string;
  label: string;
  idleConnections: number;
  idleFailed: number;
  idleRssPerConn: number;
  idleHeapPerConn: number;
  activeConnections: number;
  activeFailed: number;
  activeRssPerConn: number;
  activeHeapPerConn: number;
  activeExternalPerConn: number;
  activeMsgsPerSec: number;
  /** RSS added by the second half of the active connections, per connection (see measureServer). */
  activeMarginalRssPerConn: number;
  /** Every run's RSS per connection (the row's figure is their median). */
  idleRssRuns?: number[];
  activeRssRuns?: number[];
  activeMarginalRuns?: number[];
}

/**
 * A fresh server, warmed up, with its baseline memory. The warm-up (100 connections echoing `size`-byte messages
 * for `warmMs`, then closed) compiles the hot code and loads lazily loaded modules (crypto's sha1 and such); for
 * the active measurement it runs at the measured size for a second, so that V8's young generation and the
 * allocator's arenas have grown to their working size in the baseline too: what remains in the delta is then
 * per connection, not per process.
 */
async function freshServer(script: string, perProcess: number, size: number, warmMs: number): Promise<{ server: ServerProcess; before: Stats }> {
  const server = await startServerProcess(script, { nodeFlags: ['--expose-gc', ...SERVER_FLAGS], args: TLS ? ['--tls'] : [] });
  const warm = await openMany(server.port, 100, 'active', size, perProcess, TLS);
  await sleep(warmMs);
  for (const o of warm) await o.close();
  await sleep(300);
  return { server, before: await stats(server.port) };
}

async function measureServer(name: string, idle: number, active: number, size: number, seconds: number, perProcess: number): Promise<MemoryRow> {
  const { script, label } = SERVERS[name]!;
  const t0 = Date.now();
  const elapsed = (): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const row: MemoryRow = {
    server: name,
    label,
    idleConnections: 0,
    idleFailed: 0,
    idleRssPerConn: NaN,
    idleHeapPerConn: NaN,
    activeConnections: 0,
    activeFailed: 0,
    activeRssPerConn: NaN,
    activeMarginalRssPerConn: NaN,
    activeHeapPerConn: NaN,
    activeExternalPerConn: NaN,
    activeMsgsPerSec: NaN,
  };
  if (idle > 0) {
    const { server, before } = await freshServer(script, perProcess, 64, 300);
    try {
      const openers = await openMany(server.port, idle, 'idle', size, perProcess, TLS);
      row.idleConnections = openers.reduce((a, o) => a + o.opened, 0);
      row.idleFailed = openers.reduce((a, o) => a + o.failed, 0);
      console.error(`${name} idle: ${row.idleConnections} open at ${elapsed()}`);
      await sleep(SETTLE_MS);
      const after = await stats(server.port);
      row.idleRssPerConn = (after.rss - before.rss) / row.idleConnections;
      row.idleHeapPerConn = (after.heapUsed - before.heapUsed) / row.idleConnections;
      for (const o of openers) await o.close();
    } finally {
      await server.stop();
    }
    console.error(`${name} idle at ${elapsed()}: ${row.idleConnections} open, ${fmt(row.idleRssPerConn)} B RSS and ${fmt(row.idleHeapPerConn)} B heap per connection`);
  }
  if (active > 0) {
    const { server, before } = await freshServer(script, perProcess, size, 1000);
    try {
      // Half first, measured at steady state, then the rest: the RSS added by the second half is per connection
      // only, since what a busy process grows once (V8's young generation, the allocator's arenas) has grown
      // during the first half already.
      const half = Math.floor(active / 2);
      const first = half > 0 ? await openMany(server.port, half, 'active', size, perProcess, TLS) : [];
      const firstOpened = first.reduce((a, o) => a + o.opened, 0);
      if (half > 0) await sleep(seconds * 1000);
      const mid = half > 0 ? await stats(server.port) : before;
      const openers = [...first, ...(await openMany(server.port, active - half, 'active', size, perProcess, TLS))];
      row.activeConnections = openers.reduce((a, o) => a + o.opened, 0);
      row.activeFailed = openers.reduce((a, o) => a + o.failed, 0);
      // Steady state: the first second is ramp-up; the echo rate is taken over the rest.
      await sleep(1000);
      const c0 = (await Promise.all(openers.map((o) => o.count()))).reduce((a, b) => a + b, 0);
      const t0 = Date.now();
      await sleep(Math.max(1, seconds - 1) * 1000);
      const c1 = (await Promise.all(openers.map((o) => o.count()))).reduce((a, b) => a + b, 0);
      row.activeMsgsPerSec = ((c1 - c0) * 1000) / (Date.now() - t0);
      const after = await stats(server.port);
      row.activeRssPerConn = (after.rss - before.rss) / row.activeConnections;
      row.activeMarginalRssPerConn = (after.rss - mid.rss) / (row.activeConnections - firstOpened);
      row.activeHeapPerConn = (after.heapUsed - before.heapUsed) / row.activeConnections;
      row.activeExternalPerConn = (after.external - before.external) / row.activeConnections;
      for (const o of openers) await o.close();
    } finally {
      await server.stop();
    }
    console.error(
      `${name} active at ${elapsed()}: ${row.activeConnections} open, ${fmt(row.activeMsgsPerSec)} msgs/s, ${fmt(row.activeRssPerConn)} B RSS, ` +
        `${fmt(row.activeHeapPerConn)} B heap, ${fmt(row.activeExternalPerConn)} B external per connection`,
    );
  }
  return row;
}

/** The median of each figure over the runs of one server; the RSS of every run kept for the table. */
function medianRow(runs: readonly MemoryRow[]): MemoryRow {
  const m = (f: (r: MemoryRow) => number): number => median(runs.map(f));
  return {
    ...runs[0]!,
    idleConnections: m((r) => r.idleConnections),
    idleFailed: Math.max(...runs.map((r) => r.idleFailed)),
    idleRssPerConn: m((r) => r.idleRssPerConn),
    idleHeapPerConn: m((r) => r.idleHeapPerConn),
    activeConnections: m((r) => r.activeConnections),
    activeFailed: Math.max(...runs.map((r) => r.activeFailed)),
    activeRssPerConn: m((r) => r.activeRssPerConn),
    activeMarginalRssPerConn: m((r) => r.activeMarginalRssPerConn),
    activeMarginalRuns: runs.map((r) => r.activeMarginalRssPerConn),
    activeHeapPerConn: m((r) => r.activeHeapPerConn),
    activeExternalPerConn: m((r) => r.activeExternalPerConn),
    activeMsgsPerSec: m((r) => r.activeMsgsPerSec),
    idleRssRuns: runs.map((r) => r.idleRssPerConn),
    activeRssRuns: runs.map((r) => r.activeRssPerConn),
  };
}

function table(rows: readonly MemoryRow[], idle: number, active: number, size: number): string {
  const b = (x: number): string => (Number.isFinite(x) ? fmt(x) : '-');
  const runsOf = (xs: readonly number[] | undefined): string => (xs === undefined ? '-' : xs.map(b).join(', '));
  // Idle only (--active 0): no active columns.
  const lines =
    active === 0
      ? [`| server | idle: RSS / conn (${fmt(idle)} conn) | idle: RSS per run | idle: heap / conn |`, '| --- | ---: | --- | ---: |']
      : [
          `| server | idle: RSS / conn (${fmt(idle)} conn) | idle: RSS per run | idle: heap / conn | active: RSS / conn (${fmt(active)} conn x ${fmt(size)} B echo) | active: RSS per run | active: marginal RSS / conn (${fmt(Math.floor(active / 2))} -> ${fmt(active)}) | marginal per run | active: heap / conn | active: external / conn | active echo msgs/s |`,
          '| --- | ---: | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |',
        ];
  for (const r of rows) {
    const failed = r.idleFailed + r.activeFailed > 0 ? ` (${r.idleFailed + r.activeFailed} failed to open)` : '';
    if (active === 0) {
      lines.push(`| ${r.label}${failed} | ${b(r.idleRssPerConn)} B | ${runsOf(r.idleRssRuns)} | ${b(r.idleHeapPerConn)} B |`);
      continue;
    }
    lines.push(
      `| ${r.label}${failed} | ${b(r.idleRssPerConn)} B | ${runsOf(r.idleRssRuns)} | ${b(r.idleHeapPerConn)} B | ${b(r.activeRssPerConn)} B | ${runsOf(r.activeRssRuns)} | ${b(r.activeMarginalRssPerConn)} B | ${runsOf(r.activeMarginalRuns)} | ${b(r.activeHeapPerConn)} B | ${b(r.activeExternalPerConn)} B | ${b(r.activeMsgsPerSec)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const idle = Number(values.idle);
  const active = Number(values.active);
  const size = Number(values.size);
  const seconds = Number(values.seconds);
  const perProcess = Math.min(Number(values['per-process']), MAX_PER_PROCESS);
  const names = values.servers!.split(',');
  for (const n of names) if (SERVERS[n] === undefined) throw new Error(`unknown server ${n}: one of ${Object.keys(SERVERS).join(', ')}`);
  const runs = Math.max(1, Number(values.runs));
  const perRun = new Map<string, MemoryRow[]>(names.map((n) => [n, []]));
  for (let run = 0; run < runs; run++) {
    for (const name of names) perRun.get(name)!.push(await measureServer(name, idle, active, size, seconds, perProcess));
  }
  const rows = names.map((n) => medianRow(perRun.get(n)!));
  const text = table(rows, idle, active, size);
  if (values.json) {
    console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, tls: TLS, idle, active, size, seconds, runs, serverFlags: SERVER_FLAGS, rows, table: text }));
    return;
  }
  console.log(`\nMemory per WebSocket connection${TLS ? ' over TLS (wss)' : ''}, Node ${process.version}, after a full GC (server run with --expose-gc${SERVER_FLAGS.map((f) => ` ${f}`).join('')}), median of ${runs} run(s)\n`);
  console.log(text);
  const q = rows.find((r) => r.server === 'quay');
  const w = rows.find((r) => r.server === 'ws');
  if (q !== undefined && w !== undefined) {
    console.log('\nGoals:');
    console.log(`- idle memory per connection <= ws: RSS ${fmt(q.idleRssPerConn)} vs ${fmt(w.idleRssPerConn)} B, heap ${fmt(q.idleHeapPerConn)} vs ${fmt(w.idleHeapPerConn)} B: ${q.idleRssPerConn <= w.idleRssPerConn && q.idleHeapPerConn <= w.idleHeapPerConn ? 'met' : 'NOT met'}`);
    if (active === 0) return;
    console.log(`- active memory per connection <= 1/2 ws: RSS ${fmt(q.activeRssPerConn)} vs ${fmt(w.activeRssPerConn)} B (${(q.activeRssPerConn / w.activeRssPerConn).toFixed(2)}): ${q.activeRssPerConn <= w.activeRssPerConn / 2 ? 'met' : 'NOT met'}`);
    console.log(`- the same, marginal (RSS added per connection from ${fmt(Math.floor(active / 2))} to ${fmt(active)}): ${fmt(q.activeMarginalRssPerConn)} vs ${fmt(w.activeMarginalRssPerConn)} B (${(q.activeMarginalRssPerConn / w.activeMarginalRssPerConn).toFixed(2)}): ${q.activeMarginalRssPerConn <= w.activeMarginalRssPerConn / 2 ? 'met' : 'NOT met'}`);
  }
}

await main();
