import { Buffer } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Connection } from '../io/Connection.js';
import type { EndPoint } from '../io/EndPoint.js';
import { SelectorManager } from '../io/SelectorManager.js';
import type { SelectorManagerStats } from '../io/SelectorManager.js';
import { toHandler } from './Handler.js';
import type { Handler, HandlerFunction } from './Handler.js';
import { HttpConnection } from './HttpConnection.js';
import type { HttpConnectionOptions, HttpErrorReporter } from './HttpConnection.js';
import { ioErrorKind } from './Server.js';
import type { ServerErrorContext } from './Server.js';

/** Options of {@link UpgradeBridge}. */
export interface UpgradeBridgeOptions extends HttpConnectionOptions {
  /** Idle timeout of the adopted connections in ms (a WebSocket session inherits it). Default 30 s. */
  idleTimeoutMs?: number;
  /** Errors, as the Server's `onError`. Default: none (quiet). */
  onError?: (error: Error, context: ServerErrorContext) => void;
}

/**
 * Lets a node:http server (and what runs on it: express, fastify) hand its `'upgrade'` requests to a quay
 * {@link Handler}, usually a `WebSocketUpgradeHandler`, as `ws`'s `handleUpgrade(req, socket, head)` does:
 *
 * ```ts
 * const bridge = new UpgradeBridge(new WebSocketUpgradeHandler({ accept: () => listener }));
 * httpServer.on('upgrade', (req, socket, head) => bridge.handleUpgrade(req, socket, head));
 * ```
 *
 * The socket becomes a quay endpoint (its own SelectorManager: one idle-timeout sweep, stats, `dump()`,
 * `stop()`), and the request is replayed to a quay `HttpConnection` as the bytes node:http already parsed,
 * followed by `head` (what the client sent after the request head, perhaps its first WebSocket frames). From
 * there it is the same code path as a quay Server's: same validation, same errors, same in-place upgrade.
 */
export class UpgradeBridge implements HttpErrorReporter {
  readonly selectorManager: SelectorManager;
  private readonly handler: Handler;
  private readonly options: UpgradeBridgeOptions;
  private readonly handlerRef = (): Handler => this.handler;

  constructor(handler: Handler | HandlerFunction, options: UpgradeBridgeOptions = {}) {
    this.handler = toHandler(handler);
    this.options = options;
    this.selectorManager = new SelectorManager({
      idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
      // Not used: every socket is adopted with a Replay connection, then upgraded to an HttpConnection.
      connectionFactory: { newConnection: () => new Replay(undefined) },
      onError: (error, endPoint) => {
        if (endPoint !== undefined) this.reportError(error, { kind: ioErrorKind(error), endPoint });
      },
    });
  }

  /** Takes over the socket of a node:http `'upgrade'` event. Never throws: a failure closes that socket. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    let replay: Buffer;
    try {
      replay = Buffer.concat([Buffer.from(requestHead(request), 'latin1'), head]);
    } catch (e) {
      socket.destroy(e as Error);
      return;
    }
    (socket as Socket).setTimeout(0); // node:http's timers no longer apply: quay's idle timeout does
    let endPoint: EndPoint;
    try {
      endPoint = this.selectorManager.adopt(socket as Socket, { newConnection: () => new Replay(replay) });
    } catch {
      return; // stopping: adopt destroyed the socket
    }
    endPoint.upgrade(new HttpConnection(endPoint, this.handlerRef, this, this.options));
  }

  /** Counters of the adopted connections. */
  stats(): SelectorManagerStats {
    return this.selectorManager.stats();
  }

  /** Closes every adopted connection gracefully (WebSocket sessions: 1001), by force at the deadline. */
  stop(graceMs = 30_000): Promise<void> {
    return this.selectorManager.stop(graceMs); // safe to drop (SelectorManager.stop)
  }

  /** @internal HttpErrorReporter */
  reportError(error: Error, context: ServerErrorContext): void {
    const hook = this.options.onError;
    if (hook === undefined) return;
    try {
      hook(error, context);
    } catch {
      // A logging hook that throws must not break the bridge.
    }
  }

}

/**
 * The request head as it came on the wire, rebuilt from what node:http parsed (raw header names and values, in
 * order). node:http has already applied its own checks; quay's parser applies its stricter ones again.
 */
function requestHead(request: IncomingMessage): string {
  if (request.method === undefined || request.url === undefined) throw new TypeError('not a server request');
  let head = `${request.method} ${request.url} HTTP/${request.httpVersion}\r\n`;
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return head + '\r\n';
}

/** Holds the replayed bytes for the instant between adoption and the upgrade to an HttpConnection. */
class Replay implements Connection {
  constructor(private bytes: Buffer | undefined) {}
  onOpen(): void {}
  onFillable(): void {}
  onIdleExpired(): boolean {
    return true;
  }
  onClose(): void {}
  onUpgradeFrom(): Buffer | undefined {
    const bytes = this.bytes;
    this.bytes = undefined;
    return bytes;
  }
}
