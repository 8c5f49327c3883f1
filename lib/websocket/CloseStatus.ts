import { Buffer } from 'node:buffer';
import { FrameEncodeError, ProtocolError } from './errors.js';
import { Utf8Validator } from './Utf8Validator.js';

/**
 * Close status codes (RFC 6455 §7.4.1 and the IANA "WebSocket Close Code Number Registry", RFC 6455 §11.7).
 * Plain numbers: a close code is any integer a peer may send, not a closed set.
 */
export const CloseStatus = Object.freeze({
  /** The purpose for which the connection was established has been fulfilled. */
  NORMAL: 1000,
  /** An endpoint is going away: a server going down, a browser leaving the page. */
  GOING_AWAY: 1001,
  /** A protocol error. */
  PROTOCOL_ERROR: 1002,
  /** A type of data the endpoint cannot accept (e.g. binary for a text-only endpoint). */
  UNSUPPORTED_DATA: 1003,
  /** Reserved, no meaning yet (RFC 6455 §7.4.1). Never on the wire. */
  RESERVED: 1004,
  /** No status code was present in the close frame. Never on the wire (RFC 6455 §7.4.1). */
  NO_STATUS: 1005,
  /** The connection closed without a close frame. Never on the wire (RFC 6455 §7.4.1). */
  ABNORMAL: 1006,
  /** Data in a message inconsistent with its type, e.g. invalid UTF-8 in a text message. */
  INVALID_PAYLOAD: 1007,
  /** A message that violates the endpoint's policy (generic, when no other code fits). */
  POLICY_VIOLATION: 1008,
  /** A message too big to process. */
  MESSAGE_TOO_BIG: 1009,
  /** (Client) the server did not negotiate an extension the client requires. */
  MANDATORY_EXTENSION: 1010,
  /** (Server) an unexpected condition prevented the server from fulfilling the request. */
  INTERNAL_ERROR: 1011,
  /** The service is restarting (IANA registry). */
  SERVICE_RESTART: 1012,
  /** Temporary overload: try again later (IANA registry). */
  TRY_AGAIN_LATER: 1013,
  /** A gateway or proxy received an invalid response from upstream (IANA registry). */
  BAD_GATEWAY: 1014,
  /** The TLS handshake failed. Never on the wire (RFC 6455 §7.4.1). */
  TLS_HANDSHAKE: 1015,
} as const);

/** The largest close reason: a control frame payload is at most 125 bytes, 2 of them the code (RFC 6455 §5.5). */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * The code may appear in a close frame (sent or received), RFC 6455 §7.4.1, §7.4.2 and the IANA registry:
 * - 0-999: not used; 1016-2999: reserved for this RFC and extensions, unassigned so far: invalid.
 * - 1000-1003, 1007-1014: defined (1012-1014 by the IANA registry, as `ws` and browsers allow).
 * - 1004 (reserved), 1005, 1006, 1015: "MUST NOT be set as a status code in a Close control frame".
 * - 3000-3999: registered for libraries and frameworks; 4000-4999: private use. Both valid.
 */
export function isValidWireCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999))
  );
}

/**
 * The payload of a close frame: the code as a 16-bit big-endian integer, then the reason in UTF-8
 * (RFC 6455 §5.5.1). `CloseStatus.NO_STATUS` (1005) gives the empty payload (a close frame without a body is
 * allowed, and its receiver reports 1005), and then the reason must be empty.
 *
 * @throws FrameEncodeError `WS_INVALID_CLOSE_CODE` for a code that may not be sent, `WS_CLOSE_REASON_TOO_LONG`
 *   when the reason is over 123 bytes of UTF-8.
 */
export function encodeClosePayload(code: number, reason = ''): Buffer {
  if (code === CloseStatus.NO_STATUS) {
    if (reason.length !== 0) {
      throw new FrameEncodeError('WS_INVALID_CLOSE_CODE', 'a close reason needs a status code (RFC 6455 §5.5.1)');
    }
    return Buffer.alloc(0);
  }
  if (!isValidWireCloseCode(code)) {
    throw new FrameEncodeError('WS_INVALID_CLOSE_CODE', `close code ${code} may not be sent (RFC 6455 §7.4)`);
  }
  const reasonBytes = Buffer.byteLength(reason, 'utf8');
  if (reasonBytes > MAX_CLOSE_REASON_BYTES) {
    throw new FrameEncodeError(
      'WS_CLOSE_REASON_TOO_LONG',
      `close reason is ${reasonBytes} bytes of UTF-8, at most ${MAX_CLOSE_REASON_BYTES} fit (RFC 6455 §5.5)`,
    );
  }
  const payload = Buffer.allocUnsafe(2 + reasonBytes);
  payload.writeUInt16BE(code, 0);
  if (reasonBytes !== 0) payload.write(reason, 2, 'utf8');
  return payload;
}

/** A received close frame's code and reason. */
export interface ClosePayload {
  /** The status code, or 1005 (`NO_STATUS`) when the frame had no body. */
  code: number;
  /** The reason, possibly empty. */
  reason: string;
}

/**
 * Decodes a received close frame's payload (RFC 6455 §5.5.1, §7.1.5, §7.1.6).
 *
 * @throws ProtocolError `WS_BAD_CLOSE_PAYLOAD` (1002) for a 1-byte payload, `WS_BAD_CLOSE_CODE` (1002) for a code
 *   that may not be on the wire, `WS_INVALID_UTF8` (1007) for a reason that is not UTF-8.
 */
export function parseClosePayload(payload: Uint8Array): ClosePayload {
  const length = payload.length;
  if (length === 0) return { code: CloseStatus.NO_STATUS, reason: '' };
  if (length === 1) {
    throw new ProtocolError(1002, 'WS_BAD_CLOSE_PAYLOAD', 'close frame with a 1-byte payload (RFC 6455 §5.5.1)');
  }
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidWireCloseCode(code)) {
    throw new ProtocolError(1002, 'WS_BAD_CLOSE_CODE', `close code ${code} is not allowed on the wire (RFC 6455 §7.4)`);
  }
  if (length === 2) return { code, reason: '' };
  // RFC 6455 §5.5.1: the reason is UTF-8; §8.1: invalid UTF-8 fails the connection with 1007.
  if (!Utf8Validator.isValid(payload, 2, length)) {
    throw new ProtocolError(1007, 'WS_INVALID_UTF8', 'close reason is not valid UTF-8 (RFC 6455 §5.5.1)');
  }
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, length);
  return { code, reason: bytes.toString('utf8', 2, length) };
}
