/**
 * Benchmark target for `npm run bench:fanout-cluster`: Socket.IO 4 on node:http with @socket.io/redis-adapter (on a
 * node-redis client and its duplicate), the setup users pick to fan out across processes. Every connection with
 * `?role=sub` joins the room `fanout`; a `pub` event (any client) or `POST /publish` (body: the payload) is emitted
 * to the room with `io.to('fanout').emit('m', payload)`, which the adapter publishes through Redis to every other
 * instance. `?role=pub` connections publish without joining. The transport is WebSocket only (`transports:
 * ['websocket']`, the clients ask for it too): no HTTP long-polling, the like-for-like comparison with a WebSocket
 * server. Per-message deflate off (Socket.IO's default). Prints `listening PORT`; `--port N`, `--redis URL`
 * (without it: the in-memory adapter, this process only). `/stats`: the process's memory as JSON.
 *
 *   node dist/perf/servers/fanout-socketio.js --redis redis://127.0.0.1:6379 [--port 0]
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';
import { announce, exitOnSignal, exitWhenParentGoes, serverPort, serverRedisUrl } from './args.js';
import { memoryStatsJson } from './stats.js';

exitOnSignal();
exitWhenParentGoes();
const redisUrl = serverRedisUrl();

const ROOM = 'fanout';
let published = 0;
/**
 * The adapter does not wait for its PUBLISH (`pubClient.publish(...)` is not awaited): when node-redis rejects one
 * (its default command timeout, 5 s, on an overloaded process), the rejection is unhandled and would end the
 * process. A user keeps the server alive with a handler like this one; the messages are lost, counted in /stats.
 */
let unhandledRejections = 0;
process.on('unhandledRejection', (reason) => {
  if (unhandledRejections++ === 0) console.error(`fanout-socketio: unhandled rejection (counted in /stats): ${String(reason)}`);
});

const http = createServer((req, res) => {
  if (req.url === '/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const memory = JSON.parse(memoryStatsJson()) as object;
    res.end(`${JSON.stringify({ ...memory, members: io.sockets.adapter.rooms.get(ROOM)?.size ?? 0, published, unhandledRejections })}\n`);
    return;
  }
  if (req.url === '/publish' && req.method === 'POST') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      published++;
      io.to(ROOM).emit('m', body);
      res.writeHead(204).end();
    });
    return;
  }
  // Socket.IO answers its own path (/socket.io/) before this listener runs.
  res.writeHead(404).end();
});

const io = new Server(http, { transports: ['websocket'], serveClient: false });
if (redisUrl !== undefined) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on('error', (e: Error) => console.error(`redis publisher: ${e.message}`));
  sub.on('error', (e: Error) => console.error(`redis subscriber: ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on('connection', (socket) => {
  if (socket.handshake.query['role'] !== 'pub') void socket.join(ROOM);
  socket.on('pub', (payload: string) => {
    published++;
    io.to(ROOM).emit('m', payload);
  });
});

http.listen(serverPort(), '127.0.0.1', () => {
  const address = http.address();
  announce(typeof address === 'object' && address !== null ? address.port : 0);
});
