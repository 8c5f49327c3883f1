/** Anything bytes can be written to (a load client). */
export interface ByteSink {
  write(bytes: Buffer): void;
}

/** A repeated unit is kept under this size (one buffer per run, not per connection). */
const MAX_BYTES = 64 * 1024;

/**
 * One unit of bytes (a masked frame, a request) repeated up to `maxCopies` times in one buffer, with a view for
 * each count: n units are written with ceil(n / copies) writes of bytes that already exist, and no allocation.
 * This is how a load client answers the k echoes (responses) of one read with one write.
 */
export class RepeatedBytes {
  readonly unitBytes: number;
  /** Units in the largest view. */
  readonly copies: number;
  private readonly views: Buffer[];

  constructor(unit: Buffer, maxCopies: number) {
    this.unitBytes = unit.length;
    this.copies = Math.max(1, Math.min(maxCopies, Math.floor(MAX_BYTES / Math.max(1, unit.length))));
    const all = Buffer.allocUnsafe(this.copies * unit.length);
    for (let k = 0; k < this.copies; k++) unit.copy(all, k * unit.length);
    this.views = [all.subarray(0, 0)];
    for (let k = 1; k <= this.copies; k++) this.views.push(all.subarray(0, k * unit.length));
  }

  /** Writes `n` units to a sink. */
  writeTo(sink: ByteSink, n: number): void {
    const copies = this.copies;
    while (n > 0) {
      const k = n < copies ? n : copies;
      sink.write(this.views[k]!);
      n -= k;
    }
  }
}
