/**
 * `npm run bench:hostile`'s command line and its RESULTS.md section (the benchmark itself is not part of npm test:
 * it runs full-size attacks for minutes).
 */
import t from 'tap';
import { HostileOptionsError, SCENARIOS, parseOptions, parseSize } from '../perf/hostile/options.js';
import type { HostileOptions } from '../perf/hostile/options.js';
import { SECTION_END, SECTION_START, replaceSection, table } from '../perf/hostile/report.js';

function parse(argv: string[]): HostileOptions {
  const o = parseOptions(argv);
  if (o === 'help') throw new Error('unexpected help');
  return o;
}

t.test('full size by default, every scenario and both servers', async (t) => {
  const o = parse([]);
  t.same(o.only, [...SCENARIOS]);
  t.same(o.impls, ['quay', 'node']);
  t.equal(o.quick, false);
  t.equal(o.pipelineRequests, 1_000_000);
  t.equal(o.pingBytes, 1536 * 1024 * 1024);
  t.equal(o.slowConnections, 2_000);
  t.equal(o.logRequests, 200_000);
  t.equal(o.emfileConnections, 1_500);
  t.equal(o.minRequestDataRate, undefined);
});

t.test('--quick shrinks the sizes; an explicit flag wins over --quick', async (t) => {
  const q = parse(['--quick']);
  t.ok(q.pipelineRequests < 1_000_000);
  t.ok(q.slowConnections < 2_000);
  t.ok(q.requestTimeoutMs < 20_000);
  const o = parse(['--quick', '--slow-connections', '50', '--ping-bytes', '2M', '--request-timeout-ms=7000']);
  t.equal(o.slowConnections, 50);
  t.equal(o.pingBytes, 2 * 1024 * 1024);
  t.equal(o.requestTimeoutMs, 7_000);
});

t.test('--only, --servers, --min-request-data-rate and the output flags', async (t) => {
  const o = parse(['--only', 'crash-rst,emfile', '--servers', 'quay', '--min-request-data-rate', '1024', '--json', '--write', '--results', '/tmp/x.md']);
  t.same(o.only, ['crash-rst', 'emfile']);
  t.same(o.impls, ['quay']);
  t.equal(o.minRequestDataRate, 1024);
  t.equal(o.json, true);
  t.equal(o.write, true);
  t.equal(o.results, '/tmp/x.md');
  t.equal(parseOptions(['--help']), 'help');
});

t.test('bad command lines throw HostileOptionsError', async (t) => {
  for (const argv of [['--only', 'crash-rst,nope'], ['--servers', 'nginx'], ['--ping-bytes', 'lots'], ['--no-such-flag'], ['--request-timeout-ms', '0']]) {
    t.throws(() => parseOptions(argv), HostileOptionsError, argv.join(' '));
  }
  t.equal(parseSize('1.5G', 'x'), 1.5 * 1024 * 1024 * 1024);
  t.equal(parseSize('200_000', 'x'), 200_000);
});

t.test('the RESULTS.md section is replaced in place, or appended', async (t) => {
  const before = `# results\n\n${SECTION_START}\nold\n${SECTION_END}\n\n## after\n`;
  t.equal(replaceSection(before, 'new'), `# results\n\n${SECTION_START}\nnew\n${SECTION_END}\n\n## after\n`);
  t.equal(replaceSection('# results\n', 'new'), `# results\n\n${SECTION_START}\nnew\n${SECTION_END}\n`);
});

t.test('a table has a row per metric and a column per server; a crashed server is a cell', async (t) => {
  const text = table(
    { id: 'crash-rst', title: '', setup: '', seconds: 1, figures: { quay: { 'server process': 'crashed (exit code 1)', a: 1500 }, node: { 'server process': 'alive' } } },
    ['quay', 'node'],
  );
  t.same(text.split('\n'), [
    '| crash-rst | quay | node:http / ws 8 |',
    '| --- | --- | --- |',
    '| server process | crashed (exit code 1) | alive |',
    '| a | 1,500 | - |',
  ]);
});

t.test('the TLS scenarios: full sizes, --quick, node:https handshakeTimeout only when given', async (t) => {
  const o = parse([]);
  t.ok(o.only.includes('tls-stall') && o.only.includes('tls-garbage'));
  t.equal(o.tlsStallConnections, 2_000);
  t.equal(o.tlsHandshakeTimeoutMs, 10_000);
  t.ok(o.tlsStallSeconds * 1000 > 120_000, 'long enough to see node:https default handshakeTimeout (120 s)');
  t.equal(o.nodeHandshakeTimeoutMs, undefined);
  const q = parse(['--quick', '--only', 'tls-stall', '--node-handshake-timeout-ms', '5000']);
  t.same(q.only, ['tls-stall']);
  t.ok(q.tlsStallConnections < 2_000);
  t.ok(q.tlsTricklers <= q.tlsStallConnections);
  t.equal(q.nodeHandshakeTimeoutMs, 5_000);
  t.throws(() => parseOptions(['--tls-stall-connections', '10', '--tls-tricklers', '11']), HostileOptionsError);
  t.throws(() => parseOptions(['--tls-trickle-ms', '0']), HostileOptionsError);
});

t.test('a scenario can name its columns (the TLS peer is node:https)', async (t) => {
  const text = table({ id: 'tls-stall', title: '', setup: '', seconds: 1, labels: { node: 'node:https / ws 8' }, figures: { quay: { a: 1 }, node: { a: 2 } } }, ['quay', 'node']);
  t.equal(text.split('\n')[0], '| tls-stall | quay | node:https / ws 8 |');
});
