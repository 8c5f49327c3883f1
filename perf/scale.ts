/**
 * `npm run bench:scale`: N concurrent WebSocket connections (100,000 by default) to one quay server on W
 * processes, opened by `quay-load idle` split over K child processes and source addresses 127.0.0.x, and a
 * broadcast to all of them.
 *
 *   npm run build && node dist/perf/scale.js [--connections 100000] [--workers W] [--processes K]
 *     [--source-addresses 127.0.0.1-127.0.0.8] [--brokers ipc,redis] [--broadcasts 5] [--idle-seconds 10]
 *     [--open-concurrency 512] [--json]
 *
 * First it says what the machine allows (open files per process, the ephemeral port range, the accept queue
 * limit, memory, cores, load) and sizes the run from it: W server processes and K load processes so that each
 * stays under its open-file limit, enough source addresses for the ephemeral ports.
 *
 * Then, per broker (one fresh server each):
 * - the server (perf/servers/scale-quay.js, `--expose-gc`) starts; a warm-up of 200 connections and one broadcast
 *   (JIT, lazily loaded modules); the baseline memory of every server process is read after a full GC;
 * - quay-load idle opens the N connections to /room (every session joins one room); time to open them all;
 * - memory again after a full GC: RSS per connection = (sum over the server processes of RSS - baseline) / N;
 * - idle for --idle-seconds: each server process's CPU time over the window (process.cpuUsage), and its idle
 *   sweep (one IdleTimeoutScheduler sweep a second visiting every connection, timed by the server around each
 *   sweep call, nothing per endpoint): sweeps, mean and longest sweep, per connection visited;
 * - --broadcasts broadcasts, one at a time: GET /publish?seq=i reaches one server process, which sends the
 *   stamped message (seq and its clock in µs) to the room: through the broker to the others. The load processes
 *   time every delivery against the stamp: deliveries per second per broadcast (N / time from the send to the
 *   last receipt) and the latency percentiles over all deliveries;
 * - the connections are closed (time to close them all), the server is stopped by its PID, and every process is
 *   checked gone.
 *
 * --workers 0 runs the server as one plain process (no cluster, broker 'local'): at most the open-file limit of
 * connections.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Measurement } from './load/Measurement.js';
import { MAX_CONNECTIONS, OPEN_FILE_LIMIT, defaultOptions, ephemeralPortRange, parseOptions } from './load/options.js';
import type { LoadOptions } from './load/options.js';
import type { LoadReport } from './load/report.js';
import { runLoad } from './load/run.js';
import { sleep } from './load/sleep.js';
import { PERF_DIR } from './lib.js';
import { httpGet } from './serverProcess.js';
import type { ScaleStats, WorkerFigures } from './servers/scale-quay.js';
import { RedisServerProcess, freePort } from './services/RedisServerProcess.js';
import { DEFAULT_FILE_DESCRIPTOR_RESERVE } from '../lib/index.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '100000' },
    workers: { type: 'string' },
    processes: { type: 'string' },
    'source-addresses': { type: 'string' },
    brokers: { type: 'string' },
    broadcasts: { type: 'string', default: '5' },
    'idle-seconds': { type: 'string', default: '10' },
    'open-concurrency': { type: 'string', default: '512' },
    json: { type: 'boolean', default: false },
  },
});

const N = positive('--connections', values.connections!);
const BROADCASTS = positive('--broadcasts', values.broadcasts!);
const IDLE_SECONDS = positive('--idle-seconds', values['idle-seconds']!);
const OPEN_CONCURRENCY = positive('--open-concurrency', values['open-concurrency']!);
const WARMUP_CONNECTIONS = 200;
/** After the last handshake, before the memory is read: late allocations (the sessions' first sweep) done. */
const SETTLE_MS = 2000;
/** A broadcast not delivered to every connection within this long is reported as such. */
const BROADCAST_TIMEOUT_MS = 60_000;

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, not ${JSON.stringify(text)}`);
  return n;
}

function note(text: string): void {
  process.stderr.write(`[scale] ${text}\n`);
}

// ------------------------------------------------------------------------------------------------ the machine

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1').trim();
  } catch {
    return undefined;
  }
}

interface Machine {
  openFileLimitSoft: number | undefined;
  openFileLimitHard: string | undefined;
  ipLocalPortRange: string | undefined;
  portsPerAddress: number | undefined;
  somaxconn: string | undefined;
  tcpMaxSynBacklog: string | undefined;
  memTotalMiB: number;
  memAvailableMiB: number;
  cpus: number;
  cpuModel: string;
  loadAverage: number[];
  node: string;
}

function machine(): Machine {
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(readText('/proc/self/limits') ?? '');
  const range = ephemeralPortRange();
  const available = /^MemAvailable:\s+(\d+) kB/m.exec(readText('/proc/meminfo') ?? '');
  return {
    openFileLimitSoft: OPEN_FILE_LIMIT,
    openFileLimitHard: hard?.[1],
    ipLocalPortRange: readText('/proc/sys/net/ipv4/ip_local_port_range')?.replace(/\s+/, ' '),
    portsPerAddress: range === undefined ? undefined : range.high - range.low + 1,
    somaxconn: readText('/proc/sys/net/core/somaxconn'),
    tcpMaxSynBacklog: readText('/proc/sys/net/ipv4/tcp_max_syn_backlog'),
    memTotalMiB: Math.round(totalmem() / 2 ** 20),
    memAvailableMiB: available === null ? Math.round(freemem() / 2 ** 20) : Math.round(Number(available[1]) / 1024),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    node: process.version,
  };
}

// ------------------------------------------------------------------------------------------------ the server

interface ScaleServer {
  port: number;
  control: number;
  /** Every process that holds connections (the workers; the one process with --workers 0). */
  pids: number[];
  /** The process started (the cluster's primary). */
  child: ChildProcess;
  stats(): Promise<WorkerFigures[]>;
  stop(): Promise<void>;
}

async function startServer(workers: number, broker: string, redisUrl: string | undefined): Promise<ScaleServer> {
  // The workers of a cluster share one port: chosen here (a free one), 0 for one process.
  const port = workers === 0 ? 0 : await freePort();
  const args = ['--expose-gc', join(PERF_DIR, 'servers', 'scale-quay.js'), '--port', String(port), '--workers', String(workers), '--broker', broker];
  if (redisUrl !== undefined) args.push('--redis-url', redisUrl);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise<{ port: number; control: number; pids: number[] }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the server did not start within 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`the server exited with ${code} before it was ready`)));
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /^ready (.*)$/m.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      resolve(JSON.parse(m[1]!) as { port: number; control: number; pids: number[] });
    });
  });
  return {
    ...ready,
    child,
    async stats() {
      const s = JSON.parse(await httpGet(ready.control, '/stats', 60_000)) as ScaleStats;
      return s.workers;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) for processes to be gone; returns those still there. */
async function gone(pids: number[]): Promise<number[]> {
  for (let i = 0; i < 100 && pids.some(alive); i++) await sleep(100);
  return pids.filter(alive);
}

// ------------------------------------------------------------------------------------------------ one run

interface IdleFigures {
  seconds: number;
  /** Per server process: connections, CPU ms per second while idle, sweeps, mean and longest sweep. */
  workers: {
    pid: number;
    connections: number;
    cpuMsPerSec: number;
    sweeps: number;
    sweepMeanUs: number;
    sweepMaxUs: number;
    /** CPU time of a sweep (wall time counts the moments the process was not running). */
    sweepCpuMeanUs: number;
    sweepCpuNsPerConnection: number;
  }[];
}

interface RunResult {
  broker: string;
  workers: number;
  processes: number;
  connections: number;
  opened: number;
  openMs: number;
  closeMs: number;
  errors: Record<string, number>;
  errorSamples: Record<string, string> | undefined;
  rssBaselineBytes: number;
  rssOpenBytes: number;
  rssBytesPerConnection: number;
  heapBytesPerConnection: number;
  /** RSS per connection as quay-load read it (no GC, 1 s after the last handshake). */
  rssNoGcBytesPerConnection: number | undefined;
  perWorker: { pid: number; members: number; refusedAtLimit: number }[];
  idle: IdleFigures | undefined;
  broadcasts: LoadReport['broadcasts'];
  broadcastLatencyMs: LoadReport['broadcastLatencyMs'];
  broadcastsComplete: number;
  loadAverage: number[];
  handshakeMs: LoadReport['latencyMs'];
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

async function runOnce(broker: string, workers: number, processes: number, sourceAddresses: string[]): Promise<RunResult> {
  const redis = broker === 'redis' ? await RedisServerProcess.start() : undefined;
  if (redis !== undefined) note(`redis-server pid ${redis.pid} on ${redis.url}`);
  const server = await startServer(workers, broker, redis?.url);
  const pids = [server.child.pid!, ...server.pids.filter((p) => p !== server.child.pid)];
  note(`server (${broker}) port ${server.port}, processes ${server.pids.join(' ')}${workers > 0 ? ` (primary ${server.child.pid})` : ''}`);
  const url = `ws://127.0.0.1:${server.port}/room`;
  try {
    // Warm-up: JIT, lazily loaded modules, one broadcast through the broker.
    await runLoad(defaultOptions('idle', url, { connections: WARMUP_CONNECTIONS, durationSec: 0.1, quiet: true }), {
      idle: {
        async held(live) {
          await httpGet(server.port, '/publish?seq=0');
          for (let i = 0; i < 100 && live.received < live.opened; i++) await sleep(50);
        },
      },
    });
    await sleep(1000);
    const base = await server.stats();
    const rssBaseline = sum(base.map((w) => w.rss));
    const heapBaseline = sum(base.map((w) => w.heapUsed));
    note(`baseline: RSS ${mib(rssBaseline)} MiB over ${base.length} process(es); opening ${N} connections`);

    let rssOpen = 0;
    let heapOpen = 0;
    let perWorker: RunResult['perWorker'] = [];
    let idle: IdleFigures | undefined;
    let complete = 0;
    const options: LoadOptions = defaultOptions('idle', url, {
      connections: N,
      processes,
      sourceAddresses,
      openConcurrency: OPEN_CONCURRENCY,
      timeoutSec: 60,
      durationSec: 0.1,
      quiet: true,
      pid: server.pids,
    });
    note(
      `quay-load idle --url ${url} -c ${N} --processes ${processes} --source-addresses ${SOURCE} --open-concurrency ${OPEN_CONCURRENCY} ` +
        `--timeout 60 --pid ${server.pids.join(',')} (through its library entry, runLoad, whose idle hook holds the connections while this measures)`,
    );
    const m = new Measurement();
    const progress = setInterval(() => note(`  ${m.liveCount} open, errors ${m.errorCount}`), 5000);
    const { report } = await runLoad(options, {
      measurement: m,
      idle: {
        async held(live) {
          clearInterval(progress);
          note(`${live.opened} open (${live.failed} failed); settling ${SETTLE_MS} ms`);
          await sleep(SETTLE_MS);
          const open = await server.stats();
          rssOpen = sum(open.map((w) => w.rss));
          heapOpen = sum(open.map((w) => w.heapUsed));
          perWorker = open.map((w) => ({ pid: w.pid, members: w.members, refusedAtLimit: w.refusedAtLimit }));
          note(`RSS ${mib(rssOpen)} MiB: ${Math.round((rssOpen - rssBaseline) / Math.max(1, live.opened))} B per connection; idle ${IDLE_SECONDS} s`);

          await sleep(IDLE_SECONDS * 1000);
          const after = await server.stats();
          idle = { seconds: IDLE_SECONDS, workers: [] };
          for (const w of after) {
            const before = open.find((o) => o.pid === w.pid);
            if (before === undefined) continue;
            const sweeps = w.sweeps - before.sweeps;
            const sweepUs = w.sweepTotalUs - before.sweepTotalUs;
            const meanUs = sweeps > 0 ? sweepUs / sweeps : 0;
            const cpuMeanUs = sweeps > 0 ? (w.sweepCpuUs - before.sweepCpuUs) / sweeps : 0;
            idle.workers.push({
              pid: w.pid,
              connections: w.watching,
              cpuMsPerSec: round((w.cpuUs - before.cpuAfterGcUs) / 1000 / IDLE_SECONDS, 3),
              sweeps,
              sweepMeanUs: round(meanUs, 1),
              sweepMaxUs: w.sweepMaxUs,
              sweepCpuMeanUs: round(cpuMeanUs, 1),
              sweepCpuNsPerConnection: w.watching > 0 ? round((cpuMeanUs * 1000) / w.watching, 2) : 0,
            });
          }

          for (let seq = 1; seq <= BROADCASTS; seq++) {
            const expected = live.received + live.opened;
            await httpGet(server.port, `/publish?seq=${seq}`);
            const deadline = Date.now() + BROADCAST_TIMEOUT_MS;
            while (live.received < expected && Date.now() < deadline) await sleep(50);
            if (live.received >= expected) complete++;
            note(`broadcast ${seq}: ${live.received >= expected ? 'delivered to all' : `${expected - live.received} missing after ${BROADCAST_TIMEOUT_MS} ms`}`);
            await sleep(500);
          }
          note('closing');
        },
      },
    });
    clearInterval(progress);
    const opened = report.opened ?? 0;
    return {
      broker,
      workers,
      processes,
      connections: N,
      opened,
      openMs: report.openMs ?? 0,
      closeMs: report.closeMs ?? 0,
      errors: Object.fromEntries(Object.entries(report.errors).filter(([, n]) => n > 0)),
      errorSamples: report.errorSamples as Record<string, string> | undefined,
      rssBaselineBytes: rssBaseline,
      rssOpenBytes: rssOpen,
      rssBytesPerConnection: opened > 0 ? Math.round((rssOpen - rssBaseline) / opened) : 0,
      heapBytesPerConnection: opened > 0 ? Math.round((heapOpen - heapBaseline) / opened) : 0,
      rssNoGcBytesPerConnection: report.targetRssBytesPerConnection,
      perWorker,
      idle,
      broadcasts: (report.broadcasts ?? []).filter((b) => b.seq > 0),
      broadcastLatencyMs: report.broadcastLatencyMs,
      broadcastsComplete: complete,
      loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
      handshakeMs: report.latencyMs,
    };
  } finally {
    await server.stop();
    await redis?.stop();
    const left = await gone(pids);
    if (left.length > 0) note(`STILL RUNNING: ${left.join(' ')}`);
    else note(`server processes ${pids.join(' ')} gone${redis === undefined ? '' : ', redis-server stopped'}`);
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}

function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

// ------------------------------------------------------------------------------------------------ main

const host = machine();
const serverMax = (OPEN_FILE_LIMIT ?? 20_000) - DEFAULT_FILE_DESCRIPTOR_RESERVE;
// node:cluster hands a connection to a worker that is free (has acknowledged its last one), so a busy worker gets
// fewer: 40,000 over 3 came out 16,292 / 12,092 / 11,616. Workers are sized at 65% of their limit for that.
const WORKERS = values.workers === undefined ? Math.max(2, Math.ceil(N / (serverMax * 0.65))) : positive('--workers', values.workers);
const PROCESSES = values.processes === undefined ? Math.max(1, Math.ceil(N / (MAX_CONNECTIONS * 0.9))) : positive('--processes', values.processes);
const ports = host.portsPerAddress ?? 28_232;
// Each address is kept at 5% of its ephemeral range: the kernel looks for a free port of the address at every
// connect (node binds the source address with port 0), scanning past the ports in use, and that scan grows with
// them (measured here: 14,000 connections opened at 286/s from one address, 2,063/s from 15).
const addressCount = Math.min(250, Math.max(1, Math.ceil(N / (ports * 0.05))));
const SOURCE = (values['source-addresses'] ?? `127.0.0.1-127.0.0.${addressCount}`).trim();
const parsedSource = parseOptions(['idle', '--url', 'ws://127.0.0.1:1/', '--source-addresses', SOURCE]);
const sourceAddresses = parsedSource === 'help' ? [] : parsedSource.sourceAddresses;
const BROKERS = (values.brokers ?? (WORKERS === 0 ? 'local' : 'ipc,redis')).split(',').filter((b) => b !== '');

const started = new Date().toISOString();
const lines: string[] = [];
const out = (line: string): void => {
  lines.push(line);
  if (!values.json) console.log(line);
};
out(`bench:scale ${started}, node ${host.node}, ${host.cpus} x ${host.cpuModel}`);
out(
  `machine: ulimit -n ${host.openFileLimitSoft ?? '?'} (hard ${host.openFileLimitHard ?? '?'}), ip_local_port_range ${host.ipLocalPortRange ?? '?'} ` +
    `(${int(ports)} ports per source address), somaxconn ${host.somaxconn ?? '?'}, tcp_max_syn_backlog ${host.tcpMaxSynBacklog ?? '?'}, ` +
    `memory ${int(host.memTotalMiB)} MiB (${int(host.memAvailableMiB)} available), load average ${host.loadAverage.join(' ')}`,
);
out(
  `run: ${int(N)} connections; server: ${WORKERS === 0 ? '1 process (no cluster)' : `${WORKERS} workers`} (at most ${int(serverMax)} connections each); ` +
    `quay-load idle --processes ${PROCESSES} (at most ${int(MAX_CONNECTIONS)} each) --source-addresses ${SOURCE} (${sourceAddresses.length} addresses); brokers ${BROKERS.join(', ')}`,
);
const perServer = Math.ceil(N / Math.max(1, WORKERS));
if (perServer > serverMax) {
  console.error(`[scale] ${int(N)} connections over ${Math.max(1, WORKERS)} server process(es) is ${int(perServer)} each, over the ${int(serverMax)} one may hold: use --workers ${Math.ceil(N / serverMax)} or more`);
  process.exit(2);
}

const results: RunResult[] = [];
for (const broker of BROKERS) {
  results.push(await runOnce(broker, WORKERS, PROCESSES, sourceAddresses));
  await sleep(2000);
}

for (const r of results) {
  out('');
  out(`broker ${r.broker}: ${int(r.opened)} of ${int(r.connections)} opened in ${int(r.openMs)} ms (${int((r.opened * 1000) / Math.max(1, r.openMs))}/s), closed in ${int(r.closeMs)} ms; errors ${JSON.stringify(r.errors)}`);
  if (r.errorSamples !== undefined) out(`  error samples: ${JSON.stringify(r.errorSamples)}`);
  out(`  handshake ms p50 ${r.handshakeMs.p50} p99 ${r.handshakeMs.p99} max ${r.handshakeMs.max}`);
  out(
    `  memory: RSS ${mib(r.rssBaselineBytes)} -> ${mib(r.rssOpenBytes)} MiB summed over ${r.perWorker.length} process(es): ${int(r.rssBytesPerConnection)} B per connection after a full GC ` +
      `(${r.rssNoGcBytesPerConnection === undefined ? '?' : int(r.rssNoGcBytesPerConnection)} B without, 1 s after the last handshake); heap ${int(r.heapBytesPerConnection)} B per connection`,
  );
  out(`  connections per process: ${r.perWorker.map((w) => `${w.pid}: ${int(w.members)}`).join(', ')}; refused at the limit ${sum(r.perWorker.map((w) => w.refusedAtLimit))}`);
  if (r.idle !== undefined) {
    out(`  idle ${r.idle.seconds} s, per process: CPU while idle; the sweeps: wall time mean / longest, CPU time mean, CPU per connection:`);
    for (const w of r.idle.workers) {
      out(
        `    ${w.pid}: ${int(w.connections)} conn, ${w.cpuMsPerSec} ms/s CPU; ${w.sweeps} sweeps, ${w.sweepMeanUs} / ${w.sweepMaxUs} µs wall, ` +
          `${w.sweepCpuMeanUs} µs CPU, ${w.sweepCpuNsPerConnection} ns per connection`,
      );
    }
  }
  const list = r.broadcasts ?? [];
  out(`  broadcasts: ${r.broadcastsComplete} of ${BROADCASTS} delivered to every connection`);
  for (const b of list) out(`    #${b.seq}: ${int(b.deliveries)} deliveries in ${b.spanMs} ms: ${int(b.rate)}/s`);
  if (r.broadcastLatencyMs !== undefined) {
    const l = r.broadcastLatencyMs;
    out(`  delivery latency over all broadcasts, ms: p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  max ${l.max}`);
  }
  out(`  load average after: ${r.loadAverage.join(' ')}`);
}
if (values.json) console.log(JSON.stringify({ started, machine: host, connections: N, workers: WORKERS, processes: PROCESSES, sourceAddresses: SOURCE, results }, null, 1));
