/**
 * quay-load's workloads against a quay server in this process, asserting that the counts are consistent (sent =
 * received, every receiver got every delivery, every connection opened and closed, every request answered),
 * never timings; and that connection errors are counted by kind, not thrown. Plus the HTTP response scanner.
 */
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Server, Router, WebSocketUpgradeHandler, acceptKey, broadcast } from '../lib/index.js';
import type { WebSocketSession } from '../lib/index.js';
import { HttpResponseScanner, HttpScanError } from '../perf/load/HttpResponseScanner.js';
import { OptionsError, defaultOptions, parseOptions } from '../perf/load/options.js';
import type { LoadOptions, WorkloadName } from '../perf/load/options.js';
import { parseReport } from '../perf/load/report.js';
import { runLoad } from '../perf/load/run.js';
import { readSequence } from '../perf/load/workloads/fanout.js';
import { mulberry32 } from './support/mulberry32.js';

const members = new Set<WebSocketSession>();
const hello = Buffer.from('hello world\n');
const router = new Router()
  .route(
    '/echo',
    new WebSocketUpgradeHandler({
      accept: () => ({
        onText(s: WebSocketSession, text: string) {
          s.send(text);
        },
        onBinary(s: WebSocketSession, data: Buffer) {
          s.send(Buffer.from(data));
        },
      }),
    }),
  )
  .route(
    '/echo-deflate',
    new WebSocketUpgradeHandler({
      perMessageDeflate: { threshold: 0 },
      accept: () => ({
        onText(s: WebSocketSession, text: string) {
          s.send(text);
        },
      }),
    }),
  )
  .route(
    '/broadcast',
    new WebSocketUpgradeHandler({
      accept: () => ({
        onOpen(s: WebSocketSession) {
          members.add(s);
        },
        onText(_s: WebSocketSession, text: string) {
          broadcast(members, text);
        },
        onBinary(_s: WebSocketSession, data: Buffer) {
          broadcast(members, Buffer.from(data));
        },
        onClose(s: WebSocketSession) {
          members.delete(s);
        },
      }),
    }),
  )
  .route('/hello', (_request, response) => {
    response.setHeader('Content-Type', 'text/plain');
    void response.end(hello);
  })
  .route('/chunked', async (_request, response) => {
    // No Content-Length: the response is chunked (RFC 9112 §7.1).
    await response.write(Buffer.from('hello '));
    await response.end(Buffer.from('chunks\n'));
  });
const server = new Server({ port: 0, host: '127.0.0.1', idleTimeoutMs: 30_000 }, router);
const { port } = await server.start();
t.teardown(() => server.stop(1000));

const ws = (path: string): string => `ws://127.0.0.1:${port}${path}`;
const http = (path: string): string => `http://127.0.0.1:${port}${path}`;

/** Short runs: the test asserts counts, so a fraction of a second of traffic is enough. */
function opts(workload: WorkloadName, url: string, overrides: Partial<LoadOptions> = {}): LoadOptions {
  return defaultOptions(workload, url, { durationSec: 0.3, warmupSec: 0.1, rateIntervalMs: 100, timeoutSec: 5, ...overrides });
}

const NO_ERRORS = { dns: 0, refused: 0, tls: 0, handshake: 0, closed: 0, protocol: 0, timeout: 0, http: 0 };

t.test('echo: every message sent is echoed, text and binary, small and large', async (t) => {
  for (const [size, binary, inflight] of [
    [64, false, 4],
    [70_000, true, 2],
  ] as const) {
    const { report } = await runLoad(opts('echo', ws('/echo'), { connections: 8, inflight, size, binary }));
    t.same(report.errors, NO_ERRORS, `no errors (${size} B)`);
    t.ok(report.count > 0, 'messages were echoed in the measured window');
    t.ok(report.sent! > 0);
    t.equal(report.sent, report.received, 'sent = received');
    t.equal(report.bytes, report.count * size, 'bytes are the echoed payloads');
    t.equal(report.connections, 8);
    t.ok(report.timeline.length > 0, 'a rate timeline');
    t.ok(report.latencyMs.p50 > 0 && report.latencyMs.p50 <= report.latencyMs.max);
    t.same(parseReport(JSON.stringify(report)), report, 'the report follows the schema');
  }
});

t.test('echo --deflate: compressed both ways, every echo inflated and counted; a server without it is a handshake error', async (t) => {
  const size = 16_384;
  const before = server.stats().bytesIn;
  const { report } = await runLoad(opts('echo', ws('/echo-deflate'), { connections: 4, inflight: 2, size, deflate: true }));
  t.same(report.errors, NO_ERRORS, 'no errors');
  t.ok(report.count > 0);
  t.equal(report.sent, report.received, 'sent = received');
  t.equal(report.bytes, report.count * size, 'bytes are the inflated payloads');
  const received = server.stats().bytesIn - before;
  t.ok(received < (report.sent! * size) / 10, `the server read ${received} bytes for ${report.sent} messages of ${size} B: compressed`);

  const refused = await runLoad(opts('echo', ws('/echo'), { connections: 3, deflate: true }));
  t.equal(refused.report.errors.handshake, 3, 'every connection failed its handshake');
  t.equal(refused.report.count, 0);
  t.throws(() => parseOptions(['fanout', '--url', ws('/broadcast'), '--deflate']), OptionsError, '--deflate is for echo');
});

t.test('--rate: echo and http send no faster than the rate, and every send is still answered', async (t) => {
  const rate = 500;
  for (const [workload, url, extra] of [
    ['echo', ws('/echo'), { inflight: 4 }],
    ['http', http('/hello'), { pipelining: 4 }],
  ] as const) {
    const start = performance.now();
    const { report } = await runLoad(opts(workload, url, { connections: 5, rate, ...extra }));
    const elapsedSec = (performance.now() - start) / 1000;
    t.same(report.errors, NO_ERRORS, `${workload}: no errors`);
    t.ok(report.count > 0, `${workload}: something was sent`);
    t.equal(report.sent, report.received, `${workload}: every send answered`);
    // Tokens accrue at the rate from the first send, plus at most 10 ms worth kept for a late timer: however slow
    // or fast this machine, no more can go out than that (an upper bound, not a timing).
    t.ok(report.sent! <= rate * elapsedSec + 5, `${workload}: ${report.sent} sent in ${elapsedSec.toFixed(2)} s at most ${rate}/s`);
  }
  t.throws(() => parseOptions(['fanout', '--url', ws('/broadcast'), '--rate', '100']), OptionsError, '--rate is for echo and http');
  t.throws(() => parseOptions(['echo', '--url', ws('/echo'), '-R', '0']), OptionsError, 'a rate of 0');
  t.equal((parseOptions(['http', '--url', http('/hello'), '-R', '2000']) as LoadOptions).rate, 2000);
});

t.test('fanout: every receiver gets every delivery', async (t) => {
  const { report } = await runLoad(opts('fanout', ws('/broadcast'), { receivers: 20, inflight: 4, size: 32 }));
  t.same(report.errors, NO_ERRORS);
  t.ok(report.count > 0, 'deliveries in the measured window');
  t.equal(report.delivered, report.sent, 'every broadcast was delivered to every receiver');
  t.equal(report.receiverMin, report.sent, 'the receiver that got the fewest got them all');
  t.equal(report.receiverMax, report.sent);
  t.equal(report.connections, 21, 'the receivers and the sender');
  t.equal(members.size, 0, 'every session closed');
});

t.test('idle: N connections opened, then all closed', async (t) => {
  const { report } = await runLoad(
    opts('idle', ws('/echo'), { connections: 300, durationSec: 0.1, pid: [process.pid], sourceAddresses: ['127.0.0.1', '127.0.0.2'] }),
  );
  t.same(report.errors, NO_ERRORS);
  t.equal(report.opened, 300);
  t.equal(report.count, 300);
  t.equal(report.closed, 300);
  t.ok(report.openMs! > 0 && report.closeMs! > 0);
  t.type(report.targetRssBytesPerConnection, 'number', 'RSS per connection from /proc (the server is this process)');
  t.equal(report.targetHeapBytesPerConnection, undefined, 'no heap figure unless the target exposes one');
});

t.test('http: every request is answered 200, with and without pipelining', async (t) => {
  for (const [path, pipelining] of [
    ['/hello', 1],
    ['/hello', 8],
    ['/chunked', 4],
  ] as const) {
    const { report } = await runLoad(opts('http', http(path), { connections: 6, pipelining }));
    t.same(report.errors, NO_ERRORS, `${path} -p ${pipelining}: no errors`);
    t.ok(report.count > 0);
    t.equal(report.sent, report.received, 'every request answered');
    t.same(Object.keys(report.statuses!), ['200'], 'all 200');
    t.equal(report.statuses!['200'], report.received);
    t.ok(report.bytes > 0, 'response bytes counted');
  }
});

t.test('http: other statuses count as http errors', async (t) => {
  const { report } = await runLoad(opts('http', http('/nowhere'), { connections: 2, durationSec: 0.2, warmupSec: 0 }));
  t.ok(report.statuses!['404']! > 0);
  t.equal(report.errors.http, report.received, 'each 404 is an http error');
  t.equal(report.sent, report.received);
});

t.test('errors are counted by kind, the run completes', async (t) => {
  // A port with nothing listening: refused.
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const refused = await runLoad(opts('echo', `ws://127.0.0.1:${closedPort}/`, { connections: 5, durationSec: 0.1, warmupSec: 0 }));
  t.equal(refused.report.errors.refused, 5);
  t.equal(refused.report.count, 0);

  // An HTTP route answers the upgrade with 200: a failed handshake.
  const handshake = await runLoad(opts('echo', ws('/hello'), { connections: 3, durationSec: 0.1, warmupSec: 0 }));
  t.equal(handshake.report.errors.handshake, 3);
  t.match(handshake.report.errorSamples!.handshake, /not 101/);

  // A server that closes each connection after the handshake: early closes.
  const rude = createNetServer((socket) => {
    socket.once('data', (head: Buffer) => {
      const key = /sec-websocket-key: *(\S+)/i.exec(head.toString('latin1'))![1]!;
      socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
    });
  });
  await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve));
  const closed = await runLoad(
    opts('echo', `ws://127.0.0.1:${(rude.address() as AddressInfo).port}/`, { connections: 4, durationSec: 0.2, warmupSec: 0 }),
  );
  t.equal(closed.report.errors.closed, 4);
  rude.close();

  // A server that answers with garbage frames: protocol errors.
  const garbage = createNetServer((socket) => {
    socket.once('data', (head: Buffer) => {
      const key = /sec-websocket-key: *(\S+)/i.exec(head.toString('latin1'))![1]!;
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
      socket.on('data', () => socket.write(Buffer.from([0x83, 0x00]))); // reserved opcode 3
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
  const protocol = await runLoad(
    opts('echo', `ws://127.0.0.1:${(garbage.address() as AddressInfo).port}/`, { connections: 2, durationSec: 0.2, warmupSec: 0 }),
  );
  t.equal(protocol.report.errors.protocol, 2);
  garbage.close();
});

t.test('an abort ends the run early with what was measured', async (t) => {
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 300);
  const { report } = await runLoad(opts('echo', ws('/echo'), { connections: 2, durationSec: 30, warmupSec: 0 }), { signal: abort.signal });
  t.equal(report.interrupted, true);
  t.ok(report.durationSec < 10, 'stopped long before the 30 s');
  t.ok(report.count > 0);
});

t.test('selftest: the raw echo on a worker thread and on the main thread', async (t) => {
  for (const serverThread of ['worker', 'main'] as const) {
    const { report } = await runLoad(
      defaultOptions('selftest', '', { durationSec: 0.3, warmupSec: 0.1, connections: 10, inflight: 4, serverThread }),
    );
    t.equal(report.workload, 'selftest');
    t.equal(report.serverThread, serverThread);
    t.same(report.errors, NO_ERRORS);
    t.ok(report.count > 0);
    t.equal(report.sent, report.received);
  }
});

t.test('http: a connection the server closes after a response is reopened', async (t) => {
  // One response per connection, announced (Connection: close) or delimited by the close (RFC 9112 §6.3 rule 8).
  for (const [name, response] of [
    ['Connection: close', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'],
    ['body until close', 'HTTP/1.1 200 OK\r\n\r\nbody until close'],
  ] as const) {
    const closer = createNetServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.once('data', () => socket.end(response));
    });
    await new Promise<void>((resolve) => closer.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closer.address() as AddressInfo).port}/`;
    const { report } = await runLoad(opts('http', url, { connections: 3, pipelining: 1, durationSec: 0.2, warmupSec: 0 }));
    t.same(report.errors, NO_ERRORS, `${name}: not an error`);
    t.ok(report.received! > 3, `${name}: more responses than connections: they were reopened`);
    t.equal(report.sent, report.received, `${name}: every request answered`);
    closer.close();
  }
});

t.test('fanout payloads carry their sequence number', async (t) => {
  t.equal(readSequence(Buffer.from('000000001234xyz')), 1234);
  t.equal(readSequence(Buffer.from('00000000123')), -1, 'too short');
  t.equal(readSequence(Buffer.from('0000000012a4')), -1, 'not digits');
});

// ------------------------------------------------------------------------------------------------ scanner

t.test('HttpResponseScanner frames responses, however the bytes are split', async (t) => {
  const stream =
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' +
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n' +
    'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, CHUNKED\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n' +
    'HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n' +
    'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n' +
    'HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok';
  const expected = [
    [200, true],
    [204, true],
    [200, true],
    [404, true],
    [304, true],
    [200, false],
  ];
  const bytes = Buffer.from(stream, 'latin1');
  const random = mulberry32(4);
  for (let trial = 0; trial < 200; trial++) {
    const got: [number, boolean][] = [];
    const scanner = new HttpResponseScanner({ onResponse: (status, keepAlive) => void got.push([status, keepAlive]) });
    let at = 0;
    while (at < bytes.length) {
      const n = trial === 0 ? 1 : 1 + Math.floor(random() * 40);
      scanner.scan(bytes, at, Math.min(bytes.length, at + n));
      at += n;
    }
    if (JSON.stringify(got) !== JSON.stringify(expected)) {
      t.same(got, expected, `trial ${trial}`);
      return;
    }
    t.equal(scanner.busy, false);
  }
  t.pass('200 random splits');
});

t.test('HttpResponseScanner: a body until close, HTTP/1.0, malformed responses', async (t) => {
  const got: [number, boolean][] = [];
  const scanner = new HttpResponseScanner({ onResponse: (status, keepAlive) => void got.push([status, keepAlive]) });
  scanner.scan(Buffer.from('HTTP/1.0 200 OK\r\n\r\nbody until close'), 0, 35);
  t.equal(scanner.untilClose, true);
  t.same(got, []);
  scanner.end();
  t.same(got, [[200, false]]);
  for (const bad of [
    'HTTP/2 200 OK\r\n\r\n',
    'HTTP/1.1 2x0 OK\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nno colon\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    'HTTP/1.1 101 Switching Protocols\r\n\r\n',
  ]) {
    const s = new HttpResponseScanner({ onResponse: () => {} });
    t.throws(() => s.scan(Buffer.from(bad, 'latin1'), 0, bad.length), HttpScanError, JSON.stringify(bad));
  }
});

t.test('no connection can be opened: the run skips its warm-up and duration, and the CLI exits 1', async (t) => {
  // A port nothing listens on: a server started and stopped.
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  for (const [workload, url] of [
    ['echo', `ws://127.0.0.1:${closedPort}/echo`],
    ['fanout', `ws://127.0.0.1:${closedPort}/broadcast`],
    ['http', `http://127.0.0.1:${closedPort}/hello`],
  ] as const) {
    const { report } = await runLoad(opts(workload, url, { connections: 4, receivers: 3, durationSec: 30, warmupSec: 30 }));
    t.equal(report.count, 0, `${workload}: nothing completed`);
    t.ok(report.errors.refused > 0, `${workload}: refused counted`);
    t.equal(report.timeline.length, 0, `${workload}: no measured window (the 30 s were not waited for)`);
  }
  const { spawnSync } = await import('node:child_process');
  const cli = spawnSync(process.execPath, ['dist/perf/load/cli.js', 'echo', '--url', `ws://127.0.0.1:${closedPort}/echo`, '-c', '2', '--duration', '30', '--warmup', '30', '--quiet', '--json'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  t.equal(cli.status, 1, 'exit status 1');
  t.match(cli.stderr, /nothing completed \(connect to 127\.0\.0\.1:\d+: ECONNREFUSED\)/);
  t.equal((JSON.parse(cli.stdout) as { errors: { refused: number } }).errors.refused, 2, 'the report is still printed');
});
