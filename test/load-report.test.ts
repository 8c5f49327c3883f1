/**
 * quay-load's results: the JSON report (schema round-trip and its checks), the human summary, the plot, the
 * progress line, the measurement's phases, and the command line options.
 */
import t from 'tap';
import { Measurement } from '../perf/load/Measurement.js';
import { MAX_CONNECTIONS, OptionsError, defaultOptions, parseOptions } from '../perf/load/options.js';
import { renderHtml, renderPlot, renderSvg, niceCeil, ticks } from '../perf/load/plot.js';
import { Progress } from '../perf/load/Progress.js';
import { DISTRIBUTION_PERCENTILES, ReportFormatError, buildReport, formatSummary, parseReport } from '../perf/load/report.js';
import type { LoadReport } from '../perf/load/report.js';
import { mulberry32 } from './support/mulberry32.js';

/** A measurement filled by hand: `n` units with latencies from the seeded PRNG, measured over ~0 s. */
function measured(n: number, seed = 1): Measurement {
  const m = new Measurement(1000);
  const random = mulberry32(seed);
  m.beginWarmup();
  m.deliver(0, 50, 10); // warm-up: not counted
  m.beginMeasuring();
  for (let i = 0; i < n; i++) m.deliver(100, 100 + 0.2 + random() * 3, 64);
  m.error('closed', 'the server closed the connection: 1001');
  m.error('closed', 'second one');
  m.stop();
  return m;
}

function sampleReport(): LoadReport {
  const options = defaultOptions('echo', 'ws://127.0.0.1:9/echo', { connections: 3, inflight: 2 });
  return buildReport(options, 3, measured(500), { inflight: 2, size: 64, binary: false, sent: 520, received: 519, warmupSec: 2 });
}

t.test('buildReport: the contract fields, warm-up excluded', async (t) => {
  const r = sampleReport();
  t.equal(r.workload, 'echo');
  t.equal(r.url, 'ws://127.0.0.1:9/echo');
  t.equal(r.connections, 3);
  t.equal(r.count, 500, 'the warm-up delivery is not counted');
  t.equal(r.bytes, 500 * 64);
  t.same(r.errors, { dns: 0, refused: 0, tls: 0, handshake: 0, closed: 2, protocol: 0, timeout: 0, http: 0 });
  t.same(r.errorSamples, { closed: 'the server closed the connection: 1001' }, 'the first message of each kind');
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max', 'mean'] as const) t.type(r.latencyMs[k], 'number');
  t.ok(r.latencyMs.p50 >= 0.2 && r.latencyMs.p50 <= 3.2, 'latencies in ms');
  t.ok(r.latencyMs.p50 <= r.latencyMs.p90 && r.latencyMs.p90 <= r.latencyMs.p99 && r.latencyMs.p99 <= r.latencyMs.p999);
  t.ok(r.latencyMs.p999 <= r.latencyMs.max);
  t.equal(r.latencyDistribution.length, DISTRIBUTION_PERCENTILES.length);
  t.equal(r.latencyDistribution.at(-1)![1], r.latencyMs.max);
  t.ok(Array.isArray(r.timeline));
  t.equal(r.sent, 520);
});

t.test('parseReport: JSON round-trip', async (t) => {
  const r = sampleReport();
  r.timeline = [
    [1, 1000.5],
    [2, 990],
  ];
  t.same(parseReport(JSON.stringify(r)), r);
  t.same(parseReport(JSON.parse(JSON.stringify(r))), r, 'an object already parsed');
  const idle: LoadReport = {
    ...r,
    workload: 'idle',
    openMs: 12.5,
    closeMs: 3,
    opened: 3,
    closed: 3,
    targetRssBytes: { before: 1, open: 2, settled: 3 },
    targetRssBytesPerConnection: 5000,
  };
  t.same(parseReport(JSON.stringify(idle)), idle);
  const http: LoadReport = { ...r, workload: 'http', pipelining: 4, statuses: { '200': 10, '404': 1 } };
  t.same(parseReport(JSON.stringify(http)), http);
  const extra = { ...r, futureField: 'kept' };
  t.same(parseReport(JSON.stringify(extra)), extra, 'unknown fields are kept');
  const old = JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
  delete old['latencyDistribution'];
  t.same(parseReport(old).latencyDistribution, [], 'latencyDistribution is optional');
});

t.test('parseReport: names the first field that breaks the schema', async (t) => {
  const good = JSON.parse(JSON.stringify(sampleReport())) as Record<string, unknown>;
  const cases: [string, (r: Record<string, unknown>) => void][] = [
    ['workload', (r) => (r['workload'] = 'bench')],
    ['url', (r) => delete r['url']],
    ['count', (r) => (r['count'] = '12')],
    ['rate', (r) => delete r['rate']],
    ['errors', (r) => (r['errors'] = [])],
    ['errors.timeout', (r) => delete (r['errors'] as Record<string, unknown>)['timeout']],
    ['latencyMs.p999', (r) => ((r['latencyMs'] as Record<string, unknown>)['p999'] = null)],
    ['timeline[1]', (r) => (r['timeline'] = [[0, 1], [1]])],
    ['timeline', (r) => delete r['timeline']],
    ['openMs', (r) => (r['openMs'] = 'soon')],
    ['binary', (r) => (r['binary'] = 1)],
    ['statuses.200', (r) => (r['statuses'] = { '200': 'many' })],
    ['targetRssBytes.settled', (r) => (r['targetRssBytes'] = { before: 1, open: 2 })],
  ];
  for (const [field, breakIt] of cases) {
    const r = JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
    breakIt(r);
    t.throws(() => parseReport(JSON.stringify(r)), { name: 'ReportFormatError', field, code: 'LOAD_BAD_REPORT' }, field);
  }
  t.throws(() => parseReport('{"workload": '), ReportFormatError, 'not JSON');
  t.throws(() => parseReport('[1, 2]'), ReportFormatError, 'not an object');
});

t.test('formatSummary: the human summary', async (t) => {
  const text = formatSummary({ ...sampleReport(), count: 1234567, rate: 123456.7, durationSec: 10 });
  t.match(text, /^quay-load echo ws:\/\/127\.0\.0\.1:9\/echo\n/);
  t.match(text, /3 connections x 2 in flight, 64 B text, 10\.0 s measured after 2\.0 s warm-up/);
  t.match(text, /messages\s+1,234,567\s+123,457\/s/);
  t.match(text, /latency\s+ms p50 [\d.]+ {2}p90 [\d.]+ {2}p99 [\d.]+ {2}p99\.9 [\d.]+ {2}max [\d.]+ {2}mean [\d.]+/);
  t.match(text, /errors\s+closed 2\n\s+closed: the server closed the connection: 1001/);
  const clean = formatSummary({ ...sampleReport(), errors: { dns: 0, refused: 0, tls: 0, handshake: 0, closed: 0, protocol: 0, timeout: 0, http: 0 }, errorSamples: undefined, interrupted: true } as LoadReport);
  t.match(clean, /errors\s+none/);
  t.match(clean, /\(interrupted\)/);
  const idle = formatSummary({ ...sampleReport(), workload: 'idle', opened: 1000, closed: 1000, openMs: 250, closeMs: 80, rate: 4000, targetRssBytesPerConnection: 5120, targetHeapBytesPerConnection: 2543 });
  t.match(idle, /opened\s+1,000 in 250\.0 ms \(4,000\/s\), closed 1,000 in 80\.0 ms/);
  t.match(idle, /RSS 5,120 B per connection, heap 2,543 B/);
  t.match(idle, /handshake\s+ms p50/);
  const fanout = formatSummary({ ...sampleReport(), workload: 'fanout', receivers: 100, connections: 101 });
  t.match(fanout, /1 sender -> 100 receivers, 2 in flight/);
  t.match(fanout, /deliveries/);
  const http = formatSummary({ ...sampleReport(), workload: 'http', pipelining: 10, size: undefined } as LoadReport);
  t.match(http, /3 connections x 10 pipelined/);
  t.match(http, /responses/);
});

t.test('plot: a self-contained SVG, wrapped in HTML on request', async (t) => {
  const r = { ...sampleReport(), url: 'ws://h/<x>&"y"', timeline: [[0.5, 100], [1, 120], [1.5, 90]] as [number, number][] };
  const svg = renderSvg(r);
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
  t.equal((svg.match(/<polyline /g) ?? []).length, 2, 'a latency curve and a rate line');
  t.notMatch(svg, /<x>/, 'text is escaped');
  t.match(svg, /&#60;x&#62;&#38;&#34;y&#34;/);
  t.notMatch(svg, /<script|href=|url\(/, 'no script, no external resource');
  t.notMatch(svg, /NaN|Infinity|undefined/);
  const html = renderHtml(r);
  t.match(html, /^<!doctype html>/);
  t.ok(html.includes(svg), 'the page holds the SVG');
  t.match(html, /<pre>quay-load echo/);
  t.equal(renderPlot(r, 'out.HTML'), html);
  t.equal(renderPlot(r, 'out.svg'), svg);
  const empty = renderSvg({ ...r, latencyDistribution: [], timeline: [] });
  t.match(empty, /no latencies recorded/);
  t.match(empty, /no rate samples/);
  t.notMatch(empty, /NaN|Infinity/);
  t.same([niceCeil(0), niceCeil(0.7), niceCeil(3), niceCeil(1234), niceCeil(2400)], [1, 1, 5, 2000, 2500]);
});

t.test('Progress: a line on a TTY, nothing otherwise', async (t) => {
  const m = new Measurement(1000);
  const writes: string[] = [];
  const quiet = new Progress(m, '[echo]', { isTTY: false, write: (s) => (writes.push(s), true) }, 10);
  t.equal(quiet.active, false);
  quiet.start();
  quiet.stop();
  const tty = new Progress(m, '[echo]', { isTTY: true, columns: 200, write: (s) => (writes.push(s), true) }, 10);
  t.equal(tty.active, true);
  m.beginWarmup();
  m.error('refused', 'x');
  t.match(tty.line(), /^\[echo\] [\d.]+ s warm-up {2}\d+\/s {2}total 0 {2}errors 1$/);
  m.beginMeasuring();
  m.deliver(0, 1, 1);
  t.match(tty.line(), /measuring .* total 1 {2}errors 1/);
  tty.start();
  await new Promise((resolve) => setTimeout(resolve, 50));
  tty.stop();
  m.stop();
  t.ok(writes.length > 0, 'drew on the TTY');
  t.ok(writes.every((w) => w.startsWith('\r')), 'redrawn in place');
  t.equal(writes.at(-1), '\r\x1b[2K', 'erased before the summary');
});

t.test('Measurement: phases, the timeline, errors', async (t) => {
  const m = new Measurement(20);
  t.equal(m.phase, 'IDLE');
  t.equal(m.windowSec, 0);
  m.beginWarmup();
  m.deliver(0, 1, 5);
  t.equal(m.count, 0, 'nothing counted in the warm-up');
  t.equal(m.liveCount, 1, 'but the progress sees it');
  m.beginMeasuring();
  for (let i = 0; i < 10; i++) m.deliver(0, 2, 5);
  m.addBytes(7);
  await new Promise((resolve) => setTimeout(resolve, 70));
  m.stop();
  m.deliver(0, 3, 5);
  t.equal(m.count, 10, 'nothing counted after stop');
  t.equal(m.bytes, 57);
  t.equal(m.phase, 'STOPPED');
  t.ok(m.windowSec > 0);
  t.ok(m.timeline.length >= 1, 'samples every interval');
  t.equal(m.timeline.reduce((s, [, rate]) => s + rate, 0) > 0, true);
  t.equal(m.errorCount, 0);
  m.error('timeout', 'late');
  t.equal(m.errorCount, 1);
});

t.test('options: defaults, checks, exit-2 errors', async (t) => {
  const echo = parseOptions(['echo', '--url', 'ws://127.0.0.1:8080/echo']);
  t.not(echo, 'help');
  if (echo === 'help') return;
  t.match(echo, { workload: 'echo', connections: 50, inflight: 1, size: 64, binary: false, durationSec: 10, warmupSec: 2, json: false });
  const all = parseOptions([
    'fanout', '--url', 'ws://[::1]:9/broadcast', '--receivers', '7', '--inflight', '3', '--size', '100', '--binary', '-d', '1.5',
    '-w', '0', '--rate-interval', '250', '--source-addresses', '127.0.0.1, 127.0.0.2', '--json', '--plot', 'x.svg', '-q',
    '--timeout', '3', '--open-concurrency', '10',
  ]);
  t.match(all, {
    workload: 'fanout', receivers: 7, inflight: 3, size: 100, binary: true, durationSec: 1.5, warmupSec: 0, rateIntervalMs: 250,
    sourceAddresses: ['127.0.0.1', '127.0.0.2'], json: true, plot: 'x.svg', quiet: true, timeoutSec: 3, openConcurrency: 10,
  });
  t.match(parseOptions(['idle', '--url', 'ws://h/', '--pid', '123', '--heap-url', 'http://h/memory']), { connections: 1000, durationSec: 1, warmupSec: 0, pid: [123] });
  t.match(parseOptions(['http', '--url', 'http://h/', '-p', '16', '-c', '2']), { pipelining: 16, connections: 2 });
  t.match(parseOptions(['echo', '--url', 'wss://h/']), { insecure: false, ca: undefined });
  t.match(parseOptions(['http', '--url', 'https://h:8443/', '--insecure']), { insecure: true });
  t.match(parseOptions(['selftest']), { connections: 100, inflight: 10, size: 64, serverThread: 'worker' });
  t.equal(parseOptions(['--help']), 'help');
  t.equal(parseOptions(['echo', '-h']), 'help');

  const bad: [string[], RegExp][] = [
    [[], /no workload/],
    [['bench', '--url', 'ws://h/'], /unknown workload/],
    [['echo'], /needs --url/],
    [['echo', '--url', 'http://h/'], /needs a ws:\/\/ or wss:\/\/ URL/],
    [['http', '--url', 'wss://h/'], /needs a http:\/\/ or https:\/\/ URL/],
    [['echo', '--url', 'ws://h/', '--insecure'], /--insecure and --ca are for wss:\/\/ and https:\/\//],
    [['selftest', '--insecure'], /for wss:\/\/ and https:\/\//],
    [['echo', '--url', 'wss://h/', '--ca', '/nonexistent/ca.pem'], /--ca \/nonexistent\/ca.pem: ENOENT/],
    [['echo', '--url', 'not a url'], /not a URL/],
    [['echo', '--url', 'ws://h/', '-c', String(MAX_CONNECTIONS + 1)], /spread more connections over several processes/],
    [['fanout', '--url', 'ws://h/', '--receivers', String(MAX_CONNECTIONS)], /several processes/],
    [['echo', '--url', 'ws://h/', '-c', '1.5'], /integer/],
    [['echo', '--url', 'ws://h/', '--inflight', '0'], /between/],
    [['fanout', '--url', 'ws://h/', '--size', '4'], /--size must be between 12/],
    [['echo', '--url', 'ws://h/', '-d', '0'], /--duration/],
    [['echo', '--url', 'ws://h/', '-w', '-1'], /--warmup/],
    [['echo', '--url', 'ws://h/', '--source-addresses', '127.0.0.1,localhost'], /not an IP address/],
    [['echo', '--url', 'ws://h/', '--plot', 'x.png'], /\.svg or \.html/],
    [['echo', '--url', 'ws://h/', '--frobnicate'], /frobnicate/],
    [['echo', 'fanout', '--url', 'ws://h/'], /one workload/],
    [['selftest', '--server-thread', 'gpu'], /worker or main/],
    [['idle', '--url', 'ws://h/', '--heap-url', 'ws://h/'], /http:\/\/ or https:\/\//],
  ];
  for (const [argv, message] of bad) t.throws(() => parseOptions(argv), { name: 'OptionsError', code: 'LOAD_BAD_OPTION', message }, argv.join(' '));
  t.ok(new OptionsError('x') instanceof Error);
});

t.test('plot ticks: nice steps, labels without float noise', async (t) => {
  t.same(ticks(3.001).map(([, label]) => label), ['0', '1', '2', '3'], 'a 3.001 s run');
  t.same(ticks(1.5005).map(([, label]) => label), ['0', '0.5', '1', '1.5']);
  t.same(ticks(10).map(([, label]) => label), ['0', '2.5', '5', '7.5', '10']);
  t.same(ticks(40_000).map(([, label]) => label), ['0', '10,000', '20,000', '30,000', '40,000']);
  t.same(ticks(0.3).map(([, label]) => label), ['0', '0.1', '0.2', '0.3']);
  for (const max of [0.7, 1.2, 3.001, 12.5, 99, 1234.5]) {
    for (const [, label] of ticks(max)) t.match(label, /^[\d,]+(\.\d{1,2})?$/, `${max}: ${label}`);
  }
});

t.test('the connection cap is this process\'s open-file limit less a reserve, and the refusal says so', async (t) => {
  const { OPEN_FILE_LIMIT } = await import('../perf/load/options.js');
  if (OPEN_FILE_LIMIT === undefined) {
    t.equal(MAX_CONNECTIONS, 19_000, 'the fallback where the limit cannot be read');
    return;
  }
  t.equal(MAX_CONNECTIONS, OPEN_FILE_LIMIT - 64);
  t.throws(() => parseOptions(['echo', '--url', 'ws://h/', '-c', String(MAX_CONNECTIONS + 1)]), new RegExp(`ulimit -n = ${OPEN_FILE_LIMIT}`));
});
