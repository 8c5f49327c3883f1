import type { EndPoint } from './EndPoint.js';

/**
 * The protocol half of a connection, as in Jetty's `org.eclipse.jetty.io.Connection`: an {@link EndPoint} moves
 * bytes, a Connection gives them meaning (HTTP/1.1, WebSocket, an echo...). The endpoint calls these methods; a
 * connection never touches the socket directly, and it acts through its endpoint (`write`, `pauseReading`,
 * `shutdownOutput`, `close`, `upgrade`).
 *
 * Every callback runs inside the endpoint's guard: an exception thrown from one closes that endpoint only, with a
 * `ConnectionCallbackError` as the cause, and never reaches the process.
 */
export interface Connection {
  /** Called once, when the connection becomes the endpoint's connection (after accept/connect, or after an upgrade). */
  onOpen(): void;

  /**
   * Bytes read from the peer. `bytes` is only valid during the call: the endpoint may reuse the memory for the
   * next read (pooled reads), so a connection copies what it keeps. Not called while reading is paused.
   */
  onFillable(bytes: Buffer): void;

  /**
   * The endpoint was idle for its timeout. Return true to let the endpoint close (with an `IdleTimeoutError`),
   * false if the connection handled it (e.g. a WebSocket sent a ping, or an HTTP request is still being
   * processed); the timeout then starts again.
   */
  onIdleExpired(): boolean;

  /**
   * Called exactly once when the endpoint closes; `cause` says why (undefined for an orderly close). After it,
   * writes fail with `EndPointClosedError`. Not called on the connection that an upgrade replaced.
   */
  onClose(cause: Error | undefined): void;

  /**
   * Optional: the clock time (of `endPoint.clock`) at which `onDeadline` is called, `Infinity` = none; a deadline
   * that activity does not move (an HTTP request that must be complete by then). Read by the idle-timeout sweep
   * through the endpoint, so a connection without deadlines carries no such field.
   */
  readonly deadlineMs?: number;

  /**
   * Optional: `deadlineMs` was reached; `now` is the clock time of the check. Called by the idle-timeout sweep (so up
   * to one tick late). The connection sets its next deadline, or `Infinity`: one left in the past is called again
   * at the next sweep.
   */
  onDeadline?(now: number): void;

  /** Optional: pending writes fell to the low watermark after having passed the high watermark. */
  onWritable?(): void;

  /**
   * Optional: the peer shut down its output (TCP FIN) while this side may still write. A connection that
   * implements this owns the decision (finish a response, then close). Without it the endpoint flushes what is
   * pending and closes with a `PeerClosedError`.
   */
  onInputShutdown?(): void;

  /**
   * Optional: `SelectorManager.stop()` asks for a graceful end (HTTP: finish the in-flight response then close;
   * WebSocket: close 1001). Without it the endpoint flushes what is pending and shuts its output down.
   */
  onShutdown?(): void;

  /**
   * Optional: this connection is being replaced by `EndPoint.upgrade()`. Return the bytes already read but not
   * consumed (they belong to the next protocol, e.g. WebSocket frames that arrived with the HTTP upgrade request);
   * the endpoint hands them to the next connection before any later read. After this call the connection no
   * longer owns the endpoint and gets no further callbacks.
   */
  onUpgradeFrom?(): Buffer | undefined;

  /** Optional: a one-line description of the connection's state for `SelectorManager.dump()`. */
  describe?(): string;
}

/** Creates the connection for a newly accepted or connected endpoint (Jetty's `ConnectionFactory`). */
export interface ConnectionFactory {
  newConnection(endPoint: EndPoint): Connection;
}
