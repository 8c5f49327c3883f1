/**
 * lib/cluster when workers fail: a crash loop (a worker that always throws at start) rejects start() with a
 * WorkerCrashLoopError and is not respawned forever; a worker not ready within startTimeoutMs is killed and counts
 * as a crash; a worker that does not exit within grace + margin is killed and reported, and stop() resolves.
 */
import t from 'tap';
import { WorkerCrashLoopError, WorkerExitError, WorkerStartError, WorkerStartTimeoutError, WorkerStopTimeoutError } from '../lib/index.js';
import { alive, cluster, ensureBuilt, until } from './support/clusterApp.js';

await ensureBuilt();

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


t.test('a worker not ready within startTimeoutMs is killed and counts as a crash', async (t) => {
  const { supervisor, events, errors } = await cluster(t, { workers: 1, maxCrashes: 2, restartDelayMs: 10, startTimeoutMs: 1500, env: { QUAY_CLUSTER_HANG_START: '1' } });
  const outcome = await supervisor.start().then(
    () => undefined,
    (error: unknown) => error,
  );
  t.type(outcome, WorkerCrashLoopError);
  const exit = errors.find((e) => e instanceof WorkerExitError) as WorkerExitError;
  t.equal(exit.signal, 'SIGKILL', 'killed');
  t.type(exit.cause, WorkerStartTimeoutError, 'because it was not ready in time');
  t.equal(events.filter((e) => e.type === 'fork').length, 2);
});


t.test('a worker that does not exit within the grace and margin is killed and reported; stop() still resolves', async (t) => {
  const { supervisor, errors } = await cluster(t, { workers: 1, stopMarginMs: 300, env: { QUAY_CLUSTER_HANG_STOP: '1' } });
  await supervisor.start();
  const pid = supervisor.workers[0]!.pid!;
  await supervisor.stop(200);
  t.equal(supervisor.state, 'STOPPED');
  t.notOk(alive(pid), 'killed');
  t.type(errors[0], WorkerStopTimeoutError);
  t.match(errors[0], { code: 'WORKER_STOP_TIMEOUT', waitedMs: 500 });
});
