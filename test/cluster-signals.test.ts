/**
 * lib/cluster's signals, on the cluster program run as a primary process of its own (perf/cluster/app.ts):
 * SIGTERM stops every worker (WebSocket clients get 1001) and the primary exits 0; Ctrl-C (SIGINT to the process
 * group) is as clean and quiet; SIGHUP makes a rolling restart under traffic with 0 failures (on the scheduling
 * that is not the default). Processes are stopped by PID (or by the process group this test made).
 */
import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { DEFAULT_SCHEDULING } from '../lib/index.js';
import type { ClusterScheduling } from '../lib/index.js';
import { APP, alive, ensureBuilt, freePort, get, pidOf, sessions, traffic, until } from './support/clusterApp.js';

await ensureBuilt();

/** The cluster program as a primary process of its own: its first stdout line, and its exit. */
async function primaryProcess(t: Test, workers: number, options: { scheduling?: ClusterScheduling; detached?: boolean } = {}) {
  const port = await freePort();
  const args = [APP, '--port', String(port), '--workers', String(workers), '--grace', '2000'];
  if (options.scheduling !== undefined) args.push('--scheduling', options.scheduling);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, QUAY_CLUSTER_TEST: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false, // its own process group (for the Ctrl-C test)
  });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  let workerPids: number[] = [];
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    for (const pid of workerPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  const first = await Promise.race([lines.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no ready line: ${stderr}`)), 20_000))]);
  const ready = JSON.parse(String(first.value)) as { port: number; pids: number[]; scheduling: ClusterScheduling };
  workerPids = ready.pids;
  return { child, pid: child.pid!, port, workers: ready.pids, scheduling: ready.scheduling, exited, stderr: () => stderr };
}

t.test('SIGTERM of the primary: every worker stops (sessions get 1001), the primary exits 0', async (t) => {
  const primary = await primaryProcess(t, 2);
  const { clients, pids } = await sessions(t, primary.port, primary.workers, 2);
  t.same(new Set(pids), new Set(primary.workers), 'sessions on both workers');
  process.kill(primary.pid, 'SIGTERM');
  const [code, signal] = await primary.exited;
  t.same({ code, signal }, { code: 0, signal: null }, `the primary exited 0 ${primary.stderr()}`);
  t.same(await Promise.all(clients.map((c) => c.closed)), [1001, 1001, 1001, 1001], 'its sessions got 1001');
  t.ok(primary.workers.every((pid) => !alive(pid)), 'every worker exited');
  t.equal(primary.stderr(), '', 'nothing on stderr');
  const refused = await get(primary.port, '/pid');
  t.ok('error' in refused, 'nothing listens any more');
});

t.test('Ctrl-C (SIGINT to the whole process group): a clean stop, nothing reported, exit 0', async (t) => {
  const primary = await primaryProcess(t, 2, { detached: true });
  const { clients } = await sessions(t, primary.port, primary.workers, 1);
  process.kill(-primary.pid, 'SIGINT'); // the group of the primary we started: it and its workers
  const [code, signal] = await primary.exited;
  t.same({ code, signal }, { code: 0, signal: null }, 'the primary exited 0');
  t.same(await Promise.all(clients.map((c) => c.closed)), [1001, 1001], 'sessions got 1001');
  t.ok(await until(() => primary.workers.every((pid) => !alive(pid)), 100, 20), 'every worker exited');
  t.equal(primary.stderr(), '', 'no worker reported as crashed');
});

// The other scheduling than the default one (the in-process test above uses the default).
const otherScheduling: ClusterScheduling = DEFAULT_SCHEDULING === 'kernel' ? 'round-robin' : 'kernel';

t.test(`SIGHUP of the primary (${otherScheduling} scheduling): a rolling restart, traffic unharmed`, async (t) => {
  const primary = await primaryProcess(t, 2, { scheduling: otherScheduling });
  t.equal(primary.scheduling, otherScheduling);
  const { clients } = await sessions(t, primary.port, primary.workers, 1);
  process.kill(primary.pid, 'SIGHUP');
  // Done when both old workers are gone and two others answer.
  const replaced = until(async () => primary.workers.every((pid) => !alive(pid)), 400, 25);
  const load = await traffic(primary.port, replaced);
  t.ok(await replaced, 'both old workers exited');
  t.same(load.failures, [], `${load.requests} requests during the restart: none failed`);
  t.same(load.sessionFailures, [], `${load.sessions} sessions during the restart: all greeted`);
  t.same(await Promise.all(clients.map((c) => c.closed)), [1001, 1001]);
  const seen = new Set<number | undefined>();
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(await pidOf(primary.port));
  t.equal(seen.size, 2, 'two workers serve');
  t.ok([...seen].every((pid) => pid !== undefined && !primary.workers.includes(pid)), 'new ones');
  t.equal(alive(primary.pid), true, 'the primary still runs');
  process.kill(primary.pid, 'SIGTERM');
  const [code] = await primary.exited;
  t.equal(code, 0);
  t.equal(primary.stderr(), '');
});
