/**
 * Benchmark target: quay. WebSocket echo at /echo (every message back to its sender, text as text, binary as
 * binary; text relayed as its validated bytes, `onTextBytes`, as ws's echo relays Buffers), the same through
 * strings at /echo-string (decoded and encoded again), broadcast at /broadcast (every message to every session of /broadcast, the sender included, encoded
 * once by `broadcast()`), HTTP hello at /hello, the process's memory as JSON at /stats and a heap snapshot at /heapsnapshot (stats.ts).
 * No compression (permessage-deflate is off by default, as in the ws peer), except on /echo-deflate: the echo with
 * permessage-deflate accepted when the client offers it (threshold 1024, as ws's). Prints `listening PORT`; `--port N`.
 *
 *   node [--expose-gc] dist/perf/servers/echo-quay.js [--port 0] [--idle-timeout-ms 300000] [--tls]
 *
 * `--tls`: https and wss on the same port (quay's `tls` option, the test certificate of args.ts).
 */
import { parseArgs } from 'node:util';
import { Router, Server, WebSocketUpgradeHandler, broadcast } from '../../lib/index.js';
import type { Request, Response, WebSocketListener, WebSocketSession } from '../../lib/index.js';
import { announce, exitOnSignal, serverPort, serverTls } from './args.js';
import { heapSnapshotPath, memoryStatsJson } from './stats.js';

exitOnSignal();

const { values } = parseArgs({ options: { 'idle-timeout-ms': { type: 'string', default: '300000' } }, strict: false });
// Long by default: the memory benchmark holds 10,000 silent connections; quay's one idle sweep costs the same either way.
const idleTimeoutMs = Number(values['idle-timeout-ms']);

/** Text relayed as the bytes it came as (`onTextBytes`), as the ws peer relays the Buffer it receives. */
const TEXT = { text: true } as const;

/** One listener object for every echo session: no closure per session or per message. */
const echo: WebSocketListener = {
  onTextBytes(session, bytes) {
    session.send(bytes, undefined, TEXT);
  },
  onBinary(session, data) {
    session.send(data);
  },
};

/** The echo through strings: every text message decoded, then encoded again (`/echo-string`). */
const echoString: WebSocketListener = {
  onText(session, text) {
    session.send(text);
  },
  onBinary(session, data) {
    session.send(data);
  },
};

const members = new Set<WebSocketSession>();
const room: WebSocketListener = {
  onOpen(session) {
    members.add(session);
  },
  onTextBytes(_session, bytes) {
    broadcast(members, bytes, TEXT);
  },
  onBinary(_session, data) {
    broadcast(members, data);
  },
  onClose(session) {
    members.delete(session);
  },
};

const hello = Buffer.from('hello world\n');
const router = new Router()
  .route('/echo-deflate', new WebSocketUpgradeHandler({ accept: () => echo, perMessageDeflate: true }))
  .route('/echo-string', new WebSocketUpgradeHandler({ accept: () => echoString }))
  .route('/echo', new WebSocketUpgradeHandler({ accept: () => echo }))
  .route('/broadcast', new WebSocketUpgradeHandler({ accept: () => room }))
  .route('/hello', (_req: Request, res: Response) => {
    res.setHeader('Content-Type', 'text/plain');
    void res.end(hello);
  })
  .route('/stats', (_req: Request, res: Response) => {
    void res.send(200, memoryStatsJson(), 'application/json');
  })
  .route('/heapsnapshot', (_req: Request, res: Response) => {
    void res.send(200, heapSnapshotPath(), 'text/plain');
  });

const tls = serverTls();
const server = new Server({ port: serverPort(), host: '127.0.0.1', idleTimeoutMs, ...(tls === undefined ? {} : { tls }) }, router);
const { port } = await server.start();
announce(port);
