/**
 * The life of one worker process, as the supervisor (the primary) sees it. Explicit states and named events:
 *
 * ```
 *   STARTING --ready--> READY
 *   STARTING --stop---> STOPPING      READY --stop--> STOPPING
 *   STARTING --exit---> CRASHED       READY --exit--> CRASHED     (exited without being told to stop)
 *   STOPPING --exit---> STOPPED                                   (exited after being told to stop, or killed)
 * ```
 *
 * `ready`: the worker's start function resolved (its server is listening). `stop`: the supervisor told it to stop
 * (SIGTERM of the primary, `stop()`, a rolling restart, a start timeout). `exit`: the process is gone.
 */
export const WorkerState = Object.freeze({
  /** Forked; its start function has not resolved yet. */
  STARTING: 'STARTING',
  /** Its start function resolved: it serves. */
  READY: 'READY',
  /** Told to stop (or being killed); its exit is expected. */
  STOPPING: 'STOPPING',
  /** Exited after being told to stop. */
  STOPPED: 'STOPPED',
  /** Exited without being told to stop. */
  CRASHED: 'CRASHED',
} as const);
export type WorkerState = (typeof WorkerState)[keyof typeof WorkerState];

/** The events that move a worker from one {@link WorkerState} to the next. */
export type WorkerEvent = 'ready' | 'stop' | 'exit';

/**
 * The state after `event` in `state`, or `undefined` when the event does not apply there (a late `ready` from a
 * worker already told to stop, a second `stop`): the caller ignores it.
 */
export function nextWorkerState(state: WorkerState, event: WorkerEvent): WorkerState | undefined {
  switch (event) {
    case 'ready':
      return state === WorkerState.STARTING ? WorkerState.READY : undefined;
    case 'stop':
      return state === WorkerState.STARTING || state === WorkerState.READY ? WorkerState.STOPPING : undefined;
    case 'exit':
      if (state === WorkerState.STOPPING) return WorkerState.STOPPED;
      return state === WorkerState.STARTING || state === WorkerState.READY ? WorkerState.CRASHED : undefined;
  }
}

/** True while the worker's process is alive (STARTING, READY, STOPPING). */
export function isAlive(state: WorkerState): boolean {
  return state === WorkerState.STARTING || state === WorkerState.READY || state === WorkerState.STOPPING;
}
