import { createServer, connect as netConnect } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { ByteBufferPool } from '../buffers/ByteBufferPool.js';
import type { ConnectionFactory } from './Connection.js';
import type { EndPoint, EndPointOwner } from './EndPoint.js';
import { SocketEndPoint } from './SocketEndPoint.js';
import { IdleTimeoutScheduler } from './IdleTimeoutScheduler.js';
import type { WatermarkOptions } from './WriteFlusher.js';
import type { TimerHandle } from './Clock.js';
import {
  ConnectionLimitError,
  IdleTimeoutError,
  IllegalStateError,
  OpenFileLimitError,
  PeerClosedError,
  ShutdownTimeoutError,
  WriteTimeoutError,
} from './errors.js';
import { defaultMaxConnections, isAtOpenFileLimit, openFileLimit } from './OpenFileLimit.js';
import { safeToDrop } from './safeToDrop.js';
import { TlsServerContext } from './TlsServerContext.js';
import type { TlsServerOptions } from './TlsServerContext.js';
import { TlsHandshakeConnection } from './TlsHandshakeConnection.js';
import { TlsHandshakeCounters } from './TlsHandshakeFailures.js';
import type { TlsStats } from './TlsHandshakeFailures.js';
import { TlsHandshakeFailuresError } from './errors.js';

/** Options of a {@link SelectorManager}. */
export interface SelectorManagerOptions extends WatermarkOptions {
  /** Creates the connection of every accepted endpoint (and of outbound ones unless `connect` gets its own). */
  connectionFactory: ConnectionFactory;
  /** Idle timeout of new endpoints in ms; 0 = never. Default 30 000. */
  idleTimeoutMs?: number;
  /**
   * Open endpoints at most (accepted and connected); past it an accepted socket is closed at once, counted in
   * `stats().refusedAtLimit` and reported (a {@link ConnectionLimitError}, at most once a second). Default: the
   * process's open-file limit (`ulimit -n`, read on Linux) less 128 descriptors kept for files, outbound
   * connections and pipes, so that quay refuses cleanly before the process runs out of descriptors (where Node
   * drops new connections without telling anyone: see lib/io/OpenFileLimit.ts); unlimited where the limit cannot
   * be read. `Infinity` turns the bound off.
   */
  maxConnections?: number;
  /** The idle-timeout scheduler; default: one owned (and closed) by this manager. */
  scheduler?: IdleTimeoutScheduler;
  /** Scratch buffers of every endpoint (see `EndPointOptions.bufferPool`). Default: `defaultBufferPool()`. */
  bufferPool?: ByteBufferPool;
  /** Sweep period in ms of the scheduler this manager makes when `scheduler` is not given. Default 1000. */
  idleTickMs?: number;
  /**
   * Accept TLS only, with this configuration (certificate, key...): every accepted socket is wrapped in a server
   * `TLSSocket` (ALPN `http/1.1`, TLS 1.2 or newer by default) and gets its connection from `connectionFactory`
   * once the handshake is done. See {@link TlsServerOptions}. Default: plain TCP.
   * @throws (the constructor) what `tls.createSecureContext` throws for a bad key or certificate.
   */
  tls?: TlsServerOptions;
  /**
   * A TLS handshake must be done within this many ms of the accept (activity does not extend it), else the
   * connection is closed and counted as a `timeout` failure (`stats().tls.handshakeFailures`). 0 = no deadline
   * (the idle timeout still applies). Default 10 000. Checked by the idle sweep: up to one tick late.
   */
  tlsHandshakeTimeoutMs?: number;
  /**
   * Told of every endpoint that closed because of an error (a reset, a broken pipe, a connection callback that
   * threw, a write timeout) and of listener errors. The process is never taken down by them.
   */
  onError?: (error: Error, endPoint: EndPoint | undefined) => void;
}

/** Where to listen. */
export interface ListenOptions {
  host?: string;
  /** 0 (the default) picks a free port; `address()` reports it. */
  port?: number;
  backlog?: number;
}

/** Where {@link SelectorManager.connect} connects. */
export interface OutboundOptions {
  host: string;
  port: number;
  /** The source address (e.g. `127.0.0.2`). */
  localAddress?: string;
  /**
   * Connect over TLS with these node:tls options (`ca`, `servername`, `rejectUnauthorized`, `cert`, `key`...);
   * `host`, `port`, `localAddress` and `allowHalfOpen` are the manager's. Default: plain TCP.
   */
  tls?: TlsConnectionOptions;
  /**
   * Gives up the connect when aborted: the socket (TCP connecting, or in its TLS handshake) is destroyed and the
   * Promise rejects with the signal's reason. Without it, a caller whose deadline passed could only wait for the
   * socket: a TLS server that never answers the ClientHello holds it open forever. No effect once connected.
   */
  signal?: AbortSignal;
}

/** Counters since the manager was created. */
export interface SelectorManagerStats {
  accepted: number;
  connected: number;
  /** Accepted sockets closed at once because `maxConnections` was reached or the manager was stopping. */
  refused: number;
  /** Of `refused`: those refused because `maxConnections` was reached. */
  refusedAtLimit: number;
  /**
   * Seconds in which the process was found at its open-file limit (checked once a second while listening):
   * during them new connections are dropped by Node before they are accepted, and counted nowhere else.
   */
  openFileLimitHits: number;
  open: number;
  closed: number;
  idleExpired: number;
  /** Endpoints closed by an error (reset, EPIPE, callback exception, write timeout, forced stop). */
  errors: number;
  bytesIn: number;
  bytesOut: number;
  /**
   * With `tls`: handshakes done and failed, by kind. A failed handshake is counted here only (not in `errors`),
   * and reported once a second with the counts of each kind (a {@link TlsHandshakeFailuresError}), never once per
   * peer: anyone can open a connection and fail a handshake.
   */
  tls?: TlsStats;
}

/** `IDLE --listen()--> STARTED --stop()--> STOPPING --> STOPPED`. `connect()` works in IDLE and STARTED. */
export type SelectorManagerState = 'IDLE' | 'STARTED' | 'STOPPING' | 'STOPPED';

/**
 * The selector of quay, after Jetty's SelectorManager and ServerConnector: it listens, accepts sockets, wraps
 * each in a {@link SocketEndPoint}, asks the factory for its connection, registers it with the one shared
 * idle-timeout scheduler, and keeps the books (stats, `dump()`). Node's event loop is the selector; this class is
 * what owns the endpoints. `stop(graceMs)` ends everything gracefully, then by force at the deadline.
 */
export class SelectorManager implements EndPointOwner {
  readonly scheduler: IdleTimeoutScheduler;
  private readonly ownsScheduler: boolean;
  private readonly options: SelectorManagerOptions;
  private readonly maxConnections: number;
  private readonly _endPoints = new Set<EndPoint>();
  private server: NetServer | undefined;
  private _state: SelectorManagerState = 'IDLE';
  private _address: AddressInfo | undefined;
  private stopping: Promise<void> | undefined;
  private allClosed: (() => void) | undefined;
  private readonly counters = {
    accepted: 0,
    connected: 0,
    refused: 0,
    refusedAtLimit: 0,
    openFileLimitHits: 0,
    closed: 0,
    idleExpired: 0,
    errors: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
  /** Refusals at `maxConnections` not reported yet (reported once a second by `checkCapacity`). */
  private unreportedRefusals = 0;
  private capacityTimer: TimerHandle | undefined;
  private readonly tlsContext: TlsServerContext | undefined;
  private readonly tlsCounters: TlsHandshakeCounters | undefined;
  private readonly tlsHandshakeTimeoutMs: number;

  constructor(options: SelectorManagerOptions) {
    this.options = options;
    this.maxConnections = options.maxConnections ?? defaultMaxConnections(openFileLimit());
    if (!(this.maxConnections >= 0)) throw new RangeError(`maxConnections must be >= 0, got ${options.maxConnections}`);
    this.tlsHandshakeTimeoutMs = options.tlsHandshakeTimeoutMs ?? 10_000;
    if (!(this.tlsHandshakeTimeoutMs >= 0)) throw new RangeError(`tlsHandshakeTimeoutMs must be >= 0, got ${options.tlsHandshakeTimeoutMs}`);
    if (options.tls !== undefined) {
      this.tlsContext = new TlsServerContext(options.tls);
      this.tlsCounters = new TlsHandshakeCounters();
    }
    this.ownsScheduler = options.scheduler === undefined;
    this.scheduler = options.scheduler ?? new IdleTimeoutScheduler(options.idleTickMs === undefined ? {} : { tickMs: options.idleTickMs });
  }

  /** See {@link SelectorManagerState}. */
  get state(): SelectorManagerState {
    return this._state;
  }

  /** The bound address once listening (with the real port when 0 was asked). */
  address(): AddressInfo | undefined {
    return this._address;
  }

  /** The bound on open endpoints in force (see `SelectorManagerOptions.maxConnections`). */
  get connectionLimit(): number {
    return this.maxConnections;
  }

  /** True when the manager accepts TLS (`tls` was given). */
  get secure(): boolean {
    return this.tlsContext !== undefined;
  }

  /**
   * Replaces the TLS configuration (a renewed certificate) without a restart: connections accepted from now on
   * use it, established ones keep theirs.
   * @throws IllegalStateError when the manager was made without `tls`; what `tls.createSecureContext` throws for
   * a bad key or certificate (the configuration in force then stays).
   */
  setSecureContext(options: TlsServerOptions): void {
    if (this.tlsContext === undefined) throw new IllegalStateError('setSecureContext() needs a manager made with the tls option');
    this.tlsContext.setSecureContext(options);
  }

  /** The open endpoints (accepted and connected). */
  get endPoints(): ReadonlySet<EndPoint> {
    return this._endPoints;
  }

  /** Starts listening; resolves with the bound address. */
  async listen(options: ListenOptions = {}): Promise<AddressInfo> {
    if (this._state !== 'IDLE') throw new IllegalStateError(`cannot listen in state ${this._state}`);
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      // A failed listen (EADDRINUSE...) is the rejection only: reported once, to whoever awaits start().
      const onError = (error: Error): void => reject(error);
      server.once('error', onError);
      server.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0, backlog: options.backlog ?? 511 }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (error) => this.reportError(error, undefined));
    this._address = server.address() as AddressInfo;
    this._state = 'STARTED';
    this.capacityTimer = this.scheduler.clock.setInterval(() => this.checkCapacity(), CAPACITY_CHECK_MS);
    return this._address;
  }

  /**
   * Opens an outbound connection (the client side). Resolves with the endpoint once connected (over TLS: once the
   * TLS handshake is done and the server's certificate verified) and its connection opened; rejects with the socket
   * error (ECONNREFUSED...) or the TLS error (its `code` is node:tls's: `CERT_HAS_EXPIRED`,
   * `ERR_TLS_CERT_ALTNAME_INVALID`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`...) otherwise.
   */
  connect(options: OutboundOptions, factory: ConnectionFactory = this.options.connectionFactory): Promise<SocketEndPoint> {
    if (this._state === 'STOPPING' || this._state === 'STOPPED') {
      return Promise.reject(new IllegalStateError(`cannot connect in state ${this._state}`));
    }
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      // localAddress: the source address (e.g. 127.0.0.2), so a load test can open more connections to one
      // target than one source address has ephemeral ports.
      const where = {
        host: options.host,
        port: options.port,
        allowHalfOpen: true,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      };
      const tls = options.tls;
      // tls.connect verifies the server's certificate (rejectUnauthorized defaults to true) before 'secureConnect'.
      const socket = tls === undefined ? netConnect(where) : tlsConnect({ ...tls, ...where });
      const onError = (error: Error): void => {
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        // A destroyed TLS socket may still report what it was doing: nobody is listening any more.
        socket.on('error', ignore);
        socket.destroy();
        reject(error);
      };
      const onAbort = (): void => onError(abortReason(signal!));
      socket.on('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        this.counters.connected++;
        resolve(this.attach(socket, factory));
      });
    });
  }

  /**
   * Takes over a socket that is already connected (e.g. from node:http's `'upgrade'` event): it becomes an
   * endpoint of this manager, with its idle timeout, stats, `dump()` and `stop()`. The socket should have been
   * created with `allowHalfOpen: true` (node:http's are). Counted as accepted.
   * @throws IllegalStateError once the manager is stopping; the socket is then destroyed.
   */
  adopt(socket: Socket, factory: ConnectionFactory = this.options.connectionFactory): SocketEndPoint {
    if (this._state === 'STOPPING' || this._state === 'STOPPED') {
      socket.on('error', ignore);
      socket.destroy();
      throw new IllegalStateError(`cannot adopt a socket in state ${this._state}`);
    }
    this.counters.accepted++;
    return this.attach(socket, factory);
  }

  /** Counters, with byte totals including the open endpoints. */
  stats(): SelectorManagerStats {
    let bytesIn = this.counters.bytesIn;
    let bytesOut = this.counters.bytesOut;
    for (const endPoint of this._endPoints) {
      bytesIn += endPoint.bytesIn;
      bytesOut += endPoint.bytesOut;
    }
    const stats: SelectorManagerStats = { ...this.counters, open: this._endPoints.size, bytesIn, bytesOut };
    if (this.tlsCounters !== undefined) stats.tls = this.tlsCounters.stats();
    return stats;
  }

  /**
   * A readable tree of the manager, its endpoints and their connections (Jetty's Dumpable), so an operator can
   * see what the server holds: state, idle time, bytes, pending writes, read state.
   */
  dump(): string {
    const s = this.stats();
    const where = this._address === undefined ? 'not listening' : `${this._address.address}:${this._address.port}`;
    const lines = [
      `SelectorManager ${where} ${this._state} accepted=${s.accepted} connected=${s.connected} refused=${s.refused} ` +
        `(at limit ${s.refusedAtLimit}, max ${this.maxConnections}) openFileLimitHits=${s.openFileLimitHits} ` +
        `open=${s.open} closed=${s.closed} idleExpired=${s.idleExpired} errors=${s.errors} in=${s.bytesIn}B out=${s.bytesOut}B`,
      `+- IdleTimeoutScheduler tick=${this.scheduler.tickMs}ms watching=${this.scheduler.size}`,
    ];
    if (s.tls !== undefined) {
      const failures = Object.entries(s.tls.handshakeFailures)
        .filter(([, n]) => n > 0)
        .map(([kind, n]) => `${kind}=${n}`)
        .join(' ');
      lines.push(`+- TLS handshakes=${s.tls.handshakes} failed: ${failures === '' ? 'none' : failures} (deadline ${this.tlsHandshakeTimeoutMs}ms)`);
    }
    let i = 0;
    const n = this._endPoints.size;
    for (const endPoint of this._endPoints) {
      const last = ++i === n;
      lines.push(`${last ? '+-' : '+-'} ${endPoint.describe()}`);
      let connection = '(no connection)';
      try {
        const c = endPoint.connection;
        connection = c.describe?.() ?? c.constructor.name;
      } catch {
        // Not opened yet.
      }
      lines.push(`${last ? '   ' : '|  '}+- ${connection}`);
    }
    return lines.join('\n');
  }

  /**
   * Graceful stop: stops accepting, asks every connection to finish (`onShutdown`, or flush and half-close),
   * force-closes what remains at the deadline (their pending writes fail with `ShutdownTimeoutError` as the
   * cause), and resolves when every endpoint is closed and the listener is released. Safe to drop.
   */
  stop(graceMs = 30_000): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    this._state = 'STOPPING';
    this.stopping = safeToDrop(this.doStop(graceMs));
    return this.stopping;
  }

  /** @internal EndPointOwner */
  onEndPointClosed(endPoint: EndPoint, cause: Error | undefined): void {
    if (!this._endPoints.delete(endPoint)) return;
    this.counters.closed++;
    this.counters.bytesIn += endPoint.bytesIn;
    this.counters.bytesOut += endPoint.bytesOut;
    if (this.tlsCounters !== undefined && isHandshaking(endPoint)) {
      // Counted by kind by the handshake connection, reported once a second by checkCapacity: not an error of ours.
    } else if (cause instanceof IdleTimeoutError) this.counters.idleExpired++;
    else if (cause !== undefined && !(cause instanceof PeerClosedError)) {
      this.counters.errors++;
      if (cause instanceof WriteTimeoutError) this.counters.idleExpired++;
      this.reportError(cause, endPoint);
    }
    if (this._endPoints.size === 0) this.allClosed?.();
  }

  /**
   * @internal Once a second while listening: reports the refusals at `maxConnections` since the last check (one
   * report with a count, however many there were), and probes whether the process is at its open-file limit.
   */
  checkCapacity(): void {
    if (this.unreportedRefusals > 0) {
      const refused = this.unreportedRefusals;
      this.unreportedRefusals = 0;
      this.reportError(new ConnectionLimitError(refused, this.maxConnections, openFileLimit()), undefined);
    }
    const failures = this.tlsCounters?.takeUnreported();
    if (failures !== undefined) this.reportError(new TlsHandshakeFailuresError(failures), undefined);
    if (isAtOpenFileLimit()) {
      this.counters.openFileLimitHits++;
      this.reportError(new OpenFileLimitError(openFileLimit(), this._endPoints.size), undefined);
    }
  }

  private accept(socket: Socket): void {
    // Accepting from the moment listen() was called, not only once it resolved: in a node:cluster worker with
    // round-robin scheduling, the primary hands connections over as soon as it registered the worker's listen, and
    // they can arrive before the worker's 'listening' callback. Refusing them would reset connections that the
    // cluster already accepted (during a rolling restart, each new worker's first ones).
    const accepting = this._state === 'STARTED' || (this._state === 'IDLE' && this.server !== undefined);
    if (!accepting || this._endPoints.size >= this.maxConnections) {
      this.counters.refused++;
      if (accepting) {
        this.counters.refusedAtLimit++;
        this.unreportedRefusals++;
      }
      socket.on('error', ignore);
      socket.destroy();
      return;
    }
    this.counters.accepted++;
    const tls = this.tlsContext;
    if (tls === undefined) {
      this.attach(socket, this.options.connectionFactory);
      return;
    }
    // TLS: the endpoint is made now, over the TLS socket, with a handshake connection that upgrades to the real one
    // when the handshake is done. So a handshaking peer is an endpoint like any other: counted against
    // maxConnections, in dump(), timed by the idle sweep, closed by stop().
    const tlsSocket = tls.wrap(socket);
    const next = this.options.connectionFactory;
    const counters = this.tlsCounters!;
    const sniRequired = tls.sniRequired;
    const timeoutMs = this.tlsHandshakeTimeoutMs;
    this.attach(tlsSocket, {
      newConnection: (endPoint) => new TlsHandshakeConnection(endPoint, tlsSocket, next, counters, sniRequired, timeoutMs),
    });
  }

  private attach(socket: Socket, factory: ConnectionFactory): SocketEndPoint {
    const endPoint = new SocketEndPoint(socket, {
      scheduler: this.scheduler,
      idleTimeoutMs: this.options.idleTimeoutMs ?? 30_000,
      owner: this,
      ...(this.options.bufferPool === undefined ? {} : { bufferPool: this.options.bufferPool }),
      ...(this.options.highWatermark === undefined ? {} : { highWatermark: this.options.highWatermark }),
      ...(this.options.lowWatermark === undefined ? {} : { lowWatermark: this.options.lowWatermark }),
    });
    this._endPoints.add(endPoint);
    let connection;
    try {
      connection = factory.newConnection(endPoint);
    } catch (e) {
      this._endPoints.delete(endPoint);
      this.counters.errors++;
      this.reportError(e instanceof Error ? e : new Error(String(e)), endPoint);
      socket.destroy();
      return endPoint;
    }
    endPoint.open(connection);
    return endPoint;
  }

  private async doStop(graceMs: number): Promise<void> {
    this.capacityTimer?.cancel();
    this.capacityTimer = undefined;
    const server = this.server;
    const listenerClosed =
      server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()));
    if (this._endPoints.size > 0) {
      const allClosed = new Promise<void>((resolve) => (this.allClosed = resolve));
      for (const endPoint of [...this._endPoints]) endPoint.shutdown();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([allClosed, deadline]);
      clearTimeout(timer);
      if (this._endPoints.size > 0) {
        const error = new ShutdownTimeoutError(graceMs);
        for (const endPoint of [...this._endPoints]) endPoint.close(error);
      }
    }
    await listenerClosed;
    if (this.ownsScheduler) this.scheduler.close();
    this._state = 'STOPPED';
  }

  private reportError(error: Error, endPoint: EndPoint | undefined): void {
    const hook = this.options.onError;
    if (hook === undefined) return;
    try {
      hook(error, endPoint);
    } catch {
      // A logging hook that throws must not take the selector down.
    }
  }
}

function ignore(): void {}

/** Why an aborted connect rejects: the signal's reason when it is an Error (AbortController.abort() makes one). */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`connect aborted: ${String(reason)}`);
}

/** Whether the endpoint closed during its TLS handshake (a handshake failure, counted by its kind, not an error). */
function isHandshaking(endPoint: EndPoint): boolean {
  try {
    const connection = endPoint.connection;
    return connection instanceof TlsHandshakeConnection && !connection.handshakeDone;
  } catch {
    return false; // no connection yet
  }
}

/** How often refusals are reported and the open-file limit probed. */
const CAPACITY_CHECK_MS = 1000;
