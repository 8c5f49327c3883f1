/** Errors of the buffer pool. */

/** A buffer was used or released after its final release (a use-after-release bug in the caller). */
export class BufferReleasedError extends Error {
  /** Stable error code. */
  readonly code = 'BUFFER_RELEASED';
  /** @param message what was done to the released buffer */
  constructor(message: string) {
    super(message);
    this.name = 'BufferReleasedError';
  }
}

/** One outstanding buffer in a debug pool's leak report. */
export interface BufferLeak {
  /** The size of the backing memory (the bucket, or the exact size above the largest bucket). */
  readonly capacity: number;
  /** The references still held. */
  readonly refCount: number;
  /** The stack trace of the `acquire()` call. */
  readonly acquiredAt: string;
}

/** How many leaks a BufferLeakError's message details. */
const LEAKS_IN_MESSAGE = 5;

/** `assertNoLeaks()` found buffers acquired and never released; the message lists where the first were acquired. */
export class BufferLeakError extends Error {
  /** Stable error code. */
  readonly code = 'BUFFER_LEAK';
  /** The outstanding buffers, each with its acquire site. */
  readonly leaks: readonly BufferLeak[];
  /** @param leaks the outstanding buffers (at least one) */
  constructor(leaks: readonly BufferLeak[]) {
    // The message shows the first few (a leak usually repeats one site); `leaks` has them all.
    const shown = leaks.slice(0, LEAKS_IN_MESSAGE);
    super(
      `${leaks.length} pooled buffer(s) never released:\n` +
        shown.map((l, i) => `#${i + 1} ${l.capacity} bytes, refCount ${l.refCount}, acquired at:\n${l.acquiredAt}`).join('\n') +
        (leaks.length > shown.length ? `\n... and ${leaks.length - shown.length} more (see .leaks)` : ''),
    );
    this.name = 'BufferLeakError';
    this.leaks = leaks;
  }
}
