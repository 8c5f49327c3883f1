import t from 'tap';
import {
  CRLF,
  LAST_CHUNK,
  appendChunk,
  chunkHeader,
  generateRequestHead,
  generateResponseHead,
  httpDate,
  lastChunk,
} from '../lib/http/HttpGenerator.js';
import type { ResponseHeadInfo } from '../lib/http/HttpGenerator.js';
import { HttpFields } from '../lib/http/HttpFields.js';
import { HttpParser } from '../lib/http/HttpParser.js';
import type { HttpRequestHead, HttpResponseHead } from '../lib/http/HttpParser.js';
import { reasonPhrase, statusAllowsBody } from '../lib/http/HttpStatus.js';
import { HttpGeneratorError } from '../lib/http/errors.js';

const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** The head as a string with the Date value replaced by `*` (after checking its format). */
function text(b: Buffer): string {
  return b.toString('latin1').replace(/Date: ([^\r]*)\r\n/, (_, d: string) => {
    if (!IMF_FIXDATE.test(d)) throw new Error(`bad Date ${d}`);
    return 'Date: *\r\n';
  });
}
const response = (info: ResponseHeadInfo): string => text(generateResponseHead(info).bytes);

t.test('exact bytes of common responses', async (t) => {
  const a = generateResponseHead({ status: 200, fields: { 'Content-Type': 'text/plain' }, contentLength: 5, keepAlive: true });
  t.equal(text(a.bytes), 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 5\r\n\r\n');
  t.same([a.chunked, a.keepAlive], [false, true]);

  const b = generateResponseHead({ status: 200, keepAlive: false });
  t.equal(text(b.bytes), 'HTTP/1.1 200 OK\r\nDate: *\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n', 'unknown length: chunked');
  t.same([b.chunked, b.keepAlive], [true, false]);

  const c = generateResponseHead({ status: 200, contentLength: -1, keepAlive: true, versionMinor: 0 });
  t.equal(text(c.bytes), 'HTTP/1.0 200 OK\r\nDate: *\r\nConnection: close\r\n\r\n', 'HTTP/1.0, unknown length: close-delimited');
  t.same([c.chunked, c.keepAlive], [false, false]);

  t.equal(
    response({ status: 200, contentLength: 10, keepAlive: true, versionMinor: 0 }),
    'HTTP/1.0 200 OK\r\nDate: *\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n',
    'HTTP/1.0 keep-alive says so',
  );
  t.equal(response({ status: 404, contentLength: 0, keepAlive: true }), 'HTTP/1.1 404 Not Found\r\nDate: *\r\nContent-Length: 0\r\n\r\n');
  t.equal(response({ status: 599, reason: 'Custom Thing', contentLength: 0, keepAlive: true }), 'HTTP/1.1 599 Custom Thing\r\nDate: *\r\nContent-Length: 0\r\n\r\n');
  t.equal(response({ status: 299, contentLength: 0, keepAlive: true }), 'HTTP/1.1 299 Unknown\r\nDate: *\r\nContent-Length: 0\r\n\r\n');
  t.equal(response({ status: 200, reason: '', contentLength: 0, keepAlive: true }), 'HTTP/1.1 200 \r\nDate: *\r\nContent-Length: 0\r\n\r\n', 'an empty reason');
  const forced = generateResponseHead({ status: 200, contentLength: 5, chunked: true, keepAlive: true });
  t.equal(text(forced.bytes), 'HTTP/1.1 200 OK\r\nDate: *\r\nTransfer-Encoding: chunked\r\n\r\n', 'chunked asked for');
  t.equal(forced.chunked, true);
});

t.test('1xx, 204, 304 and HEAD: no body, no framing fields', async (t) => {
  const e = generateResponseHead({ status: 204, fields: { 'Content-Length': '7' }, contentLength: 7, keepAlive: true });
  t.equal(text(e.bytes), 'HTTP/1.1 204 No Content\r\nDate: *\r\n\r\n');
  t.same([e.chunked, e.keepAlive], [false, true]);
  t.equal(response({ status: 304, contentLength: -1, keepAlive: true }), 'HTTP/1.1 304 Not Modified\r\nDate: *\r\n\r\n');
  t.equal(response({ status: 304, contentLength: -1, keepAlive: true, versionMinor: 0 }), 'HTTP/1.0 304 Not Modified\r\nDate: *\r\nConnection: keep-alive\r\n\r\n', '304 on 1.0 stays persistent');
  t.equal(response({ status: 100, keepAlive: true }), 'HTTP/1.1 100 Continue\r\n\r\n', '1xx: no Date either');
  t.equal(
    response({ status: 101, fields: { Upgrade: 'websocket', Connection: 'Upgrade' }, keepAlive: true }),
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
  );
  const head = generateResponseHead({ status: 200, contentLength: -1, keepAlive: true, head: true });
  t.equal(text(head.bytes), 'HTTP/1.1 200 OK\r\nDate: *\r\n\r\n', 'HEAD, unknown length: no Transfer-Encoding');
  t.same([head.chunked, head.keepAlive], [false, true]);
  t.equal(response({ status: 200, contentLength: 42, keepAlive: true, head: true }), 'HTTP/1.1 200 OK\r\nDate: *\r\nContent-Length: 42\r\n\r\n', 'HEAD, known length: as for GET');
  const head10 = generateResponseHead({ status: 200, keepAlive: true, head: true, versionMinor: 0 });
  t.equal(head10.keepAlive, true, 'HEAD on 1.0 needs no close to delimit anything');
});

t.test('fields: order kept, framing fields owned by the generator, Connection and Date merged', async (t) => {
  const fields = new HttpFields()
    .add('Content-Length', '999')
    .add('Transfer-Encoding', 'gzip')
    .add('X-A', '1')
    .add('X-A', '2')
    .add('Set-Cookie', 'a=1')
    .add('Set-Cookie', 'b=2');
  t.equal(
    response({ status: 200, fields, contentLength: 3, keepAlive: true }),
    'HTTP/1.1 200 OK\r\nX-A: 1\r\nX-A: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nDate: *\r\nContent-Length: 3\r\n\r\n',
  );
  t.equal(
    response({ status: 200, fields: { 'Set-Cookie': ['a=1', 'b=2'], 'X-Num': 7 }, contentLength: 0, keepAlive: true }),
    'HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Num: 7\r\nDate: *\r\nContent-Length: 0\r\n\r\n',
    'a record with an array and a number',
  );
  const closing = generateResponseHead({ status: 200, fields: { Connection: 'close' }, contentLength: 0, keepAlive: true });
  t.equal(closing.keepAlive, false, 'Connection: close in the fields ends keep-alive');
  t.equal(text(closing.bytes), 'HTTP/1.1 200 OK\r\nDate: *\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  t.equal(
    response({ status: 426, fields: { Upgrade: 'websocket', Connection: 'Upgrade, keep-alive' }, contentLength: 0, keepAlive: false }),
    'HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nDate: *\r\nContent-Length: 0\r\nConnection: Upgrade, close\r\n\r\n',
    'other Connection tokens are kept',
  );
  const dated = generateResponseHead({ status: 200, fields: { Date: 'Thu, 01 Jan 1970 00:00:00 GMT' }, contentLength: 0, keepAlive: true });
  t.equal(dated.bytes.toString(), 'HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n', 'a Date from the fields replaces ours');
  t.equal(response({ status: 200, fields: { 'X-Latin': 'caf\xe9' }, contentLength: 0, keepAlive: true }).includes('X-Latin: caf\xe9\r\n'), true, 'obs-text is allowed');
});

t.test('header injection and invalid input are refused with typed errors', async (t) => {
  const base = { status: 200, contentLength: 0, keepAlive: true };
  const cases: [string, () => unknown, string][] = [
    ['CRLF in a value', () => generateResponseHead({ ...base, fields: { 'X-A': 'a\r\nSet-Cookie: x' } }), 'HTTP_INVALID_FIELD_VALUE'],
    ['LF in a value', () => generateResponseHead({ ...base, fields: { 'X-A': 'a\nb' } }), 'HTTP_INVALID_FIELD_VALUE'],
    ['CR in a value', () => generateResponseHead({ ...base, fields: { 'X-A': 'a\rb' } }), 'HTTP_INVALID_FIELD_VALUE'],
    ['NUL in a value', () => generateResponseHead({ ...base, fields: { 'X-A': 'a\0' } }), 'HTTP_INVALID_FIELD_VALUE'],
    ['DEL in a value', () => generateResponseHead({ ...base, fields: { 'X-A': 'a\x7f' } }), 'HTTP_INVALID_FIELD_VALUE'],
    // U+560D U+560A would be written as 0x0D 0x0A by a latin1 encoding (the "unicode header injection").
    ['a character above U+00FF', () => generateResponseHead({ ...base, fields: { 'X-A': 'a\u560d\u560aSet-Cookie: x' } }), 'HTTP_INVALID_FIELD_VALUE'],
    ['CRLF in an HttpFields value', () => generateResponseHead({ ...base, fields: new HttpFields().add('X', '\r\n') }), 'HTTP_INVALID_FIELD_VALUE'],
    ['a space in a name', () => generateResponseHead({ ...base, fields: { 'X A': 'a' } }), 'HTTP_INVALID_FIELD_NAME'],
    ['a colon in a name', () => generateResponseHead({ ...base, fields: { 'X:A': 'a' } }), 'HTTP_INVALID_FIELD_NAME'],
    ['CRLF in a name', () => generateResponseHead({ ...base, fields: { 'X\r\nY': 'a' } }), 'HTTP_INVALID_FIELD_NAME'],
    ['an empty name', () => generateResponseHead({ ...base, fields: { '': 'a' } }), 'HTTP_INVALID_FIELD_NAME'],
    ['CRLF in the reason', () => generateResponseHead({ ...base, reason: 'OK\r\nX: y' }), 'HTTP_INVALID_STATUS'],
    ['status 42', () => generateResponseHead({ ...base, status: 42 }), 'HTTP_INVALID_STATUS'],
    ['status 1000', () => generateResponseHead({ ...base, status: 1000 }), 'HTTP_INVALID_STATUS'],
    ['status 200.5', () => generateResponseHead({ ...base, status: 200.5 }), 'HTTP_INVALID_STATUS'],
    ['length -2', () => generateResponseHead({ ...base, contentLength: -2 }), 'HTTP_INVALID_FRAMING'],
    ['length 1.5', () => generateResponseHead({ ...base, contentLength: 1.5 }), 'HTTP_INVALID_FRAMING'],
    ['a space in the target', () => generateRequestHead({ method: 'GET', target: '/a b', host: 'h' }), 'HTTP_INVALID_TARGET'],
    ['CRLF in the target', () => generateRequestHead({ method: 'GET', target: '/\r\nX: y', host: 'h' }), 'HTTP_INVALID_TARGET'],
    ['an empty target', () => generateRequestHead({ method: 'GET', target: '', host: 'h' }), 'HTTP_INVALID_TARGET'],
    ['a bad method', () => generateRequestHead({ method: 'GE T', target: '/', host: 'h' }), 'HTTP_INVALID_METHOD'],
    ['CRLF in the host', () => generateRequestHead({ method: 'GET', target: '/', host: 'h\r\nX: y' }), 'HTTP_INVALID_FIELD_VALUE'],
    ['no Host on HTTP/1.1', () => generateRequestHead({ method: 'GET', target: '/' }), 'HTTP_INVALID_FRAMING'],
    ['chunked on HTTP/1.0', () => generateRequestHead({ method: 'POST', target: '/', chunked: true, versionMinor: 0 }), 'HTTP_INVALID_FRAMING'],
    ['Content-Length in trailers', () => lastChunk({ 'Content-Length': '1' }), 'HTTP_INVALID_FIELD_NAME'],
    ['Transfer-Encoding in trailers', () => lastChunk(new HttpFields().add('transfer-encoding', 'chunked')), 'HTTP_INVALID_FIELD_NAME'],
    ['CRLF in a trailer', () => lastChunk({ 'X-T': 'a\r\n\r\nGET / HTTP/1.1' }), 'HTTP_INVALID_FIELD_VALUE'],
  ];
  for (const [name, fn, code] of cases) {
    try {
      fn();
      t.fail(`${name}: not refused`);
    } catch (e) {
      t.ok(e instanceof HttpGeneratorError, `${name}: HttpGeneratorError`);
      t.equal((e as HttpGeneratorError).code, code, `${name}: ${code}`);
    }
  }
});

t.test('chunk framing', async (t) => {
  t.equal(chunkHeader(1).toString(), '1\r\n');
  t.equal(chunkHeader(255).toString(), 'ff\r\n');
  t.equal(chunkHeader(255), chunkHeader(255), 'small sizes are cached (the same Buffer)');
  t.equal(chunkHeader(1 << 20).toString(), '100000\r\n');
  t.throws(() => chunkHeader(0), RangeError, 'a zero-size chunk would end the body');
  t.throws(() => chunkHeader(-1), RangeError);
  t.throws(() => chunkHeader(1.5), RangeError);
  t.equal(CRLF.toString(), '\r\n');
  t.equal(LAST_CHUNK.toString(), '0\r\n\r\n');
  const data = Buffer.from('hello');
  const out: Buffer[] = [];
  appendChunk(out, data);
  appendChunk(out, Buffer.alloc(0));
  t.equal(out.length, 3, 'empty data adds nothing');
  t.equal(out[1], data, 'the data itself, not a copy');
  t.equal(Buffer.concat(out).toString(), '5\r\nhello\r\n');
  t.equal(lastChunk(), LAST_CHUNK);
  t.equal(lastChunk({ 'X-Checksum': 'abc', 'X-Count': 2 }).toString(), '0\r\nX-Checksum: abc\r\nX-Count: 2\r\n\r\n');
});

t.test('the Date value: IMF-fixdate, one string per second', async (t) => {
  const at = Date.UTC(2026, 10, 25, 12, 0, 0, 100);
  t.equal(httpDate(at), 'Wed, 25 Nov 2026 12:00:00 GMT');
  t.equal(httpDate(at + 899), 'Wed, 25 Nov 2026 12:00:00 GMT', 'the same second gives the same string');
  t.equal(httpDate(at + 900), 'Wed, 25 Nov 2026 12:00:01 GMT', 'the next second a new one');
  t.equal(httpDate(Date.UTC(2000, 0, 1, 0, 0, 0)), 'Sat, 01 Jan 2000 00:00:00 GMT', 'two-digit day');
  t.match(httpDate(), IMF_FIXDATE, 'now');
  // The head uses the cached value of the current second.
  const dateLine = /Date: ([^\r]*)\r\n/.exec(generateResponseHead({ status: 200, contentLength: 0, keepAlive: true }).bytes.toString())![1]!;
  const now = Date.now();
  t.ok(dateLine === httpDate(now) || dateLine === httpDate(now - 1000), 'the generated Date is the current second');
});

t.test('request heads for the client', async (t) => {
  t.equal(
    generateRequestHead({ method: 'GET', target: '/ws', host: '127.0.0.1:80', fields: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13' } }).toString(),
    'GET /ws HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\n\r\n',
  );
  t.equal(
    generateRequestHead({ method: 'POST', target: '/p', host: 'h', contentLength: 3, fields: { 'Content-Type': 'text/plain', 'Content-Length': '99', Host: 'other' } }).toString(),
    'POST /p HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n',
    'framing fields and a second Host in the fields are ignored',
  );
  t.equal(
    generateRequestHead({ method: 'PUT', target: '/c', fields: new HttpFields().add('host', 'from-fields') , chunked: true, keepAlive: false }).toString(),
    'PUT /c HTTP/1.1\r\nHost: from-fields\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n',
    'Host from the fields, first',
  );
  t.equal(
    generateRequestHead({ method: 'GET', target: '/', versionMinor: 0 }).toString(),
    'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
    'HTTP/1.0 without Host',
  );
});

t.test('round trip: generated messages parse back to the same thing', async (t) => {
  // A chunked response with trailers.
  const events: string[] = [];
  let responseHead: HttpResponseHead | undefined;
  let trailers: HttpFields | undefined;
  const rp = new HttpParser(
    {
      onHead: (h) => void (responseHead = h as HttpResponseHead),
      onBody: (b) => void events.push(b.toString()),
      onMessageComplete: (tr) => void (trailers = tr),
    },
    { mode: 'response' },
  );
  const head = generateResponseHead({ status: 201, fields: { 'Content-Type': 'text/plain', 'X-Multi': ['1', '2'] }, keepAlive: true });
  const wire: Buffer[] = [head.bytes];
  appendChunk(wire, Buffer.from('hello '));
  appendChunk(wire, Buffer.from('world'));
  wire.push(lastChunk({ 'X-Done': 'yes' }));
  const bytes = Buffer.concat(wire);
  t.equal(rp.parse(bytes), bytes.length);
  t.equal(responseHead!.status, 201);
  t.equal(responseHead!.reason, 'Created');
  t.equal(responseHead!.chunked, true);
  t.equal(responseHead!.keepAlive, true);
  t.same(responseHead!.fields.getAll('x-multi'), ['1', '2']);
  t.equal(events.join(''), 'hello world');
  t.same(trailers && [...trailers], [['X-Done', 'yes']]);
  // A request.
  let requestHead: HttpRequestHead | undefined;
  const qp = new HttpParser({ onHead: (h) => void (requestHead = h as HttpRequestHead), onBody() {}, onMessageComplete() {} });
  const req = generateRequestHead({ method: 'POST', target: '/x?y=1', host: 'example.com:8080', contentLength: 2, keepAlive: false, fields: { Accept: '*/*' } });
  qp.parse(Buffer.concat([req, Buffer.from('ok')]));
  t.equal(requestHead!.method, 'POST');
  t.equal(requestHead!.target, '/x?y=1');
  t.equal(requestHead!.contentLength, 2);
  t.equal(requestHead!.keepAlive, false);
  t.equal(requestHead!.fields.get('host'), 'example.com:8080');
});

t.test('reason phrases and bodiless statuses', async (t) => {
  t.equal(reasonPhrase(200), 'OK');
  t.equal(reasonPhrase(413), 'Content Too Large');
  t.equal(reasonPhrase(431), 'Request Header Fields Too Large');
  t.equal(reasonPhrase(505), 'HTTP Version Not Supported');
  t.equal(reasonPhrase(799), 'Unknown');
  t.same([100, 101, 199, 204, 304].map(statusAllowsBody), [false, false, false, false, false]);
  t.same([200, 201, 205, 301, 404, 500].map(statusAllowsBody), [true, true, true, true, true, true]);
});

t.test('the last head is reused only for the same inputs, and small bodies ride in its buffer', async (t) => {
  const fields = (type: string, extra?: [string, string]): HttpFields => {
    const f = new HttpFields().add('Content-Type', type);
    if (extra !== undefined) f.add(extra[0], extra[1]);
    return f;
  };
  const body = Buffer.from('hello world\n');
  const base = { status: 200, contentLength: body.length, keepAlive: true, body };
  const first = generateResponseHead({ ...base, fields: fields('text/plain') });
  const again = generateResponseHead({ ...base, fields: fields('text/plain') });
  const expected = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 12\r\n\r\nhello world\n';
  t.equal(text(first.bytes), expected, 'the body follows the head in one buffer');
  t.equal(text(again.bytes), expected, 'the same head again');
  t.same([first.bodyIncluded, again.bodyIncluded], [true, true]);
  t.not(first.bytes, again.bytes, 'each response gets its own buffer when the body rides along');

  // Every input that changes the head misses the cache: each answer is what a fresh generation gives.
  const variants: [string, ResponseHeadInfo, string][] = [
    ['a field value', { ...base, fields: fields('text/html') }, 'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nDate: *\r\nContent-Length: 12\r\n\r\nhello world\n'],
    ['a field more', { ...base, fields: fields('text/plain', ['X-A', '1']) }, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nDate: *\r\nContent-Length: 12\r\n\r\nhello world\n'],
    ['the status', { ...base, status: 201, fields: fields('text/plain') }, 'HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 12\r\n\r\nhello world\n'],
    ['a reason', { ...base, reason: 'Fine', fields: fields('text/plain') }, 'HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 12\r\n\r\nhello world\n'],
    ['keep-alive off', { ...base, keepAlive: false, fields: fields('text/plain') }, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello world\n'],
    ['HTTP/1.0', { ...base, versionMinor: 0, fields: fields('text/plain') }, 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n'],
    ['a HEAD request: no body', { ...base, head: true, fields: fields('text/plain') }, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 12\r\n\r\n'],
    ['a 204: no body, no length', { ...base, status: 204, fields: fields('text/plain') }, 'HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\nDate: *\r\n\r\n'],
    ['chunked asked for', { ...base, chunked: true, fields: fields('text/plain') }, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['a user Date', { ...base, fields: fields('text/plain', ['Date', 'Tue, 01 Dec 2026 00:00:00 GMT']) }, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 12\r\n\r\nhello world\n'],
    ['Connection: close in the fields', { ...base, fields: fields('text/plain', ['Connection', 'close']) }, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello world\n'],
    ['back to the first', { ...base, fields: fields('text/plain') }, expected],
  ];
  for (const [what, info, want] of variants) {
    const twice = [generateResponseHead(info), generateResponseHead(info)];
    for (const g of twice) t.equal(text(g.bytes), want, what);
  }
  const closing = generateResponseHead({ ...base, fields: fields('text/plain', ['Connection', 'close']) });
  t.equal(closing.keepAlive, false, 'a remembered head remembers its keep-alive answer too');

  // Bodies that do not go out as they are stay separate.
  const big = Buffer.alloc(2048, 0x61);
  const large = generateResponseHead({ status: 200, contentLength: big.length, keepAlive: true, body: big, fields: fields('text/plain') });
  t.equal(large.bodyIncluded, false, 'over INLINE_BODY_BYTES: not copied');
  t.notOk(large.bytes.toString('latin1').includes('aaaa'));
  const mismatch = generateResponseHead({ status: 200, contentLength: 5, keepAlive: true, body, fields: fields('text/plain') });
  t.equal(mismatch.bodyIncluded, false, 'a Content-Length other than the body size: the caller frames it');
});
