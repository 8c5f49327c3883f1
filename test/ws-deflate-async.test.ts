/**
 * permessage-deflate's large messages on zlib's thread pool (PerMessageDeflate.ts, ZlibJobQueue.ts): inflation
 * still stops at maxMessageBytes (1009), messages keep their order per session both ways, the process-wide limit
 * holds, a session that closes meanwhile drops its job's result, and a bomb does not hold the event loop.
 */
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';
import WebSocket from 'ws';
import { ByteBufferPool } from '../lib/buffers/index.js';
import { Router, Server, WebSocketUpgradeHandler, broadcast, zlibJobQueue } from '../lib/index.js';
import type { WebSocketListener, WebSocketSession, WebSocketUpgradeHandlerOptions } from '../lib/index.js';
import { ZlibJobQueue } from '../lib/websocket/ZlibJobQueue.js';
import { MessageDeflate, resolveDeflateSettings } from '../lib/websocket/PerMessageDeflate.js';
import { HOST, RawClient, clientFrame, closeCodeOf, until, within } from './support/wsRaw.js';

const OFFER = 'Sec-WebSocket-Extensions: permessage-deflate\r\n';

/** A compressed message's payload as a peer sends it: raw DEFLATE, sync-flushed, without the 4-byte tail (§7.2.1). */
function compress(data: Buffer | string): Buffer {
  const out = deflateRawSync(typeof data === 'string' ? Buffer.from(data) : data, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

/** A compressed client frame (RSV1, RFC 7692 §6). */
function compressedFrame(opcode: number, data: Buffer | string): Buffer {
  return clientFrame(opcode, compress(data), { rsv: 0x40 });
}

type Event = string;

interface Seen {
  /** In delivery order: `text:<first 16 chars>:<length>`, `binary:<length>`, `error:<code>`, `close:<code>`. */
  events: Event[];
  texts: string[];
  errors: Error[];
  sessions: WebSocketSession[];
}

const describeText = (text: string): string => `text:${text.slice(0, 16)}:${text.length}`;

async function startServer(
  t: Test,
  options: Partial<WebSocketUpgradeHandlerOptions>,
  extra: Partial<WebSocketListener> = {},
): Promise<{ port: number; seen: Seen; server: Server; pool: ByteBufferPool }> {
  const seen: Seen = { events: [], texts: [], errors: [], sessions: [] };
  const listener: WebSocketListener = {
    onOpen: (s) => void seen.sessions.push(s),
    onText: (_s, text) => {
      seen.events.push(describeText(text));
      seen.texts.push(text);
    },
    onBinary: (_s, data) => void seen.events.push(`binary:${data.length}`),
    onClose: (_s, code) => void seen.events.push(`close:${code}`),
    onError: (_s, e) => {
      seen.errors.push(e);
      seen.events.push(`error:${(e as { code?: string }).code}`);
    },
    ...extra,
  };
  const pool = new ByteBufferPool({ debug: true });
  const router = new Router().route('/z', new WebSocketUpgradeHandler({ accept: () => listener, perMessageDeflate: true, ...options }));
  const server = new Server({ port: 0, host: HOST, bufferPool: pool, onError: () => {} }, router);
  const { port } = await server.start();
  t.teardown(async () => {
    await server.stop(300);
    pool.assertNoLeaks();
  });
  return { port, seen, server, pool };
}

/** The jobs started so far (the async path was taken when this grows). */
const started = (): number => zlibJobQueue.stats().started;

t.test('ZlibJobQueue: at most `concurrency` jobs, FIFO, skipped jobs free their slot at once', async (t) => {
  t.throws(() => new ZlibJobQueue(0), RangeError);
  const queue = new ZlibJobQueue(2);
  const order: number[] = [];
  const finish: (() => void)[] = [];
  for (let i = 0; i < 6; i++) {
    queue.submit((done) => {
      if (i === 3) return false; // no longer wanted when its turn comes
      order.push(i);
      finish.push(done);
      return true;
    });
  }
  t.same(order, [0, 1], 'two running');
  t.match(queue.stats(), { running: 2, waiting: 4, maxRunning: 2, started: 2, skipped: 0 });
  finish.shift()!();
  t.same(order, [0, 1, 2], 'the first waiting one starts when a slot frees');
  finish.shift()!();
  t.same(order, [0, 1, 2, 4], 'the skipped job did not take the slot');
  t.match(queue.stats(), { running: 2, waiting: 1, skipped: 1 });
  queue.concurrency = 3;
  t.same(order, [0, 1, 2, 4, 5], 'raising the limit starts a waiting job');
  while (finish.length > 0) finish.shift()!();
  t.match(queue.stats(), { running: 0, waiting: 0, maxRunning: 3, started: 5, skipped: 1 });
});

t.test('MessageDeflate: small messages inflate synchronously, larger ones are left to the pool', async (t) => {
  const settings = resolveDeflateSettings({ asyncThreshold: 64 * 1024 })!;
  const agreed = { response: '', inflateWindow: true, deflateWindowBits: 15 };
  const deflate = new MessageDeflate(settings, agreed);
  const small = Buffer.from('small enough '.repeat(1000));
  t.same(deflate.decompressIfSmall(compress(small), 1e9), small, '13 KB: inflated now');
  t.equal(deflate.decompressIfSmall(compress(Buffer.alloc(60 * 1024 * 1024)), 1e9), undefined, '60 MiB of zeros: stopped at 64 KiB, left for the pool');
  t.throws(() => deflate.decompressIfSmall(compress(Buffer.alloc(100_000)), 1000), { closeCode: 1009, code: 'WS_MESSAGE_TOO_BIG' }, 'a limit under the threshold still refuses at once');
  t.equal(deflate.decompressIfSmall(randomBytes(70 * 1024), 1e9), undefined, 'a compressed payload over the threshold goes to the pool unread');
  const big = Buffer.from('a larger message '.repeat(20_000));
  const message = await new Promise<Buffer | undefined>((resolve, reject) =>
    deflate.decompressLater(compress(big), 1e9, () => true, (error, out) => (error === undefined ? resolve(out) : reject(error))),
  );
  t.same(message, big, 'inflated on the pool');
  t.ok(message!.buffer.byteLength <= message!.length * 4, 'in a buffer at most 4x its size');
  // The window was updated by the async inflation: a message referring back to it (the peer's context
  // takeover, §7.2.2) inflates.
  const next = Buffer.from('a larger message, and then some more');
  const referring = deflateRawSync(next, { finishFlush: zlibConstants.Z_SYNC_FLUSH, dictionary: big.subarray(big.length - 32 * 1024) });
  t.same(deflate.decompressIfSmall(referring.subarray(0, referring.length - 4), 1e9), next, 'the window slid');
  const inflateLater = (data: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => deflate.decompressLater(compress(data), 1e9, () => true, (error, out) => (error === undefined ? resolve(out!) : reject(error))));
  const smallish = await inflateLater(Buffer.alloc(100_000, 3));
  t.ok(smallish.equals(Buffer.alloc(100_000, 3)) && smallish.buffer.byteLength <= 4 * 100_000, 'a small one is copied out of the first 1 MiB buffer');
  const large = await inflateLater(Buffer.alloc(5 * 1024 * 1024, 4));
  t.ok(large.equals(Buffer.alloc(5 * 1024 * 1024, 4)) && large.buffer.byteLength <= 4 * large.length, '5 MiB: in one buffer of the third size (16 MiB)');
  const error = await new Promise<unknown>((resolve) =>
    deflate.decompressLater(compress(Buffer.alloc(8 * 1024 * 1024)), 1024 * 1024, () => true, (e) => resolve(e)),
  );
  t.match(error, { closeCode: 1009, code: 'WS_MESSAGE_TOO_BIG' }, 'async inflation stops at the limit too');
  let called = false;
  deflate.decompressLater(compress(big), 1e9, () => false, () => void (called = true));
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(called, 'a job no longer wanted is skipped without a callback');
});

t.test('a bomb over maxMessageBytes gets 1009 through the async path', async (t) => {
  const { port, seen } = await startServer(t, { maxMessageBytes: 8 * 1024 * 1024 });
  const raw = await RawClient.connect(t, port, '/z', OFFER);
  const before = started();
  raw.write(compressedFrame(0x2, Buffer.alloc(60 * 1024 * 1024))); // ~60 KiB on the wire
  await within(raw.ended, 5000, 'the server closes');
  t.equal(closeCodeOf(raw.frames().at(-1)), 1009);
  t.ok(started() > before, 'inflated on the pool');
  await until(() => seen.events.includes('close:1009'), 3000, 'onClose');
  t.same(seen.events, ['error:WS_MESSAGE_TOO_BIG', 'close:1009'], 'nothing delivered');
});

t.test('the event loop is not held by a bomb: an immediate scheduled before it runs before the 1009', async (t) => {
  const { port, seen } = await startServer(t, { maxMessageBytes: 8 * 1024 * 1024 }, {
    onText: (_s, text) => {
      seen.events.push(describeText(text));
      // Scheduled while the bomb is in the same read, right behind this message: with a synchronous inflation
      // the bomb is refused (and onError called) before the loop gets to run this.
      setImmediate(() => void seen.events.push('immediate'));
    },
  });
  const raw = await RawClient.connect(t, port, '/z', OFFER);
  raw.write(Buffer.concat([clientFrame(0x1, 'mark'), compressedFrame(0x2, Buffer.alloc(60 * 1024 * 1024))]));
  await within(raw.ended, 5000, 'the server closes');
  t.equal(closeCodeOf(raw.frames().at(-1)), 1009);
  await until(() => seen.events.includes('close:1009'), 3000, 'onClose');
  t.same(seen.events, ['text:mark:4', 'immediate', 'error:WS_MESSAGE_TOO_BIG', 'close:1009']);
});

t.test('a large compressed message is delivered in order with the small ones around it in the same read', async (t) => {
  const { port, seen } = await startServer(t, {});
  const raw = await RawClient.connect(t, port, '/z', OFFER);
  const big = 'two mebibytes, deflating small '.repeat(70_000); // 2.1 MB
  const before = started();
  raw.write(
    Buffer.concat([
      compressedFrame(0x1, 'first, compressed '.repeat(4)),
      clientFrame(0x1, 'second, plain'),
      compressedFrame(0x1, big),
      compressedFrame(0x2, Buffer.alloc(100_000, 7)), // also to the pool, right behind
      clientFrame(0x1, 'after, plain'),
      compressedFrame(0x1, 'after, compressed '.repeat(4)),
      clientFrame(0x9, 'ping'),
    ]),
  );
  await until(() => raw.frames().some((f) => f.opcode === 0xa), 5000, 'the pong, after everything');
  t.same(seen.events, [
    describeText('first, compressed '.repeat(4)),
    'text:second, plain:13',
    describeText(big),
    'binary:100000',
    'text:after, plain:12',
    describeText('after, compressed '.repeat(4)),
  ]);
  t.equal(seen.texts[2], big, 'inflated correctly');
  t.ok(started() >= before + 2, 'the two large ones went to the pool');
  t.equal(seen.errors.length, 0);
});

t.test('sessions beyond the concurrency limit all complete, in order, never more than the limit at once', async (t) => {
  const saved = zlibJobQueue.concurrency;
  zlibJobQueue.concurrency = 2; // also resets maxRunning
  t.teardown(() => void (zlibJobQueue.concurrency = saved));
  const sessions = 6;
  const byPath = new Map<WebSocketSession, Event[]>();
  const { port } = await startServer(t, {}, {
    onText: (s, text) => {
      const list = byPath.get(s) ?? [];
      byPath.set(s, list);
      list.push(text.length > 100 ? `big:${text.length}:${text === bigOf(text.slice(0, 3)) ? 'ok' : 'wrong'}` : text);
    },
  });
  const bigOf = (tag: string): string => `${tag} `.repeat(100_000);
  const before = started();
  const raws = await Promise.all(Array.from({ length: sessions }, () => RawClient.connect(t, port, '/z', OFFER)));
  raws.forEach((raw, i) =>
    raw.write(
      Buffer.concat([
        clientFrame(0x1, `${i}-a`),
        compressedFrame(0x1, bigOf(`${i}-1`)),
        compressedFrame(0x1, `${i}-b`),
        compressedFrame(0x1, bigOf(`${i}-2`)),
        clientFrame(0x1, `${i}-c`),
      ]),
    ),
  );
  await until(() => [...byPath.values()].filter((l) => l.length === 5).length === sessions, 10_000, 'every message of every session');
  for (const list of byPath.values()) {
    const i = list[0]!.split('-')[0]!;
    t.same(list, [`${i}-a`, 'big:400000:ok', `${i}-b`, 'big:400000:ok', `${i}-c`], `session ${i} in order`);
  }
  const stats = zlibJobQueue.stats();
  t.ok(stats.started - before >= sessions * 2, `${stats.started - before} jobs`);
  t.ok(stats.maxRunning <= 2, `at most 2 at once (${stats.maxRunning})`);
  t.equal(stats.running, 0);
  t.equal(stats.waiting, 0);
});

t.test('large compressed sends keep their order with what is sent after them, and count as buffered', async (t) => {
  const big1 = 'a large text message, compressed on the pool '.repeat(50_000); // 2.3 MB
  const big2 = Buffer.alloc(300_000, 9);
  const random = randomBytes(200_000); // does not shrink: sent as it is, still in its place
  const settled: string[] = [];
  let bufferedAfterSends = 0;
  const { port, server } = await startServer(t, {}, {
    onOpen: (s) => {
      s.sendText(big1).then(() => void settled.push('big1'), () => void settled.push('big1 failed'));
      void s.sendText('small a');
      void s.sendBinary(big2);
      void s.sendText('small b');
      broadcast([s], 'broadcast c');
      void s.sendBinary(random);
      s.send('small d', (error) => void settled.push(error === null ? 'd' : 'd failed'));
      bufferedAfterSends = s.bufferedAmount;
    },
  });
  const ws = new WebSocket(`ws://${HOST}:${port}/z`, { perMessageDeflate: true });
  ws.on('error', () => {});
  t.teardown(() => ws.terminate());
  const got: (string | Buffer)[] = [];
  ws.on('message', (data, isBinary) => void got.push(isBinary ? (data as Buffer) : (data as Buffer).toString()));
  await until(() => got.length === 7, 10_000, 'every message');
  t.equal(got[0], big1);
  t.same(got.slice(1), ['small a', big2, 'small b', 'broadcast c', random, 'small d']);
  t.ok(bufferedAfterSends >= big1.length + big2.length, `bufferedAmount counted the messages being compressed (${bufferedAfterSends})`);
  await until(() => settled.length === 2, 3000, 'callbacks');
  t.same(settled.sort(), ['big1', 'd']);
  t.ok(server.stats().bytesOut < big1.length / 4 + random.length + 50_000, `compressed on the wire (${server.stats().bytesOut} bytes out)`);
});

t.test('a session closing while its jobs run or wait drops their results, without errors or leaks', async (t) => {
  const saved = zlibJobQueue.concurrency;
  zlibJobQueue.concurrency = 1;
  t.teardown(() => void (zlibJobQueue.concurrency = saved));
  let sendFailure: unknown;
  const { port, seen } = await startServer(t, {}, {
    onText: (s, text) => {
      seen.events.push(describeText(text));
      if (text !== 'send and terminate') return;
      s.sendText('x'.repeat(1_000_000)).catch((e: unknown) => void (sendFailure = e));
      s.terminate(); // the compression is running or waiting
    },
  });

  // Reads are held while a message inflates, so a peer that leaves is noticed only after; the session is ended on
  // our side instead (terminate(), as the application, a server stop or another limit would).
  // 1. A job waiting for the one slot, which a blocker holds, when the session ends: skipped when its turn comes.
  let release: (() => void) | undefined;
  zlibJobQueue.submit((done) => {
    release = done;
    return true;
  });
  const a = await RawClient.connect(t, port, '/z', OFFER);
  const skippedBefore = zlibJobQueue.stats().skipped;
  a.write(compressedFrame(0x2, Buffer.alloc(2 * 1024 * 1024)));
  await until(() => zlibJobQueue.stats().waiting === 1, 3000, 'the inflation waits');
  seen.sessions.at(-1)!.terminate();
  await until(() => seen.events.includes('close:1006'), 3000, 'the session closed');
  release!();
  t.equal(zlibJobQueue.stats().skipped, skippedBefore + 1, 'the waiting job was skipped');

  // 2. A job running when the session ends (60 MiB takes a while to inflate): its result is dropped.
  const b = await RawClient.connect(t, port, '/z', OFFER);
  b.write(compressedFrame(0x2, Buffer.alloc(60 * 1024 * 1024)));
  await until(() => zlibJobQueue.stats().running === 1, 3000, 'the inflation runs');
  seen.sessions.at(-1)!.terminate();
  await until(() => seen.events.filter((e) => e === 'close:1006').length === 2, 3000, 'the second session closed');
  await until(() => zlibJobQueue.stats().running === 0, 10_000, 'the inflation ended');

  // 3. A compression running when the session ends: the send fails with WS_SESSION_CLOSED, the result is dropped.
  const c = await RawClient.connect(t, port, '/z', OFFER);
  c.write(clientFrame(0x1, 'send and terminate'));
  await until(() => sendFailure !== undefined, 3000, 'the send failed');
  t.match(sendFailure, { code: 'WS_SESSION_CLOSED' });
  await until(() => zlibJobQueue.stats().running === 0 && zlibJobQueue.stats().waiting === 0, 10_000, 'the compression ended');
  await new Promise((r) => setImmediate(r));

  t.notOk(seen.events.some((e) => e.startsWith('binary:')), 'nothing delivered after the close');
  t.same(seen.errors, [], 'no error reported');
});
