import { Buffer, isUtf8 } from 'node:buffer';
import type { Connection } from '../io/Connection.js';
import type { EndPoint } from '../io/EndPoint.js';
import type { TimerHandle } from '../io/Clock.js';
import type { WriteCallback } from '../io/WriteFlusher.js';
import { IdleTimeoutError, PeerClosedError } from '../io/errors.js';
import { channels } from '../io/diagnostics.js';
import { CloseStatus } from './CloseStatus.js';
import { FrameGenerator } from './FrameGenerator.js';
import { DEFAULT_FRAME_PARSER_LIMITS, FrameParser } from './FrameParser.js';
import type { FrameParserListener } from './FrameParser.js';
import { OpCode } from './OpCode.js';
import type { DataOpCode } from './OpCode.js';
import { FrameEncodeError, ProtocolError, WebSocketSessionError } from './errors.js';
import type { OverflowPolicy, WebSocketListener, WebSocketSessionOptions } from './WebSocketListener.js';
import { WebSocketSession } from './WebSocketSession.js';
import { receivedText } from './Utf8Validator.js';
import type { MessageDeflate } from './PerMessageDeflate.js';

/**
 * The close handshake (RFC 6455 §7), one state per step:
 * ```
 *   OPEN --close() / idle / shutdown: our close frame queued------------> CLOSE_SENT
 *   OPEN --the peer's close frame: ours echoed----------------------------> CLOSE_RECEIVED
 *   CLOSE_SENT --the peer's close frame-----------------------------------> COMPLETE (server: TCP closes)
 *   CLOSE_RECEIVED --our echo flushed-------------------------------------> COMPLETE (server: TCP closes)
 *   OPEN / CLOSE_* --protocol error, pong timeout: close frame + TCP close-> FAILED
 *   any --the endpoint closed: onClose called----------------------------> CLOSED
 * ```
 * After our close frame nothing more is sent (§5.5.1); after the peer's, nothing more is read (§1.4).
 */
export type WebSocketConnectionState = 'OPEN' | 'CLOSE_SENT' | 'CLOSE_RECEIVED' | 'COMPLETE' | 'FAILED' | 'CLOSED';

/**
 * Session options with defaults applied and checked: resolved once per handler (or client) and shared by its
 * sessions, so that an idle session does not carry a copy.
 */
export interface WebSocketSettings {
  readonly idleTimeoutMs: number | undefined;
  readonly pingIntervalMs: number;
  readonly maxFrameBytes: number | undefined;
  readonly maxMessageBytes: number | undefined;
  readonly maxFragments: number | undefined;
  readonly maxBufferedBytes: number;
  readonly overflow: OverflowPolicy;
  readonly closeTimeoutMs: number;
  readonly awaitHandlers: boolean;
}

/** Applies the defaults of {@link WebSocketSessionOptions} and checks the values (RangeError, TypeError). */
export function resolveSettings(options: WebSocketSessionOptions = {}): WebSocketSettings {
  // The frame limits are checked by the parser's own rules, now rather than at the first upgrade.
  new FrameParser(NO_FRAMES, { role: 'server', maxFrameBytes: options.maxFrameBytes, maxMessageBytes: options.maxMessageBytes, maxFragments: options.maxFragments });
  const overflow = options.overflow ?? 'reject';
  if (overflow !== 'reject' && overflow !== 'close') {
    throw new TypeError(`overflow must be 'reject' or 'close', not ${String(options.overflow)}`);
  }
  return Object.freeze({
    idleTimeoutMs: options.idleTimeoutMs === undefined ? undefined : nonNegative('idleTimeoutMs', options.idleTimeoutMs),
    pingIntervalMs: nonNegative('pingIntervalMs', options.pingIntervalMs ?? 0),
    maxFrameBytes: options.maxFrameBytes,
    maxMessageBytes: options.maxMessageBytes,
    maxFragments: options.maxFragments,
    maxBufferedBytes: nonNegative('maxBufferedBytes', options.maxBufferedBytes ?? 16 * 1024 * 1024),
    overflow,
    closeTimeoutMs: nonNegative('closeTimeoutMs', options.closeTimeoutMs ?? 5000),
    awaitHandlers: options.awaitHandlers ?? false,
  });
}

/**
 * A data frame waiting for the endpoint to drain below its low watermark, or a message being compressed on zlib's
 * thread pool (`frames` undefined until then): it holds its place, and what was sent after it waits behind it.
 */
interface QueuedFrame {
  frames: Buffer[] | undefined;
  /** The frame's bytes; while compressing, the message's uncompressed size. */
  bytes: number;
  callback: WriteCallback | undefined;
  /** While compressing: the message and its opcode. */
  uncompressed: Buffer | undefined;
  opcode: DataOpCode;
}

/**
 * Control output waiting for the endpoint to become writable (see "Control frames" on WebSocketConnection): one
 * slot per kind, so a session holds at most one pong and one ping however many pings arrive or are asked for.
 * Made on first use and kept: a session that never meets backpressure carries none.
 */
interface ControlBacklog {
  /** The pong for the most recent ping (RFC 6455 §5.5.3), encoded (one buffer of at most 131 bytes). */
  pong: Buffer[] | undefined;
  /** Our most recent ping (keepalive or `session.ping()`), encoded; a later one replaces it. */
  ping: Buffer[] | undefined;
  /** The stall check (every `closeTimeoutMs`) while a pong waits; it stops itself once nothing waits. */
  timer: TimerHandle | undefined;
  /** `endPoint.bytesOut` when the stall check last looked: no change over a whole period is a stall. */
  bytesOut: number;
}

/** What a WebSocketConnection is told at creation (by the upgrade handler or the client). */
export interface WebSocketConnectionOptions {
  /** Which side we are: a server reads masked frames and writes unmasked ones, a client the reverse (§5.1). */
  role: 'server' | 'client';
  /** From {@link resolveSettings}, shared by the sessions of one handler. */
  settings: WebSocketSettings;
  /** The subprotocol agreed in the handshake ('' for none). */
  protocol?: string;
  /** The extensions agreed in the handshake ('' for none). */
  extensions?: string;
  /** The request path of the upgrade (server) or the URL path (client), for dumps and the application. */
  path?: string;
  /** permessage-deflate, when the handshake agreed it (RFC 7692): RSV1 is then allowed on data messages. */
  deflate?: MessageDeflate;
  /** The live sessions of the handler: the session is in it from just before `onOpen` to just before `onClose`. */
  sessions?: Set<WebSocketSession>;
}

/**
 * The parser's listener: a separate object because `Connection.onClose(cause)` and
 * `FrameParserListener.onClose(code, reason)` share a name.
 */
class FrameEvents implements FrameParserListener {
  constructor(private readonly connection: WebSocketConnection) {}
  onMessage(opcode: DataOpCode, data: Buffer, compressed: boolean): boolean {
    return compressed ? this.connection.onCompressedMessage(opcode, data) : this.connection.onMessage(opcode, data);
  }
  onPing(payload: Buffer): boolean {
    return this.connection.onPing(payload);
  }
  onPong(payload: Buffer): boolean {
    return this.connection.onPong(payload);
  }
  onClose(code: number, reason: string): boolean {
    this.connection.onCloseFrame(code, reason);
    return true;
  }
}

/**
 * A WebSocket connection (a lib/io {@link Connection}) after the HTTP upgrade: frames in through a
 * {@link FrameParser}, frames out through a {@link FrameGenerator} and the endpoint's WriteFlusher, the close
 * handshake, keepalive pings, and the data queue that keeps control frames ahead of data. The application sees
 * it through its {@link WebSocketSession}.
 *
 * Sending: a data frame goes straight to the endpoint's flusher while the endpoint is writable (below its high
 * watermark, so at most ~64 KiB are ahead of anything sent later); past it, data frames wait here (bounded by
 * `maxBufferedBytes`), and control frames go ahead of them (Jetty's FrameFlusher does the same).
 *
 * Control frames are bounded too, because a peer can make us produce them without reading anything: every ping
 * it sends asks for a pong (RFC 6455 §5.5.2). A pong goes to the flusher at once while the endpoint is writable;
 * past the high watermark it becomes the one waiting pong, and reads are held (`HOLD_CONTROL`) until
 * `onWritable` sends it (ahead of the queued data) and releases them. The peer's further pings stay in the
 * kernel's socket buffers, so TCP backpressure reaches the peer, and every ping read is answered, in order. (Were
 * a ping read while a pong waits, its pong would replace the waiting one: §5.5.3 allows answering only the most
 * recent ping.) The control output a ping flood can make us hold is thus the high watermark plus one frame in the
 * flusher, and one waiting pong. Our own pings (keepalive, `session.ping()`) take the same path without holding
 * reads: while the endpoint is not writable, a later ping replaces the waiting one. Our close frame is one by
 * construction (the close handshake's states), after the waiting control frames and the queued data.
 *
 * No byte bound beyond that is needed for control frames (data has `maxBufferedBytes`); what is left to bound is
 * time. A peer that does not read at all keeps the endpoint unwritable: while a pong waits, a check every
 * `closeTimeoutMs` fails the session with 1008 ('WS_SLOW_CONSUMER', reason "slow consumer", reported once to
 * onError) when not one write completed during the whole period (so one to two periods after the pong began to
 * wait); the close frame then gets the close timer's `closeTimeoutMs` before TCP is closed. A peer that reads
 * slowly makes progress and is not failed; but one gathered write that takes it longer than `closeTimeoutMs` to
 * accept (a multi-megabyte message to a slow link) counts as no progress. Independently, the endpoint closes a write stuck for its whole
 * idle timeout (`WriteTimeoutError`, reported as 1006): with `pingIntervalMs` the idle timeout is the ping
 * interval, so a ping interval shorter than `closeTimeoutMs` ends such a peer first, that way.
 */
export class WebSocketConnection implements Connection {
  readonly session: WebSocketSession;
  readonly role: 'server' | 'client';
  private readonly parser: FrameParser;
  private readonly generator: FrameGenerator;
  private readonly settings: WebSocketSettings;
  /** permessage-deflate, when agreed. */
  private readonly deflate: MessageDeflate | undefined;
  private _state: WebSocketConnectionState = 'OPEN';
  /** Data frames waiting for the endpoint to become writable. */
  /** The shared empty NO_QUEUE until data must wait: an idle session carries no array of its own. */
  private queue: QueuedFrame[] = NO_QUEUE;
  private queuedBytes = 0;
  /** The queued message being compressed on zlib's thread pool (at most one per session), if any. */
  private compressing: QueuedFrame | undefined;
  /** Our close frame waits behind queued data (a graceful close sends what was queued first). */
  private closeFrameQueued: Buffer[] | undefined;
  /** What onClose will report (see WebSocketListener.onClose). */
  private closeCode: number = CloseStatus.ABNORMAL;
  private closeReason = '';
  private closeTimer: TimerHandle | undefined;
  private awaitingPong = false;
  /** Control frames waiting for the endpoint to be writable; undefined until the first wait. */
  private control: ControlBacklog | undefined;
  /** Input kept while reads are held (see `readHolds`), parsed first when the last hold is released. */
  private heldInput: Buffer | undefined;
  /** Why reads are held, a bitmask of `HOLD_*` (each reason set and released on its own); 0 = reading. */
  private readHolds = 0;
  /** The handler's live sessions (server side), if it tracks them. */
  private readonly sessions: Set<WebSocketSession> | undefined;
  /** The read buffer being parsed, so that a message that is a view of it can be detected (and copied). */
  private readBuffer: Buffer | undefined;
  /** An error already given to onError, so that the endpoint's close cause is not reported twice. */
  private reportedError: Error | undefined;
  /** Made on first use: most sessions never return a Promise from a handler. */
  private onHandlerSettled: (() => void) | undefined;
  private onHandlerRejected: ((error: unknown) => void) | undefined;

  constructor(
    readonly endPoint: EndPoint,
    private readonly listener: WebSocketListener,
    options: WebSocketConnectionOptions,
  ) {
    this.role = options.role;
    const settings = (this.settings = options.settings);
    this.parser = new FrameParser(new FrameEvents(this), {
      role: options.role,
      maxFrameBytes: settings.maxFrameBytes,
      maxMessageBytes: settings.maxMessageBytes,
      maxFragments: settings.maxFragments,
      allowRsv1: options.deflate !== undefined,
    });
    this.deflate = options.deflate;
    this.generator = options.role === 'server' ? SERVER_GENERATOR : CLIENT_GENERATOR;
    // Idle timeout, resolved once: the handler's option, else the connection's current value (inherited from
    // HTTP); the session may change it later. Nothing restores the HTTP value: the endpoint is ours now.
    if (settings.idleTimeoutMs !== undefined) endPoint.idleTimeoutMs = settings.idleTimeoutMs;
    if (settings.pingIntervalMs > 0) endPoint.idleTimeoutMs = settings.pingIntervalMs;
    this.session = new WebSocketSession(this, options.protocol ?? '', options.extensions ?? '', options.path ?? '');
    this.sessions = options.sessions;
  }

  /** The close handshake's state. */
  get state(): WebSocketConnectionState {
    return this._state;
  }

  /**
   * Bytes accepted by sends and not yet handed to the kernel (queued here and in the endpoint's flusher),
   * control frames included.
   */
  get bufferedAmount(): number {
    const control = this.control;
    const waiting = control === undefined ? 0 : controlBytes(control.pong) + controlBytes(control.ping);
    return this.queuedBytes + this.endPoint.pendingBytes + waiting;
  }

  /** @internal Control frames waiting for the endpoint to become writable: at most one pong and one ping. */
  get waitingControlFrames(): number {
    const control = this.control;
    return control === undefined ? 0 : (control.pong === undefined ? 0 : 1) + (control.ping === undefined ? 0 : 1);
  }

  /** The keepalive interval in ms (0 = off). */
  get pingIntervalMs(): number {
    return this.settings.pingIntervalMs;
  }

  // ------------------------------------------------------------------------------------ Connection callbacks

  onOpen(): void {
    this.sessions?.add(this.session);
    if (channels.websocketOpen.hasSubscribers) channels.websocketOpen.publish({ session: this.session });
    const onOpen = this.listener.onOpen;
    if (onOpen === undefined) return;
    try {
      onOpen.call(this.listener, this.session);
    } catch (e) {
      this.failCallback('onOpen', e);
    }
  }

  onFillable(bytes: Buffer): void {
    // Anything from the peer proves it alive, not only a pong (see WebSocketSessionOptions.pingIntervalMs): the
    // next silent interval sends another ping instead of counting as a missed pong.
    this.awaitingPong = false;
    this.parse(bytes, 0);
  }

  onIdleExpired(): boolean {
    if (this._state !== 'OPEN') return true; // idle while closing: give up on the handshake (reported as 1006)
    if (this.settings.pingIntervalMs > 0) {
      if (this.awaitingPong) {
        // While reads are held (an awaited handler, or a pong waiting for a peer that does not read our output),
        // the peer's pong may be waiting unread in the endpoint: its silence proves nothing yet. The check
        // resumes with the reads; a peer that reads nothing is ended by the stall check or the write timeout.
        if (this.readHolds !== 0) return false;
        this.fail(new WebSocketSessionError('WS_PONG_TIMEOUT', `no pong within ${this.settings.pingIntervalMs} ms`, 1001));
        return false;
      }
      this.awaitingPong = true;
      this.sendPing(this.generator.encodePing());
      return false;
    }
    this.close(CloseStatus.GOING_AWAY, 'idle timeout');
    return false;
  }

  onWritable(): void {
    // The waiting pong and ping first (ahead of queued data, as when writable), then the data, then the reads
    // that the waiting pong held: the peer's next pings get their pongs after the data, not before all of it.
    if (this.control !== undefined) this.flushControl();
    this.drainQueue();
    this.releaseReads(HOLD_CONTROL);
  }

  onShutdown(): void {
    // SelectorManager.stop(): a server going away (RFC 6455 §7.4.1, 1001); the handshake then ends the endpoint.
    this.close(CloseStatus.GOING_AWAY, this.role === 'server' ? 'server stopping' : 'client stopping');
  }

  onInputShutdown(): void {
    // The peer's FIN. After a complete handshake this is the expected end; before it, the connection is gone
    // without a close frame (1006). Either way nothing more can be read, and nothing we send would be answered.
    this.endPoint.closeAfterFlush(this._state === 'COMPLETE' ? undefined : new PeerClosedError());
  }

  onClose(cause: Error | undefined): void {
    const wasState = this._state;
    this._state = 'CLOSED';
    this.sessions?.delete(this.session);
    this.closeTimer?.cancel();
    this.closeTimer = undefined;
    this.stopStallCheck();
    // The error is built only when something waits for it: closing 1,000 idle sessions at once must not build
    // 1,000 stack traces that nobody reads (seen with clinic doctor, perf/profile.ts).
    if (this.queue.length !== 0) {
      this.failQueue(new WebSocketSessionError('WS_SESSION_CLOSED', 'the WebSocket session closed before the data was sent', this.closeCode, { cause }));
    }
    if (wasState === 'OPEN' || wasState === 'CLOSE_SENT') {
      // No close frame from the peer: RFC 6455 §7.1.5, "the WebSocket Connection Close Code is considered to be 1006".
      this.closeCode = CloseStatus.ABNORMAL;
      this.closeReason = cause instanceof IdleTimeoutError ? 'idle timeout during close' : '';
    }
    if (cause !== undefined && cause !== this.reportedError && !(cause instanceof PeerClosedError)) {
      this.emitError(cause);
    }
    if (channels.websocketClose.hasSubscribers) {
      channels.websocketClose.publish({ session: this.session, code: this.closeCode, reason: this.closeReason });
    }
    const onClose = this.listener.onClose;
    if (onClose === undefined) return;
    try {
      onClose.call(this.listener, this.session, this.closeCode, this.closeReason);
    } catch (e) {
      this.emitError(new WebSocketSessionError('WS_CALLBACK_FAILED', 'onClose threw', undefined, { cause: e }));
    }
  }

  describe(): string {
    const waiting = this.waitingControlFrames;
    return `WebSocketConnection{${this.role} ${this._state} ${this.session.path} buffered=${this.bufferedAmount}${waiting === 0 ? '' : ` control-waiting=${waiting}`}}`;
  }

  // ------------------------------------------------------------------------------------ frames (via FrameEvents)

  /**
   * @internal A compressed message (RFC 7692 §7.2.2): inflated now when it is small, else on zlib's thread pool
   * while reads are held (HOLD_INFLATE), so that the messages after it wait and keep their order; then delivered
   * like any other. Throws ProtocolError (1007, 1009), which fails the connection like a frame error; the async
   * path fails it the same way.
   */
  onCompressedMessage(opcode: DataOpCode, data: Buffer): boolean {
    const maxBytes = this.settings.maxMessageBytes ?? DEFAULT_FRAME_PARSER_LIMITS.maxMessageBytes;
    const message = this.deflate!.decompressIfSmall(data, maxBytes);
    if (message !== undefined) return this.onMessage(opcode, checkInflated(opcode, message));
    // A large message: two closures per message are nothing next to what inflating it costs.
    this.holdReads(HOLD_INFLATE);
    this.deflate!.decompressLater(
      data,
      maxBytes,
      () => this._state !== 'FAILED' && this._state !== 'CLOSED',
      (error, inflated) => this.onInflated(opcode, error, inflated),
    );
    return true; // stop parsing: the rest of the read waits for this message
  }

  /** The end of an async inflation: the message delivered (or the session failed), then reads released. */
  private onInflated(opcode: DataOpCode, error: ProtocolError | undefined, message: Buffer | undefined): void {
    // A session that failed or closed meanwhile drops the message: nothing more is delivered after onError/onClose.
    if (this._state === 'FAILED' || this._state === 'CLOSED') return;
    try {
      if (error !== undefined) throw error;
      message = checkInflated(opcode, message!);
    } catch (e) {
      this.fail(e as ProtocolError);
      this.releaseReads(HOLD_INFLATE);
      return;
    }
    this.onMessage(opcode, message);
    this.releaseReads(HOLD_INFLATE);
  }

  /**
   * A message payload the application may keep: a view of a read buffer that may be reused is copied (a socket's
   * reads are fresh buffers, so there it is the view itself).
   */
  private owned(data: Buffer): Buffer {
    if (!this.endPoint.freshReadBuffers && this.readBuffer !== undefined && data.buffer === this.readBuffer.buffer) return Buffer.from(data);
    return data;
  }

  /** @internal A whole message; returns true to stop parsing (reads held, or the session is ending). */
  onMessage(opcode: DataOpCode, data: Buffer): boolean {
    const listener = this.listener;
    let result: void | Promise<void>;
    let callback = 'onBinary';
    try {
      if (opcode === OpCode.BINARY) {
        if (listener.onBinary === undefined) return false;
        result = listener.onBinary(this.session, this.owned(data));
      } else if (listener.onTextBytes !== undefined) {
        // The bytes, validated by the parser as they arrived: no string (a relay never pays for the decoding).
        callback = 'onTextBytes';
        const bytes = this.owned(data);
        const outer = receivedText.current; // a listener may feed another connection synchronously
        receivedText.current = bytes;
        try {
          result = listener.onTextBytes(this.session, bytes);
        } finally {
          receivedText.current = outer;
        }
      } else {
        callback = 'onText';
        if (listener.onText === undefined) return false;
        result = listener.onText(this.session, data.toString('utf8'));
      }
    } catch (e) {
      this.failCallback(callback, e);
      return true;
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      if (this.settings.awaitHandlers) {
        this.holdReads(HOLD_HANDLER);
        (result as Promise<void>).then((this.onHandlerSettled ??= () => this.releaseReads(HOLD_HANDLER)), this.rejectionHandler());
        return true; // stop parsing: the rest of the read is held until the handler settles
      }
      (result as Promise<void>).then(undefined, this.rejectionHandler());
    }
    return this._state !== 'OPEN' && this._state !== 'CLOSE_SENT';
  }

  /**
   * @internal RFC 6455 §5.5.2: answer with a pong carrying the same application data (at once, or as the one
   * waiting pong with reads held: see the class comment). Returns true to stop parsing while reads are held.
   */
  onPing(payload: Buffer): boolean {
    if (this._state === 'OPEN') this.answerPing(payload);
    const onPing = this.listener.onPing;
    if (onPing !== undefined) {
      try {
        onPing.call(this.listener, this.session, payload);
      } catch (e) {
        this.failCallback('onPing', e);
        return true;
      }
    }
    return this.readHolds !== 0;
  }

  /** @internal RFC 6455 §5.5.3: a pong may be unsolicited; it only proves that the peer is alive. */
  onPong(payload: Buffer): boolean {
    this.awaitingPong = false;
    const onPong = this.listener.onPong;
    if (onPong !== undefined) {
      try {
        onPong.call(this.listener, this.session, payload);
      } catch (e) {
        this.failCallback('onPong', e);
        return true;
      }
    }
    return false;
  }

  /** @internal The peer's close frame (RFC 6455 §5.5.1, §7.1.3); the parser discards what follows it. */
  onCloseFrame(code: number, reason: string): void {
    this.closeCode = code;
    this.closeReason = reason;
    if (this._state === 'OPEN') {
      // Echo: "the endpoint MUST send a Close frame in response ... typically echoing the status code it
      // received" (§5.5.1). Queued data still goes first; a 1005 (no code) is echoed as an empty close.
      this._state = 'CLOSE_RECEIVED';
      this.queueClose(this.generator.encodeClose(code === CloseStatus.NO_STATUS ? undefined : code));
      // The echo may wait behind data a peer that stopped reading never takes: bound the handshake's end too.
      if (this._state === 'CLOSE_RECEIVED') this.startCloseTimer();
    } else if (this._state === 'CLOSE_SENT') {
      this.complete();
    }
  }

  // ------------------------------------------------------------------------------------ session operations

  /**
   * @internal Queues a data frame (already encoded). Fails the callback (synchronously) when the session is not
   * open or the buffered bound refuses it.
   */
  sendFrames(frames: Buffer[], bytes: number, callback: WriteCallback | undefined): boolean {
    if (!this.admits(bytes, callback)) return false;
    if (this.queue.length === 0 && this.endPoint.isWritable) {
      this.endPoint.write(frames, callback);
    } else {
      if (this.queue === NO_QUEUE) this.queue = [];
      this.queue.push({ frames, bytes, callback, uncompressed: undefined, opcode: OpCode.BINARY });
      this.queuedBytes += bytes;
    }
    return true;
  }

  /**
   * Whether a send of `bytes` may be queued: the session is open and under `maxBufferedBytes` (else the callback
   * fails, synchronously, and the overflow policy applies).
   */
  private admits(bytes: number, callback: WriteCallback | undefined): boolean {
    if (this._state !== 'OPEN') {
      callback?.(new WebSocketSessionError('WS_SESSION_CLOSED', `cannot send: the session is ${this._state}`, this.closeCode));
      return false;
    }
    const buffered = this.queuedBytes + this.endPoint.pendingBytes;
    if (buffered !== 0 && buffered + bytes > this.settings.maxBufferedBytes) {
      const error = new WebSocketSessionError(
        'WS_BUFFER_OVERFLOW',
        `cannot send ${bytes} bytes: ${buffered} are already buffered (maxBufferedBytes ${this.settings.maxBufferedBytes})`,
        this.settings.overflow === 'close' ? CloseStatus.POLICY_VIOLATION : undefined,
      );
      if (this.settings.overflow === 'close') this.fail(error, 'slow consumer');
      callback?.(error);
      return false;
    }
    return true;
  }

  /**
   * A large message to compress on zlib's thread pool (PerMessageDeflate's `asyncThreshold`): it takes its place in
   * the data queue now, counted at its uncompressed size, and is compressed when no other message of this session
   * is (one job per session at a time, in queue order).
   */
  private sendCompressedLater(opcode: DataOpCode, data: Buffer, callback: WriteCallback | undefined): boolean {
    if (!this.admits(data.length, callback)) return false;
    const entry: QueuedFrame = { frames: undefined, bytes: data.length, callback, uncompressed: data, opcode };
    if (this.queue === NO_QUEUE) this.queue = [];
    this.queue.push(entry);
    this.queuedBytes += data.length;
    if (this.compressing === undefined) this.compressLater(entry);
    return true;
  }

  private compressLater(entry: QueuedFrame): void {
    this.compressing = entry;
    this.deflate!.compressLater(
      entry.uncompressed!,
      () => this.compressing === entry,
      (compressed) => this.onCompressed(entry, compressed),
    );
  }

  /** A message compressed on the pool: its frame replaces it in the queue, the next one starts, the queue drains. */
  private onCompressed(entry: QueuedFrame, compressed: Buffer | undefined): void {
    // The queue was failed meanwhile (the session failed or closed): its callback has had the error.
    if (this.compressing !== entry) return;
    this.compressing = undefined;
    const frames = this.encodeData(entry.opcode, entry.uncompressed!, compressed);
    const bytes = frameBytes(frames);
    this.queuedBytes += bytes - entry.bytes;
    entry.bytes = bytes;
    entry.frames = frames;
    entry.uncompressed = undefined;
    for (const next of this.queue) {
      if (next.frames === undefined) {
        this.compressLater(next);
        break;
      }
    }
    this.drainQueue();
  }

  /** @internal Encodes and sends a data message. */
  send(opcode: DataOpCode, data: Buffer | string, callback: WriteCallback | undefined): boolean {
    const deflate = this.deflate;
    if (typeof data === 'string') {
      // n UTF-16 units are at most 3n bytes of UTF-8: below the threshold even then, it goes uncompressed as text.
      if (opcode === OpCode.TEXT && (deflate === undefined || !deflate.wants(data.length * 3))) {
        const frames = this.generator.encodeText(data);
        return this.sendFrames(frames, frames[0]!.length, callback);
      }
      data = Buffer.from(data, 'utf8');
    }
    let compressed: Buffer | undefined;
    if (deflate !== undefined && deflate.wants(data.length)) {
      if (deflate.compressesLater(data.length)) return this.sendCompressedLater(opcode, data, callback);
      compressed = deflate.compress(data);
    }
    const frames = this.encodeData(opcode, data, compressed);
    return this.sendFrames(frames, frameBytes(frames), callback);
  }

  /** The frame of a data message, with its compressed payload when there is one (undefined: did not shrink). */
  private encodeData(opcode: DataOpCode, data: Buffer, compressed: Buffer | undefined): Buffer[] {
    // RFC 7692 §6: RSV1 on the first (here: only) frame marks the message compressed.
    return compressed === undefined ? this.generator.encode(opcode, data) : this.generator.encode(opcode, compressed, true, true);
  }

  /**
   * @internal A ping with up to 125 bytes (§5.5.2); goes ahead of queued data. While the endpoint is not writable
   * it waits, and a later ping replaces it (one ping waits at most).
   */
  ping(payload: Buffer): void {
    if (this._state !== 'OPEN') {
      throw new WebSocketSessionError('WS_SESSION_CLOSED', `cannot ping: the session is ${this._state}`, this.closeCode);
    }
    this.sendPing(this.generator.encodePing(payload));
  }

  /** @internal Starts the close handshake (§7.1.2); a no-op once closing. */
  close(code: number, reason: string): void {
    if (this._state !== 'OPEN') return;
    // 1005 "MUST NOT be set as a status code in a Close control frame" (§7.4.1); the encoder takes it to mean
    // "no code" (an empty close), which an application asking for 1005 did not mean.
    if (code === CloseStatus.NO_STATUS) throw new FrameEncodeError('WS_INVALID_CLOSE_CODE', 'close code 1005 may not be sent (RFC 6455 §7.4.1)');
    const frames = this.generator.encodeClose(code, reason); // throws FrameEncodeError on a bad code or reason
    this._state = 'CLOSE_SENT';
    this.closeCode = code;
    this.closeReason = reason;
    this.queueClose(frames);
    this.startCloseTimer();
    // A pong that waited held reads: the peer's close frame must be read now. Pings read from here on get no
    // pong (nothing follows our close frame, §5.5.1), so reading costs no output.
    this.releaseReads(HOLD_CONTROL);
  }

  /** @internal Closes the connection at once, without a handshake (ws's `terminate()`): reported as 1006. */
  terminate(): void {
    this.endPoint.close();
  }

  /** @internal Encodes a frame for `broadcast` with this connection's generator (a client must mask its own). */
  encodeForBroadcast(opcode: DataOpCode, data: Buffer | string): Buffer[] {
    if (typeof data === 'string' && opcode === OpCode.TEXT) return this.generator.encodeText(data);
    return this.generator.encode(opcode, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  // ------------------------------------------------------------------------------------ internals

  private parse(bytes: Buffer, offset: number): void {
    // A failed session reads nothing more (§7.1.7): its close frame may still be waiting to be flushed, and the
    // application must not get messages after its onError; a closed one has nothing to deliver to.
    if (this._state === 'FAILED' || this._state === 'CLOSED') {
      this.heldInput = undefined;
      return;
    }
    this.readBuffer = bytes;
    let consumed: number;
    try {
      consumed = this.parser.parse(bytes, offset);
    } catch (e) {
      this.readBuffer = undefined;
      if (e instanceof ProtocolError) this.fail(e);
      else this.failCallback('parser callback', e);
      return;
    }
    this.readBuffer = undefined;
    if (this.readHolds !== 0) {
      const rest = offset + consumed < bytes.length ? bytes.subarray(offset + consumed) : undefined;
      // Copy: the read buffer is only ours during this call.
      this.heldInput = rest === undefined ? undefined : Buffer.from(rest);
    }
  }

  /**
   * Holds reads for `reason` (one of `HOLD_*`): the endpoint stops reading now, the parser stops after the frame
   * being delivered (every parser callback returns true while a hold is set), and the rest of the read waits in
   * `heldInput`. Jetty's fill interest withdrawn, with the reasons counted separately.
   */
  private holdReads(reason: number): void {
    this.readHolds |= reason;
    if (this.endPoint.isOpen) this.endPoint.pauseReading();
  }

  /** Releases one hold; when none is left, the held input is parsed and the endpoint reads again. */
  private releaseReads(reason: number): void {
    if ((this.readHolds & reason) === 0) return;
    this.readHolds &= ~reason;
    if (this.readHolds !== 0 || this._state === 'CLOSED') return;
    const held = this.heldInput;
    this.heldInput = undefined;
    if (held !== undefined) this.parse(held, 0);
    if (this.readHolds === 0 && this.endPoint.isOpen) this.endPoint.resumeReading();
  }

  private rejectionHandler(): (error: unknown) => void {
    return (this.onHandlerRejected ??= (error: unknown) => {
      this.failCallback('onText/onBinary', error);
      this.releaseReads(HOLD_HANDLER);
    });
  }

  /**
   * The pong for a ping: to the flusher while the endpoint is writable (control frames skip the data queue);
   * otherwise the one waiting pong (replacing an older one, §5.5.3), reads held until `onWritable` sends it, and
   * the stall check started. See the class comment.
   */
  private answerPing(payload: Buffer): void {
    if (!this.endPoint.isOpen) return;
    const pong = this.generator.encodePong(payload); // one copied buffer: the payload is a view of the read
    const control = this.control;
    if (this.endPoint.isWritable && (control === undefined || control.pong === undefined)) {
      this.endPoint.write(pong);
      return;
    }
    const backlog = (this.control ??= newControlBacklog());
    backlog.pong = pong;
    this.holdReads(HOLD_CONTROL);
    this.startStallCheck(backlog);
  }

  /** Our ping: to the flusher while writable and none waits, else the one waiting ping (the latest). */
  private sendPing(frames: Buffer[]): void {
    if (this._state !== 'OPEN' || !this.endPoint.isOpen) return;
    const control = this.control;
    if (this.endPoint.isWritable && (control === undefined || control.ping === undefined)) {
      this.endPoint.write(frames);
      return;
    }
    (this.control ??= newControlBacklog()).ping = frames;
  }

  /** Writes the waiting pong and ping (at most one of each) to the flusher, whatever its watermark. */
  private flushControl(): void {
    const control = this.control!;
    const pong = control.pong;
    const ping = control.ping;
    control.pong = undefined;
    control.ping = undefined;
    if (!this.endPoint.isOpen) return;
    if (pong !== undefined) this.endPoint.write(pong);
    if (ping !== undefined) this.endPoint.write(ping);
  }

  /**
   * While a pong waits, checks every `closeTimeoutMs` that the endpoint wrote something (see the class comment);
   * `closeTimeoutMs: 0` leaves the bound to the endpoint's write timeout. One timer per stall, not per ping: it
   * runs until a check finds nothing waiting.
   */
  private startStallCheck(control: ControlBacklog): void {
    if (control.timer !== undefined || this.settings.closeTimeoutMs === 0) return;
    control.bytesOut = this.endPoint.bytesOut;
    control.timer = this.endPoint.clock.setInterval(() => this.checkStall(), this.settings.closeTimeoutMs);
  }

  private checkStall(): void {
    const control = this.control!;
    if (this._state !== 'OPEN' || control.pong === undefined) {
      this.stopStallCheck();
      return;
    }
    const bytesOut = this.endPoint.bytesOut;
    if (bytesOut !== control.bytesOut) {
      // A write completed during the period: the peer reads, slowly. Not a stall (yet).
      control.bytesOut = bytesOut;
      return;
    }
    this.stopStallCheck();
    this.fail(
      new WebSocketSessionError(
        'WS_SLOW_CONSUMER',
        `the peer read nothing for ${this.settings.closeTimeoutMs} ms while a pong waited (${this.bufferedAmount} bytes buffered)`,
        CloseStatus.POLICY_VIOLATION,
      ),
      'slow consumer',
    );
  }

  private stopStallCheck(): void {
    const control = this.control;
    if (control?.timer === undefined) return;
    control.timer.cancel();
    control.timer = undefined;
  }

  /** Our close frame: after the waiting control frames and the queued data (a graceful close), then nothing more. */
  private queueClose(frames: Buffer[]): void {
    // Nothing may follow our close frame (§5.5.1): a waiting pong (answering a ping read before) and ping go first.
    if (this.control !== undefined) this.flushControl();
    if (this.queue.length === 0) this.writeClose(frames);
    else this.closeFrameQueued = frames;
  }

  private writeClose(frames: Buffer[]): void {
    if (!this.endPoint.isOpen) return;
    // Echoing the peer's close completes the handshake once it is flushed.
    this.endPoint.write(
      frames,
      this._state === 'CLOSE_RECEIVED'
        ? (error) => {
            if (error === null && this._state === 'CLOSE_RECEIVED') this.complete();
          }
        : undefined,
    );
  }

  /** Both close frames are exchanged: the server closes TCP (§7.1.1); the client half-closes and waits for it. */
  private complete(): void {
    this._state = 'COMPLETE';
    if (this.role === 'server') {
      this.endPoint.closeAfterFlush();
    } else {
      this.endPoint.shutdownOutput();
      this.startCloseTimer();
    }
  }

  /**
   * Fails the WebSocket connection (§7.1.7): our close frame with the error's code, then the TCP close after it
   * is flushed, without waiting for the peer's. Queued data fails.
   */
  private fail(error: ProtocolError | WebSocketSessionError, reason?: string): void {
    if (this._state === 'CLOSED' || this._state === 'FAILED') return;
    if (this._state === 'CLOSE_RECEIVED' || this._state === 'COMPLETE') {
      // The peer's close frame was received: the close code is its code (§7.1.5) and the handshake is ending on
      // its own (the echo is on its way). A late failure (an async handler rejecting) is only reported.
      this.emitError(error);
      return;
    }
    const code = error.closeCode ?? CloseStatus.INTERNAL_ERROR;
    const wasOpen = this._state === 'OPEN';
    this._state = 'FAILED';
    this.closeCode = code;
    this.closeReason = reason ?? truncateReason(error.message);
    if (this.queue.length !== 0) {
      this.failQueue(new WebSocketSessionError('WS_SESSION_CLOSED', `the WebSocket session failed: ${error.message}`, code, { cause: error }));
    }
    // Waiting control frames are dropped: the close frame goes now and nothing follows it (§5.5.1).
    const control = this.control;
    if (control !== undefined) {
      control.pong = undefined;
      control.ping = undefined;
      this.stopStallCheck();
    }
    this.reportedError = error;
    this.emitError(error);
    if (wasOpen && this.endPoint.isOpen) this.endPoint.write(this.generator.encodeClose(code, this.closeReason));
    if (this.endPoint.isOpen) this.endPoint.closeAfterFlush(error);
    // A peer that does not read would hold the flush (and the endpoint) until the idle timeout, forever without
    // one: the close timer bounds it (the timer closes with this error, reported once).
    if (this.endPoint.isOpen) this.startCloseTimer();
  }

  /** An application callback threw or rejected: 1011 (RFC 6455 §7.4.1, "unexpected condition"). */
  private failCallback(where: string, cause: unknown): void {
    this.fail(
      new WebSocketSessionError('WS_CALLBACK_FAILED', `${where} failed: ${cause instanceof Error ? cause.message : String(cause)}`, 1011, { cause }),
      'internal error',
    );
  }

  private emitError(error: Error): void {
    const onError = this.listener.onError;
    if (onError === undefined) return;
    try {
      onError.call(this.listener, this.session, error);
    } catch {
      // An error listener that throws has nowhere left to report to; the session is ending anyway.
    }
  }

  private drainQueue(): void {
    const queue = this.queue;
    let i = 0;
    // A message still being compressed holds back everything after it.
    while (i < queue.length && queue[i]!.frames !== undefined && this.endPoint.isWritable && this.endPoint.isOpen) {
      const item = queue[i++]!;
      this.queuedBytes -= item.bytes;
      this.endPoint.write(item.frames!, item.callback);
    }
    if (i !== 0) {
      if (i === queue.length) this.queue = NO_QUEUE; // drained: the array's memory goes
      else queue.splice(0, i);
    }
    if (this.queue.length === 0 && this.closeFrameQueued !== undefined) {
      const frames = this.closeFrameQueued;
      this.closeFrameQueued = undefined;
      this.writeClose(frames);
    }
  }

  private failQueue(error: Error): void {
    const queue = this.queue;
    if (queue.length === 0) return;
    this.queue = NO_QUEUE;
    this.queuedBytes = 0;
    this.compressing = undefined; // its result is dropped
    for (const item of queue) {
      if (item.callback === undefined) continue;
      try {
        item.callback(error);
      } catch {
        // A send callback must not stop the others from failing.
      }
    }
  }

  private startCloseTimer(): void {
    if (this.closeTimer !== undefined || this.settings.closeTimeoutMs === 0) return;
    this.closeTimer = this.endPoint.clock.setInterval(() => {
      this.closeTimer?.cancel();
      this.closeTimer = undefined;
      if (this._state === 'CLOSED') return;
      if (this._state === 'FAILED') {
        // Already reported by fail(): only the TCP close is late (the peer does not read our close frame).
        this.endPoint.close(this.reportedError);
        return;
      }
      const error = new WebSocketSessionError(
        'WS_CLOSE_TIMEOUT',
        this._state === 'CLOSE_SENT'
          ? `no close from the peer within ${this.settings.closeTimeoutMs} ms`
          : `the close handshake did not finish within ${this.settings.closeTimeoutMs} ms (the peer is not reading)`,
      );
      this.reportedError = error;
      this.emitError(error);
      this.endPoint.close(error);
    }, this.settings.closeTimeoutMs);
  }
}

/**
 * A text message must be valid UTF-8 once inflated (RFC 6455 §8.1; the parser cannot validate compressed bytes).
 * @throws ProtocolError 1007
 */
function checkInflated(opcode: DataOpCode, message: Buffer): Buffer {
  if (opcode === OpCode.TEXT && !isUtf8(message)) {
    throw new ProtocolError(1007, 'WS_INVALID_UTF8', 'text message is not valid UTF-8 after inflating (RFC 6455 §8.1)');
  }
  return message;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}

/** A close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5); an error message may be longer. */
function truncateReason(message: string): string {
  if (Buffer.byteLength(message, 'utf8') <= 123) return message;
  let cut = message.slice(0, 120);
  while (Buffer.byteLength(cut, 'utf8') > 120) cut = cut.slice(0, -1);
  return cut + '...';
}

/** Generators are stateless (client mask keys come from a shared CSPRNG pool): one per role serves every session. */
const SERVER_GENERATOR = new FrameGenerator({ role: 'server' });
const CLIENT_GENERATOR = new FrameGenerator({ role: 'client' });

/** Read holds (`WebSocketConnection.readHolds`): an awaited async onText/onBinary runs (awaitHandlers). */
const HOLD_HANDLER = 1;
/** Read hold: a pong waits for the endpoint to become writable (the peer is not reading our output). */
const HOLD_CONTROL = 2;
function newControlBacklog(): ControlBacklog {
  return { pong: undefined, ping: undefined, timer: undefined, bytesOut: 0 };
}

/** The bytes of an encoded data frame ([frame] or [header, payload]). */
function frameBytes(frames: Buffer[]): number {
  return frames.length === 1 ? frames[0]!.length : frames[0]!.length + frames[1]!.length;
}

/** The size of an encoded control frame (one buffer), 0 for none. */
function controlBytes(frames: Buffer[] | undefined): number {
  return frames === undefined ? 0 : frames[0]!.length;
}

/** Read hold: a compressed message is being inflated on zlib's thread pool (see `onCompressedMessage`). */
const HOLD_INFLATE = 4;

/** The data queue of every session that has nothing waiting (never pushed to: replaced on first use). */
const NO_QUEUE: QueuedFrame[] = [];

/** A listener for the parser that validates limits in resolveSettings (it never parses). */
const NO_FRAMES: FrameParserListener = { onMessage: () => {}, onPing: () => {}, onPong: () => {}, onClose: () => {} };
