/**
 * The attacking side of `npm run bench:hostile`: raw node:net clients that speak just enough HTTP/1.1 and
 * RFC 6455 to misbehave on purpose. 127.0.0.1 only; every wait is bounded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';

export const HOST = '127.0.0.1';
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Connects, resolves with the socket (noDelay), rejects after `timeoutMs` or on error. */
export function connectRaw(port: number, timeoutMs = 5_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('connect timeout'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (e: Error): void => {
      clearTimeout(timer);
      reject(e);
    };
    socket.once('error', onError);
  });
}

/** Resolves once `socket` can take more (drain), closed, or after `ms`; true when drained. */
export function drainOrTimeout(socket: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean): void => {
      clearTimeout(timer);
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      resolve(v);
    };
    const onDrain = (): void => done(true);
    const onClose = (): void => done(false);
    const timer = setTimeout(() => done(false), Math.max(0, ms));
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

/**
 * Counts the ends of HTTP response heads ("\r\n\r\n") across reads. Valid for responses whose bodies hold no
 * CRLFCRLF (every body in these servers), so one head end is one response.
 */
export class HeadCounter {
  count = 0;
  private tail = 0;
  feed(bytes: Buffer): void {
    let tail = this.tail;
    let n = 0;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if ((tail === 0 || tail === 2) && b === 13) tail++;
      else if ((tail === 1 || tail === 3) && b === 10) {
        tail++;
        if (tail === 4) {
          n++;
          tail = 0;
        }
      } else tail = b === 13 ? 1 : 0;
    }
    this.tail = tail;
    this.count += n;
  }
}

export interface RawExchange {
  /** What the server sent (latin1), at most `maxBytes`. */
  text: string;
  /** How the exchange ended: the server closed (end), reset, or our deadline. */
  ended: 'end' | 'reset' | 'timeout' | 'error';
  ms: number;
}

/** Sends `request` on a fresh connection and collects the answer until close or `timeoutMs`. */
export async function rawExchange(port: number, request: string | Buffer, timeoutMs = 3_000, maxBytes = 64 * 1024): Promise<RawExchange> {
  const t0 = performance.now();
  let socket: Socket;
  try {
    socket = await connectRaw(port, timeoutMs);
  } catch (error) {
    return { text: `connect failed: ${(error as Error).message}`, ended: 'error', ms: performance.now() - t0 };
  }
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const finish = (ended: RawExchange['ended']): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, ended, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('data', (b: Buffer) => {
      if (text.length < maxBytes) text += b.toString('latin1');
    });
    socket.on('end', () => finish('end'));
    socket.on('close', () => finish('end'));
    socket.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' ? 'reset' : 'error'));
    socket.write(request);
  });
}

/** The status code of the first response in `text`, or undefined. */
export function statusOf(text: string): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return m === null ? undefined : Number(m[1]);
}

/** GET `path` with Connection: close; the status, or a word saying why none came. */
export async function probe(port: number, path = '/hello', timeoutMs = 3_000): Promise<string> {
  const r = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, timeoutMs);
  const status = statusOf(r.text);
  if (status !== undefined) return String(status);
  return r.ended === 'error' ? 'no answer (connect failed)' : `no answer (${r.ended})`;
}

/** GET `path` and parse a JSON body (the /stats routes); undefined when it fails. */
export async function getJson<T>(port: number, path: string, timeoutMs = 5_000): Promise<T | undefined> {
  const r = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, timeoutMs, 1 << 20);
  if (statusOf(r.text) !== 200) return undefined;
  const at = r.text.indexOf('\r\n\r\n');
  const body = r.text.slice(at + 4);
  // node:http answers chunked without Content-Length: take the JSON object out of the body.
  const m = /\{.*\}/s.exec(body);
  try {
    return m === null ? undefined : (JSON.parse(m[0]) as T);
  } catch {
    return undefined;
  }
}

// ---- WebSocket (RFC 6455) ----

/** One unmasked server frame (§5.1: a server never masks). */
export function serverFrame(first: number, payload: Buffer): Buffer {
  const n = payload.length;
  if (n >= 126) throw new RangeError('serverFrame: control-sized payloads only');
  return Buffer.concat([Buffer.from([first, n]), payload]);
}

/** `count` copies of `frame` back to back: one write of many frames. */
export function repeat(frame: Buffer, count: number): Buffer {
  const out = Buffer.allocUnsafe(frame.length * count);
  for (let i = 0; i < count; i++) frame.copy(out, i * frame.length);
  return out;
}

/**
 * Walks the frames a server sends (unmasked), counting pongs and noting a close code, without keeping payloads:
 * it can read a backlog of gigabytes.
 */
export class ServerFrameScanner {
  pongs = 0;
  frames = 0;
  closeCode: number | undefined;
  private header = Buffer.alloc(14);
  private headerHave = 0;
  private skip = 0;
  private opcode = 0;
  private closePayload: number[] = [];

  feed(b: Buffer): void {
    let i = 0;
    while (i < b.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - i);
        if (this.opcode === 0x8 && this.closePayload.length < 2) for (let k = 0; k < n && this.closePayload.length < 2; k++) this.closePayload.push(b[i + k]!);
        this.skip -= n;
        i += n;
        if (this.skip === 0) this.endFrame();
        continue;
      }
      this.header[this.headerHave++] = b[i++]!;
      if (this.headerHave < 2) continue;
      const len7 = this.header[1]! & 0x7f;
      const need = 2 + (len7 < 126 ? 0 : len7 === 126 ? 2 : 8) + (this.header[1]! & 0x80 ? 4 : 0);
      if (this.headerHave < need) continue;
      const length = len7 < 126 ? len7 : len7 === 126 ? this.header.readUInt16BE(2) : this.header.readUInt32BE(2) * 0x1_0000_0000 + this.header.readUInt32BE(6);
      this.opcode = this.header[0]! & 0x0f;
      this.headerHave = 0;
      this.skip = length;
      if (length === 0) this.endFrame();
    }
  }

  private endFrame(): void {
    this.frames++;
    if (this.opcode === 0xa) this.pongs++;
    else if (this.opcode === 0x8) this.closeCode = this.closePayload.length >= 2 ? (this.closePayload[0]! << 8) | this.closePayload[1]! : 1005;
    this.closePayload = [];
  }
}

export interface WsHandshake {
  socket: Socket;
  /** The 101 head (latin1). */
  head: string;
  /** Bytes after the head (the first frames). */
  rest: Buffer;
}

/** Opens a WebSocket to `path` with a raw socket; rejects unless the answer is 101 with the right accept key. */
export async function wsHandshake(port: number, path: string, extensions?: string, timeoutMs = 5_000): Promise<WsHandshake> {
  const socket = await connectRaw(port, timeoutMs);
  const key = randomBytes(16).toString('base64');
  const expected = createHash('sha1').update(key + GUID).digest('base64');
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extensions === undefined ? '' : `Sec-WebSocket-Extensions: ${extensions}\r\n`}\r\n`,
  );
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error('handshake timeout')), timeoutMs);
    const onData = (b: Buffer): void => {
      buf = Buffer.concat([buf, b]);
      const at = buf.indexOf('\r\n\r\n');
      if (at < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      const head = buf.toString('latin1', 0, at);
      if (statusOf(head) !== 101) return fail(new Error(`handshake answered ${head.split('\r\n')[0]}`));
      if (!head.includes(expected)) return fail(new Error('bad Sec-WebSocket-Accept'));
      socket.pause();
      resolve({ socket, head, rest: buf.subarray(at + 4) });
    };
    socket.on('data', onData);
    socket.once('error', fail);
  });
}

/** The server side of a handshake, for a hostile server: reads the request head and answers 101. */
export function acceptHandshake(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('no upgrade request')), 5_000);
    const onData = (b: Buffer): void => {
      text += b.toString('latin1');
      const at = text.indexOf('\r\n\r\n');
      if (at < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      const key = /^sec-websocket-key:\s*(\S+)/im.exec(text.slice(0, at));
      if (key === null) return reject(new Error('no Sec-WebSocket-Key'));
      const accept = createHash('sha1').update(key[1]! + GUID).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      resolve();
    };
    socket.on('data', onData);
  });
}

/** Opens `count` raw connections, at most `concurrency` connecting at once; failures are counted. */
export async function openMany(port: number, count: number, concurrency = 128, timeoutMs = 5_000): Promise<{ sockets: Socket[]; failed: number; errors: Map<string, number> }> {
  const sockets: Socket[] = [];
  const errors = new Map<string, number>();
  let failed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      try {
        const s = await connectRaw(port, timeoutMs);
        s.on('error', () => {});
        sockets.push(s);
      } catch (error) {
        failed++;
        const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        errors.set(code, (errors.get(code) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { sockets, failed, errors };
}

/** "408 x1990, none x10": a histogram of strings, most frequent first. */
export function histogram(values: Iterable<string>): string {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} x${n}`).join(', ') || '-';
}

/** The p-th percentile (0-100) of sorted numbers; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
