import { Buffer } from 'node:buffer';
import process from 'node:process';
import { defaultBufferPool } from '../buffers/ByteBufferPool.js';
import type { ByteBufferPool } from '../buffers/ByteBufferPool.js';
import type { Connection } from './Connection.js';
import type { Clock } from './Clock.js';
import { systemClock } from './Clock.js';
import type { IdleTimeoutScheduler, IdleTimeoutTarget } from './IdleTimeoutScheduler.js';
import { WriteFlusher } from './WriteFlusher.js';
import type { FlushTarget, WatermarkOptions, WriteCallback } from './WriteFlusher.js';
import {
  ConnectionCallbackError,
  EndPointClosedError,
  IdleTimeoutError,
  IllegalStateError,
  PeerClosedError,
  WriteTimeoutError,
} from './errors.js';
import { channels } from './diagnostics.js';

/**
 * The endpoint's states (Jetty's EndPoint has the same four: open, input shut, output shut, closed).
 * ```
 *   OPEN --peer FIN--> INPUT_SHUTDOWN --shutdownOutput() done--> CLOSED
 *   OPEN --shutdownOutput() done--> OUTPUT_SHUTDOWN --peer FIN--> CLOSED
 *   any --close(cause) / reset / error / idle expiry--> CLOSED
 * ```
 */
export type EndPointState = 'OPEN' | 'INPUT_SHUTDOWN' | 'OUTPUT_SHUTDOWN' | 'CLOSED';

/** Who is told when an endpoint closes (the SelectorManager). */
export interface EndPointOwner {
  onEndPointClosed(endPoint: EndPoint, cause: Error | undefined): void;
}

/** Options common to every endpoint. */
export interface EndPointOptions extends WatermarkOptions {
  /** The shared idle-timeout scheduler; without one the endpoint never expires. */
  scheduler?: IdleTimeoutScheduler;
  /** Initial idle timeout in ms (0 = never). Connections may change it at any time. */
  idleTimeoutMs?: number;
  /** Told when the endpoint closes. */
  owner?: EndPointOwner;
  /**
   * Where the endpoint and its connections take the scratch buffers that do not outlive an operation (today: a
   * gathered write's coalescing buffer). Default: the process-wide
   * `defaultBufferPool()`. Tests pass a debug pool and assert that nothing leaked.
   */
  bufferPool?: ByteBufferPool;
}

/** Why reading is held: by the connection (fill interest withdrawn) or by an upgrade in progress. */
const HOLD_BY_CONNECTION = 1;
const HOLD_FOR_UPGRADE = 2;

let nextEndPointId = 1;

/**
 * One transport (a socket, or memory in tests) and the connection that speaks over it. After Jetty's EndPoint:
 * it reads and pushes bytes to `connection.onFillable`, writes through its {@link WriteFlusher}, holds reads
 * when the connection asks (read-side backpressure), carries the idle timeout, and can swap its connection in
 * place (`upgrade`). Subclasses supply the transport primitives.
 */
export abstract class EndPoint implements IdleTimeoutTarget, FlushTarget {
  /** A process-unique id, for dumps and logs. */
  readonly id: number = nextEndPointId++;
  /** When the endpoint was created (wall clock, ms since the epoch). */
  readonly createdAt: number = Date.now();
  /** Bytes read from the peer. */
  bytesIn = 0;
  /** Bytes handed to the kernel. */
  bytesOut = 0;
  /** @internal IdleTimeoutTarget: clock time of the last read or completed write. */
  lastActivityMs: number;
  /** @internal IdleTimeoutTarget: the scheduler's slot. */
  idleSlot = -1;

  protected readonly flusher: WriteFlusher;
  /** Scratch buffers of this endpoint and its connections (see `EndPointOptions.bufferPool`). */
  readonly bufferPool: ByteBufferPool;
  /** The clock of the endpoint's idle-timeout scheduler (the system clock without one); connections time with it. */
  readonly clock: Clock;
  /**
   * True when every buffer passed to `onFillable` is a fresh allocation that nobody reuses, so a connection may
   * keep a view of it past the call instead of copying (a socket's default read path). False (the contract's
   * default) means copy what must outlive the call.
   */
  get freshReadBuffers(): boolean {
    return false;
  }
  /**
   * True when the writes of this endpoint leave at the end of the event loop's turn, with those of the other
   * endpoints (lib/io/TurnFlush.ts), instead of when the connection returns from the read that caused them. Real
   * sockets do (fewer wake-ups of their peers); the in-memory endpoint does not, so that a test sees the answer
   * to what it fed as soon as `feed()` returns. Read once, by the constructor.
   */
  protected get flushesAtEndOfTurn(): boolean {
    return false;
  }
  private readonly scheduler: IdleTimeoutScheduler | undefined;
  private readonly owner: EndPointOwner | undefined;
  private _idleTimeoutMs: number;
  private _connection: Connection | undefined;
  private _state: EndPointState = 'OPEN';
  private opened = false;
  private readHolds = 0;
  /** Whether the transport is currently told to stop reading. */
  private transportPaused = false;
  /** Bytes read (or handed over by an upgrade) that wait for reading to resume; delivered before any later read. */
  private pendingInput: Buffer | undefined;
  /** The peer's FIN arrived while input was held; processed after the pending input. */
  private pendingInputShutdown = false;
  private outputShutdownRequested = false;
  private _closeCause: Error | undefined;

  protected constructor(options: EndPointOptions = {}) {
    this.flusher = new WriteFlusher(this, {
      highWatermark: options.highWatermark,
      lowWatermark: options.lowWatermark,
      endOfTurn: this.flushesAtEndOfTurn,
    });
    this.bufferPool = options.bufferPool ?? defaultBufferPool();
    this.scheduler = options.scheduler;
    this.clock = this.scheduler?.clock ?? systemClock;
    this.owner = options.owner;
    this._idleTimeoutMs = normalizeTimeout(options.idleTimeoutMs ?? 0);
    this.lastActivityMs = this.clock.now();
  }

  // ---------------------------------------------------------------------------------------------- accessors

  /** The connection that currently speaks over this endpoint. */
  get connection(): Connection {
    if (this._connection === undefined) throw new IllegalStateError(`endpoint #${this.id} has no connection yet`);
    return this._connection;
  }

  /** The endpoint's state; see {@link EndPointState}. */
  get state(): EndPointState {
    return this._state;
  }

  /** True until the endpoint is closed (it may be half-closed). */
  get isOpen(): boolean {
    return this._state !== 'CLOSED';
  }

  /** Why the endpoint closed (undefined while open, or after an orderly close). */
  get closeCause(): Error | undefined {
    return this._closeCause;
  }

  /**
   * The idle timeout in ms; 0 means never. Settable at any time (the next sweep of the scheduler uses the new
   * value). An upgrade keeps it unless the new connection sets its own.
   */
  get idleTimeoutMs(): number {
    return this._idleTimeoutMs;
  }

  set idleTimeoutMs(ms: number) {
    this._idleTimeoutMs = normalizeTimeout(ms);
  }

  /** Milliseconds since the last read or completed write. */
  get idleForMs(): number {
    return Math.max(0, this.clock.now() - this.lastActivityMs);
  }

  /** Bytes queued or in flight on the write side. */
  get pendingBytes(): number {
    return this.flusher.pendingBytes;
  }

  /** False while pending writes are above the high watermark (see `write`). */
  get isWritable(): boolean {
    return this.flusher.isWritable;
  }

  /** True while the connection has paused reading (or an upgrade holds reads). */
  get isReadingPaused(): boolean {
    return this.readHolds !== 0;
  }

  /**
   * True when the transport encrypts (a TLS socket): what `request.secure` reports, and how a handler tells https
   * from http (Jetty's `EndPoint.isSecure()`).
   */
  get secure(): boolean {
    return false;
  }

  /** The peer's address, kept after close for logs. */
  abstract get remoteAddress(): string;
  abstract get remotePort(): number;
  abstract get localAddress(): string;
  abstract get localPort(): number;

  // ---------------------------------------------------------------------------------------------- lifecycle

  /**
   * Attaches the first connection and opens it: registers with the idle scheduler and calls `onOpen()`.
   * Called by the SelectorManager (or a test) once, right after the connection factory.
   */
  open(connection: Connection): void {
    if (this.opened) throw new IllegalStateError(`endpoint #${this.id} is already open`);
    this.opened = true;
    this._connection = connection;
    if (this._state === 'CLOSED') return;
    this.scheduler?.register(this);
    this.lastActivityMs = this.clock.now();
    if (channels.connectionOpen.hasSubscribers) channels.connectionOpen.publish({ endPoint: this });
    this.guard('onOpen', connection);
  }

  /**
   * Writes buffers through the endpoint's {@link WriteFlusher}: gathered with the other writes of this tick,
   * `callback(null)` once every byte reached the kernel, `callback(error)` if the endpoint closes first. Returns
   * false when pending bytes reached the high watermark; `connection.onWritable()` says when to go on.
   */
  write(buffers: Buffer | readonly Buffer[], callback?: WriteCallback): boolean {
    if (this.outputShutdownRequested && this._state !== 'CLOSED') {
      const error = new EndPointClosedError('output was shut down');
      if (callback !== undefined) process.nextTick(callback, error);
      return false;
    }
    return this.flusher.write(buffers, callback);
  }

  /** Stops delivering reads now (no `onFillable` until `resumeReading`); the transport stops reading too. */
  pauseReading(): void {
    this.readHolds |= HOLD_BY_CONNECTION;
    this.updateReading();
  }

  /** Resumes reads; bytes that were held are delivered first, on the next tick (never re-entrantly). */
  resumeReading(): void {
    if ((this.readHolds & HOLD_BY_CONNECTION) === 0) return;
    this.readHolds &= ~HOLD_BY_CONNECTION;
    if (this.pendingInput !== undefined || this.pendingInputShutdown) process.nextTick(updateReadingOnTick, this);
    else this.updateReading();
  }

  /**
   * Replaces the connection in place: same transport, same flusher, same idle timeout (unless `next` sets its
   * own). The old connection's `onUpgradeFrom()` hands over the bytes it read past its last message; they reach
   * `next.onFillable` before any later read, on the next tick, and reads are held until then. `next.onOpen()`
   * runs now, so it can pause reading or set its idle timeout before any byte arrives.
   */
  upgrade(next: Connection): void {
    if (this._state === 'CLOSED') throw new EndPointClosedError('cannot upgrade a closed endpoint', this._closeCause);
    const previous = this._connection;
    let leftover: Buffer | undefined;
    if (previous?.onUpgradeFrom !== undefined) {
      try {
        leftover = previous.onUpgradeFrom();
      } catch (e) {
        this.close(new ConnectionCallbackError('onUpgradeFrom', e));
        return;
      }
    }
    this._connection = next;
    if (channels.upgrade.hasSubscribers) channels.upgrade.publish({ endPoint: this, connection: next });
    // The new connection starts with reads wanted (and with its own deadlines); the old connection's pause does not
    // carry over.
    this.readHolds = HOLD_FOR_UPGRADE;
    this.updateReading();
    if (leftover !== undefined && leftover.length > 0) {
      this.pendingInput = this.pendingInput === undefined ? leftover : Buffer.concat([leftover, this.pendingInput]);
    }
    this.guard('onOpen', next);
    process.nextTick(finishUpgrade, this);
  }

  /**
   * Half-close: once everything pending is flushed, sends FIN. Reads go on (a lingering close, so the peer gets
   * the whole response instead of a reset) until the peer closes too, or the idle timeout ends it. Later writes
   * fail.
   */
  shutdownOutput(): void {
    if (this.outputShutdownRequested || this._state === 'CLOSED' || this._state === 'OUTPUT_SHUTDOWN') return;
    this.outputShutdownRequested = true;
    // A closure made here, not a field: a per-endpoint field would cost every idle endpoint ~56 bytes.
    this.flusher.write([], (error) => this.onFlushedForShutdown(error));
  }

  /** Closes once every pending write is flushed (or failed), with `cause` passed to `onClose`. */
  closeAfterFlush(cause?: Error): void {
    if (this._state === 'CLOSED') return;
    if (this.flusher.pendingBytes === 0 && !this.flusher.isWriting) {
      this.close(cause);
      return;
    }
    this.flusher.write([], (error) => this.close(error ?? cause));
  }

  /**
   * Closes now: pending write callbacks fail with `EndPointClosedError` (whose cause is `cause`), the transport
   * is destroyed, the connection's `onClose(cause)` runs once. Idempotent.
   */
  close(cause?: Error): void {
    if (this._state === 'CLOSED') return;
    this._state = 'CLOSED';
    this._closeCause = cause;
    this.pendingInput = undefined;
    this.pendingInputShutdown = false;
    if (this.idleSlot !== -1) this.scheduler?.unregister(this);
    this.flusher.fail(new EndPointClosedError(cause === undefined ? 'endpoint closed' : `endpoint closed: ${cause.message}`, cause));
    try {
      this.doClose();
    } catch {
      // The transport is going away anyway; nothing more can be done with it.
    }
    const connection = this._connection;
    if (connection !== undefined) {
      try {
        connection.onClose(cause);
      } catch {
        // onClose is the last callback: an exception there cannot close anything more. Swallowed on purpose
        // so one connection's bug cannot break the owner's bookkeeping below.
      }
    }
    if (channels.connectionClose.hasSubscribers) channels.connectionClose.publish({ endPoint: this, cause });
    this.owner?.onEndPointClosed(this, cause);
  }

  /**
   * @internal Asks the connection to finish gracefully (SelectorManager.stop). Without `onShutdown` the
   * endpoint flushes and shuts its output down.
   */
  shutdown(): void {
    if (this._state === 'CLOSED') return;
    const connection = this._connection;
    if (connection?.onShutdown !== undefined) this.guard('onShutdown', connection);
    else this.shutdownOutput();
  }

  /** A one-line description for dumps. */
  describe(): string {
    const timeout = this._idleTimeoutMs === 0 ? 'never' : `${this._idleTimeoutMs}ms`;
    const reading = this.readHolds === 0 ? 'reading' : 'paused';
    return (
      `${this.constructor.name}#${this.id} ${this.remoteAddress}:${this.remotePort} ${this._state} ${reading} ` +
      `idle=${Math.round(this.idleForMs)}ms/${timeout} in=${this.bytesIn}B out=${this.bytesOut}B ${this.flusher.describe()}`
    );
  }

  // ---------------------------------------------------------------------------------------------- for subclasses

  /** Subclasses call this with bytes read from the transport; `bytes` may be reused after the call. */
  protected fill(bytes: Buffer): void {
    if (this._state === 'CLOSED' || bytes.length === 0) return;
    this.bytesIn += bytes.length;
    // While a write is in flight only its progress counts as activity (as Jetty times a blocked write on its
    // own): a peer that trickles bytes but never reads our output must still meet the write timeout, or it
    // holds the endpoint and its queued output forever.
    if (!this.flusher.isWriting) this.lastActivityMs = this.clock.now();
    if (this.readHolds !== 0 || this.pendingInput !== undefined) {
      // Reads are held (the transport may still hand over what it had in hand): keep a copy, in order.
      this.pendingInput = this.pendingInput === undefined ? Buffer.from(bytes) : Buffer.concat([this.pendingInput, bytes]);
      return;
    }
    this.deliver(bytes);
  }

  /** Subclasses call this when the peer shut down its output (EOF / FIN). */
  protected inputShutdown(): void {
    if (this._state === 'CLOSED') return;
    if (this.readHolds !== 0 || this.pendingInput !== undefined) {
      this.pendingInputShutdown = true;
      return;
    }
    this.pendingInputShutdown = false;
    if (this._state === 'OUTPUT_SHUTDOWN') {
      // Both directions are done: an orderly close.
      this.close(undefined);
      return;
    }
    if (this._state === 'INPUT_SHUTDOWN') return;
    this._state = 'INPUT_SHUTDOWN';
    const connection = this._connection;
    if (connection?.onInputShutdown !== undefined) this.guard('onInputShutdown', connection);
    else this.closeAfterFlush(new PeerClosedError());
  }

  /** Hand the buffers to the transport; call `this.flusher.completed()` when done. */
  abstract transmit(buffers: Buffer[], byteCount: number): void;
  protected abstract doPauseReading(): void;
  protected abstract doResumeReading(): void;
  protected abstract doShutdownOutput(): void;
  protected abstract doClose(): void;

  // ---------------------------------------------------------------------------------------------- callbacks

  /** @internal FlushTarget */
  onWriteProgress(byteCount: number): void {
    this.bytesOut += byteCount;
    this.lastActivityMs = this.clock.now();
  }

  /** @internal FlushTarget */
  onWritable(): void {
    const connection = this._connection;
    if (connection?.onWritable !== undefined && this._state !== 'CLOSED') this.guard('onWritable', connection);
  }

  /** @internal FlushTarget */
  onCallbackError(error: unknown): void {
    this.close(new ConnectionCallbackError('write callback', error));
  }

  /**
   * @internal IdleTimeoutTarget. A write stuck for the whole timeout fails and closes the endpoint whatever
   * the connection says (the peer stopped reading); otherwise the connection decides.
   */
  onIdleExpired(_now: number): void {
    if (this._state === 'CLOSED' || this._connection === undefined) return;
    if (this.flusher.isWriting) {
      this.close(new WriteTimeoutError(this._idleTimeoutMs, this.flusher.pendingBytes));
      return;
    }
    let shouldClose: boolean;
    try {
      shouldClose = this._connection.onIdleExpired();
    } catch (e) {
      this.close(new ConnectionCallbackError('onIdleExpired', e));
      return;
    }
    if (shouldClose) this.close(new IdleTimeoutError(this._idleTimeoutMs));
  }

  /**
   * @internal IdleTimeoutTarget: the clock time of the connection's next deadline (`Connection.deadlineMs`),
   * `undefined` or `Infinity` for none. Read by the idle-timeout sweep, not a timer of its own: a deadline fires up
   * to one sweep tick late, and never without a scheduler. Kept by the connection, so that an endpoint whose
   * connection has no deadlines (a WebSocket) carries no field for it.
   */
  get deadlineMs(): number | undefined {
    return this._connection?.deadlineMs;
  }

  /**
   * @internal IdleTimeoutTarget: `deadlineMs` was reached: the connection's `onDeadline` decides (and sets the next
   * one, or `Infinity`).
   */
  onDeadline(now: number): void {
    const connection = this._connection;
    if (this._state === 'CLOSED' || connection?.onDeadline === undefined) return;
    try {
      connection.onDeadline(now);
    } catch (e) {
      this.close(new ConnectionCallbackError('onDeadline', e));
    }
  }

  /** @internal Applies the hold state to the transport and delivers held input when nothing holds it. */
  updateReading(): void {
    if (this._state === 'CLOSED') return;
    if (this.readHolds !== 0) {
      if (!this.transportPaused) {
        this.transportPaused = true;
        this.doPauseReading();
      }
      return;
    }
    const held = this.pendingInput;
    if (held !== undefined) {
      this.pendingInput = undefined;
      this.deliver(held);
      if (this.readHolds !== 0 || this.isClosed()) {
        this.updateReading();
        return;
      }
    }
    if (this.pendingInputShutdown) {
      this.inputShutdown();
      if (this.isClosed()) return;
    }
    if (this.transportPaused) {
      this.transportPaused = false;
      this.doResumeReading();
    }
  }

  /** @internal */
  finishUpgrade(): void {
    this.readHolds &= ~HOLD_FOR_UPGRADE;
    this.updateReading();
  }

  /** A method, not a field read, so the compiler does not assume callbacks left the state unchanged. */
  private isClosed(): boolean {
    return this._state === 'CLOSED';
  }

  private deliver(bytes: Buffer): void {
    const connection = this._connection;
    if (connection === undefined) return;
    const flusher = this.flusher;
    flusher.hold(); // the writes this read causes leave in one batch when onFillable returns
    try {
      connection.onFillable(bytes);
    } catch (e) {
      this.close(new ConnectionCallbackError('onFillable', e));
    } finally {
      flusher.release();
    }
  }

  private guard(name: 'onOpen' | 'onWritable' | 'onInputShutdown' | 'onShutdown', connection: Connection): void {
    try {
      connection[name]?.();
    } catch (e) {
      this.close(new ConnectionCallbackError(name, e));
    }
  }

  private onFlushedForShutdown(error: Error | null): void {
    if (error !== null || this._state === 'CLOSED') return;
    if (this._state === 'INPUT_SHUTDOWN') {
      this.close(undefined);
      return;
    }
    this._state = 'OUTPUT_SHUTDOWN';
    try {
      this.doShutdownOutput();
    } catch (e) {
      this.close(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

function normalizeTimeout(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`idle timeout must be a finite number >= 0, got ${ms}`);
  return ms;
}

function updateReadingOnTick(endPoint: EndPoint): void {
  endPoint.updateReading();
}

function finishUpgrade(endPoint: EndPoint): void {
  endPoint.finishUpgrade();
}
