/**
 * `npm run bench:hostile`: what hostile peers do to quay, beside what they do to node:http and ws 8, in one run.
 *
 *   npm run build && node dist/perf/hostile/bench.js [--quick] [--only crash-rst,ping-flood] [--servers quay,node]
 *                                                    [--json] [--write] [--results FILE] [size flags]
 *
 * Scenarios (--only ids): crash-rst, crash-header, pipeline-flood, ping-flood, slow-body, deflate-bomb, log-flood,
 * emfile, tls-stall, tls-garbage. Each runs against quay (perf/servers/hostile-quay) and against node:http with ws 8
 * (perf/servers/hostile-node; the tls-* scenarios start both with --tls: quay with `tls`, node:https), each time
 * in a fresh server process pinned to core 0 (taskset) while the attacking
 * clients run in this process, pinned to core 1 (for the client side of ping-flood the roles swap: the attacked
 * client is a child on core 0, the hostile server in this process). A server
 * that crashes is a result ("crashed (exit code N)"), not a failure of the benchmark.
 *
 * Full size is the default (about 15-20 minutes); --quick runs smaller sizes (about 2 minutes). Sizes:
 * --rst-requests 200, --pipeline-requests 1000000, --pipeline-seconds 60, --ping-bytes 1.5G, --ping-seconds 60,
 * --slow-connections 2000, --request-timeout-ms 20000, --header-timeout-ms 10000, --slow-margin-ms 5000,
 * --slowloris-connections 100, --min-request-data-rate N (quay only, when set), --deflate-seconds 20,
 * --deflate-rate 160000 (bytes/s), --bomb-bytes 60M, --log-requests 200000, --log-connections 1000,
 * --log-requests-per-connection 10, --emfile-limit 1024, --emfile-connections 1500, --tls-stall-connections 2000,
 * --tls-tricklers 500, --tls-trickle-ms 5000, --tls-stall-seconds 130, --tls-handshake-timeout-ms 10000 (quay's),
 * --node-handshake-timeout-ms N (node:https's handshakeTimeout, when set; node's default 120 s otherwise),
 * --tls-garbage-seconds 20, --tls-garbage-concurrency 64. The TLS scenarios need the openssl command (the
 * certificate is made for the run by examples/certificates.ts) and take about 5 minutes at full size.
 *
 * --json prints the figures as JSON. --write replaces the section between `<!-- hostile:start -->` and
 * `<!-- hostile:end -->` of perf/RESULTS.md (appended when missing; --results FILE: another file) with the
 * date, Node version, command and tables.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { HAVE_TASKSET, LOAD_CORE, PERF_DIR } from '../lib.js';
import { parseOptions } from './options.js';
import type { HostileOptions } from './options.js';
import { ALL } from './scenarios.js';
import { TLS_SCENARIOS } from './tlsScenarios.js';
import { removeTlsMaterial } from './tls.js';
import type { Scenario } from './scenarios.js';
import { replaceSection, table } from './report.js';
import type { ScenarioReport } from './report.js';
import type { Impl } from './proc.js';

function sectionOf(report: ScenarioReport, impls: readonly Impl[]): string {
  return [`### ${report.id}: ${report.title}`, '', report.setup, '', table(report, impls), ''].join('\n');
}

/** The flags of this run that change what is measured (not --write, --results, --json). */
function commandFlags(argv: readonly string[]): string {
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--results') i++;
    else if (a !== '--write' && a !== '--json' && !a.startsWith('--results=')) flags.push(a);
  }
  return flags.length === 0 ? '' : ` ${flags.join(' ')}`;
}

function markdown(reports: readonly ScenarioReport[], o: HostileOptions, argv: readonly string[], seconds: number): string {
  const date = new Date().toISOString().slice(0, 10);
  const lines = [
    '## Hostile peers: `npm run bench:hostile`',
    '',
    `${date}, Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${o.quick ? 'quick sizes' : 'full sizes'}, ` +
      `each server in a fresh process ${HAVE_TASKSET ? 'pinned to core 0 (taskset)' : '(no taskset here: not pinned)'}, the attackers in the benchmark's process ${HAVE_TASKSET ? 'pinned to core 1' : ''}; ${Math.round(seconds)} s in all. ` +
      `Command: \`npm run build && node dist/perf/hostile/bench.js${commandFlags(argv)}\`.`,
    '',
    ...reports.map((r) => sectionOf(r, o.impls)),
  ];
  return lines.join('\n');
}

function writeResults(file: string, section: string): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '# quay performance results\n';
  writeFileSync(file, replaceSection(text, section));
  console.error(`updated ${file}`);
}

async function runScenario(s: Scenario, o: HostileOptions): Promise<ScenarioReport> {
  const t0 = Date.now();
  const report: ScenarioReport = { id: s.id, title: s.title, setup: s.setup(o), figures: {}, seconds: 0, ...(s.labels === undefined ? {} : { labels: s.labels }) };
  console.error(`${s.id}: ${s.title}`);
  for (const impl of o.impls) {
    try {
      report.figures[impl] = await s.run(impl, o, (line) => console.error(line));
    } catch (error) {
      // A harness-side failure (the server did not start, a client threw) is reported in the table, not fatal.
      report.figures[impl] = { 'harness error': error instanceof Error ? error.message : String(error) };
      console.error(`  ${impl}: harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
  }
  report.seconds = (Date.now() - t0) / 1000;
  console.error(`${s.id}: done in ${report.seconds.toFixed(0)} s`);
  if (!o.json) console.log(`\n${sectionOf(report, o.impls)}`);
  return report;
}

async function main(argv: readonly string[], o: HostileOptions | 'help'): Promise<void> {
  if (o === 'help') {
    console.log(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*|^ \* ?/gm, ''));
    return;
  }
  for (const impl of o.impls) {
    const script = join(PERF_DIR, 'servers', `hostile-${impl}.js`);
    if (!existsSync(script)) throw new Error(`${script} is missing: build first (npm run build)`);
  }
  const started = Date.now();
  const reports: ScenarioReport[] = [];
  for (const s of [...ALL, ...TLS_SCENARIOS]) if (o.only.includes(s.id)) reports.push(await runScenario(s, o));
  removeTlsMaterial();
  const seconds = (Date.now() - started) / 1000;
  if (o.json) {
    console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, options: o, seconds, reports }, null, 2));
  } else {
    console.log(`\n${Math.round(seconds)} s in all.`);
  }
  if (o.write) writeResults(o.results ?? join(PERF_DIR, '..', '..', 'perf', 'RESULTS.md'), markdown(reports, o, argv, seconds));
}

const argv = process.argv.slice(2);
let options: HostileOptions | 'help';
try {
  options = parseOptions(argv);
} catch (error) {
  console.error(`bench:hostile: ${error instanceof Error ? error.message : String(error)} (--help for the options)`);
  process.exit(2);
}

// The attackers run on the load core, as the load generators of perf/compare do: this process re-runs itself
// under taskset once (HOSTILE_PINNED marks the pinned run).
if (options !== 'help' && HAVE_TASKSET && process.env['HOSTILE_PINNED'] === undefined) {
  const r = spawnSync('taskset', ['-c', LOAD_CORE, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, HOSTILE_PINNED: '1' },
  });
  process.exit(r.status ?? 1);
}

// Stray rejections or errors from a dying peer must not end the run: log them and go on.
process.on('unhandledRejection', (e) => console.error('bench:hostile: unhandled rejection (ignored):', e));
process.on('uncaughtException', (e) => console.error('bench:hostile: uncaught exception (ignored):', e));

await main(argv, options);
// Child processes are gone; sockets that a misbehaving server keeps half-open must not hold the process.
process.exit(0);
