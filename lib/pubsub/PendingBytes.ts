import { BrokerError } from './errors.js';

/**
 * The bound on what a broker has handed to its transport and not seen written or answered yet (design.md,
 * "Bounds"): bytes are reserved before a publish goes out and released when it completes or fails, and a publish
 * that would pass `max` is refused at once with 'BROKER_OVERLOADED' (its local delivery is already done). One
 * object for every broker, so each bound reads, refuses and reports alike.
 */
export class PendingBytes {
  /** The bound, in bytes (`maxPendingBytes`). */
  readonly max: number;
  private pending = 0;

  /**
   * @param max the user's `maxPendingBytes`, or undefined for `defaultMax`.
   * @param waiting what the bytes wait for, for the error message ("wait for the IPC channel").
   * @throws BrokerError 'BROKER_MISCONFIGURED' when the bound is not a positive number.
   */
  constructor(max: number | undefined, defaultMax: number, private readonly waiting: string) {
    const bound = max ?? defaultMax;
    if (!(bound > 0)) throw new BrokerError('BROKER_MISCONFIGURED', `maxPendingBytes must be positive (got ${bound})`);
    this.max = bound;
  }

  /** Bytes reserved and not released. */
  get bytes(): number {
    return this.pending;
  }

  /** Reserves `size` bytes; or, when that would pass the bound, reserves nothing and returns the error to fail with. */
  reserve(size: number): BrokerError | undefined {
    if (this.pending + size > this.max) {
      return new BrokerError('BROKER_OVERLOADED', `${this.pending} bytes ${this.waiting}; ${size} more would pass maxPendingBytes (${this.max})`);
    }
    this.pending += size;
    return undefined;
  }

  /** Releases `size` bytes reserved earlier (the publish completed or failed). */
  release(size: number): void {
    this.pending -= size;
  }
}
