/**
 * Opener processes: hold many WebSocket connections to a server for the memory benchmarks (perf/ws-memory,
 * `npm run profile -- heap`), without quay-load, so that those depend on nothing but the servers.
 *
 * The child (this file run as a script: `node dist/perf/opener.js --port P --count N [--mode idle|active]
 * [--size S] [--local-address A] [--tls]`) speaks just enough WebSocket (over TLS with --tls, the server's
 * certificate not verified): a fixed handshake to /echo, then, in active
 * mode, one pre-masked binary frame written again whenever the previous echo has fully arrived (counted in
 * bytes, no parsing). It prints `open N failed F` once its connections are open; on stdin, `count` prints
 * `count M` (messages echoed so far) and `close` (or EOF) ends every connection and the process.
 * The parent side is {@link startOpener} / {@link openMany}: one process per --per-process connections (the
 * open-file limit here is 20,000 per process), each from its own 127.0.0.x address, pinned to the load core.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { maskedFrame } from './rawFrames.js';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { HAVE_TASKSET, LOAD_CORE } from './lib.js';

/** The per-process open-file limit here is 20,000 (hard): an opener stays well under it. */
export const MAX_PER_PROCESS = 19_000;
/** Connections being opened at once per opener: with 2-4 openers, under the listen backlog (511) of the servers. */
const OPEN_CONCURRENCY = 128;

/** A valid Sec-WebSocket-Key (base64 of 16 bytes, RFC 6455 §4.1); the same for every connection is fine here. */
const KEY = randomBytes(16).toString('base64');

/** One masked binary frame of `size` bytes (§5.2, §5.3), written again and again. Its echo is 4 bytes shorter. */
function binaryFrame(size: number): Buffer {
  return maskedFrame(0x82, randomBytes(size)); // FIN + binary
}

/** The child process: opens the connections, says `open N failed F`, then obeys stdin. */
async function runOpener(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      count: { type: 'string' },
      mode: { type: 'string', default: 'idle' },
      size: { type: 'string', default: '64' },
      'local-address': { type: 'string' },
      tls: { type: 'boolean', default: false },
    },
  });
  const tls = values.tls === true;
  const port = Number(values.port);
  const count = Number(values.count);
  const active = values.mode === 'active';
  const localAddress = values['local-address'];
  const frame = binaryFrame(Number(values.size));
  const echoBytes = frame.length - 4;
  const request = Buffer.from(
    `GET /echo HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    'latin1',
  );
  const sockets: Socket[] = [];
  let opened = 0;
  let failed = 0;
  let messages = 0;

  const openOne = (): Promise<void> =>
    new Promise((resolve) => {
      const at = { port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) };
      const socket = tls ? tlsConnect({ ...at, rejectUnauthorized: false }) : connect(at);
      let handshake = true;
      let head = '';
      let received = 0;
      const fail = (): void => {
        if (handshake) {
          handshake = false;
          failed++;
          resolve();
        }
        socket.destroy();
      };
      socket.setNoDelay(true);
      socket.on('error', fail);
      socket.on('close', fail);
      socket.on(tls ? 'secureConnect' : 'connect', () => socket.write(request));
      socket.on('data', (chunk: Buffer) => {
        if (handshake) {
          head += chunk.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!head.startsWith('HTTP/1.1 101')) return fail();
          handshake = false;
          opened++;
          sockets.push(socket);
          if (active) socket.write(frame);
          resolve();
          received = head.length - end - 4; // bytes after the 101 (none expected before our first frame)
          return;
        }
        received += chunk.length;
        while (received >= echoBytes) {
          received -= echoBytes;
          messages++;
          socket.write(frame);
        }
      });
    });

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      await openOne();
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, worker));
  console.log(`open ${opened} failed ${failed}`);
  // Commands on stdin: `count` prints the messages echoed so far; `close` (or EOF) ends every connection.
  const lines = createInterface({ input: process.stdin });
  const close = (): void => {
    for (const s of sockets) s.destroy();
    process.exit(0);
  };
  lines.on('line', (line) => {
    if (line === 'count') console.log(`count ${messages}`);
    else if (line === 'close') close();
  });
  lines.on('close', close);
}

/** An opener process, seen from its parent. */
export interface Opener {
  child: ChildProcess;
  opened: number;
  failed: number;
  /** Messages echoed so far (active mode). */
  count(): Promise<number>;
  close(): Promise<void>;
}

/** Starts an opener process on the load core; resolves once its connections are open. `tls`: wss://. */
export function startOpener(port: number, count: number, mode: 'idle' | 'active', size: number, localAddress: string, tls = false): Promise<Opener> {
  const argv = [process.execPath, fileURLToPath(import.meta.url), '--port', String(port), '--count', String(count), '--mode', mode, '--size', String(size), '--local-address', localAddress];
  if (tls) argv.push('--tls');
  const child = HAVE_TASKSET ? spawn('taskset', ['-c', LOAD_CORE, ...argv], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const nextLine = (): Promise<string> => new Promise((r) => waiting.push(r));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`opener exited with ${code} before opening`)));
    void nextLine().then((line) => {
      const m = /^open (\d+) failed (\d+)$/.exec(line);
      if (m === null) return reject(new Error(`opener said: ${line}`));
      resolve({
        child,
        opened: Number(m[1]),
        failed: Number(m[2]),
        count: async () => {
          child.stdin!.write('count\n');
          return Number(/^count (\d+)$/.exec(await nextLine())?.[1] ?? NaN);
        },
        close: () =>
          new Promise<void>((r) => {
            if (child.exitCode !== null) return r();
            child.once('exit', () => r());
            child.stdin!.end('close\n');
          }),
      });
    });
  });
}

/** Opens `total` connections over as many openers as needed, each from its own loopback address. */
export async function openMany(port: number, total: number, mode: 'idle' | 'active', size: number, perProcess: number, tls = false): Promise<Opener[]> {
  const n = Math.ceil(total / perProcess);
  return Promise.all(Array.from({ length: n }, (_, i) => startOpener(port, Math.min(perProcess, total - i * perProcess), mode, size, `127.0.0.${2 + i}`, tls)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runOpener();
