/**
 * WebSocket server sessions on MemoryEndPoints for the pubsub tests and their cluster program: each records the
 * Buffer objects handed to its transport (to see one encoding shared by all) and decodes what it was sent, as a
 * client would.
 */
import { MemoryEndPoint } from '../../lib/io/MemoryEndPoint.js';
import { IdleTimeoutScheduler } from '../../lib/io/IdleTimeoutScheduler.js';
import { ManualClock } from '../../lib/io/Clock.js';
import { FrameParser } from '../../lib/websocket/FrameParser.js';
import { WebSocketConnection, resolveSettings } from '../../lib/websocket/WebSocketConnection.js';
import type { WebSocketSession } from '../../lib/websocket/WebSocketSession.js';

/** Records the Buffer objects handed to the transport. */
class SpyEndPoint extends MemoryEndPoint {
  readonly transmitted: Buffer[] = [];
  override transmit(buffers: Buffer[], byteCount: number): void {
    this.transmitted.push(...buffers);
    super.transmit(buffers, byteCount);
  }
}

/** A received message: 'text' with its string, or 'binary' with its bytes. */
export interface Received {
  kind: 'text' | 'binary';
  data: Buffer;
}

export interface Member {
  session: WebSocketSession;
  endPoint: MemoryEndPoint;
  /** The Buffer objects written so far. */
  transmitted: Buffer[];
  /** The messages written since the last call, decoded. */
  read(): Received[];
}

const scheduler = new IdleTimeoutScheduler({ clock: new ManualClock(), tickMs: 100 });
const settings = resolveSettings();

/** A server session whose peer reads everything. */
export function member(): Member {
  const endPoint = new SpyEndPoint({ scheduler });
  const connection = new WebSocketConnection(endPoint, {}, { role: 'server', settings, path: '/t' });
  endPoint.open(connection);
  const messages: Received[] = [];
  const parser = new FrameParser(
    {
      onMessage: (op, data) => void messages.push({ kind: op === 1 ? 'text' : 'binary', data: Buffer.from(data) }),
      onPing: () => {},
      onPong: () => {},
      onClose: () => {},
    },
    { role: 'client', maxFrameBytes: Infinity, maxMessageBytes: Infinity },
  );
  return {
    session: connection.session,
    endPoint,
    transmitted: endPoint.transmitted,
    read(): Received[] {
      const out = endPoint.takeOutput();
      if (out.length !== 0) parser.parse(out);
      return messages.splice(0);
    },
  };
}

/** The texts of received messages (binary ones as `binary:<hex>`). */
export function texts(received: Received[]): string[] {
  return received.map((m) => (m.kind === 'text' ? m.data.toString('utf8') : `binary:${m.data.toString('hex')}`));
}

