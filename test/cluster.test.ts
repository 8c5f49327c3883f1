/**
 * lib/cluster: a supervisor in this process (the primary) running perf/cluster/app.ts on real worker processes:
 * readiness, stats/dump aggregated over IPC (a worker that does not answer reported as such), a crashed or killed
 * worker replaced (new pid serves), a worker stopped by its own signal replaced quietly. Failures are in
 * cluster-failures.test.ts, the relay in cluster-relay.test.ts. Every worker is stopped by the supervisor; the
 * teardown kills by PID what might remain.
 */
import t from 'tap';
import { WorkerExitError, WorkerState, nextWorkerState } from '../lib/index.js';
import type { ClusterStats } from '../lib/index.js';
import { alive, cluster, ensureBuilt, get, pidOf, until } from './support/clusterApp.js';

await ensureBuilt();

t.test('worker states: named transitions', async (t) => {
  t.equal(nextWorkerState(WorkerState.STARTING, 'ready'), WorkerState.READY);
  t.equal(nextWorkerState(WorkerState.READY, 'stop'), WorkerState.STOPPING);
  t.equal(nextWorkerState(WorkerState.STOPPING, 'exit'), WorkerState.STOPPED);
  t.equal(nextWorkerState(WorkerState.READY, 'exit'), WorkerState.CRASHED);
  t.equal(nextWorkerState(WorkerState.STARTING, 'exit'), WorkerState.CRASHED);
  t.equal(nextWorkerState(WorkerState.STOPPING, 'ready'), undefined, 'a late ready is ignored');
  t.equal(nextWorkerState(WorkerState.STOPPED, 'stop'), undefined);
});

t.test('start: every worker ready and serving; stats and dump aggregated over IPC', async (t) => {
  const { supervisor, port, errors } = await cluster(t);
  await supervisor.start();
  t.equal(supervisor.state, 'RUNNING');
  const workers = supervisor.workers;
  t.same(workers.map((w) => [w.slot, w.state]), [[0, 'READY'], [1, 'READY']]);
  const pids = new Set(workers.map((w) => w.pid));
  const seen = new Set<number | undefined>();
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(await pidOf(port));
  t.same([...seen].sort(), [...pids].sort(), 'both workers answer (round-robin)');

  const stats: ClusterStats = await supervisor.stats();
  t.equal(stats.asked, 2);
  t.equal(stats.answered, 2);
  const accepted = stats.workers.map((w) => (w.stats as { accepted: number }).accepted);
  t.ok(accepted.every((n) => n > 0), `each worker accepted connections (${accepted})`);
  t.equal(stats.total.accepted, accepted[0]! + accepted[1]!, 'total = the sum over the workers');
  t.equal(typeof (stats.total.relay as { received: number }).received, 'number', 'nested numeric fields are summed too');
  t.same(Object.keys(stats.relay).sort(), ['dropped', 'droppedBytes', 'forwarded', 'pendingBytes', 'received']);

  const dump = await supervisor.dump();
  t.match(dump, /^ClusterSupervisor RUNNING scheduling=\S+ slots=2 live=2/);
  t.equal(dump.match(/SelectorManager 127\.0\.0\.1:\d+ STARTED/g)?.length, 2, "both workers' dumps");

  await supervisor.stop();
  t.equal(supervisor.state, 'STOPPED');
  t.ok(workers.every((w) => !alive(w.pid!)), 'every worker exited');
  t.same(errors, [], 'nothing reported');
});

t.test('a worker that does not answer in time is reported as such, not awaited', async (t) => {
  const { supervisor, port } = await cluster(t, { requestTimeoutMs: 200 });
  await supervisor.start();
  // /block answers, then blocks its worker's event loop (IPC included) for 1.5 s.
  let blockedPid: number | undefined;
  const answer = await get(port, '/block?ms=1500');
  t.equal('status' in answer && answer.status, 200);
  const stats = await supervisor.stats();
  t.equal(stats.asked, 2);
  t.equal(stats.answered, 1, 'one answered');
  const late = stats.workers.find((w) => w.error !== undefined);
  t.equal(late?.error, 'timeout', 'the blocked one is reported as timed out');
  blockedPid = late?.pid;
  t.ok(blockedPid !== undefined);
  t.equal(stats.total.accepted, (stats.workers.find((w) => w.error === undefined)!.stats as { accepted: number }).accepted, 'total over the ones that answered');
});

t.test('a worker that exits or is killed is replaced; the new one serves', async (t) => {
  const { supervisor, port, events, errors } = await cluster(t, { restartDelayMs: 50 });
  await supervisor.start();
  const before = supervisor.workers.map((w) => w.pid!);

  // 1. It exits by itself (process.exit(1) after answering).
  const exit = await get(port, '/exit');
  const exited = 'body' in exit ? Number(exit.body) : -1;
  t.ok(before.includes(exited), 'a worker answered /exit');
  t.ok(await until(() => supervisor.workers.filter((w) => w.state === 'READY').length === 2 && !supervisor.workers.some((w) => w.pid === exited)), 'replaced');
  const crash = errors.find((e) => e instanceof WorkerExitError) as WorkerExitError | undefined;
  t.equal(crash?.code, 'WORKER_EXITED');
  t.equal(crash?.exitCode, 1);
  t.equal(crash?.worker.pid, exited);
  t.match(events.find((e) => e.type === 'respawn'), { type: 'respawn', delayMs: 50, crashes: 1 });

  // 2. It is SIGKILLed by PID.
  const victim = supervisor.workers.find((w) => w.pid !== exited && before.includes(w.pid!))!;
  process.kill(victim.pid!, 'SIGKILL');
  t.ok(await until(() => supervisor.workers.filter((w) => w.state === 'READY').length === 2 && !supervisor.workers.some((w) => w.pid === victim.pid)), 'replaced');
  t.match(errors.at(-1), { code: 'WORKER_EXITED', signal: 'SIGKILL' });
  const now = supervisor.workers;
  t.ok(now.every((w) => !before.includes(w.pid!)), 'two new processes');
  t.same(now.map((w) => w.restarts), [1, 1], 'each slot replaced once');
  const seen = new Set<number | undefined>();
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(await pidOf(port));
  t.same([...seen].sort(), now.map((w) => w.pid).sort(), 'the new workers serve');
});

t.test('a worker stopped by a signal of its own (SIGTERM to its pid) exits cleanly and is replaced, not reported', async (t) => {
  const { supervisor, port, events, errors } = await cluster(t, { restartDelayMs: 50 });
  await supervisor.start();
  const victim = supervisor.workers[0]!;
  process.kill(victim.pid!, 'SIGTERM');
  t.ok(
    await until(() => supervisor.workers.filter((w) => w.state === 'READY').length === 2 && !supervisor.workers.some((w) => w.pid === victim.pid)),
    'replaced',
  );
  t.match(events.find((e) => e.type === 'exit' && e.pid === victim.pid), { state: 'STOPPED', exitCode: 0, signal: null }, 'a clean stop');
  t.same(errors, [], 'not an error');
  t.same(supervisor.workers.map((w) => [w.slot, w.restarts, w.crashes]), [[0, 1, 0], [1, 0, 0]], 'replaced, not counted as a crash');
  const seen = new Set<number | undefined>();
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(await pidOf(port));
  t.same([...seen].sort(), supervisor.workers.map((w) => w.pid).sort(), 'the new worker serves');
});

