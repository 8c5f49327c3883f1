import t from 'tap';
import {
  ByteBufferPool,
  BufferLeakError,
  BufferReleasedError,
  defaultBufferPool,
  POISON_BYTE,
} from '../lib/buffers/index.js';
import { constants } from 'node:buffer';
import type { ByteBufferPoolStats, RetainableBuffer } from '../lib/buffers/index.js';
import { mulberry32 } from './support/mulberry32.js';

/** The bucket rule written the slow, obvious way. */
function referenceCapacity(size: number, min: number, max: number): number {
  if (size > max) return size;
  let capacity = min;
  while (capacity < size) capacity *= 2;
  return capacity;
}

t.test('acquire rounds up to power-of-two buckets', async (t) => {
  const pool = new ByteBufferPool();
  const cases: [number, number][] = [
    [0, 1024], [1, 1024], [1023, 1024], [1024, 1024], [1025, 2048], [2048, 2048], [4096, 4096], [4097, 8192],
    [32769, 65536], [65535, 65536], [65536, 65536],
  ];
  for (const [size, capacity] of cases) {
    const b = pool.acquire(size);
    t.equal(b.capacity, capacity, `${size} -> ${capacity}`);
    t.equal(pool.bucketCapacity(size), capacity);
    t.equal(b.length, size);
    t.equal(b.buffer.length, size, 'the visible buffer has the requested length');
    t.equal(b.refCount, 1);
    t.equal(b.isReleased, false);
    b.release();
  }
  t.equal(pool.stats().dropped, 0, 'every bucket-sized buffer was pooled');
});

t.test('the clz32 lookup agrees with a loop for every size, custom bucket bounds', async (t) => {
  const bounds: [number, number][] = [[16, 256], [1, 1], [1024, 1024], [1024, 65536]];
  for (const [min, max] of bounds) {
    const pool = new ByteBufferPool({ minBucketBytes: min, maxBucketBytes: max });
    let mismatches = 0;
    for (let size = 0; size <= Math.min(max * 2, 70_000); size++) {
      if (pool.bucketCapacity(size) !== referenceCapacity(size, min, max)) mismatches++;
    }
    t.equal(mismatches, 0, `min ${min} max ${max}`);
    const small = pool.acquire(0);
    t.equal(small.capacity, min);
    t.equal(small.buffer.length, 0);
    small.release();
  }
});

t.test('larger than the largest bucket: exact size, allocated, never pooled', async (t) => {
  const pool = new ByteBufferPool();
  const big = pool.acquire(65537);
  t.equal(big.capacity, 65537);
  t.equal(big.buffer.length, 65537);
  const memory = big.buffer.buffer;
  t.equal(big.release(), true);
  t.same(pool.stats(), { acquired: 1, reused: 0, allocated: 1, dropped: 1, retainedBytes: 0, outstanding: 0 });
  const again = pool.acquire(65537);
  t.not(again.buffer.buffer, memory, 'new memory, the old was dropped');
  t.equal(pool.stats().allocated, 2);
  again.release();
});

t.test('pooled memory is its own allocation, not a slice of the shared slab', async (t) => {
  const pool = new ByteBufferPool();
  for (const size of [0, 1, 100, 4096, 65536, 70_000]) {
    const b = pool.acquire(size);
    t.equal(b.buffer.byteOffset, 0);
    t.equal(b.buffer.buffer.byteLength, b.capacity, `${size}: the ArrayBuffer is exactly the capacity`);
    b.release();
  }
});

t.test('released memory is reused: same memory, same wrapper, no allocation', async (t) => {
  const pool = new ByteBufferPool();
  const a = pool.acquire(3000);
  const memory = a.buffer.buffer;
  a.buffer.write('marker');
  a.release();
  t.equal(pool.stats().retainedBytes, 4096);
  const b = pool.acquire(2100);
  t.equal(b.buffer.buffer, memory, 'same backing memory');
  t.equal(b, a, 'the wrapper is reused with its memory');
  t.equal(b.refCount, 1, 'and its reference count reset');
  t.equal(b.isReleased, false);
  t.equal(b.length, 2100);
  t.equal(b.buffer.toString('latin1', 0, 6), 'marker', 'contents are not cleared outside debug mode');
  t.same(pool.stats(), { acquired: 2, reused: 1, allocated: 1, dropped: 0, retainedBytes: 0, outstanding: 1 });
  const view = b.buffer;
  b.release();
  const c = pool.acquire(2100);
  t.equal(c.buffer, view, 'acquiring the same size again reuses the view object too');
  c.release();
  const d = pool.acquire(1024);
  t.not(d.buffer.buffer, memory, 'a different bucket does not get this memory');
  d.release();
});

t.test('reference counting', async (t) => {
  const pool = new ByteBufferPool();
  const b = pool.acquire(10);
  t.equal(b.retain(), b, 'retain returns this');
  b.retain();
  t.equal(b.refCount, 3, 'acquire + two retains');
  t.equal(b.release(), false);
  t.equal(b.release(), false);
  t.equal(pool.stats().outstanding, 1, 'still outstanding while referenced');
  t.equal(b.release(), true, 'the third release frees it');
  t.equal(b.isReleased, true);
  t.equal(b.refCount, 0);
  t.equal(pool.stats().outstanding, 0);
  const err = t.throws(() => b.release(), BufferReleasedError, 'a fourth release throws') as BufferReleasedError;
  t.equal(err.code, 'BUFFER_RELEASED');
  t.throws(() => b.retain(), BufferReleasedError, 'retain after the final release throws');
  t.throws(() => b.setLength(1), BufferReleasedError);
  t.same(pool.stats().outstanding, 0, 'the failed calls changed nothing');
});

t.test('setLength changes the visible length within the capacity', async (t) => {
  const pool = new ByteBufferPool();
  const b = pool.acquire(65536);
  b.buffer.write('hello');
  t.equal(b.setLength(5), b);
  t.equal(b.buffer.length, 5);
  t.equal(b.buffer.toString(), 'hello', 'the bytes stay in place');
  b.setLength(b.capacity);
  t.equal(b.buffer.length, 65536);
  b.setLength(0);
  t.equal(b.length, 0);
  t.throws(() => b.setLength(b.capacity + 1), RangeError);
  t.throws(() => b.setLength(-1), RangeError);
  t.throws(() => b.setLength(1.5), RangeError);
  b.release();
});

t.test('the retained-bytes bound drops what does not fit', async (t) => {
  const pool = new ByteBufferPool({ maxRetainedBytes: 4096 });
  const bufs = [pool.acquire(2048), pool.acquire(2048), pool.acquire(2048)];
  for (const b of bufs) b.release();
  t.same(pool.stats(), { acquired: 3, reused: 0, allocated: 3, dropped: 1, retainedBytes: 4096, outstanding: 0 });
  const again = [pool.acquire(2048), pool.acquire(2048), pool.acquire(2048)];
  t.same(pool.stats(), { acquired: 6, reused: 2, allocated: 4, dropped: 1, retainedBytes: 0, outstanding: 3 });
  for (const b of again) b.release();

  const none = new ByteBufferPool({ maxRetainedBytes: 0 });
  none.acquire(1).release();
  t.same(none.stats(), { acquired: 1, reused: 0, allocated: 1, dropped: 1, retainedBytes: 0, outstanding: 0 });
});

t.test('clear() empties the pool', async (t) => {
  const pool = new ByteBufferPool();
  const a = pool.acquire(100);
  const memory = a.buffer.buffer;
  const kept = pool.acquire(100);
  a.release();
  t.equal(pool.stats().retainedBytes, 1024);
  pool.clear();
  t.equal(pool.stats().retainedBytes, 0);
  const b = pool.acquire(100);
  t.not(b.buffer.buffer, memory, 'nothing left to reuse');
  t.equal(pool.stats().allocated, 3);
  t.equal(pool.stats().outstanding, 2, 'outstanding buffers are unaffected');
  t.equal(kept.release(), true);
  b.release();
});

t.test('invalid options and sizes', async (t) => {
  const pool = new ByteBufferPool();
  for (const size of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => pool.acquire(size), RangeError, `acquire(${size})`);
  }
  t.equal(pool.stats().acquired, 0, 'rejected acquires are not counted');
  t.throws(() => new ByteBufferPool({ minBucketBytes: 1000 }), RangeError);
  t.throws(() => new ByteBufferPool({ maxBucketBytes: 3 * 1024 }), RangeError);
  t.throws(() => new ByteBufferPool({ minBucketBytes: 4096, maxBucketBytes: 2048 }), RangeError);
  t.throws(() => new ByteBufferPool({ maxBucketBytes: 2 ** 31 }), RangeError);
  t.throws(() => new ByteBufferPool({ minBucketBytes: 0 }), RangeError);
  t.throws(() => new ByteBufferPool({ maxRetainedBytes: -1 }), RangeError);
  t.equal(new ByteBufferPool({ maxBucketBytes: 2 ** 30 }).bucketCapacity(2 ** 30 - 1), 2 ** 30);
});

t.test('an allocation that fails leaves the stats untouched', async (t) => {
  // Above buffer.constants.MAX_LENGTH, Buffer.allocUnsafeSlow throws without allocating anything.
  for (const debug of [false, true]) {
    const pool = new ByteBufferPool({ debug });
    t.throws(() => pool.acquire(constants.MAX_LENGTH + 1), RangeError, `debug ${debug}: the allocation error surfaces`);
    t.same(pool.stats(), { acquired: 0, reused: 0, allocated: 0, dropped: 0, retainedBytes: 0, outstanding: 0 });
    t.same(pool.leaks(), [], 'no phantom leak');
    pool.acquire(10).release();
    t.equal(pool.stats().outstanding, 0);
  }
});

t.test('stats match a model over a seeded random sequence of acquire/retain/release', async (t) => {
  const min = 1024;
  const max = 65536;
  const bound = 64 * 1024;
  const rnd = mulberry32(0x5eed);
  const pool = new ByteBufferPool({ minBucketBytes: min, maxBucketBytes: max, maxRetainedBytes: bound });
  // The model: how many free buffers of each capacity the pool holds, and the counters it must report.
  const free = new Map<number, number>();
  const expected: ByteBufferPoolStats = { acquired: 0, reused: 0, allocated: 0, dropped: 0, retainedBytes: 0, outstanding: 0 };
  const live: { b: RetainableBuffer; refs: number }[] = [];
  const liveSet = new Set<RetainableBuffer>();
  const problems: string[] = [];
  for (let step = 0; step < 4000 && problems.length === 0; step++) {
    const r = rnd();
    if (r < 0.4 || live.length === 0) {
      // Mostly bucket sizes, sometimes over the largest bucket.
      const size = rnd() < 0.1 ? max + 1 + Math.floor(rnd() * 1000) : Math.floor(rnd() * (max + 1));
      const capacity = referenceCapacity(size, min, max);
      const b = pool.acquire(size);
      expected.acquired++;
      expected.outstanding++;
      const n = free.get(capacity) ?? 0;
      if (size <= max && n > 0) {
        free.set(capacity, n - 1);
        expected.reused++;
        expected.retainedBytes -= capacity;
      } else {
        expected.allocated++;
      }
      if (liveSet.has(b)) problems.push(`step ${step}: a live buffer was handed out again`);
      if (b.capacity !== capacity || b.buffer.length !== size || b.refCount !== 1) {
        problems.push(`step ${step}: acquire(${size}) gave capacity ${b.capacity}, length ${b.buffer.length}`);
      }
      live.push({ b, refs: 1 });
      liveSet.add(b);
    } else if (r < 0.55) {
      const e = live[Math.floor(rnd() * live.length)]!;
      e.b.retain();
      e.refs++;
    } else {
      const k = Math.floor(rnd() * live.length);
      const e = live[k]!;
      const capacity = e.b.capacity;
      e.refs--;
      const freed = e.b.release();
      if (freed !== (e.refs === 0)) problems.push(`step ${step}: release() returned ${freed} with ${e.refs} refs left`);
      if (e.refs === 0) {
        live.splice(k, 1);
        liveSet.delete(e.b);
        expected.outstanding--;
        if (capacity > max || expected.retainedBytes + capacity > bound) {
          expected.dropped++;
        } else {
          expected.retainedBytes += capacity;
          free.set(capacity, (free.get(capacity) ?? 0) + 1);
        }
      }
    }
    const actual = JSON.stringify(pool.stats());
    if (actual !== JSON.stringify(expected)) problems.push(`step ${step}: stats ${actual}, model ${JSON.stringify(expected)}`);
  }
  t.same(problems, [], 'the pool behaves like the model at every step');
  const s = pool.stats();
  t.equal(s.reused + s.allocated, s.acquired);
  t.ok(s.reused > 0 && s.dropped > 0, 'the sequence exercised reuse and drops');
  for (const e of live) while (e.refs-- > 0) e.b.release();
  t.equal(pool.stats().outstanding, 0);
});

t.test('outside debug mode: no tracking, no poison, no use-after-release check', async (t) => {
  const pool = new ByteBufferPool();
  const b = pool.acquire(16);
  t.same(pool.leaks(), []);
  t.doesNotThrow(() => pool.assertNoLeaks(), 'assertNoLeaks is a no-op');
  const raw = b.buffer;
  raw.write('data');
  b.release();
  t.equal(raw.toString('latin1', 0, 4), 'data', 'released memory is not filled');
  t.doesNotThrow(() => b.buffer, 'no check on the hot path');
});

t.test('defaultBufferPool is one shared, non-debug pool', async (t) => {
  t.equal(defaultBufferPool(), defaultBufferPool());
  t.equal(defaultBufferPool().debug, false);
});

t.test('debug: the leak report names the acquire site', async (t) => {
  const pool = new ByteBufferPool({ debug: true });
  const leaked = pool.acquire(100);
  const leaks = pool.leaks();
  t.equal(leaks.length, 1);
  t.equal(leaks[0]!.capacity, 1024);
  t.equal(leaks[0]!.refCount, 1);
  t.match(leaks[0]!.acquiredAt, /buffers\.test\.ts/, 'the stack names the test file');
  const err = t.throws(() => pool.assertNoLeaks(), BufferLeakError) as BufferLeakError;
  t.equal(err.code, 'BUFFER_LEAK');
  t.equal(err.leaks.length, 1);
  t.match(err.message, /1 pooled buffer\(s\) never released[\s\S]*buffers\.test\.ts/);

  leaked.retain();
  leaked.release();
  t.equal(pool.leaks()[0]!.refCount, 1, 'still leaked while a reference remains');
  t.throws(() => pool.assertNoLeaks(), BufferLeakError);
  leaked.release();
  t.same(pool.leaks(), []);
  t.doesNotThrow(() => pool.assertNoLeaks(), 'passes once everything is released');

  // Many leaks: the message details the first five and counts the rest; the error carries them all.
  const many = Array.from({ length: 8 }, () => pool.acquire(10));
  const big = t.throws(() => pool.assertNoLeaks(), BufferLeakError) as BufferLeakError;
  t.equal(big.leaks.length, 8);
  t.match(big.message, /^8 pooled buffer\(s\) never released/);
  t.equal(big.message.match(/acquired at:/g)?.length, 5, 'five detailed in the message');
  t.match(big.message, /\.\.\. and 3 more \(see \.leaks\)$/);
  for (const b of many) b.release();
});

t.test('debug: poison, quarantine, use after release', async (t) => {
  const pool = new ByteBufferPool({ debug: true });
  const victim = pool.acquire(100);
  const raw = victim.buffer; // a stale reference a buggy caller keeps past release
  const memory = raw.buffer;
  raw.write('secret data of connection A');
  victim.release();
  t.ok(raw.every((byte) => byte === POISON_BYTE), 'a stale reference reads poison, not data');
  t.equal(POISON_BYTE, 0xde);
  const err = t.throws(() => victim.buffer, BufferReleasedError, '.buffer after release throws') as BufferReleasedError;
  t.equal(err.code, 'BUFFER_RELEASED');
  t.throws(() => victim.release(), BufferReleasedError);

  const marker = Buffer.from('secret data of connection A');
  let reusedQuarantined = 0;
  let carriesMarker = 0;
  const check = (next: RetainableBuffer): void => {
    if (next === victim || next.memory === victim.memory || next.buffer.buffer === memory) reusedQuarantined++;
    if (next.memory.includes(marker)) carriesMarker++;
  };
  // One at a time (a non-debug pool would hand back the victim's memory at once) ...
  for (let i = 0; i < 50; i++) {
    const next = pool.acquire(i % 2 === 0 ? 100 : 1024); // the same bucket as the victim
    check(next);
    next.buffer.fill(0x41); // connection B's marker
    next.release();
  }
  // ... and many held at once.
  const held = Array.from({ length: 50 }, () => pool.acquire(100));
  for (const next of held) check(next);
  for (const next of held) next.release();
  t.equal(reusedQuarantined, 0, 'quarantined memory is never handed out again (.memory identity)');
  t.equal(carriesMarker, 0, "no later buffer carries the old owner's bytes");
  t.ok(raw.every((byte) => byte === POISON_BYTE), "the stale reference never sees another owner's marker");
  t.same(pool.stats(), { acquired: 101, reused: 0, allocated: 101, dropped: 101, retainedBytes: 0, outstanding: 0 });
});

t.test('debug: oversize buffers are poisoned too', async (t) => {
  const pool = new ByteBufferPool({ debug: true, maxBucketBytes: 1024 });
  const big = pool.acquire(5000);
  const raw = big.buffer;
  raw.fill(1);
  big.release();
  t.ok(raw.every((byte) => byte === POISON_BYTE));
  t.throws(() => big.buffer, BufferReleasedError);
});
