import { Buffer } from 'node:buffer';
import { HttpFields } from './HttpFields.js';
import { HttpParseError } from './errors.js';
import type { HttpParseErrorCode } from './errors.js';

/**
 * Limits of the parser. Exceeding one throws {@link HttpParseError} with the status in the comment. Byte counts
 * are exact: a value equal to the limit is accepted, one more is refused.
 */
export interface HttpParserLimits {
  /** The request line without its CRLF (414), or the status line in response mode (400). Default 8192. */
  maxRequestLineBytes: number;
  /**
   * The field lines of the head, each with its CRLF, without the start line and without the empty line that
   * ends the head (431). The same bound applies separately to the trailer section of a chunked body.
   * Default 16384.
   */
  maxHeaderBytes: number;
  /** Field lines in the head, and separately in the trailer section (431). Default 100. */
  maxHeaderCount: number;
  /**
   * Body bytes (413): a Content-Length is checked when the head is complete, a chunked or close-delimited body
   * as it streams (a chunk is refused as soon as its size line announces too much). `Infinity` disables it.
   * Default 10 MiB.
   */
  maxBodyBytes: number;
  /** The chunk extensions of one chunk-size line, from the first byte after the size to the CR (400). Default 4096. */
  maxChunkExtensionBytes: number;
}

/** The defaults of {@link HttpParserLimits}. */
export const DEFAULT_LIMITS: Readonly<HttpParserLimits> = Object.freeze({
  maxRequestLineBytes: 8192,
  maxHeaderBytes: 16384,
  maxHeaderCount: 100,
  maxBodyBytes: 10 * 1024 * 1024,
  maxChunkExtensionBytes: 4096,
});

/** A parsed request head (request mode). */
export interface HttpRequestHead {
  /** The method token, case-sensitive (RFC 9110 §9.1). */
  method: string;
  /** The request-target as sent: origin-form, absolute-form, authority-form (CONNECT) or `*` (OPTIONS). */
  target: string;
  versionMinor: 0 | 1;
  fields: HttpFields;
  /** The Content-Length, or -1 when there is none (a chunked body, or no body at all). */
  contentLength: number;
  /** The body is chunked (Transfer-Encoding: chunked). */
  chunked: boolean;
  /**
   * The connection may carry another request after this one: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only
   * with `Connection: keep-alive` (RFC 9112 §9.3).
   */
  keepAlive: boolean;
  /**
   * `Connection` has the token `upgrade` and an `Upgrade` field is present, in HTTP/1.1 (RFC 9110 §7.8: an
   * Upgrade in an HTTP/1.0 request is ignored).
   */
  upgrade: boolean;
  /** `Expect: 100-continue` in HTTP/1.1 (RFC 9110 §10.1.1: ignored in HTTP/1.0). */
  expectContinue: boolean;
}

/** A parsed response head (response mode). */
export interface HttpResponseHead {
  versionMinor: 0 | 1;
  status: number;
  /** The reason phrase as sent, possibly empty (RFC 9112 §4: a client should ignore it). */
  reason: string;
  fields: HttpFields;
  /** The Content-Length, or -1 when there is none (chunked, close-delimited, or no body). */
  contentLength: number;
  chunked: boolean;
  /** The connection may carry another exchange: false for a close-delimited body or `Connection: close`. */
  keepAlive: boolean;
}

/**
 * Receives the parser's events. A callback that returns true makes `parse()` return right after that event,
 * with the bytes of everything after it unconsumed. Exceptions thrown by a callback propagate out of `parse()`
 * and leave the parser in an undefined state: `reset()` it or drop it.
 */
export interface HttpParserHandler {
  /**
   * The head is complete. Return true to stop right after it (an upgrade request, or a connection that wants to
   * dispatch first). A message without a body is complete at once: `onMessageComplete` follows in the same
   * `parse()` call even if this returned true (there are no bytes left to consume for it).
   */
  onHead(head: HttpRequestHead | HttpResponseHead): boolean | void;
  /**
   * Body bytes, de-chunked: a view of the input (no copy), valid only during the call. Return true to stop
   * after this chunk (read-side backpressure).
   */
  onBody(chunk: Buffer): boolean | void;
  /**
   * End of the message, with the trailer fields of a chunked body if there were any. Return true to stop after
   * it (pipelining: one request at a time).
   */
  onMessageComplete(trailers: HttpFields | undefined): boolean | void;
}

/** Options of {@link HttpParser}. */
export interface HttpParserOptions {
  /** Parse requests (a server, the default) or responses (a client). */
  mode?: 'request' | 'response';
  limits?: Partial<HttpParserLimits>;
}

/**
 * The parser's states. `START` (between messages, skipping empty lines) → `HEAD` (start line and fields) →
 * one of `BODY_LENGTH` (Content-Length), `BODY_EOF` (close-delimited, response mode), or the chunked states
 * `CHUNK_SIZE` → `CHUNK_EXT` → `CHUNK_SIZE_LF` → `CHUNK_DATA` → `CHUNK_DATA_CR` → `CHUNK_DATA_LF` → `CHUNK_SIZE`
 * … → (last chunk) `TRAILERS` → back to `START`. `UPGRADED` after a 101 response (the rest of the input is
 * another protocol); `ERROR` after a violation, until `reset()`.
 */
export type HttpParserState =
  | 'START'
  | 'HEAD'
  | 'BODY_LENGTH'
  | 'BODY_EOF'
  | 'CHUNK_SIZE'
  | 'CHUNK_EXT'
  | 'CHUNK_SIZE_LF'
  | 'CHUNK_DATA'
  | 'CHUNK_DATA_CR'
  | 'CHUNK_DATA_LF'
  | 'TRAILERS'
  | 'UPGRADED'
  | 'ERROR';

/** The states as small integers for the hot loop; {@link STATE_NAMES} maps them to {@link HttpParserState}. */
const enum S {
  START,
  HEAD,
  BODY_LENGTH,
  BODY_EOF,
  CHUNK_SIZE,
  CHUNK_EXT,
  CHUNK_SIZE_LF,
  CHUNK_DATA,
  CHUNK_DATA_CR,
  CHUNK_DATA_LF,
  TRAILERS,
  UPGRADED,
  ERROR,
}

const STATE_NAMES: readonly HttpParserState[] = [
  'START', 'HEAD', 'BODY_LENGTH', 'BODY_EOF', 'CHUNK_SIZE', 'CHUNK_EXT', 'CHUNK_SIZE_LF', 'CHUNK_DATA',
  'CHUNK_DATA_CR', 'CHUNK_DATA_LF', 'TRAILERS', 'UPGRADED', 'ERROR',
];

const HTAB = 9;
const LF = 10;
const CR = 13;
const SP = 32;
const COMMA = 44;
const COLON = 58;
const SEMICOLON = 59;

/** tchar (RFC 9110 §5.6.2): the bytes of a token (method, field name, transfer coding). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/**
 * Bytes allowed in a field value, a reason phrase and a chunk extension (RFC 9110 §5.5): VCHAR, obs-text, SP and
 * HTAB. NUL, every other control character (CR and LF included) and DEL are refused.
 */
const FIELD_VALUE = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) FIELD_VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_VALUE[c] = 1;
FIELD_VALUE[SP] = 1;
FIELD_VALUE[HTAB] = 1;

/**
 * Bytes of a request-target: visible ASCII (RFC 9112 §3.2; RFC 3986 allows a subset, but characters such as `|`
 * or `{` are common in the wild and cannot change the framing). No whitespace, control characters or obs-text.
 */
const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;

/**
 * Bytes of a Host value: uri-host [ ":" port ] (RFC 9112 §3.2, RFC 3986 §3.2.2): unreserved, sub-delims,
 * pct-encoded, and `:` `[` `]` for ports and IP literals. Anything else (`@`, `/`, whitespace) is refused.
 */
const HOST = new Uint8Array(256);
for (const c of "-._~!$&'()*+,;=%:[]") HOST[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) HOST[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) HOST[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) HOST[c] = 1;

/** Bytes of a URI scheme (RFC 3986 §3.1): ALPHA, DIGIT, "+", "-", ".". */
const SCHEME = new Uint8Array(256);
for (const c of '+-.') SCHEME[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) SCHEME[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) SCHEME[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) SCHEME[c] = 1;

const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

/** Sixteen hex digits (leading zeros included) are plenty: a chunk of 2^53 bytes is already refused. */
const MAX_CHUNK_SIZE_DIGITS = 16;

/** Framing-relevant fields, identified once per field line. */
const enum F {
  OTHER,
  HOST,
  CONTENT_LENGTH,
  TRANSFER_ENCODING,
  CONNECTION,
  UPGRADE,
  EXPECT,
}

/** The framing role of the field names the parser acts on (lower-cased). */
const FRAMING_IDS: ReadonlyMap<string, F> = new Map([
  ['host', F.HOST],
  ['content-length', F.CONTENT_LENGTH],
  ['transfer-encoding', F.TRANSFER_ENCODING],
  ['connection', F.CONNECTION],
  ['upgrade', F.UPGRADE],
  ['expect', F.EXPECT],
]);

/**
 * Fields whose short values are worth caching: few distinct values per server, and none secret. Credentials,
 * cookies and nonces (Authorization, Cookie, Sec-WebSocket-Key...) are left out on purpose: a shared cache would
 * keep them alive and its hit-or-miss timing could tell one client something about another's values.
 */
const CACHEABLE_VALUES: ReadonlySet<string> = new Set([
  'host', 'connection', 'upgrade', 'accept', 'accept-encoding', 'accept-language', 'cache-control', 'content-type',
  'content-encoding', 'transfer-encoding', 'expect', 'keep-alive', 'pragma', 'te', 'dnt', 'priority', 'origin',
  'sec-fetch-mode', 'sec-fetch-site', 'sec-fetch-dest', 'sec-fetch-user', 'sec-websocket-version',
  'sec-websocket-protocol', 'sec-websocket-extensions', 'sec-ch-ua-mobile', 'sec-ch-ua-platform',
  'upgrade-insecure-requests', 'x-requested-with', 'x-forwarded-proto', 'server', 'vary',
]);

/** What the parser knows of a field name as spelled by the peer: its strings and its role. */
interface FieldName {
  /** The name's bytes as received (the cache key). */
  readonly bytes: Uint8Array;
  readonly name: string;
  readonly lower: string;
  readonly id: F;
  readonly cacheValues: boolean;
}

/**
 * Field names and short values repeat from request to request (every request of a client, and most clients,
 * send the same ones), and decoding a string costs far more than comparing a few bytes. So both are kept in
 * small direct-mapped caches shared by all parsers of the process: a slot is found by a constant-time hash of
 * the bytes, a hit is confirmed by comparing every byte, and a miss simply replaces the slot. Bounded memory,
 * no effect on results, only on speed.
 */
const NAME_CACHE_SIZE = 512;
const NAME_CACHE_MAX_LENGTH = 64;
const nameCache: (FieldName | undefined)[] = new Array<FieldName | undefined>(NAME_CACHE_SIZE).fill(undefined);
const VALUE_CACHE_SIZE = 1024;
/** Longer values cost more to compare than to decode. */
const VALUE_CACHE_MAX_LENGTH = 40;
const valueCacheBytes: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(VALUE_CACHE_SIZE).fill(undefined);
const valueCacheStrings: string[] = new Array<string>(VALUE_CACHE_SIZE).fill('');

/**
 * A cheap hash of b[start..end) (non-empty): the length and six sampled bytes, more of them at the end, where
 * names of one family differ (Sec-Fetch-Site, Sec-Fetch-Mode).
 */
function sampleHash(b: Buffer, start: number, end: number): number {
  const n = end - start;
  let h = Math.imul(n, 0x9e3779b1);
  h = Math.imul(h ^ b[start]!, 0x01000193);
  h = Math.imul(h ^ b[start + (n >>> 1)]!, 0x01000193);
  h = Math.imul(h ^ b[end - 1]!, 0x01000193);
  if (n > 3) {
    h = Math.imul(h ^ b[end - 2]!, 0x01000193);
    h = Math.imul(h ^ b[end - 3]!, 0x01000193);
    h = Math.imul(h ^ b[end - 4]!, 0x01000193);
  }
  return h ^ (h >>> 15);
}

function fieldName(b: Buffer, start: number, end: number): FieldName {
  const slot = sampleHash(b, start, end) & (NAME_CACHE_SIZE - 1);
  const cached = nameCache[slot];
  if (cached !== undefined && sameBytes(b, start, end, cached.bytes)) return cached;
  const name = latin1(b, start, end);
  const entry = newFieldName(name, copyBytes(b, start, end));
  if (end - start <= NAME_CACHE_MAX_LENGTH) nameCache[slot] = entry;
  return entry;
}

function newFieldName(name: string, bytes: Uint8Array): FieldName {
  const lower = name.toLowerCase();
  return { bytes, name, lower, id: FRAMING_IDS.get(lower) ?? F.OTHER, cacheValues: CACHEABLE_VALUES.has(lower) };
}

function copyBytes(b: Buffer, start: number, end: number): Uint8Array {
  const copy = new Uint8Array(end - start);
  for (let k = 0; k < copy.length; k++) copy[k] = b[start + k]!;
  return copy;
}

function fieldValue(b: Buffer, start: number, end: number): string {
  const slot = sampleHash(b, start, end) & (VALUE_CACHE_SIZE - 1);
  const cached = valueCacheBytes[slot];
  if (cached !== undefined && sameBytes(b, start, end, cached)) return valueCacheStrings[slot]!;
  const value = latin1(b, start, end);
  valueCacheBytes[slot] = copyBytes(b, start, end);
  valueCacheStrings[slot] = value;
  return value;
}

// The usual spellings of common names are there from the start.
for (const name of [
  'Host', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Expect', 'Accept', 'Accept-Encoding',
  'Accept-Language', 'Authorization', 'Cache-Control', 'Content-Type', 'Cookie', 'Date', 'ETag', 'Keep-Alive',
  'Last-Modified', 'Location', 'Origin', 'Pragma', 'Range', 'Referer', 'Server', 'Set-Cookie', 'User-Agent',
  'Vary', 'If-Modified-Since', 'If-None-Match', 'Sec-WebSocket-Key', 'Sec-WebSocket-Version',
  'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Sec-WebSocket-Accept', 'Sec-Fetch-Mode',
  'Sec-Fetch-Site', 'Sec-Fetch-Dest', 'Sec-Fetch-User', 'Upgrade-Insecure-Requests', 'X-Forwarded-For',
  'X-Forwarded-Proto', 'X-Requested-With', 'Content-Encoding', 'Priority', 'DNT', 'TE',
]) {
  const bytes = Buffer.from(name, 'latin1');
  nameCache[sampleHash(bytes, 0, bytes.length) & (NAME_CACHE_SIZE - 1)] = newFieldName(name, copyBytes(bytes, 0, bytes.length));
}

/** Methods returned as constants rather than decoded per request. */
const KNOWN_METHODS: (string[] | undefined)[] = [];
for (const m of ['GET', 'PUT', 'POST', 'HEAD', 'PATCH', 'TRACE', 'DELETE', 'OPTIONS', 'CONNECT']) {
  (KNOWN_METHODS[m.length] ??= []).push(m);
}

/** `Buffer#latin1Slice`: what `toString('latin1', s, e)` ends up calling, minus its argument juggling. */
type Latin1Sliceable = Buffer & { latin1Slice(start: number, end: number): string };
const HAS_LATIN1_SLICE = typeof (Buffer.prototype as Partial<Latin1Sliceable>).latin1Slice === 'function';
function latin1(b: Buffer, start: number, end: number): string {
  return HAS_LATIN1_SLICE ? (b as Latin1Sliceable).latin1Slice(start, end) : b.toString('latin1', start, end);
}

/**
 * A strict, incremental HTTP/1.1 parser (RFC 9112, RFC 9110), after Jetty's HttpParser: bytes in; head, body and
 * completion events out; no I/O. Input may be split anywhere (one byte at a time, or many pipelined messages in
 * one buffer). A head that is whole in the input is parsed in place, without a copy; only a line cut by the end
 * of a read is copied, into a small private buffer, so the caller never re-feeds consumed bytes.
 *
 * It refuses, with a specific status and code (see {@link HttpParseError}), everything that would let two
 * parsers disagree on where a message ends (request smuggling): bare CR or LF, obs-fold, whitespace before a
 * colon, Content-Length with Transfer-Encoding, differing Content-Lengths, a final coding other than chunked,
 * malformed chunk sizes and chunk framing.
 *
 * Not supported in response mode: the tunnel after a 2xx answer to CONNECT (use `onHead` returning true and
 * take the socket over).
 */
export class HttpParser {
  private readonly handler: HttpParserHandler;
  private readonly responseMode: boolean;
  private readonly limits: HttpParserLimits;

  private s: S = S.START;
  private error: HttpParseError | undefined;
  /** Set by a callback returning true: `parse()` returns after the current event. */
  private stop = false;

  // A line cut by the end of the input: its bytes so far (always a private copy).
  private held: Buffer | undefined;
  private heldLength = 0;

  // START: empty lines before the start line (RFC 9112 §2.2), bounded by the request-line budget.
  private leadingCR = false;
  private leadingBytes = 0;

  // HEAD / TRAILERS: the message being parsed.
  private startLineDone = false;
  private fields: HttpFields | undefined;
  private fieldBytes = 0;
  private fieldCount = 0;
  private method = '';
  private target = '';
  private versionMinor: 0 | 1 = 1;
  private status = 0;
  private reason = '';
  private contentLength = -1;
  private hostCount = 0;
  private teSeen = false;
  private teChunkedCount = 0;
  private teLastIsChunked = false;
  private teOtherCoding = false;
  private connectionClose = false;
  private connectionKeepAlive = false;
  private connectionUpgrade = false;
  private upgradeField = false;
  private expectContinue = false;

  // Bodies.
  private remaining = 0;
  private bodyBytes = 0;
  private chunkSize = 0;
  private chunkDigits = 0;
  private chunkExtBytes = 0;
  private chunkExtStarted = false;
  /** Response mode: the next final response has no body (it answers a HEAD). */
  private noBodyExpected = false;

  constructor(handler: HttpParserHandler, options: HttpParserOptions = {}) {
    this.handler = handler;
    this.responseMode = options.mode === 'response';
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    for (const key of Object.keys(limits) as (keyof HttpParserLimits)[]) {
      const v = limits[key];
      if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw new RangeError(`invalid parser limit ${key}: ${String(v)}`);
    }
    this.limits = limits;
  }

  /** See {@link HttpParserState}. */
  get state(): HttpParserState {
    return STATE_NAMES[this.s]!;
  }

  /** True between messages with nothing of the next one received (empty lines before it do not count). */
  get isIdle(): boolean {
    return this.s === S.START && this.heldLength === 0;
  }

  /**
   * True between messages with not one byte of the next one received, not even an empty line before it (a
   * connection times the head from its first byte).
   */
  get atMessageBoundary(): boolean {
    return this.s === S.START && this.heldLength === 0 && this.leadingBytes === 0;
  }

  /**
   * Response mode: the next final (non-1xx) response has no body whatever its fields say, because it answers a
   * HEAD request (RFC 9110 §9.3.2, RFC 9112 §6.3). Call it before that response's head is parsed; it applies to
   * one response. 1xx, 204 and 304 responses never have a body, without this call.
   */
  expectNoBody(): void {
    this.noBodyExpected = true;
  }

  /** Back to `START`, forgetting any partial message, error, and `expectNoBody()`. */
  reset(): void {
    this.s = S.START;
    this.error = undefined;
    this.stop = false;
    this.heldLength = 0;
    this.leadingCR = false;
    this.leadingBytes = 0;
    this.noBodyExpected = false;
    this.fields = undefined;
  }

  /**
   * The peer closed its side. In response mode this completes a close-delimited body (`onMessageComplete`).
   * Between messages (or after an upgrade or an error) it does nothing. In the middle of a message it throws
   * `HttpParseError` 400 `HTTP_TRUNCATED` and the parser enters `ERROR`.
   */
  onEndOfInput(): void {
    switch (this.s) {
      case S.BODY_EOF:
        this.messageComplete(undefined);
        return;
      case S.START:
      case S.UPGRADED:
      case S.ERROR:
        return;
      default:
        this.fail(400, 'HTTP_TRUNCATED', `the input ended in the middle of a message (state ${this.state})`);
    }
  }

  /**
   * Parses `buffer[offset..]` and returns the number of bytes consumed. That is all of them, unless a handler
   * callback returned true (the caller keeps `buffer.subarray(offset + consumed)` and feeds it again later), or
   * a 101 response switched protocols (state `UPGRADED`: the rest belongs to the next protocol, and `parse()`
   * returns 0 from then on). Bytes of an incomplete line are copied and kept, so they count as consumed.
   * Throws `HttpParseError` on a violation; the parser then stays in `ERROR` and throws the same error again.
   */
  parse(buffer: Buffer, offset = 0): number {
    if (this.s === S.ERROR) throw this.error!;
    const end = buffer.length;
    if (!(offset >= 0 && offset <= end)) throw new RangeError(`offset ${offset} outside the buffer (length ${end})`);
    let pos = offset;
    this.stop = false;
    while (pos < end && !this.stop) {
      switch (this.s) {
        case S.START:
          pos = this.skipEmptyLines(buffer, pos, end);
          break;
        case S.HEAD:
        case S.TRAILERS:
          pos = this.parseLines(buffer, pos, end);
          break;
        case S.BODY_LENGTH: {
          const n = Math.min(this.remaining, end - pos);
          const chunk = buffer.subarray(pos, pos + n);
          pos += n;
          this.remaining -= n;
          const stopAfterChunk = this.handler.onBody(chunk) === true;
          if (this.remaining === 0) this.messageComplete(undefined);
          if (stopAfterChunk) this.stop = true;
          break;
        }
        case S.CHUNK_DATA: {
          const n = Math.min(this.remaining, end - pos);
          const chunk = buffer.subarray(pos, pos + n);
          pos += n;
          this.remaining -= n;
          if (this.remaining === 0) this.s = S.CHUNK_DATA_CR;
          if (this.handler.onBody(chunk) === true) this.stop = true;
          break;
        }
        case S.BODY_EOF: {
          const n = end - pos;
          this.bodyBytes += n;
          if (this.bodyBytes > this.limits.maxBodyBytes) this.bodyTooLarge();
          const chunk = buffer.subarray(pos, end);
          pos = end;
          if (this.handler.onBody(chunk) === true) this.stop = true;
          break;
        }
        case S.UPGRADED:
          return pos - offset;
        default: // the chunk framing states (ERROR is never seen here: fail() throws)
          pos = this.parseChunkFraming(buffer, pos, end);
      }
    }
    return pos - offset;
  }

  // ------------------------------------------------------------------------------------------------ lines

  /**
   * RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) before the request-line. We ignore any
   * number within the request-line budget, still requiring CRLF (a bare LF here is as ambiguous as anywhere).
   */
  private skipEmptyLines(b: Buffer, pos: number, end: number): number {
    while (pos < end) {
      const c = b[pos]!;
      if (this.leadingCR) {
        if (c !== LF) this.fail(400, 'HTTP_BARE_CR', 'CR not followed by LF before the start line');
        this.leadingCR = false;
      } else if (c === CR) {
        this.leadingCR = true;
        this.leadingBytes += 2;
        if (this.leadingBytes > this.limits.maxRequestLineBytes) {
          this.fail(400, 'HTTP_BAD_REQUEST_LINE', 'too many empty lines before the start line');
        }
      } else if (c === LF) {
        this.fail(400, 'HTTP_BARE_LF', 'bare LF before the start line');
      } else {
        this.beginMessage();
        return pos;
      }
      pos++;
    }
    return pos;
  }

  private beginMessage(): void {
    this.s = S.HEAD;
    this.leadingBytes = 0;
    this.startLineDone = false;
    this.fields = new HttpFields();
    this.fieldBytes = 0;
    this.fieldCount = 0;
    this.contentLength = -1;
    this.hostCount = 0;
    this.teSeen = false;
    this.teChunkedCount = 0;
    this.teLastIsChunked = false;
    this.teOtherCoding = false;
    this.connectionClose = false;
    this.connectionKeepAlive = false;
    this.connectionUpgrade = false;
    this.upgradeField = false;
    this.expectContinue = false;
  }

  /**
   * Parses complete lines of a head or trailer section. A line whole in the input is parsed in place; the
   * line cut by the end of the input is copied into `held`, and completed from the next input.
   *
   * Every line must end with CRLF. RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator (and
   * treat a bare CR as SP); we refuse both with 400 instead. A proxy in front of us that splits lines
   * differently would see other header fields, or another message boundary, than we do: that disagreement is
   * exactly how requests are smuggled past it. The same holds for obs-fold, which we refuse too (RFC 9112 §5.2).
   */
  private parseLines(b: Buffer, pos: number, end: number): number {
    if (this.heldLength > 0) {
      // Complete the held line up to its LF (or keep holding), then parse it from the private copy.
      const lf = b.indexOf(LF, pos);
      const upTo = lf < 0 ? end : lf + 1;
      this.hold(b, pos, upTo);
      if (lf < 0) {
        this.checkOpenLine(this.held!, 0, this.heldLength);
        return end;
      }
      const line = this.held!;
      const length = this.heldLength;
      if (length > this.lineBudget(line[0]!)) this.lineTooLong();
      this.heldLength = 0;
      if (this.parseLine(line, 0, length) !== length) {
        // Unreachable: the line ends with the LF found above, and parseLine() throws rather than stop early.
        this.fail(400, 'HTTP_BAD_HEADER', 'malformed line');
      }
      if (line.length > 4096) this.held = undefined; // do not keep a large buffer on an idle connection
      pos = upTo;
    }
    while (pos < end && !this.stop && (this.s === S.HEAD || this.s === S.TRAILERS)) {
      const budget = this.lineBudget(b[pos]!);
      const stop = end - pos > budget ? pos + budget : end;
      const next = this.parseLine(b, pos, stop);
      if (next >= 0) {
        pos = next;
        continue;
      }
      if (stop < end) this.lineTooLong();
      this.checkOpenLine(b, pos, end);
      this.hold(b, pos, end);
      return end;
    }
    return pos;
  }

  /**
   * The most bytes the line starting with `first` may take, CRLF included: the request-line limit for the
   * start line, what is left of the field-section limit for a field line. The empty line ending a section is
   * outside both.
   */
  private lineBudget(first: number): number {
    if (this.s === S.HEAD && !this.startLineDone) return this.limits.maxRequestLineBytes + 2;
    if (first === CR) return 2;
    return this.limits.maxHeaderBytes - this.fieldBytes;
  }

  /** An incomplete line b[start..end) may still become valid: refuse it as soon as it cannot fit its budget. */
  private checkOpenLine(b: Buffer, start: number, end: number): void {
    const length = end - start;
    const first = b[start]!;
    // A CR opening a line can only be the empty line: anything but LF after it is a bare CR, not a long line.
    if (first === CR && length > 1 && (this.s !== S.HEAD || this.startLineDone)) this.fail(400, 'HTTP_BARE_CR', 'CR not followed by LF');
    const budget = this.lineBudget(first);
    // A complete line is at most `budget` bytes, so an open one at most budget - 1, and then only if it ends in CR.
    if (length > budget - 1 || (length === budget - 1 && b[end - 1] !== CR)) this.lineTooLong();
  }

  private lineTooLong(): never {
    if (this.s === S.HEAD && !this.startLineDone) {
      if (this.responseMode) {
        this.fail(400, 'HTTP_BAD_STATUS_LINE', `status line over ${this.limits.maxRequestLineBytes} bytes`);
      }
      this.fail(414, 'HTTP_URI_TOO_LONG', `request line over ${this.limits.maxRequestLineBytes} bytes`);
    }
    const what = this.s === S.TRAILERS ? 'trailer section' : 'header section';
    this.fail(431, 'HTTP_HEADERS_TOO_LARGE', `${what} over ${this.limits.maxHeaderBytes} bytes`);
  }

  /** Appends b[start..end) to the held line. */
  private hold(b: Buffer, start: number, end: number): void {
    const needed = this.heldLength + end - start;
    let held = this.held;
    if (held === undefined || held.length < needed) {
      const grown = Buffer.allocUnsafe(Math.max(256, needed, held === undefined ? 0 : held.length * 2));
      if (held !== undefined && this.heldLength > 0) held.copy(grown, 0, 0, this.heldLength);
      held = this.held = grown;
    }
    b.copy(held, this.heldLength, start, end);
    this.heldLength = needed;
  }

  /**
   * Parses the line at b[start..], which must end (CRLF) before `stop`. Returns the index after its LF, or -1
   * if the line does not end before `stop`. Validates as it scans, so a bad byte is refused even before the
   * line is complete; commits nothing until it is.
   */
  private parseLine(b: Buffer, start: number, stop: number): number {
    if (this.s === S.HEAD && !this.startLineDone) {
      return this.responseMode ? this.parseStatusLine(b, start, stop) : this.parseRequestLine(b, start, stop);
    }
    const first = b[start]!;
    if (first === CR) {
      // The empty line: end of the head or of the trailer section.
      if (start + 1 >= stop) return -1;
      if (b[start + 1] !== LF) this.fail(400, 'HTTP_BARE_CR', 'CR not followed by LF');
      if (this.s === S.HEAD) this.onHeadComplete();
      else this.onTrailersComplete();
      return start + 2;
    }
    return this.parseFieldLine(b, start, stop);
  }

  /** The index of the CR of a CRLF at or after `i` (any bytes before it), or -1 if it is not before `stop`. */
  private findLineEnd(b: Buffer, i: number, stop: number): number {
    while (i < stop) {
      const c = b[i]!;
      if (c === CR) {
        if (i + 1 >= stop) return -1;
        if (b[i + 1] !== LF) this.fail(400, 'HTTP_BARE_CR', 'CR not followed by LF');
        return i;
      }
      if (c === LF) this.fail(400, 'HTTP_BARE_LF', 'line ends with LF without CR (RFC 9112 §2.2)');
      i++;
    }
    return -1;
  }

  /** request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3), exactly one SP each. */
  private parseRequestLine(b: Buffer, start: number, stop: number): number {
    let i = start;
    while (i < stop && TCHAR[b[i]!] === 1) i++;
    if (i >= stop) return -1;
    if (b[i] !== SP || i === start) this.badRequestLine(b[i]!, i === start, 'method');
    const methodEnd = i++;
    const targetStart = i;
    while (i < stop && TARGET[b[i]!] === 1) i++;
    if (i >= stop) return -1;
    if (b[i] !== SP || i === targetStart) this.badRequestLine(b[i]!, i === targetStart, 'request-target');
    const targetEnd = i++;
    const versionStart = i;
    const cr = this.findLineEnd(b, i, stop);
    if (cr < 0) return -1;
    // Complete: commit.
    const versionMinor = this.parseVersion(b, versionStart, cr);
    const method = this.decodeMethod(b, start, methodEnd);
    const target = targetEnd - targetStart === 1 && b[targetStart] === 0x2f ? '/' : latin1(b, targetStart, targetEnd);
    this.checkTargetForm(method, target);
    this.method = method;
    this.target = target;
    this.versionMinor = versionMinor;
    this.startLineDone = true;
    return cr + 2;
  }

  private badRequestLine(c: number, empty: boolean, what: 'method' | 'request-target'): never {
    if (c === CR || c === LF) this.fail(400, 'HTTP_BAD_REQUEST_LINE', `request line ends after the ${what} (RFC 9112 §3)`);
    if (c === SP || c === HTAB || empty) {
      this.fail(400, 'HTTP_BAD_REQUEST_LINE', `expected exactly one SP around the ${what} (RFC 9112 §3)`);
    }
    if (what === 'method') this.fail(400, 'HTTP_BAD_METHOD', `invalid character 0x${hex(c)} in the method (RFC 9112 §3.1)`);
    this.fail(400, 'HTTP_BAD_TARGET', `invalid character 0x${hex(c)} in the request-target (RFC 9112 §3.2)`);
  }

  private decodeMethod(b: Buffer, start: number, end: number): string {
    const candidates = KNOWN_METHODS[end - start];
    if (candidates !== undefined) {
      next: for (const m of candidates) {
        for (let k = 0; k < m.length; k++) if (b[start + k] !== m.charCodeAt(k)) continue next;
        return m;
      }
    }
    return latin1(b, start, end);
  }

  /** RFC 9112 §3.2: which request-target form each method may use. */
  private checkTargetForm(method: string, target: string): void {
    const first = target.charCodeAt(0);
    if (method === 'CONNECT') {
      // authority-form (RFC 9112 §3.2.3): host ":" port, nothing else.
      const colon = target.lastIndexOf(':');
      let ok = colon > 0 && colon < target.length - 1;
      for (let k = 0; ok && k < target.length; k++) {
        const c = target.charCodeAt(k);
        ok = k > colon ? c >= 0x30 && c <= 0x39 : HOST[c] === 1;
      }
      if (!ok) this.fail(400, 'HTTP_BAD_TARGET', 'CONNECT needs an authority-form target, host:port (RFC 9112 §3.2.3)');
      return;
    }
    if (first === 0x2f /* / */) return; // origin-form (RFC 9112 §3.2.1)
    if (isAuthorityForm(target)) {
      // RFC 9112 §3.2.3: authority-form is only used for CONNECT. `host:443` would otherwise pass as an
      // absolute-URI with scheme "host"; refuse it rather than route it as a path.
      this.fail(400, 'HTTP_BAD_TARGET', `the authority-form target is only for CONNECT, not ${method} (RFC 9112 §3.2.3)`);
    }
    if (target === '*') {
      // asterisk-form (RFC 9112 §3.2.4) is only for OPTIONS.
      if (method !== 'OPTIONS') this.fail(400, 'HTTP_BAD_TARGET', 'the asterisk-form target is only for OPTIONS (RFC 9112 §3.2.4)');
      return;
    }
    // absolute-form (RFC 9112 §3.2.2): scheme ":" hier-part, scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
    let k = 0;
    if (SCHEME[first] === 1 && !isDigit(first) && first !== 0x2b && first !== 0x2d && first !== 0x2e) {
      k = 1;
      while (k < target.length && SCHEME[target.charCodeAt(k)] === 1) k++;
    }
    if (k === 0 || target.charCodeAt(k) !== COLON || k === target.length - 1) {
      this.fail(400, 'HTTP_BAD_TARGET', 'the request-target is neither origin-form, absolute-form nor asterisk-form (RFC 9112 §3.2)');
    }
  }

  /** HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). Only 1.0 and 1.1 are served. */
  private parseVersion(b: Buffer, start: number, end: number): 0 | 1 {
    if (
      end - start !== 8 ||
      b[start] !== 0x48 || b[start + 1] !== 0x54 || b[start + 2] !== 0x54 || b[start + 3] !== 0x50 ||
      b[start + 4] !== 0x2f || b[start + 6] !== 0x2e || !isDigit(b[start + 5]!) || !isDigit(b[start + 7]!)
    ) {
      this.fail(400, 'HTTP_BAD_VERSION', `invalid HTTP version ${JSON.stringify(latin1(b, start, Math.min(end, start + 16)))} (RFC 9112 §2.3)`);
    }
    const major = b[start + 5]! - 0x30;
    const minor = b[start + 7]! - 0x30;
    if (major !== 1 || minor > 1) this.fail(505, 'HTTP_VERSION_NOT_SUPPORTED', `HTTP/${major}.${minor} is not supported`);
    return minor as 0 | 1;
  }

  /**
   * status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4). Leniency: the SP after the
   * status code may be missing when there is no reason phrase, as many servers send it.
   */
  private parseStatusLine(b: Buffer, start: number, stop: number): number {
    const cr = this.findLineEnd(b, start, stop);
    if (cr < 0) return -1;
    if (cr - start < 12 || b[start + 8] !== SP || (cr > start + 12 && b[start + 12] !== SP)) {
      this.fail(400, 'HTTP_BAD_STATUS_LINE', 'malformed status line (RFC 9112 §4)');
    }
    const versionMinor = this.parseVersion(b, start, start + 8);
    const d0 = b[start + 9]!;
    const d1 = b[start + 10]!;
    const d2 = b[start + 11]!;
    if (!isDigit(d0) || !isDigit(d1) || !isDigit(d2) || d0 === 0x30) {
      this.fail(400, 'HTTP_BAD_STATUS_LINE', 'the status code is not three digits from 100 to 999 (RFC 9112 §4)');
    }
    for (let k = start + 13; k < cr; k++) {
      if (FIELD_VALUE[b[k]!] !== 1) this.fail(400, 'HTTP_BAD_STATUS_LINE', `invalid character 0x${hex(b[k]!)} in the reason phrase`);
    }
    this.versionMinor = versionMinor;
    this.status = (d0 - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30);
    this.reason = cr > start + 13 ? latin1(b, start + 13, cr) : '';
    this.startLineDone = true;
    return cr + 2;
  }

  /**
   * field-line = field-name ":" OWS field-value OWS CRLF (RFC 9112 §5). The name is a token with no whitespace
   * before the colon (RFC 9112 §5.1: MUST be rejected with 400); a line starting with whitespace is obs-fold
   * (RFC 9112 §5.2), refused: folding is where parsers disagree. Values are trimmed of OWS.
   */
  private parseFieldLine(b: Buffer, start: number, stop: number): number {
    const first = b[start]!;
    if (first === SP || first === HTAB) {
      this.fail(400, 'HTTP_OBS_FOLD', 'a field line starts with whitespace: obsolete line folding (RFC 9112 §5.2)');
    }
    let i = start;
    while (i < stop && TCHAR[b[i]!] === 1) i++;
    if (i >= stop) return -1;
    const nameEnd = i;
    if (b[i] !== COLON || i === start) {
      const c = b[i]!;
      if (c === LF) this.fail(400, 'HTTP_BARE_LF', 'line ends with LF without CR (RFC 9112 §2.2)');
      if ((c === SP || c === HTAB) && i > start) {
        this.fail(400, 'HTTP_BAD_HEADER', 'whitespace between the field name and the colon (RFC 9112 §5.1)');
      }
      if (c === CR) this.fail(400, 'HTTP_BAD_HEADER', 'a field line without a colon (RFC 9112 §5)');
      this.fail(400, 'HTTP_BAD_HEADER', `invalid character 0x${hex(c)} in a field name (RFC 9110 §5.1)`);
    }
    i++;
    while (i < stop && (b[i] === SP || b[i] === HTAB)) i++;
    const valueStart = i;
    while (i < stop && FIELD_VALUE[b[i]!] === 1) i++;
    if (i >= stop) return -1;
    const c = b[i]!;
    if (c !== CR) {
      if (c === LF) this.fail(400, 'HTTP_BARE_LF', 'line ends with LF without CR (RFC 9112 §2.2)');
      this.fail(400, 'HTTP_BAD_HEADER_VALUE', `invalid character 0x${hex(c)} in the value of ${latin1(b, start, nameEnd)} (RFC 9110 §5.5)`);
    }
    if (i + 1 >= stop) return -1;
    if (b[i + 1] !== LF) this.fail(400, 'HTTP_BARE_CR', 'CR not followed by LF in a field line (RFC 9112 §2.2)');
    let valueEnd = i;
    while (valueEnd > valueStart && (b[valueEnd - 1] === SP || b[valueEnd - 1] === HTAB)) valueEnd--;
    // Complete: commit.
    const next = i + 2;
    if (++this.fieldCount > this.limits.maxHeaderCount) {
      const what = this.s === S.TRAILERS ? 'trailer' : 'header';
      this.fail(431, 'HTTP_TOO_MANY_HEADERS', `more than ${this.limits.maxHeaderCount} ${what} fields`);
    }
    this.fieldBytes += next - start;
    this.addField(b, start, nameEnd, valueStart, valueEnd);
    return next;
  }

  private addField(b: Buffer, nameStart: number, nameEnd: number, valueStart: number, valueEnd: number): void {
    const n = fieldName(b, nameStart, nameEnd);
    const length = valueEnd - valueStart;
    const value =
      length === 0 ? '' : n.cacheValues && length <= VALUE_CACHE_MAX_LENGTH ? fieldValue(b, valueStart, valueEnd) : latin1(b, valueStart, valueEnd);
    const id = n.id;
    if (this.fields === undefined) this.fields = new HttpFields(); // the first trailer field
    this.fields.addLowered(n.name, n.lower, value);
    // Trailer fields never change the framing (RFC 9110 §6.5.1): only the head's are analysed.
    if (id === F.OTHER || this.s !== S.HEAD) return;
    switch (id) {
      case F.HOST:
        if (this.responseMode) return;
        if (++this.hostCount > 1) this.fail(400, 'HTTP_DUPLICATE_HOST', 'more than one Host field line (RFC 9112 §3.2)');
        for (let j = valueStart; j < valueEnd; j++) {
          if (HOST[b[j]!] !== 1) this.fail(400, 'HTTP_BAD_HOST', `invalid Host ${JSON.stringify(value)} (RFC 9112 §3.2)`);
        }
        return;
      case F.CONTENT_LENGTH:
        this.onContentLength(b, valueStart, valueEnd);
        return;
      case F.TRANSFER_ENCODING:
        this.onTransferEncoding(b, valueStart, valueEnd);
        return;
      case F.CONNECTION:
        this.onConnection(b, valueStart, valueEnd);
        return;
      case F.UPGRADE:
        this.upgradeField = true;
        return;
      case F.EXPECT:
        if (equalsIgnoreCase(b, valueStart, valueEnd, EXPECT_100_CONTINUE)) this.expectContinue = true;
        return;
    }
  }

  /**
   * Content-Length = 1*DIGIT (RFC 9110 §8.6). A list of identical values (from one or several field lines) is
   * accepted as that value, as RFC 9110 §8.6 permits; differing values are a smuggling attempt (RFC 9112 §6.3).
   */
  private onContentLength(b: Buffer, start: number, end: number): void {
    let i = start;
    for (;;) {
      let n = 0;
      const digitsStart = i;
      while (i < end && isDigit(b[i]!)) {
        n = n * 10 + (b[i]! - 0x30);
        if (n > Number.MAX_SAFE_INTEGER) this.fail(400, 'HTTP_BAD_CONTENT_LENGTH', 'Content-Length too large');
        i++;
      }
      if (i === digitsStart) this.fail(400, 'HTTP_BAD_CONTENT_LENGTH', `invalid Content-Length ${JSON.stringify(latin1(b, start, end))} (RFC 9110 §8.6)`);
      if (this.contentLength !== -1 && this.contentLength !== n) {
        this.fail(400, 'HTTP_SMUGGLING_CL_CL', 'differing Content-Length values (RFC 9112 §6.3)');
      }
      this.contentLength = n;
      while (i < end && (b[i] === SP || b[i] === HTAB)) i++;
      if (i === end) return;
      if (b[i] !== COMMA) this.fail(400, 'HTTP_BAD_CONTENT_LENGTH', `invalid Content-Length ${JSON.stringify(latin1(b, start, end))} (RFC 9110 §8.6)`);
      i++;
      while (i < end && (b[i] === SP || b[i] === HTAB)) i++;
    }
  }

  /**
   * Transfer-Encoding = #transfer-coding (RFC 9112 §6.1): the codings in order, over every field line. Empty list
   * elements are ignored (RFC 9110 §5.6.1).
   */
  private onTransferEncoding(b: Buffer, start: number, end: number): void {
    this.teSeen = true;
    let i = start;
    while (i < end) {
      const s = skipListSeparators(b, i, end);
      i = elementEnd(b, s, end);
      const e = trimEnd(b, s, i);
      if (e === s) continue;
      if (equalsIgnoreCase(b, s, e, CHUNKED)) {
        this.teChunkedCount++;
        this.teLastIsChunked = true;
      } else {
        this.teOtherCoding = true;
        this.teLastIsChunked = false;
      }
    }
  }

  /** Connection = #connection-option (RFC 9110 §7.6.1), tokens compared case-insensitively. */
  private onConnection(b: Buffer, start: number, end: number): void {
    let i = start;
    while (i < end) {
      const s = skipListSeparators(b, i, end);
      i = elementEnd(b, s, end);
      const e = trimEnd(b, s, i);
      if (equalsIgnoreCase(b, s, e, CLOSE)) this.connectionClose = true;
      else if (equalsIgnoreCase(b, s, e, KEEP_ALIVE)) this.connectionKeepAlive = true;
      else if (equalsIgnoreCase(b, s, e, UPGRADE)) this.connectionUpgrade = true;
    }
  }

  // ------------------------------------------------------------------------------------------------ heads

  private onHeadComplete(): void {
    if (this.responseMode) this.onResponseHead();
    else this.onRequestHead();
  }

  private onRequestHead(): void {
    const versionMinor = this.versionMinor;
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    if (versionMinor === 1 && this.hostCount === 0) this.fail(400, 'HTTP_MISSING_HOST', 'HTTP/1.1 request without Host (RFC 9112 §3.2)');
    let chunked = false;
    if (this.teSeen) {
      // RFC 9112 §6.1: TE with CL "ought to be handled as an error" in a request: that is the smuggling vector.
      if (this.contentLength !== -1) {
        this.fail(400, 'HTTP_SMUGGLING_CL_TE', 'both Content-Length and Transfer-Encoding (RFC 9112 §6.1)');
      }
      // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
      if (versionMinor === 0) this.fail(400, 'HTTP_BAD_TRANSFER_ENCODING', 'Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)');
      // RFC 9112 §6.3 (4): the final coding of a request must be chunked, else 400 and close.
      if (!this.teLastIsChunked) {
        this.fail(400, 'HTTP_BAD_TRANSFER_ENCODING', 'the final transfer coding is not chunked (RFC 9112 §6.3)');
      }
      // RFC 9112 §6.1: chunked MUST NOT be applied more than once.
      if (this.teChunkedCount > 1) this.fail(400, 'HTTP_BAD_TRANSFER_ENCODING', 'chunked applied more than once (RFC 9112 §6.1)');
      // RFC 9112 §6.1: a coding we do not implement SHOULD be answered with 501.
      if (this.teOtherCoding) this.fail(501, 'HTTP_UNSUPPORTED_TRANSFER_ENCODING', 'a transfer coding other than chunked (RFC 9112 §6.1)');
      chunked = true;
    }
    if (this.contentLength > this.limits.maxBodyBytes) this.bodyTooLarge();
    const http11 = versionMinor === 1;
    const head: HttpRequestHead = {
      method: this.method,
      target: this.target,
      versionMinor,
      fields: this.fields!,
      contentLength: this.contentLength,
      chunked,
      keepAlive: http11 ? !this.connectionClose : this.connectionKeepAlive && !this.connectionClose,
      upgrade: http11 && this.connectionUpgrade && this.upgradeField,
      expectContinue: http11 && this.expectContinue,
    };
    this.fields = undefined;
    // RFC 9112 §6.3 (7): a request with neither Content-Length nor chunked has no body.
    this.startBody(head, chunked ? -1 : Math.max(this.contentLength, 0), chunked, false);
  }

  private onResponseHead(): void {
    const status = this.status;
    const versionMinor = this.versionMinor;
    // RFC 9112 §6.3 (1): 1xx, 204, 304 and the answer to HEAD have no body, whatever the fields say.
    const interim = status < 200;
    const noBody = interim || status === 204 || status === 304 || this.noBodyExpected;
    let chunked = false;
    let contentLength = this.contentLength;
    let keepAlive = versionMinor === 1 ? !this.connectionClose : this.connectionKeepAlive && !this.connectionClose;
    let closeDelimited = false;
    if (this.teSeen) {
      if (this.teChunkedCount > 1) this.fail(400, 'HTTP_BAD_TRANSFER_ENCODING', 'chunked applied more than once (RFC 9112 §6.1)');
      // RFC 9112 §6.3 (3): Transfer-Encoding overrides Content-Length; the message is suspect, so the
      // connection is not reused. (§6.1: TE in HTTP/1.0 means faulty framing: same treatment.)
      if (contentLength !== -1 || versionMinor === 0) keepAlive = false;
      contentLength = -1;
      // RFC 9112 §6.3 (4): a response whose final coding is not chunked is delimited by the close.
      if (this.teLastIsChunked && versionMinor === 1) chunked = true;
      else closeDelimited = true;
    } else if (contentLength === -1) {
      closeDelimited = true; // RFC 9112 §6.3 (8)
    }
    if (noBody) {
      chunked = false;
      closeDelimited = false;
    }
    if (closeDelimited) keepAlive = false;
    if (!noBody && contentLength > this.limits.maxBodyBytes) this.bodyTooLarge();
    const head: HttpResponseHead = {
      versionMinor,
      status,
      reason: this.reason,
      fields: this.fields!,
      contentLength,
      chunked,
      keepAlive,
    };
    this.fields = undefined;
    if (interim) {
      this.bodyBytes = 0;
      if (this.handler.onHead(head) === true) this.stop = true;
      if (status === 101) {
        // RFC 9110 §15.2.2: after 101 the connection speaks the protocol named in Upgrade.
        this.s = S.UPGRADED;
        this.handler.onMessageComplete(undefined);
        this.stop = true;
        return;
      }
      // Another response follows for the same request: keep expectNoBody() for it.
      this.messageComplete(undefined);
      return;
    }
    this.noBodyExpected = false;
    this.startBody(head, noBody ? 0 : contentLength, chunked, closeDelimited);
  }

  private startBody(head: HttpRequestHead | HttpResponseHead, length: number, chunked: boolean, closeDelimited: boolean): void {
    this.bodyBytes = 0;
    if (this.handler.onHead(head) === true) this.stop = true;
    if (chunked) {
      this.enterChunkSize();
    } else if (closeDelimited) {
      this.s = S.BODY_EOF;
    } else if (length > 0) {
      this.remaining = length;
      this.s = S.BODY_LENGTH;
    } else {
      this.messageComplete(undefined);
    }
  }

  private onTrailersComplete(): void {
    const trailers = this.fields;
    this.fields = undefined;
    this.messageComplete(trailers);
  }

  private messageComplete(trailers: HttpFields | undefined): void {
    this.s = S.START;
    if (this.handler.onMessageComplete(trailers) === true) this.stop = true;
  }

  // ------------------------------------------------------------------------------------------------ chunked

  private enterChunkSize(): void {
    this.s = S.CHUNK_SIZE;
    this.chunkSize = 0;
    this.chunkDigits = 0;
    this.chunkExtBytes = 0;
    this.chunkExtStarted = false;
  }

  /**
   * chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; last-chunk = 1*"0" [ chunk-ext ] CRLF (RFC 9112 §7.1).
   * Byte by byte: these lines are a few bytes long. Whitespace after the size is only allowed as the BWS before a
   * chunk extension's ";" (RFC 9112 §7.1.1): `5 ;a\r\n` is accepted, `5 \r\n` is refused (400).
   */
  private parseChunkFraming(b: Buffer, pos: number, end: number): number {
    while (pos < end) {
      const c = b[pos]!;
      switch (this.s) {
        case S.CHUNK_SIZE: {
          const h = HEX[c]!;
          if (h >= 0) {
            if (++this.chunkDigits > MAX_CHUNK_SIZE_DIGITS) this.fail(400, 'HTTP_BAD_CHUNK_SIZE', 'chunk size has too many digits');
            this.chunkSize = this.chunkSize * 16 + h;
            if (this.chunkSize > Number.MAX_SAFE_INTEGER) this.fail(400, 'HTTP_BAD_CHUNK_SIZE', 'chunk size too large');
            pos++;
            break;
          }
          if (c === LF) this.fail(400, 'HTTP_BARE_LF', 'chunk-size line ends with LF without CR (RFC 9112 §7.1)');
          if (this.chunkDigits === 0) this.fail(400, 'HTTP_BAD_CHUNK_SIZE', `chunk size expected, got 0x${hex(c)} (RFC 9112 §7.1)`);
          if (c === CR) {
            this.s = S.CHUNK_SIZE_LF;
          } else if (c === SEMICOLON || c === SP || c === HTAB) {
            this.s = S.CHUNK_EXT;
            continue; // counted and checked as part of the extension
          } else {
            this.fail(400, 'HTTP_BAD_CHUNK_SIZE', `invalid character 0x${hex(c)} in the chunk size (RFC 9112 §7.1)`);
          }
          pos++;
          break;
        }
        case S.CHUNK_EXT:
          // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 §7.1.1)
          if (c === CR) {
            // BWS is only allowed before a ";": a size followed by whitespace alone is not a chunk-size line.
            if (!this.chunkExtStarted) this.fail(400, 'HTTP_BAD_CHUNK_SIZE', 'whitespace after the chunk size without a chunk extension (RFC 9112 §7.1)');
            this.s = S.CHUNK_SIZE_LF;
          } else {
            if (++this.chunkExtBytes > this.limits.maxChunkExtensionBytes) {
              this.fail(400, 'HTTP_BAD_CHUNK_EXTENSION', `chunk extensions over ${this.limits.maxChunkExtensionBytes} bytes`);
            }
            if (c === LF) this.fail(400, 'HTTP_BARE_LF', 'chunk extension ends with LF without CR (RFC 9112 §7.1)');
            if (c === SEMICOLON) this.chunkExtStarted = true;
            else if (!this.chunkExtStarted && c !== SP && c !== HTAB) {
              this.fail(400, 'HTTP_BAD_CHUNK_EXTENSION', `a chunk extension must start with ";" (RFC 9112 §7.1.1)`);
            } else if (FIELD_VALUE[c] !== 1) {
              this.fail(400, 'HTTP_BAD_CHUNK_EXTENSION', `invalid character 0x${hex(c)} in a chunk extension`);
            }
          }
          pos++;
          break;
        case S.CHUNK_SIZE_LF:
          if (c !== LF) this.fail(400, 'HTTP_BARE_CR', 'chunk-size line: CR not followed by LF (RFC 9112 §7.1)');
          pos++;
          if (this.chunkSize === 0) {
            // last-chunk: the trailer section follows (RFC 9112 §7.1.2), with the head's limits.
            this.s = S.TRAILERS;
            this.fields = undefined;
            this.fieldBytes = 0;
            this.fieldCount = 0;
            return pos;
          }
          this.bodyBytes += this.chunkSize;
          if (this.bodyBytes > this.limits.maxBodyBytes) this.bodyTooLarge();
          this.remaining = this.chunkSize;
          this.s = S.CHUNK_DATA;
          return pos;
        case S.CHUNK_DATA_CR:
          if (c !== CR) this.fail(400, 'HTTP_BAD_CHUNK_DATA', 'chunk data not followed by CRLF (RFC 9112 §7.1)');
          this.s = S.CHUNK_DATA_LF;
          pos++;
          break;
        case S.CHUNK_DATA_LF:
          if (c !== LF) this.fail(400, 'HTTP_BAD_CHUNK_DATA', 'chunk data not followed by CRLF (RFC 9112 §7.1)');
          pos++;
          this.enterChunkSize();
          break;
        default:
          return pos;
      }
    }
    return pos;
  }

  private bodyTooLarge(): never {
    this.fail(413, 'HTTP_BODY_TOO_LARGE', `body over ${this.limits.maxBodyBytes} bytes`);
  }

  private fail(status: number, code: HttpParseErrorCode, message: string): never {
    const error = new HttpParseError(status, code, message);
    this.error = error;
    this.s = S.ERROR;
    this.heldLength = 0;
    this.fields = undefined;
    throw error;
  }
}

const CHUNKED = Buffer.from('chunked', 'latin1');
const CLOSE = Buffer.from('close', 'latin1');
const KEEP_ALIVE = Buffer.from('keep-alive', 'latin1');
const UPGRADE = Buffer.from('upgrade', 'latin1');
const EXPECT_100_CONTINUE = Buffer.from('100-continue', 'latin1');

/**
 * Whether `target` has the shape of authority-form, host ":" port with a non-empty all-digit port (RFC 9112
 * §3.2.3), which an absolute-URI check alone would accept as scheme ":" path.
 */
function isAuthorityForm(target: string): boolean {
  const colon = target.lastIndexOf(':');
  if (colon <= 0 || colon === target.length - 1) return false;
  for (let k = colon + 1; k < target.length; k++) if (!isDigit(target.charCodeAt(k))) return false;
  for (let k = 0; k < colon; k++) if (HOST[target.charCodeAt(k)] !== 1) return false;
  return true;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function hex(c: number): string {
  return c.toString(16).padStart(2, '0');
}

/**
 * Whether b[start..end) equals `lower` (lower-case ASCII) ignoring ASCII case. Only letters are folded
 * (`| 0x20` maps A-Z onto a-z), every other byte must match exactly.
 */
function equalsIgnoreCase(b: Buffer, start: number, end: number, lower: Uint8Array): boolean {
  if (end - start !== lower.length) return false;
  for (let k = 0; k < lower.length; k++) {
    const want = lower[k]!;
    const got = b[start + k]!;
    if (got !== want && (want < 0x61 || want > 0x7a || (got | 0x20) !== want)) return false;
  }
  return true;
}

/** Whether b[start..end) holds exactly `bytes`. */
function sameBytes(b: Buffer, start: number, end: number, bytes: Uint8Array): boolean {
  if (end - start !== bytes.length) return false;
  for (let k = 0; k < bytes.length; k++) if (b[start + k] !== bytes[k]) return false;
  return true;
}

/** The index of the first byte at or after `i` that is neither OWS nor a comma (a list element's start). */
function skipListSeparators(b: Buffer, i: number, end: number): number {
  while (i < end && (b[i] === SP || b[i] === HTAB || b[i] === COMMA)) i++;
  return i;
}

/** The index of the comma ending the list element that starts at `i`, or `end`. */
function elementEnd(b: Buffer, i: number, end: number): number {
  while (i < end && b[i] !== COMMA) i++;
  return i;
}

/** `end` moved back over trailing OWS, not before `start`. */
function trimEnd(b: Buffer, start: number, end: number): number {
  while (end > start && (b[end - 1] === SP || b[end - 1] === HTAB)) end--;
  return end;
}
