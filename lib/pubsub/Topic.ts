import { safeToDrop } from '../io/safeToDrop.js';
import { broadcast } from '../websocket/broadcast.js';
import type { BroadcastResult } from '../websocket/broadcast.js';
import type { SendOptions, WebSocketSession } from '../websocket/WebSocketSession.js';
import { encodeEnvelope } from './Envelope.js';
import type { Envelope } from './Envelope.js';
import { BrokerError } from './errors.js';
import type { PubSub } from './PubSub.js';

/** What {@link Topic.publish} did in this process: the sessions the message was queued for, and those skipped. */
export type PublishResult = BroadcastResult;

/** Origins remembered per topic for the sequence check; past it the oldest is forgotten (origins restart). */
export const MAX_ORIGINS_PER_TOPIC = 1024;

/** `{ text: true }` for received text messages (their bytes go out as a text frame). */
const TEXT: SendOptions = Object.freeze({ text: true });

/**
 * A named group of WebSocket sessions, the same name in every process meaning the same topic (a chat room, a
 * feed). Made by {@link PubSub.topic}. Sessions join and leave; a session that closes is dropped by itself.
 * {@link Topic.publish} reaches the members in this process at once and, through the PubSub's broker, the members
 * of the topic in the other processes.
 */
export class Topic {
  /** The topic's name (1 to 1024 UTF-8 bytes). */
  readonly name: string;
  /**
   * Resolves once the broker receives this topic's messages from the other processes (a Redis SUBSCRIBE
   * answered; at once without a broker or with the cluster's). Messages published elsewhere before that are not
   * seen here. Rejects only with 'BROKER_CLOSED' (closed first); safe to ignore.
   */
  readonly ready: Promise<void>;
  private readonly hub: PubSub;
  private readonly sessions = new Set<WebSocketSession>();
  private readonly nameBytes: Buffer;
  /**
   * This process's next sequence number on the topic (the envelope's per-origin sequence). It starts at the
   * PubSub's count of publishes so far, past the last number of any earlier topic of this name in this process,
   * so that a receiver that kept the topic never takes a topic made again here for old messages (even when the
   * FIRST message is lost).
   */
  private sequence: number;
  /** The next publish is the topic's first (FIRST flag). */
  private first = true;
  /** Per origin, the last sequence number delivered: for duplicates and gaps (see deliverRemote). */
  private readonly lastSequence = new Map<number, number>();
  private closed = false;

  /** @internal Made by PubSub.topic(). */
  constructor(hub: PubSub, name: string, nameBytes: Buffer, ready: Promise<void>, firstSequence: number) {
    this.hub = hub;
    this.sequence = firstSequence >>> 0;
    this.name = name;
    this.nameBytes = nameBytes;
    this.ready = ready;
  }

  /** The sessions of this process in the topic (a live view: do not modify it while iterating it elsewhere). */
  get members(): ReadonlySet<WebSocketSession> {
    return this.sessions;
  }

  /** How many sessions of this process are in the topic. */
  get size(): number {
    return this.sessions.size;
  }

  /** True after {@link Topic.close} (or the PubSub's close). */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Adds a session. Returns false when it was already a member or has already closed (it would never be
   * dropped). The session leaves by itself when it closes.
   * @throws BrokerError 'BROKER_CLOSED' on a closed topic.
   */
  join(session: WebSocketSession): boolean {
    if (this.closed) throw new BrokerError('BROKER_CLOSED', `the topic '${this.name}' is closed`);
    if (this.sessions.has(session) || session.webSocketConnection.state === 'CLOSED') return false;
    this.sessions.add(session);
    this.hub.addMembership(session, this);
    return true;
  }

  /** Removes a session; false when it was not a member. */
  leave(session: WebSocketSession): boolean {
    if (!this.sessions.delete(session)) return false;
    this.hub.removeMembership(session, this);
    return true;
  }

  /** True when the session is a member. */
  has(session: WebSocketSession): boolean {
    return this.sessions.has(session);
  }

  /**
   * Publishes a message to every member of the topic, in every process. A string is a text message, a Buffer a
   * binary one, or a text one with `{ text: true }` (its UTF-8 checked once). The members in this process get it
   * now, with one frame encoding for all (`broadcast`: a slow member is handled by its own overflow policy); then
   * the message goes to the broker as one envelope, and each other process delivers it to its members the same
   * way. Messages of one publisher arrive everywhere in the order published.
   *
   * Resolves with what happened here ({@link PublishResult}) once the broker took the message (at once without
   * one). Rejects with a `BrokerError` when the remote part failed ('BROKER_UNAVAILABLE', 'BROKER_OVERLOADED',
   * 'BROKER_CLOSED'; counted in `stats().remoteFailures`): local delivery was done all the same. Rejects with a
   * `FrameEncodeError` 'WS_INVALID_UTF8' for `{ text: true }` bytes that are not UTF-8 (nothing sent anywhere).
   * Safe to ignore. The bytes are not copied for local delivery: do not modify them afterwards.
   */
  publish(data: string | Buffer, options?: SendOptions): Promise<PublishResult> {
    if (this.closed) return safeToDrop(Promise.reject(new BrokerError('BROKER_CLOSED', `the topic '${this.name}' is closed`)));
    let result: PublishResult;
    try {
      result = broadcast(this.sessions, data, options); // throws FrameEncodeError before sending anything
    } catch (e) {
      return safeToDrop(Promise.reject(e));
    }
    const hub = this.hub;
    hub.countPublished(result);
    const broker = hub.broker;
    if (broker === undefined) return Promise.resolve(result);
    const opcode = typeof data === 'string' || options?.text === true ? 1 : 2;
    const envelope = encodeEnvelope(opcode, hub.origin, this.sequence, this.nameBytes, data, this.first);
    this.sequence = (this.sequence + 1) >>> 0;
    this.first = false;
    return safeToDrop(broker.publish(this.name, envelope).then(() => result, hub.remoteFailed));
  }

  /**
   * Removes the topic from its PubSub: every member leaves, the broker stops receiving it, and publish rejects
   * with 'BROKER_CLOSED'. `pubsub.topic(name)` makes a new one. For rooms that come and go (the topic otherwise
   * stays, with its broker subscription, however empty).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const session of this.sessions) this.hub.removeMembership(session, this);
    this.sessions.clear();
    this.lastSequence.clear();
    this.hub.topicClosed(this);
  }

  /** @internal A member closed (PubSub saw it on the `quay:websocket.close` channel). */
  dropClosed(session: WebSocketSession): void {
    this.sessions.delete(session);
  }

  /**
   * @internal An envelope from another process for this topic: checked against the origin's last sequence (a
   * duplicate or an older one is dropped, a gap counted as lost; a FIRST one starts the count again), then
   * broadcast to the members.
   */
  deliverRemote(envelope: Envelope): void {
    const hub = this.hub;
    const last = this.lastSequence.get(envelope.origin);
    if (last === undefined) {
      if (this.lastSequence.size >= MAX_ORIGINS_PER_TOPIC) {
        const oldest = this.lastSequence.keys().next();
        if (oldest.done !== true) this.lastSequence.delete(oldest.value);
      }
    } else {
      // Serial number arithmetic (RFC 1982) over 32 bits: 0 is the same message, 2^31 and up an older one. A FIRST
      // message starts the count again (the publisher made the topic again), unless it is the same message.
      const ahead = (envelope.sequence - last) >>> 0;
      if (ahead === 0 || (ahead >= 0x80000000 && !envelope.first)) {
        hub.countDuplicate();
        return;
      }
      if (ahead > 1 && !envelope.first) hub.countLost(ahead - 1);
    }
    this.lastSequence.set(envelope.origin, envelope.sequence);
    hub.countReceived(broadcast(this.sessions, envelope.payload, envelope.opcode === 1 ? TEXT : undefined));
  }
}
