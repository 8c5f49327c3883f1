/**
 * The write side of an endpoint, after Jetty's `WriteFlusher`: a queue of buffers with completion callbacks, one
 * gathered write in flight at a time, and high/low watermarks.
 *
 * Why one write in flight: everything written while a write is on its way is gathered into the next write, so
 * under load the batches grow by themselves (one `writev` syscall for many messages) and Node's own socket queue
 * never holds more than one batch; `pendingBytes` is then the true amount this endpoint holds. Node's
 * `socket.write` queues without limit, so the bound (the watermarks) is ours to enforce.
 *
 * Why the first write is deferred: writes issued together (a burst of pipelined responses, a broadcast) are
 * gathered and flushed as one. By default at the end of the tick (`process.nextTick`, which in Node runs after the
 * current callback and its promise jobs have settled), or, while the endpoint delivers a read, when the connection
 * returns (`hold()`/`release()`). With `endOfTurn` (socket endpoints) at the end of the event loop's turn, with
 * every other endpoint's writes of that turn (TurnFlush.ts: fewer wake-ups of the peers).
 *
 * State machine:
 * ```
 *   IDLE --write()--> SCHEDULED --(end of tick, read or turn) flush()--> WRITING --completed(ok)--> IDLE or WRITING (more queued)
 *   any  --fail(error)--> FAILED (terminal: pending and later callbacks fail with the error)
 * ```
 * A target that completes synchronously (MemoryEndPoint) re-enters `completed()` from inside `transmit()`; the
 * flush loop notices and goes round again instead of recursing, so chained writes of any length use constant stack.
 */
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { flushAtEndOfTurn } from './TurnFlush.js';
import type { TurnFlushable } from './TurnFlush.js';

/** Called once per write: `null` when every byte of that write was handed to the kernel, or the failure. */
export type WriteCallback = (error: Error | null) => void;

/** The transport under a WriteFlusher (an endpoint). */
export interface FlushTarget {
  /**
   * Hand these buffers to the transport as one gathered write, then call `flusher.completed(null | error)` once,
   * synchronously or later. The array is reused after completion: do not keep it.
   */
  transmit(buffers: Buffer[], byteCount: number): void;
  /** Bytes reached the transport (activity for the idle timeout, byte counters). */
  onWriteProgress(byteCount: number): void;
  /** Pending bytes fell to the low watermark after having reached the high watermark. */
  onWritable(): void;
  /** A write callback threw; the target decides what to do (an endpoint closes). */
  onCallbackError(error: unknown): void;
}

/** The flusher's states; see the class comment for the transitions. */
export type WriteFlusherState = 'IDLE' | 'SCHEDULED' | 'WRITING' | 'FAILED';

/** Watermarks in bytes: `write()` returns false once pending bytes reach `highWatermark`; `onWritable` fires at `lowWatermark`. */
export interface WatermarkOptions {
  /** Default 64 KiB. */
  highWatermark?: number;
  /** Default a quarter of the high watermark. */
  lowWatermark?: number;
}

export const DEFAULT_HIGH_WATERMARK = 64 * 1024;

/** How a flusher schedules its deferred flush (see the class comment). */
export interface FlushScheduling {
  /** Flush at the end of the event loop's turn with the other endpoints' writes (TurnFlush.ts). Default false. */
  endOfTurn?: boolean;
}

/** Queues writes for one endpoint and flushes them one gathered write at a time. */
export class WriteFlusher implements TurnFlushable {
  readonly highWatermark: number;
  readonly lowWatermark: number;

  private _state: WriteFlusherState = 'IDLE';
  private queue: Buffer[] = [];
  private queueCallbacks: WriteCallback[] = [];
  private queueBytes = 0;
  private flight: Buffer[] = [];
  private flightCallbacks: WriteCallback[] = [];
  private flightBytes = 0;
  private writable = true;
  /** True while `transmit()` runs, so that a synchronous completion lets the loop continue instead of recursing. */
  private transmitting = false;
  private completedDuringTransmit = false;
  /** True while the callbacks of a completed write run (they may write, or close the endpoint). */
  private completing = false;
  private failure: Error | undefined;
  /** While > 0 (the endpoint is delivering a read), a first write does not schedule a nextTick: see `hold()`. */
  private holds = 0;
  private flushOnRelease = false;
  private readonly endOfTurn: boolean;

  constructor(private readonly target: FlushTarget, options: WatermarkOptions & FlushScheduling = {}) {
    const high = options.highWatermark ?? DEFAULT_HIGH_WATERMARK;
    const low = options.lowWatermark ?? Math.floor(high / 4);
    if (!(high > 0) || !(low >= 0) || low > high) {
      throw new RangeError(`watermarks must satisfy 0 <= low (${low}) <= high (${high}), high > 0`);
    }
    this.highWatermark = high;
    this.lowWatermark = low;
    this.endOfTurn = options.endOfTurn === true;
  }

  /** The current state (for dumps and tests). */
  get state(): WriteFlusherState {
    return this._state;
  }

  /** Bytes queued or in flight: what this endpoint holds that the kernel has not taken yet. */
  get pendingBytes(): number {
    return this.queueBytes + this.flightBytes;
  }

  /** False from the moment pending bytes reach the high watermark until they fall to the low watermark. */
  get isWritable(): boolean {
    return this.writable;
  }

  /** True while a gathered write is in flight (handed to the transport and not completed). */
  get isWriting(): boolean {
    return this._state === 'WRITING' && !this.completing;
  }

  /** The error that failed the flusher, if it failed. */
  get failureCause(): Error | undefined {
    return this.failure;
  }

  /**
   * Queues `buffers` (one or several, written in order, none copied: do not modify them until the callback)
   * and flushes them at the end of the tick, gathered with the other writes of the tick. `callback` runs once:
   * with null when all of these bytes reached the kernel, or with the error that failed them. Returns false
   * when pending bytes have reached the high watermark: the caller should stop producing until `onWritable`.
   */
  write(buffers: Buffer | readonly Buffer[], callback?: WriteCallback): boolean {
    if (this._state === 'FAILED') {
      if (callback !== undefined) process.nextTick(callback, this.failure ?? null);
      return false;
    }
    if (Buffer.isBuffer(buffers)) {
      this.enqueue(buffers);
    } else {
      for (let i = 0; i < buffers.length; i++) this.enqueue(buffers[i]!);
    }
    // Completion is tracked per gathered batch, so a write without a callback needs no entry at all.
    if (callback !== undefined) this.queueCallbacks.push(callback);
    if (this._state === 'IDLE') {
      this._state = 'SCHEDULED';
      // With endOfTurn a hold changes nothing: the flush waits for the end of the turn either way.
      if (this.endOfTurn) flushAtEndOfTurn(this);
      else if (this.holds !== 0) this.flushOnRelease = true;
      else process.nextTick(flushOnTick, this);
    }
    if (this.writable && this.pendingBytes >= this.highWatermark) this.writable = false;
    return this.writable;
  }

  /**
   * Holds the flush of the writes to come until `release()`: the endpoint holds while a connection handles a read,
   * so that every write that read causes is gathered and flushed right when the handler returns, instead of in a
   * `process.nextTick` (one fewer tick per request or message on the hot path). Nested holds are counted. A flusher
   * with `endOfTurn` flushes at the end of the turn whether held or not.
   */
  hold(): void {
    this.holds++;
  }

  /** Ends a `hold()`; the last release flushes what was written meanwhile. */
  release(): void {
    if (--this.holds !== 0 || !this.flushOnRelease) return;
    this.flushOnRelease = false;
    if (this._state === 'SCHEDULED') this.flushLoop();
  }

  /** @internal TurnFlushable: the deferred flush, if it is still due (not flushed, failed or flushed early since). */
  flushScheduled(): void {
    if (this._state === 'SCHEDULED') this.flushLoop();
  }

  /**
   * Flushes now instead of at the end of the tick. Does nothing while a write is in flight (what is queued goes
   * out when it completes) or after a failure.
   */
  flush(): void {
    if (this._state === 'WRITING' || this._state === 'FAILED') return;
    this.flushLoop();
  }

  /**
   * The transport finished the write in flight. Runs that write's callbacks in order, then flushes what was
   * queued meanwhile. A completion after `fail()` (a late socket callback) is ignored: every callback runs once.
   */
  completed(error: Error | null): void {
    if (this._state !== 'WRITING' || this.completing) return;
    if (error !== null) {
      this.fail(error);
      return;
    }
    const bytes = this.flightBytes;
    this.flightBytes = 0;
    this.flight.length = 0;
    this.target.onWriteProgress(bytes);
    this.completing = true;
    const callbacks = this.flightCallbacks;
    for (let i = 0; i < callbacks.length; i++) {
      try {
        callbacks[i]!(null);
      } catch (e) {
        this.target.onCallbackError(e);
      }
    }
    callbacks.length = 0;
    this.completing = false;
    // A callback may have failed the flusher (closed the endpoint): re-read the state.
    if (this.hasFailed()) return;
    if (!this.writable && this.pendingBytes <= this.lowWatermark) {
      this.writable = true;
      this.target.onWritable();
      if (this.hasFailed()) return;
    }
    if (this.transmitting) {
      // Synchronous completion: the loop in flushLoop() goes round again.
      this.completedDuringTransmit = true;
      return;
    }
    this._state = 'IDLE';
    if (this.queue.length > 0 || this.queueCallbacks.length > 0) this.flushLoop();
  }

  /**
   * Fails every pending write (in flight and queued, in order) and every later one with `error`. Idempotent:
   * the first failure wins. Callbacks of a write whose bytes already reached the kernel are not failed.
   */
  fail(error: Error): void {
    if (this._state === 'FAILED') return;
    const inFlight = this._state === 'WRITING' && !this.completing;
    this._state = 'FAILED';
    this.failure = error;
    const failed: WriteCallback[] = [];
    if (inFlight) for (const cb of this.flightCallbacks) failed.push(cb);
    for (const cb of this.queueCallbacks) failed.push(cb);
    if (inFlight) {
      this.flightCallbacks.length = 0;
      this.flight.length = 0;
      this.flightBytes = 0;
    }
    this.queue.length = 0;
    this.queueCallbacks.length = 0;
    this.queueBytes = 0;
    for (const cb of failed) {
      try {
        cb(error);
      } catch (e) {
        this.target.onCallbackError(e);
      }
    }
  }

  /** A short description for dumps. */
  describe(): string {
    return `flusher=${this._state} pending=${this.pendingBytes}B${this.writable ? '' : ' (over high watermark)'}`;
  }

  /** A method, not a field read, so the compiler does not assume callbacks left the state unchanged. */
  private hasFailed(): boolean {
    return this._state === 'FAILED';
  }

  private enqueue(buffer: Buffer): void {
    if (buffer.length === 0) return;
    this.queue.push(buffer);
    this.queueBytes += buffer.length;
  }

  private flushLoop(): void {
    while (this.queue.length > 0 || this.queueCallbacks.length > 0) {
      // Swap the queue into flight: the two arrays are reused, no allocation per write.
      const buffers = this.queue;
      this.queue = this.flight;
      this.flight = buffers;
      const callbacks = this.queueCallbacks;
      this.queueCallbacks = this.flightCallbacks;
      this.flightCallbacks = callbacks;
      this.flightBytes = this.queueBytes;
      this.queueBytes = 0;
      this._state = 'WRITING';
      this.completedDuringTransmit = false;
      if (buffers.length === 0) {
        // Only callbacks (e.g. "after everything before me"): complete without touching the transport.
        this.transmitting = true;
        this.completed(null);
        this.transmitting = false;
      } else {
        this.transmitting = true;
        try {
          this.target.transmit(buffers, this.flightBytes);
        } catch (e) {
          this.transmitting = false;
          this.fail(e instanceof Error ? e : new Error(String(e)));
          return;
        }
        this.transmitting = false;
      }
      if (!this.completedDuringTransmit) return; // asynchronous completion will call completed()
      if (this.hasFailed()) return;
    }
    this._state = 'IDLE';
  }
}

function flushOnTick(flusher: WriteFlusher): void {
  flusher.flushScheduled();
}
