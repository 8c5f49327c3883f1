import t from 'tap';
import { ByteBufferPool } from '../lib/buffers/index.js';
import type { Test } from 'tap';
import { createServer as createNodeServer, request as httpRequest, Agent } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Server } from '../lib/http/Server.js';
import { Router } from '../lib/http/Router.js';
import type { ServerErrorContext, ServerOptions } from '../lib/http/Server.js';
import type { Handler, HandlerFunction } from '../lib/http/Handler.js';

const HOST = '127.0.0.1';

async function startServer(t: Test, handler: Handler | HandlerFunction, options: ServerOptions = {}) {
  const errors: { error: Error; context: ServerErrorContext }[] = [];
  // A debug pool: every pooled scratch buffer (coalesced writes) must be back when the server has stopped.
  const pool = new ByteBufferPool({ debug: true });
  const server = new Server(
    { port: 0, host: HOST, bufferPool: pool, onError: (error, context) => void errors.push({ error, context }), ...options },
    handler,
  );
  const { port } = await server.start();
  t.teardown(async () => {
    await server.stop(500);
    pool.assertNoLeaks();
  });
  return { server, port, errors, pool };
}

/** Sends raw bytes, returns everything the server sent until it closed (or the time bound). */
function raw(port: number, bytes: string, waitMs = 300): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: HOST, port });
    let out = '';
    s.on('data', (b: Buffer) => (out += b.toString('latin1')));
    s.on('error', () => {});
    const done = (): void => resolve(out);
    s.on('close', done);
    s.write(bytes, 'latin1');
    setTimeout(() => {
      s.destroy();
      done();
    }, waitMs);
  });
}

t.test('1,000 requests reuse one keep-alive connection', async (t) => {
  const { server, port } = await startServer(t, (req, res) => void res.end(`ok ${req.path}`));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  let ok = 0;
  for (let i = 0; i < 1000; i++) {
    const body = await new Promise<string>((resolve, reject) => {
      httpRequest({ host: HOST, port, path: `/r${i}`, agent }, (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c));
        res.on('end', () => resolve(b));
      })
        .on('error', reject)
        .end();
    });
    if (body === `ok /r${i}`) ok++;
  }
  t.equal(ok, 1000);
  t.equal(server.stats().accepted, 1, 'one connection for all');
});

t.test('a 10 MiB chunked upload streams through a slow handler without being buffered whole', async (t) => {
  let maxAhead = 0;
  let consumed = 0;
  const total = 10 * 1024 * 1024;
  const { server, port } = await startServer(
    t,
    async (req, res) => {
      let n = 0;
      for await (const chunk of req) {
        consumed += chunk.length;
        maxAhead = Math.max(maxAhead, server.stats().bytesIn - consumed);
        if (++n % 16 === 0) await new Promise((r) => setTimeout(r, 1)); // a slow consumer
      }
      await res.end(String(consumed));
    },
    { limits: { maxBodyBytes: 64 * 1024 * 1024 } },
  );
  const reply = await new Promise<string>((resolve, reject) => {
    const req = httpRequest({ host: HOST, port, method: 'POST', path: '/up', headers: { 'Transfer-Encoding': 'chunked' } }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c));
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
    const piece = Buffer.alloc(64 * 1024, 0x63);
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
  t.equal(reply, String(total), 'every byte reached the handler');
  t.ok(maxAhead < 2 * 1024 * 1024, `the server held at most ${maxAhead} bytes ahead of the handler (not the whole 10 MiB)`);
});

t.test('a throwing handler gets 500, is reported, and the server goes on', async (t) => {
  const { port, errors } = await startServer(
    t,
    new Router()
      .route('/boom', () => {
        throw new Error('kaboom');
      })
      .route('/', (_req, res) => void res.end('fine')),
  );
  const a = await raw(port, 'GET /boom HTTP/1.1\r\nHost: x\r\n\r\n');
  t.match(a, /^HTTP\/1\.1 500 /);
  t.equal(errors[0]?.context.kind, 'handler');
  t.equal(errors[0]?.error.message, 'kaboom');
  const b = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.match(b, /^HTTP\/1\.1 200 [\s\S]*fine$/);
});

t.test('an upgrade that no handler takes is reported with the path', async (t) => {
  const { port, errors } = await startServer(t, new Router().route('/chat', (_q, r) => void r.end('page')));
  const out = await raw(port, 'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  t.match(out, /^HTTP\/1\.1 200 /, 'the page handler answered 200 instead of 101');
  for (let i = 0; i < 20 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(errors[0]?.context.kind, 'upgrade');
  t.match(errors[0]?.error.message, /upgrade request for \/chat was answered 200 by handler at route \/chat, not 101/);
});

t.test('stop(): the in-flight request finishes; an idle keep-alive connection gets its next request answered (marked close), a silent one is closed after the grace', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const server = new Server({ port: 0, host: HOST }, async (req, res) => {
    if (req.path === '/slow') await gate;
    await res.end(`done ${req.path}`);
  });
  const { port } = await server.start();
  // Two keep-alive connections that served a request and are idle when the stop begins.
  const opened = [connect({ host: HOST, port }), connect({ host: HOST, port })];
  const [next, silent] = opened;
  const closedAt: number[] = [];
  let nextOut = '';
  next!.on('data', (b: Buffer) => (nextOut += b.toString('latin1')));
  silent!.on('data', () => {});
  next!.on('close', () => closedAt.push(0));
  silent!.on('close', () => closedAt.push(1));
  for (const c of opened) c.write('GET /quick HTTP/1.1\r\nHost: x\r\n\r\n');
  for (let i = 0; i < 100 && !nextOut.includes('done /quick'); i++) await new Promise((r) => setTimeout(r, 10));
  const slowReply = raw(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n', 5000);
  await new Promise((r) => setTimeout(r, 50));
  const started = Date.now();
  const stopped = server.stop(10_000);
  await new Promise((r) => setTimeout(r, 50));
  t.same(closedAt, [], 'neither idle keep-alive connection was closed at once (a request may be on its way)');
  nextOut = '';
  next!.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
  for (let i = 0; i < 100 && !closedAt.includes(0); i++) await new Promise((r) => setTimeout(r, 20));
  t.match(nextOut, /^HTTP\/1\.1 200 [\s\S]*Connection: close[\s\S]*done \/after$/, 'the request sent after stop() began was answered, marked close');
  t.ok(closedAt.includes(0), 'and that connection closed after it');
  release();
  const out = await slowReply;
  t.match(out, /^HTTP\/1\.1 200 [\s\S]*Connection: close[\s\S]*done \/slow$/, 'the in-flight response completed, marked close');
  await stopped;
  for (let i = 0; i < 100 && !closedAt.includes(1); i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(closedAt.includes(1), 'the silent idle connection was closed');
  t.ok(Date.now() - started < 9000, 'by the grace, not by the stop deadline');
  t.equal(server.stats().open, 0);
});

t.test('smuggling probes: quay is at least as strict as node:http', async (t) => {
  const H = 'Host: x\r\n';
  const probes: Record<string, string> = {
    'CL + TE': `POST / HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    'two different CLs': `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab`,
    'obs-fold': `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`,
    'TE not chunked last': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
    'TE with space before colon': `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    'bare LF': `GET / HTTP/1.1\n${H}\n`,
    'bad chunk size': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-1\r\n\r\n`,
    'chunk size overflow': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx\r\n0\r\n\r\n`,
    'NUL in header': `GET / HTTP/1.1\r\n${H}X: a\0b\r\n\r\n`,
    'missing Host': 'GET / HTTP/1.1\r\n\r\n',
    'two Hosts': `GET / HTTP/1.1\r\n${H}${H}\r\n`,
    'CL with sign': `POST / HTTP/1.1\r\n${H}Content-Length: +1\r\n\r\na`,
    'chunk ext with bare CR': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1;a=\rb\r\nx\r\n0\r\n\r\n`,
  };
  const nodeServer = createNodeServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => nodeServer.listen(0, HOST, () => r()));
  t.teardown(() => nodeServer.close());
  const nodePort = (nodeServer.address() as AddressInfo).port;
  const { port } = await startServer(t, async (req, res) => {
    await req.bytes();
    await res.end('ok');
  });
  const rejected = (out: string): boolean => !/^HTTP\/1\.1 2\d\d /.test(out);
  for (const [name, probe] of Object.entries(probes)) {
    const [q, n] = await Promise.all([raw(port, probe, 200), raw(nodePort, probe, 200)]);
    t.ok(rejected(q), `quay rejects: ${name} (${JSON.stringify(q.slice(0, 30))})`);
    if (rejected(n)) t.ok(rejected(q), `node:http rejects ${name}, so does quay`);
    else t.comment(`node:http accepts ${name}; quay rejects it`);
  }
});

t.test('server.handler takes a plain function as the constructor does; anything else is a TypeError at once', async (t) => {
  const server = new Server({ port: 0, host: HOST });
  server.handler = (request, response) => response.send(200, `fn ${request.path}`);
  const { port } = await server.start();
  t.teardown(() => server.stop(500));
  t.equal(await fetch(`http://${HOST}:${port}/x`).then((r) => r.text()), 'fn /x');
  t.equal(typeof server.handler?.handle, 'function', 'read back as a Handler');
  server.handler = { handle: (_request, response) => response.send(200, 'object') };
  t.equal(await fetch(`http://${HOST}:${port}/`).then((r) => r.text()), 'object');
  t.throws(() => (server.handler = {} as unknown as HandlerFunction), TypeError);
  t.throws(() => new Server({}, 'oops' as unknown as HandlerFunction), TypeError);
  t.equal(await fetch(`http://${HOST}:${port}/`).then((r) => r.text()), 'object', 'a refused handler leaves the one in force');
});

t.test('start() on a busy port rejects with EADDRINUSE, and onError is not told as well', async (t) => {
  const first = new Server({ port: 0, host: HOST }, (_request, response) => response.send(200, 'first'));
  const { port } = await first.start();
  t.teardown(() => first.stop(500));
  const errors: Error[] = [];
  const second = new Server({ port, host: HOST, onError: (error) => void errors.push(error) });
  await t.rejects(second.start(), { code: 'EADDRINUSE' });
  t.same(errors, [], 'reported once: by the rejection');
});
