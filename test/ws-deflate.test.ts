/**
 * permessage-deflate (RFC 7692): the extension header grammar (RFC 6455 §9.1), the negotiation rules (§7), the
 * stateless codec with the client's context takeover through a preset dictionary, and interop over loopback with
 * the `ws` client (which compresses with a zlib stream, context takeover on by default) and a raw peer for what
 * `ws` would refuse to send.
 */
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { constants as zlibConstants, createDeflateRaw, deflateRawSync } from 'node:zlib';
import type { DeflateRaw } from 'node:zlib';
import WebSocket from 'ws';
import { ByteBufferPool } from '../lib/buffers/index.js';
import { ExtensionHeaderError, ProtocolError, Router, Server, WebSocketUpgradeHandler, parseExtensions } from '../lib/index.js';
import type { WebSocketListener, WebSocketSession, WebSocketUpgradeHandlerOptions } from '../lib/index.js';
import { MessageDeflate, negotiateDeflate, resolveDeflateSettings } from '../lib/websocket/PerMessageDeflate.js';
import type { DeflateAgreement } from '../lib/websocket/PerMessageDeflate.js';
import { mulberry32 } from './support/mulberry32.js';
import { HOST, RawClient, clientFrame, closeCodeOf, until, within } from './support/wsRaw.js';

// ------------------------------------------------------------------------------------------------ grammar

t.test('parseExtensions: the RFC 6455 §9.1 grammar', async (t) => {
  t.same(parseExtensions('permessage-deflate'), [{ name: 'permessage-deflate', params: [] }]);
  t.same(parseExtensions('permessage-deflate; client_max_window_bits, permessage-deflate'), [
    { name: 'permessage-deflate', params: [['client_max_window_bits', true]] },
    { name: 'permessage-deflate', params: [] },
  ]);
  t.same(
    parseExtensions(' foo ;a=1 ; b="x-y" , , bar;c\t'),
    [
      { name: 'foo', params: [['a', '1'], ['b', 'x-y']] },
      { name: 'bar', params: [['c', true]] },
    ],
    'whitespace around separators, quoted values unquoted, empty elements skipped',
  );
  t.same(parseExtensions(''), []);
  for (const bad of ['permessage-deflate;', 'a b', 'x; y=', 'x; y="open', 'x; y=""', 'x; y="a b"', ';x', 'x;;y', 'x=1', 'é']) {
    t.throws(() => parseExtensions(bad), ExtensionHeaderError, JSON.stringify(bad));
  }
  t.throws(() => parseExtensions(Array.from({ length: 65 }, (_, i) => `e${i}`).join(',')), ExtensionHeaderError, 'at most 64');
  // One pass, no backtracking: 100 KB of separators is parsed (and refused or accepted) at once.
  t.same(parseExtensions(', '.repeat(50_000)), [], '100 KB of empty elements');
  t.throws(() => parseExtensions('x' + '; y'.repeat(30_000) + ' z'), ExtensionHeaderError, 'a long list with an error at the end');
});

t.test('negotiateDeflate: RFC 7692 §7 offers and the response', async (t) => {
  const n = (header: string): DeflateAgreement | undefined => negotiateDeflate(parseExtensions(header));
  t.same(n('permessage-deflate'), {
    response: 'permessage-deflate; server_no_context_takeover',
    inflateWindow: true,
    deflateWindowBits: 15,
  }, 'server_no_context_takeover always (§7.1.1.1 allows it unasked)');
  t.equal(n('permessage-deflate; client_no_context_takeover')?.response, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
  t.equal(n('permessage-deflate; client_no_context_takeover')?.inflateWindow, false, 'no window kept for such a client');
  t.equal(n('permessage-deflate; server_max_window_bits=10')?.response, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10');
  t.equal(n('permessage-deflate; server_max_window_bits="12"')?.deflateWindowBits, 12, 'a quoted value (§7.1.2.1)');
  t.ok(n('permessage-deflate; client_max_window_bits'), 'client_max_window_bits without a value');
  t.ok(n('permessage-deflate; client_max_window_bits=9'), 'and with one');
  t.equal(n('PerMessage-Deflate; Server_No_Context_Takeover')?.deflateWindowBits, 15, 'names are case-insensitive');
  // Declined offers (§7: unknown, duplicated or invalid parameters); declining every offer means no compression.
  for (const declined of [
    'permessage-deflate; foo',
    'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
    'permessage-deflate; server_no_context_takeover=1',
    'permessage-deflate; server_max_window_bits',
    'permessage-deflate; server_max_window_bits=16',
    'permessage-deflate; server_max_window_bits=010',
    'permessage-deflate; server_max_window_bits=8',
    'permessage-deflate; client_max_window_bits=7',
    'x-webkit-deflate-frame',
  ]) {
    t.equal(n(declined), undefined, declined);
  }
  t.equal(
    n('permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover')?.inflateWindow,
    false,
    'the first acceptable offer wins',
  );
  t.throws(() => resolveDeflateSettings({ threshold: -1 }), RangeError);
  t.throws(() => resolveDeflateSettings({ level: 10 }), RangeError);
  t.equal(resolveDeflateSettings(false), undefined);
  t.match(resolveDeflateSettings(true), { threshold: 1024, level: -1, asyncThreshold: 65536, offer: 'permessage-deflate; client_no_context_takeover' });
  t.throws(() => resolveDeflateSettings({ asyncThreshold: 1.5 }), RangeError);
  t.equal(resolveDeflateSettings({ asyncThreshold: Infinity })?.asyncThreshold, Infinity, 'Infinity: always synchronous');
});

// ------------------------------------------------------------------------------------------------ codec

/** A peer's compressor with context takeover: a zlib stream flushed per message, the 4-byte tail removed (§7.2.1). */
function peerCompressor(): { stream: DeflateRaw; compress(data: Buffer): Promise<Buffer> } {
  const stream = createDeflateRaw({ windowBits: 15 });
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => void chunks.push(c));
  return {
    stream,
    compress: (data) =>
      new Promise((resolve) => {
        stream.write(data);
        stream.flush(zlibConstants.Z_SYNC_FLUSH, () => {
          const out = Buffer.concat(chunks.splice(0));
          resolve(out.subarray(0, out.length - 4));
        });
      }),
  };
}

const AGREED: DeflateAgreement = { response: '', inflateWindow: true, deflateWindowBits: 15 };

t.test('MessageDeflate: stateless compression, inflation with the client\'s window', async (t) => {
  const settings = resolveDeflateSettings({ threshold: 16 })!;
  const deflate = new MessageDeflate(settings, AGREED);
  t.notOk(deflate.wants(15));
  t.ok(deflate.wants(16));
  const text = Buffer.from('the same words again and again and again and again '.repeat(40));
  const packed = deflate.compress(text)!;
  t.ok(packed.length < text.length / 4, 'compressed');
  t.same(deflate.compress(text), packed, 'no context kept: the same input gives the same bytes');
  t.equal(deflate.compress(randomBytes(4096)), undefined, 'incompressible data is sent as it is');
  t.same(new MessageDeflate(settings, AGREED).decompress(packed, 1e6), text, 'round trip');

  // Context takeover (§7.2.2): a peer's later messages refer back to earlier ones; 200 messages of up to 3 KiB
  // take the window well past 32 KiB, so its sliding is exercised too.
  const peer = peerCompressor();
  t.teardown(() => peer.stream.close());
  const inflater = new MessageDeflate(settings, AGREED);
  const random = mulberry32(7);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'];
  let referring = 0;
  for (let i = 0; i < 200; i++) {
    const n = 1 + Math.floor(random() * 500);
    const message = Buffer.from(Array.from({ length: n }, () => words[Math.floor(random() * words.length)]).join(' ') + ` #${i}`);
    const wire = await peer.compress(message);
    const got = inflater.decompress(wire, 1e6);
    if (!got.equals(message)) {
      t.fail(`message ${i} inflated wrong`);
      return;
    }
    if (i > 0 && wire.length < deflateRawSync(message).length) referring++;
  }
  t.ok(referring > 100, `the peer's messages referred back to earlier ones (${referring} of 199): the window was used`);

  // The same stream against an inflater without the window fails: the window is what made it work.
  const second = await peer.compress(Buffer.from('alpha beta gamma delta epsilon zeta eta theta '.repeat(20)));
  const fresh = new MessageDeflate(settings, { ...AGREED, inflateWindow: false });
  t.throws(() => fresh.decompress(second, 1e6), { code: 'WS_INVALID_COMPRESSED_DATA', closeCode: 1007 });
});

t.test('MessageDeflate: a zip bomb stops at the limit (1009), garbage is 1007', async (t) => {
  const deflate = new MessageDeflate(resolveDeflateSettings(true)!, AGREED);
  const bomb = deflateRawSync(Buffer.alloc(8 * 1024 * 1024), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  const wire = bomb.subarray(0, bomb.length - 4);
  t.ok(wire.length < 16 * 1024, `8 MiB of zeros in ${wire.length} bytes`);
  const error = t.throws(() => deflate.decompress(wire, 64 * 1024)) as ProtocolError;
  t.type(error, ProtocolError);
  t.equal(error.closeCode, 1009);
  t.equal(error.code, 'WS_MESSAGE_TOO_BIG');
  t.throws(() => deflate.decompress(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), 1e6), { closeCode: 1007, code: 'WS_INVALID_COMPRESSED_DATA' });
  t.same(deflate.decompress(Buffer.from([0x00]), 10), Buffer.alloc(0), 'an empty compressed message');
});

// ------------------------------------------------------------------------------------------------ loopback

interface Seen {
  texts: string[];
  binaries: Buffer[];
  closes: number[];
  errors: Error[];
  sessions: WebSocketSession[];
}

async function startServer(t: Test, options: Partial<WebSocketUpgradeHandlerOptions>): Promise<{ port: number; seen: Seen; server: Server }> {
  const seen: Seen = { texts: [], binaries: [], closes: [], errors: [], sessions: [] };
  const listener: WebSocketListener = {
    onOpen: (s) => void seen.sessions.push(s),
    onText: (s, text) => {
      seen.texts.push(text);
      void s.sendText(text);
    },
    onBinary: (s, data) => {
      seen.binaries.push(data);
      void s.sendBinary(data);
    },
    onClose: (_s, code) => void seen.closes.push(code),
    onError: (_s, e) => void seen.errors.push(e),
  };
  const pool = new ByteBufferPool({ debug: true });
  const router = new Router().route('/z', new WebSocketUpgradeHandler({ accept: () => listener, ...options }));
  const server = new Server({ port: 0, host: HOST, bufferPool: pool, onError: () => {} }, router);
  const { port } = await server.start();
  t.teardown(async () => {
    await server.stop(300);
    pool.assertNoLeaks();
  });
  return { port, seen, server };
}

async function openWs(t: Test, port: number, options: WebSocket.ClientOptions): Promise<{ ws: WebSocket; messages: (string | Buffer)[]; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://${HOST}:${port}/z`, options);
  ws.on('error', () => {});
  const messages: (string | Buffer)[] = [];
  ws.on('message', (data, isBinary) => void messages.push(isBinary ? (data as Buffer) : (data as Buffer).toString('utf8')));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  t.teardown(() => ws.terminate());
  await within(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  }), 3000, 'ws open');
  return { ws, messages, closed };
}

t.test('off by default: an offer is ignored and nothing is compressed', async (t) => {
  const { port, seen } = await startServer(t, {});
  const c = await openWs(t, port, { perMessageDeflate: true });
  t.equal(c.ws.extensions, '', 'no extension agreed');
  t.equal(seen.sessions[0]!.extensions, '');
  c.ws.send('x'.repeat(5000));
  await until(() => c.messages.length === 1, 3000, 'echo');
  t.equal(c.messages[0], 'x'.repeat(5000));
});

t.test('with ws (context takeover on both sides of ws): text and binary, large and small, compressed on the wire', async (t) => {
  const { port, seen, server } = await startServer(t, { perMessageDeflate: { threshold: 64 } });
  const c = await openWs(t, port, { perMessageDeflate: { threshold: 64 } });
  t.equal(c.ws.extensions, 'permessage-deflate', 'ws agreed');
  t.equal(seen.sessions[0]!.extensions, 'permessage-deflate; server_no_context_takeover', 'the session says what was agreed');
  const random = mulberry32(11);
  const sent: (string | Buffer)[] = [];
  let bytes = 0;
  for (let i = 0; i < 60; i++) {
    const kind = i % 4;
    const m =
      kind === 0
        ? `short ${i}`
        : kind === 1
          ? `héllo ✓ wörld ${i} `.repeat(1 + Math.floor(random() * 400))
          : kind === 2
            ? Buffer.alloc(1 + Math.floor(random() * 100_000), i)
            : randomBytes(3000); // incompressible: sent as it is
    sent.push(m);
    bytes += typeof m === 'string' ? Buffer.byteLength(m) : m.length;
    c.ws.send(m);
  }
  await until(() => c.messages.length === sent.length, 5000, 'every echo');
  t.same(c.messages, sent, 'every message back, in order, equal');
  t.same(seen.texts, sent.filter((m) => typeof m === 'string'), 'the server got the texts inflated');
  t.equal(seen.errors.length, 0);
  const out = server.stats().bytesOut;
  t.ok(out < bytes / 3, `the server sent ${out} bytes for ${bytes} bytes of messages`);
});

t.test('with ws: client_no_context_takeover and server_max_window_bits are honoured', async (t) => {
  const { port, seen } = await startServer(t, { perMessageDeflate: true });
  const a = await openWs(t, port, { perMessageDeflate: { clientNoContextTakeover: true, serverMaxWindowBits: 10 } });
  t.equal(a.ws.extensions, 'permessage-deflate');
  t.equal(seen.sessions[0]!.extensions, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10');
  const big = 'abcdefghij'.repeat(10_000);
  a.ws.send(big);
  a.ws.send(big);
  await until(() => a.messages.length === 2, 3000, 'echoes');
  t.same(a.messages, [big, big]);
});

t.test('with ws: a message that inflates past maxMessageBytes closes with 1009', async (t) => {
  const { port, seen } = await startServer(t, { perMessageDeflate: true, maxMessageBytes: 256 * 1024 });
  const c = await openWs(t, port, { perMessageDeflate: true });
  c.ws.send(Buffer.alloc(4 * 1024 * 1024)); // ~4 KiB on the wire
  t.equal(await within(c.closed, 3000, 'close'), 1009);
  await until(() => seen.closes.length === 1, 3000, 'server onClose');
  t.same(seen.closes, [1009]);
  t.match(seen.errors[0], { code: 'WS_MESSAGE_TOO_BIG' });
  t.equal(seen.binaries.length, 0, 'nothing delivered');
});

t.test('raw peer: bad compressed data, bad UTF-8 inside, RSV1 where RFC 7692 forbids it', async (t) => {
  const { port, seen } = await startServer(t, { perMessageDeflate: { threshold: 0 } });
  const offer = 'Sec-WebSocket-Extensions: permessage-deflate\r\n';
  const compress = (data: Buffer): Buffer => {
    const out = deflateRawSync(data, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    return out.subarray(0, out.length - 4);
  };

  const good = await RawClient.connect(t, port, '/z', offer);
  t.match(good.head, /\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover(\r\n|$)/i);
  // A compressed message in two fragments: RSV1 on the first only (§6.1).
  const whole = compress(Buffer.from('fragmented and compressed '.repeat(10)));
  const half = whole.length >> 1;
  good.write(Buffer.concat([clientFrame(0x1, whole.subarray(0, half), { fin: false, rsv: 0x40 }), clientFrame(0x0, whole.subarray(half))]));
  await until(() => seen.texts.length === 1, 3000, 'the fragmented compressed message');
  t.equal(seen.texts[0], 'fragmented and compressed '.repeat(10));
  await until(() => good.frames().length === 1, 3000, 'the echo');
  t.equal(good.frames()[0]!.opcode, 0x1);

  const cases: { name: string; frame: Buffer; code: number }[] = [
    { name: 'not DEFLATE data', frame: clientFrame(0x2, Buffer.from([0xff, 0xfe, 0xfd, 0x00]), { rsv: 0x40 }), code: 1007 },
    { name: 'invalid UTF-8 once inflated', frame: clientFrame(0x1, compress(Buffer.from([0x61, 0xc3, 0x28])), { rsv: 0x40 }), code: 1007 },
    { name: 'RSV1 on a ping', frame: clientFrame(0x9, Buffer.from('p'), { rsv: 0x40 }), code: 1002 },
    {
      name: 'RSV1 on a continuation',
      frame: Buffer.concat([clientFrame(0x1, compress(Buffer.from('a')), { fin: false, rsv: 0x40 }), clientFrame(0x0, Buffer.from('b'), { rsv: 0x40 })]),
      code: 1002,
    },
    { name: 'RSV2', frame: clientFrame(0x1, Buffer.from('a'), { rsv: 0x20 }), code: 1002 },
  ];
  for (const c of cases) {
    const raw = await RawClient.connect(t, port, '/z', offer);
    raw.write(c.frame);
    await within(raw.ended, 3000, `${c.name}: the server closes`);
    t.equal(closeCodeOf(raw.frames().at(-1)), c.code, `${c.name}: close ${c.code}`);
  }

  // Without the extension agreed, RSV1 is a protocol error (RFC 6455 §5.2).
  const plain = await RawClient.connect(t, port, '/z');
  t.notMatch(plain.head, /Sec-WebSocket-Extensions/i);
  plain.write(clientFrame(0x1, compress(Buffer.from('hi')), { rsv: 0x40 }));
  await within(plain.ended, 3000, 'close');
  t.equal(closeCodeOf(plain.frames().at(-1)), 1002);
});

t.test('a malformed Sec-WebSocket-Extensions answers 400 with the reason', async (t) => {
  const { port } = await startServer(t, { perMessageDeflate: true });
  await t.rejects(RawClient.connect(t, port, '/z', 'Sec-WebSocket-Extensions: permessage-deflate; ;\r\n'), /handshake answered: HTTP\/1\.1 400/);
});

t.test('seeded fuzz: hostile extension headers and compressed payloads end in a typed error, never anything else', async (t) => {
  const random = mulberry32(0xdef1a7e);
  const alphabet = ['permessage-deflate', 'server_no_context_takeover', 'client_max_window_bits', '=', ';', ',', ' ', '\t', '"', '\\', '1', '15', '8', 'x', 'é', '\0'];
  let parsed = 0;
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    let header = '';
    const n = Math.floor(random() * 12);
    for (let k = 0; k < n; k++) header += alphabet[Math.floor(random() * alphabet.length)];
    try {
      negotiateDeflate(parseExtensions(header));
      parsed++;
    } catch (e) {
      if (!(e instanceof ExtensionHeaderError)) {
        t.fail(`${JSON.stringify(header)} threw ${String(e)}`);
        return;
      }
      refused++;
    }
  }
  t.ok(parsed > 100 && refused > 100, `both outcomes reached (${parsed} parsed, ${refused} refused)`);

  const inflater = new MessageDeflate(resolveDeflateSettings(true)!, AGREED);
  const valid = new MessageDeflate(resolveDeflateSettings(true)!, AGREED).compress(Buffer.from('x'.repeat(2000)))!;
  let failed = 0;
  for (let i = 0; i < 2000; i++) {
    // Random bytes, or a valid message with one byte changed or cut short.
    let input: Buffer;
    if (i % 2 === 0) input = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
    else {
      input = Buffer.from(valid.subarray(0, 1 + Math.floor(random() * valid.length)));
      input[Math.floor(random() * input.length)] ^= 1 + Math.floor(random() * 255);
    }
    try {
      inflater.decompress(input, 4096);
    } catch (e) {
      if (!(e instanceof ProtocolError) || (e.closeCode !== 1007 && e.closeCode !== 1009)) {
        t.fail(`threw ${String(e)}`);
        return;
      }
      failed++;
    }
  }
  t.ok(failed > 500, `${failed} of 2000 refused with 1007 or 1009, the rest inflated`);
});
