import { Buffer } from 'node:buffer';
import type { Connection } from '../io/Connection.js';
import type { EndPoint } from '../io/EndPoint.js';
import { HttpFields } from './HttpFields.js';
import { CRLF, LAST_CHUNK, chunkHeader, generateResponseHead } from './HttpGenerator.js';
import type { GeneratedHead, ResponseHeadInfo } from './HttpGenerator.js';
import { ResponseStateError } from './exchangeErrors.js';
import { checkFieldName, checkFieldValue } from './fieldValidation.js';
import { safeToDrop, settleWrite } from '../io/safeToDrop.js';

/** What a Response needs from its connection. */
export interface ResponseChannel {
  /** The request allows the connection to stay open (its keep-alive rules, RFC 9112 §9.3). */
  readonly requestKeepAlive: boolean;
  /**
   * The request body was read whole, or what is left of it is small enough to read and discard after the response.
   * A response ended before the body was read says `Connection: close` otherwise.
   */
  readonly requestBodyDiscardable: boolean;
  /** The request was HEAD: no body bytes are sent. */
  readonly requestIsHead: boolean;
  readonly versionMinor: 0 | 1;
  /** Writes through the endpoint; false above the high watermark. */
  write(buffers: Buffer[], callback?: (error: Error | null) => void): boolean;
  /** Resolves when writes may go on (low watermark), rejects when the connection closed. */
  whenWritable(): Promise<void>;
  /** The response was fully written; `keepAlive` false closes the connection after the flush. */
  onResponseComplete(keepAlive: boolean): void;
  /** Writes the 101 head and swaps the endpoint's connection (see Response.upgrade). */
  upgrade(head: Buffer, next: (endPoint: EndPoint) => Connection): void;
}

/** `HEADERS` (head not sent) → `COMMITTED` (head sent, body streaming) → `COMPLETE`; or → `UPGRADED`. */
export type ResponseState = 'HEADERS' | 'COMMITTED' | 'COMPLETE' | 'UPGRADED';

const RESOLVED = Promise.resolve();
const EMPTY = Buffer.alloc(0);
/** Reused by every `commit` (see there). */
const HEAD_INFO: ResponseHeadInfo = { status: 200, keepAlive: true };

/**
 * An HTTP response. Set `status` and headers, then `write()` body chunks (each returns a Promise that
 * resolves at once while the connection is under its high watermark, and later when it has drained: await it
 * for backpressure) and `end()`. With no `Content-Length` set, a body written in several calls is sent
 * chunked (HTTP/1.1) or close-delimited (HTTP/1.0); `end(body)` alone sends a `Content-Length`.
 *
 * Every Promise it returns is safe to drop: a rejection nobody awaits (the client left: `EndPointClosedError`)
 * never reaches `unhandledRejection`; who awaits it still sees it. A handler that rethrows such an error after
 * the connection closed is counted as a disconnect, not as a handler error (see `ServerErrorContext`).
 *
 * Header names must be tokens and values must not contain CR, LF, NUL, other control characters or characters
 * above U+00FF (RFC 9110 §5.1, §5.5): `setHeader`, `addHeader` and `headers.add` / `headers.set` throw an
 * `InvalidHeaderError` at once otherwise (as node:http's `ERR_INVALID_CHAR`), so a value copied from a request
 * cannot split the response (RFC 9112 §11.1). Encode such data first (`encodeURIComponent`, RFC 8187 for
 * `Content-Disposition: attachment; filename*=UTF-8''...`).
 */
export class Response {
  /** The status code; settable until the head is sent. */
  status = 200;
  /** A reason phrase; the standard one when undefined. */
  reason: string | undefined;
  readonly headers = new HttpFields();
  /** Which handler answered (set by the Router: handler name and route), for diagnostics. */
  handledBy: string | undefined;
  private _state: ResponseState = 'HEADERS';
  private chunked = false;
  private keepAlive = true;
  private declaredLength = -1;
  private sentBodyBytes = 0;
  /** The body given to `end()` went out in the head's buffer (commit). */
  private bodyInHead = false;

  /** @internal Made by HttpConnection. */
  constructor(private readonly channel: ResponseChannel) {}

  /** See {@link ResponseState}. */
  get state(): ResponseState {
    return this._state;
  }

  /** True once the status line and headers were handed to the connection. */
  get headersSent(): boolean {
    return this._state !== 'HEADERS';
  }

  /** True once `end()` was called (or the connection was upgraded). */
  get finished(): boolean {
    return this._state === 'COMPLETE' || this._state === 'UPGRADED';
  }

  /**
   * Sets a header (replacing any value). Throws `ResponseStateError` once the head was sent, and
   * `InvalidHeaderError` (nothing changed) for a name that is not a token or an invalid value.
   */
  setHeader(name: string, value: string | number | readonly string[]): this {
    this.checkHeaders();
    if (Array.isArray(value)) {
      checkFieldName(name);
      for (const v of value as readonly string[]) checkFieldValue(name, v);
      this.headers.delete(name);
      for (const v of value as readonly string[]) this.headers.add(name, v);
    } else {
      this.headers.set(name, typeof value === 'number' ? String(value) : (value as string));
    }
    return this;
  }

  /** Adds a header value (keeping the others). Throws like {@link setHeader}. */
  addHeader(name: string, value: string): this {
    this.checkHeaders();
    this.headers.add(name, value);
    return this;
  }

  getHeader(name: string): string | undefined {
    return this.headers.get(name);
  }

  removeHeader(name: string): this {
    this.checkHeaders();
    this.headers.delete(name);
    return this;
  }

  /**
   * Writes a body chunk (a string is UTF-8). Sends the head first if needed. Resolves when more may be written.
   * Rejects with `ResponseStateError` after `end()`, with `EndPointClosedError` when the connection closed.
   * Safe to drop.
   */
  write(chunk: Buffer | string): Promise<void> {
    if (this.finished) return safeToDrop(Promise.reject(new ResponseStateError('write after end')));
    const data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const buffers: Buffer[] = this._state === 'HEADERS' ? [this.commit(-1)] : [];
    this.appendBody(buffers, data);
    if (buffers.length === 0) return RESOLVED;
    // Under the high watermark: the shared resolved Promise (no allocation); above it, the connection's wait.
    return this.channel.write(buffers) ? RESOLVED : safeToDrop(this.channel.whenWritable());
  }

  /**
   * Ends the response, with an optional last chunk. Resolves when every byte reached the kernel; rejects if the
   * connection closed first (`EndPointClosedError`, whose `cause` says why). Calling it twice rejects with
   * `ResponseStateError`. Safe to drop. Throws synchronously if the head cannot be written: `HttpGeneratorError`
   * for a status outside 100..999 or a reason phrase with CR/LF, `ResponseStateError` for an invalid
   * Content-Length (a handler that throws gets the 500, on fresh headers).
   */
  end(chunk?: Buffer | string): Promise<void> {
    if (this.finished) return safeToDrop(Promise.reject(new ResponseStateError('end called twice')));
    let data: Buffer = EMPTY;
    if (chunk !== undefined) {
      data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      if (typeof chunk === 'string' && this._state === 'HEADERS' && !this.headers.has('content-type')) {
        this.headers.set('Content-Type', 'text/plain; charset=utf-8');
      }
    }
    const buffers: Buffer[] = this._state === 'HEADERS' ? [this.commit(data.length, true, data)] : [];
    if (this.bodyInHead) this.sentBodyBytes += data.length;
    else this.appendBody(buffers, data);
    if (this.chunked) buffers.push(LAST_CHUNK);
    if (this.declaredLength >= 0 && this.sentBodyBytes !== this.declaredLength && !this.channel.requestIsHead && this.hasBody()) {
      // Fewer (or more) bytes than Content-Length promised: the message is broken, so the connection cannot be
      // reused (RFC 9112 §6.3: the client would misread the next response).
      this.keepAlive = false;
    }
    this._state = 'COMPLETE';
    const keepAlive = this.keepAlive;
    // Safe to drop: a handler that does not await end() for a client that left must not end the process.
    const done = settleWrite((callback) => this.channel.write(buffers, callback));
    this.channel.onResponseComplete(keepAlive);
    return done;
  }

  /**
   * @internal The connection's own answer (500 after a handler error, 404 when no handler took the request):
   * status and body on fresh headers, since the handler's (or its status and reason) may be what failed.
   */
  sendFresh(status: number, body: string, close: boolean): Promise<void> {
    this.headers.clear();
    this.reason = undefined;
    this.status = status;
    if (close) this.headers.set('Connection', 'close');
    return this.end(body);
  }

  /** Sends a complete response in one call: status, optional content type, body. */
  send(status: number, body: string | Buffer = '', contentType?: string): Promise<void> {
    this.status = status;
    if (contentType !== undefined) this.setHeader('Content-Type', contentType);
    return this.end(body);
  }

  /**
   * Switches protocols (RFC 9110 §15.2.2): writes `101 Switching Protocols` with these headers and swaps the
   * endpoint's connection in place for `next(endPoint)`. The bytes that followed the request head are handed to
   * the new connection before any later read. Only for a request with `isUpgrade`. Throws `InvalidHeaderError`
   * for a bad name or value (nothing is written).
   */
  upgrade(fields: Record<string, string>, next: (endPoint: EndPoint) => Connection): void {
    if (this._state !== 'HEADERS') throw new ResponseStateError('cannot upgrade: the response was already started');
    // Built here rather than by the generator: a 101 has neither a body nor keep-alive semantics, and its
    // Connection header is `Upgrade` (RFC 9110 §7.8).
    let head = 'HTTP/1.1 101 Switching Protocols\r\n';
    for (const [name, value] of Object.entries(fields)) {
      checkFieldName(name);
      checkFieldValue(name, value);
      head += `${name}: ${value}\r\n`;
    }
    this._state = 'UPGRADED';
    this.status = 101;
    this.channel.upgrade(Buffer.from(head + '\r\n', 'latin1'), next);
  }

  /**
   * `complete`: the whole response is written now (`end()`), so the handler is done with the request body.
   * `body`: the whole body, copied into the head's buffer when it is small and goes out as it is (see
   * {@link ResponseHeadInfo.body}); `this.bodyInHead` says whether it was.
   */
  private commit(contentLength: number, complete = false, body?: Buffer): Buffer {
    // One pass over the fields for the two the response itself reads, instead of a lookup per name.
    const headers = this.headers;
    let declared: string | undefined;
    let connection: string | undefined;
    for (let i = 0; i < headers.size; i++) {
      const lower = headers.lowerAt(i);
      if (lower === 'content-length') declared ??= headers.valueAt(i);
      else if (lower === 'connection') connection ??= headers.valueAt(i);
    }
    if (declared !== undefined) {
      const n = Number(declared);
      if (!/^\d+$/.test(declared) || !Number.isSafeInteger(n)) throw new ResponseStateError(`invalid Content-Length: ${declared}`);
      contentLength = n;
      headers.delete('content-length');
    }
    if (connection !== undefined) {
      if (/(^|,)\s*close\s*(,|$)/i.test(connection)) this.keepAlive = false;
      headers.delete('connection');
    }
    const channel = this.channel;
    // One info object for every head (the generator is synchronous and keeps nothing of it).
    const info = HEAD_INFO;
    info.status = this.status;
    info.reason = this.reason;
    info.fields = headers;
    info.contentLength = contentLength;
    info.keepAlive = this.keepAlive && channel.requestKeepAlive && (!complete || channel.requestBodyDiscardable);
    info.head = channel.requestIsHead;
    info.versionMinor = channel.versionMinor;
    info.body = body;
    let head: GeneratedHead;
    try {
      head = generateResponseHead(info);
    } finally {
      // Nothing of this response stays reachable from the shared object (a throw included: a bad status).
      info.fields = undefined;
      info.body = undefined;
    }
    this.chunked = head.chunked;
    this.keepAlive = head.keepAlive;
    this.bodyInHead = head.bodyIncluded;
    this.declaredLength = this.hasBody() ? contentLength : -1;
    this._state = 'COMMITTED';
    return head.bytes;
  }

  private appendBody(buffers: Buffer[], data: Buffer): void {
    if (data.length === 0 || this.channel.requestIsHead || !this.hasBody()) return;
    this.sentBodyBytes += data.length;
    if (this.chunked) buffers.push(chunkHeader(data.length), data, CRLF);
    else buffers.push(data);
  }

  /** 1xx, 204 and 304 responses never carry a body (RFC 9110 §6.4.1). */
  private hasBody(): boolean {
    return !(this.status < 200 || this.status === 204 || this.status === 304);
  }

  private checkHeaders(): void {
    if (this._state !== 'HEADERS') throw new ResponseStateError('headers already sent');
  }
}
