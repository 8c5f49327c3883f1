import type { AddressInfo } from 'node:net';
import type { ByteBufferPool } from '../buffers/ByteBufferPool.js';
import { SelectorManager } from '../io/SelectorManager.js';
import type { SelectorManagerStats } from '../io/SelectorManager.js';
import type { EndPoint } from '../io/EndPoint.js';
import type { Handler, HandlerFunction } from './Handler.js';
import { toHandler } from './Handler.js';
import { HttpConnectionFactory } from './HttpConnection.js';
import type { HttpConnectionOptions, HttpErrorReporter } from './HttpConnection.js';
import type { Request } from './Request.js';

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
  /** Open connections at most; excess ones are refused and counted. */
  maxConnections?: number;
  /** Write-side watermarks of every connection (bytes). */
  highWatermark?: number;
  lowWatermark?: number;
  /** Scratch buffers of every connection (pooled, reused). Default: the process-wide `defaultBufferPool()`. */
  bufferPool?: ByteBufferPool;
  /**
   * Told of every handler error (then answered 500 or closed), every rejected request (400, 413, 431...), every
   * upgrade that no handler took, and every connection closed by an I/O error. Default: `console.error` for
   * handler errors only.
   */
  onError?: (error: Error, context: ServerErrorContext) => void;
}

/** What an error report carries. */
export interface ServerErrorContext {
  /**
   * `handler`: a handler threw or rejected; `bad-request`: a request was refused (400, 413, 431...); `upgrade`: an
   * upgrade request was not answered with 101; `websocket`: a WebSocket session was failed (a peer's protocol
   * error, a slow consumer, a pong timeout: the error has a `closeCode`); `io`: a connection closed by an I/O
   * error (reset, broken pipe, write timeout).
   */
  kind: 'handler' | 'bad-request' | 'upgrade' | 'websocket' | 'io';
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
  /** The handler of every request; set it before or after `start()`. */
  handler: Handler | undefined;
  readonly options: ServerOptions;
  private readonly manager: SelectorManager;

  constructor(options: ServerOptions = {}, handler?: Handler | HandlerFunction) {
    this.options = options;
    if (handler !== undefined) this.handler = toHandler(handler);
    const factory = new HttpConnectionFactory(() => this.handler, this, options);
    this.manager = new SelectorManager({
      connectionFactory: factory,
      idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      ...(options.idleTickMs === undefined ? {} : { idleTickMs: options.idleTickMs }),
      ...(options.bufferPool === undefined ? {} : { bufferPool: options.bufferPool }),
      ...(options.highWatermark === undefined ? {} : { highWatermark: options.highWatermark }),
      ...(options.lowWatermark === undefined ? {} : { lowWatermark: options.lowWatermark }),
      onError: (error, endPoint) =>
        this.emitError(error, { kind: ioErrorKind(error), ...(endPoint === undefined ? {} : { endPoint }) }),
    });
  }

  /** Starts listening; resolves with the bound address. */
  start(): Promise<AddressInfo> {
    return this.manager.listen({ host: this.options.host ?? '127.0.0.1', port: this.options.port ?? 8080 });
  }

  /** Graceful stop: in-flight requests finish, idle keep-alive connections close, the rest are closed at the deadline. */
  stop(graceMs = 30_000): Promise<void> {
    return this.manager.stop(graceMs);
  }

  /** The bound address once started. */
  address(): AddressInfo | undefined {
    return this.manager.address();
  }

  /** Connection counters. */
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
    const hook = this.options.onError;
    if (hook === undefined) {
      if (context.kind === 'handler') console.error('quay: handler error:', error);
      else if (context.kind === 'upgrade') console.error(`quay: ${error.message}`);
      return;
    }
    try {
      hook(error, context);
    } catch {
      // An error hook that throws must not break the server.
    }
  }
}

/**
 * @internal A connection's close cause that carries a WebSocket close code (ProtocolError, WebSocketSessionError) is a
 * session failure, not an I/O error. Recognised by shape: lib/http sits below lib/websocket and does not import it.
 */
export function ioErrorKind(error: Error): 'websocket' | 'io' {
  return typeof (error as { closeCode?: unknown }).closeCode === 'number' ? 'websocket' : 'io';
}
