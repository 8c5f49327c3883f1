/**
 * What a {@link PubSub} needs from the thing that carries its messages to the other processes: a cluster's IPC
 * channel ({@link ClusterBroker}), Redis pub/sub ({@link RedisBroker}), or your own (NATS, a message bus...).
 * A broker moves opaque envelopes (see Envelope.ts); it knows topics only to subscribe to them.
 */

/**
 * Where a broker stands:
 * - `connecting`: not ready yet (a Redis client still connecting);
 * - `ready`: publishes are sent;
 * - `unavailable`: it was ready and is not now (Redis down, the IPC channel closed): publishes fail fast with
 *   `BrokerError` 'BROKER_UNAVAILABLE', and it comes back to `ready` by itself when the connection does;
 * - `closed`: `close()` was called; everything fails with 'BROKER_CLOSED'.
 */
export type BrokerState = 'connecting' | 'ready' | 'unavailable' | 'closed';

/** Counters every broker keeps (brokers add their own). */
export interface BrokerStats {
  /** The broker's kind: 'cluster', 'node-redis', 'ioredis', or a custom broker's name. */
  kind: string;
  state: BrokerState;
  /** Envelopes handed over and acknowledged (written to the IPC channel, answered by Redis). */
  published: number;
  /** Publishes that failed (unavailable, overloaded, lost in flight, closed). */
  publishFailures: number;
  /** Envelopes received from the other processes (before the PubSub looks at them). */
  received: number;
  /** Bytes of envelopes handed over and not acknowledged yet. */
  pendingBytes: number;
  /** The bound on {@link BrokerStats.pendingBytes}. */
  maxPendingBytes: number;
  /** Topics subscribed. */
  subscriptions: number;
}

/** A broker's one consumer: the PubSub it was given to. */
export type EnvelopeSink = (envelope: Buffer) => void;

/**
 * A broker. A PubSub calls {@link Broker.open} once, then subscribes each topic it makes and publishes each
 * message as an envelope. Every Promise a broker returns must be safe to ignore (its rejection marked handled)
 * and must settle (bounded: fail fast rather than queue without end).
 */
export interface Broker {
  readonly state: BrokerState;
  /** Starts delivering received envelopes to `sink`. Called once, by the PubSub the broker is given to. */
  open(sink: EnvelopeSink): void;
  /**
   * Receive the topic's envelopes from now on. Resolves once the subscription is in place (a Redis SUBSCRIBE
   * answered; at once for the cluster, whose relay sends everything to everyone); while the broker is
   * unavailable it waits for it to come back. Rejects only with 'BROKER_CLOSED'.
   */
  subscribe(topic: string): Promise<void>;
  /** Stop receiving the topic's envelopes. Never rejects. */
  unsubscribe(topic: string): Promise<void>;
  /**
   * Hands one envelope to the other processes. Resolves when the transport took it (IPC written, Redis answered);
   * rejects with a `BrokerError` ('BROKER_UNAVAILABLE', 'BROKER_OVERLOADED', 'BROKER_CLOSED') without queueing
   * when it cannot. The envelope's bytes are not modified afterwards.
   */
  publish(topic: string, envelope: Buffer): Promise<void>;
  stats(): BrokerStats;
  /** Stops receiving and releases what the broker owns. Never rejects. */
  close(): Promise<void>;
}
