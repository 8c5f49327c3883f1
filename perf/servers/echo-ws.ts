/**
 * Benchmark peer: the `ws` library on node:http, the same routes as echo-quay: WebSocket echo at /echo (relays the
 * Buffer it receives), the echo through strings at /echo-string (text decoded and sent as a string), broadcast
 * at /broadcast (the loop of ws's README: `send` to every open client, each encoding its own frame), HTTP hello at
 * /hello, memory at /stats and a heap snapshot at /heapsnapshot (node:http, stats.ts). perMessageDeflate is off,
 * as in quay, except on /echo-deflate (the echo with ws's permessage-deflate, threshold 1024 as quay's, accepted
 * when the client offers it). Prints `listening PORT`; `--port N`; `--tls`: ws on node:https (https and wss, the
 * test certificate of args.ts).
 *
 *   node [--expose-gc] dist/perf/servers/echo-ws.js [--port 0] [--tls]
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import type { RawData } from 'ws';
import { announce, exitOnSignal, serverPort, serverTls } from './args.js';
import { heapSnapshotPath, memoryStatsJson } from './stats.js';

exitOnSignal();

const hello = Buffer.from('hello world\n');
function onRequest(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/stats' || req.url === '/heapsnapshot') {
    const body = req.url === '/stats' ? memoryStatsJson() : heapSnapshotPath();
    res.writeHead(200, { 'Content-Type': req.url === '/stats' ? 'application/json' : 'text/plain', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', hello.length);
  res.end(hello);
}
const tls = serverTls();
const server = tls === undefined ? createServer(onRequest) : createHttpsServer(tls, onRequest);
server.keepAliveTimeout = 60_000;

// clientTracking off for /echo (nothing needs the set); on for /broadcast, whose `clients` is the room.
const echo = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
const room = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true });
const echoString = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
const echoDeflate = new WebSocketServer({ noServer: true, perMessageDeflate: { threshold: 1024 }, clientTracking: false });

function onEchoMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  this.send(data, { binary: isBinary });
}
function onRoomMessage(data: RawData, isBinary: boolean): void {
  for (const client of room.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
  }
}
/** /echo-string: text decoded to a string and sent as one, as quay's /echo-string does (ws hands out Buffers). */
function onEchoStringMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  this.send(isBinary ? data : (data as Buffer).toString('utf8'), { binary: isBinary });
}
function ignore(): void {}

echo.on('connection', (ws: WebSocket) => {
  ws.on('message', onEchoMessage);
  ws.on('error', ignore);
});
echoString.on('connection', (ws: WebSocket) => {
  ws.on('message', onEchoStringMessage);
  ws.on('error', ignore);
});
echoDeflate.on('connection', (ws: WebSocket) => {
  ws.on('message', onEchoMessage);
  ws.on('error', ignore);
});
room.on('connection', (ws: WebSocket) => {
  ws.on('message', onRoomMessage);
  ws.on('error', ignore);
});

server.on('upgrade', (req, socket, head) => {
  const target =
    req.url === '/echo' ? echo : req.url === '/broadcast' ? room : req.url === '/echo-deflate' ? echoDeflate : req.url === '/echo-string' ? echoString : undefined;
  if (target === undefined) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
});

server.listen(serverPort(), '127.0.0.1', () => announce((server.address() as AddressInfo).port));
