/**
 * The primary's side of the cluster runner: forks the workers, keeps one per slot alive, stops them, restarts them
 * one at a time, and asks them for their stats. See {@link ClusterSupervisor}.
 */
import process from 'node:process';
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { safeToDrop } from '../io/safeToDrop.js';
import { ClusterRelay } from './relay.js';
import type { ClusterRelayStats } from './relay.js';
import {
  ClusterStateError,
  WorkerCrashLoopError,
  WorkerExitError,
  WorkerStartError,
  WorkerStartTimeoutError,
  WorkerStopTimeoutError,
} from './errors.js';
import type { WorkerIdentity } from './errors.js';
import { SLOT_ENV, isClusterMessage } from './messages.js';
import type { ExitMessage, RequestMessage, StopMessage, WorkerQuery } from './messages.js';
import { resolveClusterOptions } from './options.js';
import type { ClusterEvent, ClusterOptions, ClusterScheduling, ResolvedClusterOptions } from './options.js';
import { addNumericFields } from './stats.js';
import type { ClusterStats, ClusterTotals, ClusterWorkerStats } from './stats.js';
import { WorkerState, nextWorkerState } from './WorkerState.js';

/**
 * `IDLE --start()--> STARTING --every worker ready--> RUNNING --stop() / SIGTERM / SIGINT--> STOPPING --> STOPPED`.
 * STARTING also goes to STOPPING (stop() before the start completed, or a crash loop during the start).
 */
export type SupervisorState = 'IDLE' | 'STARTING' | 'RUNNING' | 'STOPPING' | 'STOPPED';

/** A worker as {@link ClusterSupervisor.workers} shows it. */
export interface ClusterWorkerInfo {
  /** node:cluster's id (new for every process). */
  readonly id: number;
  /** 0..workers-1, kept by replacements (the worker reads it as `ClusterWorker.slot`). */
  readonly slot: number;
  readonly pid: number | undefined;
  readonly state: WorkerState;
  /** Replacements of this slot's worker so far (respawns and rolling restarts). */
  readonly restarts: number;
  /** Crashes of this slot within the crash window. */
  readonly crashes: number;
}

/** Requests (`stats()`, `dump()`) awaiting an answer, at most, over all workers; more are answered "busy" at once. */
const MAX_PENDING_REQUESTS = 1024;

/** node:cluster fixes its scheduling policy at a process's first fork: the one in force here, once set. */
let frozenScheduling: ClusterScheduling | undefined;
/** node:cluster is one per process (one `cluster.workers`, one relay): one running supervisor at a time. */
let activeSupervisor: ClusterSupervisor | undefined;

/** A position in the cluster: one worker serves in it at a time (two during its rolling restart). */
interface Slot {
  readonly index: number;
  /** The worker that serves (or starts to) in this slot. */
  current: ManagedWorker | undefined;
  /** A rolling restart's new worker, until it is ready and becomes `current`. */
  replacement: ManagedWorker | undefined;
  /** Times of the crashes within the crash window (at most `maxCrashes`). */
  crashTimes: number[];
  restarts: number;
  respawnTimer: NodeJS.Timeout | undefined;
  /** Crash loop: not respawned any more. */
  failed: boolean;
}

interface PendingRequest {
  readonly worker: ManagedWorker;
  readonly timer: NodeJS.Timeout;
  readonly resolve: (answer: Answer) => void;
}

interface Answer {
  readonly value?: object | string | undefined;
  readonly error?: string;
}

/** One worker process and what the supervisor knows of it. */
class ManagedWorker {
  state: WorkerState = WorkerState.STARTING;
  /** Why it is going to exit, when the supervisor knows before the exit (start failure, start timeout). */
  failure: Error | undefined;
  /** The supervisor told it to stop (else a STOPPING worker stopped on a signal of its own). */
  askedToStop = false;
  startTimer: NodeJS.Timeout | undefined;
  killTimer: NodeJS.Timeout | undefined;
  /** Resolves once its start function resolved; rejects if it exits first. Marked handled. */
  readonly ready: Promise<void>;
  /** Resolves when the process exited (never rejects). */
  readonly exited: Promise<void>;
  settleReady!: (error?: Error) => void;
  settleExited!: () => void;

  constructor(
    readonly worker: Worker,
    readonly slot: Slot,
  ) {
    this.ready = safeToDrop(
      new Promise<void>((resolve, reject) => {
        this.settleReady = (error) => (error === undefined ? resolve() : reject(error));
      }),
    );
    this.exited = new Promise<void>((resolve) => (this.settleExited = resolve));
  }

  get identity(): WorkerIdentity {
    return { slot: this.slot.index, id: this.worker.id, pid: this.worker.process.pid };
  }
}

/**
 * The primary of a node:cluster, supervising its workers (Contract 1 of the scale-out issue):
 *
 * - `start()` forks `workers` processes (each told its slot in `QUAY_CLUSTER_SLOT`) with `serialization:
 *   'advanced'`, installs one {@link ClusterRelay}, and resolves when every worker's start function resolved.
 * - A worker that exits without being told to is reported (`WorkerExitError` to `onError`) and replaced after
 *   `restartDelayMs`, doubling per crash within `crashWindowMs` up to `maxRestartDelayMs`; after `maxCrashes`
 *   crashes within the window its slot is given up (`WorkerCrashLoopError`). During `start()` that makes `start()`
 *   reject and the cluster stop (a program that cannot start should not half-run); afterwards the other workers
 *   keep serving, and when no slot is left the supervisor stops.
 * - `stop(graceMs)` (SIGTERM/SIGINT with `handleSignals`) tells every worker to stop its service with that grace
 *   (a quay Server closes its sessions with 1001) and resolves when all have exited; one still there after
 *   `graceMs + stopMarginMs` is killed (`WorkerStopTimeoutError`).
 * - `restart()` (SIGHUP) replaces the workers one at a time: each replacement is ready (listening) before the old
 *   worker is told to stop, and the old one has exited before the next slot, so at most `workers + 1` run.
 * - `stats()` and `dump()` ask every worker over IPC and aggregate; a worker that does not answer within
 *   `requestTimeoutMs` is reported as such.
 *
 * node:cluster is per process: one supervisor runs at a time in a process, and the scheduling policy is the one
 * of the process's first supervisor. Every Promise it returns is safe to ignore.
 */
export class ClusterSupervisor {
  private readonly options: ResolvedClusterOptions;
  private readonly raw: ClusterOptions;
  private readonly slots: Slot[];
  private readonly live = new Set<ManagedWorker>();
  private readonly pending = new Map<number, PendingRequest>();
  private nextRequestId = 0;
  private _state: SupervisorState = 'IDLE';
  private relay: ClusterRelay | undefined;
  private starting: Promise<void> | undefined;
  private startWaiter: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private stopping: Promise<void> | undefined;
  private restarting: Promise<void> | undefined;
  private restartQueued: Promise<void> | undefined;
  private killedSome = false;
  private signalsInstalled = false;
  private readonly onSignal = (signal: NodeJS.Signals): void => this.handleSignal(signal);

  constructor(options: ClusterOptions = {}) {
    this.raw = options;
    this.options = resolveClusterOptions(options);
    this.slots = [];
    for (let index = 0; index < this.options.workers; index++) {
      this.slots.push({ index, current: undefined, replacement: undefined, crashTimes: [], restarts: 0, respawnTimer: undefined, failed: false });
    }
  }

  /** See {@link SupervisorState}. */
  get state(): SupervisorState {
    return this._state;
  }

  /** How connections are spread over the workers (see `ClusterOptions.scheduling`). */
  get scheduling(): ClusterScheduling {
    return this.options.scheduling;
  }

  /** A snapshot of the worker processes alive now, by slot (a rolling restart shows two in one slot). */
  get workers(): ClusterWorkerInfo[] {
    const now = Date.now();
    return this.sortedLive().map((mw) => this.info(mw, now));
  }

  /**
   * Forks the workers; resolves when each one's start function has resolved. Rejects with a `ClusterStateError`
   * when called in a worker, a second time after a stop, or while another supervisor runs in this process; with a
   * `WorkerCrashLoopError` when a worker crashed `maxCrashes` times before every worker was ready (the others
   * are then stopped). Calling it again while it runs returns the same Promise.
   */
  start(): Promise<void> {
    if (this.starting !== undefined) return this.starting;
    if (this._state !== 'IDLE') return safeToDrop(Promise.reject(new ClusterStateError(`cannot start a supervisor in state ${this._state}`)));
    if (!cluster.isPrimary) return safeToDrop(Promise.reject(new ClusterStateError('a ClusterSupervisor runs in the primary process, not in a worker')));
    if (activeSupervisor !== undefined) return safeToDrop(Promise.reject(new ClusterStateError('another ClusterSupervisor runs in this process (node:cluster is one per process)')));
    const scheduling = this.options.scheduling;
    if (frozenScheduling !== undefined && frozenScheduling !== scheduling) {
      return safeToDrop(Promise.reject(new ClusterStateError(`node:cluster fixed this process's scheduling to ${frozenScheduling} at its first fork; ${scheduling} cannot be used`)));
    }
    activeSupervisor = this;
    this._state = 'STARTING';
    if (frozenScheduling === undefined) {
      // Read by node:cluster at the first setupPrimary()/fork() of the process, and frozen from then on.
      cluster.schedulingPolicy = scheduling === 'kernel' ? cluster.SCHED_NONE : cluster.SCHED_RR;
      frozenScheduling = scheduling;
    }
    // 'advanced': the relay's payloads are bytes (a Uint8Array survives the structured clone, not JSON).
    cluster.setupPrimary({
      serialization: 'advanced',
      ...(this.raw.exec === undefined ? {} : { exec: this.raw.exec }),
      ...(this.raw.args === undefined ? {} : { args: [...this.raw.args] }),
      ...(this.raw.execArgv === undefined ? {} : { execArgv: [...this.raw.execArgv] }),
    });
    this.relay = new ClusterRelay(cluster, {
      ...this.raw.relay,
      onDrop: (worker, dropped, droppedBytes) => this.emit({ type: 'relayDrop', id: worker.id, dropped, droppedBytes }),
    });
    if (this.options.handleSignals) {
      process.on('SIGTERM', this.onSignal);
      process.on('SIGINT', this.onSignal);
      process.on('SIGHUP', this.onSignal);
      this.signalsInstalled = true;
    }
    this.starting = safeToDrop(new Promise<void>((resolve, reject) => (this.startWaiter = { resolve, reject })));
    for (const slot of this.slots) slot.current = this.fork(slot, 'start');
    return this.starting;
  }

  /**
   * Stops the cluster: every worker is told to stop its service with `graceMs` (default `stopGraceMs`) and exit;
   * resolves when all have exited (one still alive `graceMs + stopMarginMs` later is killed and reported). A
   * `start()` still in progress rejects with a `ClusterStateError` (stopped by SIGTERM/SIGINT instead: it stays
   * pending, and the process exits once the workers have). Calling it again returns the same Promise.
   */
  stop(graceMs: number = this.options.stopGraceMs): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    this.stopping = safeToDrop(this.doStop(graceMs, undefined));
    return this.stopping;
  }

  /**
   * A rolling restart: for each slot in turn, forks a new worker, waits until it is ready (listening), then tells
   * the old one to stop (its sessions get 1001 and reconnect to the others) and waits for its exit. New
   * connections keep being accepted throughout. Rejects (and stops there, the old worker of that slot still
   * serving) when a replacement exits or times out before it is ready; that crash also went to `onError`.
   * Called while one runs, one more restart runs after it (at most one is queued).
   */
  restart(): Promise<void> {
    if (this._state !== 'RUNNING') return safeToDrop(Promise.reject(new ClusterStateError(`cannot restart in state ${this._state}`)));
    if (this.restarting === undefined) {
      this.restarting = safeToDrop(this.rollingRestart().finally(() => (this.restarting = undefined)));
      return this.restarting;
    }
    this.restartQueued ??= safeToDrop(
      this.restarting
        .catch(() => undefined)
        .then(() => {
          this.restartQueued = undefined;
          return this.restart();
        }),
    );
    return this.restartQueued;
  }

  /**
   * Every live worker's `stats()` (asked over IPC, at most `requestTimeoutMs` each, in parallel), their numeric
   * fields summed in `total`, and the relay's counters. Never rejects.
   */
  async stats(): Promise<ClusterStats> {
    const workers = this.sortedLive();
    const answers = await Promise.all(workers.map((mw) => this.ask(mw, 'stats')));
    const now = Date.now();
    const total: ClusterTotals = {};
    const list: ClusterWorkerStats[] = [];
    let answered = 0;
    for (let i = 0; i < workers.length; i++) {
      const answer = answers[i]!;
      const info = this.info(workers[i]!, now);
      if (answer.error !== undefined) {
        list.push({ ...info, error: answer.error });
        continue;
      }
      answered++;
      if (typeof answer.value === 'object' && answer.value !== null) {
        addNumericFields(total, answer.value);
        list.push({ ...info, stats: answer.value });
      } else list.push(info);
    }
    return { workers: list, total, answered, asked: workers.length, relay: this.relayStats() };
  }

  /** A readable tree: the supervisor, then each worker with its service's `dump()` (or why there is none). Never rejects. */
  async dump(): Promise<string> {
    const workers = this.sortedLive();
    const answers = await Promise.all(workers.map((mw) => this.ask(mw, 'dump')));
    const relay = this.relayStats();
    const lines = [
      `ClusterSupervisor ${this._state} scheduling=${this.options.scheduling} slots=${this.slots.length} ` +
        `live=${workers.length} failedSlots=${this.slots.filter((s) => s.failed).length} relay: received=${relay.received} ` +
        `forwarded=${relay.forwarded} dropped=${relay.dropped} pending=${relay.pendingBytes}B`,
    ];
    const now = Date.now();
    for (let i = 0; i < workers.length; i++) {
      const last = i === workers.length - 1;
      const w = this.info(workers[i]!, now);
      const answer = answers[i]!;
      const head = `worker ${w.id} slot=${w.slot} pid=${w.pid} ${w.state} restarts=${w.restarts} crashes=${w.crashes}`;
      if (answer.error !== undefined) lines.push(`+- ${head} (no dump: ${answer.error})`);
      else if (typeof answer.value !== 'string') lines.push(`+- ${head} (its service has no dump())`);
      else {
        lines.push(`+- ${head}`);
        for (const line of answer.value.split('\n')) lines.push(`${last ? '   ' : '|  '}${line}`);
      }
    }
    return lines.join('\n');
  }

  private relayStats(): ClusterRelayStats {
    return this.relay?.stats() ?? { received: 0, forwarded: 0, dropped: 0, droppedBytes: 0, pendingBytes: 0 };
  }

  private sortedLive(): ManagedWorker[] {
    return [...this.live].sort((a, b) => a.slot.index - b.slot.index || a.worker.id - b.worker.id);
  }

  private info(mw: ManagedWorker, now: number): ClusterWorkerInfo {
    return {
      id: mw.worker.id,
      slot: mw.slot.index,
      pid: mw.worker.process.pid,
      state: mw.state,
      restarts: mw.slot.restarts,
      crashes: this.recentCrashes(mw.slot, now),
    };
  }

  private recentCrashes(slot: Slot, now: number): number {
    const window = this.options.crashWindowMs;
    while (slot.crashTimes.length > 0 && now - slot.crashTimes[0]! >= window) slot.crashTimes.shift();
    return slot.crashTimes.length;
  }

  private emit(event: ClusterEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch (error) {
      this.report(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private report(error: Error): void {
    try {
      this.options.onError(error);
    } catch {
      // An onError that throws must not break the supervision of the other workers.
    }
  }

  private fork(slot: Slot, reason: 'start' | 'respawn' | 'restart'): ManagedWorker {
    const worker = cluster.fork({ ...this.raw.env, [SLOT_ENV]: String(slot.index) });
    const mw = new ManagedWorker(worker, slot);
    this.live.add(mw);
    worker.on('message', (message: unknown) => this.onMessage(mw, message));
    // A send to a worker that is going away fails through its callback (or this event); its 'exit' says the rest.
    worker.on('error', () => {});
    worker.once('exit', (code: number | null, signal: string | null) => this.onExit(mw, code, signal));
    mw.startTimer = setTimeout(() => this.onStartTimeout(mw), this.options.startTimeoutMs);
    this.emit({ type: 'fork', slot: slot.index, id: worker.id, pid: worker.process.pid, reason });
    return mw;
  }

  private onMessage(mw: ManagedWorker, message: unknown): void {
    if (!isClusterMessage(message)) return; // the relay's, or the application's
    switch (message.type) {
      case 'quay:cluster.ready': {
        if (nextWorkerState(mw.state, 'ready') === undefined) return;
        mw.state = WorkerState.READY;
        clearTimeout(mw.startTimer);
        mw.startTimer = undefined;
        this.emit({ type: 'ready', slot: mw.slot.index, id: mw.worker.id, pid: mw.worker.process.pid });
        mw.settleReady();
        this.checkStarted();
        return;
      }
      case 'quay:cluster.stopped': {
        // Not asked by us: it stopped on a signal of its own (SIGTERM to its pid, or Ctrl-C to the whole process
        // group). Its exit is then expected (STOPPED, not reported); the slot gets a new worker (see onExit).
        if (nextWorkerState(mw.state, 'stop') !== undefined) {
          mw.state = WorkerState.STOPPING;
          clearTimeout(mw.startTimer);
          mw.startTimer = undefined;
          this.emit({ type: 'stopping', slot: mw.slot.index, id: mw.worker.id, pid: mw.worker.process.pid });
        }
        // Every connection handed to it before it closed its listener is ahead of this answer in its channel.
        const exit: ExitMessage = { type: 'quay:cluster.exit' };
        if (mw.worker.isConnected()) mw.worker.send(exit, () => {});
        return;
      }
      case 'quay:cluster.startFailed':
        mw.failure = new WorkerStartError(mw.identity, message.name, message.message, message.code);
        return;
      case 'quay:cluster.response': {
        const request = this.pending.get(message.id);
        if (request === undefined || request.worker !== mw) return; // late: already answered "timeout"
        this.settleRequest(message.id, message.error === undefined ? { value: message.value } : { error: message.error });
        return;
      }
      default:
        return;
    }
  }

  private checkStarted(): void {
    if (this._state !== 'STARTING') return;
    for (const slot of this.slots) if (slot.current?.state !== WorkerState.READY) return;
    this._state = 'RUNNING';
    const waiter = this.startWaiter;
    this.startWaiter = undefined;
    waiter?.resolve();
  }

  private onStartTimeout(mw: ManagedWorker): void {
    mw.startTimer = undefined;
    if (mw.state !== WorkerState.STARTING) return;
    mw.failure = new WorkerStartTimeoutError(mw.identity, this.options.startTimeoutMs);
    mw.worker.process.kill('SIGKILL');
  }

  private onExit(mw: ManagedWorker, exitCode: number | null, signal: string | null): void {
    clearTimeout(mw.startTimer);
    clearTimeout(mw.killTimer);
    mw.startTimer = undefined;
    mw.killTimer = undefined;
    this.live.delete(mw);
    for (const [id, request] of this.pending) if (request.worker === mw) this.settleRequest(id, { error: 'exited' });
    const next = nextWorkerState(mw.state, 'exit') ?? mw.state;
    mw.state = next;
    this.emit({ type: 'exit', slot: mw.slot.index, id: mw.worker.id, pid: mw.worker.process.pid, state: next, exitCode, signal });
    const slot = mw.slot;
    if (slot.current === mw) slot.current = undefined;
    if (slot.replacement === mw) slot.replacement = undefined;
    if (next === WorkerState.CRASHED) {
      const error = new WorkerExitError(mw.identity, exitCode, signal, mw.failure);
      mw.settleReady(error);
      this.report(error);
      this.crashed(slot, error);
    } else {
      mw.settleReady(new ClusterStateError(`worker ${mw.worker.id} was stopped before it was ready`));
      // Stopped by its own signal while it served: replaced (not counted as a crash), unless the cluster stops
      // too (a signal to the whole process group reaches the primary within the delay).
      if (!mw.askedToStop && slot.current === undefined && slot.replacement === undefined && !slot.failed) this.scheduleRespawn(slot, this.options.restartDelayMs, slot.crashTimes.length);
    }
    mw.settleExited();
  }

  /** Counts a crash of `slot`'s worker, then respawns it with backoff or gives the slot up. */
  private crashed(slot: Slot, error: WorkerExitError): void {
    const now = Date.now();
    this.recentCrashes(slot, now);
    slot.crashTimes.push(now);
    if (slot.crashTimes.length > this.options.maxCrashes) slot.crashTimes.shift(); // bounded (failed replacements)
    if (this._state !== 'STARTING' && this._state !== 'RUNNING') return;
    // Another worker serves the slot: the old one crashed during a rolling restart (its replacement takes over), or
    // a replacement crashed while the old one still serves (the restart rejects).
    if (slot.current !== undefined || slot.replacement !== undefined) return;
    const crashes = slot.crashTimes.length;
    if (crashes >= this.options.maxCrashes) {
      slot.failed = true;
      slot.crashTimes.splice(0, crashes - this.options.maxCrashes);
      const loop = new WorkerCrashLoopError(slot.index, crashes, this.options.crashWindowMs, error);
      this.report(loop);
      if (this._state === 'STARTING') {
        const waiter = this.startWaiter;
        this.startWaiter = undefined;
        waiter?.reject(loop);
        if (this.options.handleSignals) process.exitCode = 1;
        safeToDrop(this.stop());
      } else if (this.slots.every((s) => s.failed)) {
        if (this.options.handleSignals) process.exitCode = 1;
        safeToDrop(this.stop());
      }
      return;
    }
    this.scheduleRespawn(slot, Math.min(this.options.maxRestartDelayMs, this.options.restartDelayMs * 2 ** (crashes - 1)), crashes);
  }

  private scheduleRespawn(slot: Slot, delayMs: number, crashes: number): void {
    if (this._state !== 'STARTING' && this._state !== 'RUNNING') return;
    this.emit({ type: 'respawn', slot: slot.index, delayMs, crashes });
    clearTimeout(slot.respawnTimer);
    slot.respawnTimer = setTimeout(() => {
      slot.respawnTimer = undefined;
      if (this._state !== 'STARTING' && this._state !== 'RUNNING') return;
      if (slot.current !== undefined) return;
      slot.restarts++;
      slot.current = this.fork(slot, 'respawn');
    }, delayMs);
  }

  /** Tells a worker to stop (its exit is then expected) and arms the kill at `graceMs + stopMarginMs`. */
  private tellStop(mw: ManagedWorker, graceMs: number): void {
    if (mw.askedToStop) return;
    // Already STOPPING without being asked: it stopped on its own signal and exits by itself; the kill still bounds it.
    const stoppingByItself = mw.state === WorkerState.STOPPING;
    if (!stoppingByItself && nextWorkerState(mw.state, 'stop') === undefined) return;
    mw.askedToStop = true;
    if (!stoppingByItself) {
      mw.state = WorkerState.STOPPING;
      clearTimeout(mw.startTimer);
      mw.startTimer = undefined;
      this.emit({ type: 'stopping', slot: mw.slot.index, id: mw.worker.id, pid: mw.worker.process.pid });
      const message: StopMessage = { type: 'quay:cluster.stop', graceMs };
      if (mw.worker.isConnected()) {
        mw.worker.send(message, (error: Error | null) => {
          // The channel closed under the message: the signal says the same thing (ClusterWorker stops on SIGTERM).
          if (error !== null) mw.worker.process.kill('SIGTERM');
        });
      } else mw.worker.process.kill('SIGTERM');
    }
    const waitedMs = graceMs + this.options.stopMarginMs;
    mw.killTimer = setTimeout(() => {
      mw.killTimer = undefined;
      this.killedSome = true;
      this.report(new WorkerStopTimeoutError(mw.identity, waitedMs));
      mw.worker.process.kill('SIGKILL');
    }, waitedMs);
  }

  private async doStop(graceMs: number, signal: string | undefined): Promise<void> {
    if (this._state === 'IDLE' || this._state === 'STOPPED') {
      this._state = 'STOPPED';
      return;
    }
    this._state = 'STOPPING';
    this.emit({ type: 'stopping-cluster', signal });
    const waiter = this.startWaiter;
    this.startWaiter = undefined;
    // Stopped by a signal: the process exits when the workers have, so start() is left pending rather than
    // rejected (a rejection would end the program that awaits it before its workers are stopped).
    if (signal === undefined) waiter?.reject(new ClusterStateError('the cluster was stopped before every worker was ready'));
    for (const slot of this.slots) {
      clearTimeout(slot.respawnTimer);
      slot.respawnTimer = undefined;
    }
    const exits: Promise<void>[] = [];
    for (const mw of this.live) {
      this.tellStop(mw, graceMs);
      exits.push(mw.exited);
    }
    await Promise.all(exits);
    this.relay?.close();
    this.removeSignals();
    for (const id of [...this.pending.keys()]) this.settleRequest(id, { error: 'stopped' });
    this._state = 'STOPPED';
    if (activeSupervisor === this) activeSupervisor = undefined;
    this.emit({ type: 'stopped' });
  }

  private removeSignals(): void {
    if (!this.signalsInstalled) return;
    this.signalsInstalled = false;
    process.off('SIGTERM', this.onSignal);
    process.off('SIGINT', this.onSignal);
    process.off('SIGHUP', this.onSignal);
  }

  private handleSignal(signal: NodeJS.Signals): void {
    if (signal === 'SIGHUP') {
      if (this._state === 'RUNNING') safeToDrop(this.restart());
      return;
    }
    if (this.stopping !== undefined) {
      // A second SIGTERM/SIGINT (Ctrl-C twice): do not wait for the grace any more.
      this.killedSome = true;
      for (const mw of this.live) mw.worker.process.kill('SIGKILL');
      return;
    }
    this.stopping = safeToDrop(this.doStop(this.options.stopGraceMs, signal));
    // The listeners stay until every worker exited (so that the default action, exiting at once, does not apply).
    void this.stopping.then(() => process.exit(this.killedSome || process.exitCode === 1 ? 1 : 0));
  }

  private async rollingRestart(): Promise<void> {
    this.emit({ type: 'restart', phase: 'begin' });
    try {
      for (const slot of this.slots) {
        if (this._state !== 'RUNNING') throw new ClusterStateError(`the cluster left RUNNING (${this._state}) during a rolling restart`);
        // A slot given up, or waiting for its respawn (which runs the new code anyway), has nothing to replace.
        if (slot.failed || slot.current === undefined || slot.replacement !== undefined) continue;
        const replacement = this.fork(slot, 'restart');
        slot.replacement = replacement;
        await replacement.ready;
        slot.replacement = undefined;
        const old = slot.current;
        slot.current = replacement;
        slot.restarts++;
        if (old !== undefined) {
          this.tellStop(old, this.options.stopGraceMs);
          await old.exited;
        }
      }
      this.emit({ type: 'restart', phase: 'end', ok: true });
    } catch (error) {
      this.emit({ type: 'restart', phase: 'end', ok: false });
      throw error;
    }
  }

  /** Asks one worker; resolves with its answer, or with an `error` after `requestTimeoutMs` (never rejects). */
  private ask(mw: ManagedWorker, query: WorkerQuery): Promise<Answer> {
    if (!mw.worker.isConnected()) return Promise.resolve({ error: 'not connected' });
    if (this.pending.size >= MAX_PENDING_REQUESTS) return Promise.resolve({ error: 'too many requests in flight' });
    const id = ++this.nextRequestId;
    return new Promise<Answer>((resolve) => {
      const timer = setTimeout(() => this.settleRequest(id, { error: 'timeout' }), this.options.requestTimeoutMs);
      this.pending.set(id, { worker: mw, timer, resolve });
      const message: RequestMessage = { type: 'quay:cluster.request', id, query };
      mw.worker.send(message, (error: Error | null) => {
        if (error !== null) this.settleRequest(id, { error: `not sent: ${error.message}` });
      });
    });
  }

  private settleRequest(id: number, answer: Answer): void {
    const request = this.pending.get(id);
    if (request === undefined) return;
    this.pending.delete(id);
    clearTimeout(request.timer);
    request.resolve(answer);
  }
}

