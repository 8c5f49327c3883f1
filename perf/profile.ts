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
const SERVER = join(PERF_DIR, 'servers', 'echo-quay.js');
const DEST = join(ROOT, '.clinic');
const WRK = '/usr/bin/wrk';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '1000' },
    server: { type: 'string', default: 'quay' },
    tls: { type: 'boolean', default: false },
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
      return ws('/echo', ['echo', '-c', '100', '--inflight', '10', '--size', '64']);
    case 'echo-64k':
      return ws('/echo', ['echo', '-c', '10', '--inflight', '1', '--size', '65536', '--binary']);
    case 'fanout':
      return ws('/broadcast', ['fanout', '--receivers', '1000', '--inflight', '10', '--size', '64']);
    case 'http':
      if (existsSync(WRK)) return [WRK, ['-t1', '-c100', `-d${durationSec}s`, `http${S}://127.0.0.1:${port}/hello`]];
      return [process.execPath, [CLI, 'http', '--url', `http${S}://127.0.0.1:${port}/hello`, '-c', '100', ...TLS_LOAD_ARGS, '--duration', String(durationSec), '--quiet']];
    default:
      console.error(`unknown workload ${workload}: echo, echo-64k, fanout or http`);
      process.exit(2);
  }
}

/** The profiled server: the tool's command line, pinned to the server core. */
function startProfiled(): ChildProcess {
  mkdirSync(DEST, { recursive: true });
  const node =
    tool === 'cpu-prof'
      ? [process.execPath, '--cpu-prof', '--cpu-prof-dir', join(DEST, 'cpu-prof'), SERVER, ...TLS_SERVER_ARGS]
      : [process.execPath, CLINIC, tool!, '--open=false', '--dest', DEST, '--', process.execPath, SERVER, ...TLS_SERVER_ARGS];
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

/**
 * Self time by function (and by area: quay's lib/, Node's internals, native code and GC, idle) from a
 * .cpuprofile: the text view of what a flame graph shows, for a terminal.
 */
function summarizeCpuProfile(file: string, top = 20): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: CpuProfileNode[] };
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
  const pct = (n: number): string => `${((100 * n) / total).toFixed(1).padStart(5)}%`;
  const lines = ['self time by area:'];
  for (const [area, n] of [...byArea].sort((a, b) => b[1] - a[1])) lines.push(`  ${pct(n)}  ${area}`);
  lines.push(`top ${top} functions by self time (${fmt(total)} samples):`);
  for (const [key, n] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(n)}  ${key}`);
  return lines.join('\n');
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

const started = Date.now();
const child = startProfiled();
const output = { text: '' };
const port = await waitForPort(child, output);
const [command, args] = loadFor(port);
console.error(`profiling echo-quay with ${tool}, workload ${workload}: ${HAVE_TASKSET ? 'taskset -c 1 ' : ''}${command === process.execPath ? 'node' : command} ${args.join(' ')}`);
const loadOut = await runLoad(command, args);
console.error(loadOut.trim());

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
    process.exit(1);
  }
  console.log(summarizeCpuProfile(file));
  console.log(`\nreport: ${relative(process.cwd(), file)} (open in Chrome DevTools > Performance, or https://www.speedscope.app)`);
} else {
  const m = /Generated HTML file is (\S+)/.exec(output.text);
  if (m === null) {
    console.error(`clinic ${tool} wrote no report (exit code ${code}). Its output:\n${output.text}`);
    console.error('Fallback: npm run profile -- cpu-prof ' + workload);
    process.exit(1);
  }
  const path = m[1]!.replace(/^file:\/\//, '');
  console.log(`report: ${relative(process.cwd(), path)}`);
}
