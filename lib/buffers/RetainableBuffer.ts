import { BufferReleasedError } from './errors.js';

/** What a RetainableBuffer needs from its pool. */
export interface BufferOwner {
  /** @internal Called once, on the final release. */
  reclaim(buffer: RetainableBuffer): void;
  /** @internal True when checks (use after release) are on. */
  readonly debug: boolean;
}

/**
 * A pooled, reference-counted buffer (Jetty's RetainableByteBuffer). It starts with one reference;
 * `retain()` adds one, `release()` drops one, and the final release gives the memory back to the pool.
 * Releasing more often than retained throws a `BufferReleasedError`.
 *
 * The pool reuses the wrapper together with its memory, so outside debug mode a wrapper kept past its final
 * release may already belong to someone else: a late `release()` then cannot be told apart from the new
 * owner's. Debug pools never reuse wrappers or memory, so there every use after release is detected.
 */
export class RetainableBuffer {
  /** @internal The bucket-size backing memory (its own ArrayBuffer, from `Buffer.allocUnsafeSlow`). */
  readonly memory: Buffer;
  /** @internal The acquire site, in debug pools. */
  acquiredAt: string | undefined;
  private view: Buffer;
  private refs = 1;

  /** @internal Created by the pool only. */
  constructor(
    private readonly owner: BufferOwner,
    memory: Buffer,
    length: number,
  ) {
    this.memory = memory;
    this.view = length === memory.length ? memory : memory.subarray(0, length);
  }

  /**
   * The bytes: a view of `length` bytes over the pooled memory, usable directly. Do not keep it past
   * `release()`. In a debug pool, reading this after the final release throws `BufferReleasedError`.
   */
  get buffer(): Buffer {
    // One comparison on the hot path; the owner is consulted only for a released buffer.
    if (this.refs === 0 && this.owner.debug) throw new BufferReleasedError('buffer used after its final release');
    return this.view;
  }

  /** The visible length: what was asked for, or what `setLength` set. */
  get length(): number {
    return this.view.length;
  }

  /** The size of the backing memory (the bucket size; the exact size above the largest bucket). */
  get capacity(): number {
    return this.memory.length;
  }

  /** The references held now; 0 once finally released. */
  get refCount(): number {
    return this.refs;
  }

  /** True after the final release. */
  get isReleased(): boolean {
    return this.refs === 0;
  }

  /**
   * Changes the visible length within the capacity, e.g. when a read filled fewer bytes than were acquired.
   * The bytes already written stay in place.
   * @throws RangeError outside `0..capacity`; BufferReleasedError on a released buffer.
   */
  setLength(length: number): this {
    if (this.refs === 0) throw new BufferReleasedError('setLength on a released buffer');
    if (!(Number.isInteger(length) && length >= 0 && length <= this.memory.length)) {
      throw new RangeError(`length ${length} outside 0..${this.memory.length}`);
    }
    this.resize(length);
    return this;
  }

  /**
   * Adds a reference; each needs its own `release()`.
   * @throws BufferReleasedError when the buffer was already finally released.
   */
  retain(): this {
    if (this.refs === 0) throw new BufferReleasedError('retain on a released buffer');
    this.refs++;
    return this;
  }

  /**
   * Drops a reference.
   * @returns true when this call was the final release (the memory went back to the pool or was dropped).
   * @throws BufferReleasedError when released more times than retained.
   */
  release(): boolean {
    if (this.refs === 0) throw new BufferReleasedError('buffer released more times than it was retained');
    if (--this.refs > 0) return false;
    this.owner.reclaim(this);
    return true;
  }

  /** @internal The pool hands this wrapper out again, with its memory. */
  revive(length: number): void {
    this.refs = 1;
    this.resize(length);
  }

  private resize(length: number): void {
    // Keep the current view when the length is unchanged: a reuse of the same size allocates nothing.
    if (this.view.length !== length) {
      this.view = length === this.memory.length ? this.memory : this.memory.subarray(0, length);
    }
  }
}
