/**
 * Benchmark target for `npm run bench:fanout-cluster`: quay with one topic. WebSocket sessions of `/sub` join the
 * topic `fanout`; every message of a `/pub` session (which does not join) or of a `/sub` session, and the body of
 * `POST /publish`, is published to the topic as it came (text as its validated bytes). `/stats`: the process's
 * memory as JSON. Prints `listening PORT`; `--port N`.
 *
 * Without `--redis`: local members only (the single-process reference). PRELIMINARY: plain `broadcast` over a
 * Set until lib/pubsub lands (then a Topic with a RedisBroker).
 *
 *   node dist/perf/servers/fanout-quay-pubsub.js [--port 0]
 */
import { parseArgs } from 'node:util';
import { Router, Server, WebSocketUpgradeHandler, broadcast } from '../../lib/index.js';
import type { Request, Response, WebSocketListener, WebSocketSession } from '../../lib/index.js';
import { announce, exitOnSignal, serverPort } from './args.js';
import { memoryStats } from './stats.js';

exitOnSignal();

const { values } = parseArgs({ options: { redis: { type: 'string' } }, strict: false });
if (typeof values.redis === 'string') throw new Error('--redis needs lib/pubsub');

const TEXT = { text: true } as const;
const members = new Set<WebSocketSession>();
let published = 0;

function publish(bytes: Buffer, text: boolean): void {
  published++;
  broadcast(members, bytes, text ? TEXT : undefined);
}

/** Publishers: every message to the topic. One listener object for every session. */
const publisher: WebSocketListener = {
  onTextBytes(_session, bytes) {
    publish(bytes, true);
  },
  onBinary(_session, data) {
    publish(data, false);
  },
};

/** Subscribers: members of the topic (they may publish too). */
const subscriber: WebSocketListener = {
  ...publisher,
  onOpen(session) {
    members.add(session);
  },
  onClose(session) {
    members.delete(session);
  },
};

const router = new Router()
  .route('/sub', new WebSocketUpgradeHandler({ accept: () => subscriber }))
  .route('/pub', new WebSocketUpgradeHandler({ accept: () => publisher }))
  .route('/publish', async (req: Request, res: Response) => {
    const body = await req.bytes(64 * 1024);
    publish(body, true);
    void res.send(204, '');
  })
  .route('/stats', (_req: Request, res: Response) => {
    void res.send(200, `${JSON.stringify({ ...memoryStats(), members: members.size, published })}\n`, 'application/json');
  });

const server = new Server({ port: serverPort(), host: '127.0.0.1', idleTimeoutMs: 300_000 }, router);
const { port } = await server.start();
announce(port);
