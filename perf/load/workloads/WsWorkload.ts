import type { DataOpCode } from '../../../lib/index.js';
import type { ErrorKind, Measurement } from '../Measurement.js';
import type { LoadOptions } from '../options.js';
import { sleep } from '../sleep.js';
import type { Target } from '../target.js';
import { WsLoadClient } from '../WsLoadClient.js';
import type { WsLoadHandler } from '../WsLoadClient.js';
import { ConnectionOpener } from './ConnectionOpener.js';

/**
 * What every WebSocket workload does around its own traffic: open N connections (a ConnectionOpener limits the
 * handshakes under way and spreads the source addresses); count the errors by kind; close them all with the
 * closing handshake at the end. Subclasses implement the message hooks.
 */
export abstract class WsWorkload implements WsLoadHandler {
  protected readonly clients: WsLoadClient[] = [];
  /** Connections whose handshake completed, and whose connect or handshake failed. */
  protected openedCount = 0;
  protected failedOpens = 0;
  /** Connections ended (for any reason) since closeAll() began. */
  protected closedCount = 0;
  /** closeAll() began: ends are expected, not errors. */
  protected closing = false;
  private ended = 0;
  private readonly opener: ConnectionOpener;
  private allEnded: (() => void) | undefined;

  constructor(
    protected readonly options: LoadOptions,
    protected readonly target: Target,
    protected readonly m: Measurement,
  ) {
    // Slots open in index order: clients[i] is slot i.
    this.opener = new ConnectionOpener(options, (i, clientOptions) => {
      const client = new WsLoadClient(i, this.target, this, clientOptions);
      this.clients.push(client);
      client.connect();
    });
  }

  abstract onMessage(client: WsLoadClient, opcode: DataOpCode, data: Buffer): void;
  abstract onReadComplete(client: WsLoadClient): void;

  /** A connection completed its handshake. */
  protected opened(_client: WsLoadClient): void {}

  /** An open connection ended before closeAll() (the error, if any, is already counted). */
  protected lost(_client: WsLoadClient): void {}

  /** Opens `n` connections; resolves when each is open or failed, or at once when `signal` aborts. */
  /** No connection could be opened (see ConnectionOpener.noneOpened). */
  protected get noneOpened(): boolean {
    return this.opener.noneOpened;
  }

  protected openAll(n: number, signal?: AbortSignal): Promise<void> {
    return this.opener.openAll(n, signal);
  }

  /**
   * Closes every connection (RFC 6455 §7.1.2 closing handshake); those still open after `graceMs` are
   * destroyed. Resolves when every socket is closed.
   */
  protected async closeAll(graceMs: number): Promise<void> {
    this.closing = true;
    this.opener.stop();
    if (this.ended === this.clients.length) return;
    const all = new Promise<void>((resolve) => (this.allEnded = resolve));
    for (const client of this.clients) client.close();
    const grace = new AbortController();
    await Promise.race([all, sleep(graceMs, grace.signal)]);
    grace.abort();
    for (const client of this.clients) if (client.state !== 'CLOSED') client.destroy();
    await all;
  }

  onOpen(client: WsLoadClient): void {
    this.opener.attemptEnded(true);
    this.openedCount++;
    if (this.closing) {
      client.close();
      return;
    }
    this.opened(client);
    this.opener.launch();
  }

  onEnd(client: WsLoadClient, kind: ErrorKind | undefined, message: string): void {
    this.ended++;
    if (this.closing) this.closedCount++;
    else if (kind !== undefined) this.m.error(kind, message);
    if (client.openedAt === 0) {
      this.opener.attemptEnded(false);
      this.failedOpens++;
      this.opener.launch(); // opens no more once closing
    } else if (!this.closing) {
      this.lost(client);
    }
    if (this.ended === this.clients.length) this.allEnded?.();
  }

  /** The open connections. */
  protected *openClients(): IterableIterator<WsLoadClient> {
    for (const c of this.clients) if (c.state === 'OPEN') yield c;
  }
}
