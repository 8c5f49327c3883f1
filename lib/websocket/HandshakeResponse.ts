import { Buffer } from 'node:buffer';
import type { HttpResponseHead } from '../http/HttpParser.js';
import { acceptKey } from './acceptKey.js';
import { hasToken } from './WebSocketUpgradeHandler.js';

/** The stable codes of {@link HandshakeError}: why a client's connection never became a WebSocket. */
export type HandshakeErrorCode =
  /** The URL cannot be used: not a URL, a scheme other than ws:, wss: (or http:, https:), or a fragment (RFC 6455 §3). */
  | 'WS_INVALID_URL'
  /** The TCP connection could not be opened (ECONNREFUSED, EHOSTUNREACH, ENOTFOUND...); the socket error is the `cause`. */
  | 'WS_CONNECT_FAILED'
  /**
   * wss: the server's certificate chain does not lead to a trusted CA (node:tls `UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
   * `UNABLE_TO_GET_ISSUER_CERT_LOCALLY`, `UNABLE_TO_GET_ISSUER_CERT`, `SELF_SIGNED_CERT_IN_CHAIN`): give its CA
   * with `ca`.
   */
  | 'WS_TLS_UNKNOWN_CA'
  /** wss: the server's certificate is self-signed (node:tls `DEPTH_ZERO_SELF_SIGNED_CERT`): give it as `ca` to trust it. */
  | 'WS_TLS_SELF_SIGNED'
  /** wss: the server's certificate has expired (node:tls `CERT_HAS_EXPIRED`). */
  | 'WS_TLS_CERT_EXPIRED'
  /** wss: the server's certificate is not valid yet (node:tls `CERT_NOT_YET_VALID`; a clock off?). */
  | 'WS_TLS_CERT_NOT_YET_VALID'
  /**
   * wss: the server's certificate is not for the host connected to (node:tls `ERR_TLS_CERT_ALTNAME_INVALID`,
   * RFC 6125): the URL's host, or `servername` when given.
   */
  | 'WS_TLS_HOST_MISMATCH'
  /**
   * wss: any other TLS failure: no common protocol version or cipher, an alert from the server (e.g. it requires a
   * client certificate), another certificate error, a server that is not TLS, a connection closed or reset during
   * the TLS handshake. node:tls's code is `tlsCode`, its error the `cause`.
   */
  | 'WS_TLS_HANDSHAKE_FAILED'
  /** No complete handshake within `handshakeTimeoutMs` (connecting included). */
  | 'WS_HANDSHAKE_TIMEOUT'
  /** The server answered with a status other than 101 (RFC 6455 §4.1); `status` and `body` (up to 4 KiB) are set. */
  | 'WS_HANDSHAKE_STATUS'
  /** The 101 lacks `Upgrade: websocket` or a `Connection` with the token `upgrade` (RFC 6455 §4.1, rules 2 and 3). */
  | 'WS_HANDSHAKE_UPGRADE'
  /** `Sec-WebSocket-Accept` is missing or does not match our key (RFC 6455 §4.1, rule 4). */
  | 'WS_HANDSHAKE_ACCEPT'
  /** The server selected a subprotocol we did not offer, or more than one (RFC 6455 §4.1, rule 6). */
  | 'WS_HANDSHAKE_PROTOCOL'
  /** The server selected an extension we did not offer (RFC 6455 §4.1, rule 5: we offer none). */
  | 'WS_HANDSHAKE_EXTENSION'
  /** The response is not HTTP/1.1 (a parse error, the `cause`), e.g. the port speaks another protocol. */
  | 'WS_HANDSHAKE_MALFORMED'
  /** The connection closed (or was reset) before the response was complete; the endpoint's close cause is the `cause`. */
  | 'WS_HANDSHAKE_CLOSED'
  /** The client was stopped while the handshake was in progress, or before it started. */
  | 'WS_CLIENT_STOPPED';

/**
 * A client connection failed before the WebSocket opened (RFC 6455 §4.1: "_Fail the WebSocket Connection_"). The
 * socket, if any, is closed. `status` and `body` are set for {@link HandshakeErrorCode} 'WS_HANDSHAKE_STATUS'
 * (a 401, 403, 404, a load balancer's 502...), so a caller can tell a refusal from a broken server.
 */
export class HandshakeError extends Error {
  readonly code: HandshakeErrorCode;
  /** The HTTP status of the response, when one was received (0 otherwise). */
  readonly status: number;
  /** The response body (up to {@link MAX_ERROR_BODY_BYTES}) for 'WS_HANDSHAKE_STATUS'; empty otherwise. */
  readonly body: Buffer;
  /**
   * For the 'WS_TLS_*' codes: node:tls's own code (`CERT_HAS_EXPIRED`, `ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION`,
   * `ECONNRESET`...), the `code` of the `cause`; undefined otherwise.
   */
  readonly tlsCode: string | undefined;

  constructor(code: HandshakeErrorCode, message: string, options?: { cause?: unknown; status?: number; body?: Buffer; tlsCode?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options?.status ?? 0;
    this.body = options?.body ?? EMPTY;
    this.tlsCode = options?.tlsCode;
  }
}

/** How much of a refusal's body {@link HandshakeError} keeps: enough for an error page's message. */
export const MAX_ERROR_BODY_BYTES = 4096;

const EMPTY = Buffer.alloc(0);

/**
 * Checks a server's 101 against what the client sent (RFC 6455 §4.1, "the client MUST validate the server's
 * response as follows") and returns the agreed subprotocol ('' for none).
 * @param key our `Sec-WebSocket-Key`, as sent.
 * @param offered the subprotocols we offered (empty: none).
 * @param extensionsOffered we offered an extension: its answer is not checked here (see `acceptDeflateResponse`).
 * @throws HandshakeError with the code of the first rule broken.
 */
export function checkHandshakeResponse(head: HttpResponseHead, key: string, offered: readonly string[], extensionsOffered = false): string {
  const fields = head.fields;
  // Rule 1: "If the status code received from the server is not 101, the client handles the response per HTTP
  // [RFC2616] procedures" (here: the caller turns any other status into 'WS_HANDSHAKE_STATUS').
  if (head.status !== 101) {
    throw new HandshakeError('WS_HANDSHAKE_STATUS', `the server answered ${head.status}, not 101`, { status: head.status });
  }
  // Rule 2: Upgrade is an ASCII case-insensitive match for "websocket". `ws` and browsers also accept it as one
  // token of a list; we take the same tolerance (hasToken), it cannot make two peers disagree.
  const upgrade = fields.getCombined('upgrade');
  if (upgrade === undefined || !hasToken(upgrade, 'websocket')) {
    throw new HandshakeError('WS_HANDSHAKE_UPGRADE', `the 101 response has ${upgrade === undefined ? 'no Upgrade field' : `Upgrade: ${clip(upgrade)}`}, not "websocket"`, { status: 101 });
  }
  // Rule 3: Connection contains the token "Upgrade", case-insensitively.
  const connection = fields.getCombined('connection');
  if (connection === undefined || !hasToken(connection, 'upgrade')) {
    throw new HandshakeError('WS_HANDSHAKE_UPGRADE', `the 101 response has ${connection === undefined ? 'no Connection field' : `Connection: ${clip(connection)}`}, without "Upgrade"`, { status: 101 });
  }
  // Rule 4: Sec-WebSocket-Accept is base64(SHA-1(key + GUID)), compared after trimming the field's whitespace
  // (RFC 9110 §5.5). Exactly one value: two fields would be a server we cannot trust to have seen our key.
  const accepts = fields.getAll('sec-websocket-accept');
  const expected = acceptKey(key);
  if (accepts.length !== 1 || accepts[0]!.trim() !== expected) {
    throw new HandshakeError(
      'WS_HANDSHAKE_ACCEPT',
      accepts.length === 0 ? 'the 101 response has no Sec-WebSocket-Accept' : `Sec-WebSocket-Accept ${clip(accepts.join(', '))} does not match the key (expected ${expected})`,
      { status: 101 },
    );
  }
  // Rule 5: "If the response includes a |Sec-WebSocket-Extensions| header field and this header field indicates
  // the use of an extension that was not present in the client's handshake" -> fail. When we offered
  // permessage-deflate (`extensionsOffered`) the caller checks the answer against the offer (RFC 7692 §7).
  const extensions = fields.getCombined('sec-websocket-extensions');
  if (!extensionsOffered && extensions !== undefined && extensions.trim() !== '') {
    throw new HandshakeError('WS_HANDSHAKE_EXTENSION', `the server selected extensions we did not offer: ${clip(extensions)}`, { status: 101 });
  }
  // Rule 6: a subprotocol "that was not present in the client's handshake" -> fail. The server selects one
  // (§4.2.2 item 5.4: "a single value"), so a list is refused too. None at all is allowed (§4.2.2: the server
  // "MUST NOT send back a |Sec-WebSocket-Protocol| header field" when it has no match); the application sees ''.
  const protocols = fields.getAll('sec-websocket-protocol');
  if (protocols.length === 0) return '';
  const protocol = protocols.length === 1 ? protocols[0]!.trim() : '';
  if (!offered.includes(protocol)) {
    const what = clip(protocols.join(', '));
    throw new HandshakeError(
      'WS_HANDSHAKE_PROTOCOL',
      offered.length === 0
        ? `the server selected subprotocol ${what} but none was offered`
        : `the server selected subprotocol ${what}, not one of the offered ${offered.join(', ')}`,
      { status: 101 },
    );
  }
  return protocol;
}

/** A header value in an error message: quoted, and cut so that a hostile server cannot fill the logs. */
function clip(value: string): string {
  return JSON.stringify(value.length > 128 ? `${value.slice(0, 128)}...` : value);
}
