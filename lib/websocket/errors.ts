/** Errors of the WebSocket codec (FrameParser, FrameGenerator, close payloads). */

/**
 * The stable codes of {@link ProtocolError}, one per rule of RFC 6455 the peer broke. The close code sent back
 * is on the error; the usual one is noted here.
 */
export type ProtocolErrorCode =
  /** 1002: a client-to-server frame without a mask (§5.1, §5.3). */
  | 'WS_UNMASKED_FRAME'
  /** 1002: a server-to-client frame with a mask (§5.1). */
  | 'WS_MASKED_FRAME'
  /** 1002: RSV1-3 set without a negotiated extension that defines them (§5.2, RFC 7692 §6). */
  | 'WS_RSV_BITS'
  /** 1002: a reserved opcode, %x3-7 or %xB-F (§5.2). */
  | 'WS_BAD_OPCODE'
  /** 1002: a control frame with a payload over 125 bytes (§5.5). */
  | 'WS_CONTROL_TOO_LONG'
  /** 1002: a control frame without FIN (§5.5: control frames MUST NOT be fragmented). */
  | 'WS_FRAGMENTED_CONTROL'
  /** 1002: a continuation with no message open, or a new data frame inside a fragmented message (§5.4). */
  | 'WS_BAD_CONTINUATION'
  /** 1007: a text message (or a close reason) that is not valid UTF-8 (§5.6, §8.1). */
  | 'WS_INVALID_UTF8'
  /** 1002: a close frame with a 1-byte payload (§5.5.1: a body starts with a 2-byte code). */
  | 'WS_BAD_CLOSE_PAYLOAD'
  /** 1002: a close code that may not appear on the wire (§7.4.1, §7.4.2). */
  | 'WS_BAD_CLOSE_CODE'
  /** 1009: a frame over the parser's `maxFrameBytes`. */
  | 'WS_FRAME_TOO_BIG'
  /** 1009: a message over the parser's `maxMessageBytes`. */
  | 'WS_MESSAGE_TOO_BIG'
  /** 1009: a message in more frames than the parser's `maxFragments` (see FrameParserOptions for why 1009). */
  | 'WS_TOO_MANY_FRAGMENTS'
  /** 1002: a 64-bit payload length with the most significant bit set (§5.2). */
  | 'WS_64BIT_LENGTH'
  /** 1007: a compressed message (permessage-deflate, RFC 7692 §7.2.2) that is not valid DEFLATE data. */
  | 'WS_INVALID_COMPRESSED_DATA';

/**
 * The peer broke RFC 6455 (or a configured limit). `closeCode` is the status to send in the close frame
 * before closing (RFC 6455 §7.1.7 "Fail the WebSocket Connection"); `code` names the rule.
 */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  readonly closeCode: number;
  constructor(closeCode: number, code: ProtocolErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.closeCode = closeCode;
  }
}

/** The stable codes of {@link FrameEncodeError}. */
export type FrameEncodeErrorCode =
  /** A close reason over 123 bytes of UTF-8 (RFC 6455 §5.5: 125 bytes minus the 2-byte code). */
  | 'WS_CLOSE_REASON_TOO_LONG'
  /** A close code that may not be sent (RFC 6455 §7.4), or a reason without a code. */
  | 'WS_INVALID_CLOSE_CODE'
  /** A control frame payload over 125 bytes (RFC 6455 §5.5). */
  | 'WS_CONTROL_PAYLOAD_TOO_LONG'
  /** A control frame without FIN or with RSV1 (RFC 6455 §5.5, RFC 7692 §6.1). */
  | 'WS_INVALID_CONTROL_FRAME'
  /** An opcode RFC 6455 does not define (§5.2). */
  | 'WS_INVALID_OPCODE'
  /** A mask key that is not 4 bytes (RFC 6455 §5.3). */
  | 'WS_INVALID_MASK_KEY'
  /** Bytes given as a text message that are not UTF-8 (RFC 6455 §5.6: a text frame's payload is UTF-8). */
  | 'WS_INVALID_UTF8';

/** Our own caller asked the codec to produce something RFC 6455 forbids. Nothing was written. */
export class FrameEncodeError extends RangeError {
  readonly code: FrameEncodeErrorCode;
  constructor(code: FrameEncodeErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The stable codes of {@link WebSocketSessionError}. */
export type WebSocketSessionErrorCode =
  /** A send on a session that has sent or received a close frame, or whose connection ended (RFC 6455 §5.5.1). */
  | 'WS_SESSION_CLOSED'
  /** A send refused because `bufferedAmount` would pass `maxBufferedBytes` (policy `'reject'`). */
  | 'WS_BUFFER_OVERFLOW'
  /** The peer did not answer our close frame within `closeTimeoutMs` (RFC 6455 §7.1.1). */
  | 'WS_CLOSE_TIMEOUT'
  /** No pong came back within the ping interval (`pingIntervalMs`): the peer is presumed gone. */
  | 'WS_PONG_TIMEOUT'
  /**
   * 1008: the peer sends pings but read nothing of our output for `closeTimeoutMs` while a pong waited (a ping
   * flood from a peer that does not read; see WebSocketConnection, "Control frames").
   */
  | 'WS_SLOW_CONSUMER'
  /** An application callback (onOpen, onText, ...) threw or rejected; the session closes with 1011. */
  | 'WS_CALLBACK_FAILED';

/**
 * A session-level failure: a send that cannot be done, or a session that ended for a local reason. `closeCode` is
 * the code the session closed with (or will), when known.
 */
export class WebSocketSessionError extends Error {
  readonly code: WebSocketSessionErrorCode;
  readonly closeCode: number | undefined;
  constructor(code: WebSocketSessionErrorCode, message: string, closeCode?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.closeCode = closeCode;
  }
}
