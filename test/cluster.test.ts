/**
 * lib/cluster: a supervisor in this process (the primary) running perf/cluster/app.ts on real worker processes:
 * readiness, stats/dump aggregated over IPC, a crashed or killed worker replaced (new pid serves), a crash loop
 * reported with its typed error and not respawned forever, the relay between workers (bytes intact, not echoed
 * to the sender, bounded per worker). Every worker is stopped by the supervisor; the teardown kills by PID what
 * might remain.
 */
import t from 'tap';
import type { Test } from 'tap';
import {
  ClusterSupervisor,
  WorkerCrashLoopError,
  WorkerExitError,
  WorkerStartError,
  WorkerState,
  nextWorkerState,
} from '../lib/index.js';
import type { ClusterEvent, ClusterOptions, ClusterStats } from '../lib/index.js';
import { APP, alive, ensureBuilt, freePort, get, pidOf, until } from './support/clusterApp.js';

await ensureBuilt();

/** A supervisor of the app on a free port, stopped (and its workers killed by PID if need be) at teardown. */
async function cluster(t: Test, options: ClusterOptions & { env?: Record<string, string> } = {}) {
  const port = await freePort();
  const events: ClusterEvent[] = [];
  const errors: Error[] = [];
  const supervisor = new ClusterSupervisor({
    workers: 2,
    exec: APP,
    args: ['--port', String(port)],
    execArgv: [],
    handleSignals: false,
    stopGraceMs: 1000,
    stopMarginMs: 1000,
    startTimeoutMs: 10_000,
    onEvent: (event) => void events.push(event),
    onError: (error) => void errors.push(error),
    ...options,
    env: { QUAY_CLUSTER_TEST: '1', ...options.env },
  });
  const pids = new Set<number>();
  events.push = function (...items: ClusterEvent[]) {
    for (const e of items) if (e.type === 'fork' && e.pid !== undefined) pids.add(e.pid);
    return Array.prototype.push.apply(this, items);
  };
  t.teardown(async () => {
    await supervisor.stop(500);
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  return { supervisor, port, events, errors };
}

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

t.test('crash loop: a worker that always fails at start is reported and not respawned forever', async (t) => {
  const { supervisor, events, errors } = await cluster(t, { workers: 1, maxCrashes: 3, restartDelayMs: 10, env: { QUAY_CLUSTER_FAIL_START: '1' } });
  const outcome = await supervisor.start().then(
    () => undefined,
    (error: unknown) => error,
  );
  t.type(outcome, WorkerCrashLoopError, 'start() rejects with the crash loop');
  const loop = outcome as WorkerCrashLoopError;
  t.equal(loop.code, 'WORKER_CRASH_LOOP');
  t.equal(loop.crashes, 3);
  t.type(loop.cause, WorkerExitError);
  t.type((loop.cause as WorkerExitError).cause, WorkerStartError, "the worker's own reason");
  t.match((loop.cause as WorkerExitError).message, /failed to start: Error: this worker is made to fail at start/);
  t.equal(events.filter((e) => e.type === 'fork').length, 3, 'forked maxCrashes times, no more');
  t.same(events.filter((e) => e.type === 'respawn').map((e) => (e as { delayMs: number }).delayMs), [10, 20], 'exponential backoff');
  t.equal(errors.filter((e) => e instanceof WorkerExitError).length, 3, 'each crash reported');
  t.equal(errors.filter((e) => e instanceof WorkerCrashLoopError).length, 1, 'the loop reported once');
  t.ok(await until(() => supervisor.state === 'STOPPED'), 'the supervisor stopped');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(events.filter((e) => e.type === 'fork').length, 3, 'still no more forks');
});

t.test('relay: a message from one worker reaches every other one, bytes intact, not itself; bounded per worker', async (t) => {
  const { supervisor, port, events } = await cluster(t, { workers: 3, relay: { maxPendingBytesPerWorker: 256 * 1024 } });
  await supervisor.start();
  type Relay = { received: number; receivedBytes: number; corrupt: number; own: number; sent: number };
  const relayOf = async () => {
    const stats = await supervisor.stats();
    return new Map(stats.workers.map((w) => [w.pid!, (w.stats as { relay: Relay }).relay]));
  };

  const published = await get(port, '/publish?count=50&size=1000');
  t.same(published, { status: 200, body: '50' });
  t.ok(
    await until(async () => [...(await relayOf()).values()].filter((r) => r.received === 50).length === 2),
    'the two other workers got the 50 messages',
  );
  const relays = await relayOf();
  const sender = [...relays].find(([, r]) => r.sent === 50)![0];
  t.equal(relays.get(sender)!.received, 0, 'the sender did not get its own');
  for (const [pid, r] of relays) if (pid !== sender) t.match(r, { received: 50, receivedBytes: 50_000, corrupt: 0, own: 0 }, 'intact');

  // Bound: one receiver blocks its event loop; the publisher sends 4 MiB; the primary drops past 256 KiB for the
  // blocked one only, and counts it.
  const blocker = await get(port, '/block?ms=1500');
  const blocked = 'body' in blocker ? blocker : undefined;
  t.ok(blocked);
  let burst: { status: number; body: string } | { error: string } = { error: 'not sent' };
  for (let i = 0; i < 5; i++) {
    burst = await get(port, '/publish?count=64&size=65536'); // round-robin: lands on a worker that is not blocked
    if ('body' in burst) break;
  }
  t.same(burst, { status: 200, body: '64' });
  t.ok(await until(async () => (await supervisor.stats()).relay.dropped > 0, 200, 25), 'the relay dropped for the blocked worker');
  const after = await supervisor.stats();
  t.ok(after.relay.dropped > 0 && after.relay.dropped < 2 * 64, `dropped ${after.relay.dropped} copies (not the other receiver's)`);
  t.equal(after.relay.droppedBytes, after.relay.dropped * 65536);
  t.ok(await until(() => events.some((e) => e.type === 'relayDrop')), 'reported to onEvent');
});
