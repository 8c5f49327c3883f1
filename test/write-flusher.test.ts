import t from 'tap';
import { WriteFlusher } from '../lib/io/WriteFlusher.js';
import type { FlushTarget } from '../lib/io/WriteFlusher.js';
import { flushTurn } from '../lib/io/TurnFlush.js';

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

function setup(options?: { highWatermark?: number; lowWatermark?: number; endOfTurn?: boolean }): { target: FakeTarget; flusher: WriteFlusher } {
  const target = new FakeTarget();
  const flusher = new WriteFlusher(target, options);
  target.flusher = flusher;
  return { target, flusher };
}

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));
/** The end of this turn of the event loop: after the check phase's earlier callbacks, so after the end-of-turn flush. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

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

t.test('endOfTurn: the writes of several flushers leave together at the end of the turn, not of the tick', async (t) => {
  const a = setup({ endOfTurn: true });
  const b = setup({ endOfTurn: true });
  const order: string[] = [];
  a.flusher.write(Buffer.from('a1'), () => order.push('a1'));
  b.flusher.write(Buffer.from('b1'), () => order.push('b1'));
  a.flusher.write(Buffer.from('a2'), () => order.push('a2'));
  await tick();
  await Promise.resolve();
  t.equal(a.target.batches.length + b.target.batches.length, 0, 'nothing written at the end of the tick');
  t.equal(a.flusher.state, 'SCHEDULED');
  await turn();
  t.same(a.target.batches.map((batch) => batch.map(String)), [['a1', 'a2']], "one gathered write for a's two");
  t.same(b.target.batches.map((batch) => batch.map(String)), [['b1']]);
  a.flusher.completed(null);
  b.flusher.completed(null);
  t.same(order, ['a1', 'a2', 'b1'], 'callbacks once each, in order per flusher');
  t.equal(a.flusher.state, 'IDLE');
});

t.test('endOfTurn: a held write waits for the end of the turn after release(), not for release()', async (t) => {
  const { target, flusher } = setup({ endOfTurn: true });
  target.sync = true;
  flusher.hold();
  flusher.write(Buffer.from('x'));
  flusher.release();
  t.equal(target.batches.length, 0, 'release() queued the flush instead of flushing');
  flusher.hold();
  flusher.write(Buffer.from('y'));
  flusher.release();
  await turn();
  t.same(target.batches.map((batch) => batch.map(String)), [['x', 'y']], 'both reads of the turn in one write');
  t.equal(flusher.state, 'IDLE');
  // Without endOfTurn, release() flushes at once (the in-memory endpoint's contract).
  const now = setup();
  now.flusher.hold();
  now.flusher.write(Buffer.from('z'));
  now.flusher.release();
  t.equal(now.target.batches.length, 1);
});

t.test('endOfTurn: flushed early, failed or written again meanwhile, a flusher is flushed once or not at all', async (t) => {
  const early = setup({ endOfTurn: true });
  early.flusher.write(Buffer.from('e'));
  early.flusher.flush();
  t.equal(early.target.batches.length, 1, 'flush() does not wait for the turn');
  const failed = setup({ endOfTurn: true });
  const failures: (Error | null)[] = [];
  failed.flusher.write(Buffer.from('f'), (e) => failures.push(e));
  failed.flusher.fail(new Error('closed'));
  const twice = setup({ endOfTurn: true });
  twice.target.sync = true;
  twice.flusher.hold();
  twice.flusher.write(Buffer.from('1'));
  twice.flusher.release();
  twice.flusher.flush(); // flushed and IDLE again, still in the turn's queue
  twice.flusher.write(Buffer.from('2')); // queued a second time
  await turn();
  t.equal(early.target.batches.length, 1, 'not transmitted again at the end of the turn');
  t.equal(failed.target.batches.length, 0, 'a failed flusher transmits nothing');
  t.same(failures.map((e) => e?.message), ['closed']);
  t.same(twice.target.batches.map((batch) => batch.map(String)), [['1'], ['2']], 'each write once, in order');
});

t.test('endOfTurn: a write from a completion callback in the end-of-turn flush leaves in a later turn', async (t) => {
  const { target, flusher } = setup({ endOfTurn: true });
  target.sync = true;
  let chained = 0;
  const next = (): void => {
    if (++chained < 3) flusher.write(Buffer.from(String(chained)), next);
  };
  flusher.write(Buffer.from('0'), next);
  for (let i = 0; i < 10 && chained < 3; i++) await turn();
  t.equal(chained, 3);
  t.same(target.batches.map((batch) => batch.map(String)), [['0'], ['1'], ['2']]);
});

t.test('endOfTurn: a flusher that throws does not keep the others of the turn from flushing', async (t) => {
  const bad = setup({ endOfTurn: true });
  const good = setup({ endOfTurn: true });
  bad.target.sync = true;
  bad.target.onCallbackError = (e: unknown): void => {
    throw e;
  };
  // A write of callbacks only completes without the transport, so nothing catches what onCallbackError throws.
  bad.flusher.write([], () => {
    throw new Error('callback bug');
  });
  good.flusher.write(Buffer.from('good'));
  // Run the turn's flush here rather than from setImmediate, to see what it throws.
  t.throws(() => flushTurn(), /callback bug/);
  t.equal(good.target.batches.length, 1, 'the next flusher of the turn still wrote');
  await turn();
  t.equal(good.target.batches.length, 1, 'and nothing twice');
});
