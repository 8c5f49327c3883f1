/**
 * Typed errors of the cluster supervisor (lib/cluster). Each has a stable `code` for programs; `message` is for
 * people. The supervisor hands them to `ClusterOptions.onError`; `start()` and `restart()` reject with them.
 */

/** The stable codes of {@link ClusterError}. */
export type ClusterErrorCode =
  /** A worker exited (or was killed) without being told to stop; it is replaced (with backoff). */
  | 'WORKER_EXITED'
  /** A worker's start function threw or rejected (then the worker exits, and is replaced like any crash). */
  | 'WORKER_START_FAILED'
  /** A worker did not report ready within `startTimeoutMs`: it was killed (and counts as a crash). */
  | 'WORKER_START_TIMEOUT'
  /** A worker did not exit within `stopGraceMs + stopMarginMs` of being told to stop: it was killed. */
  | 'WORKER_STOP_TIMEOUT'
  /** A worker crashed `maxCrashes` times within `crashWindowMs`: it is not respawned any more. */
  | 'WORKER_CRASH_LOOP'
  /** An operation the supervisor's (or the worker's) state does not allow, or node:cluster used in a way it cannot be. */
  | 'CLUSTER_STATE';

/** Base class of the errors of lib/cluster. */
export class ClusterError extends Error {
  readonly code: ClusterErrorCode;
  constructor(code: ClusterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Which worker an error is about: its slot (0..workers-1, stable across replacements), node:cluster id and pid. */
export interface WorkerIdentity {
  readonly slot: number;
  readonly id: number;
  readonly pid: number | undefined;
}

/** A worker exited without being told to stop (`code` WORKER_EXITED). `cause`: why, when known (start failure, start timeout). */
export class WorkerExitError extends ClusterError {
  /** The worker that exited. */
  readonly worker: WorkerIdentity;
  /** Its exit code (`null` when a signal ended it). */
  readonly exitCode: number | null;
  /** The signal that ended it (`null` when it exited by itself). */
  readonly signal: string | null;
  constructor(worker: WorkerIdentity, exitCode: number | null, signal: string | null, cause?: unknown) {
    const how = signal === null ? `code ${exitCode}` : `signal ${signal}`;
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    super('WORKER_EXITED', `worker ${worker.id} (slot ${worker.slot}, pid ${worker.pid}) exited unexpectedly with ${how}${why}`, cause === undefined ? undefined : { cause });
    this.worker = worker;
    this.exitCode = exitCode;
    this.signal = signal;
  }
}

/** A worker's start function failed (`code` WORKER_START_FAILED). `message` and `errorName` are the worker's. */
export class WorkerStartError extends ClusterError {
  /** The worker whose start function failed. */
  readonly worker: WorkerIdentity;
  /** The `name` of the error the start function threw (in the worker; errors cross IPC as text). */
  readonly errorName: string;
  /** Its `code`, when it had a string one (e.g. EADDRINUSE). */
  readonly errorCode: string | undefined;
  constructor(worker: WorkerIdentity, errorName: string, message: string, errorCode: string | undefined) {
    super('WORKER_START_FAILED', `worker ${worker.id} (slot ${worker.slot}) failed to start: ${errorName}: ${message}`);
    this.worker = worker;
    this.errorName = errorName;
    this.errorCode = errorCode;
  }
}

/** A worker was not ready within `startTimeoutMs` (`code` WORKER_START_TIMEOUT); it was killed. */
export class WorkerStartTimeoutError extends ClusterError {
  /** The worker that was killed. */
  readonly worker: WorkerIdentity;
  /** The `startTimeoutMs` it exceeded. */
  readonly startTimeoutMs: number;
  constructor(worker: WorkerIdentity, startTimeoutMs: number) {
    super('WORKER_START_TIMEOUT', `worker ${worker.id} (slot ${worker.slot}) was not ready within ${startTimeoutMs} ms: killed`);
    this.worker = worker;
    this.startTimeoutMs = startTimeoutMs;
  }
}

/** A worker told to stop did not exit within `stopGraceMs + stopMarginMs` (`code` WORKER_STOP_TIMEOUT); it was killed. */
export class WorkerStopTimeoutError extends ClusterError {
  /** The worker that was killed. */
  readonly worker: WorkerIdentity;
  /** How long it was given: the stop's grace plus `stopMarginMs`. */
  readonly waitedMs: number;
  constructor(worker: WorkerIdentity, waitedMs: number) {
    super('WORKER_STOP_TIMEOUT', `worker ${worker.id} (slot ${worker.slot}) did not exit within ${waitedMs} ms of being told to stop: killed`);
    this.worker = worker;
    this.waitedMs = waitedMs;
  }
}

/**
 * A slot's worker crashed `crashes` times within `crashWindowMs` (`code` WORKER_CRASH_LOOP): the supervisor stops
 * respawning it. `cause` is the last {@link WorkerExitError}. Before `start()` resolved, `start()` rejects with
 * it (and the other workers are stopped); afterwards it goes to `onError` and the other workers keep serving.
 */
export class WorkerCrashLoopError extends ClusterError {
  /** The slot given up (0..workers-1). */
  readonly slot: number;
  /** Its crashes within the window (`maxCrashes`). */
  readonly crashes: number;
  /** The window (`crashWindowMs`). */
  readonly crashWindowMs: number;
  constructor(slot: number, crashes: number, crashWindowMs: number, cause: unknown) {
    super('WORKER_CRASH_LOOP', `the worker of slot ${slot} crashed ${crashes} times within ${crashWindowMs} ms: not respawned any more`, { cause });
    this.slot = slot;
    this.crashes = crashes;
    this.crashWindowMs = crashWindowMs;
  }
}

/** An operation in a state that does not allow it (`code` CLUSTER_STATE). */
export class ClusterStateError extends ClusterError {
  constructor(message: string) {
    super('CLUSTER_STATE', message);
  }
}
