import t from 'tap';
import { chunkHeader, generateRequestHead, generateResponseHead, httpDate, LAST_CHUNK } from '../lib/http/HttpGenerator.js';
import { HttpFields } from '../lib/http/HttpFields.js';
import { HttpGeneratorError } from '../lib/http/errors.js';

const stripDate = (s: string): string => s.replace(/Date: [^\r]+\r\n/, 'Date: *\r\n');

t.test('exact bytes for common responses', async (t) => {
  const a = generateResponseHead({ status: 200, fields: { 'Content-Type': 'text/plain' }, contentLength: 5, keepAlive: true });
  t.equal(stripDate(a.bytes.toString('latin1')), 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\nContent-Length: 5\r\n\r\n');
  t.equal(a.chunked, false);
  const b = generateResponseHead({ status: 200, contentLength: -1, keepAlive: false });
  t.equal(stripDate(b.bytes.toString('latin1')), 'HTTP/1.1 200 OK\r\nDate: *\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
  t.equal(b.chunked, true);
  const c = generateResponseHead({ status: 200, contentLength: -1, keepAlive: true, versionMinor: 0 });
  t.equal(c.chunked, false, 'HTTP/1.0 has no chunked');
  t.equal(c.keepAlive, false, 'unknown length on HTTP/1.0 is close-delimited');
  t.match(c.bytes.toString(), /^HTTP\/1\.0 200 OK\r\n[\s\S]*Connection: close\r\n\r\n$/);
  const d = generateResponseHead({ status: 200, contentLength: 10, keepAlive: true, versionMinor: 0 });
  t.match(d.bytes.toString(), /Connection: keep-alive\r\n/);
  const e = generateResponseHead({ status: 204, fields: { 'Content-Length': '7' }, contentLength: 7, keepAlive: true });
  t.notMatch(e.bytes.toString(), /content-length|transfer-encoding/i, '204 gets no framing fields');
  const f = generateResponseHead({ status: 200, contentLength: -1, keepAlive: true, head: true });
  t.notMatch(f.bytes.toString(), /transfer-encoding/i, 'HEAD with unknown length: no chunked');
  const g = generateResponseHead({ status: 599, reason: 'Custom', contentLength: 0, keepAlive: true });
  t.match(g.bytes.toString(), /^HTTP\/1\.1 599 Custom\r\n/);
});

t.test('framing fields from the user are replaced by the generator', async (t) => {
  const fields = new HttpFields().add('Content-Length', '999').add('Transfer-Encoding', 'gzip').add('X-A', '1').add('X-A', '2');
  const s = generateResponseHead({ status: 200, fields, contentLength: 3, keepAlive: true }).bytes.toString();
  t.notMatch(s, /999|gzip/);
  t.match(s, /X-A: 1\r\nX-A: 2\r\n/);
  t.match(s, /Content-Length: 3\r\n/);
});

t.test('response splitting is refused', async (t) => {
  t.throws(() => generateResponseHead({ status: 200, fields: { 'X-A': 'a\r\nSet-Cookie: x' }, contentLength: 0, keepAlive: true }), HttpGeneratorError);
  t.throws(() => generateResponseHead({ status: 200, fields: { 'X A': 'a' }, contentLength: 0, keepAlive: true }), HttpGeneratorError);
  t.throws(() => generateResponseHead({ status: 200, fields: { 'X-A': 'a\0' }, contentLength: 0, keepAlive: true }), HttpGeneratorError);
  t.throws(() => generateResponseHead({ status: 200, reason: 'OK\r\nX: y', contentLength: 0, keepAlive: true }), HttpGeneratorError);
  t.throws(() => generateResponseHead({ status: 42, contentLength: 0, keepAlive: true }), HttpGeneratorError);
  t.throws(() => generateRequestHead({ method: 'GET', target: '/a b', host: 'h', contentLength: -1 }), HttpGeneratorError);
});

t.test('chunk framing and the Date cache', async (t) => {
  t.equal(chunkHeader(255).toString(), 'ff\r\n');
  t.equal(chunkHeader(255), chunkHeader(255), 'small sizes cached');
  t.equal(chunkHeader(1 << 20).toString(), '100000\r\n');
  t.equal(LAST_CHUNK.toString(), '0\r\n\r\n');
  const at = Date.UTC(2026, 10, 25, 12, 0, 0, 100);
  t.equal(httpDate(at), 'Wed, 25 Nov 2026 12:00:00 GMT');
  t.equal(httpDate(at + 800), httpDate(at), 'the same second gives the same string');
  t.equal(httpDate(at + 1000), 'Wed, 25 Nov 2026 12:00:01 GMT');
});

t.test('request heads for the client', async (t) => {
  const b = generateRequestHead({ method: 'GET', target: '/ws', host: '127.0.0.1:80', fields: { Upgrade: 'websocket', Connection: 'Upgrade' }, contentLength: -1 });
  t.equal(b.toString(), 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
});
