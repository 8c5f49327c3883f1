import { messageOpCode } from './WebSocketSession.js';
import type { SendOptions, WebSocketSession } from './WebSocketSession.js';

/** What {@link broadcast} did. */
export interface BroadcastResult {
  /** Sessions the message was queued for. */
  sent: number;
  /** Sessions skipped: not open, or refused by their buffered bound (then handled by their overflow policy). */
  skipped: number;
}

/**
 * Sends one message to many sessions, encoding the frame once: every open server session gets the same bytes
 * (server frames are not masked, RFC 6455 §5.1, so one encoding fits all). A session over its `maxBufferedBytes`
 * is handled by its own policy (skipped, or closed with 1008) and does not hold up the others; nothing waits for
 * a slow consumer. Client sessions, which must mask each frame with their own key (§5.3), are encoded one by one.
 *
 * Fire and forget: there is no per-session Promise (use `session.sendText` for that).
 */
export function broadcast(sessions: Iterable<WebSocketSession>, data: string | Buffer, options?: SendOptions): BroadcastResult {
  const opcode = messageOpCode(data, options); // the UTF-8 check of { text: true } bytes: once, for every recipient
  let frames: Buffer[] | undefined;
  let bytes = 0;
  let sent = 0;
  let skipped = 0;
  for (const session of sessions) {
    const connection = session.webSocketConnection;
    if (connection.state !== 'OPEN') {
      skipped++;
      continue;
    }
    let ok: boolean;
    if (connection.role === 'server') {
      if (frames === undefined) {
        frames = connection.encodeForBroadcast(opcode, data);
        for (const f of frames) bytes += f.length;
      }
      ok = connection.sendFrames(frames, bytes, undefined);
    } else {
      ok = connection.send(opcode, data, undefined);
    }
    if (ok) sent++;
    else skipped++;
  }
  return { sent, skipped };
}
