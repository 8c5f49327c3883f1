import t from 'tap';
import { connect } from 'node:net';
import { ManualClock } from '../lib/io/Clock.js';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import { DEFAULT_HIGH_WATERMARK } from '../lib/io/WriteFlusher.js';
import { HttpConnection } from '../lib/http/HttpConnection.js';
import type { HttpConnectionOptions, HttpErrorReporter } from '../lib/http/HttpConnection.js';
import type { Handler } from '../lib/http/Handler.js';
import { Server } from '../lib/http/Server.js';

// Hardening of the HTTP connection's flow: pipelining bounded by the write side, request deadlines (checked by the
// idle-timeout sweep, driven here by a manual clock), bounded discard of unread bodies, bounded lingering close.

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const TICK_MS = 100;

function setup(handler: Handler, options: HttpConnectionOptions = {}, idleTimeoutMs = 60_000) {
  const clock = new ManualClock(1_000);
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs: TICK_MS });
  const ep = new MemoryEndPoint({ scheduler, idleTimeoutMs });
  const errors: { error: Error; kind: string }[] = [];
  const reporter: HttpErrorReporter = { reportError: (error, ctx) => void errors.push({ error, kind: ctx.kind }) };
  const connection = new HttpConnection(ep, () => handler, reporter, options);
  ep.open(connection);
  t.teardown(() => scheduler.close());
  return { ep, connection, errors, clock };
}

function statuses(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

const echoPath: Handler = { handle: (req, res) => void res.end(req.path) };

/** Reads the whole body, then answers 200 with its length. */
const readsBody: Handler = {
  async handle(req, res) {
    const body = await req.bytes();
    await res.end(`got ${body.length}`);
  },
};

/** Answers at once without reading the body. */
const answersEarly: Handler = { handle: (_req, res) => void res.send(403, 'no\n') };

// ------------------------------------------------------------------------------------------- item 3: pipelining

t.test('a pipelining client that does not read: reading pauses, pending output stays bounded, all answered in order', async (t) => {
  const { ep } = setup(echoPath);
  const N = 20_000;
  const BATCH = 100;
  // One response is ~90 bytes; the parse loop stops at the first response that reaches the high watermark.
  const BOUND = DEFAULT_HIGH_WATERMARK + 1024;
  let sent = 0;
  const feedWhileReading = (): void => {
    // A TCP peer can only send while we read (flow control): the simulated client respects the paused transport.
    for (let i = 0; i < 1000 && sent < N && !ep.isTransportPaused; i++) {
      let batch = '';
      for (let k = 0; k < BATCH && sent < N; k++) batch += `GET /${sent++} HTTP/1.1\r\nHost: x\r\n\r\n`;
      ep.feed(batch);
    }
  };
  ep.stallWrites(); // the client does not read
  let maxPending = 0;
  for (let round = 0; round < 50 && !ep.isTransportPaused; round++) {
    feedWhileReading();
    await tick();
    maxPending = Math.max(maxPending, ep.pendingBytes);
  }
  t.equal(ep.isReadingPaused, true, 'reading paused while the client does not read');
  t.ok(sent < N, `the client could not send everything (${sent} of ${N} sent)`);
  t.ok(maxPending <= BOUND, `pending output bounded (max ${maxPending} <= ${BOUND})`);

  // The client reads again, a batch at a time (each resumed write stalls the next one).
  let out = '';
  for (let round = 0; round < 20_000 && statuses(out).length < N; round++) {
    ep.resumeWrites();
    ep.stallWrites();
    out += ep.takeOutputString();
    feedWhileReading();
    await tick();
    maxPending = Math.max(maxPending, ep.pendingBytes);
  }
  ep.resumeWrites();
  await tick();
  out += ep.takeOutputString();
  const bodies = [...out.matchAll(/\r\n\r\n\/(\d+)/g)].map((m) => Number(m[1]));
  t.equal(bodies.length, N, 'every request answered');
  let inOrder = true;
  for (let i = 0; i < bodies.length; i++) if (bodies[i] !== i) inOrder = false;
  t.ok(inOrder, 'in request order');
  t.ok(maxPending <= BOUND, `pending output stayed bounded throughout (max ${maxPending})`);
  t.equal(ep.state, 'OPEN');
});

t.test('pipelined requests then FIN while the client does not read: all answered, then closed', async (t) => {
  const { ep } = setup(echoPath);
  const N = 3000;
  let input = '';
  for (let i = 0; i < N; i++) input += `GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
  ep.stallWrites();
  ep.feed(input);
  ep.feedEnd();
  await tick();
  t.ok(ep.pendingBytes <= DEFAULT_HIGH_WATERMARK + 1024, 'pending output bounded');
  let out = '';
  for (let round = 0; round < 2000 && ep.state !== 'CLOSED'; round++) {
    ep.resumeWrites();
    ep.stallWrites();
    out += ep.takeOutputString();
    await tick();
  }
  ep.resumeWrites();
  out += ep.takeOutputString();
  const bodies = [...out.matchAll(/\r\n\r\n\/(\d+)/g)].map((m) => Number(m[1]));
  t.equal(bodies.length, N, 'every request answered');
  t.same(bodies.slice(-2), [N - 2, N - 1], 'the last ones last');
  t.equal(ep.state, 'CLOSED', 'closed once all are answered');
});

t.test('over a socket: 20,000 pipelined GETs not read; the server pauses, stays bounded, answers all in order', async (t) => {
  const N = 20_000;
  const payload = 'x'.repeat(1000);
  const server = new Server({ port: 0, host: '127.0.0.1' }, (req, res) => void res.end(`${req.path} ${payload}`));
  const { port } = await server.start();
  t.teardown(() => server.stop(100));
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  t.teardown(() => void socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.pause(); // the client does not read
  let input = '';
  for (let i = 0; i < N; i++) input += `GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
  socket.write(input, 'latin1');
  const [serverEp] = [...server.selectorManager.endPoints];
  t.ok(serverEp !== undefined, 'the server connection');
  let maxPending = 0;
  for (let i = 0; i < 300 && !serverEp!.isReadingPaused; i++) {
    await new Promise((r) => setTimeout(r, 10));
    maxPending = Math.max(maxPending, serverEp!.pendingBytes);
  }
  t.equal(serverEp!.isReadingPaused, true, 'the server stopped reading');
  const bound = DEFAULT_HIGH_WATERMARK + 2 * 1100;
  t.ok(maxPending <= bound, `server pending output bounded (max ${maxPending} <= ${bound})`);

  // Now read everything: every response, in order.
  let received = 0;
  let inOrder = true;
  let text = '';
  const done = new Promise<void>((resolve) => {
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1');
      const re = /\r\n\r\n\/(\d+) /g;
      let m: RegExpExecArray | null;
      let last = 0;
      while ((m = re.exec(text)) !== null) {
        if (Number(m[1]) !== received) inOrder = false;
        received++;
        last = re.lastIndex;
      }
      text = text.slice(last);
      if (received === N) resolve();
    });
  });
  socket.resume();
  await Promise.race([done, new Promise((r) => setTimeout(r, 20_000))]);
  t.equal(received, N, 'every request answered');
  t.ok(inOrder, 'in request order');
  t.equal(serverEp!.isReadingPaused, false, 'reading again once the client reads');
});

// ------------------------------------------------------------------------------------------- item 5: deadlines

t.test('requestTimeoutMs: a trickled body gets 408 and a close', async (t) => {
  const { ep, clock, errors } = setup(readsBody, { requestTimeoutMs: 2_000 }, 1_000);
  ep.feed('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
  await tick();
  let out = '';
  // One byte every 200 ms: the idle timeout (1 s) never expires, the request deadline does.
  for (let i = 0; i < 40 && !ep.isOutputShutdown; i++) {
    ep.feed('a');
    clock.advance(200);
    await tick();
    out += ep.takeOutputString();
  }
  t.same(statuses(out), [408]);
  t.match(out, /connection: close/i);
  t.equal(ep.isOutputShutdown, true, 'closed (output shut down after the 408)');
  t.equal((errors[0]?.error as { code?: string }).code, 'HTTP_REQUEST_TIMEOUT');
});

t.test('requestTimeoutMs: a head trickled a byte at a time within the header timeout still ends at the request deadline', async (t) => {
  const { ep, clock } = setup(readsBody, { requestTimeoutMs: 1_000, headerTimeoutMs: 0 }, 1_000);
  const head = 'POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n';
  let out = '';
  for (let i = 0; i < head.length && !ep.isOutputShutdown; i++) {
    ep.feed(head[i]!);
    clock.advance(100);
    await tick();
    out += ep.takeOutputString();
  }
  t.same(statuses(out), [408]);
  t.equal(ep.isOutputShutdown, true);
});

t.test('requestTimeoutMs: a response already started is closed, not answered twice', async (t) => {
  const handler: Handler = {
    async handle(req, res) {
      await res.write('started\n');
      await req.bytes();
      await res.end('done\n');
    },
  };
  const { ep, clock } = setup(handler, { requestTimeoutMs: 1_000 }, 1_000);
  ep.feed('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
  await tick();
  for (let i = 0; i < 30 && ep.state !== 'CLOSED'; i++) {
    ep.feed('a');
    clock.advance(200);
    await tick();
  }
  const out = ep.takeOutputString();
  t.same(statuses(out), [200], 'only the started response');
  t.equal(ep.state, 'CLOSED', 'closed');
});

t.test('requestTimeoutMs does not cut a request that completes in time', async (t) => {
  const { ep, clock } = setup(readsBody, { requestTimeoutMs: 2_000 }, 1_000);
  ep.feed('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n');
  for (const c of 'hello') {
    clock.advance(300);
    ep.feed(c);
  }
  await tick();
  await tick();
  clock.advance(5_000); // long after: the deadline is gone with the request
  await tick();
  const out = ep.takeOutputString();
  t.same(statuses(out), [200]);
  t.match(out, /got 5$/);
});

t.test('minRequestDataRate: a body slower than the rate gets 408 after the grace period', async (t) => {
  const { ep, clock, errors } = setup(readsBody, { minRequestDataRate: 100, minRequestDataRateGraceMs: 1_000 }, 5_000);
  ep.feed('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
  await tick();
  let out = '';
  // 10 bytes every 200 ms = 50 bytes/s: under 100 bytes/s.
  for (let i = 0; i < 50 && !ep.isOutputShutdown; i++) {
    ep.feed('0123456789');
    clock.advance(200);
    await tick();
    out += ep.takeOutputString();
  }
  t.same(statuses(out), [408]);
  t.equal(ep.isOutputShutdown, true);
  t.equal((errors[0]?.error as { code?: string }).code, 'HTTP_REQUEST_TOO_SLOW');
});

t.test('minRequestDataRate: a body at the rate is served; off by default', async (t) => {
  // 40 bytes every 200 ms = 200 bytes/s: over 100 bytes/s.
  for (const options of [{ minRequestDataRate: 100 }, {}] as HttpConnectionOptions[]) {
    const { ep, clock } = setup(readsBody, options, 5_000);
    ep.feed('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n');
    await tick();
    const chunk = options.minRequestDataRate === undefined ? '0123' : '0123456789012345678901234567890123456789';
    let fed = 0;
    for (let i = 0; i < 600 && fed < 2000; i++) {
      ep.feed(chunk);
      fed += chunk.length;
      clock.advance(200);
      await tick();
    }
    await tick();
    const out = ep.takeOutputString();
    t.same(statuses(out), [200], options.minRequestDataRate === undefined ? '20 bytes/s served with the default (off)' : '200 bytes/s served');
  }
});

t.test('minRequestDataRate: a handler that does not read (body backed up) is not the client being slow', async (t) => {
  let release: (() => void) | undefined;
  const handler: Handler = {
    async handle(req, res) {
      await new Promise<void>((r) => (release = r));
      const body = await req.bytes();
      await res.end(`got ${body.length}`);
    },
  };
  const { ep, clock } = setup(handler, { minRequestDataRate: 1000, minRequestDataRateGraceMs: 500 }, 60_000);
  ep.feed('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(70_000));
  await tick();
  t.equal(ep.isReadingPaused, true, 'body backed up: reading paused');
  for (let i = 0; i < 30; i++) {
    clock.advance(200);
    await tick();
  }
  t.same(statuses(ep.takeOutputString()), [], 'no 408 while the handler is the slow side');
  release!();
  await tick();
  ep.feed('y'.repeat(30_000));
  for (let i = 0; i < 10; i++) await tick();
  t.same(statuses(ep.takeOutputString()), [200]);
});

t.test('headerTimeoutMs runs from the first byte: one byte then silence gets 408', async (t) => {
  const { ep, clock, errors } = setup(echoPath, { headerTimeoutMs: 1_000 }, 30_000);
  ep.feed('G');
  await tick();
  clock.advance(900);
  await tick();
  t.same(statuses(ep.takeOutputString()), [], 'not yet');
  clock.advance(300);
  await tick();
  t.same(statuses(ep.takeOutputString()), [408], 'no further byte needed');
  t.equal(ep.isOutputShutdown, true);
  t.equal((errors[0]?.error as { code?: string }).code, 'HTTP_HEADER_TIMEOUT');
});

t.test('headerTimeoutMs times each head, not the connection', async (t) => {
  const { ep, clock } = setup(echoPath, { headerTimeoutMs: 1_000 }, 30_000);
  for (let i = 0; i < 5; i++) {
    ep.feed(`GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    clock.advance(800);
    await tick();
  }
  clock.advance(5_000); // an idle keep-alive connection has no header deadline
  await tick();
  t.same(statuses(ep.takeOutputString()), [200, 200, 200, 200, 200]);
  t.equal(ep.isOutputShutdown, false);
});

// ------------------------------------------------------------------------------------------- discard after an answer

t.test('an early answer: a small unread body is discarded and the connection kept alive', async (t) => {
  const { ep } = setup(answersEarly, { maxDiscardBytes: 1024 });
  ep.feed('POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
  await tick();
  const first = ep.takeOutputString();
  t.same(statuses(first), [403]);
  t.notMatch(first, /connection: close/i, 'kept alive');
  ep.feed('z'.repeat(1000) + 'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  await tick();
  t.same(statuses(ep.takeOutputString()), [403], 'the next request is served on the same connection');
  t.equal(ep.isOutputShutdown, false);
});

t.test('an early answer: an unread body over maxDiscardBytes (or chunked) gets Connection: close', async (t) => {
  for (const head of ['Content-Length: 1000000', 'Transfer-Encoding: chunked']) {
    const { ep } = setup(answersEarly, { maxDiscardBytes: 1024 });
    ep.feed(`POST /a HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\n`);
    await tick();
    const out = ep.takeOutputString();
    t.same(statuses(out), [403], head);
    t.match(out, /connection: close/i, `${head}: Connection: close`);
    t.equal(ep.isOutputShutdown, true, `${head}: output shut down after the response`);
  }
});

t.test('an early answer: a body committed as keep-alive but too long to discard is closed after the response', async (t) => {
  const handler: Handler = {
    async handle(_req, res) {
      await res.write('partial ');
      await res.end('answer\n');
    },
  };
  const { ep } = setup(handler, { maxDiscardBytes: 1024 });
  ep.feed('POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n');
  for (let i = 0; i < 5; i++) await tick();
  const out = ep.takeOutputString();
  t.same(statuses(out), [200]);
  t.equal(ep.isOutputShutdown, true, 'not kept alive for a megabyte of discarding');
});

t.test('an early answer: a small body trickled after the answer is discarded for discardTimeoutMs at most', async (t) => {
  const { ep, clock } = setup(answersEarly, { maxDiscardBytes: 1024, discardTimeoutMs: 1_000 }, 1_000);
  ep.feed('POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
  await tick();
  t.same(statuses(ep.takeOutputString()), [403]);
  for (let i = 0; i < 40 && ep.state !== 'CLOSED'; i++) {
    ep.feed('z');
    clock.advance(200);
    await tick();
  }
  t.equal(ep.state, 'CLOSED', 'closed instead of held');
});

t.test('lingering close after a last response is bounded by discardTimeoutMs', async (t) => {
  const { ep, clock } = setup(answersEarly, { discardTimeoutMs: 1_000 }, 1_000);
  ep.feed('POST /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n');
  await tick();
  t.same(statuses(ep.takeOutputString()), [403]);
  t.equal(ep.isOutputShutdown, true);
  for (let i = 0; i < 40 && ep.state !== 'CLOSED'; i++) {
    ep.feed('z');
    clock.advance(200);
    await tick();
  }
  t.equal(ep.state, 'CLOSED', 'the trickling client is closed');
});

// ------------------------------------------------------------------------------------------- item 9 through a connection

t.test('strictness: authority-form GET and a chunk size with trailing whitespace get 400', async (t) => {
  for (const input of [
    'GET host:443 HTTP/1.1\r\nHost: host\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n',
  ]) {
    const { ep } = setup(readsBody);
    ep.feed(input);
    await tick();
    t.same(statuses(ep.takeOutputString()), [400], JSON.stringify(input.slice(0, 20)));
    t.equal(ep.isOutputShutdown, true);
  }
});

t.test('lingering close: a last response still being written is not cut while it moves; a stuck one is closed despite a trickle', async (t) => {
  /** A peer that takes one write batch per `resumeWrites()`. */
  class OneBatchAtATime extends MemoryEndPoint {
    override transmit(buffers: Buffer[], byteCount: number): void {
      this.stallWrites();
      super.transmit(buffers, byteCount);
    }
  }
  const twoBatches: Handler = {
    async handle(_req, res) {
      res.setHeader('Connection', 'close');
      res.write('a'.repeat(1000)).catch(() => {}); // flushed at the end of this tick: in flight
      await new Promise((r) => setImmediate(r));
      res.end('b'.repeat(1000)).catch(() => {}); // queued behind it: the last response is still being written
    },
  };
  const clock = new ManualClock(1_000);
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs: TICK_MS });
  t.teardown(() => scheduler.close());
  const reporter: HttpErrorReporter = { reportError: () => {} };
  const ep = new OneBatchAtATime({ scheduler, idleTimeoutMs: 1_000 });
  ep.open(new HttpConnection(ep, () => twoBatches, reporter, { discardTimeoutMs: 500 }));
  ep.feed('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  for (let i = 0; i < 3; i++) await tick();
  let closedAt = -1;
  for (let i = 0; i < 40 && closedAt < 0; i++) {
    ep.feed('z'); // the client trickles, which keeps the idle timeout from expiring
    clock.advance(100);
    if (i === 8 || i === 16) {
      t.equal(ep.state, 'OPEN', `still open at step ${i}: the response moves`);
      ep.resumeWrites(); // the client reads one batch
    }
    await tick();
    if (ep.state === 'CLOSED') closedAt = i;
  }
  t.equal(ep.isOutputShutdown, true, 'the whole response went out, then FIN');
  t.ok(closedAt > 16, `closed after lingering once the response was out (step ${closedAt})`);
  t.ok(ep.takeOutput().length > 2000);

  // Stuck: the client never reads, but trickles bytes.
  const big: Handler = { handle: (_req, res) => void res.setHeader('Connection', 'close').end('b'.repeat(200_000)).catch(() => {}) };
  const stuck = setup(big, { discardTimeoutMs: 500 }, 2_000);
  stuck.ep.stallWrites();
  stuck.ep.feed('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await tick();
  for (let i = 0; i < 40 && stuck.ep.state !== 'CLOSED'; i++) {
    stuck.ep.feed('z');
    stuck.clock.advance(200);
    await tick();
  }
  t.equal(stuck.ep.state, 'CLOSED', 'closed once the write did not move for the idle timeout');
});

// ------------------------------------------------------------------------------------------- lib/io: deadlines in the sweep

t.test('IdleTimeoutScheduler: a target deadline fires at the first sweep at or after it, independent of activity', async (t) => {
  const clock = new ManualClock(0);
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs: 100 });
  t.teardown(() => scheduler.close());
  const calls: number[] = [];
  const target = {
    idleTimeoutMs: 10_000,
    lastActivityMs: 0,
    idleSlot: -1,
    deadlineMs: 250,
    onIdleExpired: (): void => {},
    onDeadline(now: number): void {
      calls.push(now);
      this.deadlineMs = Infinity;
    },
  };
  scheduler.register(target);
  for (let i = 0; i < 5; i++) {
    clock.advance(100);
    target.lastActivityMs = clock.now(); // activity does not move a deadline
  }
  t.same(calls, [300], 'once, at the first sweep at or after 250');
  // A deadline callback that closes (unregisters) its target skips that target's idle check.
  const other = { ...target, idleTimeoutMs: 1, lastActivityMs: 0, idleSlot: -1, deadlineMs: 0, expired: 0 };
  other.onIdleExpired = (): void => void other.expired++;
  other.onDeadline = (): void => scheduler.unregister(other);
  scheduler.register(other);
  clock.advance(100);
  t.equal(other.expired, 0);
  t.equal(other.idleSlot, -1);
});

t.test('EndPoint: the deadlineMs of the connection reaches it through the sweep, and an upgrade leaves it behind', async (t) => {
  const clock = new ManualClock(0);
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs: 100 });
  t.teardown(() => scheduler.close());
  const ep = new MemoryEndPoint({ scheduler, idleTimeoutMs: 0 });
  const seen: number[] = [];
  const http = {
    deadlineMs: 150,
    onOpen() {},
    onFillable() {},
    onIdleExpired: () => true,
    onClose() {},
    onDeadline(now: number): void {
      seen.push(now);
      this.deadlineMs = Infinity; // the connection clears (or moves) its own deadline
    },
  };
  ep.open(http);
  t.equal(ep.deadlineMs, 150, 'the endpoint reads the deadline of its connection');
  clock.advance(500);
  t.same(seen, [200], 'called once, at the first sweep at or after it');
  t.equal(ep.deadlineMs, Infinity);
  http.deadlineMs = 700;
  ep.upgrade({ onOpen() {}, onFillable() {}, onIdleExpired: () => true, onClose() {} });
  t.equal(ep.deadlineMs, undefined, 'the next protocol has no deadline (and no field for one)');
  clock.advance(1000);
  t.same(seen, [200], 'the deadline of the old connection is not called after the upgrade');
});

t.test('the new options are checked at construction', async (t) => {
  for (const name of ['requestTimeoutMs', 'minRequestDataRate', 'minRequestDataRateGraceMs', 'maxDiscardBytes', 'discardTimeoutMs']) {
    t.throws(() => new Server({ port: 0, [name]: -1 }), RangeError, `${name}: -1`);
    t.throws(() => new Server({ port: 0, [name]: Number.NaN }), RangeError, `${name}: NaN`);
  }
});
