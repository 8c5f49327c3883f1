/**
 * `npm run profile -- <tool> [workload] [--duration SEC]`: profiles perf/servers/echo-quay under load and
 * prints where the report is. See docs/PROFILING.md for how to read each report.
 *
 *   tool      doctor | flame | bubbleprof (clinic 13), or cpu-prof (node --cpu-prof: no clinic, a .cpuprofile
 *             for Chrome DevTools or speedscope, and a top-functions table printed here), or heap (memory
 *             per idle connection from two heap snapshots: `heap [--connections 1000] [--server quay|ws|net]`)
 *   workload  echo (64 B text, 100 conn x 10 in flight; default) | echo-64k (64 KiB binary, 10 conn) |
 *             fanout (64 B to 1,000 sessions) | http (hello with wrk, or quay-load without wrk)
 *   --tls     the server over TLS (its `--tls`), the load on wss:// and https:// (--insecure)
 *   --server  cpu-prof and heap: which server, quay (default), raw (the node:net ceiling: echo-raw, or
 *             http-hello-raw for http), ws (echo-ws) or node (http-hello-node for http)
 *   --compare cpu-prof: profile quay, then the raw node:net ceiling under the same load, and print server CPU per
 *             operation by area side by side (quay's own code, Node's stream layer, native code and syscalls,
 *             GC): where quay's cost above the ceiling is, and how much of it is Node's rather than quay's
 *
 * How: the server starts under the tool pinned to core 0 (taskset), the load (quay-load, or wrk) runs on core
 * 1, then the tool's process group gets SIGINT, as from Ctrl-C in a terminal (the echo servers exit on
 * SIGINT/SIGTERM, so profiles are written), and clinic analyses and writes the HTML under .clinic/. We do not
 * use clinic's --on-port: with bubbleprof on Node 20 it never returns (bubbleprof's data stream never finishes
 * after its 'beforeExit' signal, clinicjs/node-clinic#477), and one flow for every tool is simpler. NO_INSIGHT=1 is set:
 * without it clinic asks, on a terminal, whether it may send usage statistics, and without a terminal it exits
 * at once, silently, before doing anything.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { diffPerConnection, summarizeHeapSnapshot, totalPerConnection } from './heapdiff.js';
import { HAVE_TASKSET, PERF_DIR, SERVER_CORE, fmt, runLoad } from './lib.js';
import { openMany } from './opener.js';
import { httpGet, startServerProcess } from './serverProcess.js';

const TOOLS = ['doctor', 'flame', 'bubbleprof', 'cpu-prof', 'heap'] as const;
type Tool = (typeof TOOLS)[number];

const ROOT = join(PERF_DIR, '..', '..');
const CLINIC = join(ROOT, 'node_modules', 'clinic', 'bin.js');
const CLI = join(PERF_DIR, 'load', 'cli.js');
const DEST = join(ROOT, '.clinic');
const WRK = '/usr/bin/wrk';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '1000' },
    server: { type: 'string', default: 'quay' },
    tls: { type: 'boolean', default: false },
    compare: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const tool = positionals[0] as Tool | undefined;
const workload = positionals[1] ?? 'echo';
if (values.help || tool === undefined || !TOOLS.includes(tool)) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*|^ \* ?/gm, ''));
  process.exit(values.help ? 0 : 2);
}
const durationSec = Number(values.duration);
const TLS = values.tls === true;
const TLS_SERVER_ARGS = TLS ? ['--tls'] : [];
const TLS_LOAD_ARGS = TLS ? ['--insecure'] : [];
const S = TLS ? 's' : '';

/** The load of a workload, as [command, args] once the port is known. */
function loadFor(port: number): [string, string[]] {
  const ws = (path: string, args: string[]): [string, string[]] => [
    process.execPath,
    [CLI, args[0]!, '--url', `ws${S}://127.0.0.1:${port}${path}`, ...args.slice(1), ...TLS_LOAD_ARGS, '--duration', String(durationSec), '--warmup', '1', '--quiet'],
  ];
  switch (workload) {
    case 'echo':
      return ws('/echo', ['echo', '-c', '100', '--inflight', '10', '--size', '64', '--json']);
    case 'echo-64k':
      return ws('/echo', ['echo', '-c', '10', '--inflight', '1', '--size', '65536', '--binary', '--json']);
    case 'fanout':
      return ws('/broadcast', ['fanout', '--receivers', '1000', '--inflight', '10', '--size', '64', '--json']);
    case 'http':
      if (existsSync(WRK)) return [WRK, ['-t1', '-c100', `-d${durationSec}s`, `http${S}://127.0.0.1:${port}/hello`]];
      return [process.execPath, [CLI, 'http', '--url', `http${S}://127.0.0.1:${port}/hello`, '-c', '100', ...TLS_LOAD_ARGS, '--duration', String(durationSec), '--warmup', '1', '--quiet', '--json']];
    default:
      console.error(`unknown workload ${workload}: echo, echo-64k, fanout or http`);
      process.exit(2);
  }
}

/** perf/servers/<name>.js of `--server` for this workload. */
function serverScript(server: string): string {
  const http = workload === 'http';
  const scripts: Record<string, string | undefined> = {
    quay: 'echo-quay',
    raw: http ? 'http-hello-raw' : 'echo-raw',
    ws: http ? undefined : 'echo-ws',
    node: http ? 'http-hello-node' : undefined,
  };
  const name = scripts[server];
  if (name === undefined) {
    console.error(`--server ${server} has no server for workload ${workload}: quay, raw, ${http ? 'node' : 'ws'}`);
    process.exit(2);
  }
  return join(PERF_DIR, 'servers', `${name}.js`);
}

/** The profiled server: the tool's command line, pinned to the server core. */
function startProfiled(script: string): ChildProcess {
  mkdirSync(DEST, { recursive: true });
  const node =
    tool === 'cpu-prof'
      ? [process.execPath, '--cpu-prof', '--cpu-prof-dir', join(DEST, 'cpu-prof'), script, ...TLS_SERVER_ARGS]
      : [process.execPath, CLINIC, tool!, '--open=false', '--dest', DEST, '--', process.execPath, script, ...TLS_SERVER_ARGS];
  const argv = HAVE_TASKSET ? ['taskset', '-c', SERVER_CORE, ...node] : node;
  // detached: its own process group, so that stopping it is a Ctrl-C (SIGINT to the whole group), which is what
  // the tools expect (0x, under clinic flame, waits for the server to exit on its own SIGINT); cwd .clinic/:
  // the tools' temporary files (V8 logs, node_trace.*.log) land there, not in the repository.
  return spawn(argv[0]!, argv.slice(1), { cwd: DEST, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_INSIGHT: '1' } });
}

/** Resolves with the server's port once it prints `listening PORT`; echoes the rest of its output to stderr. */
function waitForPort(child: ChildProcess, out: { text: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 30 s:\n${out.text}`)), 30_000);
    const onData = (b: Buffer): void => {
      out.text += b.toString();
      const m = /listening (\d+)/.exec(out.text);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (b: Buffer) => {
      out.text += b.toString();
      process.stderr.write(b);
    });
    child.once('exit', (code) => reject(new Error(`the profiler exited with ${code} before the server listened:\n${out.text}`)));
  });
}

function newestCpuProfile(since: number): string | undefined {
  const dir = join(DEST, 'cpu-prof');
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).mtimeMs >= since);
  return files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** Self time of a .cpuprofile: samples by function and by area, and the sampling interval. */
interface CpuProfileSummary {
  byFunction: Map<string, number>;
  byArea: Map<string, number>;
  total: number;
  /** Microseconds per sample (the profile's duration over its samples). */
  sampleUs: number;
}

/**
 * Self time by function (and by area: quay's lib/, Node's internals, native code and GC, idle) from a
 * .cpuprofile: the text view of what a flame graph shows, for a terminal.
 */
function summarizeCpuProfile(file: string, top = 20): string {
  const { byFunction, byArea, total } = readCpuProfile(file);
  const pct = (n: number): string => `${((100 * n) / total).toFixed(1).padStart(5)}%`;
  const lines = ['self time by area:'];
  for (const [area, n] of [...byArea].sort((a, b) => b[1] - a[1])) lines.push(`  ${pct(n)}  ${area}`);
  lines.push(`top ${top} functions by self time (${fmt(total)} samples):`);
  for (const [key, n] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(n)}  ${key}`);
  return lines.join('\n');
}

function readCpuProfile(file: string): CpuProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: CpuProfileNode[]; startTime: number; endTime: number; samples: number[] };
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    total += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? '' : ` ${url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}`;
    const key = `${functionName === '' ? '(anonymous)' : functionName}${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
    const area =
      functionName === '(idle)'
        ? 'idle'
        : functionName === '(garbage collector)'
          ? 'GC'
          : url.includes('/dist/lib/')
            ? 'quay (dist/lib)'
            : url.includes('/dist/perf/')
              ? 'benchmark server (dist/perf)'
              : url.startsWith('node:')
                ? 'Node internals (node:*)'
                : url === ''
                  ? 'native / syscalls (program, writev, read, ...)'
                  : 'other JS';
    byArea.set(area, (byArea.get(area) ?? 0) + hits);
  }
  const sampleUs = profile.samples.length > 0 ? (profile.endTime - profile.startTime) / profile.samples.length : 0;
  return { byFunction, byArea, total, sampleUs };
}

/**
 * heap: a warmed-up server's heap snapshot, then N idle WebSocket connections (perf/opener) and another
 * snapshot; prints the difference per connection by constructor and, for plain Arrays and Objects, by the
 * property holding them. V8 collects garbage before each snapshot: the difference is live memory.
 */
async function runHeap(): Promise<void> {
  const scripts: Record<string, string> = { quay: 'echo-quay', ws: 'echo-ws', net: 'echo-raw' };
  const script = scripts[values.server!];
  if (script === undefined) throw new Error(`--server ${values.server}: quay, ws or net`);
  const n = Number(values.connections);
  const dir = join(DEST, 'heap');
  mkdirSync(dir, { recursive: true });
  const server = await startServerProcess(script, { cwd: dir, args: TLS_SERVER_ARGS });
  try {
    // Warm-up: compile the hot paths and load lazily loaded modules, so that the difference is per connection.
    for (const o of await openMany(server.port, 100, 'active', 64, 5000, TLS)) await o.close();
    const before = (await httpGet(server.port, '/heapsnapshot', 60_000, TLS)).trim();
    const openers = await openMany(server.port, n, 'idle', 64, 5000, TLS);
    const opened = openers.reduce((a, o) => a + o.opened, 0);
    const after = (await httpGet(server.port, '/heapsnapshot', 60_000, TLS)).trim();
    for (const o of openers) await o.close();
    const a = summarizeHeapSnapshot(before);
    const b = summarizeHeapSnapshot(after);
    const line = (r: { key: string; countPerConnection: number; bytesPerConnection: number }): string =>
      `  ${r.bytesPerConnection.toFixed(0).padStart(6)} B  ${r.countPerConnection.toFixed(2).padStart(5)} per conn  ${r.key}`;
    console.log(`${script}: ${opened} idle connections, ${totalPerConnection(a.byConstructor, b.byConstructor, opened).toFixed(0)} B per connection in the heap snapshot (JS objects and the native objects V8 reports, such as TCPSocketWrap)`);
    console.log('by constructor (at least 8 B per connection):');
    for (const r of diffPerConnection(a.byConstructor, b.byConstructor, opened)) console.log(line(r));
    console.log('plain Arrays and Objects, by the property holding them:');
    for (const r of diffPerConnection(a.byRetainer, b.byRetainer, opened)) console.log(line(r));
    console.log(`\nsnapshots: ${relative(process.cwd(), before)} ${relative(process.cwd(), after)} (Chrome DevTools > Memory > Load, then Comparison)`);
  } finally {
    await server.stop();
  }
}

if (tool === 'heap') {
  await runHeap();
  process.exit(0);
}

/** What one profiled run gave: the report (or .cpuprofile) and the operations the load counted. */
interface ProfiledRun {
  /** The .cpuprofile (cpu-prof) or the clinic HTML report. */
  report: string;
  /** Operations of the whole run, warm-up included (wrk's requests, or quay-load's count and warm-up). */
  operations: number;
}

/** Profiles one server under the workload's load; undefined (after saying why) when no report was written. */
async function profileOnce(script: string): Promise<ProfiledRun | undefined> {
  const started = Date.now();
  const child = startProfiled(script);
  const output = { text: '' };
  const port = await waitForPort(child, output);
  const [command, args] = loadFor(port);
  console.error(`profiling ${script.replace(/^.*\//, '')} with ${tool}, workload ${workload}: ${HAVE_TASKSET ? 'taskset -c 1 ' : ''}${command === process.execPath ? 'node' : command} ${args.join(' ')}`);
  const loadOut = await runLoad(command, args);
  const operations = countOperations(loadOut);
  console.error(`${fmt(operations)} operations (warm-up included)`);

  // Stop as Ctrl-C does: SIGINT to the process group (the tool and the server; the server exits on it).
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const group = -child.pid!;
  process.kill(group, 'SIGINT');
  const timeout = setTimeout(() => {
    console.error('the profiler did not finish within 180 s: killed');
    process.kill(group, 'SIGKILL');
  }, 180_000);
  const code = await exited;
  clearTimeout(timeout);

  if (tool === 'cpu-prof') {
    const file = newestCpuProfile(started);
    if (file === undefined) {
      console.error(`no .cpuprofile was written (server exit code ${code})`);
      return undefined;
    }
    return { report: file, operations };
  }
  const m = /Generated HTML file is (\S+)/.exec(output.text);
  if (m === null) {
    console.error(`clinic ${tool} wrote no report (exit code ${code}). Its output:\n${output.text}`);
    console.error('Fallback: npm run profile -- cpu-prof ' + workload);
    return undefined;
  }
  return { report: m[1]!.replace(/^file:\/\//, ''), operations };
}

/** wrk's "N requests in", or quay-load's JSON count plus its warm-up at the measured rate. */
function countOperations(loadOut: string): number {
  const wrk = /(\d+) requests in/.exec(loadOut);
  if (wrk !== null) return Number(wrk[1]);
  try {
    const r = JSON.parse(loadOut) as { count?: number; rate?: number; warmupSec?: number };
    return (r.count ?? 0) + (r.rate ?? 0) * (r.warmupSec ?? 1);
  } catch {
    return NaN;
  }
}

/** Server CPU per operation by area (µs), from a run's profile: the samples that were not idle. */
function perOperation(run: ProfiledRun): { areas: Map<string, number>; total: number } {
  const p = readCpuProfile(run.report);
  const areas = new Map<string, number>();
  let total = 0;
  for (const [area, n] of p.byArea) {
    if (area === 'idle') continue;
    const us = (n * p.sampleUs) / run.operations;
    areas.set(area, us);
    total += us;
  }
  return { areas, total };
}

if (values.compare) {
  if (tool !== 'cpu-prof') {
    console.error('--compare goes with cpu-prof');
    process.exit(2);
  }
  const quay = await profileOnce(serverScript('quay'));
  const raw = await profileOnce(serverScript('raw'));
  if (quay === undefined || raw === undefined) process.exit(1);
  const q = perOperation(quay);
  const r = perOperation(raw);
  const areas = [...new Set([...q.areas.keys(), ...r.areas.keys()])].sort((a, b) => (q.areas.get(b) ?? 0) - (q.areas.get(a) ?? 0));
  const us = (n: number | undefined): string => (n ?? 0).toFixed(2).padStart(7);
  console.log(`server CPU per operation (µs), workload ${workload}: quay against the raw node:net ceiling, self time by area`);
  console.log(`  ${'area'.padEnd(48)} ${'quay'.padStart(7)} ${'raw'.padStart(7)} ${'quay - raw'.padStart(10)}`);
  for (const a of areas) console.log(`  ${a.padEnd(48)} ${us(q.areas.get(a))} ${us(r.areas.get(a))} ${us((q.areas.get(a) ?? 0) - (r.areas.get(a) ?? 0)).padStart(10)}`);
  console.log(`  ${'total'.padEnd(48)} ${us(q.total)} ${us(r.total)} ${us(q.total - r.total).padStart(10)}   quay / raw ${(q.total / r.total).toFixed(2)}`);
  console.log('\nquay:\n' + summarizeCpuProfile(quay.report, 25));
  console.log('\nraw:\n' + summarizeCpuProfile(raw.report, 15));
  console.log(`\nreports: ${relative(process.cwd(), quay.report)} ${relative(process.cwd(), raw.report)}`);
  process.exit(0);
}

const run = await profileOnce(serverScript(values.server!));
if (run === undefined) process.exit(1);
if (tool === 'cpu-prof') {
  console.log(summarizeCpuProfile(run.report));
  const p = perOperation(run);
  console.log(`server CPU per operation: ${p.total.toFixed(2)} µs (${fmt(run.operations)} operations)`);
  console.log(`\nreport: ${relative(process.cwd(), run.report)} (open in Chrome DevTools > Performance, or https://www.speedscope.app)`);
} else {
  console.log(`report: ${relative(process.cwd(), run.report)}`);
}
