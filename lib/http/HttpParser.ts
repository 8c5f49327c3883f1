import { HttpFields } from './HttpFields.js';
import { HttpParseError } from './errors.js';

/** Limits of the parser; exceeding one is answered with the status in the comment. */
export interface HttpParserLimits {
  /** The request line (414) or status line (400). Default 8192. */
  maxRequestLineBytes: number;
  /** The header block after the start line, and the trailer block (431). Default 16384. */
  maxHeaderBytes: number;
  /** Header fields (431). Default 100. */
  maxHeaderCount: number;
  /** Body bytes: Content-Length checked up front, chunked as it streams (413). Default 10 MiB. */
  maxBodyBytes: number;
  /** A chunk-size line with its extensions (400). Default 4096. */
  maxChunkExtensionBytes: number;
}

export const DEFAULT_LIMITS: Readonly<HttpParserLimits> = {
  maxRequestLineBytes: 8192,
  maxHeaderBytes: 16384,
  maxHeaderCount: 100,
  maxBodyBytes: 10 * 1024 * 1024,
  maxChunkExtensionBytes: 4096,
};

/** A parsed request head. */
export interface HttpRequestHead {
  method: string;
  target: string;
  versionMinor: 0 | 1;
  fields: HttpFields;
  /** -1 when there is no Content-Length (chunked, or no body). */
  contentLength: number;
  chunked: boolean;
  keepAlive: boolean;
  /** `Connection` has the token `upgrade` and an `Upgrade` field is present (RFC 9110 §7.8). */
  upgrade: boolean;
  expectContinue: boolean;
}

/** A parsed response head (response mode). */
export interface HttpResponseHead {
  versionMinor: 0 | 1;
  status: number;
  reason: string;
  fields: HttpFields;
  contentLength: number;
  chunked: boolean;
  keepAlive: boolean;
}

/** Receives the parser's events. A callback that returns true stops `parse()` right after that event. */
export interface HttpParserHandler {
  onHead(head: HttpRequestHead | HttpResponseHead): boolean | void;
  /** A view of the input, valid only during the call. */
  onBody(chunk: Buffer): boolean | void;
  onMessageComplete(trailers: HttpFields | undefined): boolean | void;
}

/**
 * The parser's states. `START` → `HEAD` → (`BODY_LENGTH` | `CHUNK_SIZE` → `CHUNK_EXT` → `CHUNK_SIZE_LF` →
 * `CHUNK_DATA` → `CHUNK_DATA_CR` → `CHUNK_DATA_LF` → … → `TRAILERS` | `BODY_EOF`) → `START`; `UPGRADED` after a
 * 101 response (the rest is another protocol); `ERROR` after a violation.
 */
export type HttpParserState =
  | 'START'
  | 'HEAD'
  | 'BODY_LENGTH'
  | 'CHUNK_SIZE'
  | 'CHUNK_EXT'
  | 'CHUNK_SIZE_LF'
  | 'CHUNK_DATA'
  | 'CHUNK_DATA_CR'
  | 'CHUNK_DATA_LF'
  | 'TRAILERS'
  | 'BODY_EOF'
  | 'UPGRADED'
  | 'ERROR';

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

/** tchar (RFC 9110 §5.6.2): the characters of a token (method, field name). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

/** field-value characters (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB. NUL, other CTLs and DEL are refused. */
const FIELD_VCHAR = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) FIELD_VCHAR[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_VCHAR[c] = 1;
FIELD_VCHAR[SP] = 1;
FIELD_VCHAR[HTAB] = 1;

const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[65 + c] = 10 + c;
  HEX[97 + c] = 10 + c;
}

/** Common field names, lower-cased without a toLowerCase call when sent in their usual spelling. */
const KNOWN_NAMES = new Map<string, string>();
for (const name of [
  'Host', 'Content-Length', 'Content-Type', 'Transfer-Encoding', 'Connection', 'Upgrade', 'User-Agent', 'Accept',
  'Accept-Encoding', 'Accept-Language', 'Cache-Control', 'Cookie', 'Origin', 'Referer', 'Expect', 'Date', 'Server',
  'Sec-WebSocket-Key', 'Sec-WebSocket-Version', 'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions',
  'Sec-WebSocket-Accept', 'If-Modified-Since', 'If-None-Match', 'Range', 'Authorization', 'Pragma', 'Keep-Alive',
]) {
  KNOWN_NAMES.set(name, name.toLowerCase());
  KNOWN_NAMES.set(name.toLowerCase(), name.toLowerCase());
}

const MAX_CHUNK_HEX_DIGITS = 13; // 16^13 > 2^52: keeps sizes within Number.MAX_SAFE_INTEGER

/**
 * A strict, incremental HTTP/1.1 parser (RFC 9112), after Jetty's HttpParser: bytes in, head/body/complete
 * events out, no I/O. It accepts input split anywhere (one byte at a time or many pipelined messages in one
 * buffer) and buffers only a head that spans reads. It refuses, with a specific status, everything that lets two
 * parsers disagree on where a message ends (request smuggling): bare LF, obs-fold, Content-Length with
 * Transfer-Encoding, differing Content-Lengths, a final coding other than chunked, malformed chunk sizes.
 */
export class HttpParser {
  private readonly handler: HttpParserHandler;
  private readonly mode: 'request' | 'response';
  private readonly limits: HttpParserLimits;
  private _state: HttpParserState = 'START';
  private error: HttpParseError | undefined;

  /** A head (or trailer block) that spans reads: a private copy of its bytes so far. */
  private acc: Buffer | undefined;
  private scanFrom = 0;
  private lineStart = 0;
  private startLineEnd = -1;
  private lineCount = 0;

  private remaining = 0;
  private bodyBytes = 0;
  private chunkSize = 0;
  private chunkDigits = 0;
  private chunkLineBytes = 0;
  private noBodyExpected = false;
  private leadingCR = false;
  private stop = false;

  constructor(handler: HttpParserHandler, options: { mode?: 'request' | 'response'; limits?: Partial<HttpParserLimits> } = {}) {
    this.handler = handler;
    this.mode = options.mode ?? 'request';
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
  }

  /** See {@link HttpParserState}. */
  get state(): HttpParserState {
    return this._state;
  }

  /** True between messages, with nothing of the next one parsed yet. */
  get isIdle(): boolean {
    return this._state === 'START' && !this.leadingCR;
  }

  /** Response mode: the next response answers a HEAD, so it has no body whatever its headers say. */
  expectNoBody(): void {
    this.noBodyExpected = true;
  }

  /** Back to `START`, forgetting any partial message and error. */
  reset(): void {
    this._state = 'START';
    this.error = undefined;
    this.acc = undefined;
    this.noBodyExpected = false;
    this.leadingCR = false;
  }

  /**
   * The peer closed its output. Completes a close-delimited response body; between messages does nothing;
   * in the middle of a message throws `HttpParseError` 400 `HTTP_TRUNCATED`.
   */
  onEndOfInput(): void {
    if (this._state === 'BODY_EOF') {
      this._state = 'START';
      this.handler.onMessageComplete(undefined);
      return;
    }
    if (this.isIdle || this._state === 'UPGRADED' || this._state === 'ERROR') return;
    this.fail(400, 'HTTP_TRUNCATED', `the connection closed in the middle of a message (state ${this._state})`);
  }

  /**
   * Parses `buffer[offset..]` and returns how many bytes were consumed: all of them, unless a handler callback
   * returned true (the caller keeps the rest and feeds it again later) or a 101 response switched protocols.
   * Throws `HttpParseError` on a violation; the parser stays in `ERROR` and throws it again.
   */
  parse(buffer: Buffer, offset = 0): number {
    if (this.error !== undefined) throw this.error;
    const end = buffer.length;
    let pos = offset;
    this.stop = false;
    try {
      while (pos < end && !this.stop) {
        switch (this._state) {
          case 'START':
          case 'HEAD':
          case 'TRAILERS':
            pos = this.parseBlock(buffer, pos, end);
            break;
          case 'BODY_LENGTH': {
            const n = Math.min(this.remaining, end - pos);
            this.remaining -= n;
            const chunk = buffer.subarray(pos, pos + n);
            pos += n;
            if (this.handler.onBody(chunk) === true) this.stop = true;
            if (this.remaining === 0) this.messageComplete(undefined);
            break;
          }
          case 'BODY_EOF': {
            const chunk = buffer.subarray(pos, end);
            pos = end;
            if (this.handler.onBody(chunk) === true) this.stop = true;
            break;
          }
          case 'CHUNK_SIZE':
          case 'CHUNK_EXT':
          case 'CHUNK_SIZE_LF':
          case 'CHUNK_DATA_CR':
          case 'CHUNK_DATA_LF':
            pos = this.parseChunkFraming(buffer, pos, end);
            break;
          case 'CHUNK_DATA': {
            const n = Math.min(this.remaining, end - pos);
            this.remaining -= n;
            const chunk = buffer.subarray(pos, pos + n);
            pos += n;
            if (this.remaining === 0) this._state = 'CHUNK_DATA_CR';
            if (this.handler.onBody(chunk) === true) this.stop = true;
            break;
          }
          case 'UPGRADED':
            return pos - offset;
          case 'ERROR':
            throw this.error!;
        }
      }
    } catch (e) {
      if (e instanceof HttpParseError && this.error === undefined) {
        this.error = e;
        this._state = 'ERROR';
      }
      throw e;
    }
    return pos - offset;
  }

  // -------------------------------------------------------------------------------------------- head / trailers

  /**
   * Scans a block of lines ending with an empty line (a head, or trailers): every LF must follow a CR
   * (RFC 9112 §2.2: we choose strict over the permitted leniency, because parsers that disagree on line ends are
   * how requests get smuggled). Works on the input directly when the block is whole in it, otherwise on a copy.
   */
  private parseBlock(buffer: Buffer, pos: number, end: number): number {
    if (this._state === 'START') {
      // RFC 9112 §2.2: ignore empty lines (CRLF) before the start line.
      while (pos < end) {
        const b = buffer[pos]!;
        if (this.leadingCR) {
          if (b !== LF) this.fail(400, 'HTTP_BARE_CR', 'CR not followed by LF before the start line');
          this.leadingCR = false;
          pos++;
          continue;
        }
        if (b === CR) {
          this.leadingCR = true;
          pos++;
          continue;
        }
        if (b === LF) this.fail(400, 'HTTP_BARE_LF', 'bare LF before the start line');
        break;
      }
      if (pos >= end) return end;
      this._state = 'HEAD';
      this.beginBlock(true);
    }
    let b: Buffer;
    let base: number; // index in `b` of buffer[pos]
    if (this.acc === undefined) {
      b = buffer;
      base = pos;
      this.scanFrom = pos;
      this.lineStart = pos;
      if (this.startLineEnd !== -2) this.startLineEnd = this._state === 'HEAD' ? -1 : -2;
    } else {
      base = this.acc.length;
      b = Buffer.concat([this.acc, buffer.subarray(pos, end)]);
      this.acc = b;
    }
    const blockStart = this.acc === undefined ? pos : 0;
    const bEnd = this.acc === undefined ? end : b.length;
    const found = this.scanLines(b, blockStart, bEnd);
    if (found < 0) {
      if (this.acc === undefined) {
        // Keep a private copy of the partial block; indices are rebased to it.
        const shift = pos;
        this.acc = Buffer.from(buffer.subarray(pos, end));
        this.scanFrom -= shift;
        this.lineStart -= shift;
        if (this.startLineEnd >= 0) this.startLineEnd -= shift;
      }
      return end;
    }
    // `found` is the index in `b` just after the empty line.
    const consumedFromInput = found - base;
    const blockBuf = b;
    this.acc = undefined;
    if (this._state === 'HEAD') this.onHeadBlock(blockBuf, blockStart, found);
    else this.onTrailerBlock(blockBuf, blockStart, found);
    return pos + consumedFromInput;
  }

  private beginBlock(hasStartLine: boolean): void {
    this.acc = undefined;
    this.lineCount = 0;
    this.startLineEnd = hasStartLine ? -1 : -2; // -2: no start line in this block (trailers)
  }

  /** Returns the index after the terminating empty line, or -1 if the block is not complete yet. */
  private scanLines(b: Buffer, blockStart: number, end: number): number {
    const limits = this.limits;
    let from = this.scanFrom;
    for (;;) {
      const lf = b.indexOf(LF, from);
      if (lf < 0 || lf >= end) {
        this.scanFrom = end;
        this.checkOpenLine(b, blockStart, end);
        return -1;
      }
      if (lf === this.lineStart || b[lf - 1] !== CR) this.fail(400, 'HTTP_BARE_LF', 'line ends with LF without CR');
      const lineEnd = lf - 1; // index of CR
      if (lineEnd === this.lineStart) {
        // The empty line: end of the block (a head needs its start line first).
        if (this.startLineEnd === -1) this.fail(400, 'HTTP_BAD_REQUEST_LINE', 'empty start line');
        this.scanFrom = lf + 1;
        return lf + 1;
      }
      if (this.startLineEnd === -1) {
        if (lineEnd - this.lineStart > limits.maxRequestLineBytes) this.startLineTooLong();
        this.startLineEnd = lineEnd;
      } else {
        this.lineCount++;
        if (this.lineCount > limits.maxHeaderCount) {
          this.fail(431, 'HTTP_TOO_MANY_HEADERS', `more than ${limits.maxHeaderCount} header fields`);
        }
        const fieldsStart = this.startLineEnd >= 0 ? this.startLineEnd + 2 : blockStart;
        if (lf + 1 - fieldsStart > limits.maxHeaderBytes) this.headersTooLarge();
      }
      this.lineStart = lf + 1;
      from = lf + 1;
    }
  }

  /** Limits apply before the block is complete, so a slow or endless line is refused early. */
  private checkOpenLine(b: Buffer, blockStart: number, end: number): void {
    if (this.startLineEnd === -1) {
      // A CR at the very end may be the line's terminator: it does not count.
      const length = end - this.lineStart - (end > this.lineStart && b[end - 1] === CR ? 1 : 0);
      if (length > this.limits.maxRequestLineBytes) this.startLineTooLong();
    } else {
      const fieldsStart = this.startLineEnd >= 0 ? this.startLineEnd + 2 : blockStart;
      if (end - fieldsStart > this.limits.maxHeaderBytes) this.headersTooLarge();
    }
  }

  private startLineTooLong(): never {
    if (this.mode === 'request') this.fail(414, 'HTTP_URI_TOO_LONG', `request line over ${this.limits.maxRequestLineBytes} bytes`);
    this.fail(400, 'HTTP_BAD_STATUS_LINE', `status line over ${this.limits.maxRequestLineBytes} bytes`);
  }

  private headersTooLarge(): never {
    this.fail(431, 'HTTP_HEADERS_TOO_LARGE', `header block over ${this.limits.maxHeaderBytes} bytes`);
  }

  private onHeadBlock(b: Buffer, start: number, end: number): void {
    const startLineEnd = this.startLineEnd;
    const fields = new HttpFields();
    const info = this.parseFields(b, startLineEnd + 2, end - 2, fields);
    if (this.mode === 'request') this.onRequestHead(b, start, startLineEnd, fields, info);
    else this.onResponseHead(b, start, startLineEnd, fields, info);
  }

  private onTrailerBlock(b: Buffer, start: number, end: number): void {
    const fields = new HttpFields();
    this.parseFields(b, start, end - 2, fields);
    this.messageComplete(fields.size > 0 ? fields : undefined);
  }

  /** Parses `name: value` lines in b[start..end) (each ends with CRLF). Returns what framing needs. */
  private parseFields(b: Buffer, start: number, end: number, fields: HttpFields): FieldInfo {
    const info: FieldInfo = { contentLength: -1, transferEncoding: undefined, hosts: 0, connection: '', upgrade: false, expect: '' };
    let pos = start;
    while (pos < end) {
      const cr = b.indexOf(CR, pos);
      const lineEnd = cr < 0 || cr > end ? end : cr;
      if (b[lineEnd + 1] !== LF) this.fail(400, 'HTTP_BARE_CR', 'CR not followed by LF in a header field');
      const first = b[pos]!;
      if (first === SP || first === HTAB) this.fail(400, 'HTTP_OBS_FOLD', 'obsolete line folding (RFC 9112 §5.2)');
      // field-name: a token up to ':' with no whitespace before the colon (RFC 9112 §5.1).
      let i = pos;
      while (i < lineEnd && TCHAR[b[i]!] === 1) i++;
      if (i === pos || i >= lineEnd || b[i] !== COLON) {
        if (i < lineEnd && (b[i] === SP || b[i] === HTAB)) this.fail(400, 'HTTP_BAD_HEADER', 'whitespace between field name and colon');
        this.fail(400, 'HTTP_BAD_HEADER', 'invalid field name');
      }
      const rawName = b.toString('latin1', pos, i);
      let vs = i + 1;
      let ve = lineEnd;
      for (let k = vs; k < ve; k++) {
        if (FIELD_VCHAR[b[k]!] !== 1) this.fail(400, 'HTTP_BAD_HEADER_VALUE', `invalid character 0x${b[k]!.toString(16)} in field ${rawName}`);
      }
      while (vs < ve && (b[vs] === SP || b[vs] === HTAB)) vs++;
      while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;
      const value = b.toString('latin1', vs, ve);
      const lower = KNOWN_NAMES.get(rawName) ?? rawName.toLowerCase();
      fields.addLowered(rawName, lower, value);
      switch (lower) {
        case 'content-length':
          this.onContentLength(value, info);
          break;
        case 'transfer-encoding':
          info.transferEncoding = info.transferEncoding === undefined ? value : `${info.transferEncoding}, ${value}`;
          break;
        case 'host':
          info.hosts++;
          break;
        case 'connection':
          info.connection = info.connection === '' ? value.toLowerCase() : `${info.connection},${value.toLowerCase()}`;
          break;
        case 'upgrade':
          info.upgrade = true;
          break;
        case 'expect':
          info.expect = value.toLowerCase();
          break;
      }
      pos = lineEnd + 2;
    }
    return info;
  }

  /** RFC 9110 §8.6 / RFC 9112 §6.3: digits only; a repeated or listed value must be identical everywhere. */
  private onContentLength(value: string, info: FieldInfo): void {
    for (const part of value.split(',')) {
      const v = part.trim();
      if (v.length === 0 || v.length > 15 || !/^[0-9]+$/.test(v)) this.fail(400, 'HTTP_BAD_CONTENT_LENGTH', `invalid Content-Length: ${value}`);
      const n = Number(v);
      if (info.contentLength !== -1 && info.contentLength !== n) {
        this.fail(400, 'HTTP_BAD_CONTENT_LENGTH', 'differing Content-Length values');
      }
      info.contentLength = n;
    }
  }

  private onRequestHead(b: Buffer, start: number, lineEnd: number, fields: HttpFields, info: FieldInfo): void {
    // request-line = method SP request-target SP HTTP-version (RFC 9112 §3), single spaces.
    let i = start;
    while (i < lineEnd && TCHAR[b[i]!] === 1) i++;
    if (i === start || b[i] !== SP) this.fail(400, 'HTTP_BAD_REQUEST_LINE', 'invalid method');
    const method = b.toString('latin1', start, i);
    const targetStart = i + 1;
    let j = targetStart;
    while (j < lineEnd && b[j]! > SP && b[j]! < 0x7f) j++;
    if (j === targetStart || b[j] !== SP) this.fail(400, 'HTTP_BAD_REQUEST_LINE', 'invalid request-target');
    const target = b.toString('latin1', targetStart, j);
    const versionMinor = this.parseVersion(b, j + 1, lineEnd);
    if (versionMinor === 1 && info.hosts === 0) this.fail(400, 'HTTP_MISSING_HOST', 'HTTP/1.1 request without Host (RFC 9112 §3.2)');
    if (info.hosts > 1) this.fail(400, 'HTTP_DUPLICATE_HOST', 'more than one Host field');
    if (target.charCodeAt(0) !== 47 /* / */ && target !== '*' && method !== 'CONNECT' && !/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(target)) {
      this.fail(400, 'HTTP_BAD_REQUEST_LINE', 'invalid request-target form');
    }
    let chunked = false;
    let contentLength = info.contentLength;
    if (info.transferEncoding !== undefined) {
      // RFC 9112 §6.1: Transfer-Encoding with Content-Length is a smuggling attempt; HTTP/1.0 has no TE.
      if (contentLength !== -1) this.fail(400, 'HTTP_CL_AND_TE', 'both Content-Length and Transfer-Encoding');
      if (versionMinor === 0) this.fail(400, 'HTTP_BAD_TRANSFER_ENCODING', 'Transfer-Encoding in an HTTP/1.0 request');
      chunked = this.finalCodingIsChunked(info.transferEncoding);
      if (!chunked) this.fail(400, 'HTTP_BAD_TRANSFER_ENCODING', 'the final transfer coding is not chunked (RFC 9112 §6.3)');
    }
    if (contentLength > this.limits.maxBodyBytes) this.fail(413, 'HTTP_BODY_TOO_LARGE', `Content-Length ${contentLength} over ${this.limits.maxBodyBytes}`);
    const connection = info.connection;
    const keepAlive = versionMinor === 1 ? !hasToken(connection, 'close') : hasToken(connection, 'keep-alive');
    const head: HttpRequestHead = {
      method,
      target,
      versionMinor,
      fields,
      contentLength,
      chunked,
      keepAlive,
      upgrade: info.upgrade && hasToken(connection, 'upgrade'),
      expectContinue: info.expect === '100-continue',
    };
    if (contentLength === -1 && !chunked) contentLength = 0;
    this.startBody(head, contentLength, chunked, false);
  }

  private onResponseHead(b: Buffer, start: number, lineEnd: number, fields: HttpFields, info: FieldInfo): void {
    const versionMinor = this.parseVersion(b, start, start + 8);
    if (b[start + 8] !== SP) this.fail(400, 'HTTP_BAD_STATUS_LINE', 'invalid status line');
    let status = 0;
    for (let k = start + 9; k < start + 12; k++) {
      const d = b[k]! - 48;
      if (k >= lineEnd || d < 0 || d > 9) this.fail(400, 'HTTP_BAD_STATUS_LINE', 'invalid status code');
      status = status * 10 + d;
    }
    if (status < 100) this.fail(400, 'HTTP_BAD_STATUS_LINE', 'invalid status code');
    if (start + 12 < lineEnd && b[start + 12] !== SP) this.fail(400, 'HTTP_BAD_STATUS_LINE', 'invalid status line');
    const reason = start + 13 <= lineEnd ? b.toString('latin1', start + 13, lineEnd) : '';
    const noBody = this.noBodyExpected || status < 200 || status === 204 || status === 304;
    let chunked = false;
    let contentLength = info.contentLength;
    if (info.transferEncoding !== undefined && !noBody) {
      chunked = this.finalCodingIsChunked(info.transferEncoding);
      contentLength = -1; // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length
    }
    const closeDelimited = !noBody && !chunked && contentLength === -1;
    const connection = info.connection;
    const keepAlive =
      !closeDelimited && (versionMinor === 1 ? !hasToken(connection, 'close') : hasToken(connection, 'keep-alive'));
    const head: HttpResponseHead = { versionMinor, status, reason, fields, contentLength, chunked, keepAlive };
    if (status >= 100 && status < 200) {
      // Interim responses carry no body; 101 ends HTTP on this connection (RFC 9110 §15.2.2).
      this.noBodyExpected = status !== 101 && this.noBodyExpected;
      if (this.handler.onHead(head) === true) this.stop = true;
      if (status === 101) {
        this._state = 'UPGRADED';
        if (this.handler.onMessageComplete(undefined) === true) this.stop = true;
        this.stop = true;
        return;
      }
      this._state = 'START';
      if (this.handler.onMessageComplete(undefined) === true) this.stop = true;
      return;
    }
    this.noBodyExpected = false;
    this.startBody(head, noBody ? 0 : contentLength, chunked, closeDelimited);
  }

  private parseVersion(b: Buffer, start: number, end: number): 0 | 1 {
    // HTTP-version = "HTTP" "/" DIGIT "." DIGIT (RFC 9112 §2.3)
    if (
      end - start !== 8 ||
      b[start] !== 72 || b[start + 1] !== 84 || b[start + 2] !== 84 || b[start + 3] !== 80 || b[start + 4] !== 47 ||
      b[start + 6] !== 46 || b[start + 5]! < 48 || b[start + 5]! > 57 || b[start + 7]! < 48 || b[start + 7]! > 57
    ) {
      this.fail(400, 'HTTP_BAD_VERSION', 'invalid HTTP version');
    }
    const major = b[start + 5]! - 48;
    const minor = b[start + 7]! - 48;
    if (major !== 1 || minor > 1) this.fail(505, 'HTTP_VERSION_NOT_SUPPORTED', `HTTP/${major}.${minor} is not supported`);
    return minor as 0 | 1;
  }

  private finalCodingIsChunked(te: string): boolean {
    const codings = te.toLowerCase().split(',').map((c) => c.trim()).filter((c) => c.length > 0);
    if (codings.length === 0) this.fail(400, 'HTTP_BAD_TRANSFER_ENCODING', 'empty Transfer-Encoding');
    const chunkedCount = codings.filter((c) => c === 'chunked').length;
    // RFC 9112 §6.1: chunked MUST NOT be applied more than once, and only as the final coding.
    if (chunkedCount > 1 || (chunkedCount === 1 && codings[codings.length - 1] !== 'chunked')) {
      this.fail(400, 'HTTP_BAD_TRANSFER_ENCODING', `invalid Transfer-Encoding: ${te}`);
    }
    return chunkedCount === 1;
  }

  private startBody(head: HttpRequestHead | HttpResponseHead, contentLength: number, chunked: boolean, closeDelimited: boolean): void {
    this.bodyBytes = 0;
    if (this.handler.onHead(head) === true) this.stop = true;
    if (this._state === 'ERROR') return;
    if (chunked) {
      this.enterChunkSize();
    } else if (closeDelimited) {
      this._state = 'BODY_EOF';
    } else if (contentLength > 0) {
      this.remaining = contentLength;
      this._state = 'BODY_LENGTH';
    } else {
      this.messageComplete(undefined);
    }
  }

  private messageComplete(trailers: HttpFields | undefined): void {
    this._state = 'START';
    if (this.handler.onMessageComplete(trailers) === true) this.stop = true;
  }

  // -------------------------------------------------------------------------------------------- chunked framing

  private enterChunkSize(): void {
    this._state = 'CHUNK_SIZE';
    this.chunkSize = 0;
    this.chunkDigits = 0;
    this.chunkLineBytes = 0;
  }

  /** chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF (RFC 9112 §7.1), byte by byte (these lines are short). */
  private parseChunkFraming(buffer: Buffer, pos: number, end: number): number {
    while (pos < end) {
      const c = buffer[pos]!;
      switch (this._state) {
        case 'CHUNK_SIZE': {
          const h = HEX[c]!;
          if (h >= 0) {
            if (++this.chunkDigits > MAX_CHUNK_HEX_DIGITS) this.fail(400, 'HTTP_BAD_CHUNK', 'chunk size too large');
            this.chunkSize = this.chunkSize * 16 + h;
            pos++;
            break;
          }
          if (this.chunkDigits === 0) this.fail(400, 'HTTP_BAD_CHUNK', 'chunk size missing');
          if (c === CR) {
            this._state = 'CHUNK_SIZE_LF';
            pos++;
          } else if (c === 59 /* ; */ || c === SP || c === HTAB) {
            this._state = 'CHUNK_EXT';
            pos++;
          } else {
            this.fail(400, 'HTTP_BAD_CHUNK', `invalid character 0x${c.toString(16)} in chunk size`);
          }
          break;
        }
        case 'CHUNK_EXT':
          if (++this.chunkLineBytes > this.limits.maxChunkExtensionBytes) this.fail(400, 'HTTP_BAD_CHUNK', 'chunk extension too long');
          if (c === CR) this._state = 'CHUNK_SIZE_LF';
          else if (FIELD_VCHAR[c] !== 1) this.fail(400, 'HTTP_BAD_CHUNK', 'invalid character in chunk extension');
          pos++;
          break;
        case 'CHUNK_SIZE_LF':
          if (c !== LF) this.fail(400, 'HTTP_BAD_CHUNK', 'chunk size line without CRLF');
          pos++;
          if (this.chunkSize === 0) {
            this._state = 'TRAILERS';
            this.beginBlock(false);
            return pos;
          }
          this.bodyBytes += this.chunkSize;
          if (this.bodyBytes > this.limits.maxBodyBytes) this.fail(413, 'HTTP_BODY_TOO_LARGE', `chunked body over ${this.limits.maxBodyBytes} bytes`);
          this.remaining = this.chunkSize;
          this._state = 'CHUNK_DATA';
          return pos;
        case 'CHUNK_DATA_CR':
          if (c !== CR) this.fail(400, 'HTTP_BAD_CHUNK', 'chunk data not followed by CRLF');
          this._state = 'CHUNK_DATA_LF';
          pos++;
          break;
        case 'CHUNK_DATA_LF':
          if (c !== LF) this.fail(400, 'HTTP_BAD_CHUNK', 'chunk data not followed by CRLF');
          pos++;
          this.enterChunkSize();
          break;
        default:
          return pos;
      }
    }
    return pos;
  }

  private fail(status: number, code: string, message: string): never {
    const error = new HttpParseError(status, code, message);
    this.error = error;
    this._state = 'ERROR';
    this.acc = undefined;
    throw error;
  }
}

interface FieldInfo {
  contentLength: number;
  transferEncoding: string | undefined;
  hosts: number;
  connection: string;
  upgrade: boolean;
  expect: string;
}

/** Whether a comma-separated, lower-cased list has the token (RFC 9110 §5.6.1). */
function hasToken(list: string, token: string): boolean {
  if (list.length === 0) return false;
  if (list === token) return true;
  for (const part of list.split(',')) if (part.trim() === token) return true;
  return false;
}
