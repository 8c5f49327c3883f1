/**
 * Micro-benchmark: the cost of `topic.publish()` to local members against a plain `broadcast()` to the same
 * sessions, in one run, alternating A B C.
 *
 *   A  broadcast(sessions, message): one frame encoding shared by every session (the floor).
 *   B  topic.publish(message) on a PubSub without a broker: broadcast plus the topic's bookkeeping (the result,
 *      counters, a resolved Promise).
 *   C  topic.publish(message) with a broker that takes the envelope at once: B plus the envelope (one Buffer per
 *      publish, whatever the number of members) and the Promise chain of the remote part.
 *
 * Sessions are server WebSocket sessions on MemoryEndPoints whose transport discards the bytes; only the
 * synchronous publish calls are timed (the endpoints flush at the end of the tick, outside the timed part, the
 * same for A, B and C). Reported: ns per publish and per delivery, medians of the rounds, and B/A, C/A.
 *
 *   npx tsc -p tsconfig.json && node dist/perf/pubsub-local.js [--members 100,1000] [--publishes 2000]
 *     [--rounds 9] [--json]
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import { ManualClock } from '../lib/io/Clock.js';
import { WebSocketConnection, resolveSettings } from '../lib/websocket/WebSocketConnection.js';
import type { WebSocketSession } from '../lib/websocket/WebSocketSession.js';
import { broadcast } from '../lib/websocket/broadcast.js';
import { PubSub } from '../lib/pubsub/PubSub.js';
import type { Broker, BrokerState, BrokerStats, EnvelopeSink } from '../lib/pubsub/Broker.js';
import { median } from './lib.js';

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '100,1000' },
    publishes: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '9' },
    json: { type: 'boolean', default: false },
  },
});
const MEMBER_COUNTS = values.members.split(',').map((s) => positiveInt(s, 'members'));
const PUBLISHES = positiveInt(values.publishes, 'publishes');
const ROUNDS = Math.max(3, positiveInt(values.rounds, 'rounds'));

/** A transport that takes every write at once and keeps nothing. */
class DiscardEndPoint extends MemoryEndPoint {
  override transmit(_buffers: Buffer[], _byteCount: number): void {
    this.flusher.completed(null);
  }
}

/** A broker that takes each envelope at once (the cost of C over B is quay's, not a transport's). */
class NullBroker implements Broker {
  readonly state: BrokerState = 'ready';
  private published = 0;
  open(_sink: EnvelopeSink): void {}
  subscribe(): Promise<void> {
    return Promise.resolve();
  }
  unsubscribe(): Promise<void> {
    return Promise.resolve();
  }
  publish(_topic: string, _envelope: Buffer): Promise<void> {
    this.published++;
    return Promise.resolve();
  }
  stats(): BrokerStats {
    return { kind: 'null', state: this.state, published: this.published, publishFailures: 0, received: 0, pendingBytes: 0, maxPendingBytes: Infinity, subscriptions: 1 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const scheduler = new IdleTimeoutScheduler({ clock: new ManualClock(), tickMs: 1000 });
const settings = resolveSettings();
function session(): WebSocketSession {
  const endPoint = new DiscardEndPoint({ scheduler });
  const connection = new WebSocketConnection(endPoint, {}, { role: 'server', settings, path: '/bench' });
  endPoint.open(connection);
  return connection.session;
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Row {
  members: number;
  message: string;
  broadcastNsPerPublish: number;
  publishNsPerPublish: number;
  publishWithBrokerNsPerPublish: number;
  broadcastNsPerDelivery: number;
  publishOverBroadcast: number;
  publishWithBrokerOverBroadcast: number;
}

async function measure(members: number, message: string | Buffer, label: string): Promise<Row> {
  const sessions = new Set<WebSocketSession>();
  for (let i = 0; i < members; i++) sessions.add(session());
  const local = new PubSub();
  const brokered = new PubSub({ broker: new NullBroker() });
  const [lt, bt] = [local.topic('bench'), brokered.topic('bench')];
  for (const s of sessions) {
    lt.join(s);
    bt.join(s);
  }
  // Batches small enough that the queued frames stay far below each session's buffered bound.
  const batch = Math.max(1, Math.min(200, Math.floor(2_000_000 / members)));
  const run = async (kind: 'A' | 'B' | 'C'): Promise<number> => {
    let elapsed = 0;
    for (let done = 0; done < PUBLISHES; ) {
      const n = Math.min(batch, PUBLISHES - done);
      const start = performance.now();
      if (kind === 'A') for (let i = 0; i < n; i++) broadcast(sessions, message);
      else if (kind === 'B') for (let i = 0; i < n; i++) void lt.publish(message);
      else for (let i = 0; i < n; i++) void bt.publish(message);
      elapsed += performance.now() - start;
      done += n;
      await flush();
    }
    return (elapsed * 1e6) / PUBLISHES;
  };
  await run('A');
  await run('B');
  await run('C'); // warm-up
  const a: number[] = [];
  const b: number[] = [];
  const c: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    a.push(await run('A'));
    b.push(await run('B'));
    c.push(await run('C'));
  }
  const skipped = local.stats().skipped + brokered.stats().skipped;
  if (skipped !== 0) throw new Error(`${skipped} deliveries skipped: the batches are too large for the buffered bound`);
  await Promise.all([local.close(), brokered.close()]);
  for (const s of sessions) s.terminate();
  const [ma, mb, mc] = [median(a), median(b), median(c)];
  return {
    members,
    message: label,
    broadcastNsPerPublish: Math.round(ma),
    publishNsPerPublish: Math.round(mb),
    publishWithBrokerNsPerPublish: Math.round(mc),
    broadcastNsPerDelivery: Math.round((ma / members) * 10) / 10,
    publishOverBroadcast: Math.round((mb / ma) * 1000) / 1000,
    publishWithBrokerOverBroadcast: Math.round((mc / ma) * 1000) / 1000,
  };
}

const rows: Row[] = [];
for (const members of MEMBER_COUNTS) {
  rows.push(await measure(members, 'x'.repeat(64), '64 B text'));
  rows.push(await measure(members, Buffer.alloc(1024, 7), '1 KiB binary'));
}
if (values.json) {
  console.log(JSON.stringify({ node: process.version, publishes: PUBLISHES, rounds: ROUNDS, rows }, null, 2));
} else {
  console.log(`topic.publish() against broadcast(), ${PUBLISHES} publishes x ${ROUNDS} rounds (medians), Node ${process.version}`);
  console.log('members  message        broadcast ns/pub  publish ns/pub (x)   + broker ns/pub (x)  broadcast ns/delivery');
  for (const r of rows) {
    console.log(
      `${String(r.members).padStart(7)}  ${r.message.padEnd(13)}  ${String(r.broadcastNsPerPublish).padStart(16)}  ${`${r.publishNsPerPublish} (${r.publishOverBroadcast})`.padStart(18)}  ${`${r.publishWithBrokerNsPerPublish} (${r.publishWithBrokerOverBroadcast})`.padStart(19)}  ${String(r.broadcastNsPerDelivery).padStart(21)}`,
    );
  }
}

function positiveInt(s: string, name: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`--${name} must be a positive integer (got ${s})`);
  return n;
}
