/**
 * Benchmark target for `npm run bench:fanout-cluster`: quay with one lib/pubsub topic. WebSocket sessions of `/sub`
 * join the topic `fanout`; every message of a `/pub` session (which does not join) or of a `/sub` session, and the
 * body of `POST /publish`, is published to the topic as it came (text as its validated bytes, `onTextBytes`).
 * `/stats`: the process's memory and `pubsub.stats()` as JSON (`members`: this process's members of the topic).
 * Prints `listening PORT` once the topic's Redis subscription is answered; `--port N`.
 *
 * `--redis URL`: a `RedisBroker` on a node-redis client (`createClient`, and its `duplicate()` for the
 * subscription), as users wire it; every instance on the same Redis shares the topic. Without it: no broker, this
 * process only (the single-process reference).
 *
 *   node dist/perf/servers/fanout-quay-pubsub.js [--redis redis://127.0.0.1:6379] [--port 0]
 */
import { createClient } from 'redis';
import { PubSub, RedisBroker, Router, Server, WebSocketUpgradeHandler } from '../../lib/index.js';
import type { Request, Response, WebSocketListener } from '../../lib/index.js';
import { announce, exitOnSignal, exitWhenParentGoes, serverPort, serverRedisUrl } from './args.js';
import { memoryStats } from './stats.js';

exitOnSignal();
exitWhenParentGoes();
const redisUrl = serverRedisUrl();

let broker: RedisBroker | undefined;
if (redisUrl !== undefined) {
  const publisher = createClient({ url: redisUrl });
  publisher.on('error', (e: Error) => console.error(`redis publisher: ${e.message}`));
  await publisher.connect();
  broker = new RedisBroker({ publisher, subscriber: publisher.duplicate(), onError: (e) => console.error(`redis: ${e.message}`) });
}
const pubsub = new PubSub(broker === undefined ? {} : { broker });
const topic = pubsub.topic('fanout');
await topic.ready;

const TEXT = { text: true } as const;

/** Publishers: every message to the topic (the Promise is safe to ignore; failures are counted in stats()). */
const publisher: WebSocketListener = {
  onTextBytes(_session, bytes) {
    void topic.publish(bytes, TEXT);
  },
  onBinary(_session, data) {
    void topic.publish(data);
  },
};

/** Subscribers: members of the topic (they may publish too; they leave by themselves when they close). */
const subscriber: WebSocketListener = {
  ...publisher,
  onOpen(session) {
    topic.join(session);
  },
};

const router = new Router()
  .route('/sub', new WebSocketUpgradeHandler({ accept: () => subscriber }))
  .route('/pub', new WebSocketUpgradeHandler({ accept: () => publisher }))
  .route('/publish', async (req: Request, res: Response) => {
    void topic.publish(await req.bytes(64 * 1024), TEXT);
    void res.send(204, '');
  })
  .route('/stats', (_req: Request, res: Response) => {
    void res.send(200, `${JSON.stringify({ ...memoryStats(), ...pubsub.stats(), members: topic.size })}\n`, 'application/json');
  });

const server = new Server({ port: serverPort(), host: '127.0.0.1', idleTimeoutMs: 300_000 }, router);
const { port } = await server.start();
announce(port);
