import { Buffer } from 'node:buffer';
import { HttpFields } from './HttpFields.js';
import { reasonPhrase, statusAllowsBody } from './HttpStatus.js';
import { HttpGeneratorError } from './errors.js';
import { INVALID_VALUE, TOKEN, checkFieldName, checkFieldValue } from './fieldValidation.js';

/** Header fields as the generator takes them: HttpFields, or a record (an array value gives one line each). */
export type FieldsInit = HttpFields | Readonly<Record<string, string | number | readonly string[]>>;

/** What a response head needs. */
export interface ResponseHeadInfo {
  /** 100..999. */
  status: number;
  /** Defaults to the registered phrase ({@link reasonPhrase}). */
  reason?: string;
  /**
   * The application's fields, written in order. The framing fields are the generator's: a `Content-Length` or
   * `Transfer-Encoding` here is ignored, and `Connection` tokens other than `close` / `keep-alive` are merged
   * into the generator's own `Connection` line (`close` here means `keepAlive: false`). A `Date` here replaces
   * the generated one.
   */
  fields?: FieldsInit;
  /** Body length, or -1 (the default) when unknown: then chunked on HTTP/1.1, close-delimited on HTTP/1.0. */
  contentLength?: number;
  /** Use chunked framing even if the length is known (HTTP/1.1 only; on HTTP/1.0 the close delimits the body). */
  chunked?: boolean;
  /** Whether the connection stays open after this response (it may still be forced off, see {@link GeneratedHead}). */
  keepAlive: boolean;
  /** The response answers a HEAD: the fields are those of a GET, but no body follows (RFC 9110 §9.3.2). */
  head?: boolean;
  /** 1 by default. Answer with the request's minor version (RFC 9110 §6.2). */
  versionMinor?: 0 | 1;
  /**
   * The whole body, when the caller has it (`Response.end(body)`): if it is at most {@link INLINE_BODY_BYTES} and
   * goes out as it is (a `Content-Length` equal to its size, a status and method that carry a body), it is copied
   * into the head's buffer after the head, and {@link GeneratedHead.bodyIncluded} is true. One buffer per small
   * response: the endpoint writes it as it is, instead of copying head and body into a buffer of its own.
   */
  body?: Buffer | undefined;
}

/** The generated head and the framing it committed to: the caller frames the body accordingly. */
export interface GeneratedHead {
  /** The head; followed by the body when {@link bodyIncluded}. */
  bytes: Buffer;
  /** `info.body` is in `bytes`, after the head: the caller sends nothing more. */
  bodyIncluded: boolean;
  /** The body must be sent in chunks ({@link appendChunk}) and ended with {@link LAST_CHUNK} / {@link lastChunk}. */
  chunked: boolean;
  /**
   * Whether the connection may carry another exchange: `info.keepAlive`, unless a `Connection: close` field said
   * otherwise or the body is close-delimited (unknown length on HTTP/1.0). When false, close after the body.
   */
  keepAlive: boolean;
}

/** `\r\n`: ends a chunk's data. */
export const CRLF: Buffer = Buffer.from('\r\n', 'latin1');
/** `0\r\n\r\n`: the last chunk with no trailer fields, ending a chunked body (RFC 9112 §7.1). */
export const LAST_CHUNK: Buffer = Buffer.from('0\r\n\r\n', 'latin1');

/** request-target characters: visible ASCII (RFC 9112 §3.2). */
const TARGET = /^[\x21-\x7e]+$/;

// ---------------------------------------------------------------------------------------------------- Date

let cachedSecond = -1;
let cachedDate = '';

/**
 * The `Date` value for `now` (RFC 9110 §5.6.7 IMF-fixdate, e.g. `Wed, 25 Nov 2026 12:00:00 GMT`). One string is
 * kept and rebuilt only when `now` falls in another second.
 */
export function httpDate(now: number = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedDate = new Date(second * 1000).toUTCString(); // toUTCString is IMF-fixdate (ECMA-262 §21.4.4.43)
  }
  return cachedDate;
}

/**
 * The `Date:` line of generated heads, rebuilt at most once a second. Rather than read the clock per response
 * (about 45 ns), the line is dropped by an unref'd timer at the next second boundary and rebuilt on first use,
 * as node:http does: an idle server runs no timer at all.
 */
let dateLineValue: string | undefined;

function dateLine(): string {
  if (dateLineValue === undefined) {
    const now = Date.now();
    dateLineValue = `Date: ${new Date(now).toUTCString()}\r\n`;
    setTimeout(expireDateLine, 1000 - (now % 1000)).unref();
  }
  return dateLineValue;
}

function expireDateLine(): void {
  dateLineValue = undefined;
}

/** `Buffer#latin1Write` (what `Buffer.from(s, 'latin1')` ends up calling) where present. */
type Latin1Writable = Buffer & { latin1Write(s: string, offset: number, length: number): number };
const HAS_LATIN1_WRITE = typeof (Buffer.prototype as Partial<Latin1Writable>).latin1Write === 'function';

/**
 * Bodies up to this size are copied after the head (see {@link ResponseHeadInfo.body}): below it a copy costs less
 * than a second buffer through the endpoint (SocketEndPoint copies every batch under 16 KiB into one buffer anyway).
 */
export const INLINE_BODY_BYTES = 1024;

/** The head as bytes: every character is <= U+00FF (checked), so latin1 is exact. */
function toBytes(head: string): Buffer {
  if (!HAS_LATIN1_WRITE) return Buffer.from(head, 'latin1');
  const b = Buffer.allocUnsafe(head.length);
  (b as Latin1Writable).latin1Write(head, 0, head.length);
  return b;
}

// ---------------------------------------------------------------------------------------------------- responses

/** `HTTP/1.x NNN Reason\r\n` for the registered phrases, built once per version and status. */
const STATUS_LINES: [Map<number, string>, Map<number, string>] = [new Map(), new Map()];

function statusLine(versionMinor: 0 | 1, status: number, reason: string | undefined): string {
  if (reason === undefined) {
    const cache = STATUS_LINES[versionMinor];
    let line = cache.get(status);
    if (line === undefined) {
      checkStatus(status);
      line = `HTTP/1.${versionMinor} ${status} ${reasonPhrase(status)}\r\n`;
      cache.set(status, line);
    }
    return line;
  }
  checkStatus(status);
  if (INVALID_VALUE.test(reason)) throw new HttpGeneratorError('HTTP_INVALID_STATUS', `invalid reason phrase ${JSON.stringify(reason)}`);
  return `HTTP/1.${versionMinor} ${status} ${reason}\r\n`;
}

function checkStatus(status: number): void {
  // status-code = 3DIGIT (RFC 9112 §4); below 100 is not a status.
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new HttpGeneratorError('HTTP_INVALID_STATUS', `invalid status ${status}`);
}

/**
 * Writes a response head (RFC 9112 §4, §6): the status line, the application's fields (each checked, so no value
 * can smuggle in a line of its own: response splitting, RFC 9112 §11.1), `Date` (RFC 9110 §6.6.1, for 2xx and
 * later), then the framing fields, which it decides itself:
 * - 1xx, 204, 304: no `Content-Length` or `Transfer-Encoding` (RFC 9110 §8.6, RFC 9112 §6.1), no body;
 * - a known length: `Content-Length` (also for HEAD, as the GET would have);
 * - an unknown length: `Transfer-Encoding: chunked` on HTTP/1.1 (nothing for HEAD); on HTTP/1.0 no framing field
 *   and the close delimits the body (RFC 9112 §6.3), so `keepAlive` becomes false;
 * - `Connection: close` when closing; `Connection: keep-alive` for a persistent HTTP/1.0 connection (RFC 9112 §9.3).
 * Throws {@link HttpGeneratorError} for an invalid status, reason, name or value.
 */
export function generateResponseHead(info: ResponseHeadInfo): GeneratedHead {
  const status = info.status;
  const versionMinor = info.versionMinor ?? 1;
  const contentLength = info.contentLength ?? -1;
  const fields = info.fields;
  const cache = LAST_HEAD;
  // The same head as the last one (a handler that answers every request alike): its bytes again, without building
  // and encoding the string. Every input of the head is compared, the fields by value.
  if (
    cache.bytes !== undefined &&
    fields instanceof HttpFields &&
    cache.status === status &&
    info.reason === undefined &&
    cache.versionMinor === versionMinor &&
    cache.contentLength === contentLength &&
    cache.keepAliveIn === info.keepAlive &&
    cache.chunkedIn === (info.chunked === true) &&
    cache.headRequest === (info.head === true) &&
    cache.dateLine === dateLineValue &&
    sameFields(cache.fields, fields)
  ) {
    return headResult(cache.bytes, info.body, contentLength, cache.chunked, cache.keepAlive, status, info.head === true);
  }
  let head = statusLine(versionMinor, status, info.reason);
  checkLength(contentLength);
  let keepAlive = info.keepAlive;
  let connectionTokens = '';
  let userDate = false;
  if (fields !== undefined) {
    const w = writeFields(fields, RESPONSE_OWNED, head);
    head = w.head;
    if (w.close) keepAlive = false;
    connectionTokens = w.connectionTokens;
    userDate = w.date;
  }
  if (status >= 200 && !userDate) head += dateLine();
  let chunked = false;
  if (statusAllowsBody(status)) {
    if (contentLength >= 0 && info.chunked !== true) {
      head += `Content-Length: ${contentLength}\r\n`;
    } else if (versionMinor === 1) {
      if (info.head !== true) {
        chunked = true;
        head += 'Transfer-Encoding: chunked\r\n';
      }
    } else if (info.head !== true) {
      keepAlive = false; // HTTP/1.0, unknown length: the close delimits the body
    }
  }
  head += connectionLine(keepAlive, versionMinor, connectionTokens);
  head += '\r\n';
  const result = headResult(toBytes(head), info.body, contentLength, chunked, keepAlive, status, info.head === true);
  if (fields instanceof HttpFields && info.reason === undefined && fields.size <= CACHED_FIELDS_MAX) {
    cache.status = status;
    cache.versionMinor = versionMinor;
    cache.contentLength = contentLength;
    cache.keepAliveIn = info.keepAlive;
    cache.chunkedIn = info.chunked === true;
    cache.headRequest = info.head === true;
    // The Date line the head has (undefined with a user Date: then the field compares). Read after dateLine():
    // at the next second it is dropped, so no later head matches this one.
    cache.dateLine = dateLineValue;
    cache.fields.length = 0;
    for (let i = 0; i < fields.size; i++) cache.fields.push(fields.nameAt(i), fields.valueAt(i));
    cache.bytes = result.bodyIncluded ? result.bytes.subarray(0, head.length) : result.bytes;
    cache.chunked = chunked;
    cache.keepAlive = keepAlive;
  }
  return result;
}

/** The generated head (`headBytes`), with the body copied after it when it is small and goes out as it is. */
function headResult(headBytes: Buffer, body: Buffer | undefined, contentLength: number, chunked: boolean, keepAlive: boolean, status: number, headRequest: boolean): GeneratedHead {
  if (body !== undefined && body.length !== 0 && body.length <= INLINE_BODY_BYTES && body.length === contentLength && !chunked && !headRequest && statusAllowsBody(status)) {
    const bytes = Buffer.allocUnsafe(headBytes.length + body.length);
    bytes.set(headBytes, 0);
    bytes.set(body, headBytes.length);
    return { bytes, bodyIncluded: true, chunked, keepAlive };
  }
  return { bytes: headBytes, bodyIncluded: false, chunked, keepAlive };
}

/** Heads with more fields than this are not remembered (the comparison would cost more than it saves). */
const CACHED_FIELDS_MAX = 8;

/**
 * The last response head generated from HttpFields, with everything it was made from. Its bytes are shared by
 * the responses that match it: no one modifies a head once generated (the endpoint writes it as it is).
 */
const LAST_HEAD: {
  bytes: Buffer | undefined;
  status: number;
  versionMinor: number;
  contentLength: number;
  keepAliveIn: boolean;
  chunkedIn: boolean;
  headRequest: boolean;
  dateLine: string | undefined;
  /** Name, value, name, value... */
  fields: string[];
  chunked: boolean;
  keepAlive: boolean;
} = {
  bytes: undefined,
  status: 0,
  versionMinor: 1,
  contentLength: -1,
  keepAliveIn: false,
  chunkedIn: false,
  headRequest: false,
  dateLine: undefined,
  fields: [],
  chunked: false,
  keepAlive: false,
};

function sameFields(cached: readonly string[], fields: HttpFields): boolean {
  const n = fields.size;
  if (cached.length !== n * 2) return false;
  for (let i = 0; i < n; i++) {
    if (cached[i * 2] !== fields.nameAt(i) || cached[i * 2 + 1] !== fields.valueAt(i)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------- requests

/** What a request head needs (the client side). */
export interface RequestHeadInfo {
  /** A token, case-sensitive (RFC 9110 §9.1). */
  method: string;
  /** origin-form (`/path?q`), absolute-form, authority-form (CONNECT) or `*` (OPTIONS); visible ASCII only. */
  target: string;
  /**
   * The Host value (RFC 9112 §3.2), written as the first field. Without it, the first `Host` of `fields` is used;
   * an HTTP/1.1 request needs one of them.
   */
  host?: string;
  /**
   * The application's fields. `Content-Length` and `Transfer-Encoding` are the generator's and ignored here;
   * `Connection` tokens are kept (e.g. `Upgrade` for WebSocket), with `close` added when `keepAlive` is false.
   */
  fields?: FieldsInit;
  /** Body length; -1 (the default) for no body unless `chunked`. */
  contentLength?: number;
  /** A body of unknown length, sent in chunks (HTTP/1.1 only). */
  chunked?: boolean;
  /** Default true. False adds `Connection: close`; on HTTP/1.0, true adds `Connection: keep-alive`. */
  keepAlive?: boolean;
  /** 1 by default. */
  versionMinor?: 0 | 1;
}

/** Writes a request head for a client (RFC 9112 §3). Throws {@link HttpGeneratorError} on invalid input. */
export function generateRequestHead(info: RequestHeadInfo): Buffer {
  if (!TOKEN.test(info.method)) throw new HttpGeneratorError('HTTP_INVALID_METHOD', `invalid method ${JSON.stringify(info.method)}`);
  if (!TARGET.test(info.target)) throw new HttpGeneratorError('HTTP_INVALID_TARGET', `invalid request-target ${JSON.stringify(info.target)}`);
  const versionMinor = info.versionMinor ?? 1;
  const contentLength = info.contentLength ?? -1;
  checkLength(contentLength);
  const chunked = info.chunked === true;
  if (chunked && versionMinor === 0) throw new HttpGeneratorError('HTTP_INVALID_FRAMING', 'HTTP/1.0 has no chunked transfer coding');
  let host = info.host;
  const fields = info.fields;
  if (host === undefined && fields !== undefined) {
    const v = fields instanceof HttpFields ? fields.get('host') : hostOf(fields);
    if (v !== undefined) host = String(v);
  }
  if (host === undefined && versionMinor === 1) {
    throw new HttpGeneratorError('HTTP_INVALID_FRAMING', 'an HTTP/1.1 request needs a Host (RFC 9112 §3.2)');
  }
  let head = `${info.method} ${info.target} HTTP/1.${versionMinor}\r\n`;
  if (host !== undefined) {
    checkFieldValue('Host', host);
    head += `Host: ${host}\r\n`;
  }
  let keepAlive = info.keepAlive ?? true;
  let connectionTokens = '';
  if (fields !== undefined) {
    const w = writeFields(fields, REQUEST_OWNED, head);
    head = w.head;
    if (w.close) keepAlive = false;
    connectionTokens = w.connectionTokens;
  }
  if (chunked) head += 'Transfer-Encoding: chunked\r\n';
  else if (contentLength >= 0) head += `Content-Length: ${contentLength}\r\n`;
  head += connectionLine(keepAlive, versionMinor, connectionTokens);
  return toBytes(head + '\r\n');
}

/**
 * The Connection line (RFC 9112 §9.3, §9.6): `close` when the connection ends after this message,
 * `keep-alive` to keep an HTTP/1.0 one, after the application's other tokens (`Upgrade`...). Empty if nothing.
 */
function connectionLine(keepAlive: boolean, versionMinor: 0 | 1, tokens: string): string {
  const option = !keepAlive ? 'close' : versionMinor === 0 ? 'keep-alive' : '';
  if (option === '') return tokens === '' ? '' : `Connection: ${tokens}\r\n`;
  return tokens === '' ? `Connection: ${option}\r\n` : `Connection: ${tokens}, ${option}\r\n`;
}

function hostOf(record: Readonly<Record<string, string | number | readonly string[]>>): string | undefined {
  for (const name of Object.keys(record)) {
    if (name.toLowerCase() !== 'host') continue;
    const v = record[name]!;
    return typeof v === 'object' ? v[0] : String(v);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------- chunks

const CHUNK_HEADER_CACHE_LIMIT = 16384;
const CHUNK_HEADERS: (Buffer | undefined)[] = [];

/**
 * The line before a chunk's data: `size` in hex and CRLF (RFC 9112 §7.1). Sizes below 16 KiB are cached (the
 * returned Buffer is shared: do not modify it). `size` must be a positive integer: a zero-size chunk would end
 * the body.
 */
export function chunkHeader(size: number): Buffer {
  if (size < CHUNK_HEADER_CACHE_LIMIT) {
    const cached = CHUNK_HEADERS[size];
    if (cached !== undefined) return cached;
  }
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`invalid chunk size ${size}`);
  const b = Buffer.from(`${size.toString(16)}\r\n`, 'latin1');
  if (size < CHUNK_HEADER_CACHE_LIMIT) CHUNK_HEADERS[size] = b;
  return b;
}

/**
 * Appends the buffers of one chunk to `out`: its header, `data` itself (not copied) and CRLF. Empty data adds
 * nothing (a zero-size chunk would end the body).
 */
export function appendChunk(out: Buffer[], data: Buffer): void {
  if (data.length === 0) return;
  out.push(chunkHeader(data.length), data, CRLF);
}

/**
 * The end of a chunked body: the last chunk and the trailer section (RFC 9112 §7.1.2). Without trailers it is
 * {@link LAST_CHUNK}. Framing fields in `trailers` are refused (RFC 9110 §6.5.1) like invalid names and values.
 */
export function lastChunk(trailers?: FieldsInit): Buffer {
  if (trailers === undefined) return LAST_CHUNK;
  const w = writeFields(trailers, TRAILER_FORBIDDEN, '0\r\n');
  if (w.connectionTokens !== '' || w.close) throw new HttpGeneratorError('HTTP_INVALID_FIELD_NAME', 'Connection is not allowed in trailers');
  return Buffer.from(w.head + '\r\n', 'latin1');
}

// ---------------------------------------------------------------------------------------------------- fields

/** How a field name is treated: written, skipped (the generator writes its own), Connection, Date, refused. */
const enum Owned {
  WRITE,
  SKIP,
  CONNECTION,
  DATE,
  REFUSE,
}

const RESPONSE_OWNED: ReadonlyMap<string, Owned> = new Map([
  ['content-length', Owned.SKIP],
  ['transfer-encoding', Owned.SKIP],
  ['connection', Owned.CONNECTION],
  ['date', Owned.DATE],
]);
const REQUEST_OWNED: ReadonlyMap<string, Owned> = new Map([
  ['content-length', Owned.SKIP],
  ['transfer-encoding', Owned.SKIP],
  ['host', Owned.SKIP],
  ['connection', Owned.CONNECTION],
]);
/** RFC 9110 §6.5.1: fields needed for framing, routing or control must not be trailers. */
const TRAILER_FORBIDDEN: ReadonlyMap<string, Owned> = new Map([
  ['content-length', Owned.REFUSE],
  ['transfer-encoding', Owned.REFUSE],
  ['host', Owned.REFUSE],
  ['trailer', Owned.REFUSE],
  ['connection', Owned.CONNECTION],
]);

interface WrittenFields {
  head: string;
  /** A Connection field had the `close` token. */
  close: boolean;
  /** Connection tokens other than close / keep-alive, comma-separated, original case. */
  connectionTokens: string;
  /** A Date field was written. */
  date: boolean;
}

/** Reused by every call (the generator is synchronous): no allocation per head. */
const written: WrittenFields = { head: '', close: false, connectionTokens: '', date: false };

/** Appends the checked field lines to `head`. The result is valid until the next call. */
function writeFields(fields: FieldsInit, owned: ReadonlyMap<string, Owned>, head: string): WrittenFields {
  const out = written;
  out.head = head;
  out.close = false;
  out.connectionTokens = '';
  out.date = false;
  if (fields instanceof HttpFields) {
    // HttpFields checked each name and value when it was set (or the parser did as it read them): not again.
    for (let i = 0; i < fields.size; i++) writeField(out, owned, fields.nameAt(i), fields.lowerAt(i), fields.valueAt(i));
  } else {
    for (const name of Object.keys(fields)) {
      const value = fields[name]!;
      const lower = name.toLowerCase();
      checkFieldName(name);
      if (typeof value === 'string') writeField(out, owned, name, lower, checked(name, value));
      else if (typeof value === 'number') writeField(out, owned, name, lower, String(value));
      else for (const v of value) writeField(out, owned, name, lower, checked(name, v));
    }
  }
  return out;
}

function checked(name: string, value: string): string {
  checkFieldValue(name, value);
  return value;
}

/** Writes one field whose name and value were checked. */
function writeField(out: WrittenFields, owned: ReadonlyMap<string, Owned>, name: string, lower: string, value: string): void {
  const how = owned.get(lower) ?? Owned.WRITE;
  switch (how) {
    case Owned.WRITE:
      out.head += `${name}: ${value}\r\n`;
      return;
    case Owned.DATE:
      out.date = true;
      out.head += `${name}: ${value}\r\n`;
      return;
    case Owned.CONNECTION:
      for (const part of value.split(',')) {
        const token = part.trim();
        const t = token.toLowerCase();
        if (t === '') continue;
        if (t === 'close') out.close = true;
        else if (t !== 'keep-alive') out.connectionTokens = out.connectionTokens === '' ? token : `${out.connectionTokens}, ${token}`;
      }
      return;
    case Owned.SKIP:
      return;
    case Owned.REFUSE:
      throw new HttpGeneratorError('HTTP_INVALID_FIELD_NAME', `${name} is not allowed here (RFC 9110 §6.5.1)`);
  }
}


function checkLength(n: number): void {
  if (!(n === -1 || (Number.isSafeInteger(n) && n >= 0))) throw new HttpGeneratorError('HTTP_INVALID_FRAMING', `invalid content length ${n}`);
}
