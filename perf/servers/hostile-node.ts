/**
 * Peer of perf/servers/hostile-quay.ts in `npm run bench:hostile`: node:http with ws 8 for the WebSocket routes,
 * the same routes and handlers written the node:http way (see hostile-quay.ts for what each does).
 *
 *   node dist/perf/servers/hostile-node.js [--port 0] [--header-timeout-ms 10000] [--request-timeout-ms 20000]
 *        [--max-message-bytes 67108864] [--tls [--tls-key FILE --tls-cert FILE] [--handshake-timeout-ms N]]
 *
 * `headersTimeout` and `requestTimeout` get the values quay gets as headerTimeoutMs and requestTimeoutMs (node
 * requires headersTimeout <= requestTimeout: the smaller is used), and `connectionsCheckingInterval` is 1 s, as
 * quay's idle sweep (node's default, 30 s, would let every deadline run up to 30 s late). `/stats` has the
 * memory, the event-loop delay and `server.getConnections()`.
 *
 * `--tls`: node:https instead of node:http (the same options and routes, ws on its `'upgrade'` event), with the key
 * and certificate of the files, or without them the `server` certificate of examples/certificates.ts;
 * `--handshake-timeout-ms` is its `handshakeTimeout` (node's default, 120 s, when absent). `/stats` then also has
 * `tlsClientErrors`, the `'tlsClientError'` events by error code (a listener beside https.Server's own, which
 * destroys the socket: counting changes nothing), and `getConnections()` counts the handshaking sockets too.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import type { RawData, WebSocket } from 'ws';
import { testCertificates } from '../../examples/certificates.js';
import { announce, exitOnSignal, serverPort } from './args.js';

exitOnSignal();

const { values } = parseArgs({
  options: {
    'header-timeout-ms': { type: 'string', default: '10000' },
    'request-timeout-ms': { type: 'string', default: '20000' },
    'max-message-bytes': { type: 'string', default: String(64 * 1024 * 1024) },
    tls: { type: 'boolean', default: false },
    'tls-key': { type: 'string' },
    'tls-cert': { type: 'string' },
    'handshake-timeout-ms': { type: 'string' },
  },
  strict: false,
});
const requestTimeout = Number(values['request-timeout-ms']);
const headersTimeout = Math.min(Number(values['header-timeout-ms']), requestTimeout > 0 ? requestTimeout : Infinity);
const maxPayload = Number(values['max-message-bytes']);

const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();

const hello = Buffer.from('hello world\n');
function helloHandler(res: ServerResponse): void {
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', hello.length);
  res.end(hello);
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  switch (url.pathname) {
    case '/late':
      setTimeout(() => res.end('x'), 50);
      return;
    case '/sync':
      res.end('x');
      return;
    case '/redirect':
      res.statusCode = 302;
      res.setHeader('Location', url.searchParams.get('next') ?? '/');
      res.end('x');
      return;
    case '/download':
      res.setHeader('Content-Disposition', 'attachment; filename="日.txt"');
      res.end('x');
      return;
    case '/slow-end':
      setTimeout(() => res.end('x'), 10);
      return;
    case '/upload': {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(`${n}\n`));
      return;
    }
    case '/stats': {
      server.getConnections((_error, connections) => {
        const m = process.memoryUsage();
        const body = JSON.stringify({
          rss: m.rss,
          heapUsed: m.heapUsed,
          external: m.external,
          eldMaxMs: eld.max / 1e6,
          eldP99Ms: eld.percentile(99) / 1e6,
          server: { connections },
          ...(tlsClientErrors === undefined ? {} : { tlsClientErrors }),
        });
        if (url.searchParams.get('reset') === '1') eld.reset();
        res.setHeader('Content-Type', 'application/json');
        res.end(`${body}\n`);
      });
      return;
    }
    default:
      helloHandler(res);
  }
}

const httpOptions = { requestTimeout, headersTimeout, connectionsCheckingInterval: 1000 };
/** With --tls: 'tlsClientError' events by code. */
let tlsClientErrors: Record<string, number> | undefined;
function tlsServer(): ReturnType<typeof createHttpsServer> {
  const key = values['tls-key'];
  const cert = values['tls-cert'];
  const pair = typeof key === 'string' && typeof cert === 'string' ? { key: readFileSync(key), cert: readFileSync(cert) } : testCertificates().server;
  const timeout = values['handshake-timeout-ms'];
  const s = createHttpsServer({ ...httpOptions, ...pair, ...(typeof timeout === 'string' ? { handshakeTimeout: Number(timeout) } : {}) }, handle);
  const counts: Record<string, number> = {};
  tlsClientErrors = counts;
  s.on('tlsClientError', (error: NodeJS.ErrnoException) => {
    const code = error.code ?? error.message;
    counts[code] = (counts[code] ?? 0) + 1;
  });
  return s;
}
const server = values.tls === true ? tlsServer() : createServer(httpOptions, handle);

const echo = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
const sink = new WebSocketServer({ noServer: true, perMessageDeflate: true, maxPayload, clientTracking: false });
function ignore(): void {}
echo.on('connection', (ws: WebSocket) => {
  ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  ws.on('error', ignore);
});
sink.on('connection', (ws: WebSocket) => {
  ws.on('message', ignore);
  ws.on('error', ignore);
});
server.on('upgrade', (req, socket, head) => {
  const target = req.url === '/echo' ? echo : req.url === '/sink' ? sink : undefined;
  if (target === undefined) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
});

server.listen(serverPort(), '127.0.0.1', () => announce((server.address() as AddressInfo).port));
