/**
 * lib/cluster's relay between real workers (perf/cluster/app.ts's /publish and its relay counters in stats()): a
 * message from one worker reaches every other one with its bytes intact and not the sender; a worker that does not
 * read (its event loop blocked) makes the primary drop past the per-worker bound, for that worker only, counted.
 */
import t from 'tap';
import { cluster, ensureBuilt, get, until } from './support/clusterApp.js';

await ensureBuilt();

t.test('relay: a message from one worker reaches every other one, bytes intact, not itself; bounded per worker', async (t) => {
  const { supervisor, port, events } = await cluster(t, { workers: 3, relay: { maxPendingBytesPerWorker: 256 * 1024 } });
  await supervisor.start();
  type Relay = { received: number; receivedBytes: number; corrupt: number; own: number; sent: number };
  const relayOf = async () => {
    const stats = await supervisor.stats();
    return new Map(stats.workers.map((w) => [w.pid!, (w.stats as { relay: Relay }).relay]));
  };

  const published = await get(port, '/publish?count=50&size=1000');
  t.same(published, { status: 200, body: '50' });
  t.ok(
    await until(async () => [...(await relayOf()).values()].filter((r) => r.received === 50).length === 2),
    'the two other workers got the 50 messages',
  );
  const relays = await relayOf();
  const sender = [...relays].find(([, r]) => r.sent === 50)![0];
  t.equal(relays.get(sender)!.received, 0, 'the sender did not get its own');
  for (const [pid, r] of relays) if (pid !== sender) t.match(r, { received: 50, receivedBytes: 50_000, corrupt: 0, own: 0 }, 'intact');

  // Bound: one receiver blocks its event loop; the publisher sends 4 MiB; the primary drops past 256 KiB for the
  // blocked one only, and counts it.
  const blocker = await get(port, '/block?ms=1500');
  const blocked = 'body' in blocker ? blocker : undefined;
  t.ok(blocked);
  let burst: { status: number; body: string } | { error: string } = { error: 'not sent' };
  for (let i = 0; i < 5; i++) {
    burst = await get(port, '/publish?count=64&size=65536'); // round-robin: lands on a worker that is not blocked
    if ('body' in burst) break;
  }
  t.same(burst, { status: 200, body: '64' });
  t.ok(await until(async () => (await supervisor.stats()).relay.dropped > 0, 200, 25), 'the relay dropped for the blocked worker');
  const after = await supervisor.stats();
  t.ok(after.relay.dropped > 0 && after.relay.dropped < 2 * 64, `dropped ${after.relay.dropped} copies (not the other receiver's)`);
  t.equal(after.relay.droppedBytes, after.relay.dropped * 65536);
  t.ok(await until(() => events.some((e) => e.type === 'relayDrop')), 'reported to onEvent');
});
