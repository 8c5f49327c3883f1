import t from 'tap';
import { ByteBufferPool, BufferLeakError, BufferReleasedError, defaultBufferPool, POISON_BYTE } from '../lib/buffers/index.js';

function mulberry32(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('acquire rounds up to power-of-two buckets; larger than max is exact and not pooled', async (t) => {
  const pool = new ByteBufferPool({ minBucketBytes: 1024, maxBucketBytes: 65536 });
  const cases: [number, number][] = [
    [0, 1024], [1, 1024], [1024, 1024], [1025, 2048], [4096, 4096], [4097, 8192], [65536, 65536], [65537, 65537],
  ];
  for (const [size, capacity] of cases) {
    const b = pool.acquire(size);
    t.equal(b.capacity, capacity, `${size} -> ${capacity}`);
    t.equal(b.length, size);
    t.equal(b.buffer.length, size);
    b.release();
  }
  const s = pool.stats();
  t.equal(s.dropped, 1, 'the oversize buffer was dropped, not pooled');
  t.equal(s.outstanding, 0);
  t.throws(() => pool.acquire(-1), RangeError);
  t.throws(() => new ByteBufferPool({ minBucketBytes: 1000 }), RangeError);
});

t.test('released memory is reused without allocation', async (t) => {
  const pool = new ByteBufferPool();
  const a = pool.acquire(3000);
  const memory = a.memory;
  a.release();
  const b = pool.acquire(2100);
  t.equal(b.memory, memory, 'same backing memory');
  t.equal(b.length, 2100);
  t.same(pool.stats(), { acquired: 2, reused: 1, allocated: 1, dropped: 0, retainedBytes: 0, outstanding: 1 });
  b.release();
  t.equal(pool.stats().retainedBytes, 4096);
  pool.clear();
  t.equal(pool.stats().retainedBytes, 0);
});

t.test('reference counting', async (t) => {
  const pool = new ByteBufferPool();
  const b = pool.acquire(10);
  b.retain().retain();
  t.equal(b.refCount, 3);
  t.equal(b.release(), false);
  t.equal(b.release(), false);
  t.equal(b.release(), true, 'the last release frees it');
  t.equal(b.isReleased, true);
  t.throws(() => b.release(), BufferReleasedError, 'releasing twice throws');
  t.throws(() => b.retain(), BufferReleasedError);
  const c = pool.acquire(100);
  c.setLength(10);
  t.equal(c.buffer.length, 10);
  t.throws(() => c.setLength(c.capacity + 1), RangeError);
  c.release();
});

t.test('the retained-bytes bound drops what does not fit', async (t) => {
  const pool = new ByteBufferPool({ maxRetainedBytes: 4096 });
  const bufs = [pool.acquire(2048), pool.acquire(2048), pool.acquire(2048)];
  for (const b of bufs) b.release();
  const s = pool.stats();
  t.equal(s.retainedBytes, 4096);
  t.equal(s.dropped, 1);
});

t.test('stats stay consistent over a seeded random sequence', async (t) => {
  const rnd = mulberry32(42);
  const pool = new ByteBufferPool({ maxRetainedBytes: 64 * 1024 });
  const live: { b: ReturnType<ByteBufferPool['acquire']>; refs: number }[] = [];
  let acquired = 0;
  for (let i = 0; i < 5000; i++) {
    const r = rnd();
    if (r < 0.4 || live.length === 0) {
      live.push({ b: pool.acquire(Math.floor(rnd() * 70_000)), refs: 1 });
      acquired++;
    } else if (r < 0.55) {
      const e = live[Math.floor(rnd() * live.length)]!;
      e.b.retain();
      e.refs++;
    } else {
      const k = Math.floor(rnd() * live.length);
      const e = live[k]!;
      e.refs--;
      t.equal(e.b.release(), e.refs === 0);
      if (e.refs === 0) live.splice(k, 1);
    }
    const s = pool.stats();
    if (s.outstanding !== live.length || s.acquired !== acquired || s.reused + s.allocated !== s.acquired || s.retainedBytes > 64 * 1024) {
      t.fail(`inconsistent stats at step ${i}: ${JSON.stringify(s)}`);
      return;
    }
  }
  t.pass('consistent');
  for (const e of live) while (e.refs-- > 0) e.b.release();
  t.equal(pool.stats().outstanding, 0);
});

t.test('defaultBufferPool is one shared, non-debug pool', async (t) => {
  t.equal(defaultBufferPool(), defaultBufferPool());
  t.equal(defaultBufferPool().debug, false);
});

t.test('debug: leak report with the acquire site, poison, quarantine, use-after-release', async (t) => {
  const pool = new ByteBufferPool({ debug: true });
  const leaked = pool.acquire(100);
  const leaks = pool.leaks();
  t.equal(leaks.length, 1);
  t.match(leaks[0]!.acquiredAt, /buffers\.test\.ts/, 'the stack names where it was acquired');
  t.throws(() => pool.assertNoLeaks(), BufferLeakError);
  const raw = leaked.buffer;
  raw.write('secret data');
  leaked.release();
  t.doesNotThrow(() => pool.assertNoLeaks());
  t.ok(raw.every((b) => b === POISON_BYTE), 'a stale reference reads poison, not data');
  t.throws(() => leaked.buffer, BufferReleasedError, 'use after release is detected');
  for (let i = 0; i < 50; i++) {
    const next = pool.acquire(100);
    t.not(next.memory, leaked.memory, 'quarantined memory is never handed out again');
    next.buffer.fill(0x41);
    next.release();
  }
  t.ok(raw.every((b) => b === POISON_BYTE), 'the stale reference still sees poison, never another owner\'s bytes');
});
