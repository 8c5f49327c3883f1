/**
 * What the cluster tests share: the cluster program (perf/cluster/app.ts, run from dist/ because node:cluster
 * forks JavaScript: the TypeScript loader of tap takes seconds per process), built here when dist/ is older than
 * the sources; free ports; HTTP requests on fresh connections; WebSocket clients that record their close code.
 */
import { request } from 'node:http';
import { join } from 'node:path';
import type { Test } from 'tap';
import { ClusterSupervisor, WebSocket } from '../../lib/index.js';
import { freePort } from '../../perf/services/RedisServerProcess.js';
import { ROOT, ensureBuilt as ensureDistBuilt } from './distBuild.js';

export { freePort };
import type { ClusterEvent, ClusterOptions } from '../../lib/index.js';

/** The compiled cluster program. */
export const APP = join(ROOT, 'dist', 'perf', 'cluster', 'app.js');
export const HOST = '127.0.0.1';

/** Builds dist/ when perf/cluster or lib/ changed since the program was built (a test file run on its own). */
export function ensureBuilt(): Promise<void> {
  return ensureDistBuilt(APP, ['perf/cluster']);
}

/** GET on a fresh connection (no keep-alive): the status and body, or the error's code (ECONNREFUSED...). */
export function get(port: number, path: string, timeoutMs = 5000): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request({ host: HOST, port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

/** The pid that answered GET /pid, or undefined. */
export async function pidOf(port: number): Promise<number | undefined> {
  const answer = await get(port, '/pid');
  return 'body' in answer && answer.status === 200 ? Number(answer.body) : undefined;
}

/** A WebSocket client of /ws: the worker pid it was greeted with, and the close code it got. */
export interface WsClient {
  readonly pid: Promise<number>;
  readonly closed: Promise<number>;
  close(): void;
}

export function wsClient(port: number): WsClient {
  const ws = new WebSocket(`ws://${HOST}:${port}/ws`);
  const pid = new Promise<number>((resolve, reject) => {
    ws.onmessage = (event) => resolve(Number(event.data));
    ws.onerror = () => reject(new Error('websocket error'));
  });
  pid.catch(() => {});
  const closed = new Promise<number>((resolve) => (ws.onclose = (event) => resolve((event as unknown as { code: number }).code)));
  return { pid, closed, close: () => ws.close() };
}

/** Waits (bounded: `tries` x `ms`) until `check` is true. */
export async function until(check: () => boolean | Promise<boolean>, tries = 200, ms = 25): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, ms));
  }
  return false;
}

/** True while a process with that pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A supervisor of the app on a free port, stopped (and its workers killed by PID if need be) at teardown. */
export async function cluster(t: Test, options: ClusterOptions & { env?: Record<string, string> } = {}) {
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

export interface Traffic {
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
export async function traffic(port: number, done: Promise<unknown>, maxRequests = 4000): Promise<Traffic> {
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

/**
 * `perWorker` WebSocket sessions on each of `workers` (which worker gets a connection is the kernel's or the
 * primary's choice: clients beyond what is needed on a worker are closed again). Bounded: at most 100 tries.
 */
export async function sessions(t: Test, port: number, workers: readonly number[], perWorker: number): Promise<{ clients: WsClient[]; pids: number[] }> {
  const clients: WsClient[] = [];
  const pids: number[] = [];
  t.teardown(() => clients.forEach((c) => c.close()));
  const count = (pid: number): number => pids.filter((p) => p === pid).length;
  for (let i = 0; i < 100 && workers.some((w) => count(w) < perWorker); i++) {
    const client = wsClient(port);
    const pid = await client.pid;
    if (count(pid) < perWorker) {
      clients.push(client);
      pids.push(pid);
    } else client.close();
  }
  return { clients, pids };
}
