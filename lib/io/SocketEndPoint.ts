import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { RetainableBuffer } from '../buffers/RetainableBuffer.js';
import { EndPoint } from './EndPoint.js';
import { PeerClosedError } from './errors.js';
import type { EndPointOptions } from './EndPoint.js';

const kEndPoint = Symbol('quay.endPoint');

/** Gathered writes up to this size are copied into one buffer instead of a writev. */
const COALESCE_BYTES = 16 * 1024;
/** The empty write whose callback reports that the writes before it are done. */
const EMPTY = Buffer.alloc(0);

interface OwnedSocket extends Socket {
  [kEndPoint]?: SocketEndPoint;
}

/**
 * An endpoint over a `node:net` socket. The socket must be created with `allowHalfOpen: true`, so that a peer's
 * FIN reaches the connection (`onInputShutdown`) instead of Node closing our side for us.
 *
 * The socket's listeners are shared module functions that find their endpoint through a symbol on the socket:
 * no closures per connection, which matters for idle memory with tens of thousands of sockets.
 */
export class SocketEndPoint extends EndPoint {
  readonly socket: Socket;
  /** Node's `data` events carry a new buffer per read (see docs/ARCHITECTURE.md, read path). */
  override get freshReadBuffers(): boolean {
    return true;
  }
  protected override get flushesAtEndOfTurn(): boolean {
    return true;
  }
  private readonly _remoteAddress: string;
  private readonly _remotePort: number;
  /** Read on first use (a getsockname and Node's cached copy cost ~94 B per connection that nobody asks about). */
  private _localAddress: string | undefined;
  private _localPort = 0;
  private writeDone: ((error?: Error | null) => void) | undefined;
  /** The pooled buffer of the coalesced write in flight; released when Node reports that write done or failed. */
  private coalesced: RetainableBuffer | undefined;

  constructor(socket: Socket, options: EndPointOptions = {}) {
    super(options);
    this.socket = socket;
    // The remote address is read once: Node forgets it when the socket is destroyed, and logs want it after.
    // The local one is read on first use (a server knows where it listens); after a destroy it reads as ''.
    this._remoteAddress = socket.remoteAddress ?? '';
    this._remotePort = socket.remotePort ?? 0;
    socket.setNoDelay(true);
    (socket as OwnedSocket)[kEndPoint] = this;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
  }

  /** True over a `TLSSocket` (accepted by a TLS manager, connected with `tls`, or adopted from node:https). */
  override get secure(): boolean {
    return (this.socket as { encrypted?: boolean }).encrypted === true;
  }

  /** With the TLS version once the handshake is done (`TLSv1.3`), for `dump()`. */
  override describe(): string {
    const line = super.describe();
    if (!this.secure) return line;
    const version = (this.socket as TLSSocket).getProtocol?.();
    return `${line} tls=${version ?? 'handshaking'}`;
  }

  get remoteAddress(): string {
    return this._remoteAddress;
  }
  get remotePort(): number {
    return this._remotePort;
  }
  get localAddress(): string {
    this.readLocal();
    return this._localAddress!;
  }
  get localPort(): number {
    this.readLocal();
    return this._localPort;
  }

  private readLocal(): void {
    if (this._localAddress !== undefined) return;
    this._localAddress = this.socket.localAddress ?? '';
    this._localPort = this.socket.localPort ?? 0;
  }

  /**
   * @internal One gathered write: a single `socket.write` for one buffer; for several, cork/uncork so that Node
   * issues one `writev`. Completion: when Node took the whole batch into the kernel at once (its `writableLength`
   * is back to 0 right after the write: libuv wrote synchronously, Node counted it written), the flusher is told
   * at once, with no callback for Node to queue and call a tick later (one fewer closure call, `afterWrite` pass
   * and `nextTick` per write: the common case of a small response or a batch of frames to a peer that reads).
   * Otherwise an empty write with the callback follows: Node runs it once everything before it is written, in
   * order, or fails it with the error that failed them.
   */
  transmit(buffers: Buffer[], byteCount: number): void {
    const socket = this.socket;
    const last = buffers.length - 1;
    if (last === 0) {
      socket.write(buffers[0]!);
    } else if (byteCount <= COALESCE_BYTES) {
      // Small batches (a response head and its body, a few WebSocket frames): one copy into one buffer costs
      // less than Node's writev path (a chunk object per buffer, cork/uncork bookkeeping). Measured with
      // perf/http-bench.js: see perf/RESULTS.md. The buffer comes from the pool and goes back when the write is
      // done (one write in flight per endpoint, so one buffer at a time): no allocation per batch.
      const coalesced = (this.coalesced = this.bufferPool.acquire(byteCount));
      const target = coalesced.buffer;
      let at = 0;
      for (let i = 0; i <= last; i++) at += buffers[i]!.copy(target, at);
      try {
        socket.write(target);
      } catch (e) {
        this.coalesced = undefined;
        coalesced.release();
        throw e;
      }
    } else {
      socket.cork();
      for (let i = 0; i <= last; i++) socket.write(buffers[i]!);
      socket.uncork();
    }
    if (socket.writableLength === 0 && socket.writable) {
      this.onWritten(null);
      return;
    }
    socket.write(EMPTY, (this.writeDone ??= (error?: Error | null) => this.onWritten(error ?? null)));
  }

  /** The batch in flight was written (null) or failed. */
  private onWritten(error: Error | null): void {
    const coalesced = this.coalesced;
    if (coalesced !== undefined) {
      // Node is done with the bytes (written, or the write failed): the memory may serve the next write.
      this.coalesced = undefined;
      coalesced.release();
    }
    if (error !== null) {
      // A failed write means the socket is gone (a reset, a broken pipe): close the endpoint with the I/O
      // error as the cause, so pending callbacks fail with EndPointClosedError (cause: the error) as on any
      // other close, and the connection sees a closed endpoint when its write's rejection reaches it (which is
      // how HTTP tells a client that left from a handler error).
      this.close(error);
      return;
    }
    this.flusher.completed(null);
  }

  /** @internal */
  onData(bytes: Buffer): void {
    this.fill(bytes);
  }

  /** @internal */
  onEnd(): void {
    this.inputShutdown();
  }

  protected doPauseReading(): void {
    this.socket.pause();
  }
  protected doResumeReading(): void {
    this.socket.resume();
  }
  protected doShutdownOutput(): void {
    this.socket.end();
  }
  protected doClose(): void {
    this.socket.destroy();
  }
}

function onSocketData(this: OwnedSocket, bytes: Buffer): void {
  this[kEndPoint]?.onData(bytes);
}

function onSocketEnd(this: OwnedSocket): void {
  this[kEndPoint]?.onEnd();
}

function onSocketError(this: OwnedSocket, error: Error): void {
  const endPoint = this[kEndPoint];
  if (endPoint === undefined) return;
  // After our output was shut down (the last response sent, our FIN or TLS close_notify on its way), a reset is the
  // peer closing without reading that end: a TLS client that destroys its socket after the response resets the
  // connection, as the close_notify is still unread. The exchange was complete: a close, not an error.
  if (endPoint.state === 'OUTPUT_SHUTDOWN' && (error as NodeJS.ErrnoException).code === 'ECONNRESET') {
    endPoint.close(new PeerClosedError());
    return;
  }
  // ECONNRESET, EPIPE, ETIMEDOUT...: the cause reaches the connection's onClose.
  endPoint.close(error);
}

function onSocketClose(this: OwnedSocket): void {
  // Closed without an 'error' first and not by us: both sides ended in order.
  this[kEndPoint]?.close(undefined);
}
