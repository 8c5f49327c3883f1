/**
 * quay-load over several processes (--processes K) and source addresses (--source-addresses, ranges): the
 * children's counts merged right, the source addresses seen by the server, stamped broadcasts timed and counted
 * per broadcast over every process, and bad values refused with a message and exit status 2. Counts only, never
 * timings.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { Router, Server, WebSocketUpgradeHandler, broadcast } from '../lib/index.js';
import type { WebSocketSession } from '../lib/index.js';
import { broadcastStamp, readBroadcastStamp } from '../perf/load/broadcastStamp.js';
import { Histogram } from '../perf/load/Histogram.js';
import { MAX_CONNECTIONS, OptionsError, checkCapacity, defaultOptions, parseOptions } from '../perf/load/options.js';
import type { LoadOptions } from '../perf/load/options.js';
import { mergeReports, shares } from '../perf/load/processes.js';
import { parseReport } from '../perf/load/report.js';
import type { LoadReport } from '../perf/load/report.js';
import { runLoad } from '../perf/load/run.js';

const members = new Set<WebSocketSession>();
/** remoteAddress -> sessions opened from it. */
const fromAddress = new Map<string, number>();
const router = new Router().route(
  '/room',
  new WebSocketUpgradeHandler({
    accept: () => ({
      onOpen(s: WebSocketSession) {
        members.add(s);
        fromAddress.set(s.remoteAddress, (fromAddress.get(s.remoteAddress) ?? 0) + 1);
      },
      onClose(s: WebSocketSession) {
        members.delete(s);
      },
    }),
  }),
);
const server = new Server({ port: 0, host: '127.0.0.1', idleTimeoutMs: 30_000 }, router);
const { port } = await server.start();
t.teardown(() => server.stop(1000));
const url = `ws://127.0.0.1:${port}/room`;
const NO_ERRORS = { dns: 0, refused: 0, tls: 0, handshake: 0, closed: 0, protocol: 0, timeout: 0, http: 0 };

function opts(overrides: Partial<LoadOptions>): LoadOptions {
  return defaultOptions('idle', url, { durationSec: 0.1, rateIntervalMs: 100, timeoutSec: 10, ...overrides });
}

/** Runs the CLI (dist/, built by `npm test`'s pretest) without blocking this process's event loop (the server). */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/perf/load/cli.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill(), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

t.test('CLI: idle --processes 2, 40 connections from 127.0.0.1-127.0.0.4: counts merged, every address used', async (t) => {
  fromAddress.clear();
  const r = await cli(['idle', '--url', url, '-c', '40', '--processes', '2', '--source-addresses', '127.0.0.1-127.0.0.4', '-d', '0.2', '--json', '-q']);
  t.equal(r.status, 0, r.stderr);
  const report = parseReport(r.stdout);
  t.same(report.errors, NO_ERRORS);
  t.equal(report.processes, 2);
  t.equal(report.connections, 40);
  t.equal(report.count, 40, 'handshakes counted over both processes');
  t.equal(report.opened, 40);
  t.equal(report.closed, 40);
  t.ok(report.openMs! > 0 && report.closeMs! > 0, 'open and close timed');
  t.same(
    [...fromAddress.entries()].sort(),
    [
      ['127.0.0.1', 10],
      ['127.0.0.2', 10],
      ['127.0.0.3', 10],
      ['127.0.0.4', 10],
    ],
    'the server saw 10 connections from each source address (one round robin over both processes)',
  );
  t.equal(members.size, 0, 'every session closed');
});

t.test('library: idle over 3 processes holds until the hook resolves; stamped broadcasts counted per broadcast', async (t) => {
  fromAddress.clear();
  let heldWith = -1;
  const { report } = await runLoad(opts({ connections: 30, processes: 3, sourceAddresses: ['127.0.0.5', '127.0.0.6'] }), {
    // The built child (npm test builds first): a child of the TypeScript sources would compile them all again.
    childModule: new URL('../dist/perf/load/child.js', import.meta.url),
    idle: {
      async held(live) {
        heldWith = members.size;
        t.equal(live.opened, 30, 'every child opened its share before the hook');
        for (let seq = 0; seq < 3; seq++) {
          broadcast(members, broadcastStamp(seq));
          // Bounded: at most 10 s for 30 deliveries (progress comes five times a second).
          for (let i = 0; i < 200 && live.received < 30 * (seq + 1); i++) await new Promise((r) => setTimeout(r, 50));
        }
        t.equal(live.received, 90, 'the progress of every child counts the messages received');
      },
    },
  });
  t.equal(heldWith, 30, 'the hook ran with all 30 connections open on the server');
  t.same(report.errors, NO_ERRORS);
  t.equal(report.opened, 30);
  t.equal(report.closed, 30);
  t.equal(report.received, 90);
  t.same(
    report.broadcasts!.map((b) => [b.seq, b.deliveries]),
    [
      [0, 30],
      [1, 30],
      [2, 30],
    ],
    'each broadcast delivered to all 30 connections of the 3 processes',
  );
  for (const b of report.broadcasts!) t.ok(b.lastUs >= b.sentUs && b.rate >= 0, `broadcast ${b.seq}: a span and a rate`);
  t.ok(report.broadcastLatencyMs !== undefined, 'the delivery latency over every process');
  t.same([...fromAddress.keys()].sort(), ['127.0.0.5', '127.0.0.6']);
  t.same(parseReport(JSON.stringify(report)), report, 'the report follows the schema');
});

t.test('bad values are refused with a clear message', async (t) => {
  const bad: [string[], RegExp][] = [
    [['idle', '--url', url, '--processes', '0'], /--processes must be between 1 and \d+, not 0/],
    [['idle', '--url', url, '--processes', 'two'], /--processes must be an integer/],
    [['idle', '--url', url, '-c', '3', '--processes', '4'], /--processes 4 is more than the 3 connections/],
    [['fanout', '--url', url, '--processes', '2'], /--processes is for the echo, http and idle workloads, not fanout/],
    [['idle', '--url', url, '--source-addresses', '127.0.0.8-127.0.0.1'], /ends before it starts/],
    [['idle', '--url', url, '--source-addresses', '127.0.0.1-nowhere'], /not a range of IPv4 addresses/],
    [['idle', '--url', url, '--source-addresses', '10.0.0.0-10.0.255.255'], /more than 1024 addresses/],
    [['idle', '--url', url, '--source-addresses', 'localhost'], /not an IP address/],
    [['idle', '--url', url, '-c', String(MAX_CONNECTIONS + 1)], /spread more connections over several processes with --processes/],
    [['idle', '--url', url, '-c', String(2 * MAX_CONNECTIONS + 1), '--processes', '2'], /between 1 and/],
  ];
  for (const [argv, message] of bad) {
    t.throws(() => parseOptions(argv), { name: 'OptionsError', message }, argv.join(' '));
  }
  const mixed = parseOptions(['idle', '--url', url, '--source-addresses', '127.0.0.1-127.0.0.3,::1']) as LoadOptions;
  t.same(mixed.sourceAddresses, ['127.0.0.1', '127.0.0.2', '127.0.0.3', '::1'], 'a range expanded, a single address kept');

  // The ephemeral port range: 10 ports per address here, 25 connections from 2 addresses do not fit.
  const range = { low: 40_000, high: 40_009 };
  const o = opts({ connections: 25, sourceAddresses: ['127.0.0.1', '127.0.0.2'] });
  t.throws(() => checkCapacity(o, range), /25 connections from 2 source addresses \(13 each\).*ip_local_port_range: 40000 40009\) gives each address 10 ports.*3 addresses or more/);
  t.doesNotThrow(() => checkCapacity({ ...o, sourceAddresses: ['127.0.0.1', '127.0.0.2', '127.0.0.3'] }, range));
  t.throws(() => checkCapacity({ ...o, connections: 2 * MAX_CONNECTIONS + 2, processes: 2 }), { message: /over 2 processes.*use --processes 3 or more/ });
  t.throws(() => runLoad({ ...o, connections: 2 * MAX_CONNECTIONS + 2, processes: 2 }), OptionsError, 'runLoad checks too (library callers)');

  const r = await cli(['idle', '--url', url, '--processes=0']);
  t.equal(r.status, 2, 'exit status 2 for a bad option');
  t.match(r.stderr, /quay-load: --processes must be between 1 and \d+, not 0/);
  const ports = await cli(['idle', '--url', url, '--source-addresses', '127.0.0.9-127.0.0.1']);
  t.equal(ports.status, 2);
  t.match(ports.stderr, /quay-load: --source-addresses: the range "127\.0\.0\.9-127\.0\.0\.1" ends before it starts/);
});

t.test('pieces: shares, stamps, merged reports', async (t) => {
  t.same(shares(10, 3), [4, 3, 3]);
  t.same(shares(2, 2), [1, 1]);
  const into = { seq: 0, sentUs: 0 };
  t.ok(readBroadcastStamp(Buffer.from('12:1733456789123456 rest'), into));
  t.same(into, { seq: 12, sentUs: 1733456789123456 });
  t.notOk(readBroadcastStamp(Buffer.from('hello'), into));
  t.equal(into.seq, -1);
  t.notOk(readBroadcastStamp(Buffer.from('12:'), into));
  t.notOk(readBroadcastStamp(Buffer.from(':5'), into));
  t.match(broadcastStamp(3, 1_000_000.7), /^3:1000000$/);

  const a = new Histogram();
  const b = new Histogram();
  for (let i = 1; i <= 99; i++) a.record(1000);
  b.record(500_000);
  const base = (count: number, extras: Partial<LoadReport>): LoadReport =>
    ({
      workload: 'idle',
      url,
      connections: count,
      durationSec: 1,
      count,
      rate: count,
      bytes: 0,
      errors: { ...NO_ERRORS, refused: count === 1 ? 2 : 0 },
      latencyMs: { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 },
      timeline: [],
      latencyDistribution: [],
      ...extras,
    }) as LoadReport;
  const merged = mergeReports(
    [
      base(99, { opened: 99, broadcasts: [{ seq: 0, deliveries: 99, sentUs: 1000, lastUs: 5000, spanMs: 4, rate: 0 }] }),
      base(1, { opened: 1, errorSamples: { refused: 'no' }, broadcasts: [{ seq: 0, deliveries: 1, sentUs: 1000, lastUs: 11_000, spanMs: 10, rate: 0 }] }),
    ],
    a,
    b,
  );
  t.equal(merged.count, 100);
  t.equal(merged.opened, 100);
  t.equal(merged.errors.refused, 2);
  t.same(merged.errorSamples, { refused: 'no' });
  t.equal(merged.latencyMs.max, 1, 'latencies from the merged histogram (µs -> ms)');
  t.same(merged.broadcasts, [{ seq: 0, deliveries: 100, sentUs: 1000, lastUs: 11_000, spanMs: 10, rate: 10_000 }], 'deliveries summed, the last receipt the latest');
  t.equal(merged.broadcastLatencyMs!.max, 500);
});
