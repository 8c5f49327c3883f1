/**
 * What the load clients (WebSocket and HTTP) share: one node:net connection with no Nagle delay (or a node:tls
 * one for wss:// and https://), reads into a buffer shared by every connection of the process (Node's `onread`,
 * which node:tls honours too when it opens the TCP connection itself), a connect (+ TLS + handshake) timeout, and
 * the bookkeeping that turns the way a connection ended into one error kind (or none, when it was our own doing).
 */
import { connect } from 'node:net';
import type { Socket, TcpSocketConnectOpts } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions, SecureContext } from 'node:tls';
import type { ErrorKind } from './Measurement.js';
import type { Target } from './target.js';

/**
 * CONNECTING (TCP) -> [TLS (wss://, https://: the TLS handshake)] -> [HANDSHAKE (a protocol's opening handshake,
 * if it has one)] -> OPEN -> CLOSING (we or the peer are closing, or the socket is being destroyed) -> CLOSED (the
 * socket closed; the handler was told).
 */
export type LoadClientState = 'CONNECTING' | 'TLS' | 'HANDSHAKE' | 'OPEN' | 'CLOSING' | 'CLOSED';

/** How a run speaks TLS: the same settings (one SecureContext, its CAs parsed once) for every connection. */
export interface LoadTls {
  /** The trusted CAs (--ca FILE, or Node's default CAs). */
  secureContext: SecureContext;
  /** Verify the server's certificate and host name (false: --insecure). */
  rejectUnauthorized: boolean;
}

export interface LoadClientOptions {
  /** Local address to connect from. */
  localAddress?: string | undefined;
  /** Connect + TLS + handshake timeout. */
  timeoutMs: number;
  /** Offer permessage-deflate (WebSocket clients). */
  deflate?: boolean;
  /** TLS settings: present for wss:// and https:// targets. */
  tls?: LoadTls;
}

/** ALPN (RFC 7301): both WebSocket (RFC 6455 §4.1) and HTTP here are HTTP/1.1. */
const ALPN = ['http/1.1'];

/**
 * Reads of every connection land here: no Buffer per read. Safe to share because the bytes are consumed
 * synchronously in the read callback (parsers copy what must outlive it; handlers get views valid during the
 * call only).
 */
export const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** What a timeout in each state was waiting for. */
const PHASE: Record<LoadClientState, string> = {
  CONNECTING: 'connection',
  TLS: 'TLS handshake',
  HANDSHAKE: 'handshake',
  OPEN: 'answer',
  CLOSING: 'close',
  CLOSED: 'close',
};

export abstract class LoadClient {
  /** The workload's index of this connection (into its per-connection arrays). */
  readonly index: number;
  protected _state: LoadClientState = 'CONNECTING';
  /** performance.now() at the start of the current read: the receive time of what it carries. */
  readAt = 0;
  /** performance.now() when connect() was called and when the connection opened (0: not yet). */
  connectAt = 0;
  openedAt = 0;
  protected socket: Socket | undefined;
  /** Why the connection ended, when it was an error: the first cause is the one reported. */
  protected endKind: ErrorKind | undefined;
  protected endMessage = '';
  /** close()/destroy() were called: what follows is not an error. */
  protected closingByUs = false;

  constructor(
    index: number,
    protected readonly target: Target,
    protected readonly options: LoadClientOptions,
  ) {
    this.index = index;
  }

  get state(): LoadClientState {
    return this._state;
  }

  /** Opens the TCP connection (and TLS over it when the target says so). Call once. */
  connect(): void {
    if (this.socket !== undefined) throw new Error('connect() called twice');
    this.connectAt = performance.now();
    const tls = this.options.tls;
    const socket = tls === undefined ? this.connectPlain() : this.connectTls(tls);
    this.socket = socket;
    socket.setTimeout(this.options.timeoutMs);
    socket.on('timeout', () => this.fail('timeout', `no ${PHASE[this._state]} within ${this.options.timeoutMs} ms`));
    socket.on('error', (error: NodeJS.ErrnoException) => this.onSocketError(error));
    socket.on('close', () => this.onSocketClose());
  }

  private connectPlain(): Socket {
    const socket = connect({
      host: this.target.host,
      port: this.target.port,
      localAddress: this.options.localAddress,
      noDelay: true,
      onread: { buffer: SHARED_READ_BUFFER, callback: (n: number) => this.onRead(n) },
    });
    socket.on('connect', () => {
      if (this._state === 'CONNECTING') this.onConnect();
    });
    return socket;
  }

  /**
   * node:tls opens the TCP connection itself (no `socket` option), which keeps `onread`: the decrypted bytes land
   * in the shared buffer as plain reads do. The connection counts as connected once the TLS handshake is done
   * (and, unless --insecure, the certificate verified for the host: node:tls checks it before 'secureConnect').
   */
  private connectTls(tls: LoadTls): Socket {
    // node:tls passes localAddress and onread on to its TCP connection; @types/node's ConnectionOptions lacks them.
    const options: ConnectionOptions & Pick<TcpSocketConnectOpts, 'localAddress' | 'onread'> = {
      host: this.target.host,
      port: this.target.port,
      localAddress: this.options.localAddress,
      servername: this.target.servername,
      secureContext: tls.secureContext,
      rejectUnauthorized: tls.rejectUnauthorized,
      ALPNProtocols: ALPN,
      onread: { buffer: SHARED_READ_BUFFER, callback: (n: number) => this.onRead(n) },
    };
    const socket = tlsConnect(options);
    // tls.connect() takes no noDelay: set it on the TCP connection once it is there.
    socket.on('connect', () => {
      socket.setNoDelay(true);
      if (this._state === 'CONNECTING') this._state = 'TLS';
    });
    socket.on('secureConnect', () => {
      if (this._state === 'TLS') this.onConnect();
    });
    return socket;
  }

  /**
   * Writes pre-encoded bytes; ignored unless OPEN (for WebSocket: nothing may follow our close frame, RFC 6455
   * §5.5.1).
   */
  write(bytes: Buffer): void {
    if (this._state === 'OPEN') this.socket!.write(bytes);
  }

  /** Drops the connection at once, without an error. */
  destroy(): void {
    this.closingByUs = true;
    if (this._state !== 'CLOSED') this._state = 'CLOSING';
    this.socket?.destroy();
  }

  /** Ends the connection with an error of `kind` (the first cause is the one reported). */
  fail(kind: ErrorKind, message: string): void {
    if (this.endKind === undefined && !this.closingByUs) {
      this.endKind = kind;
      this.endMessage = message;
    }
    if (this._state !== 'CLOSED') this._state = 'CLOSING';
    this.socket?.destroy();
  }

  /** TCP (and TLS) is connected (the state is still CONNECTING or TLS): open, or begin the handshake. */
  protected abstract onConnect(): void;

  /** `n` bytes were read into {@link SHARED_READ_BUFFER}. Returns true: keep reading (false would pause). */
  protected abstract onRead(n: number): boolean;

  /**
   * The socket closed with no error recorded and not by us, in state `was`: records its cause with
   * {@link endKind} and {@link endMessage}, or leaves them for a close that is not an error.
   */
  protected abstract onUnexpectedClose(was: LoadClientState): void;

  /** The connection opened: the handler's onOpen. */
  protected abstract notifyOpen(): void;

  /** The connection closed: the handler's onEnd. */
  protected abstract notifyEnd(kind: ErrorKind | undefined, message: string): void;

  /** The connection (or its handshake) is complete at `at`: the timeout is for opening only. */
  protected open(at: number): void {
    this._state = 'OPEN';
    this.socket!.setTimeout(0);
    this.openedAt = at;
    this.notifyOpen();
  }

  private onSocketError(error: NodeJS.ErrnoException): void {
    const code = error.code ?? error.message;
    switch (this._state) {
      case 'CONNECTING':
        if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NONAME') {
          this.fail('dns', `cannot resolve ${this.target.host}: ${code}`);
        } else {
          this.fail('refused', `connect to ${this.target.host}:${this.target.port}: ${code}`);
        }
        break;
      case 'TLS':
        this.fail('tls', `TLS handshake with ${this.target.host}:${this.target.port}: ${code}${error.code === undefined ? '' : ` (${error.message})`}`);
        break;
      case 'HANDSHAKE':
        this.fail('handshake', `during the handshake: ${code}`);
        break;
      default:
        this.fail('closed', `connection error: ${code}`);
    }
  }

  private onSocketClose(): void {
    if (this._state === 'CLOSED') return;
    const was = this._state;
    this._state = 'CLOSED';
    if (this.endKind === undefined && !this.closingByUs) {
      if (was === 'TLS') {
        this.endKind = 'tls';
        this.endMessage = 'the server closed the connection during the TLS handshake';
      } else {
        this.onUnexpectedClose(was);
      }
    }
    this.notifyEnd(this.endKind, this.endMessage);
  }
}
