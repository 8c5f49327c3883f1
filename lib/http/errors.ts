/** Errors of the HTTP/1.1 codec (HttpParser, HttpGenerator). */

/**
 * The stable codes of {@link HttpParseError}, one per rule. The status a server answers with is on the error;
 * the usual one is noted here.
 */
export type HttpParseErrorCode =
  /** 400: empty lines before the start line beyond the request-line budget, or a malformed request line. */
  | 'HTTP_BAD_REQUEST_LINE'
  /** 400: the method is not a token (RFC 9112 §3.1). */
  | 'HTTP_BAD_METHOD'
  /** 400: the request-target has invalid characters or is in a form the method does not allow (RFC 9112 §3.2). */
  | 'HTTP_BAD_TARGET'
  /** 400: the protocol version is not `HTTP/DIGIT.DIGIT` (RFC 9112 §2.3). */
  | 'HTTP_BAD_VERSION'
  /** 505: a well-formed version other than HTTP/1.0 and HTTP/1.1. */
  | 'HTTP_VERSION_NOT_SUPPORTED'
  /** 414: the request line is over `maxRequestLineBytes`. */
  | 'HTTP_URI_TOO_LONG'
  /** 400 (response mode): a malformed or overlong status line (RFC 9112 §4). */
  | 'HTTP_BAD_STATUS_LINE'
  /** 400: LF without the CR before it (RFC 9112 §2.2, refused on purpose: see HttpParser). */
  | 'HTTP_BARE_LF'
  /** 400: CR not followed by LF (RFC 9112 §2.2). */
  | 'HTTP_BARE_CR'
  /** 400: obsolete line folding (RFC 9112 §5.2). */
  | 'HTTP_OBS_FOLD'
  /** 400: a field line without a valid token name and colon, or whitespace before the colon (RFC 9112 §5.1). */
  | 'HTTP_BAD_HEADER'
  /** 400: NUL, a control character or DEL in a field value (RFC 9110 §5.5). */
  | 'HTTP_BAD_HEADER_VALUE'
  /** 431: the header (or trailer) block is over `maxHeaderBytes`. */
  | 'HTTP_HEADERS_TOO_LARGE'
  /** 431: more than `maxHeaderCount` field lines. */
  | 'HTTP_TOO_MANY_HEADERS'
  /** 400: an HTTP/1.1 request without Host (RFC 9112 §3.2). */
  | 'HTTP_MISSING_HOST'
  /** 400: more than one Host field line (RFC 9112 §3.2). */
  | 'HTTP_DUPLICATE_HOST'
  /** 400: a Host value that is not `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2). */
  | 'HTTP_BAD_HOST'
  /** 400: a Content-Length that is not digits, or is too large for a safe integer (RFC 9110 §8.6). */
  | 'HTTP_BAD_CONTENT_LENGTH'
  /** 400: Content-Length values that differ (RFC 9112 §6.3, a request-smuggling vector). */
  | 'HTTP_SMUGGLING_CL_CL'
  /** 400: Content-Length together with Transfer-Encoding in a request (RFC 9112 §6.1, §6.3). */
  | 'HTTP_SMUGGLING_CL_TE'
  /** 400: a Transfer-Encoding whose final coding is not chunked, chunked twice, or in HTTP/1.0 (RFC 9112 §6.1). */
  | 'HTTP_BAD_TRANSFER_ENCODING'
  /** 501: a transfer coding other than chunked (RFC 9112 §6.1: "SHOULD respond with 501"). */
  | 'HTTP_UNSUPPORTED_TRANSFER_ENCODING'
  /** 400: a chunk size that is empty, not hex, or too large (RFC 9112 §7.1). */
  | 'HTTP_BAD_CHUNK_SIZE'
  /** 400: a chunk extension with an invalid character, or over `maxChunkExtensionBytes` (RFC 9112 §7.1.1). */
  | 'HTTP_BAD_CHUNK_EXTENSION'
  /** 400: chunk data not followed by CRLF (RFC 9112 §7.1). */
  | 'HTTP_BAD_CHUNK_DATA'
  /** 413: a body over `maxBodyBytes` (Content-Length up front, chunked or close-delimited as it streams). */
  | 'HTTP_BODY_TOO_LARGE'
  /** 400: the input ended in the middle of a message. */
  | 'HTTP_TRUNCATED'
  /** 408: the request head did not arrive in time (raised by HttpConnection, not by the parser). */
  | 'HTTP_HEADER_TIMEOUT'
  /** 408: the request (head and body) was not complete within `requestTimeoutMs` (raised by HttpConnection). */
  | 'HTTP_REQUEST_TIMEOUT'
  /** 408: the request body arrived slower than `minRequestDataRate` (raised by HttpConnection). */
  | 'HTTP_REQUEST_TOO_SLOW';

/**
 * A message that breaks RFC 9112 / RFC 9110 or a configured limit. `status` is what a server answers (400, 408,
 * 413, 414, 431, 501, 505) before closing the connection; `code` names the rule, for programs and tests.
 */
export class HttpParseError extends Error {
  constructor(
    readonly status: number,
    readonly code: HttpParseErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HttpParseError';
  }
}

/** The stable codes of {@link HttpGeneratorError}. */
export type HttpGeneratorErrorCode =
  /** A field name that is not a token (RFC 9110 §5.1). */
  | 'HTTP_INVALID_FIELD_NAME'
  /** A field value with CR, LF, NUL, another control character, DEL or a character above U+00FF (RFC 9110 §5.5). */
  | 'HTTP_INVALID_FIELD_VALUE'
  /** A status outside 100..999, or a reason phrase with invalid characters (RFC 9112 §4). */
  | 'HTTP_INVALID_STATUS'
  /** A method that is not a token (RFC 9110 §9.1). */
  | 'HTTP_INVALID_METHOD'
  /** A request-target with whitespace, control or non-ASCII characters (RFC 9112 §3.2). */
  | 'HTTP_INVALID_TARGET'
  /** A request without a Host (RFC 9112 §3.2), or a negative / non-integer length. */
  | 'HTTP_INVALID_FRAMING';

/**
 * Something the generator refuses to write because it would corrupt the message or let a value smuggle in other
 * header fields (response splitting, RFC 9112 §11.1).
 */
export class HttpGeneratorError extends Error {
  constructor(
    readonly code: HttpGeneratorErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HttpGeneratorError';
  }
}

/**
 * A header name that is not a token, or a value with CR, LF, NUL, another control character, DEL or a character
 * above U+00FF (RFC 9110 §5.1, §5.5), refused when it is set (`Response.setHeader`, `addHeader`,
 * `HttpFields.add` / `set`), synchronously, as node:http's `ERR_INVALID_CHAR` is: the mistake shows where it was
 * made, and a value copied from a request (`?next=%0d%0aSet-Cookie:x`) can never split the response (RFC 9112
 * §11.1). A handler that throws it gets the 500 answer, built from fresh headers. Its codes are the generator's
 * (one code per rule), so it is also an {@link HttpGeneratorError}.
 */
export class InvalidHeaderError extends HttpGeneratorError {
  constructor(
    code: 'HTTP_INVALID_FIELD_NAME' | 'HTTP_INVALID_FIELD_VALUE',
    message: string,
    /** The offending field name (as given, possibly truncated to 64 characters). */
    readonly fieldName: string,
  ) {
    super(code, message);
    this.name = 'InvalidHeaderError';
  }
}

/** Why a {@link StaticHandler} cannot serve its root. */
export type StaticRootErrorCode = 'STATIC_ROOT_MISSING' | 'STATIC_ROOT_NOT_A_DIRECTORY';

/** Thrown by `new StaticHandler({ root })` when the root does not exist or is not a directory. */
export class StaticRootError extends Error {
  override readonly name = 'StaticRootError';
  readonly code: StaticRootErrorCode;
  constructor(code: StaticRootErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}
