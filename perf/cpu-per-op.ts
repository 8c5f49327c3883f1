/**
 * Server CPU per operation against the raw node:net ceiling: `npm run bench:cpu`.
 *
 * For the small echo (64-byte text, 100 connections x 10 in flight, quay-load) and the HTTP hello (100
 * connections; wrk when saturating), each server in alternating pairs (quay, then raw: perf/servers/echo-raw and
 * http-hello-raw), pinned to core 0 with the load on core 1:
 *
 * - saturated: as fast as the load goes;
 * - at a matched rate (`quay-load --rate`): the same messages (requests) a second for both servers, below what
 *   either can take.
 *
 * Per run: the server's CPU time (user + system, /proc/PID/stat, every thread) divided by the operations, and
 * the function-call interrupts the load core received per operation (/proc/interrupts, `CAL`). The second figure
 * is why both modes are there: on this machine (a virtual machine) a write that must wake the load generator
 * sleeping on the other core sends it an inter-processor interrupt, and that costs the sender several µs. A
 * server slower than the generator leaves it waiting, so it pays that on many of its writes; a faster one writes
 * to a generator that is still running and seldom pays it. So at saturation the CPU per operation of the slower
 * server carries a cost that comes from being slower, not from its code; at a matched rate both run the same
 * schedule, and what is left is closer to the cost of the code (perf/RESULTS.md shows both). Last, per workload, a
 * least-squares fit over all runs of CPU per op against wake-ups per op, one cost per wake-up for both servers and
 * a base per server: the CPU per op with no wake-up to pay.
 *
 *   node dist/perf/cpu-per-op.js [--pairs 3] [--duration 5] [--echo-rate 300000] [--http-rate 30000] [--only echo,http]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PERF_DIR, cpuTicks, median, runLoad, startServer } from './lib.js';
import { parseWrk } from './wrk.js';

const { values } = parseArgs({
  options: {
    pairs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    'echo-rate': { type: 'string', default: '300000' },
    'http-rate': { type: 'string', default: '30000' },
    only: { type: 'string' },
  },
});
const pairs = Number(values.pairs);
const duration = Number(values.duration);
const only = values.only?.split(',');
const LOAD_CLI = join(PERF_DIR, 'load', 'cli.js');

/** Function-call interrupts received by each core so far (`CAL` in /proc/interrupts), or [] without it. */
function callInterrupts(): number[] {
  try {
    const line = readFileSync('/proc/interrupts', 'latin1')
      .split('\n')
      .find((l) => /^\s*CAL:/.test(l));
    if (line === undefined) return [];
    return line
      .replace(/^\s*CAL:/, '')
      .trim()
      .split(/\s+/)
      .filter((f) => /^\d+$/.test(f))
      .map(Number);
  } catch {
    return [];
  }
}

interface Run {
  rate: number;
  cpuUsPerOp: number;
  /** Function-call interrupts received by the load core (1) per operation; NaN when unknown. */
  wakeupsPerOp: number;
}

type Workload = 'echo' | 'http';
type Mode = 'saturated' | 'matched';

/** The load command, its arguments and how to read its operation count. */
function loadFor(workload: Workload, mode: Mode, port: number, seconds: number): { command: string; args: string[]; count: (out: string) => number } {
  if (workload === 'http' && mode === 'saturated') {
    return { command: 'wrk', args: ['-t1', '-c100', `-d${seconds}s`, `http://127.0.0.1:${port}/hello`], count: (out) => parseWrk(out).total };
  }
  const args =
    workload === 'echo'
      ? ['echo', '--url', `ws://127.0.0.1:${port}/echo`, '-c', '100', '--inflight', '10', '--size', '64']
      : ['http', '--url', `http://127.0.0.1:${port}/hello`, '-c', '100'];
  if (mode === 'matched') args.push('--rate', workload === 'echo' ? String(values['echo-rate']) : String(values['http-rate']));
  args.push('-d', String(seconds), '--warmup', '0', '--quiet', '--json');
  return { command: process.execPath, args: [LOAD_CLI, ...args], count: (out) => (JSON.parse(out) as { count: number }).count };
}

async function measure(server: string, workload: Workload, mode: Mode): Promise<Run> {
  const s = await startServer(server);
  try {
    // A warm-up run first (the JIT, the connections' buffers), not counted.
    const warm = loadFor(workload, mode, s.port, 2);
    await runLoad(warm.command, warm.args);
    const load = loadFor(workload, mode, s.port, duration);
    const irq0 = callInterrupts();
    const t0 = cpuTicks(s.child.pid);
    const out = await runLoad(load.command, load.args);
    const t1 = cpuTicks(s.child.pid);
    const irq1 = callInterrupts();
    const ops = load.count(out);
    return {
      rate: ops / duration,
      cpuUsPerOp: ((t1 - t0) * 10_000) / ops,
      wakeupsPerOp: irq0.length > 1 && irq1.length > 1 ? (irq1[1]! - irq0[1]!) / ops : NaN,
    };
  } finally {
    await s.stop();
  }
}

const SERVERS: Record<Workload, [string, string]> = { echo: ['echo-quay', 'echo-raw'], http: ['http-hello-quay', 'http-hello-raw'] };

/**
 * Least squares of CPU per op against wake-ups per op over every run of both servers, with one cost per wake-up
 * (the machine's, whoever writes) and a base per server (its CPU per op with no wake-up to pay): the slope is
 * fitted within each server's runs (`y - mean(y) = cost x (x - mean(x))`), then each base is its mean less the
 * cost of its mean wake-ups. Undefined when the wake-ups vary too little to tell their cost.
 */
function fit(groups: readonly (readonly Run[])[]): { bases: number[]; perWakeup: number } | undefined {
  let sxy = 0;
  let sxx = 0;
  const means: [number, number][] = [];
  for (const runs of groups) {
    if (runs.some((r) => !Number.isFinite(r.wakeupsPerOp))) return undefined;
    const mx = runs.reduce((a, r) => a + r.wakeupsPerOp, 0) / runs.length;
    const my = runs.reduce((a, r) => a + r.cpuUsPerOp, 0) / runs.length;
    for (const r of runs) {
      sxy += (r.wakeupsPerOp - mx) * (r.cpuUsPerOp - my);
      sxx += (r.wakeupsPerOp - mx) ** 2;
    }
    means.push([mx, my]);
  }
  if (!(sxx > 1e-4)) return undefined;
  const perWakeup = sxy / sxx;
  return { bases: means.map(([mx, my]) => my - perWakeup * mx), perWakeup };
}

console.log(`server CPU per operation, quay against raw node:net; ${pairs} alternating pairs, ${duration} s each (${new Date().toISOString()})`);
for (const workload of ['echo', 'http'] as const) {
  if (only !== undefined && !only.includes(workload)) continue;
  const all: [Run[], Run[]] = [[], []];
  for (const mode of ['saturated', 'matched'] as const) {
    const ratios: number[] = [];
    const rows: string[] = [];
    for (let p = 0; p < pairs; p++) {
      const quay = await measure(SERVERS[workload][0], workload, mode);
      const raw = await measure(SERVERS[workload][1], workload, mode);
      all[0].push(quay);
      all[1].push(raw);
      ratios.push(quay.cpuUsPerOp / raw.cpuUsPerOp);
      const cell = (r: Run): string => `${Math.round(r.rate / 1000)}k/s ${r.cpuUsPerOp.toFixed(2)} µs/op, ${r.wakeupsPerOp.toFixed(3)} wake-ups/op`;
      rows.push(`    pair ${p + 1}: quay ${cell(quay)} | raw ${cell(raw)} | ${(quay.cpuUsPerOp / raw.cpuUsPerOp).toFixed(2)}x`);
    }
    console.log(`${workload}, ${mode}: quay / raw CPU per op, median ${median(ratios).toFixed(2)}x`);
    for (const row of rows) console.log(row);
  }
  const fitted = fit(all);
  if (fitted !== undefined) {
    const [q, r] = fitted.bases as [number, number];
    console.log(
      `${workload}, fitted over all runs (CPU per op = base + wake-ups per op x ${fitted.perWakeup.toFixed(1)} µs): ` +
        `base quay ${q.toFixed(2)} µs, raw ${r.toFixed(2)} µs: ${(q / r).toFixed(2)}x`,
    );
  } else {
    console.log(`${workload}: the runs' wake-ups were too alike to fit their cost`);
  }
}
