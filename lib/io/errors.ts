/**
 * Typed errors of the I/O layer. Every error that reaches a connection's `onClose(cause)` or a write callback
 * is one of these (or a Node system error such as ECONNRESET, passed through as the cause), so callers can
 * switch on `code` instead of parsing messages.
 */

/** Base class of quay's I/O errors. `code` is stable and meant for programs; `message` is for people. */
export class IoError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The endpoint closed before a write completed, or a write was issued on a closed endpoint.
 * `cause` carries why the endpoint closed (a reset, an idle timeout, a handler's exception...).
 */
export class EndPointClosedError extends IoError {
  constructor(message = 'endpoint closed', cause?: unknown) {
    super('ENDPOINT_CLOSED', message, cause === undefined ? undefined : { cause });
  }
}

/** The endpoint saw no activity for its idle timeout and its connection agreed to close. */
export class IdleTimeoutError extends IoError {
  readonly idleTimeoutMs: number;
  constructor(idleTimeoutMs: number) {
    super('IDLE_TIMEOUT', `idle timeout expired after ${idleTimeoutMs} ms`);
    this.idleTimeoutMs = idleTimeoutMs;
  }
}

/**
 * A write made no progress for the idle timeout: the peer stopped reading. Like Jetty's WriteFlusher, the idle
 * timeout fails the stuck write and the endpoint is closed, whatever the connection would prefer, because a
 * peer that never reads would otherwise hold the write queue (and its memory) forever.
 */
export class WriteTimeoutError extends IoError {
  readonly idleTimeoutMs: number;
  readonly pendingBytes: number;
  constructor(idleTimeoutMs: number, pendingBytes: number) {
    super('WRITE_TIMEOUT', `write of ${pendingBytes} bytes made no progress for ${idleTimeoutMs} ms`);
    this.idleTimeoutMs = idleTimeoutMs;
    this.pendingBytes = pendingBytes;
  }
}

/** The peer shut down its output (TCP FIN) and the connection did not ask to keep the endpoint half-open. */
export class PeerClosedError extends IoError {
  constructor() {
    super('PEER_CLOSED', 'the peer closed its side of the connection');
  }
}

/** A connection callback threw; the endpoint was closed with this error, whose `cause` is what was thrown. */
export class ConnectionCallbackError extends IoError {
  readonly callback: string;
  constructor(callback: string, cause: unknown) {
    super('CONNECTION_CALLBACK_THREW', `connection ${callback}() threw: ${describe(cause)}`, { cause });
    this.callback = callback;
  }
}

/** `SelectorManager.stop()` reached its deadline and force-closed this endpoint. */
export class ShutdownTimeoutError extends IoError {
  constructor(graceMs: number) {
    super('SHUTDOWN_TIMEOUT', `graceful stop did not finish within ${graceMs} ms; endpoint force-closed`);
  }
}

/** A write or an operation was attempted in a state that does not allow it (e.g. after shutdownOutput). */
export class IllegalStateError extends IoError {
  constructor(message: string) {
    super('ILLEGAL_STATE', message);
  }
}

function describe(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  return String(value);
}

/**
 * New connections were refused because `maxConnections` open endpoints were reached (reported at most once a
 * second, with how many were refused since the last report).
 */
export class ConnectionLimitError extends IoError {
  /** Connections refused since the previous report. */
  readonly refused: number;
  readonly maxConnections: number;
  constructor(refused: number, maxConnections: number, openFileLimit: number | undefined) {
    const fileLimit = openFileLimit === undefined ? '' : ` (open-file limit ${openFileLimit})`;
    super('CONNECTION_LIMIT', `refused ${refused} connection(s): maxConnections ${maxConnections} reached${fileLimit}`);
    this.refused = refused;
    this.maxConnections = maxConnections;
  }
}

/**
 * The process is at its open-file limit: new connections are closed by Node (libuv) before quay sees them
 * (reported at most once a second). Lower `maxConnections`, close what holds descriptors, or raise `ulimit -n`.
 */
export class OpenFileLimitError extends IoError {
  readonly openFileLimit: number | undefined;
  constructor(openFileLimit: number | undefined, openEndPoints: number) {
    const limit = openFileLimit === undefined ? 'its open-file limit' : `its open-file limit (${openFileLimit})`;
    super(
      'OPEN_FILE_LIMIT',
      `the process is at ${limit} with ${openEndPoints} connections open: new connections are dropped before they ` +
        'can be accepted; lower maxConnections or raise the limit (ulimit -n)',
    );
    this.openFileLimit = openFileLimit;
  }
}

/**
 * Why a TLS handshake failed, as counted in `stats().tls.handshakeFailures`:
 * - `timeout`: not done within `tlsHandshakeTimeoutMs` (a peer that opened TCP and stalled);
 * - `aborted`: the peer closed or reset the connection during the handshake (or opened TCP and sent nothing);
 * - `plaintext`: the peer spoke plain HTTP to the TLS port;
 * - `protocol`: no TLS version or application protocol (ALPN) in common, or malformed TLS records;
 * - `cipher`: no cipher suite, signature algorithm or group in common;
 * - `sni`: no server name (SNI) where `sniRequired`, or one the `SNICallback` refused;
 * - `certificate`: the peer refused our certificate (an alert: unknown CA, bad or expired certificate);
 * - `other`: anything else (the error is in the handshake's `cause`).
 */
export type TlsHandshakeFailureKind = 'timeout' | 'aborted' | 'plaintext' | 'protocol' | 'cipher' | 'sni' | 'certificate' | 'other';

/** A server-side TLS handshake failed; `kind` classifies it, `cause` is node:tls's error (when there is one). */
export class TlsHandshakeError extends IoError {
  readonly kind: TlsHandshakeFailureKind;
  constructor(kind: TlsHandshakeFailureKind, message: string, cause?: unknown) {
    super('TLS_HANDSHAKE_FAILED', `TLS handshake failed (${kind}): ${message}`, cause === undefined ? undefined : { cause });
    this.kind = kind;
  }
}

/** A peer did not finish its TLS handshake within `tlsHandshakeTimeoutMs`. */
export class TlsHandshakeTimeoutError extends IoError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super('TLS_HANDSHAKE_TIMEOUT', `TLS handshake not done within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Handshake failures since the last report, by kind: reported at most once a second (kind `tls` for a Server), so
 * that a scanner or a misconfigured client fleet makes one line a second, not one per peer.
 */
export class TlsHandshakeFailuresError extends IoError {
  readonly failures: Readonly<Partial<Record<TlsHandshakeFailureKind, number>>>;
  constructor(failures: Partial<Record<TlsHandshakeFailureKind, number>>) {
    const total = Object.values(failures).reduce((a, b) => a + (b ?? 0), 0);
    const list = Object.entries(failures)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(', ');
    super('TLS_HANDSHAKE_FAILURES', `${total} TLS handshake${total === 1 ? '' : 's'} failed in the last second (${list})`);
    this.failures = failures;
  }
}
