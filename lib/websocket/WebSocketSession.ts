import { Buffer } from 'node:buffer';
import type { WriteCallback } from '../io/WriteFlusher.js';
import { safeToDrop, settleWrite } from '../io/safeToDrop.js';
import { CloseStatus } from './CloseStatus.js';
import { OpCode } from './OpCode.js';
import type { DataOpCode } from './OpCode.js';
import type { WebSocketConnection } from './WebSocketConnection.js';
import { WebSocketSessionError } from './errors.js';
import { checkTextBytes } from './Utf8Validator.js';

/** Options of {@link WebSocketSession.send} and `broadcast`. */
export interface SendOptions {
  /**
   * Send a Buffer as a text message rather than a binary one: its bytes must be UTF-8 (checked; a
   * `FrameEncodeError` 'WS_INVALID_UTF8' otherwise, nothing sent). For relaying text without a string (see
   * `onTextBytes`). Ignored for a string, which is always text.
   */
  text?: boolean;
}

/** `readyState` values, as in the browser's WebSocket and `ws`. */
export const ReadyState = Object.freeze({ CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const);
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState];

const EMPTY = Buffer.alloc(0);

/**
 * One side of an open WebSocket, as the application sees it (Jetty's `Session`, a `ws` WebSocket): send, ping,
 * close, and what was agreed in the handshake. Server and client sessions have the same API.
 *
 * Sends return a Promise that resolves when the frame has been handed to the kernel, and rejects with a
 * {@link WebSocketSessionError} if the session closes first ('WS_SESSION_CLOSED') or the buffered bound refuses
 * it ('WS_BUFFER_OVERFLOW'). A rejection nobody awaits is not an unhandled rejection: the session marks it
 * handled, because a fire-and-forget send to a peer that left is normal, not a crash.
 */
export class WebSocketSession {
  /** For the application's own per-session state (a chat name, a user id); quay never reads it. */
  attachment: unknown = undefined;

  /** @internal Made by WebSocketConnection. */
  constructor(
    private readonly connection: WebSocketConnection,
    /** The subprotocol agreed in the handshake (RFC 6455 §1.9), '' for none. */
    readonly protocol: string,
    /** The extensions agreed in the handshake (RFC 6455 §9), '' for none. */
    readonly extensions: string,
    /** The path of the upgrade request (server) or of the URL (client). */
    readonly path: string,
  ) {}

  /** The peer's IP address. */
  get remoteAddress(): string {
    return this.connection.endPoint.remoteAddress;
  }

  /** The peer's port. */
  get remotePort(): number {
    return this.connection.endPoint.remotePort;
  }

  /** OPEN until a close frame is sent or received, CLOSING during the handshake, CLOSED once the connection ended. */
  get readyState(): ReadyState {
    const state = this.connection.state;
    return state === 'OPEN' ? ReadyState.OPEN : state === 'CLOSED' ? ReadyState.CLOSED : ReadyState.CLOSING;
  }

  /** True while messages may be sent. */
  get isOpen(): boolean {
    return this.connection.state === 'OPEN';
  }

  /** Bytes accepted by sends and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.connection.bufferedAmount;
  }

  /**
   * The idle timeout in ms (0 = never). Initially the handler's `idleTimeoutMs`, or else the HTTP connection's;
   * settable at any time. With `pingIntervalMs` the idle timer runs the keepalive instead.
   */
  get idleTimeoutMs(): number {
    return this.connection.endPoint.idleTimeoutMs;
  }

  set idleTimeoutMs(ms: number) {
    this.connection.endPoint.idleTimeoutMs = ms;
  }

  /**
   * Sends a text message: a string, or its UTF-8 bytes (checked, then sent without a string: a relay of what
   * `onTextBytes` received). See the class comment for the Promise; bytes that are not UTF-8 reject it with a
   * `FrameEncodeError` 'WS_INVALID_UTF8' (nothing sent). The bytes are not copied: do not modify them until the
   * Promise settles.
   */
  sendText(text: string | Uint8Array): Promise<void> {
    if (typeof text === 'string') return settle((callback) => this.connection.send(OpCode.TEXT, text, callback));
    try {
      checkTextBytes(text);
    } catch (e) {
      return safeToDrop(Promise.reject(e));
    }
    const bytes = toBuffer(text);
    return settle((callback) => this.connection.send(OpCode.TEXT, bytes, callback));
  }

  /** Sends a binary message. The buffer is not copied: do not modify it until the Promise settles. */
  sendBinary(data: Buffer | Uint8Array): Promise<void> {
    const buffer = toBuffer(data);
    return settle((callback) => this.connection.send(OpCode.BINARY, buffer, callback));
  }

  /**
   * Sends without a Promise: `callback` (optional) gets null when flushed or the error. Returns false when the
   * message was refused at once (closed session, buffer bound). For hot loops that do not need to wait. A string
   * is a text message, a Buffer a binary one, or a text one with `{ text: true }` (see {@link SendOptions}).
   * @throws FrameEncodeError 'WS_INVALID_UTF8' for `{ text: true }` bytes that are not UTF-8.
   */
  send(data: string | Buffer, callback?: WriteCallback, options?: SendOptions): boolean {
    return this.connection.send(messageOpCode(data, options), data, callback);
  }

  /**
   * Sends a ping (RFC 6455 §5.5.2) with up to 125 bytes; it goes ahead of queued data. The pong arrives in
   * `onPong`. While the peer is not taking our output (the endpoint over its high watermark) the ping waits, and
   * a later ping replaces a waiting one: pings do not pile up behind a peer that does not read.
   * @throws WebSocketSessionError 'WS_SESSION_CLOSED' when the session is closing; FrameEncodeError over 125 bytes.
   */
  ping(data: Buffer | string = EMPTY): void {
    this.connection.ping(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  /**
   * Starts the close handshake (RFC 6455 §7.1.2): queued messages are sent first, then the close frame; the
   * connection ends when the peer answers (or after `closeTimeoutMs`). `onClose` follows. A no-op once closing.
   * @throws FrameEncodeError for a code that may not be sent (1005, 1006, 1015, out of range) or a reason over
   *   123 bytes of UTF-8.
   */
  close(code: number = CloseStatus.NORMAL, reason = ''): void {
    this.connection.close(code, reason);
  }

  /** Ends the connection at once, without a close handshake (reported as 1006); queued data fails. */
  terminate(): void {
    this.connection.terminate();
  }

  /** @internal The connection behind the session (broadcast uses it). */
  get webSocketConnection(): WebSocketConnection {
    return this.connection;
  }
}

/** Adapts a callback-style send to a Promise whose rejection is marked handled (see WebSocketSession). */
/**
 * @internal The opcode of a message given as `data` (`send`, `broadcast`): a string is text, bytes are binary, or
 * text with `{ text: true }` once checked to be UTF-8.
 * @throws FrameEncodeError 'WS_INVALID_UTF8'
 */
export function messageOpCode(data: string | Uint8Array, options: SendOptions | undefined): DataOpCode {
  if (typeof data === 'string') return OpCode.TEXT;
  if (options?.text !== true) return OpCode.BINARY;
  checkTextBytes(data);
  return OpCode.TEXT;
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function settle(start: (callback: WriteCallback) => boolean): Promise<void> {
  return settleWrite(start, toSessionError);
}

/**
 * A frame already handed to the endpoint fails with the endpoint's error (EndPointClosedError) when the connection
 * ends: the Promise keeps its documented type, with the endpoint's error as the cause.
 */
function toSessionError(error: Error): Error {
  return error instanceof WebSocketSessionError
    ? error
    : new WebSocketSessionError('WS_SESSION_CLOSED', `the WebSocket session closed before the data was sent: ${error.message}`, undefined, { cause: error });
}
