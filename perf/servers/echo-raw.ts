/**
 * The ceiling: the echo server's routes on raw node:net, as little work per message as a WebSocket server can do.
 * A minimal handshake (the request head found by its blank line, the key by a regular expression, RFC 6455
 * §4.2.2 accept key), frames unmasked and answered with one write per read; no UTF-8 validation, no
 * fragmentation rules, no limits, no close handshake beyond echoing the close and ending (§7.1.1). Not a
 * server to use: the rate no WebSocket server in Node can pass on this machine.
 *
 * /echo: every data frame back to its sender; /broadcast: every data frame to every /broadcast socket (the same
 * Buffer written to each); /hello: HTTP hello (keep-alive, pipelined requests answered in one write); /stats:
 * memory JSON; /heapsnapshot: a heap snapshot's path (stats.ts). Prints `listening PORT`; `--port N`.
 *
 * It is also perf/ws-memory's "bare net.Socket" baseline: per connection, one socket, one closure and one small
 * object.
 *
 * `--tls`: the same over node:tls (the test certificate, args.ts): the raw node:tls echo, the ceiling of wss.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { endianness } from 'node:os';
import { createServer as createTlsServer } from 'node:tls';
import { announce, exitOnSignal, serverPort, serverTls } from './args.js';
import { heapSnapshotPath, memoryStatsJson } from './stats.js';

exitOnSignal();

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'; // RFC 6455 §1.3
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const KEY = /^sec-websocket-key:[ \t]*(\S+)/im;
const MAX_HEAD_BYTES = 16 * 1024;
const HELLO = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n', 'latin1');
const LITTLE_ENDIAN = endianness() === 'LE';

const enum Mode {
  HTTP,
  ECHO,
  ROOM,
}

const room = new Set<Socket>();

class RawConnection {
  mode = Mode.HTTP;
  /**
   * An incomplete request head, or a frame whose header is not complete yet (a few bytes): the chunks, joined
   * with the next read ('data' chunks are never reused by Node, so keeping them is safe).
   */
  private pending: Buffer | undefined = undefined;
  /**
   * A frame split across reads (every 64 KiB message: Node reads at most 64 KiB at a time), in a buffer of its
   * exact size: each read is copied and unmasked as it arrives, one copy per byte, as quay's FrameParser does,
   * so that the 64 KiB comparison is between the same amounts of copying.
   */
  private partial: Buffer | undefined = undefined;
  private partialHave = 0;

  constructor(readonly socket: Socket) {}

  onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.partial !== undefined) {
      const frame = this.partial;
      const n = Math.min(chunk.length, frame.length - this.partialHave);
      chunk.copy(frame, this.partialHave, 0, n);
      unmaskPart(frame, this.partialHave, this.partialHave + n);
      this.partialHave += n;
      if (this.partialHave < frame.length) return;
      this.partial = undefined;
      this.frames(frame, true);
      if (n === chunk.length) return;
      buf = chunk.subarray(n);
    } else if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    if (this.mode === Mode.HTTP) {
      const at = this.http(buf);
      if (at < 0) return;
      buf = buf.subarray(at);
    }
    const consumed = this.frames(buf, false);
    if (consumed === buf.length) return;
    const rest = buf.subarray(consumed);
    const bytes = frameBytes(rest, 0);
    if (bytes === 0) {
      this.pending = rest;
      return;
    }
    this.partial = Buffer.allocUnsafe(bytes);
    rest.copy(this.partial);
    this.partialHave = rest.length;
    unmaskPart(this.partial, 0, rest.length);
  }

  /** Answers the complete request heads in `buf`; returns where WebSocket bytes start after a 101, -1 otherwise. */
  private http(buf: Buffer): number {
    let pos = 0;
    let hellos = 0;
    for (;;) {
      const end = buf.indexOf(CRLFCRLF, pos);
      if (end < 0) {
        if (buf.length - pos > MAX_HEAD_BYTES) this.socket.destroy();
        else if (pos < buf.length) this.pending = buf.subarray(pos);
        break;
      }
      const head = buf.toString('latin1', pos, end);
      pos = end + 4;
      const sp = head.indexOf(' ');
      const path = head.slice(sp + 1, head.indexOf(' ', sp + 1));
      const key = path === '/echo' || path === '/broadcast' ? KEY.exec(head) : null;
      if (key !== null) {
        this.flushHellos(hellos);
        const accept = createHash('sha1').update(key[1]! + GUID, 'latin1').digest('base64');
        this.socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        this.mode = path === '/echo' ? Mode.ECHO : Mode.ROOM;
        if (this.mode === Mode.ROOM) room.add(this.socket);
        return pos;
      }
      if (path === '/stats' || path === '/heapsnapshot') {
        this.flushHellos(hellos);
        hellos = 0;
        const body = path === '/stats' ? memoryStatsJson() : heapSnapshotPath();
        const type = path === '/stats' ? 'application/json' : 'text/plain';
        this.socket.write(`HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      } else {
        hellos++;
      }
    }
    this.flushHellos(hellos);
    return -1;
  }

  private flushHellos(n: number): void {
    if (n === 1) this.socket.write(HELLO);
    else if (n > 1) this.socket.write(Buffer.concat(Array.from({ length: n }, () => HELLO)));
  }

  /**
   * Handles the complete frames at the start of `buf` and returns the bytes they took (`unmasked`: one frame,
   * already unmasked by onData). Works in place, with no allocation for data frames: each payload is unmasked where it lies (RFC 6455 §5.3), its header moved 4 bytes
   * forward over the masking key with the mask bit cleared (§5.1: a server frame is the same header, unmasked),
   * and the frames after the first moved back to close the 4-byte gaps; the result is one view, written once to
   * the sender (echo) or to every room socket. A ping is answered with a pong; a close is echoed, then TCP ends.
   */
  private frames(buf: Buffer, unmasked: boolean): number {
    let p = 0;
    let out = -1; // where the outgoing frames start
    let w = 0; // where the next outgoing frame goes
    let close: Buffer | undefined;
    for (let end = frameEnd(buf, 0); end > 0; end = frameEnd(buf, p)) {
      const opcode = buf[p]! & 0x0f;
      const payloadAt = p + headerBytes(buf[p + 1]!);
      const keyAt = payloadAt - 4;
      if (!unmasked) unmask(buf, payloadAt, end, buf, keyAt, 0);
      buf.copyWithin(p + 4, p, keyAt); // the header over the key
      const frame = p + 4;
      buf[frame + 1]! &= 0x7f;
      p = end;
      if (opcode === 0x8) {
        close = buf.subarray(frame, end);
        break;
      }
      if (opcode === 0x9) {
        buf[frame] = (buf[frame]! & 0xf0) | 0xa; // ping -> pong, to the sender only (§5.5.2)
        this.socket.write(buf.subarray(frame, end));
        continue;
      }
      if (opcode === 0xa) continue; // unsolicited pong: ignored (§5.5.3)
      if (out < 0) {
        out = frame;
        w = end;
      } else {
        buf.copyWithin(w, frame, end);
        w += end - frame;
      }
    }
    if (out >= 0) {
      const data = buf.subarray(out, w);
      if (this.mode === Mode.ECHO) this.socket.write(data);
      else for (const member of room) member.write(data);
    }
    if (close !== undefined) {
      room.delete(this.socket);
      this.socket.end(close);
      return buf.length;
    }
    return p;
  }
}

/** The header of a masked frame from its second byte: 2, the extended length, the 4-byte key (§5.2). */
function headerBytes(b1: number): number {
  const len7 = b1 & 0x7f;
  return (len7 < 126 ? 2 : len7 === 126 ? 4 : 10) + 4;
}

/** The whole size of the frame at `p` (header and payload), or 0 when its header is not complete. */
function frameBytes(buf: Buffer, p: number): number {
  if (buf.length - p < 2) return 0;
  const len7 = buf[p + 1]! & 0x7f;
  const header = headerBytes(len7);
  if (buf.length - p < header) return 0;
  const length = len7 < 126 ? len7 : len7 === 126 ? buf.readUInt16BE(p + 2) : buf.readUInt32BE(p + 2) * 0x1_0000_0000 + buf.readUInt32BE(p + 6);
  return header + length;
}

/** Where the frame at `p` ends, or -1 when it is not complete. */
function frameEnd(buf: Buffer, p: number): number {
  const bytes = frameBytes(buf, p);
  return bytes > 0 && p + bytes <= buf.length ? p + bytes : -1;
}

/**
 * XORs buf[start, end) in place with the masking key at key[keyAt..keyAt+3], starting at key octet `phase`
 * (§5.3: payload octet i with key octet i mod 4), 4 bytes at a time over the aligned middle: the ceiling must not
 * be slowed by a byte loop on 64 KiB messages.
 */
function unmask(buf: Buffer, start: number, end: number, key: Buffer, keyAt: number, phase: number): void {
  const mask = [key[keyAt]!, key[keyAt + 1]!, key[keyAt + 2]!, key[keyAt + 3]!];
  let i = start;
  if (LITTLE_ENDIAN && end - start >= 16) {
    while (((buf.byteOffset + i) & 3) !== 0) {
      buf[i] = buf[i]! ^ mask[(phase + i - start) & 3]!;
      i++;
    }
    const j = (phase + i - start) & 3;
    const word = mask[j]! | (mask[(j + 1) & 3]! << 8) | (mask[(j + 2) & 3]! << 16) | (mask[(j + 3) & 3]! << 24);
    const words = (end - i) >>> 2;
    const view = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    for (let n = 0; n < words; n++) view[n] = view[n]! ^ word;
    i += words * 4;
  }
  for (; i < end; i++) buf[i] = buf[i]! ^ mask[(phase + i - start) & 3]!;
}

/** Unmasks the payload bytes within frame[from, to) of a frame held whole in `frame` (its header is complete). */
function unmaskPart(frame: Buffer, from: number, to: number): void {
  const payloadAt = headerBytes(frame[1]!);
  const start = from > payloadAt ? from : payloadAt;
  if (start < to) unmask(frame, start, to, frame, payloadAt - 4, (start - payloadAt) & 3);
}

function onConnection(socket: Socket): void {
  socket.setNoDelay(true);
  const connection = new RawConnection(socket);
  socket.on('data', (chunk: Buffer) => connection.onData(chunk));
  socket.on('error', () => socket.destroy());
  socket.on('close', () => room.delete(socket));
}

const tls = serverTls();
const server: Server = tls === undefined ? createServer(onConnection) : createTlsServer(tls, onConnection);
server.listen(serverPort(), '127.0.0.1', () => announce((server.address() as AddressInfo).port));
