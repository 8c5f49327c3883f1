/**
 * quay's `node:diagnostics_channel` channels, the way node:http (`http.server.request.start`...) and undici
 * (`undici:request:create`...) publish theirs: a tracer, an APM agent or a test subscribes by name, without an
 * option or a hook on quay's objects, and a channel without subscribers costs one property read per event.
 *
 * ```ts
 * import diagnostics_channel from 'node:diagnostics_channel';
 * diagnostics_channel.subscribe('quay:request.finish', ({ request, response }) =>
 *   console.log(request.method, request.path, response.status));
 * ```
 *
 * Messages are plain objects; the objects in them are quay's own (read them, do not keep them past the event).
 * The channel names are exported as {@link QUAY_CHANNELS}.
 */
import { channel } from 'node:diagnostics_channel';

/** The names of quay's diagnostics channels and what each message carries. */
export const QUAY_CHANNELS = {
  /** `{ endPoint }`: an endpoint opened (accepted, connected or adopted), before its connection's `onOpen`. */
  connectionOpen: 'quay:connection.open',
  /** `{ endPoint, cause }`: an endpoint closed; `cause` is undefined for an orderly close. */
  connectionClose: 'quay:connection.close',
  /** `{ request, response, endPoint }`: a request head was parsed, before its handler runs. */
  requestStart: 'quay:request.start',
  /** `{ request, response, endPoint }`: its response was completed (the last bytes handed to the endpoint). */
  requestFinish: 'quay:request.finish',
  /** `{ endPoint, connection }`: an endpoint's connection was replaced in place (HTTP to WebSocket, TLS to HTTP). */
  upgrade: 'quay:upgrade',
  /** `{ session }`: a WebSocket session opened (server or client), before the listener's `onOpen`. */
  websocketOpen: 'quay:websocket.open',
  /** `{ session, code, reason }`: a WebSocket session closed, before the listener's `onClose`. */
  websocketClose: 'quay:websocket.close',
  /** `{ error, kind, request?, endPoint? }`: an error a Server reports (as its `onError`, whether set or not). */
  error: 'quay:error',
} as const;

/** @internal The channel objects (one lookup each, at load). */
export const channels = {
  connectionOpen: channel(QUAY_CHANNELS.connectionOpen),
  connectionClose: channel(QUAY_CHANNELS.connectionClose),
  requestStart: channel(QUAY_CHANNELS.requestStart),
  requestFinish: channel(QUAY_CHANNELS.requestFinish),
  upgrade: channel(QUAY_CHANNELS.upgrade),
  websocketOpen: channel(QUAY_CHANNELS.websocketOpen),
  websocketClose: channel(QUAY_CHANNELS.websocketClose),
  error: channel(QUAY_CHANNELS.error),
};
