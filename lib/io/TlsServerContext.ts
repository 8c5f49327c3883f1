import { createSecureContext, TLSSocket } from 'node:tls';
import type { SecureContext, SecureContextOptions, SecureVersion } from 'node:tls';
import type { Socket } from 'node:net';
import { TlsHandshakeError } from './errors.js';

/**
 * The TLS configuration of a server (https and wss on the same port). Names and meanings are node:tls's
 * (`tls.createSecureContext` and `tls.createServer` options), so a node:https configuration carries over.
 */
export interface TlsServerOptions
  extends Pick<
    SecureContextOptions,
    'key' | 'cert' | 'pfx' | 'passphrase' | 'ca' | 'ciphers' | 'ecdhCurve' | 'sigalgs' | 'dhparam' | 'honorCipherOrder' | 'sessionTimeout' | 'ticketKeys' | 'crl'
  > {
  /** Lowest TLS version accepted. Default `'TLSv1.2'` (TLS 1.0 and 1.1 are deprecated, RFC 8996). */
  minVersion?: SecureVersion;
  /** Highest TLS version accepted. Default: node's (`'TLSv1.3'`). */
  maxVersion?: SecureVersion;
  /**
   * Chooses the certificate by the server name the client sent (SNI, RFC 6066 §3): call back with a
   * `SecureContext` (`tls.createSecureContext(...)`), or with an error to refuse the handshake (counted as `sni`).
   * Not called when the client sends no name: the default certificate (`key`/`cert`/`pfx`) serves it.
   */
  SNICallback?: (servername: string, callback: (error: Error | null, context?: SecureContext) => void) => void;
  /**
   * Refuse a client that sends no server name (SNI): its connection is closed right after the handshake and
   * counted as `sni`. Jetty's `SslContextFactory.Server.setSniRequired`. Default false.
   */
  sniRequired?: boolean;
}

/**
 * The server side of TLS for a listening {@link SelectorManager}: the current `SecureContext` (replaceable
 * without a restart, `setSecureContext`), and the wrapping of each accepted TCP socket into a server `TLSSocket`
 * that speaks HTTP/1.1 by ALPN (RFC 7301). The TLS record layer lives in that socket (Node's TLSWrap, in C++);
 * the endpoint above it sees plaintext, so HTTP and WebSocket run on it unchanged.
 */
export class TlsServerContext {
  private options: TlsServerOptions;
  private context: SecureContext;

  /** @throws what `tls.createSecureContext` throws for a bad key, certificate or passphrase. */
  constructor(options: TlsServerOptions) {
    this.options = options;
    this.context = newSecureContext(options);
  }

  /** See {@link TlsServerOptions.sniRequired}. */
  get sniRequired(): boolean {
    return this.options.sniRequired === true;
  }

  /**
   * Replaces the certificate, key and the rest for the connections accepted from now on; established ones keep
   * the context they were made with.
   * @throws what `tls.createSecureContext` throws; the current context then stays in force.
   */
  setSecureContext(options: TlsServerOptions): void {
    this.context = newSecureContext(options);
    this.options = options;
  }

  /** Wraps an accepted TCP socket; the handshake starts when the client's hello arrives. */
  wrap(socket: Socket): TLSSocket {
    const options = this.options;
    return new TLSSocket(socket, {
      isServer: true,
      secureContext: this.context,
      // HTTP/1.1 only: a client that offers only h2 fails the handshake with no_application_protocol (RFC 7301
      // §3.2) instead of speaking HTTP/1.1 to a server it believes speaks h2. Clients that offer nothing get 1.1.
      ALPNProtocols: ALPN,
      ...(options.SNICallback === undefined ? {} : { SNICallback: this.sniCallback }),
    });
  }

  /**
   * The user's SNICallback, made safe: a refusal becomes a {@link TlsHandshakeError} of kind `sni` (counted as
   * such), and a callback that throws refuses that handshake instead of reaching the process (it is called from
   * node's TLS layer, where an exception would be uncaught).
   */
  private readonly sniCallback = (servername: string, callback: (error: Error | null, context?: SecureContext) => void): void => {
    const refuse = (cause: unknown): void =>
      callback(new TlsHandshakeError('sni', `SNICallback refused ${JSON.stringify(servername.slice(0, 255))}: ${(cause as Error)?.message ?? String(cause)}`, cause));
    try {
      this.options.SNICallback!(servername, (error, context) => {
        if (error != null) refuse(error);
        else callback(null, context);
      });
    } catch (e) {
      refuse(e);
    }
  };
}

const ALPN = ['http/1.1'];

function newSecureContext(options: TlsServerOptions): SecureContext {
  if (options.pfx === undefined && (options.key === undefined || options.cert === undefined) && options.SNICallback === undefined) {
    throw new TypeError('tls needs a certificate: key and cert, or pfx (or an SNICallback that gives one)');
  }
  const { SNICallback: _sni, sniRequired: _required, ...contextOptions } = options;
  return createSecureContext({ ...contextOptions, minVersion: options.minVersion ?? 'TLSv1.2' });
}
