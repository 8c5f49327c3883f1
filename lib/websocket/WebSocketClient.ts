import { Buffer } from 'node:buffer';
import { randomFillSync } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { ConnectionOptions as TlsConnectionOptions, SecureContext } from 'node:tls';
import type { ByteBufferPool } from '../buffers/ByteBufferPool.js';
import type { Connection, ConnectionFactory } from '../io/Connection.js';
import type { EndPoint } from '../io/EndPoint.js';
import { IdleTimeoutScheduler } from '../io/IdleTimeoutScheduler.js';
import type { IdleTimeoutTarget } from '../io/IdleTimeoutScheduler.js';
import { SelectorManager } from '../io/SelectorManager.js';
import type { OutboundOptions, SelectorManagerStats } from '../io/SelectorManager.js';
import type { WatermarkOptions } from '../io/WriteFlusher.js';
import { IllegalStateError } from '../io/errors.js';
import { HttpFields } from '../http/HttpFields.js';
import { generateRequestHead } from '../http/HttpGenerator.js';
import { HttpParser } from '../http/HttpParser.js';
import type { HttpParserHandler, HttpRequestHead, HttpResponseHead } from '../http/HttpParser.js';
import { FrameParser } from './FrameParser.js';
import type { FrameParserListener } from './FrameParser.js';
import { HandshakeError, MAX_ERROR_BODY_BYTES, checkHandshakeResponse } from './HandshakeResponse.js';
import type { HandshakeErrorCode } from './HandshakeResponse.js';
import { WebSocketConnection, resolveSettings } from './WebSocketConnection.js';
import type { WebSocketConnectionOptions, WebSocketSettings } from './WebSocketConnection.js';
import { MessageDeflate, acceptDeflateResponse, resolveDeflateSettings } from './PerMessageDeflate.js';
import type { DeflateAgreement, DeflateSettings, PerMessageDeflateOptions } from './PerMessageDeflate.js';
import type { WebSocketListener, WebSocketSessionOptions } from './WebSocketListener.js';
import type { WebSocketSession } from './WebSocketSession.js';
import { safeToDrop } from '../io/safeToDrop.js';

/** Options of one {@link WebSocketClient.connect}: the handshake's, and the session's. */
export interface WebSocketConnectOptions extends WebSocketSessionOptions {
  /** Receives the session's events (onOpen first, before the returned Promise settles). Default: none. */
  listener?: WebSocketListener;
  /** Subprotocols to offer, in order of preference (`Sec-WebSocket-Protocol`, RFC 6455 §4.1 item 10): tokens, unique. */
  protocols?: string | readonly string[];
  /** `Origin` to send (RFC 6455 §4.1 item 8: browsers send it; other clients may). */
  origin?: string;
  /**
   * Extra request fields (cookies, Authorization...). `Host` replaces the URL's authority. The fields of the
   * handshake itself (Upgrade, Connection, Sec-WebSocket-*) are the client's: giving one is a TypeError.
   */
  headers?: Readonly<Record<string, string>>;
  /**
   * Connecting and the whole handshake must finish within this many ms, else the Promise rejects with
   * 'WS_HANDSHAKE_TIMEOUT' (0 = no limit). Timed by the client's idle scheduler: it fires up to one `tickMs` late.
   * Default 10 000.
   */
  handshakeTimeoutMs?: number;
  /**
   * The source address (e.g. `127.0.0.2`), so that a load test can open more connections to one target than
   * one source address has ephemeral ports (about 28 000 on Linux).
   */
  localAddress?: string;
  /**
   * Offer permessage-deflate (RFC 7692): `true` or options (threshold, level, asyncThreshold). Default false. The offer is
   * `permessage-deflate; client_no_context_takeover` (every message is compressed on its own); the server's
   * context takeover is honoured with a 32 KiB window. A server answer that breaks RFC 7692 fails the handshake
   * ('WS_HANDSHAKE_EXTENSION').
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;

  // TLS, for wss:// URLs (ignored for ws://). Flat on the options, under node:tls's names, rather than in a
  // `tls: {...}` object: that is what a `ws` user writes (ws hands its options object to tls.connect, so
  // `new WebSocket(url, { ca, rejectUnauthorized })`), and node:https's request options are flat too; one object
  // serves both, and moving from ws changes nothing. Only the options below are taken (not the rest of node:tls's).

  /**
   * The CA certificates (PEM) that the server's certificate must chain to, in place of Node's root CAs (as
   * node:tls). Default: Node's root CAs (plus `NODE_EXTRA_CA_CERTS`). For a self-signed server certificate, give
   * the certificate itself.
   */
  ca?: TlsConnectionOptions['ca'];
  /** A client certificate chain (PEM) for mutual TLS, with its `key`. Default: none. */
  cert?: TlsConnectionOptions['cert'];
  /** The private key (PEM) of `cert`. Default: none. */
  key?: TlsConnectionOptions['key'];
  /** The passphrase of `key` (or of `pfx`). */
  passphrase?: string;
  /** A client key and certificate in one PKCS#12 file, instead of `key` and `cert`. */
  pfx?: TlsConnectionOptions['pfx'];
  /**
   * The name sent in SNI (RFC 6066 §3) and that the server's certificate must match (RFC 6125). Default, as in
   * node:tls: the URL's host when it is a name; for an IP literal, no SNI and the certificate must name the IP.
   * The `Host` field is not changed by it.
   */
  servername?: string;
  /**
   * Whether a certificate that fails verification (unknown CA, expired, wrong host) fails the connection with a
   * 'WS_TLS_*' {@link HandshakeError}. Default true. `false` accepts any certificate: for tests only, since
   * anyone on the path can then read and change the traffic.
   */
  rejectUnauthorized?: boolean;
  /** The oldest TLS version to accept (node:tls `minVersion`). Default: Node's, 'TLSv1.2'. */
  minVersion?: TlsConnectionOptions['minVersion'];
}

/** Options of a {@link WebSocketClient} (shared by its connections). */
export interface WebSocketClientOptions extends WatermarkOptions {
  /**
   * Sweep period of the client's idle scheduler in ms (default 1000): the granularity of handshake and idle
   * timeouts. Ignored when `scheduler` is given.
   */
  tickMs?: number;
  /** A scheduler to share (e.g. with a server in the same process); default: one owned by this client. */
  scheduler?: IdleTimeoutScheduler;
  /**
   * Idle timeout of the connections in ms, for sessions whose `idleTimeoutMs` is unset. Default 0: a client
   * session never expires on its own (as in `ws` and browsers); use `pingIntervalMs` for keepalive.
   */
  idleTimeoutMs?: number;
  /** Told of every connection that closed because of an error (as `SelectorManagerOptions.onError`). */
  onError?: (error: Error, endPoint: EndPoint | undefined) => void;
  /** Scratch buffers of the connections (pooled, reused). Default: the process-wide `defaultBufferPool()`. */
  bufferPool?: ByteBufferPool;
}

/**
 * The WebSocket client (RFC 6455 §4.1): opens TCP connections (TLS ones for wss://, RFC 6455 §3) through its own
 * {@link SelectorManager}, performs the opening handshake, and hands each connection to a
 * {@link WebSocketConnection} in the client role (masked frames, §5.3). The sessions have the server's API
 * ({@link WebSocketSession}).
 *
 * One client serves any number of connections: they share one idle-timeout scheduler (one timer, which also
 * times the handshakes), so a load test holding 10 000 sessions runs one timer, not 10 000. `stop()` closes
 * them all (1001).
 *
 * ```ts
 * const session = await WebSocketClient.connect('ws://127.0.0.1:8080/chat', {
 *   protocols: ['chat'],
 *   listener: { onText: (session, text) => console.log(text) },
 * });
 * await session.sendText('hello');
 * session.close(1000, 'bye');
 * ```
 */
export class WebSocketClient {
  /** Owns the sockets, the idle scheduler and the stats. */
  readonly selectorManager: SelectorManager;
  private readonly ownsScheduler: boolean;
  /** Connections between `connect()` and the end of their handshake, so that `stop()` can fail them. */
  private readonly handshakes = new Set<WebSocketClientConnection>();
  private stopping: Promise<void> | undefined;

  constructor(options: WebSocketClientOptions = {}) {
    this.ownsScheduler = options.scheduler === undefined;
    const scheduler = options.scheduler ?? new IdleTimeoutScheduler({ tickMs: options.tickMs ?? 1000 });
    this.selectorManager = new SelectorManager({
      connectionFactory: NO_ACCEPT,
      scheduler,
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
      ...(options.bufferPool === undefined ? {} : { bufferPool: options.bufferPool }),
      ...(options.highWatermark === undefined ? {} : { highWatermark: options.highWatermark }),
      ...(options.lowWatermark === undefined ? {} : { lowWatermark: options.lowWatermark }),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
  }

  /** The process-wide client behind the static {@link WebSocketClient.connect} (made on first use). */
  static get default(): WebSocketClient {
    if (defaultClient === undefined || defaultClient.isStopped) defaultClient = new WebSocketClient();
    return defaultClient;
  }

  /** Connects with the {@link WebSocketClient.default} client; see {@link WebSocketClient#connect}. */
  static connect(url: string | URL, options?: WebSocketConnectOptions): Promise<WebSocketSession> {
    return WebSocketClient.default.connect(url, options);
  }

  /** True once `stop()` was called: `connect` then rejects with 'WS_CLIENT_STOPPED'. */
  get isStopped(): boolean {
    return this.stopping !== undefined;
  }

  /** Connections still connecting or in their handshake. */
  get pendingHandshakes(): number {
    return this.handshakes.size;
  }

  /** The connection counters (open = connections with a socket, in handshake or open). */
  stats(): SelectorManagerStats {
    return this.selectorManager.stats();
  }

  /**
   * Opens a WebSocket to `url` (`ws://host[:port][/path][?query]`, or `wss://` over TLS, port 443 by default; IPv6
   * hosts in brackets). Resolves with the session once the server's 101 has been checked and the listener's
   * `onOpen` has run; frames the server sent with its 101 reach the listener right after. Rejects with a
   * {@link HandshakeError} (the socket, if any, is closed; a certificate the client refuses is one of the
   * 'WS_TLS_*' codes), or with a TypeError / RangeError for invalid options, or node:tls's error for an unusable
   * `ca` / `cert` / `key` (before any connection is attempted). Safe to drop: a rejection nobody awaits does not
   * reach `unhandledRejection`.
   *
   * Sessions whose options resolve to the same settings share one settings object (as the sessions of one
   * upgrade handler do), so `{ ...base, listener }` per connection costs nothing per idle session.
   */
  connect(url: string | URL, options: WebSocketConnectOptions = NO_OPTIONS): Promise<WebSocketSession> {
    let target: WebSocketTarget;
    let resolved: ResolvedConnectOptions;
    let request: Buffer;
    const key = nextClientKey();
    try {
      target = parseWebSocketUrl(url);
      resolved = resolveConnectOptions(options, target.secure);
      request = buildRequest(target, resolved, key);
    } catch (e) {
      return safeToDrop(Promise.reject(e));
    }
    if (this.stopping !== undefined) {
      return safeToDrop(Promise.reject(new HandshakeError('WS_CLIENT_STOPPED', 'the WebSocket client was stopped')));
    }
    return safeToDrop(
      new Promise<WebSocketSession>((resolve, reject) => {
        new WebSocketClientConnection(this, target, resolved, key, request, resolve, reject).start();
      }),
    );
  }

  /**
   * Ends every connection: handshakes in progress fail ('WS_CLIENT_STOPPED'), open sessions close with 1001
   * (going away) and get `graceMs` to finish the close handshake before they are cut. The client cannot be used
   * afterwards.
   */
  stop(graceMs = 5000): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    // Fail what is not yet an endpoint of the manager (still connecting): the manager would not see it.
    for (const connection of [...this.handshakes]) connection.onClientStopped();
    this.stopping = safeToDrop(
      this.selectorManager.stop(graceMs).then(() => {
        if (this.ownsScheduler) this.selectorManager.scheduler.close();
      }),
    );
    return this.stopping;
  }

  /** @internal */
  handshakeStarted(connection: WebSocketClientConnection): void {
    this.handshakes.add(connection);
  }

  /** @internal */
  handshakeEnded(connection: WebSocketClientConnection): void {
    this.handshakes.delete(connection);
  }
}

let defaultClient: WebSocketClient | undefined;

/** The client's manager never listens; connections come from `connect()` with their own factory. */
const NO_ACCEPT: ConnectionFactory = {
  newConnection(): Connection {
    throw new IllegalStateError('a WebSocketClient does not accept connections');
  },
};

// ------------------------------------------------------------------------------------------------ the handshake

/**
 * The client connection's states:
 * ```
 *   CONNECTING --TCP connected (wss: and the TLS handshake done): request written--> HANDSHAKE
 *   HANDSHAKE --valid 101: endPoint.upgrade()--> UPGRADED
 *   CONNECTING / HANDSHAKE --refused, timeout, bad response, close, stop--> FAILED (endpoint closed, Promise rejected)
 * ```
 */
type WebSocketClientConnectionState = 'CONNECTING' | 'HANDSHAKE' | 'UPGRADED' | 'FAILED';

/**
 * The HTTP half of a client WebSocket (a lib/io {@link Connection}, and the factory that makes it the endpoint's
 * connection): writes the upgrade request, parses the response head incrementally with an {@link HttpParser} in
 * response mode, checks it (RFC 6455 §4.1), then replaces itself with a {@link WebSocketConnection} in place
 * (`endPoint.upgrade`), handing over the bytes that followed the 101. It lives only for the handshake: after
 * the upgrade nothing references it, and the session's memory is the server's (endpoint, WebSocketConnection).
 */
class WebSocketClientConnection implements Connection, ConnectionFactory, HttpParserHandler {
  private state: WebSocketClientConnectionState = 'CONNECTING';
  private endPoint: EndPoint | undefined;
  private parser: HttpParser | undefined;
  private request: Buffer | undefined;
  private deadline: HandshakeDeadline | undefined;
  /** The 101, once parsed (the parser stops right after it). */
  private switching: HttpResponseHead | undefined;
  /** A final response other than 101: the refusal, whose body is being collected. */
  private refusal: HttpResponseHead | undefined;
  private refusalBody: Buffer[] | undefined;
  private refusalBytes = 0;
  /** What the server sent after the 101 (its first frames): handed over by onUpgradeFrom. */
  private leftover: Buffer | undefined;
  private resolve: ((session: WebSocketSession) => void) | undefined;
  private reject: ((error: Error) => void) | undefined;
  /** wss:// only: gives up the TCP connect or TLS handshake in progress when the handshake fails. */
  private abort: AbortController | undefined;

  constructor(
    private readonly client: WebSocketClient,
    private readonly target: WebSocketTarget,
    private readonly options: ResolvedConnectOptions,
    private readonly key: string,
    request: Buffer,
    resolve: (session: WebSocketSession) => void,
    reject: (error: Error) => void,
  ) {
    this.request = request;
    this.resolve = resolve;
    this.reject = reject;
  }

  /** Starts the deadline and the TCP connect (and the TLS handshake for wss://). */
  start(): void {
    const manager = this.client.selectorManager;
    this.client.handshakeStarted(this);
    if (this.options.handshakeTimeoutMs > 0) this.deadline = new HandshakeDeadline(this, manager.scheduler, this.options.handshakeTimeoutMs);
    const outbound: OutboundOptions = { host: this.target.host, port: this.target.port };
    if (this.options.localAddress !== undefined) outbound.localAddress = this.options.localAddress;
    const tls = this.options.tls;
    if (tls !== undefined) outbound.tls = tls;
    // A failed handshake (the deadline, stop()) destroys a socket still connecting: a TLS server may accept TCP and
    // never answer the ClientHello, and a TCP connect to a host that drops SYNs takes the OS minutes to give up;
    // either would hold a descriptor long after the Promise rejected.
    this.abort = new AbortController();
    outbound.signal = this.abort.signal;
    manager.connect(outbound, this).then(undefined, (error: unknown) => this.onConnectFailed(error));
  }

  // ------------------------------------------------------------------------------------ ConnectionFactory

  newConnection(endPoint: EndPoint): Connection {
    this.endPoint = endPoint;
    return this;
  }

  // ------------------------------------------------------------------------------------ Connection

  onOpen(): void {
    const endPoint = this.endPoint!;
    if (this.state !== 'CONNECTING') {
      // Failed while connecting (timeout, stop): the socket arrived too late.
      endPoint.close();
      return;
    }
    this.state = 'HANDSHAKE';
    // RFC 6455 §4.1: "the client MUST NOT send any data" beyond the handshake until it has the server's answer;
    // a response larger than the body cap is never needed whole, hence no body limit here (we stop at 4 KiB).
    this.parser = new HttpParser(this, { mode: 'response', limits: { maxBodyBytes: Infinity } });
    const request = this.request!;
    this.request = undefined;
    endPoint.write(request);
  }

  onFillable(bytes: Buffer): void {
    const parser = this.parser;
    if (this.state !== 'HANDSHAKE' || parser === undefined) return;
    let consumed: number;
    try {
      consumed = parser.parse(bytes, 0);
    } catch (e) {
      this.fail(new HandshakeError('WS_HANDSHAKE_MALFORMED', `the response is not valid HTTP/1.1: ${(e as Error).message}`, { cause: e }));
      return;
    }
    const head = this.switching;
    if (head === undefined || this.state !== 'HANDSHAKE') return;
    if (consumed < bytes.length) {
      // The server may send its first frames in the same segment as the 101 (RFC 6455 §4.2.2 lets it send as
      // soon as the handshake is done). They belong to the WebSocket connection.
      const rest = bytes.subarray(consumed);
      this.leftover = this.endPoint!.freshReadBuffers ? rest : Buffer.from(rest);
    }
    this.upgrade(head);
  }

  onIdleExpired(): boolean {
    // The endpoint's own idle timeout (WebSocketClientOptions.idleTimeoutMs) ran out during the handshake.
    this.onHandshakeTimeout();
    return false;
  }

  onInputShutdown(): void {
    if (this.state !== 'HANDSHAKE') return;
    try {
      // Completes a close-delimited refusal body (onMessageComplete reports it).
      this.parser?.onEndOfInput();
    } catch {
      // A truncated response: reported just below as a close during the handshake.
    }
    if (this.state === 'HANDSHAKE') this.fail(this.closedError(undefined));
  }

  onClose(cause: Error | undefined): void {
    if (this.state !== 'CONNECTING' && this.state !== 'HANDSHAKE') return;
    // TLS 1.3 (RFC 8446 §4.4.2) lets the client finish first: a server that refuses our certificate (or has none
    // of it) says so with an alert after 'secureConnect', i.e. here, as a node:tls ERR_SSL_* error.
    if (this.options.tls !== undefined && isTlsAlert(cause)) this.fail(this.tlsError(cause));
    else this.fail(this.closedError(cause));
  }

  onShutdown(): void {
    this.onClientStopped();
  }

  onUpgradeFrom(): Buffer | undefined {
    const leftover = this.leftover;
    this.leftover = undefined;
    return leftover;
  }

  describe(): string {
    return `WebSocketClientConnection{${this.state} ${this.target.hostHeader}${this.target.requestTarget}}`;
  }

  // ------------------------------------------------------------------------------------ HttpParserHandler

  onHead(head: HttpRequestHead | HttpResponseHead): boolean {
    const response = head as HttpResponseHead; // response mode
    if (response.status === 101) {
      this.switching = response;
      return true;
    }
    // Another 1xx (RFC 9110 §15.2): interim, the final response follows.
    if (response.status < 200) return false;
    this.refusal = response;
    this.refusalBody = [];
    return false;
  }

  onBody(chunk: Buffer): boolean {
    const body = this.refusalBody;
    if (body === undefined) return false;
    const room = MAX_ERROR_BODY_BYTES - this.refusalBytes;
    // Copied: the chunk is a view of a read buffer, valid only during the call.
    body.push(Buffer.from(chunk.subarray(0, room)));
    this.refusalBytes += Math.min(room, chunk.length);
    if (this.refusalBytes < MAX_ERROR_BODY_BYTES) return false;
    this.fail(this.statusError(undefined)); // enough for the error: the rest is not read
    return true;
  }

  onMessageComplete(): boolean {
    if (this.refusal === undefined) return false; // an interim response, or the 101 (handled in onFillable)
    this.fail(this.statusError(undefined));
    return true;
  }

  // ------------------------------------------------------------------------------------ transitions

  /**
   * @internal The TCP connect failed (ECONNREFUSED...), the TLS handshake failed (certificate, alert, reset), or the
   * manager refused to connect. (After an abort the connection has already failed: nothing more happens.)
   */
  onConnectFailed(error: unknown): void {
    if (error instanceof IllegalStateError) {
      this.fail(new HandshakeError('WS_CLIENT_STOPPED', 'the WebSocket client was stopped', { cause: error }));
      return;
    }
    if (this.options.tls !== undefined && error instanceof Error && !isConnectError(error)) {
      this.fail(this.tlsError(error));
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    this.fail(new HandshakeError('WS_CONNECT_FAILED', `cannot connect to ${this.target.hostHeader}: ${message}`, { cause: error }));
  }

  /** @internal The handshake deadline (or the endpoint's idle timeout) passed. */
  onHandshakeTimeout(): void {
    const phase =
      this.state !== 'CONNECTING'
        ? 'waiting for the handshake response of'
        : this.options.tls === undefined
          ? 'connecting to'
          : 'connecting to (TCP and TLS handshake)';
    this.fail(new HandshakeError('WS_HANDSHAKE_TIMEOUT', `timed out ${phase} ${this.target.hostHeader} (handshakeTimeoutMs ${this.options.handshakeTimeoutMs})`));
  }

  /** @internal WebSocketClient.stop(), or the manager's graceful stop. */
  onClientStopped(): void {
    this.fail(new HandshakeError('WS_CLIENT_STOPPED', 'the WebSocket client was stopped during the handshake'));
  }

  /** A valid-looking 101 arrived: check it (RFC 6455 §4.1), then swap in the WebSocket connection. */
  private upgrade(head: HttpResponseHead): void {
    const endPoint = this.endPoint!;
    let protocol: string;
    const options = this.options;
    const connectionOptions: WebSocketConnectionOptions = { role: 'client', settings: options.settings, path: this.target.path };
    try {
      protocol = checkHandshakeResponse(head, this.key, options.offered, options.deflate !== undefined);
      const extensions = options.deflate === undefined ? undefined : head.fields.getCombined('sec-websocket-extensions');
      if (extensions !== undefined && extensions.trim() !== '') {
        // RFC 7692 §5.1, §7: a response that is not a valid answer to our offer fails the connection.
        let agreement: DeflateAgreement;
        try {
          agreement = acceptDeflateResponse(extensions, options.deflate!);
        } catch (e) {
          throw new HandshakeError('WS_HANDSHAKE_EXTENSION', (e as Error).message, { status: 101 });
        }
        connectionOptions.deflate = new MessageDeflate(options.deflate!, agreement);
        connectionOptions.extensions = agreement.response;
      }
    } catch (e) {
      this.fail(e as HandshakeError);
      return;
    }
    connectionOptions.protocol = protocol;
    this.state = 'UPGRADED';
    this.end();
    const connection = new WebSocketConnection(endPoint, options.listener, connectionOptions);
    const resolve = this.resolve!;
    const reject = this.reject!;
    this.resolve = this.reject = undefined;
    try {
      // Runs connection.onOpen (the listener's onOpen) now; the leftover frames follow on the next tick.
      endPoint.upgrade(connection);
    } catch (e) {
      // Not expected inside onFillable (the endpoint is open); settle the Promise whatever happens.
      endPoint.close(e instanceof Error ? e : new Error(String(e)));
      reject(this.closedError(e instanceof Error ? e : undefined));
      return;
    }
    resolve(connection.session);
  }

  /** RFC 6455 §4.1: "_Fail the WebSocket Connection_": reject, and close the socket if there is one. */
  private fail(error: HandshakeError): void {
    if (this.state === 'UPGRADED' || this.state === 'FAILED') return;
    this.state = 'FAILED';
    this.end();
    const reject = this.reject!;
    this.resolve = this.reject = undefined;
    this.leftover = this.request = undefined;
    this.refusalBody = undefined;
    reject(error);
    // Without an endpoint yet (still connecting), onOpen closes it when (if) the socket connects.
    this.endPoint?.close(error);
  }

  /**
   * The handshake is over either way: stop the deadline, drop the parser, leave the client's books, and give up a
   * connect still in progress (a no-op once connected).
   */
  private end(): void {
    this.deadline?.cancel();
    this.deadline = undefined;
    this.parser = undefined;
    const abort = this.abort;
    this.abort = undefined;
    if (abort !== undefined && this.endPoint === undefined) abort.abort();
    this.client.handshakeEnded(this);
  }

  /** A failed TLS handshake as a 'WS_TLS_*' error that names node:tls's reason (its code is `tlsCode`). */
  private tlsError(cause: Error): HandshakeError {
    const tlsCode = errorCode(cause);
    const code = (tlsCode === undefined ? undefined : TLS_CODES.get(tlsCode)) ?? 'WS_TLS_HANDSHAKE_FAILED';
    return new HandshakeError(code, `TLS with ${this.target.hostHeader} failed: ${cause.message}${tlsCode === undefined ? '' : ` (${tlsCode})`}`, {
      cause,
      ...(tlsCode === undefined ? {} : { tlsCode }),
    });
  }

  private statusError(cause: Error | undefined): HandshakeError {
    const head = this.refusal!;
    const body = this.refusalBody === undefined ? Buffer.alloc(0) : Buffer.concat(this.refusalBody, this.refusalBytes);
    const reason = head.reason === '' ? '' : ` ${head.reason}`;
    return new HandshakeError('WS_HANDSHAKE_STATUS', `the server answered ${head.status}${reason}, not 101 Switching Protocols`, {
      status: head.status,
      body,
      ...(cause === undefined ? {} : { cause }),
    });
  }

  /** The connection ended before a complete 101: a refusal if one was received, else a premature close. */
  private closedError(cause: Error | undefined): HandshakeError {
    if (this.refusal !== undefined) return this.statusError(cause);
    const why = cause === undefined ? '' : `: ${cause.message}`;
    return new HandshakeError('WS_HANDSHAKE_CLOSED', `the connection to ${this.target.hostHeader} closed before the handshake completed${why}`, {
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

/**
 * The handshake's deadline as a target of the client's shared idle scheduler: it is never marked active, so it
 * expires `handshakeTimeoutMs` after it was registered (within one tick), connecting included. One scheduler
 * sweep times every handshake in progress; no `setTimeout` per connection.
 */
class HandshakeDeadline implements IdleTimeoutTarget {
  lastActivityMs: number;
  idleSlot = -1;

  constructor(
    private readonly connection: WebSocketClientConnection,
    private readonly scheduler: IdleTimeoutScheduler,
    readonly idleTimeoutMs: number,
  ) {
    this.lastActivityMs = scheduler.clock.now();
    scheduler.register(this);
  }

  onIdleExpired(): void {
    this.cancel();
    this.connection.onHandshakeTimeout();
  }

  cancel(): void {
    this.scheduler.unregister(this);
  }
}

// ------------------------------------------------------------------------------------------------ the URL

/** @internal Where to connect and what to ask for, from a ws:// or wss:// URL. */
export interface WebSocketTarget {
  /** wss: (or https:): over TLS. */
  readonly secure: boolean;
  /** For `net.connect`: a name or an IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /**
   * The `Host` value (RFC 6455 §4.1 item 4): the authority, port omitted when it is the scheme's default (80, 443
   * for wss), IPv6 in brackets.
   */
  readonly hostHeader: string;
  /** The request-target: path and query (RFC 6455 §3 "resource name"). */
  readonly requestTarget: string;
  readonly path: string;
  /** `Authorization: Basic` from the URL's user information, if any. */
  readonly authorization: string | undefined;
}

/**
 * @internal Parses a WebSocket URI (RFC 6455 §3): `ws://host[:port][/path][?query]`, port 80 by default, or
 * `wss://...`, over TLS, port 443 by default. `http:` and `https:` are accepted as their synonyms (as the WHATWG
 * WebSocket does).
 * @throws HandshakeError 'WS_INVALID_URL'.
 */
export function parseWebSocketUrl(input: string | URL): WebSocketTarget {
  let url: URL;
  try {
    url = typeof input === 'string' ? new URL(input) : input;
  } catch (e) {
    throw new HandshakeError('WS_INVALID_URL', `invalid WebSocket URL ${JSON.stringify(String(input))}`, { cause: e });
  }
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  if (!secure && url.protocol !== 'ws:' && url.protocol !== 'http:') {
    throw new HandshakeError('WS_INVALID_URL', `a WebSocket URL starts with ws:// or wss://, not ${url.protocol}//`);
  }
  // RFC 6455 §3: "Fragment identifiers ... MUST NOT be used on these URIs".
  if (url.hash !== '') throw new HandshakeError('WS_INVALID_URL', 'a WebSocket URL has no fragment (#...) (RFC 6455 §3)');
  if (url.hostname === '') throw new HandshakeError('WS_INVALID_URL', 'the WebSocket URL has no host');
  const hostname = url.hostname;
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  const path = url.pathname === '' ? '/' : url.pathname;
  let authorization: string | undefined;
  if (url.username !== '' || url.password !== '') {
    let credentials: string;
    try {
      credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    } catch (e) {
      throw new HandshakeError('WS_INVALID_URL', 'the user information of the WebSocket URL has a bad percent-encoding', { cause: e });
    }
    authorization = `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
  }
  return {
    secure,
    host,
    // RFC 6455 §3: "If the port component is absent, the default port is 80 for "ws" and 443 for "wss"". The URL
    // parser also drops an explicit default port from `host`, so the Host field is the same either way.
    port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
    hostHeader: url.host,
    requestTarget: path + url.search,
    path,
    authorization,
  };
}

// ------------------------------------------------------------------------------------------------ options

/** A {@link WebSocketConnectOptions} checked and resolved, for one connection's handshake. */
interface ResolvedConnectOptions {
  readonly settings: WebSocketSettings;
  readonly listener: WebSocketListener;
  readonly offered: readonly string[];
  /** permessage-deflate offered (its settings), or undefined. */
  readonly deflate: DeflateSettings | undefined;
  /** Request fields after the handshake's own: Sec-WebSocket-Protocol, Origin, the application's. */
  readonly fields: readonly (readonly [string, string])[];
  /** A `Host` given in `headers`. */
  readonly host: string | undefined;
  readonly hasAuthorization: boolean;
  readonly handshakeTimeoutMs: number;
  readonly localAddress: string | undefined;
  /** wss:// only: the node:tls options of the connect (undefined for ws://: no TLS work at all there). */
  readonly tls: TlsConnectionOptions | undefined;
}

const NO_OPTIONS: WebSocketConnectOptions = Object.freeze({});
const NO_LISTENER: WebSocketListener = Object.freeze({});
const NONE: readonly string[] = Object.freeze([]);
/**
 * The settings last resolved: the next connection with equal settings shares this object, so that 10 000 sessions
 * opened with the same options hold one settings object, not 10 000 (see WebSocketSettings).
 */
let lastSettings: WebSocketSettings | undefined;

/** The request fields that are the handshake's (RFC 6455 §4.1) or the generator's: not for `headers`. */
const RESERVED_FIELDS = new Set([
  'upgrade',
  'connection',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  'sec-websocket-accept',
  'content-length',
  'transfer-encoding',
]);

/** RFC 9110 §5.6.2 token: what a subprotocol name must be (RFC 6455 §4.1 item 10). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A FrameParserListener that is never called: the parser below only validates the limits. */
const NO_FRAMES: FrameParserListener = {
  onMessage: () => false,
  onPing: () => false,
  onPong: () => false,
  onClose: () => false,
};

function resolveConnectOptions(options: WebSocketConnectOptions, secure: boolean): ResolvedConnectOptions {
  const settings = sharedSettings(options);
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
  if (!Number.isFinite(handshakeTimeoutMs) || handshakeTimeoutMs < 0) {
    throw new RangeError(`handshakeTimeoutMs must be a finite number >= 0, got ${handshakeTimeoutMs}`);
  }

  // RFC 6455 §4.1 item 10: "non-empty strings with characters in the range U+0021 to U+007E not including
  // separator characters ... and MUST all be unique".
  const protocols = options.protocols;
  const offered: readonly string[] = protocols === undefined ? NONE : typeof protocols === 'string' ? [protocols] : protocols;
  for (let i = 0; i < offered.length; i++) {
    const p = offered[i]!;
    if (typeof p !== 'string' || !TOKEN.test(p)) throw new TypeError(`subprotocol ${JSON.stringify(p)} is not a token (RFC 6455 §4.1)`);
    if (offered.indexOf(p) !== i) throw new TypeError(`subprotocol ${JSON.stringify(p)} is offered twice (RFC 6455 §4.1)`);
  }

  const deflate = resolveDeflateSettings(options.perMessageDeflate);
  const fields: [string, string][] = [];
  if (offered.length > 0) fields.push(['Sec-WebSocket-Protocol', offered.join(', ')]);
  if (deflate !== undefined) fields.push(['Sec-WebSocket-Extensions', deflate.offer]);
  let host: string | undefined;
  let hasOrigin = false;
  let hasAuthorization = false;
  const headers = options.headers;
  if (headers !== undefined) {
    for (const name of Object.keys(headers)) {
      const value = headers[name];
      const lower = name.toLowerCase();
      if (RESERVED_FIELDS.has(lower)) throw new TypeError(`header ${name} is set by the WebSocket handshake; use the client's options`);
      if (typeof value !== 'string') throw new TypeError(`header ${name} must be a string`);
      if (lower === 'host') {
        host = value;
        continue;
      }
      if (lower === 'origin') hasOrigin = true;
      if (lower === 'authorization') hasAuthorization = true;
      fields.push([name, value]);
    }
  }
  if (options.origin !== undefined) {
    if (hasOrigin) throw new TypeError('Origin is given twice (origin and headers)');
    fields.push(['Origin', options.origin]);
  }

  return {
    settings,
    listener: options.listener ?? NO_LISTENER,
    // A copy: the caller's array may change while the handshake is in progress.
    offered: offered === protocols ? [...offered] : offered,
    deflate,
    fields,
    host,
    hasAuthorization,
    handshakeTimeoutMs,
    localAddress: options.localAddress,
    tls: secure ? resolveTlsOptions(options) : undefined,
  };
}

// ------------------------------------------------------------------------------------------------ TLS

/**
 * The node:tls options of a wss:// connect. The secure context (the parsed CA store, client certificate and key)
 * is made here, before connecting (an unusable `ca`, `cert` or `key` throws node:tls's error), and shared with the
 * next connection given the same values: tls.connect would otherwise parse the PEM again for every connection and
 * keep one context per socket, which a load test opening 10 000 connections would pay 10 000 times.
 */
function resolveTlsOptions(options: WebSocketConnectOptions): TlsConnectionOptions {
  const { servername, rejectUnauthorized } = options;
  if (servername !== undefined && typeof servername !== 'string') throw new TypeError('servername must be a string');
  if (rejectUnauthorized !== undefined && typeof rejectUnauthorized !== 'boolean') throw new TypeError('rejectUnauthorized must be a boolean');
  const tls: TlsConnectionOptions = {
    secureContext: sharedSecureContext(options),
    // RFC 7301: the WebSocket handshake is HTTP/1.1 (RFC 6455 §4.1), which a server that also speaks h2 must pick.
    ALPNProtocols: ALPN_HTTP1,
  };
  // Absent, node:tls verifies (its default, true, as in ws; NODE_TLS_REJECT_UNAUTHORIZED=0 turns it off, with
  // Node's warning), and sends the URL's host as SNI when it is a name, none for an IP literal (RFC 6066 §3).
  if (rejectUnauthorized !== undefined) tls.rejectUnauthorized = rejectUnauthorized;
  if (servername !== undefined) tls.servername = servername;
  return tls;
}

const ALPN_HTTP1: readonly string[] = Object.freeze(['http/1.1']);

/** The context made last and what it was made of (compared by identity: the same strings or Buffers). */
let lastSecureContext:
  | {
      readonly ca: TlsConnectionOptions['ca'];
      readonly cert: TlsConnectionOptions['cert'];
      readonly key: TlsConnectionOptions['key'];
      readonly pfx: TlsConnectionOptions['pfx'];
      readonly passphrase: string | undefined;
      readonly minVersion: TlsConnectionOptions['minVersion'];
      readonly context: SecureContext;
    }
  | undefined;

function sharedSecureContext(options: WebSocketConnectOptions): SecureContext {
  const { ca, cert, key, pfx, passphrase, minVersion } = options;
  const last = lastSecureContext;
  if (
    last !== undefined &&
    last.ca === ca &&
    last.cert === cert &&
    last.key === key &&
    last.pfx === pfx &&
    last.passphrase === passphrase &&
    last.minVersion === minVersion
  ) {
    return last.context;
  }
  const context = createSecureContext({
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(pfx === undefined ? {} : { pfx }),
    ...(passphrase === undefined ? {} : { passphrase }),
    ...(minVersion === undefined ? {} : { minVersion }),
  });
  lastSecureContext = { ca, cert, key, pfx, passphrase, minVersion, context };
  return context;
}

/** node:tls's codes of a refused server certificate, by the 'WS_TLS_*' code that names the reason. */
const TLS_CODES: ReadonlyMap<string, HandshakeErrorCode> = new Map<string, HandshakeErrorCode>([
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'WS_TLS_UNKNOWN_CA'],
  ['UNABLE_TO_GET_ISSUER_CERT', 'WS_TLS_UNKNOWN_CA'],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'WS_TLS_UNKNOWN_CA'],
  ['SELF_SIGNED_CERT_IN_CHAIN', 'WS_TLS_UNKNOWN_CA'],
  ['DEPTH_ZERO_SELF_SIGNED_CERT', 'WS_TLS_SELF_SIGNED'],
  ['CERT_HAS_EXPIRED', 'WS_TLS_CERT_EXPIRED'],
  ['CERT_NOT_YET_VALID', 'WS_TLS_CERT_NOT_YET_VALID'],
  ['ERR_TLS_CERT_ALTNAME_INVALID', 'WS_TLS_HOST_MISMATCH'],
]);

function errorCode(error: Error): string | undefined {
  const code: unknown = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A failure to reach the server at all (ECONNREFUSED, EHOSTUNREACH, ENOTFOUND...): node reports them from the
 * `connect` or `getaddrinfo` system call. Everything else a TLS connect rejects with happened in the TLS
 * handshake (a certificate, an alert, a reset or close before 'secureConnect').
 */
function isConnectError(error: Error): boolean {
  const syscall: unknown = (error as { syscall?: unknown }).syscall;
  return syscall === 'connect' || syscall === 'getaddrinfo';
}

/** An error of OpenSSL's (node:tls's `ERR_SSL_*`): a TLS alert or protocol error on an established connection. */
function isTlsAlert(error: Error | undefined): error is Error {
  return error !== undefined && errorCode(error)?.startsWith('ERR_SSL_') === true;
}

/** resolveSettings, with the frame limits checked, shared with the previous connection when equal. */
function sharedSettings(options: WebSocketSessionOptions): WebSocketSettings {
  const settings = resolveSettings(options);
  const last = lastSettings;
  if (
    last !== undefined &&
    last.idleTimeoutMs === settings.idleTimeoutMs &&
    last.pingIntervalMs === settings.pingIntervalMs &&
    last.maxFrameBytes === settings.maxFrameBytes &&
    last.maxMessageBytes === settings.maxMessageBytes &&
    last.maxFragments === settings.maxFragments &&
    last.maxBufferedBytes === settings.maxBufferedBytes &&
    last.overflow === settings.overflow &&
    last.closeTimeoutMs === settings.closeTimeoutMs &&
    last.awaitHandlers === settings.awaitHandlers
  ) {
    return last;
  }
  // resolveSettings leaves the frame limits to the FrameParser: check them now, not on the 101.
  new FrameParser(NO_FRAMES, {
    role: 'client',
    maxFrameBytes: settings.maxFrameBytes,
    maxMessageBytes: settings.maxMessageBytes,
    maxFragments: settings.maxFragments,
  });
  lastSettings = settings;
  return settings;
}

// ------------------------------------------------------------------------------------------------ the request

/**
 * The opening handshake request (RFC 6455 §4.1, items 1-12): `GET resource HTTP/1.1`, Host, `Upgrade: websocket`,
 * `Connection: Upgrade`, the key, version 13, then the optional fields. The generator checks every name and
 * value, so a header cannot smuggle a line of its own.
 */
function buildRequest(target: WebSocketTarget, options: ResolvedConnectOptions, key: string): Buffer {
  const fields = new HttpFields();
  fields.add('Upgrade', 'websocket');
  fields.add('Connection', 'Upgrade');
  fields.add('Sec-WebSocket-Key', key);
  fields.add('Sec-WebSocket-Version', '13');
  for (const [name, value] of options.fields) fields.add(name, value);
  if (target.authorization !== undefined && !options.hasAuthorization) fields.add('Authorization', target.authorization);
  return generateRequestHead({ method: 'GET', target: target.requestTarget, host: options.host ?? target.hostHeader, fields });
}

/**
 * `Sec-WebSocket-Key` values (RFC 6455 §4.1 item 7: "a randomly selected 16-byte value ... base64-encoded", "chosen
 * randomly for each connection"), 256 at a time: one `randomFillSync` per 256 connections instead of one each.
 */
const KEY_BYTES = 16;
const keyPool = Buffer.allocUnsafe(KEY_BYTES * 256);
let keyNext = keyPool.length;

function nextClientKey(): string {
  if (keyNext === keyPool.length) {
    randomFillSync(keyPool);
    keyNext = 0;
  }
  const at = keyNext;
  keyNext += KEY_BYTES;
  return keyPool.toString('base64', at, at + KEY_BYTES);
}
