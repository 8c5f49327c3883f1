/**
 * Probe for lib/io's read path: can accepted sockets read into one reused buffer (Node's `onread` option), and
 * is it worth it? `onread` exists only on the `net.Socket` constructor; `net.Server` does not expose it, so the
 * only way for accepted sockets is to re-wrap the private `_handle` of a socket accepted with
 * `pauseOnConnect`. This script measures an echo server both ways, side by side, alternating A B A B.
 *
 *   node dist/perf/read-path.js [--conns 100] [--seconds 3] [--size 64] [--pairs 3]
 *
 * Each mode runs a server in a child process pinned to core 0 (taskset, where present) and the load in this
 * process: every connection keeps `depth` messages of `size` bytes in flight and counts echoed bytes.
 */
import { fork, spawnSync } from 'node:child_process';
import { connect, createServer, Socket, type AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

type Mode = 'data-event' | 'onread';

function serve(mode: Mode): void {
  const server =
    mode === 'data-event'
      ? createServer((socket) => {
          socket.setNoDelay(true);
          socket.on('data', (bytes: Buffer) => socket.write(bytes));
          socket.on('error', () => socket.destroy());
        })
      : createServer({ pauseOnConnect: true }, (accepted) => {
          const shared = Buffer.allocUnsafe(64 * 1024);
          const handle = (accepted as unknown as { _handle: unknown })._handle;
          (accepted as unknown as { _handle: unknown })._handle = null;
          const socket: Socket = new Socket({
            handle,
            readable: true,
            writable: true,
            onread: {
              buffer: shared,
              // The buffer is reused for the next read, so what is kept must be copied: the echo copies too.
              callback: (n: number, buf: Uint8Array) => void socket.write(Buffer.from(buf.subarray(0, n))),
            },
          } as unknown as ConstructorParameters<typeof Socket>[0]);
          socket.setNoDelay(true);
          socket.on('error', () => socket.destroy());
          socket.resume();
        });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
}

async function load(port: number, conns: number, seconds: number, size: number, depth: number): Promise<number> {
  const msg = Buffer.alloc(size, 0x61);
  let echoed = 0;
  let running = true;
  const sockets = await Promise.all(
    Array.from({ length: conns }, () => new Promise<Socket>((resolve) => {
      const s = connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s));
    })),
  );
  for (const s of sockets) {
    let owed = 0;
    s.on('data', (b: Buffer) => {
      echoed += b.length;
      owed += b.length;
      while (running && owed >= size) {
        owed -= size;
        s.write(msg);
      }
    });
    for (let i = 0; i < depth; i++) s.write(msg);
  }
  const start = echoed;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  const total = echoed - start;
  for (const s of sockets) s.destroy();
  return total / size / seconds;
}

async function measure(mode: Mode, args: { conns: number; seconds: number; size: number }): Promise<number> {
  const self = fileURLToPath(import.meta.url);
  const pin = spawnSync('taskset', ['--version']).status === 0;
  const child = fork(self, ['--serve', mode], { stdio: 'inherit' });
  if (pin && child.pid !== undefined) spawnSync('taskset', ['-pc', '0', String(child.pid)]);
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  const rate = await load(port, args.conns, args.seconds, args.size, 10);
  child.kill();
  return rate;
}

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    conns: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '3' },
    size: { type: 'string', default: '64' },
    pairs: { type: 'string', default: '3' },
  },
});
if (values.serve !== undefined) {
  serve(values.serve as Mode);
} else {
  if (spawnSync('taskset', ['--version']).status === 0) spawnSync('taskset', ['-pc', '1', String(process.pid)]);
  const args = { conns: Number(values.conns), seconds: Number(values.seconds), size: Number(values.size) };
  const results: Record<Mode, number[]> = { 'data-event': [], onread: [] };
  for (let i = 0; i < Number(values.pairs); i++) {
    for (const mode of ['data-event', 'onread'] as const) {
      const rate = await measure(mode, args);
      results[mode].push(rate);
      console.log(`pair ${i + 1} ${mode.padEnd(10)} ${Math.round(rate).toLocaleString('en-US')} msg/s`);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const a = median(results['data-event']);
  const b = median(results.onread);
  console.log(`median data-event ${Math.round(a)} msg/s, onread ${Math.round(b)} msg/s, ratio onread/data-event ${(b / a).toFixed(3)}`);
}
