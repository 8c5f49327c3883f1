import { performance } from 'node:perf_hooks';
import { debuglog } from 'node:util';
import type { Connection, ConnectionFactory } from '../io/Connection.js';
import type { EndPoint } from '../io/EndPoint.js';
import { EndPointClosedError } from '../io/errors.js';
import type { Handler } from './Handler.js';
import type { HttpFields } from './HttpFields.js';
import { HttpParser } from './HttpParser.js';
import type { HttpParserHandler, HttpParserLimits, HttpRequestHead, HttpResponseHead } from './HttpParser.js';
import { HttpParseError } from './errors.js';
import { Request } from './Request.js';
import type { RequestBodySource } from './Request.js';
import { Response } from './Response.js';
import type { ResponseChannel } from './Response.js';
import { ResponseAbortedError } from './exchangeErrors.js';
import { reasonPhrase } from './HttpStatus.js';

/** Options of HTTP connections (set on the Server). */
export interface HttpConnectionOptions {
  /** Parser limits (request line 8 KiB → 414, header block 16 KiB or 100 fields → 431, body → 413). */
  limits?: Partial<HttpParserLimits>;
  /**
   * A request head must be complete within this many ms of its first byte (default 10 000), or the client gets
   * 408 and is closed: a slow client cannot hold a connection by trickling a header (slowloris). 0 disables.
   */
  headerTimeoutMs?: number;
}

/** Told of handler failures and rejected requests. */
export interface HttpErrorReporter {
  reportError(error: Error, context: { kind: 'handler' | 'bad-request' | 'upgrade'; request?: Request; endPoint: EndPoint }): void;
}

/** `NODE_DEBUG=quay`: details that are not worth a line on stderr (a client that left mid-response). */
const debug = debuglog('quay');

/** Input held while parsing is blocked; over this the socket is paused. */
const HOLD_LIMIT = 64 * 1024;
const CONTINUE_100 = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

/**
 * `IDLE` (between requests) → `REQUEST` (an exchange in progress) → `IDLE`… ; → `CLOSING` (the last response is
 * on its way, then FIN) ; → `UPGRADED` (the endpoint belongs to another protocol now) ; → `CLOSED`.
 */
export type HttpConnectionState = 'IDLE' | 'REQUEST' | 'CLOSING' | 'UPGRADED' | 'CLOSED';

interface Exchange {
  request: Request;
  response: Response;
  head: HttpRequestHead;
  requestComplete: boolean;
  responseComplete: boolean;
  /** The connection stops after this response (request said close, response said close, server stopping). */
  continue100: boolean;
}

/**
 * HTTP/1.1 over a lib/io endpoint (Jetty's HttpConnection): parses requests incrementally, dispatches them to
 * the handler one at a time, writes responses through the endpoint's flusher, keeps the connection alive,
 * answers pipelined requests in order, streams request bodies with backpressure (a slow reader pauses the
 * socket), and can hand its endpoint to another protocol in place (`Response.upgrade`).
 */
export class HttpConnection implements Connection, HttpParserHandler, ResponseChannel, RequestBodySource {
  private readonly parser: HttpParser;
  private _state: HttpConnectionState = 'IDLE';
  private exchange: Exchange | undefined;
  /** Received bytes not parsed yet (parsing is blocked); always a private copy. */
  private held: Buffer | undefined;
  private parsing = false;
  private headStartedAt = 0;
  private shuttingDown = false;
  private peerClosed = false;
  private pendingUpgrade: ((endPoint: EndPoint) => Connection) | undefined;
  private writableWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly headerTimeoutMs: number;
  /** Requests served on this connection. */
  requests = 0;
  /** Handler errors that were the client leaving (see onHandlerError). */
  private disconnectsSeen = 0;

  constructor(
    readonly endPoint: EndPoint,
    private readonly handler: () => Handler | undefined,
    private readonly reporter: HttpErrorReporter,
    options: HttpConnectionOptions = {},
  ) {
    this.parser = new HttpParser(this, { mode: 'request', ...(options.limits === undefined ? {} : { limits: options.limits }) });
    this.headerTimeoutMs = options.headerTimeoutMs ?? 10_000;
  }

  /** See {@link HttpConnectionState}. */
  get state(): HttpConnectionState {
    return this._state;
  }

  // ------------------------------------------------------------------------------------------- Connection

  onOpen(): void {}

  onFillable(bytes: Buffer): void {
    if (this._state === 'CLOSED' || this._state === 'UPGRADED') return;
    if (this._state === 'CLOSING' && this.exchange === undefined) return; // lingering close: discard
    if (this.exchange === undefined && this.headStartedAt === 0) this.headStartedAt = performance.now();
    else if (this.headerTimedOut()) return;
    if (this.held !== undefined || this.parsing || this.isBlocked()) {
      this.held = this.held === undefined ? Buffer.from(bytes) : Buffer.concat([this.held, bytes]);
      this.updateInterest();
      return;
    }
    this.parseInput(bytes, false);
  }

  onIdleExpired(): boolean {
    if (this.headerTimedOut()) return false;
    const ex = this.exchange;
    // Between requests, or the client stalled in the middle of its request: close. A handler that is still
    // working (or reading slowly) keeps the connection; a stuck write is failed by the endpoint itself.
    return ex === undefined || (!ex.requestComplete && !ex.request.isBodyBackedUp);
  }

  onClose(cause: Error | undefined): void {
    this._state = 'CLOSED';
    const ex = this.exchange;
    this.exchange = undefined;
    this.held = undefined;
    const error = new ResponseAbortedError('the connection closed', { cause });
    ex?.request.failBody(error);
    const waiters = this.writableWaiters;
    this.writableWaiters = [];
    for (const w of waiters) w.reject(new EndPointClosedError('connection closed', cause));
  }

  onWritable(): void {
    const waiters = this.writableWaiters;
    this.writableWaiters = [];
    for (const w of waiters) w.resolve();
  }

  onInputShutdown(): void {
    this.peerClosed = true;
    const ex = this.exchange;
    if (ex !== undefined && !ex.requestComplete) {
      // The client's FIN cut its own request short.
      try {
        this.parser.onEndOfInput();
      } catch (e) {
        ex.request.failBody(e as Error);
      }
      this.endPoint.close(new HttpParseError(400, 'HTTP_TRUNCATED', 'the client closed in the middle of its request'));
      return;
    }
    // A client may half-close after its request and still read the response (RFC 9112 §9.6).
    if (ex === undefined && this.held === undefined) this.endPoint.closeAfterFlush();
  }

  onShutdown(): void {
    this.shuttingDown = true;
    if (this.exchange === undefined && this.held === undefined) {
      this._state = 'CLOSING';
      this.endPoint.shutdownOutput();
    }
    // Otherwise the response in progress is the last one (see requestKeepAlive / onResponseComplete).
  }

  onUpgradeFrom(): Buffer | undefined {
    this._state = 'UPGRADED';
    const leftover = this.held;
    this.held = undefined;
    this.exchange = undefined;
    return leftover;
  }

  describe(): string {
    const ex = this.exchange;
    const what = ex === undefined ? '' : ` ${ex.head.method} ${ex.head.target}${ex.requestComplete ? '' : ' (reading body)'}`;
    return `HttpConnection ${this._state} requests=${this.requests} parser=${this.parser.state}${what}`;
  }

  // ------------------------------------------------------------------------------------------- parser events

  onHead(head: HttpRequestHead | HttpResponseHead): boolean {
    const requestHead = head as HttpRequestHead;
    this.headStartedAt = 0;
    this.requests++;
    this._state = this._state === 'CLOSING' ? 'CLOSING' : 'REQUEST';
    const request = new Request(requestHead, { address: this.endPoint.remoteAddress, port: this.endPoint.remotePort }, this);
    const response = new Response(this);
    const ex: Exchange = {
      request,
      response,
      head: requestHead,
      requestComplete: false,
      responseComplete: false,
      continue100: requestHead.expectContinue && requestHead.versionMinor === 1,
    };
    this.exchange = ex;
    this.dispatch(ex);
    // Stop after an upgrade request's head: what follows belongs to the next protocol (or to the next request
    // if the handler declines), and must not be parsed as HTTP until the handler decided.
    return requestHead.upgrade || this.isBlocked();
  }

  onBody(chunk: Buffer): boolean {
    const ex = this.exchange;
    if (ex === undefined || ex.responseComplete) return false; // the handler is done with it: discard
    // Copy: the parser hands a view of a read buffer that is only valid during this call.
    return ex.request.pushBody(Buffer.from(chunk));
  }

  onMessageComplete(trailers: HttpFields | undefined): boolean {
    const ex = this.exchange;
    if (ex === undefined) return false;
    ex.requestComplete = true;
    ex.request.endBody(trailers);
    if (ex.responseComplete) {
      this.finishExchange(ex);
      return this.isBlocked();
    }
    return true; // pipelining: the next request waits for this response
  }

  // ------------------------------------------------------------------------------------------- ResponseChannel

  get requestKeepAlive(): boolean {
    const ex = this.exchange;
    return ex !== undefined && ex.head.keepAlive && !this.shuttingDown && !this.peerClosed && this._state !== 'CLOSING';
  }

  get requestIsHead(): boolean {
    return this.exchange?.head.method === 'HEAD';
  }

  get versionMinor(): 0 | 1 {
    return this.exchange?.head.versionMinor ?? 1;
  }

  write(buffers: Buffer[], callback?: (error: Error | null) => void): boolean {
    const ex = this.exchange;
    if (ex !== undefined) ex.continue100 = false; // a final response makes 100 Continue moot
    return this.endPoint.write(buffers, callback);
  }

  whenWritable(): Promise<void> {
    if (this._state === 'CLOSED') return Promise.reject(new EndPointClosedError('connection closed'));
    if (this.endPoint.isWritable) return Promise.resolve();
    return new Promise((resolve, reject) => this.writableWaiters.push({ resolve, reject }));
  }

  onResponseComplete(keepAlive: boolean): void {
    const ex = this.exchange;
    if (ex === undefined) return;
    ex.responseComplete = true;
    if (ex.request.isUpgrade) {
      // An upgrade answered with anything but 101: the "200 instead of 101" confusion of Jetty's demo (usually a
      // wrong path). Say which handler answered, so it can be found without a packet capture.
      const by = ex.response.handledBy ?? 'the server handler';
      const status = ex.response.status;
      // A WebSocket handler that answered 4xx refused the handshake (bad request, version, origin, accept): say
      // so, rather than suggesting that no handler was there.
      const why = /WebSocket/.test(by) ? 'the WebSocket handshake was refused (the body says why)' : 'no WebSocket handler took it';
      this.reporter.reportError(
        new Error(`upgrade request for ${ex.head.target} was answered ${status} by ${by}, not 101: ${why}`),
        { kind: 'upgrade', request: ex.request, endPoint: this.endPoint },
      );
    }
    if (!keepAlive) {
      // The last response: half-close after it is flushed, keep reading (and discarding) until the client
      // closes, so it gets the whole response rather than a reset.
      this._state = 'CLOSING';
      this.exchange = undefined;
      this.held = undefined;
      ex.request.failBody(new ResponseAbortedError('the response ended the connection'));
      this.endPoint.shutdownOutput();
      this.endPoint.resumeReading();
      return;
    }
    if (ex.requestComplete) this.finishExchange(ex);
    // else: the rest of the request body is read and discarded (onBody), then the next request is parsed.
    this.drive();
  }

  upgrade(head: Buffer, next: (endPoint: EndPoint) => Connection): void {
    this.endPoint.write(head);
    this.pendingUpgrade = next;
    if (!this.parsing) this.completeUpgrade();
  }

  // ------------------------------------------------------------------------------------------- RequestBodySource

  onBodyConsumed(): void {
    // The reader caught up: parse what is held, and let the socket be read again if it was paused for it.
    if (!this.parsing) this.drive();
  }

  onBodyDemand(): void {
    const ex = this.exchange;
    if (ex !== undefined && ex.continue100 && !ex.response.headersSent) {
      // RFC 9110 §10.1.1: the client waits for 100 before sending the body; send it once the body is wanted.
      ex.continue100 = false;
      this.endPoint.write(CONTINUE_100);
    }
  }

  // ------------------------------------------------------------------------------------------- internals

  private dispatch(ex: Exchange): void {
    const handler = this.handler();
    let result: boolean | void | Promise<boolean | void>;
    try {
      if (handler === undefined) throw new Error('no handler is set on the server');
      result = handler.handle(ex.request, ex.response);
    } catch (e) {
      this.onHandlerError(e, ex);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.afterHandle(value, ex),
        (e: unknown) => this.onHandlerError(e, ex),
      );
    } else {
      this.afterHandle(result, ex);
    }
  }

  private afterHandle(value: boolean | void, ex: Exchange): void {
    if (value !== false || ex.response.headersSent || this.exchange !== ex) return;
    this.answerFresh(ex, 404, `404 Not Found: ${ex.request.path}\n`, false);
  }

  private onHandlerError(e: unknown, ex: Exchange): void {
    const error = e instanceof Error ? e : new Error(String(e));
    if (this.isDisconnect(error)) {
      // The client left and the handler's write (or body read) failed with it: normal, and it may come once per
      // pipelined response (135,000 at once after one reset). Not a handler error; the close itself was reported
      // once by the connection layer (as 'io', when it was an I/O error). First one per connection to NODE_DEBUG.
      if (this.disconnectsSeen++ === 0) debug('handler of %s %s saw the client leave: %s', ex.head.method, ex.head.target, error.message);
      return;
    }
    this.reporter.reportError(error, { kind: 'handler', request: ex.request, endPoint: this.endPoint });
    if (this.exchange !== ex || this._state === 'CLOSED') return;
    if (!ex.response.headersSent) {
      this.answerFresh(ex, 500, '500 Internal Server Error\n', true);
    } else if (!ex.response.finished) {
      this.endPoint.close(error);
    }
  }

  /**
   * A handler error after the connection closed, caused by the close (EndPointClosedError from a write,
   * ResponseAbortedError from a body read, possibly wrapped in the handler's own error's `cause`).
   */
  private isDisconnect(error: Error): boolean {
    if (this._state !== 'CLOSED' && this.endPoint.isOpen) return false;
    let e: unknown = error;
    for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
      if (e instanceof EndPointClosedError || e instanceof ResponseAbortedError) return true;
      e = e.cause;
    }
    return false;
  }

  /** The connection's own answer on fresh headers (the handler's may be what failed); never throws. */
  private answerFresh(ex: Exchange, status: number, body: string, close: boolean): void {
    try {
      void ex.response.sendFresh(status, body, close);
    } catch (e) {
      this.endPoint.close(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private finishExchange(ex: Exchange): void {
    if (this.exchange !== ex) return;
    this.exchange = undefined;
    if (this._state === 'REQUEST') this._state = 'IDLE';
    if (this.shuttingDown || this.peerClosed) {
      if (this.held === undefined || this.shuttingDown) {
        this._state = 'CLOSING';
        this.held = undefined;
        if (this.peerClosed) this.endPoint.closeAfterFlush();
        else this.endPoint.shutdownOutput();
      }
    }
  }

  /** Parsing must wait: a response is pending, a body reader is behind, an upgrade is being decided. */
  private isBlocked(): boolean {
    if (this._state !== 'IDLE' && this._state !== 'REQUEST') return true;
    const ex = this.exchange;
    if (ex === undefined) return false;
    if (ex.head.upgrade && !ex.responseComplete) return true;
    if (ex.requestComplete) return !ex.responseComplete;
    return ex.request.isBodyBackedUp && !ex.responseComplete;
  }

  private drive(): void {
    if (this.parsing || this._state === 'CLOSED' || this._state === 'UPGRADED') return;
    const held = this.held;
    if (held !== undefined && !this.isBlocked()) {
      this.held = undefined;
      this.parseInput(held, true);
    } else {
      this.updateInterest();
    }
  }

  private parseInput(buffer: Buffer, owned: boolean): void {
    let offset = 0;
    this.parsing = true;
    try {
      while (offset < buffer.length && !this.isBlocked()) {
        offset += this.parser.parse(buffer, offset);
      }
    } catch (e) {
      this.parsing = false;
      this.onBadMessage(e);
      return;
    }
    this.parsing = false;
    if (offset < buffer.length && this._state !== 'CLOSED') {
      const rest = owned && offset === 0 ? buffer : Buffer.from(buffer.subarray(offset));
      this.held = this.held === undefined ? rest : Buffer.concat([rest, this.held]);
    }
    if (this.pendingUpgrade !== undefined) {
      this.completeUpgrade();
      return;
    }
    // A response may have completed while we were parsing (a synchronous handler): go on with what is held.
    if (this.held !== undefined && !this.isBlocked()) this.drive();
    else this.updateInterest();
  }

  private completeUpgrade(): void {
    const next = this.pendingUpgrade;
    if (next === undefined) return;
    this.pendingUpgrade = undefined;
    this.endPoint.upgrade(next(this.endPoint));
  }

  private updateInterest(): void {
    if (this._state === 'CLOSED' || this._state === 'UPGRADED') return;
    const ex = this.exchange;
    const bodyBackedUp = ex !== undefined && !ex.responseComplete && ex.request.isBodyBackedUp;
    if (bodyBackedUp || (this.held !== undefined && this.held.length >= HOLD_LIMIT)) this.endPoint.pauseReading();
    else if (this.endPoint.isReadingPaused) this.endPoint.resumeReading();
  }

  private onBadMessage(e: unknown): void {
    if (!(e instanceof HttpParseError)) {
      this.endPoint.close(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const ex = this.exchange;
    this.reporter.reportError(e, { kind: 'bad-request', ...(ex === undefined ? {} : { request: ex.request }), endPoint: this.endPoint });
    ex?.request.failBody(e);
    this.held = undefined;
    if (ex !== undefined && ex.response.headersSent) {
      // A response is already on the wire: no room for an error response.
      this.endPoint.close(e);
      return;
    }
    // RFC 9112 §9.6 / 11: answer the error, then close (the rest of the stream cannot be trusted).
    this.exchange = undefined;
    this._state = 'CLOSING';
    const body = `${e.status} ${reasonPhrase(e.status)}: ${e.message}\n`;
    const head =
      `HTTP/1.1 ${e.status} ${reasonPhrase(e.status)}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
    this.endPoint.write([Buffer.from(head, 'latin1'), Buffer.from(body, 'utf8')]);
    this.endPoint.shutdownOutput();
  }

  private headerTimedOut(): boolean {
    if (this.headerTimeoutMs <= 0 || this.headStartedAt === 0 || this.exchange !== undefined) return false;
    if (performance.now() - this.headStartedAt < this.headerTimeoutMs) return false;
    this.onBadMessage(new HttpParseError(408, 'HTTP_HEADER_TIMEOUT', `request head not complete within ${this.headerTimeoutMs} ms`));
    return true;
  }
}

/** Makes an HttpConnection per endpoint. */
export class HttpConnectionFactory implements ConnectionFactory {
  constructor(
    private readonly handler: () => Handler | undefined,
    private readonly reporter: HttpErrorReporter,
    private readonly options: HttpConnectionOptions = {},
  ) {}

  newConnection(endPoint: EndPoint): Connection {
    return new HttpConnection(endPoint, this.handler, this.reporter, this.options);
  }
}
