/**
 * http: C keep-alive connections sending `GET <path>`, P requests in flight each (pipelining, RFC 9112 §9.3.2):
 * every response received sends the next request. count = responses; latency = request to response; bytes =
 * response bytes. A connection the server closes (Connection: close, or a body delimited by the close) is
 * reopened; responses outside 2xx-3xx count as `http` errors.
 */
import { performance } from 'node:perf_hooks';
import { HttpLoadClient } from '../HttpLoadClient.js';
import type { HttpLoadHandler } from '../HttpLoadClient.js';
import { Measurement } from '../Measurement.js';
import type { ErrorKind } from '../Measurement.js';
import type { LoadOptions } from '../options.js';
import { RepeatedBytes } from '../RepeatedBytes.js';
import { workloadRun } from '../report.js';
import type { WorkloadRun } from '../report.js';
import { parseTarget } from '../target.js';
import type { Target } from '../target.js';
import { ConnectionOpener } from './ConnectionOpener.js';
import { InFlightLedger } from './InFlightLedger.js';
import { PacedSender } from './PacedSender.js';
import { TrafficRun } from './TrafficRun.js';
import type { Traffic } from './TrafficRun.js';

/** The request every connection sends: HTTP/1.1 keeps the connection alive by default (RFC 9112 §9.3). */
export function requestOf(target: Target): Buffer {
  return Buffer.from(`GET ${target.path} HTTP/1.1\r\nHost: ${target.hostHeader}\r\nUser-Agent: quay-load\r\n\r\n`, 'latin1');
}

export class HttpWorkload implements HttpLoadHandler, Traffic {
  private readonly target: Target;
  private readonly depth: number;
  private readonly requests: RepeatedBytes;
  /** The connection of each slot (replaced when the server closes one). */
  private readonly clients: (HttpLoadClient | undefined)[];
  /** The requests in flight per connection; pipelined responses come in request order (RFC 9112 §9.3.2). */
  private readonly ledger: InFlightLedger;
  private readonly opener: ConnectionOpener;
  private readonly traffic = new TrafficRun(this);
  /** `--rate`: requests paced to at most that many a second; otherwise every response sends the next at once. */
  private readonly pacer: PacedSender | undefined;
  /** Responses by status code (index). */
  private readonly statuses = new Float64Array(1000);
  private sending = false;
  private closing = false;
  /** Connections open now. */
  private live = 0;
  private allEnded: (() => void) | undefined;

  constructor(
    private readonly options: LoadOptions,
    private readonly m: Measurement,
  ) {
    const c = options.connections;
    this.target = parseTarget(options.url);
    this.depth = options.pipelining;
    this.requests = new RepeatedBytes(requestOf(this.target), this.depth);
    this.clients = new Array<HttpLoadClient | undefined>(c).fill(undefined);
    this.ledger = new InFlightLedger(c, this.depth);
    this.pacer = options.rate === undefined ? undefined : new PacedSender(options.rate, c, (i, n) => this.sendOn(i, n));
    this.opener = new ConnectionOpener(options, (i, clientOptions) => {
      const client = new HttpLoadClient(i, this.target, this, clientOptions);
      this.clients[i] = client;
      client.connect();
    });
  }

  async run(signal?: AbortSignal): Promise<WorkloadRun> {
    const o = this.options;
    await this.opener.openAll(o.connections, signal);
    if (!this.opener.noneOpened) await this.traffic.run(o, this.m, signal);
    await this.closeAll();
    const statuses: Record<string, number> = {};
    this.statuses.forEach((n, status) => {
      if (n !== 0) statuses[String(status)] = n;
    });
    return workloadRun(
      o,
      o.connections,
      this.m,
      { warmupSec: o.warmupSec, pipelining: this.depth, sent: this.ledger.sent, received: this.ledger.received, statuses },
      signal,
    );
  }

  onOpen(client: HttpLoadClient): void {
    this.opener.attemptEnded(true);
    this.live++;
    if (this.closing) {
      client.destroy();
      return;
    }
    // A reopened connection (the server closed the previous one) starts sending at once.
    if (this.sending) this.offer(client, this.depth);
    this.opener.launch();
  }

  onResponse(client: HttpLoadClient, status: number, keepAlive: boolean): void {
    const i = client.index;
    if (this.ledger.inFlightOn(i) === 0) {
      client.fail('protocol', 'a response to no request');
      return;
    }
    const sentAt = this.ledger.answer(i, client.readAt);
    this.statuses[status < 1000 ? status : 999]!++;
    if (status < 200 || status >= 400) this.m.error('http', `status ${status}`);
    this.m.deliver(sentAt, client.readAt, 0);
    // After a response announcing the close, the requests still in flight are lost: send no more.
    if (this.sending && keepAlive) this.ledger.queue(i);
  }

  onReadComplete(client: HttpLoadClient, bytes: number): void {
    this.m.addBytes(bytes);
    const n = this.ledger.takeQueued(client.index);
    if (n !== 0) this.offer(client, n);
    this.traffic.checkDrained();
  }

  onEnd(client: HttpLoadClient, kind: ErrorKind | undefined, message: string): void {
    const i = client.index;
    const opened = client.openedAt !== 0;
    if (!this.closing && kind !== undefined) this.m.error(kind, message);
    if (opened) {
      this.live--;
      this.ledger.drop(i);
      this.pacer?.drop(i);
    } else {
      this.opener.attemptEnded(false);
    }
    if (this.clients[i] === client) this.clients[i] = undefined;
    // Reopen a connection the server closed after serving it (Connection: close); not one that never worked.
    if (!this.closing && opened && client.responses > 0 && kind === undefined) this.opener.open(i);
    else if (!opened && !this.closing) this.opener.launch();
    this.traffic.checkDrained();
    if (this.closing && this.live === 0 && this.opener.pending === 0) this.allEnded?.();
  }

  // ------------------------------------------------------------------------------------------------ Traffic

  canSend(): boolean {
    return true;
  }

  startSending(): void {
    this.sending = true;
    this.pacer?.start();
    for (const client of this.clients) if (client?.state === 'OPEN') this.offer(client, this.depth);
  }

  stopSending(): void {
    this.sending = false;
    this.pacer?.stop();
  }

  get settled(): boolean {
    return this.ledger.settled;
  }

  countUnanswered(waitMs: number): void {
    const missing = this.ledger.outstanding;
    if (missing > 0) this.m.error('timeout', `${missing} requests unanswered ${waitMs} ms after the end of the run`);
  }

  /** A connection whose requests go unanswered for the timeout counts one timeout and is dropped. */
  watch(): void {
    const now = performance.now();
    const limit = this.options.timeoutSec * 1000;
    for (const client of this.clients) {
      if (client === undefined || client.state !== 'OPEN') continue;
      if (this.ledger.overdue(client.index, now, limit)) {
        client.fail('timeout', `no response for ${this.options.timeoutSec} s with ${this.ledger.inFlightOn(client.index)} requests in flight`);
      }
    }
  }

  /** n requests are due on a connection: sent now, or as the pacer allows (`--rate`). */
  private offer(client: HttpLoadClient, n: number): void {
    if (this.pacer === undefined) this.send(client, n);
    else this.pacer.offer(client.index, n);
  }

  /** The pacer's sends: the connection in slot `i` if it is open (a closed one was dropped from the pacer). */
  private sendOn(i: number, n: number): void {
    const client = this.clients[i];
    if (client !== undefined && client.state === 'OPEN') this.send(client, n);
  }

  /** Sends n requests on a connection, stamping their send time (one clock read for the batch). */
  private send(client: HttpLoadClient, n: number): void {
    this.ledger.sendMany(client.index, n, performance.now());
    this.requests.writeTo(client, n);
  }

  /** Destroys every connection (no closing handshake in HTTP); resolves when every socket is closed. */
  private async closeAll(): Promise<void> {
    this.closing = true;
    this.opener.stop();
    if (this.live === 0 && this.opener.pending === 0) return;
    const all = new Promise<void>((resolve) => (this.allEnded = resolve));
    for (const client of this.clients) client?.destroy();
    await all;
  }
}

export async function runHttp(options: LoadOptions, m = new Measurement(options.rateIntervalMs), signal?: AbortSignal): Promise<WorkloadRun> {
  return new HttpWorkload(options, m).run(signal);
}
