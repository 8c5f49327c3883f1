/**
 * A minimal incremental HTTP/1.1 response scanner for the http workload: it finds where each response ends and
 * reports its status, and nothing more. Byte by byte over the head (status line, and only the fields that frame
 * the body: Content-Length, Transfer-Encoding, Connection), then skipping the body by length or by chunks
 * (RFC 9112 §6.3). No strings, no allocation: it runs once per response.
 */

/** Receives complete responses. */
export interface HttpResponseListener {
  /** A response ended. `keepAlive` false: the server will close (Connection: close, HTTP/1.0, or a body read until close). */
  onResponse(status: number, keepAlive: boolean): void;
}

/** A response we cannot frame. */
export class HttpScanError extends Error {
  readonly code = 'LOAD_BAD_RESPONSE';
  constructor(message: string) {
    super(message);
    this.name = 'HttpScanError';
  }
}

const enum S {
  /** "HTTP/1.x SSS reason" up to LF. */
  STATUS,
  /** At the start of a field line, or of the empty line ending the head. */
  LINE_START,
  /** Reading a field name up to ':'. */
  NAME,
  /** Reading a field value up to LF. */
  VALUE,
  /** The CR of the empty line was seen; LF ends the head. */
  HEAD_END,
  BODY_LENGTH,
  CHUNK_SIZE,
  /** After the chunk size: extensions up to LF. */
  CHUNK_EXT,
  CHUNK_DATA,
  /** The CRLF after a chunk's data. */
  CHUNK_DATA_END,
  /** Trailer lines after the last chunk, up to an empty line. */
  TRAILER,
  /** No length and not chunked: the body lasts until the connection closes (RFC 9112 §6.3 rule 8). */
  UNTIL_CLOSE,
}

const enum Field {
  NONE = 0,
  CONTENT_LENGTH = 1,
  TRANSFER_ENCODING = 2,
  CONNECTION = 4,
}

const NAMES: readonly [Field, string][] = [
  [Field.CONTENT_LENGTH, 'content-length'],
  [Field.TRANSFER_ENCODING, 'transfer-encoding'],
  [Field.CONNECTION, 'connection'],
];
const ALL_FIELDS = Field.CONTENT_LENGTH | Field.TRANSFER_ENCODING | Field.CONNECTION;
const CHUNKED = 'chunked';
const CLOSE = 'close';
/** A head larger than this is refused: it is not the server we are measuring. */
const MAX_HEAD_BYTES = 64 * 1024;

const CR = 13;
const LF = 10;

export class HttpResponseScanner {
  private state = S.STATUS;
  private headBytes = 0;
  /** Position in "HTTP/1.x SSS" and the values read there. */
  private statusPos = 0;
  private minor = 0;
  private status = 0;
  /** The candidate field names still matching the name being read (Field bits), and its length so far. */
  private candidates = 0;
  private nameLength = 0;
  private field = Field.NONE;
  /** Substring matchers of "chunked" (Transfer-Encoding) and "close" (Connection) in a value. */
  private match = 0;
  private contentLength = -1;
  private digits = 0;
  private chunked = false;
  private close = false;
  /** Body bytes (or chunk bytes) still to skip. */
  private remaining = 0;
  private chunkDigits = 0;
  private lineLength = 0;

  constructor(private readonly listener: HttpResponseListener) {}

  /** In the middle of a response (to tell a clean close from a truncated response). */
  get busy(): boolean {
    return this.state !== S.STATUS || this.statusPos !== 0;
  }

  /** The body is delimited by the close of the connection: the close completes the response. */
  get untilClose(): boolean {
    return this.state === S.UNTIL_CLOSE;
  }

  /** The connection closed: completes a close-delimited response. */
  end(): void {
    if (this.state === S.UNTIL_CLOSE) {
      const status = this.status;
      this.reset();
      this.listener.onResponse(status, false);
    }
  }

  /** Scans `buf[start..end)`. @throws HttpScanError for a response that cannot be framed. */
  scan(buf: Uint8Array, start: number, end: number): void {
    let i = start;
    while (i < end) {
      switch (this.state) {
        case S.BODY_LENGTH: {
          const n = Math.min(this.remaining, end - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.complete();
          continue;
        }
        case S.CHUNK_DATA: {
          const n = Math.min(this.remaining, end - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = S.CHUNK_DATA_END;
          continue;
        }
        case S.UNTIL_CLOSE:
          return;
        default:
          this.step(buf[i]!);
          i++;
      }
    }
  }

  private step(b: number): void {
    if (this.state <= S.HEAD_END && ++this.headBytes > MAX_HEAD_BYTES) fail(`response head over ${MAX_HEAD_BYTES} bytes`);
    switch (this.state) {
      case S.STATUS:
        return this.statusByte(b);
      case S.LINE_START:
        if (b === CR) {
          this.state = S.HEAD_END;
        } else if (b === LF) {
          this.headEnd();
        } else {
          this.state = S.NAME;
          this.candidates = ALL_FIELDS;
          this.nameLength = 0;
          this.nameByte(b);
        }
        return;
      case S.NAME:
        return this.nameByte(b);
      case S.VALUE:
        return this.valueByte(b);
      case S.HEAD_END:
        if (b !== LF) fail('CR without LF at the end of the head');
        return this.headEnd();
      case S.CHUNK_SIZE:
        return this.chunkSizeByte(b);
      case S.CHUNK_EXT:
        if (b === LF) this.chunkSizeEnd();
        return;
      case S.CHUNK_DATA_END:
        if (b === LF) this.state = S.CHUNK_SIZE;
        else if (b !== CR) fail('chunk data longer than its size');
        return;
      case S.TRAILER:
        if (b === LF) {
          if (this.lineLength === 0) this.complete();
          this.lineLength = 0;
        } else if (b !== CR) {
          this.lineLength++;
        }
        return;
    }
  }

  /** RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. */
  private statusByte(b: number): void {
    const pos = this.statusPos++;
    if (pos < 8) {
      // "HTTP/1.x"
      const expected = 'HTTP/1.'.charCodeAt(pos);
      if (pos < 7 ? b !== expected : b < 0x30 || b > 0x39) fail('not an HTTP/1.x response');
      if (pos === 7) this.minor = b - 0x30;
    } else if (pos === 8) {
      if (b !== 0x20) fail('no space after the HTTP version');
    } else if (pos < 12) {
      if (b < 0x30 || b > 0x39) fail('the status code is not 3 digits');
      this.status = this.status * 10 + (b - 0x30);
    } else if (b === LF) {
      this.state = S.LINE_START;
    }
  }

  /** Matches the field name against the three we need, case-insensitively (RFC 9110 §5.1), as it is read. */
  private nameByte(b: number): void {
    if (b === 0x3a) {
      let field = Field.NONE;
      for (const [f, name] of NAMES) if ((this.candidates & f) !== 0 && name.length === this.nameLength) field = f;
      this.field = field;
      this.state = S.VALUE;
      this.match = 0;
      this.digits = 0;
      if (field === Field.CONTENT_LENGTH) {
        if (this.contentLength >= 0) fail('two Content-Length fields');
        this.contentLength = 0;
      }
      return;
    }
    if (b === LF) fail('a field line without a colon');
    const lower = b >= 0x41 && b <= 0x5a ? b + 32 : b;
    const at = this.nameLength++;
    let c = this.candidates;
    for (const [f, name] of NAMES) if ((c & f) !== 0 && (at >= name.length || name.charCodeAt(at) !== lower)) c &= ~f;
    this.candidates = c;
  }

  private valueByte(b: number): void {
    if (b === LF) {
      if (this.field === Field.CONTENT_LENGTH && this.digits === 0) fail('an empty Content-Length');
      this.state = S.LINE_START;
      return;
    }
    switch (this.field) {
      case Field.CONTENT_LENGTH:
        if (b >= 0x30 && b <= 0x39) {
          if (++this.digits > 15) fail('Content-Length too large');
          this.contentLength = this.contentLength * 10 + (b - 0x30);
        } else if (b !== 0x20 && b !== 0x09 && b !== CR) {
          fail('Content-Length is not a number');
        }
        return;
      case Field.TRANSFER_ENCODING:
        if (this.matchByte(b, CHUNKED)) this.chunked = true;
        return;
      case Field.CONNECTION:
        if (this.matchByte(b, CLOSE)) this.close = true;
        return;
    }
  }

  /** Substring search, one byte at a time; correct for words without a repeated prefix ("chunked", "close"). */
  private matchByte(b: number, word: string): boolean {
    const lower = b >= 0x41 && b <= 0x5a ? b + 32 : b;
    if (lower === word.charCodeAt(this.match)) this.match++;
    else this.match = lower === word.charCodeAt(0) ? 1 : 0;
    if (this.match === word.length) {
      this.match = 0;
      return true;
    }
    return false;
  }

  /** RFC 9112 §6.3: how the body of this response is delimited. */
  private headEnd(): void {
    this.headBytes = 0;
    const status = this.status;
    if (status >= 100 && status < 200) {
      // Interim responses (100 Continue, 103 Early Hints) have no body; the final response follows. A 101 to a
      // plain GET is not something we can follow.
      if (status === 101) fail('101 Switching Protocols to a GET');
      this.resetHead();
      return;
    }
    if (status === 204 || status === 304) return this.complete();
    if (this.chunked) {
      this.state = S.CHUNK_SIZE;
      this.remaining = 0;
      this.chunkDigits = 0;
      return;
    }
    if (this.contentLength >= 0) {
      if (this.contentLength === 0) return this.complete();
      this.remaining = this.contentLength;
      this.state = S.BODY_LENGTH;
      return;
    }
    this.state = S.UNTIL_CLOSE;
  }

  private chunkSizeByte(b: number): void {
    const hex = b >= 0x30 && b <= 0x39 ? b - 0x30 : b >= 0x61 && b <= 0x66 ? b - 0x57 : b >= 0x41 && b <= 0x46 ? b - 0x37 : -1;
    if (hex >= 0) {
      if (++this.chunkDigits > 12) fail('chunk size too large');
      this.remaining = this.remaining * 16 + hex;
    } else if (b === LF) {
      this.chunkSizeEnd();
    } else if (b === 0x3b || b === CR || b === 0x20 || b === 0x09) {
      this.state = S.CHUNK_EXT;
    } else {
      fail('bad chunk size');
    }
  }

  private chunkSizeEnd(): void {
    if (this.chunkDigits === 0) fail('missing chunk size');
    this.chunkDigits = 0;
    if (this.remaining === 0) {
      // The last chunk: trailer fields, then an empty line (RFC 9112 §7.1).
      this.state = S.TRAILER;
      this.lineLength = 0;
    } else {
      this.state = S.CHUNK_DATA;
    }
  }

  private complete(): void {
    const status = this.status;
    const keepAlive = !this.close && this.minor >= 1;
    this.reset();
    this.listener.onResponse(status, keepAlive);
  }

  private resetHead(): void {
    this.state = S.STATUS;
    this.statusPos = 0;
    this.status = 0;
    this.minor = 0;
    this.contentLength = -1;
    this.chunked = false;
    this.close = false;
    this.field = Field.NONE;
  }

  private reset(): void {
    this.resetHead();
    this.headBytes = 0;
    this.remaining = 0;
  }
}

function fail(message: string): never {
  throw new HttpScanError(message);
}
