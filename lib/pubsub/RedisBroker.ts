import { Buffer } from 'node:buffer';
import { safeToDrop } from '../io/safeToDrop.js';
import type { Broker, BrokerState, BrokerStats, EnvelopeSink } from './Broker.js';
import { BrokerError } from './errors.js';
import { PendingBytes } from './PendingBytes.js';

/** A listener of a node-redis buffer-mode subscription. */
export type NodeRedisBufferListener = (message: Buffer, channel: Buffer) => unknown;

/**
 * The parts of a node-redis (the `redis` package, 4 and later) client that {@link RedisBroker} uses. quay does not
 * import node-redis: any client of that shape fits.
 */
export interface NodeRedisClient {
  /** The socket is open (or reconnecting). */
  readonly isOpen: boolean;
  /** Connected and ready for commands (false while reconnecting). */
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  publish(channel: string, message: Buffer): Promise<unknown>;
  subscribe(channel: string, listener: NodeRedisBufferListener, bufferMode: true): Promise<unknown>;
  unsubscribe(channel: string, listener: NodeRedisBufferListener, bufferMode: true): Promise<unknown>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'ready', listener: () => void): unknown;
  /** node-redis 5+: closes at once. */
  destroy?(): unknown;
  /** node-redis 4: closes at once. */
  disconnect?(): unknown;
}

/**
 * The parts of an ioredis client that {@link RedisBroker} uses (quay does not import ioredis). The subscriber
 * keeps `autoResubscribe` (the default) so that its subscriptions come back after a reconnect.
 */
export interface IoRedisClient {
  /** 'wait', 'connecting', 'connect', 'ready', 'reconnecting', 'close', 'end'. */
  readonly status: string;
  connect(): Promise<unknown>;
  publish(channel: string, message: Buffer): Promise<unknown>;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'messageBuffer', listener: (channel: Buffer, message: Buffer) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'ready', listener: () => void): unknown;
  off(event: 'messageBuffer', listener: (channel: Buffer, message: Buffer) => void): unknown;
  disconnect(): unknown;
}

/** A node-redis or an ioredis client (told apart by shape: `isReady` or `status`). */
export type RedisClientLike = NodeRedisClient | IoRedisClient;

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions {
  /**
   * The client that publishes: yours, connected by you (the broker does not close it). It may serve your other
   * commands too.
   */
  publisher: RedisClientLike;
  /**
   * A second connection, for the subscriptions (a subscribed Redis connection can do nothing else): e.g.
   * `publisher.duplicate()`. The broker connects it when it is not (node-redis; an ioredis client with
   * `lazyConnect`), and closes it on `close()`.
   */
  subscriber: RedisClientLike;
  /** Prefix of the Redis channel of each topic: topic 'chat' is channel 'quay:chat'. Default 'quay:'. */
  prefix?: string;
  /**
   * Bytes of PUBLISH commands sent and not answered. A publish that would pass it fails with
   * 'BROKER_OVERLOADED' (local delivery done). Default 16 MiB.
   */
  maxPendingBytes?: number;
  /**
   * Told about the clients' `error` events (the broker listens to them, so that a client nobody else listens to
   * does not crash the process while Redis is down); counted in `stats().clientErrors`.
   */
  onError?: (error: Error) => void;
}

/** The counters of a {@link RedisBroker}. */
export interface RedisBrokerStats extends BrokerStats {
  kind: 'node-redis' | 'ioredis';
  /** `error` events of the two clients (refused connections while Redis is down...). */
  clientErrors: number;
  /** Times the subscriber became ready again after having been ready (subscriptions restored). */
  resubscribed: number;
}

/** The default of {@link RedisBrokerOptions.maxPendingBytes}. */
export const DEFAULT_REDIS_MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** The two kinds of client, behind the same few calls. */
interface ClientAdapter {
  readonly kind: 'node-redis' | 'ioredis';
  readonly ready: boolean;
  readonly client: RedisClientLike;
}

function adapt(client: RedisClientLike, role: string): ClientAdapter {
  const c = client as unknown as Record<string, unknown>;
  if (typeof client !== 'object' || client === null || typeof c['publish'] !== 'function' || typeof c['on'] !== 'function') {
    throw new BrokerError('BROKER_MISCONFIGURED', `the ${role} is not a Redis client (node-redis 4+ or ioredis)`);
  }
  if (typeof c['isReady'] === 'boolean') {
    const n = client as NodeRedisClient;
    return {
      kind: 'node-redis',
      client,
      get ready() {
        return n.isReady;
      },
    };
  }
  if (typeof c['status'] === 'string') {
    const io = client as IoRedisClient;
    return {
      kind: 'ioredis',
      client,
      get ready() {
        return io.status === 'ready';
      },
    };
  }
  throw new BrokerError('BROKER_MISCONFIGURED', `the ${role} is neither a node-redis client (isReady) nor an ioredis client (status)`);
}

/** A topic's subscription: confirmed once Redis answered the SUBSCRIBE; `ready` waits for that. */
interface Subscription {
  readonly topic: string;
  readonly channel: string;
  confirmed: boolean;
  inFlight: boolean;
  readonly ready: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * The broker for processes anywhere, over Redis pub/sub, with the clients you pass: node-redis 4+ or ioredis
 * (told apart by shape; quay imports neither and keeps zero runtime dependencies). One Redis channel per topic
 * (`prefix` + name), subscribed while the topic exists in this process.
 *
 * ```ts
 * const publisher = createClient({ url });            // node-redis
 * await publisher.connect();
 * const pubsub = new PubSub({ broker: new RedisBroker({ publisher, subscriber: publisher.duplicate() }) });
 * ```
 *
 * When Redis goes away: local delivery goes on; a publish fails at once with 'BROKER_UNAVAILABLE' (the broker
 * checks that the publisher is ready before sending, so the client's offline queue does not grow with messages
 * that would arrive late, all at once); failures are counted. When it is back, the subscriber's subscriptions are
 * restored (node-redis does it by itself, ioredis with `autoResubscribe`, and the broker re-subscribes whatever
 * was not confirmed) and messages cross again. Messages published elsewhere meanwhile are lost (Redis pub/sub
 * keeps nothing): receivers count the gaps in `stats().lost`. Bytes in flight are capped by `maxPendingBytes`.
 */
export class RedisBroker implements Broker {
  /** The channel prefix. */
  readonly prefix: string;
  private readonly publisher: ClientAdapter;
  private readonly subscriber: ClientAdapter;
  private readonly prefixBytes: Buffer;
  private readonly onError: ((error: Error) => void) | undefined;
  private readonly subscriptions = new Map<string, Subscription>();
  private sink: EnvelopeSink | undefined;
  private closed = false;
  private wasReady = false;
  private subscriberWasReady = false;
  private readonly pending: PendingBytes;
  private readonly counters = { published: 0, publishFailures: 0, received: 0, clientErrors: 0, resubscribed: 0 };

  private readonly onNodeRedisMessage: NodeRedisBufferListener = (message) => {
    this.deliver(message);
  };
  private readonly onIoRedisMessage = (channel: Buffer, message: Buffer): void => {
    // ioredis reports every channel of the connection: ours are the prefixed ones.
    const n = this.prefixBytes.length;
    if (channel.length < n || channel.compare(this.prefixBytes, 0, n, 0, n) !== 0) return;
    this.deliver(message);
  };
  private readonly onClientError = (error: Error): void => {
    this.counters.clientErrors++;
    if (this.onError === undefined) return;
    try {
      this.onError(error);
    } catch {
      // A failing reporter must not turn a client's error event into an exception in the client.
    }
  };
  private readonly onSubscriberReady = (): void => {
    if (this.closed) return;
    if (this.subscriberWasReady) this.counters.resubscribed++;
    this.subscriberWasReady = true;
    for (const subscription of this.subscriptions.values()) {
      if (!subscription.confirmed && !subscription.inFlight) this.sendSubscribe(subscription);
    }
  };

  /** @throws BrokerError 'BROKER_MISCONFIGURED' for clients that are not node-redis nor ioredis, the same client twice, a bad option. */
  constructor(options: RedisBrokerOptions) {
    this.publisher = adapt(options.publisher, 'publisher');
    this.subscriber = adapt(options.subscriber, 'subscriber');
    if (options.publisher === options.subscriber) {
      throw new BrokerError('BROKER_MISCONFIGURED', 'the subscriber must be a connection of its own (e.g. publisher.duplicate()): a subscribed connection cannot publish');
    }
    this.pending = new PendingBytes(options.maxPendingBytes, DEFAULT_REDIS_MAX_PENDING_BYTES, 'of PUBLISH wait for Redis');
    this.prefix = options.prefix ?? 'quay:';
    this.prefixBytes = Buffer.from(this.prefix, 'utf8');
    this.onError = options.onError;
  }

  /**
   * `ready` while both clients are ready; `connecting` until they first were; `unavailable` while either is
   * not (Redis down, reconnecting); `closed` after close().
   */
  get state(): BrokerState {
    if (this.closed) return 'closed';
    if (this.publisher.ready && this.subscriber.ready) {
      this.wasReady = true;
      return 'ready';
    }
    return this.wasReady || this.subscriberWasReady || this.counters.published !== 0 ? 'unavailable' : 'connecting';
  }

  /** @throws BrokerError 'BROKER_MISCONFIGURED' when already given to a PubSub. */
  open(sink: EnvelopeSink): void {
    if (this.closed) throw new BrokerError('BROKER_CLOSED', 'the RedisBroker is closed');
    if (this.sink !== undefined) throw new BrokerError('BROKER_MISCONFIGURED', 'the RedisBroker is already used by a PubSub');
    this.sink = sink;
    const publisher = this.publisher.client;
    const subscriber = this.subscriber.client;
    publisher.on('error', this.onClientError);
    subscriber.on('error', this.onClientError);
    subscriber.on('ready', this.onSubscriberReady);
    if (this.subscriber.kind === 'ioredis') {
      const io = subscriber as IoRedisClient;
      io.on('messageBuffer', this.onIoRedisMessage);
      if (io.status === 'wait') safeToDrop(io.connect());
    } else {
      const n = subscriber as NodeRedisClient;
      if (!n.isOpen) safeToDrop(n.connect());
    }
    if (this.subscriber.ready) this.subscriberWasReady = true;
  }

  /**
   * SUBSCRIBEs the topic's channel (`prefix` + topic) on the subscriber. Resolves when Redis answered (after a
   * reconnect if Redis is down now); rejects with 'BROKER_CLOSED' if the broker or the topic closes first.
   */
  subscribe(topic: string): Promise<void> {
    if (this.closed) return safeToDrop(Promise.reject(new BrokerError('BROKER_CLOSED', 'the RedisBroker is closed')));
    const existing = this.subscriptions.get(topic);
    if (existing !== undefined) return existing.ready;
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const ready = safeToDrop(
      new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      }),
    );
    const subscription: Subscription = { topic, channel: this.prefix + topic, confirmed: false, inFlight: false, ready, resolve, reject };
    this.subscriptions.set(topic, subscription);
    this.sendSubscribe(subscription);
    return ready;
  }

  /** UNSUBSCRIBEs the topic's channel. Never rejects. */
  unsubscribe(topic: string): Promise<void> {
    const subscription = this.subscriptions.get(topic);
    if (subscription === undefined) return Promise.resolve();
    this.subscriptions.delete(topic);
    subscription.reject(new BrokerError('BROKER_CLOSED', `the topic '${topic}' was closed`));
    return this.sendUnsubscribe(subscription.channel);
  }

  /**
   * PUBLISHes the envelope on the topic's channel. Resolves when Redis answered; rejects at once with
   * 'BROKER_UNAVAILABLE' when the publisher is not ready, 'BROKER_OVERLOADED' past maxPendingBytes,
   * 'BROKER_CLOSED'; with 'BROKER_UNAVAILABLE' when the command failed (the connection lost meanwhile).
   */
  publish(topic: string, envelope: Buffer): Promise<void> {
    if (this.closed) return this.fail(new BrokerError('BROKER_CLOSED', 'the RedisBroker is closed'));
    // Fail fast: a client that is not ready would queue the command (its offline queue) and send it whenever
    // Redis is back, late and all at once; the caller is better told now.
    if (!this.publisher.ready) return this.fail(new BrokerError('BROKER_UNAVAILABLE', 'Redis is not available (the publisher is not ready)'));
    const size = envelope.byteLength;
    const overloaded = this.pending.reserve(size);
    if (overloaded !== undefined) return this.fail(overloaded);
    let sent: Promise<unknown>;
    try {
      sent = this.publisher.client.publish(this.prefix + topic, envelope);
    } catch (e) {
      this.pending.release(size);
      return this.fail(unavailable(e));
    }
    return safeToDrop(
      sent.then(
        () => {
          this.pending.release(size);
          this.counters.published++;
        },
        (e: unknown) => {
          this.pending.release(size);
          this.counters.publishFailures++;
          throw unavailable(e);
        },
      ),
    );
  }

  /** The broker's counters; `kind` is the publisher's client ('node-redis' or 'ioredis'). */
  stats(): RedisBrokerStats {
    return {
      kind: this.publisher.kind,
      state: this.state,
      ...this.counters,
      pendingBytes: this.pending.bytes,
      maxPendingBytes: this.pending.max,
      subscriptions: this.subscriptions.size,
    };
  }

  /**
   * Unsubscribes, stops listening to the clients and closes the subscriber (at once: nothing of it is waited
   * for). The publisher stays open (it is yours). Never rejects.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const closedError = new BrokerError('BROKER_CLOSED', 'the RedisBroker is closed');
    for (const subscription of this.subscriptions.values()) subscription.reject(closedError);
    this.subscriptions.clear();
    const subscriber = this.subscriber.client;
    if (this.sink !== undefined) {
      this.publisher.client.off('error', this.onClientError);
      subscriber.off('ready', this.onSubscriberReady);
      if (this.subscriber.kind === 'ioredis') (subscriber as IoRedisClient).off('messageBuffer', this.onIoRedisMessage);
      // The subscriber's error listener stays: a late error of a closing connection must not crash the process.
    }
    try {
      if (this.subscriber.kind === 'ioredis') (subscriber as IoRedisClient).disconnect();
      else {
        const n = subscriber as NodeRedisClient;
        if (n.isOpen) {
          const closing = typeof n.destroy === 'function' ? n.destroy() : n.disconnect?.();
          if (closing instanceof Promise) closing.catch(() => {});
        }
      }
    } catch {
      // Already closed.
    }
    return Promise.resolve();
  }

  private deliver(message: Buffer): void {
    if (this.closed || this.sink === undefined) return;
    this.counters.received++;
    this.sink(message);
  }

  private sendSubscribe(subscription: Subscription): void {
    subscription.inFlight = true;
    let pending: Promise<unknown>;
    try {
      pending =
        this.subscriber.kind === 'ioredis'
          ? (this.subscriber.client as IoRedisClient).subscribe(subscription.channel)
          : (this.subscriber.client as NodeRedisClient).subscribe(subscription.channel, this.onNodeRedisMessage, true);
    } catch (e) {
      pending = Promise.reject(e);
    }
    pending.then(
      () => {
        subscription.inFlight = false;
        if (this.subscriptions.get(subscription.topic) !== subscription) return;
        subscription.confirmed = true;
        this.wasReady = true;
        subscription.resolve();
      },
      () => {
        // Redis went away before answering (or the client does not queue while it is down): the subscriber's
        // next 'ready' sends it again.
        subscription.inFlight = false;
      },
    );
  }

  private sendUnsubscribe(channel: string): Promise<void> {
    let pending: Promise<unknown>;
    try {
      pending =
        this.subscriber.kind === 'ioredis'
          ? (this.subscriber.client as IoRedisClient).unsubscribe(channel)
          : (this.subscriber.client as NodeRedisClient).unsubscribe(channel, this.onNodeRedisMessage, true);
    } catch {
      return Promise.resolve();
    }
    return pending.then(
      () => {},
      () => {},
    );
  }

  private fail(error: BrokerError): Promise<void> {
    this.counters.publishFailures++;
    return safeToDrop(Promise.reject(error));
  }
}

function unavailable(cause: unknown): BrokerError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new BrokerError('BROKER_UNAVAILABLE', `Redis did not take the message: ${message}`, { cause });
}
