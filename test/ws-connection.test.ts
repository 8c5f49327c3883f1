/**
 * WebSocketConnection and WebSocketSession on a MemoryEndPoint (no sockets): frame rules as close codes on the
 * wire (RFC 6455 §5, §7.4.1), ping/pong, the close handshake (§7), sends and their bound, async handlers, idle
 * timeout and keepalive on a ManualClock, broadcast.
 */
import t from 'tap';
import type { Test } from 'tap';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import type { MemoryEndPointOptions } from '../lib/io/MemoryEndPoint.js';
import { ManualClock } from '../lib/io/Clock.js';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import { ConnectionCallbackError, WriteTimeoutError } from '../lib/io/errors.js';
import { HttpConnection } from '../lib/http/HttpConnection.js';
import { Router } from '../lib/http/Router.js';
import { WebSocketConnection, resolveSettings } from '../lib/websocket/WebSocketConnection.js';
import { WebSocketUpgradeHandler } from '../lib/websocket/WebSocketUpgradeHandler.js';
import type { WebSocketListener, WebSocketSessionOptions } from '../lib/websocket/WebSocketListener.js';
import { ReadyState } from '../lib/websocket/WebSocketSession.js';
import type { WebSocketSession } from '../lib/websocket/WebSocketSession.js';
import { broadcast } from '../lib/websocket/broadcast.js';
import { FrameGenerator } from '../lib/websocket/FrameGenerator.js';
import { FrameParser } from '../lib/websocket/FrameParser.js';
import { FrameEncodeError, ProtocolError, WebSocketSessionError } from '../lib/websocket/errors.js';
import type { ProtocolErrorCode } from '../lib/websocket/errors.js';

// ------------------------------------------------------------------------------------------------ harness

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Lets writes flush (end of tick) and what follows them (closeAfterFlush, completions) happen. */
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await tick();
}

/** The peer: a client masks its frames (RFC 6455 §5.3). */
const c = new FrameGenerator({ role: 'client' });
const cat = (frames: Buffer[]): Buffer => Buffer.concat(frames);
const text = (s: string): Buffer => cat(c.encodeText(s));
const binary = (b: Buffer | number[]): Buffer => cat(c.encode(0x2, Buffer.from(b)));
const frame = (opcode: number, payload: Buffer | string, fin = true): Buffer => cat(c.encode(opcode, Buffer.from(payload), fin));
const ping = (p = ''): Buffer => cat(c.encodePing(Buffer.from(p)));
const pong = (p = ''): Buffer => cat(c.encodePong(Buffer.from(p)));
const close = (code?: number, reason?: string): Buffer => cat(c.encodeClose(code, reason));

/** A masked frame built by hand, for what the generator refuses to make. `b0` is FIN/RSV/opcode. */
function raw(b0: number, payload: Buffer | number[] = [], options: { mask?: boolean; b1Length?: number } = {}): Buffer {
  const body = Buffer.from(payload);
  const mask = options.mask ?? true;
  const length = options.b1Length ?? body.length;
  const header: number[] = [b0];
  if (length < 126) header.push((mask ? 0x80 : 0) | length);
  else if (length < 0x10000) header.push((mask ? 0x80 : 0) | 126, length >> 8, length & 0xff);
  else throw new Error('raw(): lengths over 64 KiB not needed');
  const key = [0x37, 0xfa, 0x21, 0x3d];
  if (!mask) return Buffer.concat([Buffer.from(header), body]);
  const masked = Buffer.from(body.map((b, i) => b ^ key[i & 3]!));
  return Buffer.concat([Buffer.from(header), Buffer.from(key), masked]);
}

/** Everything a listener is told, in order, as strings. */
class Recorder implements WebSocketListener {
  readonly events: string[] = [];
  readonly errors: Error[] = [];
  readonly closes: [number, string][] = [];
  constructor(private readonly hooks: Partial<WebSocketListener> = {}) {}
  onOpen(s: WebSocketSession): void {
    this.events.push('open');
    this.hooks.onOpen?.(s);
  }
  onText(s: WebSocketSession, data: string): void | Promise<void> {
    this.events.push(`text:${data}`);
    return this.hooks.onText?.(s, data);
  }
  onBinary(s: WebSocketSession, data: Buffer): void | Promise<void> {
    this.events.push(`binary:${data.length > 16 ? `${data.length}B` : data.toString('hex')}`);
    return this.hooks.onBinary?.(s, data);
  }
  onPing(s: WebSocketSession, payload: Buffer): void {
    this.events.push(`ping:${payload.toString()}`);
    this.hooks.onPing?.(s, payload);
  }
  onPong(s: WebSocketSession, payload: Buffer): void {
    this.events.push(`pong:${payload.toString()}`);
    this.hooks.onPong?.(s, payload);
  }
  onClose(s: WebSocketSession, code: number, reason: string): void {
    this.events.push(`close:${code}`);
    this.closes.push([code, reason]);
    this.hooks.onClose?.(s, code, reason);
  }
  onError(s: WebSocketSession, error: Error): void {
    this.errors.push(error);
    this.hooks.onError?.(s, error);
  }
}

/** The peer's view of what the server wrote: one client-role parser per connection, across reads. */
class Wire {
  private readonly events: string[] = [];
  private readonly parser = new FrameParser(
    {
      onMessage: (op, data) => void this.events.push(op === 1 ? `text:${data.toString()}` : `binary:${data.length > 16 ? `${data.length}B` : data.toString('hex')}`),
      onPing: (p) => void this.events.push(`ping:${p.toString()}`),
      onPong: (p) => void this.events.push(`pong:${p.toString()}`),
      onClose: (code, reason) => void this.events.push(`close:${code}:${reason}`),
    },
    { role: 'client', maxFrameBytes: Infinity, maxMessageBytes: Infinity },
  );
  constructor(private readonly ep: MemoryEndPoint) {}
  /** The frames written since the last call; 'AFTER-CLOSE' if anything followed our close frame (§5.5.1). */
  read(): string[] {
    const out = this.ep.takeOutput();
    if (out.length !== 0) {
      if (this.parser.isClosed) this.events.push('AFTER-CLOSE');
      else if (this.parser.parse(out) !== out.length) this.events.push('AFTER-CLOSE');
    }
    return this.events.splice(0);
  }
}

interface Harness {
  ep: MemoryEndPoint;
  connection: WebSocketConnection;
  session: WebSocketSession;
  rec: Recorder;
  clock: ManualClock;
  wire: Wire;
  /** Feeds a private copy (the parser unmasks its input in place). */
  feed(...chunks: Buffer[]): void;
}

function open(
  options: WebSocketSessionOptions = {},
  hooks: Partial<WebSocketListener> | Recorder = {},
  endPoint?: (scheduler: IdleTimeoutScheduler) => MemoryEndPoint,
  epOptions: MemoryEndPointOptions = {},
): Harness {
  const clock = new ManualClock();
  const scheduler = new IdleTimeoutScheduler({ clock, tickMs: 100 });
  const ep = endPoint?.(scheduler) ?? new MemoryEndPoint({ scheduler, ...epOptions });
  const rec = hooks instanceof Recorder ? hooks : new Recorder(hooks);
  const connection = new WebSocketConnection(ep, rec, { role: 'server', settings: resolveSettings(options), path: '/t' });
  ep.open(connection);
  return {
    ep,
    connection,
    session: connection.session,
    rec,
    clock,
    wire: new Wire(ep),
    feed: (...chunks) => ep.feed(Buffer.concat(chunks)),
  };
}

/** Whether a promise has settled by now (after a few ticks): 'pending', 'resolved' or the rejection's code. */
async function state(p: Promise<unknown>): Promise<string> {
  let result = 'pending';
  p.then(
    () => (result = 'resolved'),
    (e: unknown) => (result = e instanceof WebSocketSessionError ? e.code : `rejected:${String(e)}`),
  );
  await settle();
  return result;
}

/** Sends binary messages of `size` bytes until the endpoint is past its high watermark (writes stalled). */
function fillPastHighWatermark(h: Harness, size = 40_000, count = 3): Promise<void>[] {
  const sends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) sends.push(h.session.sendBinary(Buffer.alloc(size, i + 1)));
  return sends;
}

/** No exception escaped to the endpoint's guard. */
function checkNoGuard(t: Test, h: Harness): void {
  t.notOk(h.ep.closeCause instanceof ConnectionCallbackError, `no ConnectionCallbackError (${String(h.ep.closeCause)})`);
}

// ------------------------------------------------------------------------------------------------ frames

interface Rule {
  name: string;
  input: Buffer[];
  closeCode: number;
  error: ProtocolErrorCode;
  options?: WebSocketSessionOptions;
  /** Events before the failure (what was valid). */
  before?: string[];
}

const rules: Rule[] = [
  { name: 'unmasked client frame (§5.1)', input: [raw(0x81, Buffer.from('hi'), { mask: false })], closeCode: 1002, error: 'WS_UNMASKED_FRAME' },
  { name: 'unmasked ping (§5.1)', input: [raw(0x89, [], { mask: false })], closeCode: 1002, error: 'WS_UNMASKED_FRAME' },
  { name: 'RSV1 without an extension (§5.2)', input: [cat(c.encode(0x1, Buffer.from('x'), true, true))], closeCode: 1002, error: 'WS_RSV_BITS' },
  { name: 'RSV2 (§5.2)', input: [raw(0xa1, Buffer.from('x'))], closeCode: 1002, error: 'WS_RSV_BITS' },
  { name: 'RSV3 (§5.2)', input: [raw(0x91, Buffer.from('x'))], closeCode: 1002, error: 'WS_RSV_BITS' },
  ...[0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf].map(
    (op): Rule => ({ name: `reserved opcode 0x${op.toString(16)} (§5.2)`, input: [raw(0x80 | op)], closeCode: 1002, error: 'WS_BAD_OPCODE' }),
  ),
  { name: 'ping of 126 bytes (§5.5)', input: [raw(0x89, Buffer.alloc(126))], closeCode: 1002, error: 'WS_CONTROL_TOO_LONG' },
  { name: 'close of 126 bytes (§5.5)', input: [raw(0x88, Buffer.alloc(126))], closeCode: 1002, error: 'WS_CONTROL_TOO_LONG' },
  { name: 'fragmented ping (§5.5)', input: [raw(0x09, Buffer.from('p'))], closeCode: 1002, error: 'WS_FRAGMENTED_CONTROL' },
  { name: 'fragmented close (§5.5)', input: [raw(0x08, [0x03, 0xe8])], closeCode: 1002, error: 'WS_FRAGMENTED_CONTROL' },
  { name: 'continuation without a message (§5.4)', input: [frame(0x0, 'x')], closeCode: 1002, error: 'WS_BAD_CONTINUATION' },
  {
    name: 'continuation after a finished message (§5.4)',
    input: [text('done'), frame(0x0, 'x')],
    closeCode: 1002,
    error: 'WS_BAD_CONTINUATION',
    before: ['text:done'],
  },
  {
    name: 'a new text frame inside a fragmented message (§5.4)',
    input: [frame(0x1, 'a', false), text('b')],
    closeCode: 1002,
    error: 'WS_BAD_CONTINUATION',
  },
  {
    name: 'a new binary frame inside a fragmented message (§5.4)',
    input: [frame(0x2, 'a', false), ping('ok'), binary([1])],
    closeCode: 1002,
    error: 'WS_BAD_CONTINUATION',
    before: ['ping:ok'],
  },
  { name: 'invalid UTF-8 text (§8.1)', input: [frame(0x1, Buffer.from([0xff]))], closeCode: 1007, error: 'WS_INVALID_UTF8' },
  { name: 'overlong UTF-8 (§8.1)', input: [frame(0x1, Buffer.from([0xc0, 0x80]))], closeCode: 1007, error: 'WS_INVALID_UTF8' },
  { name: 'UTF-16 surrogate in UTF-8 (§8.1)', input: [frame(0x1, Buffer.from([0xed, 0xa0, 0x80]))], closeCode: 1007, error: 'WS_INVALID_UTF8' },
  { name: 'text ending inside a code point (§8.1)', input: [frame(0x1, Buffer.from([0x68, 0xe2, 0x82]))], closeCode: 1007, error: 'WS_INVALID_UTF8' },
  {
    name: 'invalid UTF-8 in the first fragment: fails before the message ends (§8.1)',
    input: [frame(0x1, Buffer.from([0x61, 0xc3, 0x28]), false)],
    closeCode: 1007,
    error: 'WS_INVALID_UTF8',
  },
  {
    name: 'invalid UTF-8 in a middle fragment, before the last (§8.1)',
    input: [frame(0x1, 'ok', false), frame(0x0, Buffer.from([0xf5]), false)],
    closeCode: 1007,
    error: 'WS_INVALID_UTF8',
  },
  {
    name: 'a fragmented text ending inside a code point (§8.1)',
    input: [frame(0x1, Buffer.from([0xe2]), false), frame(0x0, Buffer.from([0x82]), true)],
    closeCode: 1007,
    error: 'WS_INVALID_UTF8',
  },
  { name: 'close payload of 1 byte (§5.5.1)', input: [raw(0x88, [0x03])], closeCode: 1002, error: 'WS_BAD_CLOSE_PAYLOAD' },
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2999, 5000, 65535].map(
    (code): Rule => ({ name: `close code ${code} (§7.4)`, input: [raw(0x88, [code >> 8, code & 0xff])], closeCode: 1002, error: 'WS_BAD_CLOSE_CODE' }),
  ),
  { name: 'close reason of invalid UTF-8 (§5.5.1)', input: [raw(0x88, [0x03, 0xe8, 0x61, 0xff])], closeCode: 1007, error: 'WS_INVALID_UTF8' },
  { name: '64-bit length with the top bit set (§5.2)', input: [Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4])], closeCode: 1002, error: 'WS_64BIT_LENGTH' },
  { name: 'frame over maxFrameBytes', input: [binary(Buffer.alloc(11))], closeCode: 1009, error: 'WS_FRAME_TOO_BIG', options: { maxFrameBytes: 10 } },
  {
    name: 'frame over maxFrameBytes, refused from its header alone',
    input: [Buffer.from([0x82, 0xfe, 0x10, 0x00])],
    closeCode: 1009,
    error: 'WS_FRAME_TOO_BIG',
    options: { maxFrameBytes: 4095 },
  },
  {
    name: 'message over maxMessageBytes',
    input: [frame(0x2, Buffer.alloc(6), false), frame(0x0, Buffer.alloc(5))],
    closeCode: 1009,
    error: 'WS_MESSAGE_TOO_BIG',
    options: { maxMessageBytes: 10 },
  },
  {
    name: 'message in more than maxFragments frames',
    input: [frame(0x1, 'a', false), frame(0x0, 'b', false), frame(0x0, 'c', false), frame(0x0, 'd')],
    closeCode: 1009,
    error: 'WS_TOO_MANY_FRAGMENTS',
    options: { maxFragments: 3 },
  },
];

t.test('every parser rule is a close frame with its code, onClose and onError(ProtocolError)', async (t) => {
  for (const rule of rules) {
    const h = open(rule.options);
    h.feed(...rule.input);
    // Anything the peer sends afterwards is ignored.
    h.feed(text('ignored'));
    await settle();
    const wire = h.wire.read();
    const label = rule.name;
    const expectedWire = (rule.before ?? []).filter((e) => e.startsWith('ping:')).map((e) => `pong:${e.slice(5)}`);
    t.equal(wire.length, expectedWire.length + 1, `${label}: one close frame, nothing after it (${wire.join(' | ')})`);
    t.same(wire.slice(0, -1), expectedWire, label);
    const closeFrame = wire.at(-1) ?? '';
    t.ok(closeFrame.startsWith(`close:${rule.closeCode}:`), `${label}: close frame ${closeFrame}`);
    t.same(h.rec.closes, [[rule.closeCode, closeFrame.slice(`close:${rule.closeCode}:`.length)]], `${label}: onClose once, with the code sent`);
    t.same(h.rec.events, ['open', ...(rule.before ?? []), `close:${rule.closeCode}`], `${label}: events`);
    t.equal(h.rec.errors.length, 1, `${label}: one onError`);
    const error = h.rec.errors[0];
    t.ok(error instanceof ProtocolError, `${label}: ProtocolError`);
    t.equal((error as ProtocolError).code, rule.error, label);
    t.equal((error as ProtocolError).closeCode, rule.closeCode, label);
    t.equal(h.ep.closeCause, error, `${label}: the endpoint closed with the error`);
    t.equal(h.ep.isTransportClosed, true, `${label}: TCP closed after the close frame (§7.1.7)`);
    t.equal(h.session.readyState, ReadyState.CLOSED);
    t.equal(h.connection.state, 'CLOSED');
  }
});

t.test('the failure is detected as the bytes arrive, also when fed one byte at a time', async (t) => {
  for (const rule of rules) {
    const h = open(rule.options);
    const input = Buffer.concat(rule.input);
    for (let i = 0; i < input.length && h.ep.isOpen; i++) h.ep.feed(Buffer.from(input.subarray(i, i + 1)));
    await settle();
    t.equal(h.rec.closes[0]?.[0], rule.closeCode, `${rule.name}: byte by byte`);
    t.equal((h.rec.errors[0] as ProtocolError | undefined)?.code, rule.error);
  }
});

t.test('a protocol error after our close frame: no second close frame, TCP closed', async (t) => {
  const h = open();
  h.session.close(1000, 'bye');
  h.feed(frame(0x0, 'x'));
  await settle();
  t.same(h.wire.read(), ['close:1000:bye']);
  t.equal(h.ep.isTransportClosed, true);
  t.same(h.rec.closes, [[1002, h.rec.closes[0]?.[1] ?? '']]);
  t.equal((h.rec.errors[0] as ProtocolError).code, 'WS_BAD_CONTINUATION');
});

/** A stream using every kind of frame; the peer's close at the end. */
function richStream(): Buffer {
  return Buffer.concat([
    text('héllo wörld'),
    frame(0x2, Buffer.from([1, 2, 3]), false),
    ping('mid'),
    frame(0x0, Buffer.from([4, 5]), false),
    frame(0x0, Buffer.from([]), false),
    frame(0x0, Buffer.from([6]), true),
    frame(0x1, Buffer.from('€').subarray(0, 2), false),
    frame(0x0, Buffer.from('€').subarray(2), true),
    pong('unsolicited'),
    binary(Buffer.alloc(200, 7)),
    text(''),
    text('x'.repeat(70_000)),
    close(1000, 'bye'),
  ]);
}

const RICH_EVENTS = [
  'open',
  'text:héllo wörld',
  'ping:mid',
  'binary:010203040506',
  'text:€',
  'pong:unsolicited',
  'binary:200B',
  'text:',
  `text:${'x'.repeat(70_000)}`,
  'close:1000',
];

t.test('a stream split at every byte offset gives the same events and answers', async (t) => {
  const stream = richStream();
  const whole = open();
  whole.feed(stream);
  await settle();
  t.same(whole.rec.events, RICH_EVENTS);
  t.same(whole.rec.closes, [[1000, 'bye']]);
  const expectedWire = ['pong:mid', 'close:1000:'];
  t.same(whole.wire.read(), expectedWire);
  // Every split point: every byte, except inside the 70 KB payload (in steps of 997).
  const bigFrameStart = stream.length - close(1000, 'bye').length - (14 + 70_000);
  const bigPayloadEnd = stream.length - close(1000, 'bye').length;
  let mismatches = 0;
  let runs = 0;
  for (let i = 1; i < stream.length; i += i > bigFrameStart + 20 && i < bigPayloadEnd - 20 ? 997 : 1) {
    const h = open();
    h.ep.feed(Buffer.from(stream.subarray(0, i)));
    h.ep.feed(Buffer.from(stream.subarray(i)));
    await settle();
    runs++;
    const wire = h.wire.read();
    if (JSON.stringify(h.rec.events) !== JSON.stringify(RICH_EVENTS) || JSON.stringify(wire) !== JSON.stringify(expectedWire)) {
      mismatches++;
      t.fail(`split at ${i}: ${JSON.stringify(h.rec.events.map((e) => e.slice(0, 30)))} / ${JSON.stringify(wire)}`);
      if (mismatches > 3) break;
    }
    if (!h.ep.isTransportClosed || h.rec.errors.length !== 0) t.fail(`split at ${i}: not closed cleanly`);
  }
  t.equal(mismatches, 0, `${runs} splits`);
  t.ok(runs > bigFrameStart, 'every offset before the large frame was tried');
  // Byte by byte, up to the large frame.
  const small = stream.subarray(0, bigFrameStart);
  const h = open();
  for (let i = 0; i < small.length; i++) h.ep.feed(Buffer.from(small.subarray(i, i + 1)));
  await settle();
  t.same(h.rec.events, RICH_EVENTS.slice(0, 8));
});

t.test('many frames in one read are delivered in order', async (t) => {
  const h = open();
  const frames: Buffer[] = [];
  for (let i = 0; i < 1000; i++) frames.push(i % 2 === 0 ? text(`m${i}`) : binary([i & 0xff, i >> 8]));
  h.feed(...frames);
  t.equal(h.rec.events.length, 1001);
  t.equal(h.rec.events[1], 'text:m0');
  t.equal(h.rec.events[2], 'binary:0100');
  t.equal(h.rec.events[1000], 'binary:e703');
  await settle();
  t.same(h.wire.read(), []);
});

t.test('a binary message is the application\'s to keep (the read buffer may be reused)', async (t) => {
  const kept: Buffer[] = [];
  const h = open({}, { onBinary: (_s, data) => void kept.push(data) });
  const input = Buffer.concat([binary([1, 2, 3]), binary(Buffer.alloc(300, 9))]);
  h.ep.feed(input);
  input.fill(0xee); // the endpoint reuses its read buffer
  t.same([...kept[0]!], [1, 2, 3]);
  t.ok(kept[1]!.every((b) => b === 9));
});

// ------------------------------------------------------------------------------------------------ ping / pong

t.test('a ping is answered with a pong carrying the same payload (§5.5.2)', async (t) => {
  const h = open();
  const payload125 = 'p'.repeat(125);
  h.feed(ping('abc'), ping(''), ping(payload125));
  await settle();
  t.same(h.wire.read(), ['pong:abc', 'pong:', `pong:${payload125}`]);
  t.same(h.rec.events, ['open', 'ping:abc', 'ping:', `ping:${payload125}`]);
  // A binary ping payload is echoed byte for byte.
  h.feed(cat(c.encodePing(Buffer.from([0, 0xff, 0x80]))));
  await settle();
  const out = h.ep.takeOutput();
  t.same([...out], [0x8a, 3, 0, 0xff, 0x80]);
});

t.test('an unsolicited pong is ignored (§5.5.3)', async (t) => {
  const h = open();
  h.feed(pong('hi'), text('after'));
  await settle();
  t.same(h.wire.read(), []);
  t.same(h.rec.events, ['open', 'pong:hi', 'text:after']);
  t.equal(h.session.readyState, ReadyState.OPEN);
});

t.test('session.ping sends a ping; the pong reaches onPong', async (t) => {
  const h = open();
  h.session.ping('are you there');
  h.session.ping(Buffer.from([1, 2]));
  h.session.ping();
  await settle();
  t.same(h.wire.read(), ['ping:are you there', `ping:${Buffer.from([1, 2]).toString()}`, 'ping:']);
  h.feed(pong('are you there'));
  t.same(h.rec.events, ['open', 'pong:are you there']);
  t.throws(() => h.session.ping(Buffer.alloc(126)), FrameEncodeError);
});

t.test('pings and pongs go ahead of data queued behind a stalled endpoint', async (t) => {
  const h = open();
  h.ep.stallWrites();
  const sends = fillPastHighWatermark(h); // 40 KB + 40 KB reach the flusher (over 64 KiB), the third waits
  t.equal(h.ep.isWritable, false, 'past the high watermark');
  h.feed(ping('peer'));
  h.session.ping('ours');
  await settle();
  t.same(await state(sends[0]!), 'pending');
  h.ep.resumeWrites();
  await settle();
  t.same(h.wire.read(), ['binary:40000B', 'binary:40000B', 'pong:peer', 'ping:ours', 'binary:40000B']);
  for (const s of sends) t.equal(await state(s), 'resolved');
  t.equal(h.session.bufferedAmount, 0);
});

// ------------------------------------------------------------------------------------------------ control frames are bounded

/** The endpoint's default high watermark (WriteFlusher): what a ping flood may fill before its pongs wait. */
const HIGH_WATERMARK = 64 * 1024;
/** The largest server control frame: 2 header bytes and 125 of payload (RFC 6455 §5.5). */
const MAX_SERVER_CONTROL = 127;

/** `count` pings from the peer, payloads `from`..`from + count - 1` as text, in one buffer. */
function pingFlood(count: number, from = 0): Buffer {
  const frames: Buffer[] = [];
  for (let i = from; i < from + count; i++) frames.push(ping(String(i)));
  return Buffer.concat(frames);
}

t.test('a ping flood from a peer that does not read: one pong waits, reads are held, the output stays bounded (§5.5.3)', async (t) => {
  const h = open({}, { onText: (s, data) => void s.sendText(`echo:${data}`) });
  h.ep.stallWrites(); // the peer reads nothing
  const COUNT = 100_000;
  for (let k = 0; k < 4; k++) h.feed(pingFlood(COUNT / 4, (k * COUNT) / 4)); // a few large writes
  await settle();
  t.ok(h.ep.pendingBytes <= HIGH_WATERMARK + MAX_SERVER_CONTROL, `the flusher holds ${h.ep.pendingBytes} B, not a pong per ping`);
  t.ok(h.session.bufferedAmount <= HIGH_WATERMARK + 2 * MAX_SERVER_CONTROL, `bufferedAmount ${h.session.bufferedAmount}`);
  t.equal(h.connection.waitingControlFrames, 1, 'one pong waits');
  t.equal(h.ep.isReadingPaused, true, 'reads are held: the rest of the flood stays with the peer (TCP backpressure)');
  t.equal(h.ep.isTransportPaused, true);
  const read = h.rec.events.filter((e) => e.startsWith('ping:')).length;
  t.ok(read < COUNT / 4, `only the pings whose pongs fit were read (${read})`);
  t.equal(h.session.readyState, ReadyState.OPEN);

  h.ep.resumeWrites(); // the peer reads again
  await settle();
  const pongs = h.wire.read().filter((e) => e.startsWith('pong:'));
  t.equal(pongs.length, COUNT, 'every ping read was answered');
  t.equal(
    pongs.findIndex((p, i) => p !== `pong:${i}`),
    -1,
    'in order',
  );
  t.equal(pongs[pongs.length - 1], `pong:${COUNT - 1}`, 'the last pong carries the most recent ping\'s payload');
  t.equal(h.ep.isReadingPaused, false);
  t.equal(h.connection.waitingControlFrames, 0);
  h.feed(text('still here'));
  await settle();
  t.same(h.wire.read(), ['text:echo:still here'], 'the session still works');
  t.same(h.rec.errors, []);
  checkNoGuard(t, h);
});

t.test('a peer that pings and never reads: 1008 WS_SLOW_CONSUMER when no write completed for closeTimeoutMs', async (t) => {
  const h = open({ closeTimeoutMs: 3000 });
  h.ep.stallWrites();
  h.feed(pingFlood(20_000));
  await settle();
  t.equal(h.connection.waitingControlFrames, 1);
  h.clock.advance(2999);
  t.equal(h.connection.state, 'OPEN', 'not before the bound');
  h.clock.advance(1);
  t.equal(h.connection.state, 'FAILED');
  t.equal(h.rec.errors.length, 1);
  const error = h.rec.errors[0] as WebSocketSessionError;
  t.type(error, WebSocketSessionError);
  t.equal(error.code, 'WS_SLOW_CONSUMER');
  t.equal(error.closeCode, 1008);
  t.equal(h.connection.waitingControlFrames, 0, 'the waiting pong is dropped: only the close frame may follow');
  t.equal(h.ep.isOpen, true, 'the close frame gets closeTimeoutMs to be read');
  h.clock.advance(3000);
  t.equal(h.ep.isOpen, false, 'then TCP is closed');
  t.same(h.rec.closes, [[1008, 'slow consumer']]);
  t.equal(h.rec.errors.length, 1, 'reported once');
  t.equal(h.clock.activeTimers, 0, 'no timer left');
  checkNoGuard(t, h);
});

t.test('a peer that reads slowly is not a stalled one: the bound counts whole periods without a completed write', async (t) => {
  const h = open({ closeTimeoutMs: 3000 });
  h.ep.stallWrites();
  h.feed(pingFlood(20_000));
  await settle();
  h.clock.advance(2000);
  h.ep.resumeWrites(); // the peer takes everything...
  await settle();
  h.ep.stallWrites(); // ...then stops again, while it still pings
  h.feed(pingFlood(20_000, 20_000));
  await settle();
  t.equal(h.connection.waitingControlFrames, 1);
  h.clock.advance(1000);
  t.equal(h.connection.state, 'OPEN', 'writes completed during the first period');
  h.clock.advance(2999);
  t.equal(h.connection.state, 'OPEN');
  h.clock.advance(1);
  t.equal(h.connection.state, 'FAILED', 'a whole period without progress');
  t.equal((h.rec.errors[0] as WebSocketSessionError).code, 'WS_SLOW_CONSUMER');
});

t.test('closeTimeoutMs 0: no stall timer, the endpoint\'s write timeout is the bound (1006 WriteTimeoutError)', async (t) => {
  const h = open({ closeTimeoutMs: 0 }, {}, undefined, { idleTimeoutMs: 5000 });
  h.ep.stallWrites();
  h.feed(pingFlood(20_000));
  await settle();
  t.equal(h.connection.waitingControlFrames, 1);
  t.equal(h.clock.activeTimers, 1, 'only the idle scheduler\'s timer');
  h.clock.advance(5100);
  t.equal(h.ep.isOpen, false);
  t.same(h.rec.closes, [[1006, '']]);
  t.equal(h.rec.errors.length, 1);
  t.type(h.rec.errors[0], WriteTimeoutError);
});

t.test('pingIntervalMs shorter than closeTimeoutMs: the write timeout (idle = ping interval) ends a ping flooder first', async (t) => {
  const h = open({ pingIntervalMs: 1000, closeTimeoutMs: 5000 });
  h.ep.stallWrites();
  h.feed(pingFlood(20_000));
  await settle();
  t.equal(h.connection.waitingControlFrames, 1);
  h.clock.advance(1100);
  t.equal(h.ep.isOpen, false);
  t.same(h.rec.closes, [[1006, '']]);
  t.equal(h.rec.errors.length, 1, 'one error: not a pong timeout as well');
  t.type(h.rec.errors[0], WriteTimeoutError);
});

t.test('our own pings wait too: one at most, the latest', async (t) => {
  const h = open();
  h.ep.stallWrites();
  const sends = fillPastHighWatermark(h);
  for (let i = 0; i < 1000; i++) h.session.ping(`p${i}`);
  t.equal(h.connection.waitingControlFrames, 1);
  t.equal(h.ep.isReadingPaused, false, 'our pings do not hold reads');
  h.ep.resumeWrites();
  await settle();
  t.same(h.wire.read(), ['binary:40000B', 'binary:40000B', 'ping:p999', 'binary:40000B']);
  for (const s of sends) t.equal(await state(s), 'resolved');
  h.session.ping('writable again');
  await settle();
  t.same(h.wire.read(), ['ping:writable again']);
});

t.test('close while a pong waits: the pong, then the close frame, then reads resume for the peer\'s close', async (t) => {
  const h = open();
  h.ep.stallWrites();
  h.feed(pingFlood(20_000));
  await settle();
  t.equal(h.ep.isReadingPaused, true);
  const answered = h.rec.events.filter((e) => e.startsWith('ping:')).length;
  h.session.close(1000, 'bye');
  t.equal(h.connection.waitingControlFrames, 0);
  await settle();
  t.equal(h.ep.isReadingPaused, false, 'the peer\'s close must be readable');
  h.feed(close(1000));
  h.ep.resumeWrites();
  await settle();
  const wire = h.wire.read();
  const pongs = wire.filter((e) => e.startsWith('pong:'));
  t.equal(pongs.length, answered, 'a pong for each ping read before our close, none after');
  t.equal(pongs[pongs.length - 1], `pong:${answered - 1}`);
  t.same(wire.slice(pongs.length), ['close:1000:bye'], 'nothing after the close frame (§5.5.1)');
  t.same(h.rec.closes, [[1000, '']]);
  t.equal(h.ep.isTransportClosed, true);
});

// ------------------------------------------------------------------------------------------------ close handshake

t.test('peer-initiated close: echoed, TCP closed after the echo is flushed, onClose once with the peer\'s code', async (t) => {
  const h = open();
  h.ep.stallWrites(); // the echo cannot reach the "kernel" yet
  h.feed(close(4000, 'bye now'));
  t.equal(h.session.readyState, ReadyState.CLOSING);
  t.equal(h.connection.state, 'CLOSE_RECEIVED');
  await settle();
  t.equal(h.ep.isTransportClosed, false, 'not before the echo is flushed');
  h.ep.resumeWrites();
  await settle();
  t.same(h.wire.read(), ['close:4000:'], 'the code echoed (§5.5.1)');
  t.equal(h.ep.isTransportClosed, true, 'the server closes TCP (§7.1.1)');
  t.equal(h.ep.closeCause, undefined, 'an orderly close');
  t.same(h.rec.closes, [[4000, 'bye now']]);
  t.same(h.rec.errors, []);
  t.equal(h.session.readyState, ReadyState.CLOSED);
  h.feed(close(1000));
  await settle();
  t.same(h.rec.closes.length, 1, 'exactly once');
});

t.test('an empty close is reported as 1005 and echoed empty', async (t) => {
  const h = open();
  h.feed(close());
  await settle();
  const out = h.ep.takeOutput();
  t.same([...out], [0x88, 0x00], 'an empty close frame');
  t.same(h.rec.closes, [[1005, '']]);
  t.equal(h.ep.isTransportClosed, true);
});

t.test('the echo waits behind queued data; data after the peer\'s close is ignored', async (t) => {
  const h = open();
  h.ep.stallWrites();
  const sends = fillPastHighWatermark(h);
  h.feed(close(1000, 'done'), text('after close'));
  h.feed(text('later still'));
  t.equal(await state(h.session.sendText('too late')), 'WS_SESSION_CLOSED');
  h.ep.resumeWrites();
  await settle();
  t.same(h.wire.read(), ['binary:40000B', 'binary:40000B', 'binary:40000B', 'close:1000:']);
  for (const s of sends) t.equal(await state(s), 'resolved', 'queued data is sent before the echo');
  t.same(h.rec.events, ['open', 'close:1000']);
  t.equal(h.ep.isTransportClosed, true);
});

t.test('server-initiated close: after the queued data; the peer\'s close completes it', async (t) => {
  const h = open();
  const a = h.session.sendText('a');
  h.session.close(1000, 'done');
  t.equal(h.session.readyState, ReadyState.CLOSING);
  t.equal(h.connection.state, 'CLOSE_SENT');
  await settle();
  t.same(h.wire.read(), ['text:a', 'close:1000:done']);
  t.equal(await state(a), 'resolved');
  t.equal(h.ep.isTransportClosed, false, 'waits for the peer\'s close (§7.1.1)');
  // The peer may still send data before its close (§7.1.2); it is delivered.
  h.feed(text('last words'), close(1000, 'ok'));
  await settle();
  t.same(h.wire.read(), [], 'nothing more is sent (§5.5.1), not even an echo');
  t.equal(h.ep.isTransportClosed, true);
  t.same(h.rec.events, ['open', 'text:last words', 'close:1000']);
  t.same(h.rec.closes, [[1000, 'ok']]);
  t.same(h.rec.errors, []);
});

t.test('server-initiated close behind a stalled endpoint: the close frame follows all queued data', async (t) => {
  const h = open();
  h.ep.stallWrites();
  const sends = fillPastHighWatermark(h);
  h.session.close(1001, 'bye');
  h.ep.resumeWrites();
  await settle();
  t.same(h.wire.read(), ['binary:40000B', 'binary:40000B', 'binary:40000B', 'close:1001:bye']);
  for (const s of sends) t.equal(await state(s), 'resolved');
});

t.test('nothing is sent after our close frame; sends reject with WS_SESSION_CLOSED', async (t) => {
  const h = open();
  h.session.close(3000, 'app');
  h.session.close(1000, 'again'); // a no-op once closing
  t.equal(await state(h.session.sendText('x')), 'WS_SESSION_CLOSED');
  t.equal(await state(h.session.sendBinary(Buffer.from([1]))), 'WS_SESSION_CLOSED');
  let callbackError: Error | null | undefined;
  t.equal(h.session.send('x', (e) => (callbackError = e)), false);
  t.equal((callbackError as WebSocketSessionError).code, 'WS_SESSION_CLOSED');
  t.throws(() => h.session.ping(), { code: 'WS_SESSION_CLOSED' });
  h.feed(ping('answer me?'));
  await settle();
  t.same(h.wire.read(), ['close:3000:app'], 'no pong after our close');
  t.same(h.rec.events, ['open', 'ping:answer me?']);
  h.feed(close(3000));
  await settle();
  t.equal(await state(h.session.sendText('x')), 'WS_SESSION_CLOSED', 'also once closed');
  t.doesNotThrow(() => h.session.close(4000, 'x'.repeat(124)), 'a no-op once closed');
});

t.test('close() checks the code and the reason', async (t) => {
  const h = open();
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000]) t.throws(() => h.session.close(code), FrameEncodeError, `code ${code}`);
  t.throws(() => h.session.close(1000, 'é'.repeat(62)), FrameEncodeError, '124 bytes of UTF-8');
  t.equal(h.session.readyState, ReadyState.OPEN, 'a refused close changes nothing');
  h.session.close(1000, 'é'.repeat(61) + 'x');
  await settle();
  t.same(h.wire.read(), [`close:1000:${'é'.repeat(61)}x`]);
});

t.test('close timeout: no answer within closeTimeoutMs -> 1006 and WS_CLOSE_TIMEOUT', async (t) => {
  const h = open({ closeTimeoutMs: 2000 });
  h.session.close(1000, 'bye');
  await settle();
  t.same(h.wire.read(), ['close:1000:bye']);
  h.clock.advance(1999);
  t.equal(h.ep.isOpen, true);
  h.clock.advance(1);
  t.equal(h.ep.isOpen, false);
  t.same(h.rec.closes, [[1006, '']]);
  t.equal(h.rec.errors.length, 1);
  t.equal((h.rec.errors[0] as WebSocketSessionError).code, 'WS_CLOSE_TIMEOUT');
  t.equal(h.clock.activeTimers, 0, 'no timer left');
  checkNoGuard(t, h);
});

t.test('abnormal end: the peer goes away without a close frame -> 1006', async (t) => {
  const fin = open();
  fin.feed(text('hi'));
  fin.ep.feedEnd();
  await settle();
  t.same(fin.rec.closes, [[1006, '']]);
  t.same(fin.rec.errors, [], 'a FIN is not an error to report');
  t.equal(fin.ep.isTransportClosed, true);
  t.equal(await state(fin.session.sendText('x')), 'WS_SESSION_CLOSED');

  const reset = open();
  reset.ep.stallWrites();
  const sends = fillPastHighWatermark(reset);
  const unawaited = reset.session.sendText('nobody awaits this');
  void unawaited;
  reset.ep.reset();
  t.same(reset.rec.closes, [[1006, '']]);
  t.equal(reset.rec.errors.length, 1);
  t.match(reset.rec.errors[0], { code: 'ECONNRESET' });
  for (const s of sends) t.equal(await state(s), 'WS_SESSION_CLOSED', 'queued and in-flight sends reject with WS_SESSION_CLOSED');

  // FIN during our close: the handshake did not finish.
  const during = open();
  during.session.close(1000);
  during.ep.feedEnd();
  await settle();
  t.same(during.rec.closes, [[1006, '']]);
});

t.test('terminate() ends at once without a handshake: 1006, queued sends rejected', async (t) => {
  const h = open();
  h.ep.stallWrites();
  const sends = fillPastHighWatermark(h);
  h.session.terminate();
  t.equal(h.ep.isTransportClosed, true);
  t.same(h.rec.closes, [[1006, '']]);
  for (const s of sends) t.equal(await state(s), 'WS_SESSION_CLOSED');
  t.same(h.wire.read(), []);
});

t.test('a rejected send nobody awaits is not an unhandled rejection', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  // Refused at once (closed), failed later (reset), refused by the bound.
  const a = open();
  a.session.close();
  void a.session.sendText('refused at once');
  const b = open();
  b.ep.stallWrites();
  fillPastHighWatermark(b);
  void b.session.sendText('queued');
  b.ep.reset();
  const d = open({ maxBufferedBytes: 100 });
  d.ep.stallWrites();
  void d.session.sendBinary(Buffer.alloc(200));
  void d.session.sendBinary(Buffer.alloc(200));
  const e = open();
  e.ep.stallWrites();
  void e.session.sendText('x');
  e.feed(raw(0x83)); // a protocol error fails the session
  e.ep.resumeWrites();
  await new Promise((resolve) => setTimeout(resolve, 20));
  await settle();
  t.same(unhandled, []);
});

// ------------------------------------------------------------------------------------------------ sessions

t.test('sendText/sendBinary resolve when flushed; bufferedAmount counts what is not in the kernel', async (t) => {
  const h = open();
  t.equal(h.session.bufferedAmount, 0);
  h.ep.stallWrites();
  const p1 = h.session.sendText('hello');
  t.equal(h.session.bufferedAmount, 7, '2 header bytes + 5');
  const p2 = h.session.sendBinary(new Uint8Array(1000));
  t.equal(h.session.bufferedAmount, 7 + 4 + 1000);
  let called: Error | null | undefined;
  t.equal(h.session.send(Buffer.from([1]), (e) => (called = e)), true);
  t.equal(await state(p1), 'pending');
  t.equal(called, undefined);
  h.ep.resumeWrites();
  t.equal(await state(p1), 'resolved');
  t.equal(await state(p2), 'resolved');
  t.equal(called, null);
  t.equal(h.session.bufferedAmount, 0);
  t.same(h.wire.read(), ['text:hello', 'binary:1000B', 'binary:01']);
  t.equal(h.session.protocol, '');
  t.equal(h.session.path, '/t');
  t.equal(h.session.remoteAddress, '127.0.0.1');
});

t.test('maxBufferedBytes with overflow "reject": the send fails, the session stays open', async (t) => {
  const errors: Error[] = [];
  const h = open({ maxBufferedBytes: 50_000, overflow: 'reject' }, { onError: (_s, e) => void errors.push(e) });
  t.equal(await state(h.session.sendBinary(Buffer.alloc(200_000))), 'resolved', 'one message over the bound is accepted when nothing is buffered');
  h.ep.stallWrites();
  const first = h.session.sendBinary(Buffer.alloc(40_000));
  const refused = h.session.sendBinary(Buffer.alloc(20_000));
  const rejection = await refused.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(rejection instanceof WebSocketSessionError);
  t.equal((rejection as WebSocketSessionError).code, 'WS_BUFFER_OVERFLOW');
  t.equal((rejection as WebSocketSessionError).closeCode, undefined);
  t.equal(h.session.send(Buffer.alloc(20_000)), false);
  t.equal(h.session.readyState, ReadyState.OPEN);
  t.same(errors, [], 'a refused send is the caller\'s to handle, not onError\'s');
  h.ep.resumeWrites();
  t.equal(await state(first), 'resolved');
  t.equal(await state(h.session.sendText('small')), 'resolved', 'sending works again once drained');
  t.same(h.wire.read(), ['binary:200000B', 'binary:40000B', 'text:small']);
});

t.test('maxBufferedBytes with overflow "close": the slow consumer is closed with 1008', async (t) => {
  const h = open({ maxBufferedBytes: 50_000, overflow: 'close' });
  h.ep.stallWrites();
  const first = h.session.sendBinary(Buffer.alloc(40_000));
  const refused = h.session.sendBinary(Buffer.alloc(20_000));
  const rejection = (await refused.then(
    () => undefined,
    (e: unknown) => e,
  )) as WebSocketSessionError;
  t.equal(rejection.code, 'WS_BUFFER_OVERFLOW');
  t.equal(rejection.closeCode, 1008);
  t.equal(h.session.readyState, ReadyState.CLOSING);
  t.equal(await state(h.session.sendText('x')), 'WS_SESSION_CLOSED');
  h.ep.resumeWrites();
  await settle();
  t.equal(await state(first), 'resolved', 'what was already on its way is sent');
  t.same(h.wire.read(), ['binary:40000B', 'close:1008:slow consumer']);
  t.same(h.rec.closes, [[1008, 'slow consumer']]);
  t.equal((h.rec.errors[0] as WebSocketSessionError).code, 'WS_BUFFER_OVERFLOW');
  t.equal(h.rec.errors.length, 1);
  t.equal(h.ep.isTransportClosed, true);
});

t.test('a failed session whose peer never reads is closed after closeTimeoutMs, even without an idle timeout', async (t) => {
  const h = open({ maxBufferedBytes: 50_000, overflow: 'close', closeTimeoutMs: 3000 });
  h.ep.stallWrites();
  void h.session.sendBinary(Buffer.alloc(40_000));
  void h.session.sendBinary(Buffer.alloc(20_000));
  await settle();
  t.equal(h.ep.isOpen, true);
  h.clock.advance(3000);
  t.equal(h.ep.isOpen, false, 'not held open forever by a peer that does not read');
  t.same(h.rec.closes, [[1008, 'slow consumer']]);
  t.equal(h.rec.errors.length, 1, 'the failure was reported once');
});

t.test('the echo of a peer\'s close is bounded by closeTimeoutMs too', async (t) => {
  const h = open({ closeTimeoutMs: 3000 });
  h.ep.stallWrites();
  fillPastHighWatermark(h);
  h.feed(close(1000, 'bye'));
  await settle();
  h.clock.advance(3000);
  t.equal(h.ep.isOpen, false);
  t.same(h.rec.closes, [[1000, 'bye']], 'the peer\'s code: it did send a close frame (§7.1.5)');
  t.equal((h.rec.errors[0] as WebSocketSessionError | undefined)?.code, 'WS_CLOSE_TIMEOUT');
});

t.test('awaitHandlers: reads are held until the handler settles, in order, the endpoint paused', async (t) => {
  const pending: (() => void)[] = [];
  const h = open({ awaitHandlers: true }, { onText: () => new Promise<void>((resolve) => void pending.push(resolve)) });
  h.feed(text('1'), text('2'), text('3'));
  await settle();
  t.same(h.rec.events, ['open', 'text:1']);
  t.equal(h.ep.isReadingPaused, true);
  t.equal(h.ep.isTransportPaused, true, 'backpressure reaches the transport');
  h.feed(text('4'), ping('while held'));
  await settle();
  t.same(h.rec.events, ['open', 'text:1'], 'later reads wait too');
  for (let i = 0; i < 4; i++) {
    pending[i]!();
    await settle();
  }
  t.same(h.rec.events, ['open', 'text:1', 'text:2', 'text:3', 'text:4', 'ping:while held']);
  t.equal(h.ep.isReadingPaused, false);
  t.equal(h.ep.isTransportPaused, false);
  t.same(h.wire.read(), ['pong:while held']);
  // A synchronous handler does not hold anything.
  h.feed(binary([1]), binary([2]));
  t.same(h.rec.events.slice(-2), ['binary:01', 'binary:02']);
});

t.test('without awaitHandlers, async handlers run concurrently', async (t) => {
  const pending: (() => void)[] = [];
  const h = open({}, { onText: () => new Promise<void>((resolve) => void pending.push(resolve)) });
  h.feed(text('1'), text('2'), text('3'));
  t.same(h.rec.events, ['open', 'text:1', 'text:2', 'text:3']);
  t.equal(pending.length, 3, 'all three started before any settled');
  t.equal(h.ep.isReadingPaused, false);
  for (const resolve of pending) resolve();
  await settle();
  t.equal(h.session.readyState, ReadyState.OPEN);
});

/** The checks after an application callback failed: 1011 on the wire, onClose, onError, the endpoint's cause. */
async function checkCallbackFailure(t: Test, h: Harness, label: string, withOnError = true): Promise<void> {
  await settle();
  const wire = h.wire.read();
  t.equal(wire.at(-1), 'close:1011:internal error', `${label}: 1011 (§7.4.1)`);
  t.same(h.rec.closes, [[1011, 'internal error']], label);
  if (withOnError) {
    t.equal(h.rec.errors.length, 1, `${label}: one onError`);
    t.equal((h.rec.errors[0] as WebSocketSessionError).code, 'WS_CALLBACK_FAILED', label);
    t.equal((h.rec.errors[0] as WebSocketSessionError).closeCode, 1011);
    t.ok(((h.rec.errors[0] as Error).cause as Error).message.startsWith('app bug'), `${label}: the cause is what was thrown`);
  }
  t.equal(h.ep.isTransportClosed, true, label);
  checkNoGuard(t, h);
}

t.test('a callback that throws or rejects closes with 1011 and WS_CALLBACK_FAILED', async (t) => {
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown): void => void uncaught.push(e);
  process.on('unhandledRejection', onUncaught);
  t.teardown(() => void process.off('unhandledRejection', onUncaught));
  const fail = (what: string) => () => {
    throw new Error(`app bug in ${what}`);
  };
  // onText throws: later messages of the same read are not delivered.
  const a = open({}, { onText: (_s, s) => (s === 'boom' ? fail('onText')() : undefined) });
  a.feed(text('a'), text('boom'), text('c'));
  t.same(a.rec.events.slice(0, 3), ['open', 'text:a', 'text:boom']);
  t.notOk(a.rec.events.includes('text:c'), 'c is not delivered');
  await checkCallbackFailure(t, a, 'onText throws');
  t.same(a.rec.events, ['open', 'text:a', 'text:boom', 'close:1011']);
  // onBinary rejects (not awaited).
  const b = open({}, { onBinary: () => Promise.reject(new Error('app bug: rejected')) });
  b.feed(binary([1]));
  await checkCallbackFailure(t, b, 'onBinary rejects');
  // onText rejects with awaitHandlers: the held messages are not delivered.
  const b2 = open({ awaitHandlers: true }, { onText: (_s, s) => (s === '2' ? Promise.reject(new Error('app bug: 2')) : Promise.resolve()) });
  b2.feed(text('1'), text('2'), text('3'));
  await checkCallbackFailure(t, b2, 'onText rejects with awaitHandlers');
  t.same(b2.rec.events, ['open', 'text:1', 'text:2', 'close:1011']);
  // onOpen, onPing, onPong throw.
  const d = open({}, { onOpen: fail('onOpen') });
  await checkCallbackFailure(t, d, 'onOpen throws');
  const e = open({}, { onPing: fail('onPing') });
  e.feed(ping('x'), text('after'));
  await checkCallbackFailure(t, e, 'onPing throws');
  t.same(e.rec.events, ['open', 'ping:x', 'close:1011']);
  const f = open({}, { onPong: fail('onPong') });
  f.feed(pong('x'));
  await checkCallbackFailure(t, f, 'onPong throws');
  // A rejection that is not an Error.
  const g = open({}, { onText: () => Promise.reject('app bug (a string)') });
  g.feed(text('x'));
  await settle();
  t.same(g.rec.closes, [[1011, 'internal error']]);
  await settle();
  t.same(uncaught, [], 'nothing reached the process');
});

t.test('a failed session delivers nothing more, even while its close frame is stuck', async (t) => {
  const h = open({}, { onText: (_s, s) => (s === 'boom' ? Promise.reject(new Error('app bug')) : undefined) });
  h.ep.stallWrites();
  fillPastHighWatermark(h);
  h.feed(text('boom'));
  await settle();
  t.equal(h.connection.state, 'FAILED');
  h.feed(text('after the failure'), close(1000, 'peer'));
  await settle();
  t.same(h.rec.events, ['open', 'text:boom'], 'no message after the failure');
  h.ep.resumeWrites();
  await settle();
  t.same(h.rec.closes, [[1011, 'internal error']], 'the peer\'s later close does not change the code');
});

t.test('a late rejection after the peer\'s close keeps the peer\'s code (§7.1.5)', async (t) => {
  let reject!: (e: Error) => void;
  const h = open({}, { onText: () => new Promise<void>((_resolve, r) => (reject = r)) });
  h.ep.stallWrites();
  fillPastHighWatermark(h);
  h.feed(text('slow'), close(4001, 'leaving'));
  reject(new Error('app bug, late'));
  await settle();
  h.ep.resumeWrites();
  await settle();
  t.same(h.rec.closes, [[4001, 'leaving']]);
  t.equal((h.rec.errors[0] as WebSocketSessionError).code, 'WS_CALLBACK_FAILED', 'still reported');
  t.equal(h.wire.read().at(-1), 'close:4001:', 'the echo was sent');
});

t.test('without an onError listener a failing callback still closes with 1011, quietly', async (t) => {
  const closes: number[] = [];
  const listener: WebSocketListener = {
    onText: () => {
      throw new Error('app bug, nobody listening');
    },
    onClose: (_s, code) => void closes.push(code),
  };
  const clock = new ManualClock();
  const ep = new MemoryEndPoint({ scheduler: new IdleTimeoutScheduler({ clock }) });
  const connection = new WebSocketConnection(ep, listener, { role: 'server', settings: resolveSettings() });
  ep.open(connection);
  ep.feed(text('x'));
  await settle();
  t.same(closes, [1011]);
  t.notOk(ep.closeCause instanceof ConnectionCallbackError);
  // A listener with nothing at all.
  const bare = new MemoryEndPoint();
  bare.open(new WebSocketConnection(bare, {}, { role: 'server', settings: resolveSettings() }));
  bare.feed(Buffer.concat([text('x'), binary([1]), ping('p'), pong(), close(1000)]));
  await settle();
  t.equal(bare.isTransportClosed, true);
  t.equal(bare.closeCause, undefined);
});

t.test('onClose and onError that throw do not escape', async (t) => {
  const h = open(
    {},
    {
      onClose: () => {
        throw new Error('app bug in onClose');
      },
      onError: () => {
        throw new Error('app bug in onError');
      },
    },
  );
  h.feed(raw(0x83));
  await settle();
  t.equal(h.rec.closes.length, 1);
  t.equal(h.ep.isTransportClosed, true);
  t.ok(h.ep.closeCause instanceof ProtocolError);
  t.ok(h.rec.errors.some((e) => e instanceof WebSocketSessionError && e.code === 'WS_CALLBACK_FAILED'), 'onClose throwing is reported');
});

// ------------------------------------------------------------------------------------------------ idle

t.test('the session inherits the endpoint\'s idle timeout unless the handler sets one', async (t) => {
  const inherit = open({}, {}, undefined, { idleTimeoutMs: 30_000 });
  t.equal(inherit.session.idleTimeoutMs, 30_000);
  const own = open({ idleTimeoutMs: 5000 }, {}, undefined, { idleTimeoutMs: 30_000 });
  t.equal(own.session.idleTimeoutMs, 5000);
  t.equal(own.ep.idleTimeoutMs, 5000);
  const never = open({ idleTimeoutMs: 0 }, {}, undefined, { idleTimeoutMs: 30_000 });
  t.equal(never.session.idleTimeoutMs, 0);
  own.session.idleTimeoutMs = 60_000;
  t.equal(own.ep.idleTimeoutMs, 60_000);
  t.throws(() => (own.session.idleTimeoutMs = -1), RangeError);
});

t.test('through the HTTP upgrade: the HTTP connection\'s idle timeout is inherited, or the handler\'s used', async (t) => {
  const SAMPLE = 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  for (const [handlerTimeout, expected] of [[undefined, 30_000], [120_000, 120_000]] as const) {
    const clock = new ManualClock();
    const ep = new MemoryEndPoint({ scheduler: new IdleTimeoutScheduler({ clock, tickMs: 100 }), idleTimeoutMs: 30_000 });
    const rec = new Recorder();
    const handler = new WebSocketUpgradeHandler({ accept: () => rec, ...(handlerTimeout === undefined ? {} : { idleTimeoutMs: handlerTimeout }) });
    ep.open(new HttpConnection(ep, () => new Router().route('/ws', handler), { reportError: () => {} }));
    ep.feed(SAMPLE);
    await settle();
    t.ok(ep.connection instanceof WebSocketConnection);
    const session = (ep.connection as WebSocketConnection).session;
    t.equal(session.idleTimeoutMs, expected);
    ep.takeOutput();
    clock.advance(expected);
    await settle();
    t.equal(ep.takeOutput().subarray(0, 4).toString('hex'), '880e03e9', 'close 1001 "idle timeout" on expiry');
  }
});

t.test('idle expiry closes with 1001; the peer\'s answer completes it', async (t) => {
  const h = open({}, {}, undefined, { idleTimeoutMs: 10_000 });
  h.clock.advance(9_900);
  await settle();
  t.same(h.wire.read(), []);
  h.feed(text('activity')); // resets the timer
  h.clock.advance(9_900);
  await settle();
  t.same(h.wire.read(), []);
  h.clock.advance(200);
  await settle();
  t.same(h.wire.read(), ['close:1001:idle timeout']);
  t.equal(h.session.readyState, ReadyState.CLOSING);
  h.feed(close(1001));
  await settle();
  t.equal(h.ep.isTransportClosed, true);
  t.same(h.rec.closes, [[1001, '']]);
  t.same(h.rec.errors, []);
});

t.test('the session.idleTimeoutMs setter takes effect at the next expiry', async (t) => {
  const h = open({}, {}, undefined, { idleTimeoutMs: 30_000 });
  h.session.idleTimeoutMs = 2000;
  h.clock.advance(2000);
  await settle();
  t.same(h.wire.read(), ['close:1001:idle timeout']);
  const never = open({}, {}, undefined, { idleTimeoutMs: 1000 });
  never.session.idleTimeoutMs = 0;
  never.clock.advance(100_000);
  await settle();
  t.same(never.wire.read(), [], '0: never');
  t.equal(never.session.readyState, ReadyState.OPEN);
});

t.test('pingIntervalMs: a ping on expiry, a pong keeps the session, no pong -> 1001 WS_PONG_TIMEOUT', async (t) => {
  const h = open({ pingIntervalMs: 1000 }, {}, undefined, { idleTimeoutMs: 30_000 });
  t.equal(h.session.idleTimeoutMs, 1000, 'the keepalive drives the idle timer');
  for (let round = 0; round < 3; round++) {
    h.clock.advance(1000);
    await settle();
    t.same(h.wire.read(), ['ping:'], `round ${round}: a ping`);
    h.clock.advance(500);
    h.feed(pong());
  }
  // Data from the peer also proves it is alive.
  h.clock.advance(1000);
  await settle();
  t.same(h.wire.read(), ['ping:']);
  h.clock.advance(500);
  h.feed(text('busy, no pong'));
  h.clock.advance(1000);
  await settle();
  t.same(h.wire.read(), ['ping:'], 'silent again: another ping, not a close');
  t.equal(h.session.readyState, ReadyState.OPEN);
  // Now no answer at all.
  h.clock.advance(1000);
  await settle();
  t.same(h.wire.read(), [`close:1001:no pong within 1000 ms`]);
  t.equal(h.ep.isTransportClosed, true);
  t.same(h.rec.closes, [[1001, 'no pong within 1000 ms']]);
  t.equal((h.rec.errors[0] as WebSocketSessionError).code, 'WS_PONG_TIMEOUT');
  t.equal((h.rec.errors[0] as WebSocketSessionError).closeCode, 1001);
  checkNoGuard(t, h);
});

t.test('pingIntervalMs with awaitHandlers: a pong unread because a handler holds reads is not a missed pong', async (t) => {
  let release!: () => void;
  const h = open({ pingIntervalMs: 1000, awaitHandlers: true }, { onText: () => new Promise<void>((resolve) => (release = resolve)) });
  h.feed(text('slow work'));
  h.clock.advance(1000);
  await settle();
  t.same(h.wire.read(), ['ping:']);
  h.clock.advance(100);
  h.feed(pong()); // held by the endpoint: reads are paused
  for (let i = 0; i < 3; i++) h.clock.advance(1000);
  await settle();
  t.equal(h.session.readyState, ReadyState.OPEN, 'not failed while reads are held');
  t.same(h.rec.errors, []);
  release();
  await settle();
  t.same(h.rec.events, ['open', 'text:slow work', 'pong:']);
  h.wire.read();
  h.clock.advance(1000);
  await settle();
  t.same(h.wire.read(), ['ping:'], 'the keepalive goes on');
  h.clock.advance(1000);
  await settle();
  t.same(h.rec.closes, [[1001, 'no pong within 1000 ms']], 'and a real silence still fails');
});

t.test('idle expiry during the close handshake ends the connection (1006)', async (t) => {
  const h = open({ closeTimeoutMs: 0 }, {}, undefined, { idleTimeoutMs: 1000 });
  h.session.close(1000);
  await settle();
  h.clock.advance(1100);
  t.equal(h.ep.isOpen, false);
  t.same(h.rec.closes, [[1006, 'idle timeout during close']]);
});

t.test('a SelectorManager-style shutdown closes with 1001', async (t) => {
  const h = open();
  h.connection.onShutdown();
  await settle();
  t.same(h.wire.read(), ['close:1001:server stopping']);
  h.feed(close(1001));
  await settle();
  t.equal(h.ep.isTransportClosed, true);
  t.same(h.rec.closes, [[1001, '']]);
  // Through the endpoint, as SelectorManager.stop() does it; twice is harmless.
  const h2 = open();
  h2.ep.shutdown();
  h2.ep.shutdown();
  await settle();
  t.same(h2.wire.read(), ['close:1001:server stopping']);
});

// ------------------------------------------------------------------------------------------------ broadcast

/** Records the Buffer objects handed to the transport. */
class SpyEndPoint extends MemoryEndPoint {
  readonly transmitted: Buffer[] = [];
  override transmit(buffers: Buffer[], byteCount: number): void {
    this.transmitted.push(...buffers);
    super.transmit(buffers, byteCount);
  }
}

t.test('broadcast encodes once: the same Buffer objects reach every endpoint', async (t) => {
  const hs = [0, 1, 2].map(() => open({}, {}, (scheduler) => new SpyEndPoint({ scheduler })));
  const result = broadcast(
    hs.map((h) => h.session),
    'hello all',
  );
  t.same(result, { sent: 3, skipped: 0 });
  await settle();
  const spies = hs.map((h) => h.ep as SpyEndPoint);
  t.equal(spies[0]!.transmitted.length, 1);
  t.equal(spies[1]!.transmitted[0], spies[0]!.transmitted[0], 'the same Buffer object');
  t.equal(spies[2]!.transmitted[0], spies[0]!.transmitted[0]);
  for (const h of hs) t.same(h.wire.read(), ['text:hello all']);
  // A large binary: one header for all, and the caller's payload itself (zero copy).
  const payload = Buffer.alloc(1000, 5);
  for (const s of spies) s.transmitted.length = 0;
  broadcast(
    hs.map((h) => h.session),
    payload,
  );
  await settle();
  for (const s of spies) {
    t.equal(s.transmitted.length, 2);
    t.equal(s.transmitted[0], spies[0]!.transmitted[0], 'the header is shared');
    t.equal(s.transmitted[1], payload, 'the payload is not copied');
  }
  for (const h of hs) t.same(h.wire.read(), ['binary:1000B']);
});

t.test('broadcast skips closed sessions and handles a stalled one by its policy', async (t) => {
  for (const overflow of ['reject', 'close'] as const) {
    const fast = open();
    const closed = open();
    const slow = open({ maxBufferedBytes: 1000, overflow });
    const other = open();
    closed.session.close();
    slow.ep.stallWrites();
    void slow.session.sendBinary(Buffer.alloc(900));
    await settle();
    const result = broadcast([fast.session, closed.session, slow.session, other.session], 'x'.repeat(500));
    t.same(result, { sent: 2, skipped: 2 }, overflow);
    await settle();
    t.same(fast.wire.read(), [`text:${'x'.repeat(500)}`]);
    t.same(other.wire.read(), [`text:${'x'.repeat(500)}`]);
    t.same(closed.wire.read(), ['close:1000:']);
    if (overflow === 'reject') {
      t.equal(slow.session.readyState, ReadyState.OPEN, 'reject: the slow session stays open');
      t.same(slow.rec.errors, []);
    } else {
      t.equal(slow.session.readyState, ReadyState.CLOSING, 'close: the slow session is closed');
      slow.ep.resumeWrites();
      await settle();
      t.same(slow.wire.read(), ['binary:900B', 'close:1008:slow consumer']);
      t.same(slow.rec.closes, [[1008, 'slow consumer']]);
    }
  }
  // An empty set, a Set of sessions.
  t.same(broadcast([], 'x'), { sent: 0, skipped: 0 });
  const set = new Set([open().session, open().session]);
  t.same(broadcast(set, Buffer.from([1])), { sent: 2, skipped: 0 });
});
