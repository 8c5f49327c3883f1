import { Buffer, constants as bufferConstants } from 'node:buffer';
import { constants as zlibConstants, deflateRaw, deflateRawSync, inflateRaw, inflateRawSync } from 'node:zlib';
import type { ZlibOptions } from 'node:zlib';
import { ProtocolError } from './errors.js';
import { zlibJobQueue } from './ZlibJobQueue.js';

/**
 * permessage-deflate (RFC 7692): negotiation of the `Sec-WebSocket-Extensions` offer, and the per-session codec.
 *
 * Design: quay never keeps a zlib stream per session. The server always answers `server_no_context_takeover`
 * (RFC 7692 §7.1.1.1 lets it, offered or not), so each message it sends is compressed on its own by one
 * synchronous `deflateRawSync` call: no deflate state (ws keeps a zlib stream per session and direction once used;
 * by zlib's own formula in zconf.h a deflate stream at windowBits 15 and memLevel 8 needs 256 KiB, an inflate
 * stream 32 KiB plus a few KB), and the same input always gives the same bytes. Receiving, the client's context takeover is
 * honoured without a stream either: the LZ77 window a client may refer back to is the last 32 KiB of what it sent
 * before (§7.2.2), which is exactly what zlib's preset dictionary of a raw inflate is, so each message is
 * inflated by one `inflateRawSync` call given that window. A session keeps at most those 32 KiB, and none when the
 * client offered `client_no_context_takeover`.
 *
 * Small messages are (de)compressed synchronously, like Jetty's Inflater/Deflater on the connection's thread: the
 * hot path, where a thread-pool hop (tens of µs) would cost more than the work. Large ones go to zlib's thread pool
 * (async `node:zlib`, same options, same dictionary), so that no message blocks the event loop for long: a 60 KiB
 * message may inflate to 60 MiB (DEFLATE reaches ~1032:1), which takes 200-400 ms of CPU. The rule, with
 * `asyncThreshold` (default 64 KiB):
 * - inflating: a message whose compressed payload is at most `asyncThreshold` bytes is inflated synchronously
 *   with zlib's output stopped at min(`maxMessageBytes`, `asyncThreshold`) (`maxOutputLength`: zlib stops
 *   early, so this costs at most that much output, ~0.1-0.6 ms). Only when it would inflate past that, or its
 *   payload is larger, is it inflated again on the pool, stopped at `maxMessageBytes` (1009 past it, the zip-bomb
 *   guard, the same as synchronously), into one buffer (see `decompressLater`). The session holds its reads
 *   meanwhile (WebSocketConnection's HOLD_INFLATE), so messages are still delivered in order and the window is
 *   never used by two inflations at once.
 * - deflating: a message of more than `asyncThreshold` bytes is compressed on the pool; it keeps its place in the
 *   session's data queue (counted in `bufferedAmount` at its uncompressed size) and what is sent after it waits.
 * At most `zlibJobQueue.concurrency` jobs run at once in the process (ZlibJobQueue.ts); the others wait in FIFO.
 * Messages under `threshold` bytes are sent uncompressed (RSV1 clear), which RFC 7692 §6 allows at any time.
 */

/** Options of permessage-deflate (server's handler or client's connect). */
export interface PerMessageDeflateOptions {
  /** Messages shorter than this (bytes) are sent uncompressed. Default 1024 (as ws). */
  threshold?: number;
  /** zlib compression level, 0-9, or -1 for zlib's default (6). Default -1. */
  level?: number;
  /**
   * Messages over this many bytes are (de)compressed on zlib's thread pool instead of the event loop: sends
   * larger than this, and received messages whose compressed payload or inflated size is larger. Default 65536
   * (64 KiB of JSON-like text, measured on our test machine: ~0.6 ms to inflate, ~2 ms to deflate at level 6). `Infinity`: always synchronous.
   */
  asyncThreshold?: number;
  /**
   * Client only (a server answers what the client offers and ignores these): ask the server not to use context
   * takeover (RFC 7692 §7.1.1.1), so that this client keeps no 32 KiB inflate window per session. The server must
   * agree, or the handshake fails ('WS_HANDSHAKE_EXTENSION'). Default false.
   */
  serverNoContextTakeover?: boolean;
  /** Client only: ask the server to compress with at most this LZ77 window, 9 to 15 (§7.1.2.1). Default: not asked. */
  serverMaxWindowBits?: number;
  /**
   * Client only: offer `client_max_window_bits` (§7.1.2.2), with a value (9 to 15: our window at most), or `true`
   * without one (the server may choose; it may not choose 8, which zlib cannot honour for raw deflate, else the
   * handshake fails). Default: not offered, so the server cannot limit our window.
   */
  clientMaxWindowBits?: number | true;
}

/** What was agreed for one session, in terms of our side (server or client). */
export interface DeflateAgreement {
  /** The `Sec-WebSocket-Extensions` value of the 101. */
  readonly response: string;
  /**
   * The peer may refer back to its earlier messages (it uses context takeover), so we keep its window: false when
   * the client offered `client_no_context_takeover` (server side) or the server answered
   * `server_no_context_takeover` (client side).
   */
  readonly inflateWindow: boolean;
  /** The LZ77 window of our compression: what the peer allows (`server_max_window_bits` for a server), else 15. */
  readonly deflateWindowBits: number;
}

/** The resolved options, shared by the sessions of one handler. */
export interface DeflateSettings {
  readonly threshold: number;
  readonly level: number;
  readonly asyncThreshold: number;
  /** The client's `Sec-WebSocket-Extensions` offer (unused by a server). */
  readonly offer: string;
  /** What that offer asks for, to check the server's answer against. */
  readonly offered: Readonly<Pick<DeflateParams, 'serverNoContextTakeover' | 'serverMaxWindowBits' | 'clientMaxWindowBits'>>;
}

/** Applies the defaults of {@link PerMessageDeflateOptions}; `undefined` when compression is off. */
export function resolveDeflateSettings(option: boolean | PerMessageDeflateOptions | undefined): DeflateSettings | undefined {
  if (option === undefined || option === false) return undefined;
  const options = option === true ? {} : option;
  const threshold = options.threshold ?? 1024;
  if (!(Number.isInteger(threshold) && threshold >= 0)) throw new RangeError(`perMessageDeflate.threshold must be an integer >= 0, not ${threshold}`);
  const level = options.level ?? -1;
  if (!(Number.isInteger(level) && level >= -1 && level <= 9)) throw new RangeError(`perMessageDeflate.level must be an integer from -1 to 9, not ${level}`);
  const asyncThreshold = options.asyncThreshold ?? 64 * 1024;
  if (!((Number.isInteger(asyncThreshold) && asyncThreshold >= 0) || asyncThreshold === Infinity)) {
    throw new RangeError(`perMessageDeflate.asyncThreshold must be an integer >= 0 or Infinity, not ${asyncThreshold}`);
  }
  const serverNoContextTakeover = options.serverNoContextTakeover === true;
  const serverMaxWindowBits = options.serverMaxWindowBits;
  if (serverMaxWindowBits !== undefined && !isOfferableWindow(serverMaxWindowBits)) {
    throw new RangeError(`perMessageDeflate.serverMaxWindowBits must be an integer from 9 to 15, not ${serverMaxWindowBits}`);
  }
  const clientMaxWindowBits = options.clientMaxWindowBits;
  if (clientMaxWindowBits !== undefined && clientMaxWindowBits !== true && !isOfferableWindow(clientMaxWindowBits)) {
    throw new RangeError(`perMessageDeflate.clientMaxWindowBits must be true or an integer from 9 to 15, not ${String(clientMaxWindowBits)}`);
  }
  // client_no_context_takeover always: quay compresses every message on its own anyway, and saying so lets the
  // server drop its inflate window.
  let offer = 'permessage-deflate; client_no_context_takeover';
  if (serverNoContextTakeover) offer += '; server_no_context_takeover';
  if (serverMaxWindowBits !== undefined) offer += `; server_max_window_bits=${serverMaxWindowBits}`;
  if (clientMaxWindowBits === true) offer += '; client_max_window_bits';
  else if (clientMaxWindowBits !== undefined) offer += `; client_max_window_bits=${clientMaxWindowBits}`;
  return Object.freeze({ threshold, level, asyncThreshold, offer, offered: Object.freeze({ serverNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits }) });
}

/** 9 to 15: the windows zlib's raw deflate honours (it turns 8 into 9, which would break a peer's limit of 8). */
function isOfferableWindow(bits: number): boolean {
  return Number.isInteger(bits) && bits >= 9 && bits <= 15;
}

/** One extension of a `Sec-WebSocket-Extensions` list: its name and parameters (values unquoted; `true` for none). */
export interface ExtensionOffer {
  readonly name: string;
  readonly params: readonly (readonly [string, string | true])[];
}

/** The header is not the grammar of RFC 6455 §9.1: the handshake answers 400. */
export class ExtensionHeaderError extends Error {
  readonly code = 'WS_BAD_EXTENSIONS_HEADER';
  constructor(message: string) {
    super(message);
    this.name = 'ExtensionHeaderError';
  }
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
 * `1#( extension-token *( ";" extension-param ) )`, `extension-param = token [ "=" (token | quoted-string) ]`,
 * with optional whitespace around separators. Linear in the header's length (one pass, no backtracking), at most
 * 64 extensions. Empty list elements are skipped (RFC 9110 §5.6.1).
 * @throws ExtensionHeaderError for anything else
 */
export function parseExtensions(header: string): ExtensionOffer[] {
  const offers: ExtensionOffer[] = [];
  const n = header.length;
  let i = 0;
  const skipOws = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const token = (what: string): string => {
    const start = i;
    while (i < n && TCHAR.test(header[i]!)) i++;
    if (i === start) throw new ExtensionHeaderError(`Sec-WebSocket-Extensions: ${what} expected at offset ${start}`);
    return header.slice(start, i);
  };
  while (i < n) {
    skipOws();
    if (header[i] === ',') {
      i++;
      continue; // an empty element
    }
    if (i >= n) break;
    const name = token('an extension name');
    const params: (readonly [string, string | true])[] = [];
    skipOws();
    while (header[i] === ';') {
      i++;
      skipOws();
      const param = token('a parameter name');
      skipOws();
      let value: string | true = true;
      if (header[i] === '=') {
        i++;
        skipOws();
        if (header[i] === '"') {
          // quoted-string (RFC 9110 §5.6.4); RFC 6455 §9.1: its unquoted value must itself be a token.
          i++;
          let v = '';
          while (i < n && header[i] !== '"') {
            if (header[i] === '\\') i++;
            if (i >= n) break;
            v += header[i];
            i++;
          }
          if (header[i] !== '"') throw new ExtensionHeaderError('Sec-WebSocket-Extensions: unterminated quoted string');
          i++;
          if (v === '' || ![...v].every((c) => TCHAR.test(c))) {
            throw new ExtensionHeaderError(`Sec-WebSocket-Extensions: the quoted value of ${param} is not a token`);
          }
          value = v;
        } else {
          value = token(`a value for ${param}`);
        }
        skipOws();
      }
      params.push([param, value]);
    }
    if (i < n && header[i] !== ',') throw new ExtensionHeaderError(`Sec-WebSocket-Extensions: unexpected ${JSON.stringify(header[i])} at offset ${i}`);
    offers.push({ name, params });
    if (offers.length > 64) throw new ExtensionHeaderError('Sec-WebSocket-Extensions: more than 64 extensions offered');
  }
  return offers;
}

/** A window-bits value of RFC 7692 §7.1.2: 1*DIGIT, 8 to 15, no leading zero. */
function windowBits(value: string | true): number | undefined {
  if (value === true || !/^[89]$|^1[0-5]$/.test(value)) return undefined;
  return Number(value);
}

/** The parameters of one permessage-deflate offer or answer (RFC 7692 §7), checked. */
interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** `server_max_window_bits=N`, undefined when absent. */
  serverMaxWindowBits: number | undefined;
  /** `client_max_window_bits[=N]`: true without a value, undefined when absent. */
  clientMaxWindowBits: number | true | undefined;
}

/**
 * Reads the parameters of one permessage-deflate element (names case-insensitive), shared by the server's
 * negotiation and the client's check of the answer.
 * @throws ExtensionHeaderError for a parameter given twice, an unknown one, or an invalid value (§7: the server
 *   declines such an offer, the client fails on such an answer)
 */
function readDeflateParams(params: ExtensionOffer['params']): DeflateParams {
  const result: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: undefined, clientMaxWindowBits: undefined };
  const seen = new Set<string>();
  for (const [rawName, value] of params) {
    const name = rawName.toLowerCase();
    if (seen.has(name)) throw new ExtensionHeaderError(`permessage-deflate: ${name} twice`);
    seen.add(name);
    if (name === 'server_no_context_takeover' || name === 'client_no_context_takeover') {
      if (value !== true) throw new ExtensionHeaderError(`permessage-deflate: ${name} takes no value`);
      if (name === 'server_no_context_takeover') result.serverNoContextTakeover = true;
      else result.clientNoContextTakeover = true;
    } else if (name === 'server_max_window_bits' || name === 'client_max_window_bits') {
      // server_max_window_bits always has a value; client_max_window_bits may come without one (§7.1.2.2).
      const bits = value === true && name === 'client_max_window_bits' ? true : windowBits(value);
      if (bits === undefined) throw new ExtensionHeaderError(`permessage-deflate: invalid ${name} ${JSON.stringify(value)}`);
      if (name === 'server_max_window_bits') result.serverMaxWindowBits = bits as number;
      else result.clientMaxWindowBits = bits;
    } else {
      throw new ExtensionHeaderError(`permessage-deflate: unexpected parameter ${name}`);
    }
  }
  return result;
}

/**
 * Picks the first permessage-deflate offer quay can accept (RFC 7692 §5.1, §7) and the response to it; `undefined`
 * when there is none (no offer, or every offer declined: the session runs without compression). An offer is
 * declined when it has an unknown parameter, a parameter twice, or an invalid value (§7: "MUST decline"), and
 * when it asks for `server_max_window_bits=8`, which zlib cannot produce for raw deflate. `client_max_window_bits`,
 * with or without a value, needs no answer: we inflate with a 15-bit window, which reads any smaller one.
 */
export function negotiateDeflate(offers: readonly ExtensionOffer[]): DeflateAgreement | undefined {
  for (const offer of offers) {
    if (offer.name.toLowerCase() !== 'permessage-deflate') continue;
    let params: DeflateParams;
    try {
      params = readDeflateParams(offer.params);
    } catch (e) {
      if (e instanceof ExtensionHeaderError) continue;
      throw e;
    }
    if (params.serverMaxWindowBits === 8) continue;
    let response = 'permessage-deflate; server_no_context_takeover';
    if (params.clientNoContextTakeover) response += '; client_no_context_takeover';
    if (params.serverMaxWindowBits !== undefined) response += `; server_max_window_bits=${params.serverMaxWindowBits}`;
    return { response, inflateWindow: !params.clientNoContextTakeover, deflateWindowBits: params.serverMaxWindowBits ?? 15 };
  }
  return undefined;
}


/**
 * Checks the server's answer to the client's offer (`settings.offer`, RFC 7692 §5.1, §7): exactly one extension,
 * permessage-deflate, with known, unrepeated, valid parameters that agree with the offer: `server_no_context_takeover`
 * when we asked for it (§7.1.1.1), `server_max_window_bits` no larger than we asked (§7.1.2.1; without our asking
 * any is fine: our 15-bit inflater reads any smaller window), `client_max_window_bits` only when we offered it and
 * no larger than our value, nor 8 (§7.1.2.2). We then compress with the window the server allows.
 * @throws ExtensionHeaderError naming what is wrong (the client fails the handshake with it)
 */
export function acceptDeflateResponse(header: string, settings: DeflateSettings): DeflateAgreement {
  const extensions = parseExtensions(header);
  if (extensions.length !== 1 || extensions[0]!.name.toLowerCase() !== 'permessage-deflate') {
    throw new ExtensionHeaderError(`the server selected ${JSON.stringify(header.slice(0, 128))}, not one permessage-deflate as offered`);
  }
  const params = readDeflateParams(extensions[0]!.params);
  const offered = settings.offered;
  if (offered.serverNoContextTakeover && !params.serverNoContextTakeover) {
    throw new ExtensionHeaderError('permessage-deflate response: no server_no_context_takeover, which was asked for (RFC 7692 §7.1.1.1)');
  }
  if (offered.serverMaxWindowBits !== undefined && (params.serverMaxWindowBits ?? 15) > offered.serverMaxWindowBits) {
    throw new ExtensionHeaderError(
      `permessage-deflate response: server_max_window_bits ${params.serverMaxWindowBits ?? 'absent'}, over the ${offered.serverMaxWindowBits} asked for (RFC 7692 §7.1.2.1)`,
    );
  }
  const clientBits = params.clientMaxWindowBits;
  if (clientBits !== undefined) {
    if (offered.clientMaxWindowBits === undefined) {
      throw new ExtensionHeaderError('permessage-deflate response: client_max_window_bits, which was not offered (RFC 7692 §7.1.2.2)');
    }
    if (clientBits === true) throw new ExtensionHeaderError('permessage-deflate response: client_max_window_bits without a value (RFC 7692 §7.1.2.2)');
    if (offered.clientMaxWindowBits !== true && clientBits > offered.clientMaxWindowBits) {
      throw new ExtensionHeaderError(`permessage-deflate response: client_max_window_bits ${clientBits}, over the ${offered.clientMaxWindowBits} offered (RFC 7692 §7.1.2.2)`);
    }
    if (clientBits === 8) throw new ExtensionHeaderError('permessage-deflate response: client_max_window_bits 8, which zlib cannot honour for raw deflate');
  }
  return { response: header.trim(), inflateWindow: !params.serverNoContextTakeover, deflateWindowBits: clientBits === undefined ? 15 : clientBits };
}

/** RFC 7692 §7.2.1/§7.2.2: the empty stored block a sync flush ends with, removed by the sender, appended back here. */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** The largest LZ77 window (2^15) a peer's message may refer back to. */
const MAX_WINDOW = 32 * 1024;

/** The compression of one session: stateless deflate out, inflate in with the peer's window when it keeps one. */
export class MessageDeflate {
  /** The last bytes (up to 32 KiB) of the messages received, when the peer uses context takeover. */
  private window: Buffer | undefined;
  private windowLength = 0;

  constructor(
    readonly settings: DeflateSettings,
    readonly agreement: DeflateAgreement,
  ) {}

  /** Whether a message of `bytes` bytes is worth compressing. */
  wants(bytes: number): boolean {
    return bytes >= this.settings.threshold;
  }

  /** Whether a message of `bytes` bytes is compressed on zlib's thread pool ({@link compressLater}). */
  compressesLater(bytes: number): boolean {
    return bytes > this.settings.asyncThreshold;
  }

  /**
   * The compressed payload of one message, without the 4-byte tail (§7.2.1); `undefined` when compression would not
   * make it smaller (it is then sent as it is, RSV1 clear).
   */
  compress(data: Buffer): Buffer | undefined {
    return compressed(deflateRawSync(data, this.deflateOptions()), data.length);
  }

  /**
   * {@link compress} on zlib's thread pool, when {@link zlibJobQueue} has a slot. `wanted` is asked when the job's
   * turn comes: false skips it, and `callback` is never called. Otherwise `callback` gets what `compress` would
   * return (`undefined` also when zlib failed: the message is then sent as it is).
   */
  compressLater(data: Buffer, wanted: () => boolean, callback: (compressed: Buffer | undefined) => void): void {
    zlibJobQueue.submit((done) => {
      if (!wanted()) return false;
      try {
        // Stopped once it is no smaller than the message: it would be sent as it is anyway.
        deflateRaw(data, { ...this.deflateOptions(), chunkSize: ASYNC_CHUNK, maxOutputLength: Math.max(1, Math.min(data.length, bufferConstants.MAX_LENGTH)) }, (error, out) => {
          done();
          callback(error === null ? compressed(out, data.length) : undefined);
        });
      } catch {
        // Not expected (the options are checked); the message is then sent as it is.
        queueMicrotask(() => {
          done();
          callback(undefined);
        });
      }
      return true;
    });
  }

  /**
   * Inflates one received message (§7.2.2) on the event loop, whatever its size (the connection uses
   * {@link decompressIfSmall}).
   * @throws ProtocolError 1009 `WS_MESSAGE_TOO_BIG` when it inflates past `maxBytes` (a zip bomb stops there), 1007
   *   `WS_INVALID_COMPRESSED_DATA` when it is not valid DEFLATE data.
   */
  decompress(payload: Buffer, maxBytes: number): Buffer {
    return this.inflateSync(payload, maxBytes, maxBytes)!;
  }

  /**
   * {@link decompress}, unless the message is larger than `asyncThreshold` (compressed, or once inflated while
   * `maxBytes` allows more): then nothing is kept and `undefined` is returned, for {@link decompressLater}. The
   * work done here is bounded by `asyncThreshold` bytes in and out: zlib stops at `maxOutputLength`.
   * @throws ProtocolError as {@link decompress}
   */
  decompressIfSmall(payload: Buffer, maxBytes: number): Buffer | undefined {
    const budget = this.settings.asyncThreshold;
    if (payload.length > budget) return undefined;
    return this.inflateSync(payload, Math.min(maxBytes, budget), maxBytes);
  }

  /** Inflates with output stopped past `limit`; past it, `undefined` when `maxBytes` allows more, else 1009. */
  private inflateSync(payload: Buffer, limit: number, maxBytes: number): Buffer | undefined {
    let out: Buffer;
    try {
      out = inflateRawSync(this.inflateInput(payload), this.inflateOptions(limit));
    } catch (e) {
      if (isTooLarge(e) && maxBytes > limit) return undefined;
      throw inflateError(e, maxBytes);
    }
    // maxOutputLength is at least 1, so a limit of 0 is checked here.
    if (out.length > limit) {
      if (maxBytes > limit) return undefined;
      throw inflateError(TOO_LARGE, maxBytes);
    }
    if (this.agreement.inflateWindow) this.slide(out);
    return out;
  }

  /**
   * Inflates one received message on zlib's thread pool, stopped at `maxBytes`, when {@link zlibJobQueue} has a
   * slot. The caller must not inflate another message of this session before `callback` (the window is used and
   * then updated). `wanted` is asked when each job's turn comes: false skips it, and `callback` is never called.
   * Otherwise `callback` gets the message, or a ProtocolError as {@link decompress} throws it.
   *
   * zlib writes the message into one buffer, so that the event loop never copies it: gathering zlib's chunks into
   * one Buffer (what `inflateRaw` does with several) costs the loop ~250 ms for 60 MiB on our test machine
   * (mostly page faults on the fresh target; ~12 ms with one chunk, measured with eventLoopUtilization). Its
   * size is not known in advance, so the job runs with a buffer of 1 MiB, then 4x larger each time the output
   * does not fit, up to `maxBytes`: at most a third more work on the pool, and a message never sits in a buffer
   * over 4x its size (a smaller one, possible only in the first, is copied out).
   */
  decompressLater(payload: Buffer, maxBytes: number, wanted: () => boolean, callback: (error: ProtocolError | undefined, message: Buffer | undefined) => void): void {
    // Copied now (with the tail): the payload may be a view of a read buffer that is reused.
    this.inflateLater(this.inflateInput(payload), FIRST_ASYNC_BUFFER, maxBytes, wanted, callback);
  }

  private inflateLater(
    input: Buffer,
    size: number,
    maxBytes: number,
    wanted: () => boolean,
    callback: (error: ProtocolError | undefined, message: Buffer | undefined) => void,
  ): void {
    const limit = Math.min(size, maxBytes);
    zlibJobQueue.submit((done) => {
      if (!wanted()) return false;
      try {
        // The dictionary (a view of the window) is read when the job starts, synchronously, by zlib's init.
        // chunkSize one more than the limit: all that may be kept fits one chunk (zlib's minimum is 64).
        inflateRaw(input, { ...this.inflateOptions(limit), chunkSize: Math.max(64, Math.min(limit, bufferConstants.MAX_LENGTH - 1) + 1) }, (error, out) => {
          done();
          if (error !== null || out.length > limit) {
            const e = error ?? TOO_LARGE;
            // Past this buffer but not past maxBytes: again, in a larger one (the FIFO's turn taken again).
            if (isTooLarge(e) && maxBytes > limit) return this.inflateLater(input, size * 4, maxBytes, wanted, callback);
            return callback(inflateError(e, maxBytes), undefined);
          }
          if (out.length * 4 < out.buffer.byteLength) out = Buffer.from(out);
          if (this.agreement.inflateWindow) this.slide(out);
          callback(undefined, out);
        });
      } catch (e) {
        queueMicrotask(() => {
          done();
          callback(inflateError(e, maxBytes), undefined);
        });
      }
      return true;
    });
  }

  private deflateOptions(): ZlibOptions {
    return { finishFlush: zlibConstants.Z_SYNC_FLUSH, level: this.settings.level, windowBits: this.agreement.deflateWindowBits };
  }

  /** The payload with the 4-byte tail appended (§7.2.2). */
  private inflateInput(payload: Buffer): Buffer {
    const input = Buffer.allocUnsafe(payload.length + 4);
    payload.copy(input, 0);
    TAIL.copy(input, payload.length);
    return input;
  }

  /** Raw inflate stopped past `limit` bytes, with the peer's window as the preset dictionary when it keeps one. */
  private inflateOptions(limit: number): ZlibOptions {
    const options: ZlibOptions = {
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
      windowBits: 15,
      maxOutputLength: Math.max(1, Math.min(limit, bufferConstants.MAX_LENGTH)),
    };
    if (this.agreement.inflateWindow && this.windowLength > 0) options.dictionary = this.window!.subarray(0, this.windowLength);
    return options;
  }

  /** Keeps the last 32 KiB of everything inflated so far: the window the client's next message may refer to. */
  private slide(out: Buffer): void {
    if (out.length === 0) return;
    const window = (this.window ??= Buffer.allocUnsafe(MAX_WINDOW));
    if (out.length >= MAX_WINDOW) {
      out.copy(window, 0, out.length - MAX_WINDOW);
      this.windowLength = MAX_WINDOW;
      return;
    }
    const keepOld = Math.min(this.windowLength, MAX_WINDOW - out.length);
    if (keepOld > 0 && keepOld < this.windowLength) window.copy(window, 0, this.windowLength - keepOld, this.windowLength);
    out.copy(window, keepOld);
    this.windowLength = keepOld + out.length;
  }
}

/**
 * Output chunks of an async deflation: each is one thread-pool round trip. zlib's default (16 KiB) makes the loop's
 * share of the work grow with their count (inflating 60 MiB in 16 KiB chunks measured 3x the CPU of 64 KiB ones).
 */
const ASYNC_CHUNK = 64 * 1024;

/** The output buffer of an async inflation's first attempt (see `decompressLater`). */
const FIRST_ASYNC_BUFFER = 1024 * 1024;

/** Stands for zlib's "too large" when the size check is ours. */
const TOO_LARGE = { code: 'ERR_BUFFER_TOO_LARGE' };

/** zlib stopped at `maxOutputLength` (a RangeError `ERR_BUFFER_TOO_LARGE`, synchronously or not). */
function isTooLarge(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === 'ERR_BUFFER_TOO_LARGE';
}

/** zlib's error as the session's: 1009 past the limit, 1007 for anything else (invalid data). */
function inflateError(e: unknown, maxBytes: number): ProtocolError {
  if (isTooLarge(e)) return new ProtocolError(1009, 'WS_MESSAGE_TOO_BIG', `compressed message inflates past maxMessageBytes (${maxBytes})`);
  return new ProtocolError(1007, 'WS_INVALID_COMPRESSED_DATA', `compressed message is not valid DEFLATE data (RFC 7692 §7.2.2): ${(e as Error).message}`);
}

/** zlib's sync-flushed output without its 4-byte tail; `undefined` when that is not smaller than `length`. */
function compressed(out: Buffer, length: number): Buffer | undefined {
  const n = out.length - 4;
  // A sync flush always ends with the empty stored block; check rather than assume.
  if (n < 0 || out[n] !== 0 || out[n + 1] !== 0 || out[n + 2] !== 0xff || out[n + 3] !== 0xff) return undefined;
  if (n >= length) return undefined;
  return out.subarray(0, n);
}
