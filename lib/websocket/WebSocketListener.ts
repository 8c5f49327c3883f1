import type { WebSocketSession } from './WebSocketSession.js';

/**
 * What the application supplies for one WebSocket session (the endpoint of Jetty's WebSocket API, the events of a
 * `ws` WebSocket). Every method is optional. A callback that throws, or returns a Promise that rejects, ends the
 * session with 1011 (internal error) and is reported to `onError`; it never reaches the process.
 */
export interface WebSocketListener {
  /** The session is open: the 101 is on its way (server) or was received (client). Sending is allowed. */
  onOpen?(session: WebSocketSession): void;
  /**
   * A whole text message (already validated UTF-8, RFC 6455 §8.1). A returned Promise holds further reads until it
   * settles when the session's `awaitHandlers` option is on (ordered async processing with read backpressure).
   */
  onText?(session: WebSocketSession, text: string): void | Promise<void>;
  /**
   * A whole text message as its UTF-8 bytes, already validated (RFC 6455 §8.1). When the listener has it, `onText`
   * is not called and no string is made: for relays (an echo, a chat fan-out, a proxy, a queue bridge) that pass
   * the message on as it came, with `session.send(bytes, callback, { text: true })` or
   * `broadcast(sessions, bytes, { text: true })`. The buffer is the application's to keep. See `onText` for a
   * returned Promise.
   */
  onTextBytes?(session: WebSocketSession, bytes: Buffer): void | Promise<void>;
  /** A whole binary message; the buffer is the application's to keep. See `onText` for a returned Promise. */
  onBinary?(session: WebSocketSession, data: Buffer): void | Promise<void>;
  /**
   * A ping arrived; the pong has already been sent or, while the peer is not taking our output, is the one
   * waiting pong (RFC 6455 §5.5.2, §5.5.3; see `maxBufferedBytes`). The payload is valid during the call.
   */
  onPing?(session: WebSocketSession, payload: Buffer): void;
  /** A pong arrived (RFC 6455 §5.5.3). The payload is valid during the call. */
  onPong?(session: WebSocketSession, payload: Buffer): void;
  /**
   * The session ended; called exactly once. `code` is the peer's close code when the peer sent a close frame
   * (1005 when it had none), the code we sent when we failed the connection (1002, 1007, 1009, 1011, ...), and
   * 1006 when the connection ended without a close handshake (RFC 6455 §7.1.5, §7.4.1).
   */
  onClose?(session: WebSocketSession, code: number, reason: string): void;
  /**
   * Something went wrong: a protocol error by the peer (`ProtocolError`, with the close code we sent), an
   * application callback that threw (`WebSocketSessionError` 'WS_CALLBACK_FAILED'), a timeout or an I/O error.
   * Informational: the session closes on its own; `onClose` follows.
   */
  onError?(session: WebSocketSession, error: Error): void;
}

/**
 * What happens to a send that would take `bufferedAmount` past `maxBufferedBytes`. Data only: control frames
 * (pongs a peer asks for with its pings) are bounded whatever the policy (see `maxBufferedBytes`).
 */
export type OverflowPolicy =
  /** The send fails with `WebSocketSessionError` 'WS_BUFFER_OVERFLOW'; the session stays open. */
  | 'reject'
  /** The slow consumer is disconnected: close 1008 (policy violation), queued data fails. */
  | 'close';

/** Options of a WebSocket session, given to the `WebSocketUpgradeHandler` (or the client). */
export interface WebSocketSessionOptions {
  /**
   * The idle timeout of the session in ms (0 = never). Unset: the session keeps the timeout its connection had
   * (the HTTP server's `idleTimeoutMs`). On expiry the session closes with 1001 (going away).
   */
  idleTimeoutMs?: number;
  /**
   * Keepalive: when the connection has been silent this long, send a ping; if nothing (no pong, no data) comes
   * back within another interval, close with 1001. Set below the idle timeouts of proxies on the way (often
   * 60 s). Takes over the idle timer: a session that answers pings stays open. Default 0 (off).
   */
  pingIntervalMs?: number;
  /** Largest frame payload accepted (1009 beyond). Default 16 MiB. */
  maxFrameBytes?: number;
  /** Largest message accepted, all fragments together (1009 beyond). Default 64 MiB. */
  maxMessageBytes?: number;
  /** Most frames in one message (1009 beyond): stops floods of tiny fragments. Default 1024. */
  maxFragments?: number;
  /**
   * Bound on `bufferedAmount` (bytes queued for the peer, not yet in the kernel). A send that would pass it is
   * handled by `overflow`. A single message larger than the bound is still accepted when nothing is queued.
   * Default 16 MiB.
   *
   * Control frames never grow the buffer past the endpoint's high watermark (64 KiB) plus one frame: past it, the
   * pong for the peer's latest ping waits (one at most; RFC 6455 §5.5.3) and reads are held until the endpoint
   * drains, so a peer that pings without reading is held back by TCP instead of growing our memory. If such a
   * peer reads nothing for `closeTimeoutMs` while a pong waits, the session fails with 1008 ("slow consumer",
   * `WebSocketSessionError` 'WS_SLOW_CONSUMER', one onError). Our own pings wait the same way (a later one
   * replaces a waiting one), without holding reads.
   */
  maxBufferedBytes?: number;
  /** Policy past `maxBufferedBytes`. Default `'reject'`. */
  overflow?: OverflowPolicy;
  /**
   * How long to wait for the peer's close frame (and for the TCP close) after ours; also how long a peer may read
   * nothing while a pong waits for it (then 1008, see `maxBufferedBytes`). 0 = no such timers: the endpoint's
   * idle timeout (a write stuck that long closes the connection) is then the only bound. Default 5000 ms.
   */
  closeTimeoutMs?: number;
  /**
   * Hold further reads while a Promise returned by `onText`/`onBinary` is pending: messages are processed one at
   * a time, in order, and a slow handler pushes back on the peer through TCP. Default false.
   */
  awaitHandlers?: boolean;
}
