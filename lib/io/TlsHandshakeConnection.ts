import { Buffer } from 'node:buffer';
import type { TLSSocket } from 'node:tls';
import { debuglog } from 'node:util';
import type { Connection, ConnectionFactory } from './Connection.js';
import type { EndPoint } from './EndPoint.js';
import { TlsHandshakeError, TlsHandshakeTimeoutError } from './errors.js';
import type { TlsHandshakeCounters } from './TlsHandshakeFailures.js';

const debug = debuglog('quay');

/**
 * The connection of a TLS endpoint until its handshake is done: the place of Jetty's `SslConnection` while it
 * handshakes, but only that long, because in Node the TLS record layer is in the socket, not in a connection.
 *
 * ```
 * HANDSHAKING --'secure'--> (upgrade to the next connection, e.g. HTTP/1.1; counted as a handshake)
 * HANDSHAKING --deadline / idle timeout / TLS error / peer FIN / reset--> FAILED (closed, counted by kind)
 * HANDSHAKING --stop()--> STOPPED (closed, not counted)
 * ```
 *
 * The deadline (`tlsHandshakeTimeoutMs`) is checked by the shared idle sweep (`deadlineMs`), not by a timer per
 * socket, and it does not move with activity: a peer that trickles its hello a byte at a time still meets it.
 */
export class TlsHandshakeConnection implements Connection {
  deadlineMs: number;
  private state: 'HANDSHAKING' | 'DONE' | 'FAILED' | 'STOPPED' = 'HANDSHAKING';
  /** Application bytes that would arrive before 'secure' (none do in practice): handed to the next connection. */
  private early: Buffer | undefined;
  private readonly onSecure = (): void => this.secured();

  constructor(
    private readonly endPoint: EndPoint,
    private readonly socket: TLSSocket,
    private readonly next: ConnectionFactory,
    private readonly counters: TlsHandshakeCounters,
    private readonly sniRequired: boolean,
    private readonly timeoutMs: number,
  ) {
    this.deadlineMs = timeoutMs > 0 ? endPoint.clock.now() + timeoutMs : Infinity;
  }

  /** True once the handshake is done (a close after it, such as a factory that threw, is not a handshake failure). */
  get handshakeDone(): boolean {
    return this.state === 'DONE';
  }

  onOpen(): void {
    this.socket.once('secure', this.onSecure);
  }

  onFillable(bytes: Buffer): void {
    this.early = this.early === undefined ? Buffer.from(bytes) : Buffer.concat([this.early, bytes]);
  }

  onDeadline(): void {
    this.deadlineMs = Infinity;
    this.endPoint.close(new TlsHandshakeTimeoutError(this.timeoutMs));
  }

  /** The idle timeout (shorter than the handshake's) ran out: close, counted as `timeout`. */
  onIdleExpired(): boolean {
    return true;
  }

  /** A peer that ends its side during the handshake has given up: nothing to finish. */
  onInputShutdown(): void {
    this.endPoint.close(new TlsHandshakeError('aborted', 'the peer closed the connection during the handshake'));
  }

  /** `stop()`: a handshake in progress has no request to finish. */
  onShutdown(): void {
    this.state = 'STOPPED';
    this.endPoint.close();
  }

  onClose(cause: Error | undefined): void {
    this.socket.off('secure', this.onSecure);
    if (this.state !== 'HANDSHAKING') return;
    this.state = 'FAILED';
    const kind = this.counters.failed(cause);
    // Per peer only for NODE_DEBUG=quay: anyone can fail a handshake, so the default is a count (stats, and one
    // report a second).
    debug('TLS handshake from %s failed (%s): %s', this.endPoint.remoteAddress, kind, cause === undefined ? 'closed' : cause.message);
  }

  onUpgradeFrom(): Buffer | undefined {
    const early = this.early;
    this.early = undefined;
    return early;
  }

  describe(): string {
    const servername = this.socket.servername;
    return `TlsHandshakeConnection ${this.state}${typeof servername === 'string' ? ` sni=${servername}` : ''}`;
  }

  private secured(): void {
    if (this.state !== 'HANDSHAKING' || !this.endPoint.isOpen) return;
    if (this.sniRequired && typeof this.socket.servername !== 'string') {
      this.endPoint.close(new TlsHandshakeError('sni', 'the client sent no server name (SNI) and sniRequired is set'));
      return;
    }
    this.state = 'DONE';
    this.deadlineMs = Infinity;
    this.counters.succeeded();
    let connection: Connection;
    try {
      connection = this.next.newConnection(this.endPoint);
    } catch (e) {
      this.endPoint.close(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.endPoint.upgrade(connection);
  }
}
