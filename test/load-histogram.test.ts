/**
 * quay-load's log-linear histogram: percentiles against a sorted-array reference on seeded random data (never
 * below the exact answer, above it by less than the bucket precision), exact min/max/mean, bounded memory,
 * merging and the JSON snapshot.
 */
import t from 'tap';
import type { Test } from 'tap';
import { Histogram } from '../perf/load/Histogram.js';
import { mulberry32 } from './support/mulberry32.js';

const PERCENTILES = [0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100];

/** The exact answer the histogram approximates: the ⌈p% · n⌉-th smallest value. */
function reference(sorted: readonly number[], p: number): number {
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

/** Latency-like integers: log-uniform over [1, 10^7] (1 µs to 10 s), with a cluster around 500. */
function sample(random: () => number, n: number): number[] {
  const values: number[] = [];
  for (let i = 0; i < n; i++) {
    values.push(random() < 0.7 ? 450 + Math.floor(random() * 100) : Math.floor(10 ** (random() * 7)));
  }
  return values;
}

function checkAgainstReference(t: Test, h: Histogram, values: number[], label: string): void {
  const sorted = [...values].sort((a, b) => a - b);
  const precision = 2 ** -h.significantBits;
  for (const p of PERCENTILES) {
    const exact = reference(sorted, p);
    const got = h.valueAtPercentile(p);
    // Never below the exact value; above it by less than one bucket, whose width is < value * 2^-bits.
    if (!(got >= exact && got - exact <= exact * precision)) {
      t.fail(`${label} p${p}: got ${got}, exact ${exact}, precision ${precision}`);
      return;
    }
  }
  t.pass(`${label}: ${PERCENTILES.length} percentiles within ${(precision * 100).toFixed(2)}%`);
}

t.test('percentiles match a sorted-array reference within the bucket precision', async (t) => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    for (const bits of [3, 7, 10]) {
      const random = mulberry32(seed);
      const values = sample(random, 1 + Math.floor(random() * 5000));
      const h = new Histogram({ significantBits: bits });
      for (const v of values) h.record(v);
      checkAgainstReference(t, h, values, `seed ${seed}, ${bits} bits, ${values.length} values`);
    }
  }
});

t.test('values below 2^bits are exact', async (t) => {
  const random = mulberry32(7);
  const values: number[] = [];
  const h = new Histogram();
  for (let i = 0; i < 1000; i++) {
    const v = Math.floor(random() * 128);
    values.push(v);
    h.record(v);
  }
  const sorted = [...values].sort((a, b) => a - b);
  for (const p of PERCENTILES) t.equal(h.valueAtPercentile(p), reference(sorted, p), `p${p}`);
});

t.test('count, min, max and mean are exact', async (t) => {
  const h = new Histogram();
  t.equal(h.count, 0);
  t.equal(h.min, 0);
  t.equal(h.max, 0);
  t.equal(h.mean, 0);
  t.equal(h.valueAtPercentile(50), 0, 'an empty histogram reports 0');
  for (const v of [1000.5, 3, 123_456_789.25, 77]) h.record(v);
  t.equal(h.count, 4);
  t.equal(h.min, 3);
  t.equal(h.max, 123_456_789.25);
  t.equal(h.mean, (1000.5 + 3 + 123_456_789.25 + 77) / 4);
  t.equal(h.valueAtPercentile(100), 123_456_789.25, 'p100 is the exact max');
  h.record(-5);
  t.equal(h.min, 0, 'a negative value counts as 0');
  h.recordCount(10, 5);
  t.equal(h.count, 10);
  t.throws(() => h.valueAtPercentile(0), RangeError);
  t.throws(() => h.valueAtPercentile(100.5), RangeError);
  t.throws(() => new Histogram({ significantBits: 0 }), RangeError);
  t.throws(() => new Histogram({ significantBits: 7, maxValue: 100 }), RangeError);
});

t.test('memory is bounded: fixed at construction, whatever is recorded', async (t) => {
  const h = new Histogram();
  const bytes = h.byteLength;
  const buckets = h.bucketCount;
  t.ok(bytes <= 64 * 1024, `${bytes} bytes`);
  const random = mulberry32(9);
  for (let i = 0; i < 200_000; i++) h.record(Math.floor(random() * 2 ** (random() * 40)));
  h.record(Number.MAX_SAFE_INTEGER);
  h.record(Infinity);
  t.equal(h.byteLength, bytes, 'no growth');
  t.equal(h.bucketCount, buckets);
  t.equal(h.count, 200_002);
  t.equal(h.max, Infinity, 'max stays exact above maxValue');
  t.ok(h.valueAtPercentile(99.999) <= Infinity);
  t.ok(h.toJSON().buckets.length <= buckets, 'the snapshot has at most one entry per bucket');
});

t.test('merge: two halves merged equal the whole', async (t) => {
  const random = mulberry32(11);
  const values = sample(random, 4000);
  const whole = new Histogram();
  const a = new Histogram();
  const b = new Histogram();
  values.forEach((v, i) => {
    whole.record(v);
    (i % 3 === 0 ? a : b).record(v);
  });
  a.merge(b);
  t.same(a.toJSON(), { ...whole.toJSON(), sum: a.toJSON().sum }, 'same buckets, count, min, max');
  t.ok(Math.abs(a.mean - whole.mean) < 1e-6 * whole.mean, 'same mean');
  for (const p of PERCENTILES) t.equal(a.valueAtPercentile(p), whole.valueAtPercentile(p), `p${p}`);
  checkAgainstReference(t, a, values, 'merged');
  t.throws(() => a.merge(new Histogram({ significantBits: 8 })), RangeError, 'different precision');
  const empty = new Histogram();
  empty.merge(new Histogram());
  t.equal(empty.count, 0);
  t.equal(empty.min, 0);
});

t.test('toJSON / fromJSON round-trip, and reset', async (t) => {
  const random = mulberry32(13);
  const h = new Histogram({ significantBits: 5, maxValue: 2 ** 30 });
  const values = sample(random, 1000);
  for (const v of values) h.record(v);
  const copy = Histogram.fromJSON(JSON.parse(JSON.stringify(h)));
  t.same(copy.toJSON(), h.toJSON());
  for (const p of PERCENTILES) t.equal(copy.valueAtPercentile(p), h.valueAtPercentile(p));
  t.throws(() => Histogram.fromJSON({ ...h.toJSON(), buckets: [[1e9, 1]], count: 1 }), RangeError, 'bucket out of range');
  t.throws(() => Histogram.fromJSON({ ...h.toJSON(), count: 5 }), RangeError, 'counts do not add up');
  t.equal(Histogram.fromJSON(new Histogram().toJSON()).count, 0);
  h.reset();
  t.equal(h.count, 0);
  t.equal(h.valueAtPercentile(99), 0);
  t.same(h.toJSON().buckets, []);
});

t.test('forEachBucket walks the non-empty buckets in order, covering each value', async (t) => {
  const h = new Histogram();
  for (const v of [5, 5, 200, 1_000_000]) h.record(v);
  const seen: [number, number, number][] = [];
  h.forEachBucket((lo, hi, c) => seen.push([lo, hi, c]));
  t.equal(seen.length, 3);
  t.same(seen[0], [5, 5, 2]);
  t.ok(seen[1]![0] <= 200 && 200 <= seen[1]![1]);
  t.ok(seen[2]![0] <= 1_000_000 && 1_000_000 <= seen[2]![1]);
  t.ok(seen[2]![1] - seen[2]![0] + 1 <= 1_000_000 / 128, 'the bucket is narrower than 2^-7 of its values');
});
