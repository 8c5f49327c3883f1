/**
 * Socket endpoints flush at the end of the event loop's turn (lib/io/TurnFlush.ts): what a connection writes while
 * handling a read, or from a timer, reaches `socket.write` after the turn's other callbacks, not when the handler
 * returns and not at the end of the tick; with the writes of the other endpoints of that turn; in order.
 */
import t from 'tap';
import type { Test } from 'tap';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { SocketEndPoint } from '../lib/io/SocketEndPoint.js';
import type { Connection } from '../lib/io/Connection.js';

interface Pair {
  ep: SocketEndPoint;
  client: Socket;
  /** What the server socket was given by `socket.write`, in order. */
  written: string[];
}

async function pairs(t: Test, count: number, onFillable: (ep: SocketEndPoint, bytes: Buffer) => void): Promise<Pair[]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const made: Pair[] = [];
  for (let i = 0; i < count; i++) {
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect({ host: '127.0.0.1', port });
    const [socket] = await accepted;
    const written: string[] = [];
    const write = socket.write.bind(socket) as (chunk: Buffer, cb?: (error?: Error | null) => void) => boolean;
    socket.write = ((chunk: Buffer, cb?: (error?: Error | null) => void) => {
      if (chunk.length > 0) written.push(chunk.toString());
      return write(chunk, cb);
    }) as typeof socket.write;
    const ep = new SocketEndPoint(socket);
    const connection: Connection = {
      onOpen() {},
      onFillable: (bytes) => onFillable(ep, bytes),
      onIdleExpired: () => true,
      onClose() {},
    };
    ep.open(connection);
    made.push({ ep, client, written });
  }
  t.teardown(() => {
    for (const p of made) {
      p.client.destroy();
      p.ep.close();
    }
    server.close();
  });
  return made;
}

t.test('an answer written during a read leaves at the end of the turn, not of the read or the tick', async (t) => {
  const seen: { atReturn: number; atTick: number; atTurn: number }[] = [];
  let pair: Pair | undefined;
  const [p] = await pairs(t, 1, (ep, bytes) => {
    ep.write(Buffer.from(`echo ${bytes.toString()}`));
    const entry = { atReturn: -1, atTick: -1, atTurn: -1 };
    seen.push(entry);
    process.nextTick(() => {
      entry.atTick = pair!.written.length;
      // Queued after the turn's flush (the endpoint queued it when the read's handling returned), so it runs after.
      setImmediate(() => (entry.atTurn = pair!.written.length));
    });
    entry.atReturn = pair!.written.length;
  });
  pair = p;
  const echoed = once(p!.client, 'data') as Promise<[Buffer]>;
  p!.client.write('hi');
  const [bytes] = await echoed;
  t.equal(bytes.toString(), 'echo hi');
  t.same(seen, [{ atReturn: 0, atTick: 0, atTurn: 1 }]);
});

t.test('the writes of several endpoints in one turn leave together, each endpoint its own in order', async (t) => {
  const ps = await pairs(t, 3, () => {});
  const counts: number[][] = [];
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      for (const [i, p] of ps.entries()) {
        p.ep.write(Buffer.from(`${i}a`));
        p.ep.write(Buffer.from(`${i}b`));
      }
      const sample = (): number[] => ps.map((p) => p.written.length);
      counts.push(sample());
      process.nextTick(() => counts.push(sample()));
      setImmediate(() => {
        counts.push(sample());
        resolve();
      });
    }, 1),
  );
  t.same(counts, [[0, 0, 0], [0, 0, 0], [1, 1, 1]], 'none before the end of the turn, then one gathered write each');
  t.same(
    ps.map((p) => p.written),
    [['0a0b'], ['1a1b'], ['2a2b']],
  );
  const received = await Promise.all(ps.map((p) => once(p.client, 'data') as Promise<[Buffer]>));
  t.same(
    received.map(([b]) => b.toString()),
    ['0a0b', '1a1b', '2a2b'],
  );
});
