/**
 * A raw HTTP/1.1 keep-alive connection for load generation, on node:net: the workload writes pre-encoded
 * requests, reads go into one buffer shared by every connection (Node's `onread`), and a minimal scanner finds
 * the end of each response (status line, Content-Length or chunked).
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { HttpResponseScanner, HttpScanError } from './HttpResponseScanner.js';
import type { HttpResponseListener } from './HttpResponseScanner.js';
import type { ErrorKind } from './Measurement.js';
import type { Target } from './target.js';

/** CONNECTING -> OPEN -> CLOSING (we or the server are closing) -> CLOSED (onEnd was called). */
export type HttpLoadClientState = 'CONNECTING' | 'OPEN' | 'CLOSING' | 'CLOSED';

export interface HttpLoadHandler {
  onOpen(client: HttpLoadClient): void;
  /** A complete response; `keepAlive` false: the server closes the connection after it. */
  onResponse(client: HttpLoadClient, status: number, keepAlive: boolean): void;
  /** All responses of a read of `bytes` bytes were reported. */
  onReadComplete(client: HttpLoadClient, bytes: number): void;
  /** The connection closed; `kind` says why when it was neither our doing nor announced by the server. */
  onEnd(client: HttpLoadClient, kind: ErrorKind | undefined, message: string): void;
}

/** Shared by every connection: the bytes are scanned synchronously in the read callback, never kept. */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

export class HttpLoadClient implements HttpResponseListener {
  private _state: HttpLoadClientState = 'CONNECTING';
  readAt = 0;
  connectAt = 0;
  openedAt = 0;
  /** Responses completed on this connection. */
  responses = 0;
  private socket: Socket | undefined;
  private readonly scanner = new HttpResponseScanner(this);
  private endKind: ErrorKind | undefined;
  private endMessage = '';
  private closingByUs = false;
  /** The server said it will close (Connection: close): its close is not an error. */
  private closeAnnounced = false;

  constructor(
    /** The workload's slot of this connection. */
    readonly index: number,
    private readonly target: Target,
    private readonly handler: HttpLoadHandler,
    private readonly options: { localAddress?: string | undefined; timeoutMs: number },
  ) {}

  get state(): HttpLoadClientState {
    return this._state;
  }

  connect(): void {
    if (this.socket !== undefined) throw new Error('connect() called twice');
    this.connectAt = performance.now();
    const socket = connect({
      host: this.target.host,
      port: this.target.port,
      localAddress: this.options.localAddress,
      noDelay: true,
      onread: { buffer: SHARED_READ_BUFFER, callback: (n: number) => this.onRead(n) },
    });
    this.socket = socket;
    socket.setTimeout(this.options.timeoutMs);
    socket.on('connect', () => {
      if (this._state !== 'CONNECTING') return;
      this._state = 'OPEN';
      socket.setTimeout(0);
      this.openedAt = performance.now();
      this.handler.onOpen(this);
    });
    socket.on('timeout', () => this.fail('timeout', `no connection within ${this.options.timeoutMs} ms`));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? error.message;
      if (this._state === 'CONNECTING') this.fail('refused', `connect to ${this.target.host}:${this.target.port}: ${code}`);
      else this.fail('closed', `connection error: ${code}`);
    });
    socket.on('close', () => this.onClose());
  }

  write(bytes: Buffer): void {
    if (this._state === 'OPEN') this.socket!.write(bytes);
  }

  destroy(): void {
    this.closingByUs = true;
    if (this._state !== 'CLOSED') this._state = 'CLOSING';
    this.socket?.destroy();
  }

  fail(kind: ErrorKind, message: string): void {
    if (this.endKind === undefined && !this.closingByUs) {
      this.endKind = kind;
      this.endMessage = message;
    }
    if (this._state !== 'CLOSED') this._state = 'CLOSING';
    this.socket?.destroy();
  }

  /** @internal HttpResponseListener */
  onResponse(status: number, keepAlive: boolean): void {
    this.responses++;
    if (!keepAlive) this.closeAnnounced = true;
    this.handler.onResponse(this, status, keepAlive);
  }

  /** Returns true: keep reading (false would pause the socket). */
  private onRead(n: number): boolean {
    if (this._state !== 'OPEN') return true;
    this.readAt = performance.now();
    try {
      this.scanner.scan(SHARED_READ_BUFFER, 0, n);
    } catch (error) {
      if (!(error instanceof HttpScanError)) throw error;
      this.fail('protocol', `malformed response: ${error.message}`);
      return true;
    }
    this.handler.onReadComplete(this, n);
    return true;
  }

  private onClose(): void {
    if (this._state === 'CLOSED') return;
    const was = this._state;
    this._state = 'CLOSED';
    if (this.endKind === undefined && !this.closingByUs) {
      // A body delimited by the close (RFC 9112 §6.3 rule 8) ends here.
      if (this.scanner.untilClose) {
        this.readAt = performance.now();
        this.scanner.end();
      } else if (was === 'CONNECTING') {
        this.endKind = 'refused';
        this.endMessage = 'the connection closed before it was established';
      } else if (!this.closeAnnounced || this.scanner.busy) {
        this.endKind = 'closed';
        this.endMessage = this.scanner.busy ? 'the server closed the connection in the middle of a response' : 'the server closed a keep-alive connection';
      }
    }
    this.handler.onEnd(this, this.endKind, this.endMessage);
  }
}
