import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { QUAY_CHANNELS } from '../io/diagnostics.js';
import { safeToDrop } from '../io/safeToDrop.js';
import type { WebSocketSession } from '../websocket/WebSocketSession.js';
import type { Broker, BrokerStats } from './Broker.js';
import { MAX_TOPIC_BYTES, decodeEnvelope } from './Envelope.js';
import { BrokerError } from './errors.js';
import { Topic } from './Topic.js';
import type { PublishResult } from './Topic.js';

/** Options of {@link PubSub}. */
export interface PubSubOptions {
  /**
   * What carries messages to the other processes: a {@link ClusterBroker} (the workers of one machine), a
   * {@link RedisBroker} (processes anywhere), your own {@link Broker}. None: this process only.
   */
  broker?: Broker;
  /**
   * Told about envelopes from other processes that were dropped as invalid (`BrokerError` 'ENVELOPE_INVALID'),
   * at most once a second (they are all counted in `stats().invalid`).
   */
  onError?: (error: Error) => void;
}

/** What a {@link PubSub} did since it was made. */
export interface PubSubStats {
  /** This process's origin id (in every envelope it sends). */
  origin: number;
  /** Topics open. */
  topics: number;
  /** Memberships: the sizes of the topics, summed. */
  members: number;
  /** `publish()` calls delivered locally (and handed to the broker, if any). */
  published: number;
  /** Sessions a message was queued for, local and remote messages together. */
  delivered: number;
  /** Sessions skipped: not open, or over their buffered bound (handled by their overflow policy). */
  skipped: number;
  /** Messages from other processes delivered to a topic here. */
  received: number;
  /** Our own messages that came back (Redis echoes a publisher's messages to its own subscription): ignored. */
  ownEchoes: number;
  /** Messages from other processes already seen or older than one seen (per origin and topic): dropped. */
  duplicates: number;
  /** Messages of other processes missed, going by their sequence numbers (lost while a broker was down). */
  lost: number;
  /** Envelopes that were not valid ('ENVELOPE_INVALID'): dropped. */
  invalid: number;
  /** Messages for a topic that does not exist here: dropped. */
  unrouted: number;
  /** Publishes whose remote part failed (the Promise rejected with a `BrokerError`). */
  remoteFailures: number;
  /** Calls of a topic's `onRemote` listener that threw (reported to `onError`; the members got the message). */
  listenerErrors: number;
  /** The broker's own counters; undefined without a broker. */
  broker: BrokerStats | undefined;
}

/** The counters kept as they happen (the rest of {@link PubSubStats} is computed). */
type Counters = { -readonly [K in Exclude<keyof PubSubStats, 'origin' | 'topics' | 'members' | 'broker'>]: number };

/**
 * The publish/subscribe hub of one process: topics by name, the broker that links this process to the others,
 * and a random origin id that marks the messages this process sends (so that it can ignore them when they come
 * back). Make one per process and share it.
 *
 * ```ts
 * const pubsub = new PubSub({ broker: new ClusterBroker() }); // or RedisBroker, or none
 * const room = pubsub.topic('chat');
 * room.join(session);
 * room.publish('hello');
 * ```
 */
export class PubSub {
  /** The origin id of this process's messages (48 bits, random). */
  readonly origin: number;
  /** The broker given in the options, if any (the topics publish through it). */
  readonly broker: Broker | undefined;
  private readonly onError: ((error: Error) => void) | undefined;
  private readonly topics = new Map<string, Topic>();
  /** Each member's topic, or topics when it is in several: what to leave when it closes. */
  private readonly memberships = new Map<WebSocketSession, Topic | Topic[]>();
  private readonly counters: Counters = {
    published: 0,
    delivered: 0,
    skipped: 0,
    received: 0,
    ownEchoes: 0,
    duplicates: 0,
    lost: 0,
    invalid: 0,
    unrouted: 0,
    remoteFailures: 0,
    listenerErrors: 0,
  };
  private lastErrorReport = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly onSessionClose = (message: unknown): void => {
    const session = (message as { session?: WebSocketSession }).session;
    if (session === undefined) return;
    const entry = this.memberships.get(session);
    if (entry === undefined) return;
    this.memberships.delete(session);
    if (Array.isArray(entry)) for (const topic of entry) topic.dropClosed(session);
    else entry.dropClosed(session);
  };
  /** @internal Counts a publish whose remote part failed, and passes the error on. */
  readonly remoteFailed = (error: unknown): never => {
    this.counters.remoteFailures++;
    throw error;
  };
  private readonly receive = (envelope: Buffer): void => {
    if (this.closed) return;
    let decoded;
    try {
      decoded = decodeEnvelope(envelope);
    } catch (e) {
      this.counters.invalid++;
      this.report(e as Error);
      return;
    }
    if (decoded.origin === this.origin) {
      this.counters.ownEchoes++;
      return;
    }
    const topic = this.topics.get(decoded.topic);
    if (topic === undefined) {
      this.counters.unrouted++;
      return;
    }
    try {
      topic.deliverRemote(decoded);
    } catch (e) {
      // Never into the broker's event handler (a Redis client's parser, process.on('message')).
      this.counters.invalid++;
      this.report(e as Error);
    }
  };

  /**
   * @throws BrokerError 'BROKER_MISCONFIGURED' when the broker is already used by another PubSub.
   */
  constructor(options: PubSubOptions = {}) {
    this.origin = randomBytes(6).readUIntBE(0, 6);
    this.broker = options.broker;
    this.onError = options.onError;
    // A member that closes leaves its topics: the session publishes its close on this channel (lib/io/diagnostics).
    subscribe(QUAY_CHANNELS.websocketClose, this.onSessionClose);
    if (this.broker !== undefined) {
      try {
        this.broker.open(this.receive);
      } catch (e) {
        unsubscribe(QUAY_CHANNELS.websocketClose, this.onSessionClose);
        throw e;
      }
    }
  }

  /**
   * The topic of that name, made on first use (and then subscribed at the broker: see {@link Topic.ready}).
   * @throws RangeError for a name that is empty, over 1024 UTF-8 bytes or not well-formed Unicode;
   *   BrokerError 'BROKER_CLOSED' after {@link PubSub.close}.
   */
  topic(name: string): Topic {
    const existing = this.topics.get(name);
    if (existing !== undefined) return existing;
    if (this.closed) throw new BrokerError('BROKER_CLOSED', 'the PubSub is closed');
    if (typeof name !== 'string') throw new TypeError('a topic name is a string');
    const bytes = Buffer.from(name, 'utf8');
    if (bytes.length === 0 || bytes.length > MAX_TOPIC_BYTES) throw new RangeError(`a topic name has 1 to ${MAX_TOPIC_BYTES} UTF-8 bytes (got ${bytes.length})`);
    // A lone surrogate becomes U+FFFD in UTF-8: two names would meet as one on the other side.
    if (bytes.toString('utf8') !== name) throw new RangeError('a topic name must be well-formed Unicode (no lone surrogates)');
    const ready = this.broker === undefined ? Promise.resolve() : safeToDrop(this.broker.subscribe(name));
    const topic = new Topic(this, name, bytes, ready, this.counters.published);
    this.topics.set(name, topic);
    return topic;
  }

  /** The topic of that name if it exists (without making it). */
  get(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  /** True after {@link PubSub.close}. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The counters of this process's topics and, under `broker`, of its broker (see {@link PubSubStats}). */
  stats(): PubSubStats {
    let members = 0;
    for (const topic of this.topics.values()) members += topic.size;
    return { origin: this.origin, topics: this.topics.size, members, ...this.counters, broker: this.broker?.stats() };
  }

  /**
   * Closes every topic (members leave; the sessions stay open) and the broker. Resolves when the broker is
   * closed; never rejects.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    for (const topic of [...this.topics.values()]) topic.close();
    this.memberships.clear();
    unsubscribe(QUAY_CHANNELS.websocketClose, this.onSessionClose);
    this.closing = this.broker === undefined ? Promise.resolve() : this.broker.close().catch(() => {});
    return this.closing;
  }

  // ------------------------------------------------------------------------------------ for Topic

  /** @internal */
  addMembership(session: WebSocketSession, topic: Topic): void {
    const entry = this.memberships.get(session);
    if (entry === undefined) this.memberships.set(session, topic);
    else if (Array.isArray(entry)) entry.push(topic);
    else this.memberships.set(session, [entry, topic]);
  }

  /** @internal */
  removeMembership(session: WebSocketSession, topic: Topic): void {
    const entry = this.memberships.get(session);
    if (entry === undefined) return;
    if (entry === topic) {
      this.memberships.delete(session);
    } else if (Array.isArray(entry)) {
      const i = entry.indexOf(topic);
      if (i >= 0) entry.splice(i, 1);
      if (entry.length === 1) this.memberships.set(session, entry[0]!);
      else if (entry.length === 0) this.memberships.delete(session);
    }
  }

  /** @internal */
  topicClosed(topic: Topic): void {
    if (this.topics.get(topic.name) !== topic) return;
    this.topics.delete(topic.name);
    if (this.broker !== undefined && !this.closed) void this.broker.unsubscribe(topic.name).catch(() => {});
  }

  /** @internal */
  countPublished(result: PublishResult): void {
    this.counters.published++;
    this.counters.delivered += result.sent;
    this.counters.skipped += result.skipped;
  }

  /** @internal */
  countReceived(result: PublishResult): void {
    this.counters.received++;
    this.counters.delivered += result.sent;
    this.counters.skipped += result.skipped;
  }

  /** @internal */
  countDuplicate(): void {
    this.counters.duplicates++;
  }

  /** @internal A topic's `onRemote` listener threw: counted, reported (rate-limited), never into the broker. */
  listenerFailed(error: unknown): void {
    this.counters.listenerErrors++;
    this.report(error instanceof Error ? error : new Error(String(error)));
  }

  /** @internal */
  countLost(count: number): void {
    this.counters.lost += count;
  }

  private report(error: Error): void {
    if (this.onError === undefined) return;
    const now = Date.now();
    if (now - this.lastErrorReport < 1000) return;
    this.lastErrorReport = now;
    try {
      this.onError(error);
    } catch {
      // The application's reporter failing must not stop the delivery of the next message.
    }
  }
}
