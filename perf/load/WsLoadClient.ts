/**
 * A lean WebSocket client connection for load generation, on node:net directly: the opening handshake by hand
 * (RFC 6455 §4.1), frames with quay's FrameParser/FrameGenerator. It is lean where it matters for a load
 * generator: the workload writes pre-encoded frames (the same Buffer again and again), reads go into one buffer
 * shared by every connection of the process (Node's `onread`), frames are parsed in place, and events go to a
 * handler object shared by all connections (no closure per message).
 */
import { randomFillSync } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameGenerator, FrameParser, ProtocolError, acceptKey } from '../../lib/index.js';
import type { DataOpCode, FrameParserListener } from '../../lib/index.js';
import type { ErrorKind } from './Measurement.js';
import type { Target } from './target.js';

/**
 * CONNECTING (TCP) -> HANDSHAKE (request sent, reading the 101) -> OPEN -> CLOSING (a close frame sent or
 * received, or the socket being destroyed) -> CLOSED (the socket closed; the handler's onEnd was called).
 */
export type WsLoadClientState = 'CONNECTING' | 'HANDSHAKE' | 'OPEN' | 'CLOSING' | 'CLOSED';

/** What a workload implements; one object serves all its connections (they carry an `index`). */
export interface WsLoadHandler {
  onOpen(client: WsLoadClient): void;
  /** A message; `data` is valid only during the call (a view of the shared read buffer). */
  onMessage(client: WsLoadClient, opcode: DataOpCode, data: Buffer): void;
  /** Every frame of one read was parsed: the moment to send what the read's messages call for, in one write. */
  onReadComplete(client: WsLoadClient): void;
  /**
   * The connection is closed. `kind` says why when it was not our own doing (`close()` or `destroy()`): refused,
   * handshake, closed (by the peer), protocol, timeout; `message` details it.
   */
  onEnd(client: WsLoadClient, kind: ErrorKind | undefined, message: string): void;
}

export interface WsLoadClientOptions {
  /** Local address to connect from. */
  localAddress?: string | undefined;
  /** Connect + handshake timeout. */
  timeoutMs: number;
}

/** Client frames are masked (RFC 6455 §5.3); the generator's mask keys come from a shared CSPRNG pool. */
export const CLIENT_FRAMES = new FrameGenerator({ role: 'client' });

/** Our close frame (1000, §7.4.1), encoded once for every connection. */
const CLOSE_FRAME = CLIENT_FRAMES.encodeClose(1000)[0]!;

/** A server that sends an endless head is not a WebSocket server. */
const MAX_HEAD_BYTES = 16 * 1024;

/**
 * Reads of every connection land here (Node's `onread`): no Buffer per read. Safe to share because the bytes
 * are consumed synchronously in the read callback: the FrameParser copies what must outlive it (a split frame,
 * the fragments of a message), and handlers get views valid during the call only.
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/** Random bytes for 1024 handshake keys per CSPRNG call (a call per connection was 6% of opening 10,000). */
const KEY_POOL = Buffer.allocUnsafe(16 * 1024);
let keyPoolAt = KEY_POOL.length;

/** RFC 6455 §4.1: the key is "a nonce consisting of a randomly selected 16-byte value", base64-encoded. */
function nextKey(): string {
  if (keyPoolAt === KEY_POOL.length) {
    randomFillSync(KEY_POOL);
    keyPoolAt = 0;
  }
  keyPoolAt += 16;
  return KEY_POOL.toString('base64', keyPoolAt - 16, keyPoolAt);
}

export class WsLoadClient implements FrameParserListener {
  /** The workload's index of this connection (into its per-connection arrays). */
  readonly index: number;
  private _state: WsLoadClientState = 'CONNECTING';
  /** performance.now() at the start of the current read: the receive time of its messages. */
  readAt = 0;
  /** performance.now() when connect() was called and when the handshake completed. */
  connectAt = 0;
  openedAt = 0;
  private socket: Socket | undefined;
  private readonly parser: FrameParser;
  private key = '';
  private head: Buffer | undefined;
  private endKind: ErrorKind | undefined;
  private endMessage = '';
  /** close()/destroy() were called: what follows is not an error. */
  private closingByUs = false;

  constructor(
    index: number,
    private readonly target: Target,
    private readonly handler: WsLoadHandler,
    private readonly options: WsLoadClientOptions,
  ) {
    this.index = index;
    this.parser = new FrameParser(this, { role: 'client' });
  }

  get state(): WsLoadClientState {
    return this._state;
  }

  /** Opens the TCP connection and sends the opening handshake (RFC 6455 §4.1). Call once. */
  connect(): void {
    if (this.socket !== undefined) throw new Error('connect() called twice');
    this.connectAt = performance.now();
    this.key = nextKey();
    const socket = connect({
      host: this.target.host,
      port: this.target.port,
      localAddress: this.options.localAddress,
      noDelay: true,
      onread: { buffer: SHARED_READ_BUFFER, callback: (n: number) => this.onRead(n) },
    });
    this.socket = socket;
    socket.setTimeout(this.options.timeoutMs);
    socket.on('connect', () => this.onConnect());
    socket.on('timeout', () =>
      this.fail('timeout', `no ${this._state === 'CONNECTING' ? 'connection' : 'handshake'} within ${this.options.timeoutMs} ms`),
    );
    socket.on('error', (error: NodeJS.ErrnoException) => this.onSocketError(error));
    socket.on('close', () => this.onSocketClose());
  }

  /** Writes pre-encoded frame bytes (ignored unless OPEN: nothing may follow our close frame, §5.5.1). */
  write(bytes: Buffer): void {
    if (this._state === 'OPEN') this.socket!.write(bytes);
  }

  cork(): void {
    this.socket?.cork();
  }

  uncork(): void {
    this.socket?.uncork();
  }

  /**
   * The closing handshake (§7.1.2): sends a close frame (1000); the socket ends when the server's close frame
   * arrives (the server closes TCP first, §7.1.1). Not yet open: the connection is just dropped.
   */
  close(): void {
    this.closingByUs = true;
    if (this._state === 'OPEN') {
      this._state = 'CLOSING';
      this.socket!.write(CLOSE_FRAME);
    } else if (this._state === 'CONNECTING' || this._state === 'HANDSHAKE') {
      this.destroy();
    }
  }

  /** Drops the connection at once, without an error. */
  destroy(): void {
    this.closingByUs = true;
    if (this._state !== 'CLOSED') this._state = 'CLOSING';
    this.socket?.destroy();
  }

  /** Ends the connection with an error of `kind` (the first cause is the one reported). */
  fail(kind: ErrorKind, message: string): void {
    if (this.endKind === undefined && !this.closingByUs) {
      this.endKind = kind;
      this.endMessage = message;
    }
    if (this._state !== 'CLOSED') this._state = 'CLOSING';
    this.socket?.destroy();
  }

  // ------------------------------------------------------------------------------------------------ socket

  private onConnect(): void {
    if (this._state !== 'CONNECTING') return;
    this._state = 'HANDSHAKE';
    const t = this.target;
    // §4.1: GET, HTTP/1.1, Host, Upgrade: websocket, Connection: Upgrade, the key, version 13.
    this.socket!.write(
      `GET ${t.path} HTTP/1.1\r\nHost: ${t.hostHeader}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: quay-load\r\n\r\n`,
      'latin1',
    );
  }

  /** Returns true: keep reading (false would pause the socket). */
  private onRead(n: number): boolean {
    this.readAt = performance.now();
    const bytes = SHARED_READ_BUFFER.subarray(0, n);
    if (this._state === 'HANDSHAKE') {
      this.onHandshakeBytes(bytes);
    } else if (this._state === 'OPEN' || this._state === 'CLOSING') {
      this.parseFrames(bytes);
    }
    return true;
  }

  private parseFrames(bytes: Buffer): void {
    try {
      this.parser.parse(bytes);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.fail('protocol', error.message);
      return;
    }
    if (this._state === 'OPEN') this.handler.onReadComplete(this);
  }

  private onSocketError(error: NodeJS.ErrnoException): void {
    const code = error.code ?? error.message;
    switch (this._state) {
      case 'CONNECTING':
        this.fail('refused', `connect to ${this.target.host}:${this.target.port}: ${code}`);
        break;
      case 'HANDSHAKE':
        this.fail('handshake', `during the handshake: ${code}`);
        break;
      default:
        this.fail('closed', `connection error: ${code}`);
    }
  }

  private onSocketClose(): void {
    if (this._state === 'CLOSED') return;
    const was = this._state;
    this._state = 'CLOSED';
    if (this.endKind === undefined && !this.closingByUs) {
      this.endKind = was === 'CONNECTING' ? 'refused' : was === 'HANDSHAKE' ? 'handshake' : 'closed';
      this.endMessage =
        was === 'HANDSHAKE' ? 'the server closed the connection during the handshake' : 'the server closed the connection without a close frame';
    }
    this.head = undefined;
    this.handler.onEnd(this, this.endKind, this.endMessage);
  }

  // ------------------------------------------------------------------------------------------------ handshake

  /** Collects the response head (it may arrive in pieces), then checks it (§4.1) and hands over the rest. */
  private onHandshakeBytes(bytes: Buffer): void {
    const head = this.head === undefined ? Buffer.from(bytes) : Buffer.concat([this.head, bytes]);
    const end = head.indexOf(CRLFCRLF);
    if (end < 0) {
      if (head.length > MAX_HEAD_BYTES) this.fail('handshake', `no end of the response head in ${head.length} bytes`);
      else this.head = head;
      return;
    }
    this.head = undefined;
    const problem = this.checkResponse(head.toString('latin1', 0, end));
    if (problem !== undefined) {
      this.fail('handshake', problem);
      return;
    }
    this._state = 'OPEN';
    this.socket!.setTimeout(0);
    this.openedAt = this.readAt;
    this.handler.onOpen(this);
    // Frames sent right after the 101 came with it.
    if (end + 4 < head.length && (this._state === 'OPEN' || this._state === 'CLOSING')) this.parseFrames(head.subarray(end + 4));
  }

  /** RFC 6455 §4.1's checks of the server's response; returns what is wrong, or undefined. */
  private checkResponse(head: string): string | undefined {
    const lines = head.split('\r\n');
    const status = /^HTTP\/1\.\d (\d{3})/.exec(lines[0]!);
    if (status === null) return `not an HTTP response: ${JSON.stringify(lines[0]!.slice(0, 80))}`;
    // Rule 1: anything but 101 is handled "per HTTP procedures": for us, a failed handshake.
    if (status[1] !== '101') return `the server answered ${lines[0]!.slice(9, 80)}, not 101`;
    let upgrade = '';
    let connection = '';
    let accept = '';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'upgrade') upgrade += `,${value.toLowerCase()}`;
      else if (name === 'connection') connection += `,${value.toLowerCase()}`;
      else if (name === 'sec-websocket-accept') accept = value;
    }
    // Rules 2-4: Upgrade: websocket, Connection: upgrade, and the accept key derived from ours.
    if (!/(^|,)\s*websocket\s*(,|$)/.test(upgrade)) return 'the 101 lacks Upgrade: websocket';
    if (!/(^|,)\s*upgrade\s*(,|$)/.test(connection)) return 'the 101 lacks Connection: Upgrade';
    if (accept !== acceptKey(this.key)) return `Sec-WebSocket-Accept ${JSON.stringify(accept)} does not match the key`;
    return undefined;
  }

  // ------------------------------------------------------------------------------------------------ frames

  /** @internal FrameParserListener */
  onMessage(opcode: DataOpCode, data: Buffer): void {
    if (this._state === 'OPEN') this.handler.onMessage(this, opcode, data);
  }

  /** @internal §5.5.2: a ping is answered with a pong carrying its payload (rare: allocates). */
  onPing(payload: Buffer): void {
    if (this._state === 'OPEN') this.socket!.write(CLIENT_FRAMES.encodePong(payload)[0]!);
  }

  /** @internal */
  onPong(): void {}

  /** @internal §5.5.1: the server's close frame, an answer to ours or its own initiative (then we echo one). */
  onClose(code: number, reason: string): void {
    if (this._state === 'OPEN') {
      if (!this.closingByUs && this.endKind === undefined) {
        this.endKind = 'closed';
        this.endMessage = `the server closed the connection: ${code}${reason === '' ? '' : ` ${reason}`}`;
      }
      this._state = 'CLOSING';
      this.socket!.write(CLOSE_FRAME);
    }
    // §7.1.1: the server closes TCP first; ending our side lets it.
    this.socket!.end();
  }
}
