/**
 * A log-linear histogram of non-negative integer values (HdrHistogram's layout, simplified): exact below
 * 2^significantBits, then every power-of-two range [2^e, 2^(e+1)) split into 2^significantBits equal buckets.
 * The relative error of a reported value is below 2^-significantBits (0.8% with the default 7 bits), whatever
 * the magnitude, and the memory is fixed at construction: one Float64Array of
 * (log2(maxValue) - significantBits + 2) * 2^significantBits counts (31 KiB for the defaults), however many
 * values are recorded. Recording is a few integer operations, no allocation: it is on the load generator's hot
 * path (one per message).
 *
 * quay-load records latencies in microseconds.
 */

/** Options of a {@link Histogram}. Two histograms can be merged only when they have the same options. */
export interface HistogramOptions {
  /** Bits of precision: 2^bits buckets per power of two; relative error < 2^-bits. 1 to 12, default 7. */
  significantBits?: number;
  /** The largest value kept apart; larger values are counted as this (min/max/mean stay exact). Default 2^36. */
  maxValue?: number;
}

/** A histogram as JSON (sparse: only non-empty buckets), to merge results from several processes. */
export interface HistogramSnapshot {
  significantBits: number;
  maxValue: number;
  count: number;
  min: number;
  max: number;
  sum: number;
  /** [bucket index, count] for every non-empty bucket, by increasing index. */
  buckets: [number, number][];
}

const TWO_POW_32 = 0x1_0000_0000;

/** floor(log2(v)) for an integer 1 <= v < 2^53 (Math.clz32 only sees 32 bits). */
function log2Floor(v: number): number {
  if (v < TWO_POW_32) return 31 - Math.clz32(v);
  return 63 - Math.clz32(Math.floor(v / TWO_POW_32));
}

export class Histogram {
  readonly significantBits: number;
  readonly maxValue: number;
  /** 2^significantBits: values below it have a bucket each. */
  private readonly subBuckets: number;
  private readonly counts: Float64Array;
  private _count = 0;
  private _min = Infinity;
  private _max = 0;
  private _sum = 0;

  constructor(options: HistogramOptions = {}) {
    const bits = options.significantBits ?? 7;
    if (!Number.isInteger(bits) || bits < 1 || bits > 12) throw new RangeError(`significantBits must be 1..12, not ${bits}`);
    const maxValue = options.maxValue ?? 2 ** 36;
    if (!Number.isSafeInteger(maxValue) || maxValue < 2 ** (bits + 1)) {
      throw new RangeError(`maxValue must be a safe integer >= 2^(significantBits+1), not ${maxValue}`);
    }
    this.significantBits = bits;
    this.maxValue = maxValue;
    this.subBuckets = 2 ** bits;
    this.counts = new Float64Array(this.indexOf(maxValue) + 1);
  }

  /** Values recorded. */
  get count(): number {
    return this._count;
  }

  /** The smallest value recorded (exact); 0 when empty. */
  get min(): number {
    return this._count === 0 ? 0 : this._min;
  }

  /** The largest value recorded (exact, even above maxValue); 0 when empty. */
  get max(): number {
    return this._max;
  }

  /** The mean of the values as recorded (exact, not bucketed); 0 when empty. */
  get mean(): number {
    return this._count === 0 ? 0 : this._sum / this._count;
  }

  /** The memory of the counts, fixed at construction. */
  get byteLength(): number {
    return this.counts.byteLength;
  }

  /** Number of buckets, fixed at construction. */
  get bucketCount(): number {
    return this.counts.length;
  }

  /** Records one value; a fraction is kept for min/max/mean and truncated for the bucket; negatives count as 0. */
  record(value: number): void {
    this.recordCount(value, 1);
  }

  /** Records `n` occurrences of a value. */
  recordCount(value: number, n: number): void {
    if (!(value > 0)) value = 0; // also NaN
    const v = value < this.maxValue ? Math.floor(value) : this.maxValue;
    this.counts[this.indexOf(v)]! += n;
    this._count += n;
    this._sum += value * n;
    if (value < this._min) this._min = value;
    if (value > this._max) this._max = value;
  }

  /**
   * The value at a percentile (0 < p <= 100): the highest value of the bucket holding the ⌈p% · count⌉-th smallest
   * value, clamped to the recorded min and max. So it is never below the exact answer, and above it by less than
   * 2^-significantBits of it. 100 gives the exact max; an empty histogram gives 0.
   */
  valueAtPercentile(p: number): number {
    if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], not ${p}`);
    if (this._count === 0) return 0;
    if (p === 100) return this._max;
    const target = Math.max(1, Math.ceil((p / 100) * this._count));
    const counts = this.counts;
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i]!;
      if (seen >= target) {
        const highest = this.lowestOf(i) + this.widthOf(i) - 1;
        return Math.max(this._min, Math.min(highest, this._max));
      }
    }
    return this._max;
  }

  /** Adds another histogram's values to this one. @throws RangeError when the options differ. */
  merge(other: Histogram): this {
    if (other.significantBits !== this.significantBits || other.maxValue !== this.maxValue) {
      throw new RangeError('cannot merge histograms with different significantBits or maxValue');
    }
    const a = this.counts;
    const b = other.counts;
    for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
    this.mergeStats(other._count, other._min, other._max, other._sum);
    return this;
  }

  /** Forgets every value (the memory is kept). */
  reset(): void {
    this.counts.fill(0);
    this._count = 0;
    this._min = Infinity;
    this._max = 0;
    this._sum = 0;
  }

  /** Calls `fn(lowest, highest, count)` for every non-empty bucket, by increasing value. */
  forEachBucket(fn: (lowest: number, highest: number, count: number) => void): void {
    const counts = this.counts;
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i]!;
      if (c !== 0) {
        const lowest = this.lowestOf(i);
        fn(lowest, lowest + this.widthOf(i) - 1, c);
      }
    }
  }

  toJSON(): HistogramSnapshot {
    const buckets: [number, number][] = [];
    const counts = this.counts;
    for (let i = 0; i < counts.length; i++) if (counts[i] !== 0) buckets.push([i, counts[i]!]);
    return {
      significantBits: this.significantBits,
      maxValue: this.maxValue,
      count: this._count,
      min: this.min,
      max: this._max,
      sum: this._sum,
      buckets,
    };
  }

  /** @throws RangeError for a snapshot that does not fit its own options. */
  static fromJSON(snapshot: HistogramSnapshot): Histogram {
    const h = new Histogram({ significantBits: snapshot.significantBits, maxValue: snapshot.maxValue });
    let total = 0;
    for (const [index, count] of snapshot.buckets) {
      if (!Number.isInteger(index) || index < 0 || index >= h.counts.length || !(count >= 0)) {
        throw new RangeError(`bucket ${index} out of range`);
      }
      h.counts[index]! += count;
      total += count;
    }
    if (total !== snapshot.count) throw new RangeError(`bucket counts add up to ${total}, not ${snapshot.count}`);
    h.mergeStats(snapshot.count, snapshot.count === 0 ? Infinity : snapshot.min, snapshot.max, snapshot.sum);
    return h;
  }

  private mergeStats(count: number, min: number, max: number, sum: number): void {
    this._count += count;
    this._sum += sum;
    if (min < this._min) this._min = min;
    if (max > this._max) this._max = max;
  }

  /**
   * The bucket of an integer value: exact below 2^bits; above, with e = floor(log2 v) and shift = e - bits, the
   * top bits+1 bits of v (the "mantissa", in [2^bits, 2^(bits+1))) offset by shift * 2^bits: contiguous, and
   * each power of two gets 2^bits buckets of width 2^shift.
   */
  private indexOf(v: number): number {
    const sub = this.subBuckets;
    if (v < sub) return v;
    const shift = log2Floor(v) - this.significantBits;
    return shift * sub + Math.floor(v / 2 ** shift);
  }

  private lowestOf(index: number): number {
    const sub = this.subBuckets;
    if (index < 2 * sub) return index;
    const shift = Math.floor(index / sub) - 1;
    return (index - shift * sub) * 2 ** shift;
  }

  private widthOf(index: number): number {
    const sub = this.subBuckets;
    return index < 2 * sub ? 1 : 2 ** (Math.floor(index / sub) - 1);
  }
}
