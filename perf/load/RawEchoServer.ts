/**
 * The selftest's target: a WebSocket echo on raw node:net, as little work per message as a server can do (the
 * handshake with a regular expression, frames unmasked and echoed, a read's frames answered in one write; no
 * UTF-8 validation, no fragmentation, no limits). Whatever rate the load generator reaches against it is the
 * generator's own ceiling on the machine. Runs on the calling thread, or on a worker thread (its own core).
 */
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createHash } from 'node:crypto';

export interface RawEchoServer {
  port: number;
  /** 'main' or 'worker': where the server runs. */
  thread: 'main' | 'worker';
  close(): Promise<void>;
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** RFC 6455 §1.3. The server depends on node: built-ins only (no quay code), and starts fast on a worker. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const KEY = /^sec-websocket-key:[ \t]*(\S+)/im;

/** Starts the echo on this thread. */
export async function startRawEchoServer(port = 0, host = '127.0.0.1'): Promise<RawEchoServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serve(socket);
  });
  server.listen(port, host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    thread: 'main',
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Starts the echo on a worker thread of this process. */
export async function startRawEchoServerThread(port = 0, host = '127.0.0.1'): Promise<RawEchoServer> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { quayRawEcho: { port, host } } });
  const [message] = (await Promise.race([once(worker, 'message'), once(worker, 'error').then(([e]) => Promise.reject(e as Error))])) as [
    { port: number },
  ];
  return {
    port: message.port,
    thread: 'worker',
    close: async () => {
      await worker.terminate();
    },
  };
}

function serve(socket: Socket): void {
  socket.setNoDelay(true);
  let pending: Buffer | undefined;
  let open = false;
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    let buf = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
    pending = undefined;
    if (!open) {
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (buf.length > 16 * 1024) socket.destroy();
        else pending = buf;
        return;
      }
      const key = KEY.exec(buf.toString('latin1', 0, end));
      if (key === null) {
        socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      // RFC 6455 §4.2.2: the 101 with the accept key.
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${createHash('sha1').update(key[1]! + GUID, 'latin1').digest('base64')}\r\n\r\n`,
      );
      open = true;
      buf = buf.subarray(end + 4);
    }
    const consumed = echoFrames(buf, socket);
    // 'data' chunks are never reused by Node: keeping a view is safe.
    if (consumed < buf.length) pending = buf.subarray(consumed);
  });
}

/**
 * Echoes the complete frames at the start of `buf` in one write and returns the bytes they took. A client frame
 * (RFC 6455 §5.2) is masked: its echo is the same header without the mask bit and key, and the unmasked payload.
 */
function echoFrames(buf: Buffer, socket: Socket): number {
  // Pass 1: the complete frames and the size of their echo (4 bytes less each: no masking key).
  let pos = 0;
  let outBytes = 0;
  for (let end = frameEnd(buf, 0); end > 0; end = frameEnd(buf, pos)) {
    outBytes += end - pos - 4;
    pos = end;
  }
  if (outBytes === 0) return pos;
  const out = Buffer.allocUnsafe(outBytes);
  let at = 0;
  let closed = false;
  for (let p = 0; p < pos && !closed; ) {
    const end = frameEnd(buf, p);
    const payloadAt = p + headerBytes(buf[p + 1]!);
    const keyless = payloadAt - 4 - p;
    buf.copy(out, at, p, p + keyless);
    out[at + 1]! &= 0x7f; // no mask from a server (§5.1)
    const outPayload = at + keyless;
    // §5.3: payload octet i XOR masking key octet i mod 4.
    const k0 = buf[payloadAt - 4]!;
    const k1 = buf[payloadAt - 3]!;
    const k2 = buf[payloadAt - 2]!;
    const k3 = buf[payloadAt - 1]!;
    for (let i = payloadAt, o = outPayload; i < end; i += 4, o += 4) {
      out[o] = buf[i]! ^ k0;
      if (i + 1 < end) out[o + 1] = buf[i + 1]! ^ k1;
      if (i + 2 < end) out[o + 2] = buf[i + 2]! ^ k2;
      if (i + 3 < end) out[o + 3] = buf[i + 3]! ^ k3;
    }
    // A close is echoed, and then the server closes TCP (§7.1.1).
    closed = (buf[p]! & 0x0f) === 0x8;
    at = outPayload + (end - payloadAt);
    p = end;
  }
  if (closed) socket.end(out.subarray(0, at));
  else socket.write(out);
  return pos;
}

/** The header of a masked frame from its second byte: 2, the extended length, the 4-byte key (§5.2). */
function headerBytes(b1: number): number {
  const len7 = b1 & 0x7f;
  return (len7 < 126 ? 2 : len7 === 126 ? 4 : 10) + 4;
}

/** Where the frame at `p` ends, or -1 when it is not complete. */
function frameEnd(buf: Buffer, p: number): number {
  if (buf.length - p < 2) return -1;
  const len7 = buf[p + 1]! & 0x7f;
  const header = headerBytes(len7);
  if (buf.length - p < header) return -1;
  const length = len7 < 126 ? len7 : len7 === 126 ? buf.readUInt16BE(p + 2) : buf.readUInt32BE(p + 2) * 0x1_0000_0000 + buf.readUInt32BE(p + 6);
  const end = p + header + length;
  return end <= buf.length ? end : -1;
}

// On a worker thread started by startRawEchoServerThread: serve, and tell the port.
const config = isMainThread ? undefined : (workerData as { quayRawEcho?: { port: number; host: string } } | null)?.quayRawEcho;
if (config !== undefined) {
  const server = await startRawEchoServer(config.port, config.host);
  parentPort!.postMessage({ port: server.port });
}
