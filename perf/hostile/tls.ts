/**
 * The TLS side of `npm run bench:hostile`: the certificate both servers get, real ClientHellos (made by node:tls
 * against a capturing socket, so the stalled and refused hellos are what a client really sends), and https clients
 * (keep-alive GETs, GETs on a new connection each, the `/stats` route over https). 127.0.0.1 only; every wait is
 * bounded.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { testCertificates } from '../../examples/certificates.js';
import { HOST, percentile, sleep, statusOf } from './clients.js';

/** Removes the files of {@link tlsMaterial}, if they were made. */
export function removeTlsMaterial(): void {
  material?.remove();
  material = undefined;
}

/** The certificate the servers are given (files, for their command line) and the CA the clients trust. */
export interface TlsMaterial {
  /** PEM of the test CA that signed the server's certificate. */
  ca: string;
  keyFile: string;
  certFile: string;
  /** The server flags: `--tls --tls-key FILE --tls-cert FILE`. */
  serverArgs: string[];
  /** Removes the files. */
  remove(): void;
}

let material: TlsMaterial | undefined;

/** The test PKI of examples/certificates.ts (openssl), written once per run to a temporary directory. */
export function tlsMaterial(): TlsMaterial {
  if (material !== undefined) return material;
  const certs = testCertificates();
  const dir = mkdtempSync(join(tmpdir(), 'quay-hostile-tls-'));
  const keyFile = join(dir, 'server.key');
  const certFile = join(dir, 'server.pem');
  writeFileSync(keyFile, certs.server.key);
  writeFileSync(certFile, certs.server.cert);
  material = {
    ca: certs.ca.cert,
    keyFile,
    certFile,
    serverArgs: ['--tls', '--tls-key', keyFile, '--tls-cert', certFile],
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  return material;
}

/**
 * The first TLS record node:tls sends with `options` (its ClientHello), caught by a plain TCP server that closes
 * as soon as the record is complete (RFC 8446 §5.1: a 5-byte header, the length in bytes 3-4).
 */
export function captureClientHello(options: ConnectionOptions = {}, timeoutMs = 5_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let client: TLSSocket | undefined;
    const server = createServer((socket) => {
      let buf = Buffer.alloc(0);
      socket.on('error', () => {});
      socket.on('data', (b: Buffer) => {
        buf = Buffer.concat([buf, b]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) finish(undefined, buf.subarray(0, 5 + buf.readUInt16BE(3)));
      });
    });
    const timer = setTimeout(() => finish(new Error('no ClientHello captured')), timeoutMs);
    let done = false;
    function finish(error: Error | undefined, hello?: Buffer): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client?.destroy();
      server.close();
      if (error === undefined) resolve(Buffer.from(hello!));
      else reject(error);
    }
    server.listen(0, HOST, () => {
      client = tlsConnect({ host: HOST, port: (server.address() as AddressInfo).port, rejectUnauthorized: false, ...options });
      client.on('error', () => {});
    });
  });
}

/** The hellos of the scenarios: a modern one (TLS 1.3, SNI), one offering TLS 1.0-1.1 only, one with no usable cipher. */
export interface Hellos {
  modern: Buffer;
  legacy: Buffer;
  noSharedCipher: Buffer;
}

let hellos: Hellos | undefined;

export async function clientHellos(): Promise<Hellos> {
  hellos ??= {
    modern: await captureClientHello({ servername: 'localhost' }),
    // OpenSSL 3 refuses TLS < 1.2 at its default security level: level 0 lets the client offer them.
    legacy: await captureClientHello({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
    // RSA key exchange only: the server's key is ECDSA P-256, so no suite can be agreed.
    noSharedCipher: await captureClientHello({ maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA' }),
  };
  return hellos;
}

/** An https connection to the server, trusting the test CA; rejects after `timeoutMs` or on a failed handshake. */
export function connectTls(port: number, ca: string, timeoutMs = 5_000): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: HOST, port, ca });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('TLS connect timeout'));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.on('error', () => {});
      resolve(socket);
    });
    const onError = (e: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    socket.once('error', onError);
  });
}

/** Sends `request` over https and collects the answer until close or `timeoutMs`; the text, or undefined. */
export async function tlsExchange(port: number, ca: string, request: string, timeoutMs = 5_000, maxBytes = 1 << 20): Promise<string | undefined> {
  const t0 = performance.now();
  let socket: TLSSocket;
  try {
    socket = await connectTls(port, ca, timeoutMs);
  } catch {
    return undefined;
  }
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    };
    const timer = setTimeout(finish, Math.max(1, timeoutMs - (performance.now() - t0)));
    socket.on('data', (b: Buffer) => {
      if (text.length < maxBytes) text += b.toString('latin1');
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.write(request);
  });
}

/** GET `path` over https with Connection: close and parse a JSON body (the /stats routes); undefined when it fails. */
export async function getJsonTls<T>(port: number, ca: string, path: string, timeoutMs = 5_000): Promise<T | undefined> {
  const text = await tlsExchange(port, ca, `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, timeoutMs);
  if (text === undefined || statusOf(text) !== 200) return undefined;
  const m = /\{.*\}/s.exec(text.slice(text.indexOf('\r\n\r\n') + 4));
  try {
    return m === null ? undefined : (JSON.parse(m[0]) as T);
  } catch {
    return undefined;
  }
}

/** GET /hello over https on a new connection: "yes (200)", or why not. */
export async function answersTls(port: number, ca: string, exited: boolean): Promise<string> {
  if (exited) return 'no (process gone)';
  const text = await tlsExchange(port, ca, `GET /hello HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, 5_000);
  const status = text === undefined ? undefined : statusOf(text);
  return status === 200 ? 'yes (200)' : `no (${text === undefined ? 'no handshake' : (status ?? 'no answer')})`;
}

/** Latencies (ms) of the GETs a victim made, and its failures. */
export class Latencies {
  readonly ms: number[] = [];
  /** When each GET started (performance.now()), in the order of `ms`. */
  readonly startedAt: number[] = [];
  errors = 0;

  add(startedAt: number): void {
    this.startedAt.push(startedAt);
    this.ms.push(performance.now() - startedAt);
  }

  /** When the slowest GET started, in seconds after `origin` (e.g. "12.3"), or "-". */
  slowestAt(origin: number): string {
    let at = -1;
    for (let i = 0; i < this.ms.length; i++) if (at < 0 || this.ms[i]! > this.ms[at]!) at = i;
    return at < 0 ? '-' : ((this.startedAt[at]! - origin) / 1000).toFixed(1);
  }

  /** "p50 / p99 / max" in ms, or "-" when none succeeded. */
  summary(): string {
    const sorted = [...this.ms].sort((a, b) => a - b);
    if (sorted.length === 0) return '-';
    return `${percentile(sorted, 50).toFixed(2)} / ${percentile(sorted, 99).toFixed(1)} / ${sorted[sorted.length - 1]!.toFixed(0)}`;
  }
}

/** Writes one GET /hello on `socket` and resolves when "hello world\n" (the end of the answer) came. */
function getHello(socket: Socket, timeoutMs: number, close: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let tail = '';
    const timer = setTimeout(() => done(new Error('GET timeout')), timeoutMs);
    const onData = (b: Buffer): void => {
      tail = (tail + b.toString('latin1')).slice(-64);
      if (tail.endsWith('hello world\n')) done();
    };
    const onClose = (): void => done(new Error('closed'));
    function done(e?: Error): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (e === undefined) resolve();
      else reject(e);
    }
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.write(`GET /hello HTTP/1.1\r\nHost: ${HOST}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`);
  });
}

/** Resolves once `socket` closed, or after `ms`. */
function closed(socket: Socket, ms: number): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    socket.once('close', done);
    socket.resume();
    function done(): void {
      clearTimeout(timer);
      socket.off('close', done);
      resolve();
    }
  });
}

/**
 * The legitimate client of the TLS scenarios, until `stop()`: sequential GET /hello over one keep-alive https
 * connection (reconnecting when it closes), and, every `freshEveryMs`, a GET on a new connection (its time
 * includes the TCP connect and the handshake).
 */
export class HttpsVictim {
  readonly keepAlive = new Latencies();
  readonly fresh = new Latencies();
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly port: number,
    private readonly ca: string,
    private readonly alive: () => boolean,
    freshEveryMs = 500,
  ) {
    this.loops = [this.keepAliveLoop(), this.freshLoop(freshEveryMs)];
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async keepAliveLoop(): Promise<void> {
    let socket: TLSSocket | undefined;
    while (this.running && this.alive()) {
      try {
        socket ??= await connectTls(this.port, this.ca);
        const t = performance.now();
        await getHello(socket, 10_000, false);
        this.keepAlive.add(t);
      } catch {
        this.keepAlive.errors++;
        socket?.destroy();
        socket = undefined;
        await sleep(50);
      }
    }
    socket?.destroy();
  }

  private async freshLoop(everyMs: number): Promise<void> {
    while (this.running && this.alive()) {
      const t = performance.now();
      let socket: TLSSocket | undefined;
      try {
        socket = await connectTls(this.port, this.ca, 10_000);
        await getHello(socket, 10_000, true);
        this.fresh.add(t);
        // As curl does: read on until the server's close (its close_notify and FIN). A client that destroys its
        // socket with the close_notify unread resets the connection, which the server may see as an I/O error.
        await closed(socket, 2_000);
      } catch {
        this.fresh.errors++;
      } finally {
        socket?.destroy();
      }
      await sleep(Math.max(0, everyMs - (performance.now() - t)));
    }
  }
}
