/**
 * quay's WHATWG WebSocket (lib/websocket/WebSocket.ts) against a quay echo server: the browser API's states,
 * events, binary types and errors, so that code written for browsers or Node 22's global WebSocket runs on it.
 */
import t from 'tap';
import type { Test } from 'tap';
import { Blob } from 'node:buffer';
import { CloseEvent, Router, Server, WebSocket, WebSocketUpgradeHandler } from '../lib/index.js';
import type { WebSocketMessageEvent } from '../lib/index.js';
import { HOST, until, within } from './support/wsRaw.js';

async function echoServer(t: Test) {
  const server = new Server(
    { port: 0, host: HOST },
    new Router().route(
      '/echo',
      new WebSocketUpgradeHandler({
        subprotocols: ['chat', 'other'],
        accept: () => ({
          onText: (session, text) => void session.send(text),
          onBinary: (session, data) => void session.send(data),
        }),
      }),
    ),
  );
  const { port } = await server.start();
  t.teardown(() => server.stop(500));
  return { server, url: `ws://${HOST}:${port}/echo` };
}

function next<E extends Event>(socket: WebSocket, type: string): Promise<E> {
  return within(new Promise<E>((resolve) => socket.addEventListener(type, (e) => resolve(e as E), { once: true })), 3000, `a ${type} event`);
}

t.test('open, text and binary messages, the states and the close handshake', async (t) => {
  const { url } = await echoServer(t);
  const socket = new WebSocket(url, ['chat']);
  t.equal(socket.readyState, WebSocket.CONNECTING);
  t.equal(socket.binaryType, 'blob', 'the standard default');
  t.throws(() => socket.send('too early'), { name: 'InvalidStateError' });
  const opened: string[] = [];
  socket.onopen = () => void opened.push('onopen');
  await next(socket, 'open');
  t.same(opened, ['onopen'], 'the attribute handler ran');
  t.equal(socket.readyState, WebSocket.OPEN);
  t.equal(socket.protocol, 'chat');
  t.equal(socket.url, url);

  const messages: unknown[] = [];
  socket.onmessage = (event) => void messages.push(event.data);
  socket.send('hello');
  const bytes = new Uint8Array([9, 1, 2, 3, 9]);
  socket.send(bytes.subarray(1, 4)); // a view: only its bytes
  socket.send(new Uint8Array([4, 5]).buffer);
  socket.send(new DataView(new Uint8Array([6]).buffer));
  await until(() => messages.length === 4, 3000, 'four echoes');
  t.equal(messages[0], 'hello');
  t.ok(messages[1] instanceof Blob, 'binary as Blob by default');
  t.same([...new Uint8Array(await (messages[1] as Blob).arrayBuffer())], [1, 2, 3]);
  t.same([...new Uint8Array(await (messages[2] as Blob).arrayBuffer())], [4, 5]);
  t.same([...new Uint8Array(await (messages[3] as Blob).arrayBuffer())], [6]);

  socket.binaryType = 'arraybuffer';
  socket.send(new Uint8Array([7, 8]));
  const ab = await next<WebSocketMessageEvent>(socket, 'message');
  t.ok(ab.data instanceof ArrayBuffer);
  t.same([...new Uint8Array(ab.data as ArrayBuffer)], [7, 8]);
  t.equal(ab.origin, new URL(url).origin);
  socket.binaryType = 'nodebuffer';
  socket.binaryType = 'bogus' as never; // ignored, as the standard says
  socket.send(new Uint8Array([1]));
  const nb = await next<WebSocketMessageEvent>(socket, 'message');
  t.ok(Buffer.isBuffer(nb.data));

  t.throws(() => socket.close(1001), { name: 'InvalidAccessError' }, 'only 1000 and 3000-4999');
  t.throws(() => socket.close(1000, 'x'.repeat(124)), { name: 'SyntaxError' });
  const closed = next<CloseEvent>(socket, 'close');
  socket.close(4000, 'bye');
  t.equal(socket.readyState, WebSocket.CLOSING);
  const event = await closed;
  t.ok(event instanceof CloseEvent);
  t.same([event.code, event.wasClean], [4000, true], "the server's answer: our code echoed");
  t.equal(socket.readyState, WebSocket.CLOSED);
  socket.send('discarded');
  t.equal(socket.bufferedAmount, 9, 'sends after close are counted, not sent');
});

t.test('a Blob is sent in order with what follows it', async (t) => {
  const { url } = await echoServer(t);
  const socket = new WebSocket(url);
  socket.binaryType = 'nodebuffer';
  await next(socket, 'open');
  const got: string[] = [];
  socket.addEventListener('message', (e) => void got.push(String((e as WebSocketMessageEvent).data)));
  socket.send(new Blob(['first']));
  socket.send('second');
  socket.send(new Blob(['third']));
  socket.send('fourth');
  await until(() => got.length === 4, 3000, 'four echoes');
  t.same(got, ['first', 'second', 'third', 'fourth']);
  socket.close();
  await next(socket, 'close');
});

t.test('URL and subprotocol errors are SyntaxErrors from the constructor', async (t) => {
  t.throws(() => new WebSocket('ftp://127.0.0.1/x'), { name: 'SyntaxError' });
  t.throws(() => new WebSocket('ws://127.0.0.1/x#frag'), { name: 'SyntaxError' });
  t.throws(() => new WebSocket('not a url'), { name: 'SyntaxError' });
  t.throws(() => new WebSocket('ws://127.0.0.1:1/x', ['a', 'a']), { name: 'SyntaxError' });
  t.equal(new URL('http://x').protocol, 'http:');
});

t.test('a refused connection fires error then close 1006, not clean', async (t) => {
  const { server, url } = await echoServer(t);
  await server.stop(100);
  const socket = new WebSocket(url);
  const order: string[] = [];
  socket.onerror = () => void order.push('error');
  socket.onclose = (e) => void order.push(`close ${e.code} ${e.wasClean}`);
  await next(socket, 'close');
  t.same(order, ['error', 'close 1006 false']);
  t.equal(socket.readyState, WebSocket.CLOSED);
});

t.test('close() while connecting fails the connection: error, close 1006, no open', async (t) => {
  const { url } = await echoServer(t);
  const socket = new WebSocket(url);
  const order: string[] = [];
  socket.onopen = () => void order.push('open');
  socket.onerror = () => void order.push('error');
  socket.onclose = (e) => void order.push(`close ${e.code}`);
  socket.close();
  t.equal(socket.readyState, WebSocket.CLOSING);
  await next(socket, 'close');
  t.same(order, ['error', 'close 1006']);
});

t.test('a server that stops closes with 1001', async (t) => {
  const { server, url } = await echoServer(t);
  const socket = new WebSocket(url);
  await next(socket, 'open');
  const closed = next<CloseEvent>(socket, 'close');
  await server.stop(1000);
  const event = await closed;
  t.same([event.code, event.wasClean], [1001, true]);
});

t.test('wss:// with connect options in the second argument (protocols, ca)', async (t) => {
  const { testCertificates } = await import('../examples/certificates.js');
  const certs = testCertificates();
  const server = new Server(
    { port: 0, host: HOST, tls: { key: certs.server.key, cert: certs.server.cert } },
    new Router().route('/echo', new WebSocketUpgradeHandler({ subprotocols: ['chat'], accept: () => ({ onText: (s, text) => void s.send(text) }) })),
  );
  const { port } = await server.start();
  t.teardown(() => server.stop(500));
  // By IP (the server listens on 127.0.0.1 only), with the certificate's name given as SNI.
  const socket = new WebSocket(`https://${HOST}:${port}/echo`, { protocols: 'chat', ca: certs.ca.cert, servername: 'localhost' });
  t.equal(socket.url, `wss://${HOST}:${port}/echo`, 'https: is wss:');
  await next(socket, 'open');
  t.equal(socket.protocol, 'chat');
  socket.send('over tls');
  t.equal((await next<WebSocketMessageEvent>(socket, 'message')).data, 'over tls');
  socket.close();
  await next(socket, 'close');
});
