/**
 * Test helpers for WebSocket over loopback: bounded waits, and a raw node:net peer that does the handshake by hand
 * and sends frames that a real client library would refuse to send (shared by the interop and deflate tests).
 */
import type { Test } from 'tap';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export const HOST = '127.0.0.1';

// ------------------------------------------------------------------------------------------------ waiting

/** Polls `predicate` every 5 ms until it holds; fails after `ms` (bounded: at most ms/5 polls). */
export async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const polls = Math.ceil(ms / 5);
  for (let i = 0; i < polls; i++) {
    if (predicate()) return;
    await sleep(5);
  }
  if (!predicate()) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** `promise`, or a rejection after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------------------------------------ raw side

/** A client frame; masked unless told otherwise (RFC 6455 §5.2, §5.3). */
export function clientFrame(opcode: number, payload: Buffer | string, opts: { fin?: boolean; rsv?: number; mask?: boolean } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const mask = opts.mask ?? true;
  const len = data.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const frame = Buffer.alloc(head + (mask ? 4 : 0) + len);
  frame[0] = ((opts.fin ?? true) ? 0x80 : 0) | (opts.rsv ?? 0) | opcode;
  if (len < 126) frame[1] = len;
  else if (len < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  let p = head;
  if (mask) {
    frame[1]! |= 0x80;
    const key = randomBytes(4);
    key.copy(frame, p);
    p += 4;
    for (let i = 0; i < len; i++) frame[p + i] = data[i]! ^ key[i & 3]!;
  } else {
    data.copy(frame, p);
  }
  return frame;
}

export interface ServerFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Parses the frames a server sent (an independent little parser: not quay's). Stops at an incomplete frame. */
export function parseFrames(bytes: Buffer): ServerFrame[] {
  const frames: ServerFrame[] = [];
  walkFrames(bytes, (frame) => void frames.push(frame), 10_000);
  return frames;
}

/**
 * Calls `onFrame` for each whole frame of `bytes`, at most `maxFrames`, and returns how many bytes they took (the
 * rest is an incomplete frame, for an incremental reader to keep). `payload` is a view of `bytes`.
 */
export function walkFrames(bytes: Buffer, onFrame: (frame: ServerFrame) => void, maxFrames: number): number {
  let p = 0;
  for (let n = 0; n < maxFrames && p + 2 <= bytes.length; n++) {
    const b0 = bytes[p]!;
    const b1 = bytes[p + 1]!;
    let len = b1 & 0x7f;
    let q = p + 2;
    if (len === 126) {
      if (q + 2 > bytes.length) break;
      len = bytes.readUInt16BE(q);
      q += 2;
    } else if (len === 127) {
      if (q + 8 > bytes.length) break;
      len = Number(bytes.readBigUInt64BE(q));
      q += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked) q += 4;
    if (q + len > bytes.length) break;
    onFrame({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload: bytes.subarray(q, q + len) });
    p = q + len;
  }
  return p;
}

/** A node:net peer that did the handshake by hand; collects what the server sends until it closes. */
export class RawClient {
  private chunks: Buffer[] = [];
  readonly ended: Promise<void>;
  private done = false;

  private constructor(
    readonly socket: Socket,
    first: Buffer,
    /** The 101 response head (status line and fields). */
    readonly head: string,
  ) {
    if (first.length > 0) this.chunks.push(first);
    socket.on('data', (b: Buffer) => void this.chunks.push(b));
    this.ended = new Promise((resolve) =>
      socket.once('close', () => {
        this.done = true;
        resolve();
      }),
    );
  }

  /** Connects, sends the upgrade request, waits for the 101 head (bounded). */
  static async connect(t: Test, port: number, path: string, extraHeaders = ''): Promise<RawClient> {
    const socket = connect({ host: HOST, port });
    socket.on('error', () => {});
    t.teardown(() => void socket.destroy());
    const request =
      `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`;
    socket.write(request, 'latin1');
    const rest = await within(
      new Promise<[string, Buffer]>((resolve, reject) => {
        let head = Buffer.alloc(0);
        const onData = (b: Buffer): void => {
          head = Buffer.concat([head, b]);
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) return;
          socket.off('data', onData);
          const status = head.subarray(0, end).toString('latin1').split('\r\n')[0]!;
          if (!status.startsWith('HTTP/1.1 101')) reject(new Error(`handshake answered: ${status}`));
          else resolve([head.subarray(0, end).toString('latin1'), head.subarray(end + 4)]);
        };
        socket.on('data', onData);
        socket.once('close', () => reject(new Error('closed during the handshake')));
      }),
      3000,
      `raw handshake ${path}`,
    );
    return new RawClient(socket, rest[1], rest[0]);
  }

  get isClosed(): boolean {
    return this.done;
  }

  frames(): ServerFrame[] {
    return parseFrames(Buffer.concat(this.chunks));
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }
}

/** The code of a close frame payload (1005 when it has none). */
export function closeCodeOf(frame: ServerFrame | undefined): number | undefined {
  if (frame === undefined || frame.opcode !== 0x8) return undefined;
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
}
