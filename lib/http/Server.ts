import type { AddressInfo } from 'node:net';
import type { ByteBufferPool } from '../buffers/ByteBufferPool.js';
import { SelectorManager } from '../io/SelectorManager.js';
import type { SelectorManagerStats } from '../io/SelectorManager.js';
import type { EndPoint } from '../io/EndPoint.js';
import { ConnectionLimitError, OpenFileLimitError, TlsHandshakeFailuresError } from '../io/errors.js';
import type { TlsServerOptions } from '../io/TlsServerContext.js';
import type { Handler, HandlerFunction } from './Handler.js';
import { toHandler } from './Handler.js';
import { ErrorReporter, debug } from './ErrorReporter.js';
import { HttpConnectionFactory } from './HttpConnection.js';
import type { HttpConnectionOptions, HttpErrorReporter } from './HttpConnection.js';
import type { Request } from './Request.js';
import { safeToDrop } from '../io/safeToDrop.js';
import { channels } from '../io/diagnostics.js';

/** Options of a {@link Server}. */
export interface ServerOptions extends HttpConnectionOptions {
  /** Default 8080; 0 picks a free port (see `address()`). */
  port?: number;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Idle timeout of connections in ms (0 = never); a WebSocket inherits it unless it sets its own. Default 30 000. */
  idleTimeoutMs?: number;
  /**
   * How often the one idle-timeout sweep runs, in ms: the precision of idle timeouts, of the request deadlines
   * (`headerTimeoutMs`, `requestTimeoutMs`, `minRequestDataRate`, `discardTimeoutMs`) and of WebSocket keepalive
   * pings (a timeout fires up to one tick late). Default 1000.
   */
  idleTickMs?: number;
  /**
   * Open connections at most; excess ones are refused (closed at once), counted in `stats().refusedAtLimit` and
   * reported as kind `capacity` once a second. Default: the open-file limit (`ulimit -n`) less 128.
   */
  maxConnections?: number;
  /**
   * Serve https and wss instead of http and ws, on the same port and the same handlers, with this certificate and
   * key (node:tls names: `key`, `cert`, `ca`, `passphrase`, `pfx`, `SNICallback`, `minVersion`...). TLS 1.2 or
   * newer by default, ALPN `http/1.1`. `request.secure` is then true. See {@link TlsServerOptions}.
   * @throws (the constructor) what `tls.createSecureContext` throws for a bad key, certificate or passphrase.
   */
  tls?: TlsServerOptions;
  /**
   * With `tls`: a TLS handshake must be done within this many ms of the accept, else the connection is closed and
   * counted in `stats().tls.handshakeFailures.timeout`. 0 = none (the idle timeout still applies). Default 10 000.
   */
  tlsHandshakeTimeoutMs?: number;
  /** Write-side watermarks of every connection (bytes). */
  highWatermark?: number;
  lowWatermark?: number;
  /** Scratch buffers of every connection (pooled, reused). Default: the process-wide `defaultBufferPool()`. */
  bufferPool?: ByteBufferPool;
  /**
   * Told of every handler error (then answered 500 or closed), every rejected request (400, 413, 431...), every
   * upgrade that no handler took, and every connection closed by an I/O error. Not told of a handler that failed
   * because its client left (see {@link ServerErrorContext}).
   *
   * Default: handler errors, and upgrades answered without 101, on `console.error`, in proportion: at most one
   * line per kind of error (category, error name and code) per second, then one line with the count of those
   * suppressed. Everything else, and each suppressed error, goes to `NODE_DEBUG=quay` (`util.debuglog`).
   */
  onError?: (error: Error, context: ServerErrorContext) => void;
}

/** What an error report carries. */
export interface ServerErrorContext {
  /**
   * `handler`: a handler threw or rejected; `bad-request`: a request was refused (400, 413, 431...); `upgrade`: an
   * upgrade request was not answered with 101; `websocket`: a WebSocket session was failed (a peer's protocol
   * error, a slow consumer, a pong timeout: the error has a `closeCode`); `io`: a connection closed by an I/O
   * error (reset, broken pipe, write timeout); `capacity`: connections refused at `maxConnections`
   * (`ConnectionLimitError`) or the process at its open-file limit (`OpenFileLimitError`), at most once a second
   * each, with counts; `tls`: TLS handshakes failed in the last second, by kind (a `TlsHandshakeFailuresError`,
   * at most once a second).
   *
   * A handler that fails because its client left (the rejection of its `end()` / `write()` with an
   * `EndPointClosedError`, or of a body read with a `ResponseAbortedError`, rethrown or in the `cause` of its own
   * error, after the connection closed) is a disconnect, not a handler error: it is not reported here at all, as
   * one reset after 100,000 pipelined requests would otherwise make 100,000 reports. The connection's close is
   * reported once, as `io`, when an I/O error (a reset) caused it. `NODE_DEBUG=quay` shows the first per connection.
   */
  kind: 'handler' | 'bad-request' | 'upgrade' | 'websocket' | 'io' | 'capacity' | 'tls';
  request?: Request;
  endPoint?: EndPoint;
}

/**
 * An HTTP/1.1 server (and, through `WebSocketUpgradeHandler`, a WebSocket server) on quay's connection layer.
 *
 * ```ts
 * const server = new Server({ port: 8080 });
 * server.handler = new Router().route('/hello', (req, res) => res.send(200, 'hello\n'));
 * await server.start();
 * ```
 */
export class Server implements HttpErrorReporter {
  private _handler: Handler | undefined;
  readonly options: ServerOptions;
  private readonly manager: SelectorManager;
  /** The default `onError`'s rate limit (created on first use). */
  private defaultReporter: ErrorReporter | undefined;

  constructor(options: ServerOptions = {}, handler?: Handler | HandlerFunction) {
    this.options = options;
    if (handler !== undefined) this._handler = toHandler(handler);
    const factory = new HttpConnectionFactory(() => this._handler, this, options);
    this.manager = new SelectorManager({
      connectionFactory: factory,
      idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      ...(options.idleTickMs === undefined ? {} : { idleTickMs: options.idleTickMs }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.tlsHandshakeTimeoutMs === undefined ? {} : { tlsHandshakeTimeoutMs: options.tlsHandshakeTimeoutMs }),
      ...(options.bufferPool === undefined ? {} : { bufferPool: options.bufferPool }),
      ...(options.highWatermark === undefined ? {} : { highWatermark: options.highWatermark }),
      ...(options.lowWatermark === undefined ? {} : { lowWatermark: options.lowWatermark }),
      onError: (error, endPoint) =>
        this.emitError(error, { kind: ioErrorKind(error), ...(endPoint === undefined ? {} : { endPoint }) }),
    });
  }

  /**
   * The handler of every request: a {@link Handler} or a plain function `(request, response) => ...` (read back as
   * a Handler). Set it before or after `start()`; without one a request gets 500 (reported to `onError`).
   * @throws TypeError for anything that is neither (checked now, not at the first request).
   */
  get handler(): Handler | undefined {
    return this._handler;
  }

  set handler(handler: Handler | HandlerFunction | undefined) {
    this._handler = handler === undefined ? undefined : toHandler(handler);
  }

  /** Starts listening; resolves with the bound address. */
  start(): Promise<AddressInfo> {
    return this.manager.listen({ host: this.options.host ?? '127.0.0.1', port: this.options.port ?? 8080 });
  }

  /**
   * Graceful stop: stop accepting; in-flight requests finish (their responses marked `Connection: close`); a
   * connection between requests gets 1 s for its next one (answered, marked close: it may have been on its way)
   * and is closed after that; WebSocket sessions close with 1001; what remains is closed at the deadline.
   */
  stop(graceMs = 30_000): Promise<void> {
    return safeToDrop(this.manager.stop(graceMs).finally(() => this.defaultReporter?.flush()));
  }

  /** The bound address once started. */
  address(): AddressInfo | undefined {
    return this.manager.address();
  }

  /** True when the server speaks https and wss (made with `tls`). */
  get secure(): boolean {
    return this.manager.secure;
  }

  /**
   * Replaces the certificate (and the rest of `tls`) without a restart: new connections use it, established ones
   * keep theirs.
   * @throws IllegalStateError for a server made without `tls`; what `tls.createSecureContext` throws for a bad key
   * or certificate (the configuration in force then stays).
   */
  setSecureContext(tls: TlsServerOptions): void {
    this.manager.setSecureContext(tls);
  }

  /** Connection counters (with `tls`: handshakes and their failures by kind). */
  stats(): SelectorManagerStats {
    return this.manager.stats();
  }

  /** The state of the server, its connections and exchanges, as a readable tree. */
  dump(): string {
    return this.manager.dump();
  }

  /** The connection layer under this server (for advanced use and dumps). */
  get selectorManager(): SelectorManager {
    return this.manager;
  }

  /** @internal HttpErrorReporter */
  reportError(error: Error, context: ServerErrorContext): void {
    this.emitError(error, context);
  }

  private emitError(error: Error, context: ServerErrorContext): void {
    if (channels.error.hasSubscribers) channels.error.publish({ error, ...context });
    const hook = this.options.onError;
    if (hook === undefined) {
      if (context.kind === 'handler') {
        const request = context.request;
        const what = request === undefined ? '' : ` (${request.method} ${clip(request.path)})`;
        (this.defaultReporter ??= new ErrorReporter()).report('handler error', error, `quay: handler error${what}:`, error);
      } else if (context.kind === 'upgrade') {
        // A misrouted upgrade is worth seeing while developing, but any client can send refused upgrades: rate-limited.
        (this.defaultReporter ??= new ErrorReporter()).report('upgrade answered without 101', error, `quay: ${error.message}`);
      } else if (context.kind === 'capacity') {
        // Already once a second at most, with a count (SelectorManager.checkCapacity): an operator must see these.
        console.error(`quay: ${error.message}`);
      } else {
        debug('%s: %s', context.kind, error.message);
      }
      return;
    }
    try {
      hook(error, context);
    } catch {
      // An error hook that throws must not break the server.
    }
  }
}

/** A request path in a log line: a peer chose it, so it is clipped. */
function clip(path: string): string {
  return path.length > 200 ? `${path.slice(0, 200)}...` : path;
}

/**
 * @internal A connection's close cause that carries a WebSocket close code (ProtocolError, WebSocketSessionError) is a
 * session failure, not an I/O error. Recognised by shape: lib/http sits below lib/websocket and does not import it.
 */
export function ioErrorKind(error: Error): 'websocket' | 'io' | 'capacity' | 'tls' {
  if (error instanceof ConnectionLimitError || error instanceof OpenFileLimitError) return 'capacity';
  if (error instanceof TlsHandshakeFailuresError) return 'tls';
  return typeof (error as { closeCode?: unknown }).closeCode === 'number' ? 'websocket' : 'io';
}
