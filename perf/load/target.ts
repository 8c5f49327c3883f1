import { isIP } from 'node:net';

/** Where a workload connects: host, port and request target of a ws://, wss://, http:// or https:// URL. */
export interface Target {
  host: string;
  port: number;
  /** The request target: path and query (RFC 9112 §3.2.1 origin-form). */
  path: string;
  /** The Host field value (RFC 9110 §7.2): host, and the port when it is not the default. */
  hostHeader: string;
  /** wss:// or https://: TLS over the TCP connection (RFC 6455 §3, RFC 9110 §4.2.2). */
  tls: boolean;
  /**
   * The TLS server name (SNI, RFC 6066 §3) for a host name; undefined for an IP address, which SNI may not carry
   * (node:tls then checks the certificate against the address).
   */
  servername: string | undefined;
}

/** The URL schemes over TLS. */
export function isTlsUrl(url: string): boolean {
  return /^(wss|https):/i.test(url);
}

/** @throws TypeError for anything but ws://, wss://, http:// and https:// (options.ts checks URLs before a run). */
export function parseTarget(url: string): Target {
  const u = new URL(url);
  const tls = u.protocol === 'wss:' || u.protocol === 'https:';
  if (!tls && u.protocol !== 'ws:' && u.protocol !== 'http:') throw new TypeError(`unsupported URL scheme ${u.protocol}`);
  // An IPv6 literal is bracketed in the URL (and in Host), bare for connect().
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return {
    host,
    port: u.port === '' ? (tls ? 443 : 80) : Number(u.port),
    path: `${u.pathname || '/'}${u.search}`,
    hostHeader: u.host,
    tls,
    servername: tls && isIP(host) === 0 ? host : undefined,
  };
}
