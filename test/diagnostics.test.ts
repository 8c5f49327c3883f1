/**
 * quay's node:diagnostics_channel channels: what a tracer subscribed by name sees for a request, an upgrade, a
 * WebSocket session and an error, in order.
 */
import t from 'tap';
import type { Test } from 'tap';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { QUAY_CHANNELS, Router, Server, WebSocketUpgradeHandler } from '../lib/index.js';
import type { EndPoint, Request, Response, WebSocketSession } from '../lib/index.js';
import { HOST, until, within } from './support/wsRaw.js';

interface Seen {
  channel: string;
  message: Record<string, unknown>;
}

function record(t: Test): Seen[] {
  const seen: Seen[] = [];
  for (const name of Object.values(QUAY_CHANNELS)) {
    const onMessage = (message: unknown): void => void seen.push({ channel: name, message: message as Record<string, unknown> });
    subscribe(name, onMessage);
    t.teardown(() => void unsubscribe(name, onMessage));
  }
  return seen;
}

t.test('a request, an upgrade to WebSocket, a session and an error, as a subscriber sees them', async (t) => {
  const seen = record(t);
  const server = new Server(
    { port: 0, host: HOST, onError: () => {} },
    new Router()
      .route('/ws', new WebSocketUpgradeHandler({ accept: () => ({ onText: (session, text) => void session.sendText(text) }) }))
      .route('/hello', (_request, response) => response.send(200, 'hello')),
  );
  const { port } = await server.start();
  t.teardown(() => server.stop(500));

  t.equal(await fetch(`http://${HOST}:${port}/hello`, { headers: { connection: 'close' } }).then((r) => r.text()), 'hello');
  await until(() => seen.some((s) => s.channel === QUAY_CHANNELS.connectionClose), 3000, 'the close');
  const http = seen.splice(0).map((s) => s.channel);
  t.same(http, [QUAY_CHANNELS.connectionOpen, QUAY_CHANNELS.requestStart, QUAY_CHANNELS.requestFinish, QUAY_CHANNELS.connectionClose]);

  const client = new WebSocket(`ws://${HOST}:${port}/ws`);
  t.teardown(() => client.terminate());
  await within(new Promise((resolve) => client.once('open', resolve)), 3000, 'open');
  client.send('ping');
  await within(new Promise((resolve) => client.once('message', resolve)), 3000, 'echo');
  client.close(4001, 'done');
  await until(() => seen.some((s) => s.channel === QUAY_CHANNELS.connectionClose), 3000, 'the close');
  t.same(
    seen.map((s) => s.channel),
    [
      QUAY_CHANNELS.connectionOpen,
      QUAY_CHANNELS.requestStart,
      QUAY_CHANNELS.requestFinish, // the 101
      QUAY_CHANNELS.upgrade,
      QUAY_CHANNELS.websocketOpen,
      QUAY_CHANNELS.websocketClose,
      QUAY_CHANNELS.connectionClose,
    ],
  );
  const start = seen.find((s) => s.channel === QUAY_CHANNELS.requestStart)!.message as { request: Request; response: Response; endPoint: EndPoint };
  t.equal(start.request.path, '/ws');
  t.equal(start.endPoint.remoteAddress, HOST);
  const finish = seen.find((s) => s.channel === QUAY_CHANNELS.requestFinish)!.message as { response: Response };
  t.equal(finish.response.status, 101);
  const open = seen.find((s) => s.channel === QUAY_CHANNELS.websocketOpen)!.message as { session: WebSocketSession };
  const close = seen.find((s) => s.channel === QUAY_CHANNELS.websocketClose)!.message as { session: WebSocketSession; code: number; reason: string };
  t.equal(close.session, open.session, 'the same session');
  t.same([close.code, close.reason], [4001, 'done']);
  seen.splice(0);

  // A bad request: reported to onError, and published on the error channel.
  const socket = connect({ host: HOST, port });
  socket.on('error', () => {});
  t.teardown(() => void socket.destroy());
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
  await until(() => seen.some((s) => s.channel === QUAY_CHANNELS.error), 3000, 'the error');
  const error = seen.find((s) => s.channel === QUAY_CHANNELS.error)!.message as { error: Error; kind: string };
  t.equal(error.kind, 'bad-request');
  t.ok(error.error instanceof Error);
});

t.test('without subscribers nothing is published (hasSubscribers)', async (t) => {
  const server = new Server({ port: 0, host: HOST }, (_request, response) => response.send(200, 'ok'));
  const { port } = await server.start();
  t.teardown(() => server.stop(500));
  t.equal(await fetch(`http://${HOST}:${port}/`).then((r) => r.text()), 'ok');
});
