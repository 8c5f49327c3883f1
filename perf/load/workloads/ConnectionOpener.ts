import { createSecureContext } from 'node:tls';
import type { LoadClientOptions, LoadTls } from '../LoadClient.js';
import type { LoadOptions } from '../options.js';
import { isTlsUrl } from '../target.js';

/**
 * Opens a workload's connections with at most `openConcurrency` connects (+ handshakes) under way at a time: a
 * burst of thousands of SYNs overflows the server's accept backlog and measures SYN retries rather than the
 * server. Connection i connects from source address (firstIndex + i) mod their count (round robin; firstIndex is
 * 0 but in the children of a run split over processes). The workload creates and
 * connects each client in `start`, and reports every attempt's outcome with {@link attemptEnded}, then calls
 * {@link launch} to fill the freed place. For wss:// and https://, every connection shares one TLS context (the CAs
 * parsed once, not per connection).
 */
export class ConnectionOpener {
  private launched = 0;
  private opening = 0;
  private wanted = 0;
  private openDone: (() => void) | undefined;
  private opened = 0;
  private readonly tls: LoadTls | undefined;

  constructor(
    private readonly options: LoadOptions,
    /** Creates the client of slot `index` with these options and connects it. */
    private readonly start: (index: number, clientOptions: LoadClientOptions) => void,
  ) {
    this.tls = isTlsUrl(options.url)
      ? { secureContext: createSecureContext(options.ca === undefined ? {} : { ca: options.ca }), rejectUnauthorized: !options.insecure }
      : undefined;
  }

  /** Attempts under way (connected or failed not yet reported). */
  get pending(): number {
    return this.opening;
  }

  /** Opens slots 0..n-1; resolves when each one opened or failed, or at once when `signal` aborts. */
  openAll(n: number, signal?: AbortSignal): Promise<void> {
    this.wanted = n;
    return new Promise<void>((resolve) => {
      const finish = (): void => {
        signal?.removeEventListener('abort', finish);
        this.openDone = undefined;
        resolve();
      };
      this.openDone = finish;
      signal?.addEventListener('abort', finish, { once: true });
      if (signal?.aborted === true) return finish();
      this.launch();
    });
  }

  /** Opens slot `index`: in launch order, or again outside it (the slot's connection ended). */
  open(index: number): void {
    this.opening++;
    this.start(index, this.clientOptions(index));
  }

  /** An attempt ended: its connection opened, or failed to. */
  attemptEnded(opened: boolean): void {
    this.opening--;
    if (opened) this.opened++;
  }

  /**
   * True when every attempt so far failed (after openAll): the run fails fast instead of waiting its warm-up and
   * duration with nothing to measure (a refused port, a wrong host, a certificate the client refuses).
   */
  get noneOpened(): boolean {
    return this.opened === 0;
  }

  /** Starts attempts up to the concurrency limit (none after {@link stop}); resolves openAll() when all ended. */
  launch(): void {
    while (this.launched < this.wanted && this.opening < this.options.openConcurrency) this.open(this.launched++);
    if (this.openDone !== undefined && this.launched === this.wanted && this.opening === 0) this.openDone();
  }

  /** Opens no more slots (the run is closing). */
  stop(): void {
    this.wanted = this.launched;
  }

  private clientOptions(index: number): LoadClientOptions {
    const addresses = this.options.sourceAddresses;
    const options: LoadClientOptions = {
      // In a run split over processes, the round robin continues from this process's first connection.
      localAddress: addresses.length === 0 ? undefined : addresses[(this.options.firstIndex + index) % addresses.length],
      timeoutMs: this.options.timeoutSec * 1000,
      deflate: this.options.deflate,
    };
    if (this.tls !== undefined) options.tls = this.tls;
    return options;
  }
}
