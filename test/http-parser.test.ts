import t from 'tap';
import { HttpParser } from '../lib/http/HttpParser.js';
import type { HttpParserLimits, HttpRequestHead, HttpResponseHead } from '../lib/http/HttpParser.js';
import type { HttpFields } from '../lib/http/HttpFields.js';
import { HttpParseError } from '../lib/http/errors.js';

interface Message {
  head: HttpRequestHead | HttpResponseHead;
  body: string;
  trailers: Record<string, string> | undefined;
}

/** Collects messages; `stopAfter` makes a callback return true. */
class Collector {
  messages: Message[] = [];
  current: Message | undefined;
  constructor(private readonly stopAfter: 'none' | 'head' | 'complete' = 'none') {}
  onHead(head: HttpRequestHead | HttpResponseHead): boolean {
    this.current = { head, body: '', trailers: undefined };
    return this.stopAfter === 'head';
  }
  onBody(chunk: Buffer): boolean {
    this.current!.body += chunk.toString('latin1');
    return false;
  }
  onMessageComplete(trailers: HttpFields | undefined): boolean {
    this.current!.trailers = trailers?.toObject();
    this.messages.push(this.current!);
    this.current = undefined;
    return this.stopAfter === 'complete';
  }
}

function parseAll(input: string | Buffer, options: { mode?: 'request' | 'response'; limits?: Partial<HttpParserLimits> } = {}, splits?: number[]): Message[] {
  const c = new Collector();
  const p = new HttpParser(c, options);
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const points = splits ?? [];
  let start = 0;
  for (const s of [...points, buf.length]) {
    const piece = Buffer.from(buf.subarray(start, s)); // a fresh buffer per read, as from a socket
    const n = p.parse(piece);
    if (n !== piece.length) throw new Error(`consumed ${n} of ${piece.length}`);
    start = s;
  }
  return c.messages;
}

function errorOf(input: string, options: { mode?: 'request' | 'response'; limits?: Partial<HttpParserLimits> } = {}): HttpParseError {
  try {
    parseAll(input, options);
  } catch (e) {
    if (e instanceof HttpParseError) return e;
    throw e;
  }
  throw new Error(`no error for ${JSON.stringify(input.slice(0, 60))}`);
}

function summarize(ms: Message[]): string {
  return JSON.stringify(
    ms.map((m) => ({
      ...('method' in m.head ? { method: m.head.method, target: m.head.target } : { status: m.head.status }),
      fields: m.head.fields.toObject(),
      cl: m.head.contentLength,
      chunked: m.head.chunked,
      keepAlive: m.head.keepAlive,
      body: m.body,
      trailers: m.trailers,
    })),
  );
}

const GET = 'GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept:  */* \r\n\r\n';

t.test('a simple request', async (t) => {
  const [m] = parseAll(GET);
  const head = m!.head as HttpRequestHead;
  t.equal(head.method, 'GET');
  t.equal(head.target, '/path?q=1');
  t.equal(head.versionMinor, 1);
  t.equal(head.fields.get('HOST'), 'example.com', 'names are case-insensitive');
  t.equal(head.fields.get('accept'), '*/*', 'values trimmed of OWS');
  t.equal(head.keepAlive, true);
  t.equal(head.contentLength, -1);
  t.equal(m!.body, '');
});

const VARIETY = [
  GET,
  'POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world',
  'PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: done\r\n\r\n',
  'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n',
  'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
  'GET http://example.com/abs HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n',
].join('');

t.test('fed whole, byte by byte, and split at every offset: identical results', async (t) => {
  const whole = summarize(parseAll(VARIETY));
  t.equal(parseAll(VARIETY).length, 7);
  const bytes = Array.from({ length: VARIETY.length - 1 }, (_, i) => i + 1);
  t.equal(summarize(parseAll(VARIETY, {}, bytes)), whole, 'byte by byte');
  let same = 0;
  for (let i = 1; i < VARIETY.length; i++) if (summarize(parseAll(VARIETY, {}, [i])) === whole) same++;
  t.equal(same, VARIETY.length - 1, 'every single split point');
  const ms = parseAll(VARIETY);
  t.equal(ms[2]!.body, 'hello world');
  t.same(ms[2]!.trailers, { 'x-trailer': 'done' });
  t.equal((ms[3]!.head as HttpRequestHead).keepAlive, true, 'HTTP/1.0 keep-alive');
  t.equal((ms[6]!.head as HttpRequestHead).keepAlive, false, 'Connection: close');
});

t.test('50 pipelined requests; stop-after-complete returns exact consumed counts', async (t) => {
  let input = '';
  for (let i = 0; i < 50; i++) input += `GET /${i} HTTP/1.1\r\nHost: h\r\n\r\n`;
  const all = parseAll(input);
  t.same(all.map((m) => (m.head as HttpRequestHead).target), Array.from({ length: 50 }, (_, i) => `/${i}`));
  const c = new Collector('complete');
  const p = new HttpParser(c);
  const buf = Buffer.from(input, 'latin1');
  let offset = 0;
  let calls = 0;
  while (offset < buf.length && calls < 100) {
    const n = p.parse(buf, offset);
    t.equal(buf.toString('latin1', offset, offset + n), `GET /${calls} HTTP/1.1\r\nHost: h\r\n\r\n`);
    offset += n;
    calls++;
  }
  t.equal(calls, 50, 'one message per call');
});

t.test('stop after head leaves the body to the caller (upgrade)', async (t) => {
  const c = new Collector('head');
  const p = new HttpParser(c);
  const buf = Buffer.from('GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello', 'latin1');
  const n = p.parse(buf);
  t.equal(buf.toString('latin1', n), '\x81\x05hello', 'the frame bytes are left');
  t.equal((c.messages[0]!.head as HttpRequestHead).upgrade, true);
});

t.test('rejections with their status and code', async (t) => {
  const H = 'Host: h\r\n';
  const cases: [string, string, number, string][] = [
    ['missing Host', 'GET / HTTP/1.1\r\n\r\n', 400, 'HTTP_MISSING_HOST'],
    ['two Hosts', `GET / HTTP/1.1\r\n${H}${H}\r\n`, 400, 'HTTP_DUPLICATE_HOST'],
    ['bare LF in head', `GET / HTTP/1.1\n${H}\r\n`, 400, 'HTTP_BARE_LF'],
    ['bare LF ending the head', `GET / HTTP/1.1\r\n${H}\n`, 400, 'HTTP_BARE_LF'],
    ['bare CR in a value', `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, 400, 'HTTP_BARE_CR'],
    ['obs-fold', `GET / HTTP/1.1\r\n${H}X: a\r\n  b\r\n\r\n`, 400, 'HTTP_OBS_FOLD'],
    ['space before colon', `GET / HTTP/1.1\r\n${H}X : a\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
    ['invalid name char', `GET / HTTP/1.1\r\n${H}X(y): a\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
    ['NUL in value', `GET / HTTP/1.1\r\n${H}X: a\0b\r\n\r\n`, 400, 'HTTP_BAD_HEADER_VALUE'],
    ['DEL in value', `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, 400, 'HTTP_BAD_HEADER_VALUE'],
    ['CL and TE', `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n`, 400, 'HTTP_CL_AND_TE'],
    ['differing CLs', `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 4\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
    ['differing CL list', `POST / HTTP/1.1\r\n${H}Content-Length: 3, 4\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
    ['signed CL', `POST / HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
    ['CL overflow', `POST / HTTP/1.1\r\n${H}Content-Length: 99999999999999999999\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
    ['TE not ending in chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
    ['TE unknown only', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
    ['chunked twice', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
    ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'HTTP_BAD_TRANSFER_ENCODING'],
    ['chunk size overflow', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n`, 400, 'HTTP_BAD_CHUNK'],
    ['chunk size bad char', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n`, 400, 'HTTP_BAD_CHUNK'],
    ['chunk size empty', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n\r\n`, 400, 'HTTP_BAD_CHUNK'],
    ['chunk without CRLF after data', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n`, 400, 'HTTP_BAD_CHUNK'],
    ['chunk size LF only', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n`, 400, 'HTTP_BAD_CHUNK'],
    ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, 505, 'HTTP_VERSION_NOT_SUPPORTED'],
    ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, 505, 'HTTP_VERSION_NOT_SUPPORTED'],
    ['not a version', `GET / HTTQ/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_VERSION'],
    ['double space', `GET  / HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_REQUEST_LINE'],
    ['bad method char', `G(T / HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_REQUEST_LINE'],
    ['relative target', `GET path HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_REQUEST_LINE'],
    ['control char in target', `GET /a\x01b HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_REQUEST_LINE'],
  ];
  for (const [name, input, status, code] of cases) {
    const e = errorOf(input);
    t.equal(e.status, status, `${name}: status`);
    t.equal(e.code, code, `${name}: code`);
  }
});

t.test('limits: at the boundary accepted, one over refused', async (t) => {
  const limits = { maxRequestLineBytes: 100, maxHeaderBytes: 200, maxHeaderCount: 5, maxBodyBytes: 10 };
  const line = (n: number): string => `GET /${'a'.repeat(n - 'GET / HTTP/1.1'.length)} HTTP/1.1`;
  t.equal(line(100).length, 100);
  t.equal(parseAll(`${line(100)}\r\nHost: h\r\n\r\n`, { limits }).length, 1, 'request line at the limit');
  t.equal(errorOf(`${line(101)}\r\nHost: h\r\n\r\n`, { limits }).status, 414);
  t.equal(errorOf(`${line(101)}`, { limits }).status, 414, 'refused before the line ends');
  const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X${i}: v\r\n`).join('');
  t.equal(parseAll(`GET / HTTP/1.1\r\nHost: h\r\n${fields(4)}\r\n`, { limits }).length, 1, '5 fields');
  t.equal(errorOf(`GET / HTTP/1.1\r\nHost: h\r\n${fields(5)}\r\n`, { limits }).status, 431, '6 fields');
  const block = (n: number): string => `Host: h\r\nX: ${'v'.repeat(n - 'Host: h\r\nX: \r\n'.length)}\r\n`;
  t.equal(block(200).length, 200);
  t.equal(parseAll(`GET / HTTP/1.1\r\n${block(200)}\r\n`, { limits }).length, 1, 'header block at the limit');
  t.equal(errorOf(`GET / HTTP/1.1\r\n${block(201)}\r\n`, { limits }).status, 431);
  t.equal(errorOf(`GET / HTTP/1.1\r\nHost: h\r\nX: ${'v'.repeat(500)}`, { limits }).status, 431, 'refused before the head ends');
  t.equal(parseAll('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789', { limits })[0]!.body, '0123456789');
  t.equal(errorOf('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n', { limits }).status, 413, 'Content-Length checked up front');
  t.equal(
    errorOf('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n', { limits }).status,
    413,
    'chunked total checked as it streams',
  );
  t.equal(
    errorOf(`POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;${'x'.repeat(5000)}\r\n`).code,
    'HTTP_BAD_CHUNK',
    'chunk extensions are bounded',
  );
});

t.test('after an error the parser stays failed', async (t) => {
  const p = new HttpParser(new Collector());
  t.throws(() => p.parse(Buffer.from('GET / HTTP/1.1\n')), HttpParseError);
  t.equal(p.state, 'ERROR');
  t.throws(() => p.parse(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n')), HttpParseError);
  p.reset();
  t.equal(p.parse(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n')), 27);
});

t.test('leading empty lines are ignored (RFC 9112 §2.2), truncation is detected', async (t) => {
  t.equal(parseAll(`\r\n\r\n${GET}`).length, 1);
  const p = new HttpParser(new Collector());
  p.parse(Buffer.from('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab'));
  t.throws(() => p.onEndOfInput(), { code: 'HTTP_TRUNCATED', status: 400 });
  const idle = new HttpParser(new Collector());
  idle.parse(Buffer.from(GET));
  t.equal(idle.isIdle, true);
  t.doesNotThrow(() => idle.onEndOfInput());
});

t.test('response mode', async (t) => {
  const opts = { mode: 'response' as const };
  const ms = parseAll(
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc' +
      'HTTP/1.1 100 Continue\r\n\r\n' +
      'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n' +
      'HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n' +
      'HTTP/1.1 304 Not Modified\r\n\r\n',
    opts,
  );
  t.same(ms.map((m) => [(m.head as HttpResponseHead).status, m.body]), [[200, 'abc'], [100, ''], [201, 'xyz'], [204, ''], [304, '']]);
  const c = new Collector();
  const p = new HttpParser(c, opts);
  p.parse(Buffer.from('HTTP/1.0 200 OK\r\n\r\nuntil the end'));
  t.equal(c.messages.length, 0);
  p.onEndOfInput();
  t.equal(c.messages[0]!.body, 'until the end', 'close-delimited body');
  t.equal(c.messages[0]!.head.keepAlive, false);
  const h = new Collector();
  const hp = new HttpParser(h, opts);
  hp.expectNoBody();
  hp.parse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'));
  t.same(h.messages.map((m) => m.body), ['', 'x'], 'HEAD response has no body; the next one does');
  const u = new Collector();
  const up = new HttpParser(u, opts);
  const buf = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00', 'latin1');
  const n = up.parse(buf);
  t.equal(buf.toString('latin1', n), '\x81\x00', '101: the rest is the next protocol');
  t.equal(up.state, 'UPGRADED');
  t.equal(errorOf('HTTP/1.1 2x0 OK\r\n\r\n', opts).code, 'HTTP_BAD_STATUS_LINE');
});

function mulberry32(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('seeded fuzz: random and mutated requests never throw anything but HttpParseError', async (t) => {
  const rnd = mulberry32(20261125);
  const seeds = VARIETY.split(/(?=GET |POST |PUT |OPTIONS |CONNECT )/).map((s) => Buffer.from(s, 'latin1'));
  const alphabet = Buffer.from('\r\n :;,0123456789abcdefABCDEFGHTP/\t\0\x7f\x80\xffchunkedContent-LengthTransfer-Encoding', 'latin1');
  let accepted = 0;
  let rejected = 0;
  for (let i = 0; i < 3000; i++) {
    const base = Buffer.from(seeds[Math.floor(rnd() * seeds.length)]!);
    const input = i % 4 === 0 ? Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => alphabet[Math.floor(rnd() * alphabet.length)]!)) : base;
    const mutations = i % 4 === 0 ? 0 : 1 + Math.floor(rnd() * 4);
    let mutated = input;
    for (let m = 0; m < mutations; m++) {
      const at = Math.floor(rnd() * (mutated.length + 1));
      const kind = rnd();
      const byte = alphabet[Math.floor(rnd() * alphabet.length)]!;
      if (kind < 0.4) mutated = Buffer.concat([mutated.subarray(0, at), Buffer.from([byte]), mutated.subarray(at)]);
      else if (kind < 0.7) mutated = Buffer.concat([mutated.subarray(0, at), mutated.subarray(at + 1)]);
      else if (at < mutated.length) mutated[at] = byte;
    }
    const splits = [Math.floor(rnd() * mutated.length), Math.floor(rnd() * mutated.length)].sort((a, b) => a - b);
    try {
      parseAll(mutated, {}, splits.filter((s) => s > 0));
      accepted++;
    } catch (e) {
      if (!(e instanceof HttpParseError)) {
        t.fail(`case ${i}: ${String(e)} for ${JSON.stringify(mutated.toString('latin1'))}`);
        return;
      }
      rejected++;
    }
  }
  t.ok(accepted > 100 && rejected > 100, `both outcomes exercised (${accepted} accepted, ${rejected} rejected)`);
});
