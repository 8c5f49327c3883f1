import t from 'tap';
import { ByteBufferPool } from '../lib/buffers/index.js';
import type { Test } from 'tap';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { WebSocket as WsSocket } from 'ws';
import { Server } from '../lib/http/Server.js';
import { WebSocketUpgradeHandler } from '../lib/websocket/WebSocketUpgradeHandler.js';
import { WebSocketClient, parseWebSocketUrl } from '../lib/websocket/WebSocketClient.js';
import type { WebSocketConnectOptions } from '../lib/websocket/WebSocketClient.js';
import { HandshakeError, MAX_ERROR_BODY_BYTES } from '../lib/websocket/HandshakeResponse.js';
import type { HandshakeErrorCode } from '../lib/websocket/HandshakeResponse.js';
import { FrameGenerator } from '../lib/websocket/FrameGenerator.js';
import { acceptKey } from '../lib/websocket/acceptKey.js';
import { resolveDeflateSettings } from '../lib/websocket/PerMessageDeflate.js';
import { until, within } from './support/wsRaw.js';
import { mulberry32 } from './support/mulberry32.js';
import { Recorder, eventually } from './support/wsRecorder.js';

const HOST = '127.0.0.1';

// ------------------------------------------------------------------------------------------------ helpers

/** A private client per test, stopped at teardown, so its stats are the test's own. */
function newClient(t: Test, tickMs?: number): WebSocketClient {
  // A debug pool: every pooled scratch buffer must be back once the client has stopped.
  const pool = new ByteBufferPool({ debug: true });
  const client = new WebSocketClient(tickMs === undefined ? { bufferPool: pool } : { tickMs, bufferPool: pool });
  t.teardown(async () => {
    await client.stop(500);
    pool.assertNoLeaks();
  });
  return client;
}

/** What the test servers saw: close codes and reasons, pongs, remote addresses, offered protocols. */
interface ServerLog {
  closes: [number, string][];
  pongs: string[];
  remotes: string[];
}

interface Target {
  name: string;
  start(t: Test): Promise<{ url: string; log: ServerLog }>;
}

/**
 * The same echo service on both servers: text and binary come back; 'close:<code>' makes the server close with
 * that code; 'ping-me' makes it ping with payload 'srv'. Subprotocols: chat, superchat.
 */
const quayTarget: Target = {
  name: 'quay server',
  async start(t) {
    const log: ServerLog = { closes: [], pongs: [], remotes: [] };
    const handler = new WebSocketUpgradeHandler({
      subprotocols: ['chat', 'superchat'],
      perMessageDeflate: { threshold: 64 }, // used only when the client offers it
      accept: (request) => {
        if (request.path === '/refuse') return { status: 403, reason: 'go away' };
        log.remotes.push(request.remoteAddress);
        return {
          onText(session, text) {
            if (text.startsWith('close:')) session.close(Number(text.slice(6)), 'server says bye');
            else if (text === 'ping-me') session.ping('srv');
            else void session.sendText(text);
          },
          onBinary(session, data) {
            void session.sendBinary(data);
          },
          onPong(_session, payload) {
            log.pongs.push(payload.toString());
          },
          onClose(_session, code, reason) {
            log.closes.push([code, reason]);
          },
        };
      },
    });
    const server = new Server({ port: 0, host: HOST, idleTimeoutMs: 30_000 }, handler);
    const { port } = await server.start();
    t.teardown(() => server.stop(500));
    return { url: `ws://${HOST}:${port}`, log };
  },
};

const wsTarget: Target = {
  name: 'ws server',
  async start(t) {
    const log: ServerLog = { closes: [], pongs: [], remotes: [] };
    const wss = new WebSocketServer({
      host: HOST,
      port: 0,
      perMessageDeflate: { threshold: 64 }, // used only when the client offers it; context takeover on its side
      handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : protocols.has('superchat') ? 'superchat' : false),
    });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    wss.on('connection', (ws: WsSocket, request) => {
      log.remotes.push(request.socket.remoteAddress ?? '');
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        const text = isBinary ? '' : data.toString();
        if (text.startsWith('close:')) ws.close(Number(text.slice(6)), 'server says bye');
        else if (text === 'ping-me') ws.ping('srv');
        else ws.send(data, { binary: isBinary });
      });
      ws.on('pong', (payload: Buffer) => void log.pongs.push(payload.toString()));
      ws.on('close', (code: number, reason: Buffer) => void log.closes.push([code, reason.toString()]));
    });
    t.teardown(
      () =>
        new Promise<void>((resolve) => {
          for (const ws of wss.clients) ws.terminate();
          wss.close(() => resolve());
        }),
    );
    const { port } = wss.address() as AddressInfo;
    return { url: `ws://${HOST}:${port}`, log };
  },
};


/**
 * A raw TCP server for handshake edge cases: `answer(socket, key, head)` is called once the request head is
 * complete. `closed` counts server-side sockets that closed (the client must not leak them).
 */
async function rawServer(
  t: Test,
  answer: (socket: Socket, key: string, head: string) => void,
): Promise<{ url: string; heads: string[]; closed: () => number; server: NetServer }> {
  const heads: string[] = [];
  let closed = 0;
  const server = createNetServer((socket) => {
    let buffered = '';
    let answered = false;
    socket.on('error', () => {});
    socket.on('close', () => void closed++);
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      buffered += chunk.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      answered = true;
      const head = buffered.slice(0, end);
      heads.push(head);
      const key = /^sec-websocket-key: *(.*)$/im.exec(head)?.[1]?.trim() ?? '';
      answer(socket, key, head);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return { url: `ws://${HOST}:${port}`, heads, closed: () => closed, server };
}

/** A 101 with the right accept key, plus optional extra lines. */
function switching(key: string, extra = ''): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n${extra}\r\n`;
}

async function expectHandshakeError(t: Test, promise: Promise<unknown>, code: HandshakeErrorCode): Promise<HandshakeError> {
  try {
    await promise;
  } catch (e) {
    t.type(e, HandshakeError, `a HandshakeError (${(e as Error).message})`);
    t.equal((e as HandshakeError).code, code);
    return e as HandshakeError;
  }
  t.fail(`expected ${code}, but the connection opened`);
  throw new Error('unreachable');
}

// ------------------------------------------------------------------------------------------------ against both servers

for (const target of [quayTarget, wsTarget]) {
  t.test(`against a ${target.name}`, async (t) => {
    t.test('echo of text and binary; the server sees masked frames (it would fail the connection otherwise)', async (t) => {
      const { url } = await target.start(t);
      const client = newClient(t);
      const recorder = new Recorder();
      const session = await client.connect(`${url}/echo?room=1`, { listener: recorder });
      t.same(recorder.events, ['open'], 'onOpen ran before the Promise resolved');
      t.equal(session.path, '/echo');
      t.equal(session.protocol, '');
      t.equal(session.remoteAddress, HOST);
      await session.sendText('héllo wörld');
      t.equal(await recorder.next(), 'héllo wörld');
      await session.sendBinary(Buffer.from([0, 1, 2, 255]));
      t.same(await recorder.next(), Buffer.from([0, 1, 2, 255]));
      t.equal(session.send('fire and forget'), true);
      t.equal(await recorder.next(), 'fire and forget');
      session.close(1000, 'done');
      t.same((await recorder.closed)[0], 1000);
      t.ok(await eventually(() => client.stats().open === 0), 'the socket is closed');
      t.same(recorder.errors, []);
    });

    t.test('permessage-deflate offered: agreed, compressed both ways, the server\'s context takeover followed', async (t) => {
      const { url } = await target.start(t);
      const client = newClient(t);
      const recorder = new Recorder();
      const session = await client.connect(url, { listener: recorder, perMessageDeflate: { threshold: 64 } });
      t.match(session.extensions, /^permessage-deflate\b.*client_no_context_takeover/, `agreed: ${session.extensions}`);
      const random = mulberry32(99);
      let bytes = 0;
      for (let i = 0; i < 40; i++) {
        // Similar messages: a server with context takeover (ws) refers back to earlier ones.
        const text = `message ${i}: ` + 'the same words again '.repeat(10 + Math.floor(random() * 200));
        bytes += Buffer.byteLength(text) * 2;
        await session.sendText(text);
        if ((await recorder.next()) !== text) {
          t.fail(`echo ${i} differs`);
          return;
        }
      }
      const big = Buffer.alloc(1024 * 1024, 7);
      await session.sendBinary(big);
      const echoed = await recorder.next();
      t.ok(Buffer.isBuffer(echoed) && echoed.equals(big), 'a 1 MiB binary echo');
      bytes += 2 * big.length;
      const stats = client.stats();
      t.ok(stats.bytesIn + stats.bytesOut < bytes / 5, `${stats.bytesIn + stats.bytesOut} bytes on the wire for ${bytes} of messages`);
      t.same(recorder.errors, []);
      session.close();
      await recorder.closed;
    });

    t.test('a 4 MiB message both ways', async (t) => {
      const { url } = await target.start(t);
      const client = newClient(t);
      const recorder = new Recorder();
      const session = await client.connect(url, { listener: recorder });
      const random = mulberry32(0x5eed);
      const big = Buffer.allocUnsafe(4 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((random() * 0x100000000) >>> 0, i);
      const sent = session.sendBinary(big);
      const echoed = await recorder.next();
      await sent;
      t.ok(Buffer.isBuffer(echoed) && echoed.equals(big), 'the 4 MiB echo is identical');
      session.close();
      await recorder.closed;
    });

    t.test('subprotocol negotiation', async (t) => {
      const { url } = await target.start(t);
      const client = newClient(t);
      const a = await client.connect(url, { protocols: ['unknown', 'chat'] });
      t.equal(a.protocol, 'chat', 'the server picked the one it speaks');
      const b = await client.connect(url, { protocols: 'superchat' });
      t.equal(b.protocol, 'superchat', 'a single string offers one protocol');
      const c = await client.connect(url, { protocols: ['nothing-in-common'] });
      t.equal(c.protocol, '', 'no common protocol: the session opens without one (RFC 6455 §4.2.2)');
      for (const s of [a, b, c]) s.close();
      t.ok(await eventually(() => client.stats().open === 0));
    });

    t.test('close initiated by the client, with a code and a reason', async (t) => {
      const { url, log } = await target.start(t);
      const client = newClient(t);
      const recorder = new Recorder();
      const session = await client.connect(url, { listener: recorder });
      session.close(4000, 'bye');
      t.equal(session.readyState, 2, 'CLOSING until the server answers');
      const [code] = await recorder.closed;
      t.equal(code, 4000, 'the server echoed the code');
      t.equal(session.readyState, 3);
      t.ok(await eventually(() => log.closes.length === 1));
      t.same(log.closes[0], [4000, 'bye'], 'the server saw our code and reason');
      t.ok(await eventually(() => client.stats().open === 0));
    });

    t.test('close initiated by the server, with a code and a reason', async (t) => {
      const { url, log } = await target.start(t);
      const client = newClient(t);
      const recorder = new Recorder();
      const session = await client.connect(url, { listener: recorder });
      await session.sendText('close:4001');
      t.same(await recorder.closed, [4001, 'server says bye']);
      t.ok(await eventually(() => log.closes.length === 1));
      t.equal(log.closes[0]![0], 4001, 'the server completed the handshake with our echo');
      t.ok(await eventually(() => client.stats().open === 0));
    });

    t.test('ping and pong both ways', async (t) => {
      const { url, log } = await target.start(t);
      const client = newClient(t);
      const recorder = new Recorder();
      const session = await client.connect(url, { listener: recorder });
      const pong = recorder.nextPong();
      session.ping('abc');
      t.equal(await pong, 'abc', 'the server answered our ping with the same payload');
      await session.sendText('ping-me');
      t.ok(await eventually(() => log.pongs.includes('srv')), 'we answered the server ping with a pong');
      t.ok(recorder.events.includes('ping:srv'), 'onPing saw it');
      session.close();
      await recorder.closed;
    });

    t.test('200 concurrent clients', async (t) => {
      const { url, log } = await target.start(t);
      const client = newClient(t);
      const base: WebSocketConnectOptions = { protocols: ['chat'], maxMessageBytes: 1 << 20 };
      const n = 200;
      const settings = new Set<unknown>();
      const results = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const recorder = new Recorder();
          const session = await client.connect(url, { ...base, listener: recorder });
          settings.add((session.webSocketConnection as unknown as { settings: unknown }).settings);
          await session.sendText(`client ${i}`);
          const echo = await recorder.next();
          session.close(1000);
          const [code] = await recorder.closed;
          return { echo, code, protocol: session.protocol, i };
        }),
      );
      t.equal(results.filter((r) => r.echo === `client ${r.i}` && r.code === 1000 && r.protocol === 'chat').length, n, 'every client got its echo');
      t.equal(settings.size, 1, 'the sessions share one settings object');
      t.ok(await eventually(() => client.stats().open === 0), 'every socket closed');
      t.equal(client.stats().connected, n);
      t.equal(client.pendingHandshakes, 0);
      t.ok(await eventually(() => log.closes.length === n), 'the server saw every close');
    });

    t.test('stop() closes the open sessions with 1001', async (t) => {
      const { url, log } = await target.start(t);
      const client = new WebSocketClient();
      const recorder = new Recorder();
      await client.connect(url, { listener: recorder });
      await client.stop(1000);
      const [code] = await recorder.closed;
      t.equal(code, 1001);
      t.equal(client.stats().open, 0);
      t.ok(await eventually(() => log.closes.length === 1));
      t.equal(log.closes[0]![0], 1001, 'the server saw going away');
      await expectHandshakeError(t, client.connect(url), 'WS_CLIENT_STOPPED');
    });
  });
}

// ------------------------------------------------------------------------------------------------ the request

t.test('the upgrade request carries the handshake fields, the options and the URL', async (t) => {
  const raw = await rawServer(t, (socket, key) => socket.write(switching(key, 'Sec-WebSocket-Protocol: b\r\n')));
  const client = newClient(t);
  const port = new URL(raw.url).port;
  const session = await client.connect(`ws://user:p%40ss@${HOST}:${port}/a/b?x=1&y=2`, {
    protocols: ['a', 'b'],
    origin: 'http://example.test',
    headers: { 'X-Trace': 'abc', Cookie: 'k=v' },
  });
  t.equal(session.protocol, 'b');
  const head = raw.heads[0]!;
  const lines = head.split('\r\n');
  t.equal(lines[0], 'GET /a/b?x=1&y=2 HTTP/1.1');
  t.equal(lines[1], `Host: ${HOST}:${port}`, 'Host first, with the port');
  t.match(head, /\r\nUpgrade: websocket\r\n/);
  t.match(head, /\r\nConnection: Upgrade(\r\n|$)/);
  t.match(head, /\r\nSec-WebSocket-Version: 13\r\n/);
  t.match(head, /\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n/, '16 random bytes in base64');
  t.match(head, /\r\nSec-WebSocket-Protocol: a, b\r\n/);
  t.match(head, /\r\nOrigin: http:\/\/example.test\r\n/);
  t.match(head, /\r\nX-Trace: abc\r\n/);
  t.match(head, /\r\nCookie: k=v\r\n/);
  t.match(head, `\r\nAuthorization: Basic ${Buffer.from('user:p@ss').toString('base64')}`, 'user information becomes Basic auth');
  t.notMatch(head, /Sec-WebSocket-Extensions/i, 'no extension offered');
  session.terminate();

  const keys = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const s = await client.connect(raw.url, { protocols: 'b' });
    keys.add(/^sec-websocket-key: *(.*)$/im.exec(raw.heads.at(-1)!)![1]!);
    s.terminate();
  }
  t.equal(keys.size, 20, 'a fresh key per connection (RFC 6455 §4.1 item 7)');
});

t.test('URL parsing: default port, IPv6, path and query, refused schemes', async (t) => {
  const a = parseWebSocketUrl('ws://example.test/chat?x=1');
  t.same([a.host, a.port, a.hostHeader, a.requestTarget, a.path], ['example.test', 80, 'example.test', '/chat?x=1', '/chat']);
  const b = parseWebSocketUrl('ws://[::1]:9001');
  t.same([b.host, b.port, b.hostHeader, b.requestTarget], ['::1', 9001, '[::1]:9001', '/'], 'IPv6 without brackets to connect, with them in Host');
  const c = parseWebSocketUrl(new URL('http://127.0.0.1:8080/x'));
  t.same([c.host, c.port, c.requestTarget], ['127.0.0.1', 8080, '/x'], 'http: is a synonym of ws:');
  const d = parseWebSocketUrl('wss://example.test/chat');
  t.same([d.secure, d.host, d.port, d.hostHeader], [true, 'example.test', 443, 'example.test'], 'wss: port 443 by default');
  const e = parseWebSocketUrl('https://example.test:8443/');
  t.same([e.secure, e.port, e.hostHeader], [true, 8443, 'example.test:8443'], 'https: is a synonym of wss:');
  t.equal(a.secure, false);
  const client = newClient(t);
  await expectHandshakeError(t, client.connect('ftp://127.0.0.1/'), 'WS_INVALID_URL');
  await expectHandshakeError(t, client.connect('ws://127.0.0.1/#frag'), 'WS_INVALID_URL');
  await expectHandshakeError(t, client.connect('not a url'), 'WS_INVALID_URL');
  await expectHandshakeError(t, client.connect('ws://a%zz@127.0.0.1/'), 'WS_INVALID_URL');
  t.equal(client.stats().connected, 0, 'nothing was connected');
});

t.test('invalid options reject before connecting', async (t) => {
  const client = newClient(t);
  const url = `ws://${HOST}:1/`;
  await t.rejects(client.connect(url, { protocols: ['a b'] }), TypeError);
  await t.rejects(client.connect(url, { protocols: ['a', 'a'] }), TypeError);
  await t.rejects(client.connect(url, { headers: { Upgrade: 'h2c' } }), TypeError);
  await t.rejects(client.connect(url, { headers: { 'Sec-WebSocket-Key': 'x' } }), TypeError);
  await t.rejects(client.connect(url, { headers: { 'X-Bad': 'a\r\nInjected: yes' } }), { code: 'HTTP_INVALID_FIELD_VALUE' });
  await t.rejects(client.connect(url, { maxFrameBytes: -1 }), RangeError);
  await t.rejects(client.connect(url, { handshakeTimeoutMs: -1 }), RangeError);
  await t.rejects(client.connect(url, { overflow: 'drop' as 'reject' }), TypeError);
  t.equal(client.stats().connected, 0);
  t.equal(client.pendingHandshakes, 0);
});

// ------------------------------------------------------------------------------------------------ the 101 segment

t.test('frames the server sends in the same segment as the 101 reach the session, after onOpen', async (t) => {
  const server = new FrameGenerator({ role: 'server' });
  const raw = await rawServer(t, (socket, key) => {
    const frames = [...server.encodeText('early'), ...server.encode(2, Buffer.from([7, 8, 9])), ...server.encodeClose(4002, 'early close')];
    socket.write(Buffer.concat([Buffer.from(switching(key), 'latin1'), ...frames])); // one write, one segment
    socket.on('data', () => {}); // the client's echo of the close
    socket.on('end', () => socket.end());
  });
  const client = newClient(t);
  const recorder = new Recorder();
  await client.connect(raw.url, { listener: recorder });
  t.same(await recorder.closed, [4002, 'early close']);
  t.same(recorder.events, ['open', 'text:early', 'binary:3', 'close:4002'], 'in order, nothing lost');
  t.ok(await eventually(() => client.stats().open === 0 && raw.closed() === 1), 'both sides closed');
});

t.test('a 101 arriving byte by byte, then a frame', async (t) => {
  const server = new FrameGenerator({ role: 'server' });
  const raw = await rawServer(t, (socket, key) => {
    const bytes = Buffer.concat([Buffer.from(switching(key), 'latin1'), ...server.encodeText('dribbled')]);
    let i = 0;
    const drip = (): void => {
      if (i >= bytes.length || socket.destroyed) return;
      socket.write(bytes.subarray(i, i + 7));
      i += 7;
      setImmediate(drip);
    };
    drip();
  });
  const client = newClient(t);
  const recorder = new Recorder();
  const session = await client.connect(raw.url, { listener: recorder });
  t.equal(await recorder.next(), 'dribbled');
  session.terminate();
});

// ------------------------------------------------------------------------------------------------ handshake failures

/** Connects to a raw server that answers with `answer`; expects `code`, and that nothing stays open. */
async function failure(
  t: Test,
  code: HandshakeErrorCode,
  answer: (socket: Socket, key: string) => void,
  options: WebSocketConnectOptions = {},
  client = newClient(t),
): Promise<HandshakeError> {
  const raw = await rawServer(t, answer);
  const recorder = new Recorder();
  const error = await expectHandshakeError(t, client.connect(raw.url, { ...options, listener: recorder }), code);
  t.same(recorder.events, [], 'the listener saw nothing');
  t.equal(client.pendingHandshakes, 0);
  t.ok(await eventually(() => client.stats().open === 0 && raw.closed() === 1), 'the socket is closed on both sides');
  return error;
}

t.test('a 200 answer: WS_HANDSHAKE_STATUS with the status and the body', async (t) => {
  const error = await failure(t, 'WS_HANDSHAKE_STATUS', (socket) =>
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello'),
  );
  t.equal(error.status, 200);
  t.equal(error.body.toString(), 'hello');
  t.match(error.message, /200 OK/);
});

t.test('a refusal with a close-delimited body', async (t) => {
  const error = await failure(t, 'WS_HANDSHAKE_STATUS', (socket) => socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nno such room'));
  t.equal(error.status, 404);
  t.equal(error.body.toString(), 'no such room');
});

t.test('a refusal with a large body keeps the first 4 KiB and does not wait for the rest', async (t) => {
  const error = await failure(t, 'WS_HANDSHAKE_STATUS', (socket) =>
    socket.write(`HTTP/1.1 502 Bad Gateway\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(10_000)}`),
  );
  t.equal(error.status, 502);
  t.equal(error.body.length, MAX_ERROR_BODY_BYTES);
});

t.test('a quay server refusing the upgrade (403 from accept)', async (t) => {
  const { url } = await quayTarget.start(t);
  const client = newClient(t);
  const error = await expectHandshakeError(t, client.connect(`${url}/refuse`), 'WS_HANDSHAKE_STATUS');
  t.equal(error.status, 403);
  t.equal(error.body.toString(), 'go away\n');
  t.ok(await eventually(() => client.stats().open === 0));
});

t.test('a wrong Sec-WebSocket-Accept', async (t) => {
  await failure(t, 'WS_HANDSHAKE_ACCEPT', (socket) => socket.write(switching('dGhlIHNhbXBsZSBub25jZQ==')));
});

t.test('a missing Sec-WebSocket-Accept', async (t) => {
  await failure(t, 'WS_HANDSHAKE_ACCEPT', (socket) =>
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
  );
});

t.test('a 101 without Upgrade: websocket, or without Connection: Upgrade', async (t) => {
  await failure(t, 'WS_HANDSHAKE_UPGRADE', (socket, key) =>
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`),
  );
  await failure(t, 'WS_HANDSHAKE_UPGRADE', (socket, key) =>
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`),
  );
});

t.test('a subprotocol that was not offered', async (t) => {
  const e1 = await failure(t, 'WS_HANDSHAKE_PROTOCOL', (socket, key) => socket.write(switching(key, 'Sec-WebSocket-Protocol: other\r\n')), {
    protocols: ['chat'],
  });
  t.match(e1.message, /other/);
  await failure(t, 'WS_HANDSHAKE_PROTOCOL', (socket, key) => socket.write(switching(key, 'Sec-WebSocket-Protocol: chat\r\n')));
  await failure(t, 'WS_HANDSHAKE_PROTOCOL', (socket, key) => socket.write(switching(key, 'Sec-WebSocket-Protocol: a, b\r\n')), {
    protocols: ['a', 'b'],
  });
});

t.test('an extension that was not offered', async (t) => {
  await failure(t, 'WS_HANDSHAKE_EXTENSION', (socket, key) => socket.write(switching(key, 'Sec-WebSocket-Extensions: permessage-deflate\r\n')));
});

t.test('permessage-deflate offered: the offer, and answers that break RFC 7692 fail the handshake', async (t) => {
  const raw = await rawServer(t, (socket, key) => socket.write(switching(key)));
  const client = newClient(t);
  const session = await client.connect(raw.url, { perMessageDeflate: true });
  t.match(raw.heads[0], /\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover(\r\n|$)/, 'the offer');
  t.equal(session.extensions, '', 'a server may decline: no compression');
  session.terminate();
  for (const answer of [
    'permessage-deflate; client_max_window_bits=10', // not offered (§7.1.2.2)
    'permessage-deflate; server_max_window_bits=16',
    'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
    'permessage-deflate; foo',
    'permessage-deflate, permessage-deflate',
    'x-webkit-deflate-frame',
    'permessage-deflate; ;',
  ]) {
    const error = await failure(t, 'WS_HANDSHAKE_EXTENSION', (socket, key) => socket.write(switching(key, `Sec-WebSocket-Extensions: ${answer}\r\n`)), {
      perMessageDeflate: true,
    });
    t.ok(error.message.length > 0, `${answer}: ${error.message}`);
  }
});

t.test('permessage-deflate offer parameters (RFC 7692 §7): offered, and answers that do not honour them fail', async (t) => {
  const raw = await rawServer(t, (socket, key) => socket.write(switching(key)));
  const client = newClient(t);
  const offer = { serverNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12 };
  const session = await client.connect(raw.url, { perMessageDeflate: offer });
  t.match(
    raw.heads[0],
    /\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12(\r\n|$)/,
    'every parameter offered',
  );
  session.terminate();
  for (const [answer, options] of [
    ['permessage-deflate; server_max_window_bits=10', offer], // server_no_context_takeover asked, not granted
    ['permessage-deflate; server_no_context_takeover', offer], // a 15-bit window where 10 was asked
    ['permessage-deflate; server_no_context_takeover; server_max_window_bits=11', offer],
    ['permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=13', offer],
    ['permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits', offer],
    ['permessage-deflate; client_max_window_bits=8', { clientMaxWindowBits: true }], // zlib cannot deflate with 8
  ] as const) {
    const error = await failure(t, 'WS_HANDSHAKE_EXTENSION', (socket, key) => socket.write(switching(key, `Sec-WebSocket-Extensions: ${answer}\r\n`)), {
      perMessageDeflate: options,
    });
    t.ok(error.message.length > 0, `${answer}: ${error.message}`);
  }
  t.throws(() => resolveDeflateSettings({ serverMaxWindowBits: 8 }), RangeError);
  t.throws(() => resolveDeflateSettings({ clientMaxWindowBits: 16 }), RangeError);
});

t.test('permessage-deflate offer parameters against ws: granted, and messages flow with the agreed windows', async (t) => {
  const wss = new WebSocketServer({ host: HOST, port: 0, perMessageDeflate: { threshold: 0, clientMaxWindowBits: 10 } });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  await new Promise((resolve) => wss.once('listening', resolve));
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  const port = (wss.address() as { port: number }).port;
  const client = newClient(t);
  const got: string[] = [];
  const session = await client.connect(`ws://${HOST}:${port}/`, {
    perMessageDeflate: { threshold: 0, serverNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: true },
    listener: { onText: (_s, text) => void got.push(text) },
  });
  t.match(session.extensions, /server_no_context_takeover/);
  t.match(session.extensions, /server_max_window_bits=11/);
  t.match(session.extensions, /client_max_window_bits=10/, 'ws limited our window');
  const text = 'a fairly repetitive message '.repeat(200);
  for (let i = 0; i < 5; i++) await session.sendText(`${i} ${text}`);
  await within(until(() => got.length === 5, 3000, 'five echoes'), 4000, 'echoes');
  t.same(got.map((m) => m.slice(0, 2)), ['0 ', '1 ', '2 ', '3 ', '4 ']);
  t.ok(got.every((m) => m.endsWith(text)), 'intact both ways');
  session.close(1000);
});

t.test('garbage instead of HTTP', async (t) => {
  const error = await failure(t, 'WS_HANDSHAKE_MALFORMED', (socket) => socket.write('SSH-2.0-OpenSSH_9.6\r\n\r\n'));
  t.ok(error.cause instanceof Error, 'the parse error is the cause');
});

t.test('the server closes in the middle of the response head', async (t) => {
  await failure(t, 'WS_HANDSHAKE_CLOSED', (socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgr'));
});

t.test('a server that never answers: WS_HANDSHAKE_TIMEOUT', async (t) => {
  const client = newClient(t, 20);
  await failure(t, 'WS_HANDSHAKE_TIMEOUT', () => {}, { handshakeTimeoutMs: 100 }, client);
});

t.test('a server that dribbles its head forever still times out (the deadline is not reset by activity)', async (t) => {
  const client = newClient(t, 20);
  await failure(
    t,
    'WS_HANDSHAKE_TIMEOUT',
    (socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\n');
      let n = 0;
      const timer = setInterval(() => {
        if (socket.destroyed || ++n > 200) return clearInterval(timer);
        socket.write(`X-${n}: y\r\n`);
      }, 10);
      socket.on('close', () => clearInterval(timer));
    },
    { handshakeTimeoutMs: 150 },
    client,
  );
});

t.test('connection refused on a closed port: WS_CONNECT_FAILED', async (t) => {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, HOST, resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const client = newClient(t);
  const error = await expectHandshakeError(t, client.connect(`ws://${HOST}:${port}/`), 'WS_CONNECT_FAILED');
  t.equal((error.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  t.equal(client.stats().open, 0);
  t.equal(client.pendingHandshakes, 0);
});

t.test('stop() during a handshake fails it with WS_CLIENT_STOPPED and closes the socket', async (t) => {
  const raw = await rawServer(t, () => {});
  const client = new WebSocketClient();
  const pending = client.connect(raw.url);
  t.ok(await eventually(() => raw.heads.length === 1), 'the request arrived');
  const stopped = client.stop(500);
  await expectHandshakeError(t, pending, 'WS_CLIENT_STOPPED');
  await stopped;
  t.ok(await eventually(() => raw.closed() === 1));
});

// ------------------------------------------------------------------------------------------------ the rest

t.test('the static connect uses the default client', async (t) => {
  const { url } = await quayTarget.start(t);
  const recorder = new Recorder();
  const session = await WebSocketClient.connect(url, { listener: recorder });
  t.equal(WebSocketClient.default.stats().open, 1);
  await session.sendText('via default');
  t.equal(await recorder.next(), 'via default');
  session.close();
  await recorder.closed;
  t.ok(await eventually(() => WebSocketClient.default.stats().open === 0));
});

t.test('session options apply to client sessions (idle timeout closes with 1001)', async (t) => {
  const { url } = await quayTarget.start(t);
  const client = newClient(t, 20);
  const recorder = new Recorder();
  const session = await client.connect(url, { listener: recorder, idleTimeoutMs: 80 });
  t.equal(session.idleTimeoutMs, 80);
  const [code] = await recorder.closed;
  t.equal(code, 1001, 'the client closed the idle session, going away');
});

t.test('localAddress picks the source address', { skip: process.platform !== 'linux' && 'needs 127.0.0.0/8 on loopback (Linux)' }, async (t) => {
  const { url, log } = await wsTarget.start(t);
  const client = newClient(t);
  const session = await client.connect(url, { localAddress: '127.0.0.2' });
  t.same(log.remotes, ['127.0.0.2']);
  session.close();
  t.ok(await eventually(() => client.stats().open === 0));
});
