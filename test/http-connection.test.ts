import t from 'tap';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import { HttpConnection } from '../lib/http/HttpConnection.js';
import type { HttpErrorReporter } from '../lib/http/HttpConnection.js';
import type { Handler } from '../lib/http/Handler.js';
import { Router } from '../lib/http/Router.js';
import type { Request } from '../lib/http/Request.js';
import type { Response } from '../lib/http/Response.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(handler: Handler, options: { headerTimeoutMs?: number; limits?: Record<string, number> } = {}) {
  const ep = new MemoryEndPoint();
  const errors: { error: Error; kind: string }[] = [];
  const reporter: HttpErrorReporter = { reportError: (error, ctx) => void errors.push({ error, kind: ctx.kind }) };
  const connection = new HttpConnection(ep, () => handler, reporter, options);
  ep.open(connection);
  return { ep, connection, errors };
}

/** Splits raw output into responses by parsing Content-Length / chunked framing (test-side, simple). */
function statuses(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

const hello: Handler = { handle: (req: Request, res: Response) => void res.end(`hello ${req.path}`) };

t.test('a simple GET is answered with Content-Length and kept alive', async (t) => {
  const { ep } = setup(hello);
  ep.feed('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
  await tick();
  const out = ep.takeOutputString();
  t.match(out, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(out, /\r\nContent-Length: 8\r\n/i);
  t.ok(out.endsWith('\r\n\r\nhello /a'));
  t.notMatch(out, /connection: close/i);
  t.equal(ep.state, 'OPEN');
});

t.test('50 pipelined requests in one write are answered in order', async (t) => {
  const order: string[] = [];
  const handler: Handler = {
    async handle(req, res) {
      order.push(req.path);
      // Alternate sync and async completion to exercise both paths.
      if (Number(req.path.slice(1)) % 2 === 0) await new Promise((r) => setTimeout(r, 1));
      await res.end(req.path);
    },
  };
  const { ep } = setup(handler);
  let input = '';
  for (let i = 0; i < 50; i++) input += `GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
  ep.feed(input);
  let out = '';
  for (let i = 0; i < 200 && statuses(out).length < 50; i++) {
    await new Promise((r) => setTimeout(r, 5));
    out += ep.takeOutputString();
  }
  t.same(order, Array.from({ length: 50 }, (_, i) => `/${i}`), 'dispatched one at a time, in order');
  const bodies = [...out.matchAll(/\r\n\r\n(\/\d+)/g)].map((m) => m[1]);
  t.same(bodies, order, 'responses in request order');
});

t.test('pipelined responses come out in request order', async (t) => {
  const handler: Handler = {
    async handle(req, res) {
      const delay = req.path === '/slow' ? 20 : 0;
      await new Promise((r) => setTimeout(r, delay));
      await res.end(req.path);
    },
  };
  const { ep } = setup(handler);
  ep.feed('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise((r) => setTimeout(r, 80));
  const out = ep.takeOutputString();
  t.ok(out.indexOf('/slow') < out.indexOf('/fast') && out.indexOf('/fast') > 0, 'slow answered before fast');
  t.same(statuses(out), [200, 200]);
});

t.test('keep-alive: one connection serves 1,000 requests', async (t) => {
  const { ep, connection } = setup(hello);
  let got = 0;
  for (let i = 0; i < 1000; i++) {
    ep.feed(`GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await tick();
    const out = ep.takeOutputString();
    if (out.endsWith(`hello /r${i}`)) got++;
  }
  t.equal(got, 1000);
  t.equal(connection.requests, 1000);
  t.equal(ep.state, 'OPEN');
});

t.test('Connection: close and HTTP/1.0 end the connection after the response', async (t) => {
  const a = setup(hello);
  a.ep.feed('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await tick();
  t.match(a.ep.takeOutputString(), /connection: close/i);
  t.equal(a.ep.isOutputShutdown, true, 'FIN sent after the response');
  const b = setup(hello);
  b.ep.feed('GET / HTTP/1.0\r\n\r\n');
  await tick();
  t.match(b.ep.takeOutputString(), /^HTTP\/1\.[01] 200/);
  t.equal(b.ep.isOutputShutdown, true);
  const c = setup(hello);
  c.ep.feed('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  await tick();
  t.match(c.ep.takeOutputString(), /connection: keep-alive/i);
  t.equal(c.ep.isOutputShutdown, false, 'HTTP/1.0 keep-alive honoured');
});

t.test('bad requests get their status and a close', async (t) => {
  const cases: [string, number][] = [
    ['GET / HTTP/1.1\r\n\r\n', 400], // no Host
    ['GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', 400],
    ['GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
    [`GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
    [`GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(17000)}\r\n\r\n`, 431],
  ];
  for (const [input, status] of cases) {
    const { ep, errors } = setup(hello);
    ep.feed(input);
    await tick();
    const out = ep.takeOutputString();
    t.same(statuses(out), [status], `${JSON.stringify(input.slice(0, 40))} -> ${status}`);
    t.match(out, /connection: close/i);
    t.equal(ep.isOutputShutdown, true);
    t.equal(errors[0]?.kind, 'bad-request');
  }
});

t.test('a handler that throws gets a 500 and the connection survives the error report', async (t) => {
  const { ep, errors } = setup({
    handle: () => {
      throw new Error('boom');
    },
  });
  ep.feed('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await tick();
  t.same(statuses(ep.takeOutputString()), [500]);
  t.equal(errors[0]?.kind, 'handler');
  t.equal(errors[0]?.error.message, 'boom');
});

t.test('a handler that rejects after starting the response closes the connection', async (t) => {
  const { ep, errors } = setup({
    async handle(_req, res) {
      await res.write('partial');
      throw new Error('late boom');
    },
  });
  ep.feed('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await tick();
  await tick();
  t.equal(ep.state, 'CLOSED');
  t.equal(errors[0]?.error.message, 'late boom');
});

t.test('chunked request body is streamed to the handler, chunked response', async (t) => {
  let body = '';
  const { ep } = setup({
    async handle(req, res) {
      for await (const chunk of req) body += chunk.toString();
      await res.write('got ');
      await res.end(String(body.length));
    },
  });
  ep.feed('POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
  await tick();
  ep.feed('6;ext=1\r\n world\r\n0\r\nTrailer-X: y\r\n\r\n');
  await tick();
  await tick();
  const out = ep.takeOutputString();
  t.equal(body, 'hello world');
  t.match(out, /transfer-encoding: chunked/i);
  t.ok(out.endsWith('4\r\ngot \r\n2\r\n11\r\n0\r\n\r\n'), JSON.stringify(out.slice(-40)));
});

t.test('a slow body reader pauses the endpoint; nothing is lost', async (t) => {
  let received = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { ep } = setup({
    async handle(req, res) {
      await gate;
      for await (const chunk of req) received += chunk.length;
      await res.end(String(received));
    },
  });
  const size = 1024 * 1024;
  ep.feed(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
  const piece = Buffer.alloc(16 * 1024, 0x62);
  for (let i = 0; i < size / piece.length; i++) ep.feed(piece);
  t.equal(ep.isReadingPaused, true, 'reading paused while the handler does not read');
  release();
  for (let i = 0; i < 500 && received < size; i++) await tick();
  t.equal(received, size, 'the whole body arrived');
  await tick();
  t.ok(ep.takeOutputString().endsWith(String(size)));
});

t.test('Expect: 100-continue is answered when the handler reads the body', async (t) => {
  const { ep } = setup({
    async handle(req, res) {
      await res.end(await req.text());
    },
  });
  ep.feed('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n');
  await tick();
  t.equal(ep.takeOutputString(), 'HTTP/1.1 100 Continue\r\n\r\n');
  ep.feed('abc');
  await tick();
  const out = ep.takeOutputString();
  t.match(out, /^HTTP\/1\.1 200 /);
  t.ok(out.endsWith('abc'));
});

t.test('HEAD gets headers without a body', async (t) => {
  const { ep } = setup(hello);
  ep.feed('HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n');
  await tick();
  const out = ep.takeOutputString();
  t.match(out, /content-length: 8/i);
  t.ok(out.endsWith('\r\n\r\n'), 'no body');
});

t.test('router: longest prefix, 404, 405, declining handler falls through', async (t) => {
  const router = new Router()
    .route('/', (_req, res) => void res.end('root'))
    .route('/api', (_req, res) => void res.end('api'))
    .route('/api/v2', () => false)
    .route('/only-post', (_req, res) => void res.end('posted'), { methods: ['POST'] });
  const strict = new Router().route('/a', (_req, res) => void res.end('a'));
  const { ep } = setup(router);
  const ask = async (line: string): Promise<string> => {
    ep.feed(`${line} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await tick();
    await tick();
    return ep.takeOutputString();
  };
  t.ok((await ask('GET /api/x')).endsWith('api'));
  t.ok((await ask('GET /api/v2/y')).endsWith('api'), 'declined by /api/v2, taken by /api');
  t.ok((await ask('GET /apix')).endsWith('root'), 'segment boundary');
  t.ok((await ask('POST /only-post')).endsWith('posted'));
  const r405 = await ask('GET /only-post');
  t.ok(r405.endsWith('root'), 'a shorter prefix still serves other methods');
  const s = setup(strict);
  s.ep.feed('GET /b HTTP/1.1\r\nHost: x\r\n\r\n');
  await tick();
  await tick();
  t.same(statuses(s.ep.takeOutputString()), [404]);
  const p = setup(new Router().route('/p', (_q, r) => void r.end('p'), { methods: ['POST', 'PUT'] }));
  p.ep.feed('GET /p HTTP/1.1\r\nHost: x\r\n\r\n');
  await tick();
  await tick();
  const out = p.ep.takeOutputString();
  t.same(statuses(out), [405]);
  t.match(out, /allow: POST, PUT/i);
});

t.test('upgrade hands the bytes after the head to the new connection', async (t) => {
  const got: string[] = [];
  const { ep } = setup({
    handle(req, res) {
      if (!req.isUpgrade) return false;
      res.upgrade({ Upgrade: 'echo', Connection: 'Upgrade' }, () => ({
        onOpen() {},
        onFillable: (b: Buffer) => void got.push(b.toString()),
        onIdleExpired: () => true,
        onClose() {},
      }));
      return true;
    },
  });
  ep.feed('GET /e HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nFIRST');
  await tick();
  const out = ep.takeOutputString();
  t.match(out, /^HTTP\/1\.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n$/);
  ep.feed('SECOND');
  await tick();
  t.same(got.join(''), 'FIRSTSECOND');
});

t.test('an upgrade nobody takes is reported with its path', async (t) => {
  const { ep, errors } = setup(new Router().route('/other', () => false));
  ep.feed('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  await tick();
  await tick();
  t.same(statuses(ep.takeOutputString()), [404]);
});

t.test('slow header trickle gets 408 (header timeout)', async (t) => {
  const { ep } = setup(hello, { headerTimeoutMs: 30 });
  ep.feed('GET / HTTP/1.1\r\n');
  await new Promise((r) => setTimeout(r, 50));
  ep.feed('Ho');
  await tick();
  t.same(statuses(ep.takeOutputString()), [408]);
  t.equal(ep.isOutputShutdown, true);
});
