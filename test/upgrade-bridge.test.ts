import t from 'tap';
import type { Test } from 'tap';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { UpgradeBridge } from '../lib/http/UpgradeBridge.js';
import type { ServerErrorContext } from '../lib/http/Server.js';
import { WebSocketUpgradeHandler } from '../lib/websocket/WebSocketUpgradeHandler.js';
import { FrameGenerator } from '../lib/websocket/FrameGenerator.js';

const HOST = '127.0.0.1';

/** A node:http server whose upgrades go to quay through the bridge; plain requests answer 'plain'. */
async function start(t: Test, closes: number[] = []) {
  const errors: { error: Error; context: ServerErrorContext }[] = [];
  const handler = new WebSocketUpgradeHandler({
    accept: () => ({
      onText: (session, text) => void session.sendText(`echo ${text}`),
      onClose: (_session, code) => void closes.push(code),
    }),
  });
  const bridge = new UpgradeBridge(handler, { onError: (error, context) => void errors.push({ error, context }) });
  const server = createServer((_req, res) => res.end('plain\n'));
  server.on('upgrade', (req, socket, head) => bridge.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const port = (server.address() as AddressInfo).port;
  t.teardown(async () => {
    await bridge.stop(500);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { bridge, server, port, errors };
}

function once<T>(emitter: WebSocket, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args as T)));
}

t.test('a node:http server hands WebSocket upgrades to quay; plain requests stay with node:http', async (t) => {
  const closes: number[] = [];
  const { port, bridge } = await start(t, closes);
  const ws = new WebSocket(`ws://${HOST}:${port}/chat`);
  await once(ws, 'open');
  ws.send('hi');
  const [message] = await once<[Buffer]>(ws, 'message');
  t.equal(message.toString(), 'echo hi');
  ws.close(4000, 'bye');
  const [code] = await once<[number]>(ws, 'close');
  t.equal(code, 4000, 'the close handshake completes');
  t.same(closes, [4000], 'the session saw the peer code');
  t.equal(bridge.stats().accepted, 1, 'the socket was adopted');

  const body = await fetch(`http://${HOST}:${port}/`).then((r) => r.text());
  t.equal(body, 'plain\n');
});

t.test('frames sent in the same segment as the upgrade request are not lost', async (t) => {
  const { port } = await start(t);
  const frame = new FrameGenerator({ role: 'client' }).encodeText('early')[0]!;
  const request =
    `GET /x HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  const received = await new Promise<Buffer>((resolve) => {
    const socket = connect({ host: HOST, port });
    const chunks: Buffer[] = [];
    socket.on('error', () => {});
    socket.on('data', (b: Buffer) => {
      chunks.push(b);
      const all = Buffer.concat(chunks);
      if (all.includes('echo early')) {
        socket.destroy();
        resolve(all);
      }
    });
    socket.write(Buffer.concat([Buffer.from(request, 'latin1'), frame]));
    setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    }, 2000).unref();
  });
  const text = received.toString('latin1');
  t.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  t.match(text, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/, 'RFC 6455 sample key');
  t.ok(text.includes('echo early'), 'the early frame was echoed');
});

t.test('a bad handshake through the bridge gets quay’s specific status; stop() closes sessions with 1001', async (t) => {
  const { port, bridge } = await start(t);
  const bad = new WebSocket(`ws://${HOST}:${port}/x`, { protocolVersion: 8 });
  bad.on('error', () => {});
  const [, response] = await once<[unknown, { statusCode: number; headers: Record<string, string> }]>(bad, 'unexpected-response');
  t.equal(response.statusCode, 426, 'version 8 refused with 426');
  t.equal(response.headers['sec-websocket-version'], '13');
  bad.terminate();

  const ws = new WebSocket(`ws://${HOST}:${port}/x`);
  await once(ws, 'open');
  const closed = once<[number]>(ws, 'close');
  await bridge.stop(1000);
  const [code] = await closed;
  t.equal(code, 1001, 'going away');
});
