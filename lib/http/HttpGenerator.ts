import { HttpFields } from './HttpFields.js';
import { reasonPhrase } from './HttpStatus.js';
import { HttpGeneratorError } from './errors.js';

/** What a response head needs. */
export interface ResponseHeadInfo {
  status: number;
  reason?: string;
  fields?: HttpFields | Record<string, string | number | readonly string[]>;
  /** Body length, or -1 when unknown (then chunked on HTTP/1.1, close-delimited on HTTP/1.0). */
  contentLength: number;
  keepAlive: boolean;
  /** The response answers a HEAD: headers as for GET, no body follows. */
  head?: boolean;
  versionMinor?: 0 | 1;
}

/** The generated head and the framing it committed to. */
export interface GeneratedHead {
  bytes: Buffer;
  chunked: boolean;
  keepAlive: boolean;
}

export const CRLF = Buffer.from('\r\n', 'latin1');
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/** Field names the generator writes itself from the framing; user values for them are ignored. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'date']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\0\r\n\x01-\x08\x0b-\x1f\x7f]/;

let cachedDate = '';
let cachedDateSecond = -1;

/** The `Date` value (RFC 9110 §6.6.1, IMF-fixdate), rebuilt at most once a second. */
export function httpDate(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== cachedDateSecond) {
    cachedDateSecond = second;
    cachedDate = new Date(second * 1000).toUTCString();
  }
  return cachedDate;
}

/**
 * Writes a response head (RFC 9112 §4 and §6): status line, the user's fields (checked against response
 * splitting), `Date`, and the framing fields it decides itself: `Content-Length` when the length is known,
 * `Transfer-Encoding: chunked` when not (HTTP/1.1) or a close-delimited body (HTTP/1.0), and `Connection`.
 * 1xx, 204 and 304 responses get no framing fields (RFC 9110 §8.6); a 304 keeps a user's Content-Length out.
 */
export function generateResponseHead(info: ResponseHeadInfo): GeneratedHead {
  const status = info.status;
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new HttpGeneratorError(`invalid status ${status}`);
  const versionMinor = info.versionMinor ?? 1;
  const reason = info.reason ?? reasonPhrase(status);
  if (BAD_VALUE.test(reason)) throw new HttpGeneratorError('invalid reason phrase');
  let head = `HTTP/1.${versionMinor} ${status} ${reason}\r\n`;
  head += writeFields(info.fields);
  head += `Date: ${httpDate()}\r\n`;
  const bodiless = status < 200 || status === 204 || status === 304;
  let chunked = false;
  let keepAlive = info.keepAlive;
  if (!bodiless) {
    if (info.contentLength >= 0) {
      head += `Content-Length: ${info.contentLength}\r\n`;
    } else if (versionMinor === 1) {
      chunked = !info.head;
      if (chunked) head += 'Transfer-Encoding: chunked\r\n';
    } else {
      keepAlive = false; // HTTP/1.0 with an unknown length: the close delimits the body
    }
  }
  if (!keepAlive) head += 'Connection: close\r\n';
  else if (versionMinor === 0) head += 'Connection: keep-alive\r\n';
  head += '\r\n';
  return { bytes: Buffer.from(head, 'latin1'), chunked, keepAlive };
}

/** What a request head needs (the client side). */
export interface RequestHeadInfo {
  method: string;
  target: string;
  host: string;
  fields?: HttpFields | Record<string, string | number | readonly string[]>;
  /** -1 for no body. */
  contentLength: number;
}

/** Writes a request head for a client (RFC 9112 §3). */
export function generateRequestHead(info: RequestHeadInfo): Buffer {
  if (!TOKEN.test(info.method)) throw new HttpGeneratorError(`invalid method ${info.method}`);
  if (!/^[\x21-\x7e]+$/.test(info.target)) throw new HttpGeneratorError('invalid request-target');
  if (BAD_VALUE.test(info.host)) throw new HttpGeneratorError('invalid host');
  let head = `${info.method} ${info.target} HTTP/1.1\r\nHost: ${info.host}\r\n`;
  head += writeFields(info.fields, true);
  if (info.contentLength >= 0) head += `Content-Length: ${info.contentLength}\r\n`;
  return Buffer.from(head + '\r\n', 'latin1');
}

const CHUNK_HEADERS: Buffer[] = [];

/** `size` in hex and CRLF: the line before a chunk's data (RFC 9112 §7.1). Small sizes are cached. */
export function chunkHeader(size: number): Buffer {
  if (size < 4096) {
    const cached = CHUNK_HEADERS[size];
    if (cached !== undefined) return cached;
    const b = Buffer.from(`${size.toString(16)}\r\n`, 'latin1');
    CHUNK_HEADERS[size] = b;
    return b;
  }
  return Buffer.from(`${size.toString(16)}\r\n`, 'latin1');
}

function writeFields(fields: ResponseHeadInfo['fields'], request = false): string {
  if (fields === undefined) return '';
  let out = '';
  const add = (name: string, value: string): void => {
    if (!TOKEN.test(name)) throw new HttpGeneratorError(`invalid header name ${JSON.stringify(name)}`);
    if (BAD_VALUE.test(value)) throw new HttpGeneratorError(`invalid value for header ${name} (CR, LF or control character)`);
    const lower = name.toLowerCase();
    if (FRAMING.has(lower) && !(request && lower === 'connection')) return;
    if (request && lower === 'host') return;
    out += `${name}: ${value}\r\n`;
  };
  if (fields instanceof HttpFields) {
    for (let i = 0; i < fields.size; i++) add(fields.nameAt(i), fields.valueAt(i));
  } else {
    for (const [name, value] of Object.entries(fields)) {
      if (Array.isArray(value)) for (const v of value as readonly string[]) add(name, v);
      else add(name, String(value));
    }
  }
  return out;
}
