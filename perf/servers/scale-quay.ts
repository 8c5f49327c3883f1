/**
 * Benchmark target of `npm run bench:scale` (perf/scale.ts): a quay server whose WebSocket sessions at /room all
 * join one topic, and a broadcast to them on demand.
 *
 *   node --expose-gc dist/perf/servers/scale-quay.js --port P [--workers 0]
 *
 * Routes: `/room` (WebSocket: the session joins the room and stays silent), `/publish?seq=N` (sends the stamped
 * message `N:SENT` to every member, SENT the time of the request in µs since the epoch: quay-load idle times every
 * delivery against it), `/stats` (this process's figures as JSON, after a full GC with --expose-gc: see
 * {@link WorkerFigures}).
 *
 * The idle sweep is timed here, not in quay: the one IdleTimeoutScheduler of the server gets its `sweep` wrapped
 * (one `performance.now()` pair per sweep, once a second, whatever the number of connections; nothing per
 * endpoint), so the benchmark reports the sweep's own cost beside the process's CPU time while idle.
 *
 * Connections are never idle-expired during a run (idle timeout 1 hour): the sweep still visits every one of
 * them each second, which is the cost measured.
 *
 * Prints one line `ready {"port":P,"control":P,"pids":[...]}` when it serves (the control port answers
 * `/stats` with every process's figures). Exits on SIGTERM/SIGINT.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Router, Server, WebSocketUpgradeHandler, broadcast } from '../../lib/index.js';
import type { Request, Response, WebSocketListener, WebSocketSession } from '../../lib/index.js';
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
  /** The idle sweep: sweeps so far, their total and longest time (µs), and the endpoints it watches now. */
  sweeps: number;
  sweepTotalUs: number;
  sweepMaxUs: number;
  watching: number;
  /** Broadcasts published here; remote ones received (cluster brokers). */
  published: number;
}

/** The whole server's figures: one entry per process that holds connections. */
export interface ScaleStats {
  workers: WorkerFigures[];
}

const IDLE_TIMEOUT_MS = 3_600_000;

type GcFunction = () => void;

/** The part of the server that runs in every process holding connections. */
export class RoomService {
  readonly server: Server;
  private readonly members = new Set<WebSocketSession>();
  private sweeps = 0;
  private sweepTotalUs = 0;
  private sweepMaxUs = 0;
  private published = 0;

  constructor(port: number) {
    const members = this.members;
    const room: WebSocketListener = {
      onOpen(session) {
        members.add(session);
      },
      onClose(session) {
        members.delete(session);
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

  async start(): Promise<number> {
    return (await this.server.start()).port;
  }

  stop(graceMs?: number): Promise<void> {
    return this.server.stop(graceMs);
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
      members: this.members.size,
      refusedAtLimit: stats.refusedAtLimit,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      gc: gc !== undefined,
      cpuUs: before.user + before.system,
      cpuAfterGcUs: after.user + after.system,
      sweeps: this.sweeps,
      sweepTotalUs: Math.round(this.sweepTotalUs),
      sweepMaxUs: Math.round(this.sweepMaxUs),
      watching: this.server.selectorManager.scheduler.size,
      published: this.published,
    };
  }

  /** `/publish?seq=N`: the stamped message to every member, stamped now. */
  private publish(request: Request, response: Response): void {
    const seq = Number(new URLSearchParams(request.rawQuery).get('seq') ?? '0');
    this.published++;
    const result = broadcast(this.members, broadcastStamp(seq, epochMicros()));
    void response.send(200, `${JSON.stringify(result)}\n`, 'application/json');
  }

  /** Wraps the server's one idle sweep with a clock read on each side (see the file's comment). */
  private timeSweeps(): void {
    const scheduler = this.server.selectorManager.scheduler;
    const sweep = scheduler.sweep.bind(scheduler);
    scheduler.sweep = (): number => {
      const start = performance.now();
      const expired = sweep();
      const us = (performance.now() - start) * 1000;
      this.sweeps++;
      this.sweepTotalUs += us;
      if (us > this.sweepMaxUs) this.sweepMaxUs = us;
      return expired;
    };
  }
}

{
  const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, workers: { type: 'string', default: '0' } }, strict: false });
  const service = new RoomService(Number(values.port));
  const port = await service.start();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void service.stop(1000).then(() => process.exit(0));
    });
  }
  console.log(`ready ${JSON.stringify({ port, control: port, pids: [process.pid] })}`);
}
