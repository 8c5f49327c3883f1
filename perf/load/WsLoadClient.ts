/**
 * A lean WebSocket client connection for load generation, on node:net directly (node:tls for wss://): the opening
 * handshake by hand (RFC 6455 §4.1), frames with quay's FrameParser/FrameGenerator. It is lean where it matters
 * for a load generator: the workload writes pre-encoded frames (the same Buffer again and again), reads go into
 * one buffer shared by every connection of the process (Node's `onread`), frames are parsed in place, and events
 * go to a handler object shared by all connections (no closure per message).
 */
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { FrameGenerator, FrameParser, ProtocolError, acceptKey } from '../../lib/index.js';
import type { DataOpCode, FrameParserListener } from '../../lib/index.js';
import { MessageDeflate, acceptDeflateResponse, resolveDeflateSettings } from '../../lib/websocket/PerMessageDeflate.js';
import { LoadClient, SHARED_READ_BUFFER } from './LoadClient.js';
import type { LoadClientOptions, LoadClientState } from './LoadClient.js';
import type { ErrorKind } from './Measurement.js';
import type { Target } from './target.js';

/**
 * CONNECTING (TCP) -> [TLS (wss://)] -> HANDSHAKE (request sent, reading the 101) -> OPEN -> CLOSING (a close
 * frame sent or received, or the socket being destroyed) -> CLOSED (the socket closed; the handler's onEnd was
 * called).
 */
export type WsLoadClientState = LoadClientState;

/** What a workload implements; one object serves all its connections (they carry an `index`). */
export interface WsLoadHandler {
  onOpen(client: WsLoadClient): void;
  /** A message; `data` is valid only during the call (a view of the shared read buffer). */
  onMessage(client: WsLoadClient, opcode: DataOpCode, data: Buffer): void;
  /** Every frame of one read was parsed: the moment to send what the read's messages call for, in one write. */
  onReadComplete(client: WsLoadClient): void;
  /**
   * The connection is closed. `kind` says why when it was not our own doing (`close()` or `destroy()`): refused,
   * tls, handshake, closed (by the peer), protocol, timeout; `message` details it.
   */
  onEnd(client: WsLoadClient, kind: ErrorKind | undefined, message: string): void;
}

export type WsLoadClientOptions = LoadClientOptions;

/** Client frames are masked (RFC 6455 §5.3); the generator's mask keys come from a shared CSPRNG pool. */
export const CLIENT_FRAMES = new FrameGenerator({ role: 'client' });

/** Our close frame (1000, §7.4.1), encoded once for every connection. */
const CLOSE_FRAME = CLIENT_FRAMES.encodeClose(1000)[0]!;

/**
 * permessage-deflate for `--deflate` (RFC 7692): no context takeover either way, so one stateless codec serves
 * every connection (a message compresses to the same bytes every time, and each echo inflates on its own).
 */
export const LOAD_DEFLATE = new MessageDeflate(resolveDeflateSettings({ threshold: 0 })!, { response: '', inflateWindow: false, deflateWindowBits: 15 });
const DEFLATE_OFFER = 'permessage-deflate; client_no_context_takeover; server_no_context_takeover';
/** Echoes are inflated up to this size (the largest --size). */
const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

/** A server that sends an endless head is not a WebSocket server. */
const MAX_HEAD_BYTES = 16 * 1024;

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

export class WsLoadClient extends LoadClient implements FrameParserListener {
  // The FrameParser copies what must outlive a read of the shared buffer (a split frame, a message's fragments).
  private readonly parser: FrameParser;
  private key = '';
  private head: Buffer | undefined;
  /** permessage-deflate offered (and, once open, agreed). */
  private readonly deflate: boolean;

  constructor(
    index: number,
    target: Target,
    private readonly handler: WsLoadHandler,
    options: WsLoadClientOptions,
  ) {
    super(index, target, options);
    this.deflate = options.deflate === true;
    this.parser = new FrameParser(this, { role: 'client', allowRsv1: this.deflate });
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
    } else if (this._state === 'CONNECTING' || this._state === 'TLS' || this._state === 'HANDSHAKE') {
      this.destroy();
    }
  }

  // ------------------------------------------------------------------------------------------------ socket

  /** TCP (and TLS) is up: sends the opening handshake (RFC 6455 §4.1). */
  protected onConnect(): void {
    this._state = 'HANDSHAKE';
    this.key = nextKey();
    const t = this.target;
    // §4.1: GET, HTTP/1.1, Host, Upgrade: websocket, Connection: Upgrade, the key, version 13.
    this.socket!.write(
      `GET ${t.path} HTTP/1.1\r\nHost: ${t.hostHeader}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: quay-load\r\n` +
        (this.deflate ? `Sec-WebSocket-Extensions: ${DEFLATE_OFFER}\r\n\r\n` : '\r\n'),
      'latin1',
    );
  }

  protected onRead(n: number): boolean {
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

  protected onUnexpectedClose(was: LoadClientState): void {
    this.endKind = was === 'CONNECTING' ? 'refused' : was === 'HANDSHAKE' ? 'handshake' : 'closed';
    this.endMessage =
      was === 'HANDSHAKE' ? 'the server closed the connection during the handshake' : 'the server closed the connection without a close frame';
  }

  protected notifyOpen(): void {
    this.handler.onOpen(this);
  }

  protected notifyEnd(kind: ErrorKind | undefined, message: string): void {
    this.head = undefined;
    this.handler.onEnd(this, kind, message);
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
    this.open(this.readAt);
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
    let extensions = '';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'upgrade') upgrade += `,${value.toLowerCase()}`;
      else if (name === 'connection') connection += `,${value.toLowerCase()}`;
      else if (name === 'sec-websocket-accept') accept = value;
      else if (name === 'sec-websocket-extensions') extensions += extensions === '' ? value : `, ${value}`;
    }
    // Rules 2-4: Upgrade: websocket, Connection: upgrade, and the accept key derived from ours.
    if (!/(^|,)\s*websocket\s*(,|$)/.test(upgrade)) return 'the 101 lacks Upgrade: websocket';
    if (!/(^|,)\s*upgrade\s*(,|$)/.test(connection)) return 'the 101 lacks Connection: Upgrade';
    if (accept !== acceptKey(this.key)) return `Sec-WebSocket-Accept ${JSON.stringify(accept)} does not match the key`;
    // Rule 5 and RFC 7692 §7: compression asked for must be agreed, without server context takeover.
    if (this.deflate) {
      if (extensions === '') return 'the server did not agree to permessage-deflate (--deflate)';
      try {
        if (acceptDeflateResponse(extensions, LOAD_DEFLATE.settings).inflateWindow) return 'the server did not accept server_no_context_takeover';
      } catch (e) {
        return (e as Error).message;
      }
    } else if (extensions !== '') {
      return `the server selected extensions that were not offered: ${JSON.stringify(extensions.slice(0, 80))}`;
    }
    return undefined;
  }

  // ------------------------------------------------------------------------------------------------ frames

  /** @internal FrameParserListener */
  onMessage(opcode: DataOpCode, data: Buffer, compressed: boolean): boolean {
    if (this._state !== 'OPEN') return false;
    if (compressed) {
      try {
        data = LOAD_DEFLATE.decompress(data, MAX_INFLATED_BYTES);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.fail('protocol', error.message);
        return true;
      }
    }
    this.handler.onMessage(this, opcode, data);
    return false;
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
