/**
 * The machinery of `npm run bench:fanout-cluster`, at a small size (behaviour, not timing): 20 subscribers over 2
 * quay instances sharing a lib/pubsub topic through a real redis-server, split over 2 subscriber processes. The
 * other setups: fanout-cluster-1proc.test.ts (quay, 1 instance, no broker) and fanout-cluster-socketio.test.ts.
 */
import t from 'tap';
import { MESSAGE_BYTES, encodeMessage, parseMessage } from '../perf/fanout-cluster-message.js';
import type { ParsedMessage } from '../perf/fanout-cluster-message.js';
import { NO_REDIS, checkSetups } from './support/fanoutCluster.js';

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

t.test('quay, 2 instances through Redis: every message once, in order, to every subscriber', { skip: NO_REDIS }, (t) =>
  checkSetups(t, ['quay-2proc-redis'], 2),
);
