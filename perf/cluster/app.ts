/**
 * A quay server on every core through `runCluster`: the primary supervises, each worker serves
 *   GET /hello  -> "hello world\n"
 *   GET /pid    -> the worker's pid (which worker answered)
 *   WebSocket /ws: greets with the worker's pid, then echoes.
 *
 *   node dist/perf/cluster/app.js [--port 8080] [--workers N] [--scheduling round-robin|kernel] [--grace ms]
 *
 * The primary prints one JSON line on stdout once every worker is ready: `{"port":..,"pids":[..],"scheduling":..}`.
 * With --control it then reads commands on stdin, one a line: `stats` prints the cluster's stats as one JSON line.
 * SIGTERM/SIGINT stop it (sessions get 1001), SIGHUP restarts the workers one at a time (runCluster's signals).
 *
 * It is the target of perf/cluster-scheduling.ts and the program of the cluster tests (test/cluster*.test.ts),
 * which is why it lives here: the workers node forks must be JavaScript, and perf/ is compiled to dist/. The tests'
 * hooks only exist with QUAY_CLUSTER_TEST=1: routes /exit (the worker exits with code 1), /block?ms= (the worker's
 * event loop is blocked for that long after answering), /publish?count=&size= (relay messages to the other
 * workers), stats() with the relay messages received, and QUAY_CLUSTER_FAIL_START=1 (the start function throws),
 * QUAY_CLUSTER_HANG_START=1 (it never resolves), QUAY_CLUSTER_HANG_STOP=1 (the service's stop never resolves).
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { RELAY_MESSAGE_TYPE, Router, Server, WebSocketUpgradeHandler, isRelayMessage, runCluster } from '../../lib/index.js';
import type { ClusterScheduling, ClusterService, RelayMessage } from '../../lib/index.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    workers: { type: 'string' },
    scheduling: { type: 'string' },
    grace: { type: 'string', default: '5000' },
    control: { type: 'boolean', default: false },
  },
  strict: false,
});
const testHooks = process.env.QUAY_CLUSTER_TEST === '1';
const port = Number(values.port);
const graceMs = Number(values.grace);
const hello = Buffer.from('hello world\n');

/** Relay messages seen by this worker (test hooks): counted, checked byte for byte. */
const relay = { received: 0, receivedBytes: 0, corrupt: 0, own: 0, sent: 0 };

/** The payload of the `seq`-th message: its sequence number then a pattern of it, so any changed byte shows. */
function payload(seq: number, size: number): Uint8Array {
  const bytes = new Uint8Array(Math.max(4, size));
  new DataView(bytes.buffer).setUint32(0, seq);
  for (let i = 4; i < bytes.length; i++) bytes[i] = (seq + i * 31) & 0xff;
  return bytes;
}

function intact(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  const seq = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  for (let i = 4; i < bytes.length; i++) if (bytes[i] !== ((seq + i * 31) & 0xff)) return false;
  return true;
}

async function start(): Promise<ClusterService> {
  if (testHooks && process.env.QUAY_CLUSTER_FAIL_START === '1') throw new Error('this worker is made to fail at start');
  if (testHooks && process.env.QUAY_CLUSTER_HANG_START === '1') await new Promise(() => setInterval(() => {}, 1000));
  const pid = String(process.pid);
  const ws = new WebSocketUpgradeHandler({
    accept: () => ({
      onOpen: (session) => void session.sendText(pid),
      onText: (session, text) => void session.sendText(text),
      onBinary: (session, data) => void session.sendBinary(data),
    }),
  });
  const router = new Router()
    .route('/hello', (_request, response) => {
      response.setHeader('Content-Type', 'text/plain');
      void response.end(hello);
    })
    .route('/pid', (_request, response) => void response.send(200, pid))
    .route('/ws', ws);
  if (testHooks) {
    process.on('message', (message: unknown) => {
      if (!isRelayMessage(message)) return;
      relay.received++;
      relay.receivedBytes += message.data.byteLength;
      if (message.channel === pid) relay.own++;
      if (!intact(message.data)) relay.corrupt++;
    });
    router
      .route('/exit', (_request, response) => void response.end(pid).then(() => process.exit(1)))
      .route('/block', (request, response) => {
        const ms = Math.min(5000, Number(request.query.get('ms') ?? 100));
        void response.end('blocking').then(() => {
          const until = Date.now() + ms;
          while (Date.now() < until) {
            // Busy on purpose: the worker reads nothing (its IPC channel included) meanwhile.
          }
        });
      })
      .route('/publish', (request, response) => {
        const count = Math.min(100_000, Number(request.query.get('count') ?? 1));
        const size = Math.min(1 << 20, Number(request.query.get('size') ?? 16));
        for (let seq = 0; seq < count; seq++) {
          const message: RelayMessage = { type: RELAY_MESSAGE_TYPE, channel: pid, data: payload(seq, size) };
          process.send?.(message, undefined, undefined, () => {});
          relay.sent++;
        }
        void response.send(200, String(count));
      });
  }
  const server = new Server({ port, host: '127.0.0.1', idleTimeoutMs: 60_000 }, router);
  await server.start();
  // Plain data for the primary (structured clone): the server's counters, and the relay's with the test hooks.
  if (!testHooks) return server;
  const hangStop = process.env.QUAY_CLUSTER_HANG_STOP === '1';
  return { stop: (grace) => (hangStop ? new Promise<void>(() => {}) : server.stop(grace)), stats: () => ({ ...server.stats(), relay: { ...relay } }), dump: () => server.dump() };
}

const role = await runCluster(start, {
  ...(values.workers === undefined ? {} : { workers: Number(values.workers) }),
  ...(values.scheduling === undefined ? {} : { scheduling: values.scheduling as ClusterScheduling }),
  stopGraceMs: graceMs,
});
if (role.primary !== undefined) {
  const pids = role.primary.workers.map((w) => w.pid);
  process.stdout.write(JSON.stringify({ port, pids, scheduling: role.primary.scheduling }) + '\n');
  if (values.control === true) {
    const primary = role.primary;
    createInterface({ input: process.stdin }).on('line', (line) => {
      if (line.trim() === 'stats') void primary.stats().then((stats) => process.stdout.write(JSON.stringify(stats) + '\n'));
    });
  }
}
