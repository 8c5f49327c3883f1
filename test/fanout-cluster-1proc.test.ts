/**
 * The machinery of `npm run bench:fanout-cluster`, at a small size (behaviour, not timing): 20 subscribers on 1 quay
 * instance, a lib/pubsub topic without a broker (the single-process reference of the benchmark).
 */
import t from 'tap';
import { checkSetups } from './support/fanoutCluster.js';

t.test('quay, 1 instance: every message once, in order, to every subscriber', (t) => checkSetups(t, ['quay-1proc'], 1));
