/**
 * Control frames are bounded, over real sockets on 127.0.0.1: a peer that floods pings and does not read our
 * pongs holds back (reads held, one pong waiting, the rest of the flood left in the kernel's buffers), then gets
 * 1008 'WS_SLOW_CONSUMER' after `closeTimeoutMs` without progress; a peer that starts reading gets every pong, in
 * order, and the session goes on. The same for quay's WebSocketClient against a hostile server. Counters, states
 * and codes are asserted, not times or RSS (see bench or the issue for the RSS figures).
 */
import t from 'tap';
import type { Test } from 'tap';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Server } from '../lib/http/Server.js';
import { Router } from '../lib/http/Router.js';
import { WebSocketUpgradeHandler } from '../lib/websocket/WebSocketUpgradeHandler.js';
import { WebSocketClient } from '../lib/websocket/WebSocketClient.js';
import { acceptKey } from '../lib/websocket/acceptKey.js';
import { WebSocketSessionError } from '../lib/websocket/errors.js';
import type { WebSocketListener } from '../lib/websocket/WebSocketListener.js';
import type { WebSocketSession } from '../lib/websocket/WebSocketSession.js';
import { HOST, RawClient, clientFrame, until, walkFrames, within } from './support/wsRaw.js';
import type { ServerFrame } from './support/wsRaw.js';

/** The endpoint's default high watermark (WriteFlusher). */
const HIGH_WATERMARK = 64 * 1024;
/** Pings in a flood, each with a 125-byte payload (the most a control frame carries, RFC 6455 §5.5). */
const COUNT = 100_000;

const payloadOf = (i: number): Buffer => Buffer.from(String(i).padEnd(125, '.'));
const indexOf = (payload: Buffer): number => Number.parseInt(payload.toString('latin1'), 10);

/** COUNT pings in `writes` large buffers (masked for a client peer, RFC 6455 §5.3). */
function pingFlood(mask: boolean, writes = 4): Buffer[] {
  const chunks: Buffer[] = [];
  const per = COUNT / writes;
  for (let w = 0; w < writes; w++) {
    const frames: Buffer[] = [];
    for (let i = w * per; i < (w + 1) * per; i++) frames.push(clientFrame(0x9, payloadOf(i), { mask }));
    chunks.push(Buffer.concat(frames));
  }
  return chunks;
}

/** What one side's listener saw: errors, closes, and the largest `bufferedAmount` seen while answering pings. */
class Observer implements WebSocketListener {
  session: WebSocketSession | undefined;
  readonly errors: Error[] = [];
  readonly closes: [number, string][] = [];
  readonly texts: string[] = [];
  pings = 0;
  maxBuffered = 0;
  readingPausedAtError: boolean | undefined;
  constructor(private readonly echo = false) {}
  onOpen(s: WebSocketSession): void {
    this.session = s;
  }
  onText(s: WebSocketSession, text: string): void {
    this.texts.push(text);
    if (this.echo) void s.sendText(`echo:${text}`);
  }
  onPing(s: WebSocketSession): void {
    this.pings++;
    // Sampled after the pong was written or made to wait: what this session holds for the peer.
    if (s.bufferedAmount > this.maxBuffered) this.maxBuffered = s.bufferedAmount;
  }
  onError(s: WebSocketSession, error: Error): void {
    this.errors.push(error);
    this.readingPausedAtError = s.webSocketConnection.endPoint.isReadingPaused;
  }
  onClose(_s: WebSocketSession, code: number, reason: string): void {
    this.closes.push([code, reason]);
  }
}

/** Counts the frames of one direction as they arrive (an independent little parser; unmasked frames). */
class FrameCounter {
  pongs = 0;
  lastPong = -1;
  outOfOrder = 0;
  readonly texts: string[] = [];
  private pending: Buffer = Buffer.alloc(0);
  push(bytes: Buffer): void {
    const buf = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes]);
    // Bounded: every frame consumes bytes of the buffer, and an incomplete one stops the walk.
    const used = walkFrames(buf, (frame) => this.onFrame(frame), Number.MAX_SAFE_INTEGER);
    this.pending = Buffer.from(buf.subarray(used));
  }
  private onFrame({ opcode, payload }: ServerFrame): void {
    if (opcode === 0xa) {
      const index = indexOf(payload);
      if (index !== this.lastPong + 1) this.outOfOrder++;
      this.lastPong = index;
      this.pongs++;
    } else if (opcode === 0x1) {
      this.texts.push(payload.toString('utf8'));
    }
  }
}

async function startServer(t: Test, observer: Observer, closeTimeoutMs: number): Promise<number> {
  const handler = new WebSocketUpgradeHandler({ closeTimeoutMs, accept: () => observer });
  const server = new Server({ port: 0, host: HOST, idleTimeoutMs: 30_000, onError: () => {} }, new Router().route('/flood', handler));
  const { port } = await server.start();
  t.teardown(() => server.stop(200));
  return port;
}

function checkSlowConsumer(t: Test, observer: Observer, maxControlFrame: number): void {
  t.equal(observer.errors.length, 1, 'reported once');
  const error = observer.errors[0] as WebSocketSessionError;
  t.type(error, WebSocketSessionError);
  t.equal(error.code, 'WS_SLOW_CONSUMER');
  t.equal(error.closeCode, 1008);
  t.same(observer.closes, [[1008, 'slow consumer']]);
  t.equal(observer.readingPausedAtError, true, 'reads were held: the rest of the flood stayed in the kernel');
  t.ok(
    observer.maxBuffered <= HIGH_WATERMARK + 2 * maxControlFrame,
    `bufferedAmount stayed within the high watermark and one waiting pong (max ${observer.maxBuffered} B)`,
  );
  t.ok(observer.pings < COUNT, `TCP backpressure reached the peer: ${observer.pings} of ${COUNT} pings read`);
}

t.test('server: a peer that floods pings and never reads is held back, then closed with 1008', async (t) => {
  const observer = new Observer();
  const port = await startServer(t, observer, 300);
  const peer = await RawClient.connect(t, port, '/flood');
  peer.socket.pause(); // reads nothing from here on
  for (const chunk of pingFlood(true)) peer.write(chunk);
  await until(() => observer.closes.length === 1, 15_000, 'the server session to end');
  checkSlowConsumer(t, observer, 127);
  await within(peer.ended, 5000, 'TCP closed');
});

t.test('server: when the flooding peer starts reading it gets every pong, in order, and the session goes on', async (t) => {
  const observer = new Observer(true);
  const port = await startServer(t, observer, 60_000);
  const peer = await RawClient.connect(t, port, '/flood');
  const counter = new FrameCounter();
  peer.socket.on('data', (b: Buffer) => counter.push(b));
  peer.socket.pause();
  for (const chunk of pingFlood(true)) peer.write(chunk);
  await until(() => observer.session !== undefined, 5000, 'the session');
  const connection = observer.session!.webSocketConnection;
  // Stalled: the kernel's buffers are full of pongs, one pong waits, reads are held, and no more pings are read
  // (the same count at two polls 5 ms apart, so not a passing hold during the flood).
  let lastPings = -1;
  await until(
    () => {
      const stalled = connection.waitingControlFrames === 1 && connection.endPoint.isReadingPaused && observer.pings === lastPings;
      lastPings = observer.pings;
      return stalled;
    },
    10_000,
    'the server to hold back',
  );
  t.equal(connection.waitingControlFrames, 1, 'one pong waiting');
  t.equal(connection.endPoint.isReadingPaused, true, 'reads held');
  t.equal(connection.endPoint.isWritable, false, 'the endpoint over its high watermark');
  t.ok(observer.pings < COUNT, `${observer.pings} of ${COUNT} pings read so far`);
  t.ok(observer.maxBuffered <= HIGH_WATERMARK + 2 * 127, `bufferedAmount max ${observer.maxBuffered} B`);

  peer.socket.resume(); // the peer reads again
  await until(() => counter.pongs === COUNT, 20_000, 'every pong');
  t.equal(counter.outOfOrder, 0, 'in order');
  t.equal(counter.lastPong, COUNT - 1, 'the last pong carries the most recent ping\'s payload');
  peer.write(clientFrame(0x1, 'still here'));
  await until(() => counter.texts.length === 1, 5000, 'the echo');
  t.same(counter.texts, ['echo:still here']);
  t.same(observer.errors, []);
  t.same(observer.closes, []);
  t.equal(observer.maxBuffered <= HIGH_WATERMARK + 2 * 127, true, 'bounded all along');
});

t.test('client: a server that floods pings and never reads is held back, then closed with 1008', async (t) => {
  const sockets: Socket[] = [];
  const hostile = createNetServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.pause(); // reads nothing from here on
      const key = /^sec-websocket-key: *(.*)$/im.exec(head.slice(0, end))?.[1]?.trim() ?? '';
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
      for (const flood of pingFlood(false)) socket.write(flood);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => hostile.listen(0, HOST, resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        hostile.close(() => resolve());
      }),
  );
  const client = new WebSocketClient();
  t.teardown(() => client.stop());
  const observer = new Observer();
  const { port } = hostile.address() as AddressInfo;
  await client.connect(`ws://${HOST}:${port}/flood`, { closeTimeoutMs: 300, listener: observer });
  await until(() => observer.closes.length === 1, 15_000, 'the client session to end');
  checkSlowConsumer(t, observer, 131);
  await until(() => client.stats().open === 0, 5000, 'the client socket closed');
});
