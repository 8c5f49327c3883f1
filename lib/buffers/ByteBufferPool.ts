import { RetainableBuffer } from './RetainableBuffer.js';
import type { BufferOwner } from './RetainableBuffer.js';
import { BufferLeakError } from './errors.js';
import type { BufferLeak } from './errors.js';

/** Options of a {@link ByteBufferPool}. */
export interface ByteBufferPoolOptions {
  /** Smallest bucket (a power of two; default 1024). Smaller requests get a buffer of this capacity. */
  minBucketBytes?: number;
  /** Largest pooled bucket (a power of two; default 65536). Larger requests are allocated and never pooled. */
  maxBucketBytes?: number;
  /** At most this many bytes sit in the pool; buffers released over it are dropped. Default 16 MiB. */
  maxRetainedBytes?: number;
  /**
   * Test mode: records where every buffer was acquired (`leaks()`, `assertNoLeaks()`), poisons released memory
   * with 0xDE and never reuses it, so a use after release reads poison, never another connection's data; and
   * `buffer` on a released RetainableBuffer throws. Costs a stack trace per acquire: tests only.
   */
  debug?: boolean;
}

/** Counters of a pool. */
export interface ByteBufferPoolStats {
  /** acquire() calls. */
  acquired: number;
  /** Acquires served from the pool. */
  reused: number;
  /** Acquires that allocated new memory. */
  allocated: number;
  /** Final releases whose memory was not kept (over the bound, larger than the largest bucket, or debug mode). */
  dropped: number;
  /** Bytes sitting in the pool now. */
  retainedBytes: number;
  /** Buffers acquired and not yet finally released. */
  outstanding: number;
}

/** The byte used to poison released memory in debug mode. */
export const POISON_BYTE = 0xde;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * A pool of reusable buffers in power-of-two size buckets (Jetty's ArrayByteBufferPool). `acquire(size)` rounds
 * up to a bucket and reuses a released buffer of that bucket when there is one; the bucket lookup is one
 * `Math.clz32`, and reuse allocates nothing (the wrapper is kept with its memory). Pooled memory comes from
 * `Buffer.allocUnsafeSlow`, never Node's shared slab, so a pooled buffer never aliases unrelated data.
 */
export class ByteBufferPool implements BufferOwner {
  readonly debug: boolean;
  readonly minBucketBytes: number;
  readonly maxBucketBytes: number;
  readonly maxRetainedBytes: number;
  private readonly minShift: number;
  private readonly buckets: RetainableBuffer[][];
  private readonly outstandingSet: Set<RetainableBuffer> | undefined;
  private readonly counters = { acquired: 0, reused: 0, allocated: 0, dropped: 0, retainedBytes: 0, outstanding: 0 };

  constructor(options: ByteBufferPoolOptions = {}) {
    this.minBucketBytes = options.minBucketBytes ?? 1024;
    this.maxBucketBytes = options.maxBucketBytes ?? 64 * 1024;
    this.maxRetainedBytes = options.maxRetainedBytes ?? 16 * 1024 * 1024;
    this.debug = options.debug ?? false;
    if (!isPowerOfTwo(this.minBucketBytes) || !isPowerOfTwo(this.maxBucketBytes) || this.minBucketBytes > this.maxBucketBytes) {
      throw new RangeError('minBucketBytes and maxBucketBytes must be powers of two with min <= max');
    }
    if (!(this.maxRetainedBytes >= 0)) throw new RangeError('maxRetainedBytes must be >= 0');
    this.minShift = 31 - Math.clz32(this.minBucketBytes);
    const count = 31 - Math.clz32(this.maxBucketBytes) - this.minShift + 1;
    this.buckets = Array.from({ length: count }, () => []);
    this.outstandingSet = this.debug ? new Set() : undefined;
  }

  /** The capacity `acquire(size)` gives: the smallest bucket that fits, or exactly `size` above the largest. */
  bucketCapacity(size: number): number {
    if (size <= this.minBucketBytes) return this.minBucketBytes;
    if (size > this.maxBucketBytes) return size;
    return 1 << (32 - Math.clz32(size - 1));
  }

  /** A buffer of `size` visible bytes (contents undefined), with one reference. */
  acquire(size: number): RetainableBuffer {
    if (!(size >= 0) || !Number.isInteger(size)) throw new RangeError(`cannot acquire ${size} bytes`);
    const c = this.counters;
    c.acquired++;
    c.outstanding++;
    let result: RetainableBuffer;
    if (size > this.maxBucketBytes) {
      c.allocated++;
      result = new RetainableBuffer(this, Buffer.allocUnsafeSlow(size), size);
    } else {
      const bucket = this.buckets[this.bucketIndex(size)]!;
      const reused = bucket.pop();
      if (reused !== undefined) {
        c.reused++;
        c.retainedBytes -= reused.capacity;
        reused.revive(size);
        result = reused;
      } else {
        c.allocated++;
        result = new RetainableBuffer(this, Buffer.allocUnsafeSlow(this.bucketCapacity(size)), size);
      }
    }
    if (this.outstandingSet !== undefined) {
      result.acquiredAt = new Error('acquired here').stack ?? '(no stack)';
      this.outstandingSet.add(result);
    }
    return result;
  }

  /** @internal RetainableBuffer's final release. */
  reclaim(buffer: RetainableBuffer): void {
    const c = this.counters;
    c.outstanding--;
    if (this.outstandingSet !== undefined) {
      this.outstandingSet.delete(buffer);
      // Quarantine: poison and never reuse, so a stale reference sees garbage, not someone else's data.
      buffer.memory.fill(POISON_BYTE);
      c.dropped++;
      return;
    }
    const capacity = buffer.capacity;
    if (capacity > this.maxBucketBytes || c.retainedBytes + capacity > this.maxRetainedBytes) {
      c.dropped++;
      return;
    }
    c.retainedBytes += capacity;
    this.buckets[this.bucketIndex(capacity)]!.push(buffer);
  }

  /** A copy of the counters. */
  stats(): ByteBufferPoolStats {
    return { ...this.counters };
  }

  /** Debug pools: the buffers not yet released, with where each was acquired. Empty otherwise. */
  leaks(): BufferLeak[] {
    if (this.outstandingSet === undefined) return [];
    return [...this.outstandingSet].map((b) => ({ capacity: b.capacity, refCount: b.refCount, acquiredAt: b.acquiredAt ?? '' }));
  }

  /** Debug pools: throws a `BufferLeakError` listing every outstanding buffer. */
  assertNoLeaks(): void {
    const leaks = this.leaks();
    if (leaks.length > 0) throw new BufferLeakError(leaks);
  }

  /** Drops every pooled buffer (outstanding ones are unaffected). */
  clear(): void {
    for (const bucket of this.buckets) bucket.length = 0;
    this.counters.retainedBytes = 0;
  }

  private bucketIndex(size: number): number {
    if (size <= this.minBucketBytes) return 0;
    return 32 - Math.clz32(size - 1) - this.minShift;
  }
}

let sharedPool: ByteBufferPool | undefined;

/** The process-wide pool that connections use unless given another (created on first use, not in debug mode). */
export function defaultBufferPool(): ByteBufferPool {
  return (sharedPool ??= new ByteBufferPool());
}
