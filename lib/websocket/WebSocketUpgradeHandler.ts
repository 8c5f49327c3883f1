import type { Handler } from '../http/Handler.js';
import type { Request } from '../http/Request.js';
import type { Response } from '../http/Response.js';
import type { EndPoint } from '../io/EndPoint.js';
import { acceptKey, isValidClientKey } from './acceptKey.js';
import { WebSocketConnection, resolveSettings } from './WebSocketConnection.js';
import type { WebSocketConnectionOptions, WebSocketSettings } from './WebSocketConnection.js';
import { MessageDeflate, negotiateDeflate, parseExtensions, resolveDeflateSettings } from './PerMessageDeflate.js';
import type { DeflateAgreement, DeflateSettings, PerMessageDeflateOptions } from './PerMessageDeflate.js';
import type { WebSocketListener, WebSocketSessionOptions } from './WebSocketListener.js';
import type { WebSocketSession } from './WebSocketSession.js';

/** `accept` takes the session: the listener, and optionally the subprotocol and extra 101 headers. */
export interface WebSocketAccept {
  listener: WebSocketListener;
  /** The subprotocol, one the client offered (an error otherwise). Default: see `subprotocols`. */
  protocol?: string;
  /** Extra headers for the 101 response (e.g. Set-Cookie). */
  headers?: Record<string, string>;
}

/** `accept` refuses the upgrade with this status (and a reason sent as the body). */
export interface WebSocketRefusal {
  status: number;
  reason?: string;
  headers?: Record<string, string>;
}

/** What `accept` may return (or resolve to): a listener, a {@link WebSocketAccept}, or a {@link WebSocketRefusal}. */
export type AcceptResult = WebSocketListener | WebSocketAccept | WebSocketRefusal;

/** Options of {@link WebSocketUpgradeHandler}: the session options and the handshake's. */
export interface WebSocketUpgradeHandlerOptions extends WebSocketSessionOptions {
  /**
   * Decides on each valid upgrade request (RFC 6455 §4.2.2): `offered` is the client's `Sec-WebSocket-Protocol`
   * list in its order of preference. May return a Promise. Throwing answers 500.
   */
  accept(request: Request, offered: readonly string[]): AcceptResult | Promise<AcceptResult>;
  /**
   * The subprotocols this endpoint speaks. When `accept` does not name one, the first protocol in the client's
   * list that is also in this list is selected (none: the session opens without a subprotocol, as RFC 6455 §4.2.2
   * allows; the client decides whether to go on).
   */
  subprotocols?: readonly string[];
  /**
   * The `Origin` values allowed (exact match, e.g. `http://localhost:8080`), or a predicate. Another origin gets
   * 403. Unset: every origin, and requests without one (non-browser clients), are allowed. Browsers always send
   * Origin, so this is the defence against cross-site WebSocket hijacking (RFC 6455 §10.2).
   */
  origins?: readonly string[] | ((origin: string | undefined, request: Request) => boolean);
  /**
   * permessage-deflate (RFC 7692): `true` or options to accept a client's offer (browsers offer it). Default false,
   * as in ws: compression costs CPU on both sides and helps only compressible messages over slow links. quay keeps
   * no zlib stream per session (see PerMessageDeflate.ts): at most a 32 KiB window of what the client sent.
   * Messages over `asyncThreshold` (64 KiB) are (de)compressed on zlib's thread pool, at most
   * `zlibJobQueue.concurrency` at once in the process.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
}

/**
 * The WebSocket handshake as an HTTP {@link Handler} (RFC 6455 §4.2): validates the upgrade request, lets the
 * application accept or refuse it, writes the 101 and turns the HTTP connection into a
 * {@link WebSocketConnection} in place. A request without `Upgrade: websocket` is declined (returns false), so
 * the same path can serve a page to a plain GET, as the servlet of Jetty's first WebSocket demo did.
 */
export class WebSocketUpgradeHandler implements Handler {
  private readonly settings: WebSocketSettings;
  private readonly acceptFn: WebSocketUpgradeHandlerOptions['accept'];
  private readonly subprotocols: readonly string[];
  private readonly origins: WebSocketUpgradeHandlerOptions['origins'];
  private readonly deflate: DeflateSettings | undefined;
  private readonly _sessions = new Set<WebSocketSession>();

  constructor(options: WebSocketUpgradeHandlerOptions) {
    if (typeof options.accept !== 'function') throw new TypeError('WebSocketUpgradeHandler needs an accept function');
    this.settings = resolveSettings(options);
    this.acceptFn = options.accept;
    this.subprotocols = [...(options.subprotocols ?? [])];
    for (const p of this.subprotocols) {
      if (!isToken(p)) throw new TypeError(`subprotocol ${JSON.stringify(p)} is not an RFC 9110 token`);
    }
    this.origins = options.origins;
    this.deflate = resolveDeflateSettings(options.perMessageDeflate);
  }

  /**
   * The open sessions of this handler (ws's `wss.clients`): a session is in it from just before its listener's
   * `onOpen` to just before its `onClose`, so `broadcast(handler.sessions, text)` reaches every open member.
   * Iterate it, do not keep it: it changes as sessions come and go.
   */
  get sessions(): ReadonlySet<WebSocketSession> {
    return this._sessions;
  }

  handle(request: Request, response: Response): boolean | Promise<boolean> {
    const upgrade = request.headers.getCombined('upgrade');
    if (upgrade === undefined || !hasToken(upgrade, 'websocket')) return false; // not for us: next handler

    const problem = this.validate(request);
    if (problem !== undefined) {
      for (const [name, value] of Object.entries(problem.headers ?? {})) response.setHeader(name, value);
      void response.send(problem.status, problem.reason + '\n', 'text/plain; charset=utf-8');
      return true;
    }
    let offered: string[];
    let deflate: DeflateAgreement | undefined;
    try {
      offered = parseProtocols(request.headers.getCombined('sec-websocket-protocol'));
      // RFC 6455 §9.1: a malformed extension list is refused (400); one we do not speak is ignored (§4.2.2 item 5.5).
      const extensions = this.deflate === undefined ? undefined : request.headers.getCombined('sec-websocket-extensions');
      if (extensions !== undefined) deflate = negotiateDeflate(parseExtensions(extensions));
    } catch (e) {
      void response.send(400, `${(e as Error).message}\n`, 'text/plain; charset=utf-8');
      return true;
    }
    const result = this.acceptFn(request, offered);
    if (isThenable(result)) {
      return result.then((r) => {
        this.finish(request, response, offered, r, deflate);
        return true;
      });
    }
    this.finish(request, response, offered, result, deflate);
    return true;
  }

  /** RFC 6455 §4.2.1: what a server must check. Returns the refusal, or undefined when the request is valid. */
  private validate(request: Request): { status: number; reason: string; headers?: Record<string, string> } | undefined {
    const h = request.headers;
    // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if (request.method !== 'GET') return { status: 400, reason: `WebSocket upgrade needs GET, not ${request.method}` };
    if (request.version !== 'HTTP/1.1') return { status: 400, reason: 'WebSocket upgrade needs HTTP/1.1' };
    // Item 4: Connection contains the token "Upgrade" (case-insensitive, in a comma list).
    const connection = h.getCombined('connection');
    if (connection === undefined || !hasToken(connection, 'upgrade')) {
      return { status: 400, reason: 'WebSocket upgrade needs "Connection: Upgrade"' };
    }
    // Item 6: the version (before the key, so that a future version's client learns what we speak: §4.2.2 426).
    const version = h.getCombined('sec-websocket-version');
    if (version === undefined || version.trim() !== '13') {
      return {
        status: 426,
        reason: `unsupported Sec-WebSocket-Version ${version === undefined ? '(none)' : JSON.stringify(version)}; this server speaks 13`,
        headers: { 'Sec-WebSocket-Version': '13' },
      };
    }
    // Item 5: base64 of 16 bytes, exactly one.
    const keys = h.getAll('sec-websocket-key');
    if (keys.length !== 1 || !isValidClientKey(keys[0]!.trim())) {
      return { status: 400, reason: 'Sec-WebSocket-Key must be one base64 value of 16 bytes' };
    }
    // A body would be read as WebSocket frames: refuse it (RFC 6455 §4.1 sends none).
    if (request.contentLength > 0 || request.headers.has('transfer-encoding')) {
      return { status: 400, reason: 'a WebSocket upgrade request must not have a body' };
    }
    // Item 8 / §10.2: the origin policy.
    const origins = this.origins;
    if (origins !== undefined) {
      const origin = h.get('origin');
      const allowed = typeof origins === 'function' ? origins(origin, request) : origin !== undefined && origins.includes(origin);
      if (!allowed) return { status: 403, reason: `origin ${origin === undefined ? '(none)' : JSON.stringify(origin)} is not allowed` };
    }
    return undefined;
  }

  private finish(
    request: Request,
    response: Response,
    offered: readonly string[],
    result: AcceptResult,
    deflate: DeflateAgreement | undefined,
  ): void {
    if (result === null || typeof result !== 'object') {
      throw new TypeError('accept must return a listener, { listener, protocol? } or { status, reason? }');
    }
    if (isRefusal(result)) {
      if (result.status === 101 || result.status < 400 || result.status > 599 || !Number.isInteger(result.status)) {
        throw new RangeError(`a refusal needs a 4xx or 5xx status, not ${result.status}`);
      }
      for (const [name, value] of Object.entries(result.headers ?? {})) response.setHeader(name, value);
      void response.send(result.status, (result.reason ?? 'WebSocket upgrade refused') + '\n', 'text/plain; charset=utf-8');
      return;
    }
    const accepted: WebSocketAccept = isAccept(result) ? result : { listener: result };
    let protocol = accepted.protocol;
    if (protocol !== undefined) {
      // §4.2.2 item 5.4: the server's choice MUST be one of the client's.
      if (!offered.includes(protocol)) throw new RangeError(`accept chose subprotocol ${JSON.stringify(protocol)}, which the client did not offer`);
    } else {
      protocol = offered.find((p) => this.subprotocols.includes(p));
    }
    const fields: Record<string, string> = {
      ...accepted.headers,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Accept': acceptKey(request.headers.get('sec-websocket-key')!.trim()),
    };
    if (protocol !== undefined) fields['Sec-WebSocket-Protocol'] = protocol;
    if (deflate !== undefined) fields['Sec-WebSocket-Extensions'] = deflate.response;
    const settings = this.settings;
    const deflateSettings = this.deflate;
    const listener = accepted.listener;
    const path = request.path;
    const sessions = this._sessions;
    response.upgrade(fields, (endPoint: EndPoint) => {
      const options: WebSocketConnectionOptions = { role: 'server', settings, protocol: protocol ?? '', path, sessions };
      if (deflate !== undefined && deflateSettings !== undefined) {
        options.deflate = new MessageDeflate(deflateSettings, deflate);
        options.extensions = deflate.response;
      }
      return new WebSocketConnection(endPoint, listener, options);
    });
  }
}

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

function isRefusal(result: AcceptResult): result is WebSocketRefusal {
  return typeof (result as WebSocketRefusal).status === 'number';
}

function isAccept(result: AcceptResult): result is WebSocketAccept {
  const listener = (result as WebSocketAccept).listener;
  return listener !== undefined && typeof listener === 'object';
}

/** RFC 9110 §5.6.2 tchar. */
const TCHAR = (() => {
  const table = new Uint8Array(128);
  for (const c of "!#$%&'*+-.^_`|~") table[c.charCodeAt(0)] = 1;
  for (let c = 0x30; c <= 0x39; c++) table[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) table[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) table[c] = 1;
  return table;
})();

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

/**
 * Whether a comma-separated header value (RFC 9110 §5.6.1) contains `token` (lower case), compared
 * case-insensitively. One pass over the value, no regular expression: linear in its length whatever it holds.
 */
export function hasToken(value: string, token: string): boolean {
  const n = value.length;
  let i = 0;
  while (i < n) {
    while (i < n && (value.charCodeAt(i) === 0x20 || value.charCodeAt(i) === 0x09 || value.charCodeAt(i) === 0x2c)) i++;
    const start = i;
    while (i < n && value.charCodeAt(i) !== 0x2c) i++;
    let end = i;
    while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--;
    if (end - start === token.length && value.slice(start, end).toLowerCase() === token) return true;
  }
  return false;
}

/**
 * `Sec-WebSocket-Protocol` (RFC 6455 §4.1, §11.3.4): a comma list of tokens. Empty elements are skipped (RFC 9110
 * §5.6.1); an element that is not a token, or a duplicate, is an error (400). Linear time: a 100 KB value of
 * commas and spaces is one pass that finds nothing.
 */
export function parseProtocols(value: string | undefined): string[] {
  const protocols: string[] = [];
  if (value === undefined) return protocols;
  const n = value.length;
  let i = 0;
  while (i < n) {
    while (i < n && (value.charCodeAt(i) === 0x20 || value.charCodeAt(i) === 0x09 || value.charCodeAt(i) === 0x2c)) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && value.charCodeAt(i) !== 0x2c) i++;
    let end = i;
    while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--;
    const protocol = value.slice(start, end);
    if (!isToken(protocol)) throw new TypeError(`Sec-WebSocket-Protocol: ${JSON.stringify(protocol.slice(0, 64))} is not a token`);
    if (protocols.includes(protocol)) throw new TypeError(`Sec-WebSocket-Protocol: ${JSON.stringify(protocol)} is offered twice`);
    if (protocols.length === 64) throw new TypeError('Sec-WebSocket-Protocol: more than 64 subprotocols offered');
    protocols.push(protocol);
  }
  return protocols;
}
