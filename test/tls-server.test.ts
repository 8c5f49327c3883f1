/**
 * The server over TLS: https and wss on one connector, the handshake's deadline, failures counted by kind,
 * certificate reload, SNI, and the node:https bridge. Certificates are made by examples/certificates.ts (openssl).
 */
import t from 'tap';
import type { Test } from 'tap';
import { connect as tlsConnect, createSecureContext } from 'node:tls';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { Agent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { ByteBufferPool } from '../lib/buffers/index.js';
import { Server } from '../lib/http/Server.js';
import type { ServerErrorContext, ServerOptions } from '../lib/http/Server.js';
import type { Handler, HandlerFunction } from '../lib/http/Handler.js';
import { Router } from '../lib/http/Router.js';
import { UpgradeBridge } from '../lib/http/UpgradeBridge.js';
import { SelectorManager } from '../lib/io/SelectorManager.js';
import { WebSocketUpgradeHandler } from '../lib/websocket/WebSocketUpgradeHandler.js';
import { IllegalStateError, TlsHandshakeError, TlsHandshakeFailuresError, TlsHandshakeTimeoutError } from '../lib/io/errors.js';
import { tlsFailureKind } from '../lib/io/TlsHandshakeFailures.js';
import { hasOpenssl, testCertificates } from '../examples/certificates.js';
import { clientFrame, parseFrames, until, within } from './support/wsRaw.js';

const HOST = '127.0.0.1';

if (!hasOpenssl()) {
  t.fail('the openssl command is missing: .ci/run installs it (apt-get install openssl)');
  process.exit(1);
}
const certs = testCertificates();
const TRUST: ConnectionOptions = { ca: certs.ca.cert, servername: 'localhost' };

async function startTls(t: Test, handler: Handler | HandlerFunction, options: ServerOptions = {}) {
  const errors: { error: Error; context: ServerErrorContext }[] = [];
  const pool = new ByteBufferPool({ debug: true });
  const server = new Server(
    {
      port: 0,
      host: HOST,
      bufferPool: pool,
      tls: { key: certs.server.key, cert: certs.server.cert },
      onError: (error, context) => void errors.push({ error, context }),
      ...options,
    },
    handler,
  );
  const { port } = await server.start();
  t.teardown(async () => {
    await server.stop(500);
    pool.assertNoLeaks();
  });
  return { server, port, errors };
}

/** A TLS client socket, connected and verified (or the handshake's error). */
function tlsOpen(t: Test, port: number, options: ConnectionOptions = TRUST): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: HOST, port, ...options });
    t.teardown(() => void socket.destroy());
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Collects what a socket receives until `predicate` holds on it (bounded). */
async function readUntil(socket: Socket, predicate: (text: string) => boolean, what: string): Promise<string> {
  let text = '';
  const onData = (b: Buffer): void => void (text += b.toString('latin1'));
  socket.on('data', onData);
  try {
    await until(() => predicate(text), 3000, what);
  } finally {
    socket.off('data', onData);
  }
  return text;
}

/** A handshake that fails: resolves with the client's error (or 'closed' when the server closed without alert). */
function failedHandshake(port: number, options: ConnectionOptions): Promise<string> {
  return within(
    new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: HOST, port, ...options });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      socket.once('close', () => resolve('closed'));
    }),
    3000,
    'a failing handshake',
  );
}

/** A plain TCP peer: writes `bytes`, resolves when the server closes it (bounded). */
function plainPeer(t: Test, port: number, bytes: string | undefined): Promise<void> {
  const socket = netConnect({ host: HOST, port });
  socket.on('error', () => {});
  t.teardown(() => void socket.destroy());
  if (bytes !== undefined) socket.write(bytes, 'latin1');
  return within(new Promise<void>((resolve) => socket.once('close', () => resolve())), 3000, 'the server to close a plain peer');
}

function httpsGet(port: number, path: string, agent: Agent): Promise<{ status: number; body: string; socket: TLSSocket }> {
  return within(
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: HOST, port, path, agent, servername: 'localhost' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket: res.socket as TLSSocket }));
      });
      req.on('error', reject);
      req.end();
    }),
    3000,
    `GET ${path}`,
  );
}

function commonName(socket: TLSSocket): string {
  return String(socket.getPeerCertificate().subject.CN);
}

t.test('https: 200 keep-alive requests over one TLS connection; request.secure and scheme', async (t) => {
  const { server, port } = await startTls(t, (req, res) => res.send(200, `${req.scheme} ${req.secure} ${req.path}`));
  t.equal(server.secure, true);
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: certs.ca.cert });
  t.teardown(() => agent.destroy());
  let ok = 0;
  for (let i = 0; i < 200; i++) {
    const { status, body } = await httpsGet(port, `/r${i}`, agent);
    if (status === 200 && body === `https true /r${i}`) ok++;
  }
  t.equal(ok, 200, 'every answer right');
  const stats = server.stats();
  t.equal(stats.accepted, 1, 'one connection');
  t.equal(stats.tls?.handshakes, 1, 'one handshake');
  t.equal(stats.errors, 0);
  t.match(server.dump(), /TLS handshakes=1 failed: none/);
  t.match(server.dump(), /SocketEndPoint#\d+ .* tls=TLSv1\.3/, 'the endpoint line names the TLS version');
});

t.test('a plain server says secure false and has no TLS stats', async (t) => {
  const server = new Server({ port: 0, host: HOST }, (req, res) => res.send(200, `${req.scheme} ${req.secure}`));
  const { port } = await server.start();
  t.teardown(() => server.stop(500));
  t.equal(await fetch(`http://${HOST}:${port}/`).then((r) => r.text()), 'http false');
  t.equal(server.secure, false);
  t.equal(server.stats().tls, undefined);
  t.throws(() => server.setSecureContext({ key: certs.server.key, cert: certs.server.cert }), IllegalStateError);
});

t.test('pipelined requests over TLS are answered in order', async (t) => {
  const { port } = await startTls(t, (req, res) => res.send(200, `#${req.path.slice(1)}`));
  const socket = await tlsOpen(t, port);
  socket.write(
    Array.from({ length: 20 }, (_, i) => `GET /${i} HTTP/1.1\r\nHost: localhost\r\n\r\n`).join(''),
    'latin1',
  );
  const text = await readUntil(socket, (s) => s.includes('#19'), '20 pipelined answers');
  const bodies = [...text.matchAll(/\r\n\r\n(#\d+)/g)].map((m) => m[1]);
  t.same(bodies, Array.from({ length: 20 }, (_, i) => `#${i}`), 'in order');
  t.equal(socket.alpnProtocol, false, 'no ALPN offered, none chosen');
});

t.test('ALPN: http/1.1 is chosen; a client that offers only h2 is refused (protocol)', async (t) => {
  const { server, port } = await startTls(t, (_req, res) => res.send(200, 'ok'));
  const socket = await tlsOpen(t, port, { ...TRUST, ALPNProtocols: ['h2', 'http/1.1'] });
  t.equal(socket.alpnProtocol, 'http/1.1');
  t.equal(socket.getProtocol(), 'TLSv1.3');
  socket.destroy();
  t.match(await failedHandshake(port, { ...TRUST, ALPNProtocols: ['h2'] }), /NO_APPLICATION_PROTOCOL/);
  await until(() => server.stats().tls?.handshakeFailures.protocol === 1, 3000, 'the failure counted');
});

t.test('the WebSocket upgrade in place over TLS, with frames in the same write as the request', async (t) => {
  const seen: { secure: boolean; scheme: string }[] = [];
  const ws = new WebSocketUpgradeHandler({
    accept: (request) => {
      seen.push({ secure: request.secure, scheme: request.scheme });
      return { onText: (session, text) => void session.sendText(`echo ${text}`) };
    },
  });
  const { server, port } = await startTls(t, new Router().route('/ws', ws));
  const socket = await tlsOpen(t, port);
  const request =
    `GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  // One write: the request head and two frames; the TLS layer carries them in one or more records.
  socket.write(Buffer.concat([Buffer.from(request, 'latin1'), clientFrame(0x1, 'early'), clientFrame(0x1, 'second')]));
  let bytes = Buffer.alloc(0);
  socket.on('data', (b: Buffer) => void (bytes = Buffer.concat([bytes, b])));
  await until(() => {
    const end = bytes.indexOf('\r\n\r\n');
    return end >= 0 && parseFrames(bytes.subarray(end + 4)).length >= 2;
  }, 3000, 'two echoes');
  const end = bytes.indexOf('\r\n\r\n');
  t.match(bytes.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 101 /);
  t.same(
    parseFrames(bytes.subarray(end + 4)).map((f) => f.payload.toString()),
    ['echo early', 'echo second'],
    'the leftover frames reached the WebSocket connection',
  );
  t.same(seen, [{ secure: true, scheme: 'https' }]);
  t.equal(server.stats().tls?.handshakes, 1);
});

t.test('ws (the library) over wss to a quay server', async (t) => {
  const ws = new WebSocketUpgradeHandler({ accept: () => ({ onBinary: (session, data) => void session.sendBinary(data) }) });
  const { port } = await startTls(t, new Router().route('/echo', ws));
  const client = new WebSocket(`wss://localhost:${port}/echo`, { ca: certs.ca.cert, lookup: loopbackLookup });
  t.teardown(() => client.terminate());
  await within(new Promise((resolve, reject) => client.once('open', resolve).once('error', reject)), 3000, 'open');
  const payload = Buffer.alloc(100_000, 7);
  client.send(payload);
  const [echo] = await within(new Promise<[Buffer]>((resolve) => client.once('message', (...a: unknown[]) => resolve(a as [Buffer]))), 3000, 'echo');
  t.ok(echo.equals(payload), '100 KB echoed intact');
  client.close(1000);
  const [code] = await within(new Promise<[number]>((resolve) => client.once('close', (...a: unknown[]) => resolve(a as [number]))), 3000, 'close');
  t.equal(code, 1000, 'the close handshake completes over TLS');
});

/** Resolves every name to 127.0.0.1, so a client can verify `localhost` in the certificate and stay on loopback. */
function loopbackLookup(_host: string, options: unknown, callback?: unknown): void {
  const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
  const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true;
  if (all) cb(null, [{ address: HOST, family: 4 }]);
  else cb(null, HOST, 4);
}

t.test('handshake failures are counted by kind, reported once with counts, never as errors', async (t) => {
  const { server, port, errors } = await startTls(t, (_req, res) => res.send(200, 'ok'));
  // plaintext: plain HTTP to the TLS port.
  for (let i = 0; i < 5; i++) await plainPeer(t, port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  // aborted: TCP opened and closed without a hello.
  const quitter = netConnect({ host: HOST, port });
  quitter.on('error', () => {});
  quitter.on('connect', () => quitter.end());
  // protocol: TLS 1.1 at most, where the server wants 1.2 or newer.
  t.match(await failedHandshake(port, { ...TRUST, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }), /PROTOCOL_VERSION|UNSUPPORTED|closed/);
  // cipher: a TLS 1.2 client that only offers RSA key exchange, to an ECDSA certificate.
  t.match(await failedHandshake(port, { ...TRUST, maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA' }), /HANDSHAKE_FAILURE|closed/);
  await until(() => {
    const f = server.stats().tls!.handshakeFailures;
    return f.plaintext === 5 && f.aborted === 1 && f.protocol === 1 && f.cipher === 1;
  }, 3000, 'the failures counted');
  const stats = server.stats();
  t.same(stats.tls, {
    handshakes: 0,
    handshakeFailures: { timeout: 0, aborted: 1, plaintext: 5, protocol: 1, cipher: 1, sni: 0, certificate: 0, other: 0 },
  });
  t.equal(stats.errors, 0, 'not counted as errors');
  t.equal(stats.open, 0, 'every failed peer closed');
  t.equal(errors.length, 0, 'nothing reported per peer');
  server.selectorManager.checkCapacity(); // what the once-a-second timer runs
  t.equal(errors.length, 1, 'one report for all of them');
  const report = errors[0]!;
  t.equal(report.context.kind, 'tls');
  t.ok(report.error instanceof TlsHandshakeFailuresError);
  t.same((report.error as TlsHandshakeFailuresError).failures, { plaintext: 5, aborted: 1, protocol: 1, cipher: 1 });
  t.match(report.error.message, /^8 TLS handshakes failed in the last second/);
  server.selectorManager.checkCapacity();
  t.equal(errors.length, 1, 'nothing new, nothing reported');
  // The server still serves.
  const agent = new Agent({ ca: certs.ca.cert });
  t.teardown(() => agent.destroy());
  t.equal((await httpsGet(port, '/', agent)).status, 200);
});

t.test('a client that refuses our certificate in the handshake (openssl s_client, no CA) is counted as certificate', async (t) => {
  const { server, port } = await startTls(t, (_req, res) => res.send(200, 'ok'));
  // openssl verifies during the handshake and sends an unknown_ca alert (RFC 8446 §6.2), as browsers do; node:tls
  // clients verify after it, so they cannot show this kind.
  const client = spawn('openssl', ['s_client', '-connect', `${HOST}:${port}`, '-servername', 'localhost', '-verify_return_error'], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  t.teardown(() => {
    if (client.exitCode === null && client.pid !== undefined) process.kill(client.pid);
  });
  client.stdin.end();
  const code = await within(new Promise<number | null>((resolve) => client.once('exit', resolve)), 5000, 'openssl s_client to give up');
  t.not(code, 0, 'the client refused');
  await until(() => server.stats().tls!.handshakeFailures.certificate === 1, 3000, 'counted as certificate');
  t.equal(server.stats().tls!.handshakes, 0);
});

t.test('a peer that stalls mid-handshake is closed at tlsHandshakeTimeoutMs, even while it trickles bytes', async (t) => {
  const { server, port } = await startTls(t, (_req, res) => res.send(200, 'ok'), { tlsHandshakeTimeoutMs: 300, idleTickMs: 50 });
  // A TLS record header announcing a 512-byte handshake message, then one byte every 50 ms: activity, but no hello.
  const socket = netConnect({ host: HOST, port });
  socket.on('error', () => {});
  t.teardown(() => void socket.destroy());
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
  let sent = 0;
  const trickle = setInterval(() => {
    if (sent++ < 60 && !socket.destroyed) socket.write(Buffer.from([0x01]));
  }, 50);
  t.teardown(() => clearInterval(trickle));
  await until(() => server.stats().open === 1, 3000, 'the peer accepted');
  t.match(server.dump(), /TlsHandshakeConnection HANDSHAKING/);
  await within(closed, 3000, 'the stalled peer closed');
  clearInterval(trickle);
  t.ok(sent < 60, 'closed before the trickle ended');
  t.equal(server.stats().tls?.handshakeFailures.timeout, 1);
  t.equal(server.stats().open, 0);
});

t.test('TlsHandshakeConnection closes with TlsHandshakeTimeoutError at the deadline', async (t) => {
  const causes: Error[] = [];
  const { server, port } = await startTls(t, (_req, res) => res.send(200, 'ok'), { tlsHandshakeTimeoutMs: 100, idleTickMs: 20 });
  // Look at the endpoint's close cause through the manager's endpoints.
  const socket = netConnect({ host: HOST, port });
  socket.on('error', () => {});
  t.teardown(() => void socket.destroy());
  await until(() => server.stats().open === 1, 3000, 'accepted');
  const [endPoint] = [...server.selectorManager.endPoints];
  await until(() => !endPoint!.isOpen, 3000, 'closed at the deadline');
  causes.push(endPoint!.closeCause!);
  t.ok(causes[0] instanceof TlsHandshakeTimeoutError, 'the cause names the deadline');
  t.equal((causes[0] as TlsHandshakeTimeoutError).code, 'TLS_HANDSHAKE_TIMEOUT');
});

t.test('handshaking peers count against maxConnections; stop() closes them without counting failures', async (t) => {
  const { server, port } = await startTls(t, (_req, res) => res.send(200, 'ok'), { maxConnections: 2 });
  const peers = [0, 1, 2].map(() => {
    const s = netConnect({ host: HOST, port });
    s.on('error', () => {});
    t.teardown(() => void s.destroy());
    return s;
  });
  await until(() => server.stats().refusedAtLimit === 1 && server.stats().open === 2, 3000, 'two held, the third refused');
  const closed = Promise.all(peers.slice(0, 2).map((s) => new Promise<void>((resolve) => s.once('close', () => resolve()))));
  await server.stop(1000);
  await within(closed, 3000, 'the handshaking peers closed by stop()');
  const f = server.stats().tls!.handshakeFailures;
  t.equal(Object.values(f).reduce((a, b) => a + b, 0), 0, 'a stop is not a handshake failure');
});

t.test('setSecureContext: new connections get the new certificate, established ones keep theirs', async (t) => {
  const { server, port } = await startTls(t, (_req, res) => res.send(200, 'ok'));
  const before = await tlsOpen(t, port);
  t.equal(commonName(before), 'localhost');
  server.setSecureContext({ key: certs.server2.key, cert: certs.server2.cert });
  const after = await tlsOpen(t, port);
  t.equal(commonName(after), 'localhost second', 'the new certificate');
  // The established connection still works with the old one.
  before.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
  t.match(await readUntil(before, (s) => s.includes('ok'), 'an answer on the old connection'), /^HTTP\/1\.1 200/);
  t.equal(commonName(before), 'localhost');
  // A bad configuration is refused and the one in force stays.
  t.throws(() => server.setSecureContext({ key: certs.server.key, cert: 'not a certificate' }));
  t.throws(() => server.setSecureContext({}), TypeError, 'no certificate at all');
  const again = await tlsOpen(t, port);
  t.equal(commonName(again), 'localhost second');
});

t.test('a connection factory that throws after the handshake is an error, reported, not a handshake failure', async (t) => {
  const errors: Error[] = [];
  const manager = new SelectorManager({
    tls: { key: certs.server.key, cert: certs.server.cert },
    connectionFactory: {
      newConnection: () => {
        throw new Error('no connection for you');
      },
    },
    onError: (error) => void errors.push(error),
  });
  const { port } = await manager.listen({ host: HOST });
  t.teardown(() => manager.stop(500));
  const socket = await tlsOpen(t, port);
  await within(new Promise<void>((resolve) => socket.once('close', () => resolve())), 3000, 'closed by the server');
  await until(() => manager.stats().open === 0, 3000, 'the endpoint closed');
  const stats = manager.stats();
  t.equal(stats.tls?.handshakes, 1, 'the handshake was done');
  t.equal(Object.values(stats.tls!.handshakeFailures).reduce((a, b) => a + b, 0), 0, 'no handshake failure');
  t.equal(stats.errors, 1, 'an error');
  t.match(errors.map((e) => e.message), [/no connection for you/], 'reported');
});

t.test('a bad certificate or key fails the constructor', async (t) => {
  t.throws(() => new Server({ tls: { key: certs.server.key, cert: certs.server2.cert } }), /key values mismatch|KEY_VALUES_MISMATCH/);
  t.throws(() => new Server({ tls: { key: certs.server.key } }), TypeError);
});

t.test('SNI: SNICallback picks the certificate; sniRequired refuses clients without a name', async (t) => {
  const contexts = new Map([
    ['one.test', createSecureContext({ key: certs.server.key, cert: certs.server.cert })],
    ['two.test', createSecureContext({ key: certs.server2.key, cert: certs.server2.cert })],
  ]);
  const { server, port } = await startTls(t, (_req, res) => res.send(200, 'ok'), {
    tls: {
      key: certs.server.key,
      cert: certs.server.cert,
      sniRequired: true,
      SNICallback: (name, cb) => {
        if (name === 'throw.test') throw new Error('a bug in the callback');
        const context = contexts.get(name);
        if (context === undefined) cb(new Error(`unknown server name ${name}`));
        else cb(null, context);
      },
    },
  });
  const insecure = { rejectUnauthorized: false };
  t.equal(commonName(await tlsOpen(t, port, { ...insecure, servername: 'two.test' })), 'localhost second');
  t.equal(commonName(await tlsOpen(t, port, { ...insecure, servername: 'one.test' })), 'localhost');
  t.not(await failedHandshake(port, { ...insecure, servername: 'three.test' }), 'connected', 'an unknown name is refused');
  t.not(await failedHandshake(port, { ...insecure, servername: 'throw.test' }), 'connected', 'a callback that throws refuses');
  // No servername (an IP address is never sent as SNI): the handshake succeeds, then the server closes.
  const nameless = await tlsOpen(t, port, insecure);
  await within(new Promise<void>((resolve) => nameless.once('close', () => resolve())), 3000, 'the nameless client closed');
  await until(() => server.stats().tls!.handshakeFailures.sni === 3, 3000, 'the SNI failures counted');
  t.equal(server.stats().tls!.handshakes, 2);
});

t.test('a WebSocket upgrade through UpgradeBridge on a node:https server is secure', async (t) => {
  const seen: boolean[] = [];
  const bridge = new UpgradeBridge(
    new WebSocketUpgradeHandler({
      accept: (request) => {
        seen.push(request.secure);
        return { onText: (session, text) => void session.sendText(`echo ${text}`) };
      },
    }),
  );
  const https = createHttpsServer({ key: certs.server.key, cert: certs.server.cert }, (_req, res) => res.end('plain\n'));
  https.on('upgrade', (req, socket, head) => bridge.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => https.listen(0, HOST, resolve));
  const port = (https.address() as AddressInfo).port;
  t.teardown(async () => {
    await bridge.stop(500);
    await new Promise<void>((resolve) => https.close(() => resolve()));
  });
  const client = new WebSocket(`wss://localhost:${port}/chat`, { ca: certs.ca.cert, lookup: loopbackLookup });
  t.teardown(() => client.terminate());
  await within(new Promise((resolve, reject) => client.once('open', resolve).once('error', reject)), 3000, 'open');
  client.send('hi');
  const [message] = await within(new Promise<[Buffer]>((resolve) => client.once('message', (...a: unknown[]) => resolve(a as [Buffer]))), 3000, 'echo');
  t.equal(message.toString(), 'echo hi');
  t.same(seen, [true], 'request.secure over node:https');
  t.equal(bridge.stats().accepted, 1);
});

t.test('tlsFailureKind: node:tls codes and quay errors', async (t) => {
  const coded = (code: string): Error => Object.assign(new Error(code), { code });
  t.equal(tlsFailureKind(undefined), 'aborted');
  t.equal(tlsFailureKind(coded('ECONNRESET')), 'aborted');
  t.equal(tlsFailureKind(new TlsHandshakeTimeoutError(10)), 'timeout');
  t.equal(tlsFailureKind(new TlsHandshakeError('sni', 'x')), 'sni');
  t.equal(tlsFailureKind(coded('ERR_SSL_HTTP_REQUEST')), 'plaintext');
  t.equal(tlsFailureKind(coded('ERR_SSL_WRONG_VERSION_NUMBER')), 'protocol');
  t.equal(tlsFailureKind(coded('ERR_SSL_NO_SHARED_CIPHER')), 'cipher');
  t.equal(tlsFailureKind(coded('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA')), 'certificate');
  t.equal(tlsFailureKind(coded('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE')), 'certificate');
  t.equal(tlsFailureKind(coded('ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED')), 'certificate');
  t.equal(tlsFailureKind(coded('ERR_SSL_SOMETHING_NEW')), 'other');
  t.equal(tlsFailureKind(new Error('no code')), 'other');
});
