/**
 * quay: a non-blocking HTTP + WebSocket connection layer for Node.js, modeled on Jetty's NIO connectors.
 * This is the public entry; everything a user embeds is re-exported from here.
 */

// lib/buffers
export * from './buffers/index.js';

// lib/io
export type { Connection, ConnectionFactory } from './io/Connection.js';
export { EndPoint } from './io/EndPoint.js';
export type { EndPointOptions, EndPointOwner, EndPointState } from './io/EndPoint.js';
export { SocketEndPoint } from './io/SocketEndPoint.js';
export { MemoryEndPoint } from './io/MemoryEndPoint.js';
export type { MemoryEndPointOptions } from './io/MemoryEndPoint.js';
export { WriteFlusher, DEFAULT_HIGH_WATERMARK } from './io/WriteFlusher.js';
export type { FlushTarget, WatermarkOptions, WriteCallback, WriteFlusherState } from './io/WriteFlusher.js';
export { IdleTimeoutScheduler } from './io/IdleTimeoutScheduler.js';
export type { IdleTimeoutSchedulerOptions, IdleTimeoutTarget } from './io/IdleTimeoutScheduler.js';
export { ManualClock, systemClock } from './io/Clock.js';
export type { Clock } from './io/Clock.js';
export { SelectorManager } from './io/SelectorManager.js';
export type { ListenOptions, SelectorManagerOptions, SelectorManagerState, SelectorManagerStats } from './io/SelectorManager.js';
export {
  ConnectionCallbackError,
  EndPointClosedError,
  IdleTimeoutError,
  IllegalStateError,
  IoError,
  PeerClosedError,
  ShutdownTimeoutError,
  WriteTimeoutError,
} from './io/errors.js';
