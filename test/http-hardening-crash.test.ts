/**
 * No remote peer can crash the process through a handler's Promise or a header value, and errors are reported in
 * proportion.
 *
 * The harness records every `unhandledRejection` of the process (a listener keeps node from exiting on the first
 * one, so a regression is a failed assertion rather than a dead test run) and every test ends by asserting that
 * none was recorded.
 */
import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Server } from '../lib/http/Server.js';
import type { ServerErrorContext, ServerOptions } from '../lib/http/Server.js';
import { Router } from '../lib/http/Router.js';
import type { Handler, HandlerFunction } from '../lib/http/Handler.js';
import { HttpFields } from '../lib/http/HttpFields.js';
import { ErrorReporter } from '../lib/http/ErrorReporter.js';
import { HttpGeneratorError, InvalidHeaderError } from '../lib/http/errors.js';
import type { Response } from '../lib/http/Response.js';

const HOST = '127.0.0.1';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => void unhandled.push(reason));

/** Lets pending rejections surface: node reports unhandled ones after the microtask queue drains. */
async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

async function noUnhandledRejection(t: Test): Promise<void> {
  await settle();
  t.same(
    unhandled.map((e) => String(e)),
    [],
    'no unhandled rejection reached the process',
  );
  unhandled.length = 0;
}

async function startServer(t: Test, handler: Handler | HandlerFunction, options: ServerOptions = {}) {
  const errors: { error: Error; context: ServerErrorContext }[] = [];
  const server = new Server({ port: 0, host: HOST, onError: (error, context) => void errors.push({ error, context }), ...options }, handler);
  const { port } = await server.start();
  t.teardown(() => server.stop(500));
  return { server, port, errors };
}

/** Sends raw bytes, returns what the server sent until it closed (or the time bound). */
function raw(port: number, bytes: string, waitMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: HOST, port });
    let out = '';
    s.on('data', (b: Buffer) => (out += b.toString('latin1')));
    s.on('error', () => {});
    const timer = setTimeout(() => s.destroy(), waitMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.write(bytes, 'latin1');
  });
}

async function until(condition: () => boolean, maxRounds = 200, stepMs = 10): Promise<boolean> {
  for (let i = 0; i < maxRounds && !condition(); i++) await new Promise((r) => setTimeout(r, stepMs));
  return condition();
}

/**
 * Opens a connection, sends `count` pipelined GETs and never reads, so the server's responses pile up in its
 * write queue; once the handler has run `minHandled` times, resets the connection (RST).
 */
async function pipelineThenReset(port: number, count: number, handled: () => number, minHandled: number): Promise<void> {
  const socket: Socket = connect({ host: HOST, port });
  socket.on('error', () => {});
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.pause(); // never read: the server's writes back up
  socket.write('GET /p HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(count));
  await until(() => handled() >= minHandled);
  socket.resetAndDestroy();
}

const BIG = 'x'.repeat(64 * 1024);

// ------------------------------------------------------------------------------------------------ item 1

t.test('RST after pipelined requests, handler does not await end(): no unhandled rejection, next client served', async (t) => {
  let handled = 0;
  const { server, port, errors } = await startServer(t, (req, res) => {
    handled++;
    if (req.path === '/p') res.end(BIG); // not awaited, on purpose
    else void res.end('next');
  });
  await pipelineThenReset(port, 400, () => handled, 100);
  t.ok(await until(() => server.stats().closed >= 1), 'the reset connection closed');
  await noUnhandledRejection(t);
  t.equal(errors.filter((e) => e.context.kind === 'handler').length, 0, 'no handler error reported');
  const next = await raw(port, 'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.match(next, /^HTTP\/1\.1 200 [\s\S]*next$/, 'the next client is served');
});

t.test('RST after pipelined requests, handler awaits end(): a disconnect, not a handler error', async (t) => {
  let handled = 0;
  const { server, port, errors } = await startServer(t, async (_req, res) => {
    handled++;
    await res.end(BIG);
  });
  await pipelineThenReset(port, 400, () => handled, 100);
  t.ok(await until(() => server.stats().closed >= 1), 'the reset connection closed');
  await settle(10);
  t.equal(errors.filter((e) => e.context.kind === 'handler').length, 0, 'the rejections of end() are not handler errors');
  t.ok(errors.length <= 1, `at most the connection's own close is reported (${errors.length} reports)`);
  await noUnhandledRejection(t);
});

t.test('end(), write() and send() after the client left: safe to drop', async (t) => {
  let lateCalls!: () => void;
  const lateDone = new Promise<void>((r) => (lateCalls = r));
  const { server, port, errors } = await startServer(t, (req, res: Response) => {
    setTimeout(() => {
      res.write('late chunk'); // not awaited, on purpose
      res.end('late'); // not awaited
      res.end('twice'); // ResponseStateError, not awaited
      res.write('after end'); // ResponseStateError, not awaited
      lateCalls();
    }, 100);
  });
  const s = connect({ host: HOST, port });
  s.on('error', () => {});
  await new Promise<void>((r) => s.once('connect', () => r()));
  s.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\n');
  t.ok(await until(() => server.stats().accepted >= 1), 'accepted');
  s.destroy();
  t.ok(await until(() => server.stats().closed >= 1), 'the server saw the client leave');
  await lateDone;
  await noUnhandledRejection(t);
  t.equal(errors.filter((e) => e.context.kind === 'handler').length, 0, 'no handler error');
  const awaited = new Promise<Error>((resolve) => {
    server.handler = { handle: (_req, res) => void res.end('ok').then(() => res.end('again').catch(resolve)) };
  });
  await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.match(await awaited, { code: 'HTTP_RESPONSE_STATE' }, 'who awaits still sees the rejection');
});

t.test('body reads dropped while the client leaves mid-body: no unhandled rejection', async (t) => {
  let dropped!: () => void;
  const droppedDone = new Promise<void>((r) => (dropped = r));
  const { server, port, errors } = await startServer(t, (req, res) => {
    void req.bytes();
    void req.text();
    void req.json();
    req.bytes(4); // over its limit once the body comes: a RequestBodyError, not awaited
    dropped();
    setTimeout(() => void res.end('late'), 50);
  });
  const s = connect({ host: HOST, port });
  s.on('error', () => {});
  await new Promise<void>((r) => s.once('connect', () => r()));
  s.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nsome of the body');
  await droppedDone;
  s.destroy();
  t.ok(await until(() => server.stats().closed >= 1), 'the server saw the client leave');
  await new Promise((r) => setTimeout(r, 100));
  await noUnhandledRejection(t);
  t.equal(errors.filter((e) => e.context.kind === 'handler').length, 0);
});

t.test('WebSocketClient.connect() to a port nobody listens on, not awaited: no unhandled rejection', async (t) => {
  const { WebSocketClient } = await import('../lib/websocket/WebSocketClient.js');
  const probe = new Server({ port: 0, host: HOST }, (_q, r) => void r.end());
  const { port } = await probe.start();
  await probe.stop(100); // the port is free again: connect is refused
  const client = new WebSocketClient();
  const failed = client.connect(`ws://${HOST}:${port}/`);
  void client.connect('not a url');
  let seen: unknown;
  await failed.catch((e: unknown) => (seen = e));
  t.ok(seen instanceof Error, 'who awaits still sees the failure');
  void client.stop(100);
  void client.connect(`ws://${HOST}:${port}/`); // stopped: rejects
  await noUnhandledRejection(t);
});

// ------------------------------------------------------------------------------------------------ item 2

t.test('setHeader / addHeader / headers.set / headers.add refuse bad names and values synchronously', async (t) => {
  const bad: [string, string, string][] = [
    ['X-A', 'a\r\nSet-Cookie: x', 'HTTP_INVALID_FIELD_VALUE'],
    ['X-A', 'a\nb', 'HTTP_INVALID_FIELD_VALUE'],
    ['X-A', 'a\rb', 'HTTP_INVALID_FIELD_VALUE'],
    ['X-A', 'a\0b', 'HTTP_INVALID_FIELD_VALUE'],
    ['X-A', 'a\x7fb', 'HTTP_INVALID_FIELD_VALUE'],
    ['Content-Disposition', 'attachment; filename="日.txt"', 'HTTP_INVALID_FIELD_VALUE'],
    ['X A', 'v', 'HTTP_INVALID_FIELD_NAME'],
    ['X:A', 'v', 'HTTP_INVALID_FIELD_NAME'],
    ['X\r\nY', 'v', 'HTTP_INVALID_FIELD_NAME'],
    ['', 'v', 'HTTP_INVALID_FIELD_NAME'],
    ['Näme', 'v', 'HTTP_INVALID_FIELD_NAME'],
  ];
  const results: string[] = [];
  const { port } = await startServer(t, (_req, res) => {
    for (const [name, value, code] of bad) {
      const ways: [string, () => unknown][] = [
        ['setHeader', () => res.setHeader(name, value)],
        ['setHeader([])', () => res.setHeader(name, ['ok', value])],
        ['addHeader', () => res.addHeader(name, value)],
        ['headers.set', () => res.headers.set(name, value)],
        ['headers.add', () => res.headers.add(name, value)],
        ['HttpFields.from', () => HttpFields.from({ [name]: value })],
      ];
      for (const [way, call] of ways) {
        try {
          call();
          results.push(`${way} ${JSON.stringify(name)}: accepted`);
        } catch (e) {
          const ok = e instanceof InvalidHeaderError && e instanceof HttpGeneratorError && e.code === code;
          results.push(`${way} ${JSON.stringify(name)}: ${ok ? 'refused' : `wrong error ${String(e)}`}`);
        }
      }
    }
    t.equal(res.headers.size, 0, 'nothing was set by a refused call');
    // What RFC 9110 §5.5 allows: HTAB and SP inside, obs-text (U+0080..U+00FF).
    res.setHeader('X-Ok', 'a\tb c café');
    void res.end('done');
  });
  const out = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.equal(results.length, bad.length * 6);
  t.same(
    results.filter((r) => !r.endsWith(': refused')),
    [],
    'every bad name and value is refused with InvalidHeaderError and its code',
  );
  t.match(out, /^HTTP\/1\.1 200 /);
  t.ok(Buffer.from(out, 'latin1').includes(Buffer.from('X-Ok: a\tb c café\r\n', 'latin1')), 'a valid obs-text value is written');
  await noUnhandledRejection(t);
});

t.test('a handler copying ?next=%0d%0aSet-Cookie:x into Location: 500 without the injected header, server alive', async (t) => {
  const { port, errors } = await startServer(
    t,
    new Router()
      .route('/login', async (req, res) => {
        res.setHeader('X-Set-Before', 'yes');
        res.setHeader('Location', req.query.get('next') ?? '/');
        res.status = 302;
        await res.end();
      })
      .route('/', (_req, res) => void res.end('alive')),
  );
  const out = await raw(port, 'GET /login?next=%0d%0aSet-Cookie:x HTTP/1.1\r\nHost: x\r\n\r\n');
  t.match(out, /^HTTP\/1\.1 500 /, 'the client gets 500');
  t.notMatch(out, /Set-Cookie/i, 'no injected header');
  t.notMatch(out, /X-Set-Before/, 'the 500 is built on fresh headers');
  t.equal(errors[0]?.context.kind, 'handler');
  t.ok(errors[0]?.error instanceof InvalidHeaderError, 'reported as InvalidHeaderError');
  const next = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.match(next, /alive$/, 'the server goes on');
  await noUnhandledRejection(t);
});

t.test('a handler whose head cannot be generated (bad reason, bad status) gets a 500 from fresh state', async (t) => {
  const { port, errors } = await startServer(t, (req, res) => {
    res.setHeader('X-Mine', '1');
    if (req.path === '/reason') res.reason = 'OK\r\nSet-Cookie: x';
    else res.status = 1000;
    void res.end('never');
  });
  for (const path of ['/reason', '/status']) {
    const out = await raw(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    t.match(out, /^HTTP\/1\.1 500 Internal Server Error\r\n/, `${path}: 500 with the standard reason`);
    t.notMatch(out, /Set-Cookie|X-Mine/, `${path}: nothing of the handler's head`);
  }
  t.equal(errors.filter((e) => e.context.kind === 'handler').length, 2);
  await noUnhandledRejection(t);
});

t.test('a handler that declines after setting a bad status gets a clean 404', async (t) => {
  const { port } = await startServer(t, (_req, res) => {
    res.status = 1000;
    res.setHeader('X-Mine', '1');
    return false;
  });
  const out = await raw(port, 'GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.match(out, /^HTTP\/1\.1 404 /);
  t.notMatch(out, /X-Mine/);
  await noUnhandledRejection(t);
});

// ------------------------------------------------------------------------------------------------ item 7

/** Replaces console.error for the test; returns the captured calls (each call is one report). */
function captureConsoleError(t: Test): string[][] {
  const lines: string[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void lines.push(args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : String(a))));
  t.teardown(() => {
    console.error = original;
  });
  return lines;
}

/** How many reports the printed lines stand for: printed errors plus the suppressed counts of summary lines. */
function reportsIn(lines: string[][], pattern: RegExp): number {
  let n = 0;
  for (const line of lines) {
    const text = line.join(' ');
    const suppressed = /quay: (\d+) more suppressed: /.exec(text);
    if (suppressed !== null) n += Number(suppressed[1]);
    else if (pattern.test(text)) n++;
  }
  return n;
}

t.test('default onError: a burst of handler errors is a few lines with a suppressed count', async (t) => {
  const lines = captureConsoleError(t);
  const server = new Server({ port: 0, host: HOST }, () => {
    throw new TypeError('boom');
  });
  const { port } = await server.start();
  const N = 60;
  const replies = await Promise.all(Array.from({ length: N }, () => raw(port, 'GET /x HTTP/1.1\r\nHost: x\r\n\r\n', 10_000)));
  t.equal(replies.filter((r) => r.startsWith('HTTP/1.1 500 ')).length, N, 'every request got its 500');
  t.ok(lines.length <= 4, `at most a few lines during the burst (${lines.length})`);
  await server.stop(500); // prints the pending summary
  t.ok(lines.length <= 6, `a bounded number of lines in all (${lines.length})`);
  t.ok(
    lines.some((l) => /quay: \d+ more suppressed: handler error TypeError \(/.test(l.join(' '))),
    'a summary line says how many were suppressed',
  );
  t.equal(reportsIn(lines, /quay: handler error \(GET \/x\)/), N, 'printed + suppressed = every error');
  await noUnhandledRejection(t);
});

t.test('default onError: upgrades refused by many peers are not printed per peer', async (t) => {
  const lines = captureConsoleError(t);
  let answered = 0;
  const server = new Server(
    { port: 0, host: HOST },
    new Router().route('/chat', (_q, r) => {
      answered++;
      void r.end('page');
    }),
  );
  const { port } = await server.start();
  const N = 40;
  const replies = await Promise.all(
    Array.from({ length: N }, () => raw(port, 'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n', 10_000)),
  );
  t.equal(replies.filter((r) => r.startsWith('HTTP/1.1 200 ')).length, N, 'every upgrade was answered 200');
  t.ok(lines.length <= 4, `at most a few lines for ${N} refused upgrades (${lines.length})`);
  await server.stop(500);
  t.ok(lines.length <= 6, `bounded in all (${lines.length})`);
  t.equal(reportsIn(lines, /upgrade request for \/chat/), answered, `printed + suppressed = every refused upgrade (${answered})`);
  await noUnhandledRejection(t);
});

t.test('default onError: RST after pipelined requests prints nothing per request', async (t) => {
  const lines = captureConsoleError(t);
  let handled = 0;
  const server = new Server({ port: 0, host: HOST }, async (_req, res) => {
    handled++;
    await res.end(BIG);
  });
  const { port } = await server.start();
  await pipelineThenReset(port, 400, () => handled, 100);
  t.ok(await until(() => server.stats().closed >= 1), 'the reset connection closed');
  await settle(10);
  await server.stop(500);
  t.same(lines, [], 'a client leaving is not a handler error: nothing on stderr');
  await noUnhandledRejection(t);
});

t.test('ErrorReporter: one line per kind per window, then the suppressed count', async (t) => {
  let now = 0;
  const printed: string[] = [];
  const reporter = new ErrorReporter({ now: () => now, print: (...args) => void printed.push(args.map(String).join(' ')) });
  for (let i = 0; i < 1000; i++) reporter.report('handler error', new TypeError(`boom ${i}`), `first ${i}`);
  reporter.report('handler error', new RangeError('other kind'), 'range');
  t.same(printed, ['first 0', 'range'], 'one line per kind in the window');
  t.equal(reporter.suppressed, 999);
  now = 1000;
  reporter.report('handler error', new TypeError('later'), 'later');
  t.match(printed[2], /^quay: 999 more suppressed: handler error TypeError \(/);
  t.equal(printed[3], 'later', 'a new window prints again');
  // A peer cannot make every report a new kind: the kind is name and code, not message; and kinds are capped.
  const capped = new ErrorReporter({ now: () => 0, maxKinds: 2, print: (...args) => void printed.push(args.map(String).join(' ')) });
  printed.length = 0;
  for (let i = 0; i < 100; i++) {
    const e = new Error('x') as Error & { code: string };
    e.code = `CODE_${i}`;
    capped.report('handler error', e, `code ${i}`);
  }
  t.same(printed, ['code 0', 'code 1', 'code 2'], 'two kinds and one shared bucket');
  capped.flush();
  t.match(printed[3], /^quay: 97 more suppressed: handler error \(other kinds\) \(/);
  // A printer that throws does not reach the caller.
  const throwing = new ErrorReporter({
    print: () => {
      throw new Error('stderr closed');
    },
  });
  t.doesNotThrow(() => throwing.report('handler error', new Error('x'), 'x'));
});

t.test('ErrorReporter: the summary comes at the window end without another error, and the window still holds', async (t) => {
  let now = 0;
  const printed: string[] = [];
  const reporter = new ErrorReporter({ intervalMs: 20, now: () => now, print: (...args) => void printed.push(args.map(String).join(' ')) });
  for (let i = 0; i < 5; i++) reporter.report('handler error', new Error('x'), `error ${i}`);
  t.same(printed, ['error 0']);
  t.ok(await until(() => printed.length === 2, 100, 10), 'the timer printed the summary');
  t.match(printed[1], /^quay: 4 more suppressed: handler error \(/);
  now = 10; // still inside the window of 'error 0'
  reporter.report('handler error', new Error('x'), 'error 5');
  t.equal(printed.length, 2, 'not printed: its kind was printed less than a window ago');
  reporter.flush();
  t.match(printed[2], /^quay: 1 more suppressed: /);
});

t.test('NODE_DEBUG=quay: details go to util.debuglog and nothing throws', async (t) => {
  const child = fileURLToPath(new URL('./support/nodeDebugChild.ts', import.meta.url));
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [...process.execArgv, child], {
      env: { ...process.env, NODE_DEBUG: 'quay', TS_NODE_TRANSPILE_ONLY: '1' }, // type-checked by the suite already
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const timer = setTimeout(() => p.kill(), 60_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  t.equal(result.code, 0, `the child exited cleanly: ${result.stderr.slice(-2000)}`);
  t.match(result.stderr, /QUAY \d+: handler of GET \/p saw the client leave/, 'the disconnect is in the debug log');
  t.match(result.stderr, /QUAY \d+: handler error: TypeError: boom/, 'a handler error is in the debug log');
});
