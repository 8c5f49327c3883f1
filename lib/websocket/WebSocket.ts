import { Buffer, Blob } from 'node:buffer';
import { WebSocketClient } from './WebSocketClient.js';
import type { WebSocketConnectOptions } from './WebSocketClient.js';
import type { WebSocketListener } from './WebSocketListener.js';
import type { WebSocketSession } from './WebSocketSession.js';
import { ReadyState } from './WebSocketSession.js';
import { safeToDrop } from '../io/safeToDrop.js';

/** What `binaryType` may be: the WHATWG values, and `'nodebuffer'` (a Buffer, as in `ws`). */
export type BinaryType = 'blob' | 'arraybuffer' | 'nodebuffer';

/** The `message` event: `data` is a string for text, and for binary what `binaryType` says. */
export interface WebSocketMessageEvent extends Event {
  readonly data: string | Blob | ArrayBuffer | Buffer;
  readonly origin: string;
}

/** The `close` event (WHATWG `CloseEvent`; Node 20 has no global one). */
export class CloseEvent extends Event {
  /** The close code: the peer's, 1005 when its close frame had none, 1006 when there was no close handshake. */
  readonly code: number;
  readonly reason: string;
  /** True when the close handshake completed. */
  readonly wasClean: boolean;
  constructor(type: string, init: { code?: number; reason?: string; wasClean?: boolean } = {}) {
    super(type);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? '';
    this.wasClean = init.wasClean ?? false;
  }
}

/**
 * The second argument of `new WebSocket(url, ...)`: subprotocols as the WHATWG constructor takes them, or an
 * object with `protocols` and any option of `WebSocketClient.connect` (headers, `ca` for wss, deflate...), as
 * Node's undici WebSocket takes `{ protocols, headers }`.
 */
export type WebSocketInit = string | readonly string[] | (Omit<WebSocketConnectOptions, 'listener'> & { client?: WebSocketClient });

type Handler<E extends Event> = ((event: E) => void) | null;

const MessageEventClass = (globalThis as unknown as { MessageEvent: new (type: string, init: { data: unknown; origin: string }) => WebSocketMessageEvent }).MessageEvent;

/** RFC 6455 §7.4.2 / WHATWG: the codes an application may give `close()`. */
function isApplicationCode(code: number): boolean {
  return code === 1000 || (code >= 3000 && code <= 4999);
}

/**
 * The WHATWG `WebSocket` (as in browsers and Node 22's global) over quay's {@link WebSocketClient}, so that code
 * written for those runs unchanged: `readyState`, `binaryType`, `bufferedAmount`, `protocol`, `extensions`,
 * `url`, the `open` / `message` / `error` / `close` events (`onopen`... and `addEventListener`), `send`, `close`.
 *
 * ```ts
 * const socket = new WebSocket('ws://127.0.0.1:8080/chat', 'chat');
 * socket.binaryType = 'arraybuffer';
 * socket.onopen = () => socket.send('hello');
 * socket.onmessage = (event) => console.log(event.data);
 * socket.onclose = (event) => console.log('closed', event.code, event.wasClean);
 * ```
 *
 * Errors follow the standard: `send()` while connecting throws an `InvalidStateError` DOMException, `close()` with
 * a code other than 1000 or 3000-4999 an `InvalidAccessError`, a reason over 123 bytes or a bad URL a
 * `SyntaxError`. A failed connection fires `error` then `close` (1006, not clean). For quay's own API (Promises,
 * backpressure, typed errors) use `WebSocketClient.connect`.
 */
export class WebSocket extends EventTarget {
  static readonly CONNECTING = ReadyState.CONNECTING;
  static readonly OPEN = ReadyState.OPEN;
  static readonly CLOSING = ReadyState.CLOSING;
  static readonly CLOSED = ReadyState.CLOSED;
  readonly CONNECTING = ReadyState.CONNECTING;
  readonly OPEN = ReadyState.OPEN;
  readonly CLOSING = ReadyState.CLOSING;
  readonly CLOSED = ReadyState.CLOSED;

  /** The URL, serialized (`http:` and `https:` given become `ws:` and `wss:`). */
  readonly url: string;
  /** The `origin` of message events. */
  private readonly origin: string;
  private _binaryType: BinaryType = 'blob';
  private _readyState: ReadyState = ReadyState.CONNECTING;
  private session: WebSocketSession | undefined;
  /** Bytes of sends made after closing (the standard counts them, then discards them). */
  private discardedBytes = 0;
  /** Blobs being read before they are sent, in order; later sends wait behind them. */
  private pendingBlobs: Promise<void> | undefined;
  private pendingBlobBytes = 0;
  private failedHandshake = false;
  private readonly handlers: { [type: string]: ((event: Event) => void) | undefined } = {};

  constructor(url: string | URL, init: WebSocketInit = []) {
    super();
    let parsed: URL;
    try {
      parsed = new URL(String(url));
    } catch {
      throw new DOMException(`invalid URL: ${String(url)}`, 'SyntaxError');
    }
    if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
    else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new DOMException(`the URL's scheme must be ws: or wss:, got ${parsed.protocol}`, 'SyntaxError');
    if (parsed.hash !== '') throw new DOMException('a WebSocket URL has no fragment', 'SyntaxError');
    this.url = parsed.href;
    this.origin = parsed.origin;
    const options: WebSocketConnectOptions & { client?: WebSocketClient } =
      typeof init === 'string' ? { protocols: [init] } : isList(init) ? { protocols: [...init] } : { ...init };
    const protocols = options.protocols === undefined ? [] : typeof options.protocols === 'string' ? [options.protocols] : [...options.protocols];
    if (new Set(protocols).size !== protocols.length) throw new DOMException('the subprotocols must be unique', 'SyntaxError');
    const client = options.client ?? WebSocketClient.default;
    delete options.client;
    options.listener = this.listener();
    // Invalid options (a subprotocol that is not a token...) reject at once: as a SyntaxError, as the standard does.
    const connecting = client.connect(parsed, options);
    safeToDrop(connecting.then(undefined, (error: unknown) => this.onConnectFailed(error)));
  }

  /** CONNECTING (0), OPEN (1), CLOSING (2), CLOSED (3). */
  get readyState(): ReadyState {
    if (this._readyState === ReadyState.OPEN && this.session !== undefined && this.session.readyState === ReadyState.CLOSING) return ReadyState.CLOSING;
    return this._readyState;
  }

  /** How binary messages are given to `message` listeners. Default `'blob'`, as the standard says. */
  get binaryType(): BinaryType {
    return this._binaryType;
  }

  set binaryType(type: BinaryType) {
    // The standard ignores other values (a setter of an enumerated attribute).
    if (type === 'blob' || type === 'arraybuffer' || type === 'nodebuffer') this._binaryType = type;
  }

  /** Bytes given to `send()` and not yet handed to the network (and, once closing, those discarded). */
  get bufferedAmount(): number {
    return (this.session?.bufferedAmount ?? 0) + this.pendingBlobBytes + this.discardedBytes;
  }

  /** The subprotocol the server chose ('' before the open, or for none). */
  get protocol(): string {
    return this.session?.protocol ?? '';
  }

  /** The extensions agreed (`permessage-deflate...`), '' before the open or for none. */
  get extensions(): string {
    return this.session?.extensions ?? '';
  }

  get onopen(): Handler<Event> {
    return this.handler('open');
  }
  set onopen(fn: Handler<Event>) {
    this.setHandler('open', fn);
  }
  get onmessage(): Handler<WebSocketMessageEvent> {
    return this.handler('message');
  }
  set onmessage(fn: Handler<WebSocketMessageEvent>) {
    this.setHandler('message', fn as Handler<Event>);
  }
  get onerror(): Handler<Event> {
    return this.handler('error');
  }
  set onerror(fn: Handler<Event>) {
    this.setHandler('error', fn);
  }
  get onclose(): Handler<CloseEvent> {
    return this.handler('close');
  }
  set onclose(fn: Handler<CloseEvent>) {
    this.setHandler('close', fn as Handler<Event>);
  }

  /**
   * Sends a text (string) or binary (ArrayBuffer, a typed array or DataView, Blob) message; the bytes are copied
   * now. After `close()` the data is counted in `bufferedAmount` and discarded, as the standard says.
   * @throws DOMException `InvalidStateError` while connecting.
   */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob): void {
    if (this._readyState === ReadyState.CONNECTING) throw new DOMException('the WebSocket is still connecting', 'InvalidStateError');
    const session = this.session;
    if (this.readyState !== ReadyState.OPEN || session === undefined) {
      this.discardedBytes += byteLength(data);
      return;
    }
    if (data instanceof Blob) {
      // A Blob's bytes are read asynchronously: it and every later send wait for it, in order.
      const size = data.size;
      this.pendingBlobBytes += size;
      const read = safeToDrop(data.arrayBuffer());
      this.enqueue(() =>
        read
          .then((bytes) => {
            if (session.isOpen) session.send(Buffer.from(bytes));
          })
          .finally(() => void (this.pendingBlobBytes -= size)),
      );
      return;
    }
    const message = typeof data === 'string' ? data : copyOf(data);
    if (this.pendingBlobs !== undefined) {
      this.enqueue(() => {
        if (session.isOpen) session.send(message);
      });
      return;
    }
    session.send(message);
  }

  /**
   * Starts the close handshake (or gives up the connection while connecting: `error` then `close` 1006).
   * @throws DOMException `InvalidAccessError` for a code other than 1000 or 3000-4999, `SyntaxError` for a reason
   *   over 123 bytes of UTF-8.
   */
  close(code?: number, reason?: string): void {
    if (code !== undefined && !isApplicationCode(code)) throw new DOMException(`close code ${code} may not be sent (1000 or 3000-4999)`, 'InvalidAccessError');
    const text = reason ?? '';
    if (Buffer.byteLength(text, 'utf8') > 123) throw new DOMException('the close reason is longer than 123 bytes', 'SyntaxError');
    if (this._readyState === ReadyState.CLOSING || this._readyState === ReadyState.CLOSED) return;
    if (this._readyState === ReadyState.CONNECTING) {
      // "Fail the WebSocket connection": the open, if it still comes, is answered with a close (onOpen below).
      this._readyState = ReadyState.CLOSING;
      return;
    }
    this._readyState = ReadyState.CLOSING;
    this.session?.close(code ?? 1000, text);
  }

  /** Runs `task` after the sends already waiting behind a Blob. */
  private enqueue(task: () => void | Promise<void>): void {
    const next = (this.pendingBlobs ?? Promise.resolve()).then(task);
    this.pendingBlobs = next;
    safeToDrop(
      next.finally(() => {
        if (this.pendingBlobs === next) this.pendingBlobs = undefined;
      }),
    );
  }

  // ------------------------------------------------------------------------------------ the session's events

  private listener(): WebSocketListener {
    return {
      onOpen: (session) => {
        this.session = session;
        if (this._readyState === ReadyState.CLOSING) {
          // close() was called while connecting: fail the connection (no open event).
          this.failedHandshake = true;
          session.terminate();
          return;
        }
        this._readyState = ReadyState.OPEN;
        this.dispatchEvent(new Event('open'));
      },
      onText: (_session, text) => {
        this.dispatchEvent(new MessageEventClass('message', { data: text, origin: this.origin }));
      },
      onBinary: (_session, data) => {
        this.dispatchEvent(new MessageEventClass('message', { data: this.binary(data), origin: this.origin }));
      },
      onError: () => {
        this.dispatchEvent(new Event('error'));
      },
      onClose: (_session, code, reason) => {
        this._readyState = ReadyState.CLOSED;
        if (this.failedHandshake) {
          this.dispatchEvent(new Event('error'));
          this.dispatchEvent(new CloseEvent('close', { code: 1006, reason: '', wasClean: false }));
          return;
        }
        this.dispatchEvent(new CloseEvent('close', { code, reason, wasClean: code !== 1006 }));
      },
    };
  }

  private onConnectFailed(error: unknown): void {
    if (this._readyState === ReadyState.CLOSED) return;
    // The reason (a HandshakeError: refused, TLS, timeout...; or an invalid option) is on the event's `error`, for
    // who looks: the standard's error event carries nothing.
    this._readyState = ReadyState.CLOSED;
    const event = new Event('error');
    Object.defineProperty(event, 'error', { value: error, enumerable: true });
    this.dispatchEvent(event);
    this.dispatchEvent(new CloseEvent('close', { code: 1006, reason: '', wasClean: false }));
  }

  private binary(data: Buffer): Blob | ArrayBuffer | Buffer {
    switch (this._binaryType) {
      case 'nodebuffer':
        return data;
      case 'arraybuffer':
        return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength
          ? (data.buffer as ArrayBuffer)
          : (data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer);
      default:
        return new Blob([data]);
    }
  }

  private handler<E extends Event>(type: string): Handler<E> {
    return (this.handlers[type] as Handler<E> | undefined) ?? null;
  }

  private setHandler(type: string, fn: Handler<Event>): void {
    const previous = this.handlers[type];
    if (previous !== undefined) this.removeEventListener(type, previous);
    if (typeof fn === 'function') {
      this.handlers[type] = fn;
      this.addEventListener(type, fn);
    } else {
      this.handlers[type] = undefined;
    }
  }
}

function isList(init: WebSocketInit): init is readonly string[] {
  return Array.isArray(init);
}

function byteLength(data: string | ArrayBuffer | ArrayBufferView | Blob): number {
  if (typeof data === 'string') return Buffer.byteLength(data, 'utf8');
  if (data instanceof Blob) return data.size;
  return data.byteLength;
}

/** The bytes of an ArrayBuffer or a view, copied (the caller may change them once send() returned). */
function copyOf(data: ArrayBuffer | ArrayBufferView): Buffer {
  if (data instanceof ArrayBuffer) return Buffer.from(new Uint8Array(data));
  return Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}
