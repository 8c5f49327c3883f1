import t from 'tap';
import { HttpParser } from '../lib/http/HttpParser.js';
import type { HttpParserLimits, HttpParserOptions, HttpRequestHead, HttpResponseHead } from '../lib/http/HttpParser.js';
import { HttpFields } from '../lib/http/HttpFields.js';
import { HttpParseError } from '../lib/http/errors.js';
import { mulberry32 } from './support/mulberry32.js';

// ------------------------------------------------------------------------------------------------ helpers

interface Message {
  head: HttpRequestHead | HttpResponseHead;
  body: string;
  trailers: [string, string][] | undefined;
}

type StopAt = 'none' | 'head' | 'body' | 'complete';

/** Collects the parser's events; `stopAt` makes that callback return true. */
class Collector {
  messages: Message[] = [];
  current: Message | undefined;
  events: string[] = [];
  constructor(private readonly stopAt: StopAt = 'none') {}
  onHead(head: HttpRequestHead | HttpResponseHead): boolean {
    this.current = { head, body: '', trailers: undefined };
    this.events.push('head');
    return this.stopAt === 'head';
  }
  onBody(chunk: Buffer): boolean {
    this.current!.body += chunk.toString('latin1');
    this.events.push(`body:${chunk.length}`);
    return this.stopAt === 'body';
  }
  onMessageComplete(trailers: HttpFields | undefined): boolean {
    this.current!.trailers = trailers === undefined ? undefined : [...trailers];
    this.messages.push(this.current!);
    this.current = undefined;
    this.events.push('complete');
    return this.stopAt === 'complete';
  }
}

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/**
 * Feeds `input` cut at `splits` (each piece a fresh Buffer, as from a socket) and returns the messages. Every
 * parse() must consume its whole piece (no callback stops here).
 */
function parseAll(input: string | Buffer, options: HttpParserOptions = {}, splits: number[] = [], end = false): Message[] {
  const c = new Collector();
  const p = new HttpParser(c, options);
  const buf = typeof input === 'string' ? latin1(input) : input;
  let start = 0;
  for (const s of [...splits, buf.length]) {
    if (s <= start) continue;
    const piece = Buffer.from(buf.subarray(start, s));
    const n = p.parse(piece);
    if (n !== piece.length && p.state !== 'UPGRADED') throw new Error(`consumed ${n} of ${piece.length}`);
    start = s;
  }
  if (end) p.onEndOfInput();
  return c.messages;
}

const everyByte = (s: string | Buffer): number[] => Array.from({ length: s.length - 1 }, (_, i) => i + 1);

function errorOf(input: string | Buffer, options: HttpParserOptions = {}, splits: number[] = []): HttpParseError {
  try {
    parseAll(input, options, splits, true);
  } catch (e) {
    if (e instanceof HttpParseError) return e;
    throw e;
  }
  throw new Error(`no error for ${JSON.stringify(input.toString().slice(0, 80))}`);
}

function summarize(ms: Message[]): string {
  return JSON.stringify(
    ms.map((m) => ({
      ...('method' in m.head
        ? { method: m.head.method, target: m.head.target, upgrade: m.head.upgrade, expect: m.head.expectContinue }
        : { status: m.head.status, reason: m.head.reason }),
      version: m.head.versionMinor,
      fields: [...m.head.fields],
      cl: m.head.contentLength,
      chunked: m.head.chunked,
      keepAlive: m.head.keepAlive,
      body: m.body,
      trailers: m.trailers,
    })),
  );
}

const req = (ms: Message[], i = 0): HttpRequestHead => ms[i]!.head as HttpRequestHead;
const res = (ms: Message[], i = 0): HttpResponseHead => ms[i]!.head as HttpResponseHead;

// ------------------------------------------------------------------------------------------------ requests

const GET = 'GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept:  */* \r\nX-Empty:\r\nx-custom:\tv\t\r\n\r\n';

t.test('a simple request: head fields, case-insensitive names, OWS trimmed', async (t) => {
  const ms = parseAll(GET);
  t.equal(ms.length, 1);
  const head = req(ms);
  t.equal(head.method, 'GET');
  t.equal(head.target, '/path?q=1');
  t.equal(head.versionMinor, 1);
  t.equal(head.fields.get('HOST'), 'example.com', 'names are case-insensitive');
  t.equal(head.fields.get('accept'), '*/*', 'values trimmed of SP');
  t.equal(head.fields.get('X-Custom'), 'v', 'values trimmed of HTAB');
  t.equal(head.fields.get('x-empty'), '', 'an empty value');
  t.same([...head.fields].map(([n]) => n), ['Host', 'User-Agent', 'Accept', 'X-Empty', 'x-custom'], 'original case, in order');
  t.equal(head.fields.size, 5);
  t.equal(head.keepAlive, true);
  t.equal(head.contentLength, -1);
  t.equal(head.chunked, false);
  t.equal(head.upgrade, false);
  t.equal(head.expectContinue, false);
  t.equal(ms[0]!.body, '');
  t.equal(ms[0]!.trailers, undefined);
});

t.test('known names in odd case keep their spelling; obs-text in values is kept as latin1', async (t) => {
  const head = req(parseAll('GET / HTTP/1.1\r\nHOST: h\r\ncontent-length: 0\r\nX-Latin: caf\xe9\r\n\r\n'));
  t.same([...head.fields].map(([n]) => n), ['HOST', 'content-length', 'X-Latin']);
  t.equal(head.fields.get('x-latin'), 'caf\xe9');
  t.equal(head.contentLength, 0);
});

t.test('request-target forms (RFC 9112 §3.2)', async (t) => {
  const ok: [string, string][] = [
    ['GET', '/'],
    ['GET', '/a/b?c=d&e=%20#frag'],
    ['GET', 'http://example.com/abs?x'],
    ['GET', 'https://example.com'],
    ['OPTIONS', '*'],
    ['OPTIONS', '/x'],
    ['CONNECT', 'example.com:443'],
    ['CONNECT', '[::1]:8080'],
    ['PROPFIND', '/dav'],
  ];
  for (const [method, target] of ok) {
    const head = req(parseAll(`${method} ${target} HTTP/1.1\r\nHost: h\r\n\r\n`));
    t.equal(head.method, method, `${method} ${target}: method`);
    t.equal(head.target, target, `${method} ${target}: target`);
  }
  const bad: [string, string][] = [
    ['GET', '*'],
    ['GET', 'path'],
    ['GET', 'http:'],
    ['GET', '1http://x/'],
    ['CONNECT', '/path'],
    ['CONNECT', 'example.com'],
    ['CONNECT', 'example.com:'],
    ['CONNECT', 'user@example.com:443'],
    // authority-form is only for CONNECT (RFC 9112 §3.2.3), even though it looks like scheme ":" path.
    ['GET', 'host:443'],
    ['GET', 'example.com:8080'],
    ['POST', '[::1]:80'],
    ['OPTIONS', 'localhost:1'],
  ];
  for (const [method, target] of bad) {
    const e = errorOf(`${method} ${target} HTTP/1.1\r\nHost: h\r\n\r\n`);
    t.equal(e.code, 'HTTP_BAD_TARGET', `${method} ${target} refused`);
    t.equal(e.status, 400);
  }
});

t.test('whitespace after a chunk size without a chunk extension is refused (RFC 9112 §7.1)', async (t) => {
  const head = 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n';
  for (const line of ['3 \r\n', '3\t\r\n', '3  \t \r\n', '0 \r\n']) {
    const e = errorOf(`${head}${line}abc\r\n0\r\n\r\n`);
    t.equal(e.code, 'HTTP_BAD_CHUNK_SIZE', JSON.stringify(line));
    t.equal(e.status, 400);
  }
  // Byte by byte too: the refusal does not depend on where the input is cut.
  const parser = new HttpParser(new Collector());
  const input = latin1(`${head}3 \r\nabc\r\n0\r\n\r\n`);
  let code: string | undefined;
  try {
    for (let i = 0; i < input.length; i++) parser.parse(input.subarray(i, i + 1));
  } catch (e) {
    code = (e as HttpParseError).code;
  }
  t.equal(code, 'HTTP_BAD_CHUNK_SIZE', 'byte by byte');
});

t.test('keep-alive, upgrade and 100-continue from the fields', async (t) => {
  const cases: [string, string, Partial<HttpRequestHead>][] = [
    ['1.1 default', 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', { keepAlive: true }],
    ['1.1 close', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', { keepAlive: false }],
    ['1.1 close in a list', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE ,bar\r\n\r\n', { keepAlive: false }],
    ['1.1 close on a second line', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: Close\r\n\r\n', { keepAlive: false }],
    ['1.1 "closed" is not close', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n', { keepAlive: true }],
    ['1.0 default', 'GET / HTTP/1.0\r\n\r\n', { keepAlive: false }],
    ['1.0 keep-alive', 'GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n', { keepAlive: true }],
    ['1.0 keep-alive and close', 'GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n', { keepAlive: false }],
    ['upgrade', 'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n', { upgrade: true, keepAlive: true }],
    ['Upgrade field without the token', 'GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n', { upgrade: false }],
    ['token without the Upgrade field', 'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n', { upgrade: false }],
    ['upgrade ignored in HTTP/1.0', 'GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n', { upgrade: false }],
    ['100-continue', 'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 0\r\n\r\n', { expectContinue: true }],
    ['other expectation', 'POST / HTTP/1.1\r\nHost: h\r\nExpect: foo\r\nContent-Length: 0\r\n\r\n', { expectContinue: false }],
    ['100-continue ignored in HTTP/1.0', 'POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n', { expectContinue: false }],
  ];
  for (const [name, input, want] of cases) {
    const head = req(parseAll(input));
    for (const [k, v] of Object.entries(want)) t.equal(head[k as keyof HttpRequestHead], v, `${name}: ${k}`);
  }
});

t.test('Content-Length: identical lists accepted, leading zeros, zero', async (t) => {
  t.equal(req(parseAll('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello')).contentLength, 5);
  t.equal(parseAll('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello')[0]!.body, 'hello');
  t.equal(parseAll('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0005\r\n\r\nhello')[0]!.body, 'hello');
  const zero = parseAll('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n');
  t.equal(zero.length, 2);
  t.equal(req(zero).contentLength, 0);
  t.equal(zero[0]!.body, '');
  const c = new Collector();
  new HttpParser(c, { limits: { maxBodyBytes: Infinity } }).parse(latin1(`POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${Number.MAX_SAFE_INTEGER}\r\n\r\n`));
  t.equal((c.current!.head as HttpRequestHead).contentLength, Number.MAX_SAFE_INTEGER, 'the largest safe integer');
});

t.test('chunked bodies: extensions, trailers, case-insensitive coding, upper-case hex', async (t) => {
  const input =
    'POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n' +
    '5;name=value;quoted="a b"\r\nhello\r\n' +
    '1 ; ext\r\n \r\n' +
    'A\r\n0123456789\r\n' +
    '00000\r\nX-Trailer: done\r\nx-second:  2 \r\n\r\n';
  const ms = parseAll(input);
  t.equal(ms.length, 1);
  t.equal(req(ms).chunked, true);
  t.equal(req(ms).contentLength, -1);
  t.equal(ms[0]!.body, 'hello 0123456789');
  t.same(ms[0]!.trailers, [['X-Trailer', 'done'], ['x-second', '2']]);
  t.equal(parseAll('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')[0]!.trailers, undefined, 'no trailers');
  const bws = parseAll('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 \t;a=b\r\nabc\r\n0\r\n\r\n');
  t.equal(bws[0]!.body, 'abc', 'whitespace before a chunk extension is BWS (RFC 9112 §7.1.1)');
  const framing = parseAll('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n');
  t.equal(framing.length, 2, 'a Content-Length trailer does not change the framing');
});

// A mix of everything, fed whole, byte by byte, and split at every offset.
const VARIETY = [
  GET,
  '\r\n', // an empty line between messages (RFC 9112 §2.2)
  'POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world',
  'PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: done\r\n\r\n',
  'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n',
  'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  'POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc',
  'GET http://example.com/abs HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n',
].join('');

t.test('fed whole, byte by byte, and split at every offset: identical results', async (t) => {
  const wholeMessages = parseAll(VARIETY);
  const whole = summarize(wholeMessages);
  t.equal(wholeMessages.length, 9);
  t.equal(wholeMessages[2]!.body, 'hello world');
  t.same(wholeMessages[2]!.trailers, [['X-Trailer', 'done']]);
  t.equal(summarize(parseAll(VARIETY, {}, everyByte(VARIETY))), whole, 'byte by byte');
  let same = 0;
  for (let i = 1; i < VARIETY.length; i++) if (summarize(parseAll(VARIETY, {}, [i])) === whole) same++;
  t.equal(same, VARIETY.length - 1, 'every single split point');
  const rnd = mulberry32(7);
  let sameMulti = 0;
  for (let k = 0; k < 200; k++) {
    const splits = Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => 1 + Math.floor(rnd() * (VARIETY.length - 1))).sort((a, b) => a - b);
    if (summarize(parseAll(VARIETY, {}, splits)) === whole) sameMulti++;
  }
  t.equal(sameMulti, 200, '200 random multi-way splits');
});

t.test('parse(buffer, offset) starts at the offset; a head whole in the input is not copied', async (t) => {
  const c = new Collector();
  const p = new HttpParser(c);
  const buf = latin1(`garbage${GET}`);
  t.equal(p.parse(buf, 7), GET.length);
  t.equal(req(c.messages).target, '/path?q=1');
  t.throws(() => p.parse(buf, buf.length + 1), RangeError);
  // Bodies are views of the input.
  const views: Buffer[] = [];
  const bp = new HttpParser({ onHead() {}, onBody: (b) => void views.push(b), onMessageComplete() {} });
  const input = latin1('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc');
  bp.parse(input);
  t.equal(views[0]!.buffer, input.buffer, 'onBody gets a view of the input');
});

t.test('50 pipelined requests in one buffer; stop-after-complete gives exact consumed counts', async (t) => {
  const parts: string[] = [];
  for (let i = 0; i < 50; i++) {
    if (i % 3 === 0) parts.push(`GET /${i} HTTP/1.1\r\nHost: h\r\n\r\n`);
    else if (i % 3 === 1) parts.push(`POST /${i} HTTP/1.1\r\nHost: h\r\nContent-Length: ${String(i).length}\r\n\r\n${i}`);
    else parts.push(`POST /${i} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${String(i).length}\r\n${i}\r\n0\r\n\r\n`);
  }
  const input = parts.join('');
  const all = parseAll(input);
  t.same(all.map((m) => req([m]).target), parts.map((_, i) => `/${i}`), 'in order');
  t.same(all.map((m) => m.body), parts.map((_, i) => (i % 3 === 0 ? '' : String(i))), 'bodies');
  const c = new Collector('complete');
  const p = new HttpParser(c);
  const buf = latin1(input);
  let offset = 0;
  let calls = 0;
  const consumed: string[] = [];
  while (offset < buf.length && calls < 100) {
    const n = p.parse(buf, offset);
    consumed.push(buf.toString('latin1', offset, offset + n));
    offset += n;
    calls++;
  }
  t.equal(calls, 50, 'one message per call');
  t.same(consumed, parts, 'each call consumed exactly one message');
});

t.test('stop after the head: an upgrade leaves the next protocol bytes unconsumed', async (t) => {
  const c = new Collector('head');
  const p = new HttpParser(c);
  const head = 'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
  const buf = latin1(`${head}\x81\x05hello`);
  const n = p.parse(buf);
  t.equal(n, head.length);
  t.equal(buf.toString('latin1', n), '\x81\x05hello', 'the frame bytes are left');
  t.equal(req(c.messages).upgrade, true);
  t.same(c.events, ['head', 'complete'], 'a body-less message completes with its head');
});

t.test('stop after the head and after each body chunk (backpressure)', async (t) => {
  const c = new Collector('head');
  const p = new HttpParser(c);
  const head = 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n';
  const buf = latin1(`${head}0123456789GET / HTTP/1.1\r\nHost: h\r\n\r\n`);
  t.equal(p.parse(buf), head.length, 'stopped after the head');
  t.same(c.events, ['head']);
  t.equal(p.parse(buf, head.length), buf.length - head.length, 'then the body and the next request');
  t.same(c.messages.map((m) => m.body), ['0123456789', '']);

  const b = new Collector('body');
  const bp = new HttpParser(b);
  const chunked = latin1('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
  let offset = 0;
  const steps: number[] = [];
  for (let i = 0; i < 10 && offset < chunked.length; i++) {
    const n = bp.parse(chunked, offset);
    steps.push(n);
    offset += n;
  }
  t.equal(offset, chunked.length);
  t.equal(steps.length, 3, 'one stop per body chunk, then the rest');
  t.same(b.events, ['head', 'body:3', 'body:2', 'complete']);
  t.equal(b.messages[0]!.body, 'abcde');
});

// ------------------------------------------------------------------------------------------------ rejections

const H = 'Host: h\r\n';
const TE = 'Transfer-Encoding: chunked\r\n';
const REJECTIONS: [string, string, number, string][] = [
  // line endings (RFC 9112 §2.2)
  ['bare LF ending the request line', `GET / HTTP/1.1\n${H}\r\n`, 400, 'HTTP_BARE_LF'],
  ['bare LF ending a field', `GET / HTTP/1.1\r\nHost: h\n\r\n`, 400, 'HTTP_BARE_LF'],
  ['bare LF ending the head', `GET / HTTP/1.1\r\n${H}\n`, 400, 'HTTP_BARE_LF'],
  ['bare LF before the request', `\nGET / HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BARE_LF'],
  ['bare CR before the request', `\rGET / HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BARE_CR'],
  ['bare CR in a value', `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, 400, 'HTTP_BARE_CR'],
  ['bare CR ending the head', `GET / HTTP/1.1\r\n${H}\rX`, 400, 'HTTP_BARE_CR'],
  ['bare CR in the request line', `GET / HTTP/1.1\rX\r\n${H}\r\n`, 400, 'HTTP_BARE_CR'],
  // request line (RFC 9112 §3)
  ['double space', `GET  / HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_REQUEST_LINE'],
  ['leading space', ` GET / HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_REQUEST_LINE'],
  ['tab separator', `GET\t/ HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_REQUEST_LINE'],
  ['no version (HTTP/0.9)', 'GET /\r\n\r\n', 400, 'HTTP_BAD_REQUEST_LINE'],
  ['method only', 'GET\r\n\r\n', 400, 'HTTP_BAD_REQUEST_LINE'],
  ['bad method char', `G(T / HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_METHOD'],
  ['control char in target', `GET /a\x01b HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_TARGET'],
  ['obs-text in target', `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_TARGET'],
  ['relative target', `GET path HTTP/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_TARGET'],
  ['not a version', `GET / HTTQ/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_VERSION'],
  ['lower-case version', `GET / http/1.1\r\n${H}\r\n`, 400, 'HTTP_BAD_VERSION'],
  ['version with two digits', `GET / HTTP/1.10\r\n${H}\r\n`, 400, 'HTTP_BAD_VERSION'],
  ['trailing space after version', `GET / HTTP/1.1 \r\n${H}\r\n`, 400, 'HTTP_BAD_VERSION'],
  ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, 505, 'HTTP_VERSION_NOT_SUPPORTED'],
  ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, 505, 'HTTP_VERSION_NOT_SUPPORTED'],
  ['HTTP/0.9 as a version', `GET / HTTP/0.9\r\n${H}\r\n`, 505, 'HTTP_VERSION_NOT_SUPPORTED'],
  // fields (RFC 9112 §5, RFC 9110 §5)
  ['obs-fold', `GET / HTTP/1.1\r\n${H}X: a\r\n  b\r\n\r\n`, 400, 'HTTP_OBS_FOLD'],
  ['obs-fold with a tab', `GET / HTTP/1.1\r\n${H}X: a\r\n\tb\r\n\r\n`, 400, 'HTTP_OBS_FOLD'],
  ['whitespace before the first field', `GET / HTTP/1.1\r\n ${H}\r\n`, 400, 'HTTP_OBS_FOLD'],
  ['space before colon', `GET / HTTP/1.1\r\n${H}X : a\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
  ['tab before colon', `GET / HTTP/1.1\r\n${H}X\t: a\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
  ['no colon', `GET / HTTP/1.1\r\n${H}NoColon\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
  ['empty name', `GET / HTTP/1.1\r\n${H}: v\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
  ['invalid name char', `GET / HTTP/1.1\r\n${H}X(y): a\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
  ['non-ASCII name', `GET / HTTP/1.1\r\n${H}X\xe9: a\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
  ['NUL in value', `GET / HTTP/1.1\r\n${H}X: a\0b\r\n\r\n`, 400, 'HTTP_BAD_HEADER_VALUE'],
  ['control char in value', `GET / HTTP/1.1\r\n${H}X: a\x0bb\r\n\r\n`, 400, 'HTTP_BAD_HEADER_VALUE'],
  ['DEL in value', `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, 400, 'HTTP_BAD_HEADER_VALUE'],
  // Host (RFC 9112 §3.2)
  ['missing Host', 'GET / HTTP/1.1\r\n\r\n', 400, 'HTTP_MISSING_HOST'],
  ['two Hosts', `GET / HTTP/1.1\r\n${H}${H}\r\n`, 400, 'HTTP_DUPLICATE_HOST'],
  ['two Hosts in HTTP/1.0', `GET / HTTP/1.0\r\n${H}host: other\r\n\r\n`, 400, 'HTTP_DUPLICATE_HOST'],
  ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: user@h\r\n\r\n', 400, 'HTTP_BAD_HOST'],
  ['Host with a path', 'GET / HTTP/1.1\r\nHost: h/x\r\n\r\n', 400, 'HTTP_BAD_HOST'],
  ['Host with a space', 'GET / HTTP/1.1\r\nHost: h x\r\n\r\n', 400, 'HTTP_BAD_HOST'],
  // Content-Length (RFC 9110 §8.6, RFC 9112 §6.3)
  ['differing CLs', `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 4\r\n\r\n`, 400, 'HTTP_SMUGGLING_CL_CL'],
  ['differing CL list', `POST / HTTP/1.1\r\n${H}Content-Length: 3, 4\r\n\r\n`, 400, 'HTTP_SMUGGLING_CL_CL'],
  ['signed CL', `POST / HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
  ['negative CL', `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
  ['hex CL', `POST / HTTP/1.1\r\n${H}Content-Length: 0x10\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
  ['empty CL', `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
  ['CL with inner space', `POST / HTTP/1.1\r\n${H}Content-Length: 1 2\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
  ['CL list with an empty element', `POST / HTTP/1.1\r\n${H}Content-Length: 3,,3\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
  ['CL overflow', `POST / HTTP/1.1\r\n${H}Content-Length: 99999999999999999999\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
  ['CL just over MAX_SAFE_INTEGER', `POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740992\r\n\r\n`, 400, 'HTTP_BAD_CONTENT_LENGTH'],
  // Transfer-Encoding (RFC 9112 §6.1, §6.3)
  ['CL and TE', `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\n${TE}\r\n`, 400, 'HTTP_SMUGGLING_CL_TE'],
  ['TE and CL', `POST / HTTP/1.1\r\n${H}${TE}Content-Length: 3\r\n\r\n`, 400, 'HTTP_SMUGGLING_CL_TE'],
  ['TE not ending in chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
  ['TE unknown only', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
  ['TE empty', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
  ['TE chunked then gzip on two lines', `POST / HTTP/1.1\r\n${H}${TE}Transfer-Encoding: gzip\r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
  ['TE "chunked " lookalike', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
  ['chunked twice', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
  ['chunked in HTTP/1.0', `POST / HTTP/1.0\r\n${TE}\r\n`, 400, 'HTTP_BAD_TRANSFER_ENCODING'],
  ['gzip then chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`, 501, 'HTTP_UNSUPPORTED_TRANSFER_ENCODING'],
  // chunked framing (RFC 9112 §7.1)
  ['chunk size overflow', `POST / HTTP/1.1\r\n${H}${TE}\r\nFFFFFFFFFFFFFFFF\r\n`, 400, 'HTTP_BAD_CHUNK_SIZE'],
  ['chunk size too many digits', `POST / HTTP/1.1\r\n${H}${TE}\r\n00000000000000001\r\n`, 400, 'HTTP_BAD_CHUNK_SIZE'],
  ['chunk size bad char', `POST / HTTP/1.1\r\n${H}${TE}\r\n5x\r\nhello\r\n`, 400, 'HTTP_BAD_CHUNK_SIZE'],
  ['chunk size signed', `POST / HTTP/1.1\r\n${H}${TE}\r\n+5\r\nhello\r\n`, 400, 'HTTP_BAD_CHUNK_SIZE'],
  ['chunk size 0x prefix', `POST / HTTP/1.1\r\n${H}${TE}\r\n0x5\r\nhello\r\n`, 400, 'HTTP_BAD_CHUNK_SIZE'],
  ['chunk size empty', `POST / HTTP/1.1\r\n${H}${TE}\r\n\r\n`, 400, 'HTTP_BAD_CHUNK_SIZE'],
  ['chunk size line ends with LF', `POST / HTTP/1.1\r\n${H}${TE}\r\n5\nhello\r\n`, 400, 'HTTP_BARE_LF'],
  ['chunk size line bare CR', `POST / HTTP/1.1\r\n${H}${TE}\r\n5\rhello\r\n`, 400, 'HTTP_BARE_CR'],
  ['chunk extension with LF', `POST / HTTP/1.1\r\n${H}${TE}\r\n5;a\nb\r\nhello\r\n`, 400, 'HTTP_BARE_LF'],
  ['chunk extension without ;', `POST / HTTP/1.1\r\n${H}${TE}\r\n5 x\r\nhello\r\n`, 400, 'HTTP_BAD_CHUNK_EXTENSION'],
  ['chunk extension with NUL', `POST / HTTP/1.1\r\n${H}${TE}\r\n5;a=\0\r\nhello\r\n`, 400, 'HTTP_BAD_CHUNK_EXTENSION'],
  ['chunk data too long', `POST / HTTP/1.1\r\n${H}${TE}\r\n5\r\nhelloX\r\n`, 400, 'HTTP_BAD_CHUNK_DATA'],
  ['chunk data CR without LF', `POST / HTTP/1.1\r\n${H}${TE}\r\n5\r\nhello\rX`, 400, 'HTTP_BAD_CHUNK_DATA'],
  ['chunk data followed by LF only', `POST / HTTP/1.1\r\n${H}${TE}\r\n5\r\nhello\n0\r\n\r\n`, 400, 'HTTP_BAD_CHUNK_DATA'],
  ['obs-fold in trailers', `POST / HTTP/1.1\r\n${H}${TE}\r\n0\r\nX: a\r\n b\r\n\r\n`, 400, 'HTTP_OBS_FOLD'],
  ['bad trailer name', `POST / HTTP/1.1\r\n${H}${TE}\r\n0\r\nX y: a\r\n\r\n`, 400, 'HTTP_BAD_HEADER'],
  ['bare LF ending trailers', `POST / HTTP/1.1\r\n${H}${TE}\r\n0\r\n\n`, 400, 'HTTP_BARE_LF'],
  // truncation
  ['truncated head', 'GET / HTTP/1.1\r\nHost: h\r\n', 400, 'HTTP_TRUNCATED'],
  ['truncated body', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nab`, 400, 'HTTP_TRUNCATED'],
  ['truncated chunked body', `POST / HTTP/1.1\r\n${H}${TE}\r\n5\r\nhello\r\n`, 400, 'HTTP_TRUNCATED'],
  ['truncated trailers', `POST / HTTP/1.1\r\n${H}${TE}\r\n0\r\nX: y\r\n`, 400, 'HTTP_TRUNCATED'],
];

t.test('rejections: status and code for every rule, whole and byte by byte', async (t) => {
  for (const [name, input, status, code] of REJECTIONS) {
    const whole = errorOf(input);
    t.equal(whole.status, status, `${name}: status`);
    t.equal(whole.code, code, `${name}: code`);
    t.ok(whole.message.length > 10, `${name}: a message`);
    const bytewise = errorOf(input, {}, everyByte(input));
    t.equal(`${bytewise.status} ${bytewise.code}`, `${status} ${code}`, `${name}: same error byte by byte`);
  }
});

t.test('after an error the parser stays failed until reset()', async (t) => {
  const p = new HttpParser(new Collector());
  let first: unknown;
  try {
    p.parse(latin1('GET / HTTP/1.1\n'));
  } catch (e) {
    first = e;
  }
  t.ok(first instanceof HttpParseError);
  t.equal(p.state, 'ERROR');
  t.throws(() => p.parse(latin1('GET / HTTP/1.1\r\nHost: h\r\n\r\n')), HttpParseError);
  try {
    p.parse(latin1('x'));
  } catch (e) {
    t.equal(e, first, 'the same error again');
  }
  t.doesNotThrow(() => p.onEndOfInput(), 'end of input after an error is quiet');
  p.reset();
  t.equal(p.state, 'START');
  t.equal(p.parse(latin1('GET / HTTP/1.1\r\nHost: h\r\n\r\n')), 27);
});

t.test('empty lines before a request are ignored; end of input between messages is fine', async (t) => {
  t.equal(parseAll(`\r\n\r\n${GET}`).length, 1);
  const idle = new HttpParser(new Collector());
  idle.parse(latin1(GET));
  t.equal(idle.isIdle, true);
  t.equal(idle.state, 'START');
  t.doesNotThrow(() => idle.onEndOfInput());
  const mid = new HttpParser(new Collector());
  mid.parse(latin1('GET / HT'));
  t.equal(mid.isIdle, false);
  t.equal(mid.state, 'HEAD');
  t.throws(() => mid.onEndOfInput(), { code: 'HTTP_TRUNCATED', status: 400 });
  t.equal(mid.state, 'ERROR');
});

t.test('limits: exactly at the boundary accepted, one over refused (whole and byte by byte)', async (t) => {
  const limits: Partial<HttpParserLimits> = { maxRequestLineBytes: 100, maxHeaderBytes: 200, maxHeaderCount: 5, maxBodyBytes: 10, maxChunkExtensionBytes: 20 };
  const opts = { limits };
  const check = (name: string, input: string, want: number | string): void => {
    for (const [how, splits] of [['whole', []], ['byte by byte', everyByte(input)]] as const) {
      if (typeof want === 'number') {
        let got: Message[] = [];
        try {
          got = parseAll(input, opts, [...splits]);
        } catch (e) {
          t.fail(`${name} (${how}): ${String(e)}`);
          continue;
        }
        t.equal(got.length, want, `${name} (${how}): accepted`);
      } else {
        const e = errorOf(input, opts, [...splits]);
        t.equal(`${e.status} ${e.code}`, want, `${name} (${how})`);
      }
    }
  };
  const line = (n: number): string => `GET /${'a'.repeat(n - 'GET / HTTP/1.1'.length)} HTTP/1.1`;
  t.equal(line(100).length, 100);
  check('request line at the limit', `${line(100)}\r\nHost: h\r\n\r\n`, 1);
  check('request line one over', `${line(101)}\r\nHost: h\r\n\r\n`, '414 HTTP_URI_TOO_LONG');
  check('request line one over, refused before it ends', line(102), '414 HTTP_URI_TOO_LONG');
  const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X${i}: v\r\n`).join('');
  check('5 fields', `GET / HTTP/1.1\r\nHost: h\r\n${fields(4)}\r\n`, 1);
  check('6 fields', `GET / HTTP/1.1\r\nHost: h\r\n${fields(5)}\r\n`, '431 HTTP_TOO_MANY_HEADERS');
  const block = (n: number): string => `Host: h\r\nX: ${'v'.repeat(n - 'Host: h\r\nX: \r\n'.length)}\r\n`;
  t.equal(block(200).length, 200);
  check('header section at the limit', `GET / HTTP/1.1\r\n${block(200)}\r\n`, 1);
  check('header section one over', `GET / HTTP/1.1\r\n${block(201)}\r\n`, '431 HTTP_HEADERS_TOO_LARGE');
  check('header section over, refused before the head ends', `GET / HTTP/1.1\r\nHost: h\r\nX: ${'v'.repeat(300)}`, '431 HTTP_HEADERS_TOO_LARGE');
  check('body at the limit', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789', 1);
  check('Content-Length one over, refused up front', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n', '413 HTTP_BODY_TOO_LARGE');
  const chunkedHead = 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n';
  check('chunked body at the limit', `${chunkedHead}5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n`, 1);
  check('chunked body one over, refused at the size line', `${chunkedHead}5\r\nhello\r\n6\r\n`, '413 HTTP_BODY_TOO_LARGE');
  check('chunk extension at the limit', `${chunkedHead}1;${'e'.repeat(19)}\r\nx\r\n0\r\n\r\n`, 1);
  check('chunk extension one over', `${chunkedHead}1;${'e'.repeat(20)}\r\nx\r\n0\r\n\r\n`, '400 HTTP_BAD_CHUNK_EXTENSION');
  const trailers = (n: number): string => `T: ${'v'.repeat(n - 'T: \r\n'.length)}\r\n`;
  check('trailer section at the limit', `${chunkedHead}0\r\n${trailers(200)}\r\n`, 1);
  check('trailer section one over', `${chunkedHead}0\r\n${trailers(201)}\r\n`, '431 HTTP_HEADERS_TOO_LARGE');
  check('5 trailers', `${chunkedHead}0\r\n${fields(5)}\r\n`, 1);
  check('6 trailers', `${chunkedHead}0\r\n${fields(6)}\r\n`, '431 HTTP_TOO_MANY_HEADERS');
  check('empty lines before the request within the budget', `${'\r\n'.repeat(50)}GET / HTTP/1.1\r\nHost: h\r\n\r\n`, 1);
  check('too many empty lines before the request', `${'\r\n'.repeat(51)}GET / HTTP/1.1\r\nHost: h\r\n\r\n`, '400 HTTP_BAD_REQUEST_LINE');
  t.throws(() => new HttpParser(new Collector(), { limits: { maxHeaderBytes: -1 } }), RangeError);
});

t.test('default limits', async (t) => {
  t.equal(errorOf(`GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: h\r\n\r\n`).status, 414);
  t.equal(errorOf(`GET / HTTP/1.1\r\nHost: h\r\nX: ${'a'.repeat(17000)}\r\n\r\n`).status, 431);
  const many = Array.from({ length: 100 }, (_, i) => `X${i}: v\r\n`).join('');
  t.equal(parseAll(`GET / HTTP/1.0\r\n${many}\r\n`).length, 1, '100 fields');
  t.equal(errorOf(`GET / HTTP/1.1\r\n${many}Host: h\r\n\r\n`).status, 431, '101 fields');
  t.equal(errorOf(`POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${10 * 1024 * 1024 + 1}\r\n\r\n`).status, 413);
});

// ------------------------------------------------------------------------------------------------ responses

t.test('response mode: Content-Length, chunked, 1xx, 204, 304, keep-alive', async (t) => {
  const opts = { mode: 'response' as const };
  const input =
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc' +
    'HTTP/1.1 100 Continue\r\n\r\n' +
    'HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n' +
    'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nT: 1\r\n\r\n' +
    'HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n' +
    'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n' +
    'HTTP/1.1 404\r\nContent-Length: 1\r\n\r\nx' +
    'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok' +
    'HTTP/1.1 500 Internal  Server\tError\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
  const ms = parseAll(input, opts);
  t.same(
    ms.map((m) => [res([m]).status, res([m]).reason, m.body, res([m]).keepAlive]),
    [
      [200, 'OK', 'abc', true],
      [100, 'Continue', '', true],
      [103, 'Early Hints', '', true],
      [201, 'Created', 'xyz', true],
      [204, 'No Content', '', true],
      [304, 'Not Modified', '', true],
      [404, '', 'x', true],
      [200, 'OK', 'ok', true],
      [500, 'Internal  Server\tError', '', false],
    ],
  );
  t.same(ms[3]!.trailers, [['T', '1']]);
  t.equal(summarize(parseAll(input, opts, everyByte(input))), summarize(ms), 'byte by byte gives the same');
});

t.test('response mode: close-delimited bodies', async (t) => {
  const opts = { mode: 'response' as const };
  const c = new Collector();
  const p = new HttpParser(c, opts);
  p.parse(latin1('HTTP/1.0 200 OK\r\n\r\nuntil '));
  p.parse(latin1('the end'));
  t.equal(c.messages.length, 0);
  t.equal(p.state, 'BODY_EOF');
  p.onEndOfInput();
  t.equal(c.messages[0]!.body, 'until the end', 'completed by the end of input');
  t.equal(res(c.messages).keepAlive, false);
  t.equal(res(c.messages).contentLength, -1);
  const te = parseAll('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw bytes', opts, [], true);
  t.equal(te[0]!.body, 'raw bytes', 'a final coding other than chunked: read until close (RFC 9112 §6.3)');
  t.equal(res(te).keepAlive, false);
  const both = parseAll('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', opts);
  t.equal(both[0]!.body, 'ok', 'Transfer-Encoding overrides Content-Length (RFC 9112 §6.3)');
  t.equal(res(both).keepAlive, false, '...and the connection is not reused');
  t.equal(res(both).contentLength, -1);
  const limited = new HttpParser(new Collector(), { mode: 'response', limits: { maxBodyBytes: 5 } });
  limited.parse(latin1('HTTP/1.1 200 OK\r\n\r\n12345'));
  t.throws(() => limited.parse(latin1('6')), { status: 413, code: 'HTTP_BODY_TOO_LARGE' });
});

t.test('response mode: HEAD responses via expectNoBody()', async (t) => {
  const c = new Collector();
  const p = new HttpParser(c, { mode: 'response' });
  p.expectNoBody();
  p.parse(latin1('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'));
  t.same(c.messages.map((m) => [res([m]).status, m.body]), [[100, ''], [200, ''], [200, 'x']], 'applies to the next final response only');
  t.equal(res(c.messages, 1).contentLength, 100, 'the Content-Length is reported');
  const chunked = new Collector();
  const cp = new HttpParser(chunked, { mode: 'response' });
  cp.expectNoBody();
  cp.parse(latin1('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'));
  t.equal(chunked.messages.length, 1);
  t.equal(res(chunked.messages).chunked, false);
  t.equal(cp.isIdle, true);
});

t.test('response mode: 101 switches protocols', async (t) => {
  const c = new Collector();
  const p = new HttpParser(c, { mode: 'response' });
  const head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
  const buf = latin1(`${head}\x81\x00`);
  const n = p.parse(buf);
  t.equal(n, head.length);
  t.equal(buf.toString('latin1', n), '\x81\x00', 'the rest is the next protocol');
  t.equal(p.state, 'UPGRADED');
  t.equal(p.parse(buf, n), 0, 'nothing more is parsed');
  t.same(c.events, ['head', 'complete']);
  t.doesNotThrow(() => p.onEndOfInput());
});

t.test('response mode: rejections', async (t) => {
  const opts = { mode: 'response' as const };
  const cases: [string, string, string][] = [
    ['bad status digits', 'HTTP/1.1 2x0 OK\r\n\r\n', 'HTTP_BAD_STATUS_LINE'],
    ['status below 100', 'HTTP/1.1 099 Low\r\n\r\n', 'HTTP_BAD_STATUS_LINE'],
    ['two-digit status', 'HTTP/1.1 20 OK\r\n\r\n', 'HTTP_BAD_STATUS_LINE'],
    ['four-digit status', 'HTTP/1.1 2000 OK\r\n\r\n', 'HTTP_BAD_STATUS_LINE'],
    ['no space after the version', 'HTTP/1.1200 OK\r\n\r\n', 'HTTP_BAD_STATUS_LINE'],
    ['control char in reason', 'HTTP/1.1 200 O\x01K\r\n\r\n', 'HTTP_BAD_STATUS_LINE'],
    ['bad version', 'HTTP/1.x 200 OK\r\n\r\n', 'HTTP_BAD_VERSION'],
    ['HTTP/2.0', 'HTTP/2.0 200 OK\r\n\r\n', 'HTTP_VERSION_NOT_SUPPORTED'],
    ['bare LF', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', 'HTTP_BARE_LF'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n', 'HTTP_OBS_FOLD'],
    ['differing CLs', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'HTTP_SMUGGLING_CL_CL'],
    ['chunked twice', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n', 'HTTP_BAD_TRANSFER_ENCODING'],
    ['truncated body', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab', 'HTTP_TRUNCATED'],
    ['status line over the limit', `HTTP/1.1 200 ${'x'.repeat(9000)}\r\n\r\n`, 'HTTP_BAD_STATUS_LINE'],
  ];
  for (const [name, input, code] of cases) {
    t.equal(errorOf(input, opts).code, code, name);
    t.equal(errorOf(input, opts, everyByte(input)).code, code, `${name} (byte by byte)`);
  }
});

// ------------------------------------------------------------------------------------------------ fuzz

t.test('seeded fuzz: only HttpParseError escapes, parse always progresses, splitting never changes the outcome', async (t) => {
  const rnd = mulberry32(20261125);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const seeds = VARIETY.split(/(?=GET |POST |PUT |OPTIONS |CONNECT )/).map(latin1);
  const responseSeeds = [
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: v\r\n\r\n',
    'HTTP/1.0 200 OK\r\n\r\nclose delimited',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
  ].map(latin1);
  const alphabet = latin1('\r\n :;,=0123456789abcdefABCDEFGHTP/\t\0\x7f\x80\xff"chunkedContent-LengthTransfer-EncodingHost');
  const tokens = ['\r\n', '\r\n\r\n', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 5\r\n', 'Host: h\r\n', ' ', '\n', '\r', '0\r\n\r\n', 'FFFFFFFF'].map(latin1);
  let accepted = 0;
  let rejected = 0;
  for (let i = 0; i < 3000; i++) {
    const responseMode = i % 5 === 4;
    const options: HttpParserOptions = { mode: responseMode ? 'response' : 'request', limits: { maxHeaderBytes: 400, maxRequestLineBytes: 100, maxBodyBytes: 1000 } };
    let input: Buffer;
    if (i % 6 === 0) {
      input = Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => pick([...alphabet])));
    } else {
      input = Buffer.from(pick(responseMode ? responseSeeds : seeds));
      const mutations = 1 + Math.floor(rnd() * 4);
      for (let m = 0; m < mutations; m++) {
        const at = Math.floor(rnd() * (input.length + 1));
        const kind = rnd();
        if (kind < 0.3) input = Buffer.concat([input.subarray(0, at), Buffer.from([pick([...alphabet])]), input.subarray(at)]);
        else if (kind < 0.5) input = Buffer.concat([input.subarray(0, at), pick(tokens), input.subarray(at)]);
        else if (kind < 0.75) input = Buffer.concat([input.subarray(0, at), input.subarray(at + 1 + Math.floor(rnd() * 3))]);
        else if (at < input.length) input[at] = pick([...alphabet]);
      }
    }
    const outcome = (splits: number[]): string => {
      try {
        return `ok ${summarize(parseAll(input, options, splits, true))}`;
      } catch (e) {
        if (e instanceof HttpParseError) return 'error';
        return `UNEXPECTED ${String(e)}`;
      }
    };
    const whole = outcome([]);
    if (whole.startsWith('UNEXPECTED')) {
      t.fail(`case ${i}: ${whole} for ${JSON.stringify(input.toString('latin1'))}`);
      return;
    }
    const splits = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => Math.floor(rnd() * input.length)).sort((a, b) => a - b);
    const split = outcome(splits);
    if (split !== whole) {
      t.fail(`case ${i}: split at ${splits} gives ${split.slice(0, 200)} instead of ${whole.slice(0, 200)} for ${JSON.stringify(input.toString('latin1'))}`);
      return;
    }
    if (whole === 'error') rejected++;
    else accepted++;

    // Callbacks that stop at random: every call consumes at least one byte (or the parser switched protocols).
    const stopper = new HttpParser(
      { onHead: () => rnd() < 0.5, onBody: () => rnd() < 0.5, onMessageComplete: () => rnd() < 0.5 },
      options,
    );
    let offset = 0;
    let calls = 0;
    try {
      while (offset < input.length && calls <= input.length) {
        const n = stopper.parse(input, offset);
        calls++;
        if (n === 0 && stopper.state !== 'UPGRADED') {
          t.fail(`case ${i}: parse consumed nothing in state ${stopper.state}`);
          return;
        }
        if (n === 0) break;
        offset += n;
      }
    } catch (e) {
      if (!(e instanceof HttpParseError)) {
        t.fail(`case ${i}: ${String(e)}`);
        return;
      }
    }
    if (calls > input.length + 1) {
      t.fail(`case ${i}: ${calls} parse calls for ${input.length} bytes`);
      return;
    }
  }
  t.ok(accepted > 300 && rejected > 300, `both outcomes exercised (${accepted} accepted, ${rejected} rejected)`);
});

t.test('the shared name and value caches never change results (many distinct names and values)', async (t) => {
  const rnd = mulberry32(99);
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-';
  const word = (n: number): string => Array.from({ length: n }, () => chars[Math.floor(rnd() * chars.length)]!).join('');
  let wrong = 0;
  for (let r = 0; r < 300; r++) {
    // Names of one family that differ late, cacheable fields with random short values, odd spellings of known names.
    const sent: [string, string][] = [
      ['Host', `h${word(1 + Math.floor(rnd() * 10))}`],
      [`X-Family-${word(3)}`, word(Math.floor(rnd() * 50))],
      [`${word(1 + Math.floor(rnd() * 20))}`, word(Math.floor(rnd() * 30))],
      ['Accept', word(Math.floor(rnd() * 45))],
      [rnd() < 0.5 ? 'accept-encoding' : 'ACCEPT-ENCODING', word(1 + Math.floor(rnd() * 8))],
      [rnd() < 0.5 ? 'content-LENGTH' : 'Content-Length', '0'],
    ];
    const input = `GET / HTTP/1.1\r\n${sent.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
    const head = req(parseAll(input, {}, rnd() < 0.5 ? [] : [Math.floor(rnd() * input.length)]));
    const got = [...head.fields];
    if (JSON.stringify(got) !== JSON.stringify(sent)) wrong++;
    for (const [n, v] of sent) if (head.fields.get(n.toUpperCase()) !== v) wrong++;
    if (head.contentLength !== 0) wrong++;
  }
  t.equal(wrong, 0, 'every name and value as sent, framing fields recognised in any case');
});

// ------------------------------------------------------------------------------------------------ HttpFields

t.test('HttpFields: an ordered, case-insensitive multimap', async (t) => {
  const f = new HttpFields().add('Accept', 'a').add('X-Multi', '1').add('x-multi', '2').add('Set-Cookie', 'a=1, b');
  t.equal(f.size, 4);
  t.equal(f.get('x-MULTI'), '1', 'get: the first value');
  t.equal(f.getCombined('X-Multi'), '1, 2', 'getCombined: joined with ", "');
  t.same(f.getAll('X-MULTI'), ['1', '2']);
  t.same(f.getAll('missing'), []);
  t.equal(f.get('missing'), undefined);
  t.equal(f.getCombined('missing'), undefined);
  t.equal(f.has('accept'), true);
  t.equal(f.has('nope'), false);
  f.add('Accept', 'b');
  f.set('ACCEPT', 'c');
  t.same([...f], [['ACCEPT', 'c'], ['X-Multi', '1'], ['x-multi', '2'], ['Set-Cookie', 'a=1, b']], 'set replaces in place, removes later ones');
  t.equal(f.delete('x-multi'), 2);
  t.equal(f.delete('x-multi'), 0);
  f.set('New', 'n');
  t.same([...f], [['ACCEPT', 'c'], ['Set-Cookie', 'a=1, b'], ['New', 'n']], 'set of a new name appends');
  const o = new HttpFields().add('A', '1').add('a', '2').add('__proto__', 'x').toObject();
  t.equal(o['a'], '1, 2');
  t.equal(o['__proto__'], 'x', 'no prototype pollution');
  t.equal(Object.getPrototypeOf(o), null);
  const from = HttpFields.from({ 'Content-Type': 'text/plain', 'X-N': 5, 'Set-Cookie': ['a=1', 'b=2'] });
  t.same([...from], [['Content-Type', 'text/plain'], ['X-N', '5'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']]);
  t.equal(from.nameAt(0), 'Content-Type');
  t.equal(from.lowerAt(0), 'content-type');
  t.equal(from.valueAt(1), '5');
});
