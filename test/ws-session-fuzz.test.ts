/**
 * Seeded fuzz of a server WebSocket session on a MemoryEndPoint: random valid frame streams (checked against a
 * model of what the application must see) and mutated ones (checked against invariants), fed in random chunks.
 * Nothing may escape to the endpoint's guard or the process; every session ends with a close code from the
 * expected set, or stays open having answered every ping with its pong. Reproducible: one seed per case.
 */
import t from 'tap';
import type { Test } from 'tap';
import { MemoryEndPoint } from '../lib/io/MemoryEndPoint.js';
import { ManualClock } from '../lib/io/Clock.js';
import { IdleTimeoutScheduler } from '../lib/io/IdleTimeoutScheduler.js';
import { ConnectionCallbackError } from '../lib/io/errors.js';
import { WebSocketConnection, resolveSettings } from '../lib/websocket/WebSocketConnection.js';
import type { WebSocketListener, WebSocketSessionOptions } from '../lib/websocket/WebSocketListener.js';
import type { WebSocketSession } from '../lib/websocket/WebSocketSession.js';
import { FrameGenerator } from '../lib/websocket/FrameGenerator.js';
import { FrameParser } from '../lib/websocket/FrameParser.js';
import { isValidWireCloseCode } from '../lib/websocket/CloseStatus.js';
import { ProtocolError, WebSocketSessionError } from '../lib/websocket/errors.js';
import { mulberry32 } from './support/mulberry32.js';

const SEED = 0x5eed_2026;
const VALID_CASES = 1200;
const MUTATED_CASES = 1600;
const ACTION_CASES = 400;

const LIMITS: WebSocketSessionOptions = { maxFrameBytes: 2048, maxMessageBytes: 4096, maxFragments: 12 };
/** A text message that makes the application's onText throw (1011). */
const THROW = '!throw!';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

type Rng = () => number;
const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!;

const ALPHABET = ['a', 'b', 'z', ' ', '0', 'é', 'ß', '€', '中', '😀', '\u0000', '\uffff', '\n'];
function randomText(rng: Rng, max: number): string {
  let s = '';
  const n = int(rng, max);
  for (let i = 0; i < n; i++) s += pick(rng, ALPHABET);
  return s;
}
function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(rng, 256);
  return b;
}

const CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];

interface Stream {
  frames: Buffer[];
  /** What the application must see for a valid stream (the model), ending with `close:<code>` if a close is sent. */
  expected: string[];
  /** Pong payloads the server must send (pings before the peer's close). */
  pongs: string[];
}

/** A valid stream of 1-12 messages and control frames (fragmented, interleaved), maybe ending with a close. */
function validStream(rng: Rng): Stream {
  const gen = new FrameGenerator({ role: 'client', maskKey: () => randomBytes(rng, 4) });
  const frames: Buffer[] = [];
  const expected: string[] = [];
  const pongs: string[] = [];
  const control = (): void => {
    const payload = randomText(rng, 20);
    if (rng() < 0.5) {
      frames.push(...gen.encodePing(Buffer.from(payload)));
      expected.push(`ping:${payload}`);
      pongs.push(payload);
    } else {
      frames.push(...gen.encodePong(Buffer.from(payload)));
      expected.push(`pong:${payload}`);
    }
  };
  const n = 1 + int(rng, 12);
  for (let m = 0; m < n; m++) {
    const kind = rng();
    if (kind < 0.2) {
      control();
      continue;
    }
    const isText = kind < 0.65;
    const data = isText ? Buffer.from(rng() < 0.02 ? THROW : randomText(rng, rng() < 0.1 ? 300 : 30)) : randomBytes(rng, int(rng, rng() < 0.1 ? 1500 : 40));
    expected.push(isText ? `text:${data.toString()}` : `binary:${data.toString('hex')}`);
    if (rng() < 0.6 || data.length < 2) {
      frames.push(...gen.encode(isText ? 0x1 : 0x2, data));
      if (isText && data.toString() === THROW) break; // the session fails there (1011)
      continue;
    }
    // Fragmented at random byte offsets (code points may be split: UTF-8 is checked across fragments), with
    // control frames in between (§5.4).
    const cuts = new Set<number>();
    const pieces = 1 + int(rng, Math.min(LIMITS.maxFragments! - 1, data.length - 1)); // distinct cuts in 1..length-1
    while (cuts.size < pieces) cuts.add(1 + int(rng, data.length - 1));
    const bounds = [0, ...[...cuts].sort((a, b) => a - b), data.length];
    const saved = expected.pop()!;
    for (let i = 0; i + 1 < bounds.length; i++) {
      const last = i + 2 === bounds.length;
      frames.push(...gen.encode(i === 0 ? (isText ? 0x1 : 0x2) : 0x0, data.subarray(bounds[i], bounds[i + 1]), last));
      if (!last && rng() < 0.15) control();
    }
    expected.push(saved);
  }
  if (expected.at(-1) !== `text:${THROW}` && rng() < 0.6) {
    if (rng() < 0.2) {
      frames.push(...gen.encodeClose());
      expected.push('close:1005');
    } else {
      const code = pick(rng, CLOSE_CODES);
      frames.push(...gen.encodeClose(code, randomText(rng, 20)));
      expected.push(`close:${code}`);
    }
    if (rng() < 0.3) frames.push(...gen.encodeText('after the close: ignored'));
  }
  return { frames, expected, pongs };
}

/** Mutates a stream: bit flips, byte overwrites, deletions, duplications, insertions, unmasked frames. */
function mutate(rng: Rng, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const count = 1 + int(rng, 4);
  for (let k = 0; k < count && b.length > 0; k++) {
    const at = int(rng, b.length);
    const op = int(rng, 6);
    if (op === 0) b[at] ^= 1 << int(rng, 8);
    else if (op === 1) b[at] = int(rng, 256);
    else if (op === 2) b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(rng, 8)))]);
    else if (op === 3) b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + int(rng, 16)), b.subarray(at)]);
    else if (op === 4) b = Buffer.concat([b.subarray(0, at), randomBytes(rng, 1 + int(rng, 12)), b.subarray(at)]);
    else b = Buffer.concat([b, Buffer.from([int(rng, 256), int(rng, 126)]), randomBytes(rng, int(rng, 8))]); // maybe unmasked
  }
  return b;
}

/** Records what the application sees; its onText throws on THROW; with `asyncHandlers` it returns Promises. */
class Recorder implements WebSocketListener {
  readonly events: string[] = [];
  readonly errors: Error[] = [];
  readonly closes: [number, string][] = [];
  /** Pings received while the session was OPEN (those must be answered). */
  readonly pingsWhileOpen: string[] = [];
  pendingHandlers = 0;
  constructor(private readonly asyncHandlers: boolean) {}
  onText(_s: WebSocketSession, text: string): void | Promise<void> {
    this.events.push(`text:${text}`);
    if (text === THROW) throw new Error('the application failed');
    return this.later();
  }
  onBinary(_s: WebSocketSession, data: Buffer): void | Promise<void> {
    this.events.push(`binary:${data.toString('hex')}`);
    return this.later();
  }
  onPing(s: WebSocketSession, payload: Buffer): void {
    this.events.push(`ping:${payload.toString()}`);
    if (s.isOpen) this.pingsWhileOpen.push(payload.toString());
  }
  onPong(_s: WebSocketSession, payload: Buffer): void {
    this.events.push(`pong:${payload.toString()}`);
  }
  onClose(_s: WebSocketSession, code: number, reason: string): void {
    this.events.push(`close:${code}`);
    this.closes.push([code, reason]);
  }
  onError(_s: WebSocketSession, error: Error): void {
    this.errors.push(error);
  }
  private later(): Promise<void> | undefined {
    if (!this.asyncHandlers) return undefined;
    this.pendingHandlers++;
    return new Promise((resolve) =>
      setImmediate(() => {
        this.pendingHandlers--;
        resolve();
      }),
    );
  }
}

interface Outcome {
  rec: Recorder;
  ep: MemoryEndPoint;
  session: WebSocketSession;
  /** The server's frames as the client parses them; 'AFTER-CLOSE' for bytes after a close frame; 'INVALID:...' */
  wire: string[];
}

/** Parses the server's output as a client would (the server's frames must always be valid). */
function parseWire(out: Buffer): string[] {
  const wire: string[] = [];
  const parser = new FrameParser(
    {
      onMessage: (op, data) => void wire.push(op === 1 ? `text:${data.toString()}` : `binary:${data.toString('hex')}`),
      onPing: (p) => void wire.push(`ping:${p.toString()}`),
      onPong: (p) => void wire.push(`pong:${p.toString()}`),
      onClose: (code) => void wire.push(`close:${code}`),
    },
    { role: 'client' },
  );
  try {
    if (parser.parse(out) !== out.length) wire.push('AFTER-CLOSE');
    if (parser.state === 'PAYLOAD') wire.push('INVALID: a truncated frame');
  } catch (e) {
    wire.push(`INVALID:${(e as Error).message}`);
  }
  return wire;
}

interface RunOptions {
  chunks: 'whole' | 'random';
  awaitHandlers: boolean;
  asyncHandlers: boolean;
  end: 'none' | 'fin';
  /** Random server-side sends, pings and a close between the chunks. */
  actions: boolean;
}

async function run(rng: Rng, input: Buffer, options: RunOptions): Promise<Outcome> {
  const clock = new ManualClock();
  const ep = new MemoryEndPoint({ scheduler: new IdleTimeoutScheduler({ clock }), idleTimeoutMs: 30_000 });
  const rec = new Recorder(options.asyncHandlers);
  const connection = new WebSocketConnection(ep, rec, {
    role: 'server',
    settings: resolveSettings({ ...LIMITS, awaitHandlers: options.awaitHandlers }),
  });
  ep.open(connection);
  const session = connection.session;
  let sent = 0;
  let pos = 0;
  while (pos < input.length) {
    const n = options.chunks === 'whole' ? input.length : 1 + int(rng, rng() < 0.3 ? 4 : 200);
    // A private copy: the parser unmasks in place, and the same input is fed to another run.
    ep.feed(Buffer.from(input.subarray(pos, pos + n)));
    pos += n;
    if (options.actions) {
      const a = rng();
      if (a < 0.2 && session.isOpen) void session.sendText(`server ${sent++}`);
      else if (a < 0.25 && session.isOpen) session.ping('srv');
      else if (a < 0.27) session.close(1000, 'server done');
    }
    if (options.asyncHandlers && rng() < 0.3) await tick();
  }
  if (options.end === 'fin') ep.feedEnd();
  for (let i = 0; i < 4 || (rec.pendingHandlers > 0 && i < 200); i++) await tick();
  return { rec, ep, session, wire: parseWire(ep.takeOutput()) };
}

/** The invariants every run must hold, valid input or not. */
function checkInvariants(t: Test, o: Outcome, label: string, options: RunOptions): boolean {
  const problems: string[] = [];
  if (o.ep.closeCause instanceof ConnectionCallbackError) problems.push(`the endpoint guard was hit: ${o.ep.closeCause.message}`);
  if (o.rec.closes.length > 1) problems.push(`onClose ${o.rec.closes.length} times`);
  for (const w of o.wire) if (w.startsWith('INVALID') || w === 'AFTER-CLOSE') problems.push(`wire: ${w}`);
  const wireCloses = o.wire.filter((w) => w.startsWith('close:'));
  if (wireCloses.length > 1) problems.push(`${wireCloses.length} close frames sent`);
  const pongs = o.wire.filter((w) => w.startsWith('pong:')).map((w) => w.slice(5));
  if (JSON.stringify(pongs) !== JSON.stringify(o.rec.pingsWhileOpen)) {
    problems.push(`pongs ${JSON.stringify(pongs)} for pings ${JSON.stringify(o.rec.pingsWhileOpen)}`);
  }
  const protocolErrors = o.rec.errors.filter((e): e is ProtocolError => e instanceof ProtocolError);
  const callbackErrors = o.rec.errors.filter((e) => e instanceof WebSocketSessionError && e.code === 'WS_CALLBACK_FAILED');
  if (protocolErrors.length + callbackErrors.length !== o.rec.errors.length) {
    problems.push(`unexpected errors: ${o.rec.errors.map((e) => `${e.name} ${e.message}`).join('; ')}`);
  }
  if (o.rec.errors.length > 1) problems.push(`${o.rec.errors.length} errors reported`);
  const close = o.rec.closes[0];
  if (close === undefined) {
    // Still open: nothing failed, the transport is up, no close frame from us unless the server closed.
    if (o.ep.isTransportClosed) problems.push('transport closed without onClose');
    if (o.rec.errors.length !== 0) problems.push('an error without a close');
    if (o.session.isOpen && wireCloses.length !== 0) problems.push('a close frame from an open session');
    if (!options.actions && options.end === 'fin') problems.push('a FIN left the session open');
  } else {
    const [code] = close;
    if (!(code === 1005 || code === 1006 || isValidWireCloseCode(code))) problems.push(`close code ${code} not in the expected set`);
    if (!o.ep.isTransportClosed) problems.push('onClose with the transport open');
    const error = o.rec.errors[0];
    if (error instanceof ProtocolError) {
      if (code !== error.closeCode) problems.push(`closed ${code} after ${error.code} (${error.closeCode})`);
      if (![1002, 1007, 1009].includes(error.closeCode)) problems.push(`protocol error with close code ${error.closeCode}`);
      if (!options.actions && wireCloses[0] !== `close:${error.closeCode}`) problems.push(`wire close ${wireCloses[0]} for ${error.code}`);
    } else if (error !== undefined) {
      if (code !== 1011 && !(options.actions && wireCloses.length === 1)) problems.push(`closed ${code} after a callback failure`);
    } else if (code !== 1006 && !o.rec.events.includes(`close:${code}`)) {
      problems.push(`close ${code} without a reason`);
    }
  }
  if (problems.length !== 0) {
    t.fail(`${label}: ${problems.join(' / ')}`);
    return false;
  }
  return true;
}

t.test('valid streams in random chunks: the model\'s events, the same as fed whole', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => void unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  let failures = 0;
  for (let i = 0; i < VALID_CASES && failures < 5; i++) {
    const rng = mulberry32(SEED + i);
    const stream = validStream(rng);
    const input = Buffer.concat(stream.frames);
    const asyncHandlers = rng() < 0.3;
    const options: RunOptions = { chunks: 'random', awaitHandlers: asyncHandlers && rng() < 0.5, asyncHandlers, end: rng() < 0.3 ? 'fin' : 'none', actions: false };
    const label = `valid case ${i} (seed ${SEED + i})`;
    const o = await run(rng, input, options);
    if (!checkInvariants(t, o, label, options)) {
      failures++;
      continue;
    }
    // The model: every message and control frame up to the first close, or up to the failing callback.
    let expected = stream.expected;
    const thrown = expected.indexOf(`text:${THROW}`);
    if (thrown >= 0) expected = [...expected.slice(0, thrown + 1), 'close:1011'];
    else if (!expected.at(-1)?.startsWith('close:') && options.end === 'fin') expected = [...expected, 'close:1006'];
    const ok =
      JSON.stringify(o.rec.events) === JSON.stringify(expected) &&
      JSON.stringify(o.rec.pingsWhileOpen) === JSON.stringify(thrown >= 0 ? o.rec.pingsWhileOpen : stream.pongs);
    if (!ok) {
      failures++;
      t.fail(`${label}: events ${JSON.stringify(o.rec.events).slice(0, 400)} expected ${JSON.stringify(expected).slice(0, 400)}`);
      continue;
    }
    // The peer's close is echoed with its code (§5.5.1) and ends the connection; otherwise the session is open.
    const last = expected.at(-1)!;
    if (last.startsWith('close:') && last !== 'close:1006') {
      const code = Number(last.slice(6));
      if (o.wire.at(-1) !== (code === 1005 ? 'close:1005' : `close:${code}`)) {
        failures++;
        t.fail(`${label}: the echo is ${o.wire.at(-1)}, not ${last}`);
      }
    } else if (last !== 'close:1006' && !o.session.isOpen) {
      failures++;
      t.fail(`${label}: the session closed`);
    }
    // Chunking does not matter (synchronous handlers: the same events in the same order).
    if (!asyncHandlers && i % 4 === 0) {
      const whole = await run(mulberry32(SEED + i + 1e6), input, { ...options, chunks: 'whole' });
      if (JSON.stringify(whole.rec.events) !== JSON.stringify(o.rec.events) || JSON.stringify(whole.wire) !== JSON.stringify(o.wire)) {
        failures++;
        t.fail(`${label}: whole and chunked differ`);
      }
    }
  }
  t.equal(failures, 0, `${VALID_CASES} valid streams`);
  t.same(unhandled, []);
});

t.test('mutated streams in random chunks: nothing escapes, every session ends with an expected code or stays valid', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => void unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  let failures = 0;
  const codes = new Map<number, number>();
  for (let i = 0; i < MUTATED_CASES && failures < 5; i++) {
    const rng = mulberry32(SEED ^ (0x9e3779b9 + i));
    const input = rng() < 0.1 ? randomBytes(rng, int(rng, 300)) : mutate(rng, Buffer.concat(validStream(rng).frames));
    const asyncHandlers = rng() < 0.3;
    const options: RunOptions = { chunks: 'random', awaitHandlers: asyncHandlers && rng() < 0.5, asyncHandlers, end: rng() < 0.5 ? 'fin' : 'none', actions: false };
    const o = await run(rng, input, options);
    if (!checkInvariants(t, o, `mutated case ${i} (seed ${SEED ^ (0x9e3779b9 + i)})`, options)) failures++;
    const code = o.rec.closes[0]?.[0] ?? 0;
    codes.set(code, (codes.get(code) ?? 0) + 1);
    // Chunking does not matter for synchronous handlers.
    if (!asyncHandlers && i % 4 === 0) {
      const whole = await run(mulberry32(i), input, { ...options, chunks: 'whole' });
      if (JSON.stringify(whole.rec.events) !== JSON.stringify(o.rec.events) || JSON.stringify(whole.wire) !== JSON.stringify(o.wire)) {
        failures++;
        t.fail(`mutated case ${i}: whole ${JSON.stringify(whole.rec.events).slice(0, 300)} vs chunked ${JSON.stringify(o.rec.events).slice(0, 300)}`);
      }
    }
  }
  t.equal(failures, 0, `${MUTATED_CASES} mutated streams`);
  // The mutations reach the interesting rules, not just one of them.
  for (const code of [0, 1002, 1006, 1007, 1009]) t.ok((codes.get(code) ?? 0) > 0, `some sessions ended with ${code || 'nothing (open)'}`);
  t.same(unhandled, []);
});

t.test('random streams with server sends, pings and closes in between', async (t) => {
  let failures = 0;
  for (let i = 0; i < ACTION_CASES && failures < 5; i++) {
    const rng = mulberry32(SEED + 0x1000_0000 + i);
    const frames = Buffer.concat(validStream(rng).frames);
    const input = rng() < 0.5 ? frames : mutate(rng, frames);
    const asyncHandlers = rng() < 0.3;
    const options: RunOptions = { chunks: 'random', awaitHandlers: asyncHandlers && rng() < 0.5, asyncHandlers, end: rng() < 0.5 ? 'fin' : 'none', actions: true };
    const o = await run(rng, input, options);
    if (!checkInvariants(t, o, `action case ${i} (seed ${SEED + 0x1000_0000 + i})`, options)) failures++;
    // Our sends appear in order, and never after our close frame (checked by the invariants: AFTER-CLOSE).
    const sends = o.wire.filter((w) => w.startsWith('text:server ')).map((w) => Number(w.slice(12)));
    if (sends.some((n, k) => n !== k)) {
      failures++;
      t.fail(`action case ${i}: sends out of order ${sends.join(',')}`);
    }
  }
  t.equal(failures, 0, `${ACTION_CASES} streams with server actions`);
});
