/**
 * What the cluster runner runs and how: {@link ClusterService} (what a worker's start function returns),
 * {@link ClusterOptions} (the supervisor's options, with their defaults) and {@link ClusterEvent} (what it tells
 * `onEvent`).
 */
import process from 'node:process';
import { availableParallelism } from 'node:os';
import type { ClusterRelayOptions } from './relay.js';
import type { WorkerState } from './WorkerState.js';

/**
 * What runs in each worker: a `Server` is one. `stop(graceMs)` is called on the primary's stop message (SIGTERM or
 * SIGINT of the primary, `stop()`, a rolling restart) and on SIGTERM/SIGINT of the worker itself; a quay `Server`
 * then closes its WebSocket sessions with 1001 (going away) and finishes the requests in progress. `stats()` must
 * return what the structured clone carries (plain data); `dump()` a readable text.
 */
export interface ClusterService {
  stop(graceMs?: number): Promise<void>;
  stats?(): object;
  dump?(): string;
}

/** A worker's start function: makes and starts the service; resolves once it serves (listens). */
export type ClusterStart = () => ClusterService | Promise<ClusterService>;

/** How node:cluster spreads the connections of a shared port over the workers. */
export type ClusterScheduling =
  /** The primary accepts every connection and hands them out in turn over IPC (node's `SCHED_RR`). */
  | 'round-robin'
  /** Every worker accepts on the shared socket and the kernel picks which (node's `SCHED_NONE`). */
  | 'kernel';

/** What happened in the cluster, for logs and metrics (`ClusterOptions.onEvent`). */
export type ClusterEvent =
  /** A worker process was forked into a slot (`replacing`: a rolling restart's new worker, or a respawn). */
  | { readonly type: 'fork'; readonly slot: number; readonly id: number; readonly pid: number | undefined; readonly reason: 'start' | 'respawn' | 'restart' }
  /** A worker's start function resolved. */
  | { readonly type: 'ready'; readonly slot: number; readonly id: number; readonly pid: number | undefined }
  /** A worker was told to stop. */
  | { readonly type: 'stopping'; readonly slot: number; readonly id: number; readonly pid: number | undefined }
  /** A worker exited; `state` is STOPPED (it was told to) or CRASHED. */
  | {
      readonly type: 'exit';
      readonly slot: number;
      readonly id: number;
      readonly pid: number | undefined;
      readonly state: WorkerState;
      readonly exitCode: number | null;
      readonly signal: string | null;
    }
  /** A crashed slot is respawned in `delayMs` (exponential backoff). */
  | { readonly type: 'respawn'; readonly slot: number; readonly delayMs: number; readonly crashes: number }
  /** A rolling restart began or ended (`ok` false: it stopped at a replacement that did not start). */
  | { readonly type: 'restart'; readonly phase: 'begin' | 'end'; readonly ok?: boolean }
  /** The relay dropped messages for a worker over its bound (see `ClusterRelayOptions`). */
  | { readonly type: 'relayDrop'; readonly id: number; readonly dropped: number; readonly droppedBytes: number }
  /** The supervisor began to stop (`signal` when a signal asked) / every worker has exited. */
  | { readonly type: 'stopping-cluster'; readonly signal: string | undefined }
  | { readonly type: 'stopped' };

/** Options of the cluster runner ({@link ClusterSupervisor} in the primary, {@link ClusterWorker} in a worker). */
export interface ClusterOptions {
  /** Worker processes. Default `os.availableParallelism()`. */
  workers?: number;
  /**
   * How connections are spread over the workers. Default: the `NODE_CLUSTER_SCHED_POLICY` environment variable
   * (`rr` / `none`) when set, else {@link DEFAULT_SCHEDULING} (measured: docs/ARCHITECTURE.md, "All cores").
   * node:cluster fixes the policy at a process's first fork, so every supervisor of one process uses the first one's.
   */
  scheduling?: ClusterScheduling;
  /**
   * The grace of `service.stop(graceMs)` in each worker on SIGTERM/SIGINT, `stop()` and rolling restarts: requests
   * in progress finish, WebSocket sessions get 1001. Default 10 000.
   */
  stopGraceMs?: number;
  /** A worker not gone `stopGraceMs + stopMarginMs` after being told to stop is killed (SIGKILL). Default 5 000. */
  stopMarginMs?: number;
  /** Delay before respawning a crashed worker; doubles with each crash within `crashWindowMs`. Default 100. */
  restartDelayMs?: number;
  /** The most that delay grows to. Default 10 000. */
  maxRestartDelayMs?: number;
  /**
   * A slot whose worker crashes `maxCrashes` times within `crashWindowMs` is not respawned any more: reported with a
   * `WorkerCrashLoopError` (and `start()` rejects with it when it happens before every worker was ready). Default 5.
   */
  maxCrashes?: number;
  /** See `maxCrashes`. Default 60 000. */
  crashWindowMs?: number;
  /** A worker not ready this long after its fork is killed and counts as a crash (`WorkerStartTimeoutError`). Default 30 000. */
  startTimeoutMs?: number;
  /** How long `stats()` and `dump()` wait for each worker's answer; a late one is reported as such. Default 2 000. */
  requestTimeoutMs?: number;
  /**
   * Primary: SIGTERM and SIGINT stop the cluster then exit the process (0; 1 if a worker had to be killed; a second
   * signal kills the workers at once), SIGHUP makes a rolling restart. Worker: SIGTERM and SIGINT stop its service
   * then exit, SIGHUP is ignored (a terminal's hang-up goes to the whole process group: the primary restarts the
   * workers one at a time instead). Default true.
   */
  handleSignals?: boolean;
  /**
   * Told of every error of the cluster (typed, see lib/cluster/errors.ts): a worker that crashed, failed to start
   * or to stop, a crash loop, a failed rolling restart. Default: one line on `console.error`.
   */
  onError?: (error: Error) => void;
  /** Told of what happens in the cluster (forks, readiness, exits, respawns, restarts). Default: nothing. */
  onEvent?: (event: ClusterEvent) => void;
  /** The script the workers run (`cluster.setupPrimary({ exec })`). Default: the primary's own (`process.argv[1]`). */
  exec?: string;
  /** Its arguments. Default: the primary's. */
  args?: readonly string[];
  /** Node's options of the workers. Default: the primary's (`process.execArgv`). */
  execArgv?: readonly string[];
  /** Environment variables added for the workers (over the primary's). */
  env?: Readonly<Record<string, string>>;
  /** Options of the one {@link ClusterRelay} the supervisor installs (its drops also go to `onEvent`). */
  relay?: Omit<ClusterRelayOptions, 'onDrop'>;
}

/** The default of {@link ClusterOptions.scheduling} (see docs/ARCHITECTURE.md, "All cores", for the measurement). */
export const DEFAULT_SCHEDULING: ClusterScheduling = 'kernel';

/** The options with their defaults filled in. */
export interface ResolvedClusterOptions {
  readonly workers: number;
  readonly scheduling: ClusterScheduling;
  readonly stopGraceMs: number;
  readonly stopMarginMs: number;
  readonly restartDelayMs: number;
  readonly maxRestartDelayMs: number;
  readonly maxCrashes: number;
  readonly crashWindowMs: number;
  readonly startTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly handleSignals: boolean;
  readonly onError: (error: Error) => void;
  readonly onEvent: ((event: ClusterEvent) => void) | undefined;
}

function defaultOnError(error: Error): void {
  console.error(`quay cluster: ${error.message}`);
}

function schedulingFromEnvironment(): ClusterScheduling | undefined {
  const policy = process.env.NODE_CLUSTER_SCHED_POLICY;
  if (policy === 'rr') return 'round-robin';
  if (policy === 'none') return 'kernel';
  return undefined;
}

function check(name: string, value: number, min: number, integer = true): number {
  if (!(value >= min) || (integer && !Number.isInteger(value))) throw new RangeError(`${name} must be ${integer ? 'an integer ' : ''}>= ${min} (got ${value})`);
  return value;
}

/** Fills in the defaults; throws RangeError for a nonsensical number. */
export function resolveClusterOptions(options: ClusterOptions = {}): ResolvedClusterOptions {
  const scheduling = options.scheduling ?? schedulingFromEnvironment() ?? DEFAULT_SCHEDULING;
  if (scheduling !== 'round-robin' && scheduling !== 'kernel') throw new RangeError(`scheduling must be 'round-robin' or 'kernel' (got ${String(scheduling)})`);
  return {
    workers: check('workers', options.workers ?? availableParallelism(), 1),
    scheduling,
    stopGraceMs: check('stopGraceMs', options.stopGraceMs ?? 10_000, 0),
    stopMarginMs: check('stopMarginMs', options.stopMarginMs ?? 5_000, 0),
    restartDelayMs: check('restartDelayMs', options.restartDelayMs ?? 100, 0),
    maxRestartDelayMs: check('maxRestartDelayMs', options.maxRestartDelayMs ?? 10_000, 0),
    maxCrashes: check('maxCrashes', options.maxCrashes ?? 5, 1),
    crashWindowMs: check('crashWindowMs', options.crashWindowMs ?? 60_000, 0),
    startTimeoutMs: check('startTimeoutMs', options.startTimeoutMs ?? 30_000, 1),
    requestTimeoutMs: check('requestTimeoutMs', options.requestTimeoutMs ?? 2_000, 1),
    handleSignals: options.handleSignals ?? true,
    onError: options.onError ?? defaultOnError,
    onEvent: options.onEvent,
  };
}
