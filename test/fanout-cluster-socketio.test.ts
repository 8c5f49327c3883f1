/**
 * The machinery of `npm run bench:fanout-cluster`, Socket.IO side, at a small size (behaviour, not timing): 20
 * socket.io-client subscribers over 2 Socket.IO 4 instances with @socket.io/redis-adapter on a real redis-server.
 */
import t from 'tap';
import { NO_REDIS, checkSetups } from './support/fanoutCluster.js';

t.test('Socket.IO: every message once, in order, to every subscriber', { skip: NO_REDIS }, (t) => checkSetups(t, ['socketio-2proc-redis'], 1));
