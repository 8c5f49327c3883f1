/**
 * The ClusterBroker test's program (test/pubsub-cluster.test.ts), run from dist/ (node:cluster forks JavaScript:
 * tap's TypeScript loader takes seconds per process on a busy machine): run as a cluster primary, it installs a
 * ClusterRelay and forks WORKERS workers with the serialization in PUBSUB_SERIALIZATION ('advanced' unless told);
 * each worker makes a PubSub with a ClusterBroker and one member session in topic 'room', and on 'go' publishes
 * MESSAGES messages (text `w<id>:<i>`, then one binary message of all 256 byte values) in one synchronous burst,
 * then reports what its member received (bounded wait; with PUBSUB_MAX_PENDING, the brokers' bound, until
 * nothing more comes for 500 ms). The primary prints one JSON line with every report and exits.
 */
import cluster from 'node:cluster';
import { ClusterRelay } from '../../lib/cluster/relay.js';
import { PubSub } from '../../lib/pubsub/PubSub.js';
import { ClusterBroker } from '../../lib/pubsub/ClusterBroker.js';
import { BrokerError } from '../../lib/pubsub/errors.js';
import { member, texts } from './members.js';

const WORKERS = Number(process.env['PUBSUB_WORKERS'] ?? 3);
const MESSAGES = Number(process.env['PUBSUB_MESSAGES'] ?? 500);
/** The workers' ClusterBroker maxPendingBytes (default: the broker's). */
const MAX_PENDING = process.env['PUBSUB_MAX_PENDING'] === undefined ? undefined : Number(process.env['PUBSUB_MAX_PENDING']);

/** What a worker reports. */
export interface WorkerReport {
  id: number;
  error?: string;
  received?: string[];
  stats?: ReturnType<PubSub['stats']>;
}

interface TestMessage {
  type: 'test:ready' | 'test:go' | 'test:done';
  report?: WorkerReport;
}

const isTest = (m: unknown): m is TestMessage => typeof m === 'object' && m !== null && String((m as { type?: unknown }).type).startsWith('test:');

if (cluster.isPrimary) {
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ error: 'the primary timed out' }));
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill();
    process.exit(2);
  }, 30_000);
  cluster.setupPrimary({ serialization: (process.env['PUBSUB_SERIALIZATION'] ?? 'advanced') as 'advanced' | 'json' });
  const relay = new ClusterRelay(cluster);
  const workers = Array.from({ length: WORKERS }, () => cluster.fork());
  const reports: WorkerReport[] = [];
  let ready = 0;
  for (const worker of workers) {
    worker.on('message', (m: unknown) => {
      if (!isTest(m)) return;
      if (m.type === 'test:ready' && ++ready === WORKERS) for (const w of workers) w.send({ type: 'test:go' });
      if (m.type === 'test:done') {
        reports.push(m.report!);
        if (m.report!.error !== undefined && reports.length < WORKERS) return;
        if (reports.length === WORKERS) {
          clearTimeout(watchdog);
          console.log(JSON.stringify({ reports, relay: relay.stats() }));
          for (const w of workers) w.process.kill(); // by PID
          process.exit(0);
        }
      }
    });
  }
} else {
  const id = cluster.worker!.id;
  let pubsub: PubSub;
  try {
    pubsub = new PubSub({ broker: new ClusterBroker({ maxPendingBytes: MAX_PENDING }) });
  } catch (e) {
    process.send!({ type: 'test:done', report: { id, error: e instanceof BrokerError ? e.code : String(e) } });
    // Stay until the primary ends us (it reports when every worker has).
    process.on('message', () => {});
  }
  if (pubsub! !== undefined) {
    const room = pubsub.topic('room');
    const m = member();
    room.join(m.session);
    const received: string[] = [];
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    process.on('message', async (msg: unknown) => {
      if (!isTest(msg) || msg.type !== 'test:go') return;
      for (let i = 0; i < MESSAGES; i++) void room.publish(`w${id}:${i}`);
      await room.publish(all).catch(() => undefined); // BROKER_OVERLOADED past a small maxPendingBytes
      const expected = MAX_PENDING === undefined ? WORKERS * (MESSAGES + 1) : Infinity;
      const deadline = Date.now() + 15_000;
      let quietSince = Date.now();
      while (received.length < expected && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        const got = texts(m.read());
        received.push(...got);
        if (got.length !== 0) quietSince = Date.now();
        else if (MAX_PENDING !== undefined && Date.now() - quietSince > 500) break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100)); // a second copy of anything would show now
      received.push(...texts(m.read()));
      process.send!({ type: 'test:done', report: { id, received, stats: pubsub.stats() } });
    });
    process.send!({ type: 'test:ready' });
  }
}
