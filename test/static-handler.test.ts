import t from 'tap';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { Server } from '../lib/http/Server.js';
import { StaticHandler, parseRange } from '../lib/http/StaticHandler.js';
import { Router } from '../lib/http/Router.js';

const HOST = '127.0.0.1';
const dir = mkdtempSync(join(tmpdir(), 'quay-static-'));
const root = join(dir, 'public');
mkdirSync(join(root, 'sub'), { recursive: true });
writeFileSync(join(root, 'index.html'), '<h1>home</h1>');
writeFileSync(join(root, 'app.js'), 'console.log(1)');
writeFileSync(join(root, 'sub', 'index.html'), 'sub index');
writeFileSync(join(root, 'data.bin'), Buffer.from(Array.from({ length: 100 }, (_, i) => i)));
writeFileSync(join(dir, 'secret.txt'), 'top secret');
symlinkSync(join(dir, 'secret.txt'), join(root, 'leak.txt'));
const big = Buffer.alloc(8 * 1024 * 1024, 0x5a);
writeFileSync(join(root, 'big.bin'), big);
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const server = new Server({ port: 0, host: HOST }, new StaticHandler({ root }));
let port = 0;
t.before(async () => {
  port = (await server.start()).port;
});
t.teardown(() => server.stop(500));

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One request on a fresh connection; reads the response until the server closes (Connection: close). */
function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: HOST, port });
    const chunks: Buffer[] = [];
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('error', reject);
    s.on('close', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      const head = all.toString('latin1', 0, split).split('\r\n');
      const status = Number(head[0]!.split(' ')[1]);
      const h: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        h[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status, headers: h, body: all.subarray(split + 4) });
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    s.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}\r\n`, 'latin1');
  });
}

t.test('serves files with content types and index.html', async (t) => {
  const a = await get('/');
  t.equal(a.status, 200);
  t.equal(a.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(a.body.toString(), '<h1>home</h1>');
  const b = await get('/app.js');
  t.equal(b.headers['content-type'], 'text/javascript; charset=utf-8');
  const c = await get('/sub');
  t.equal(c.status, 301);
  t.equal(c.headers['location'], '/sub/');
  t.equal((await get('/sub/')).body.toString(), 'sub index');
  t.equal((await get('/nope.txt')).status, 404);
  const h = await get('/app.js', {}, 'HEAD');
  t.equal(h.status, 200);
  t.equal(h.headers['content-length'], '14');
  t.equal(h.body.length, 0);
  t.equal((await get('/app.js', {}, 'POST')).status, 404, 'declined: nothing else took it');
});

t.test('conditional requests: ETag and Last-Modified give 304', async (t) => {
  const first = await get('/app.js');
  const etag = first.headers['etag']!;
  const lastModified = first.headers['last-modified']!;
  t.ok(etag && lastModified);
  t.equal((await get('/app.js', { 'If-None-Match': etag })).status, 304);
  t.equal((await get('/app.js', { 'If-None-Match': '"other"' })).status, 200);
  t.equal((await get('/app.js', { 'If-Modified-Since': lastModified })).status, 304);
  t.equal((await get('/app.js', { 'If-Modified-Since': 'Thu, 01 Jan 1970 00:00:00 GMT' })).status, 200);
  t.equal((await get('/app.js', { 'If-None-Match': '"other"', 'If-Modified-Since': lastModified })).status, 200, 'If-None-Match wins');
  const nm = await get('/app.js', { 'If-None-Match': etag });
  t.equal(nm.body.length, 0, '304 has no body');
});

t.test('single byte ranges: 206 and 416', async (t) => {
  const a = await get('/data.bin', { Range: 'bytes=10-19' });
  t.equal(a.status, 206);
  t.equal(a.headers['content-range'], 'bytes 10-19/100');
  t.same([...a.body], Array.from({ length: 10 }, (_, i) => i + 10));
  const b = await get('/data.bin', { Range: 'bytes=-5' });
  t.same([...b.body], [95, 96, 97, 98, 99]);
  const c = await get('/data.bin', { Range: 'bytes=98-' });
  t.same([...c.body], [98, 99]);
  const d = await get('/data.bin', { Range: 'bytes=100-200' });
  t.equal(d.status, 416);
  t.equal(d.headers['content-range'], 'bytes */100');
  const e = await get('/data.bin', { Range: 'bytes=1-2,5-6' });
  t.equal(e.status, 200, 'several ranges: ignored, whole file');
  t.equal(e.body.length, 100);
  t.same(parseRange('bytes=0-0', 1), [0, 0]);
  t.equal(parseRange('items=0-1', 10), undefined);
  t.equal(parseRange('bytes=5-2', 10), undefined);
});

t.test('no escape from the root', async (t) => {
  for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E%2Fsecret.txt', '/sub/..%2f..%2fsecret.txt', '/..%5csecret.txt']) {
    const r = await get(path);
    t.ok(r.status === 404 || r.status === 400, `${path} -> ${r.status}`);
    t.notMatch(r.body.toString(), /top secret/);
  }
  t.equal((await get('/a%00b')).status, 400, 'NUL');
  t.equal((await get('/%zz')).status, 400, 'malformed escape');
  const leak = await get('/leak.txt');
  t.equal(leak.status, 404, 'a symlink out of the root is not followed');
});

t.test('large files stream completely', async (t) => {
  const r = await get('/big.bin');
  t.equal(r.status, 200);
  t.equal(r.body.length, big.length);
  t.ok(r.body.equals(big));
});

t.test('a root that does not exist, or is a file, is a StaticRootError when the handler is made', async (t) => {
  t.throws(() => new StaticHandler({ root: join(dir, 'no-such-folder') }), { name: 'StaticRootError', code: 'STATIC_ROOT_MISSING' });
  t.throws(() => new StaticHandler({ root: join(root, 'app.js') }), { name: 'StaticRootError', code: 'STATIC_ROOT_NOT_A_DIRECTORY' });
});

t.test('a root removed after the handler was made answers 404, then serves again once it is back', async (t) => {
  const gone = mkdtempSync(join(tmpdir(), 'quay-static-gone-'));
  const errors: Error[] = [];
  const other = new Server({ port: 0, host: HOST, onError: (e) => void errors.push(e) }, new StaticHandler({ root: gone }));
  const { port: otherPort } = await other.start();
  t.teardown(() => other.stop(500));
  // Removed before the first request: the root itself cannot be resolved.
  rmSync(gone, { recursive: true, force: true });
  const missing = await fetch(`http://${HOST}:${otherPort}/a.txt`);
  t.equal(missing.status, 404, 'no 500 and no stack trace');
  t.match(await missing.text(), /^404 Not Found/);
  mkdirSync(gone);
  writeFileSync(join(gone, 'a.txt'), 'back');
  const again = await fetch(`http://${HOST}:${otherPort}/a.txt`);
  t.equal(again.status, 200, 'looked up again');
  t.equal(await again.text(), 'back');
  t.same(errors, [], 'nothing reported');
  rmSync(gone, { recursive: true, force: true });
});

t.test('behind a Router, a catch-all StaticHandler leaves 405 to the router for a path of other methods', async (t) => {
  const routed = new Server(
    { port: 0, host: HOST },
    new Router()
      .route('/echo', (_request, response) => response.send(200, 'echoed'), { methods: ['POST', 'PUT'] })
      .route('/', new StaticHandler({ root })),
  );
  const { port: routedPort } = await routed.start();
  t.teardown(() => routed.stop(500));
  const get = await fetch(`http://${HOST}:${routedPort}/echo`);
  t.equal(get.status, 405, 'GET /echo: the path exists for POST and PUT');
  t.equal(get.headers.get('allow'), 'POST, PUT');
  t.equal((await fetch(`http://${HOST}:${routedPort}/echo`, { method: 'POST', body: 'x' })).status, 200);
  t.equal((await fetch(`http://${HOST}:${routedPort}/app.js`)).status, 200, 'files still served');
  t.equal((await fetch(`http://${HOST}:${routedPort}/nope.txt`)).status, 404, 'no file, no route: 404');
});
