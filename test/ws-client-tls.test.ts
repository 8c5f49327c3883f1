/**
 * The WebSocket client over TLS (wss://): against `ws` on a node:https server (echo, permessage-deflate, the close
 * handshake, mutual TLS), against quay's own TLS server (and `ws`'s client against that server), and raw node:tls /
 * node:net servers for the failures (every certificate refusal with its
 * 'WS_TLS_*' code, a protocol version no one shares, a reset or a non-TLS server mid-handshake, a server that
 * never answers the ClientHello).
 */
import t from 'tap';
import type { Test } from 'tap';
import { createServer as createHttpsServer } from 'node:https';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { TLSSocket, TlsOptions } from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import type { WebSocket as WsSocket } from 'ws';
import { ByteBufferPool } from '../lib/buffers/index.js';
import { Server } from '../lib/http/Server.js';
import { WebSocketUpgradeHandler } from '../lib/websocket/WebSocketUpgradeHandler.js';
import { WebSocketClient } from '../lib/websocket/WebSocketClient.js';
import type { WebSocketConnectOptions } from '../lib/websocket/WebSocketClient.js';
import { HandshakeError } from '../lib/websocket/HandshakeResponse.js';
import type { HandshakeErrorCode } from '../lib/websocket/HandshakeResponse.js';
import type { WebSocketSession } from '../lib/websocket/WebSocketSession.js';
import { testCertificates } from '../examples/certificates.js';
import { Recorder, eventually } from './support/wsRecorder.js';

const HOST = '127.0.0.1';
const certs = testCertificates();

// ------------------------------------------------------------------------------------------------ helpers

/** A private client per test (debug buffer pool: every scratch buffer must be back at the end). */
function newClient(t: Test, tickMs = 50): WebSocketClient {
  const pool = new ByteBufferPool({ debug: true });
  const client = new WebSocketClient({ tickMs, bufferPool: pool });
  t.teardown(async () => {
    await client.stop(500);
    pool.assertNoLeaks();
  });
  return client;
}

/** What a wss test server saw. */
interface WssLog {
  hosts: string[];
  /** The SNI name of each TLS connection ('' when none was sent). */
  servernames: string[];
  /** CN of the client certificate of each WebSocket ('' when none). */
  clientNames: string[];
  closes: [number, string][];
  extensions: string[];
}

/**
 * `ws` on a node:https server with `tls` (key, cert, maybe requestCert...): echoes text and binary; 'close:<code>'
 * makes it close with that code.
 */
async function wssServer(t: Test, tls: HttpsServerOptions): Promise<{ url: string; log: WssLog }> {
  const log: WssLog = { hosts: [], servernames: [], clientNames: [], closes: [], extensions: [] };
  const https = createHttpsServer(tls);
  https.on('secureConnection', (socket: TLSSocket) => {
    const name: unknown = socket.servername;
    log.servernames.push(typeof name === 'string' ? name : '');
  });
  https.on('tlsClientError', () => {});
  const wss = new WebSocketServer({ server: https, perMessageDeflate: { threshold: 64 } });
  wss.on('connection', (ws: WsSocket, request) => {
    log.hosts.push(request.headers.host ?? '');
    log.extensions.push(String(request.headers['sec-websocket-extensions'] ?? ''));
    const peer = (request.socket as TLSSocket).getPeerCertificate?.();
    log.clientNames.push(peer !== undefined && peer.subject !== undefined ? String(peer.subject.CN) : '');
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const text = isBinary ? '' : data.toString();
      if (text.startsWith('close:')) ws.close(Number(text.slice(6)), 'server says bye');
      else ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code: number, reason: Buffer) => void log.closes.push([code, reason.toString()]));
  });
  await new Promise<void>((resolve) => https.listen(0, HOST, () => resolve()));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        https.closeAllConnections();
        https.close(() => resolve());
      }),
  );
  const { port } = https.address() as AddressInfo;
  return { url: `wss://${HOST}:${port}/echo`, log };
}

/** A raw node:tls server with these options that completes the TLS handshake and then says nothing. */
async function tlsServer(t: Test, options: TlsOptions): Promise<{ port: number; sockets: TLSSocket[] }> {
  const sockets: TLSSocket[] = [];
  const server = createTlsServer(options, (socket) => {
    socket.on('error', () => {});
    sockets.push(socket);
  });
  server.on('tlsClientError', () => {});
  return { port: await listenUntilTeardown(t, server, sockets), sockets };
}

/** Listens on 127.0.0.1, a free port; at teardown destroys `sockets` (the server's side) and closes. */
async function listenUntilTeardown(t: Test, server: NetServer, sockets: Iterable<Socket>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, HOST, () => resolve()));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

/**
 * A raw TCP server: `onData(socket)` gets the client's first bytes (its ClientHello); by default it never answers.
 * `closed()` counts the server-side sockets that closed (a client that gives up must close its socket).
 */
async function tcpServer(t: Test, onData: (socket: Socket) => void = () => {}): Promise<{ port: number; accepted: () => number; closed: () => number }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let closed = 0;
  const server: NetServer = createNetServer({ allowHalfOpen: true }, (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('data', () => onData(socket));
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      closed++;
      sockets.delete(socket);
    });
  });
  return { port: await listenUntilTeardown(t, server, sockets), accepted: () => accepted, closed: () => closed };
}

/** Awaits a rejection with a HandshakeError of `code` and returns it. */
async function expectHandshakeError(t: Test, promise: Promise<unknown>, code: HandshakeErrorCode): Promise<HandshakeError> {
  try {
    await promise;
  } catch (e) {
    t.type(e, HandshakeError, `a HandshakeError (${code})`);
    t.equal((e as HandshakeError).code, code, `code ${code}: ${(e as Error).message}`);
    return e as HandshakeError;
  }
  t.fail(`expected ${code}, but the handshake succeeded`);
  throw new Error('unreachable');
}

/** Sends a text and a `bytes`-long binary message (many TLS records) and checks their echoes. */
async function echoTextAndBinary(t: Test, session: WebSocketSession, recorder: Recorder, bytes: number): Promise<void> {
  await session.sendText('hello over tls');
  t.equal(await recorder.next(), 'hello over tls', 'text echoed');
  const binary = Buffer.alloc(bytes);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 31) & 0xff;
  await session.sendBinary(binary);
  const echoed = await recorder.next();
  t.ok(Buffer.isBuffer(echoed) && binary.equals(echoed), `${bytes} bytes of binary echoed intact`);
}

/** Opens, echoes one text message, closes cleanly: the certificate was accepted. */
async function echoOnce(t: Test, client: WebSocketClient, url: string, options: WebSocketConnectOptions): Promise<void> {
  const recorder = new Recorder();
  const session = await client.connect(url, { ...options, listener: recorder });
  await session.sendText('over tls');
  t.equal(await recorder.next(), 'over tls', 'echoed over TLS');
  session.close(1000, 'done');
  t.same((await recorder.closed)[0], 1000);
}

// ------------------------------------------------------------------------------------------------ tests

t.test('echo text and binary over wss:// with the test CA (ws on node:https)', async (t) => {
  const { url, log } = await wssServer(t, certs.server);
  const client = newClient(t);
  const recorder = new Recorder();
  const session = await client.connect(url, { ca: certs.ca.cert, listener: recorder });
  t.same(recorder.events, ['open']);
  await echoTextAndBinary(t, session, recorder, 100_000);
  const port = new URL(url).port;
  t.same(log.hosts, [`${HOST}:${port}`], 'the Host field is the URL authority, as over TCP');
  t.same(log.servernames, [''], 'no SNI for an IP literal (RFC 6066 §3)');
  t.equal(client.stats().connected, 1);
  session.close(1000, 'bye');
  t.same(await recorder.closed, [1000, 'bye']);
});

t.test('the close handshake over wss://, both ways', async (t) => {
  const { url, log } = await wssServer(t, certs.server);
  const client = newClient(t);
  const a = new Recorder();
  const first = await client.connect(url, { ca: certs.ca.cert, listener: a });
  first.close(1000, 'client bye');
  t.same(await a.closed, [1000, 'client bye'], 'the server answered our close');
  t.ok(await eventually(() => log.closes.length === 1), 'the server saw the close');
  t.same(log.closes[0], [1000, 'client bye']);

  const b = new Recorder();
  const second = await client.connect(url, { ca: certs.ca.cert, listener: b });
  await second.sendText('close:4001');
  t.same(await b.closed, [4001, 'server says bye'], 'the server closed');
  t.ok(await eventually(() => log.closes.length === 2));
  t.same(log.closes[1], [4001, ''], 'we answered with its code (RFC 6455 §5.5.1)');
  t.ok(await eventually(() => client.stats().open === 0), 'both TLS sockets are closed');
});

t.test('permessage-deflate over wss://', async (t) => {
  const { url, log } = await wssServer(t, certs.server);
  const client = newClient(t);
  const recorder = new Recorder();
  const session = await client.connect(url, { ca: certs.ca.cert, perMessageDeflate: true, listener: recorder });
  t.match(session.extensions, /permessage-deflate/, 'agreed');
  t.match(log.extensions[0], /permessage-deflate/, 'offered');
  const text = 'compressible text over tls '.repeat(2000);
  await session.sendText(text);
  t.equal(await recorder.next(), text, 'a compressed message echoed (compressed both ways)');
  const bytesIn = client.stats().bytesIn;
  t.ok(bytesIn < text.length / 4, `the echo arrived compressed (${bytesIn} bytes received for ${text.length})`);
  session.close(1000);
  await recorder.closed;
});

t.test('certificate refusals reject with WS_TLS_* codes naming node:tls reasons', async (t) => {
  const client = newClient(t);
  const cases: [string, TlsOptions, WebSocketConnectOptions, HandshakeErrorCode, string][] = [
    ['unknown CA', certs.server, {}, 'WS_TLS_UNKNOWN_CA', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    [
      'untrusted root sent in the chain',
      { key: certs.server.key, cert: certs.server.cert + certs.ca.cert },
      {},
      'WS_TLS_UNKNOWN_CA',
      'SELF_SIGNED_CERT_IN_CHAIN',
    ],
    ['self-signed', certs.selfSigned, { ca: certs.ca.cert }, 'WS_TLS_SELF_SIGNED', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
    ['expired', certs.expired, { ca: certs.ca.cert }, 'WS_TLS_CERT_EXPIRED', 'CERT_HAS_EXPIRED'],
    ['wrong host', certs.wrongHost, { ca: certs.ca.cert }, 'WS_TLS_HOST_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID'],
  ];
  for (const [name, serverOptions, options, code, tlsCode] of cases) {
    const { port } = await tlsServer(t, serverOptions);
    const error = await expectHandshakeError(t, client.connect(`wss://${HOST}:${port}/`, options), code);
    t.equal(error.tlsCode, tlsCode, `${name}: node:tls's code is kept`);
    t.equal((error.cause as { code?: string }).code, tlsCode, `${name}: node:tls's error is the cause`);
  }
  t.equal(client.stats().connected, 0, 'no endpoint was made');
  t.equal(client.pendingHandshakes, 0);
});

t.test('rejectUnauthorized: false accepts what verification refuses; ca accepts a self-signed certificate', async (t) => {
  const client = newClient(t);
  for (const cert of [certs.expired, certs.wrongHost, certs.selfSigned, certs.server]) {
    const { url } = await wssServer(t, cert);
    await echoOnce(t, client, url, { rejectUnauthorized: false });
  }
  const { url } = await wssServer(t, certs.selfSigned);
  await echoOnce(t, client, url, { ca: certs.selfSigned.cert });
  await expectHandshakeError(t, client.connect(url, { rejectUnauthorized: true }), 'WS_TLS_SELF_SIGNED');
});

t.test('servername: the SNI sent and the name the certificate must match', async (t) => {
  const { url, log } = await wssServer(t, certs.wrongHost);
  const client = newClient(t);
  await expectHandshakeError(t, client.connect(url, { ca: certs.ca.cert }), 'WS_TLS_HOST_MISMATCH');
  await echoOnce(t, client, url, { ca: certs.ca.cert, servername: 'example.com' });
  t.equal(log.servernames.at(-1), 'example.com', 'sent as SNI');
  t.same(log.hosts, [new URL(url).host], 'the Host field is still the URL authority');
  const other = await wssServer(t, certs.server);
  await expectHandshakeError(t, client.connect(other.url, { ca: certs.ca.cert, servername: 'example.com' }), 'WS_TLS_HOST_MISMATCH');
  await echoOnce(t, client, other.url, { ca: certs.ca.cert, servername: 'localhost' });
  t.equal(other.log.servernames.at(-1), 'localhost');
});

t.test('a client certificate for mutual TLS (node:https with requestCert + rejectUnauthorized)', async (t) => {
  const { url, log } = await wssServer(t, { ...certs.server, ca: certs.ca.cert, requestCert: true, rejectUnauthorized: true });
  const client = newClient(t);
  await echoOnce(t, client, url, { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key });
  t.same(log.clientNames, ['quay test client'], 'the server saw our certificate');
  // Without one the server refuses: in TLS 1.3 with an alert after the client's 'secureConnect'.
  const error = await expectHandshakeError(t, client.connect(url, { ca: certs.ca.cert }), 'WS_TLS_HANDSHAKE_FAILED');
  t.match(error.tlsCode, /^ERR_SSL_/, `node:tls's alert: ${error.tlsCode}`);
  // A certificate of a CA the server does not trust: refused too, but node:https checks it itself after its TLS 1.3
  // handshake and closes without an alert: all the client sees is a close before the 101.
  await expectHandshakeError(t, client.connect(url, { ca: certs.ca.cert, cert: certs.selfSigned.cert, key: certs.selfSigned.key }), 'WS_HANDSHAKE_CLOSED');
  t.equal(log.clientNames.length, 1, 'no WebSocket without a valid client certificate');
});

t.test('other TLS handshake failures: WS_TLS_HANDSHAKE_FAILED with node:tls code; a refused TCP connect is not TLS', async (t) => {
  const client = newClient(t);
  const old = await tlsServer(t, { ...certs.server, maxVersion: 'TLSv1.2' });
  const version = await expectHandshakeError(t, client.connect(`wss://${HOST}:${old.port}/`, { ca: certs.ca.cert, minVersion: 'TLSv1.3' }), 'WS_TLS_HANDSHAKE_FAILED');
  t.match(version.tlsCode, /PROTOCOL_VERSION/, `no common version: ${version.tlsCode}`);
  // The same server with the default minVersion: the TLS handshake succeeds (then the raw server never answers
  // the WebSocket request): the failure above was the version only.
  await expectHandshakeError(t, client.connect(`wss://${HOST}:${old.port}/`, { ca: certs.ca.cert, handshakeTimeoutMs: 100 }), 'WS_HANDSHAKE_TIMEOUT');

  const reset = await tcpServer(t, (socket) => socket.resetAndDestroy());
  const r = await expectHandshakeError(t, client.connect(`wss://${HOST}:${reset.port}/`), 'WS_TLS_HANDSHAKE_FAILED');
  t.equal(r.tlsCode, 'ECONNRESET', 'reset during the TLS handshake');

  const closes = await tcpServer(t, (socket) => socket.end());
  const c = await expectHandshakeError(t, client.connect(`wss://${HOST}:${closes.port}/`), 'WS_TLS_HANDSHAKE_FAILED');
  t.equal(c.tlsCode, 'ECONNRESET', 'closed during the TLS handshake');

  const plain = await tcpServer(t, (socket) => socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'));
  const p = await expectHandshakeError(t, client.connect(`wss://${HOST}:${plain.port}/`), 'WS_TLS_HANDSHAKE_FAILED');
  t.match(p.tlsCode, /^ERR_SSL_/, `a server that is not TLS: ${p.tlsCode}`);

  // A port nobody listens on: one just bound and released.
  const gone = createNetServer();
  await new Promise<void>((resolve) => gone.listen(0, HOST, () => resolve()));
  const freePort = (gone.address() as AddressInfo).port;
  await new Promise<void>((resolve) => gone.close(() => resolve()));
  const tcp = await expectHandshakeError(t, client.connect(`wss://${HOST}:${freePort}/`), 'WS_CONNECT_FAILED');
  t.equal(tcp.tlsCode, undefined, 'not a TLS error');
  t.equal(client.stats().connected, 1, 'only the handshake that succeeded made an endpoint');
});

t.test('handshakeTimeoutMs covers the TLS handshake: a server that never answers the ClientHello', async (t) => {
  const client = newClient(t, 20);
  let hellos = 0;
  const stall = await tcpServer(t, () => void hellos++);
  const error = await expectHandshakeError(t, client.connect(`wss://${HOST}:${stall.port}/`, { handshakeTimeoutMs: 100 }), 'WS_HANDSHAKE_TIMEOUT');
  t.match(error.message, /TLS/, error.message);
  t.equal(hellos, 1, 'the ClientHello was sent and never answered');
  t.ok(await eventually(() => stall.closed() === 1), 'the client destroyed its socket (it would otherwise wait forever)');
  t.equal(client.pendingHandshakes, 0);
  t.equal(client.stats().connected, 0);

  // stop() during a stalled TLS handshake: rejected, and the socket destroyed too.
  const pending = client.connect(`wss://${HOST}:${stall.port}/`, { handshakeTimeoutMs: 0 });
  t.ok(await eventually(() => stall.accepted() === 2 && hellos === 2), 'the second ClientHello arrived');
  const stopping = client.stop(200);
  await expectHandshakeError(t, pending, 'WS_CLIENT_STOPPED');
  await stopping;
  t.ok(await eventually(() => stall.closed() === 2), 'stop() destroyed the stalled socket');
});

t.test('invalid TLS options reject before connecting', async (t) => {
  const client = newClient(t);
  const stall = await tcpServer(t);
  const url = `wss://${HOST}:${stall.port}/`;
  await t.rejects(client.connect(url, { servername: 5 as unknown as string }), TypeError);
  await t.rejects(client.connect(url, { rejectUnauthorized: 'no' as unknown as boolean }), TypeError);
  await t.rejects(client.connect(url, { key: 'not a key', cert: certs.client.cert }), Error, 'an unusable key: node:tls error');
  await t.rejects(client.connect(url, { minVersion: 'SSLv2' as 'TLSv1.2' }), Error);
  t.equal(stall.accepted(), 0, 'nothing was connected');
});

t.test('no rejection of a dropped wss:// connect reaches unhandledRejection', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  const client = newClient(t, 20);
  const bad = await tlsServer(t, certs.expired);
  const stall = await tcpServer(t);
  const reset = await tcpServer(t, (socket) => socket.resetAndDestroy());
  // Dropped on purpose: nobody awaits these.
  void client.connect(`wss://${HOST}:${bad.port}/`, { ca: certs.ca.cert });
  void client.connect(`wss://${HOST}:${bad.port}/`);
  void client.connect(`wss://${HOST}:${stall.port}/`, { handshakeTimeoutMs: 60 });
  void client.connect(`wss://${HOST}:${reset.port}/`);
  void client.connect(`wss://${HOST}:${stall.port}/`, { key: 'not a key', cert: 'nor a cert' });
  t.ok(await eventually(() => client.pendingHandshakes === 0, 400), 'every handshake ended');
  // Unhandled rejections are reported after a macrotask turn.
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.same(unhandled, [], 'none reached unhandledRejection');
  t.ok(await eventually(() => stall.closed() === 1), 'the stalled socket was destroyed');
});

// ------------------------------------------------------------------------------------------------ quay <-> quay

/** What the quay wss server saw. */
interface QuayLog {
  /** request.secure and request.scheme of each upgrade. */
  seen: string[];
  closes: [number, string][];
}

/**
 * quay's own server over TLS (`new Server({ tls })`): echoes text and binary on /echo, subprotocol 'chat',
 * permessage-deflate when offered; 'close:<code>' makes it close with that code.
 */
async function quayWssServer(t: Test): Promise<{ server: Server; url: string; log: QuayLog }> {
  const log: QuayLog = { seen: [], closes: [] };
  const handler = new WebSocketUpgradeHandler({
    subprotocols: ['chat'],
    perMessageDeflate: { threshold: 64 },
    accept: (request) => {
      log.seen.push(`${request.secure} ${request.scheme}`);
      return {
        onText(session, text) {
          if (text.startsWith('close:')) session.close(Number(text.slice(6)), 'server says bye');
          else void session.sendText(text);
        },
        onBinary(session, data) {
          void session.sendBinary(data);
        },
        onClose(_session, code, reason) {
          log.closes.push([code, reason]);
        },
      };
    },
  });
  const pool = new ByteBufferPool({ debug: true });
  const server = new Server({ port: 0, host: HOST, bufferPool: pool, tls: certs.server }, handler);
  const { port } = await server.start();
  t.teardown(async () => {
    await server.stop(500);
    pool.assertNoLeaks();
  });
  return { server, url: `wss://${HOST}:${port}/echo`, log };
}

t.test('quay client -> quay wss server: echo, permessage-deflate, concurrent connections, close both ways', async (t) => {
  const { server, url, log } = await quayWssServer(t);
  const client = newClient(t);
  const recorder = new Recorder();
  const session = await client.connect(url, { ca: certs.ca.cert, protocols: ['chat'], perMessageDeflate: true, listener: recorder });
  t.equal(session.protocol, 'chat');
  t.match(session.extensions, /permessage-deflate/);
  t.same(log.seen, ['true https'], 'the handler sees a secure request');
  await echoTextAndBinary(t, session, recorder, 200_000);

  // 20 more at once: one secure context for all of them on the client, one TLS handshake each on the server.
  const recorders = Array.from({ length: 20 }, () => new Recorder());
  const sessions = await Promise.all(recorders.map((listener) => client.connect(url, { ca: certs.ca.cert, listener })));
  await Promise.all(sessions.map((s, i) => s.sendText(`n${i}`)));
  t.same(await Promise.all(recorders.map((r) => r.next())), recorders.map((_r, i) => `n${i}`), 'each echoed its own');
  t.equal(server.stats().tls?.handshakes, 21, 'the server counted 21 TLS handshakes');
  for (const s of sessions) s.close(1000, 'many');
  await Promise.all(recorders.map((r) => r.closed));

  session.close(1000, 'client bye');
  t.equal((await recorder.closed)[0], 1000, 'the server answered our close');
  const other = new Recorder();
  const second = await client.connect(url, { ca: certs.ca.cert, listener: other });
  await second.sendText('close:4002');
  t.same(await other.closed, [4002, 'server says bye'], 'closed by the server over TLS');
  t.ok(await eventually(() => log.closes.length === 22), 'the server saw every close');
  t.same(log.closes.filter(([, reason]) => reason === 'client bye'), [[1000, 'client bye']]);
  t.ok(await eventually(() => client.stats().open === 0 && server.stats().open === 0), 'every TLS socket closed on both sides');
});

t.test('quay client -> quay wss server after setSecureContext: the new certificate is checked, the open session lives', async (t) => {
  const { server, url } = await quayWssServer(t);
  const client = newClient(t);
  const recorder = new Recorder();
  const session = await client.connect(url, { ca: certs.ca.cert, listener: recorder });
  server.setSecureContext(certs.expired);
  await expectHandshakeError(t, client.connect(url, { ca: certs.ca.cert }), 'WS_TLS_CERT_EXPIRED');
  server.setSecureContext(certs.wrongHost);
  await expectHandshakeError(t, client.connect(url, { ca: certs.ca.cert }), 'WS_TLS_HOST_MISMATCH');
  await session.sendText('still here');
  t.equal(await recorder.next(), 'still here', 'the established session keeps its TLS connection');
  server.setSecureContext(certs.server2);
  await echoOnce(t, client, url, { ca: certs.ca.cert });
  session.close(1000);
  await recorder.closed;
});

t.test('ws client -> quay wss server: subprotocol, permessage-deflate, close initiated by the server', async (t) => {
  const { url, log } = await quayWssServer(t);
  const ws = new WebSocket(url, ['chat'], { ca: certs.ca.cert, perMessageDeflate: { threshold: 0 } });
  t.teardown(() => ws.terminate());
  const opened = new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  await opened;
  t.equal(ws.protocol, 'chat');
  t.match(ws.extensions, /permessage-deflate/);
  t.same(log.seen, ['true https']);
  const text = 'ws to quay over tls, compressed '.repeat(500);
  const echo = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString())));
  ws.send(text);
  t.equal(await echo, text, 'echoed, compressed both ways');
  const closed = new Promise<[number, string]>((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve([code, reason.toString()])));
  ws.send('close:4003');
  t.same(await closed, [4003, 'server says bye']);
  t.ok(await eventually(() => log.closes.length === 1));
  t.equal(log.closes[0]![0], 4003, 'ws answered the close');
});
