import t from 'tap';
import { FrameGenerator } from '../lib/websocket/FrameGenerator.js';
import { FrameParser } from '../lib/websocket/FrameParser.js';
import type { FrameParserListener } from '../lib/websocket/FrameParser.js';
import { OpCode, isControl } from '../lib/websocket/OpCode.js';
import { CloseStatus, encodeClosePayload, isValidWireCloseCode, parseClosePayload } from '../lib/websocket/CloseStatus.js';
import { FrameEncodeError, ProtocolError } from '../lib/websocket/errors.js';
import { acceptKey, isValidClientKey } from '../lib/websocket/acceptKey.js';

const KEY = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
const fixedKey = (): Buffer => KEY;
const hex = (buffers: Buffer[]): string => Buffer.concat(buffers).toString('hex');

class Collector implements FrameParserListener {
  events: string[] = [];
  onMessage(opcode: 1 | 2, data: Buffer, compressed: boolean): void {
    this.events.push(`${opcode}${compressed ? 'z' : ''}:${data.toString('hex')}`);
  }
  onPing(payload: Buffer): void {
    this.events.push(`ping:${payload.toString('hex')}`);
  }
  onPong(payload: Buffer): void {
    this.events.push(`pong:${payload.toString('hex')}`);
  }
  onClose(code: number, reason: string): void {
    this.events.push(`close:${code}:${reason}`);
  }
}

/** Parses generated buffers with the opposite role; returns the events. */
function roundTrip(from: 'server' | 'client', frames: Buffer[][], allowRsv1 = false): string[] {
  const c = new Collector();
  const parser = new FrameParser(c, { role: from === 'server' ? 'client' : 'server', allowRsv1, maxFrameBytes: 1 << 22 });
  for (const buffers of frames) {
    for (const b of buffers) {
      // Each buffer copied: the parser unmasks in place, and the generated buffers must stay as they are.
      const copy = Buffer.from(b);
      if (parser.parse(copy) !== copy.length) throw new Error('not all consumed');
    }
  }
  return c.events;
}

t.test('server frames: exact bytes for each length class (§5.2)', async (t) => {
  const g = new FrameGenerator({ role: 'server' });
  // RFC 6455 §5.7: a single-frame unmasked text message.
  t.equal(hex(g.encode(OpCode.TEXT, Buffer.from('Hello'))), '810548656c6c6f');
  t.equal(hex(g.encode(OpCode.BINARY, Buffer.alloc(0))), '8200');
  t.equal(hex(g.encode(OpCode.TEXT, Buffer.from('Hel'), false)), '010348656c', 'fin clear');
  t.equal(hex(g.encode(OpCode.CONTINUATION, Buffer.from('lo'))), '80026c6f');
  t.equal(hex(g.encode(OpCode.TEXT, Buffer.from('x'), true, true)), 'c10178', 'rsv1');
  t.equal(hex(g.encode(OpCode.PING, Buffer.from('Hello'))), '890548656c6c6f');

  const p125 = Buffer.alloc(125, 1);
  const f125 = g.encode(OpCode.BINARY, p125);
  t.equal(f125.length, 1, 'up to 125 bytes: one buffer');
  t.equal(f125[0].subarray(0, 2).toString('hex'), '827d');
  t.ok(f125[0].subarray(2).equals(p125));

  const p126 = Buffer.alloc(126, 2);
  const f126 = g.encode(OpCode.BINARY, p126);
  t.equal(f126.length, 2, 'over 125 bytes: [header, payload]');
  t.equal(f126[0].toString('hex'), '827e007e', '16-bit length');
  t.equal(f126[1], p126, 'the payload is shared, not copied');

  t.equal(g.encode(OpCode.BINARY, Buffer.alloc(65535))[0].toString('hex'), '827effff');
  t.equal(g.encode(OpCode.BINARY, Buffer.alloc(65536))[0].toString('hex'), '827f0000000000010000', '64-bit length');
  t.equal(g.encode(OpCode.BINARY, Buffer.alloc(1 << 20))[0].toString('hex'), '827f0000000000100000');
});

t.test('client frames: masked into a new buffer, exact bytes (§5.3)', async (t) => {
  const g = new FrameGenerator({ role: 'client', maskKey: fixedKey });
  // RFC 6455 §5.7: a single-frame masked text message.
  const payload = Buffer.from('Hello');
  const frame = g.encode(OpCode.TEXT, payload);
  t.equal(hex(frame), '818537fa213d7f9f4d5158');
  t.equal(payload.toString(), 'Hello', "the caller's payload is unchanged");
  t.equal(hex(g.encode(OpCode.PONG, Buffer.from('Hello'))), '8a8537fa213d7f9f4d5158');
  t.equal(hex(g.encode(OpCode.BINARY, Buffer.alloc(0))), '828037fa213d', 'empty payload still carries a key');
  const big = Buffer.alloc(70_000, 0xab);
  const snapshot = Buffer.from(big);
  const bigFrame = g.encode(OpCode.BINARY, big);
  t.equal(bigFrame.length, 1, 'one buffer');
  t.equal(bigFrame[0].subarray(0, 14).toString('hex'), '82ff' + '0000000000011170' + '37fa213d');
  t.ok(big.equals(snapshot), "a large caller's payload is unchanged too");
  t.ok(bigFrame[0].buffer !== big.buffer);
  for (let i = 0; i < 8; i++) t.equal(bigFrame[0][14 + i], 0xab ^ KEY[i & 3], `byte ${i} masked`);
  t.equal(bigFrame[0][14 + 69_999], 0xab ^ KEY[69_999 & 3], 'last byte masked');
});

t.test('round trips through the parser, server↔client, every length class', async (t) => {
  const sizes = [0, 1, 2, 3, 4, 5, 7, 125, 126, 127, 200, 1000, 65535, 65536, 70_001];
  for (const role of ['server', 'client'] as const) {
    const g = new FrameGenerator({ role });
    const frames: Buffer[][] = [];
    const expected: string[] = [];
    for (const n of sizes) {
      const payload = Buffer.alloc(n);
      for (let i = 0; i < n; i++) payload[i] = (i * 7 + n) & 0xff;
      frames.push(g.encode(OpCode.BINARY, payload));
      expected.push(`2:${payload.toString('hex')}`);
    }
    // A fragmented message with a ping in between, a compressed one, control frames, a close.
    frames.push(g.encode(OpCode.TEXT, Buffer.from('frag'), false));
    frames.push(g.encodePing(Buffer.from('p')));
    frames.push(g.encode(OpCode.CONTINUATION, Buffer.alloc(300, 0x61), false));
    frames.push(g.encode(OpCode.CONTINUATION, Buffer.from('end')));
    expected.push('ping:70', `1:${Buffer.concat([Buffer.from('frag'), Buffer.alloc(300, 0x61), Buffer.from('end')]).toString('hex')}`);
    frames.push(g.encode(OpCode.BINARY, Buffer.from([1, 2]), true, true));
    expected.push('2z:0102');
    frames.push(g.encodePong());
    expected.push('pong:');
    frames.push(g.encodeClose(1000, 'bye'));
    expected.push('close:1000:bye');
    t.same(roundTrip(role, frames, true), expected, `${role} frames parse back`);
  }
});

t.test('encodeText: one buffer, the string encoded once', async (t) => {
  const s = new FrameGenerator({ role: 'server' });
  t.equal(hex(s.encodeText('Hello')), '810548656c6c6f');
  t.equal(hex(s.encodeText('')), '8100');
  const c = new FrameGenerator({ role: 'client', maskKey: fixedKey });
  t.equal(hex(c.encodeText('Hello')), '818537fa213d7f9f4d5158');
  for (const text of ['', 'é', '€🎉 日本語', 'x'.repeat(125), 'é'.repeat(63), 'y'.repeat(70_000), '🎉'.repeat(20_000)]) {
    for (const role of ['server', 'client'] as const) {
      const g = new FrameGenerator({ role });
      const frame = g.encodeText(text);
      t.equal(frame.length, 1);
      const events = roundTrip(role, [frame]);
      t.same(events, [`1:${Buffer.from(text).toString('hex')}`], `${role}: ${Buffer.byteLength(text)} bytes`);
    }
  }
  // A lone surrogate becomes U+FFFD: the frame is still valid UTF-8.
  t.same(roundTrip('server', [s.encodeText('a\ud800b')]), [`1:${Buffer.from('a\ufffdb').toString('hex')}`]);
});

t.test('random mask keys from the pool', async (t) => {
  const g = new FrameGenerator({ role: 'client' });
  const keys = new Set<string>();
  const frames: Buffer[][] = [];
  for (let i = 0; i < 2500; i++) {
    const f = g.encode(OpCode.BINARY, Buffer.from([i & 0xff, i >> 8]));
    keys.add(f[0].subarray(2, 6).toString('hex'));
    frames.push(f);
  }
  t.ok(keys.size > 2400, `keys vary (${keys.size} distinct of 2500), across pool refills`);
  const events = roundTrip('client', frames);
  t.equal(events.length, 2500);
  t.equal(events[2499], `2:${Buffer.from([2499 & 0xff, 2499 >> 8]).toString('hex')}`);
});

t.test('encoded buffers are not modified by later encodes', async (t) => {
  const g = new FrameGenerator({ role: 'server' });
  const first = g.encodeText('first');
  const copy = Buffer.from(first[0]);
  for (let i = 0; i < 100; i++) g.encodeText(`other ${i}`);
  t.ok(first[0].equals(copy));
});

t.test('control frame and argument checks', async (t) => {
  for (const role of ['server', 'client'] as const) {
    const g = new FrameGenerator({ role });
    t.equal(roundTrip(role, [g.encodePing(Buffer.alloc(125, 1))]).length, 1, '125-byte ping');
    t.throws(() => g.encodePing(Buffer.alloc(126)), { code: 'WS_CONTROL_PAYLOAD_TOO_LONG', name: 'FrameEncodeError' });
    t.throws(() => g.encodePong(Buffer.alloc(126)), { code: 'WS_CONTROL_PAYLOAD_TOO_LONG' });
    t.throws(() => g.encode(OpCode.PING, Buffer.alloc(1), false), { code: 'WS_INVALID_CONTROL_FRAME' });
    t.throws(() => g.encode(OpCode.CLOSE, Buffer.alloc(2), true, true), { code: 'WS_INVALID_CONTROL_FRAME' });
    for (const opcode of [3, 7, 11, 15, 16, -1]) {
      t.throws(() => g.encode(opcode, Buffer.alloc(1)), { code: 'WS_INVALID_OPCODE' }, `opcode ${opcode}`);
    }
  }
  const bad = new FrameGenerator({ role: 'client', maskKey: () => Buffer.alloc(3) });
  t.throws(() => bad.encodeText('x'), { code: 'WS_INVALID_MASK_KEY' });
  t.throws(() => new FrameGenerator({ role: 'peer' as 'server' }), TypeError);
  t.equal(isControl(OpCode.PING), true);
  t.equal(isControl(OpCode.BINARY), false);
});

t.test('close frames and payloads (§5.5.1, §7.4)', async (t) => {
  const g = new FrameGenerator({ role: 'server' });
  t.equal(hex(g.encodeClose()), '8800', 'no code: empty payload');
  t.equal(hex(g.encodeClose(CloseStatus.NO_STATUS)), '8800', '1005: empty payload too');
  t.equal(hex(g.encodeClose(1000)), '880203e8');
  t.equal(hex(g.encodeClose(1001, 'bye')), '880503e9627965');
  t.equal(roundTrip('server', [g.encodeClose(4999, 'x'.repeat(123))])[0], `close:4999:${'x'.repeat(123)}`, '123-byte reason fits');
  t.throws(() => g.encodeClose(1000, 'x'.repeat(124)), { code: 'WS_CLOSE_REASON_TOO_LONG', name: 'FrameEncodeError' });
  t.throws(() => g.encodeClose(1000, 'é'.repeat(62)), { code: 'WS_CLOSE_REASON_TOO_LONG' }, 'counted in UTF-8 bytes');
  t.equal(roundTrip('server', [g.encodeClose(1000, 'é'.repeat(61) + 'x')])[0], `close:1000:${'é'.repeat(61)}x`);
  t.throws(() => g.encodeClose(undefined, 'why'), { code: 'WS_INVALID_CLOSE_CODE' }, 'a reason needs a code');
  for (const code of [0, 999, 1004, 1006, 1015, 1016, 2999, 5000, 1000.5, Number.NaN]) {
    t.throws(() => g.encodeClose(code), { code: 'WS_INVALID_CLOSE_CODE' }, `code ${code}`);
    t.throws(() => encodeClosePayload(code), FrameEncodeError);
  }
  const valid = [];
  for (let code = 0; code < 6000; code++) if (isValidWireCloseCode(code)) valid.push(code);
  t.same(
    [valid.slice(0, 12), valid.length, valid.at(-1)],
    [[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, ], 12 + 2000, 4999],
    'exactly 1000-1003, 1007-1014, 3000-4999',
  );
  t.same(parseClosePayload(encodeClosePayload(3000, 'r é')), { code: 3000, reason: 'r é' });
  t.same(parseClosePayload(Buffer.alloc(0)), { code: 1005, reason: '' });
  t.throws(() => parseClosePayload(Buffer.from([3])), { code: 'WS_BAD_CLOSE_PAYLOAD', closeCode: 1002 });
  t.throws(() => parseClosePayload(Buffer.from([3, 0xed])), { code: 'WS_BAD_CLOSE_CODE', closeCode: 1002 });
  t.throws(() => parseClosePayload(Buffer.from([3, 0xe8, 0xc3])), ProtocolError);
  t.throws(() => parseClosePayload(Buffer.from([3, 0xe8, 0xc3])), { code: 'WS_INVALID_UTF8', closeCode: 1007 });
});

t.test('acceptKey and isValidClientKey (§4.1, §4.2.2)', async (t) => {
  // RFC 6455 §1.3 example.
  t.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  t.equal(isValidClientKey('dGhlIHNhbXBsZSBub25jZQ=='), true);
  t.equal(isValidClientKey(Buffer.alloc(16, 0xff).toString('base64')), true);
  for (const bad of ['', 'dGhlIHNhbXBsZSBub25jZQ', 'dGhlIHNhbXBsZSBub25jZQ=', 'dGhlIHNhbXBsZSBub25jZQ===', 'dGhlIHNhbXBsZSBub25jZ===', Buffer.alloc(15).toString('base64'), Buffer.alloc(17).toString('base64'), 'dGhlIHNhbXBsZSBub25j*Q==', ' dGhlIHNhbXBsZSBub25jZQ==']) {
    t.equal(isValidClientKey(bad), false, JSON.stringify(bad));
  }
});
