/**
 * The worker's side of the cluster runner: runs the start function, tells the primary when it serves, answers
 * its stats/dump requests, and stops the service (then exits) when told to. See {@link ClusterWorker}.
 */
import process from 'node:process';
import cluster from 'node:cluster';
import { safeToDrop } from '../io/safeToDrop.js';
import { ClusterStateError } from './errors.js';
import { SLOT_ENV, isClusterMessage } from './messages.js';
import type { ClusterMessage, ReadyMessage, ResponseMessage, StartFailedMessage, StoppedMessage } from './messages.js';
import { resolveClusterOptions } from './options.js';
import type { ClusterOptions, ClusterService, ClusterStart } from './options.js';

/** How long a stopped worker waits for the primary's leave to exit (see StoppedMessage). */
const EXIT_ANSWER_TIMEOUT_MS = 2000;

/** `STARTING --start function resolved--> READY --stop--> STOPPING` (then the process exits); STARTING --stop--> STOPPING too. */
export type ClusterWorkerState = 'STARTING' | 'READY' | 'STOPPING';

/**
 * One worker process of a cluster (made by `runCluster` in a worker). `start()` runs the start function; once it
 * resolved the worker reports ready to the primary (so a rolling restart only stops the old worker after this
 * one listens). If it throws, the worker tells the primary why and exits with code 1 (the primary reports it as a
 * `WorkerStartError` and replaces the worker with backoff).
 *
 * The worker stops its service with `service.stop(graceMs)` and then exits (code 0; 1 if `stop` rejected) on the
 * primary's stop message and, with `handleSignals`, on SIGTERM/SIGINT of its own (SIGHUP is ignored: see
 * `ClusterOptions.handleSignals`). A worker whose primary went away is ended by node:cluster.
 */
export class ClusterWorker {
  /** node:cluster's id of this worker. */
  readonly id: number;
  /** The slot (0..workers-1) this worker serves in: its predecessors' and successors' slot too. */
  readonly slot: number;
  private readonly startFunction: ClusterStart;
  private readonly stopGraceMs: number;
  private _state: ClusterWorkerState = 'STARTING';
  private _service: ClusterService | undefined;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private exitAllowed: (() => void) | undefined;
  private readonly onMessage = (message: unknown): void => {
    if (isClusterMessage(message)) this.handle(message);
  };
  private readonly onSignal = (): void => {
    safeToDrop(this.stop());
  };

  /** @throws ClusterStateError when this process is not a node:cluster worker. */
  constructor(start: ClusterStart, options: ClusterOptions = {}) {
    const worker = cluster.worker;
    if (!cluster.isWorker || worker === undefined || process.send === undefined) {
      throw new ClusterStateError('a ClusterWorker runs in a node:cluster worker (runCluster makes it there)');
    }
    const resolved = resolveClusterOptions(options);
    this.id = worker.id;
    this.slot = Number(process.env[SLOT_ENV] ?? 0);
    this.startFunction = start;
    this.stopGraceMs = resolved.stopGraceMs;
    process.on('message', this.onMessage);
    if (resolved.handleSignals) {
      process.on('SIGTERM', this.onSignal);
      process.on('SIGINT', this.onSignal);
      process.on('SIGHUP', ignore);
    }
  }

  /** See {@link ClusterWorkerState}. */
  get state(): ClusterWorkerState {
    return this._state;
  }

  /** What the start function returned, once it resolved. */
  get service(): ClusterService | undefined {
    return this._service;
  }

  /**
   * Runs the start function and reports ready. Resolves once ready (or once stopping, when a stop came first);
   * when the start function fails it does not settle: the process exits with code 1 once the primary was told.
   */
  start(): Promise<void> {
    this.starting ??= safeToDrop(this.run());
    return this.starting;
  }

  /**
   * Stops the service with `graceMs` (default `stopGraceMs`), then exits the process. A stop during the start
   * waits for the start function first. Calling it again returns the same Promise (which settles only if the
   * process does not exit, i.e. never in practice).
   */
  stop(graceMs: number = this.stopGraceMs): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    this._state = 'STOPPING';
    this.stopping = safeToDrop(this.doStop(graceMs));
    return this.stopping;
  }

  private async run(): Promise<void> {
    let service: ClusterService;
    try {
      service = await this.startFunction();
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      const code = (e as { code?: unknown }).code;
      const message: StartFailedMessage = { type: 'quay:cluster.startFailed', name: e.name, message: e.message, code: typeof code === 'string' ? code : undefined };
      this.send(message, () => process.exit(1));
      return new Promise<void>(() => {});
    }
    this._service = service;
    if (this._state === 'STOPPING') return; // told to stop meanwhile: doStop stops the service now that it exists
    this._state = 'READY';
    const ready: ReadyMessage = { type: 'quay:cluster.ready' };
    this.send(ready);
  }

  private async doStop(graceMs: number): Promise<void> {
    if (this.starting !== undefined) await this.starting;
    let code = 0;
    try {
      await this._service?.stop(graceMs);
    } catch {
      code = 1;
    }
    // Tell the primary, and exit on its answer (see StoppedMessage): connections it handed over meanwhile are read
    // and given back first. Bounded: without an answer (a primary gone or stuck) the worker exits anyway.
    const answered = new Promise<void>((resolve) => (this.exitAllowed = resolve));
    const stopped: StoppedMessage = { type: 'quay:cluster.stopped' };
    this.send(stopped);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([answered, new Promise<void>((resolve) => (timer = setTimeout(resolve, EXIT_ANSWER_TIMEOUT_MS)))]);
    clearTimeout(timer);
    process.exit(code);
  }

  private handle(message: ClusterMessage): void {
    switch (message.type) {
      case 'quay:cluster.stop':
        safeToDrop(this.stop(message.graceMs));
        return;
      case 'quay:cluster.exit':
        this.exitAllowed?.();
        return;
      case 'quay:cluster.request': {
        let response: ResponseMessage;
        try {
          const service = this._service;
          const value = message.query === 'stats' ? service?.stats?.() : service?.dump?.();
          response = { type: 'quay:cluster.response', id: message.id, value };
        } catch (error) {
          response = { type: 'quay:cluster.response', id: message.id, value: undefined, error: String(error) };
        }
        this.send(response, undefined, message.id);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Sends to the primary. node calls the callback in every case (with ERR_IPC_CHANNEL_CLOSED once the primary is
   * gone), so a send never turns into an 'error' event. A value the structured clone refuses is answered as an
   * error (for a request).
   */
  private send(message: ClusterMessage, then?: () => void, requestId?: number): void {
    const done = (): void => then?.();
    try {
      process.send?.(message, undefined, undefined, done);
    } catch (error) {
      if (requestId !== undefined) {
        const fallback: ResponseMessage = { type: 'quay:cluster.response', id: requestId, value: undefined, error: `not sendable: ${String(error)}` };
        process.send?.(fallback, undefined, undefined, ignore);
      } else then?.();
    }
  }
}

function ignore(): void {}
