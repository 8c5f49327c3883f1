/**
 * `npm run bench:fanout-cluster`: fan-out to 1,000 WebSocket sessions spread over 2 server processes through one
 * real redis-server, quay (a lib/pubsub Topic with a RedisBroker on node-redis) against Socket.IO 4 with
 * @socket.io/redis-adapter (node-redis, WebSocket transport only), and quay in 1 process without a broker (the
 * single-process reference for latency).
 *
 *   npm run build && node dist/perf/fanout-cluster.js [--pairs 3] [--subscribers 1000] [--rates 20,100]
 *        [--inflight 100] [--duration 5] [--warmup 1] [--client-processes 1] [--only quay-2proc-redis,...]
 *        [--no-pin] [--server-flags=--cpu-prof] [--json]
 *
 * Each pair runs every setup once, in turn (fresh server processes each time; the order rotates between pairs),
 * and each run takes these steps on the same sessions:
 * - one open-loop step per rate of --rates (messages/s over 2 publishers, one on each instance; every message to
 *   all subscribers): deliveries/s and the latency p50/p99 at that rate;
 * - a closed-loop step with --inflight messages in flight (sent and not yet received by every subscriber): the
 *   highest deliveries/s the setup sustains with bounded queues.
 * The servers are pinned to core 0, the subscriber processes, redis-server and this process (the publishers) to
 * core 1 (--no-pin: not pinned). Prints per-run lines, medians and per-pair ratios, and the goals of the scale-out work:
 * quay-2proc-redis >= 3x socketio-2proc-redis deliveries/s, and its p99 within 2x of quay-1proc's at the same rate.
 * The client ceiling: the subscriber processes' CPU over each window (near 100% of their core = the clients, not
 * the servers, set the rate).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { CLIENT_CORE, FanoutSetup, SETUP_KINDS, pin } from './fanout-cluster-harness.js';
import type { SetupKind, StepResult } from './fanout-cluster-harness.js';
import { median } from './lib.js';
import { RedisServerProcess } from './services/RedisServerProcess.js';

const { values } = parseArgs({
  options: {
    pairs: { type: 'string', default: '3' },
    subscribers: { type: 'string', default: '1000' },
    rates: { type: 'string', default: '20,100' },
    inflight: { type: 'string', default: '100' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'client-processes': { type: 'string', default: '1' },
    only: { type: 'string' },
    'no-pin': { type: 'boolean', default: false },
    'server-flags': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*|^ \* ?/gm, ''));
  process.exit(0);
}

const pairs = Number(values.pairs);
const subscribers = Number(values.subscribers);
const rates = values.rates.split(',').filter((r) => r !== '').map(Number);
const inflight = Number(values.inflight);
const durationMs = Number(values.duration) * 1000;
const warmupMs = Number(values.warmup) * 1000;
const clientProcesses = Number(values['client-processes']);
const kinds = (values.only === undefined ? SETUP_KINDS : values.only.split(',')) as SetupKind[];
for (const k of kinds) if (!SETUP_KINDS.includes(k)) throw new Error(`unknown setup ${k}: ${SETUP_KINDS.join(', ')}`);
const pinned = !values['no-pin'];
/** e.g. `--server-flags=--cpu-prof` (space-separated): the servers write their profiles into the working directory. */
const serverNodeFlags = values['server-flags'] === undefined ? [] : values['server-flags'].split(' ').filter((f) => f !== '');

/** Step labels: `rate N` (open loop) and `max` (closed loop). */
const STEPS = [...rates.map((r) => `rate ${r}`), 'max'];

interface Run {
  pair: number;
  kind: SetupKind;
  steps: Record<string, StepResult>;
}

const runs: Run[] = [];
/** Progress lines: stdout, or stderr with --json (stdout is then the JSON alone). */
const log = (line: string): void => {
  if (values.json) console.error(line);
  else console.log(line);
};
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const startedAt = new Date();
const loadBefore = loadavg();
if (pinned) pin(process.pid, CLIENT_CORE);
const redis = await RedisServerProcess.start();
if (pinned && redis.pid !== undefined) pin(redis.pid, CLIENT_CORE);
// Interrupted: stop redis-server by its PID (the servers exit with our stdin pipe, the subscriber processes with
// their IPC channel).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void redis.stop().finally(() => process.exit(130));
  });
}
log(`fan-out to ${subscribers} sessions; redis-server ${redis.url} (pid ${redis.pid}); load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);

try {
  for (let pair = 0; pair < pairs; pair++) {
    // Rotate the order so that no setup always runs first (or last) on a shared machine.
    const order = kinds.map((_, i) => kinds[(i + pair) % kinds.length]!);
    for (const kind of order) {
      const setup = await FanoutSetup.start({ kind, subscribers, clientProcesses, redisUrl: redis.url, pin: pinned, serverNodeFlags });
      setup.redisPid = kind === 'quay-1proc' ? undefined : redis.pid;
      const run: Run = { pair, kind, steps: {} };
      try {
        for (const label of STEPS) {
          const rate = label === 'max' ? undefined : Number(label.slice(5));
          const result = await setup.runStep({
            ...(rate === undefined ? { inflight } : { rate }),
            warmupMs,
            durationMs,
            drainTimeoutMs: 30_000,
          });
          run.steps[label] = result;
          log(
            `pair ${pair + 1} ${kind.padEnd(20)} ${label.padEnd(9)} ${fmt(result.deliveriesPerSec).padStart(9)} deliveries/s ` +
              `(${fmt(result.publishedPerSec)} msgs/s) p50 ${fmt(result.p50Ms, 2)} ms p99 ${fmt(result.p99Ms, 2)} ms max ${fmt(result.maxMs, 1)} ms; ` +
              `CPU % servers ${fmt(result.serverCpuPct)} clients ${fmt(result.clientCpuPct)} redis ${fmt(result.redisCpuPct)} publishers ${fmt(result.publisherCpuPct)}, cores busy ${result.coreBusyPct.map((c) => fmt(c)).join('/')}; ` +
              `server µs/delivery ${fmt(result.serverCpuUsPerDelivery, 2)}, client ${fmt(result.clientCpuUsPerDelivery, 2)}` +
              (result.drained && result.gaps + result.repeats + result.foreign === 0
                ? ''
                : `; NOT EXACT: missing ${result.missing}, gaps ${result.gaps}, repeats ${result.repeats}, foreign ${result.foreign}`) +
              (result.errors.length === 0 ? '' : `; errors: ${result.errors.slice(0, 3).join('; ')}`),
          );
        }
      } finally {
        await setup.stop();
      }
      runs.push(run);
    }
  }
} finally {
  await redis.stop();
}

const loadAfter = loadavg();
const med = (kind: SetupKind, label: string, pick: (r: StepResult) => number): number => {
  const xs = runs.filter((r) => r.kind === kind && r.steps[label] !== undefined).map((r) => pick(r.steps[label]!));
  return xs.length === 0 ? NaN : median(xs);
};
const ratios = (a: SetupKind, b: SetupKind, label: string, pick: (r: StepResult) => number): number[] => {
  const out: number[] = [];
  for (let p = 0; p < pairs; p++) {
    const x = runs.find((r) => r.pair === p && r.kind === a)?.steps[label];
    const y = runs.find((r) => r.pair === p && r.kind === b)?.steps[label];
    if (x !== undefined && y !== undefined) out.push(pick(x) / pick(y));
  }
  return out;
};

const summary = {
  date: startedAt.toISOString(),
  node: process.version,
  subscribers,
  pairs,
  durationMs,
  warmupMs,
  inflight,
  rates,
  clientProcesses,
  pinned,
  loadBefore,
  loadAfter,
  medians: Object.fromEntries(
    kinds.map((k) => [
      k,
      Object.fromEntries(
        STEPS.map((s) => [
          s,
          {
            deliveriesPerSec: med(k, s, (r) => r.deliveriesPerSec),
            p50Ms: med(k, s, (r) => r.p50Ms),
            p99Ms: med(k, s, (r) => r.p99Ms),
            serverCpuUsPerDelivery: med(k, s, (r) => r.serverCpuUsPerDelivery),
            serverCpuPct: med(k, s, (r) => r.serverCpuPct),
            clientCpuPct: med(k, s, (r) => r.clientCpuPct),
            clientCpuUsPerDelivery: med(k, s, (r) => r.clientCpuUsPerDelivery),
            redisCpuPct: med(k, s, (r) => r.redisCpuPct),
          },
        ]),
      ),
    ]),
  ),
  maxRatio: ratios('quay-2proc-redis', 'socketio-2proc-redis', 'max', (r) => r.deliveriesPerSec),
  cpuRatio: ratios('socketio-2proc-redis', 'quay-2proc-redis', 'max', (r) => r.serverCpuUsPerDelivery),
  p99Ratios: Object.fromEntries(rates.map((rate) => [rate, ratios('quay-2proc-redis', 'quay-1proc', `rate ${rate}`, (r) => r.p99Ms)])),
  exact: runs.every((r) => Object.values(r.steps).every((s) => s.drained && s.gaps + s.repeats + s.foreign === 0)),
  runs,
};

if (values.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  console.log(`\nmedians over ${pairs} pairs; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
  console.log('| setup | step | deliveries/s | p50 ms | p99 ms | server CPU µs/delivery | server CPU % | client CPU % | client µs/delivery | redis CPU % |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const k of kinds) {
    for (const s of STEPS) {
      const m = summary.medians[k]![s]!;
      console.log(
        `| ${k} | ${s} | ${fmt(m.deliveriesPerSec)} | ${fmt(m.p50Ms, 2)} | ${fmt(m.p99Ms, 2)} | ${fmt(m.serverCpuUsPerDelivery, 2)} | ${fmt(m.serverCpuPct)} | ${fmt(m.clientCpuPct)} | ${fmt(m.clientCpuUsPerDelivery, 2)} | ${fmt(m.redisCpuPct)} |`,
      );
    }
  }
  const list = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(', ');
  console.log(`\nmax deliveries/s quay-2proc-redis / socketio-2proc-redis per pair: ${list(summary.maxRatio)} (goal >= 3)`);
  console.log(`server CPU per delivery socketio / quay (max step) per pair: ${list(summary.cpuRatio)}`);
  for (const rate of rates) console.log(`p99 quay-2proc-redis / quay-1proc at ${rate} msgs/s per pair: ${list(summary.p99Ratios[rate]!)} (goal <= 2)`);
  for (const k of kinds) {
    const m = summary.medians[k]!['max']!;
    console.log(
      `client ceiling ${k}: ${fmt(1e6 / m.clientCpuUsPerDelivery)} deliveries/s per client core (1e6 / client CPU µs per delivery of the max step), ` +
        `measured ${fmt(m.deliveriesPerSec)} (${((m.deliveriesPerSec * m.clientCpuUsPerDelivery) / 1e4).toFixed(0)}% of it)`,
    );
  }
  console.log(`every message delivered exactly once, in order, to every subscriber: ${summary.exact ? 'yes' : 'NO'}`);
}
