/**
 * A write that Node fails (a reset or a broken pipe seen by the write before any 'error' event) closes the
 * SocketEndPoint with that error as the cause, and the pending write callbacks fail with EndPointClosedError on an
 * endpoint that is already closed: that is how HTTP tells a client that left from a handler error (issue 10,
 * items 1 and 7: a reset after 200,000 pipelined requests is one report, not one per response).
 */
import t from 'tap';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { SocketEndPoint } from '../lib/io/SocketEndPoint.js';
import type { Connection } from '../lib/io/Connection.js';
import { EndPointClosedError } from '../lib/io/errors.js';

t.test('a failed socket write closes the endpoint first, then fails the writes with EndPointClosedError', async (t) => {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect({ host: '127.0.0.1', port });
  client.on('error', () => {});
  const [socket] = await accepted;
  t.teardown(() => {
    client.destroy();
    server.close();
  });
  const ep = new SocketEndPoint(socket);
  let closeCause: Error | undefined;
  const connection: Connection = {
    onOpen() {},
    onFillable() {},
    onIdleExpired: () => true,
    onClose(cause) {
      closeCause = cause;
    },
  };
  ep.open(connection);
  // Node's write fails with ECONNRESET (as when the peer reset while our write was in the kernel).
  const reset = Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
  socket.write = ((_chunk: unknown, callback?: (error?: Error | null) => void) => {
    process.nextTick(() => callback?.(reset));
    return false;
  }) as typeof socket.write;
  const seen: { error: Error | null; endPointOpen: boolean }[] = [];
  ep.write(Buffer.from('one'), (error) => seen.push({ error, endPointOpen: ep.isOpen }));
  ep.write(Buffer.from('two'), (error) => seen.push({ error, endPointOpen: ep.isOpen }));
  for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(seen.length, 2, 'both callbacks ran');
  for (const s of seen) {
    t.type(s.error, EndPointClosedError, 'EndPointClosedError, not the raw socket error');
    t.equal((s.error!.cause as NodeJS.ErrnoException).code, 'ECONNRESET', 'with the socket error as its cause');
    t.equal(s.endPointOpen, false, 'the endpoint is closed when the callback runs');
  }
  t.equal(ep.state, 'CLOSED');
  t.equal((closeCause as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET', 'onClose got the socket error');
});
