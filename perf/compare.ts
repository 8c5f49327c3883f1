/**
 * `npm run bench`: every workload with a goal against quay's peer, side by side in one run.
 *
 *   npm run build && node dist/perf/compare.js [--pairs 3] [--duration 5] [--warmup 1] [--only echo-64,http]
 *                                              [--memory] [--write] [--quick] [--json]
 *
 * Workloads: WebSocket echo of 64-byte text (100 connections x 10 in flight), echo of 64 KiB binary
 * (10 connections), text echo of 1 MiB and 64 KiB through bytes and through strings (4 connections x 2), fan-out
 * of 64-byte messages to 1,000 sessions (quay vs `ws`), and HTTP hello (quay vs
 * node:http, with wrk when /usr/bin/wrk exists: a JS load generator is client-bound on 2 cores). Each pair
 * runs quay then the peer, each in a fresh server process pinned to core 0 while the load runs on core 1
 * (taskset); the raw node:net server (perf/servers/echo-raw, http-hello-raw) is measured once per workload as
 * the ceiling of this machine (in every pair for echo-64k, whose goal is against it). Prints medians, per-pair
 * ratios, the server's CPU per operation (robust when the load generator rather than the server is the limit),
 * and the goals (ratios to the peer or to raw node:net) with what was met.
 *
 * --memory also runs perf/ws-memory (idle and active memory per connection) and adds its goals.
 * --write replaces the section between `<!-- bench:start -->` and `<!-- bench:end -->` of perf/RESULTS.md
 * (appended when missing) with the date, Node version, commands and tables (--results FILE: another file).
 * --quick: 1 pair, 1 s runs (a smoke test). --only: a comma list of echo-64, echo-64k, echo-deflate, fanout,
 * text-1m, text-64k, text-1m-string, text-64k-string, http.
 * --no-wrk: the HTTP workload with quay-load instead of wrk.
 *
 * --tls (`npm run bench:tls`): the same over TLS, with the TLS goals: every server started with
 * `--tls` (the test certificate of examples/certificates.ts, ECDSA P-256; quay's `tls` option, ws 8 and hello on
 * node:https, the raw ceilings on node:tls), quay-load on wss:// with --insecure, wrk and autocannon on
 * https://. Workloads: wss echo 64 B (quay vs ws on node:https), wss echo 64 KiB (quay vs raw node:tls, in every
 * pair), https hello with wrk (quay vs node:https, the raw node:tls responder as the ceiling) and with autocannon;
 * --memory runs perf/ws-memory --tls (idle only: 10,000 silent wss connections, quay vs ws on node:https and a
 * bare node:tls server). --only: wss-echo-64, wss-echo-64k, https-wrk, https-autocannon. --write fills the
 * section between `<!-- bench-tls:start -->` and `<!-- bench-tls:end -->`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { HAVE_TASKSET, PERF_DIR, cpuTicks, fmt, median as medianOf, runLoad, startServer } from './lib.js';
import type { RunningServer } from './lib.js';
import type { LoadReport } from './load/report.js';
import { parseWrk } from './wrk.js';

const { values } = parseArgs({
  options: {
    pairs: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    only: { type: 'string' },
    memory: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'no-wrk': { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
    results: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*|^ \* ?/gm, ''));
  process.exit(0);
}

const quick = values.quick === true;
const pairs = Number(values.pairs ?? (quick ? 1 : 3));
const durationSec = Number(values.duration ?? (quick ? 1 : 5));
const warmupSec = Number(values.warmup ?? (quick ? 0.5 : 1));
const CLI = join(PERF_DIR, 'load', 'cli.js');
const RESULTS = values.results ?? join(PERF_DIR, '..', '..', 'perf', 'RESULTS.md');
const WRK = '/usr/bin/wrk';
const useWrk = values['no-wrk'] !== true && existsSync(WRK);
const TLS = values.tls === true;
const AUTOCANNON = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

/** One measurement of one server. */
interface Sample {
  /** Operations per second in the measured window (msgs/s, deliveries/s, req/s). */
  rate: number;
  /** Server CPU (user + system) per operation over the whole run, in µs. */
  cpuUs: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

interface Workload {
  id: string;
  title: string;
  unit: string;
  peerName: string;
  /** perf/servers/<name>.js of quay, the peer and the ceiling (none: no ceiling measured). */
  quay: string;
  peer: string;
  raw: string | undefined;
  path: string;
  /** The quay-load arguments after `<workload> --url URL`. */
  loadArgs: readonly string[];
  loadWorkload: 'echo' | 'fanout' | 'http';
  /** http: the load generator (default wrk, or quay-load with --no-wrk or without wrk). */
  loader?: 'autocannon';
  /** What an issue asks of this workload; none for a workload measured for information. */
  goal: { against: 'peer' | 'raw'; ratio: number; text: string } | undefined;
}

const WORKLOADS: readonly Workload[] = [
  {
    id: 'echo-64',
    title: 'echo 64 B text, 100 conn x 10 in flight',
    unit: 'msgs/s',
    peerName: 'ws',
    quay: 'echo-quay',
    peer: 'echo-ws',
    raw: 'echo-raw',
    path: '/echo',
    loadWorkload: 'echo',
    loadArgs: ['-c', '100', '--inflight', '10', '--size', '64'],
    goal: { against: 'peer', ratio: 1.5, text: '>= 1.5x ws msgs/s' },
  },
  {
    id: 'echo-64k',
    title: 'echo 64 KiB binary, 10 conn x 1 in flight',
    unit: 'msgs/s',
    peerName: 'ws',
    quay: 'echo-quay',
    peer: 'echo-ws',
    raw: 'echo-raw',
    path: '/echo',
    loadWorkload: 'echo',
    loadArgs: ['-c', '10', '--inflight', '1', '--size', '65536', '--binary'],
    goal: { against: 'raw', ratio: 0.8, text: '>= 80% of raw node:net' },
  },
  {
    // permessage-deflate both sides (no context takeover, which the load client asks for): quay's stateless
    // codec against ws's zlib streams. No raw ceiling (raw does not compress) and no goal in the issues.
    id: 'echo-deflate',
    title: 'echo 16 KiB text, permessage-deflate, 50 conn x 1 in flight',
    unit: 'msgs/s',
    peerName: 'ws',
    quay: 'echo-quay',
    peer: 'echo-ws',
    raw: undefined,
    path: '/echo-deflate',
    loadWorkload: 'echo',
    loadArgs: ['-c', '50', '--inflight', '1', '--size', '16384', '--deflate'],
    goal: undefined,
  },
  {
    id: 'fanout',
    title: 'fan-out 64 B text to 1,000 sessions, 10 in flight',
    unit: 'deliveries/s',
    peerName: 'ws',
    quay: 'echo-quay',
    peer: 'echo-ws',
    raw: 'echo-raw',
    path: '/broadcast',
    loadWorkload: 'fanout',
    loadArgs: ['--receivers', '1000', '--inflight', '10', '--size', '64'],
    goal: { against: 'peer', ratio: 3, text: '>= 3x ws deliveries/s' },
  },
  // Text without strings: quay's /echo relays a text message as its validated bytes (onTextBytes, then
  // send(bytes, { text: true })), as ws's echo relays the Buffer it receives; /echo-string decodes every message
  // to a string and encodes it again, in both servers. The raw ceiling relays frames without a UTF-8 check.
  {
    id: 'text-1m',
    title: 'echo 1 MiB text through bytes, 4 conn x 2 in flight',
    unit: 'msgs/s',
    peerName: 'ws',
    quay: 'echo-quay',
    peer: 'echo-ws',
    raw: 'echo-raw',
    path: '/echo',
    loadWorkload: 'echo',
    loadArgs: ['-c', '4', '--inflight', '2', '--size', String(1024 * 1024)],
    goal: { against: 'peer', ratio: 1.2, text: '>= 1.2x ws msgs/s (ws relays the Buffer)' },
  },
  {
    id: 'text-64k',
    title: 'echo 64 KiB text through bytes, 4 conn x 2 in flight',
    unit: 'msgs/s',
    peerName: 'ws',
    quay: 'echo-quay',
    peer: 'echo-ws',
    raw: 'echo-raw',
    path: '/echo',
    loadWorkload: 'echo',
    loadArgs: ['-c', '4', '--inflight', '2', '--size', '65536'],
    goal: { against: 'peer', ratio: 1.2, text: '>= 1.2x ws msgs/s (ws relays the Buffer)' },
  },
  {
    id: 'text-1m-string',
    title: 'echo 1 MiB text through strings (both decode), 4 conn x 2 in flight',
    unit: 'msgs/s',
    peerName: 'ws',
    quay: 'echo-quay',
    peer: 'echo-ws',
    raw: undefined,
    path: '/echo-string',
    loadWorkload: 'echo',
    loadArgs: ['-c', '4', '--inflight', '2', '--size', String(1024 * 1024)],
    goal: { against: 'peer', ratio: 1, text: '>= ws msgs/s when ws decodes too' },
  },
  {
    id: 'text-64k-string',
    title: 'echo 64 KiB text through strings (both decode), 4 conn x 2 in flight',
    unit: 'msgs/s',
    peerName: 'ws',
    quay: 'echo-quay',
    peer: 'echo-ws',
    raw: undefined,
    path: '/echo-string',
    loadWorkload: 'echo',
    loadArgs: ['-c', '4', '--inflight', '2', '--size', '65536'],
    goal: { against: 'peer', ratio: 1, text: '>= ws msgs/s when ws decodes too' },
  },
  {
    id: 'http',
    title: 'HTTP hello, 100 conn, keep-alive',
    unit: 'req/s',
    peerName: 'node:http',
    quay: 'echo-quay',
    peer: 'http-hello-node',
    raw: 'http-hello-raw',
    path: '/hello',
    loadWorkload: 'http',
    loadArgs: ['-c', '100', '--pipelining', '1'],
    goal: { against: 'peer', ratio: 1.5, text: '>= 1.5x node:http' },
  },
];

/** A workload of {@link WORKLOADS} over TLS (the same servers started with `--tls`), with the TLS goals. */
function overTls(id: string, changes: Partial<Workload> & Pick<Workload, 'id' | 'title' | 'peerName' | 'goal'>): Workload {
  return { ...WORKLOADS.find((w) => w.id === id)!, ...changes };
}

/** The same servers over TLS, their goals against ws on node:https, node:https and node:tls. */
const TLS_WORKLOADS: readonly Workload[] = [
  overTls('echo-64', {
    id: 'wss-echo-64',
    title: 'wss echo 64 B text, 100 conn x 10 in flight',
    peerName: 'ws on node:https',
    goal: { against: 'peer', ratio: 2, text: '>= 2x ws on node:https msgs/s' },
  }),
  overTls('echo-64k', {
    id: 'wss-echo-64k',
    title: 'wss echo 64 KiB binary, 10 conn x 1 in flight',
    peerName: 'ws on node:https',
    goal: { against: 'raw', ratio: 0.9, text: '>= 90% of raw node:tls' },
  }),
  overTls('http', {
    id: 'https-wrk',
    title: 'https hello, 100 conn, keep-alive (wrk)',
    peerName: 'node:https',
    goal: { against: 'peer', ratio: 1.3, text: '>= 1.3x node:https req/s (wrk)' },
  }),
  // autocannon is a JS client: on one core it is the limit, not the servers (the CPU per request still compares them).
  overTls('http', {
    id: 'https-autocannon',
    title: 'https hello, 100 conn, keep-alive (autocannon)',
    peerName: 'node:https',
    loader: 'autocannon',
    loadArgs: ['-c', '100'],
    goal: undefined,
  }),
];

/** The median of the finite values (a failed run is NaN); NaN when there are none. */
function median(xs: readonly number[]): number {
  const finite = xs.filter((x) => Number.isFinite(x));
  return finite.length === 0 ? NaN : medianOf(finite);
}

/** The commands of the run, for RESULTS.md (with a placeholder port). */
const commands = new Set<string>();

function loadCommand(w: Workload, url: string): { command: string; args: string[] } {
  if (w.loader === 'autocannon') {
    return { command: process.execPath, args: [AUTOCANNON, '-j', ...w.loadArgs, '-d', String(Math.max(1, Math.round(durationSec))), url] };
  }
  if (w.loadWorkload === 'http' && useWrk) {
    const c = w.loadArgs[w.loadArgs.indexOf('-c') + 1]!;
    return { command: WRK, args: ['-t1', `-c${c}`, `-d${Math.max(1, Math.round(durationSec))}s`, '--latency', url] };
  }
  const args = [CLI, w.loadWorkload, '--url', url, ...w.loadArgs, '--duration', String(durationSec), '--warmup', String(warmupSec), '--json', '--quiet'];
  if (TLS) args.push('--insecure'); // the servers' test certificate is signed by a CA of their own
  return { command: process.execPath, args };
}

/** The fields of autocannon's `-j` result that are used here (latencies in ms). */
interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

/** One run; a run that fails (a server that crashed, a load generator that exited) is reported and counted, not fatal. */
async function measure(w: Workload, serverName: string): Promise<Sample> {
  try {
    return await measureOnce(w, serverName);
  } catch (error) {
    console.error(`${w.id} against ${serverName} failed: ${error instanceof Error ? error.message : String(error)}`);
    return { rate: NaN, cpuUs: NaN, p50Ms: NaN, p99Ms: NaN, errors: 1 };
  }
}

async function measureOnce(w: Workload, serverName: string): Promise<Sample> {
  const server: RunningServer = await startServer(serverName, TLS ? ['--tls'] : []);
  const url = `${w.loadWorkload === 'http' ? 'http' : 'ws'}${TLS ? 's' : ''}://127.0.0.1:${server.port}${w.path}`;
  const { command, args } = loadCommand(w, url);
  const shown = args.join(' ').replace(CLI, 'dist/perf/load/cli.js').replace(AUTOCANNON, 'node_modules/autocannon/autocannon.js').replace(String(server.port), 'PORT');
  commands.add(`${HAVE_TASKSET ? 'taskset -c 1 ' : ''}${command === process.execPath ? 'node' : command} ${shown}`);
  try {
    const cpu0 = cpuTicks(server.child.pid) * 10_000; // µs
    const out = await runLoad(command, args);
    const cpu = cpuTicks(server.child.pid) * 10_000 - cpu0;
    if (command === WRK) {
      const r = parseWrk(out);
      return { rate: r.rate, cpuUs: r.total > 0 ? cpu / r.total : NaN, p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: r.errors };
    }
    if (w.loader === 'autocannon') {
      const r = JSON.parse(out) as AutocannonResult;
      return { rate: r.requests.average, cpuUs: r.requests.total > 0 ? cpu / r.requests.total : NaN, p50Ms: r.latency.p50, p99Ms: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
    }
    const report = JSON.parse(out) as LoadReport;
    // Whole-run operations (warm-up and drain included), to match the whole-run CPU time.
    const total = w.loadWorkload === 'fanout' ? (report.delivered ?? report.count) : (report.received ?? report.count);
    const errors = Object.values(report.errors).reduce((a, b) => a + b, 0);
    return { rate: report.rate, cpuUs: total > 0 ? cpu / total : NaN, p50Ms: report.latencyMs.p50, p99Ms: report.latencyMs.p99, errors };
  } finally {
    await server.stop();
  }
}

interface Row {
  workload: Workload;
  quay: Sample[];
  peer: Sample[];
  /** Once per workload; in every pair where the goal is against the ceiling (one noisy sample would decide it). */
  raw: Sample[];
}

interface Verdict {
  goal: string;
  measured: string;
  met: boolean;
}

function verdictOf(r: Row): Verdict[] {
  const goal = r.workload.goal;
  if (goal === undefined) return [];
  const q = median(r.quay.map((s) => s.rate));
  const base = median((goal.against === 'peer' ? r.peer : r.raw).map((s) => s.rate));
  const ratio = q / base;
  return [
    {
      goal: `${r.workload.id}: ${goal.text}`,
      measured: goal.against === 'peer' ? `${ratio.toFixed(2)}x` : `${(ratio * 100).toFixed(0)}% of raw`,
      met: ratio >= goal.ratio,
    },
  ];
}

const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
const us = (x: number): string => (Number.isFinite(x) ? (x < 10 ? x.toFixed(2) : x.toFixed(1)) : '-');

function table(rows: readonly Row[]): string {
  const lines = [
    '| workload | unit | quay | peer | quay / peer | per-pair ratios | raw ceiling | quay / raw | server CPU µs/op quay / peer / raw | p99 ms quay / peer / raw | errors |',
    '| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | --- | ---: |',
  ];
  for (const r of rows) {
    const q = median(r.quay.map((s) => s.rate));
    const p = median(r.peer.map((s) => s.rate));
    const ratios = r.quay.map((s, i) => (s.rate / r.peer[i]!.rate).toFixed(2)).join(', ');
    const raw = r.raw.length === 0 ? NaN : median(r.raw.map((s) => s.rate));
    const rawNote = r.raw.length > 1 ? ` (${r.raw.length} runs)` : '';
    const rawCpu = r.raw.length === 0 ? NaN : median(r.raw.map((s) => s.cpuUs));
    const rawP99 = r.raw.length === 0 ? NaN : median(r.raw.map((s) => s.p99Ms));
    const errors = [...r.quay, ...r.peer, ...r.raw].reduce((a, s) => a + s.errors, 0);
    lines.push(
      `| ${r.workload.title} | ${r.workload.unit} | ${fmt(q)} | ${r.workload.peerName} ${fmt(p)} | ${(q / p).toFixed(2)} | ${ratios} | ${Number.isFinite(raw) ? fmt(raw) : '-'}${rawNote} | ` +
        `${Number.isFinite(raw) ? (q / raw).toFixed(2) : '-'} | ${us(median(r.quay.map((s) => s.cpuUs)))} / ${us(median(r.peer.map((s) => s.cpuUs)))} / ${us(rawCpu)} | ` +
        `${ms(median(r.quay.map((s) => s.p99Ms)))} / ${ms(median(r.peer.map((s) => s.p99Ms)))} / ${ms(rawP99)} | ${errors} |`,
    );
  }
  return lines.join('\n');
}

/** ws-memory's JSON (see perf/ws-memory.ts). */
interface MemoryRow {
  server: string;
  idleRssPerConn: number;
  idleHeapPerConn: number;
  activeRssPerConn: number;
  activeHeapPerConn: number;
}

function memoryVerdicts(rows: readonly MemoryRow[]): Verdict[] {
  const quay = rows.find((r) => r.server === 'quay');
  const ws = rows.find((r) => r.server === 'ws');
  if (quay === undefined || ws === undefined) return [];
  const idle = TLS ? 'idle wss' : 'idle';
  const peer = TLS ? 'ws on node:https' : 'ws';
  const verdicts = [
    { goal: `${idle} RSS per connection <= ${peer}`, measured: `${fmt(quay.idleRssPerConn)} vs ${fmt(ws.idleRssPerConn)} B`, met: quay.idleRssPerConn <= ws.idleRssPerConn },
    { goal: `${idle} heap per connection <= ${peer}`, measured: `${fmt(quay.idleHeapPerConn)} vs ${fmt(ws.idleHeapPerConn)} B`, met: quay.idleHeapPerConn <= ws.idleHeapPerConn },
  ];
  if (TLS) return verdicts; // the TLS goal is idle memory only
  return [
    ...verdicts,
    {
      goal: 'active RSS per connection <= 1/2 ws',
      measured: `${fmt(quay.activeRssPerConn)} vs ${fmt(ws.activeRssPerConn)} B (${(quay.activeRssPerConn / ws.activeRssPerConn).toFixed(2)})`,
      met: quay.activeRssPerConn <= ws.activeRssPerConn / 2,
    },
  ];
}

async function runMemory(): Promise<{ rows: MemoryRow[]; table: string; command: string } | undefined> {
  const script = join(PERF_DIR, 'ws-memory.js');
  // TLS: idle only, against the bare node:tls server too.
  const args = TLS ? ['--tls', '--active', '0', ...(quick ? ['--idle', '2000', '--runs', '1'] : [])] : quick ? ['--idle', '2000', '--active', '200', '--seconds', '2'] : [];
  const command = `node dist/perf/ws-memory.js ${args.join(' ')}`.trim();
  const result = spawnSync(process.execPath, [script, ...args, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: TLS ? 600_000 : 180_000 });
  if (result.status !== 0) {
    console.error(`ws-memory failed (${result.status ?? result.signal}); memory goals not measured`);
    return undefined;
  }
  const parsed = JSON.parse(result.stdout) as { rows: MemoryRow[]; table: string };
  return { rows: parsed.rows, table: parsed.table, command };
}

/** The flags of this run that change what is measured (not --write, --results, --json). */
function commandFlags(): string {
  const flags: string[] = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--results') i++;
    else if (a !== '--write' && a !== '--json' && !a.startsWith('--results=')) flags.push(a);
  }
  return flags.length === 0 ? '' : ` ${flags.join(' ')}`;
}

function markdown(rows: readonly Row[], verdicts: readonly Verdict[], memory: Awaited<ReturnType<typeof runMemory>>, elapsedSec: number): string {
  const date = new Date().toISOString().slice(0, 10);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    TLS ? '## TLS: `npm run bench:tls`' : '## WebSocket and HTTP side by side: `npm run bench`',
    '',
    `${date}, Node ${process.version}, ${cpus().length} cores (${cpu}), ${pairs} alternating pairs (quay then peer), ${durationSec} s measured after ` +
      `${warmupSec} s warm-up per run, medians; servers pinned to core 0 and the load to core 1 ${HAVE_TASKSET ? '(taskset)' : '(no taskset here: not pinned)'}; ` +
      (TLS
        ? 'every server over TLS (`--tls`: the test certificate of examples/certificates.ts, ECDSA P-256), the raw node:tls ceiling ' +
          `measured once per workload (in every pair for wss-echo-64k, whose goal is relative to it); ${Math.round(elapsedSec)} s in all. `
        : `the raw node:net ceiling measured once per workload (in every pair for echo-64k, whose goal is relative to it); ${Math.round(elapsedSec)} s in all. `) +
      `Load average (1 min) ${loadBefore.toFixed(2)} before the run, ${loadavg()[0]!.toFixed(2)} after. ` +
      `Command: \`npm run build && node dist/perf/compare.js${commandFlags()}\`, which runs:`,
    '',
    '```',
    ...[...commands].sort(),
    '```',
    '',
    table(rows),
    '',
    'Server CPU µs/op is the server process\'s user + system time over the whole run (warm-up included) divided by the operations of the whole run: ' +
      'it compares the servers even where the load generator, not the server, sets the rate.',
    '',
  ];
  if (memory !== undefined) lines.push(`Memory (\`${memory.command}\`):`, '', memory.table, '');
  lines.push('Goals:', '', '| goal | measured | met |', '| --- | --- | --- |');
  for (const v of verdicts) lines.push(`| ${v.goal} | ${v.measured} | ${v.met ? 'yes' : '**no**'} |`);
  return lines.join('\n');
}

function writeResults(section: string): void {
  const START = TLS ? '<!-- bench-tls:start -->' : '<!-- bench:start -->';
  const END = TLS ? '<!-- bench-tls:end -->' : '<!-- bench:end -->';
  const text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '# quay performance results\n';
  const block = `${START}\n${section}\n${END}`;
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  const next = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + END.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(RESULTS, next);
  console.error(`updated ${RESULTS}`);
}

if (!existsSync(CLI)) {
  console.error(`${CLI} is missing: build first (npm run build)`);
  process.exit(1);
}
const only = values.only === undefined ? undefined : new Set(values.only.split(','));
const selected = (TLS ? TLS_WORKLOADS : WORKLOADS).filter((w) => only === undefined || only.has(w.id));
const started = Date.now();
/** The 1-minute load average before the run: other work on the machine shows in it (and in the per-pair ratios). */
const loadBefore = loadavg()[0]!;
const rows: Row[] = [];
for (const w of selected) {
  const rawServer = w.raw;
  const rawEachPair = w.goal?.against === 'raw' && rawServer !== undefined;
  const row: Row = { workload: w, quay: [], peer: [], raw: [] };
  if (!rawEachPair && rawServer !== undefined) {
    row.raw.push(await measure(w, rawServer));
    console.error(`${w.id}: raw ${fmt(row.raw[0]!.rate)} ${w.unit}`);
  }
  for (let i = 0; i < pairs; i++) {
    row.quay.push(await measure(w, w.quay));
    row.peer.push(await measure(w, w.peer));
    if (rawEachPair) row.raw.push(await measure(w, rawServer));
    const raw = rawEachPair ? `, raw ${fmt(row.raw[i]!.rate)}` : '';
    console.error(`${w.id} pair ${i + 1}: quay ${fmt(row.quay[i]!.rate)}, ${w.peerName} ${fmt(row.peer[i]!.rate)}${raw} ${w.unit}`);
  }
  rows.push(row);
}
const memory = values.memory ? await runMemory() : undefined;
const elapsedSec = (Date.now() - started) / 1000;
const verdicts = [...rows.flatMap(verdictOf), ...(memory === undefined ? [] : memoryVerdicts(memory.rows))];

if (values.json) {
  console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, pairs, durationSec, warmupSec, rows, memory, verdicts }, null, 2));
} else {
  const section = markdown(rows, verdicts, memory, elapsedSec);
  console.log(`\n${section}\n`);
  if (memory === undefined) {
    console.log(
      TLS
        ? 'Memory goal (idle wss <= ws on node:https): run with --memory, or `node dist/perf/ws-memory.js --tls --active 0`.'
        : 'Memory goals (idle <= ws, active <= 1/2 ws): run with --memory, or `node dist/perf/ws-memory.js`.',
    );
  }
  if (values.write) writeResults(section);
}
