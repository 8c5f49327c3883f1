/**
 * The server side of the WebSocket opening handshake (RFC 6455 §4.2), end to end in memory: an HttpConnection
 * with a Router and a WebSocketUpgradeHandler on a MemoryEndPoint, fed raw HTTP requests.
 */
import t from 'tap';
import type { Test } from 'tap';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import { HttpConnection } from '../lib/http/HttpConnection.js';
import type { HttpConnectionOptions } from '../lib/http/HttpConnection.js';
import type { Handler } from '../lib/http/Handler.js';
import { Router } from '../lib/http/Router.js';
import { WebSocketUpgradeHandler, hasToken, parseProtocols } from '../lib/websocket/WebSocketUpgradeHandler.js';
import type { AcceptResult, WebSocketUpgradeHandlerOptions } from '../lib/websocket/WebSocketUpgradeHandler.js';
import type { WebSocketListener } from '../lib/websocket/WebSocketListener.js';
import type { WebSocketSession } from '../lib/websocket/WebSocketSession.js';
import { WebSocketConnection } from '../lib/websocket/WebSocketConnection.js';
import { FrameGenerator } from '../lib/websocket/FrameGenerator.js';
import { FrameParser } from '../lib/websocket/FrameParser.js';
import { acceptKey } from '../lib/websocket/acceptKey.js';

/** RFC 6455 §1.3's sample: this key gives this accept value. */
const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const SAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** A few turns of the event loop: the Router is async, the upgrade finishes on the next tick. */
async function settle(): Promise<void> {
  for (let i = 0; i < 6; i++) await tick();
}

const client = new FrameGenerator({ role: 'client' });

interface Parsed {
  status: number;
  headers: Map<string, string[]>;
  body: string;
  /** What followed the head when the status is 101 (WebSocket frames), as raw bytes. */
  rest: Buffer;
}

/** Parses the first response of `raw` (test-side: status line, fields, Content-Length body). */
function parseResponse(raw: Buffer): Parsed {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response head in ${JSON.stringify(text.slice(0, 200))}`);
  const lines = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(lines[0]!)?.[1]);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  const length = Number(headers.get('content-length')?.[0] ?? 0);
  const bodyStart = end + 4;
  return {
    status,
    headers,
    body: status === 101 ? '' : text.slice(bodyStart, bodyStart + length),
    rest: status === 101 ? raw.subarray(bodyStart) : Buffer.alloc(0),
  };
}

interface Setup {
  ep: MemoryEndPoint;
  reports: { kind: string; message: string }[];
}

function setup(handler: Handler, options: HttpConnectionOptions = {}): Setup {
  const ep = new MemoryEndPoint();
  const reports: { kind: string; message: string }[] = [];
  const connection = new HttpConnection(ep, () => handler, { reportError: (e, c) => void reports.push({ kind: c.kind, message: e.message }) }, options);
  ep.open(connection);
  return { ep, reports };
}

/** A valid upgrade request with some fields replaced (a value of null removes the field). */
function upgradeRequest(overrides: Record<string, string | string[] | null> = {}, requestLine = 'GET /ws HTTP/1.1'): string {
  const fields: Record<string, string | string[] | null> = {
    Host: 'example.com',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': SAMPLE_KEY,
    'Sec-WebSocket-Version': '13',
    ...overrides,
  };
  let head = `${requestLine}\r\n`;
  for (const [name, value] of Object.entries(fields)) {
    if (value === null) continue;
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
  }
  return head + '\r\n';
}

/** Records what the session sees. */
class Recorder implements WebSocketListener {
  readonly events: string[] = [];
  session: WebSocketSession | undefined;
  onOpen(session: WebSocketSession): void {
    this.session = session;
    this.events.push(`open:${session.protocol}`);
  }
  onText(_s: WebSocketSession, text: string): void {
    this.events.push(`text:${text}`);
  }
  onBinary(_s: WebSocketSession, data: Buffer): void {
    this.events.push(`binary:${data.toString('hex')}`);
  }
  onClose(_s: WebSocketSession, code: number, reason: string): void {
    this.events.push(`close:${code}:${reason}`);
  }
  onError(_s: WebSocketSession, error: Error): void {
    this.events.push(`error:${error.message}`);
  }
}

function wsHandler(options: Partial<WebSocketUpgradeHandlerOptions> = {}, recorder = new Recorder()): WebSocketUpgradeHandler {
  return new WebSocketUpgradeHandler({ accept: () => recorder, ...options });
}

/** Sends `raw` to a server with `handler` at /ws and returns the first response. */
async function exchange(raw: string | Buffer, handler: Handler, options: HttpConnectionOptions = {}): Promise<Parsed & Setup> {
  const s = setup(new Router().route('/ws', handler), options);
  s.ep.feed(raw);
  await settle();
  return { ...parseResponse(s.ep.takeOutput()), ...s };
}

// ------------------------------------------------------------------------------------------------ accepted

t.test('a valid request gets 101 with the accept value of RFC 6455 §1.3', async (t) => {
  t.equal(acceptKey(SAMPLE_KEY), SAMPLE_ACCEPT);
  const recorder = new Recorder();
  const r = await exchange(upgradeRequest(), wsHandler({}, recorder));
  t.equal(r.status, 101);
  t.same(r.headers.get('sec-websocket-accept'), [SAMPLE_ACCEPT]);
  t.same(r.headers.get('upgrade'), ['websocket']);
  t.same(r.headers.get('connection'), ['Upgrade']);
  t.notOk(r.headers.has('sec-websocket-protocol'), 'no subprotocol when none was offered (§4.2.2)');
  t.notOk(r.headers.has('content-length'), 'a 101 has no body');
  t.same(recorder.events, ['open:']);
  t.ok(r.ep.connection instanceof WebSocketConnection, 'the endpoint now speaks WebSocket');
  t.equal(recorder.session?.path, '/ws');
  t.equal(r.reports.length, 0);
});

t.test('Connection and Upgrade are token lists, compared case-insensitively (§4.2.1 items 3, 4)', async (t) => {
  const variants: Record<string, string>[] = [
    { Connection: 'keep-alive, Upgrade' },
    { Connection: 'Upgrade, keep-alive' },
    { Connection: 'upgrade' },
    { Connection: 'UPGRADE' },
    { Connection: 'keep-alive,upgrade' },
    { Connection: '  keep-alive ,\tUpGrAdE  ' },
    { Upgrade: 'WebSocket' },
    { Upgrade: 'WEBSOCKET' },
  ];
  for (const v of variants) {
    const r = await exchange(upgradeRequest(v), wsHandler());
    t.equal(r.status, 101, JSON.stringify(v));
    t.same(r.headers.get('sec-websocket-accept'), [SAMPLE_ACCEPT]);
  }
  t.equal(hasToken('keep-alive, Upgrade', 'upgrade'), true);
  t.equal(hasToken('keep-alive, Upgrades', 'upgrade'), false, 'a token, not a substring');
  t.equal(hasToken('no-upgrade', 'upgrade'), false);
  t.equal(hasToken(',,,', 'upgrade'), false);
  t.equal(hasToken('', 'upgrade'), false);
});

t.test('the key may carry whitespace around it (RFC 9110 §5.5)', async (t) => {
  const r = await exchange(`GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key:   ${SAMPLE_KEY}  \r\nSec-WebSocket-Version: 13\r\n\r\n`, wsHandler());
  t.equal(r.status, 101);
  t.same(r.headers.get('sec-websocket-accept'), [SAMPLE_ACCEPT]);
});

// ------------------------------------------------------------------------------------------------ refused

/** Runs a refused request and checks the status, a reason in the body, and that no session opened. */
async function refused(t: Test, raw: string, status: number, bodyPattern: RegExp, handlerOptions: Partial<WebSocketUpgradeHandlerOptions> = {}): Promise<Parsed & Setup> {
  const recorder = new Recorder();
  const r = await exchange(raw, wsHandler(handlerOptions, recorder));
  t.equal(r.status, status, `${JSON.stringify(raw.split('\r\n')[0])} ... -> ${status}`);
  t.match(r.body, bodyPattern, 'the body says why');
  t.same(recorder.events, [], 'no session');
  t.notOk(r.ep.connection instanceof WebSocketConnection, 'still HTTP');
  return r;
}

t.test('§4.2.1 item 1: a method other than GET is 400', async (t) => {
  await refused(t, upgradeRequest({}, 'POST /ws HTTP/1.1'), 400, /needs GET, not POST/);
  await refused(t, upgradeRequest({}, 'PUT /ws HTTP/1.1'), 400, /needs GET, not PUT/);
});

t.test('§4.2.1 item 1: HTTP/1.0 is 400', async (t) => {
  const r = await refused(t, upgradeRequest({}, 'GET /ws HTTP/1.0'), 400, /HTTP\/1\.1/);
  t.equal(r.ep.isOutputShutdown, true, 'an HTTP/1.0 exchange ends the connection');
});

t.test('§4.2.1 item 4: no Connection: upgrade is 400', async (t) => {
  await refused(t, upgradeRequest({ Connection: null }), 400, /Connection: Upgrade/);
  await refused(t, upgradeRequest({ Connection: 'keep-alive' }), 400, /Connection: Upgrade/);
  await refused(t, upgradeRequest({ Connection: 'keep-alive, upgrades' }), 400, /Connection: Upgrade/);
});

t.test('§4.2.1 item 5: a missing, malformed or repeated key is 400', async (t) => {
  const reason = /Sec-WebSocket-Key/;
  await refused(t, upgradeRequest({ 'Sec-WebSocket-Key': null }), 400, reason);
  await refused(t, upgradeRequest({ 'Sec-WebSocket-Key': '' }), 400, reason);
  await refused(t, upgradeRequest({ 'Sec-WebSocket-Key': 'not base64!' }), 400, reason);
  await refused(t, upgradeRequest({ 'Sec-WebSocket-Key': Buffer.alloc(15).toString('base64') }), 400, reason); // 15 bytes
  await refused(t, upgradeRequest({ 'Sec-WebSocket-Key': Buffer.alloc(17).toString('base64') }), 400, reason); // 17 bytes
  await refused(t, upgradeRequest({ 'Sec-WebSocket-Key': [SAMPLE_KEY, SAMPLE_KEY] }), 400, reason);
  await refused(t, upgradeRequest({ 'Sec-WebSocket-Key': `${SAMPLE_KEY}, ${SAMPLE_KEY}` }), 400, reason);
});

t.test('§4.2.1 item 6 / §4.2.2: a version other than 13 is 426 with Sec-WebSocket-Version: 13', async (t) => {
  for (const version of [null, '8', '12', '14', '', '13, 8', 'thirteen']) {
    const r = await refused(t, upgradeRequest({ 'Sec-WebSocket-Version': version }), 426, /Sec-WebSocket-Version/);
    t.same(r.headers.get('sec-websocket-version'), ['13'], `version ${String(version)}`);
  }
});

t.test('§10.2: the origin policy refuses other origins with 403', async (t) => {
  const origins = ['https://chat.example'];
  await refused(t, upgradeRequest({ Origin: 'https://evil.example' }), 403, /evil\.example.*not allowed/, { origins });
  await refused(t, upgradeRequest(), 403, /\(none\)/, { origins });
  await refused(t, upgradeRequest({ Origin: 'https://CHAT.example' }), 403, /not allowed/, { origins });
  const ok = await exchange(upgradeRequest({ Origin: 'https://chat.example' }), wsHandler({ origins }));
  t.equal(ok.status, 101);
  // A predicate sees the origin and the request.
  const seen: (string | undefined)[] = [];
  const predicate = (origin: string | undefined): boolean => {
    seen.push(origin);
    return origin?.endsWith('.trusted') === true;
  };
  await refused(t, upgradeRequest({ Origin: 'https://a.untrusted' }), 403, /not allowed/, { origins: predicate });
  t.equal((await exchange(upgradeRequest({ Origin: 'https://b.trusted' }), wsHandler({ origins: predicate }))).status, 101);
  t.same(seen, ['https://a.untrusted', 'https://b.trusted']);
});

t.test('an upgrade request with a body is 400 (the body would be read as frames)', async (t) => {
  await refused(t, upgradeRequest({ 'Content-Length': '5' }) + 'hello', 400, /must not have a body/);
  await refused(t, upgradeRequest({ 'Transfer-Encoding': 'chunked' }) + '5\r\nhello\r\n0\r\n\r\n', 400, /must not have a body/);
  // Content-Length: 0 is no body.
  t.equal((await exchange(upgradeRequest({ 'Content-Length': '0' }), wsHandler())).status, 101);
});

t.test('a plain GET on the WebSocket path goes to the next handler', async (t) => {
  const recorder = new Recorder();
  const page: Handler = { handle: (_req, res) => void res.end('the chat page') };
  const router = new Router().route('/ws', wsHandler({}, recorder)).route('/', page);
  const s = setup(router);
  s.ep.feed('GET /ws HTTP/1.1\r\nHost: x\r\n\r\n');
  await settle();
  const r = parseResponse(s.ep.takeOutput());
  t.equal(r.status, 200);
  t.equal(r.body, 'the chat page');
  // An Upgrade for another protocol is not ours either.
  s.ep.feed('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n');
  await settle();
  const r2 = parseResponse(s.ep.takeOutput());
  t.equal(r2.status, 200);
  t.same(recorder.events, []);
  // Without a next handler the router answers 404.
  const alone = await exchange('GET /ws HTTP/1.1\r\nHost: x\r\n\r\n', wsHandler());
  t.equal(alone.status, 404);
});

// ------------------------------------------------------------------------------------------------ accept

t.test('accept refuses with its status, reason and headers', async (t) => {
  const r = await exchange(
    upgradeRequest(),
    wsHandler({ accept: () => ({ status: 401, reason: 'log in first', headers: { 'WWW-Authenticate': 'Bearer' } }) }),
  );
  t.equal(r.status, 401);
  t.equal(r.body, 'log in first\n');
  t.same(r.headers.get('www-authenticate'), ['Bearer']);
  const d = await exchange(upgradeRequest(), wsHandler({ accept: () => ({ status: 503 }) }));
  t.equal(d.status, 503);
  t.equal(d.body, 'WebSocket upgrade refused\n');
});

t.test('accept that throws, or returns nonsense, is 500', async (t) => {
  const cases: WebSocketUpgradeHandlerOptions['accept'][] = [
    () => {
      throw new Error('accept broke');
    },
    () => Promise.reject(new Error('accept rejected')),
    () => ({ status: 101 }),
    () => ({ status: 302 }),
    () => null as unknown as AcceptResult,
  ];
  for (const accept of cases) {
    const r = await exchange(upgradeRequest(), wsHandler({ accept }));
    t.equal(r.status, 500);
    t.notOk(r.ep.connection instanceof WebSocketConnection);
  }
});

t.test('accept choosing a subprotocol the client did not offer is 500 (§4.2.2 item 5.4)', async (t) => {
  const recorder = new Recorder();
  const r = await exchange(
    upgradeRequest({ 'Sec-WebSocket-Protocol': 'chat, superchat' }),
    wsHandler({ accept: () => ({ listener: recorder, protocol: 'mqtt' }) }),
  );
  t.equal(r.status, 500);
  t.same(recorder.events, []);
  t.equal(r.reports[0]?.kind, 'handler');
  t.match(r.reports[0]?.message, /mqtt/);
});

t.test('subprotocols: the first of the client\'s list that the server speaks, or the one accept chose', async (t) => {
  const offered: (readonly string[])[] = [];
  const recorder = new Recorder();
  const handler = wsHandler({
    subprotocols: ['v2.chat', 'v1.chat'],
    accept: (_req, list) => {
      offered.push(list);
      return recorder;
    },
  });
  const r = await exchange(upgradeRequest({ 'Sec-WebSocket-Protocol': 'mqtt, v1.chat, v2.chat' }), handler);
  t.equal(r.status, 101);
  t.same(r.headers.get('sec-websocket-protocol'), ['v1.chat'], 'client order wins');
  t.same(offered, [['mqtt', 'v1.chat', 'v2.chat']]);
  t.same(recorder.events, ['open:v1.chat']);
  // Several header lines are one list (RFC 9110 §5.3).
  const r2 = await exchange(upgradeRequest({ 'Sec-WebSocket-Protocol': ['mqtt', 'v2.chat'] }), handler);
  t.same(r2.headers.get('sec-websocket-protocol'), ['v2.chat']);
  // Nothing in common: open without a subprotocol (the client decides).
  const r3 = await exchange(upgradeRequest({ 'Sec-WebSocket-Protocol': 'mqtt' }), handler);
  t.equal(r3.status, 101);
  t.notOk(r3.headers.has('sec-websocket-protocol'));
  // accept's own choice among the offered.
  const r4 = await exchange(
    upgradeRequest({ 'Sec-WebSocket-Protocol': 'a, b, c' }),
    wsHandler({ subprotocols: ['a'], accept: () => ({ listener: new Recorder(), protocol: 'c', headers: { 'X-Room': 'lobby' } }) }),
  );
  t.same(r4.headers.get('sec-websocket-protocol'), ['c']);
  t.same(r4.headers.get('x-room'), ['lobby']);
  t.same(r4.headers.get('sec-websocket-accept'), [SAMPLE_ACCEPT], 'accept headers cannot replace the handshake fields');
});

t.test('accept headers cannot override the handshake fields', async (t) => {
  const r = await exchange(
    upgradeRequest(),
    wsHandler({ accept: () => ({ listener: new Recorder(), headers: { 'Sec-WebSocket-Accept': 'forged', Upgrade: 'h2c' } }) }),
  );
  t.equal(r.status, 101);
  t.same(r.headers.get('sec-websocket-accept'), [SAMPLE_ACCEPT]);
  t.same(r.headers.get('upgrade'), ['websocket']);
});

t.test('invalid or repeated subprotocol tokens are 400', async (t) => {
  for (const value of ['chat, chat', 'a b', 'a;b', 'chät', '"quoted"', 'a/b', 'x, y, x']) {
    await refused(t, upgradeRequest({ 'Sec-WebSocket-Protocol': value }), 400, /Sec-WebSocket-Protocol/, { subprotocols: ['chat'] });
  }
  const many = Array.from({ length: 65 }, (_, i) => `p${i}`).join(', ');
  await refused(t, upgradeRequest({ 'Sec-WebSocket-Protocol': many }), 400, /more than 64/);
  // Empty list elements are allowed (RFC 9110 §5.6.1).
  t.same(parseProtocols(' , chat,, ,superchat , '), ['chat', 'superchat']);
  t.same(parseProtocols(undefined), []);
  t.same(parseProtocols(''), []);
});

t.test('a 100 KB Sec-WebSocket-Protocol of commas and spaces is answered; parseProtocols is linear', async (t) => {
  const filler = ', '.repeat(50_000);
  const recorder = new Recorder();
  const r = await exchange(
    upgradeRequest({ 'Sec-WebSocket-Protocol': filler + 'chat' + filler }),
    wsHandler({ subprotocols: ['chat'] }, recorder),
    { limits: { maxHeaderBytes: 256 * 1024 } },
  );
  t.equal(r.status, 101);
  t.same(r.headers.get('sec-websocket-protocol'), ['chat']);
  // 1 MB inputs of the shapes that make naive split/trim/regex code quadratic: a quadratic parser would not
  // finish within the test's timeout, a linear one takes milliseconds.
  t.same(parseProtocols(', '.repeat(500_000)), []);
  t.same(parseProtocols(' '.repeat(1_000_000)), []);
  t.same(parseProtocols(','.repeat(1_000_000)), []);
  t.same(parseProtocols('\t,'.repeat(500_000) + 'x'), ['x']);
  t.throws(() => parseProtocols('a' + ' '.repeat(1_000_000) + 'b'), /not a token/);
  t.equal(hasToken(', '.repeat(500_000), 'upgrade'), false);
  t.equal(hasToken(' '.repeat(1_000_000) + 'x', 'upgrade'), false);
});

t.test('accept may return a Promise', async (t) => {
  const recorder = new Recorder();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const handler = wsHandler({
    subprotocols: ['chat'],
    accept: async () => {
      await gate;
      return recorder;
    },
  });
  const s = setup(new Router().route('/ws', handler));
  s.ep.feed(upgradeRequest({ 'Sec-WebSocket-Protocol': 'chat' }));
  // Frames sent early (before the 101) wait with the upgrade.
  s.ep.feed(Buffer.concat(client.encodeText('early')));
  await settle();
  t.equal(s.ep.takeOutput().length, 0, 'nothing until accept settles');
  release();
  await settle();
  const r = parseResponse(s.ep.takeOutput());
  t.equal(r.status, 101);
  t.same(r.headers.get('sec-websocket-protocol'), ['chat']);
  t.same(recorder.events, ['open:chat', 'text:early']);
  // An async refusal.
  const refusedAsync = await exchange(upgradeRequest(), wsHandler({ accept: async () => ({ status: 403, reason: 'later, no' }) }));
  t.equal(refusedAsync.status, 403);
  t.equal(refusedAsync.body, 'later, no\n');
});

t.test('a client that leaves while accept is pending: no session, nothing escapes', async (t) => {
  const recorder = new Recorder();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const s = setup(new Router().route('/ws', wsHandler({ accept: () => gate.then(() => recorder) })));
  s.ep.feed(upgradeRequest());
  await settle();
  s.ep.reset();
  release();
  await settle();
  t.same(recorder.events, [], 'neither onOpen nor onClose: the session never opened');
  t.equal(s.ep.isOpen, false);
  t.notOk(s.ep.connection instanceof WebSocketConnection);
});

// ------------------------------------------------------------------------------------------------ leftover bytes

t.test('frames in the same read as the upgrade request are delivered (no lost leftover bytes)', async (t) => {
  const recorder = new Recorder();
  const frames = Buffer.concat([
    ...client.encodeText('first'),
    ...client.encode(0x2, Buffer.from([1, 2, 3])),
    ...client.encode(0x1, Buffer.from('frag'), false),
    ...client.encode(0x0, Buffer.from('mented'), true),
    ...client.encodePing(Buffer.from('p')),
  ]);
  const s = setup(new Router().route('/ws', wsHandler({}, recorder)));
  s.ep.feed(Buffer.concat([Buffer.from(upgradeRequest(), 'latin1'), frames]));
  // A frame split between this read and the next.
  const tail = Buffer.concat(client.encodeText('split across reads'));
  s.ep.feed(tail.subarray(0, 5));
  await settle();
  s.ep.feed(tail.subarray(5));
  await settle();
  t.same(recorder.events, ['open:', 'text:first', 'binary:010203', 'text:fragmented', 'text:split across reads']);
  const out = parseResponse(s.ep.takeOutput());
  t.equal(out.status, 101);
  // The ping was answered after the 101.
  const pongs: string[] = [];
  new FrameParser(
    { onMessage: () => {}, onPing: () => {}, onPong: (p) => void pongs.push(p.toString()), onClose: () => {} },
    { role: 'client' },
  ).parse(out.rest);
  t.same(pongs, ['p']);
});

t.test('a byte-at-a-time upgrade request followed by frames in the last read', async (t) => {
  const recorder = new Recorder();
  const s = setup(new Router().route('/ws', wsHandler({}, recorder)));
  const raw = Buffer.concat([Buffer.from(upgradeRequest(), 'latin1'), ...client.encodeText('a'), ...client.encodeText('b')]);
  const headEnd = raw.indexOf('\r\n\r\n') + 4;
  for (let i = 0; i < headEnd - 1; i++) s.ep.feed(raw.subarray(i, i + 1));
  s.ep.feed(raw.subarray(headEnd - 1));
  await settle();
  t.same(recorder.events, ['open:', 'text:a', 'text:b']);
});

t.test('a second request pipelined behind a refused upgrade is still served as HTTP', async (t) => {
  const page: Handler = { handle: (req, res) => void res.end(`page ${req.path}`) };
  const s = setup(new Router().route('/ws', wsHandler({ accept: () => ({ status: 403 }) })).route('/', page));
  s.ep.feed(upgradeRequest() + 'GET /next HTTP/1.1\r\nHost: x\r\n\r\n');
  await settle();
  const out = s.ep.takeOutputString();
  t.match(out, /^HTTP\/1\.1 403 /);
  t.match(out, /HTTP\/1\.1 200 [^]*page \/next$/);
});

t.test('the handler checks its options', async (t) => {
  t.throws(() => new WebSocketUpgradeHandler({} as WebSocketUpgradeHandlerOptions), TypeError);
  t.throws(() => wsHandler({ subprotocols: ['a b'] }), TypeError);
  t.throws(() => wsHandler({ overflow: 'drop' as 'reject' }), TypeError);
  t.throws(() => wsHandler({ pingIntervalMs: -1 }), RangeError);
});

t.test('invalid frame limits are refused when the handler is made, not at the first upgrade', async (t) => {
  const accept = () => ({});
  t.throws(() => new WebSocketUpgradeHandler({ accept, maxFrameBytes: -1 }), RangeError);
  t.throws(() => new WebSocketUpgradeHandler({ accept, maxMessageBytes: 1.5 }), RangeError);
  t.throws(() => new WebSocketUpgradeHandler({ accept, maxFragments: 0 }), RangeError);
  t.doesNotThrow(() => new WebSocketUpgradeHandler({ accept, maxFrameBytes: 1024, maxMessageBytes: Infinity, maxFragments: 8 }));
});
