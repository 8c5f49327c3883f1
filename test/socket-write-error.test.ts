/**
 * A write that Node fails (a reset or a broken pipe seen by the write before any 'error' event) closes the
 * SocketEndPoint with that error as the cause, and the pending write callbacks fail with EndPointClosedError on an
 * endpoint that is already closed: that is how HTTP tells a client that left from a handler error (a
 * hostile peer's reset: a reset after 200,000 pipelined requests is one report, not one per response).
 */
import t from 'tap';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { SocketEndPoint } from '../lib/io/SocketEndPoint.js';
import type { Connection } from '../lib/io/Connection.js';
import { EndPointClosedError, PeerClosedError } from '../lib/io/errors.js';

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
  // Node's write fails with ECONNRESET (as when the peer reset while our write was in the kernel): the bytes stay
  // queued in Node (writableLength > 0, so the endpoint waits for the callback of the write after them), then every
  // pending write's callback gets the error.
  const reset = Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
  Object.defineProperty(socket, 'writableLength', { get: () => 3 });
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

t.test('a reset after our output was shut down is a close (PeerClosedError), not an error; before, it is the error', async (t) => {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => void server.close());
  const port = (server.address() as { port: number }).port;
  const open = async (): Promise<{ ep: SocketEndPoint; socket: Socket; causes: (Error | undefined)[] }> => {
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    // allowHalfOpen: the client keeps its side open after our FIN, as a client that is still reading does.
    const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    client.on('error', () => {});
    t.teardown(() => void client.destroy());
    const [socket] = await accepted;
    const ep = new SocketEndPoint(socket);
    const causes: (Error | undefined)[] = [];
    ep.open({ onOpen() {}, onFillable() {}, onIdleExpired: () => true, onClose: (cause) => void causes.push(cause) });
    return { ep, socket, causes };
  };
  const reset = (): Error => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

  // A TLS client that destroys its socket after the last response, without reading our close_notify, resets.
  const after = await open();
  after.ep.shutdownOutput();
  for (let i = 0; i < 50 && after.ep.state !== 'OUTPUT_SHUTDOWN'; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(after.ep.state, 'OUTPUT_SHUTDOWN');
  after.socket.emit('error', reset());
  t.equal(after.ep.state, 'CLOSED');
  t.type(after.causes[0], PeerClosedError, 'a close');

  const before = await open();
  before.socket.emit('error', reset());
  t.equal((before.causes[0] as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET', 'while open, a reset is the error');
});
