/**
 * ClusterBroker in a real node:cluster: a primary with a ClusterRelay and 3 workers (perf/pubsub/cluster-check.ts,
 * run from dist/, built first when older than the sources). Each worker publishes 500
 * text messages and one binary message; every worker's member gets every message once (its own from local
 * delivery, the others' through the relay), each publisher's in order, binary intact. With 'json'
 * serialization, or outside a worker, the ClusterBroker refuses with BROKER_MISCONFIGURED.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import type { WorkerReport } from '../perf/pubsub/cluster-check.js';
import { ClusterBroker } from '../lib/pubsub/ClusterBroker.js';
import { CLUSTER_CHECK, ensureBuilt } from './support/pubsubBuild.js';

await ensureBuilt();

interface Outcome {
  code: number | null;
  result: { reports?: WorkerReport[]; relay?: Record<string, number>; error?: string };
}

/** Runs the cluster program; its primary prints one JSON line and exits (bounded: killed by PID after 40 s). */
function runCluster(env: Record<string, string>): Promise<Outcome> {
  const child = spawn(process.execPath, [CLUSTER_CHECK], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => void (out += b.toString()));
  const kill = setTimeout(() => child.pid !== undefined && process.kill(child.pid), 40_000);
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(kill);
      const line = out.trim().split('\n').pop() ?? '';
      let result: Outcome['result'];
      try {
        result = JSON.parse(line) as Outcome['result'];
      } catch {
        result = { error: `no JSON from the primary: ${out}` };
      }
      resolve({ code, result });
    });
  });
}

t.test('ClusterBroker: 3 workers, every message reaches every member once, in order, binary-safe', { timeout: 60_000 }, async (t) => {
  const WORKERS = 3;
  const MESSAGES = 500;
  const { code, result } = await runCluster({ PUBSUB_WORKERS: String(WORKERS), PUBSUB_MESSAGES: String(MESSAGES) });
  t.equal(code, 0, 'the primary finished');
  t.equal(result.error, undefined);
  const reports = result.reports ?? [];
  t.equal(reports.length, WORKERS);
  const ids = reports.map((r) => r.id);
  const binary = `binary:${Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex')}`;
  for (const r of reports) {
    t.equal(r.error, undefined, `worker ${r.id}: no error`);
    const got = r.received ?? [];
    t.equal(got.length, WORKERS * (MESSAGES + 1), `worker ${r.id}: every message once (its own not twice)`);
    for (const from of ids) {
      const mine = got.filter((m) => m.startsWith(`w${from}:`));
      t.same(mine, Array.from({ length: MESSAGES }, (_, i) => `w${from}:${i}`), `worker ${r.id}: worker ${from}'s messages in order`);
    }
    t.equal(got.filter((m) => m === binary).length, WORKERS, `worker ${r.id}: the binary messages intact`);
    t.match(r.stats, {
      published: MESSAGES + 1,
      received: (WORKERS - 1) * (MESSAGES + 1),
      ownEchoes: 0,
      duplicates: 0,
      lost: 0,
      invalid: 0,
      remoteFailures: 0,
      broker: { kind: 'cluster', state: 'ready', published: MESSAGES + 1, publishFailures: 0, pendingBytes: 0 },
    });
  }
  t.match(result.relay, { received: WORKERS * (MESSAGES + 1), forwarded: WORKERS * (WORKERS - 1) * (MESSAGES + 1), dropped: 0 });
});

t.test('ClusterBroker: bytes in flight bounded, past maxPendingBytes BROKER_OVERLOADED, local delivery done', { timeout: 60_000 }, async (t) => {
  const WORKERS = 2;
  const MESSAGES = 500; // ~25-byte envelopes in one synchronous burst: the IPC callbacks come after it
  const { code, result } = await runCluster({ PUBSUB_WORKERS: String(WORKERS), PUBSUB_MESSAGES: String(MESSAGES), PUBSUB_MAX_PENDING: '2000' });
  t.equal(code, 0, 'the primary finished');
  const reports = result.reports ?? [];
  t.equal(reports.length, WORKERS);
  const accepted = new Map(reports.map((r) => [r.id, MESSAGES + 1 - (r.stats?.remoteFailures ?? 0)]));
  for (const r of reports) {
    const s = r.stats!;
    t.ok(s.remoteFailures > 0 && s.remoteFailures < MESSAGES, `worker ${r.id}: ${s.remoteFailures} publishes refused past the bound`);
    t.match(s.broker, { publishFailures: s.remoteFailures, published: MESSAGES + 1 - s.remoteFailures, pendingBytes: 0, maxPendingBytes: 2000 });
    const got = r.received ?? [];
    const own = got.filter((m) => m.startsWith(`w${r.id}:`));
    t.equal(own.length, MESSAGES, `worker ${r.id}: local delivery of every one of its own`);
    for (const other of reports.filter((o) => o.id !== r.id)) {
      const k = accepted.get(other.id)!;
      const theirs = got.filter((m) => m.startsWith(`w${other.id}:`));
      // The binary message came last in the burst: refused with the rest, so k counts text messages only.
      t.same(theirs, Array.from({ length: k }, (_, i) => `w${other.id}:${i}`), `worker ${r.id}: worker ${other.id}'s first ${k} (those it sent), in order`);
    }
    t.match(s, { duplicates: 0, lost: 0, invalid: 0 });
  }
});

t.test("ClusterBroker on a 'json' channel, and outside a worker: BROKER_MISCONFIGURED", { timeout: 60_000 }, async (t) => {
  const { code, result } = await runCluster({ PUBSUB_WORKERS: '1', PUBSUB_SERIALIZATION: 'json' });
  t.equal(code, 0);
  t.same(
    result.reports?.map((r) => r.error),
    ['BROKER_MISCONFIGURED'],
  );
  t.throws(() => new ClusterBroker(), { name: 'BrokerError', code: 'BROKER_MISCONFIGURED' }, 'not a cluster worker');
});
