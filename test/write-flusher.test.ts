import t from 'tap';
import { WriteFlusher } from '../lib/io/WriteFlusher.js';
import type { FlushTarget } from '../lib/io/WriteFlusher.js';

/** A transport that records each gathered write and completes when told (or at once when `sync`). */
class FakeTarget implements FlushTarget {
  batches: Buffer[][] = [];
  flusher!: WriteFlusher;
  sync = false;
  progress = 0;
  writableCalls = 0;
  callbackErrors: unknown[] = [];
  transmit(buffers: Buffer[]): void {
    this.batches.push(buffers.slice());
    if (this.sync) this.flusher.completed(null);
  }
  onWriteProgress(n: number): void {
    this.progress += n;
  }
  onWritable(): void {
    this.writableCalls++;
  }
  onCallbackError(e: unknown): void {
    this.callbackErrors.push(e);
  }
}

function setup(options?: { highWatermark?: number; lowWatermark?: number }): { target: FakeTarget; flusher: WriteFlusher } {
  const target = new FakeTarget();
  const flusher = new WriteFlusher(target, options);
  target.flusher = flusher;
  return { target, flusher };
}

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

t.test('writes of one tick are gathered into one transmit', async (t) => {
  const { target, flusher } = setup();
  flusher.write(Buffer.from('a'));
  flusher.write([Buffer.from('b'), Buffer.from('c')]);
  flusher.write(Buffer.from('d'));
  t.equal(target.batches.length, 0, 'nothing written before the end of the tick');
  t.equal(flusher.state, 'SCHEDULED');
  await tick();
  t.equal(target.batches.length, 1);
  t.same(target.batches[0]!.map((b) => b.toString()), ['a', 'b', 'c', 'd']);
  t.equal(flusher.pendingBytes, 4);
  flusher.completed(null);
  t.equal(flusher.pendingBytes, 0);
  t.equal(target.progress, 4);
  t.equal(flusher.state, 'IDLE');
});

t.test('one write in flight; writes during it are gathered into the next', async (t) => {
  const { target, flusher } = setup();
  const order: string[] = [];
  flusher.write(Buffer.from('1'), (e) => order.push(`1:${e}`));
  await tick();
  flusher.write(Buffer.from('2'), (e) => order.push(`2:${e}`));
  flusher.write(Buffer.from('3'), (e) => order.push(`3:${e}`));
  await tick();
  t.equal(target.batches.length, 1, 'second batch waits for the first to complete');
  t.same(order, [], 'no callback before completion');
  flusher.completed(null);
  t.same(order, ['1:null'], 'callback only after its bytes completed');
  t.equal(target.batches.length, 2);
  t.same(target.batches[1]!.map(String), ['2', '3']);
  flusher.completed(null);
  t.same(order, ['1:null', '2:null', '3:null'], 'callbacks in order');
});

t.test('synchronous completion with chained writes does not recurse', async (t) => {
  const { target, flusher } = setup();
  target.sync = true;
  const total = 100_000;
  let written = 0;
  await new Promise<void>((resolve) => {
    const next = (error: Error | null): void => {
      if (error !== null) throw error;
      written++;
      if (written === total) resolve();
      else flusher.write(Buffer.from('x'), next);
    };
    flusher.write(Buffer.from('x'), next);
  });
  t.equal(written, total, 'a deep chain completed without a stack overflow');
  t.equal(target.progress, total);
  t.equal(flusher.state, 'IDLE');
});

t.test('watermarks: write returns false at high, onWritable at low', async (t) => {
  const { target, flusher } = setup({ highWatermark: 10, lowWatermark: 4 });
  t.equal(flusher.write(Buffer.alloc(6)), true);
  t.equal(flusher.write(Buffer.alloc(6)), false, 'over the high watermark');
  t.equal(flusher.isWritable, false);
  await tick();
  t.equal(flusher.write(Buffer.alloc(3)), false, 'still not writable while above low');
  flusher.completed(null); // 12 done, 3 pending now (<= low)
  t.equal(target.writableCalls, 1, 'onWritable once pending fell to the low watermark');
  t.equal(flusher.isWritable, true);
  flusher.completed(null);
  t.equal(target.writableCalls, 1, 'not called again without crossing high');
});

t.test('fail() fails in-flight and queued callbacks once, in order, and later writes too', async (t) => {
  const { flusher } = setup();
  const seen: string[] = [];
  flusher.write(Buffer.from('a'), (e) => seen.push(`a:${e?.message}`));
  await tick();
  flusher.write(Buffer.from('b'), (e) => seen.push(`b:${e?.message}`));
  const boom = new Error('boom');
  flusher.fail(boom);
  flusher.fail(new Error('second'));
  t.same(seen, ['a:boom', 'b:boom'], 'first failure wins, in order');
  flusher.completed(null);
  t.same(seen.length, 2, 'a late completion completes nothing twice');
  t.equal(flusher.pendingBytes, 0);
  let late: Error | null = null;
  t.equal(flusher.write(Buffer.from('c'), (e) => (late = e)), false);
  await tick();
  t.equal(late, boom, 'write after failure fails with the cause');
  t.equal(flusher.state, 'FAILED');
});

t.test('a transport error fails the batch', async (t) => {
  const { flusher } = setup();
  let got: Error | null = null;
  flusher.write(Buffer.from('a'), (e) => (got = e));
  await tick();
  const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
  flusher.completed(epipe);
  t.equal(got, epipe);
  t.equal(flusher.state, 'FAILED');
});

t.test('a callback that throws is reported, others still run', async (t) => {
  const { target, flusher } = setup();
  target.sync = true;
  const ran: number[] = [];
  flusher.write(Buffer.from('a'), () => {
    ran.push(1);
    throw new Error('user bug');
  });
  flusher.write(Buffer.from('b'), () => ran.push(2));
  await tick();
  t.same(ran, [1, 2]);
  t.equal(target.callbackErrors.length, 1);
});

t.test('a write with only a callback completes after what came before', async (t) => {
  const { target, flusher } = setup();
  const order: string[] = [];
  flusher.write(Buffer.from('a'), () => order.push('a'));
  flusher.write([], () => order.push('after-a'));
  await tick();
  t.same(order, []);
  flusher.completed(null);
  t.same(order, ['a', 'after-a']);
  flusher.write([], () => order.push('alone'));
  await tick();
  t.same(order, ['a', 'after-a', 'alone'], 'an empty write completes without transmitting');
  t.equal(target.batches.length, 1);
});

t.test('invalid watermarks are refused', async (t) => {
  t.throws(() => setup({ highWatermark: 4, lowWatermark: 8 }), RangeError);
  t.throws(() => setup({ highWatermark: 0 }), RangeError);
});
