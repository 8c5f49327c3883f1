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
 * `retain()` adds one, `release()` drops one, and the last release gives the memory back to the pool. Releasing
 * more often than retained throws. In a debug pool, touching `buffer` after the final release throws too.
 */
export class RetainableBuffer {
  /** @internal the bucket-size backing memory */
  readonly memory: Buffer;
  private view: Buffer;
  private refs = 1;
  /** @internal the acquire site, in debug pools */
  acquiredAt: string | undefined;

  /** @internal Created by the pool only. */
  constructor(
    private readonly owner: BufferOwner,
    memory: Buffer,
    length: number,
  ) {
    this.memory = memory;
    this.view = length === memory.length ? memory : memory.subarray(0, length);
  }

  /** The bytes: a view of `length` bytes over pooled memory. Do not keep it after `release()`. */
  get buffer(): Buffer {
    if (this.refs === 0 && this.owner.debug) throw new BufferReleasedError('buffer used after its final release');
    return this.view;
  }

  /** The visible length (what was asked for, or set with `setLength`). */
  get length(): number {
    return this.view.length;
  }

  /** The size of the backing memory (the bucket). */
  get capacity(): number {
    return this.memory.length;
  }

  /** Current references; 0 once released. */
  get refCount(): number {
    return this.refs;
  }

  /** True after the final release. */
  get isReleased(): boolean {
    return this.refs === 0;
  }

  /** Changes the visible length within the capacity (e.g. a read filled fewer bytes than acquired). */
  setLength(length: number): this {
    if (!(length >= 0 && length <= this.memory.length)) {
      throw new RangeError(`length ${length} outside 0..${this.memory.length}`);
    }
    if (this.refs === 0) throw new BufferReleasedError('setLength on a released buffer');
    this.view = length === this.memory.length ? this.memory : this.memory.subarray(0, length);
    return this;
  }

  /** Adds a reference. */
  retain(): this {
    if (this.refs === 0) throw new BufferReleasedError('retain on a released buffer');
    this.refs++;
    return this;
  }

  /** Drops a reference; returns true when this call was the final release. Throws when already released. */
  release(): boolean {
    if (this.refs === 0) throw new BufferReleasedError('buffer released more times than it was retained');
    if (--this.refs > 0) return false;
    this.owner.reclaim(this);
    return true;
  }

  /** @internal The pool reuses this wrapper with its memory. */
  revive(length: number): void {
    this.refs = 1;
    this.view = length === this.memory.length ? this.memory : this.memory.subarray(0, length);
  }
}
