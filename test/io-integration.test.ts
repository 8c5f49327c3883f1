import t from 'tap';
import type { Test } from 'tap';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { SelectorManager } from '../lib/io/SelectorManager.js';
import type { Connection, ConnectionFactory } from '../lib/io/Connection.js';
import type { EndPoint } from '../lib/io/EndPoint.js';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import { ByteBufferPool } from '../lib/buffers/index.js';
import { EchoConnectionFactory } from '../examples/echo/EchoConnection.js';
import { ConnectionCallbackError, EndPointClosedError, IdleTimeoutError, ShutdownTimeoutError } from '../lib/io/errors.js';

const HOST = '127.0.0.1';

/** Starts a manager with the given factory; stops it and checks the pool for leaks at teardown. */
async function start(
  t: Test,
  factory: (pool: ByteBufferPool) => ConnectionFactory,
  options: { idleTimeoutMs?: number; maxConnections?: number; scheduler?: IdleTimeoutScheduler; highWatermark?: number } = {},
): Promise<{ manager: SelectorManager; port: number; pool: ByteBufferPool; errors: Error[] }> {
  const pool = new ByteBufferPool({ debug: true });
  const errors: Error[] = [];
  const manager = new SelectorManager({ connectionFactory: factory(pool), bufferPool: pool, onError: (e) => errors.push(e), ...options });
  const { port } = await manager.listen({ host: HOST, port: 0 });
  t.teardown(async () => {
    await manager.stop(500);
    pool.assertNoLeaks(); // throws (and fails the test) with the acquire sites of any leaked buffer
  });
  return { manager, port, pool, errors };
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: HOST, port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads exactly n bytes from a socket (bounded by the test's timeout). */
function readExactly(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (b: Buffer): void => {
      chunks.push(b);
      got += b.length;
      if (got >= n) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(Buffer.concat(chunks).subarray(0, n));
      }
    };
    const onClose = (): void => reject(new Error(`closed after ${got} of ${n} bytes`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const echo = (pool: ByteBufferPool): ConnectionFactory => new EchoConnectionFactory(pool);

t.test('1,000 echo connections exchange data', async (t) => {
  const { manager, port, errors } = await start(t, echo);
  const N = 1000;
  const sockets = await Promise.all(Array.from({ length: N }, () => dial(port)));
  // A client's connect can complete before the server's accept callback ran: wait (bounded) for all.
  for (let i = 0; i < 200 && manager.stats().open < N; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(manager.stats().open, N);
  await Promise.all(
    sockets.map(async (s, i) => {
      for (let round = 0; round < 3; round++) {
        const msg = pattern(100 + ((i * 7 + round * 13) % 900), i + round);
        s.write(msg);
        const back = await readExactly(s, msg.length);
        if (!back.equals(msg)) throw new Error(`connection ${i} round ${round}: echo differs`);
      }
    }),
  );
  t.pass('every connection got its bytes back, intact');
  const closed = Promise.all(sockets.map((s) => once(s, 'close')));
  for (const s of sockets) s.end();
  await closed;
  const stats = manager.stats();
  t.equal(stats.accepted, N);
  t.equal(stats.open, 0, 'peer half-close closed every endpoint');
  t.equal(stats.closed, N);
  t.equal(stats.errors, 0);
  t.equal(errors.length, 0);
  t.ok(stats.bytesIn > 0 && stats.bytesIn === stats.bytesOut, 'bytes in = bytes out for an echo');
});

t.test('idle expiry closes idle endpoints and not active ones', async (t) => {
  const scheduler = new IdleTimeoutScheduler({ tickMs: 20 });
  t.teardown(() => scheduler.close());
  const { manager, port } = await start(t, echo, { idleTimeoutMs: 150, scheduler });
  const idle = await dial(port);
  const active = await dial(port);
  let idleClosed = false;
  idle.on('close', () => (idleClosed = true));
  let activeClosed = false;
  active.on('close', () => (activeClosed = true));
  active.on('data', () => {});
  // Keep one connection busy for well over the timeout: bounded to 40 rounds.
  for (let i = 0; i < 40 && !idleClosed; i++) {
    active.write('ping');
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!idleClosed) await once(idle, 'close');
  t.ok(idleClosed, 'the idle connection was closed by the server');
  t.notOk(activeClosed, 'the active connection is still open');
  t.equal(manager.stats().idleExpired, 1);
  active.destroy();
});

t.test('upgrade in place over a socket carries leftover bytes from the same segment', async (t) => {
  /** A line protocol: "UPGRADE\n" switches the endpoint to echo; bytes after the newline are echo input. */
  class LineConnection implements Connection {
    private leftover: Buffer | undefined;
    constructor(private readonly endPoint: EndPoint, private readonly pool: ByteBufferPool) {}
    onOpen(): void {}
    onFillable(bytes: Buffer): void {
      const nl = bytes.indexOf(10);
      if (nl < 0) return;
      this.leftover = Buffer.from(bytes.subarray(nl + 1)); // copy: bytes are only valid during the call
      this.endPoint.write(Buffer.from('OK\n'));
      this.endPoint.upgrade(new EchoConnectionFactory(this.pool).newConnection(this.endPoint));
    }
    onUpgradeFrom(): Buffer | undefined {
      return this.leftover;
    }
    onIdleExpired(): boolean {
      return true;
    }
    onClose(): void {}
  }
  const { port } = await start(t, (pool) => ({ newConnection: (ep) => new LineConnection(ep, pool) }));
  const s = await dial(port);
  s.write('UPGRADE\nfirst-bytes');
  const reply = await readExactly(s, 'OK\nfirst-bytes'.length);
  t.equal(reply.toString(), 'OK\nfirst-bytes', 'leftover echoed right after the switch');
  s.write('later');
  t.equal((await readExactly(s, 5)).toString(), 'later');
  s.destroy();
});

t.test('a paused endpoint stops draining the socket; resume loses or reorders nothing', async (t) => {
  let server: EndPoint | undefined;
  const received: Buffer[] = [];
  let receivedBytes = 0;
  class Sink implements Connection {
    constructor(private readonly endPoint: EndPoint) {
      server = endPoint;
    }
    onOpen(): void {
      this.endPoint.pauseReading();
    }
    onFillable(bytes: Buffer): void {
      received.push(Buffer.from(bytes));
      receivedBytes += bytes.length;
    }
    onIdleExpired(): boolean {
      return true;
    }
    onClose(): void {}
  }
  const { port } = await start(t, () => ({ newConnection: (ep) => new Sink(ep) }));
  const s = await dial(port);
  const total = 16 * 1024 * 1024;
  const data = pattern(total, 3);
  s.write(data);
  // Bounded wait until the client's own queue shows the back-up.
  for (let i = 0; i < 100 && s.writableLength === 0; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(receivedBytes, 0, 'nothing delivered while paused');
  t.ok(s.writableLength > 0, `the peer's writes back up (${s.writableLength} bytes still queued at the client)`);
  server!.resumeReading();
  for (let i = 0; i < 500 && receivedBytes < total; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(receivedBytes, total, 'every byte arrived after resume');
  t.ok(Buffer.concat(received).equals(data), 'in order, unaltered');
  s.destroy();
});

t.test('errors close one endpoint with the cause and never another', async (t) => {
  const causes: (Error | undefined)[] = [];
  class Fragile implements Connection {
    constructor(private readonly endPoint: EndPoint) {}
    onOpen(): void {}
    onFillable(bytes: Buffer): void {
      if (bytes.includes('throw')) throw new Error('handler bug');
      this.endPoint.write(Buffer.from(bytes));
    }
    onIdleExpired(): boolean {
      return true;
    }
    onClose(cause: Error | undefined): void {
      causes.push(cause);
    }
  }
  const { manager, port, errors } = await start(t, () => ({ newConnection: (ep) => new Fragile(ep) }));
  const good = await dial(port);
  const thrower = await dial(port);
  const resetter = await dial(port);
  thrower.on('error', () => {});
  thrower.write('throw');
  await once(thrower, 'close');
  resetter.resetAndDestroy();
  for (let i = 0; i < 100 && causes.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(causes.length, 2);
  t.ok(causes.some((c) => c instanceof ConnectionCallbackError), 'the exception became the cause');
  t.ok(causes.some((c) => (c as NodeJS.ErrnoException | undefined)?.code === 'ECONNRESET'), 'the reset became the cause');
  good.write('still here');
  t.equal((await readExactly(good, 10)).toString(), 'still here', 'the other connection is unaffected');
  t.equal(manager.stats().errors, 2);
  t.equal(errors.length, 2, 'both reported through onError');
  good.destroy();
});

t.test('maxConnections refuses the excess cleanly and counts it', async (t) => {
  const { manager, port } = await start(t, echo, { maxConnections: 3 });
  const ok = await Promise.all([dial(port), dial(port), dial(port)]);
  for (let i = 0; i < 100 && manager.stats().open < 3; i++) await new Promise((r) => setTimeout(r, 5));
  const extra = await dial(port);
  extra.on('error', () => {});
  await once(extra, 'close');
  t.equal(manager.stats().refused, 1);
  t.equal(manager.stats().open, 3);
  for (const s of ok) s.destroy();
});

t.test('stop(): graceful when the peers read, forced at the deadline when they do not', async (t) => {
  const writes: (Error | null)[] = [];
  let endPoints: EndPoint[] = [];
  class Talker implements Connection {
    constructor(private readonly endPoint: EndPoint) {
      endPoints.push(endPoint);
    }
    onOpen(): void {}
    onFillable(bytes: Buffer): void {
      // Answer with far more than the socket buffers hold, so the write is in flight when stop() comes.
      const n = Number(bytes.toString());
      this.endPoint.write(Buffer.alloc(n, 0x61), (e) => writes.push(e));
    }
    onIdleExpired(): boolean {
      return true;
    }
    onClose(): void {}
  }
  const pool = new ByteBufferPool({ debug: true });
  const manager = new SelectorManager({ connectionFactory: { newConnection: (ep) => new Talker(ep) }, bufferPool: pool });
  const { port } = await manager.listen({ host: HOST, port: 0 });
  const reader = await dial(port);
  let readBytes = 0;
  reader.on('data', (b: Buffer) => (readBytes += b.length));
  reader.on('end', () => reader.end());
  const sleeper = await dial(port);
  sleeper.pause(); // never reads
  sleeper.on('error', () => {});
  reader.write(String(4 * 1024 * 1024));
  sleeper.write(String(64 * 1024 * 1024));
  for (let i = 0; i < 100 && endPoints.filter((e) => e.pendingBytes > 0).length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(endPoints.length, 2);
  await manager.stop(300);
  t.equal(manager.state, 'STOPPED');
  t.equal(manager.stats().open, 0, 'every endpoint closed');
  t.equal(readBytes, 4 * 1024 * 1024, 'the reading peer got its whole response before the close');
  t.equal(writes.length, 2, 'every write callback ran');
  t.equal(writes.filter((e) => e === null).length, 1, 'the flushed write succeeded');
  const failed = writes.find((e) => e !== null);
  t.type(failed, EndPointClosedError, 'the stuck write failed, not dropped');
  t.type(failed?.cause, ShutdownTimeoutError);
  sleeper.destroy();
  reader.destroy();
  endPoints = [];
  pool.assertNoLeaks();
});

t.test('small gathered writes are coalesced into a pooled buffer, given back when written or failed', async (t) => {
  let server!: EndPoint;
  const { port, pool } = await start(t, () => ({
    newConnection: (ep) => {
      server = ep;
      return { onOpen() {}, onFillable() {}, onIdleExpired: () => true, onClose() {} };
    },
  }));
  const peer = await dial(port);
  peer.on('error', () => {});
  for (let i = 0; i < 100 && server === undefined; i++) await new Promise((r) => setTimeout(r, 5));
  // Three writes in one tick: one batch, coalesced into one pooled buffer (<= 16 KiB), in order on the wire.
  const before = pool.stats();
  const done: (Error | null)[] = [];
  server.write(Buffer.from('one,'));
  server.write([Buffer.from('two,'), Buffer.from('three')], (e) => done.push(e));
  t.same((await readExactly(peer, 13)).toString(), 'one,two,three');
  for (let i = 0; i < 100 && done.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.same(done, [null]);
  t.equal(pool.stats().acquired - before.acquired, 1, 'one pooled buffer for the batch');
  t.equal(pool.stats().outstanding, 0, 'given back once written');

  // The peer stops reading: batches of 2 x 8 KiB (coalesced) until one cannot reach the kernel (bounded: 64 MiB).
  peer.pause();
  const half = Buffer.alloc(8 * 1024, 0x62);
  let stuck: Promise<Error | null> | undefined;
  let failed = 0;
  for (let i = 0; i < 4096 && stuck === undefined; i++) {
    const written = new Promise<Error | null>((resolve) => server.write([half, half], resolve));
    const settled = await Promise.race([written, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 50))]);
    if (settled === 'pending') stuck = written;
    else if (settled !== null) failed++;
  }
  t.equal(failed, 0, 'the writes before it succeeded');
  t.ok(stuck !== undefined, 'a coalesced write got stuck behind the peer');
  t.equal(pool.stats().outstanding, 1, 'its pooled buffer is held while Node still needs the bytes');
  server.close(); // the socket dies with the write in flight
  t.type(await stuck, EndPointClosedError, 'the write failed');
  for (let i = 0; i < 100 && pool.stats().outstanding !== 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(pool.stats().outstanding, 0, 'and its buffer went back to the pool');
  peer.destroy();
});

t.test('connect(): the client side over the same layer', async (t) => {
  const { port } = await start(t, echo);
  const got: Buffer[] = [];
  const client = new SelectorManager({
    connectionFactory: {
      newConnection: () => ({
        onOpen() {},
        onFillable: (b: Buffer) => void got.push(Buffer.from(b)),
        onIdleExpired: () => true,
        onClose() {},
      }),
    },
  });
  t.teardown(() => client.stop(100));
  const ep = await client.connect({ host: HOST, port });
  ep.write(Buffer.from('round trip'));
  for (let i = 0; i < 100 && Buffer.concat(got).length < 10; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(Buffer.concat(got).toString(), 'round trip');
  t.equal(client.stats().connected, 1);
  await t.rejects(client.connect({ host: HOST, port: 1 }), { code: 'ECONNREFUSED' });
});

t.test('dump() shows the manager, endpoints and connections', async (t) => {
  const { manager, port } = await start(t, echo);
  const s = await dial(port);
  s.write('abc');
  await readExactly(s, 3);
  const dump = manager.dump();
  t.match(dump, /^SelectorManager 127\.0\.0\.1:\d+ STARTED accepted=1 .*open=1/);
  t.match(dump, /SocketEndPoint#\d+ 127\.0\.0\.1:\d+ OPEN reading idle=\d+ms\/30000ms in=3B out=3B/);
  t.match(dump, /EchoConnection open/);
  s.destroy();
});

t.test('an idle endpoint with a write stuck behind a peer that never reads is dropped', async (t) => {
  const scheduler = new IdleTimeoutScheduler({ tickMs: 20 });
  t.teardown(() => scheduler.close());
  let failure: Error | null = null;
  let closed!: (cause: Error | undefined) => void;
  const closeCause = new Promise<Error | undefined>((resolve) => (closed = resolve));
  const { port } = await start(
    t,
    () => ({
      newConnection: (ep) => ({
        onOpen() {
          ep.write(Buffer.alloc(32 * 1024 * 1024), (e) => (failure = e));
        },
        onFillable() {},
        onIdleExpired: () => false, // the connection would keep it; the stuck write must not
        onClose: (c: Error | undefined) => closed(c),
      }),
    }),
    { idleTimeoutMs: 150, scheduler },
  );
  const s = await dial(port);
  s.pause(); // never reads, so the server's write cannot complete
  s.on('error', () => {});
  const cause = await closeCause;
  t.equal((cause as { code?: string } | undefined)?.code, 'WRITE_TIMEOUT');
  t.notOk(cause instanceof IdleTimeoutError);
  t.type(failure, EndPointClosedError, 'the stuck write failed with the close');
  s.destroy();
});
