/**
 * Compression attack, side by side (quay vs ws + node:http, the echo servers of perf/servers on /echo-deflate and
 * /hello): while hostile peers send compressed messages, a third client sends plain GETs one at a time; we
 * report its responses and latencies and the server's event-loop delay (perf/servers/loop-delay.ts).
 *
 * - inflate: 2 peers each send 60 KiB messages that inflate to 60 MiB (zeros), each as soon as the previous one
 *   was taken by the kernel (so as fast as the server reads), or one every `--interval-ms`; they read (discard)
 *   the echoes, which the server compresses back.
 * - bombs: 2 peers each send a ~1 MiB message that would inflate to 1 GiB (refused: 1009), reconnecting at once.
 *
 *   npm run build && node dist/perf/deflate-bomb.js [--seconds 20] [--only quay|ws] [--phase inflate|bombs] [--interval-ms 0]
 *     [--node-flag=--trace-gc ...] (flags for the server processes)
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { request, Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import { maskedFrame } from './rawFrames.js';
import { parseArgs } from 'node:util';
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { startServerProcess } from './serverProcess.js';
import type { ServerProcess } from './serverProcess.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '20' }, only: { type: 'string' }, phase: { type: 'string' }, 'interval-ms': { type: 'string', default: '0' }, 'node-flag': { type: 'string', multiple: true } },
});
const SECONDS = Number(values.seconds);

function compressedFrame(inflated: number): Buffer {
  const out = deflateRawSync(Buffer.alloc(inflated), { finishFlush: zlibConstants.Z_SYNC_FLUSH, level: 9 });
  // FIN, RSV1 (compressed, RFC 7692 §6), binary; the payload without the sync flush's 4-byte tail (§7.2.1).
  return maskedFrame(0xc2, out.subarray(0, out.length - 4));
}

/** A raw peer offering permessage-deflate; resolves once the 101 is in; discards everything it reads. */
function openPeer(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    const onData = (b: Buffer): void => {
      head += b.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.on('data', () => {});
      if (!head.startsWith('HTTP/1.1 101')) reject(new Error(head.split('\r\n')[0]));
      else resolve(socket);
    };
    socket.on('data', onData);
    socket.on('error', () => {});
    socket.once('connect', () =>
      socket.write(
        'GET /echo-deflate HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          'Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\n',
      ),
    );
  });
}

interface GetFigures {
  responses: number;
  p50: number;
  p99: number;
  max: number;
}

/** Plain GET /hello, one at a time on one keep-alive connection, until `until`. */
async function getClient(port: number, until: number): Promise<GetFigures> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  while (Date.now() < until) {
    const start = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/hello', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end();
    });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  agent.destroy();
  times.sort((a, b) => a - b);
  const at = (q: number): number => Math.round((times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN) * 100) / 100;
  return { responses: times.length, p50: at(0.5), p99: at(0.99), max: at(1) };
}

function loopDelay(server: ServerProcess): Promise<string> {
  return new Promise((resolve) => {
    const onData = (b: Buffer): void => {
      const m = /loop-delay (\{.*\})/.exec(b.toString());
      if (m === null) return;
      server.child.stdout!.off('data', onData);
      resolve(m[1]!);
    };
    server.child.stdout!.on('data', onData);
    server.child.kill('SIGUSR2');
  });
}

async function inflatePhase(port: number, frame: Buffer): Promise<number> {
  let sent = 0;
  const until = Date.now() + SECONDS * 1000;
  const peers = await Promise.all([openPeer(port), openPeer(port)]);
  const interval = Number(values['interval-ms']);
  let timers: NodeJS.Timeout[] = [];
  if (interval > 0) {
    timers = peers.map((p) =>
      setInterval(() => {
        if (!p.destroyed) {
          p.write(frame);
          sent++;
        }
      }, interval),
    );
  } else {
    for (const p of peers) {
      const next = (): void => {
        if (p.destroyed || Date.now() >= until) return;
        sent++;
        p.write(frame, next);
      };
      next();
    }
  }
  await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())));
  for (const t of timers) clearInterval(t);
  for (const p of peers) p.destroy();
  return sent;
}

async function bombPhase(port: number, frame: Buffer, stop: () => boolean): Promise<number> {
  let refused = 0;
  const peer = async (): Promise<void> => {
    while (!stop()) {
      const socket = await openPeer(port);
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.write(frame);
      });
      refused++;
    }
  };
  await Promise.all([peer(), peer()]);
  return refused;
}

const inflateFrame = compressedFrame(60 * 1024 * 1024);
const bombFrame = compressedFrame(1024 * 1024 * 1024);
console.log(`inflate frame ${inflateFrame.length} B (60 MiB inflated), bomb frame ${bombFrame.length} B (1 GiB inflated)`);

for (const name of ['quay', 'ws']) {
  if (values.only !== undefined && values.only !== name) continue;
  const server = await startServerProcess(name === 'quay' ? 'echo-quay' : 'echo-ws', {
    nodeFlags: [...(values['node-flag'] ?? []), '--import', new URL('./servers/loop-delay.js', import.meta.url).href],
  });
  // With server flags (e.g. --trace-gc), what the server prints goes to our stderr.
  if (values['node-flag'] !== undefined) server.child.stdout!.on('data', (b: Buffer) => void process.stderr.write(b));
  try {
    await loopDelay(server);
    if (values.phase !== 'bombs') {
      const until = Date.now() + SECONDS * 1000;
      const [sent, gets] = await Promise.all([inflatePhase(server.port, inflateFrame), getClient(server.port, until)]);
      console.log(`${name} inflate: ${sent} messages of 60 MiB; GETs ${JSON.stringify(gets)}; loop ${await loopDelay(server)}`);
    }
    if (values.phase === 'inflate') continue;
    const bombUntil = Date.now() + SECONDS * 1000;
    const [refused, bombGets] = await Promise.all([bombPhase(server.port, bombFrame, () => Date.now() >= bombUntil), getClient(server.port, bombUntil)]);
    console.log(`${name} bombs: ${refused} refused; GETs ${JSON.stringify(bombGets)}; loop ${await loopDelay(server)}`);
  } finally {
    await server.stop();
  }
}
