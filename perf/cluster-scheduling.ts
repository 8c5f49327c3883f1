/**
 * node:cluster's two ways of spreading connections over the workers, on this machine (measured to choose lib/cluster's default):
 *   round-robin (SCHED_RR, node's default on Linux): the primary accepts every connection and hands it to a worker
 *     over IPC, in turn;
 *   kernel (SCHED_NONE): every worker accepts on the shared listening socket and the kernel picks which.
 * For each, perf/cluster/app.ts on 2 workers (GET /hello) under wrk, two workloads: keep-alive (connections opened
 * once) and `Connection: close` (a new connection per request: the accept path is all that differs), and how the
 * connections spread over the workers (each worker's `accepted`, from the supervisor's aggregated stats()), also
 * with 500 connections opened at once (`spread`).
 * The policies alternate run by run (rr, kernel, kernel, rr, ...) so that a change of the machine's load hits both.
 *
 *   npm run bench:cluster-scheduling -- [--rounds 3] [--duration 10] [--connections 50] [--spread 500] [--json]
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { ClusterScheduling, ClusterStats } from '../lib/index.js';
import { PERF_DIR, fmt, median } from './lib.js';
import { freePort } from './services/RedisServerProcess.js';
import { parseWrk } from './wrk.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    spread: { type: 'string', default: '500' },
    workers: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
  },
});
const WRK = '/usr/bin/wrk';
const rounds = Number(values.rounds);
const duration = Number(values.duration);
const connections = Number(values.connections);
const workers = Number(values.workers);
const APP = join(PERF_DIR, 'cluster', 'app.js');

/**
 * keep-alive: `connections` connections, opened once; close: `Connection: close` (a new connection per request);
 * spread: `--spread` connections at once for 3 s, to see how evenly many long-lived connections land.
 */
type Workload = 'keep-alive' | 'close' | 'spread';
interface Run {
  scheduling: ClusterScheduling;
  workload: Workload;
  rate: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Connections accepted by each worker during the run. */
  accepted: number[];
  load: number;
}

/** A primary of the cluster program with --control: its stats on demand, stopped by PID. */
async function startCluster(scheduling: ClusterScheduling): Promise<{ port: number; stats(): Promise<ClusterStats>; stop(): Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [APP, '--port', String(port), '--workers', String(workers), '--scheduling', scheduling, '--control'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const line = await lines.next();
    clearTimeout(timer);
    if (line.done === true) throw new Error('the cluster exited');
    return String(line.value);
  };
  await next(); // ready
  return {
    port,
    stats: async () => {
      child.stdin!.write('stats\n');
      return JSON.parse(await next()) as ClusterStats;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        process.kill(child.pid!, 'SIGTERM');
      }),
  };
}

function wrk(port: number, workload: Workload): Promise<string> {
  const args = workload === 'spread' ? ['-t1', `-c${values.spread}`, '-d3s', '--latency'] : ['-t1', `-c${connections}`, `-d${duration}s`, '--latency'];
  if (workload === 'close') args.push('-H', 'Connection: close');
  args.push(`http://127.0.0.1:${port}/hello`);
  return new Promise((resolve, reject) => {
    const child = spawn(WRK, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}`))));
  });
}

function acceptedByWorker(stats: ClusterStats): number[] {
  return stats.workers.map((w) => (w.stats as { accepted?: number } | undefined)?.accepted ?? 0);
}

async function measure(scheduling: ClusterScheduling): Promise<Run[]> {
  const cluster = await startCluster(scheduling);
  const runs: Run[] = [];
  try {
    for (const workload of ['keep-alive', 'close', 'spread'] as const) {
      const before = acceptedByWorker(await cluster.stats());
      const load = loadavg()[0]!;
      const result = parseWrk(await wrk(cluster.port, workload), { readErrors: false });
      const after = acceptedByWorker(await cluster.stats());
      runs.push({ scheduling, workload, ...result, accepted: after.map((n, i) => n - (before[i] ?? 0)), load });
    }
  } finally {
    await cluster.stop();
  }
  return runs;
}

/** The busiest worker's share of the connections, in percent (50 = even over 2 workers). */
function busiestShare(accepted: readonly number[]): number {
  const total = accepted.reduce((a, b) => a + b, 0);
  return total === 0 ? NaN : (100 * Math.max(...accepted)) / total;
}

if (!existsSync(WRK)) {
  console.error('wrk is not installed (/usr/bin/wrk): nothing measured');
  process.exit(1);
}
const runs: Run[] = [];
for (let round = 0; round < rounds; round++) {
  const order: ClusterScheduling[] = round % 2 === 0 ? ['round-robin', 'kernel'] : ['kernel', 'round-robin'];
  for (const scheduling of order) {
    const measured = await measure(scheduling);
    runs.push(...measured);
    if (values.json !== true) {
      for (const r of measured) {
        console.log(
          `round ${round + 1} ${r.scheduling.padEnd(11)} ${r.workload.padEnd(10)} ${fmt(r.rate).padStart(7)} req/s p50 ${r.p50Ms.toFixed(2)} ms ` +
            `p99 ${r.p99Ms.toFixed(2)} ms errors ${r.errors} accepted per worker ${r.accepted.join('/')} (load ${r.load.toFixed(1)})`,
        );
      }
    }
  }
}

const summary = (['keep-alive', 'close', 'spread'] as const).map((workload) => {
  const of = (s: ClusterScheduling) => runs.filter((r) => r.scheduling === s && r.workload === workload);
  const rr = of('round-robin');
  const kernel = of('kernel');
  return {
    workload,
    roundRobin: { rate: median(rr.map((r) => r.rate)), p99Ms: median(rr.map((r) => r.p99Ms)), busiestShare: median(rr.map((r) => busiestShare(r.accepted))) },
    kernel: { rate: median(kernel.map((r) => r.rate)), p99Ms: median(kernel.map((r) => r.p99Ms)), busiestShare: median(kernel.map((r) => busiestShare(r.accepted))) },
    kernelOverRoundRobin: median(kernel.map((r) => r.rate)) / median(rr.map((r) => r.rate)),
  };
});
if (values.json === true) {
  console.log(JSON.stringify({ date: new Date().toISOString(), rounds, duration, connections, workers, runs, summary }, null, 2));
} else {
  console.log(`\nmedians over ${rounds} rounds, ${workers} workers, wrk -t1 -c${connections} -d${duration}s, ${new Date().toISOString()}`);
  console.log('workload    policy       req/s     p99 ms  busiest worker share of connections');
  for (const s of summary) {
    console.log(`${s.workload.padEnd(11)} round-robin ${fmt(s.roundRobin.rate).padStart(7)} ${s.roundRobin.p99Ms.toFixed(2).padStart(8)}  ${s.roundRobin.busiestShare.toFixed(0)}%`);
    console.log(`${''.padEnd(11)} kernel      ${fmt(s.kernel.rate).padStart(7)} ${s.kernel.p99Ms.toFixed(2).padStart(8)}  ${s.kernel.busiestShare.toFixed(0)}%`);
    console.log(`${''.padEnd(11)} kernel / round-robin: ${s.kernelOverRoundRobin.toFixed(2)}x`);
  }
}
