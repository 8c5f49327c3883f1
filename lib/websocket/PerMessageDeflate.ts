import { constants as bufferConstants } from 'node:buffer';
import { constants as zlibConstants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { ProtocolError } from './errors.js';

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
 * The calls are synchronous (like Jetty's Inflater/Deflater on the connection's thread): ordering is trivial and
 * nothing is held across ticks, at the price of the event loop doing the (de)compression; `maxMessageBytes` bounds
 * what one message can cost. Messages under `threshold` bytes are sent uncompressed (RSV1 clear), which RFC 7692
 * §6 allows at any time.
 */

/** Options of permessage-deflate (server's handler or client's connect). */
export interface PerMessageDeflateOptions {
  /** Messages shorter than this (bytes) are sent uncompressed. Default 1024 (as ws). */
  threshold?: number;
  /** zlib compression level, 0-9, or -1 for zlib's default (6). Default -1. */
  level?: number;
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
}

/** Applies the defaults of {@link PerMessageDeflateOptions}; `undefined` when compression is off. */
export function resolveDeflateSettings(option: boolean | PerMessageDeflateOptions | undefined): DeflateSettings | undefined {
  if (option === undefined || option === false) return undefined;
  const options = option === true ? {} : option;
  const threshold = options.threshold ?? 1024;
  if (!(Number.isInteger(threshold) && threshold >= 0)) throw new RangeError(`perMessageDeflate.threshold must be an integer >= 0, not ${threshold}`);
  const level = options.level ?? -1;
  if (!(Number.isInteger(level) && level >= -1 && level <= 9)) throw new RangeError(`perMessageDeflate.level must be an integer from -1 to 9, not ${level}`);
  return Object.freeze({ threshold, level });
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
 * The client's offer. `client_no_context_takeover`: quay compresses every message on its own anyway, and saying
 * so lets the server drop its inflate window. No `client_max_window_bits`, so the server may not limit our window
 * (§7.1.2.2), and no `server_*` parameter: the server chooses, and we inflate whatever it picks.
 */
export const CLIENT_DEFLATE_OFFER = 'permessage-deflate; client_no_context_takeover';

/**
 * Checks the server's answer to {@link CLIENT_DEFLATE_OFFER} (RFC 7692 §5.1, §7): exactly one extension,
 * permessage-deflate, with known, unrepeated, valid parameters, and no `client_max_window_bits` (we did not offer
 * it). `server_max_window_bits` is accepted (our 15-bit inflater reads any smaller window).
 * @throws ExtensionHeaderError naming what is wrong (the client fails the handshake with it)
 */
export function acceptDeflateResponse(header: string): DeflateAgreement {
  const extensions = parseExtensions(header);
  if (extensions.length !== 1 || extensions[0]!.name.toLowerCase() !== 'permessage-deflate') {
    throw new ExtensionHeaderError(`the server selected ${JSON.stringify(header.slice(0, 128))}, not one permessage-deflate as offered`);
  }
  const params = readDeflateParams(extensions[0]!.params);
  if (params.clientMaxWindowBits !== undefined) {
    throw new ExtensionHeaderError('permessage-deflate response: client_max_window_bits, which was not offered (RFC 7692 §7.1.2.2)');
  }
  return { response: header.trim(), inflateWindow: !params.serverNoContextTakeover, deflateWindowBits: 15 };
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

  /**
   * The compressed payload of one message, without the 4-byte tail (§7.2.1); `undefined` when compression would not
   * make it smaller (it is then sent as it is, RSV1 clear).
   */
  compress(data: Buffer): Buffer | undefined {
    const out = deflateRawSync(data, {
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
      level: this.settings.level,
      windowBits: this.agreement.deflateWindowBits,
    });
    const length = out.length - 4;
    // A sync flush always ends with the empty stored block; check rather than assume.
    if (length < 0 || out[length] !== 0 || out[length + 1] !== 0 || out[length + 2] !== 0xff || out[length + 3] !== 0xff) return undefined;
    if (length >= data.length) return undefined;
    return out.subarray(0, length);
  }

  /**
   * Inflates one received message (§7.2.2).
   * @throws ProtocolError 1009 `WS_MESSAGE_TOO_BIG` when it inflates past `maxBytes` (a zip bomb stops there), 1007
   *   `WS_INVALID_COMPRESSED_DATA` when it is not valid DEFLATE data.
   */
  decompress(payload: Buffer, maxBytes: number): Buffer {
    const input = Buffer.allocUnsafe(payload.length + 4);
    payload.copy(input, 0);
    TAIL.copy(input, payload.length);
    const keep = this.agreement.inflateWindow;
    let out: Buffer;
    try {
      out = inflateRawSync(input, {
        finishFlush: zlibConstants.Z_SYNC_FLUSH,
        windowBits: 15,
        maxOutputLength: Math.max(1, Math.min(maxBytes, bufferConstants.MAX_LENGTH)),
        ...(keep && this.windowLength > 0 ? { dictionary: this.window!.subarray(0, this.windowLength) } : {}),
      });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new ProtocolError(1009, 'WS_MESSAGE_TOO_BIG', `compressed message inflates past maxMessageBytes (${maxBytes})`);
      }
      throw new ProtocolError(1007, 'WS_INVALID_COMPRESSED_DATA', `compressed message is not valid DEFLATE data (RFC 7692 §7.2.2): ${(e as Error).message}`);
    }
    // maxOutputLength is at least 1, so a limit of 0 is checked here.
    if (out.length > maxBytes) {
      throw new ProtocolError(1009, 'WS_MESSAGE_TOO_BIG', `compressed message inflates past maxMessageBytes (${maxBytes})`);
    }
    if (keep) this.slide(out);
    return out;
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
