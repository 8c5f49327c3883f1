/**
 * The IPC messages between the supervisor (primary) and its workers. All have `type: 'quay:cluster.*'`, so they
 * never collide with the relay's `'quay:relay'` messages nor with an application's own messages on the channel
 * (both sides ignore what is not theirs). They travel with `serialization: 'advanced'` (structured clone).
 */

/** The prefix of every supervisor message type. */
export const CLUSTER_MESSAGE_PREFIX = 'quay:cluster.';

/** The environment variable that tells a worker its slot (0..workers-1). */
export const SLOT_ENV = 'QUAY_CLUSTER_SLOT';

/** Worker -> primary: the start function resolved; the worker serves. */
export interface ReadyMessage {
  readonly type: 'quay:cluster.ready';
}

/** Worker -> primary: the start function failed (the worker exits with code 1 right after). */
export interface StartFailedMessage {
  readonly type: 'quay:cluster.startFailed';
  readonly name: string;
  readonly message: string;
  readonly code: string | undefined;
}

/** Primary -> worker: stop the service with this grace, then exit. */
export interface StopMessage {
  readonly type: 'quay:cluster.stop';
  readonly graceMs: number;
}

/**
 * Worker -> primary: its service stopped. node:cluster's primary may still have handed it connections (round-robin)
 * before it learnt that the worker's listener closed; they are in the channel, before the primary's answer, the
 * {@link ExitMessage}. The worker reads them (and gives them back to the primary, which hands them to another
 * worker) before it reads that answer and exits: exiting earlier would leave those connections hanging.
 */
export interface StoppedMessage {
  readonly type: 'quay:cluster.stopped';
}

/** Primary -> worker: the answer to {@link StoppedMessage}: nothing more will be handed to you, exit now. */
export interface ExitMessage {
  readonly type: 'quay:cluster.exit';
}

/** What the primary can ask a worker. */
export type WorkerQuery = 'stats' | 'dump';

/** Primary -> worker: answer a query with a {@link ResponseMessage} carrying the same `id`. */
export interface RequestMessage {
  readonly type: 'quay:cluster.request';
  readonly id: number;
  readonly query: WorkerQuery;
}

/** Worker -> primary: the answer to a {@link RequestMessage}. */
export interface ResponseMessage {
  readonly type: 'quay:cluster.response';
  readonly id: number;
  /** `stats()` of the service (an object), or its `dump()` (a string); `undefined` when it has none. */
  readonly value: object | string | undefined;
  /** Set when the service's method threw. */
  readonly error?: string;
}

/** Every supervisor message. */
export type ClusterMessage = ReadyMessage | StartFailedMessage | StopMessage | StoppedMessage | ExitMessage | RequestMessage | ResponseMessage;

/** True for a message of the supervisor (`type` starting with `quay:cluster.`). */
export function isClusterMessage(message: unknown): message is ClusterMessage {
  if (typeof message !== 'object' || message === null) return false;
  const type = (message as { type?: unknown }).type;
  return typeof type === 'string' && type.startsWith(CLUSTER_MESSAGE_PREFIX);
}
