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
import { buildReport } from '../report.js';
import type { WorkloadRun } from '../report.js';
import { sleep } from '../sleep.js';
import { parseTarget } from '../target.js';
import type { Target } from '../target.js';

const DRAIN_MS = 5000;

/** The request every connection sends: HTTP/1.1 keeps the connection alive by default (RFC 9112 §9.3). */
export function requestOf(target: Target): Buffer {
  return Buffer.from(`GET ${target.path} HTTP/1.1\r\nHost: ${target.hostHeader}\r\nUser-Agent: quay-load\r\n\r\n`, 'latin1');
}

export class HttpWorkload implements HttpLoadHandler {
  private readonly target: Target;
  private readonly depth: number;
  private readonly requests: RepeatedBytes;
  /** The connection of each slot (replaced when the server closes one). */
  private readonly clients: (HttpLoadClient | undefined)[];
  private readonly sentAt: Float64Array;
  private readonly headSlot: Uint32Array;
  private readonly tailSlot: Uint32Array;
  private readonly inFlight: Uint32Array;
  private readonly toSend: Uint32Array;
  private readonly lastActivity: Float64Array;
  /** Responses by status code (index). */
  private readonly statuses = new Float64Array(1000);
  private sending = false;
  private closing = false;
  private sent = 0;
  private received = 0;
  private lostRequests = 0;
  private live = 0;
  private launched = 0;
  private opening = 0;
  private openDone: (() => void) | undefined;
  private drained: (() => void) | undefined;
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
    this.sentAt = new Float64Array(c * this.depth);
    this.headSlot = new Uint32Array(c);
    this.tailSlot = new Uint32Array(c);
    this.inFlight = new Uint32Array(c);
    this.toSend = new Uint32Array(c);
    this.lastActivity = new Float64Array(c);
  }

  async run(signal?: AbortSignal): Promise<WorkloadRun> {
    const o = this.options;
    const m = this.m;
    await new Promise<void>((resolve) => {
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
    const watchdog = setInterval(() => this.watch(), 1000);
    try {
      if (signal?.aborted !== true) {
        this.sending = true;
        if (o.warmupSec > 0) m.beginWarmup();
        else m.beginMeasuring();
        for (const client of this.clients) if (client?.state === 'OPEN') this.send(client, this.depth);
        if (o.warmupSec > 0) {
          await sleep(o.warmupSec * 1000, signal);
          m.beginMeasuring();
        }
        await sleep(o.durationSec * 1000, signal);
      }
      m.stop();
      this.sending = false;
      if (signal?.aborted !== true) await this.drain();
    } finally {
      clearInterval(watchdog);
      m.stop();
      this.sending = false;
    }
    await this.closeAll();
    const statuses: Record<string, number> = {};
    this.statuses.forEach((n, status) => {
      if (n !== 0) statuses[String(status)] = n;
    });
    const report = buildReport(o, o.connections, m, {
      warmupSec: o.warmupSec,
      pipelining: this.depth,
      sent: this.sent,
      received: this.received,
      statuses,
    });
    if (signal?.aborted === true) report.interrupted = true;
    return { report, measurement: m };
  }

  onOpen(client: HttpLoadClient): void {
    this.opening--;
    this.live++;
    if (this.closing) {
      client.destroy();
      return;
    }
    // A reopened connection (the server closed the previous one) starts sending at once.
    if (this.sending) this.send(client, this.depth);
    this.launch();
  }

  onResponse(client: HttpLoadClient, status: number, keepAlive: boolean): void {
    const i = client.index;
    if (this.inFlight[i] === 0) {
      client.fail('protocol', 'a response to no request');
      return;
    }
    const slot = this.tailSlot[i]!;
    this.tailSlot[i] = slot + 1 === this.depth ? 0 : slot + 1;
    this.inFlight[i]!--;
    this.received++;
    this.lastActivity[i] = client.readAt;
    this.statuses[status < 1000 ? status : 999]!++;
    if (status < 200 || status >= 400) this.m.error('http', `status ${status}`);
    this.m.deliver(this.sentAt[i * this.depth + slot]!, client.readAt, 0);
    // After a response announcing the close, the requests still in flight are lost: send no more.
    if (this.sending && keepAlive) this.toSend[i]!++;
  }

  onReadComplete(client: HttpLoadClient, bytes: number): void {
    this.m.addBytes(bytes);
    const i = client.index;
    const n = this.toSend[i]!;
    if (n !== 0) {
      this.toSend[i] = 0;
      this.send(client, n);
    }
    this.checkDrained();
  }

  onEnd(client: HttpLoadClient, kind: ErrorKind | undefined, message: string): void {
    const i = client.index;
    const opened = client.openedAt !== 0;
    if (!this.closing && kind !== undefined) this.m.error(kind, message);
    if (opened) {
      this.live--;
      this.lostRequests += this.inFlight[i]!;
      this.inFlight[i] = 0;
      this.toSend[i] = 0;
      this.headSlot[i] = this.tailSlot[i] = 0;
    } else {
      this.opening--;
    }
    if (this.clients[i] === client) this.clients[i] = undefined;
    // Reopen a connection the server closed after serving it (Connection: close); not one that never worked.
    if (!this.closing && opened && client.responses > 0 && kind === undefined) this.open(i);
    else if (!opened && !this.closing) this.launch();
    this.checkDrained();
    if (this.closing && this.live === 0 && this.opening === 0) this.allEnded?.();
  }

  /** Opens the slots not yet launched, up to the concurrency limit. */
  private launch(): void {
    while (this.launched < this.options.connections && this.opening < this.options.openConcurrency) this.open(this.launched++);
    if (this.openDone !== undefined && this.launched === this.options.connections && this.opening === 0) this.openDone();
  }

  private open(i: number): void {
    const addresses = this.options.sourceAddresses;
    const client = new HttpLoadClient(i, this.target, this, {
      localAddress: addresses.length === 0 ? undefined : addresses[i % addresses.length],
      timeoutMs: this.options.timeoutSec * 1000,
    });
    this.clients[i] = client;
    this.opening++;
    client.connect();
  }

  private send(client: HttpLoadClient, n: number): void {
    const i = client.index;
    const depth = this.depth;
    const base = i * depth;
    const now = performance.now();
    let slot = this.headSlot[i]!;
    for (let k = 0; k < n; k++) {
      this.sentAt[base + slot] = now;
      slot = slot + 1 === depth ? 0 : slot + 1;
    }
    this.headSlot[i] = slot;
    if (this.inFlight[i] === 0) this.lastActivity[i] = now;
    this.inFlight[i]! += n;
    this.sent += n;
    this.requests.writeTo(client, n);
  }

  private checkDrained(): void {
    if (this.drained !== undefined && this.sent === this.received + this.lostRequests) this.drained();
  }

  private async drain(): Promise<void> {
    if (this.sent === this.received + this.lostRequests) return;
    const waitMs = Math.min(this.options.timeoutSec * 1000, DRAIN_MS);
    const done = new Promise<void>((resolve) => (this.drained = resolve));
    const timer = new AbortController();
    await Promise.race([done, sleep(waitMs, timer.signal)]);
    timer.abort();
    this.drained = undefined;
    const missing = this.sent - this.received - this.lostRequests;
    if (missing > 0) this.m.error('timeout', `${missing} requests unanswered ${waitMs} ms after the end of the run`);
  }

  private async closeAll(): Promise<void> {
    this.closing = true;
    if (this.live === 0 && this.opening === 0) return;
    const all = new Promise<void>((resolve) => (this.allEnded = resolve));
    for (const client of this.clients) client?.destroy();
    await all;
  }

  private watch(): void {
    const now = performance.now();
    const limit = this.options.timeoutSec * 1000;
    for (const client of this.clients) {
      if (client === undefined || client.state !== 'OPEN') continue;
      const i = client.index;
      if (this.inFlight[i] !== 0 && now - this.lastActivity[i]! > limit) {
        client.fail('timeout', `no response for ${this.options.timeoutSec} s with ${this.inFlight[i]} requests in flight`);
      }
    }
  }
}

export async function runHttp(options: LoadOptions, m = new Measurement(options.rateIntervalMs), signal?: AbortSignal): Promise<WorkloadRun> {
  return new HttpWorkload(options, m).run(signal);
}
