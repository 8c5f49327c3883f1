import t from 'tap';
import type { Test } from 'tap';
import { FrameParser } from '../lib/websocket/FrameParser.js';
import type { FrameParserListener, FrameParserOptions } from '../lib/websocket/FrameParser.js';
import { ProtocolError } from '../lib/websocket/errors.js';
import type { ProtocolErrorCode } from '../lib/websocket/errors.js';
import { mulberry32 } from './support/mulberry32.js';

// ------------------------------------------------------------------------------------------------ helpers

const KEY = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

interface RawFrame {
  fin?: boolean;
  /** RSV1..3 as bits 0x40, 0x20, 0x10 of the first byte. */
  rsv?: number;
  opcode: number;
  payload?: Buffer | string;
  /** The masking key; null for an unmasked frame. Default KEY (a client frame). */
  mask?: Buffer | null;
  /** Force a length encoding (non-minimal forms). */
  lengthForm?: 7 | 16 | 64;
}

/** Builds frame bytes by hand from RFC 6455 §5.2, independently of FrameGenerator. */
function raw(f: RawFrame): Buffer {
  const payload = typeof f.payload === 'string' ? Buffer.from(f.payload) : (f.payload ?? Buffer.alloc(0));
  const length = payload.length;
  const form = f.lengthForm ?? (length < 126 ? 7 : length < 65536 ? 16 : 64);
  const mask = f.mask === undefined ? KEY : f.mask;
  const head: number[] = [(f.fin === false ? 0 : 0x80) | (f.rsv ?? 0) | f.opcode];
  const maskBit = mask === null ? 0 : 0x80;
  if (form === 7) head.push(maskBit | length);
  else if (form === 16) head.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    head.push((length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  const body = Buffer.from(payload);
  if (mask !== null) {
    head.push(...mask);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  }
  return Buffer.concat([Buffer.from(head), body]);
}

const text = (payload: string | Buffer, extra: Partial<RawFrame> = {}): Buffer => raw({ opcode: 1, payload, ...extra });
const binary = (payload: string | Buffer, extra: Partial<RawFrame> = {}): Buffer => raw({ opcode: 2, payload, ...extra });
const cont = (payload: string | Buffer, extra: Partial<RawFrame> = {}): Buffer => raw({ opcode: 0, payload, ...extra });
const ping = (payload: string | Buffer = '', extra: Partial<RawFrame> = {}): Buffer => raw({ opcode: 9, payload, ...extra });
const pong = (payload: string | Buffer = '', extra: Partial<RawFrame> = {}): Buffer => raw({ opcode: 10, payload, ...extra });
const close = (payload: Buffer = Buffer.alloc(0), extra: Partial<RawFrame> = {}): Buffer => raw({ opcode: 8, payload, ...extra });
function closeBody(code: number, reason: string | Buffer = ''): Buffer {
  const r = typeof reason === 'string' ? Buffer.from(reason) : reason;
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

type Stop = 'message' | 'ping' | 'pong' | 'none';

/** Records events as strings (data copied, since it is valid only during the call). */
class Collector implements FrameParserListener {
  events: string[] = [];
  constructor(private readonly stopOn: Stop = 'none') {}
  onMessage(opcode: 1 | 2, data: Buffer, compressed: boolean): boolean {
    const body = opcode === 1 && !compressed ? data.toString('utf8') : data.toString('hex');
    this.events.push(`${opcode === 1 ? 'text' : 'binary'}${compressed ? '+z' : ''}:${body}`);
    return this.stopOn === 'message';
  }
  onPing(payload: Buffer): boolean {
    this.events.push(`ping:${payload.toString('hex')}`);
    return this.stopOn === 'ping';
  }
  onPong(payload: Buffer): boolean {
    this.events.push(`pong:${payload.toString('hex')}`);
    return this.stopOn === 'pong';
  }
  onClose(code: number, reason: string): boolean {
    this.events.push(`close:${code}:${reason}`);
    return false;
  }
}

function server(options: Partial<FrameParserOptions> = {}, stopOn: Stop = 'none'): [FrameParser, Collector] {
  const c = new Collector(stopOn);
  return [new FrameParser(c, { role: 'server', ...options }), c];
}

/** Feeds `input` cut at `cuts` (each piece a fresh buffer, as reads are); returns events and the error code. */
function feed(input: Buffer, cuts: number[], options: Partial<FrameParserOptions> = {}): { events: string[]; error?: string } {
  const [p, c] = server(options);
  let start = 0;
  try {
    for (const end of [...cuts, input.length]) {
      const piece = Buffer.from(input.subarray(start, end));
      const n = p.parse(piece);
      if (n !== piece.length && !p.isClosed) throw new Error(`consumed ${n} of ${piece.length}`);
      start = end;
      if (p.isClosed) break;
    }
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return { events: c.events, error: `${error.closeCode}:${error.code}` };
  }
  return { events: c.events };
}

function expectError(
  t: Test,
  input: Buffer,
  code: ProtocolErrorCode,
  closeCode: number,
  options: Partial<FrameParserOptions> = {},
  name: string = code,
): void {
  const [p] = server(options);
  t.throws(() => p.parse(input), { code, closeCode, name: 'ProtocolError' }, name);
}

// ------------------------------------------------------------------------------------------------ basics

t.test('a masked text frame from a client is delivered as a view of the input', async (t) => {
  let seen: Buffer | undefined;
  const p = new FrameParser(
    {
      onMessage: (opcode, data) => {
        t.equal(opcode, 1);
        t.equal(data.toString(), 'Hello');
        seen = data;
      },
      onPing: () => {},
      onPong: () => {},
      onClose: () => {},
    },
    { role: 'server' },
  );
  // RFC 6455 §5.7: "A single-frame masked text message".
  const input = Buffer.from('818537fa213d7f9f4d5158', 'hex');
  t.equal(p.parse(input), input.length);
  t.equal(seen!.buffer, input.buffer, 'zero copy: the message is a view of the input (unmasked in place)');
  t.equal(input.subarray(6).toString(), 'Hello', 'the input was unmasked in place');
});

t.test('RFC 6455 §5.7 examples', async (t) => {
  const client = new Collector();
  const p = new FrameParser(client, { role: 'client' });
  const frames = [
    '810548656c6c6f', // unmasked text "Hello"
    '010348656c', // fragmented "Hel"
    '80026c6f', // "lo"
    '890548656c6c6f', // unmasked ping "Hello"
    '8205' + '48656c6c6f', // binary
  ].map((h) => Buffer.from(h, 'hex'));
  for (const f of frames) t.equal(p.parse(f), f.length);
  t.same(client.events, ['text:Hello', 'text:Hello', 'ping:48656c6c6f', 'binary:48656c6c6f']);
  const s = new Collector();
  const q = new FrameParser(s, { role: 'server' });
  const pongFrame = Buffer.from('8a8537fa213d7f9f4d5158', 'hex'); // masked pong "Hello"
  q.parse(pongFrame);
  t.same(s.events, ['pong:48656c6c6f']);
});

t.test('many frames in one buffer, and an offset', async (t) => {
  const frames = [text('a'), binary(Buffer.from([1, 2, 3])), ping('p'), text(''), pong(), text('é'.repeat(100))];
  const [p, c] = server();
  const prefix = Buffer.from('garbage');
  const input = Buffer.concat([prefix, ...frames]);
  t.equal(p.parse(input, prefix.length), input.length - prefix.length);
  t.same(c.events, ['text:a', 'binary:010203', 'ping:70', 'text:', 'pong:', `text:${'é'.repeat(100)}`]);
  t.equal(p.parse(Buffer.alloc(0)), 0, 'empty input');
});

t.test('16-bit and 64-bit lengths, and non-minimal encodings (accepted)', async (t) => {
  for (const n of [125, 126, 127, 1000, 65535, 65536, 70000]) {
    const payload = Buffer.alloc(n, 0x61);
    const r = feed(text(payload), []);
    t.same(r, { events: [`text:${'a'.repeat(n)}`] }, `length ${n}`);
    const r2 = feed(binary(payload), [1, 3, 9, 100]);
    t.equal(r2.events[0]?.length, 'binary:'.length + 2 * n, `length ${n}, split`);
  }
  t.same(feed(text('hi', { lengthForm: 16 }), []), { events: ['text:hi'] }, '16-bit form for 2 bytes');
  t.same(feed(text('hi', { lengthForm: 64 }), []), { events: ['text:hi'] }, '64-bit form for 2 bytes');
  t.same(feed(text('x'.repeat(200), { lengthForm: 64 }), [5]), { events: [`text:${'x'.repeat(200)}`] });
  t.same(feed(ping('p', { lengthForm: 7 }), []), { events: ['ping:70'] });
});

t.test('a 64-bit length with the most significant bit set is a protocol error', async (t) => {
  const head = Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, ...KEY]);
  expectError(t, head, 'WS_64BIT_LENGTH', 1002, { maxFrameBytes: Infinity, maxMessageBytes: Infinity });
  expectError(t, head.subarray(0, 10), 'WS_64BIT_LENGTH', 1002, {}, 'before the mask key arrives');
});

// ------------------------------------------------------------------------------------------------ rules

t.test('masking per role (§5.1)', async (t) => {
  expectError(t, text('hi', { mask: null }), 'WS_UNMASKED_FRAME', 1002);
  const c = new Collector();
  const p = new FrameParser(c, { role: 'client' });
  t.throws(() => p.parse(text('hi')), { code: 'WS_MASKED_FRAME', closeCode: 1002 });
  expectError(t, text('hi', { mask: null }).subarray(0, 2), 'WS_UNMASKED_FRAME', 1002, {}, 'from the first 2 bytes');
});

t.test('RSV bits (§5.2, RFC 7692 §6)', async (t) => {
  for (const rsv of [0x40, 0x20, 0x10, 0x70]) {
    expectError(t, text('x', { rsv }), 'WS_RSV_BITS', 1002, {}, `rsv 0x${rsv.toString(16)} without extension`);
  }
  const z = { allowRsv1: true };
  // RSV1 on the first data frame: a compressed message, delivered as is, not UTF-8 validated.
  t.same(feed(text(Buffer.from([0xff, 0xfe]), { rsv: 0x40 }), [], z), { events: ['text+z:fffe'] });
  t.same(feed(Buffer.concat([text('a', { rsv: 0x40, fin: false }), cont(Buffer.from([0xff]))]), [], z), {
    events: ['text+z:61ff'],
  });
  t.same(feed(text(Buffer.from('ok')), [], z), { events: ['text:ok'] }, 'uncompressed messages still work');
  expectError(t, Buffer.concat([text('a', { fin: false }), cont('b', { rsv: 0x40 })]), 'WS_RSV_BITS', 1002, z, 'RSV1 on a continuation');
  expectError(t, ping('p', { rsv: 0x40 }), 'WS_RSV_BITS', 1002, z, 'RSV1 on a control frame');
  expectError(t, text('x', { rsv: 0x20 }), 'WS_RSV_BITS', 1002, z, 'RSV2 even with allowRsv1');
  expectError(t, text('x', { rsv: 0x10 }), 'WS_RSV_BITS', 1002, z, 'RSV3 even with allowRsv1');
});

t.test('reserved opcodes (§5.2)', async (t) => {
  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    expectError(t, raw({ opcode, payload: 'x' }), 'WS_BAD_OPCODE', 1002, {}, `opcode 0x${opcode.toString(16)}`);
  }
});

t.test('control frames: at most 125 bytes and never fragmented (§5.5)', async (t) => {
  for (const opcode of [8, 9, 10]) {
    t.same(feed(raw({ opcode: 9, payload: Buffer.alloc(125, 1) }), [30]).events.length, 1, '125 bytes is fine');
    const over = raw({ opcode, payload: Buffer.alloc(126) });
    expectError(t, over, 'WS_CONTROL_TOO_LONG', 1002, {}, `opcode ${opcode}, 126 bytes`);
    expectError(t, over.subarray(0, 2), 'WS_CONTROL_TOO_LONG', 1002, {}, `opcode ${opcode}, from the first 2 bytes`);
    expectError(t, raw({ opcode, payload: Buffer.alloc(2, 0x03), fin: false }), 'WS_FRAGMENTED_CONTROL', 1002);
  }
});

t.test('continuation rules (§5.4)', async (t) => {
  expectError(t, cont('x'), 'WS_BAD_CONTINUATION', 1002, {}, 'continuation without a message');
  expectError(t, Buffer.concat([text('a'), cont('x')]), 'WS_BAD_CONTINUATION', 1002, {}, 'continuation after a whole message');
  expectError(t, Buffer.concat([text('a', { fin: false }), text('b')]), 'WS_BAD_CONTINUATION', 1002, {}, 'text inside a fragmented message');
  expectError(t, Buffer.concat([binary('a', { fin: false }), binary('b', { fin: false })]), 'WS_BAD_CONTINUATION', 1002);
});

t.test('fragmented messages with interleaved control frames', async (t) => {
  const input = Buffer.concat([
    text('Hel', { fin: false }),
    ping('1'),
    cont('', { fin: false }),
    pong('2'),
    cont('lo é', { fin: false }),
    ping(''),
    cont('!'),
    binary(Buffer.from([1]), { fin: false }),
    cont(Buffer.from([2])),
    text('', { fin: false }),
    cont(''),
  ]);
  const expected = ['ping:31', 'pong:32', 'ping:', 'text:Hello é!', 'binary:0102', 'text:'];
  t.same(feed(input, []), { events: expected });
  // A multi-byte character split across fragments is fine.
  const euro = Buffer.from('€');
  t.same(feed(Buffer.concat([text(euro.subarray(0, 1), { fin: false }), cont(euro.subarray(1, 2), { fin: false }), cont(euro.subarray(2))]), []), {
    events: ['text:€'],
  });
});

t.test('a fragment that is a view of the input survives the caller reusing its buffer', async (t) => {
  const [p, c] = server();
  const first = Buffer.concat([text('abc', { fin: false }), cont('def', { fin: false })]);
  t.equal(p.parse(first), first.length);
  first.fill(0x58); // the connection reuses its read buffer
  const last = cont('ghi');
  t.equal(p.parse(last), last.length);
  t.same(c.events, ['text:abcdefghi']);
});

// ------------------------------------------------------------------------------------------------ UTF-8

t.test('text must be valid UTF-8 (§8.1): 1007', async (t) => {
  expectError(t, text(Buffer.from([0xc0, 0x80])), 'WS_INVALID_UTF8', 1007, {}, 'overlong');
  expectError(t, text(Buffer.from([0xed, 0xa0, 0x80])), 'WS_INVALID_UTF8', 1007, {}, 'surrogate');
  expectError(t, text(Buffer.from([0xf4, 0x90, 0x80, 0x80])), 'WS_INVALID_UTF8', 1007, {}, 'above U+10FFFF');
  expectError(t, text(Buffer.from([0x61, 0xe2, 0x82])), 'WS_INVALID_UTF8', 1007, {}, 'truncated at the end of the message');
  expectError(t, Buffer.concat([text(Buffer.from([0xe2]), { fin: false }), cont(Buffer.from([0x82]))]), 'WS_INVALID_UTF8', 1007, {}, 'truncated at the end of a fragmented message');
  t.same(feed(binary(Buffer.from([0xff])), []), { events: ['binary:ff'] }, 'binary is not validated');
});

t.test('UTF-8 fails fast in the middle of a large frame, before the rest arrives', async (t) => {
  const n = 1_000_000;
  const payload = Buffer.alloc(n, 0x61);
  payload[100] = 0xff;
  const frame = text(payload);
  const [p, c] = server();
  // Only the header and the first 1000 payload bytes: the frame is far from complete.
  t.throws(() => p.parse(frame.subarray(0, 14 + 1000)), { code: 'WS_INVALID_UTF8', closeCode: 1007 });
  t.same(c.events, []);
  // Same with a long valid start: the invalid byte arrives in the 3rd read.
  const payload2 = Buffer.alloc(n, 0x61);
  payload2[5000] = 0xc0;
  const frame2 = text(payload2);
  const [q] = server();
  t.equal(q.state, 'HEADER');
  t.equal(q.parse(frame2.subarray(0, 3000)), 3000, 'valid start: consumed, nothing delivered');
  t.equal(q.state, 'PAYLOAD');
  t.equal(q.parse(frame2.subarray(3000, 4000)), 1000);
  t.throws(() => q.parse(frame2.subarray(4000, 6000)), { code: 'WS_INVALID_UTF8' }, 'fails in the read holding the bad byte');
  // A split sequence across reads inside one frame is fine.
  const good = text(Buffer.from('a'.repeat(500) + '🎉' + 'b'.repeat(500)));
  t.same(feed(good, [8 + 500 + 2]).events, [`text:${'a'.repeat(500)}🎉${'b'.repeat(500)}`]);
});

t.test('UTF-8 fails fast in the middle of a fragmented message', async (t) => {
  const [p, c] = server();
  t.equal(p.parse(text('ok', { fin: false })), 8);
  t.throws(() => p.parse(cont(Buffer.from([0x61, 0xff]), { fin: false })), { code: 'WS_INVALID_UTF8', closeCode: 1007 }, 'at the bad fragment, not at the end');
  t.same(c.events, []);
});

// ------------------------------------------------------------------------------------------------ close

t.test('close frames (§5.5.1, §7.4)', async (t) => {
  t.same(feed(close(), []), { events: ['close:1005:'] }, 'empty payload: 1005');
  t.same(feed(close(closeBody(1000)), []), { events: ['close:1000:'] });
  t.same(feed(close(closeBody(1001, 'bye é')), [3]), { events: ['close:1001:bye é'] });
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
    t.same(feed(close(closeBody(code, 'r')), []), { events: [`close:${code}:r`] }, `code ${code} accepted`);
  }
  expectError(t, close(Buffer.from([0x03])), 'WS_BAD_CLOSE_PAYLOAD', 1002, {}, '1-byte payload');
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    expectError(t, close(closeBody(code)), 'WS_BAD_CLOSE_CODE', 1002, {}, `code ${code} refused`);
  }
  expectError(t, close(closeBody(1000, Buffer.from([0xff]))), 'WS_INVALID_UTF8', 1007, {}, 'reason not UTF-8');
  expectError(t, close(closeBody(1000, Buffer.from([0xe2, 0x82]))), 'WS_INVALID_UTF8', 1007, {}, 'reason truncated');
  t.same(feed(close(closeBody(1000, 'x'.repeat(123))), []).events, [`close:1000:${'x'.repeat(123)}`], '123-byte reason');
});

t.test('nothing after a close frame is parsed', async (t) => {
  const [p, c] = server();
  const head = Buffer.concat([text('a'), close(closeBody(1000, 'done'))]);
  const input = Buffer.concat([head, text('after'), Buffer.from([0xff, 0xff])]);
  t.equal(p.parse(input), head.length, 'consumed up to the end of the close frame');
  t.equal(p.isClosed, true);
  t.equal(p.state, 'CLOSED');
  t.same(c.events, ['text:a', 'close:1000:done']);
  p.parse(text('more'));
  t.same(c.events, ['text:a', 'close:1000:done'], 'later input delivers nothing');
  t.equal(input.subarray(head.length).equals(Buffer.concat([text('after'), Buffer.from([0xff, 0xff])])), true, 'bytes after the close are untouched');
  p.reset();
  t.equal(p.isClosed, false);
  p.parse(text('again'));
  t.same(c.events.at(-1), 'text:again', 'reset() makes it usable again');
});

// ------------------------------------------------------------------------------------------------ limits

t.test('maxFrameBytes: at the limit ok, over it 1009 from the header alone', async (t) => {
  const o = { maxFrameBytes: 1000 };
  t.same(feed(binary(Buffer.alloc(1000)), [5], o).events.length, 1, 'at the limit');
  const over = binary(Buffer.alloc(1001));
  expectError(t, over, 'WS_FRAME_TOO_BIG', 1009, o);
  expectError(t, over.subarray(0, 8 + 10), 'WS_FRAME_TOO_BIG', 1009, o, 'header + a little');
  expectError(t, over.subarray(0, 4), 'WS_FRAME_TOO_BIG', 1009, o, 'before the mask key arrives');
  // A huge announced length is refused before anything is allocated.
  const huge = Buffer.from([0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, ...KEY]); // 4 GiB
  expectError(t, huge, 'WS_FRAME_TOO_BIG', 1009, {}, '4 GiB frame with the default limit');
  const [p] = server(o);
  t.equal(p.parse(over.subarray(0, 3)), 3, 'the length is not complete yet');
  t.throws(() => p.parse(over.subarray(3, 5)), { code: 'WS_FRAME_TOO_BIG' }, 'with the header split, at its 4th byte');
});

t.test('maxMessageBytes: counted over fragments, checked at each header', async (t) => {
  const o = { maxMessageBytes: 100, maxFrameBytes: 1000 };
  t.same(feed(Buffer.concat([binary(Buffer.alloc(60), { fin: false }), cont(Buffer.alloc(40))]), [], o).events.length, 1, 'exactly 100');
  t.same(feed(text('x'.repeat(100)), [], o).events.length, 1, 'one frame of 100');
  expectError(t, text('x'.repeat(101)), 'WS_MESSAGE_TOO_BIG', 1009, o, 'one frame of 101');
  const [p, c] = server(o);
  p.parse(binary(Buffer.alloc(60), { fin: false }));
  const next = cont(Buffer.alloc(41));
  t.throws(() => p.parse(next.subarray(0, 7)), { code: 'WS_MESSAGE_TOO_BIG', closeCode: 1009 }, 'from the continuation header');
  t.same(c.events, []);
  // Control frames do not count against the message.
  t.same(feed(Buffer.concat([binary(Buffer.alloc(60), { fin: false }), ping(Buffer.alloc(100)), cont(Buffer.alloc(40))]), [], o).events.length, 2);
});

t.test('maxFragments: the frames of one message', async (t) => {
  const o = { maxFragments: 4 };
  const frames = (n: number): Buffer =>
    Buffer.concat([text('a', { fin: false }), ...Array.from({ length: n - 2 }, () => cont('', { fin: false })), cont('b')]);
  t.same(feed(frames(4), [], o), { events: ['text:ab'] }, '4 frames ok');
  const [p] = server(o);
  let error: unknown;
  try {
    p.parse(frames(5));
  } catch (e) {
    error = e;
  }
  t.ok(error instanceof ProtocolError, '5 frames refused');
  t.equal((error as ProtocolError).code, 'WS_TOO_MANY_FRAGMENTS');
  t.ok([1008, 1009].includes((error as ProtocolError).closeCode), `close code ${(error as ProtocolError).closeCode}`);
  t.same(feed(Buffer.concat([frames(4), frames(4)]), [], o).events, ['text:ab', 'text:ab'], 'the count is per message');
  const defaults = feed(frames(1024), []);
  t.same(defaults.events, ['text:ab'], 'default allows 1024');
  t.match(feed(frames(1025), []).error, /WS_TOO_MANY_FRAGMENTS/, 'default refuses 1025');
});

// ------------------------------------------------------------------------------------------------ splits

t.test('a stream split at every offset gives identical events', async (t) => {
  const stream = Buffer.concat([
    text('Hello'),
    binary(Buffer.alloc(300, 7)),
    text('frag', { fin: false }),
    ping('in between'),
    cont('ment ', { fin: false }),
    pong(''),
    cont('€🎉'),
    text('é'.repeat(40), { lengthForm: 64 }),
    binary(Buffer.alloc(0)),
    close(closeBody(1000, 'bye')),
  ]);
  const whole = feed(stream, []);
  t.equal(whole.events.length, 8);
  t.equal(whole.error, undefined);
  let mismatches = 0;
  for (let i = 0; i <= stream.length; i++) {
    if (JSON.stringify(feed(stream, [i])) !== JSON.stringify(whole)) mismatches++;
  }
  t.equal(mismatches, 0, 'two pieces, every offset');
  const bytewise = feed(stream, Array.from({ length: stream.length - 1 }, (_, i) => i + 1));
  t.same(bytewise, whole, 'one byte at a time');
  const rnd = mulberry32(42);
  mismatches = 0;
  for (let n = 0; n < 300; n++) {
    const cuts = [Math.floor(rnd() * stream.length), Math.floor(rnd() * stream.length), Math.floor(rnd() * stream.length)].sort((a, b) => a - b);
    if (JSON.stringify(feed(stream, cuts)) !== JSON.stringify(whole)) mismatches++;
  }
  t.equal(mismatches, 0, 'three pieces, random offsets');
});

t.test('a stream with a violation gives the same error at every split', async (t) => {
  const bad = Buffer.concat([text('ok'), text('split', { fin: false }), cont(Buffer.from([0xce, 0xba, 0xe1, 0xbd])), cont(Buffer.from([0xff]))]);
  const whole = feed(bad, []);
  t.same(whole, { events: ['text:ok'], error: '1007:WS_INVALID_UTF8' });
  let mismatches = 0;
  for (let i = 0; i <= bad.length; i++) if (JSON.stringify(feed(bad, [i])) !== JSON.stringify(whole)) mismatches++;
  t.equal(mismatches, 0);
});

// ------------------------------------------------------------------------------------------------ stop

t.test('a callback returning true stops parse() right after that frame', async (t) => {
  const frames = [text('one'), ping('p'), text('two'), pong('q'), text('three')];
  const input = Buffer.concat(frames);
  const snapshot = Buffer.from(input);
  const [p, c] = server({}, 'message');
  let at = 0;
  const consumed: number[] = [];
  for (let n = 0; n < 10 && at < input.length; n++) {
    const k = p.parse(input, at);
    consumed.push(k);
    at += k;
  }
  t.same(consumed, [frames[0].length, frames[1].length + frames[2].length, frames[3].length + frames[4].length]);
  t.same(c.events, ['text:one', 'ping:70', 'text:two', 'pong:71', 'text:three']);
  // The bytes after a stop were not touched (still masked) until fed again.
  const [q] = server({}, 'ping');
  const copy = Buffer.from(snapshot);
  const first = q.parse(copy);
  t.equal(first, frames[0].length + frames[1].length);
  t.ok(copy.subarray(first).equals(snapshot.subarray(first)), 'unconsumed bytes unchanged');
  // Stop on a split frame completing: the count covers only what belongs to it.
  const [r, rc] = server({}, 'message');
  const two = Buffer.concat([text('abcdef'), text('gh')]);
  t.equal(r.parse(two.subarray(0, 5)), 5);
  t.equal(r.parse(two.subarray(5)), frames[0].length - 5 + 3, 'stops after the first message completes');
  t.same(rc.events, ['text:abcdef']);
});

t.test('FAILED is final until reset()', async (t) => {
  const [p, c] = server();
  let first: unknown;
  try {
    p.parse(cont('x'));
  } catch (e) {
    first = e;
  }
  t.ok(first instanceof ProtocolError);
  t.equal(p.isFailed, true);
  t.equal(p.state, 'FAILED');
  t.throws(() => p.parse(text('fine')), first as Error, 'throws the same error again');
  t.same(c.events, []);
  p.reset();
  t.equal(p.parse(text('fine')), text('fine').length);
  t.same(c.events, ['text:fine']);
});

t.test('a listener that throws propagates, the parser stays consistent', async (t) => {
  let boom = true;
  const events: string[] = [];
  const p = new FrameParser(
    {
      onMessage: (_o, d) => {
        events.push(d.toString());
        if (boom) throw new Error('app bug');
      },
      onPing: () => {},
      onPong: () => {},
      onClose: () => {},
    },
    { role: 'server' },
  );
  t.throws(() => p.parse(text('a')), { message: 'app bug' });
  boom = false;
  p.parse(text('b'));
  t.same(events, ['a', 'b']);
});

t.test('options are checked', async (t) => {
  const c = new Collector();
  t.throws(() => new FrameParser(c, { role: 'peer' as 'server' }), TypeError);
  t.throws(() => new FrameParser(c, { role: 'server', maxFrameBytes: -1 }), RangeError);
  t.throws(() => new FrameParser(c, { role: 'server', maxMessageBytes: Number.NaN }), RangeError);
  t.throws(() => new FrameParser(c, { role: 'server', maxFragments: 0 }), RangeError);
});

// ------------------------------------------------------------------------------------------------ fuzz

t.test('seeded fuzz: only ProtocolError escapes, with the expected close codes, split-invariant', async (t) => {
  const rnd = mulberry32(0x6455);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
  const texts = ['', 'a', 'hello', 'é', '€🎉', '日本語', 'x'.repeat(130), 'y'.repeat(300)];
  const o = { maxFrameBytes: 2000, maxMessageBytes: 3000, maxFragments: 6 };
  const closeCodes = new Set([1002, 1007, 1008, 1009]);
  const errorCodes = new Map<string, number>();
  let failures = 0;
  let errors = 0;
  for (let n = 0; n < 3000; n++) {
    const parts: Buffer[] = [];
    const frames = 1 + Math.floor(rnd() * 6);
    for (let k = 0; k < frames; k++) {
      const r = rnd();
      if (r < 0.3) parts.push(text(pick(texts)));
      else if (r < 0.45) parts.push(binary(Buffer.alloc(Math.floor(rnd() * 2500), k)));
      else if (r < 0.5) {
        // A large fragmented binary message: reaches maxMessageBytes.
        const pieces = 2 + Math.floor(rnd() * 3);
        for (let i = 0; i < pieces; i++) parts.push(raw({ opcode: i === 0 ? 2 : 0, fin: i === pieces - 1, payload: Buffer.alloc(900 + Math.floor(rnd() * 900)) }));
      } else if (r < 0.6) {
        const pieces = 1 + Math.floor(rnd() * 8);
        const s = Buffer.from(pick(texts) + pick(texts));
        for (let i = 0; i < pieces; i++) {
          const a = Math.floor((s.length * i) / pieces);
          const b = Math.floor((s.length * (i + 1)) / pieces);
          parts.push(raw({ opcode: i === 0 ? 1 : 0, fin: i === pieces - 1, payload: s.subarray(a, b) }));
          if (rnd() < 0.2) parts.push(ping(pick(texts).slice(0, 20)));
        }
      } else if (r < 0.7) parts.push(ping(Buffer.alloc(Math.floor(rnd() * 130))));
      else if (r < 0.8) parts.push(pong(pick(texts).slice(0, 50)));
      else if (r < 0.85) parts.push(close(rnd() < 0.5 ? closeBody(Math.floor(rnd() * 5000), pick(texts).slice(0, 20)) : Buffer.alloc(Math.floor(rnd() * 3))));
      else parts.push(raw({ opcode: Math.floor(rnd() * 16), fin: rnd() < 0.7, rsv: rnd() < 0.1 ? 0x40 : 0, payload: Buffer.alloc(Math.floor(rnd() * 200), 0x41), mask: rnd() < 0.05 ? null : KEY }));
    }
    const stream = Buffer.concat(parts);
    // Mutate a few bytes, or none.
    const mutations = rnd() < 0.5 ? 0 : 1 + Math.floor(rnd() * 3);
    for (let m = 0; m < mutations && stream.length > 0; m++) stream[Math.floor(rnd() * stream.length)] = Math.floor(rnd() * 256);
    const cuts: number[] = [];
    for (let at = Math.floor(rnd() * 40); at < stream.length && cuts.length < 6; at += 1 + Math.floor(rnd() * 600)) cuts.push(at);
    let whole: ReturnType<typeof feed>;
    let split: ReturnType<typeof feed>;
    try {
      whole = feed(stream, [], o);
      split = feed(stream, cuts, o);
    } catch (e) {
      failures++;
      t.fail(`case ${n}: non-protocol error escaped: ${String(e)}`);
      continue;
    }
    if (JSON.stringify(whole) !== JSON.stringify(split)) {
      failures++;
      if (failures < 5) t.fail(`case ${n}: whole and split differ`, { whole, split, cuts });
    }
    if (whole.error !== undefined) {
      errors++;
      const [closeCode, code] = whole.error.split(':');
      errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1);
      if (!closeCodes.has(Number(closeCode))) {
        failures++;
        t.fail(`case ${n}: close code ${closeCode}`);
      }
    }
  }
  t.equal(failures, 0, 'no failures');
  t.ok(errors > 500, `errors were exercised (${errors})`);
  t.ok(errorCodes.size >= 10, `many rules were exercised: ${[...errorCodes].map(([k, v]) => `${k}=${v}`).join(' ')}`);
});

t.test('small masked frames: unmasking and the ASCII test in one pass agree with the validator at every size', async (t) => {
  const rnd = mulberry32(0x5eed);
  const ascii = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => 0x20 + Math.floor(rnd() * 95)));
  for (let n = 0; n <= 200; n += n < 12 ? 1 : 7) {
    const key = Buffer.from([Math.floor(rnd() * 256), Math.floor(rnd() * 256), Math.floor(rnd() * 256), Math.floor(rnd() * 256)]);
    const plain = ascii(n);
    t.same(feed(text(plain, { mask: key }), []).events, [`text:${plain.toString()}`], `${n} ASCII bytes`);
    if (n >= 2) {
      // One non-ASCII character at every position class (the first, middle and last word, and the tail).
      for (const at of new Set([0, n >> 1, n - 2])) {
        const mixed = Buffer.concat([plain.subarray(0, at), Buffer.from('é'), plain.subarray(at + 2)]);
        t.same(feed(text(mixed, { mask: key }), []).events, [`text:${mixed.toString()}`], `${n} bytes, é at ${at}`);
        const bad = Buffer.from(mixed);
        bad[at + 1] = 0x41; // é's continuation byte replaced: invalid UTF-8
        t.equal(feed(text(bad, { mask: key }), []).error, '1007:WS_INVALID_UTF8', `${n} bytes, a broken é at ${at}`);
      }
    }
  }
  // A character split across fragments: an ASCII-only fragment after an incomplete sequence is still invalid,
  // and a fragment that completes it is valid.
  const euro = Buffer.from('€'); // e2 82 ac
  t.equal(feed(Buffer.concat([text(euro.subarray(0, 2), { fin: false }), cont('abc')]), []).error, '1007:WS_INVALID_UTF8');
  t.same(feed(Buffer.concat([text(euro.subarray(0, 2), { fin: false }), cont(Buffer.concat([euro.subarray(2), Buffer.from('abc')]))]), []).events, ['text:€abc']);
});
