/**
 * The machinery of `npm run bench:fanout-cluster` at a small size (behaviour, not timing): 20 subscribers over the
 * servers of each setup (2 quay instances through a real redis-server, 2 Socket.IO instances with the Redis
 * adapter, 1 quay instance), 2 publishers; every message reaches every subscriber exactly once and in order per
 * publisher, in an open-loop step and in a closed-loop one, and the harness counts what it saw.
 */
import t from 'tap';
import type { Test } from 'tap';
import { FanoutSetup, SETUP_KINDS } from '../perf/fanout-cluster-harness.js';
import type { StepResult } from '../perf/fanout-cluster-harness.js';
import { MESSAGE_BYTES, encodeMessage, parseMessage } from '../perf/fanout-cluster-message.js';
import type { ParsedMessage } from '../perf/fanout-cluster-message.js';
import { RedisServerProcess, findRedisServer } from '../perf/services/RedisServerProcess.js';

const SUBSCRIBERS = 20;

t.test('messages: 64 ASCII bytes that carry publisher, sequence and send time, as bytes or as a string', async (t) => {
  const out: ParsedMessage = { publisher: -1, sequence: -1, sentMs: -1 };
  const text = encodeMessage(1, 12345, 987654.321);
  t.equal(text.length, MESSAGE_BYTES);
  t.ok(parseMessage(text, out));
  t.same(out, { publisher: 1, sequence: 12345, sentMs: 987654.321 });
  t.ok(parseMessage(Buffer.from(encodeMessage(0, 7, 5)), out));
  t.same(out, { publisher: 0, sequence: 7, sentMs: 5 });
  t.notOk(parseMessage('x'.repeat(MESSAGE_BYTES), out), 'not ours');
  t.notOk(parseMessage(text.slice(1), out), 'wrong length');
  t.notOk(parseMessage(`:${text.slice(1)}`, out), 'an empty field');
});

/** Every subscriber got every message sent so far, exactly once, in order. */
function checkExact(t: Test, r: StepResult, label: string): void {
  t.ok(r.sent > 0, `${label}: messages sent`);
  t.equal(r.open, SUBSCRIBERS, `${label}: every subscriber open`);
  t.equal(r.gaps, 0, `${label}: no message skipped`);
  t.equal(r.repeats, 0, `${label}: no message repeated or out of order`);
  t.equal(r.foreign, 0, `${label}: nothing else received`);
  t.equal(r.minReceived, r.totalSent, `${label}: the subscriber with the fewest has all ${r.totalSent}`);
  t.equal(r.maxReceived, r.totalSent, `${label}: none has more`);
  t.ok(r.drained, `${label}: drained`);
  t.ok(r.deliveriesPerSec > 0, `${label}: deliveries counted in the window`);
  t.ok(r.p99Ms >= r.p50Ms && r.p50Ms >= 0, `${label}: latency percentiles`);
  t.same(r.errors, [], `${label}: no subscriber error`);
}

const redisBinary = findRedisServer();
t.test('each setup delivers every message once, in order, to every subscriber', { skip: redisBinary === undefined ? 'redis-server is not installed (Debian: apt-get install redis-server)' : false }, async (t) => {
  const redis = await RedisServerProcess.start();
  t.teardown(() => redis.stop());
  for (const kind of SETUP_KINDS) {
    await t.test(kind, async (t) => {
      const setup = await FanoutSetup.start({ kind, subscribers: SUBSCRIBERS, redisUrl: redis.url, clientProcesses: 2 });
      t.teardown(() => setup.stop());
      t.equal(setup.servers.length, kind === 'quay-1proc' ? 1 : 2, 'server processes');
      const open = await setup.runStep({ rate: 200, warmupMs: 100, durationMs: 400, drainTimeoutMs: 10_000 });
      checkExact(t, open, 'open loop');
      const closed = await setup.runStep({ inflight: 10, warmupMs: 100, durationMs: 400, drainTimeoutMs: 10_000 });
      checkExact(t, closed, 'closed loop');
      t.equal(closed.totalSent, open.sent + closed.sent, 'the steps add up');
    });
  }
});
