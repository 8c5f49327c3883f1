/**
 * Shared by test/fanout-cluster*.test.ts: runs setups of perf/fanout-cluster-harness.ts at a small size (20
 * subscribers, 2 publishers, a real redis-server) and checks that every message reached every subscriber exactly
 * once and in order per publisher, in an open-loop step and in a closed-loop one. Behaviour, not timing.
 */
import type { Test } from 'tap';
import { FanoutSetup } from '../../perf/fanout-cluster-harness.js';
import type { SetupKind, StepResult } from '../../perf/fanout-cluster-harness.js';
import { RedisServerProcess, findRedisServer } from '../../perf/services/RedisServerProcess.js';

export const SUBSCRIBERS = 20;

/** Why the Redis setups cannot run here, or false. */
export const NO_REDIS: string | false =
  findRedisServer() === undefined ? 'redis-server is not installed (Debian: apt-get install redis-server; .ci/run does it)' : false;

/** Every subscriber got every message sent so far, exactly once, in order. */
export function checkExact(t: Test, r: StepResult, label: string): void {
  t.ok(r.sent > 0, `${label}: messages sent`);
  t.equal(r.open, SUBSCRIBERS, `${label}: every subscriber open`);
  t.equal(r.gaps, 0, `${label}: no message skipped`);
  t.equal(r.repeats, 0, `${label}: no message repeated or out of order`);
  t.equal(r.foreign, 0, `${label}: nothing else received`);
  t.equal(r.minReceived, r.totalSent, `${label}: the subscriber with the fewest has all ${r.totalSent}`);
  t.equal(r.maxReceived, r.totalSent, `${label}: none has more`);
  t.ok(r.drained, `${label}: drained`);
  t.equal(r.missing, 0, `${label}: nothing missing`);
  t.ok(r.deliveriesPerSec > 0, `${label}: deliveries counted in the window`);
  t.ok(r.p99Ms >= r.p50Ms && r.p50Ms >= 0, `${label}: latency percentiles`);
  t.same(r.errors, [], `${label}: no subscriber error`);
}

/** Each setup of `kinds` on one redis-server: an open-loop step, then a closed-loop one on the same sessions. */
export async function checkSetups(t: Test, kinds: readonly SetupKind[], clientProcesses: number): Promise<void> {
  // The single-process setup needs no Redis (and runs where redis-server is missing).
  const redis = kinds.every((k) => k === 'quay-1proc') ? undefined : await RedisServerProcess.start();
  if (redis !== undefined) t.teardown(() => redis.stop());
  for (const kind of kinds) {
    await t.test(kind, async (t) => {
      const setup = await FanoutSetup.start({ kind, subscribers: SUBSCRIBERS, ...(redis === undefined ? {} : { redisUrl: redis.url }), clientProcesses });
      t.teardown(() => setup.stop());
      t.equal(setup.servers.length, kind === 'quay-1proc' ? 1 : 2, 'server processes');
      t.equal(setup.clients.length, clientProcesses, 'subscriber processes');
      const open = await setup.runStep({ rate: 200, warmupMs: 100, durationMs: 400, drainTimeoutMs: 10_000 });
      checkExact(t, open, 'open loop');
      const closed = await setup.runStep({ inflight: 10, warmupMs: 100, durationMs: 400, drainTimeoutMs: 10_000 });
      checkExact(t, closed, 'closed loop');
      t.equal(closed.totalSent, open.sent + closed.sent, 'the steps add up');
    });
  }
}
