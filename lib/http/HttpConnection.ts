import { Buffer } from 'node:buffer';
import type { Connection, ConnectionFactory } from '../io/Connection.js';
import type { EndPoint } from '../io/EndPoint.js';
import { EndPointClosedError } from '../io/errors.js';
import { channels } from '../io/diagnostics.js';
import type { Handler } from './Handler.js';
import type { HttpFields } from './HttpFields.js';
import { HttpParser } from './HttpParser.js';
import type { HttpParserHandler, HttpParserLimits, HttpRequestHead, HttpResponseHead } from './HttpParser.js';
import { HttpParseError } from './errors.js';
import { debug } from './ErrorReporter.js';
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
  /**
   * A whole request, head and body, must be received within this many ms of its first byte (default 300 000, as
   * node:http's `requestTimeout`), or the client gets 408 and is closed (just closed if the response was already
   * started): a body trickled a byte at a time cannot hold a connection for ever. The time counts while a handler
   * reads the body slowly too: raise it for long uploads. 0 disables.
   */
  requestTimeoutMs?: number;
  /**
   * Minimum request body data rate in bytes per second (Jetty's `minRequestDataRate`), measured over the body read
   * so far from the end of the head (or from the 100 Continue), after `minRequestDataRateGraceMs`; a slower client
   * gets 408 and is closed. While the handler is the slow side (the body is backed up) the measurement starts
   * again. Default 0: off.
   */
  minRequestDataRate?: number;
  /** How long a body may arrive slower than `minRequestDataRate` before it is measured, in ms. Default 1000. */
  minRequestDataRateGraceMs?: number;
  /**
   * A handler that answers without reading the whole body leaves the rest for the connection to read and discard
   * before the next request. At most this many unread bytes (known from Content-Length) are discarded to keep the
   * connection; a longer or chunked unread body gets `Connection: close` on the response (or, if the response was
   * already committed, a close after it). Default 64 KiB.
   */
  maxDiscardBytes?: number;
  /**
   * How long, in ms, discarding such a body may take, and how long a closing connection reads (and discards) what
   * the client still sends after the last response before it is closed (a lingering close, so that the client gets
   * the response rather than a reset). Default 5000. 0 = no limit (the idle timeout still applies).
   */
  discardTimeoutMs?: number;
}

/** Told of handler failures and rejected requests. */
export interface HttpErrorReporter {
  reportError(error: Error, context: { kind: 'handler' | 'bad-request' | 'upgrade'; request?: Request; endPoint: EndPoint }): void;
}

/** Input held while parsing is blocked; over this the socket is paused. */
const HOLD_LIMIT = 64 * 1024;
/**
 * On a graceful stop, how long a connection that has received nothing yet may still send its first request (see
 * onShutdown). Bounded by the stop's own deadline too.
 */
const FIRST_REQUEST_GRACE_MS = 1000;
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
  /** A 100 Continue is owed: the client expects one and it was not sent yet (RFC 9110 §10.1.1). */
  continue100: boolean;
  /** A 100 Continue was sent (the client was told to send its body). */
  continueSent: boolean;
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
  /**
   * Received bytes not parsed yet (parsing is blocked): `heldStore[0, heldLength)`, a private copy grown by doubling,
   * so that holding up to HOLD_LIMIT in small reads costs O(HOLD_LIMIT) copying, not O(HOLD_LIMIT²).
   */
  private heldStore: Buffer | undefined;
  private heldLength = 0;
  private parsing = false;
  private shuttingDown = false;
  private peerClosed = false;
  private pendingUpgrade: ((endPoint: EndPoint) => Connection) | undefined;
  private writableWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** The timeouts and bounds of `options`, resolved once per options object and shared by its connections. */
  private readonly settings: HttpConnectionSettings;

  // Deadlines (clock times of endPoint.clock; Infinity = none). The earliest one of the current phase is put on
  // this.deadlineMs, which the idle-timeout sweep checks (see armDeadline / onDeadline): no timer per request.
  /** Whether the head being received has started (its first byte was parsed), and when. */
  private headStarted = false;
  private headStartedAt = 0;
  /** The head's deadline: first byte + min(headerTimeoutMs, requestTimeoutMs). */
  private headDeadline = Infinity;
  /** The current request's deadline: first byte + requestTimeoutMs (set when its head is complete, if it has a body). */
  private requestDeadline = Infinity;
  /** Body bytes of the current request received so far (read by the handler or discarded). */
  private bodyBytes = 0;
  /** Data-rate measurement: since when (Infinity = not measuring), and the body bytes at that time. */
  private rateStartedAt = Infinity;
  private rateBaseBytes = 0;
  /** Discarding the rest of a body after the response: until when. */
  private discardDeadline = Infinity;
  /** Lingering close: until when. */
  private lingerDeadline = Infinity;
  /** The last response was still being written at the last linger check. */
  private lingerFlushing = false;
  /** Requests served on this connection. */
  requests = 0;
  /**
   * The clock time of this connection's next deadline (`Infinity` = none), read by the endpoint's idle sweep
   * (`Connection.deadlineMs`). Kept here, not on the endpoint, so that an upgraded WebSocket carries no such field.
   */
  deadlineMs = Infinity;
  /** Handler errors that were the client leaving (see onHandlerError). */
  private disconnectsSeen = 0;

  constructor(
    readonly endPoint: EndPoint,
    private readonly handler: () => Handler | undefined,
    private readonly reporter: HttpErrorReporter,
    options: HttpConnectionOptions = {},
  ) {
    this.parser = new HttpParser(this, { mode: 'request', ...(options.limits === undefined ? {} : { limits: options.limits }) });
    this.settings = settingsOf(options);
  }

  /** See {@link HttpConnectionState}. */
  get state(): HttpConnectionState {
    return this._state;
  }

  // ------------------------------------------------------------------------------------------- Connection

  onOpen(): void {}

  onFillable(bytes: Buffer): void {
    if (this._state === 'CLOSED' || this._state === 'UPGRADED') return;
    // The clock reading of this read (EndPoint.fill): a deadline passed is acted on now, not only at the next sweep.
    const now = this.endPoint.lastActivityMs;
    if (now >= this.deadlineMs) {
      this.onDeadline(now);
      if (this.isClosed()) return;
    }
    if (this._state === 'CLOSING' && this.exchange === undefined) return; // lingering close: discard
    if (this.heldLength !== 0 || this.parsing || this.isBlocked()) {
      this.holdInput(bytes);
      this.updateInterest();
      return;
    }
    this.parseInput(bytes, false, now);
  }

  onIdleExpired(): boolean {
    const ex = this.exchange;
    // Between requests, or the client stalled in the middle of its request: close. A handler that is still
    // working (or reading slowly) keeps the connection; a stuck write is failed by the endpoint itself.
    return ex === undefined || (!ex.requestComplete && !ex.request.isBodyBackedUp);
  }

  /**
   * A deadline of the current phase was reached (see {@link HttpConnectionOptions}): a head or request not complete
   * in time, or a body too slow, gets 408 and a close (a close only, if its response was started); a discard or a
   * lingering close that takes too long is closed. Checked by the idle-timeout sweep (up to `idleTickMs` late) and on
   * every read.
   */
  onDeadline(now: number): void {
    this.deadlineMs = Infinity; // armDeadline() sets the next one where one is due
    const state = this._state;
    if (state === 'CLOSED' || state === 'UPGRADED') return;
    const ex = this.exchange;
    if (state === 'CLOSING' && ex === undefined) {
      if (now < this.lingerDeadline) return this.armDeadline();
      const ep = this.endPoint;
      if (ep.state !== 'OUTPUT_SHUTDOWN') {
        // The last response is still being written: lingering has not started. A write that does not move is the
        // endpoint's to end (its write timeout: while a write is in flight a trickling client is no activity).
        this.lingerFlushing = true;
        this.lingerDeadline = now + this.settings.discardTimeoutMs;
        return this.armDeadline();
      } else if (this.lingerFlushing) {
        // The last response was flushed since the last check: the client gets a whole period to close.
        this.lingerFlushing = false;
        this.lingerDeadline = now + this.settings.discardTimeoutMs;
        return this.armDeadline();
      }
      ep.close();
      return;
    }
    if (ex === undefined) {
      if (now < this.headDeadline) return this.armDeadline();
      if (!this.endPoint.isWritable) {
        // The rest of this head waits in `held` for our output to drain (the client is not reading): not its fault.
        this.headDeadline = now + (this.settings.headerTimeoutMs > 0 ? this.settings.headerTimeoutMs : this.settings.requestTimeoutMs);
        return this.armDeadline();
      }
      const byHeader = this.settings.headerTimeoutMs > 0 && (this.settings.requestTimeoutMs === 0 || this.settings.headerTimeoutMs <= this.settings.requestTimeoutMs);
      this.onBadMessage(
        byHeader
          ? new HttpParseError(408, 'HTTP_HEADER_TIMEOUT', `request head not complete within ${this.settings.headerTimeoutMs} ms`)
          : new HttpParseError(408, 'HTTP_REQUEST_TIMEOUT', `request not complete within ${this.settings.requestTimeoutMs} ms`),
      );
      return;
    }
    if (ex.requestComplete) return this.armDeadline();
    if (ex.responseComplete) {
      // Discarding the rest of a body the handler did not read: it had its time.
      if (now >= this.discardDeadline || now >= this.requestDeadline) this.closeAfterResponse(ex, true);
      else this.armDeadline();
      return;
    }
    if (now >= this.requestDeadline) {
      this.onBadMessage(new HttpParseError(408, 'HTTP_REQUEST_TIMEOUT', `request not complete within ${this.settings.requestTimeoutMs} ms`));
      return;
    }
    if (this.rateStartedAt !== Infinity) {
      if (ex.request.isBodyBackedUp) {
        // The handler is the slow side: measure again from now.
        this.rateStartedAt = now;
        this.rateBaseBytes = this.bodyBytes;
      } else {
        const elapsed = now - this.rateStartedAt;
        if (elapsed >= this.settings.rateGraceMs && (this.bodyBytes - this.rateBaseBytes) * 1000 < this.settings.minRequestDataRate * elapsed) {
          this.onBadMessage(
            new HttpParseError(408, 'HTTP_REQUEST_TOO_SLOW', `request body slower than ${this.settings.minRequestDataRate} bytes/s`),
          );
          return;
        }
      }
    }
    this.armDeadline();
  }

  onClose(cause: Error | undefined): void {
    this._state = 'CLOSED';
    const ex = this.exchange;
    this.exchange = undefined;
    this.dropHeld();
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
    // Our output fell under the low watermark: parse the pipelined requests held meanwhile (see isBlocked).
    if (!this.parsing) this.drive();
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
    if (ex === undefined && this.heldLength === 0 && !this.parsing) this.endPoint.closeAfterFlush();
  }

  onShutdown(): void {
    this.shuttingDown = true;
    if (this.exchange === undefined && this.heldLength === 0 && !this.headStarted && !this.peerClosed) {
      // Between requests: accepted just before the listener closed (the kernel's queue, or a node:cluster primary
      // handing connections out) with nothing received yet, or a keep-alive connection whose last response just
      // went out. Either way its client's next request may be on its way: closing now would reset it, the race
      // that turns a graceful stop or a rolling restart into failed requests (RFC 9112 §9.6 lets a server close an
      // idle connection, but a client only retries what it knows was not processed). So it gets a grace instead:
      // its next response is its last (`Connection: close`, shuttingDown), and a client that sends nothing is
      // closed by the idle sweep after FIRST_REQUEST_GRACE_MS (or by the stop's deadline, whichever comes first).
      const endPoint = this.endPoint;
      if (endPoint.idleTimeoutMs === 0 || endPoint.idleTimeoutMs > FIRST_REQUEST_GRACE_MS) endPoint.idleTimeoutMs = FIRST_REQUEST_GRACE_MS;
      return;
    }
    if (this.exchange === undefined && this.heldLength === 0) {
      this._state = 'CLOSING';
      this.startLinger();
      this.endPoint.shutdownOutput();
    }
    // Otherwise the response in progress is the last one (see requestKeepAlive / onResponseComplete).
  }

  onUpgradeFrom(): Buffer | undefined {
    this._state = 'UPGRADED';
    const leftover = this.takeHeld();
    this.exchange = undefined;
    this.deadlineMs = Infinity;
    return leftover;
  }

  describe(): string {
    const ex = this.exchange;
    const what = ex === undefined ? '' : ` ${ex.head.method} ${ex.head.target}${ex.requestComplete ? '' : ' (reading body)'}`;
    const held = this.heldLength === 0 ? '' : ` held=${this.heldLength}B`;
    return `HttpConnection ${this._state} requests=${this.requests} parser=${this.parser.state}${what}${held}`;
  }

  // ------------------------------------------------------------------------------------------- parser events

  onHead(head: HttpRequestHead | HttpResponseHead): boolean {
    const requestHead = head as HttpRequestHead;
    const startedAt = this.headStarted ? this.headStartedAt : Infinity;
    this.headStarted = false;
    this.headDeadline = Infinity;
    this.requests++;
    this._state = this._state === 'CLOSING' ? 'CLOSING' : 'REQUEST';
    const request = new Request(requestHead, { address: this.endPoint.remoteAddress, port: this.endPoint.remotePort, secure: this.endPoint.secure }, this);
    const response = new Response(this);
    const ex: Exchange = {
      request,
      response,
      head: requestHead,
      requestComplete: false,
      responseComplete: false,
      continue100: requestHead.expectContinue && requestHead.versionMinor === 1,
      continueSent: false,
    };
    this.exchange = ex;
    if (channels.requestStart.hasSubscribers) channels.requestStart.publish({ request, response, endPoint: this.endPoint });
    if (requestHead.chunked || requestHead.contentLength > 0) this.startBody(ex, startedAt);
    else this.deadlineMs = Infinity; // complete already: no deadline until the next head
    this.dispatch(ex);
    // Stop after an upgrade request's head: what follows belongs to the next protocol (or to the next request
    // if the handler declines), and must not be parsed as HTTP until the handler decided.
    return requestHead.upgrade || this.isBlocked();
  }

  onBody(chunk: Buffer): boolean {
    const ex = this.exchange;
    this.bodyBytes += chunk.length;
    // The handler is done with it: discard (bounded: see requestBodyDiscardable / onDeadline).
    if (ex === undefined || ex.responseComplete) return false;
    // Copy: the parser hands a view of a read buffer that is only valid during this call.
    return ex.request.pushBody(Buffer.from(chunk));
  }

  onMessageComplete(trailers: HttpFields | undefined): boolean {
    const ex = this.exchange;
    if (ex === undefined) return false;
    ex.requestComplete = true;
    this.deadlineMs = Infinity; // the request is in: its deadlines are over
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

  get requestBodyDiscardable(): boolean {
    const ex = this.exchange;
    return ex === undefined || ex.requestComplete || this.canDiscard(ex);
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
    if (channels.requestFinish.hasSubscribers) this.publishFinish(ex);
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
    if (!keepAlive || !(ex.requestComplete || this.canDiscard(ex))) {
      // The last response (or a body too long to discard after a response already committed as keep-alive).
      this.closeAfterResponse(ex, false);
      return;
    }
    if (ex.requestComplete) {
      this.finishExchange(ex);
    } else if (ex.head.contentLength > 0) {
      // (A request without a body completes right after its head: nothing to discard.)
      // The rest of the request body is read and discarded (onBody), then the next request is parsed; bounded in
      // bytes (canDiscard) and in time.
      this.discardDeadline = this.settings.discardTimeoutMs > 0 ? this.endPoint.clock.now() + this.settings.discardTimeoutMs : Infinity;
      this.armDeadline();
    }
    this.drive();
  }

  upgrade(head: Buffer, next: (endPoint: EndPoint) => Connection): void {
    // The 101 ends the exchange (onResponseComplete is not called for it: the connection is handed over).
    if (this.exchange !== undefined && channels.requestFinish.hasSubscribers) this.publishFinish(this.exchange);
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
      ex.continueSent = true;
      this.endPoint.write(CONTINUE_100);
      if (this.settings.minRequestDataRate > 0 && !ex.requestComplete) {
        // The client starts its body now: measure its rate from here.
        this.rateStartedAt = this.endPoint.clock.now();
        this.rateBaseBytes = this.bodyBytes;
        this.armDeadline();
      }
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

  /** `quay:request.finish`: the exchange's response is complete (or its 101 written). */
  private publishFinish(ex: Exchange): void {
    channels.requestFinish.publish({ request: ex.request, response: ex.response, endPoint: this.endPoint });
  }

  private finishExchange(ex: Exchange): void {
    if (this.exchange !== ex) return;
    this.exchange = undefined;
    if (this._state === 'REQUEST') this._state = 'IDLE';
    if (this.shuttingDown) {
      this._state = 'CLOSING';
      this.dropHeld();
      this.startLinger();
      if (this.peerClosed) this.endPoint.closeAfterFlush();
      else this.endPoint.shutdownOutput();
    } else if (this.peerClosed && this.heldLength === 0 && !this.parsing) {
      // The client half-closed and every request it sent is answered (during a parse, parseInput decides).
      this.closeAfterLastRequest();
    }
  }

  /** The client half-closed and nothing of it is left to parse: close once the responses are flushed. */
  private closeAfterLastRequest(): void {
    this._state = 'CLOSING';
    this.endPoint.closeAfterFlush();
  }

  /**
   * After a response: the connection ends. Half-close after the response is flushed, keep reading (and
   * discarding) until the client closes, for at most `discardTimeoutMs`, so that it gets the whole response
   * rather than a reset. `timedOut`: discarding the rest of the body took too long; then close after the flush.
   */
  private closeAfterResponse(ex: Exchange, timedOut: boolean): void {
    this._state = 'CLOSING';
    this.exchange = undefined;
    this.dropHeld();
    ex.request.failBody(new ResponseAbortedError('the response ended the connection'));
    if (timedOut) {
      this.deadlineMs = Infinity;
      this.endPoint.closeAfterFlush();
      return;
    }
    this.startLinger();
    this.endPoint.shutdownOutput();
    this.endPoint.resumeReading();
  }

  /** The rest of a body the handler left unread may be discarded to keep the connection: known, and small enough. */
  private canDiscard(ex: Exchange): boolean {
    const head = ex.head;
    if (head.chunked) return false; // its length is unknown
    if (head.contentLength <= 0) return true; // no body (RFC 9112 §6.3: a request without either has none)
    // A client waiting for a 100 Continue that never came may never send its body (RFC 9110 §10.1.1).
    if (head.expectContinue && !ex.continueSent) return false;
    return head.contentLength - this.bodyBytes <= this.settings.maxDiscardBytes;
  }

  /** The head of a request with a body is complete: its body has the rest of the request's time (and a rate). */
  private startBody(ex: Exchange, headStartedAt: number): void {
    this.bodyBytes = 0;
    this.discardDeadline = Infinity;
    this.rateStartedAt = Infinity;
    if (this.settings.requestTimeoutMs === 0 && this.settings.minRequestDataRate === 0) {
      this.requestDeadline = Infinity;
      this.deadlineMs = Infinity;
      return;
    }
    const now = this.endPoint.clock.now();
    const startedAt = headStartedAt === Infinity ? now : headStartedAt;
    this.requestDeadline = this.settings.requestTimeoutMs > 0 ? startedAt + this.settings.requestTimeoutMs : Infinity;
    if (this.settings.minRequestDataRate > 0 && !ex.continue100) {
      this.rateStartedAt = now;
      this.rateBaseBytes = 0;
    }
    this.armDeadline();
  }

  /** Lingering close: how long the client may still send after the last response. */
  private startLinger(): void {
    if (this.settings.discardTimeoutMs === 0) {
      this.lingerDeadline = Infinity;
    } else {
      this.lingerDeadline = this.endPoint.clock.now() + this.settings.discardTimeoutMs;
      this.lingerFlushing = false;
    }
    this.armDeadline();
  }

  /** Puts the earliest deadline of the current phase on the endpoint, for the idle-timeout sweep. */
  private armDeadline(): void {
    const state = this._state;
    const ex = this.exchange;
    let at = Infinity;
    if (state === 'CLOSING' && ex === undefined) {
      at = this.lingerDeadline;
    } else if (state === 'CLOSED' || state === 'UPGRADED') {
      at = Infinity;
    } else if (ex === undefined) {
      at = this.headDeadline;
    } else if (!ex.requestComplete) {
      at = this.requestDeadline;
      if (ex.responseComplete) {
        if (this.discardDeadline < at) at = this.discardDeadline;
      } else if (this.rateStartedAt !== Infinity) {
        // When the body, if nothing more came, would fall under the rate (and not before the grace period).
        const bytes = this.bodyBytes - this.rateBaseBytes;
        const rateAt = this.rateStartedAt + Math.max(this.settings.rateGraceMs, (bytes * 1000) / this.settings.minRequestDataRate);
        if (rateAt < at) at = rateAt;
      }
    }
    this.deadlineMs = at;
  }

  /** The first byte of a head was parsed (now): it has headerTimeoutMs (and the request requestTimeoutMs). */
  private startHead(now: number): void {
    this.headStarted = true;
    this.headStartedAt = now;
    let at = Infinity;
    if (this.settings.headerTimeoutMs > 0) at = now + this.settings.headerTimeoutMs;
    if (this.settings.requestTimeoutMs > 0 && now + this.settings.requestTimeoutMs < at) at = now + this.settings.requestTimeoutMs;
    this.headDeadline = at;
    this.deadlineMs = at;
  }

  /**
   * Parsing must wait: a response is pending, a body reader is behind, an upgrade is being decided, or (between
   * requests) our output to this client is over its high watermark: a client that pipelines requests and does not
   * read the responses is not read any further until it does (see updateInterest, onWritable).
   */
  private isBlocked(): boolean {
    if (this._state !== 'IDLE' && this._state !== 'REQUEST') return true;
    const ex = this.exchange;
    if (ex === undefined) return !this.endPoint.isWritable;
    if (ex.head.upgrade && !ex.responseComplete) return true;
    if (ex.requestComplete) return !ex.responseComplete;
    return ex.request.isBodyBackedUp && !ex.responseComplete;
  }

  private drive(): void {
    if (this.parsing || this._state === 'CLOSED' || this._state === 'UPGRADED') return;
    if (this.heldLength !== 0 && !this.isBlocked()) {
      this.parseInput(this.takeHeld()!, true);
    } else {
      this.updateInterest();
    }
  }

  /**
   * Parses `buffer` until it is consumed or parsing is blocked; keeps the rest. `owned`: `buffer` is ours (taken
   * from the held input), so its memory may keep the rest. `now`: the clock reading of the read, if known.
   */
  private parseInput(buffer: Buffer, owned: boolean, now?: number): void {
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
    const state = this._state;
    if (offset < buffer.length && (state === 'IDLE' || state === 'REQUEST')) this.keepRest(buffer, offset, owned);
    if (this.pendingUpgrade !== undefined) {
      this.completeUpgrade();
      return;
    }
    if (this.exchange === undefined && (state === 'IDLE' || state === 'REQUEST')) {
      if (this.peerClosed && this.heldLength === 0) {
        // The client half-closed: every request it sent was answered (and a partial one never will be).
        this.closeAfterLastRequest();
        return;
      }
      if (!this.headStarted && !this.parser.atMessageBoundary) this.startHead(now ?? this.endPoint.clock.now());
    }
    // A response may have completed while we were parsing (a synchronous handler): go on with what is held.
    if (this.heldLength !== 0 && !this.isBlocked()) this.drive();
    else this.updateInterest();
  }

  /** A method, not a field read, so the compiler does not assume callbacks left the state unchanged. */
  private isClosed(): boolean {
    return this._state === 'CLOSED';
  }

  /** Keeps `buffer[offset..]` ahead of anything held meanwhile. */
  private keepRest(buffer: Buffer, offset: number, owned: boolean): void {
    if (this.heldLength === 0) {
      if (owned) {
        // Our own buffer (the held input just parsed): move the rest to its front instead of copying it out.
        buffer.copyWithin(0, offset);
        this.heldStore = buffer;
        this.heldLength = buffer.length - offset;
      } else {
        this.holdInput(buffer.subarray(offset));
      }
      return;
    }
    const later = this.takeHeld()!;
    this.holdInput(buffer.subarray(offset));
    this.holdInput(later);
  }

  /** Appends a copy of `bytes` to the held input. */
  private holdInput(bytes: Buffer): void {
    const length = this.heldLength;
    const need = length + bytes.length;
    let store = this.heldStore;
    if (store === undefined || store.length < need) {
      const grown = Buffer.allocUnsafe(store === undefined ? need : Math.max(need, store.length * 2));
      if (store !== undefined) store.copy(grown, 0, 0, length);
      this.heldStore = store = grown;
    }
    bytes.copy(store, length);
    this.heldLength = need;
  }

  /** The held input (now the caller's), or undefined when nothing is held. */
  private takeHeld(): Buffer | undefined {
    const store = this.heldStore;
    const length = this.heldLength;
    this.heldStore = undefined;
    this.heldLength = 0;
    return store === undefined || length === 0 ? undefined : store.subarray(0, length);
  }

  private dropHeld(): void {
    this.heldStore = undefined;
    this.heldLength = 0;
  }

  private completeUpgrade(): void {
    const next = this.pendingUpgrade;
    if (next === undefined) return;
    this.pendingUpgrade = undefined;
    this.endPoint.upgrade(next(this.endPoint));
    // A stop began while this was still HTTP (a first request that was an upgrade): the new connection finishes
    // gracefully too (a WebSocket closes with 1001 at once, and its client reconnects elsewhere).
    if (this.shuttingDown) this.endPoint.shutdown();
  }

  private updateInterest(): void {
    if (this._state === 'CLOSED' || this._state === 'UPGRADED') return;
    const ex = this.exchange;
    const bodyBackedUp = ex !== undefined && !ex.responseComplete && ex.request.isBodyBackedUp;
    if (bodyBackedUp || this.heldLength >= HOLD_LIMIT) this.endPoint.pauseReading();
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
    this.dropHeld();
    this.headStarted = false;
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
    this.startLinger();
    this.endPoint.shutdownOutput();
  }
}

/** Makes an HttpConnection per endpoint. */
export class HttpConnectionFactory implements ConnectionFactory {
  /** @throws RangeError when a timeout, rate or byte count of `options` is negative or not a number. */
  constructor(
    private readonly handler: () => Handler | undefined,
    private readonly reporter: HttpErrorReporter,
    private readonly options: HttpConnectionOptions = {},
  ) {
    // Checked once here (at `new Server()`), not at the first connection; its connections share the result.
    settingsOf(options);
  }

  newConnection(endPoint: EndPoint): Connection {
    return new HttpConnection(endPoint, this.handler, this.reporter, this.options);
  }
}

/** The options of {@link HttpConnectionOptions} that are numbers, with their defaults applied and checked. */
interface HttpConnectionSettings {
  readonly headerTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly minRequestDataRate: number;
  readonly rateGraceMs: number;
  readonly maxDiscardBytes: number;
  readonly discardTimeoutMs: number;
}

const resolvedSettings = new WeakMap<HttpConnectionOptions, HttpConnectionSettings>();

/**
 * The settings of an options object, resolved (defaults, RangeError checks) the first time and then shared: the
 * connections of one server carry one reference instead of six numbers each.
 */
function settingsOf(options: HttpConnectionOptions): HttpConnectionSettings {
  let settings = resolvedSettings.get(options);
  if (settings === undefined) {
    settings = Object.freeze({
      headerTimeoutMs: nonNegative('headerTimeoutMs', options.headerTimeoutMs ?? 10_000),
      requestTimeoutMs: nonNegative('requestTimeoutMs', options.requestTimeoutMs ?? 300_000),
      minRequestDataRate: nonNegative('minRequestDataRate', options.minRequestDataRate ?? 0),
      rateGraceMs: nonNegative('minRequestDataRateGraceMs', options.minRequestDataRateGraceMs ?? 1000),
      maxDiscardBytes: nonNegative('maxDiscardBytes', options.maxDiscardBytes ?? 64 * 1024),
      discardTimeoutMs: nonNegative('discardTimeoutMs', options.discardTimeoutMs ?? 5000),
    });
    resolvedSettings.set(options, settings);
  }
  return settings;
}

function nonNegative(name: string, value: number): number {
  if (!(value >= 0)) throw new RangeError(`${name} must be a number >= 0, got ${value}`);
  return value;
}
