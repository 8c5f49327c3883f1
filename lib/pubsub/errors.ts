/** Errors of lib/pubsub: topics, the message envelope and the brokers between processes. */

/**
 * The stable codes of {@link BrokerError}. Each names an outcome a caller can act on; the message says more.
 */
export type BrokerErrorCode =
  /**
   * The broker cannot take a message now: Redis is not connected (or reconnecting), the cluster's IPC channel to
   * the primary is closed. Local delivery was done; the remote part was not attempted (it failed fast rather than
   * queueing behind the outage), or a message in flight was lost with the connection.
   */
  | 'BROKER_UNAVAILABLE'
  /** The broker's bound on bytes in flight (`maxPendingBytes`) would be passed: the message was not sent. */
  | 'BROKER_OVERLOADED'
  /** The broker, the PubSub or the topic was closed. */
  | 'BROKER_CLOSED'
  /**
   * The broker cannot work where it was made: a ClusterBroker outside a cluster worker or on a channel without
   * `'advanced'` serialization, a RedisBroker given a client it does not recognise, an option out of range.
   */
  | 'BROKER_MISCONFIGURED'
  /** Bytes received from another process are not a valid envelope (see `decodeEnvelope`): counted and dropped. */
  | 'ENVELOPE_INVALID';

/** A failure of lib/pubsub; `code` says which (see {@link BrokerErrorCode}). */
export class BrokerError extends Error {
  readonly code: BrokerErrorCode;
  constructor(code: BrokerErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
