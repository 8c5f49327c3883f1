import { Buffer } from 'node:buffer';
import type { HttpFields } from './HttpFields.js';
import type { HttpRequestHead } from './HttpParser.js';
import { RequestBodyError } from './exchangeErrors.js';
import { safeToDrop } from '../io/safeToDrop.js';

/** What a Request needs from its connection: body flow control and `Expect: 100-continue`. */
export interface RequestBodySource {
  /** The consumer took bytes: the connection may read more. */
  onBodyConsumed(): void;
  /** The consumer started reading: time to send `100 Continue` if the client asked for it. */
  onBodyDemand(): void;
}

/** Body bytes held for a slow reader before the connection pauses the socket. */
export const BODY_BUFFER_LIMIT = 64 * 1024;

/**
 * An HTTP request as a handler sees it. The body streams: iterate it (`for await (const chunk of request)`),
 * or collect it with `text()`, `json()` or `bytes()`. A handler that reads slowly pauses the socket (at most
 * {@link BODY_BUFFER_LIMIT} bytes are held), so a large upload is never buffered whole unless asked for.
 */
export class Request implements AsyncIterable<Buffer> {
  /** Method as sent (case-sensitive, RFC 9110 §9.1). */
  readonly method: string;
  /** The request-target as sent (path and query, or absolute-form). */
  readonly target: string;
  /** The path, without the query, percent-decoding not applied. */
  readonly path: string;
  /** The raw query string without '?', or ''. */
  readonly rawQuery: string;
  /** `HTTP/1.0` or `HTTP/1.1`. */
  readonly version: 'HTTP/1.0' | 'HTTP/1.1';
  /** Header fields (case-insensitive names). */
  readonly headers: HttpFields;
  /** The declared body length, or -1 (chunked or none). */
  readonly contentLength: number;
  /** True for a request that asks to switch protocols (Connection: upgrade + Upgrade). */
  readonly isUpgrade: boolean;
  /** The client's address. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** True when the request came over TLS (https, wss). */
  readonly secure: boolean;

  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private demanded = false;
  private _query: URLSearchParams | undefined;
  private _trailers: HttpFields | undefined;

  /** @internal Made by HttpConnection. */
  constructor(
    head: HttpRequestHead,
    remote: { address: string; port: number; secure: boolean },
    private readonly source: RequestBodySource,
  ) {
    this.method = head.method;
    this.target = head.target;
    const q = head.target.indexOf('?');
    let path = q < 0 ? head.target : head.target.slice(0, q);
    if (!path.startsWith('/')) {
      // absolute-form (RFC 9112 §3.2.2): keep the path part only.
      const scheme = path.indexOf('://');
      if (scheme >= 0) {
        const slash = path.indexOf('/', scheme + 3);
        path = slash < 0 ? '/' : path.slice(slash);
      }
    }
    this.path = path;
    this.rawQuery = q < 0 ? '' : head.target.slice(q + 1);
    this.version = head.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';
    this.headers = head.fields;
    this.contentLength = head.contentLength;
    this.isUpgrade = head.upgrade;
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
    this.secure = remote.secure;
    if (!head.chunked && head.contentLength <= 0) this.ended = true;
  }

  /** `'https'` over TLS, else `'http'` (a WebSocket handler reads it as wss / ws). */
  get scheme(): 'http' | 'https' {
    return this.secure ? 'https' : 'http';
  }

  /** The query, parsed (lazily). */
  get query(): URLSearchParams {
    return (this._query ??= new URLSearchParams(this.rawQuery));
  }

  /** Trailer fields of a chunked body, once the body has ended. */
  get trailers(): HttpFields | undefined {
    return this._trailers;
  }

  /** True once the whole body has been received. */
  get bodyComplete(): boolean {
    return this.ended;
  }

  /** The first value of a header field, or undefined. */
  header(name: string): string | undefined {
    return this.headers.get(name);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk !== undefined) {
        this.bufferedBytes -= chunk.length;
        this.source.onBodyConsumed();
        yield chunk;
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return;
      if (!this.demanded) {
        this.demanded = true;
        this.source.onBodyDemand();
      }
      await new Promise<void>((resolve, reject) => (this.waiter = { resolve, reject }));
    }
  }

  /**
   * The whole body as bytes. `limit` (bytes) guards memory: over it, a `RequestBodyError` (413) is thrown. Rejects
   * with `ResponseAbortedError` if the connection closes first. Safe to drop (`void request.bytes()` drains the
   * body): a rejection nobody awaits does not reach `unhandledRejection`.
   */
  bytes(limit = 16 * 1024 * 1024): Promise<Buffer> {
    return safeToDrop(this.collect(limit));
  }

  /** The whole body decoded as UTF-8. Like {@link bytes}. */
  text(limit?: number): Promise<string> {
    return safeToDrop(this.collect(limit).then(utf8));
  }

  /** The whole body parsed as JSON; a syntax error becomes a `RequestBodyError` (400). Like {@link bytes}. */
  json<T = unknown>(limit?: number): Promise<T> {
    return safeToDrop(this.collect(limit).then(parseJson<T>));
  }

  private async collect(limit = 16 * 1024 * 1024): Promise<Buffer> {
    const parts: Buffer[] = [];
    let total = 0;
    for await (const chunk of this) {
      total += chunk.length;
      if (total > limit) throw new RequestBodyError(413, `request body over ${limit} bytes`);
      parts.push(chunk);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
  }

  /** @internal Body bytes from the parser (already copied). Returns true when the reader is behind. */
  pushBody(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    this.wake();
    return this.bufferedBytes >= BODY_BUFFER_LIMIT;
  }

  /** @internal */
  get isBodyBackedUp(): boolean {
    return this.bufferedBytes >= BODY_BUFFER_LIMIT;
  }

  /** @internal */
  endBody(trailers: HttpFields | undefined): void {
    this._trailers = trailers;
    this.ended = true;
    this.wake();
  }

  /** @internal The connection closed or the body was malformed: a pending read fails. */
  failBody(error: Error): void {
    if (this.ended && this.chunks.length === 0) return;
    this.failure = error;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    this.waiter = undefined;
    if (this.failure !== undefined && this.chunks.length === 0) waiter.reject(this.failure);
    else waiter.resolve();
  }
}

function utf8(body: Buffer): string {
  return body.toString('utf8');
}

function parseJson<T>(body: Buffer): T {
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (e) {
    throw new RequestBodyError(400, `request body is not valid JSON: ${(e as Error).message}`);
  }
}
