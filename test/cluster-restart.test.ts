/**
 * lib/cluster under traffic: a rolling restart (restart(), and SIGHUP of a primary process) refuses no connection
 * and fails no request while the sessions of the old workers get 1001; SIGTERM of a primary process stops every
 * worker (its WebSocket clients get 1001) and the primary exits 0. Processes are stopped by PID.
 */
import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { ClusterSupervisor, DEFAULT_SCHEDULING } from '../lib/index.js';
import type { ClusterEvent, ClusterScheduling } from '../lib/index.js';
import { APP, alive, ensureBuilt, freePort, get, pidOf, until, wsClient } from './support/clusterApp.js';
import type { WsClient } from './support/clusterApp.js';

await ensureBuilt();

interface Traffic {
  requests: number;
  failures: string[];
  sessions: number;
  sessionFailures: string[];
  pids: Set<number>;
}

/**
 * Clients until `done` resolves (bounded: at most `maxRequests`, 30 s): 4 loops of GET /pid on fresh connections,
 * one loop opening WebSocket sessions (each must be greeted, then is closed by the client).
 */
async function traffic(port: number, done: Promise<unknown>, maxRequests = 4000): Promise<Traffic> {
  const result: Traffic = { requests: 0, failures: [], sessions: 0, sessionFailures: [], pids: new Set() };
  let finished = false;
  void done.finally(() => (finished = true));
  const deadline = Date.now() + 30_000;
  const more = (): boolean => !finished && result.requests < maxRequests && Date.now() < deadline;
  const http = async (): Promise<void> => {
    while (more()) {
      result.requests++;
      const answer = await get(port, '/pid');
      if ('error' in answer) result.failures.push(answer.error);
      else if (answer.status !== 200) result.failures.push(`status ${answer.status}`);
      else result.pids.add(Number(answer.body));
    }
  };
  const ws = async (): Promise<void> => {
    while (more()) {
      result.sessions++;
      const client = wsClient(port);
      const pid = await Promise.race([client.pid, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]).catch(() => -2);
      if (pid < 0) result.sessionFailures.push(pid === -1 ? 'no greeting' : 'error');
      client.close();
      await client.closed;
    }
  };
  await Promise.all([http(), http(), http(), http(), ws()]);
  return result;
}

async function sessions(t: Test, port: number, count: number): Promise<{ clients: WsClient[]; pids: number[] }> {
  const clients: WsClient[] = [];
  for (let i = 0; i < count; i++) clients.push(wsClient(port));
  t.teardown(() => clients.forEach((c) => c.close()));
  const pids = await Promise.all(clients.map((c) => c.pid));
  return { clients, pids };
}

t.test('rolling restart under traffic: 0 refused or failed, old sessions get 1001, new workers serve', async (t) => {
  const port = await freePort();
  const events: ClusterEvent[] = [];
  const errors: Error[] = [];
  const forked = new Set<number>();
  const supervisor = new ClusterSupervisor({
    workers: 2,
    exec: APP,
    args: ['--port', String(port)],
    execArgv: [],
    handleSignals: false,
    stopGraceMs: 2000,
    stopMarginMs: 2000,
    onEvent: (event) => {
      events.push(event);
      if (event.type === 'fork' && event.pid !== undefined) forked.add(event.pid);
    },
    onError: (error) => void errors.push(error),
  });
  t.teardown(async () => {
    await supervisor.stop(500);
    for (const pid of forked) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  await supervisor.start();
  const before = supervisor.workers.map((w) => w.pid!);
  const { clients, pids } = await sessions(t, port, 6);
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
  const { clients, pids } = await sessions(t, primary.port, 4);
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
  const { clients } = await sessions(t, primary.port, 2);
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
  const { clients } = await sessions(t, primary.port, 2);
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
