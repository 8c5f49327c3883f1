import { Buffer } from 'node:buffer';
import { RetainableBuffer } from './RetainableBuffer.js';
import type { BufferOwner } from './RetainableBuffer.js';
import { BufferLeakError } from './errors.js';
import type { BufferLeak } from './errors.js';

/** Options of a {@link ByteBufferPool}. */
export interface ByteBufferPoolOptions {
  /** Smallest bucket (a power of two; default 1024). Smaller requests get a buffer of this capacity. */
  minBucketBytes?: number;
  /**
   * Largest pooled bucket (a power of two, at most 2^30; default 65536). Larger requests are allocated at their
   * exact size and never pooled.
   */
  maxBucketBytes?: number;
  /** At most this many bytes sit in the pool; buffers released over it are dropped. Default 16 MiB. */
  maxRetainedBytes?: number;
  /**
   * Test mode: records where every buffer was acquired (`leaks()`, `assertNoLeaks()`), poisons released memory
   * with {@link POISON_BYTE} and never reuses it, so a use after release reads poison, never another
   * connection's data; and `buffer` on a released RetainableBuffer throws. Costs a stack trace per acquire.
   */
  debug?: boolean;
}

/** Counters of a pool, as returned by {@link ByteBufferPool.stats}. */
export interface ByteBufferPoolStats {
  /** `acquire()` calls. */
  acquired: number;
  /** Acquires served from the pool. */
  reused: number;
  /** Acquires that allocated new memory (`reused + allocated === acquired`). */
  allocated: number;
  /** Final releases whose memory was not kept (over the bound, larger than the largest bucket, or debug mode). */
  dropped: number;
  /** Bytes sitting in the pool now. */
  retainedBytes: number;
  /** Buffers acquired and not yet finally released. */
  outstanding: number;
}

/** The byte a debug pool fills released memory with. */
export const POISON_BYTE = 0xde;

/** The largest bucket: `1 << 31` would overflow the int32 arithmetic of the bucket lookup. */
const MAX_BUCKET_LIMIT = 2 ** 30;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && n <= MAX_BUCKET_LIMIT && (n & (n - 1)) === 0;
}

/**
 * A pool of reusable buffers in power-of-two size buckets (Jetty's ArrayByteBufferPool). `acquire(size)` rounds
 * up to a bucket and reuses a released buffer of that bucket when there is one; the bucket lookup is one
 * `Math.clz32`, and reuse allocates nothing (the wrapper is kept with its memory, and its view when the size
 * repeats). Pooled memory comes from `Buffer.allocUnsafeSlow`, never Node's shared slab, so a pooled buffer
 * never aliases unrelated data. Contents of an acquired buffer are undefined (previous owners' bytes).
 */
export class ByteBufferPool implements BufferOwner {
  /** True in test mode: leak tracking, poisoning, no reuse, use-after-release checks. */
  readonly debug: boolean;
  /** The smallest bucket, in bytes. */
  readonly minBucketBytes: number;
  /** The largest pooled bucket, in bytes. */
  readonly maxBucketBytes: number;
  /** The most bytes the pool keeps. */
  readonly maxRetainedBytes: number;
  private readonly minShift: number;
  /** Free lists, index i holding buffers of capacity `minBucketBytes << i`. */
  private readonly buckets: RetainableBuffer[][];
  private readonly outstandingSet: Set<RetainableBuffer> | undefined;
  private readonly counters: ByteBufferPoolStats = {
    acquired: 0,
    reused: 0,
    allocated: 0,
    dropped: 0,
    retainedBytes: 0,
    outstanding: 0,
  };

  /**
   * @param options bucket sizes, retention bound, debug mode
   * @throws RangeError when the bucket sizes are not powers of two with min <= max <= 2^30, or the bound is negative
   */
  constructor(options: ByteBufferPoolOptions = {}) {
    this.minBucketBytes = options.minBucketBytes ?? 1024;
    this.maxBucketBytes = options.maxBucketBytes ?? 64 * 1024;
    this.maxRetainedBytes = options.maxRetainedBytes ?? 16 * 1024 * 1024;
    this.debug = options.debug ?? false;
    if (!isPowerOfTwo(this.minBucketBytes) || !isPowerOfTwo(this.maxBucketBytes) || this.minBucketBytes > this.maxBucketBytes) {
      throw new RangeError('minBucketBytes and maxBucketBytes must be powers of two with min <= max <= 2^30');
    }
    if (!(this.maxRetainedBytes >= 0)) throw new RangeError('maxRetainedBytes must be >= 0');
    this.minShift = 31 - Math.clz32(this.minBucketBytes);
    const count = 31 - Math.clz32(this.maxBucketBytes) - this.minShift + 1;
    this.buckets = Array.from({ length: count }, () => []);
    this.outstandingSet = this.debug ? new Set() : undefined;
  }

  /** The capacity `acquire(size)` gives: the smallest bucket that fits, or exactly `size` above the largest. */
  bucketCapacity(size: number): number {
    return size > this.maxBucketBytes ? size : this.minBucketBytes << this.bucketIndex(size);
  }

  /**
   * A buffer of `size` visible bytes (contents undefined) holding one reference; `release()` it when done.
   * @throws RangeError when `size` is not a non-negative integer.
   */
  acquire(size: number): RetainableBuffer {
    if (!(Number.isInteger(size) && size >= 0)) throw new RangeError(`cannot acquire ${size} bytes`);
    const c = this.counters;
    let result: RetainableBuffer;
    // Count only once the memory exists: an allocation that throws (size over buffer.constants.MAX_LENGTH, out
    // of memory) must not leave a phantom outstanding buffer in the stats.
    if (size > this.maxBucketBytes) {
      result = new RetainableBuffer(this, Buffer.allocUnsafeSlow(size), size);
      c.allocated++;
    } else {
      const index = this.bucketIndex(size);
      const reused = this.buckets[index]!.pop();
      if (reused !== undefined) {
        c.reused++;
        c.retainedBytes -= reused.capacity;
        reused.revive(size);
        result = reused;
      } else {
        result = new RetainableBuffer(this, Buffer.allocUnsafeSlow(this.minBucketBytes << index), size);
        c.allocated++;
      }
    }
    c.acquired++;
    c.outstanding++;
    if (this.outstandingSet !== undefined) {
      result.acquiredAt = new Error('acquired here').stack ?? '(no stack)';
      this.outstandingSet.add(result);
    }
    return result;
  }

  /** @internal RetainableBuffer's final release: keep the buffer for reuse, or drop it. */
  reclaim(buffer: RetainableBuffer): void {
    const c = this.counters;
    c.outstanding--;
    if (this.outstandingSet !== undefined) {
      this.outstandingSet.delete(buffer);
      // Quarantine for good: poison and never reuse, so a stale reference sees 0xDE, never someone else's data.
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

  /** A snapshot of the counters, as a plain object. */
  stats(): ByteBufferPoolStats {
    return { ...this.counters };
  }

  /** Debug pools: the buffers not yet finally released, with where each was acquired. Empty otherwise. */
  leaks(): BufferLeak[] {
    if (this.outstandingSet === undefined) return [];
    return [...this.outstandingSet].map((b) => ({ capacity: b.capacity, refCount: b.refCount, acquiredAt: b.acquiredAt ?? '' }));
  }

  /**
   * Debug pools: checks that every acquired buffer was released (a no-op outside debug mode).
   * @throws BufferLeakError listing every outstanding buffer and its acquire site.
   */
  assertNoLeaks(): void {
    const leaks = this.leaks();
    if (leaks.length > 0) throw new BufferLeakError(leaks);
  }

  /** Empties the pool, letting the memory be garbage collected; outstanding buffers are unaffected. */
  clear(): void {
    for (const bucket of this.buckets) bucket.length = 0;
    this.counters.retainedBytes = 0;
  }

  /** Index of the bucket for `size <= maxBucketBytes`: ceil(log2(size)) - log2(min), clamped at 0. */
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
