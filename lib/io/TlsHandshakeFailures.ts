import { IdleTimeoutError, PeerClosedError, ShutdownTimeoutError, TlsHandshakeError, TlsHandshakeTimeoutError } from './errors.js';
import type { TlsHandshakeFailureKind } from './errors.js';

/** TLS counters of a listening {@link SelectorManager} with `tls` (see `SelectorManagerStats.tls`). */
export interface TlsStats {
  /** Handshakes completed (the connection then became HTTP). */
  handshakes: number;
  /** Handshakes that failed, by kind (see {@link TlsHandshakeFailureKind}). */
  handshakeFailures: Record<TlsHandshakeFailureKind, number>;
}

const KINDS: readonly TlsHandshakeFailureKind[] = ['timeout', 'aborted', 'plaintext', 'protocol', 'cipher', 'sni', 'certificate', 'other'];

/**
 * OpenSSL's reasons as node:tls names them (`ERR_SSL_` + the reason in capitals): the server's own checks and the
 * alerts a client sends (`..._ALERT_...`, RFC 8446 §6.2). Unlisted `ERR_SSL_` codes go by the words they contain.
 */
const BY_CODE: ReadonlyMap<string, TlsHandshakeFailureKind> = new Map<string, TlsHandshakeFailureKind>([
  ['ERR_SSL_HTTP_REQUEST', 'plaintext'],
  ['ERR_SSL_HTTPS_PROXY_REQUEST', 'plaintext'],
  ['ERR_SSL_WRONG_VERSION_NUMBER', 'protocol'],
  ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'protocol'],
  ['ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'protocol'],
  ['ERR_SSL_VERSION_TOO_LOW', 'protocol'],
  ['ERR_SSL_NO_APPLICATION_PROTOCOL', 'protocol'],
  ['ERR_SSL_INAPPROPRIATE_FALLBACK', 'protocol'],
  ['ERR_SSL_NO_SHARED_CIPHER', 'cipher'],
  ['ERR_SSL_NO_SHARED_SIGNATURE_ALGORITHMS', 'cipher'],
  ['ERR_SSL_NO_SUITABLE_KEY_SHARE', 'cipher'],
  ['ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM', 'cipher'],
  ['ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'cipher'],
  ['ERR_SSL_TLSV1_ALERT_INSUFFICIENT_SECURITY', 'cipher'],
  ['ERR_SSL_CALLBACK_FAILED', 'sni'],
  ['ERR_SSL_TLSV1_UNRECOGNIZED_NAME', 'sni'],
  ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'certificate'],
  ['ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR', 'certificate'],
  ['ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'certificate'],
]);

/** Classifies why a server-side handshake ended without completing (the endpoint's close cause). */
export function tlsFailureKind(cause: Error | undefined): TlsHandshakeFailureKind {
  if (cause === undefined || cause instanceof PeerClosedError) return 'aborted';
  if (cause instanceof TlsHandshakeError) return cause.kind;
  if (cause instanceof TlsHandshakeTimeoutError || cause instanceof IdleTimeoutError) return 'timeout';
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED') return 'aborted';
  if (typeof code !== 'string') return 'other';
  const known = BY_CODE.get(code);
  if (known !== undefined) return known;
  if (!code.startsWith('ERR_SSL_')) return 'other';
  if (code.includes('CERTIFICATE') || code.includes('_CERT_')) return 'certificate';
  if (code.includes('VERSION') || code.includes('PROTOCOL') || code.includes('RECORD') || code.includes('PACKET') || code.includes('UNEXPECTED')) {
    return 'protocol';
  }
  if (code.includes('CIPHER') || code.includes('GROUP') || code.includes('SIGNATURE')) return 'cipher';
  return 'other';
}

/**
 * Counts handshakes and their failures by kind; what a forced stop closed is not a failure. Keeps the failures
 * since the last `takeUnreported()` for the once-a-second report.
 */
export class TlsHandshakeCounters {
  private handshakes = 0;
  private readonly failures = newCounts();
  private unreported: Partial<Record<TlsHandshakeFailureKind, number>> | undefined;

  succeeded(): void {
    this.handshakes++;
  }

  /** Counts a handshake that ended with `cause`; returns its kind, or undefined when a stop closed it. */
  failed(cause: Error | undefined): TlsHandshakeFailureKind | undefined {
    if (cause instanceof ShutdownTimeoutError) return undefined;
    const kind = tlsFailureKind(cause);
    this.failures[kind]++;
    const unreported = (this.unreported ??= {});
    unreported[kind] = (unreported[kind] ?? 0) + 1;
    return kind;
  }

  /** The failures by kind since the last call, or undefined if there were none. */
  takeUnreported(): Partial<Record<TlsHandshakeFailureKind, number>> | undefined {
    const unreported = this.unreported;
    this.unreported = undefined;
    return unreported;
  }

  stats(): TlsStats {
    return { handshakes: this.handshakes, handshakeFailures: { ...this.failures } };
  }
}

function newCounts(): Record<TlsHandshakeFailureKind, number> {
  const counts = {} as Record<TlsHandshakeFailureKind, number>;
  for (const kind of KINDS) counts[kind] = 0;
  return counts;
}
