/** Errors of the buffer pool. */

/** A buffer was used or released after its last release (a use-after-release bug in the caller). */
export class BufferReleasedError extends Error {
  readonly code = 'BUFFER_RELEASED';
  constructor(message: string) {
    super(message);
    this.name = 'BufferReleasedError';
  }
}

/** `assertNoLeaks()` found buffers acquired and never released; the message lists where each was acquired. */
export class BufferLeakError extends Error {
  readonly code = 'BUFFER_LEAK';
  readonly leaks: readonly BufferLeak[];
  constructor(leaks: readonly BufferLeak[]) {
    super(
      `${leaks.length} pooled buffer(s) never released:\n` +
        leaks.map((l, i) => `#${i + 1} ${l.capacity} bytes, refCount ${l.refCount}, acquired at:\n${l.acquiredAt}`).join('\n'),
    );
    this.name = 'BufferLeakError';
    this.leaks = leaks;
  }
}

/** One outstanding buffer in a debug pool's leak report. */
export interface BufferLeak {
  capacity: number;
  refCount: number;
  /** The stack trace of the `acquire()` call. */
  acquiredAt: string;
}
