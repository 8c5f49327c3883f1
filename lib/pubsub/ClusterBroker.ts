import { Buffer } from 'node:buffer';
import process from 'node:process';
import cluster from 'node:cluster';
import { safeToDrop } from '../io/safeToDrop.js';
import { RELAY_MESSAGE_TYPE, isRelayMessage } from '../cluster/relay.js';
import type { RelayMessage } from '../cluster/relay.js';
import type { Broker, BrokerState, BrokerStats, EnvelopeSink } from './Broker.js';
import { BrokerError } from './errors.js';
import { PendingBytes } from './PendingBytes.js';

/** Options of {@link ClusterBroker}. */
export interface ClusterBrokerOptions {
  /**
   * The relay channel (RelayMessage.channel) this broker uses; brokers of different channels do not see each
   * other's messages. Default 'quay:pubsub'.
   */
  channel?: string;
  /**
   * Bytes handed to the IPC channel and not yet written (a primary that does not read, a burst). A publish that
   * would pass it fails with 'BROKER_OVERLOADED' (local delivery done). Default 16 MiB.
   */
  maxPendingBytes?: number;
}

/** The default of {@link ClusterBrokerOptions.maxPendingBytes}. */
export const DEFAULT_CLUSTER_MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** The serialization of this process's IPC channel, found once. */
let serialization: 'advanced' | 'json' | undefined;

/** A value the structured clone cannot carry. */
const UNCLONEABLE = (): void => {};

/**
 * The serialization of the IPC channel to the parent. Node passes it to the child in
 * NODE_CHANNEL_SERIALIZATION_MODE and deletes that variable at startup (Node 20), so the channel is asked: a
 * function cannot be structured-cloned, so in 'advanced' mode `process.send` throws before writing anything,
 * while JSON drops the function and sends the rest (a `quay:pubsub.probe` message that nobody handles, sent only
 * on a misconfigured channel). Call only while connected.
 */
function channelSerialization(): 'advanced' | 'json' {
  if (serialization !== undefined) return serialization;
  const fromEnv = process.env['NODE_CHANNEL_SERIALIZATION_MODE'];
  if (fromEnv === 'advanced' || fromEnv === 'json') return (serialization = fromEnv);
  try {
    process.send!({ type: 'quay:pubsub.probe', probe: UNCLONEABLE });
    serialization = 'json';
  } catch {
    serialization = 'advanced';
  }
  return serialization;
}

/**
 * The broker for the workers of one machine, over node:cluster's IPC channels: a worker sends each envelope to
 * the primary (`process.send({ type: 'quay:relay', channel, data })`), and the primary's `ClusterRelay` (which
 * the cluster supervisor installs) forwards it to every other worker, in order. No server to run; one copy of a
 * message per worker, not per session.
 *
 * Needs a cluster worker whose channel uses `serialization: 'advanced'` (the payload is bytes); the constructor
 * checks both (Node hides the channel's serialization from the child: see channelSerialization). The relay never sends a message back to its sender, and the PubSub drops its own origin anyway.
 *
 * Bounds: bytes handed to the channel and not written yet are capped by `maxPendingBytes` ('BROKER_OVERLOADED'
 * beyond); the primary caps what it queues per worker (ClusterRelay's `maxPendingBytesPerWorker`: a worker that
 * does not read loses messages, counted by the relay). When the channel to the primary is gone the broker is
 * `unavailable` and publishes fail with 'BROKER_UNAVAILABLE'.
 */
export class ClusterBroker implements Broker {
  /** The relay channel. */
  readonly channel: string;
  private sink: EnvelopeSink | undefined;
  private closed = false;
  private readonly pending: PendingBytes;
  private readonly topics = new Set<string>();
  private readonly counters = { published: 0, publishFailures: 0, received: 0 };
  private readonly listener = (message: unknown): void => {
    if (!isRelayMessage(message) || message.channel !== this.channel || this.sink === undefined) return;
    this.counters.received++;
    const data = message.data;
    this.sink(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  };

  /**
   * @throws BrokerError 'BROKER_MISCONFIGURED' outside a cluster worker, on a channel without `'advanced'`
   *   serialization, or for a `maxPendingBytes` that is not positive; 'BROKER_UNAVAILABLE' when the channel to
   *   the primary is already closed.
   */
  constructor(options: ClusterBrokerOptions = {}) {
    if (!cluster.isWorker || typeof process.send !== 'function') {
      throw new BrokerError('BROKER_MISCONFIGURED', 'a ClusterBroker works in a node:cluster worker (this process is not one)');
    }
    if (!process.connected) throw new BrokerError('BROKER_UNAVAILABLE', 'the IPC channel to the cluster primary is closed');
    // JSON would turn the bytes into an object with one key per byte (and the relay would not recognise it).
    const mode = channelSerialization();
    if (mode !== 'advanced') {
      throw new BrokerError(
        'BROKER_MISCONFIGURED',
        `a ClusterBroker needs the cluster's IPC channel in 'advanced' serialization (cluster.setupPrimary({ serialization: 'advanced' })); it is '${mode}'`,
      );
    }
    this.pending = new PendingBytes(options.maxPendingBytes, DEFAULT_CLUSTER_MAX_PENDING_BYTES, 'wait for the IPC channel');
    this.channel = options.channel ?? 'quay:pubsub';
  }

  /** `ready` while the IPC channel to the primary is connected, `unavailable` after, `closed` after close(). */
  get state(): BrokerState {
    if (this.closed) return 'closed';
    return process.connected ? 'ready' : 'unavailable';
  }

  /** @throws BrokerError 'BROKER_MISCONFIGURED' when already given to a PubSub. */
  open(sink: EnvelopeSink): void {
    if (this.closed) throw new BrokerError('BROKER_CLOSED', 'the ClusterBroker is closed');
    if (this.sink !== undefined) throw new BrokerError('BROKER_MISCONFIGURED', 'the ClusterBroker is already used by a PubSub');
    this.sink = sink;
    process.on('message', this.listener);
  }

  /** Resolves at once: the relay sends every message to every worker, and the PubSub routes by topic. */
  subscribe(topic: string): Promise<void> {
    if (this.closed) return safeToDrop(Promise.reject(new BrokerError('BROKER_CLOSED', 'the ClusterBroker is closed')));
    // The relay sends every message to every worker: nothing to ask for; the PubSub routes by topic.
    this.topics.add(topic);
    return Promise.resolve();
  }

  /** Forgets the topic (counted in stats().subscriptions only). */
  unsubscribe(topic: string): Promise<void> {
    this.topics.delete(topic);
    return Promise.resolve();
  }

  /**
   * Sends the envelope to the primary's relay. Resolves once written to the channel; rejects with
   * 'BROKER_UNAVAILABLE' (channel closed), 'BROKER_OVERLOADED' (past maxPendingBytes), 'BROKER_CLOSED'.
   */
  publish(topic: string, envelope: Buffer): Promise<void> {
    if (this.closed) return this.fail(new BrokerError('BROKER_CLOSED', 'the ClusterBroker is closed'));
    if (!process.connected) return this.fail(new BrokerError('BROKER_UNAVAILABLE', 'the IPC channel to the cluster primary is closed'));
    const size = envelope.byteLength;
    const overloaded = this.pending.reserve(size);
    if (overloaded !== undefined) return this.fail(overloaded);
    const message: RelayMessage = { type: RELAY_MESSAGE_TYPE, channel: this.channel, data: envelope };
    return safeToDrop(
      new Promise<void>((resolve, reject) => {
        const done = (error: Error | null): void => {
          this.pending.release(size);
          if (error === null || error === undefined) {
            this.counters.published++;
            resolve();
          } else {
            this.counters.publishFailures++;
            reject(new BrokerError('BROKER_UNAVAILABLE', `the IPC channel to the cluster primary failed: ${error.message}`, { cause: error }));
          }
        };
        try {
          // The callback runs once the message is written to the channel, or with the error that stopped it.
          process.send!(message, undefined, undefined, done);
        } catch (e) {
          done(e instanceof Error ? e : new Error(String(e)));
        }
      }),
    );
  }

  /** The broker's counters (kind 'cluster'). */
  stats(): BrokerStats {
    return {
      kind: 'cluster',
      state: this.state,
      ...this.counters,
      pendingBytes: this.pending.bytes,
      maxPendingBytes: this.pending.max,
      subscriptions: this.topics.size,
    };
  }

  /** Stops receiving (removes the `message` listener, which lets the channel unref). */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.topics.clear();
      process.off('message', this.listener);
    }
    return Promise.resolve();
  }

  private fail(error: BrokerError): Promise<void> {
    this.counters.publishFailures++;
    return safeToDrop(Promise.reject(error));
  }
}
