/**
 * quay-load over TLS: every workload against `ws` on node:https and node:https itself (certificates from the
 * test CA of examples/certificates.ts), with --ca and with --insecure, and echo and http against quay's `tls`; and TLS failures counted as `tls` errors
 * with node:tls's code (an untrusted, self-signed or wrong-host certificate, a server that does not speak TLS or
 * closes during the handshake), a stalled handshake as a timeout. Counts and kinds only, never timings.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import { Router, Server, WebSocketUpgradeHandler } from '../lib/index.js';
import type { WebSocketSession } from '../lib/index.js';
import { testCertificates } from '../examples/certificates.js';
import { defaultOptions, parseOptions } from '../perf/load/options.js';
import type { LoadOptions, WorkloadName } from '../perf/load/options.js';
import { parseReport } from '../perf/load/report.js';
import { runLoad } from '../perf/load/run.js';

const certs = testCertificates();
const NO_ERRORS = { dns: 0, refused: 0, tls: 0, handshake: 0, closed: 0, protocol: 0, timeout: 0, http: 0 };

// ws on node:https: /echo, /broadcast, and HTTP hello on every other path.
const hello = Buffer.from('hello world\n');
const https = createHttpsServer({ key: certs.server.key, cert: certs.server.cert }, (req, res) => {
  if (req.url === '/memory') {
    res.end(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed }));
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': hello.length });
  res.end(hello);
});
https.keepAliveTimeout = 30_000;
let secureConnections = 0;
https.on('secureConnection', () => secureConnections++);
const echo = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
const room = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true });
echo.on('connection', (ws: WebSocket) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
room.on('connection', (ws: WebSocket) => {
  ws.on('message', (data, isBinary) => {
    for (const c of room.clients) if (c.readyState === WebSocket.OPEN) c.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});
https.on('upgrade', (req, socket, head) => {
  const target = req.url === '/echo' ? echo : req.url === '/broadcast' ? room : undefined;
  if (target === undefined) return socket.destroy();
  target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
});

async function listen(server: NetServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}
function close(server: NetServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

const port = await listen(https);
t.teardown(async () => {
  https.closeAllConnections();
  await close(https);
});

const dir = mkdtempSync(join(tmpdir(), 'quay-load-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, certs.ca.cert);

/** Options as the CLI makes them (--ca FILE read and checked), with short runs: the test asserts counts. */
function opts(workload: WorkloadName, url: string, extra: string[], overrides: Partial<LoadOptions> = {}): LoadOptions {
  const parsed = parseOptions([workload, '--url', url, ...extra]);
  if (parsed === 'help') throw new Error('unreachable');
  return { ...parsed, durationSec: 0.3, warmupSec: 0.1, rateIntervalMs: 100, timeoutSec: 5, ...overrides };
}

const wss = (path: string, host = '127.0.0.1'): string => `wss://${host}:${port}${path}`;
const TRUST = ['--ca', caFile];

t.test('--ca FILE is read and checked when the options are parsed', async (t) => {
  const parsed = parseOptions(['echo', '--url', wss('/echo'), ...TRUST]);
  t.match(parsed, { insecure: false, ca: certs.ca.cert }, 'the PEM is read');
  const bad = join(dir, 'bad.pem');
  writeFileSync(bad, 'not a certificate\n');
  t.throws(() => parseOptions(['echo', '--url', wss('/echo'), '--ca', bad]), { code: 'LOAD_BAD_OPTION', message: /no PEM certificate/ });
});

t.test('echo over wss: every message echoed, small text and large binary', async (t) => {
  for (const [size, binary, inflight, host] of [
    [64, false, 4, '127.0.0.1'],
    [70_000, true, 2, 'localhost'],
  ] as const) {
    const before = secureConnections;
    const { report } = await runLoad(opts('echo', wss('/echo', host), TRUST, { connections: 6, inflight, size, binary }));
    t.same(report.errors, NO_ERRORS, `no errors (${size} B to ${host})`);
    t.ok(report.count > 0, 'messages were echoed in the measured window');
    t.equal(report.sent, report.received, 'sent = received');
    t.equal(report.bytes, report.count * size, 'bytes are the echoed payloads');
    t.equal(secureConnections - before, 6, 'each connection made a TLS handshake with the server');
    t.same(parseReport(JSON.stringify(report)), report, 'the report follows the schema');
  }
});

t.test('fanout and idle over wss', async (t) => {
  const fan = await runLoad(opts('fanout', wss('/broadcast'), TRUST, { receivers: 10, inflight: 4, size: 32 }));
  t.same(fan.report.errors, NO_ERRORS);
  t.ok(fan.report.count > 0, 'deliveries in the measured window');
  t.equal(fan.report.delivered, fan.report.sent, 'every broadcast reached every receiver');
  t.equal(fan.report.receiverMin, fan.report.sent);

  const before = secureConnections;
  const heapUrl = `https://localhost:${port}/memory`;
  const idle = await runLoad(opts('idle', wss('/echo'), [...TRUST, '--heap-url', heapUrl], { connections: 40, durationSec: 0.1, sourceAddresses: ['127.0.0.1', '127.0.0.2'] }));
  t.same(idle.report.errors, NO_ERRORS);
  t.type(idle.report.targetHeapBytesPerConnection, 'number', 'the heap read over https (--heap-url), verified with --ca');
  t.equal(idle.report.opened, 40, 'every connection opened (TLS, then the WebSocket handshake)');
  t.equal(idle.report.closed, 40, 'and closed');
  t.equal(secureConnections - before, 40 + 2, 'a TLS handshake per connection, and per heap reading (before, after)');
});

t.test('http over https: every request answered 200, with and without pipelining', async (t) => {
  for (const pipelining of [1, 4]) {
    const { report } = await runLoad(opts('http', `https://localhost:${port}/hello`, TRUST, { connections: 5, pipelining }));
    t.same(report.errors, NO_ERRORS, `no errors (pipelining ${pipelining})`);
    t.ok(report.count > 0);
    t.equal(report.sent, report.received, 'every request answered');
    t.same(Object.keys(report.statuses!), ['200']);
  }
});

t.test('against quay over TLS: echo and http on the same port', async (t) => {
  const router = new Router()
    .route('/echo', new WebSocketUpgradeHandler({ accept: () => ({ onText: (s: WebSocketSession, text: string) => void s.send(text) }) }))
    .route('/hello', (_request, response) => void response.end(hello));
  const quay = new Server({ port: 0, host: '127.0.0.1', tls: { key: certs.server.key, cert: certs.server.cert } }, router);
  const { port: p } = await quay.start();
  t.teardown(() => quay.stop(1000));
  const echoRun = await runLoad(opts('echo', `wss://localhost:${p}/echo`, TRUST, { connections: 4, inflight: 4 }));
  t.same(echoRun.report.errors, NO_ERRORS);
  t.ok(echoRun.report.count > 0);
  t.equal(echoRun.report.sent, echoRun.report.received, 'sent = received');
  const httpRun = await runLoad(opts('http', `https://127.0.0.1:${p}/hello`, TRUST, { connections: 4, pipelining: 2 }));
  t.same(httpRun.report.errors, NO_ERRORS);
  t.equal(httpRun.report.sent, httpRun.report.received, 'every request answered');
  t.same(Object.keys(httpRun.report.statuses!), ['200']);
});

t.test('--insecure: a certificate no trusted CA signed is accepted', async (t) => {
  const selfSigned = createHttpsServer({ key: certs.selfSigned.key, cert: certs.selfSigned.cert }, (_req, res) => res.end('ok'));
  const p = await listen(selfSigned);
  const { report } = await runLoad(opts('http', `https://127.0.0.1:${p}/`, ['--insecure'], { connections: 3 }));
  t.same(report.errors, NO_ERRORS);
  t.ok(report.count > 0);
  const ours = await runLoad(opts('echo', wss('/echo'), ['--insecure'], { connections: 3 }));
  t.same(ours.report.errors, NO_ERRORS, 'the test CA\'s certificate too, without --ca');
  selfSigned.closeAllConnections();
  await close(selfSigned);
});

t.test('certificate failures without --insecure are tls errors with node:tls\'s code, not refused', async (t) => {
  const tlsServer = (key: string, cert: string): NetServer => {
    const s = createTlsServer({ key, cert }, (socket: TLSSocket) => socket.end());
    s.on('tlsClientError', () => {});
    return s;
  };
  const cases: [string, NetServer, string[], RegExp][] = [
    ['self-signed', tlsServer(certs.selfSigned.key, certs.selfSigned.cert), TRUST, /DEPTH_ZERO_SELF_SIGNED_CERT/],
    ['signed by a CA Node does not trust', tlsServer(certs.server.key, certs.server.cert), [], /UNABLE_TO_VERIFY_LEAF_SIGNATURE/],
    ['expired', tlsServer(certs.expired.key, certs.expired.cert), TRUST, /CERT_HAS_EXPIRED/],
    ['for another host', tlsServer(certs.wrongHost.key, certs.wrongHost.cert), TRUST, /ERR_TLS_CERT_ALTNAME_INVALID/],
  ];
  for (const [name, server, extra, code] of cases) {
    const p = await listen(server);
    for (const workload of ['echo', 'http'] as const) {
      const url = `${workload === 'http' ? 'https' : 'wss'}://localhost:${p}/`;
      const { report } = await runLoad(opts(workload, url, extra, { connections: 3, durationSec: 0.1, warmupSec: 0 }));
      t.same(report.errors, { ...NO_ERRORS, tls: 3 }, `${name} (${workload}): three tls errors, nothing else`);
      t.match(report.errorSamples!.tls, code, `${name}: node:tls's code in the message`);
      t.equal(report.count, 0);
    }
    await close(server);
  }
});

t.test('a server that does not speak TLS, closes or stalls during the handshake', async (t) => {
  // Plain HTTP answers the ClientHello with a 400: not TLS.
  const plain = createHttpServer((_req, res) => res.end());
  const p1 = await listen(plain);
  const notTls = await runLoad(opts('echo', `wss://127.0.0.1:${p1}/`, TRUST, { connections: 2, durationSec: 0.1, warmupSec: 0 }));
  t.same(notTls.report.errors, { ...NO_ERRORS, tls: 2 }, 'a plain HTTP server: tls errors');
  t.match(notTls.report.errorSamples!.tls, /ERR_SSL_|wrong version/i);
  plain.closeAllConnections();
  await close(plain);

  // Accepts TCP, then closes: the TLS handshake failed, the connection was not refused.
  const rude = createNetServer((socket: Socket) => socket.once('data', () => socket.destroy()));
  const p2 = await listen(rude);
  const closed = await runLoad(opts('http', `https://127.0.0.1:${p2}/`, TRUST, { connections: 3, durationSec: 0.1, warmupSec: 0 }));
  t.same(closed.report.errors, { ...NO_ERRORS, tls: 3 }, 'closed during the TLS handshake: tls errors');
  await close(rude);

  // Accepts TCP and never answers the ClientHello: a timeout in the TLS phase.
  const held: Socket[] = [];
  const silent = createNetServer((socket: Socket) => held.push(socket));
  const p3 = await listen(silent);
  const stalled = await runLoad(opts('echo', `wss://127.0.0.1:${p3}/`, TRUST, { connections: 2, durationSec: 0.1, warmupSec: 0, timeoutSec: 0.3 }));
  t.same(stalled.report.errors, { ...NO_ERRORS, timeout: 2 });
  t.match(stalled.report.errorSamples!.timeout, /no TLS handshake within 300 ms/);
  for (const s of held) s.destroy();
  await close(silent);
});
