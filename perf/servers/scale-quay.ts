/**
 * Benchmark target of `npm run bench:scale` (perf/scale.ts): a quay server whose WebSocket sessions at /room all
 * join one lib/pubsub topic, and a broadcast to them on demand, on W cluster workers (lib/cluster's runCluster)
 * with the topic carried between them by the cluster's IPC (ClusterBroker) or by Redis (RedisBroker, node-redis),
 * or in one plain process (`--workers 0`, no broker).
 *
 *   node --expose-gc dist/perf/servers/scale-quay.js --port P [--workers W] [--broker ipc|redis|local]
 *                                                   [--redis-url redis://127.0.0.1:6379]
 *
 * Routes: `/room` (WebSocket: the session joins the topic and stays silent), `/publish?seq=N` (publishes the
 * stamped message `N:SENT` to the topic, SENT the time of the request in µs since the epoch, in the worker the
 * request reached: its members at once, the other workers' through the broker; quay-load idle times every
 * delivery against the stamp), `/stats` (this process's figures as JSON, after a full GC with --expose-gc: see
 * {@link WorkerFigures}). With workers, the primary answers `/stats` on its own control port with every worker's
 * figures (the supervisor's `stats()`).
 *
 * The idle sweep is timed here, not in quay: the one IdleTimeoutScheduler of the server gets its `sweep` wrapped
 * (one `performance.now()` and one `process.cpuUsage()` pair per sweep, once a second, whatever the number of
 * connections; nothing per endpoint), so the benchmark reports the sweep's own cost beside the process's CPU time while idle.
 *
 * Connections are never idle-expired during a run (idle timeout 1 hour): the sweep still visits every one of
 * them each second, which is the cost measured.
 *
 * Prints one line `ready {"port":P,"control":P,"pids":[...]}` when it serves (the control port answers
 * `/stats` with every process's figures). Exits on SIGTERM/SIGINT.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createClient } from 'redis';
import { ClusterBroker, PubSub, RedisBroker, Router, Server, WebSocketUpgradeHandler, runCluster } from '../../lib/index.js';
import type { Broker, Request, Response, Topic, WebSocketListener } from '../../lib/index.js';
import { broadcastStamp, epochMicros } from '../load/broadcastStamp.js';

/** What `/stats` answers for one process. */
export interface WorkerFigures {
  pid: number;
  /** Open connections (quay's count) and members of the room. */
  open: number;
  members: number;
  refusedAtLimit: number;
  rss: number;
  heapUsed: number;
  /** A full GC ran before the memory was read (--expose-gc). */
  gc: boolean;
  /** CPU time of the process so far (user + system), µs, read before the GC and after it. */
  cpuUs: number;
  cpuAfterGcUs: number;
  /**
   * The idle sweep: sweeps so far, their total and longest wall time (µs), their total CPU time (µs: wall time
   * counts the moments the process was not running, on a busy machine), and the endpoints it watches now.
   */
  sweeps: number;
  sweepTotalUs: number;
  sweepCpuUs: number;
  sweepMaxUs: number;
  watching: number;
  /** Broadcasts published here; the topic's counters (lib/pubsub's stats: published, received, remoteFailures...). */
  published: number;
  pubsub: Record<string, unknown>;
}

/** The whole server's figures: one entry per process that holds connections. */
export interface ScaleStats {
  workers: WorkerFigures[];
}

const IDLE_TIMEOUT_MS = 3_600_000;

type GcFunction = () => void;

/** A node-redis client as this server uses it. */
type RedisClient = ReturnType<typeof createClient>;

/** The part of the server that runs in every process holding connections. */
export class RoomService {
  readonly server: Server;
  private readonly pubsub: PubSub;
  private readonly topic: Topic;
  private sweeps = 0;
  private sweepTotalUs = 0;
  private sweepMaxUs = 0;
  private sweepCpuUs = 0;
  private published = 0;
  private publishFailures = 0;

  constructor(
    port: number,
    broker: Broker | undefined,
    private readonly redis: RedisClient | undefined,
  ) {
    this.pubsub = new PubSub(broker === undefined ? {} : { broker });
    const topic = (this.topic = this.pubsub.topic('room'));
    // Members that close leave the topic by themselves (lib/pubsub).
    const room: WebSocketListener = {
      onOpen(session) {
        topic.join(session);
      },
    };
    const router = new Router()
      .route('/room', new WebSocketUpgradeHandler({ accept: () => room }))
      .route('/publish', (request: Request, response: Response) => this.publish(request, response))
      .route('/stats', (_request: Request, response: Response) => {
        void response.send(200, `${JSON.stringify({ workers: [this.figures()] } satisfies ScaleStats)}\n`, 'application/json');
      });
    this.server = new Server({ port, host: '127.0.0.1', idleTimeoutMs: IDLE_TIMEOUT_MS }, router);
    this.timeSweeps();
  }

  /** The port it listens on, once started. */
  port = 0;

  async start(): Promise<number> {
    this.port = (await this.server.start()).port;
    return this.port;
  }

  async stop(graceMs?: number): Promise<void> {
    await this.server.stop(graceMs);
    await this.pubsub.close();
    if (this.redis !== undefined) await this.redis.quit().catch(() => {});
  }

  /** This process's figures, after a full GC when the process has gc(). */
  figures(): WorkerFigures {
    const before = process.cpuUsage();
    const gc = (globalThis as { gc?: GcFunction }).gc;
    if (gc !== undefined) {
      gc();
      gc();
    }
    const stats = this.server.stats();
    const memory = process.memoryUsage();
    const after = process.cpuUsage();
    return {
      pid: process.pid,
      open: stats.open,
      members: this.topic.size,
      refusedAtLimit: stats.refusedAtLimit,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      gc: gc !== undefined,
      cpuUs: before.user + before.system,
      cpuAfterGcUs: after.user + after.system,
      sweeps: this.sweeps,
      sweepTotalUs: Math.round(this.sweepTotalUs),
      sweepMaxUs: Math.round(this.sweepMaxUs),
      sweepCpuUs: this.sweepCpuUs,
      watching: this.server.selectorManager.scheduler.size,
      published: this.published,
      pubsub: { ...this.pubsub.stats(), publishFailures: this.publishFailures } as unknown as Record<string, unknown>,
    };
  }

  /** `/publish?seq=N`: the stamped message to every member, stamped now. */
  private publish(request: Request, response: Response): void {
    const seq = Number(new URLSearchParams(request.rawQuery).get('seq') ?? '0');
    this.published++;
    this.topic.publish(broadcastStamp(seq, epochMicros())).then(
      (result) => void response.send(200, `${JSON.stringify(result)}\n`, 'application/json'),
      (error: Error) => {
        this.publishFailures++;
        void response.send(502, `${error.message}\n`, 'text/plain');
      },
    );
  }

  /** Wraps the server's one idle sweep with a clock and a CPU-time read on each side (see the file's comment). */
  private timeSweeps(): void {
    const scheduler = this.server.selectorManager.scheduler;
    const sweep = scheduler.sweep.bind(scheduler);
    scheduler.sweep = (): number => {
      const cpu = process.cpuUsage();
      const start = performance.now();
      const expired = sweep();
      const us = (performance.now() - start) * 1000;
      const spent = process.cpuUsage(cpu);
      this.sweepCpuUs += spent.user + spent.system;
      this.sweeps++;
      this.sweepTotalUs += us;
      if (us > this.sweepMaxUs) this.sweepMaxUs = us;
      return expired;
    };
  }
}

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    workers: { type: 'string', default: '0' },
    broker: { type: 'string', default: 'local' },
    'redis-url': { type: 'string' },
  },
  strict: false,
});
const port = Number(values.port);
const workers = Number(values.workers);
const brokerName = String(values.broker);
if (!['local', 'ipc', 'redis'].includes(brokerName)) throw new Error(`--broker must be local, ipc or redis, not ${brokerName}`);
if (workers === 0 && brokerName === 'ipc') throw new Error('--broker ipc needs --workers');

/** This process's service, with the broker asked for. */
async function startService(): Promise<RoomService> {
  let broker: Broker | undefined;
  let redis: RedisClient | undefined;
  if (brokerName === 'ipc') broker = new ClusterBroker();
  if (brokerName === 'redis') {
    const url = values['redis-url'];
    if (typeof url !== 'string') throw new Error('--broker redis needs --redis-url');
    redis = createClient({ url });
    await redis.connect();
    broker = new RedisBroker({ publisher: redis, subscriber: redis.duplicate() });
  }
  const service = new RoomService(port, broker, redis);
  await service.start();
  return service;
}

if (workers === 0) {
  const service = await startService();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void service.stop(1000).then(() => process.exit(0));
    });
  }
  console.log(`ready ${JSON.stringify({ port: service.port, control: service.port, pids: [process.pid] })}`);
} else {
  const role = await runCluster(
    async () => {
      const service = await startService();
      return { stop: (graceMs) => service.stop(graceMs), stats: () => service.figures() };
    },
    // Round robin: the connections spread evenly, so that no worker reaches its open-file limit before the others.
    { workers, scheduling: 'round-robin', stopGraceMs: 5000, startTimeoutMs: 120_000, requestTimeoutMs: 60_000 },
  );
  if (role.primary !== undefined) {
    const primary = role.primary;
    // The control port: every worker's figures, from the supervisor (stats() over the cluster's IPC).
    const control = createServer((request, response) => {
      if (request.url !== '/stats') {
        response.writeHead(404).end();
        return;
      }
      primary.stats().then(
        (stats) => {
          const figures: ScaleStats = { workers: stats.workers.filter((w) => w.stats !== undefined).map((w) => w.stats as WorkerFigures) };
          response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(figures));
        },
        (error: Error) => response.writeHead(500).end(error.message),
      );
    });
    await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
    control.unref();
    const pids = primary.workers.map((w) => w.pid).filter((p): p is number => p !== undefined);
    console.log(`ready ${JSON.stringify({ port, control: (control.address() as AddressInfo).port, pids })}`);
  }
}
