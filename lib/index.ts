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
export { DEFAULT_FILE_DESCRIPTOR_RESERVE, openFileLimit } from './io/OpenFileLimit.js';
export type { ListenOptions, OutboundOptions, SelectorManagerOptions, SelectorManagerState, SelectorManagerStats } from './io/SelectorManager.js';
export {
  ConnectionCallbackError,
  ConnectionLimitError,
  EndPointClosedError,
  IdleTimeoutError,
  IllegalStateError,
  IoError,
  OpenFileLimitError,
  PeerClosedError,
  ShutdownTimeoutError,
  TlsHandshakeError,
  TlsHandshakeFailuresError,
  TlsHandshakeTimeoutError,
  WriteTimeoutError,
} from './io/errors.js';
export type { TlsHandshakeFailureKind } from './io/errors.js';
export type { TlsServerOptions } from './io/TlsServerContext.js';
export { QUAY_CHANNELS } from './io/diagnostics.js';
export type { TlsStats } from './io/TlsHandshakeFailures.js';

// lib/http
export { Server } from './http/Server.js';
export type { ServerOptions, ServerErrorContext } from './http/Server.js';
export { Router } from './http/Router.js';
export type { RouteOptions } from './http/Router.js';
export type { Handler, HandlerFunction } from './http/Handler.js';
export { Request } from './http/Request.js';
export { Response } from './http/Response.js';
export type { ResponseState } from './http/Response.js';
export { HttpConnection, HttpConnectionFactory } from './http/HttpConnection.js';
export type { HttpConnectionOptions, HttpConnectionState } from './http/HttpConnection.js';
export { HttpParser, DEFAULT_LIMITS } from './http/HttpParser.js';
export type { HttpParserHandler, HttpParserLimits, HttpParserState, HttpRequestHead, HttpResponseHead } from './http/HttpParser.js';
export { HttpFields } from './http/HttpFields.js';
export { generateRequestHead, generateResponseHead, chunkHeader, httpDate } from './http/HttpGenerator.js';
export { reasonPhrase } from './http/HttpStatus.js';
export { HttpGeneratorError, HttpParseError, InvalidHeaderError, StaticRootError } from './http/errors.js';
export type { StaticRootErrorCode } from './http/errors.js';
export { ErrorReporter } from './http/ErrorReporter.js';
export type { ErrorReporterOptions } from './http/ErrorReporter.js';
export { RequestBodyError, ResponseAbortedError, ResponseStateError } from './http/exchangeErrors.js';
export { StaticHandler, parseRange } from './http/StaticHandler.js';
export type { StaticHandlerOptions } from './http/StaticHandler.js';

// lib/pubsub
export { PubSub } from './pubsub/PubSub.js';
export type { PubSubOptions, PubSubStats } from './pubsub/PubSub.js';
export { Topic, MAX_ORIGINS_PER_TOPIC } from './pubsub/Topic.js';
export type { PublishResult } from './pubsub/Topic.js';
export type { Broker, BrokerState, BrokerStats, EnvelopeSink } from './pubsub/Broker.js';
export { ClusterBroker, DEFAULT_CLUSTER_MAX_PENDING_BYTES } from './pubsub/ClusterBroker.js';
export type { ClusterBrokerOptions } from './pubsub/ClusterBroker.js';
export { RedisBroker, DEFAULT_REDIS_MAX_PENDING_BYTES } from './pubsub/RedisBroker.js';
export type { IoRedisClient, NodeRedisBufferListener, NodeRedisClient, RedisBrokerOptions, RedisBrokerStats, RedisClientLike } from './pubsub/RedisBroker.js';
export { ENVELOPE_FLAG_FIRST, ENVELOPE_HEADER_BYTES, ENVELOPE_VERSION, MAX_ORIGIN, MAX_TOPIC_BYTES, decodeEnvelope, encodeEnvelope } from './pubsub/Envelope.js';
export type { Envelope, EnvelopeOpCode } from './pubsub/Envelope.js';
export { BrokerError } from './pubsub/errors.js';
export type { BrokerErrorCode } from './pubsub/errors.js';

// lib/websocket
export { WebSocketUpgradeHandler, hasToken, parseProtocols } from './websocket/WebSocketUpgradeHandler.js';
export type { AcceptResult, WebSocketAccept, WebSocketRefusal, WebSocketUpgradeHandlerOptions } from './websocket/WebSocketUpgradeHandler.js';
export { ExtensionHeaderError, parseExtensions } from './websocket/PerMessageDeflate.js';
export type { ExtensionOffer, PerMessageDeflateOptions } from './websocket/PerMessageDeflate.js';
export { ZlibJobQueue, zlibJobQueue } from './websocket/ZlibJobQueue.js';
export type { ZlibJob, ZlibJobQueueStats } from './websocket/ZlibJobQueue.js';
export { WebSocketSession, ReadyState } from './websocket/WebSocketSession.js';
export type { SendOptions } from './websocket/WebSocketSession.js';
export { WebSocketConnection, resolveSettings } from './websocket/WebSocketConnection.js';
export type { WebSocketConnectionOptions, WebSocketConnectionState, WebSocketSettings } from './websocket/WebSocketConnection.js';
export type { OverflowPolicy, WebSocketListener, WebSocketSessionOptions } from './websocket/WebSocketListener.js';
export { broadcast } from './websocket/broadcast.js';
export type { BroadcastResult } from './websocket/broadcast.js';
export { FrameParser, DEFAULT_FRAME_PARSER_LIMITS, applyMask } from './websocket/FrameParser.js';
export type { FrameParserListener, FrameParserOptions, FrameParserState } from './websocket/FrameParser.js';
export { FrameGenerator } from './websocket/FrameGenerator.js';
export type { FrameGeneratorOptions } from './websocket/FrameGenerator.js';
export { OpCode, isControl } from './websocket/OpCode.js';
export type { DataOpCode } from './websocket/OpCode.js';
export { CloseStatus, MAX_CLOSE_REASON_BYTES, encodeClosePayload, parseClosePayload, isValidWireCloseCode } from './websocket/CloseStatus.js';
export { Utf8Validator } from './websocket/Utf8Validator.js';
export { acceptKey, isValidClientKey, WEBSOCKET_GUID } from './websocket/acceptKey.js';
export { CloseEvent, WebSocket } from './websocket/WebSocket.js';
export type { BinaryType, WebSocketInit, WebSocketMessageEvent } from './websocket/WebSocket.js';
export { FrameEncodeError, ProtocolError, WebSocketSessionError } from './websocket/errors.js';
export type { FrameEncodeErrorCode, ProtocolErrorCode, WebSocketSessionErrorCode } from './websocket/errors.js';
export { UpgradeBridge } from './http/UpgradeBridge.js';
export type { UpgradeBridgeOptions } from './http/UpgradeBridge.js';
export { WebSocketClient } from './websocket/WebSocketClient.js';
export type { WebSocketClientOptions, WebSocketConnectOptions } from './websocket/WebSocketClient.js';
export { HandshakeError, MAX_ERROR_BODY_BYTES, checkHandshakeResponse } from './websocket/HandshakeResponse.js';
export type { HandshakeErrorCode } from './websocket/HandshakeResponse.js';

// lib/cluster
export { runCluster } from './cluster/runCluster.js';
export type { ClusterRole } from './cluster/runCluster.js';
export { ClusterSupervisor } from './cluster/ClusterSupervisor.js';
export type { ClusterWorkerInfo, SupervisorState } from './cluster/ClusterSupervisor.js';
export { ClusterWorker } from './cluster/ClusterWorker.js';
export type { ClusterWorkerState } from './cluster/ClusterWorker.js';
export { WorkerState, nextWorkerState } from './cluster/WorkerState.js';
export type { WorkerEvent } from './cluster/WorkerState.js';
export { DEFAULT_SCHEDULING } from './cluster/options.js';
export type { ClusterEvent, ClusterOptions, ClusterScheduling, ClusterService, ClusterStart } from './cluster/options.js';
export type { ClusterStats, ClusterTotals, ClusterWorkerStats } from './cluster/stats.js';
export { CLUSTER_MESSAGE_PREFIX, SLOT_ENV, isClusterMessage } from './cluster/messages.js';
export type { ClusterMessage } from './cluster/messages.js';
export {
  ClusterError,
  ClusterStateError,
  WorkerCrashLoopError,
  WorkerExitError,
  WorkerStartError,
  WorkerStartTimeoutError,
  WorkerStopTimeoutError,
} from './cluster/errors.js';
export type { ClusterErrorCode, WorkerIdentity } from './cluster/errors.js';
export { ClusterRelay, DEFAULT_MAX_PENDING_BYTES_PER_WORKER, RELAY_MESSAGE_TYPE, isRelayMessage } from './cluster/relay.js';
export type { ClusterRelayOptions, ClusterRelayStats, RelayMessage } from './cluster/relay.js';
