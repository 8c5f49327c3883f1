import { createHash } from 'node:crypto';

/** The GUID a server appends to the client's key (RFC 6455 §1.3, §4.2.2). */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64 of the SHA-1 of the key (as sent, a string)
 * concatenated with the GUID (RFC 6455 §4.2.2 step 5.4). A client computes the same to check the server's answer
 * (RFC 6455 §4.1, the fourth rule for the server's response).
 */
export function acceptKey(secWebSocketKey: string): string {
  return createHash('sha1').update(secWebSocketKey + WEBSOCKET_GUID, 'latin1').digest('base64');
}

/** Base64 of 16 bytes: 22 characters of the alphabet and the `==` padding (RFC 4648 §4). */
const CLIENT_KEY = /^[A-Za-z0-9+/]{22}==$/;

/**
 * The `Sec-WebSocket-Key` is "a base64-encoded value that, when decoded, is 16 bytes in length" (RFC 6455 §4.1,
 * §4.2.1 item 5). Canonical padded base64 of 16 bytes is exactly 24 characters ending in `==`; the test is a
 * syntax check, as `ws` and browsers do, since any 16 bytes are valid (the key is only a nonce).
 */
export function isValidClientKey(key: string): boolean {
  return CLIENT_KEY.test(key);
}
