import t from 'tap';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import type { Connection } from '../lib/io/Connection.js';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import { ManualClock } from '../lib/io/Clock.js';
import {
  ConnectionCallbackError,
  EndPointClosedError,
  IdleTimeoutError,
  PeerClosedError,
  WriteTimeoutError,
} from '../lib/io/errors.js';

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

/** A connection that records what happens to it. */
class Recorder implements Connection {
  events: string[] = [];
  received: Buffer[] = [];
  closeCause: Error | undefined | null = null;
  closes = 0;
  idleAnswer = true;
  leftover: Buffer | undefined;
  onFillableHook: ((bytes: Buffer) => void) | undefined;
  constructor(readonly name = 'rec') {}
  onOpen(): void {
    this.events.push('open');
  }
  onFillable(bytes: Buffer): void {
    this.received.push(Buffer.from(bytes));
    this.events.push(`fill:${bytes.toString('latin1')}`);
    this.onFillableHook?.(bytes);
  }
  onIdleExpired(): boolean {
    this.events.push('idle');
    return this.idleAnswer;
  }
  onClose(cause: Error | undefined): void {
    this.closes++;
    this.closeCause = cause;
    this.events.push('close');
  }
  onUpgradeFrom(): Buffer | undefined {
    this.events.push('upgradeFrom');
    return this.leftover;
  }
  get text(): string {
    return Buffer.concat(this.received).toString('latin1');
  }
}

t.test('fill delivers bytes, write reaches the output', async (t) => {
  const ep = new MemoryEndPoint();
  const c = new Recorder();
  ep.open(c);
  ep.feed('hello');
  t.same(c.events, ['open', 'fill:hello']);
  t.equal(ep.bytesIn, 5);
  let done: Error | null | undefined;
  ep.write(Buffer.from('world'), (e) => (done = e));
  await tick();
  t.equal(done, null);
  t.equal(ep.takeOutputString(), 'world');
  t.equal(ep.bytesOut, 5);
});

t.test('pauseReading holds input in order until resumeReading, honoured immediately', async (t) => {
  const ep = new MemoryEndPoint();
  const c = new Recorder();
  ep.open(c);
  c.onFillableHook = (b) => {
    if (b.toString() === 'a') ep.pauseReading();
  };
  ep.feed('a');
  t.equal(ep.isReadingPaused, true);
  t.equal(ep.isTransportPaused, true, 'transport told to stop reading');
  ep.feed('b');
  ep.feed('c');
  t.equal(c.text, 'a', 'nothing delivered while paused');
  ep.resumeReading();
  t.equal(c.text, 'a', 'held bytes are delivered on the next tick, never re-entrantly');
  await tick();
  t.equal(c.text, 'abc', 'no byte lost or reordered');
  t.equal(ep.isTransportPaused, false);
  ep.feed('d');
  t.equal(c.text, 'abcd');
});

t.test('peer half-close without onInputShutdown closes after flushing, with PeerClosedError', async (t) => {
  const ep = new MemoryEndPoint();
  const c = new Recorder();
  ep.open(c);
  ep.write(Buffer.from('bye'));
  ep.feedEnd();
  t.equal(ep.state, 'INPUT_SHUTDOWN');
  await tick();
  t.equal(ep.takeOutputString(), 'bye', 'pending write flushed before the close');
  t.equal(ep.state, 'CLOSED');
  t.type(c.closeCause, PeerClosedError);
  t.equal(c.closes, 1);
});

t.test('peer FIN while paused is processed after the held input', async (t) => {
  const ep = new MemoryEndPoint();
  const c = new Recorder();
  ep.open(c);
  ep.pauseReading();
  ep.feed('x');
  ep.feedEnd();
  t.equal(ep.state, 'OPEN');
  ep.resumeReading();
  await tick();
  t.equal(c.text, 'x');
  t.not(ep.state, 'OPEN');
});

t.test('reset closes with the ECONNRESET cause and fails pending writes with EndPointClosedError', async (t) => {
  const ep = new MemoryEndPoint();
  const c = new Recorder();
  ep.open(c);
  ep.stallWrites();
  const errors: (Error | null)[] = [];
  ep.write(Buffer.from('one'), (e) => errors.push(e));
  await tick();
  ep.write(Buffer.from('two'), (e) => errors.push(e));
  ep.reset();
  t.equal(errors.length, 2);
  for (const e of errors) {
    t.type(e, EndPointClosedError);
    t.equal((e as EndPointClosedError).code, 'ENDPOINT_CLOSED');
    t.equal(((e as Error).cause as NodeJS.ErrnoException).code, 'ECONNRESET');
  }
  t.equal((c.closeCause as NodeJS.ErrnoException).code, 'ECONNRESET');
  ep.close();
  t.equal(c.closes, 1, 'onClose exactly once');
  let late: Error | null = null;
  ep.write(Buffer.from('late'), (e) => (late = e));
  await tick();
  t.type(late, EndPointClosedError, 'writes after close fail');
});

t.test('an exception in onFillable closes only this endpoint with ConnectionCallbackError', async (t) => {
  const ep = new MemoryEndPoint();
  const c = new Recorder();
  ep.open(c);
  c.onFillableHook = () => {
    throw new TypeError('handler bug');
  };
  ep.feed('x');
  t.equal(ep.state, 'CLOSED');
  t.type(c.closeCause, ConnectionCallbackError);
  t.equal((c.closeCause as ConnectionCallbackError).callback, 'onFillable');
  t.type((c.closeCause as Error).cause, TypeError);
});

t.test('shutdownOutput flushes, sends FIN, keeps reading; peer FIN then closes in order', async (t) => {
  const ep = new MemoryEndPoint();
  const c = new Recorder();
  ep.open(c);
  ep.write(Buffer.from('response'));
  ep.shutdownOutput();
  let refused: Error | null = null;
  ep.write(Buffer.from('more'), (e) => (refused = e));
  await tick();
  t.type(refused, EndPointClosedError, 'writes after shutdownOutput fail');
  t.equal(ep.takeOutputString(), 'response');
  t.equal(ep.isOutputShutdown, true);
  t.equal(ep.state, 'OUTPUT_SHUTDOWN');
  ep.feed('late request bytes');
  t.equal(c.text, 'late request bytes', 'lingering close still reads');
  ep.feedEnd();
  t.equal(ep.state, 'CLOSED');
  t.equal(c.closeCause, undefined, 'orderly close has no cause');
});

t.test('idle expiry: connection decides; stuck write is failed whatever it says', async (t) => {
  const clock = new ManualClock();
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs: 100 });
  t.teardown(() => scheduler.close());

  const quiet = new MemoryEndPoint({ scheduler, idleTimeoutMs: 1000 });
  const q = new Recorder('quiet');
  quiet.open(q);
  const busy = new MemoryEndPoint({ scheduler, idleTimeoutMs: 1000 });
  const b = new Recorder('busy');
  busy.open(b);
  const keeper = new MemoryEndPoint({ scheduler, idleTimeoutMs: 1000 });
  const k = new Recorder('keeper');
  k.idleAnswer = false;
  keeper.open(k);
  const never = new MemoryEndPoint({ scheduler, idleTimeoutMs: 0 });
  never.open(new Recorder('never'));

  for (let i = 0; i < 15; i++) {
    clock.advance(100);
    busy.feed('.');
  }
  t.equal(quiet.state, 'CLOSED', 'idle endpoint closed');
  t.type(q.closeCause, IdleTimeoutError);
  t.equal(busy.state, 'OPEN', 'active endpoint kept');
  t.equal(keeper.state, 'OPEN', 'connection that answered false kept');
  t.ok(k.events.includes('idle'));
  t.equal(never.state, 'OPEN', '0 = never');

  // A peer that never reads: the stuck write fails even though the connection would keep the endpoint.
  keeper.stallWrites();
  let writeError: Error | null = null;
  keeper.write(Buffer.from('stuck'), (e) => (writeError = e));
  await tick();
  clock.advance(1200);
  t.equal(keeper.state, 'CLOSED');
  t.type(k.closeCause, WriteTimeoutError);
  t.type(writeError, EndPointClosedError);
  t.type((writeError as unknown as Error).cause, WriteTimeoutError);
});

t.test('a stuck write is timed from its last progress, even while the peer keeps sending', async (t) => {
  const clock = new ManualClock();
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs: 100 });
  t.teardown(() => scheduler.close());
  const ep = new MemoryEndPoint({ scheduler, idleTimeoutMs: 1000 });
  const c = new Recorder('trickler');
  c.idleAnswer = false; // the connection would keep it: only the stuck write may end it
  ep.open(c);
  ep.stallWrites();
  let writeError: Error | null = null;
  ep.write(Buffer.from('never taken'), (e) => (writeError = e));
  await tick();
  // The peer sends a byte every 100 ms (each would reset the idle time) but never reads.
  for (let i = 0; i < 15 && ep.state === 'OPEN'; i++) {
    clock.advance(100);
    ep.feed('.');
  }
  t.equal(ep.state, 'CLOSED', 'closed although bytes kept arriving');
  t.type(c.closeCause, WriteTimeoutError);
  t.type(writeError, EndPointClosedError);
  t.ok(c.text.length >= 9, 'the trickled bytes were delivered meanwhile');
});

t.test('idle timeout is changeable at any time', async (t) => {
  const clock = new ManualClock();
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs: 100 });
  t.teardown(() => scheduler.close());
  const ep = new MemoryEndPoint({ scheduler, idleTimeoutMs: 0 });
  const c = new Recorder();
  ep.open(c);
  clock.advance(5000);
  t.equal(ep.state, 'OPEN');
  ep.idleTimeoutMs = 300;
  clock.advance(500);
  t.equal(ep.state, 'CLOSED');
  t.throws(() => (ep.idleTimeoutMs = -1), RangeError);
});

t.test('upgrade swaps the connection in place, hands leftover bytes first, keeps the idle timeout', async (t) => {
  const ep = new MemoryEndPoint({ idleTimeoutMs: 1234 });
  const http = new Recorder('http');
  ep.open(http);
  http.onFillableHook = (bytes) => {
    // The "HTTP" connection consumes "HEAD|" and keeps the rest for the next protocol, then upgrades.
    const s = bytes.toString('latin1');
    const cut = s.indexOf('|');
    if (cut >= 0) {
      http.leftover = Buffer.from(s.slice(cut + 1), 'latin1');
      ep.upgrade(ws);
    }
  };
  const ws = new Recorder('ws');
  ep.feed('HEAD|frame1');
  t.same(http.events, ['open', 'fill:HEAD|frame1', 'upgradeFrom']);
  t.same(ws.events, ['open'], 'new connection opened synchronously');
  t.equal(ep.connection, ws);
  ep.feed('frame2');
  t.same(ws.received.length, 0, 'later reads wait behind the leftover');
  await tick();
  t.equal(ws.text, 'frame1frame2', 'leftover first, then later reads, nothing lost');
  t.equal(ep.idleTimeoutMs, 1234, 'idle timeout inherited');
  t.equal(http.closes, 0, 'the replaced connection gets no onClose');
  ep.close();
  t.equal(ws.closes, 1);
  t.equal(http.closes, 0);
});

t.test('upgrade: the new connection may pause in onOpen and override the idle timeout', async (t) => {
  const ep = new MemoryEndPoint({ idleTimeoutMs: 1000 });
  const http = new Recorder('http');
  http.leftover = Buffer.from('early');
  ep.open(http);
  const ws = new Recorder('ws');
  ws.onOpen = () => {
    ep.idleTimeoutMs = 5000;
    ep.pauseReading();
  };
  ep.pauseReading(); // the HTTP connection held reads while the handler decided
  ep.upgrade(ws);
  await tick();
  t.equal(ws.text, '', 'held while the new connection is paused');
  t.equal(ep.idleTimeoutMs, 5000);
  ep.resumeReading();
  await tick();
  t.equal(ws.text, 'early');
});

t.test('upgrade of a closed endpoint throws', async (t) => {
  const ep = new MemoryEndPoint();
  ep.open(new Recorder());
  ep.close();
  t.throws(() => ep.upgrade(new Recorder()), EndPointClosedError);
});

t.test('describe() shows the state', async (t) => {
  const ep = new MemoryEndPoint({ idleTimeoutMs: 1000 });
  ep.open(new Recorder());
  ep.feed('abc');
  t.match(ep.describe(), /MemoryEndPoint#\d+ 127\.0\.0\.1:0 OPEN reading idle=\d+ms\/1000ms in=3B out=0B flusher=IDLE/);
});
