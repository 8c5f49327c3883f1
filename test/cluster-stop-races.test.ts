/**
 * The races of a graceful stop that a rolling restart runs into (lib/cluster's goal: 0 refused connections), on one
 * plain Server: a connection accepted just before stop() whose request is still on its way is answered (not
 * reset), a silent one is closed after the first-request grace (not held until the stop's deadline), and a first
 * request that is a WebSocket upgrade gets its session and then 1001.
 */
import t from 'tap';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Router, Server, WebSocketUpgradeHandler } from '../lib/index.js';
import { closeCodeOf, parseFrames, until, within } from './support/wsRaw.js';

const HOST = '127.0.0.1';

async function started(handlerText = 'ok') {
  const ws = new WebSocketUpgradeHandler({ accept: () => ({ onOpen: (session) => void session.sendText('hi') }) });
  const server = new Server({ port: 0, host: HOST, idleTickMs: 100 }, new Router().route('/ws', ws).route('/', (_req, res) => void res.send(200, handlerText)));
  const { port } = await server.start();
  return { server, port };
}

/** A connection the server has accepted (counted open) and that has sent nothing; collects what it receives. */
async function freshConnection(server: Server, port: number): Promise<{ socket: Socket; received: () => Buffer; closed: Promise<void> }> {
  const socket = connect({ host: HOST, port });
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  socket.on('data', (b: Buffer) => void chunks.push(b));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  await until(() => server.stats().open === 1, 3000, 'the server accepted');
  return { socket, received: () => Buffer.concat(chunks), closed };
}

t.test('a request that arrives just after stop() began, on a connection accepted before, is answered', async (t) => {
  const { server, port } = await started();
  const client = await freshConnection(server, port);
  const stopped = server.stop(10_000);
  await until(() => server.selectorManager.state === 'STOPPING', 1000, 'stopping');
  client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await within(client.closed, 5000, 'the connection closed');
  const response = client.received().toString('latin1');
  t.match(response, /^HTTP\/1\.1 200 /, 'answered, not reset');
  t.match(response, /\r\nconnection: close\r\n/i, 'as its last response');
  await stopped;
  t.equal(server.stats().errors, 0);
});

t.test('a connection that sends nothing is closed after the first-request grace, not at the stop deadline', async (t) => {
  const { server, port } = await started();
  const client = await freshConnection(server, port);
  const stopped = server.stop(20_000);
  await within(stopped, 8000, 'the stop');
  t.equal(server.stats().idleExpired, 1, 'closed by the idle sweep (the grace), not forced at the deadline');
  t.equal(server.stats().errors, 0);
  await within(client.closed, 1000, 'the client saw the close');
});

t.test('a first request that is a WebSocket upgrade during the stop: the session opens, then gets 1001', async (t) => {
  const { server, port } = await started();
  const client = await freshConnection(server, port);
  const stopped = server.stop(10_000);
  await until(() => server.selectorManager.state === 'STOPPING', 1000, 'stopping');
  client.socket.write(
    `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await until(() => client.received().includes('\r\n\r\n') && parseFrames(client.received().subarray(client.received().indexOf('\r\n\r\n') + 4)).length >= 2, 5000, 'the 101, a message and a close');
  const bytes = client.received();
  const end = bytes.indexOf('\r\n\r\n');
  t.match(bytes.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 101 /);
  const frames = parseFrames(bytes.subarray(end + 4));
  t.equal(frames[0]?.payload.toString(), 'hi', 'onOpen ran');
  t.equal(closeCodeOf(frames[1]), 1001, 'then going away');
  client.socket.destroy();
  await stopped;
});
