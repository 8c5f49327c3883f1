/**
 * lib/pubsub in one process: the envelope (round trip, every malformed case), a topic's members (join, leave,
 * closed sessions dropped), one frame encoding for all members, and the remote path through an in-memory broker
 * (origin filtering, duplicates and gaps, invalid envelopes counted and dropped, remote failures counted).
 */
import t from 'tap';
import { OpCode } from '../lib/websocket/OpCode.js';
import { broadcast } from '../lib/websocket/broadcast.js';
import { FrameEncodeError } from '../lib/websocket/errors.js';
import { PubSub } from '../lib/pubsub/PubSub.js';
import type { Broker, BrokerState, BrokerStats, EnvelopeSink } from '../lib/pubsub/Broker.js';
import { ENVELOPE_HEADER_BYTES, MAX_ORIGIN, MAX_TOPIC_BYTES, decodeEnvelope, encodeEnvelope } from '../lib/pubsub/Envelope.js';
import { BrokerError } from '../lib/pubsub/errors.js';
import { ClusterBroker } from '../lib/pubsub/ClusterBroker.js';
import { PendingBytes } from '../lib/pubsub/PendingBytes.js';
import { member, texts } from './support/pubsubMembers.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await tick();
}

function code(e: unknown): string {
  return e instanceof BrokerError || e instanceof FrameEncodeError ? e.code : `not typed: ${String(e)}`;
}

// ------------------------------------------------------------------------------------------------ envelope

t.test('envelope: round trip of text and binary, every byte value, the edges of each field', async (t) => {
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  const topic = Buffer.from('salle ☕', 'utf8');
  const bin = decodeEnvelope(encodeEnvelope(2, MAX_ORIGIN, 0xffffffff, topic, all));
  t.same({ ...bin, payload: bin.payload.toString('hex') }, { opcode: 2, first: false, origin: MAX_ORIGIN, sequence: 0xffffffff, topic: 'salle ☕', payload: all.toString('hex') });
  t.equal(decodeEnvelope(encodeEnvelope(2, 1, 2, topic, all, true)).first, true, 'the FIRST flag');
  const text = decodeEnvelope(encodeEnvelope(1, 0, 0, topic, 'héllo ✓'));
  t.equal(text.opcode, 1);
  t.equal(text.payload.toString('utf8'), 'héllo ✓');
  const empty = decodeEnvelope(encodeEnvelope(2, 7, 1, Buffer.from('x'), Buffer.alloc(0)));
  t.equal(empty.payload.length, 0, 'an empty message');
  const longest = Buffer.alloc(MAX_TOPIC_BYTES, 0x61);
  t.equal(decodeEnvelope(encodeEnvelope(2, 1, 1, longest, all)).topic.length, MAX_TOPIC_BYTES);
  // A Uint8Array that is not a Buffer (what a structured clone gives), at an offset in its ArrayBuffer.
  const encoded = encodeEnvelope(2, 5, 9, topic, all);
  const backing = new Uint8Array(encoded.length + 10);
  backing.set(encoded, 10);
  t.equal(decodeEnvelope(backing.subarray(10)).sequence, 9);
  t.throws(() => encodeEnvelope(2, MAX_ORIGIN + 1, 0, topic, all), RangeError);
  t.throws(() => encodeEnvelope(2, 0, 2 ** 32, topic, all), RangeError);
  t.throws(() => encodeEnvelope(2, 0, 0, Buffer.alloc(0), all), RangeError);
  t.throws(() => encodeEnvelope(2, 0, 0, Buffer.alloc(MAX_TOPIC_BYTES + 1), all), RangeError);
});

t.test('envelope: every malformed input is a BrokerError ENVELOPE_INVALID', async (t) => {
  const good = encodeEnvelope(1, 42, 3, Buffer.from('room'), 'hi');
  const variant = (edit: (b: Buffer) => Buffer | void): Buffer => {
    const b = Buffer.from(good);
    return edit(b) ?? b;
  };
  const cases: Record<string, Uint8Array> = {
    empty: Buffer.alloc(0),
    'shorter than the header': good.subarray(0, ENVELOPE_HEADER_BYTES - 1),
    'version 0': variant((b) => void (b[0] = 0)),
    'version 2': variant((b) => void (b[0] = 2)),
    'opcode 0 (continuation)': variant((b) => void (b[1] = 0)),
    'opcode 8 (close)': variant((b) => void (b[1] = 8)),
    'opcode 3': variant((b) => void (b[1] = 3)),
    'an undefined flag': variant((b) => void (b[2] = 0x02)),
    'every flag': variant((b) => void (b[2] = 0xff)),
    'topic length 0': variant((b) => void b.writeUInt16BE(0, 13)),
    'topic length over the maximum': variant((b) => void b.writeUInt16BE(MAX_TOPIC_BYTES + 1, 13)),
    'topic running past the end': variant((b) => void b.writeUInt16BE(100, 13)),
    'topic not UTF-8': variant((b) => void (b[ENVELOPE_HEADER_BYTES] = 0xff)),
    'text payload not UTF-8': encodeEnvelope(1, 1, 1, Buffer.from('room'), Buffer.from([0x68, 0xc3])),
    'text payload with a surrogate (CESU)': encodeEnvelope(1, 1, 1, Buffer.from('room'), Buffer.from([0xed, 0xa0, 0x80])),
  };
  for (const [what, bytes] of Object.entries(cases)) {
    t.throws(() => decodeEnvelope(bytes), { name: 'BrokerError', code: 'ENVELOPE_INVALID' }, what);
  }
  // The same bad bytes as binary are fine: a binary message is any bytes.
  t.equal(decodeEnvelope(encodeEnvelope(2, 1, 1, Buffer.from('room'), Buffer.from([0x68, 0xc3]))).payload.length, 2);
  t.equal(decodeEnvelope(good).payload.toString(), 'hi', 'the unmodified one decodes');
});

// ------------------------------------------------------------------------------------------------ local topics

t.test('a topic: join, leave, members, size; the same name is the same topic', async (t) => {
  const pubsub = new PubSub();
  t.teardown(() => pubsub.close());
  const room = pubsub.topic('room');
  t.equal(pubsub.topic('room'), room, 'one topic per name');
  t.equal(pubsub.get('nope'), undefined);
  const [a, b] = [member(), member()];
  t.equal(room.join(a.session), true);
  t.equal(room.join(a.session), false, 'already a member');
  t.equal(room.join(b.session), true);
  t.equal(room.size, 2);
  t.ok(room.has(a.session));
  t.same([...room.members], [a.session, b.session]);
  t.equal(pubsub.stats().members, 2);
  t.equal(room.leave(a.session), true);
  t.equal(room.leave(a.session), false, 'no longer a member');
  t.equal(room.size, 1);
  t.same(await room.publish('only b'), { sent: 1, skipped: 0 });
  await settle();
  t.same(texts(a.read()), [], 'a left');
  t.same(texts(b.read()), ['only b']);
  t.throws(() => pubsub.topic(''), RangeError, 'empty name');
  t.throws(() => pubsub.topic('x'.repeat(MAX_TOPIC_BYTES + 1)), RangeError, 'a name too long');
  t.throws(() => pubsub.topic('\ud800'), RangeError, 'a lone surrogate');
});

t.test('sessions that close leave their topics by themselves (all of them); a closed session cannot join', async (t) => {
  const pubsub = new PubSub();
  t.teardown(() => pubsub.close());
  const [room, lobby] = [pubsub.topic('room'), pubsub.topic('lobby')];
  const [a, b, c] = [member(), member(), member()];
  for (const m of [a, b, c]) room.join(m.session);
  lobby.join(a.session);
  lobby.join(c.session);
  t.equal(pubsub.stats().members, 5);
  a.session.terminate();
  b.session.close(1000, 'bye');
  b.endPoint.feedEnd(); // the peer's FIN after our close frame: the connection ends
  await settle();
  t.equal(a.session.webSocketConnection.state, 'CLOSED');
  t.equal(b.session.webSocketConnection.state, 'CLOSED');
  t.same([...room.members], [c.session], 'a and b dropped from room');
  t.same([...lobby.members], [c.session], 'a dropped from lobby');
  t.equal(pubsub.stats().members, 2);
  t.equal(room.join(a.session), false, 'a closed session is not added (it would never leave)');
  t.equal(room.size, 1);
});

t.test('publish: text, binary and { text: true } bytes; one frame encoding shared by every member', async (t) => {
  const pubsub = new PubSub();
  t.teardown(() => pubsub.close());
  const room = pubsub.topic('room');
  const members = [member(), member(), member()];
  for (const m of members) room.join(m.session);
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  t.same(await room.publish('héllo'), { sent: 3, skipped: 0 });
  t.same(await room.publish(all), { sent: 3, skipped: 0 });
  t.same(await room.publish(Buffer.from('as text ✓'), { text: true }), { sent: 3, skipped: 0 });
  await settle();
  for (const m of members) {
    const got = m.read();
    t.same(
      got.map((r) => r.kind),
      ['text', 'binary', 'text'],
    );
    t.equal(got[0]!.data.toString(), 'héllo');
    t.same([...got[1]!.data], [...all], 'all 256 byte values');
    t.equal(got[2]!.data.toString(), 'as text ✓');
  }
  // One encoding: the same Buffer objects reach every transport.
  for (let i = 0; i < members[0]!.transmitted.length; i++) {
    t.equal(members[1]!.transmitted[i], members[0]!.transmitted[i]);
    t.equal(members[2]!.transmitted[i], members[0]!.transmitted[i]);
  }
  t.ok(members[0]!.transmitted.length >= 3);
  // Bytes claimed as text that are not UTF-8: rejected, nothing sent.
  const bad = await room.publish(Buffer.from([0xc3]), { text: true }).then(() => 'resolved', code);
  t.equal(bad, 'WS_INVALID_UTF8');
  await settle();
  for (const m of members) t.same(m.read(), []);
  const s = pubsub.stats();
  t.match(s, { topics: 1, members: 3, published: 3, delivered: 9, skipped: 0, received: 0, remoteFailures: 0, broker: undefined });
});

t.test('a publish skips members that are closing; a closed topic and a closed PubSub refuse with BROKER_CLOSED', async (t) => {
  const pubsub = new PubSub();
  const room = pubsub.topic('room');
  const [a, b] = [member(), member()];
  room.join(a.session);
  room.join(b.session);
  a.session.close(1000, ''); // CLOSE_SENT: still a member until the connection ends, but not sent to
  t.same(await room.publish('x'), { sent: 1, skipped: 1 });
  room.close();
  t.ok(room.isClosed);
  t.equal(room.size, 0);
  t.equal(pubsub.get('room'), undefined);
  t.equal(await room.publish('x').then(() => 'resolved', code), 'BROKER_CLOSED');
  t.throws(() => room.join(b.session), { code: 'BROKER_CLOSED' });
  const again = pubsub.topic('room');
  t.not(again, room, 'a new topic of that name');
  await pubsub.close();
  t.ok(again.isClosed);
  t.throws(() => pubsub.topic('other'), { code: 'BROKER_CLOSED' });
  t.equal(await again.publish('x').then(() => 'resolved', code), 'BROKER_CLOSED');
});

t.test('the hot path: publish to local members costs what broadcast costs (no per-member objects)', async (t) => {
  // Not a timing: the same Buffer objects as a plain broadcast would send, and no member-sized allocation. The
  // figure is measured by perf/pubsub-local.ts.
  const pubsub = new PubSub();
  t.teardown(() => pubsub.close());
  const room = pubsub.topic('room');
  const members = Array.from({ length: 50 }, () => member());
  for (const m of members) room.join(m.session);
  await room.publish(Buffer.alloc(1000, 7));
  await settle();
  const payloads = new Set(members.map((m) => m.transmitted[1]));
  const headers = new Set(members.map((m) => m.transmitted[0]));
  t.equal(headers.size, 1, 'one header for all');
  t.equal(payloads.size, 1, 'the payload itself for all (not copied)');
  t.same(broadcast([], 'x'), { sent: 0, skipped: 0 });
});

// ------------------------------------------------------------------------------------------------ remote path

/** A broker that links PubSubs in this process, with hooks to inject bytes and failures. */
class MemoryBus {
  readonly brokers: MemoryBroker[] = [];
  /** Every envelope published, in order. */
  readonly log: Buffer[] = [];
  echo = true;
  send(from: MemoryBroker, envelope: Buffer): void {
    this.log.push(envelope);
    for (const b of this.brokers) if (b !== from || this.echo) b.inject(envelope);
  }
}

class MemoryBroker implements Broker {
  state: BrokerState = 'ready';
  sink: EnvelopeSink | undefined;
  fail: BrokerError | undefined;
  received = 0;
  readonly topics = new Set<string>();
  constructor(private readonly bus: MemoryBus) {
    bus.brokers.push(this);
  }
  open(sink: EnvelopeSink): void {
    this.sink = sink;
  }
  subscribe(topic: string): Promise<void> {
    this.topics.add(topic);
    return Promise.resolve();
  }
  unsubscribe(topic: string): Promise<void> {
    this.topics.delete(topic);
    return Promise.resolve();
  }
  publish(_topic: string, envelope: Buffer): Promise<void> {
    if (this.fail !== undefined) return Promise.reject(this.fail);
    this.bus.send(this, envelope);
    return Promise.resolve();
  }
  inject(envelope: Buffer): void {
    this.received++;
    this.sink?.(envelope);
  }
  stats(): BrokerStats {
    return { kind: 'memory', state: this.state, published: 0, publishFailures: 0, received: this.received, pendingBytes: 0, maxPendingBytes: 1, subscriptions: this.topics.size };
  }
  close(): Promise<void> {
    this.state = 'closed';
    return Promise.resolve();
  }
}

t.test('remote path: messages cross, own echoes are dropped, every member gets one encoding', async (t) => {
  const bus = new MemoryBus();
  const [p1, p2] = [new PubSub({ broker: new MemoryBroker(bus) }), new PubSub({ broker: new MemoryBroker(bus) })];
  t.teardown(() => Promise.all([p1.close(), p2.close()]));
  t.not(p1.origin, p2.origin, 'two origins');
  const [r1, r2] = [p1.topic('room'), p2.topic('room')];
  await Promise.all([r1.ready, r2.ready]);
  const [a, b, c] = [member(), member(), member()];
  r1.join(a.session);
  r2.join(b.session);
  r2.join(c.session);
  for (let i = 0; i < 5; i++) await r1.publish(`from 1: ${i}`);
  await r2.publish(Buffer.from([0, 255]));
  await settle();
  t.same(texts(a.read()), ['from 1: 0', 'from 1: 1', 'from 1: 2', 'from 1: 3', 'from 1: 4', 'binary:00ff'], 'a: its own once, in order, and the remote one');
  for (const m of [b, c]) t.same(texts(m.read()), ['from 1: 0', 'from 1: 1', 'from 1: 2', 'from 1: 3', 'from 1: 4', 'binary:00ff']);
  t.equal(b.transmitted[0], c.transmitted[0], 'a remote message is encoded once for the members of a process');
  t.match(p1.stats(), { published: 5, received: 1, ownEchoes: 5, duplicates: 0, lost: 0, invalid: 0 });
  t.match(p2.stats(), { published: 1, received: 5, ownEchoes: 1, delivered: 12 });
  // A topic closed and made again on the publisher's side: its messages still reach the others (its numbers go on
  // past the old ones, and its first message says that its count starts again: nothing counted as lost).
  r1.close();
  const again = p1.topic('room');
  await again.publish('again 1');
  await again.publish('again 2');
  await settle();
  for (const m of [b, c]) t.same(texts(m.read()), ['again 1', 'again 2'], 'the topic made again reaches p2');
  t.match(p2.stats(), { duplicates: 0, lost: 0 });
  // A topic that does not exist on the other side: unrouted there.
  await p1.topic('elsewhere').publish('nobody');
  t.equal(p2.stats().unrouted, 1);
});

t.test('onRemote: server code sees the other processes\' messages (not its own), before the members; a listener that throws is counted and reported', async (t) => {
  const bus = new MemoryBus();
  const errors: Error[] = [];
  const [p1, p2] = [new PubSub({ broker: new MemoryBroker(bus) }), new PubSub({ broker: new MemoryBroker(bus), onError: (e) => errors.push(e) })];
  t.teardown(() => Promise.all([p1.close(), p2.close()]));
  const [r1, r2] = [p1.topic('room'), p2.topic('room')];
  await Promise.all([r1.ready, r2.ready]);
  const seen1: string[] = [];
  const seen2: string[] = [];
  const b = member();
  r2.join(b.session);
  r1.onRemote = (payload, text) => seen1.push(`${text ? 'text' : 'binary'}:${payload.toString('hex')}`);
  r2.onRemote = (payload, text) => {
    seen2.push(`${text ? 'text' : 'binary'}:${payload.toString(text ? 'utf8' : 'hex')} members so far ${b.read().length}`);
    if (payload.toString('utf8') === 'boom') throw new Error('listener failed');
  };
  await r1.publish('hello');
  await r1.publish(Buffer.from([1, 2]));
  await r1.publish('boom');
  await r2.publish('from 2');
  await settle();
  t.same(seen2, ['text:hello members so far 0', 'binary:0102 members so far 0', 'text:boom members so far 0'], 'p2 saw p1\'s three, before its member got each');
  t.same(seen1, ['text:' + Buffer.from('from 2').toString('hex')], 'p1 saw only p2\'s message: never its own');
  t.match(p2.stats(), { received: 3, listenerErrors: 1 });
  t.equal(errors.length, 1);
  t.match(errors[0]!.message, 'listener failed');
  r2.onRemote = undefined;
  await r1.publish('unseen');
  await settle();
  t.equal(seen2.length, 3, 'a listener set to undefined is not called');
});

t.test('remote path: duplicates and older messages are dropped, gaps counted, invalid envelopes counted and reported', async (t) => {
  const bus = new MemoryBus();
  const errors: Error[] = [];
  const broker = new MemoryBroker(bus);
  const p = new PubSub({ broker, onError: (e) => errors.push(e) });
  t.teardown(() => p.close());
  const room = p.topic('room');
  const m = member();
  room.join(m.session);
  const env = (seq: number, text: string, origin = 77): Buffer => encodeEnvelope(1, origin, seq, Buffer.from('room'), text);
  broker.inject(env(10, 'ten'));
  broker.inject(env(11, 'eleven'));
  broker.inject(env(11, 'eleven again'));
  broker.inject(env(5, 'older'));
  broker.inject(env(15, 'fifteen'));
  broker.inject(env(0xffffffff, 'wrapped back: older'));
  broker.inject(env(3, 'another origin', 78));
  broker.inject(Buffer.from('not an envelope at all'));
  broker.inject(Buffer.alloc(0));
  // Sequence wrap: 0xffffffff then 0 is in order.
  broker.inject(env(0xffffffff, 'last', 79));
  broker.inject(env(0, 'first again', 79));
  // FIRST: the origin made the topic again; its count restarts (even below the last one), but not the same one twice.
  const first = (seq: number, text: string): Buffer => encodeEnvelope(1, 77, seq, Buffer.from('room'), text, true);
  broker.inject(first(2, 'restarted'));
  broker.inject(first(2, 'restarted again: the same message'));
  broker.inject(env(3, 'after the restart'));
  await settle();
  t.same(texts(m.read()), ['ten', 'eleven', 'fifteen', 'another origin', 'last', 'first again', 'restarted', 'after the restart']);
  t.match(p.stats(), { received: 8, duplicates: 4, lost: 3, invalid: 2 });
  t.equal(errors.length, 1, 'reported at most once a second');
  t.equal(code(errors[0]), 'ENVELOPE_INVALID');
});

t.test('remote failure: local delivery done, the Promise rejects with the BrokerError, counted', async (t) => {
  const bus = new MemoryBus();
  const broker = new MemoryBroker(bus);
  const p = new PubSub({ broker });
  t.teardown(() => p.close());
  const room = p.topic('room');
  const m = member();
  room.join(m.session);
  broker.fail = new BrokerError('BROKER_UNAVAILABLE', 'down');
  t.equal(await room.publish('still local').then(() => 'resolved', code), 'BROKER_UNAVAILABLE');
  room.publish('ignored: must not be an unhandled rejection'); // tap fails the test on an unhandled rejection
  await settle();
  t.same(texts(m.read()), ['still local', 'ignored: must not be an unhandled rejection']);
  t.match(p.stats(), { published: 2, remoteFailures: 2 });
  broker.fail = undefined;
  t.same(await room.publish('back'), { sent: 1, skipped: 0 });
  t.equal(p.stats().remoteFailures, 2);
});

t.test('ClusterBroker outside a cluster worker: BrokerError BROKER_MISCONFIGURED', async (t) => {
  t.throws(() => new ClusterBroker(), { name: 'BrokerError', code: 'BROKER_MISCONFIGURED' });
});

t.test('OpCode values in the envelope are RFC 6455 opcodes', async (t) => {
  t.equal(OpCode.TEXT, 1);
  t.equal(OpCode.BINARY, 2);
});

t.test('PendingBytes: the bound of a broker on bytes in flight reserves up to max, refuses past it, releases', async (t) => {
  t.throws(() => new PendingBytes(0, 100, 'wait'), { code: 'BROKER_MISCONFIGURED' });
  t.throws(() => new PendingBytes(Number.NaN, 100, 'wait'), { code: 'BROKER_MISCONFIGURED' });
  t.equal(new PendingBytes(undefined, 100, 'wait').max, 100, 'the default when not given');
  const pending = new PendingBytes(10, 100, 'wait for the test');
  t.equal(pending.reserve(6), undefined);
  t.equal(pending.reserve(4), undefined, 'exactly max is allowed');
  const refused = pending.reserve(1);
  t.match(refused, { code: 'BROKER_OVERLOADED', message: '10 bytes wait for the test; 1 more would pass maxPendingBytes (10)' });
  t.ok(refused instanceof BrokerError);
  t.equal(pending.bytes, 10, 'a refused reservation reserves nothing');
  pending.release(6);
  t.equal(pending.bytes, 4);
  t.equal(pending.reserve(6), undefined, 'released bytes can be reserved again');
});
