/**
 * lib/cluster under traffic: a rolling restart (restart()) refuses no connection and fails no request while the
 * sessions of the old workers get 1001, with the default scheduling (the other one: cluster-signals.test.ts,
 * SIGHUP). Processes are stopped by PID.
 */
import t from 'tap';
import { alive, cluster, ensureBuilt, pidOf, sessions, traffic } from './support/clusterApp.js';

await ensureBuilt();

t.test('rolling restart under traffic: 0 refused or failed, old sessions get 1001, new workers serve', async (t) => {
  // The rolling restart waits for each replacement to start and for each old worker to stop: the library's own
  // start timeout (30 s) and a 2 s grace, not the helper's shorter test values.
  const { supervisor, port, events, errors } = await cluster(t, { stopGraceMs: 2000, stopMarginMs: 2000, startTimeoutMs: 30_000 });
  await supervisor.start();
  const before = supervisor.workers.map((w) => w.pid!);
  const { clients, pids } = await sessions(t, port, before, 3);
  t.same(new Set(pids), new Set(before), 'the sessions are spread over both old workers');

  const restarted = supervisor.restart();
  const load = await traffic(port, restarted);
  await restarted;
  t.same(load.failures, [], `${load.requests} requests during the restart: none failed`);
  t.same(load.sessionFailures, [], `${load.sessions} sessions opened during the restart: all greeted`);
  t.ok(load.requests >= 20, `traffic ran through the restart (${load.requests} requests)`);
  const codes = await Promise.all(clients.map((c) => c.closed));
  t.same(codes, [1001, 1001, 1001, 1001, 1001, 1001], "the old workers' sessions got 1001 (going away)");

  const after = supervisor.workers;
  t.same(after.map((w) => [w.slot, w.state, w.restarts]), [[0, 'READY', 1], [1, 'READY', 1]]);
  t.ok(after.every((w) => !before.includes(w.pid!)), 'two new workers');
  t.ok(before.every((pid) => !alive(pid)), 'the old ones exited');
  const order = events.filter((e) => e.type === 'ready' || e.type === 'stopping').map((e) => `${e.type}:${(e as { slot: number }).slot}`);
  t.same(order.slice(2), ['ready:0', 'stopping:0', 'ready:1', 'stopping:1'], 'each replacement ready before its old worker is told to stop');
  const seen = new Set<number | undefined>();
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(await pidOf(port));
  t.same([...seen].sort(), after.map((w) => w.pid).sort(), 'the new workers serve');
  t.same(errors, [], 'nothing reported');
});
