/**
 * The pieces quay-load's workloads share: the InFlightLedger (per-connection ring of send times, checked against
 * a plain queue model with seeded random operations), the ConnectionOpener (concurrency limit, source addresses,
 * reopening, abort) and the TrafficRun's phases (warm-up, measured window, drain).
 */
import t from 'tap';
import { Measurement } from '../perf/load/Measurement.js';
import { defaultOptions } from '../perf/load/options.js';
import type { LoadOptions } from '../perf/load/options.js';
import { ConnectionOpener } from '../perf/load/workloads/ConnectionOpener.js';
import { InFlightLedger } from '../perf/load/workloads/InFlightLedger.js';
import { PacedSender } from '../perf/load/workloads/PacedSender.js';
import { TrafficRun } from '../perf/load/workloads/TrafficRun.js';
import type { Traffic } from '../perf/load/workloads/TrafficRun.js';
import type { LoadClientOptions } from '../perf/load/LoadClient.js';
import { mulberry32 } from './support/mulberry32.js';

t.test('InFlightLedger: answers come back with their send times, in send order, per connection', async (t) => {
  const connections = 4;
  const depth = 5;
  const random = mulberry32(0x1ed6e7);
  const ledger = new InFlightLedger(connections, depth);
  const model: number[][] = Array.from({ length: connections }, () => []);
  const queued = new Array<number>(connections).fill(0);
  let sent = 0;
  let received = 0;
  let lost = 0;
  let mismatches = 0;
  for (let step = 0; step < 3000; step++) {
    const i = Math.floor(random() * connections);
    const now = step;
    const op = random();
    if (op < 0.45) {
      const n = Math.floor(random() * (depth - model[i]!.length + 1));
      ledger.sendMany(i, n, now);
      for (let k = 0; k < n; k++) model[i]!.push(now);
      sent += n;
    } else if (op < 0.85) {
      if (model[i]!.length === 0) continue;
      if (ledger.answer(i, now) !== model[i]!.shift()) mismatches++;
      received++;
      ledger.queue(i);
      queued[i]!++;
    } else if (op < 0.95) {
      if (ledger.takeQueued(i) !== queued[i]) mismatches++;
      queued[i] = 0;
    } else {
      ledger.drop(i);
      lost += model[i]!.length;
      model[i] = [];
      queued[i] = 0;
    }
    if (ledger.inFlightOn(i) !== model[i]!.length) mismatches++;
  }
  t.equal(mismatches, 0, 'send times, in-flight counts and queued counts match the model');
  t.equal(ledger.sent, sent);
  t.equal(ledger.received, received);
  t.equal(ledger.lost, lost);
  t.equal(ledger.outstanding, sent - received - lost);
  t.equal(ledger.settled, sent === received + lost);
});

t.test('InFlightLedger: settled, overdue, drop', async (t) => {
  const ledger = new InFlightLedger(2, 3);
  t.ok(ledger.settled, 'nothing sent: settled');
  ledger.sendMany(0, 3, 100);
  t.notOk(ledger.settled);
  t.equal(ledger.outstanding, 3);
  t.notOk(ledger.overdue(0, 150, 100), 'not yet');
  t.ok(ledger.overdue(0, 201, 100), 'in flight and silent for more than the limit');
  t.notOk(ledger.overdue(1, 1000, 100), 'nothing in flight is never overdue');
  t.equal(ledger.answer(0, 180), 100);
  t.notOk(ledger.overdue(0, 201, 100), 'an answer is activity');
  ledger.sendMany(0, 1, 300);
  t.ok(ledger.overdue(0, 285, 100), 'sending more while requests are in flight is not an answer');
  ledger.drop(0);
  t.equal(ledger.lost, 3);
  t.ok(ledger.settled);
  ledger.sendMany(0, 2, 400);
  t.equal(ledger.answer(0, 410), 400, 'the ring starts afresh after a drop');
  t.equal(ledger.takeQueued(0), 0);
});

function options(overrides: Partial<LoadOptions>): LoadOptions {
  return defaultOptions('echo', 'ws://127.0.0.1:1/', overrides);
}

t.test('ConnectionOpener: at most openConcurrency attempts at a time, source addresses round robin', async (t) => {
  const started: [number, LoadClientOptions][] = [];
  const opener = new ConnectionOpener(options({ openConcurrency: 3, sourceAddresses: ['127.0.0.2', '127.0.0.3'], timeoutSec: 2 }), (i, o) =>
    started.push([i, o]),
  );
  let resolved = false;
  const all = opener.openAll(8).then(() => (resolved = true));
  t.same(
    started.map(([i]) => i),
    [0, 1, 2],
    'three attempts',
  );
  t.equal(opener.pending, 3);
  t.same(started[1]![1], { localAddress: '127.0.0.3', timeoutMs: 2000, deflate: false });
  for (let k = 0; k < 20 && opener.pending > 0; k++) {
    opener.attemptEnded(k % 2 === 0);
    opener.launch();
    t.ok(opener.pending <= 3, 'never more than three under way');
  }
  await all;
  t.ok(resolved, 'resolves once every attempt ended');
  t.equal(opener.noneOpened, false, 'some attempts opened');
  t.same(
    started.map(([i]) => i),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  t.same(started[6]![1], { localAddress: '127.0.0.2', timeoutMs: 2000, deflate: false });
  opener.open(5);
  t.equal(opener.pending, 1, 'a slot reopened is an attempt');
  t.equal(started.at(-1)![0], 5);
  opener.attemptEnded(false);
  opener.stop();
  opener.launch();
  t.equal(started.length, 9, 'nothing more after stop()');
});

t.test('ConnectionOpener: an abort resolves openAll at once', async (t) => {
  const abort = new AbortController();
  const started: number[] = [];
  const opener = new ConnectionOpener(options({ openConcurrency: 2, sourceAddresses: [] }), (i, o) => {
    t.equal(o.localAddress, undefined, 'no source address: the system picks');
    started.push(i);
  });
  const all = opener.openAll(10, abort.signal);
  abort.abort();
  await all;
  t.same(started, [0, 1]);
  const before = new AbortController();
  before.abort();
  await new ConnectionOpener(options({}), () => t.fail('nothing opens after an abort')).openAll(3, before.signal);
});

/** A traffic that answers nothing by itself: the test settles it. */
class FakeTraffic implements Traffic {
  events: string[] = [];
  inFlight = 0;
  constructor(private readonly m: Measurement) {}
  canSend(): boolean {
    this.events.push(`canSend ${this.m.phase}`);
    return true;
  }
  startSending(): void {
    this.events.push(`start ${this.m.phase}`);
    this.inFlight = 2;
  }
  stopSending(): void {
    if (!this.events.includes('stop')) this.events.push('stop'); // once: again in the run's finally
  }
  get settled(): boolean {
    return this.inFlight === 0;
  }
  countUnanswered(waitMs: number): void {
    this.events.push(`unanswered ${this.inFlight} after ${waitMs}`);
  }
  watch(): void {}
}

t.test('TrafficRun: warm-up, measured window, then the drain ends when nothing is in flight', async (t) => {
  const m = new Measurement(50);
  const traffic = new FakeTraffic(m);
  const run = new TrafficRun(traffic);
  const done = run.run(options({ warmupSec: 0.05, durationSec: 0.05, timeoutSec: 5 }), m, undefined);
  // Once the window is over (the drain is waiting), the answers arrive.
  const poll = setInterval(() => {
    if (m.phase !== 'STOPPED') return;
    clearInterval(poll);
    traffic.inFlight = 0;
    run.checkDrained();
  }, 20);
  await done;
  clearInterval(poll);
  t.same(traffic.events, ['canSend IDLE', 'start WARMUP', 'stop', 'unanswered 0 after 5000']);
  t.equal(m.phase, 'STOPPED');
  t.ok(m.windowSec > 0, 'a measured window');
});

t.test('TrafficRun: nothing to send on measures nothing; an abort skips the drain', async (t) => {
  const m = new Measurement(50);
  const traffic = new FakeTraffic(m);
  traffic.canSend = (): boolean => false;
  await new TrafficRun(traffic).run(options({ warmupSec: 0, durationSec: 5 }), m, undefined);
  t.equal(m.windowSec, 0, 'no window');
  t.same(traffic.events, ['stop'], 'settled: no drain wait');

  const m2 = new Measurement(50);
  const traffic2 = new FakeTraffic(m2);
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 50);
  await new TrafficRun(traffic2, 10).run(options({ warmupSec: 0, durationSec: 30, timeoutSec: 5 }), m2, abort.signal);
  t.same(traffic2.events, ['canSend IDLE', 'start MEASURING', 'stop'], 'aborted: no drain, nothing counted');
});

t.test('a name that does not resolve is a dns error, not refused', async (t) => {
  const { WsLoadClient } = await import('../perf/load/WsLoadClient.js');
  const { parseTarget } = await import('../perf/load/target.js');
  const ended: [string | undefined, string][] = [];
  const client = new WsLoadClient(0, parseTarget('ws://127.0.0.1:9/x'), {
    onOpen() {},
    onMessage() {},
    onReadComplete() {},
    onEnd: (_client, kind, message) => void ended.push([kind, message]),
  }, { timeoutMs: 2000 });
  client.connect();
  // What node:net emits for a host name that does not resolve (getaddrinfo ENOTFOUND), before any connect: emitted
  // here on the socket so that the test makes no DNS query.
  const socket = (client as unknown as { socket: import('node:net').Socket }).socket;
  socket.emit('error', Object.assign(new Error('getaddrinfo ENOTFOUND quay-test.invalid'), { code: 'ENOTFOUND' }));
  for (let i = 0; i < 100 && ended.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(ended[0]?.[0], 'dns');
  t.match(ended[0]?.[1], /cannot resolve 127\.0\.0\.1: ENOTFOUND/);
});

t.test('PacedSender: sends as tokens accrue, first come first sent, bursts capped, dropped connections skipped', async (t) => {
  let now = 0;
  const sent: string[] = [];
  const pacer = new PacedSender(1000, 4, (i, n) => void sent.push(`${i}x${n}`), () => now); // 1 per ms
  t.throws(() => new PacedSender(0, 1, () => {}), RangeError);
  pacer.offer(0, 5);
  t.same(sent, [], 'the bucket starts empty');
  t.equal(pacer.backlog, 5);
  now = 2;
  pacer.release();
  t.same(sent, ['0x2'], 'two tokens in 2 ms');
  pacer.offer(1, 3);
  t.same(sent, ['0x2'], 'a new offer waits behind what is owed');
  now = 100;
  pacer.release();
  t.same(sent, ['0x2', '0x3', '1x3'], 'in order; 98 ms accrued but only 10 kept (the burst cap), 6 needed');
  t.equal(pacer.backlog, 0);
  now = 103;
  pacer.offer(2, 2);
  t.same(sent.slice(3), ['2x2'], 'tokens left over go at once when nothing is owed');
  pacer.offer(2, 10);
  t.same(sent.slice(4), ['2x5'], 'the 5 tokens left go, 5 are owed');
  pacer.offer(3, 1);
  pacer.drop(2);
  now = 200;
  pacer.release();
  t.same(sent.slice(5), ['3x1'], 'a dropped connection gets nothing');
  pacer.offer(3, 50);
  t.same(sent.slice(6), ['3x9'], 'what the bucket holds goes at once');
  now = 1000;
  pacer.release();
  t.same(sent.slice(7), ['3x10'], 'a long pause does not turn into a burst');
  pacer.stop();
  t.equal(pacer.backlog, 0, 'stop forgets what was owed');
});
