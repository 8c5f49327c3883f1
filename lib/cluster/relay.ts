/**
 * Worker-to-worker messages through the primary of a `node:cluster`. Workers cannot reach each other directly
 * (each has one IPC channel, to the primary), so a worker that publishes to the other processes of its machine
 * sends a {@link RelayMessage} to the primary, and the primary's {@link ClusterRelay} forwards it to every other
 * connected worker, in the order it received them (one IPC channel per worker keeps each publisher's order).
 *
 * The channel must use Node's `'advanced'` serialization (`cluster.setupPrimary({ serialization: 'advanced' })`,
 * which the cluster supervisor sets): the payload is bytes, and the structured clone carries a `Uint8Array` as
 * bytes where JSON would turn it into an object with one key per byte.
 *
 * Bound (design.md, "Bounds"): a worker that does not read its channel (its event loop blocked) makes the
 * primary queue what is relayed to it. Past `maxPendingBytesPerWorker` a message is dropped for that worker
 * only, counted in {@link ClusterRelay.stats} and reported once a second to `onDrop` with the count; the other
 * workers still get it, and the primary's memory stays bounded.
 */
import type { Cluster, Worker } from 'node:cluster';

/** The `type` of a relayed message. */
export const RELAY_MESSAGE_TYPE = 'quay:relay';

/** A message a worker asks the primary to forward to every other worker (and that those workers receive). */
export interface RelayMessage {
  readonly type: typeof RELAY_MESSAGE_TYPE;
  /** What the message is for (a broker's channel name); the relay does not read it. */
  readonly channel: string;
  /** The bytes (a `Uint8Array` after the structured clone, whatever view was sent). */
  readonly data: Uint8Array;
}

/** True for a {@link RelayMessage} (what a worker's `process.on('message')` listener checks first). */
export function isRelayMessage(message: unknown): message is RelayMessage {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { type?: unknown; channel?: unknown; data?: unknown };
  return m.type === RELAY_MESSAGE_TYPE && typeof m.channel === 'string' && m.data instanceof Uint8Array;
}

/** Options of {@link ClusterRelay}. */
export interface ClusterRelayOptions {
  /** Bytes queued toward one worker before messages to it are dropped. Default 64 MiB. */
  maxPendingBytesPerWorker?: number;
  /** Told, at most once a second per worker, how many messages were dropped for it since the last call. */
  onDrop?: (worker: Worker, dropped: number, droppedBytes: number) => void;
}

/** What a {@link ClusterRelay} did since it was made. */
export interface ClusterRelayStats {
  /** Messages received from workers. */
  received: number;
  /** Copies sent to workers (a message to n other workers counts n). */
  forwarded: number;
  /** Copies dropped because their worker was over its bound. */
  dropped: number;
  /** Bytes of those copies. */
  droppedBytes: number;
  /** Bytes handed to IPC channels and not yet written, over all workers. */
  pendingBytes: number;
}

/** Per worker: bytes queued and drops not yet reported. */
interface WorkerQueue {
  pendingBytes: number;
  unreportedDrops: number;
  unreportedDropBytes: number;
  lastReport: number;
}

/** The default of {@link ClusterRelayOptions.maxPendingBytesPerWorker}. */
export const DEFAULT_MAX_PENDING_BYTES_PER_WORKER = 64 * 1024 * 1024;

/**
 * The primary's side: forwards each {@link RelayMessage} from a worker to every other connected worker.
 * Install one per primary (the cluster supervisor does); {@link ClusterRelay.close} removes its listener.
 */
export class ClusterRelay {
  private readonly cluster: Cluster;
  private readonly maxPending: number;
  private readonly onDrop: ((worker: Worker, dropped: number, droppedBytes: number) => void) | undefined;
  private readonly queues = new Map<Worker, WorkerQueue>();
  private readonly counters = { received: 0, forwarded: 0, dropped: 0, droppedBytes: 0 };
  private readonly listener = (worker: Worker, message: unknown): void => {
    if (isRelayMessage(message)) this.forward(worker, message);
  };
  private readonly forget = (worker: Worker): void => {
    this.queues.delete(worker);
  };

  constructor(cluster: Cluster, options: ClusterRelayOptions = {}) {
    const max = options.maxPendingBytesPerWorker ?? DEFAULT_MAX_PENDING_BYTES_PER_WORKER;
    if (!(max > 0)) throw new RangeError(`maxPendingBytesPerWorker must be positive (got ${max})`);
    this.cluster = cluster;
    this.maxPending = max;
    this.onDrop = options.onDrop;
    cluster.on('message', this.listener);
    cluster.on('exit', this.forget);
  }

  /** Stops relaying (removes the primary's listeners). */
  close(): void {
    this.cluster.off('message', this.listener);
    this.cluster.off('exit', this.forget);
    this.queues.clear();
  }

  /** What the relay did so far, and the bytes it has queued now (see {@link ClusterRelayStats}). */
  stats(): ClusterRelayStats {
    let pendingBytes = 0;
    for (const q of this.queues.values()) pendingBytes += q.pendingBytes;
    return { ...this.counters, pendingBytes };
  }

  private forward(from: Worker, message: RelayMessage): void {
    this.counters.received++;
    const workers = this.cluster.workers;
    if (workers === undefined) return;
    const size = message.data.byteLength;
    for (const id in workers) {
      const worker = workers[id];
      if (worker === undefined || worker === from || !worker.isConnected()) continue;
      let queue = this.queues.get(worker);
      if (queue === undefined) {
        queue = { pendingBytes: 0, unreportedDrops: 0, unreportedDropBytes: 0, lastReport: 0 };
        this.queues.set(worker, queue);
      }
      if (queue.pendingBytes + size > this.maxPending) {
        this.drop(worker, queue, size);
        continue;
      }
      queue.pendingBytes += size;
      const q = queue;
      // The callback runs once the message is written to the channel (or failed: the worker went away).
      worker.send(message, () => {
        q.pendingBytes -= size;
      });
      this.counters.forwarded++;
    }
  }

  private drop(worker: Worker, queue: WorkerQueue, size: number): void {
    this.counters.dropped++;
    this.counters.droppedBytes += size;
    queue.unreportedDrops++;
    queue.unreportedDropBytes += size;
    const now = Date.now();
    if (this.onDrop !== undefined && now - queue.lastReport >= 1000) {
      const dropped = queue.unreportedDrops;
      const bytes = queue.unreportedDropBytes;
      queue.unreportedDrops = 0;
      queue.unreportedDropBytes = 0;
      queue.lastReport = now;
      this.onDrop(worker, dropped, bytes);
    }
  }
}
