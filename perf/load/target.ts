/** Where a workload connects: host, port and request target of a ws:// or http:// URL. */
export interface Target {
  host: string;
  port: number;
  /** The request target: path and query (RFC 9112 §3.2.1 origin-form). */
  path: string;
  /** The Host field value (RFC 9110 §7.2): host, and the port when it is not the default. */
  hostHeader: string;
}

/** @throws TypeError for anything but ws:// and http:// (options.ts checks URLs before a run). */
export function parseTarget(url: string): Target {
  const u = new URL(url);
  if (u.protocol !== 'ws:' && u.protocol !== 'http:') throw new TypeError(`unsupported URL scheme ${u.protocol}`);
  // An IPv6 literal is bracketed in the URL (and in Host), bare for connect().
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return {
    host,
    port: u.port === '' ? 80 : Number(u.port),
    path: `${u.pathname || '/'}${u.search}`,
    hostHeader: u.host,
  };
}
