/**
 * A raw HTTP/1.1 keep-alive connection for load generation, on node:net (node:tls for https://): the workload writes pre-encoded
 * requests, reads go into one buffer shared by every connection (Node's `onread`), and a minimal scanner finds
 * the end of each response (status line, Content-Length or chunked).
 */
import { performance } from 'node:perf_hooks';
import { HttpResponseScanner, HttpScanError } from './HttpResponseScanner.js';
import type { HttpResponseListener } from './HttpResponseScanner.js';
import { LoadClient, SHARED_READ_BUFFER } from './LoadClient.js';
import type { LoadClientOptions, LoadClientState } from './LoadClient.js';
import type { ErrorKind } from './Measurement.js';
import type { Target } from './target.js';

/**
 * CONNECTING -> [TLS (https://)] -> OPEN -> CLOSING (we or the server are closing) -> CLOSED (onEnd was called);
 * no handshake.
 */
export type HttpLoadClientState = Exclude<LoadClientState, 'HANDSHAKE'>;

export interface HttpLoadHandler {
  onOpen(client: HttpLoadClient): void;
  /** A complete response; `keepAlive` false: the server closes the connection after it. */
  onResponse(client: HttpLoadClient, status: number, keepAlive: boolean): void;
  /** All responses of a read of `bytes` bytes were reported. */
  onReadComplete(client: HttpLoadClient, bytes: number): void;
  /** The connection closed; `kind` says why when it was neither our doing nor announced by the server. */
  onEnd(client: HttpLoadClient, kind: ErrorKind | undefined, message: string): void;
}

export class HttpLoadClient extends LoadClient implements HttpResponseListener {
  /** Responses completed on this connection. */
  responses = 0;
  private readonly scanner = new HttpResponseScanner(this);
  /** The server said it will close (Connection: close): its close is not an error. */
  private closeAnnounced = false;

  constructor(
    /** The workload's slot of this connection. */
    index: number,
    target: Target,
    private readonly handler: HttpLoadHandler,
    options: LoadClientOptions,
  ) {
    super(index, target, options);
  }

  /** HTTP has no opening handshake: never HANDSHAKE. */
  override get state(): HttpLoadClientState {
    return this._state as HttpLoadClientState;
  }

  /** @internal HttpResponseListener */
  onResponse(status: number, keepAlive: boolean): void {
    this.responses++;
    if (!keepAlive) this.closeAnnounced = true;
    this.handler.onResponse(this, status, keepAlive);
  }

  protected onConnect(): void {
    this.open(performance.now());
  }

  protected onRead(n: number): boolean {
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

  protected onUnexpectedClose(was: LoadClientState): void {
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

  protected notifyOpen(): void {
    this.handler.onOpen(this);
  }

  protected notifyEnd(kind: ErrorKind | undefined, message: string): void {
    this.handler.onEnd(this, kind, message);
  }
}
