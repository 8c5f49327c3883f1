/**
 * Interop of quay's WebSocket server with a real peer: the `ws` client (and, for what `ws` refuses to send, a raw
 * node:net socket after a manual handshake), over loopback only. Every wait is bounded in time (`until`,
 * `within`) and every loop in count; nothing asserts absolute times, only outcomes and order.
 *
 * Note on timing: `Server` owns its IdleTimeoutScheduler with the default 1000 ms sweep, so idle timeouts and
 * keepalive pings fire up to one tick late; the tests pick values whose order survives that granularity.
 */
import t from 'tap';
import { ByteBufferPool } from '../lib/buffers/index.js';
import type { Test } from 'tap';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { setImmediate as nextImmediate, setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import {
  ProtocolError,
  ReadyState,
  Router,
  Server,
  WebSocketSessionError,
  WebSocketUpgradeHandler,
  broadcast,
} from '../lib/index.js';
import type {
  ServerErrorContext,
  ServerOptions,
  WebSocketListener,
  WebSocketSession,
  WebSocketUpgradeHandlerOptions,
} from '../lib/index.js';
import { mulberry32 } from './support/mulberry32.js';
import { HOST, RawClient, clientFrame, closeCodeOf, until, within } from './support/wsRaw.js';

const MiB = 1024 * 1024;

// ------------------------------------------------------------------------------------------------ server side

interface ServerClose {
  session: WebSocketSession;
  code: number;
  reason: string;
}

/** What the server-side listeners saw, across all sessions of a test. */
class Log {
  readonly opened: WebSocketSession[] = [];
  readonly closed: ServerClose[] = [];
  readonly errors: { session: WebSocketSession; error: Error }[] = [];
  readonly texts: string[] = [];
  readonly binaries: Buffer[] = [];
  readonly pings: string[] = [];
  readonly pongs: string[] = [];

  /** The session opened on `path`, if any. */
  session(path: string): WebSocketSession | undefined {
    return this.opened.find((s) => s.path === path);
  }

  closeOf(session: WebSocketSession): ServerClose | undefined {
    return this.closed.find((c) => c.session === session);
  }

  errorsOf(session: WebSocketSession): Error[] {
    return this.errors.filter((e) => e.session === session).map((e) => e.error);
  }
}

/** An echoing listener that records everything in `log`; `extra` overrides single callbacks. */
function echoListener(log: Log, extra: Partial<WebSocketListener> = {}): WebSocketListener {
  return {
    onOpen: (session) => void log.opened.push(session),
    onText: (session, text) => {
      log.texts.push(text);
      void session.sendText(text);
    },
    onBinary: (session, data) => {
      log.binaries.push(data);
      void session.sendBinary(data);
    },
    onPing: (_session, payload) => void log.pings.push(payload.toString('utf8')),
    onPong: (_session, payload) => void log.pongs.push(payload.toString('utf8')),
    onClose: (session, code, reason) => void log.closed.push({ session, code, reason }),
    onError: (session, error) => void log.errors.push({ session, error }),
    ...extra,
  };
}

/** A WebSocket route whose sessions echo into `log`. */
function echoRoute(log: Log, options: Partial<WebSocketUpgradeHandlerOptions> = {}): WebSocketUpgradeHandler {
  return new WebSocketUpgradeHandler({ accept: () => echoListener(log), ...options });
}

interface Started {
  server: Server;
  port: number;
  serverErrors: { error: Error; context: ServerErrorContext }[];
}

async function startServer(t: Test, router: Router, options: ServerOptions = {}): Promise<Started> {
  const serverErrors: { error: Error; context: ServerErrorContext }[] = [];
  // A debug pool: every pooled scratch buffer (coalesced writes) must be back after stop().
  const pool = new ByteBufferPool({ debug: true });
  const server = new Server(
    { port: 0, host: HOST, bufferPool: pool, onError: (error, context) => void serverErrors.push({ error, context }), ...options },
    router,
  );
  const { port } = await server.start();
  t.teardown(async () => {
    await server.stop(300);
    pool.assertNoLeaks();
  });
  return { server, port, serverErrors };
}

// ------------------------------------------------------------------------------------------------ ws side

interface Client {
  ws: WebSocket;
  /** Messages in arrival order (text as a string, binary as a Buffer). */
  messages: (string | Buffer)[];
  /** Payloads of the pings `ws` received (it answers them by itself). */
  pings: Buffer[];
  pongs: Buffer[];
  /** The 'close' event: resolves once the connection ended. */
  closed: Promise<{ code: number; reason: string }>;
  isClosed: () => boolean;
}

function track(t: Test, ws: WebSocket): Client {
  const messages: (string | Buffer)[] = [];
  const pings: Buffer[] = [];
  const pongs: Buffer[] = [];
  let done = false;
  ws.on('message', (data, isBinary) => {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    messages.push(isBinary ? bytes : bytes.toString('utf8'));
  });
  ws.on('ping', (data) => void pings.push(data));
  ws.on('pong', (data) => void pongs.push(data));
  ws.on('error', () => {}); // asserted where expected; a late ECONNRESET must not crash the file
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => {
      done = true;
      resolve({ code, reason: reason.toString('utf8') });
    }),
  );
  t.teardown(() => {
    if (!done) ws.terminate();
  });
  return { ws, messages, pings, pongs, closed, isClosed: () => done };
}

/** Opens a `ws` client and waits for 'open' (bounded). */
async function open(
  t: Test,
  port: number,
  path: string,
  protocols?: string[],
  options?: WebSocket.ClientOptions,
): Promise<Client> {
  const ws = new WebSocket(`ws://${HOST}:${port}${path}`, protocols, options);
  const client = track(t, ws);
  await within(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }),
    5000,
    `ws open ${path}`,
  );
  return client;
}

/** The socket under a `ws` client (not in its typings). */
function socketOf(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

// ================================================================================================ tests

t.test('text and binary echo, including empty and multi-byte UTF-8 messages', async (t) => {
  const log = new Log();
  const { port } = await startServer(t, new Router().route('/echo', echoRoute(log)));
  const c = await open(t, port, '/echo');
  const bin = randomBytes(70_000); // a 64-bit length header (> 65535)
  const small = Buffer.from([0, 1, 2, 255]);
  c.ws.send('héllo ✓ 𝄞');
  c.ws.send(small);
  c.ws.send('');
  c.ws.send(Buffer.alloc(0));
  c.ws.send(bin);
  c.ws.send('x'.repeat(300)); // a 16-bit length header
  await until(() => c.messages.length === 6, 3000, 'six echoes');
  t.equal(c.messages[0], 'héllo ✓ 𝄞', 'text with 2-, 3- and 4-byte sequences');
  t.ok(Buffer.isBuffer(c.messages[1]) && small.equals(c.messages[1]), 'small binary');
  t.equal(c.messages[2], '', 'empty text stays text');
  t.ok(Buffer.isBuffer(c.messages[3]) && c.messages[3].length === 0, 'empty binary stays binary');
  t.ok(Buffer.isBuffer(c.messages[4]) && bin.equals(c.messages[4]), '70,000-byte binary');
  t.equal(c.messages[5], 'x'.repeat(300));
  t.same(log.texts, ['héllo ✓ 𝄞', '', 'x'.repeat(300)], 'the server saw the texts in order');
  t.equal(log.binaries.length, 3);

  // A fragmented message from ws (fin: false) is reassembled into one message.
  c.ws.send('frag-', { fin: false });
  c.ws.send('ment', { fin: true });
  await until(() => c.messages.length === 7, 3000, 'the fragmented echo');
  t.equal(c.messages[6], 'frag-ment');
  t.equal(log.errors.length, 0, 'no session errors');
  c.ws.close();
  await within(c.closed, 3000, 'close');
});

t.test('a 16 MiB binary message both ways (exactly at the default frame limit); one byte more is 1009', async (t) => {
  const log = new Log();
  const { port } = await startServer(
    t,
    new Router().route('/big', echoRoute(log)).route('/bigger', echoRoute(log, { maxFrameBytes: 32 * MiB, maxMessageBytes: 64 * MiB })),
  );
  const payload = randomBytes(16 * MiB);
  const c = await open(t, port, '/big');
  c.ws.send(payload);
  await until(() => c.messages.length === 1, 10_000, 'the 16 MiB echo');
  t.equal(log.binaries.length, 1);
  t.equal(log.binaries[0]!.length, 16 * MiB, 'the server got 16 MiB in one message');
  const echoed = c.messages[0]!;
  t.ok(Buffer.isBuffer(echoed) && payload.equals(echoed), 'ws got the same 16 MiB back');

  // The same message in 4 fragments of 4 MiB: reassembled by the server (under the 64 MiB message limit).
  const fragmented = await open(t, port, '/big');
  for (let i = 0; i < 4; i++) fragmented.ws.send(payload.subarray(i * 4 * MiB, (i + 1) * 4 * MiB), { fin: i === 3 });
  await until(() => fragmented.messages.length === 1, 10_000, 'the fragmented 16 MiB echo');
  const echoed2 = fragmented.messages[0]!;
  t.ok(Buffer.isBuffer(echoed2) && payload.equals(echoed2), 'reassembled and echoed whole');

  // 16 MiB + 1 in one frame is over the default maxFrameBytes: 1009 (RFC 6455 §7.4.1).
  const over = Buffer.concat([payload, Buffer.from([7])]);
  c.ws.send(over);
  const { code } = await within(c.closed, 10_000, 'the 1009 close');
  t.equal(code, 1009, 'ws sees 1009 (message too big)');
  await until(() => log.closed.length >= 1, 3000, 'server onClose');
  t.equal(log.closeOf(log.opened[0]!)?.code, 1009, 'the server reports the code it sent');
  const err = log.errorsOf(log.opened[0]!)[0];
  t.ok(err instanceof ProtocolError && err.closeCode === 1009, 'onError got a ProtocolError with closeCode 1009');

  // With raised limits the same 16 MiB + 1 goes through both ways.
  const raised = await open(t, port, '/bigger');
  raised.ws.send(over);
  await until(() => raised.messages.length === 1, 10_000, 'the raised-limit echo');
  const echoed3 = raised.messages[0]!;
  t.ok(Buffer.isBuffer(echoed3) && over.equals(echoed3), 'maxFrameBytes raised: 16 MiB + 1 echoed');
  fragmented.ws.close();
  raised.ws.close();
  await within(Promise.all([fragmented.closed, raised.closed]), 3000, 'closes');
});

t.test('ping from ws gets a pong with the same payload; session.ping() is answered by ws', async (t) => {
  const log = new Log();
  const { port } = await startServer(t, new Router().route('/p', echoRoute(log)));
  const c = await open(t, port, '/p');
  c.ws.ping(Buffer.from('from-ws'));
  c.ws.ping(Buffer.alloc(0));
  c.ws.ping(Buffer.alloc(125, 0x61)); // the largest control payload (§5.5)
  await until(() => c.pongs.length === 3, 3000, 'three pongs');
  t.same(
    c.pongs.map((p) => p.toString()),
    ['from-ws', '', 'a'.repeat(125)],
    'each pong carries its ping payload (RFC 6455 §5.5.3)',
  );
  t.same(log.pings, ['from-ws', '', 'a'.repeat(125)], 'onPing saw the payloads');

  const session = log.opened[0]!;
  session.ping('from-quay');
  session.ping(Buffer.from([1, 2, 3]));
  await until(() => log.pongs.length === 2, 3000, 'two pongs from ws');
  t.same(c.pings.map((p) => p.toString('hex')), [Buffer.from('from-quay').toString('hex'), '010203'], 'ws saw the pings');
  t.same(log.pongs, ['from-quay', '\u0001\u0002\u0003'], 'onPong got ws automatic pongs with the same payload');
  t.throws(() => session.ping(Buffer.alloc(126)), 'a 126-byte ping payload is refused locally');
  t.equal(session.readyState, ReadyState.OPEN, 'and the session stays open');
  c.ws.close();
  await within(c.closed, 3000, 'close');
});

t.test('close codes in both directions', async (t) => {
  const log = new Log();
  const { port } = await startServer(t, new Router().route('/c', echoRoute(log)));

  // ws closes with 4000 + reason: quay's onClose(4000, reason) and ws sees the echo.
  const a = await open(t, port, '/c/a');
  a.ws.close(4000, 'bye now');
  const aClose = await within(a.closed, 3000, 'a close');
  t.equal(aClose.code, 4000, 'ws: the echoed 4000');
  await until(() => log.closed.length === 1, 3000, 'server onClose a');
  t.match(log.closeOf(log.session('/c/a')!), { code: 4000, reason: 'bye now' }, 'quay: onClose(4000, reason)');

  // quay closes with 1000 and with 4001: ws's 'close' event gets the code and the reason.
  const b = await open(t, port, '/c/b');
  const c = await open(t, port, '/c/c');
  log.session('/c/b')!.close(1000, 'done');
  log.session('/c/c')!.close(4001, 'kicked');
  t.equal(log.session('/c/b')!.readyState, ReadyState.CLOSING, 'CLOSING while waiting for the peer');
  t.same(await within(b.closed, 3000, 'b close'), { code: 1000, reason: 'done' }, 'ws: 1000 with the reason');
  t.same(await within(c.closed, 3000, 'c close'), { code: 4001, reason: 'kicked' }, 'ws: 4001 with the reason');
  await until(() => log.closed.length === 3, 3000, 'server onClose b, c');
  t.match(log.closeOf(log.session('/c/b')!), { code: 1000, reason: 'done' });
  t.match(log.closeOf(log.session('/c/c')!), { code: 4001, reason: 'kicked' });
  t.equal(log.session('/c/c')!.readyState, ReadyState.CLOSED);

  // Sends after close are refused with WS_SESSION_CLOSED.
  const rejected = await log.session('/c/b')!.sendText('late').then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(rejected instanceof WebSocketSessionError && rejected.code === 'WS_SESSION_CLOSED', 'a send after close fails');

  // ws closes without a code: 1005 on both sides (RFC 6455 §7.1.5).
  const d = await open(t, port, '/c/d');
  d.ws.close();
  t.equal((await within(d.closed, 3000, 'd close')).code, 1005, 'ws: 1005');
  await until(() => log.closed.length === 4, 3000, 'server onClose d');
  t.equal(log.closeOf(log.session('/c/d')!)?.code, 1005, 'quay: 1005 for an empty close frame');

  // ws terminates (no close frame): 1006.
  const e = await open(t, port, '/c/e');
  e.ws.terminate();
  await until(() => log.closed.length === 5, 3000, 'server onClose e');
  t.equal(log.closeOf(log.session('/c/e')!)?.code, 1006, 'quay: 1006 without a close frame');

  // quay terminates: ws sees 1006.
  const f = await open(t, port, '/c/f');
  log.session('/c/f')!.terminate();
  t.equal((await within(f.closed, 3000, 'f close')).code, 1006, 'ws: 1006 after terminate()');

  // The longest reason (123 bytes of UTF-8, §5.5) in both directions; one byte more is refused locally.
  const g = await open(t, port, '/c/g');
  const reason123 = 'é'.repeat(61) + 'x'; // 2 x 61 + 1 = 123 bytes
  log.session('/c/g')!.close(4003, reason123);
  t.same(await within(g.closed, 3000, 'g close'), { code: 4003, reason: reason123 }, 'ws: a 123-byte reason');
  const h = await open(t, port, '/c/h');
  t.throws(() => log.session('/c/h')!.close(4003, reason123 + 'x'), 'a 124-byte reason throws');
  t.equal(log.session('/c/h')!.readyState, ReadyState.OPEN, 'and the session stays open');
  h.ws.close(4004, reason123);
  await within(h.closed, 3000, 'h close');
  await until(() => log.closeOf(log.session('/c/h')!) !== undefined, 3000, 'server onClose h');
  t.match(log.closeOf(log.session('/c/h')!), { code: 4004, reason: reason123 }, 'quay: the 123-byte reason from ws');
});

t.test('a peer that never answers our close frame is dropped after closeTimeoutMs (1006, WS_CLOSE_TIMEOUT)', async (t) => {
  const log = new Log();
  const { port, server } = await startServer(t, new Router().route('/ct', echoRoute(log, { closeTimeoutMs: 200 })));
  const mute = await RawClient.connect(t, port, '/ct');
  await until(() => log.opened.length === 1, 3000, 'the session');
  const session = log.opened[0]!;
  session.close(1000, 'bye');
  await within(mute.ended, 3000, 'the server dropping the mute peer');
  const frames = mute.frames();
  t.equal(closeCodeOf(frames[0]), 1000, 'our close frame went out');
  t.equal(frames[0]!.payload.subarray(2).toString(), 'bye');
  await until(() => log.closeOf(session) !== undefined, 3000, 'onClose');
  t.equal(log.closeOf(session)?.code, 1006, 'no close frame from the peer: 1006 (§7.1.5)');
  t.match(log.errorsOf(session)[0], { code: 'WS_CLOSE_TIMEOUT' });
  t.equal(server.stats().open, 0);
});

t.test('refusals reach ws as unexpected-response: accept() refusing (async), origins', async (t) => {
  const log = new Log();
  const { port } = await startServer(
    t,
    new Router()
      .route('/no', new WebSocketUpgradeHandler({ accept: async () => ({ status: 403, reason: 'not you' }) }))
      .route('/origin', echoRoute(log, { origins: ['http://good.example'] })),
  );
  const refusal = (path: string, options?: WebSocket.ClientOptions) =>
    within(
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const ws = new WebSocket(`ws://${HOST}:${port}${path}`, options);
        track(t, ws);
        ws.once('open', () => reject(new Error(`${path} opened`)));
        ws.once('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (b: Buffer) => (body += b.toString()));
          res.on('end', () => {
            ws.terminate();
            resolve({ status: res.statusCode ?? 0, body });
          });
        });
      }),
      3000,
      `the refusal of ${path}`,
    );
  t.same(await refusal('/no'), { status: 403, body: 'not you\n' }, 'the status and reason of accept()');
  t.equal((await refusal('/origin', { origin: 'http://evil.example' })).status, 403, 'a foreign Origin: 403 (§10.2)');
  t.equal((await refusal('/origin')).status, 403, 'no Origin while origins is set: 403');
  const good = await open(t, port, '/origin', undefined, { origin: 'http://good.example' });
  good.ws.send('hi');
  await until(() => good.messages.length === 1, 3000, 'echo');
  good.ws.close();
  await within(good.closed, 3000, 'close');
});

t.test('protocol errors from a raw peer: the right close code on the wire, and the server goes on', async (t) => {
  const log = new Log();
  const { port, server, serverErrors } = await startServer(
    t,
    new Router().route('/raw', echoRoute(log)).route('/small', echoRoute(log, { maxFrameBytes: 1024 })),
  );
  const cases: { name: string; path?: string; frames: Buffer[]; code: number }[] = [
    { name: 'an unmasked client frame (§5.1)', frames: [clientFrame(0x1, 'hi', { mask: false })], code: 1002 },
    { name: 'RSV1 without a negotiated extension (§5.2)', frames: [clientFrame(0x1, 'hi', { rsv: 0x40 })], code: 1002 },
    { name: 'a reserved opcode 0x3 (§5.2)', frames: [clientFrame(0x3, 'hi')], code: 1002 },
    { name: 'a continuation without a message (§5.4)', frames: [clientFrame(0x0, 'hi')], code: 1002 },
    { name: 'a fragmented ping (§5.5)', frames: [clientFrame(0x9, 'hi', { fin: false })], code: 1002 },
    { name: 'a 126-byte ping (§5.5)', frames: [clientFrame(0x9, Buffer.alloc(126))], code: 1002 },
    {
      name: 'a new text frame inside a fragmented message (§5.4)',
      frames: [clientFrame(0x1, 'a', { fin: false }), clientFrame(0x1, 'b')],
      code: 1002,
    },
    { name: 'a close frame with a 1-byte payload (§5.5.1)', frames: [clientFrame(0x8, Buffer.from([3]))], code: 1002 },
    { name: 'close code 1005 on the wire (§7.4.1)', frames: [clientFrame(0x8, Buffer.from([0x03, 0xed]))], code: 1002 },
    { name: 'invalid UTF-8 in a text message (§8.1)', frames: [clientFrame(0x1, Buffer.from([0x68, 0xc3, 0x28]))], code: 1007 },
    {
      name: 'invalid UTF-8 in a close reason (§5.5.1)',
      frames: [clientFrame(0x8, Buffer.from([0x03, 0xe8, 0xff]))],
      code: 1007,
    },
    { name: 'a frame over maxFrameBytes', path: '/small', frames: [clientFrame(0x2, Buffer.alloc(2000))], code: 1009 },
  ];
  for (const c of cases) {
    const raw = await RawClient.connect(t, port, c.path ?? '/raw');
    for (const f of c.frames) raw.write(f);
    await within(raw.ended, 3000, `the server closing after ${c.name}`);
    const frames = raw.frames();
    const last = frames[frames.length - 1];
    t.equal(closeCodeOf(last), c.code, `${c.name}: close ${c.code} on the wire`);
    t.equal(frames.filter((f) => f.masked).length, 0, `${c.name}: server frames are not masked (§5.1)`);
  }
  await until(() => log.closed.length === cases.length, 3000, 'every onClose');
  t.same(
    log.closed.map((c) => c.code),
    cases.map((c) => c.code),
    'onClose reports the code the server sent',
  );
  t.same(
    log.errors.map((e) => (e.error instanceof ProtocolError ? e.error.closeCode : e.error.message)),
    cases.map((c) => c.code),
    'onError got one ProtocolError per session, with its closeCode',
  );
  await until(() => serverErrors.length >= cases.length, 3000, 'the server hook');
  t.same(
    serverErrors.map((e) => e.context.kind),
    cases.map(() => 'websocket'),
    "the Server's onError reports each session failure as kind 'websocket', not 'io'",
  );

  // The server goes on: a well-behaved ws client after all that.
  const ok = await open(t, port, '/raw');
  ok.ws.send('still here');
  await until(() => ok.messages.length === 1, 3000, 'echo after the errors');
  t.equal(ok.messages[0], 'still here');
  t.equal(server.stats().open, 1, 'only the good session is left open');
  ok.ws.close(1000);
  await within(ok.closed, 3000, 'close');
});

t.test('subprotocols: the first offered that the server speaks; none when nothing matches', async (t) => {
  const log = new Log();
  const { port } = await startServer(
    t,
    new Router()
      .route('/sp', echoRoute(log, { subprotocols: ['chat'] }))
      .route('/pick', new WebSocketUpgradeHandler({ accept: () => ({ listener: echoListener(log), protocol: 'b' }) })),
  );
  const match = await open(t, port, '/sp/match', ['a', 'chat']);
  t.equal(match.ws.protocol, 'chat', "ws.protocol === 'chat'");
  t.equal(log.session('/sp/match')!.protocol, 'chat', 'session.protocol too');

  // Nothing matches: the 101 carries no Sec-WebSocket-Protocol (RFC 6455 §4.2.2 allows it); ws then refuses the
  // connection itself ('Server sent no subprotocol'): the client decides.
  const ws = new WebSocket(`ws://${HOST}:${port}/sp/none`, ['a', 'b']);
  const none = track(t, ws);
  const upgradeHeaders = new Promise<Record<string, unknown>>((resolve) => ws.once('upgrade', (res) => resolve(res.headers)));
  const failure = new Promise<Error>((resolve) => ws.once('error', resolve));
  const headers = await within(upgradeHeaders, 3000, 'the 101');
  t.equal(headers['sec-websocket-protocol'], undefined, 'no subprotocol in the 101');
  t.match((await within(failure, 3000, 'ws error')).message, /no subprotocol/, 'ws refuses a 101 without one');
  await within(none.closed, 3000, 'ws closed');
  await until(() => log.session('/sp/none') !== undefined && log.closeOf(log.session('/sp/none')!) !== undefined, 3000, 'onClose');
  t.equal(log.session('/sp/none')!.protocol, '', "the server session had protocol ''");
  t.equal(log.closeOf(log.session('/sp/none')!)?.code, 1006, 'and ended with 1006 (ws dropped it)');

  // Nothing offered: nothing selected, and ws is content.
  const plain = await open(t, port, '/sp/plain');
  t.equal(plain.ws.protocol, '');
  t.equal(log.session('/sp/plain')!.protocol, '');

  // accept() may choose among the offered ones itself.
  const picked = await open(t, port, '/pick', ['a', 'b']);
  t.equal(picked.ws.protocol, 'b', 'the protocol accept() chose');
  for (const c of [match, plain, picked]) c.ws.close();
  await within(Promise.all([match.closed, plain.closed, picked.closed]), 3000, 'closes');
});

t.test("an upgrade on a wrong path: ws gets 'unexpected-response' 404 and onError (kind 'upgrade') names the path", async (t) => {
  const log = new Log();
  const { port, serverErrors } = await startServer(t, new Router().route('/ws', echoRoute(log)));
  const ws = new WebSocket(`ws://${HOST}:${port}/nope/deeper`);
  const client = track(t, ws);
  const status = await within(
    new Promise<number>((resolve, reject) => {
      ws.once('unexpected-response', (req, res) => {
        res.resume();
        req.destroy();
        resolve(res.statusCode ?? 0);
      });
      ws.once('open', () => reject(new Error('opened on a wrong path')));
    }),
    3000,
    'unexpected-response',
  );
  t.equal(status, 404);
  client.ws.terminate(); // with an 'unexpected-response' listener, ending the attempt is up to us
  await within(client.closed, 3000, 'ws closed');
  await until(() => serverErrors.some((e) => e.context.kind === 'upgrade'), 3000, 'the upgrade error');
  const upgrade = serverErrors.find((e) => e.context.kind === 'upgrade')!;
  t.equal(upgrade.context.request?.path, '/nope/deeper', 'the context carries the request');
  t.match(upgrade.error.message, /\/nope\/deeper/, 'the message names the path');
  t.match(upgrade.error.message, /404/, 'and the status');
  t.equal(log.opened.length, 0, 'no session');

  // The server goes on.
  const ok = await open(t, port, '/ws');
  ok.ws.close();
  await within(ok.closed, 3000, 'close');
});

t.test('1,000 concurrent sessions; one broadcast reaches all of them', async (t) => {
  const members = new Set<WebSocketSession>();
  let closes = 0;
  const { port, server } = await startServer(
    t,
    new Router().route(
      '/room',
      new WebSocketUpgradeHandler({
        accept: () => ({
          onOpen: (s) => void members.add(s),
          onClose: (s) => {
            members.delete(s);
            closes++;
          },
        }),
      }),
    ),
  );
  const N = 1000;
  const clients: Client[] = [];
  for (let batch = 0; batch < N / 100; batch++) {
    const opened = await Promise.all(Array.from({ length: 100 }, () => open(t, port, '/room')));
    clients.push(...opened);
  }
  await until(() => members.size === N, 5000, `${N} server sessions`);
  t.equal(members.size, N, `${N} sessions open on the server`);
  t.equal(server.stats().open, N);

  const result = broadcast(members, 'hello, everyone');
  t.same(result, { sent: N, skipped: 0 }, 'queued for every session');
  await until(() => clients.every((c) => c.messages.length === 1), 10_000, 'every client got the broadcast');
  t.equal(clients.filter((c) => c.messages[0] === 'hello, everyone').length, N, 'all 1,000 got exactly it');

  const bin = randomBytes(1000);
  t.same(broadcast(members, bin), { sent: N, skipped: 0 }, 'a binary broadcast too');
  await until(() => clients.every((c) => c.messages.length === 2), 10_000, 'the binary broadcast');
  t.equal(clients.filter((c) => Buffer.isBuffer(c.messages[1]) && bin.equals(c.messages[1])).length, N);

  for (const c of clients) c.ws.close(1000);
  await until(() => closes === N, 10_000, 'every onClose');
  t.equal(members.size, 0, 'all sessions closed');
  await until(() => clients.every((c) => c.isClosed()), 5000, 'every ws close');
});

/**
 * Sends `chunk` to `session` until a send is refused (bounded by count and time), yielding to the event loop
 * between sends so the flusher can hand bytes to the kernel: only once the peer's receive buffer and our send
 * buffer are full does `bufferedAmount` grow. Records the outcome of every accepted send.
 */
async function flood(session: WebSocketSession, chunk: Buffer, maxSends: number, maxMs: number) {
  const outcome = { accepted: 0, flushed: 0, failed: [] as Error[], refusal: undefined as Error | undefined };
  const deadline = Date.now() + maxMs;
  for (let i = 0; i < maxSends && Date.now() < deadline; i++) {
    let refusal: Error | undefined;
    let sync = true;
    const ok = session.send(chunk, (error) => {
      if (sync) refusal = error ?? undefined;
      else if (error === null) outcome.flushed++;
      else outcome.failed.push(error);
    });
    sync = false;
    if (!ok) {
      outcome.refusal = refusal;
      return outcome;
    }
    outcome.accepted++;
    await nextImmediate();
  }
  return outcome;
}

t.test("slow consumer, overflow 'reject': the send fails with WS_BUFFER_OVERFLOW, others are unaffected", async (t) => {
  const log = new Log();
  const { port } = await startServer(t, new Router().route('/slow', echoRoute(log, { maxBufferedBytes: 1 * MiB, overflow: 'reject' })));
  const slow = await open(t, port, '/slow/paused');
  const fast = await open(t, port, '/slow/fast');
  await until(() => log.opened.length === 2, 3000, 'both sessions');
  const slowSession = log.session('/slow/paused')!;
  const fastSession = log.session('/slow/fast')!;
  socketOf(slow.ws).pause();

  const chunk = randomBytes(256 * 1024);
  const outcome = await flood(slowSession, chunk, 2000, 8000);
  t.ok(outcome.refusal instanceof WebSocketSessionError, 'a send was refused');
  t.equal((outcome.refusal as WebSocketSessionError | undefined)?.code, 'WS_BUFFER_OVERFLOW');
  t.ok(outcome.accepted * chunk.length > 1 * MiB, `MBs went out before the refusal (${outcome.accepted} x 256 KiB)`);
  t.ok(slowSession.bufferedAmount <= 1 * MiB + chunk.length, 'bufferedAmount stayed near the bound');
  t.equal(slowSession.readyState, ReadyState.OPEN, "'reject' keeps the session open");
  const viaPromise = await slowSession.sendBinary(chunk).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.equal((viaPromise as WebSocketSessionError | undefined)?.code, 'WS_BUFFER_OVERFLOW', 'sendBinary rejects too');

  // Meanwhile the other session works, and broadcast skips the slow one without holding up the rest.
  fast.ws.send('unaffected');
  await until(() => fast.messages.length === 1, 3000, 'the fast echo');
  t.equal(fast.messages[0], 'unaffected');
  // The bound is in bytes: a message of the refused size is skipped for the slow session (a small one would fit).
  t.same(broadcast([slowSession, fastSession], chunk), { sent: 1, skipped: 1 }, 'broadcast skips the slow session');
  await until(() => fast.messages.length === 2, 3000, 'the fast broadcast');
  t.ok(Buffer.isBuffer(fast.messages[1]) && chunk.equals(fast.messages[1]), 'the fast session got it');
  t.equal(fastSession.bufferedAmount, 0);

  // The slow peer reads again: every accepted message arrives, in full, and the session is fine.
  socketOf(slow.ws).resume();
  await until(() => slow.messages.length === outcome.accepted, 15_000, 'the slow peer catching up');
  t.equal(slow.messages.length, outcome.accepted, 'exactly the accepted messages arrived');
  t.ok(slow.messages.every((m) => Buffer.isBuffer(m) && m.length === chunk.length), 'each whole');
  await until(() => outcome.flushed === outcome.accepted, 3000, 'every accepted send flushed');
  t.equal(outcome.failed.length, 0, 'no accepted send failed');
  t.equal(slowSession.readyState, ReadyState.OPEN);
  slow.ws.close(1000);
  fast.ws.close(1000);
  await within(Promise.all([slow.closed, fast.closed]), 3000, 'closes');
  t.equal(log.errors.length, 0, 'no session errors');
});

t.test("slow consumer, overflow 'close': the slow session is closed with 1008, others are unaffected", async (t) => {
  const log = new Log();
  const { port } = await startServer(t, new Router().route('/slow', echoRoute(log, { maxBufferedBytes: 1 * MiB, overflow: 'close' })));
  const slow = await open(t, port, '/slow/paused');
  const fast = await open(t, port, '/slow/fast');
  await until(() => log.opened.length === 2, 3000, 'both sessions');
  const slowSession = log.session('/slow/paused')!;
  socketOf(slow.ws).pause();

  const chunk = randomBytes(256 * 1024);
  const outcome = await flood(slowSession, chunk, 2000, 8000);
  const refusal = outcome.refusal as WebSocketSessionError | undefined;
  t.equal(refusal?.code, 'WS_BUFFER_OVERFLOW', 'the overflowing send fails');
  t.equal(refusal?.closeCode, 1008, 'with closeCode 1008');
  t.not(slowSession.readyState, ReadyState.OPEN, 'the slow session is no longer open');
  t.equal(slowSession.send('more'), false, 'later sends are refused');

  fast.ws.send('unaffected');
  await until(() => fast.messages.length === 1, 3000, 'the fast echo');
  t.equal(fast.messages[0], 'unaffected');

  // The slow peer reads again: it gets what was flushed before, then the 1008 close.
  socketOf(slow.ws).resume();
  const closed = await within(slow.closed, 15_000, 'the 1008 close');
  t.equal(closed.code, 1008, 'ws sees 1008 (policy violation)');
  t.equal(closed.reason, 'slow consumer');
  await until(() => log.closeOf(slowSession) !== undefined, 3000, 'server onClose');
  t.equal(log.closeOf(slowSession)?.code, 1008, 'onClose(1008)');
  t.match(log.errorsOf(slowSession)[0], { code: 'WS_BUFFER_OVERFLOW' }, 'onError told why');
  // Nothing accepted was silently dropped: each send either flushed (and arrived) or failed.
  await until(() => outcome.flushed + outcome.failed.length === outcome.accepted, 3000, 'every send callback');
  t.equal(slow.messages.length, outcome.flushed, 'the peer got exactly the flushed messages');
  t.ok(
    outcome.failed.every((e) => e instanceof WebSocketSessionError && e.code === 'WS_SESSION_CLOSED'),
    'the queued ones failed with WS_SESSION_CLOSED',
  );
  t.equal(log.closeOf(log.session('/slow/fast')!), undefined, 'the fast session is still open');
  fast.ws.close(1000);
  await within(fast.closed, 3000, 'close');
});

t.test("slow consumer, overflow 'close', a peer that never reads again: disconnected within closeTimeoutMs", async (t) => {
  // No idle timeout (0 = never), so only the close timeout can end the connection: "How long to wait for the
  // peer's close frame (and for the TCP close) after ours" (WebSocketSessionOptions.closeTimeoutMs).
  const log = new Log();
  const { port, server } = await startServer(
    t,
    new Router().route('/never', echoRoute(log, { maxBufferedBytes: 1 * MiB, overflow: 'close', idleTimeoutMs: 0, closeTimeoutMs: 300 })),
  );
  const never = await open(t, port, '/never');
  await until(() => log.opened.length === 1, 3000, 'the session');
  const session = log.opened[0]!;
  socketOf(never.ws).pause(); // and never resumed
  const outcome = await flood(session, randomBytes(256 * 1024), 2000, 8000);
  t.equal((outcome.refusal as WebSocketSessionError | undefined)?.code, 'WS_BUFFER_OVERFLOW', 'the overflowing send fails');
  // Bounded at 10x closeTimeoutMs. KNOWN BUG (see the report): fail() waits for the flush of its close frame with
  // no timer, so a peer that never reads keeps the connection (and its buffers) until the idle timeout: forever here.
  await until(() => log.closeOf(session) !== undefined, 3000, 'the slow consumer disconnected').catch((e: Error) => t.fail(e.message));
  t.equal(log.closeOf(session)?.code, 1008, 'onClose(1008)');
  t.equal(server.stats().open, 0, 'the connection is gone');
});

t.test('idle timeout: inherited from Server idleTimeoutMs, overridden by the handler, settable on the session', async (t) => {
  const log = new Log();
  const { port } = await startServer(
    t,
    new Router().route('/inherit', echoRoute(log)).route('/long', echoRoute(log, { idleTimeoutMs: 2500 })),
    { idleTimeoutMs: 300 },
  );
  const inherit = await open(t, port, '/inherit');
  const long = await open(t, port, '/long');
  await until(() => log.opened.length === 2, 3000, 'both sessions');
  const inheritSession = log.session('/inherit')!;
  const longSession = log.session('/long')!;
  t.equal(inheritSession.idleTimeoutMs, 300, 'the Server idleTimeoutMs is inherited');
  t.equal(longSession.idleTimeoutMs, 2500, 'the handler idleTimeoutMs overrides it');

  const closes: string[] = [];
  void inherit.closed.then(() => closes.push('inherit'));
  void long.closed.then(() => closes.push('long'));
  const first = await within(inherit.closed, 5000, 'the idle close');
  t.same(first, { code: 1001, reason: 'idle timeout' }, 'ws gets 1001 going away');
  t.same(closes, ['inherit'], 'the shorter timeout fired first');
  t.equal(long.ws.readyState, WebSocket.OPEN, 'the longer one is still open');
  await until(() => log.closeOf(inheritSession) !== undefined, 3000, 'server onClose');
  t.equal(log.closeOf(inheritSession)?.code, 1001);

  // The session's own setter takes over from the handler's value.
  longSession.idleTimeoutMs = 100;
  t.equal(longSession.idleTimeoutMs, 100);
  const second = await within(long.closed, 5000, 'the second idle close');
  t.equal(second.code, 1001);
  t.same(closes, ['inherit', 'long'], 'in order');
});

t.test('keepalive: ws answers pings and stays open; a raw peer that never answers is closed with 1001', async (t) => {
  const log = new Log();
  const heldLog = new Log();
  let held: Client | undefined;
  const holding = echoListener(heldLog, {
    // Holds reads (awaitHandlers) for 2.5 s, more than two sweeps of the 1 s idle scheduler, so a keepalive ping
    // goes out and its interval passes while reads are held: ws answers at once, but its pong waits unread.
    async onText(session, text) {
      for (let i = 0; i < 50 && !held!.isClosed(); i++) await sleep(50);
      await session.sendText(`done ${text}`);
    },
  });
  const { port } = await startServer(
    t,
    new Router()
      .route('/ka', echoRoute(log, { pingIntervalMs: 200 }))
      .route('/held', new WebSocketUpgradeHandler({ pingIntervalMs: 200, awaitHandlers: true, accept: () => holding })),
  );
  const alive = await open(t, port, '/ka/alive');
  const mute = await RawClient.connect(t, port, '/ka/mute');
  held = await open(t, port, '/held');
  held.ws.send('work');
  await until(() => log.opened.length === 2, 3000, 'both sessions');
  t.equal(log.session('/ka/alive')!.idleTimeoutMs, 200, 'the keepalive drives the idle timer');

  await within(mute.ended, 8000, 'the mute peer closed');
  const frames = mute.frames();
  t.ok(frames.some((f) => f.opcode === 0x9), 'the mute peer was pinged');
  t.equal(closeCodeOf(frames[frames.length - 1]), 1001, 'then closed with 1001 on the wire');
  await until(() => log.closeOf(log.session('/ka/mute')!) !== undefined, 3000, 'server onClose');
  t.equal(log.closeOf(log.session('/ka/mute')!)?.code, 1001, 'onClose(1001)');
  t.match(log.errorsOf(log.session('/ka/mute')!)[0], { code: 'WS_PONG_TIMEOUT' });

  await until(() => alive.pings.length >= 2, 8000, 'two pings seen by ws');
  t.ok(alive.pings.length >= 2, `ws saw ${alive.pings.length} pings and answered them`);
  t.equal(alive.ws.readyState, WebSocket.OPEN, 'the answering session stayed open past several intervals');
  t.equal(log.closeOf(log.session('/ka/alive')!), undefined);
  alive.ws.send('still alive');
  await until(() => alive.messages.length === 1, 3000, 'echo');
  alive.ws.close();
  await within(alive.closed, 3000, 'close');

  // KNOWN BUG (see the report): the held session is failed with WS_PONG_TIMEOUT although ws answered at once.
  await until(() => held!.messages.length === 1 || held!.isClosed(), 8000, 'the held reply or close');
  t.same(
    heldLog.errors.map((e) => (e.error as WebSocketSessionError).code),
    [],
    'no WS_PONG_TIMEOUT for a peer whose pong is unread only because an awaited handler holds reads',
  );
  t.equal(held.messages[0], 'done work', 'the held handler finished and replied');
  t.equal(held.isClosed(), false, 'the held session is still open');
});

t.test('Server.stop(graceMs) closes every session with 1001; a peer that never answers is cut at the deadline', async (t) => {
  const log = new Log();
  const server = new Server({ port: 0, host: HOST, onError: () => {} }, new Router().route('/s', echoRoute(log)));
  const { port } = await server.start();
  t.teardown(() => server.stop(100));
  const clients = await Promise.all(Array.from({ length: 5 }, (_, i) => open(t, port, `/s/${i}`)));
  const mute = await RawClient.connect(t, port, '/s/mute');
  await until(() => log.opened.length === 6, 3000, 'six sessions');

  await within(server.stop(500), 5000, 'stop');
  const codes = await within(Promise.all(clients.map((c) => c.closed)), 3000, 'ws closes');
  t.same(
    codes.map((c) => c.code),
    [1001, 1001, 1001, 1001, 1001],
    'every ws client saw 1001',
  );
  t.equal(codes[0]!.reason, 'server stopping');
  await within(mute.ended, 3000, 'the mute peer cut');
  const frames = mute.frames();
  t.equal(closeCodeOf(frames[frames.length - 1]), 1001, 'the mute peer got the 1001 close frame too');
  t.equal(log.closed.length, 6, 'every onClose ran before stop() resolved');
  t.same(
    log.opened.filter((s) => s.path !== '/s/mute').map((s) => log.closeOf(s)?.code),
    [1001, 1001, 1001, 1001, 1001],
    'completed handshakes report 1001',
  );
  t.equal(log.closeOf(log.session('/s/mute')!)?.code, 1006, 'the one cut at the deadline reports 1006');
  t.equal(server.stats().open, 0);
  const refused = new WebSocket(`ws://${HOST}:${port}/s/late`);
  const late = track(t, refused);
  await within(late.closed, 3000, 'a connection after stop fails');
  t.equal(late.messages.length, 0);
});

t.test('awaitHandlers: async handlers run one at a time, in order; without it they overlap', async (t) => {
  const random = mulberry32(0x5eed);
  const delays = Array.from({ length: 40 }, () => Math.floor(random() * 4));
  const runs: Record<string, { order: number[]; inFlight: number; maxInFlight: number }> = {
    ordered: { order: [], inFlight: 0, maxInFlight: 0 },
    overlapped: { order: [], inFlight: 0, maxInFlight: 0 },
  };
  const listener = (run: (typeof runs)[string]): WebSocketListener => ({
    async onText(session, text) {
      if (text === 'boom') throw new Error('handler failed');
      const i = Number(text);
      run.inFlight++;
      run.maxInFlight = Math.max(run.maxInFlight, run.inFlight);
      await sleep(delays[i]!);
      run.order.push(i);
      run.inFlight--;
      await session.sendText(text);
    },
  });
  const errors: Error[] = [];
  const { port } = await startServer(
    t,
    new Router()
      .route('/ordered', new WebSocketUpgradeHandler({ awaitHandlers: true, accept: () => ({ ...listener(runs.ordered!), onError: (_s, e) => void errors.push(e) }) }))
      .route('/overlapped', new WebSocketUpgradeHandler({ accept: () => listener(runs.overlapped!) })),
  );
  const ordered = await open(t, port, '/ordered');
  const overlapped = await open(t, port, '/overlapped');
  // All in one burst, so the server reads many messages in one go.
  for (let i = 0; i < delays.length; i++) {
    ordered.ws.send(String(i));
    overlapped.ws.send(String(i));
  }
  await until(() => ordered.messages.length === delays.length && overlapped.messages.length === delays.length, 10_000, 'all echoes');
  const expected = delays.map((_, i) => i);
  t.same(runs.ordered!.order, expected, 'awaitHandlers: handled in order');
  t.equal(runs.ordered!.maxInFlight, 1, 'awaitHandlers: one handler at a time');
  t.same(ordered.messages, expected.map(String), 'echoes in order');
  t.ok(runs.overlapped!.maxInFlight > 1, `without awaitHandlers they overlap (max ${runs.overlapped!.maxInFlight} at once)`);
  t.same([...runs.overlapped!.order].sort((a, b) => a - b), expected, 'and every message is still handled once');

  // A rejecting async handler ends the session with 1011 (RFC 6455 §7.4.1).
  ordered.ws.send('boom');
  t.equal((await within(ordered.closed, 3000, 'the 1011 close')).code, 1011, 'ws sees 1011');
  t.match(errors[0], { code: 'WS_CALLBACK_FAILED' });
  overlapped.ws.close();
  await within(overlapped.closed, 3000, 'close');
});

t.test('handler.sessions lists the open sessions (ws users iterate wss.clients), and broadcast reaches them', async (t) => {
  const seenAtOpen: boolean[] = [];
  const seenAtClose: boolean[] = [];
  const handler: WebSocketUpgradeHandler = new WebSocketUpgradeHandler({
    accept: () => ({
      onOpen: (session) => void seenAtOpen.push(handler.sessions.has(session)),
      onClose: (session) => void seenAtClose.push(handler.sessions.has(session)),
    }),
  });
  const server = new Server({ port: 0, host: HOST }, new Router().route('/room', handler));
  const { port } = await server.start();
  t.teardown(() => server.stop(500));
  const clients = [0, 1, 2].map(() => new WebSocket(`ws://${HOST}:${port}/room`));
  t.teardown(() => clients.forEach((c) => c.terminate()));
  const received = clients.map(() => [] as string[]);
  clients.forEach((c, i) => c.on('message', (m: Buffer) => void received[i]!.push(m.toString())));
  await within(Promise.all(clients.map((c) => new Promise((resolve) => c.once('open', resolve)))), 3000, 'three open');
  await until(() => handler.sessions.size === 3, 3000, 'three sessions listed');
  t.same(seenAtOpen, [true, true, true], 'listed before onOpen runs');
  broadcast(handler.sessions, 'to all');
  await until(() => received.every((r) => r.length === 1), 3000, 'the broadcast reached every client');
  t.same(received, [['to all'], ['to all'], ['to all']]);
  clients[0]!.close(1000);
  await until(() => handler.sessions.size === 2, 3000, 'a closed session leaves the list');
  clients[1]!.terminate(); // no close frame: still leaves
  await until(() => handler.sessions.size === 1, 3000, 'a dropped session leaves the list');
  await server.stop(500);
  t.equal(handler.sessions.size, 0, 'none after stop');
  t.same(seenAtClose, [false, false, false], 'no longer listed when onClose runs');
});

t.test('text without strings: onTextBytes gets the validated bytes, send/sendText/broadcast send bytes as text', async (t) => {
  const received: Buffer[] = [];
  let onTextCalls = 0;
  const handler: WebSocketUpgradeHandler = new WebSocketUpgradeHandler({
    perMessageDeflate: { threshold: 16 },
    accept: () => ({
      onText: () => void onTextCalls++,
      onTextBytes: (session, bytes) => {
        received.push(bytes);
        const text = bytes.toString('utf8');
        if (text === 'relay') session.send(bytes, undefined, { text: true });
        else if (text === 'promise') void session.sendText(new Uint8Array(bytes));
        else if (text === 'broadcast') broadcast(handler.sessions, bytes, { text: true });
        else if (text === 'bad') {
          const invalid = Buffer.from([0x68, 0xc3, 0x28]);
          t.throws(() => session.send(invalid, undefined, { text: true }), { name: 'FrameEncodeError', code: 'WS_INVALID_UTF8' });
          t.throws(() => broadcast(handler.sessions, invalid, { text: true }), { code: 'WS_INVALID_UTF8' });
          // Only the message of the current call skips the second check (receivedText): the bytes of an earlier
          // message, changed since, are checked like any others.
          const earlier = received[0]!;
          earlier[0] = 0xff;
          t.throws(() => session.send(earlier, undefined, { text: true }), { code: 'WS_INVALID_UTF8' }, 'an earlier message is checked again');
          void session.sendText(invalid).then(
            () => t.fail('sent'),
            (e: { code?: string }) => void session.send(`rejected ${e.code}`),
          );
        } else session.send(bytes, undefined, { text: true }); // echo, compressed when over the threshold
      },
    }),
  });
  const server = new Server({ port: 0, host: HOST }, new Router().route('/bytes', handler));
  const { port } = await server.start();
  t.teardown(() => server.stop(500));
  const client = new WebSocket(`ws://${HOST}:${port}/bytes`, { perMessageDeflate: true });
  t.teardown(() => client.terminate());
  const got: { text: string; binary: boolean }[] = [];
  client.on('message', (data: Buffer, isBinary: boolean) => void got.push({ text: data.toString(), binary: isBinary }));
  await within(new Promise((resolve) => client.once('open', resolve)), 3000, 'open');
  const long = 'żółć — ünïcödé '.repeat(100);
  for (const m of ['relay', 'promise', 'broadcast', 'bad', long]) client.send(m);
  client.send('frag', { fin: false });
  client.send('mented ✓', { fin: true });
  await until(() => got.length === 6, 3000, 'six answers');
  t.same(got, [
    { text: 'relay', binary: false },
    { text: 'promise', binary: false },
    { text: 'broadcast', binary: false },
    { text: 'rejected WS_INVALID_UTF8', binary: false },
    { text: long, binary: false },
    { text: 'fragmented ✓', binary: false },
  ]);
  t.equal(onTextCalls, 0, 'onText is not called when onTextBytes is there');
  t.ok(received.every((b) => Buffer.isBuffer(b)));
  t.equal(received[5]!.toString(), 'fragmented ✓', 'a fragmented message arrives whole');
  t.ok(received[4]!.equals(Buffer.from(long)), 'the exact bytes');
});
