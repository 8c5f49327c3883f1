import { Buffer } from 'node:buffer';
import { EndPoint } from './EndPoint.js';
import type { EndPointOptions } from './EndPoint.js';

/** Options of a {@link MemoryEndPoint}. */
export interface MemoryEndPointOptions extends EndPointOptions {
  remoteAddress?: string;
  remotePort?: number;
}

/**
 * An endpoint with no socket, after Jetty's ByteArrayEndPoint: a test feeds bytes in (`feed`), reads what the
 * connection wrote (`takeOutput`), and simulates the peer (half-close, reset, a peer that stops reading), so
 * that every connection can be unit-tested without the network.
 *
 * Writes complete synchronously while the simulated peer reads, which also proves that the flusher does not
 * recurse on chained writes. `stallWrites()` makes writes stay in flight, as behind a peer that does not read.
 */
export class MemoryEndPoint extends EndPoint {
  private readonly output: Buffer[] = [];
  private outputLength = 0;
  private stalled = false;
  private stalledBatch: { bytes: Buffer[] } | undefined;
  private _outputShutdown = false;
  private _transportClosed = false;
  private _paused = false;
  private readonly _remoteAddress: string;
  private readonly _remotePort: number;

  constructor(options: MemoryEndPointOptions = {}) {
    super(options);
    this._remoteAddress = options.remoteAddress ?? '127.0.0.1';
    this._remotePort = options.remotePort ?? 0;
  }

  get remoteAddress(): string {
    return this._remoteAddress;
  }
  get remotePort(): number {
    return this._remotePort;
  }
  get localAddress(): string {
    return '127.0.0.1';
  }
  get localPort(): number {
    return 0;
  }

  /** True once the endpoint sent its FIN (shutdownOutput completed). */
  get isOutputShutdown(): boolean {
    return this._outputShutdown;
  }

  /** True once the transport was closed. */
  get isTransportClosed(): boolean {
    return this._transportClosed;
  }

  /** True while the (simulated) transport is told not to read. */
  get isTransportPaused(): boolean {
    return this._paused;
  }

  /** The peer sends bytes (a string is encoded as latin1, so tests can write raw bytes as text). */
  feed(bytes: Buffer | string): void {
    this.fill(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** The peer shuts down its output (FIN). */
  feedEnd(): void {
    this.inputShutdown();
  }

  /** The peer resets the connection: the endpoint closes with an ECONNRESET error. */
  reset(): void {
    const error = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104, syscall: 'read' });
    this.close(error);
  }

  /** Everything written since the last call, as one buffer. */
  takeOutput(): Buffer {
    const out = this.output.length === 1 ? this.output[0]! : Buffer.concat(this.output, this.outputLength);
    this.output.length = 0;
    this.outputLength = 0;
    return out;
  }

  /** `takeOutput()` decoded as latin1 (bytes map 1:1 to characters). */
  takeOutputString(): string {
    return this.takeOutput().toString('latin1');
  }

  /** The simulated peer stops reading: writes stay in flight until `resumeWrites()`. */
  stallWrites(): void {
    this.stalled = true;
  }

  /** The simulated peer reads again: a stalled write completes (synchronously) and later writes too. */
  resumeWrites(): void {
    this.stalled = false;
    const batch = this.stalledBatch;
    if (batch !== undefined) {
      this.stalledBatch = undefined;
      this.accept(batch.bytes);
      this.flusher.completed(null);
    }
  }

  /** Flushes now instead of at the end of the tick (handy in synchronous tests). */
  flushNow(): void {
    this.flusher.flush();
  }

  /** @internal */
  transmit(buffers: Buffer[], _byteCount: number): void {
    if (this.stalled) {
      // Keep copies: the array is reused by the flusher after completion.
      this.stalledBatch = { bytes: buffers.slice() };
      return;
    }
    this.accept(buffers);
    this.flusher.completed(null);
  }

  protected doPauseReading(): void {
    this._paused = true;
  }
  protected doResumeReading(): void {
    this._paused = false;
  }
  protected doShutdownOutput(): void {
    this._outputShutdown = true;
  }
  protected doClose(): void {
    this._transportClosed = true;
    this.stalledBatch = undefined;
  }

  private accept(buffers: Buffer[]): void {
    for (const b of buffers) {
      // Copy: the writer may reuse its buffer once the callback ran, as it may with a real socket.
      this.output.push(Buffer.from(b));
      this.outputLength += b.length;
    }
  }
}
